package api_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mygitops/mgo/internal/api"
	"github.com/mygitops/mgo/internal/api/apitest"
	"github.com/mygitops/mgo/internal/auth"
	"github.com/mygitops/mgo/internal/dashboard"
	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/repo"
	"github.com/mygitops/mgo/pkg/apitypes"
)

const (
	allToken  = "mgo_all"
	prodToken = "mgo_prod" // cluster prod, trigger repo gitlab.com/acme/app
	hubToken  = "mgo_hub"  // only POST /deploy/dockerhub
	hookKey   = "hook-secret"
)

// freezePeriod is a weekend deny window, on from Friday 21:00 UTC to
// Monday 08:00 UTC.
func freezePeriod() repo.FreezePeriod {
	w := repo.FreezeWindow{Name: "weekend", Kind: repo.FreezeDeny, Schedule: "0 22 * * 5", Duration: 59 * time.Hour, TimeZone: "Europe/Berlin"}
	return repo.FreezePeriod{Window: &w, From: time.Date(2026, 11, 27, 21, 0, 0, 0, time.UTC), Until: time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)}
}

// newFake returns a fake service with two clusters, prod and secret, a
// finished deployment to each, and sync and diff results.
func newFake() *fakeDeployer {
	synced := true
	objs := []reconcile.ObjectResult{{Subject: "Deployment/app/app", Action: "configured", Status: "Current"}}
	d1 := &deploy.Deployment{ID: "d1", Kind: deploy.KindDeploy, Status: deploy.Succeeded, Changed: true, Commit: "3c1f00",
		Files: []string{"installations/prod/app-values.yaml"}, Synced: &synced,
		Request: deploy.Request{Cluster: "prod", TriggerRepo: "gitlab.com/acme/app", ImageRepo: "registry.acme.io/acme/app", Tag: "1.4.2",
			Identity: deploy.Identity{Issuer: "https://gitlab.com", Subject: "project_path:acme/app"}},
		Releases: []deploy.ReleaseOutcome{{File: "installations/prod/app-values.yaml", Name: "app", Namespace: "app",
			Action: reconcile.Upgraded, Revision: 7, Objects: objs}},
		Times: deploy.Times{Queued: fakeTime, Finished: fakeTime.Add(4e9)}}
	d1.Seconds = d1.Times.Durations()
	d2 := &deploy.Deployment{ID: "d2", Kind: deploy.KindDeploy, Status: deploy.Succeeded,
		Request: deploy.Request{Cluster: "secret", TriggerRepo: "gitlab.com/acme/app", ImageRepo: "registry.acme.io/acme/app", Tag: "1"},
		Times:   deploy.Times{Queued: fakeTime}}
	res := &reconcile.Result{Cluster: "prod", Duration: 3e9, Requests: map[string]int{"patch": 2},
		Releases: []reconcile.ReleaseResult{{File: "installations/prod/app-values.yaml", Name: "app", Namespace: "app", Chart: "acme/hello",
			ChartVersion: "0.1.0", Action: reconcile.Upgraded, Revision: 7, Objects: objs}},
		Raw: []reconcile.ObjectResult{{Subject: "Namespace//app", Action: "unchanged"}}}
	return &fakeDeployer{
		Deployments: map[string]*deploy.Deployment{"d1": d1, "d2": d2},
		Status: map[string]deploy.ClusterStatus{
			"prod":   {Name: "prod", Head: "3c1f00", LastSync: fakeTime, Releases: 1, LastResult: res},
			"secret": {Name: "secret", Manual: true, Pending: "3c1f00"},
		},
		SyncRes: res,
		DiffRes: &reconcile.DiffResult{Cluster: "prod", Releases: []reconcile.ReleaseDiff{{File: "installations/prod/app-values.yaml",
			Name: "app", Namespace: "app", Objects: []reconcile.ObjectDiff{{Subject: "Deployment/app/app", Action: "configured", Diff: "-a\n+b\n"}}}}},
	}
}

