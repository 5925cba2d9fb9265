package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mygitops/mgo/internal/audit"
	"github.com/mygitops/mgo/internal/auth"
	"github.com/mygitops/mgo/internal/auth/oidctest"
	"github.com/mygitops/mgo/internal/logtest"
)

const audience = "https://mgo.example.com"

// auditEntries parses the audit lines written to b.
func auditEntries(t *testing.T, b *logtest.Buffer) []audit.Entry {
	var out []audit.Entry
	sc := bufio.NewScanner(bytes.NewReader(b.Bytes()))
	for sc.Scan() {
		var e audit.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

// TestOIDCDeploysAndAudit: at the API edge, with a local issuer, an ID
// token deploys its own project only, every bad token is 401, nothing is
// committed for a refusal, the commit and the record carry the identity,
// and the audit log has one line per request without token text.
func TestOIDCDeploysAndAudit(t *testing.T) {
	is := oidctest.New(t)
	v, err := auth.NewOIDC(auth.OIDCConfig{
		Issuers: []auth.IssuerConfig{{Name: "gitlab", URL: is.URL, Audience: audience, Kind: auth.KindGitLab, ProjectHost: "gitlab.com", CAFile: is.CAFile}},
		Rules: []auth.RuleConfig{{Name: "prod", Issuer: "gitlab", Clusters: []string{"prod"},
			Claims: map[string]string{"project_path": "acme/*", "ref_protected": "true"}}},
	}, auth.OIDCOptions{KeyRefetch: time.Nanosecond}) // a fetch for every unknown signature: the refusals below are 401
	if err != nil {
		t.Fatal(err)
	}
	log := &logtest.Buffer{}
	f := newFixture(t, func(c *Config) { c.OIDC, c.Audit = v, audit.New(log) })
	seed := f.remote.Head(t)

	good := is.Token(t, oidctest.GitLab(audience, "acme/app", "main", true, nil))
	body := func(trigger string) map[string]any {
		return map[string]any{"cluster": "prod", "triggerRepo": trigger, "imageRepo": "registry.acme.io/acme/app",
			"tag": "3.0.0", "author": "Alice <alice@acme.io>", "wait": true}
	}
	var tokens []string
	type want struct {
		name, token, trigger string
		status               int
		decision             string
	}
	expired := is.Token(t, oidctest.GitLab(audience, "acme/app", "main", true, oidctest.Claims{"exp": time.Now().Add(-10 * time.Minute).Unix()}))
	refusals := []want{
		{"other project", good, "gitlab.com/acme/other", 403, audit.Refused},
		{"unprotected ref", is.Token(t, oidctest.GitLab(audience, "acme/app", "feature", false, nil)), "gitlab.com/acme/app", 403, audit.Refused},
		{"expired", expired, "gitlab.com/acme/app", 401, audit.Refused},
		{"other audience", is.Token(t, oidctest.GitLab("https://elsewhere", "acme/app", "main", true, nil)), "gitlab.com/acme/app", 401, audit.Refused},
		{"unknown key", is.TokenWithUnknownKey(t, oidctest.GitLab(audience, "acme/app", "main", true, nil)), "gitlab.com/acme/app", 401, audit.Refused},
		{"alg none", is.UnsignedToken(t, oidctest.GitLab(audience, "acme/app", "main", true, nil)), "gitlab.com/acme/app", 401, audit.Refused},
	}
	for _, c := range refusals {
		tokens = append(tokens, c.token)
		var a answer
		if code, raw := f.postJSON(t, "/api/v1/deployments", c.token, body(c.trigger), &a); code != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, code, raw, c.status)
		}
	}
	if h := f.remote.Head(t); h != seed {
		t.Fatalf("a refused request moved the remote head")
	}

	var d answer
	tokens = append(tokens, good)
	if code, raw := f.postJSON(t, "/api/v1/deployments", good, body("gitlab.com/acme/app"), &d); code != 200 || !d.Changed {
		t.Fatalf("deploy with an ID token: %d %s", code, raw)
	}
	msg := f.remote.Git(t, "log", "-1", "--format=%an <%ae>|%(trailers:key=Requested-By,valueonly)")
	wantTrailer := "acme/app (issuer " + is.URL + ", sub project_path:acme/app:ref_type:branch:ref:main, ref main, run https://" +
		strings.TrimPrefix(is.URL, "https://") + "/acme/app/-/pipelines/1234, rule prod)"
	if msg != "Alice <alice@acme.io>|"+wantTrailer {
		t.Errorf("commit author and Requested-By: %q\nwant %q", msg, wantTrailer)
	}
	id := d.Request.Identity
	if id.Issuer != is.URL || id.Project != "acme/app" || id.Subject != "project_path:acme/app:ref_type:branch:ref:main" || d.Request.Client != "gitlab:"+id.Subject {
		t.Errorf("deployment record identity %+v client %s", id, d.Request.Client)
	}

	// The issuer rotates its key: new tokens work without a restart.
	is.Rotate(t)
	rotated := is.Token(t, oidctest.GitLab(audience, "acme/app", "main", true, nil))
	tokens = append(tokens, rotated)
	var r2 answer
	b := body("gitlab.com/acme/app")
	b["tag"] = "3.0.1"
	if code, raw := f.postJSON(t, "/api/v1/deployments", rotated, b, &r2); code != 200 {
		t.Errorf("after key rotation: %d %s", code, raw)
	}
	// Static tokens work beside OIDC.
	b["tag"] = "3.0.2"
	if code, raw := f.postJSON(t, "/api/v1/deployments", prodToken, b, &answer{}); code != 200 {
		t.Errorf("static token: %d %s", code, raw)
	}
	// Reading its deployment: allowed, audited with the id.
	if code, raw := f.call(t, http.MethodGet, "/api/v1/deployments/"+d.ID, rotated, "", "", nil); code != 200 {
		t.Errorf("get: %d %s", code, raw)
	}

	entries := auditEntries(t, log)
	if len(entries) != len(refusals)+4 {
		t.Fatalf("%d audit lines, want %d:\n%s", len(entries), len(refusals)+4, log.String())
	}
	for i, c := range refusals {
		e := entries[i]
		if e.Decision != c.decision || e.Status != c.status || e.Reason == "" || e.Route != "POST /api/v1/deployments" || e.Remote == "" {
			t.Errorf("audit line of %s: %+v", c.name, e)
		}
		if c.status == 403 && (e.Who.Kind != "oidc" || e.Who.Project != "acme/app" || e.Who.Issuer != is.URL) {
			t.Errorf("audit line of %s names no identity: %+v", c.name, e.Who)
		}
	}
	if e := entries[len(refusals)]; e.Decision != audit.Allowed || e.Status != 200 || e.DeploymentID != d.ID || e.Cluster != "prod" ||
		e.TriggerRepo != "gitlab.com/acme/app" || e.Who.Kind != "oidc" || e.Who.RunURL == "" || e.Image != "registry.acme.io/acme/app:3.0.0" {
		t.Errorf("audit line of the deploy: %+v", e)
	}
	if e := entries[len(refusals)+2]; e.Who.Kind != "token" || e.Who.Name != "prod-ci" || e.Decision != audit.Allowed {
		t.Errorf("audit line of the static token: %+v", e)
	}
	if e := entries[len(refusals)+3]; e.Route != "GET /api/v1/deployments/{id}" || e.DeploymentID != d.ID {
		t.Errorf("audit line of the read: %+v", e)
	}
	all := log.String()
	for _, tok := range append(tokens, prodToken) {
		for _, part := range strings.Split(tok, ".") {
			if len(part) > 16 && strings.Contains(all, part) {
				t.Fatalf("the audit log contains token text %q", part[:16])
			}
		}
	}
}
