package auth

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Issuer kinds: what the claims of an issuer's tokens mean.
const (
	KindGitLab  = "gitlab"  // GitLab CI id_tokens: project_path, ref_protected, pipeline_id, ...
	KindGitHub  = "github"  // GitHub Actions: repository, ref, environment, run_id, ...
	KindGeneric = "generic" // any OIDC issuer: no project of its own, rules name trigger repos
)

// Defaults and bounds of the OIDC verification.
const (
	DefaultClockSkew = time.Minute
	MaxClockSkew     = 5 * time.Minute
	// HTTPTimeout bounds each discovery and JWKS request to an issuer.
	HTTPTimeout = 10 * time.Second
	// retryDiscovery is how long a failed discovery is remembered before
	// the next token from that issuer tries again.
	retryDiscovery = 10 * time.Second
)

// signingAlgs are the algorithms a token may be signed with; never "none",
// never a shared-secret HMAC.
var signingAlgs = []string{
	oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512, oidc.PS256, oidc.PS384, oidc.PS512, oidc.EdDSA,
}

// ErrIssuerUnavailable: the issuer's discovery document or keys could not
// be fetched, so a token could not be checked (HTTP 503, retry).
var ErrIssuerUnavailable = errors.New("OIDC issuer unavailable")

// OIDCConfig is the `oidc:` section of the auth configuration: the
// issuers mgo trusts and the claim rules that grant their tokens clusters
// and trigger repos.
type OIDCConfig struct {
	Issuers []IssuerConfig `json:"issuers" yaml:"issuers"`
	Rules   []RuleConfig   `json:"rules" yaml:"rules"`
	// ClockSkew is how far the clocks of mgo and an issuer may differ, as a
	// Go duration ("30s"); default 1m, at most 5m.
	ClockSkew string `json:"clockSkew,omitempty" yaml:"clockSkew,omitempty"`
}

// Enabled reports whether any issuer is configured.
func (c OIDCConfig) Enabled() bool { return len(c.Issuers) > 0 }

// IssuerConfig is one trusted issuer.
type IssuerConfig struct {
	// Name is how rules, logs and commits refer to the issuer ("gitlab").
	Name string `json:"name" yaml:"name"`
	// URL is the issuer exactly as tokens name it in "iss"
	// (https://gitlab.com, https://token.actions.githubusercontent.com).
	URL string `json:"url" yaml:"url"`
	// Audience is what "aud" must contain (the `aud:` of GitLab's
	// id_tokens, the audience requested from GitHub's runner).
	Audience string `json:"audience" yaml:"audience"`
	// Kind is gitlab, github or generic; default from the URL: github for
	// token.actions.githubusercontent.com, gitlab for gitlab.com, else
	// required.
	Kind string `json:"kind,omitempty" yaml:"kind,omitempty"`
	// ProjectHost is the host of this issuer's projects as trigger repos
	// name them (a rule's default trigger repo is <ProjectHost>/<project>).
	// Default: gitlab.com and github.com for those issuers, else the host
	// of URL (a self-managed GitLab or GitHub Enterprise).
	ProjectHost string `json:"projectHost,omitempty" yaml:"projectHost,omitempty"`
	// CAFile is a PEM bundle of extra certificate authorities for the
	// issuer's HTTPS (a self-managed GitLab with a private CA).
	CAFile string `json:"caFile,omitempty" yaml:"caFile,omitempty"`
}

// RuleConfig grants the tokens of one issuer whose claims match.
type RuleConfig struct {
	// Name shows in logs, the audit log and the Requested-By trailer.
	Name string `json:"name" yaml:"name"`
	// Issuer is the name of an issuer.
	Issuer string `json:"issuer" yaml:"issuer"`
	// Claims maps claim names to patterns (shell patterns, as for
	// clusters: "acme/*" does not match "acme/sub/app"); every one must
	// match. Booleans match "true" and "false".
	Claims map[string]string `json:"claims" yaml:"claims"`
	// Clusters the matching tokens may deploy to; patterns.
	Clusters []string `json:"clusters" yaml:"clusters"`
	// TriggerRepos widens what the matching tokens may deploy. Empty: only
	// the token's own project (gitlab.com/<project_path> for GitLab,
	// github.com/<repository> for GitHub; the host of the issuer URL for a
	// self-managed instance).
	TriggerRepos []string `json:"triggerRepos,omitempty" yaml:"triggerRepos,omitempty"`
	// FreezeOverride lets the matching tokens deploy and roll back what
	// this rule allows during a deploy freeze.
	FreezeOverride bool `json:"freezeOverride,omitempty" yaml:"freezeOverride,omitempty"`
	// SkipGates lets the matching tokens promote what this rule allows
	// without the gates of a promotion path.
	SkipGates bool `json:"skipGates,omitempty" yaml:"skipGates,omitempty"`
}

