package auth

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestTokens(t *testing.T) {
	ciToken, adminToken := NewToken(), NewToken()
	tokens, err := NewTokens([]TokenConfig{
		{Name: "gitlab-ci", SHA256: Hash(ciToken), Clusters: []string{"staging", "prod-*"}, TriggerRepos: []string{"gitlab.com/acme/*"}},
		{Name: "admin", SHA256: "sha256:" + Hash(adminToken), Clusters: []string{"*"}, TriggerRepos: []string{"*"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := tokens.Authenticate(ciToken)
	if err != nil || p.Name != "gitlab-ci" {
		t.Fatalf("ci token: %v %v", p, err)
	}
	tests := []struct {
		cluster, trigger string
		allowed          bool
	}{
		{"staging", "gitlab.com/acme/app", true},
		{"prod-eu", "gitlab.com/acme/worker", true},
		{"prod-eu", "gitlab.com/other/app", false},
		{"dev", "gitlab.com/acme/app", false},
		{"staging", "gitlab.com/acme/app/sub", false}, // * does not cross '/'
	}
	for _, tt := range tests {
		err := p.AllowDeploy(tt.cluster, tt.trigger)
		if (err == nil) != tt.allowed || (err != nil && !errors.Is(err, ErrForbidden)) {
			t.Errorf("%s %s: %v, want allowed=%v", tt.cluster, tt.trigger, err, tt.allowed)
		}
	}
	admin, err := tokens.Authenticate(adminToken)
	if err != nil || admin.AllowDeploy("anything", "any/where/deep") != nil {
		t.Errorf("admin: %v", err)
	}

	for _, bad := range []string{"", "nope", ciToken + "x", strings.ToUpper(ciToken)} {
		if _, err := tokens.Authenticate(bad); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("token %q: %v", bad, err)
		}
	}
}

func TestAuthenticateRequest(t *testing.T) {
	tok := NewToken()
	tokens, err := NewTokens([]TokenConfig{{Name: "ci", SHA256: Hash(tok), Clusters: []string{"*"}, TriggerRepos: []string{"*"}}})
	if err != nil {
		t.Fatal(err)
	}
	for header, ok := range map[string]bool{
		"Bearer " + tok: true,
		"bearer " + tok: true,
		"Basic " + tok:  false,
		tok:             false,
		"":              false,
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		if header != "" {
			r.Header.Set("Authorization", header)
		}
		_, err := tokens.AuthenticateRequest(r)
		if (err == nil) != ok {
			t.Errorf("Authorization %q: %v", header, err)
		}
		if err != nil && strings.Contains(err.Error(), tok) {
			t.Errorf("error shows the token: %v", err)
		}
	}
}

func TestNewTokensValidates(t *testing.T) {
	h := Hash("x")
	_, err := NewTokens([]TokenConfig{
		{Name: "", SHA256: h, Clusters: []string{"*"}, TriggerRepos: []string{"*"}},
		{Name: "short", SHA256: "abc", Clusters: []string{"*"}, TriggerRepos: []string{"*"}},
		{Name: "noscope", SHA256: Hash("y")},
		{Name: "badpattern", SHA256: Hash("z"), Clusters: []string{"["}, TriggerRepos: []string{"*"}},
		{Name: "a", SHA256: h, Clusters: []string{"*"}, TriggerRepos: []string{"*"}},
		{Name: "b", SHA256: h, Clusters: []string{"*"}, TriggerRepos: []string{"*"}},
	})
	if err == nil {
		t.Fatal("invalid tokens accepted")
	}
	for _, want := range []string{"tokens[0]: name is missing", "tokens[1] (short): sha256 must be 64 hex digits",
		"tokens[2] (noscope): clusters and triggerRepos are required", `tokens[3] (badpattern): bad pattern "["`,
		"tokens[5] (b): the same token hash is configured twice"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestRoutes(t *testing.T) {
	full, hub, metrics := NewToken(), NewToken(), NewToken()
	tokens, err := NewTokens([]TokenConfig{
		{Name: "ci", SHA256: Hash(full), Clusters: []string{"*"}, TriggerRepos: []string{"*"}},
		{Name: "hub", SHA256: Hash(hub), Clusters: []string{"prod"}, TriggerRepos: []string{"gitlab.com/acme/*"}, Routes: []string{RouteDockerHub}},
		{Name: "prom", SHA256: Hash(metrics), Clusters: []string{"*"}, TriggerRepos: []string{"*"}, Routes: []string{RouteMetrics}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Only a token limited to the Docker Hub route may come in a URL.
	if _, err := tokens.AuthenticateURLToken(full); !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "routes: [dockerhub]") {
		t.Errorf("full token in a URL: %v", err)
	}
	if _, err := tokens.AuthenticateURLToken(metrics); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("metrics token in a URL: %v", err)
	}
	p, err := tokens.AuthenticateURLToken(hub)
	if err != nil || p.Name != "hub" {
		t.Fatalf("dockerhub token in a URL: %v %v", p, err)
	}
	if _, err := tokens.AuthenticateURLToken("wrong"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("unknown token: %v", err)
	}
	for _, c := range []struct {
		token, route string
		ok           bool
	}{
		{full, "", true}, {full, RouteDockerHub, true}, {full, RouteMetrics, true},
		{hub, RouteDockerHub, true}, {hub, "", false}, {hub, RouteMetrics, false},
		{metrics, RouteMetrics, true}, {metrics, "", false}, {metrics, RouteDockerHub, false},
	} {
		p, _ := tokens.Authenticate(c.token)
		if err := p.AllowRoute(c.route); (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrForbidden)) {
			t.Errorf("%s on route %q: %v, want allowed=%v", p.Name, c.route, err, c.ok)
		}
	}
	if _, err := NewTokens([]TokenConfig{{Name: "x", SHA256: Hash("x"), Clusters: []string{"*"}, TriggerRepos: []string{"*"}, Routes: []string{"deploy"}}}); err == nil ||
		!strings.Contains(err.Error(), `unknown route "deploy"`) {
		t.Errorf("unknown route: %v", err)
	}
}

func TestMayOverrideFreeze(t *testing.T) {
	toks, err := NewTokens([]TokenConfig{
		{Name: "ci", SHA256: Hash("ci"), Clusters: []string{"*"}, TriggerRepos: []string{"*"}},
		{Name: "release", SHA256: Hash("release"), Clusters: []string{"prod"}, TriggerRepos: []string{"*"}, FreezeOverride: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	ci, _ := toks.Authenticate("ci")
	rel, _ := toks.Authenticate("release")
	if ci.MayOverrideFreeze("prod", "gitlab.com/acme/app") || !rel.MayOverrideFreeze("prod", "gitlab.com/acme/app") {
		t.Errorf("static tokens: ci %v, release %v", ci.FreezeOverride, rel.FreezeOverride)
	}
	// An OIDC caller overrides only with a grant that has freezeOverride
	// and covers the cluster and the trigger repo.
	p := Principal{Name: "gitlab:x", Grants: []Grant{
		{Rule: "main", Clusters: []string{"prod", "staging"}, TriggerRepos: []string{"gitlab.com/acme/app"}},
		{Rule: "hotfix", Clusters: []string{"prod"}, TriggerRepos: []string{"gitlab.com/acme/app"}, FreezeOverride: true},
	}, FreezeOverride: true}
	for _, c := range []struct {
		cluster, repo string
		want          bool
	}{
		{"prod", "gitlab.com/acme/app", true},
		{"staging", "gitlab.com/acme/app", false},
		{"prod", "gitlab.com/acme/other", false},
	} {
		if got := p.MayOverrideFreeze(c.cluster, c.repo); got != c.want {
			t.Errorf("%s %s: %v, want %v", c.cluster, c.repo, got, c.want)
		}
	}
}

func TestMaySkipGates(t *testing.T) {
	toks, err := NewTokens([]TokenConfig{
		{Name: "ci", SHA256: Hash("ci"), Clusters: []string{"*"}, TriggerRepos: []string{"*"}},
		{Name: "release", SHA256: Hash("release"), Clusters: []string{"prod"}, TriggerRepos: []string{"*"}, SkipGates: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	ci, _ := toks.Authenticate("ci")
	rel, _ := toks.Authenticate("release")
	if ci.MaySkipGates("prod", "gitlab.com/acme/app") || !rel.MaySkipGates("prod", "gitlab.com/acme/app") {
		t.Errorf("static tokens: ci %v, release %v", ci.SkipGates, rel.SkipGates)
	}
	// An OIDC caller skips gates only with a grant that has skipGates and
	// covers the cluster and the trigger repo.
	p := Principal{Name: "gitlab:x", Grants: []Grant{
		{Rule: "main", Clusters: []string{"prod", "staging"}, TriggerRepos: []string{"gitlab.com/acme/app"}},
		{Rule: "hotfix", Clusters: []string{"prod"}, TriggerRepos: []string{"gitlab.com/acme/app"}, SkipGates: true},
	}, SkipGates: true}
	for _, c := range []struct {
		cluster, repo string
		want          bool
	}{
		{"prod", "gitlab.com/acme/app", true},
		{"staging", "gitlab.com/acme/app", false},
		{"prod", "gitlab.com/acme/other", false},
	} {
		if got := p.MaySkipGates(c.cluster, c.repo); got != c.want {
			t.Errorf("%s %s: %v, want %v", c.cluster, c.repo, got, c.want)
		}
	}
}