// serve runs the API in front of fake; its client validates every answer
// against the OpenAPI document.
func serve(t *testing.T, fake *fakeDeployer, ready error) (string, *http.Client) {
	return serveWith(t, fake, ready, nil)
}

func serveWith(t *testing.T, fake *fakeDeployer, ready error, refresher api.Refresher) (string, *http.Client) {
	t.Helper()
	tokens, err := auth.NewTokens([]auth.TokenConfig{
		{Name: "admin", SHA256: auth.Hash(allToken), Clusters: []string{"*"}, TriggerRepos: []string{"*"}},
		{Name: "prod-ci", SHA256: auth.Hash(prodToken), Clusters: []string{"prod"}, TriggerRepos: []string{"gitlab.com/acme/app"}},
		{Name: "hub", SHA256: auth.Hash(hubToken), Clusters: []string{"prod"}, TriggerRepos: []string{"gitlab.com/acme/*"}, Routes: []string{auth.RouteDockerHub}},
	})
	if err != nil {
		t.Fatal(err)
	}
	dash, err := dashboard.New(fake, dashboard.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{Service: fake, Dashboard: dash, Tokens: tokens, Refresher: refresher, Gatherer: prometheus.NewRegistry(),
		GitHubSecret: []byte(hookKey), GitLabToken: []byte(hookKey),
		Ready: func() (map[string]any, error) { return map[string]any{"lastFetch": fakeTime}, ready }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, &http.Client{Transport: apitest.Transport(t, nil)}
}

const deployJSON = `{"cluster":"prod","triggerRepo":"gitlab.com/acme/app","imageRepo":"registry.acme.io/acme/app","tag":"1.4.3"%s}`

func failed(stage deploy.Stage, kind deploy.Kind) *deploy.Deployment {
	return &deploy.Deployment{ID: "d9", Kind: kind, Status: deploy.Failed, Stage: stage, Error: string(stage) + " failed",
		Request: deploy.Request{Cluster: "prod", TriggerRepo: "gitlab.com/acme/app", ImageRepo: "registry.acme.io/acme/app", Tag: "1.4.3"},
		Times:   deploy.Times{Queued: fakeTime}}
}

func sign(body string) string {
	mac := hmac.New(sha256.New, []byte(hookKey))
	mac.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// TestStatusCodes sends a request per status code of docs/api.md (and per
// endpoint) to the API in front of a fake service, and holds every answer
// to the OpenAPI document.
func TestStatusCodes(t *testing.T) {
	tests := []struct {
		name         string
		fake         func(*fakeDeployer)
		ready        error
		method, path string
		token        string
		ctype, body  string
		header       map[string]string
		want         int
		wantField    string // the field a 400 names
		wantIn       string // a part of the body
		refreshes    int32  // triggers of the refresher
	}{
		{name: "healthz", method: "GET", path: "/healthz", want: 200},
		{name: "ready", method: "GET", path: "/readyz", want: 200, wantIn: "lastFetch"},
		{name: "not ready", ready: errors.New("shutting down"), method: "GET", path: "/readyz", want: 503, wantIn: "shutting down"},
		{name: "openapi document", method: "GET", path: "/api/v1/openapi.json", want: 200, wantIn: `"openapi"`},
		{name: "metrics", method: "GET", path: "/metrics", token: allToken, want: 200},
		{name: "queued", method: "POST", path: "/api/v1/deployments", token: prodToken, body: fmt.Sprintf(deployJSON, ""), want: 202, wantIn: `"queued"`},
		{name: "waited and succeeded", method: "POST", path: "/api/v1/deployments", token: prodToken, body: fmt.Sprintf(deployJSON, `,"wait":true`), want: 200, wantIn: `"succeeded"`},
		{name: "form deploy", method: "POST", path: "/deploy", token: prodToken, ctype: "application/x-www-form-urlencoded",
			body: "cluster=prod&triggerRepo=gitlab.com/acme/app&imageRepo=registry.acme.io/acme/app&imageTag=1.4.3", want: 200},
		{name: "docker hub with a token in the URL", method: "POST", path: "/deploy/dockerhub?triggerRepo=gitlab.com/acme/app&cluster=prod&token=" + hubToken,
			body: `{"push_data":{"tag":"1.4.3","pusher":"alice"},"repository":{"repo_name":"acme/app"}}`, want: 200},
		{name: "bad JSON", method: "POST", path: "/api/v1/deployments", token: prodToken, body: `{"cluster":`, want: 400},
		{name: "unknown field", method: "POST", path: "/api/v1/deployments", token: prodToken, body: fmt.Sprintf(deployJSON, `,"tagName":"x"`), want: 400},
		{name: "tag and imageTag differ", method: "POST", path: "/api/v1/deployments", token: prodToken, body: fmt.Sprintf(deployJSON, `,"imageTag":"2"`), want: 400, wantField: "imageTag"},
		{name: "bad field", fake: func(f *fakeDeployer) { f.SubmitErr = &deploy.FieldError{Field: "author", Msg: "invisible characters"} },
			method: "POST", path: "/api/v1/deployments", token: prodToken, body: fmt.Sprintf(deployJSON, ""), want: 400, wantField: "author"},
		{name: "bad limit", method: "GET", path: "/api/v1/deployments?limit=0", token: prodToken, want: 400, wantField: "limit"},
		{name: "no token", method: "POST", path: "/api/v1/deployments", body: fmt.Sprintf(deployJSON, ""), want: 401},
		{name: "unknown token", method: "GET", path: "/api/v1/clusters", token: "mgo_nobody", want: 401},
		{name: "url token not limited to docker hub", method: "POST", path: "/deploy/dockerhub?triggerRepo=gitlab.com/acme/app&cluster=prod&token=" + prodToken,
			body: `{}`, want: 401},
		{name: "cluster outside the token's scope", method: "POST", path: "/api/v1/deployments", token: prodToken,
			body: strings.Replace(fmt.Sprintf(deployJSON, ""), `"prod"`, `"secret"`, 1), want: 403},
		{name: "route outside the token's routes", method: "GET", path: "/api/v1/clusters", token: hubToken, want: 403},
		{name: "image outside allowedImages", fake: func(f *fakeDeployer) {
			f.SubmitErr = fmt.Errorf("%w: image outside allowedImages", deploy.ErrForbidden)
		},
			method: "POST", path: "/api/v1/deployments", token: prodToken, body: fmt.Sprintf(deployJSON, ""), want: 403},
		{name: "deployment of another cluster", method: "GET", path: "/api/v1/deployments/d2", token: prodToken, want: 403},
		{name: "unknown trigger repo", fake: func(f *fakeDeployer) {
			f.SubmitErr = &deploy.NotFoundError{What: "trigger repo", Name: "gitlab.com/acme/app", Cluster: "prod", Where: "installations/prod", Known: []string{"gitlab.com/other/x"}}
		}, method: "POST", path: "/api/v1/deployments", token: prodToken, body: fmt.Sprintf(deployJSON, ""), want: 404, wantIn: "of those you may see"},
		{name: "unknown deployment", method: "GET", path: "/api/v1/deployments/nope", token: allToken, want: 404},
		{name: "unknown cluster", method: "GET", path: "/api/v1/clusters/nope/releases", token: allToken, want: 404},
		{name: "unknown route", method: "GET", path: "/api/v1/nothing", token: allToken, want: 404},
		{name: "idempotency key reused", fake: func(f *fakeDeployer) {
			f.SubmitErr = fmt.Errorf("%w: key used for another request", deploy.ErrConflict)
		},
			method: "POST", path: "/api/v1/deployments", token: prodToken, body: fmt.Sprintf(deployJSON, `,"idempotencyKey":"k"`), want: 409},
		{name: "rollback conflicts", fake: func(f *fakeDeployer) { f.WaitResult = failed(deploy.StageCommit, deploy.KindRollback) },
			method: "POST", path: "/api/v1/deployments/d1/rollback", token: prodToken, body: `{"wait":true}`, want: 409, wantIn: `"deployment"`},
		{name: "body over 1 MiB", method: "POST", path: "/api/v1/deployments", token: prodToken,
			body: fmt.Sprintf(deployJSON, `,"author":"`+strings.Repeat("a", api.MaxBody)+`"`), want: 413},
		{name: "repository cannot take the edit", fake: func(f *fakeDeployer) { f.SubmitErr = fmt.Errorf("%w: values file has errors", deploy.ErrUnprocessable) },
			method: "POST", path: "/api/v1/deployments", token: prodToken, body: fmt.Sprintf(deployJSON, ""), want: 422},
		{name: "deploy freeze", fake: func(f *fakeDeployer) {
			f.SubmitErr = &deploy.FrozenError{Cluster: "prod", Period: freezePeriod()}
		},
			method: "POST", path: "/api/v1/deployments", token: prodToken, body: fmt.Sprintf(deployJSON, ""), want: 423, wantIn: `"until": "2026-11-30T08:00:00Z"`},
		{name: "clusters with a freeze", fake: func(f *fakeDeployer) {
			p := freezePeriod()
			next := p
			next.From, next.Until = p.From.Add(7*24*time.Hour), p.Until.Add(7*24*time.Hour)
			f.Freezes = map[string]deploy.FreezeStatus{"prod": {FreezeState: repo.FreezeState{Active: &p, Next: &next},
				Windows: []repo.FreezeWindow{*p.Window}, HoldPushes: true, Held: true}}
		}, method: "GET", path: "/api/v1/clusters", token: allToken, want: 200, wantIn: `"held": true`},
		{name: "edit failed at commit", fake: func(f *fakeDeployer) { f.WaitResult = failed(deploy.StageCommit, deploy.KindDeploy) },
			method: "POST", path: "/api/v1/deployments", token: prodToken, body: fmt.Sprintf(deployJSON, `,"wait":true`), want: 422},
		{name: "rollout failed", fake: func(f *fakeDeployer) { f.WaitResult = failed(deploy.StageRollout, deploy.KindDeploy) },
			method: "POST", path: "/api/v1/deployments", token: prodToken, body: fmt.Sprintf(deployJSON, `,"wait":true`), want: 424, wantIn: "rollout failed"},
		{name: "sync of a cluster failed", fake: func(f *fakeDeployer) { f.SyncRes.RawError = "bad manifest" },
			method: "POST", path: "/api/v1/clusters/prod/sync", token: allToken, want: 424},
		{name: "git server failed", fake: func(f *fakeDeployer) { f.WaitResult = failed(deploy.StagePush, deploy.KindDeploy) },
			method: "POST", path: "/deploy", token: prodToken, ctype: "application/x-www-form-urlencoded",
			body: "cluster=prod&triggerRepo=gitlab.com/acme/app&imageRepo=registry.acme.io/acme/app&imageTag=1.4.3", want: 502},
		{name: "shutting down", fake: func(f *fakeDeployer) { f.SubmitErr = deploy.ErrClosed },
			method: "POST", path: "/api/v1/deployments", token: prodToken, body: fmt.Sprintf(deployJSON, ""), want: 503},
		{name: "queue full", fake: func(f *fakeDeployer) { f.SubmitErr = deploy.ErrQueueFull },
			method: "POST", path: "/api/v1/deployments", token: prodToken, body: fmt.Sprintf(deployJSON, ""), want: 503},
		{name: "get deployment", method: "GET", path: "/api/v1/deployments/d1", token: prodToken, want: 200, wantIn: `"subject": "Deployment/app/app"`},
		{name: "wait for a deployment", method: "GET", path: "/api/v1/deployments/d1?wait=true", token: prodToken, want: 200},
		{name: "list deployments", method: "GET", path: "/api/v1/deployments?limit=10", token: prodToken, want: 200, wantIn: `"d1"`},
		{name: "rollback queued", method: "POST", path: "/api/v1/deployments/d1/rollback", token: prodToken, want: 202, wantIn: `"rollbackOf": "d1"`},
		{name: "clusters", method: "GET", path: "/api/v1/clusters", token: allToken, want: 200, wantIn: `"pending"`},
		{name: "releases", method: "GET", path: "/api/v1/clusters/prod/releases", token: allToken, want: 200, wantIn: `"lastAction": "upgraded"`},
		{name: "diff", method: "GET", path: "/api/v1/clusters/prod/diff", token: allToken, want: 200, wantIn: `"differences": true`},
		{name: "sync", method: "POST", path: "/api/v1/clusters/prod/sync?full=true", token: allToken, want: 200, wantIn: `"seconds": 3`},
		{name: "overview", method: "GET", path: "/api/v1/overview", token: allToken, want: 200, wantIn: `"forge": "github"`},
		{name: "overview within the token's scope", method: "GET", path: "/api/v1/overview", token: prodToken, want: 200, wantIn: `"deploys24h"`},
		{name: "overview without a token", method: "GET", path: "/api/v1/overview", want: 401},
		{name: "overview outside the token's routes", method: "GET", path: "/api/v1/overview", token: hubToken, want: 403},
		{name: "live", method: "GET", path: "/api/v1/clusters/prod/live", token: prodToken, want: 200, wantIn: `"health": "healthy"`},
		{name: "live without a token", method: "GET", path: "/api/v1/clusters/prod/live", want: 401},
		{name: "live of a cluster outside the token's scope", method: "GET", path: "/api/v1/clusters/secret/live", token: prodToken, want: 403},
		{name: "live of an unknown cluster", method: "GET", path: "/api/v1/clusters/nope/live", token: allToken, want: 404},
		{name: "github push", method: "POST", path: "/hooks/github", body: `{"ref":"refs/heads/main"}`,
			header: map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(`{"ref":"refs/heads/main"}`)}, want: 202, refreshes: 1},
		{name: "github ping", method: "POST", path: "/hooks/github", body: `{}`,
			header: map[string]string{"X-GitHub-Event": "ping", "X-Hub-Signature-256": sign(`{}`)}, want: 200, wantIn: "pong"},
		{name: "github bad signature", method: "POST", path: "/hooks/github", body: `{}`,
			header: map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(`{"x":1}`)}, want: 401},
		{name: "gitlab push", method: "POST", path: "/hooks/gitlab", body: `{}`,
			header: map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": hookKey}, want: 202, refreshes: 1},
		{name: "gitlab other event", method: "POST", path: "/hooks/gitlab", body: `{}`,
			header: map[string]string{"X-Gitlab-Event": "Tag Push Hook", "X-Gitlab-Token": hookKey}, want: 200, wantIn: "ignored"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := newFake()
			if tc.fake != nil {
				tc.fake(fake)
			}
			refresher := &fakeRefresher{}
			url, client := serveWith(t, fake, tc.ready, refresher)
			req, err := http.NewRequestWithContext(t.Context(), tc.method, url+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			ctype := tc.ctype
			if ctype == "" && tc.body != "" {
				ctype = "application/json"
			}
			if ctype != "" {
				req.Header.Set("Content-Type", ctype)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.want {
				t.Fatalf("%s %s: %d, want %d\n%s", tc.method, tc.path, resp.StatusCode, tc.want, body)
			}
			if tc.wantIn != "" && !strings.Contains(string(body), tc.wantIn) {
				t.Errorf("answer lacks %s:\n%s", tc.wantIn, body)
			}
			if resp.StatusCode >= 400 && !strings.HasSuffix(req.URL.Path, "/sync") { // a sync answers its result
				var e apitypes.Error
				if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
					t.Fatalf("error answer without an error: %v\n%s", err, body)
				}
				if e.Field != tc.wantField {
					t.Errorf("field %q, want %q", e.Field, tc.wantField)
				}
			}
			if n := refresher.triggers.Load(); n != tc.refreshes {
				t.Errorf("%d refreshes triggered, want %d", n, tc.refreshes)
			}
			if resp.StatusCode == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

// TestOpenAPIDocumentIsValid loads the served document with kin-openapi
// and validates it.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc, _, err := apitest.Document()
	if err != nil {
		t.Fatal(err)
	}
	if doc.Paths.Len() < 16 {
		t.Errorf("%d paths in the document", doc.Paths.Len())
	}
}

// TestEveryRouteDocumented holds the routes of api.Server and the paths of
// the OpenAPI document to each other: every route is documented, with its
// method, and the document names no route the server lacks.
func TestEveryRouteDocumented(t *testing.T) {
	doc, _, err := apitest.Document()
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{Service: newFake(), InsecureNoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, pattern := range h.Routes() {
		method, path, ok := strings.Cut(pattern, " ")
		if !ok {
			t.Errorf("route %q has no method", pattern)
			continue
		}
		served[method+" "+path] = true
		item := doc.Paths.Find(path)
		if item == nil || item.GetOperation(method) == nil {
			t.Errorf("route %s is not in openapi.yaml", pattern)
		}
	}
	if len(served) < 18 {
		t.Errorf("only %d routes served: %v", len(served), h.Routes())
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !served[method+" "+path] {
				t.Errorf("openapi.yaml documents %s %s, which the server does not serve", method, path)
			}
		}
	}
}

// TestNoGoFieldNames walks every JSON answer of TestStatusCodes' endpoints
// for keys that start with an upper-case letter (a Go field name that
// slipped through without a JSON name).
func TestNoGoFieldNames(t *testing.T) {
	url, client := serve(t, newFake(), nil)
	for _, path := range []string{"/api/v1/deployments/d1", "/api/v1/deployments", "/api/v1/clusters", "/api/v1/clusters/prod/releases",
		"/api/v1/clusters/prod/diff", "/api/v1/clusters/prod/sync", "/api/v1/overview", "/api/v1/clusters/prod/live"} {
		method := "GET"
		if strings.HasSuffix(path, "/sync") {
			method = "POST"
		}
		req, _ := http.NewRequestWithContext(t.Context(), method, url+path, nil)
		req.Header.Set("Authorization", "Bearer "+allToken)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if k := upperKey(v); k != "" {
			t.Errorf("%s: key %q", path, k)
		}
	}
}

func upperKey(v any) string {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if k != "" && k[0] >= 'A' && k[0] <= 'Z' {
				return k
			}
			if k := upperKey(x); k != "" {
				return k
			}
		}
	case []any:
		for _, x := range v {
			if k := upperKey(x); k != "" {
				return k
			}
		}
	}
	return ""
}

// TestValidatorRefusesWrongAnswers proves the validation of the other
// tests bites: a Go field name, an unknown enum value and an undeclared
// status are each refused.
func TestValidatorRefusesWrongAnswers(t *testing.T) {
	get := httptest.NewRequest("GET", "/api/v1/deployments/d1", nil)
	ok := `{"id":"d1","kind":"deploy","request":{"cluster":"c","triggerRepo":"t","imageRepo":"i"},"status":"queued","changed":false,"times":{"queued":"2026-11-25T17:45:01Z"},"seconds":{}}`
	h := http.Header{"Content-Type": {"application/json"}}
	if err := apitest.Validate(get, 200, h, []byte(ok)); err != nil {
		t.Fatalf("a good answer refused: %v", err)
	}
	for name, body := range map[string]string{
		"Go field name":  strings.Replace(ok, `"changed"`, `"Changed"`, 1),
		"unknown status": strings.Replace(ok, `"queued",`, `"done",`, 1),
		"object action":  strings.Replace(ok, `"seconds":{}`, `"seconds":{},"releases":[{"file":"f","name":"n","namespace":"n","action":"upgraded","objects":[{"subject":"s","Action":"x"}]}]`, 1),
	} {
		if err := apitest.Validate(get, 200, h, []byte(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	sync := httptest.NewRequest("POST", "/api/v1/clusters/prod/sync", nil)
	if err := apitest.Validate(sync, 201, h, []byte(`{"cluster":"prod","releases":[],"seconds":1}`)); err == nil {
		t.Error("an undeclared status accepted")
	}
}
