package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
)

// Sentinel errors, mapped to HTTP status codes at the API edge.
var (
	ErrUnauthenticated = errors.New("unauthenticated")
	ErrForbidden       = errors.New("forbidden")
)

// TokenConfig is one static token as configured: its hash and scopes.
type TokenConfig struct {
	// Name identifies the client in logs, commits and metrics.
	Name string `json:"name" yaml:"name"`
	// SHA256 is the hex SHA-256 of the token (`mgo token hash`).
	SHA256 string `json:"sha256" yaml:"sha256"`
	// Clusters the token may deploy to and sync; patterns, "*" for all.
	Clusters []string `json:"clusters" yaml:"clusters"`
	// TriggerRepos the token may deploy; patterns, "*" for all.
	TriggerRepos []string `json:"triggerRepos" yaml:"triggerRepos"`
	// Routes, when set, limits the token to these routes (RouteDockerHub,
	// RouteMetrics); empty allows every route. Only a token limited to
	// [dockerhub] may ride in a URL (?token=), as Docker Hub webhooks need.
	Routes []string `json:"routes,omitempty" yaml:"routes,omitempty"`
	// FreezeOverride lets the token deploy and roll back during a deploy
	// freeze (the freezes of mygitops.yaml); the commit then carries a
	// Freeze-Override trailer naming the window and the token.
	FreezeOverride bool `json:"freezeOverride,omitempty" yaml:"freezeOverride,omitempty"`
	// SkipGates lets the token promote now without the gates of a
	// promotion path (POST /api/v1/promotions with skipGates).
	SkipGates bool `json:"skipGates,omitempty" yaml:"skipGates,omitempty"`
}

// Routes a token can be limited to.
const (
	RouteDockerHub = "dockerhub" // POST /deploy/dockerhub
	RouteMetrics   = "metrics"   // GET /metrics
)

var knownRoutes = []string{RouteDockerHub, RouteMetrics}

// Principal is an authenticated caller.
type Principal struct {
	Name         string
	Clusters     []string
	TriggerRepos []string
	// Routes limits the principal to these routes; empty: every route.
	Routes []string
	// Grants, when set (OIDC), are the claim rules that matched: a deploy
	// needs a cluster and a trigger repo of the same grant. Clusters and
	// TriggerRepos are then their union, for what the caller may see.
	Grants []Grant
	// Identity is set for an OIDC caller: issuer, subject, project, run.
	Identity *Identity
	// FreezeOverride is a static token's freezeOverride; an OIDC caller's
	// comes from its grants (see MayOverrideFreeze).
	FreezeOverride bool
	// SkipGates is a static token's skipGates; an OIDC caller's comes
	// from its grants (see MaySkipGates).
	SkipGates bool
}

// Tokens authenticates static bearer tokens.
type Tokens struct {
	byHash map[[sha256.Size]byte]Principal
}

// NewTokens validates the configured tokens: every one needs a name, a
// well-formed hash, at least one cluster and one trigger repo pattern, and
// valid patterns. Names and hashes must be unique.
func NewTokens(cfgs []TokenConfig) (*Tokens, error) {
	t := &Tokens{byHash: map[[sha256.Size]byte]Principal{}}
	names := map[string]bool{}
	var errs []error
	for i, c := range cfgs {
		where := fmt.Sprintf("tokens[%d]", i)
		if c.Name != "" {
			where += " (" + c.Name + ")"
		}
		b, err := hex.DecodeString(strings.TrimPrefix(c.SHA256, "sha256:"))
		switch {
		case c.Name == "":
			errs = append(errs, fmt.Errorf("%s: name is missing", where))
			continue
		case names[c.Name]:
			errs = append(errs, fmt.Errorf("%s: name used twice", where))
			continue
		case err != nil || len(b) != sha256.Size:
			errs = append(errs, fmt.Errorf("%s: sha256 must be 64 hex digits (the hash of the token, not the token)", where))
			continue
		case len(c.Clusters) == 0 || len(c.TriggerRepos) == 0:
			errs = append(errs, fmt.Errorf("%s: clusters and triggerRepos are required (\"*\" allows all)", where))
			continue
		}
		for _, p := range append(append([]string{}, c.Clusters...), c.TriggerRepos...) {
			if _, err := path.Match(p, ""); err != nil {
				errs = append(errs, fmt.Errorf("%s: bad pattern %q: %w", where, p, err))
			}
		}
		for _, r := range c.Routes {
			if !slices.Contains(knownRoutes, r) {
				errs = append(errs, fmt.Errorf("%s: unknown route %q (known: %s)", where, r, strings.Join(knownRoutes, ", ")))
			}
		}
		var key [sha256.Size]byte
		copy(key[:], b)
		if _, dup := t.byHash[key]; dup {
			errs = append(errs, fmt.Errorf("%s: the same token hash is configured twice", where))
			continue
		}
		names[c.Name] = true
		t.byHash[key] = Principal{Name: c.Name, Clusters: c.Clusters, TriggerRepos: c.TriggerRepos, Routes: c.Routes, FreezeOverride: c.FreezeOverride, SkipGates: c.SkipGates}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return t, nil
}

// Len is the number of configured tokens.
func (t *Tokens) Len() int { return len(t.byHash) }

// Authenticate returns the principal of a presented token.
func (t *Tokens) Authenticate(token string) (Principal, error) {
	if token == "" {
		return Principal{}, fmt.Errorf("%w: no bearer token", ErrUnauthenticated)
	}
	// Looking up the hash of the presented token leaks nothing useful by
	// its timing: an attacker learns about hashes of guesses, not tokens.
	p, ok := t.byHash[sha256.Sum256([]byte(token))]
	if !ok {
		return Principal{}, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
	}
	return p, nil
}

// AuthenticateURLToken authenticates a token that came in a URL's query
// string, where proxies and webhook logs may record it: only a token
// limited to the Docker Hub route is accepted there.
func (t *Tokens) AuthenticateURLToken(token string) (Principal, error) {
	p, err := t.Authenticate(token)
	if err != nil {
		return p, err
	}
	if len(p.Routes) != 1 || p.Routes[0] != RouteDockerHub {
		return Principal{}, fmt.Errorf("%w: token %s may not be sent in the URL: a URL token must be limited to the Docker Hub route "+
			"(routes: [%s] in the tokens file); send this one in the Authorization header", ErrUnauthenticated, p.Name, RouteDockerHub)
	}
	return p, nil
}

// AuthenticateRequest reads the bearer token of an HTTP request
// (Authorization: Bearer <token>).
func (t *Tokens) AuthenticateRequest(r *http.Request) (Principal, error) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if h == "" {
		return Principal{}, fmt.Errorf("%w: no Authorization header", ErrUnauthenticated)
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return Principal{}, fmt.Errorf("%w: Authorization must be \"Bearer <token>\"", ErrUnauthenticated)
	}
	return t.Authenticate(strings.TrimSpace(token))
}

