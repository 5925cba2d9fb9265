package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mygitops/mgo/internal/audit"
	"github.com/mygitops/mgo/internal/auth"
	"github.com/mygitops/mgo/internal/auth/oidctest"
	"github.com/mygitops/mgo/internal/logtest"
	"github.com/mygitops/mgo/pkg/apitypes"
)

const releaseToken = "mgo_release_manager_token" // freezeOverride

// TestDeployFreeze: with a deny window active now, a deploy and a
// rollback are refused with 423 naming the window and its end, nothing is
// committed or recorded, and the refusal is audited; a token or an OIDC
// rule with freezeOverride deploys, and its commit says so in a
// Freeze-Override trailer; the clusters' answer shows the freeze.
func TestDeployFreeze(t *testing.T) {
	is := oidctest.New(t)
	v, err := auth.NewOIDC(auth.OIDCConfig{
		Issuers: []auth.IssuerConfig{{Name: "gitlab", URL: is.URL, Audience: audience, Kind: auth.KindGitLab, ProjectHost: "gitlab.com", CAFile: is.CAFile}},
		Rules: []auth.RuleConfig{
			{Name: "main", Issuer: "gitlab", Clusters: []string{"prod"}, Claims: map[string]string{"project_path": "acme/app", "ref": "main"}},
			{Name: "hotfix", Issuer: "gitlab", Clusters: []string{"prod"}, Claims: map[string]string{"project_path": "acme/app", "ref": "hotfix/*"}, FreezeOverride: true},
		},
	}, auth.OIDCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	log := &logtest.Buffer{}
	f := newFixtureFiles(t, func(files map[string]string) {
		files["mygitops.yaml"] = `helm:
  repositories:
    - name: acme
      url: https://charts.acme.io
clusters:
  prod:
    sync: manual
    freezes:
      - name: year-end
        reason: year-end change freeze
        kind: deny
        schedule: "* * * * *"   # always active
        duration: 1h
  secret:
    sync: manual
`
	}, func(c *Config) {
		tokens, err := auth.NewTokens([]auth.TokenConfig{
			{Name: "prod-ci", SHA256: auth.Hash(prodToken), Clusters: []string{"prod"}, TriggerRepos: []string{"gitlab.com/acme/app"}},
			{Name: "release-manager", SHA256: auth.Hash(releaseToken), Clusters: []string{"prod"}, TriggerRepos: []string{"gitlab.com/acme/*"}, FreezeOverride: true},
		})
		if err != nil {
			t.Fatal(err)
		}
		c.Tokens, c.OIDC, c.Audit = tokens, v, audit.New(log)
	})
	seed := f.remote.Head(t)

	refused := func(what string, code int, raw string, e apitypes.Error) {
		t.Helper()
		if code != http.StatusLocked || e.Freeze == nil || e.Freeze.Window == nil || e.Freeze.Window.Name != "year-end" ||
			!strings.Contains(e.Error, "year-end change freeze") || !strings.Contains(e.Error, "frozen") {
			t.Errorf("%s in a deny window: %d %s", what, code, raw)
		}
		if h := f.remote.Head(t); h != seed {
			t.Fatalf("%s in a deny window moved the remote head", what)
		}
	}
	var e apitypes.Error
	code, raw := f.postJSON(t, "/api/v1/deployments", prodToken, deployBody("2.0.0"), &e)
	refused("a deploy", code, raw, e)
	e = apitypes.Error{}
	code, raw = f.call(t, http.MethodPost, "/deploy", prodToken, "application/x-www-form-urlencoded",
		"cluster=prod&triggerRepo=gitlab.com/acme/app&imageRepo=registry.acme.io/acme/app&imageTag=2.0.0&author=alice", &e)
	refused("a form deploy", code, raw, e)
	main := is.Token(t, oidctest.GitLab(audience, "acme/app", "main", true, nil))
	e = apitypes.Error{}
	code, raw = f.postJSON(t, "/api/v1/deployments", main, deployBody("2.0.0"), &e)
	refused("a deploy by an OIDC rule without freezeOverride", code, raw, e)
	var list apitypes.DeploymentList
	if code, raw := f.call(t, http.MethodGet, "/api/v1/deployments", releaseToken, "", "", &list); code != 200 || len(list.Deployments) != 0 {
		t.Fatalf("refused deploys were recorded: %d %s", code, raw)
	}

	// The override token deploys; the commit and the record name the
	// window and the token.
	var d answer
	if code, raw := f.postJSON(t, "/api/v1/deployments", releaseToken, deployBody("2.0.1"), &d); code != 200 || !d.Changed {
		t.Fatalf("deploy with freezeOverride: %d %s", code, raw)
	}
	if got := f.remote.Git(t, "log", "-1", "--format=%(trailers:key=Freeze-Override,valueonly)"); got != "year-end by release-manager" {
		t.Errorf("Freeze-Override trailer %q", got)
	}
	if d.Request.FreezeOverride != "year-end by release-manager" {
		t.Errorf("record: freezeOverride %q", d.Request.FreezeOverride)
	}
	afterOverride := f.remote.Head(t)

	// A rollback is a deploy: refused to the others, allowed to the
	// override token.
	e = apitypes.Error{}
	code, raw = f.call(t, http.MethodPost, "/api/v1/deployments/"+d.ID+"/rollback", prodToken, "", "", &e)
	seed = afterOverride
	refused("a rollback", code, raw, e)
	var rb answer
	if code, raw := f.postJSON(t, "/api/v1/deployments/"+d.ID+"/rollback", releaseToken, map[string]any{"wait": true}, &rb); code != 200 || !rb.Changed {
		t.Fatalf("rollback with freezeOverride: %d %s", code, raw)
	}
	if got := f.remote.Git(t, "log", "-1", "--format=%(trailers:key=Freeze-Override,valueonly)"); got != "year-end by release-manager" {
		t.Errorf("rollback's Freeze-Override trailer %q", got)
	}

	// An OIDC rule with freezeOverride deploys too.
	hotfix := is.Token(t, oidctest.GitLab(audience, "acme/app", "hotfix/pay", true, nil))
	if code, raw := f.postJSON(t, "/api/v1/deployments", hotfix, deployBody("2.0.2"), &d); code != 200 || !d.Changed {
		t.Fatalf("deploy by an OIDC rule with freezeOverride: %d %s", code, raw)
	}
	if got := f.remote.Git(t, "log", "-1", "--format=%(trailers:key=Freeze-Override,valueonly)"); !strings.HasPrefix(got, "year-end by gitlab:project_path:acme/app") {
		t.Errorf("OIDC Freeze-Override trailer %q", got)
	}

	// The clusters' answer shows the freeze.
	var cl apitypes.ClusterList
	if code, raw := f.call(t, http.MethodGet, "/api/v1/clusters", releaseToken, "", "", &cl); code != 200 || len(cl.Clusters) != 1 {
		t.Fatalf("clusters: %d %s", code, raw)
	}
	fz := cl.Clusters[0].Freeze
	if fz == nil || fz.Active == nil || fz.Active.Window == nil || fz.Active.Window.Name != "year-end" || len(fz.Windows) != 1 ||
		fz.Windows[0].TimeZone != "UTC" || !fz.SyncDuringFreeze || fz.Held {
		t.Errorf("cluster freeze %+v", fz)
	}

	// Audited: each refusal with its reason, each override with the window.
	var refusals, overrides int
	for _, e := range auditEntries(t, log) {
		switch {
		case e.Status == http.StatusLocked:
			refusals++
			if e.Decision != audit.Refused || !strings.Contains(e.Reason, "year-end") || e.Cluster != "prod" {
				t.Errorf("audit line of a refusal: %+v", e)
			}
		case e.FreezeOverride != "":
			overrides++
			if e.Decision != audit.Allowed || e.DeploymentID == "" {
				t.Errorf("audit line of an override: %+v", e)
			}
		}
	}
	if refusals != 4 || overrides != 3 {
		t.Errorf("audit: %d refusals, %d overrides; want 4 and 3:\n%s", refusals, overrides, log.String())
	}
}
