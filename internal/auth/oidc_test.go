package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mygitops/mgo/internal/auth"
	"github.com/mygitops/mgo/internal/auth/oidctest"
)

const aud = "https://mgo.example.com"

// gitlabOIDC trusts one local issuer as a self-managed GitLab, with a
// staging rule (any protected ref of acme/*) and a prod rule (protected
// ref and environment production).
func gitlabOIDC(t *testing.T, is *oidctest.Issuer, now func() time.Time) *auth.OIDC {
	t.Helper()
	v, err := auth.NewOIDC(auth.OIDCConfig{
		Issuers: []auth.IssuerConfig{{Name: "gitlab", URL: is.URL, Audience: aud, Kind: auth.KindGitLab, CAFile: is.CAFile}},
		Rules: []auth.RuleConfig{
			{Name: "staging", Issuer: "gitlab", Claims: map[string]string{"project_path": "acme/*", "ref_protected": "true"}, Clusters: []string{"staging"}},
			{Name: "prod", Issuer: "gitlab", Claims: map[string]string{"project_path": "acme/*", "ref_protected": "true", "environment": "production"}, Clusters: []string{"prod"}},
			{Name: "shared-base", Issuer: "gitlab", Claims: map[string]string{"project_path": "acme/base"}, Clusters: []string{"dev"},
				TriggerRepos: []string{"gitlab.com/acme/*"}},
		},
		ClockSkew: "30s",
	}, auth.OIDCOptions{Now: now, KeyRefetch: time.Nanosecond}) // keys fetched for every unknown signature, as go-oidc does
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestOIDCGitLab checks a GitLab-shaped token end to end in the verifier:
// the grant of its project only, and every kind of bad token refused with
// ErrUnauthenticated and a reason that does not contain the token.
func TestOIDCGitLab(t *testing.T) {
	is := oidctest.New(t)
	v := gitlabOIDC(t, is, nil)
	ctx := context.Background()
	host := strings.TrimPrefix(is.URL, "https://") // a self-managed GitLab: trigger repos are on its host

	tok := is.Token(t, oidctest.GitLab(aud, "acme/app", "main", true, oidctest.Claims{"environment": "production"}))
	p, err := v.Authenticate(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "gitlab:project_path:acme/app:ref_type:branch:ref:main" || p.Identity == nil || p.Identity.Project != "acme/app" ||
		p.Identity.RunURL != "https://"+host+"/acme/app/-/pipelines/1234" || strings.Join(p.Identity.Rules, ",") != "staging,prod" {
		t.Fatalf("principal %+v identity %+v", p, p.Identity)
	}
	for _, c := range []struct {
		cluster, trigger string
		ok               bool
	}{
		{"prod", host + "/acme/app", true},
		{"staging", host + "/acme/app", true},
		{"prod", host + "/acme/other", false}, // not its own project
		{"prod", "gitlab.com/acme/app", false},
		{"dev", host + "/acme/app", false},
	} {
		if err := p.AllowDeploy(c.cluster, c.trigger); (err == nil) != c.ok || (err != nil && !errors.Is(err, auth.ErrForbidden)) {
			t.Errorf("%s %s: %v, want allowed=%v", c.cluster, c.trigger, err, c.ok)
		}
	}

	// Without environment production only staging is granted.
	p, err = v.Authenticate(ctx, is.Token(t, oidctest.GitLab(aud, "acme/app", "main", true, nil)))
	if err != nil || p.AllowDeploy("prod", host+"/acme/app") == nil || p.AllowDeploy("staging", host+"/acme/app") != nil {
		t.Errorf("no environment: %v %+v", err, p.Grants)
	}
	// A rule that widens the trigger repos explicitly, paired with its own
	// clusters only: acme/base may deploy others' repos to dev, not to prod.
	p, err = v.Authenticate(ctx, is.Token(t, oidctest.GitLab(aud, "acme/base", "feature", false, nil)))
	if err != nil || p.AllowDeploy("dev", "gitlab.com/acme/app") != nil || p.AllowDeploy("staging", "gitlab.com/acme/app") == nil {
		t.Errorf("widened rule: %v %+v", err, p.Grants)
	}

	// An unprotected ref matches no rule: authenticated, but forbidden.
	unprotected := is.Token(t, oidctest.GitLab(aud, "acme/app", "feature", false, oidctest.Claims{"environment": "production"}))
	if _, err := v.Authenticate(ctx, unprotected); !errors.Is(err, auth.ErrForbidden) {
		t.Errorf("unprotected ref: %v, want forbidden", err)
	}

	claims := oidctest.GitLab(aud, "acme/app", "main", true, nil)
	with := func(k string, val any) oidctest.Claims {
		c := oidctest.Claims{}
		for kk, vv := range claims {
			c[kk] = vv
		}
		c[k] = val
		return c
	}
	now := time.Now()
	other := oidctest.New(t)
	refused := []struct{ name, token, reason string }{
		{"expired", is.Token(t, with("exp", now.Add(-2*time.Minute).Unix())), "expired"},
		{"not yet valid", is.Token(t, with("nbf", now.Add(2*time.Minute).Unix())), "not valid before"},
		{"issued in the future", is.Token(t, with("iat", now.Add(2*time.Minute).Unix())), "issued in the future"},
		{"no expiry", is.Token(t, with("exp", nil)), "no expiry"},
		{"other audience", is.Token(t, with("aud", "https://elsewhere.example.com")), "audience"},
		{"untrusted issuer", other.Token(t, claims), "not trusted"},
		{"issuer claimed by another signer", other.Token(t, with("iss", is.URL)), "signature"},
		{"unknown key", is.TokenWithUnknownKey(t, claims), "signature"},
		{"forged under a known key id", is.TokenForgedUnderKnownKid(t, claims), "signature"},
		{"alg none", is.UnsignedToken(t, claims), "malformed jwt"},
		{"garbage", "eyJhbGciOi.eyJpc3Mi.sig", "malformed"},
	}
	for _, c := range refused {
		_, err := v.Authenticate(ctx, c.token)
		if !errors.Is(err, auth.ErrUnauthenticated) || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("%s: %v, want unauthenticated saying %q", c.name, err, c.reason)
			continue
		}
		for _, part := range strings.Split(c.token, ".") {
			if len(part) > 8 && strings.Contains(err.Error(), part) {
				t.Errorf("%s: the error contains the token: %v", c.name, err)
			}
		}
	}
	// Within the skew: expired 20 seconds ago is still accepted (30s skew).
	if _, err := v.Authenticate(ctx, is.Token(t, with("exp", now.Add(-20*time.Second).Unix()))); err != nil {
		t.Errorf("expired within the skew: %v", err)
	}

	// Rotation: the issuer withdraws its key; tokens of the new key work
	// with the same verifier, tokens of the old one no more.
	old := is.Token(t, claims)
	is.Rotate(t)
	if _, err := v.Authenticate(ctx, is.Token(t, claims)); err != nil {
		t.Errorf("after rotation: %v", err)
	}
	if _, err := v.Authenticate(ctx, old); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Errorf("token of the withdrawn key: %v", err)
	}
	if d, _ := is.Hits(); d != 1 {
		t.Errorf("discovery fetched %d times, want once (cached)", d)
	}
}

