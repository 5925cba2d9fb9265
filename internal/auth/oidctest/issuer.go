// Package oidctest is a local OpenID Connect issuer for tests: an HTTPS
// server serving discovery and JWKS, signing ID tokens with go-jose, with
// key rotation and the bad tokens a verifier must refuse.
package oidctest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Issuer is a running test issuer.
type Issuer struct {
	URL    string // https://127.0.0.1:port
	CAFile string // PEM of the server's certificate, for IssuerConfig.CAFile
	srv    *httptest.Server

	mu   sync.Mutex
	keys []*key // published; the last one signs
	seq  int

	discoveryHits, jwksHits atomic.Int64
}

type key struct {
	id  string
	rsa *rsa.PrivateKey
}

// New starts an issuer with one signing key; it stops with the test.
func New(t testing.TB) *Issuer {
	t.Helper()
	is := &Issuer{}
	is.srv = httptest.NewTLSServer(http.HandlerFunc(is.serve))
	t.Cleanup(is.srv.Close)
	is.URL = is.srv.URL
	is.CAFile = filepath.Join(t.TempDir(), "issuer-ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: is.srv.Certificate().Raw})
	if err := os.WriteFile(is.CAFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	is.keys = []*key{is.newKey(t)}
	return is
}

func (is *Issuer) newKey(t testing.TB) *key {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is.seq++
	return &key{id: fmt.Sprintf("key-%d", is.seq), rsa: k}
}

// Rotate publishes a new signing key and withdraws the old ones, as an
// issuer does after a key rotation; it returns the new key id.
func (is *Issuer) Rotate(t testing.TB) string {
	is.mu.Lock()
	defer is.mu.Unlock()
	k := is.newKey(t)
	is.keys = []*key{k}
	return k.id
}

// Hits returns how often discovery and the JWKS were fetched.
func (is *Issuer) Hits() (discovery, jwks int64) { return is.discoveryHits.Load(), is.jwksHits.Load() }

func (is *Issuer) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		is.discoveryHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": is.URL, "jwks_uri": is.URL + "/oauth/discovery/keys",
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	case "/oauth/discovery/keys":
		is.jwksHits.Add(1)
		is.mu.Lock()
		var set jose.JSONWebKeySet
		for _, k := range is.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.rsa.PublicKey, KeyID: k.id, Algorithm: "RS256", Use: "sig"})
		}
		is.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	default:
		http.NotFound(w, r)
	}
}

// Claims are the claims of a token; Token fills iss, iat, nbf and exp
// when missing.
type Claims map[string]any

// Token signs claims with the current key. Unless given, iss is the
// issuer, iat and nbf now, exp in five minutes.
func (is *Issuer) Token(t testing.TB, c Claims) string {
	t.Helper()
	is.mu.Lock()
	k := is.keys[len(is.keys)-1]
	is.mu.Unlock()
	return is.sign(t, k, c)
}

// TokenWithUnknownKey signs claims with a key the issuer never published
// (under a key id it does not know).
func (is *Issuer) TokenWithUnknownKey(t testing.TB, c Claims) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return is.sign(t, &key{id: "not-published", rsa: k}, c)
}

// TokenForgedUnderKnownKid signs claims with another key but names the
// issuer's current key id.
func (is *Issuer) TokenForgedUnderKnownKid(t testing.TB, c Claims) string {
	t.Helper()
	is.mu.Lock()
	kid := is.keys[len(is.keys)-1].id
	is.mu.Unlock()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return is.sign(t, &key{id: kid, rsa: k}, c)
}

// UnsignedToken is the claims with "alg": "none" and no signature.
func (is *Issuer) UnsignedToken(t testing.TB, c Claims) string {
	t.Helper()
	hdr, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	payload, err := json.Marshal(is.fill(c))
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
}

func (is *Issuer) fill(c Claims) Claims {
	out := Claims{}
	now := time.Now()
	out["iss"], out["iat"], out["nbf"], out["exp"] = is.URL, now.Unix(), now.Unix(), now.Add(5*time.Minute).Unix()
	for k, v := range c {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}

func (is *Issuer) sign(t testing.TB, k *key, c Claims) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k.rsa},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), k.id))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(is.fill(c))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// GitLab returns the claims of a GitLab CI job token of project on ref
// (protected or not), for audience aud; more claims override.
func GitLab(aud, project, ref string, protected bool, more Claims) Claims {
	c := Claims{
		"aud": aud, "sub": "project_path:" + project + ":ref_type:branch:ref:" + ref,
		"namespace_path": project[:max(0, indexSlash(project))], "project_path": project, "project_id": "4711",
		"user_login": "alice", "user_email": "alice@example.com",
		"pipeline_id": "1234", "pipeline_source": "push", "job_id": "98765",
		"ref": ref, "ref_type": "branch", "ref_protected": fmt.Sprint(protected),
	}
	for k, v := range more {
		c[k] = v
	}
	return c
}

// GitHub returns the claims of a GitHub Actions token of repository on
// ref (refs/heads/main) in environment env ("" for none), for audience aud.
func GitHub(aud, repository, ref, env string, more Claims) Claims {
	sub := "repo:" + repository + ":ref:" + ref
	if env != "" {
		sub = "repo:" + repository + ":environment:" + env
	}
	c := Claims{
		"aud": aud, "sub": sub, "repository": repository, "repository_owner": repository[:max(0, indexSlash(repository))],
		"ref": ref, "ref_type": "branch", "actor": "alice", "run_id": "5551212", "run_attempt": "1",
		"workflow": "deploy", "event_name": "push",
		"job_workflow_ref": repository + "/.github/workflows/deploy.yml@" + ref,
	}
	if env != "" {
		c["environment"] = env
	}
	for k, v := range more {
		c[k] = v
	}
	return c
}

func indexSlash(s string) int {
	for i := range len(s) {
		if s[i] == '/' {
			return i
		}
	}
	return len(s)
}
