// Package client is a typed Go client of the mgo serve API (docs/api.md):
// deploy (JSON or the form of POST /deploy), get, list and wait for
// deployments, roll back, list clusters and their releases, diff and sync a
// cluster, and the dashboard's views (the overview, a cluster's live
// releases). Its bodies are the types of pkg/apitypes.
//
// Follow deploys with an idempotency key and, when the connection breaks
// or a gateway answers 502, 503 or 504, sends the same request again with
// the same key and follows the one deployment it names to its end.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mygitops/mgo/pkg/apitypes"
)

// MaxAnswer bounds the answers the client reads.
const MaxAnswer = 16 << 20

// Options configure a Client.
type Options struct {
	// HTTPClient sends the requests (default: one with a one-minute
	// timeout per request).
	HTTPClient *http.Client
	// Token returns the bearer token of each request (nil: none). It is
	// asked per request, so a short-lived ID token can be renewed.
	Token func(ctx context.Context) (string, error)
	// UserAgent is sent with every request (default "mgo-client").
	UserAgent string
}

// Client calls one mgo serve. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	http  *http.Client
	token func(ctx context.Context) (string, error)
	agent string
}

// New returns a client of the mgo serve at server (http or https URL).
func New(server string, opts Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(server, "/"))
	if err != nil {
		return nil, fmt.Errorf("server URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: want http(s)://host[:port]", server)
	}
	c := &Client{base: u, http: opts.HTTPClient, token: opts.Token, agent: opts.UserAgent}
	if c.http == nil {
		c.http = &http.Client{Timeout: time.Minute}
	}
	if c.agent == "" {
		c.agent = "mgo-client"
	}
	return c, nil
}

// Error is an answer that is not a success: its status and the API's
// error body (with the failed deployment, when there is one).
type Error struct {
	Method, Path string
	StatusCode   int
	Status       string
	Body         apitypes.Error
}

func (e *Error) Error() string {
	msg := e.Body.Error
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	if e.Body.Field != "" && !strings.Contains(msg, e.Body.Field) {
		msg = e.Body.Field + ": " + msg
	}
	return fmt.Sprintf("%s %s: %s: %s", e.Method, e.Path, e.Status, msg)
}

// Refused reports whether the server refused the request as it was (4xx):
// sending it again does not help.
func (e *Error) Refused() bool { return e.StatusCode >= 400 && e.StatusCode < 500 }

// Temporary reports whether the answer came from a gateway or a server
// that cannot take the request now (502, 503, 504): worth a retry.
func (e *Error) Temporary() bool {
	switch e.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// do sends one request and decodes a 2xx answer into out. A 424 of a
// sync is decoded into out too, and also returned as an *Error.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, contentType string, body []byte, out any) error {
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.agent)
	if c.token != nil {
		tok, err := c.token(ctx)
		if err != nil {
			return fmt.Errorf("token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 == 2 || (resp.StatusCode == http.StatusFailedDependency && strings.HasSuffix(path, "/sync")) {
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				return fmt.Errorf("%s %s: %s: the answer is not what the API defines: %w", method, path, resp.Status, err)
			}
		}
		if resp.StatusCode/100 == 2 {
			return nil
		}
	}
	e := &Error{Method: method, Path: path, StatusCode: resp.StatusCode, Status: resp.Status}
	if json.Unmarshal(b, &e.Body) != nil || e.Body.Error == "" {
		e.Body = apitypes.Error{Error: strings.TrimSpace(string(b))}
	}
	return e
}

func (c *Client) doJSON(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body []byte
	ctype := ""
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
		ctype = "application/json"
	}
	return c.do(ctx, method, path, query, ctype, body, out)
}