// TestOIDCGitHub checks GitHub's claims: repository, environment, and the
// default trigger repo github.com/<repository>.
func TestOIDCGitHub(t *testing.T) {
	is := oidctest.New(t)
	v, err := auth.NewOIDC(auth.OIDCConfig{
		Issuers: []auth.IssuerConfig{{Name: "github", URL: is.URL, Audience: aud, Kind: auth.KindGitHub, CAFile: is.CAFile}},
		Rules: []auth.RuleConfig{{Name: "prod", Issuer: "github",
			Claims:   map[string]string{"repository": "acme/*", "environment": "production", "job_workflow_ref": "acme/*/.github/workflows/deploy.yml@refs/heads/main"},
			Clusters: []string{"prod"}}},
	}, auth.OIDCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(is.URL, "https://")
	ctx := context.Background()
	p, err := v.Authenticate(ctx, is.Token(t, oidctest.GitHub(aud, "acme/app", "refs/heads/main", "production", nil)))
	if err != nil || p.AllowDeploy("prod", host+"/acme/app") != nil || p.AllowDeploy("prod", host+"/acme/other") == nil {
		t.Fatalf("github token: %v %+v", err, p)
	}
	if p.Identity.RunURL != "https://"+host+"/acme/app/actions/runs/5551212" || p.Name != "github:repo:acme/app:environment:production" {
		t.Errorf("identity %+v name %s", p.Identity, p.Name)
	}
	if _, err := v.Authenticate(ctx, is.Token(t, oidctest.GitHub(aud, "acme/app", "refs/heads/main", "staging", nil))); !errors.Is(err, auth.ErrForbidden) {
		t.Errorf("other environment: %v, want forbidden", err)
	}
	if _, err := v.Authenticate(ctx, is.Token(t, oidctest.GitHub(aud, "acme/app", "refs/heads/main", "production",
		oidctest.Claims{"job_workflow_ref": "acme/app/.github/workflows/other.yml@refs/heads/main"}))); !errors.Is(err, auth.ErrForbidden) {
		t.Errorf("other workflow: %v, want forbidden", err)
	}
}

// TestOIDCIssuerDown: mgo starts while an issuer is unreachable; its
// tokens are refused as unavailable (503, retry) until it answers.
func TestOIDCIssuerDown(t *testing.T) {
	v, err := auth.NewOIDC(auth.OIDCConfig{
		Issuers: []auth.IssuerConfig{{Name: "gl", URL: "https://127.0.0.1:1", Audience: aud, Kind: auth.KindGitLab}},
		Rules:   []auth.RuleConfig{{Name: "r", Issuer: "gl", Claims: map[string]string{"project_path": "acme/app"}, Clusters: []string{"*"}}},
	}, auth.OIDCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	is := oidctest.New(t)
	tok := is.Token(t, oidctest.GitLab(aud, "acme/app", "main", true, oidctest.Claims{"iss": "https://127.0.0.1:1"}))
	start := time.Now()
	_, err = v.Authenticate(context.Background(), tok)
	if !errors.Is(err, auth.ErrIssuerUnavailable) || time.Since(start) > auth.HTTPTimeout+5*time.Second {
		t.Errorf("issuer down: %v after %s", err, time.Since(start))
	}
}

func TestOIDCConfigErrors(t *testing.T) {
	gl := auth.IssuerConfig{Name: "gitlab", URL: "https://gitlab.com", Audience: aud}
	for _, c := range []struct {
		name string
		cfg  auth.OIDCConfig
		want string
	}{
		{"http issuer", auth.OIDCConfig{Issuers: []auth.IssuerConfig{{Name: "x", URL: "http://gitlab.example.com", Audience: aud, Kind: "gitlab"}}}, "https://"},
		{"no audience", auth.OIDCConfig{Issuers: []auth.IssuerConfig{{Name: "x", URL: "https://gitlab.com"}}}, "audience is required"},
		{"no kind", auth.OIDCConfig{Issuers: []auth.IssuerConfig{{Name: "x", URL: "https://git.acme.io", Audience: aud}}}, "kind is required"},
		{"no rules", auth.OIDCConfig{Issuers: []auth.IssuerConfig{gl}}, "no rules"},
		{"rule without project", auth.OIDCConfig{Issuers: []auth.IssuerConfig{gl}, Rules: []auth.RuleConfig{
			{Name: "r", Issuer: "gitlab", Claims: map[string]string{"ref_protected": "true"}, Clusters: []string{"*"}}}}, "pin the project"},
		{"rule of unknown issuer", auth.OIDCConfig{Issuers: []auth.IssuerConfig{gl}, Rules: []auth.RuleConfig{
			{Name: "r", Issuer: "github", Claims: map[string]string{"repository": "a/b"}, Clusters: []string{"*"}}}}, "not configured"},
		{"rule without clusters", auth.OIDCConfig{Issuers: []auth.IssuerConfig{gl}, Rules: []auth.RuleConfig{
			{Name: "r", Issuer: "gitlab", Claims: map[string]string{"project_path": "a/b"}}}}, "clusters are required"},
		{"bad pattern", auth.OIDCConfig{Issuers: []auth.IssuerConfig{gl}, Rules: []auth.RuleConfig{
			{Name: "r", Issuer: "gitlab", Claims: map[string]string{"project_path": "a/["}, Clusters: []string{"*"}}}}, "bad pattern"},
		{"skew too large", auth.OIDCConfig{ClockSkew: "1h", Issuers: []auth.IssuerConfig{gl}, Rules: []auth.RuleConfig{
			{Name: "r", Issuer: "gitlab", Claims: map[string]string{"project_path": "a/b"}, Clusters: []string{"*"}}}}, "clockSkew"},
	} {
		_, err := auth.NewOIDC(c.cfg, auth.OIDCOptions{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func TestAuthenticatorDispatch(t *testing.T) {
	static := auth.NewToken()
	tokens, err := auth.NewTokens([]auth.TokenConfig{{Name: "ci", SHA256: auth.Hash(static), Clusters: []string{"*"}, TriggerRepos: []string{"*"}}})
	if err != nil {
		t.Fatal(err)
	}
	is := oidctest.New(t)
	a := auth.Authenticator{Tokens: tokens, OIDC: gitlabOIDC(t, is, nil)}
	ctx := context.Background()
	if p, err := a.Authenticate(ctx, static); err != nil || p.Name != "ci" {
		t.Errorf("static token: %v %v", p, err)
	}
	if p, err := a.Authenticate(ctx, is.Token(t, oidctest.GitLab(aud, "acme/app", "main", true, nil))); err != nil || p.Identity == nil {
		t.Errorf("ID token: %v %v", p, err)
	}
	if _, err := (auth.Authenticator{Tokens: tokens}).Authenticate(ctx, is.Token(t, oidctest.GitLab(aud, "acme/app", "main", true, nil))); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Errorf("ID token without OIDC: %v", err)
	}
}

// TestOIDCKeysNotFetchedPerToken: tokens that name an unknown key id or
// carry a forged signature under a known one, sent by anyone, make at most
// one fetch of the issuer's keys per KeyRefetch, not one per request; a
// token of a key id not fetched yet is 503 (retry) while the fetch is not
// due, and the rotated key is accepted once it is.
func TestOIDCKeysNotFetchedPerToken(t *testing.T) {
	is := oidctest.New(t)
	v, err := auth.NewOIDC(auth.OIDCConfig{
		Issuers: []auth.IssuerConfig{{Name: "gitlab", URL: is.URL, Audience: aud, Kind: auth.KindGitLab, CAFile: is.CAFile}},
		Rules:   []auth.RuleConfig{{Name: "staging", Issuer: "gitlab", Claims: map[string]string{"project_path": "acme/*"}, Clusters: []string{"staging"}}},
	}, auth.OIDCOptions{KeyRefetch: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	claims := oidctest.GitLab(aud, "acme/app", "main", true, nil)
	unknown, forged := is.TokenWithUnknownKey(t, claims), is.TokenForgedUnderKnownKid(t, claims)
	if _, err := v.Authenticate(ctx, is.Token(t, claims)); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if _, err := v.Authenticate(ctx, unknown); !errors.Is(err, auth.ErrIssuerUnavailable) {
			t.Fatalf("unknown key id within the refetch time: %v, want ErrIssuerUnavailable (retry)", err)
		}
		if _, err := v.Authenticate(ctx, forged); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Fatalf("forged signature: %v, want ErrUnauthenticated", err)
		}
	}
	if _, jwks := is.Hits(); jwks != 1 {
		t.Fatalf("keys fetched %d times for 100 bad tokens, want 1 (the first token's)", jwks)
	}

	is.Rotate(t)
	rotated := is.Token(t, claims)
	time.Sleep(2100 * time.Millisecond)
	if _, err := v.Authenticate(ctx, rotated); err != nil {
		t.Fatalf("rotated key after the refetch time: %v", err)
	}
	if _, err := v.Authenticate(ctx, unknown); !errors.Is(err, auth.ErrIssuerUnavailable) {
		t.Fatalf("unknown key id right after a fetch: %v", err)
	}
	if _, jwks := is.Hits(); jwks != 2 {
		t.Fatalf("keys fetched %d times, want 2", jwks)
	}
}