// projectClaims are the claims of which a rule of an issuer of that kind
// must pin at least one: a rule without one would grant every project on
// gitlab.com or github.com.
var projectClaims = map[string][]string{
	KindGitLab: {"project_path", "project_id", "namespace_path", "namespace_id"},
	KindGitHub: {"repository", "repository_id", "repository_owner", "repository_owner_id", "job_workflow_ref"},
}

// Identity is who an OIDC token says the caller is.
type Identity struct {
	Issuer  string // issuer URL
	Subject string // "sub"
	// Project is the token's own project: acme/app (GitLab project_path,
	// GitHub repository); empty for a generic issuer.
	Project     string
	Ref         string
	Environment string
	// RunURL is the pipeline (GitLab) or workflow run (GitHub).
	RunURL string
	// Rules are the claim rules that matched.
	Rules []string
}

// Grant is what one claim rule allows: a trigger repo pattern and a
// cluster pattern must come from the same grant.
type Grant struct {
	Rule         string
	Clusters     []string
	TriggerRepos []string
	// FreezeOverride: the rule has freezeOverride.
	FreezeOverride bool
	// SkipGates: the rule has skipGates.
	SkipGates bool
}

// OIDC verifies ID tokens of the configured issuers and applies the claim
// rules.
type OIDC struct {
	issuers map[string]*issuer // by URL
	rules   []RuleConfig
	skew    time.Duration
	now     func() time.Time
	log     *slog.Logger
}

// issuer is a trusted issuer; its verifier is built on first use
// (discovery), so mgo starts when an issuer is down.
type issuer struct {
	cfg    IssuerConfig
	client *http.Client
	host   string // of the web UI, for run URLs: gitlab.com, github.com
	// projectHost prefixes the project in trigger repos.
	projectHost string

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	keys     *keySet
	// keyRefetch is the least time between two fetches of its keys.
	keyRefetch time.Duration
	failedAt   time.Time
	failure    error
}

// OIDCOptions are test hooks.
type OIDCOptions struct {
	// Now is the clock (default time.Now).
	Now func() time.Time
	Log *slog.Logger
	// KeyRefetch is the least time between two fetches of an issuer's
	// keys (default DefaultKeyRefetch).
	KeyRefetch time.Duration
}

