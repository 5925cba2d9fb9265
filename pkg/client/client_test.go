package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mygitops/mgo/internal/api"
	"github.com/mygitops/mgo/internal/api/apitest"
	"github.com/mygitops/mgo/internal/auth"
	"github.com/mygitops/mgo/internal/dashboard"
	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/gitrepo"
	"github.com/mygitops/mgo/internal/gittest"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/repo"
	"github.com/mygitops/mgo/pkg/apitypes"
	"github.com/mygitops/mgo/pkg/client"
)

const token = "mgo_client_test_token"

// server is the API of mgo serve on a real deploy service, clone and git
// remote; cluster prod syncs manually, so deploys end without a cluster.
type server struct {
	remote *gittest.Remote
	store  *deploy.BoltStore
	h      http.Handler
}

func newServer(t *testing.T) *server {
	t.Helper()
	return newServerWith(t, nil)
}

// newServerWith is newServer with engine as the engine of cluster prod
// (nil: none).
func newServerWith(t *testing.T, engine deploy.ClusterSyncer) *server {
	t.Helper()
	files := gittest.Skeleton()
	files["mygitops.yaml"] = "helm:\n  repositories:\n    - name: acme\n      url: https://charts.acme.io\nclusters:\n  prod:\n    sync: manual\n"
	s := &server{remote: gittest.NewRemote(t, files)}
	opts := gitrepo.DefaultOptions()
	opts.URL = "file://" + s.remote.Dir
	opts.Dir = filepath.Join(t.TempDir(), "clone")
	git, err := gitrepo.New(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.store, err = deploy.OpenStore(filepath.Join(t.TempDir(), "deployments.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.store.Close() })
	svc, err := deploy.New(deploy.Config{Git: git, Store: s.store, SnapshotDir: filepath.Join(t.TempDir(), "snap"),
		Engines: map[string]deploy.ClusterSyncer{"prod": engine}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	tokens, err := auth.NewTokens([]auth.TokenConfig{{Name: "ci", SHA256: auth.Hash(token), Clusters: []string{"*"}, TriggerRepos: []string{"*"}}})
	if err != nil {
		t.Fatal(err)
	}
	dash, err := dashboard.New(svc, dashboard.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.h, err = api.New(api.Config{Service: svc, Dashboard: dash, Tokens: tokens}); err != nil {
		t.Fatal(err)
	}
	return s
}

// start serves h and returns a client of it whose answers are held to
// the OpenAPI document.
func start(t *testing.T, h http.Handler) *client.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, client.Options{
		HTTPClient: &http.Client{Transport: apitest.Transport(t, nil), Timeout: time.Minute},
		Token:      func(context.Context) (string, error) { return token, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func request(tag string) apitypes.DeployRequest {
	return apitypes.DeployRequest{Cluster: "prod", TriggerRepo: "gitlab.com/acme/app", ImageRepo: "registry.acme.io/acme/app",
		Tag: tag, Author: "Alice <alice@acme.io>"}
}

var fast = client.FollowOptions{PollInterval: 20 * time.Millisecond, Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}

// TestFollowRetriesABrokenConnectionWithTheSameKey: the first deploy
// request reaches the service, which records and runs it, but its
// connection is closed before the answer; the client sends it again with
// the same idempotency key and follows the one deployment to its end.
func TestFollowRetriesABrokenConnectionWithTheSameKey(t *testing.T) {
	s := newServer(t)
	before := s.remote.Count(t)
	var posts atomic.Int32
	var mu sync.Mutex
	var keys []string
	drop := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/api/v1/deployments" {
			b, _ := io.ReadAll(r.Body)
			var sent apitypes.DeployRequest
			_ = json.Unmarshal(b, &sent)
			mu.Lock()
			keys = append(keys, sent.IdempotencyKey)
			mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		if r.Method == http.MethodPost && r.URL.Path == "/api/v1/deployments" && posts.Add(1) == 1 {
			s.h.ServeHTTP(httptest.NewRecorder(), r) // the deployment is recorded and goes on
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			conn.Close() // and the answer is lost
			return
		}
		s.h.ServeHTTP(w, r)
	})
	c := start(t, drop)
	var retries int
	o := fast
	o.OnRetry = func(error, time.Duration) { retries++ }
	d, err := c.Follow(t.Context(), request("2.0.0"), o)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != apitypes.StatusSucceeded || !d.Changed || posts.Load() != 2 || retries != 1 {
		t.Fatalf("deployment %+v after %d posts and %d retries", d, posts.Load(), retries)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] || d.Request.IdempotencyKey != keys[0] {
		t.Errorf("retried with key %q, first sent %q", d.Request.IdempotencyKey, keys)
	}
	all, err := c.Deployments(t.Context(), 10)
	if err != nil || len(all) != 1 || all[0].ID != d.ID {
		t.Fatalf("deployments after a retried request: %+v %v (want one)", all, err)
	}
	if n := s.remote.Count(t); n != before+1 {
		t.Errorf("%d commits pushed, want 1", n-before)
	}
}

// TestFollowRetriesGatewayErrors: a load balancer answering 503 and 502
// before the server is reached; then the deploy goes through once.
func TestFollowRetriesGatewayErrors(t *testing.T) {
	s := newServer(t)
	var posts atomic.Int32
	gw := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			switch posts.Add(1) {
			case 1:
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				w.Write([]byte(`{"error":"no healthy upstream"}`))
				return
			case 2:
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadGateway)
				w.Write([]byte(`{"error":"upstream reset"}`))
				return
			}
		}
		s.h.ServeHTTP(w, r)
	})
	c := start(t, gw)
	d, err := c.Follow(t.Context(), request("2.1.0"), fast)
	if err != nil || d.Status != apitypes.StatusSucceeded || posts.Load() != 3 {
		t.Fatalf("%+v %v after %d posts", d, err, posts.Load())
	}
}

// TestFollowGivesUp: a server that never answers but 503 is tried
// Attempts times; a refusal (4xx) is not retried.
func TestFollowGivesUp(t *testing.T) {
	var posts atomic.Int32
	c := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"error":"service stopping"}`))
	}))
	o := fast
	o.Attempts = 3
	_, err := c.Follow(t.Context(), request("1"), o)
	var e *client.Error
	if !errors.As(err, &e) || e.StatusCode != 503 || posts.Load() != 3 {
		t.Fatalf("%v after %d posts, want 503 after 3", err, posts.Load())
	}

	s := newServer(t)
	c = start(t, s.h)
	req := request("1")
	req.Cluster = "nowhere"
	_, err = c.Follow(t.Context(), req, o)
	if !errors.As(err, &e) || e.StatusCode != 404 || !e.Refused() || !strings.Contains(err.Error(), "nowhere") {
		t.Fatalf("unknown cluster: %v", err)
	}
}

// TestClientCalls runs every call of the client against the real API.
func TestClientCalls(t *testing.T) {
	s := newServer(t)
	c := start(t, s.h)
	ctx := t.Context()
	req := request("3.0.0")
	req.Wait = true
	d, err := c.Deploy(ctx, req)
	if err != nil || d.Status != apitypes.StatusSucceeded || d.Synced == nil || *d.Synced {
		t.Fatalf("deploy: %+v %v", d, err)
	}
	f, err := c.DeployForm(ctx, client.FormRequest{Cluster: "prod", TriggerRepo: "gitlab.com/acme/app", ImageRepo: "registry.acme.io/acme/app", ImageTag: "3.0.1"})
	if err != nil || f.Status != apitypes.StatusSucceeded || !f.Changed {
		t.Fatalf("form deploy: %+v %v", f, err)
	}
	got, err := c.Deployment(ctx, d.ID)
	if err != nil || got.ID != d.ID || got.Request.Ref() != "registry.acme.io/acme/app:3.0.0" {
		t.Fatalf("get: %+v %v", got, err)
	}
	if got, err = c.WaitDeployment(ctx, f.ID); err != nil || !got.Status.Terminal() {
		t.Fatalf("wait: %+v %v", got, err)
	}
	rb, err := c.Rollback(ctx, f.ID, apitypes.RollbackRequest{Author: "bob@acme.io"})
	if err != nil || rb.Kind != apitypes.KindRollback || rb.RollbackOf != f.ID {
		t.Fatalf("rollback: %+v %v", rb, err)
	}
	if rb, err = c.FollowDeployment(ctx, rb.ID, fast); err != nil || rb.Status != apitypes.StatusSucceeded {
		t.Fatalf("rollback followed: %+v %v", rb, err)
	}
	if s.remote.File(t, "installations/prod/app-values.yaml") == "" || !strings.Contains(s.remote.File(t, "installations/prod/app-values.yaml"), `"3.0.0"`) {
		t.Errorf("the rollback did not restore 3.0.0")
	}
	list, err := c.Deployments(ctx, 2)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %d %v", len(list), err)
	}
	cl, err := c.Clusters(ctx)
	if err != nil || len(cl) != 1 || cl[0].Name != "prod" {
		t.Fatalf("clusters: %+v %v", cl, err)
	}
	if rel, err := c.Releases(ctx, "prod"); err != nil || rel.Cluster != "prod" {
		t.Fatalf("releases: %+v %v", rel, err)
	}
	// Diff and sync need a cluster: this one has no engine, so the
	// answers are errors, decoded as such.
	if _, err := c.Diff(ctx, "nowhere"); !isStatus(err, 404) {
		t.Errorf("diff of an unknown cluster: %v", err)
	}
	if _, err := c.Sync(ctx, "nowhere", true); !isStatus(err, 404) {
		t.Errorf("sync of an unknown cluster: %v", err)
	}
}

func isStatus(err error, code int) bool {
	var e *client.Error
	return errors.As(err, &e) && e.StatusCode == code
}

// liveEngine is a cluster that runs every release at revision 3, ready;
// it is never synced (cluster prod syncs manually).
type liveEngine struct{}

var _ deploy.ClusterSyncer = liveEngine{}

var errNoSync = errors.New("this test's cluster is only read")

func (liveEngine) Sync(context.Context, *repo.Repo, reconcile.Options) (*reconcile.Result, error) {
	return nil, errNoSync
}

func (liveEngine) Diff(context.Context, *repo.Repo, reconcile.Options) (*reconcile.DiffResult, error) {
	return nil, errNoSync
}

func (liveEngine) Restart(context.Context, string, string, time.Duration) ([]reconcile.ObjectResult, error) {
	return nil, errNoSync
}

func (liveEngine) Live(_ context.Context, namespace, name string) (reconcile.LiveRelease, error) {
	return reconcile.LiveRelease{Name: name, Namespace: namespace, Installed: true, Revision: 3, HelmStatus: "deployed",
		ChartVersion: "1.4.0", Updated: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC),
		Objects: []reconcile.ObjectResult{{Subject: "Deployment/" + namespace + "/" + name, Status: "Current"}}}, nil
}

// TestDashboardViews reads the overview and a cluster's live releases
// after a deploy: the service's records, the repo at the head and its
// history, through the dashboard's read model.
func TestDashboardViews(t *testing.T) {
	s := newServerWith(t, liveEngine{})
	c := start(t, s.h)
	ctx := t.Context()
	req := request("3.1.0")
	req.Wait = true
	d, err := c.Deploy(ctx, req)
	if err != nil || d.Status != apitypes.StatusSucceeded {
		t.Fatalf("deploy: %+v %v", d, err)
	}
	lc, err := c.Live(ctx, "prod")
	if err != nil {
		t.Fatal(err)
	}
	if lc.Cluster != "prod" || lc.Head != d.Commit || lc.Read.IsZero() || len(lc.Releases) != 1 ||
		lc.Counts != (apitypes.ReleaseCounts{Total: 1, Healthy: 1}) {
		t.Fatalf("live: %+v", lc)
	}
	rel := lc.Releases[0]
	if rel.File != "installations/prod/app-values.yaml" || rel.Chart != "acme/app" || rel.Version != "1.4.0" || !rel.Installed ||
		rel.Revision != 3 || rel.Health != apitypes.HealthHealthy || rel.Images["gitlab.com/acme/app"] != "registry.acme.io/acme/app:3.1.0" ||
		len(rel.Objects) != 1 || rel.Objects[0].Status != apitypes.ObjectCurrent {
		t.Errorf("release: %+v", rel)
	}
	if ch := rel.LastChange; ch == nil || ch.Commit != d.Commit || ch.Author != "Alice" || ch.Email != "alice@acme.io" {
		t.Errorf("last change: %+v, want the deploy's commit %s by Alice", ch, d.Commit)
	}
	ov, err := c.Overview(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ov.Clusters) != 1 || ov.Clusters[0].Name != "prod" || ov.Clusters[0].Deploys24h != 1 || ov.Clusters[0].FailedDeploys24h != 0 ||
		!ov.Clusters[0].Manual || ov.Clusters[0].Releases != lc.Counts || ov.Clusters[0].LiveError != "" {
		t.Errorf("overview: %+v", ov)
	}
	if _, err := c.Live(ctx, "nowhere"); !isStatus(err, 404) {
		t.Errorf("live of an unknown cluster: %v", err)
	}
}
