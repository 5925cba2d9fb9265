package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/mygitops/mgo/internal/outbound"
	"github.com/mygitops/mgo/internal/version"
)

// post sends body as JSON and returns the answer's body (at most 1 MiB).
// Errors never contain the URL: a Slack webhook URL is a secret.
func post(ctx context.Context, c *http.Client, target string, header http.Header, body any) ([]byte, error) {
	b, ok := body.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	return do(ctx, c, http.MethodPost, target, header, b)
}

// get is post's GET.
func get(ctx context.Context, c *http.Client, target string, header http.Header) ([]byte, error) {
	return do(ctx, c, http.MethodGet, target, header, nil)
}

func do(ctx context.Context, c *http.Client, method, target string, header http.Header, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, errors.New("invalid receiver URL")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "mgo/"+version.Version)
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		err = fmt.Errorf("%s %s: %w", method, req.URL.Host, err)
		if _, refused := errors.AsType[*outbound.RefusedError](err); refused {
			return nil, &permanentError{err}
		}
		return nil, err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		err := fmt.Errorf("%s %s: answered %s", method, req.URL.Host, resp.Status)
		if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
			return answer, &permanentError{err}
		}
		return answer, err
	}
	return answer, nil
}