// NewOIDC validates the configuration: unique issuer and rule names,
// HTTPS issuer URLs, an audience per issuer, known kinds, rules that name
// a known issuer, pin the project for GitLab and GitHub, and grant
// clusters with valid patterns.
func NewOIDC(cfg OIDCConfig, o OIDCOptions) (*OIDC, error) {
	v := &OIDC{issuers: map[string]*issuer{}, rules: cfg.Rules, skew: DefaultClockSkew, now: o.Now, log: o.Log}
	if v.now == nil {
		v.now = time.Now
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	var errs []error
	if cfg.ClockSkew != "" {
		d, err := time.ParseDuration(cfg.ClockSkew)
		if err != nil || d < 0 || d > MaxClockSkew {
			errs = append(errs, fmt.Errorf("oidc.clockSkew: %q must be a duration from 0s to %s", cfg.ClockSkew, MaxClockSkew))
		}
		v.skew = d
	}
	byName := map[string]*issuer{}
	for i, c := range cfg.Issuers {
		where := fmt.Sprintf("oidc.issuers[%d]", i)
		if c.Name != "" {
			where += " (" + c.Name + ")"
		}
		u, err := url.Parse(c.URL)
		switch {
		case c.Name == "":
			errs = append(errs, fmt.Errorf("%s: name is missing", where))
			continue
		case byName[c.Name] != nil:
			errs = append(errs, fmt.Errorf("%s: name used twice", where))
			continue
		case err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "":
			errs = append(errs, fmt.Errorf("%s: url must be the issuer's https:// URL as tokens name it in \"iss\"", where))
			continue
		case v.issuers[c.URL] != nil:
			errs = append(errs, fmt.Errorf("%s: issuer %s configured twice", where, c.URL))
			continue
		case c.Audience == "":
			errs = append(errs, fmt.Errorf("%s: audience is required (what \"aud\" of the tokens must contain)", where))
			continue
		}
		if c.Kind == "" {
			switch u.Host {
			case "gitlab.com":
				c.Kind = KindGitLab
			case "token.actions.githubusercontent.com":
				c.Kind = KindGitHub
			default:
				errs = append(errs, fmt.Errorf("%s: kind is required for %s (gitlab, github or generic)", where, u.Host))
				continue
			}
		}
		if !slices.Contains([]string{KindGitLab, KindGitHub, KindGeneric}, c.Kind) {
			errs = append(errs, fmt.Errorf("%s: unknown kind %q (gitlab, github or generic)", where, c.Kind))
			continue
		}
		client, err := issuerClient(c.CAFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		host := u.Hostname()
		if u.Port() != "" {
			host = u.Host
		}
		if c.Kind == KindGitHub && u.Host == "token.actions.githubusercontent.com" {
			host = "github.com"
		}
		is := &issuer{cfg: c, client: client, host: host, projectHost: host, keyRefetch: cmp.Or(o.KeyRefetch, DefaultKeyRefetch)}
		if c.ProjectHost != "" {
			if strings.ContainsAny(c.ProjectHost, "/*?[ ") {
				errs = append(errs, fmt.Errorf("%s: projectHost must be a host name such as gitlab.com", where))
				continue
			}
			is.projectHost = c.ProjectHost
		}
		byName[c.Name], v.issuers[c.URL] = is, is
	}
	ruleNames := map[string]bool{}
	for i, r := range cfg.Rules {
		where := fmt.Sprintf("oidc.rules[%d]", i)
		if r.Name != "" {
			where += " (" + r.Name + ")"
		}
		is := byName[r.Issuer]
		switch {
		case r.Name == "":
			errs = append(errs, fmt.Errorf("%s: name is missing", where))
			continue
		case ruleNames[r.Name]:
			errs = append(errs, fmt.Errorf("%s: name used twice", where))
			continue
		case is == nil:
			errs = append(errs, fmt.Errorf("%s: issuer %q is not configured", where, r.Issuer))
			continue
		case len(r.Claims) == 0:
			errs = append(errs, fmt.Errorf("%s: claims are required (a rule matching every token of an issuer is never meant)", where))
			continue
		case len(r.Clusters) == 0:
			errs = append(errs, fmt.Errorf("%s: clusters are required (\"*\" allows all)", where))
			continue
		case is.cfg.Kind == KindGeneric && len(r.TriggerRepos) == 0:
			errs = append(errs, fmt.Errorf("%s: triggerRepos are required: tokens of the generic issuer %s name no project", where, r.Issuer))
			continue
		}
		ruleNames[r.Name] = true
		if pc := projectClaims[is.cfg.Kind]; pc != nil && !slices.ContainsFunc(pc, func(k string) bool { return r.Claims[k] != "" }) {
			errs = append(errs, fmt.Errorf("%s: the claims must pin the project with one of %s", where, strings.Join(pc, ", ")))
		}
		var patterns []string
		for _, p := range r.Claims {
			patterns = append(patterns, p)
		}
		for _, p := range append(append(patterns, r.Clusters...), r.TriggerRepos...) {
			if _, err := path.Match(p, ""); err != nil {
				errs = append(errs, fmt.Errorf("%s: bad pattern %q: %w", where, p, err))
			}
		}
	}
	if len(v.issuers) > 0 && len(cfg.Rules) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("oidc: issuers are configured but no rules: no token could do anything"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return v, nil
}

// issuerClient is the HTTP client of discovery and JWKS requests: a
// deadline on each, TLS 1.2 or later, extra CAs from caFile.
func issuerClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	tr.TLSHandshakeTimeout = 5 * time.Second
	tr.ResponseHeaderTimeout = HTTPTimeout
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("caFile: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("caFile %s: no PEM certificate in it", caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Transport: tr, Timeout: HTTPTimeout}, nil
}

// Warm fetches the discovery document of every issuer, so that the first
// deploy does not wait for it and a misconfigured issuer shows in the log
// at start. Failures are logged, not fatal: the next token tries again.
func (v *OIDC) Warm(ctx context.Context) {
	for _, is := range v.issuers {
		if _, err := is.getVerifier(ctx); err != nil {
			v.log.Warn("OIDC issuer discovery failed; tokens of this issuer are refused until it succeeds", "issuer", is.cfg.URL, "error", err)
		} else {
			v.log.Info("OIDC issuer ready", "issuer", is.cfg.URL, "name", is.cfg.Name, "audience", is.cfg.Audience)
		}
	}
}

// getVerifier returns the issuer's verifier, discovering the issuer on
// first use. A failed discovery is retried at most every 10 seconds.
func (is *issuer) getVerifier(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.verifier != nil {
		return is.verifier, nil
	}
	if is.failure != nil && time.Since(is.failedAt) < retryDiscovery {
		return nil, is.failure
	}
	dctx, cancel := context.WithTimeout(ctx, HTTPTimeout)
	defer cancel()
	p, err := oidc.NewProvider(oidc.ClientContext(dctx, is.client), is.cfg.URL)
	if err != nil {
		is.failure, is.failedAt = fmt.Errorf("%w: discovery of %s: %v", ErrIssuerUnavailable, is.cfg.URL, err), time.Now()
		return nil, is.failure
	}
	// The keys are fetched on the first token and again when a token's
	// signature matches none of them, at most every KeyRefetch (jwks.go),
	// so an issuer's key rotation needs no restart and no caller can make
	// mgo fetch them per request.
	var meta struct {
		JWKS string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKS == "" {
		is.failure, is.failedAt = fmt.Errorf("%w: discovery of %s: no jwks_uri", ErrIssuerUnavailable, is.cfg.URL), time.Now()
		return nil, is.failure
	}
	is.keys = newKeySet(meta.JWKS, is.client, is.keyRefetch)
	is.verifier = oidc.NewVerifier(is.cfg.URL, is.keys, &oidc.Config{
		ClientID:             is.cfg.Audience,
		SupportedSigningAlgs: signingAlgs,
		SkipExpiryCheck:      true, // checked below, with the configured skew
	})
	is.failure = nil
	return is.verifier, nil
}

// LooksLikeJWT reports whether a bearer token has the shape of a JWT
// (three base64url parts); static tokens never do.
func LooksLikeJWT(token string) bool {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return false
	}
	return strings.HasPrefix(parts[0], "eyJ")
}

// Authenticate verifies an ID token (signature, issuer, audience, expiry,
// not-before and issued-at within the clock skew) and returns the
// principal the claim rules make of it. An invalid token is
// ErrUnauthenticated; a valid token no rule grants anything is
// ErrForbidden, naming the identity. Errors never contain the token.
func (v *OIDC) Authenticate(ctx context.Context, raw string) (Principal, error) {
	iss, err := unverifiedIssuer(raw)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: malformed ID token: %v", ErrUnauthenticated, err)
	}
	is := v.issuers[iss]
	if is == nil {
		return Principal{}, fmt.Errorf("%w: ID token of issuer %q, which is not trusted", ErrUnauthenticated, clean(iss, 200))
	}
	verifier, err := is.getVerifier(ctx)
	if err != nil {
		return Principal{}, err
	}
	tok, err := verifier.Verify(ctx, raw)
	if err != nil {
		if ctx.Err() == nil && strings.Contains(err.Error(), "fetching keys") {
			return Principal{}, fmt.Errorf("%w: %s: %v", ErrIssuerUnavailable, is.cfg.Name, err)
		}
		return Principal{}, fmt.Errorf("%w: ID token of %s refused: %v", ErrUnauthenticated, is.cfg.Name, err)
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return Principal{}, fmt.Errorf("%w: ID token of %s: claims: %v", ErrUnauthenticated, is.cfg.Name, err)
	}
	if err := v.checkTimes(claims); err != nil {
		return Principal{}, fmt.Errorf("%w: ID token of %s refused: %v", ErrUnauthenticated, is.cfg.Name, err)
	}
	if tok.Subject == "" {
		return Principal{}, fmt.Errorf("%w: ID token of %s has no subject", ErrUnauthenticated, is.cfg.Name)
	}
	id := is.identity(tok.Subject, claims)
	p := Principal{Name: is.cfg.Name + ":" + clean(tok.Subject, 200), Identity: &id}
	for _, r := range v.rules {
		if r.Issuer != is.cfg.Name || !matchClaims(r.Claims, claims) {
			continue
		}
		g := Grant{Rule: r.Name, Clusters: r.Clusters, TriggerRepos: r.TriggerRepos, FreezeOverride: r.FreezeOverride, SkipGates: r.SkipGates}
		if len(g.TriggerRepos) == 0 {
			if id.Project == "" {
				continue // cannot happen for a validated rule; never grant "nothing" as "everything"
			}
			g.TriggerRepos = []string{is.projectHost + "/" + id.Project}
		}
		p.Grants = append(p.Grants, g)
		p.Clusters = append(p.Clusters, g.Clusters...)
		p.TriggerRepos = append(p.TriggerRepos, g.TriggerRepos...)
		id.Rules = append(id.Rules, r.Name)
	}
	p.Identity = &id
	if len(p.Grants) == 0 {
		return p, fmt.Errorf("%w: no claim rule grants the ID token of %s (subject %q) anything", ErrForbidden, is.cfg.Name, p.Identity.Subject)
	}
	return p, nil
}

// checkTimes checks exp (required), nbf and iat against the clock with the
// configured skew.
func (v *OIDC) checkTimes(claims map[string]any) error {
	now := v.now()
	num := func(k string) (time.Time, bool) {
		f, ok := claims[k].(float64)
		if !ok {
			return time.Time{}, false
		}
		return time.Unix(int64(f), 0), true
	}
	exp, ok := num("exp")
	switch {
	case !ok:
		return errors.New("no expiry (exp)")
	case now.After(exp.Add(v.skew)):
		return fmt.Errorf("expired at %s (now %s, skew allowed %s)", exp.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), v.skew)
	}
	if nbf, ok := num("nbf"); ok && now.Add(v.skew).Before(nbf) {
		return fmt.Errorf("not valid before %s (now %s, skew allowed %s)", nbf.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), v.skew)
	}
	if iat, ok := num("iat"); ok && now.Add(v.skew).Before(iat) {
		return fmt.Errorf("issued in the future at %s (now %s, skew allowed %s)", iat.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), v.skew)
	}
	return nil
}