// AllowRoute checks that the principal may use a route ("" names every
// route not listed among the limitable ones).
func (p Principal) AllowRoute(route string) error {
	if len(p.Routes) == 0 || (route != "" && slices.Contains(p.Routes, route)) {
		return nil
	}
	return fmt.Errorf("%w: token %s is limited to the routes %s", ErrForbidden, p.Name, strings.Join(p.Routes, ", "))
}

// AllClusters reports whether the principal's scope covers every cluster.
func (p Principal) AllClusters() bool { return slices.Contains(p.Clusters, "*") }

// AllowCluster checks that the principal may act on a cluster.
func (p Principal) AllowCluster(cluster string) error {
	if !matchAny(p.Clusters, cluster) {
		return fmt.Errorf("%w: %s may not act on cluster %q", ErrForbidden, p.Name, cluster)
	}
	return nil
}

// AllowDeploy checks that the principal may deploy a trigger repo to a
// cluster.
func (p Principal) AllowDeploy(cluster, triggerRepo string) error {
	if err := p.AllowCluster(cluster); err != nil {
		return err
	}
	if len(p.Grants) > 0 {
		for _, g := range p.Grants {
			if matchAny(g.Clusters, cluster) && matchAny(g.TriggerRepos, triggerRepo) {
				return nil
			}
		}
		var own []string
		for _, g := range p.Grants {
			if matchAny(g.Clusters, cluster) {
				own = append(own, g.TriggerRepos...)
			}
		}
		return fmt.Errorf("%w: %s may not deploy trigger repo %q to cluster %q (the claim rules allow %s there)",
			ErrForbidden, p.Name, triggerRepo, cluster, strings.Join(own, ", "))
	}
	if !matchAny(p.TriggerRepos, triggerRepo) {
		return fmt.Errorf("%w: %s may not deploy trigger repo %q", ErrForbidden, p.Name, triggerRepo)
	}
	return nil
}

// MayOverrideFreeze reports whether the principal may deploy triggerRepo
// to cluster during a deploy freeze: a static token with freezeOverride,
// or an OIDC caller with a grant of a claim rule with freezeOverride that
// allows this cluster and trigger repo. It does not check AllowDeploy.
func (p Principal) MayOverrideFreeze(cluster, triggerRepo string) bool {
	if len(p.Grants) > 0 {
		for _, g := range p.Grants {
			if g.FreezeOverride && matchAny(g.Clusters, cluster) && matchAny(g.TriggerRepos, triggerRepo) {
				return true
			}
		}
		return false
	}
	return p.FreezeOverride
}

// MaySkipGates reports whether the principal may promote triggerRepo into
// cluster without the gates: a static token with skipGates, or an OIDC
// caller with a grant of a claim rule with skipGates that allows this
// cluster and trigger repo. It does not check AllowDeploy.
func (p Principal) MaySkipGates(cluster, triggerRepo string) bool {
	if len(p.Grants) > 0 {
		for _, g := range p.Grants {
			if g.SkipGates && matchAny(g.Clusters, cluster) && matchAny(g.TriggerRepos, triggerRepo) {
				return true
			}
		}
		return false
	}
	return p.SkipGates
}

func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, s); ok || p == "*" {
			return true
		}
	}
	return false
}

// Hash returns the hex SHA-256 of a token, as configured.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// NewToken returns a random token (32 bytes, hex, prefixed "mgo_").
func NewToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "mgo_" + hex.EncodeToString(b)
}