// Deploy sends a deploy request (POST /api/v1/deployments): without
// req.Wait the answer is the queued deployment.
func (c *Client) Deploy(ctx context.Context, req apitypes.DeployRequest) (*apitypes.Deployment, error) {
	var d apitypes.Deployment
	if err := c.doJSON(ctx, http.MethodPost, "/api/v1/deployments", nil, req, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// FormRequest is a deploy with the original mgo's form fields (POST
// /deploy); it answers when the rollout is done.
type FormRequest struct {
	Cluster, TriggerRepo, ImageRepo, ImageTag, Author string
	IdempotencyKey, SourceCommit                      string
	Restart                                           bool
}

// DeployForm deploys through POST /deploy and returns the finished
// deployment. A deployment that failed is an *Error whose Body names it.
func (c *Client) DeployForm(ctx context.Context, req FormRequest) (*apitypes.Deployment, error) {
	f := url.Values{"cluster": {req.Cluster}, "triggerRepo": {req.TriggerRepo}, "imageRepo": {req.ImageRepo}, "imageTag": {req.ImageTag}}
	for k, v := range map[string]string{"author": req.Author, "idempotencyKey": req.IdempotencyKey, "sourceCommit": req.SourceCommit} {
		if v != "" {
			f.Set(k, v)
		}
	}
	if req.Restart {
		f.Set("restart", "true")
	}
	var d apitypes.Deployment
	if err := c.do(ctx, http.MethodPost, "/deploy", nil, "application/x-www-form-urlencoded", []byte(f.Encode()), &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Deployment returns one deployment as it is now.
func (c *Client) Deployment(ctx context.Context, id string) (*apitypes.Deployment, error) {
	var d apitypes.Deployment
	if err := c.doJSON(ctx, http.MethodGet, "/api/v1/deployments/"+url.PathEscape(id), nil, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// WaitDeployment returns the deployment once it has ended (one request
// that the server answers then; give the Client's HTTP client a timeout
// long enough, or use Follow).
func (c *Client) WaitDeployment(ctx context.Context, id string) (*apitypes.Deployment, error) {
	var d apitypes.Deployment
	if err := c.doJSON(ctx, http.MethodGet, "/api/v1/deployments/"+url.PathEscape(id), url.Values{"wait": {"true"}}, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Deployments lists the newest deployments the token may see (limit 0:
// the server's default).
func (c *Client) Deployments(ctx context.Context, limit int) ([]apitypes.Deployment, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var l apitypes.DeploymentList
	if err := c.doJSON(ctx, http.MethodGet, "/api/v1/deployments", q, nil, &l); err != nil {
		return nil, err
	}
	return l.Deployments, nil
}

// Rollback reverts a deployment's commit as a new deployment.
func (c *Client) Rollback(ctx context.Context, id string, req apitypes.RollbackRequest) (*apitypes.Deployment, error) {
	var d apitypes.Deployment
	if err := c.doJSON(ctx, http.MethodPost, "/api/v1/deployments/"+url.PathEscape(id)+"/rollback", nil, req, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Clusters lists the served clusters the token may see.
func (c *Client) Clusters(ctx context.Context) ([]apitypes.Cluster, error) {
	var l apitypes.ClusterList
	if err := c.doJSON(ctx, http.MethodGet, "/api/v1/clusters", nil, nil, &l); err != nil {
		return nil, err
	}
	return l.Clusters, nil
}

// Releases returns what the last sync of the cluster did per release.
func (c *Client) Releases(ctx context.Context, cluster string) (*apitypes.Releases, error) {
	var r apitypes.Releases
	if err := c.doJSON(ctx, http.MethodGet, "/api/v1/clusters/"+url.PathEscape(cluster)+"/releases", nil, nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Diff returns the live diff of the cluster against the repo.
func (c *Client) Diff(ctx context.Context, cluster string) (*apitypes.ClusterDiff, error) {
	var d apitypes.ClusterDiff
	if err := c.doJSON(ctx, http.MethodGet, "/api/v1/clusters/"+url.PathEscape(cluster)+"/diff", nil, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Overview returns the dashboard's summary of every cluster the token may
// see: last sync, drift, releases by health, deploys in the last 24 hours.
func (c *Client) Overview(ctx context.Context) (*apitypes.Overview, error) {
	var o apitypes.Overview
	if err := c.doJSON(ctx, http.MethodGet, "/api/v1/overview", nil, nil, &o); err != nil {
		return nil, err
	}
	return &o, nil
}

// Live returns the releases of the repo at the head for the cluster with
// what the cluster runs: Helm revision, kstatus of the objects, health
// and the commit that last changed each values file (read at most a few
// seconds before).
func (c *Client) Live(ctx context.Context, cluster string) (*apitypes.LiveCluster, error) {
	var l apitypes.LiveCluster
	if err := c.doJSON(ctx, http.MethodGet, "/api/v1/clusters/"+url.PathEscape(cluster)+"/live", nil, nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// Sync syncs the cluster now (full: compare every release with the live
// cluster). When a release failed, the result comes with an *Error of
// status 424.
func (c *Client) Sync(ctx context.Context, cluster string, full bool) (*apitypes.SyncResult, error) {
	q := url.Values{}
	if full {
		q.Set("full", "true")
	}
	var r apitypes.SyncResult
	err := c.doJSON(ctx, http.MethodPost, "/api/v1/clusters/"+url.PathEscape(cluster)+"/sync", q, nil, &r)
	var e *Error
	if err != nil && !(errors.As(err, &e) && e.StatusCode == http.StatusFailedDependency) {
		return nil, err
	}
	return &r, err
}
