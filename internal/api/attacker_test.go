package api

import (
	"net/http"
	"strings"
	"testing"
)

// TestScopedTokenCannotReachAnotherCluster: a CI token scoped to staging
// tries every route on cluster prod (and on a prod deployment, by its id)
// and gets 403 or 404 with nothing written and nothing of prod shown;
// anonymous callers get 401 on every route but the probes and the
// document.
func TestScopedTokenCannotReachAnotherCluster(t *testing.T) {
	f := newFixture(t)
	var d answer
	if code, raw := f.postJSON(t, "/api/v1/deployments", adminToken, deployBody("1.9.0"), &d); code != http.StatusOK {
		t.Fatalf("admin deploy to prod: %d %s", code, raw)
	}
	head := f.remote.Head(t)
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/api/v1/deployments", `{"cluster":"prod","triggerRepo":"gitlab.com/acme/app","imageRepo":"registry.acme.io/acme/app","tag":"6.6.6","author":"m@x.io"}`},
		{"POST", "/deploy", "cluster=prod&triggerRepo=gitlab.com/acme/app&imageRepo=registry.acme.io/acme/app&imageTag=6.6.6&author=m@x.io"},
		{"GET", "/api/v1/deployments/" + d.ID, ""},
		{"GET", "/api/v1/deployments/" + d.ID + "?wait=true", ""},
		{"POST", "/api/v1/deployments/" + d.ID + "/rollback", ""},
		{"GET", "/api/v1/clusters/prod/releases", ""},
		{"GET", "/api/v1/clusters/prod/diff", ""},
		{"POST", "/api/v1/clusters/prod/sync", ""},
		{"GET", "/api/v1/clusters/prod/live", ""},
	} {
		ct := "application/json"
		if c.path == "/deploy" {
			ct = "application/x-www-form-urlencoded"
		}
		code, raw := f.call(t, c.method, c.path, stagingToken, ct, c.body, nil)
		if code != http.StatusForbidden && code != http.StatusNotFound {
			t.Errorf("staging token: %s %s: %d %s, want 403 or 404", c.method, c.path, code, raw)
		}
		if strings.Contains(raw, "1.9.0") || strings.Contains(raw, "registry.acme.io/acme/app:") {
			t.Errorf("staging token: %s %s shows prod's state: %s", c.method, c.path, raw)
		}
		if code, raw := f.call(t, c.method, c.path, "", ct, c.body, nil); code != http.StatusUnauthorized {
			t.Errorf("anonymous: %s %s: %d %s, want 401", c.method, c.path, code, raw)
		}
	}
	for _, path := range []string{"/api/v1/deployments", "/api/v1/clusters"} {
		code, raw := f.call(t, "GET", path, stagingToken, "", "", nil)
		if code != http.StatusOK || strings.Contains(raw, `"prod"`) || strings.Contains(raw, d.ID) {
			t.Errorf("staging token: GET %s: %d, shows prod: %s", path, code, raw)
		}
	}
	if h := f.remote.Head(t); h != head {
		t.Errorf("the staging token's requests moved the remote head")
	}
}
