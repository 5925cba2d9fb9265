package forge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/mygitops/mgo/internal/version"
)

// maxBody bounds what is read of an answer; maxErrorBody what of it an
// error quotes.
const (
	maxBody      = 1 << 20
	maxErrorBody = 512
)

// HTTPError is a forge's answer with a status other than 2xx.
type HTTPError struct {
	Method string
	// Host is the forge's host (the URL's path and query are left out).
	Host string
	// Status is the HTTP status code.
	Status int
	// Body is the start of the answer, with the token taken out should the
	// forge echo it.
	Body string
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("%s %s: answered %d %s", e.Method, e.Host, e.Status, http.StatusText(e.Status))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// httpClient sends JSON requests with the forge's auth headers.
type httpClient struct {
	client *http.Client
	header http.Header
	token  string
}

// do sends body (JSON-encoded unless nil) and decodes a 2xx answer into
// out (unless nil). Any other status is an *HTTPError.
func (h *httpClient) do(ctx context.Context, method, target string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return fmt.Errorf("%s: invalid URL", method)
	}
	for k, v := range h.header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "mgo/"+version.Version)
	resp, err := h.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL
		}
		return fmt.Errorf("%s %s: %w", method, req.URL.Host, h.redact(err))
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode/100 != 2 {
		return &HTTPError{Method: method, Host: req.URL.Host, Status: resp.StatusCode, Body: h.quote(answer)}
	}
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, req.URL.Host, err)
	}
	if out != nil {
		if err := json.Unmarshal(answer, out); err != nil {
			return fmt.Errorf("%s %s: the answer is not the JSON expected: %w", method, req.URL.Host, err)
		}
	}
	return nil
}

// quote returns the start of an error answer on one line, the token
// removed.
func (h *httpClient) quote(b []byte) string {
	s := strings.ReplaceAll(string(b), h.token, "[redacted]")
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxErrorBody {
		s = strings.ToValidUTF8(s[:maxErrorBody], "") + "…"
	}
	return s
}

func (h *httpClient) redact(err error) error {
	if msg := err.Error(); strings.Contains(msg, h.token) {
		return errors.New(strings.ReplaceAll(msg, h.token, "[redacted]"))
	}
	return err
}

// isStatus reports whether err is an *HTTPError with status code.
func isStatus(err error, code int) bool {
	he, ok := errors.AsType[*HTTPError](err)
	return ok && he.Status == code
}
