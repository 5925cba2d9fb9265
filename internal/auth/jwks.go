package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// DefaultKeyRefetch is the least time between two fetches of an issuer's
// keys. A token whose signature matches none of the cached keys makes a
// fetch only when the last one is older: otherwise anyone could make mgo
// fetch the keys once per request by sending tokens that name an unknown
// key id, or carry a forged signature (go-oidc's RemoteKeySet fetches for
// each).
const DefaultKeyRefetch = 10 * time.Second

// maxKeySetSize bounds an issuer's JWKS document.
const maxKeySetSize = 1 << 20

// keySet is an issuer's signing keys (its JWKS document), fetched on the
// first token and again, at most every keyRefetch, when a token's
// signature matches none of them. It implements oidc.KeySet.
type keySet struct {
	url        string
	client     *http.Client
	minRefetch time.Duration

	fetchMu sync.Mutex // one fetch at a time; held across it

	mu        sync.Mutex
	keys      []jose.JSONWebKey
	fetchedAt time.Time // of the last fetch, whether it succeeded or not
	fetchErr  error     // of the last fetch
}

func newKeySet(url string, client *http.Client, minRefetch time.Duration) *keySet {
	return &keySet{url: url, client: client, minRefetch: minRefetch}
}

// VerifySignature verifies the token's signature with the cached keys
// and, failing that, with the keys fetched anew when the last fetch is
// older than minRefetch. Its payload is returned on success. The
// algorithm was checked by the verifier before.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, allSigningAlgs())
	if err != nil {
		return nil, fmt.Errorf("parsing jwt: %v", err)
	}
	kid := ""
	if len(jws.Signatures) > 0 {
		kid = jws.Signatures[0].Header.KeyID
	}
	k.mu.Lock()
	keys := k.keys
	k.mu.Unlock()
	if payload, ok := verifyWith(jws, kid, keys); ok {
		return payload, nil
	}
	// Verifying again with the same keys, when no fetch was due, costs
	// only the signature check.
	keys, fetched, err := k.refetch(ctx)
	if err != nil {
		return nil, err
	}
	if payload, ok := verifyWith(jws, kid, keys); ok {
		return payload, nil
	}
	if !fetched && kid != "" && !hasKey(keys, kid) {
		// The issuer may have rotated its keys since the last fetch: the
		// caller should retry (503), not be told its token is bad.
		return nil, fmt.Errorf("fetching keys: key id %q is not among the issuer's keys fetched %s ago; retry", clean(kid, 64), k.age().Round(time.Second))
	}
	return nil, errors.New("failed to verify id token signature")
}

func hasKey(keys []jose.JSONWebKey, kid string) bool {
	for _, key := range keys {
		if key.KeyID == kid {
			return true
		}
	}
	return false
}

func (k *keySet) age() time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	return time.Since(k.fetchedAt)
}

func verifyWith(jws *jose.JSONWebSignature, kid string, keys []jose.JSONWebKey) ([]byte, bool) {
	for i := range keys {
		if kid != "" && keys[i].KeyID != kid {
			continue
		}
		if payload, err := jws.Verify(&keys[i]); err == nil {
			return payload, true
		}
	}
	return nil, false
}

// refetch returns the keys, fetched anew (fetched) unless the last fetch
// is younger than minRefetch. A failed fetch is an error mentioning
// "fetching keys" (the issuer is unavailable) while no keys are known;
// otherwise the keys known before stay in use.
func (k *keySet) refetch(ctx context.Context) (keys []jose.JSONWebKey, fetched bool, err error) {
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	k.mu.Lock()
	if !k.fetchedAt.IsZero() && time.Since(k.fetchedAt) < k.minRefetch {
		defer k.mu.Unlock()
		if k.keys == nil && k.fetchErr != nil {
			return nil, false, k.fetchErr
		}
		return k.keys, false, nil
	}
	k.mu.Unlock()
	keys, err = k.fetch(ctx)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.fetchedAt = time.Now()
	if err != nil {
		k.fetchErr = fmt.Errorf("fetching keys %w", err)
		if k.keys == nil {
			return nil, false, k.fetchErr
		}
		return k.keys, false, nil
	}
	k.keys, k.fetchErr = keys, nil
	return keys, true, nil
}

// fetch reads the JWKS document. Keys of types the verifier cannot use
// (an encryption key with an unknown curve, say) are skipped, as
// go-oidc does.
func (k *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(ctx, HTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxKeySetSize+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", k.url, resp.Status)
	}
	if len(body) > maxKeySetSize {
		return nil, fmt.Errorf("%s: key set larger than %d bytes", k.url, maxKeySetSize)
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("%s: not a JWKS document: %v", k.url, err)
	}
	keys := make([]jose.JSONWebKey, 0, len(doc.Keys))
	for _, raw := range doc.Keys {
		var key jose.JSONWebKey
		if err := key.UnmarshalJSON(raw); err != nil || !key.Valid() || !key.IsPublic() {
			continue
		}
		keys = append(keys, key)
	}
	return keys, nil
}

func allSigningAlgs() []jose.SignatureAlgorithm {
	out := make([]jose.SignatureAlgorithm, len(signingAlgs))
	for i, a := range signingAlgs {
		out[i] = jose.SignatureAlgorithm(a)
	}
	return out
}
