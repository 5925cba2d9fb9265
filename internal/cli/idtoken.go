package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// tokenSource returns the bearer token of the next request to mgo serve.
type tokenSource func(ctx context.Context) (string, error)

// tokenSource picks the identity of mgo deploy --server: the ID token in
// --id-token-env, a GitHub Actions ID token, or $MGO_TOKEN. It says which
// on errOut, never the token.
func (f *deployFlags) tokenSource(errOut io.Writer) (tokenSource, error) {
	if f.idTokenEnv != "" {
		tok := strings.TrimSpace(os.Getenv(f.idTokenEnv))
		if tok == "" {
			return nil, fmt.Errorf("--id-token-env: $%s is empty (in GitLab CI, define it under id_tokens: in the job)", f.idTokenEnv)
		}
		fmt.Fprintf(errOut, "identity: ID token from $%s\n", f.idTokenEnv)
		return func(context.Context) (string, error) { return tok, nil }, nil
	}
	reqURL, reqToken := os.Getenv("ACTIONS_ID_TOKEN_REQUEST_URL"), os.Getenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
	if reqURL != "" && reqToken != "" {
		aud := f.audience
		if aud == "" {
			aud = strings.TrimRight(f.server, "/")
		}
		fmt.Fprintf(errOut, "identity: GitHub Actions ID token for audience %s\n", aud)
		gh := &githubTokens{url: reqURL, reqToken: reqToken, audience: aud, http: &http.Client{Timeout: 30 * time.Second}}
		return gh.token, nil
	}
	if tok := strings.TrimSpace(os.Getenv("MGO_TOKEN")); tok != "" {
		return func(context.Context) (string, error) { return tok, nil }, nil
	}
	return nil, errors.New("no identity for --server: give --id-token-env (GitLab CI id_tokens), run in GitHub Actions with " +
		"permissions: id-token: write, or set $MGO_TOKEN")
}

// githubTokens requests ID tokens from the GitHub Actions runner and
// reuses one until a minute before it expires (a deploy followed to its
// end may outlive one token).
type githubTokens struct {
	url, reqToken, audience string
	http                    *http.Client

	mu     sync.Mutex
	cached string
	exp    time.Time
}

func (g *githubTokens) token(ctx context.Context) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cached != "" && time.Until(g.exp) > time.Minute {
		return g.cached, nil
	}
	u, err := url.Parse(g.url)
	if err != nil {
		return "", fmt.Errorf("ACTIONS_ID_TOKEN_REQUEST_URL: %w", err)
	}
	q := u.Query()
	q.Set("audience", g.audience)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+g.reqToken)
	req.Header.Set("Accept", "application/json")
	resp, err := g.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("requesting a GitHub Actions ID token: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("requesting a GitHub Actions ID token: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("requesting a GitHub Actions ID token: %s (does the job have permissions: id-token: write?)", resp.Status)
	}
	var v struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.Value == "" {
		return "", errors.New("requesting a GitHub Actions ID token: the answer holds no token")
	}
	g.cached, g.exp = v.Value, jwtExpiry(v.Value)
	return g.cached, nil
}

// jwtExpiry reads "exp" of a JWT without verifying it (the server does);
// zero when there is none, so the token is requested again next time.
func jwtExpiry(tok string) time.Time {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}
	}
	var c struct {
		Exp int64 `json:"exp"`
	}
	if json.Unmarshal(b, &c) != nil || c.Exp == 0 {
		return time.Time{}
	}
	return time.Unix(c.Exp, 0)
}