// identity reads who the token is for from the claims of the issuer's kind.
func (is *issuer) identity(sub string, claims map[string]any) Identity {
	id := Identity{Issuer: is.cfg.URL, Subject: clean(sub, 300)}
	str := func(k string) string { s, _ := claimString(claims[k]); return clean(s, 300) }
	web := "https://" + is.host
	switch is.cfg.Kind {
	case KindGitLab:
		id.Project, id.Ref, id.Environment = str("project_path"), str("ref"), str("environment")
		if pid := str("pipeline_id"); id.Project != "" && pid != "" {
			id.RunURL = web + "/" + id.Project + "/-/pipelines/" + url.PathEscape(pid)
		}
	case KindGitHub:
		id.Project, id.Ref, id.Environment = str("repository"), str("ref"), str("environment")
		if run := str("run_id"); id.Project != "" && run != "" {
			id.RunURL = web + "/" + id.Project + "/actions/runs/" + url.PathEscape(run)
		}
	}
	return id
}

// matchClaims reports whether every pattern matches its claim; a missing
// claim matches nothing.
func matchClaims(patterns map[string]string, claims map[string]any) bool {
	for k, p := range patterns {
		v, ok := claimString(claims[k])
		if !ok {
			if vs, isList := claims[k].([]any); isList {
				ok = slices.ContainsFunc(vs, func(e any) bool { s, ok := claimString(e); return ok && matchOne(p, s) })
			}
			if !ok {
				return false
			}
			continue
		}
		if !matchOne(p, v) {
			return false
		}
	}
	return true
}

func matchOne(pattern, s string) bool {
	ok, _ := path.Match(pattern, s)
	return ok
}

// claimString is a claim as a string: strings as they are, booleans as
// "true"/"false", numbers in decimal.
func claimString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	}
	return "", false
}

// unverifiedIssuer reads "iss" of a JWT without verifying it, only to pick
// the issuer whose keys verify it.
func unverifiedIssuer(raw string) (string, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("%d parts, want 3", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", errors.New("payload is not base64url")
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return "", errors.New("payload is not a JSON object")
	}
	if c.Iss == "" {
		return "", errors.New("no issuer (iss)")
	}
	return c.Iss, nil
}

// clean makes a claim safe for one line of a log or a commit trailer: no
// control or invisible characters, at most max bytes.
func clean(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
			return '?'
		}
		return r
	}, s)
	if len(s) > max {
		s = s[:max]
		for len(s) > 0 && !utf8ValidEnd(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}

func utf8ValidEnd(s string) bool {
	return strings.ToValidUTF8(s, "\uFFFD") == s
}
