package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mygitops/mgo/internal/auth"
	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/gitrepo"
	"github.com/mygitops/mgo/internal/gittest"
)

// Tokens of the tests.
const (
	adminToken   = "mgo_admin_token"
	prodToken    = "mgo_prod_token"    // clusters prod*, trigger repos of team b
	stagingToken = "mgo_staging_token" // cluster staging
	hubToken     = "mgo_hub_token"     // limited to the Docker Hub route
	metricsToken = "mgo_metrics_token" // limited to /metrics
)

// fixture is the API in front of a real deploy service on a real clone.
// Cluster prod syncs manually, so deploys finish without a cluster;
// cluster secret is served too, and only the admin may see it.
type fixture struct {
	url    string
	remote *gittest.Remote
	store  *deploy.BoltStore
	reg    *prometheus.Registry
	m      *deploy.Metrics
}

func newFixture(t *testing.T, mods ...func(*Config)) *fixture {
	t.Helper()
	return newFixtureFiles(t, nil, mods...)
}

// newFixtureFiles is newFixture with the gitops repo's files changed by
// edit first.
func newFixtureFiles(t *testing.T, edit func(files map[string]string), mods ...func(*Config)) *fixture {
	t.Helper()
	files := gittest.Skeleton()
	files["mygitops.yaml"] = `helm:
  repositories:
    - name: acme
      url: https://charts.acme.io
clusters:
  prod:
    sync: manual
    allowedImages: ["registry.acme.io/acme/*", "docker.io/acme/*"]
  secret:
    sync: manual
`
	files["installations/secret/app-values.yaml"] = files["installations/prod/app-values.yaml"]
	if edit != nil {
		edit(files)
	}
	f := &fixture{remote: gittest.NewRemote(t, files)}
	opts := gitrepo.DefaultOptions()
	opts.URL = "file://" + f.remote.Dir
	opts.Dir = filepath.Join(t.TempDir(), "clone")
	git, err := gitrepo.New(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.store, err = deploy.OpenStore(filepath.Join(t.TempDir(), "deployments.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.store.Close() })
	f.reg = prometheus.NewRegistry()
	f.m = deploy.NewMetrics(f.reg)
	svc, err := deploy.New(deploy.Config{Git: git, Store: f.store, SnapshotDir: filepath.Join(t.TempDir(), "snap"), Metrics: f.m,
		Engines: map[string]deploy.ClusterSyncer{"prod": nil, "secret": nil}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	tokens, err := auth.NewTokens([]auth.TokenConfig{
		{Name: "admin", SHA256: auth.Hash(adminToken), Clusters: []string{"*"}, TriggerRepos: []string{"*"}},
		{Name: "prod-ci", SHA256: auth.Hash(prodToken), Clusters: []string{"prod*"}, TriggerRepos: []string{"gitlab.com/team-b/*", "gitlab.com/acme/app"}},
		{Name: "staging-ci", SHA256: auth.Hash(stagingToken), Clusters: []string{"staging"}, TriggerRepos: []string{"*"}},
		{Name: "hub", SHA256: auth.Hash(hubToken), Clusters: []string{"prod"}, TriggerRepos: []string{"gitlab.com/acme/*"}, Routes: []string{auth.RouteDockerHub}},
		{Name: "prometheus", SHA256: auth.Hash(metricsToken), Clusters: []string{"*"}, TriggerRepos: []string{"*"}, Routes: []string{auth.RouteMetrics}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Service: svc, Tokens: tokens, Gatherer: f.reg}
	for _, mod := range mods {
		mod(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// call sends a request and decodes a JSON answer into out (when not nil);
// it returns the status code and the raw body.
func (f *fixture) call(t *testing.T, method, path, token, contentType, body string, out any) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, b)
		}
	}
	return resp.StatusCode, string(b)
}

func (f *fixture) postJSON(t *testing.T, path, token string, body map[string]any, out any) (int, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	return f.call(t, http.MethodPost, path, token, "application/json", string(b), out)
}

type answer struct {
	deploy.Deployment
	Err   string `json:"error"`
	Field string `json:"field"`
}

func deployBody(tag string) map[string]any {
	return map[string]any{"cluster": "prod", "triggerRepo": "gitlab.com/acme/app", "imageRepo": "registry.acme.io/acme/app",
		"tag": tag, "author": "alice@acme.io", "wait": true}
}

func TestDeployToManualClusterAnswersNotSynced(t *testing.T) {
	f := newFixture(t)
	var a answer
	code, body := f.postJSON(t, "/api/v1/deployments", prodToken, deployBody("1.7.0"), &a)
	if code != http.StatusOK || a.Status != deploy.Succeeded || a.Synced == nil || *a.Synced || !strings.Contains(a.Message, "syncs manually") {
		t.Fatalf("deploy to a manual cluster: %d %s", code, body)
	}
	if !strings.Contains(body, `"synced": false`) {
		t.Errorf("answer lacks synced: false:\n%s", body)
	}
	if got := f.remote.File(t, "installations/prod/app-values.yaml"); !strings.Contains(got, `tag: "1.7.0"`) {
		t.Errorf("not pushed:\n%s", got)
	}
}

func TestRefusals(t *testing.T) {
	f := newFixture(t)
	seed := f.remote.Head(t)
	var a answer

	// Unicode format characters in the author: 400 naming the field.
	for _, author := range []string{"Mallory \u202eevil", "a\u2028b", "x\u2029y", "zero\u200bwidth"} {
		b := deployBody("1.8.0")
		b["author"] = author
		if code, body := f.postJSON(t, "/api/v1/deployments", prodToken, b, &a); code != http.StatusBadRequest || a.Field != "author" {
			t.Errorf("author %q: %d %s, want 400 naming author", author, code, body)
		}
	}
	// An image repository outside the cluster's allowedImages: 403 naming them.
	b := deployBody("1.8.0")
	b["imageRepo"] = "evil.example.com/acme/app"
	if code, body := f.postJSON(t, "/api/v1/deployments", prodToken, b, &a); code != http.StatusForbidden || !strings.Contains(a.Err, "registry.acme.io/acme/*") {
		t.Errorf("image outside allowedImages: %d %s", code, body)
	}
	if h := f.remote.Head(t); h != seed {
		t.Errorf("a refused request moved the head")
	}
}

func TestNotFoundNamesOnlyWhatTheCallerMaySee(t *testing.T) {
	f := newFixture(t)
	var a answer
	// A trigger repo in the token's scope that no values file lists: the
	// answer says what was searched, not which other trigger repos exist.
	b := deployBody("1.0.0")
	b["triggerRepo"] = "gitlab.com/team-b/web"
	code, body := f.postJSON(t, "/api/v1/deployments", prodToken, b, &a)
	if code != http.StatusNotFound || !strings.Contains(a.Err, "searched") {
		t.Fatalf("unlisted trigger repo: %d %s", code, body)
	}
	if !strings.Contains(a.Err, "gitlab.com/acme/app") {
		t.Errorf("the token may deploy gitlab.com/acme/app, but the answer does not list it: %s", a.Err)
	}
	// An unserved cluster in the scope: the served clusters outside the
	// scope are not named.
	b = deployBody("1.0.0")
	b["cluster"] = "prod-eu"
	code, body = f.postJSON(t, "/api/v1/deployments", prodToken, b, &a)
	if code != http.StatusNotFound || strings.Contains(body, "secret") || !strings.Contains(a.Err, "prod") {
		t.Errorf("unserved cluster: %d %s, want 404 naming prod and not secret", code, body)
	}
	code, body = f.call(t, http.MethodGet, "/api/v1/clusters/prod-x/releases", prodToken, "", "", &a)
	if code != http.StatusNotFound || strings.Contains(body, "secret") {
		t.Errorf("releases of an unserved cluster: %d %s", code, body)
	}
	// The admin sees every cluster.
	b["cluster"] = "nowhere"
	if code, body = f.postJSON(t, "/api/v1/deployments", adminToken, b, &a); code != http.StatusNotFound || !strings.Contains(a.Err, "prod, secret") {
		t.Errorf("admin: %d %s", code, body)
	}
}

func TestNotFoundHidesTriggerReposOutsideScope(t *testing.T) {
	tokens, err := auth.NewTokens([]auth.TokenConfig{
		{Name: "team-b", SHA256: auth.Hash("team-b-token"), Clusters: []string{"prod"}, TriggerRepos: []string{"gitlab.com/team-b/*"}}})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tokens.Authenticate("team-b-token")
	w := httptest.NewRecorder()
	writeErr(w, &deploy.NotFoundError{What: "trigger repo", Name: "gitlab.com/team-b/web", Cluster: "prod",
		Where: "installations/prod/*-values.yaml (2 files)", Known: []string{"gitlab.com/acme/app", "gitlab.com/team-b/api"}}, p)
	body := w.Body.String()
	if w.Code != http.StatusNotFound || strings.Contains(body, "acme") || !strings.Contains(body, "gitlab.com/team-b/api") || !strings.Contains(body, "searched") {
		t.Errorf("%d %s", w.Code, body)
	}
}

func TestDeploymentListFiltersBeforeLimit(t *testing.T) {
	f := newFixture(t)
	t0 := time.Now().Add(-time.Hour)
	for i, cluster := range append([]string{"staging"}, strings.Split(strings.Repeat("prod ", 30), " ")[:30]...) {
		d := &deploy.Deployment{ID: t0.Add(time.Duration(i)*time.Second).UTC().Format("20060102T150405Z") + "-0000000" + string(rune('a'+i%26)),
			Request: deploy.Request{Cluster: cluster}, Status: deploy.Succeeded}
		if _, err := f.store.Create(d); err != nil {
			t.Fatal(err)
		}
	}
	var list struct {
		Deployments []deploy.Deployment `json:"deployments"`
	}
	code, body := f.call(t, http.MethodGet, "/api/v1/deployments?limit=10", stagingToken, "", "", &list)
	if code != http.StatusOK || len(list.Deployments) != 1 || list.Deployments[0].Request.Cluster != "staging" {
		t.Errorf("staging token: %d %s, want its one deployment", code, body)
	}
	if code, _ := f.call(t, http.MethodGet, "/api/v1/deployments?limit=10", adminToken, "", "", &list); code != http.StatusOK || len(list.Deployments) != 10 {
		t.Errorf("admin: %d, %d deployments", code, len(list.Deployments))
	}
}

func TestMetricsScope(t *testing.T) {
	f := newFixture(t)
	f.m.Syncs.WithLabelValues("prod", "succeeded").Observe(1)
	f.m.Syncs.WithLabelValues("staging", "succeeded").Observe(1)
	f.m.Drift.WithLabelValues("prod").Set(3)
	f.m.Deploys.WithLabelValues("succeeded").Inc()

	code, body := f.call(t, http.MethodGet, "/metrics", stagingToken, "", "", nil)
	if code != http.StatusOK || !strings.Contains(body, `cluster="staging"`) || !strings.Contains(body, "mgo_deploys_total") {
		t.Fatalf("staging token: %d\n%s", code, body)
	}
	if strings.Contains(body, `cluster="prod"`) {
		t.Errorf("a staging token sees prod series:\n%s", body)
	}
	for _, tok := range []string{adminToken, metricsToken} {
		if code, body := f.call(t, http.MethodGet, "/metrics", tok, "", "", nil); code != http.StatusOK || !strings.Contains(body, `cluster="prod"`) || !strings.Contains(body, `cluster="staging"`) {
			t.Errorf("token %s: %d, want every cluster's series", tok, code)
		}
	}
	if code, _ := f.call(t, http.MethodGet, "/metrics", "", "", "", nil); code != http.StatusUnauthorized {
		t.Errorf("no token: %d", code)
	}
	if code, _ := f.call(t, http.MethodGet, "/metrics", hubToken, "", "", nil); code != http.StatusForbidden {
		t.Errorf("Docker Hub token: %d, want 403", code)
	}
	if code, _ := f.call(t, http.MethodGet, "/api/v1/clusters", metricsToken, "", "", nil); code != http.StatusForbidden {
		t.Errorf("metrics token on the API: %d, want 403", code)
	}
}

func TestDockerHubURLToken(t *testing.T) {
	f := newFixture(t)
	hook := `{"push_data": {"tag": "6.0.0", "pusher": "hub-user"}, "repository": {"repo_name": "acme/app"}}`
	path := "/deploy/dockerhub?cluster=prod&triggerRepo=gitlab.com/acme/app&token="
	var a answer
	// A token with the full scope is refused in the URL, whatever it may do.
	code, body := f.call(t, http.MethodPost, path+url.QueryEscape(adminToken), "", "application/json", hook, &a)
	if code != http.StatusUnauthorized || !strings.Contains(a.Err, "routes: [dockerhub]") {
		t.Errorf("admin token in the URL: %d %s, want 401 saying to use a dockerhub-only token", code, body)
	}
	if strings.Contains(body, adminToken) {
		t.Errorf("the answer repeats the token")
	}
	code, body = f.call(t, http.MethodPost, path+hubToken, "", "application/json", hook, &a)
	if code != http.StatusOK || a.Status != deploy.Succeeded {
		t.Fatalf("dockerhub-only token: %d %s", code, body)
	}
	if got := f.remote.File(t, "installations/prod/app-values.yaml"); !strings.Contains(got, "docker.io/acme/app") {
		t.Errorf("not deployed:\n%s", got)
	}
	// That token can do nothing else, even in the header.
	if code, _ := f.postJSON(t, "/api/v1/deployments", hubToken, deployBody("1.0.0"), nil); code != http.StatusForbidden {
		t.Errorf("dockerhub-only token on the JSON API: %d, want 403", code)
	}
	if code, _ := f.call(t, http.MethodGet, "/api/v1/deployments", hubToken, "", "", nil); code != http.StatusForbidden {
		t.Errorf("dockerhub-only token listing deployments: %d, want 403", code)
	}
}
