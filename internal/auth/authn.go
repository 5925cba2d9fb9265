package auth

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// Authenticator authenticates a bearer token as a static token or, when it
// has the shape of a JWT and OIDC is configured, as an ID token.
type Authenticator struct {
	Tokens *Tokens // nil: no static tokens
	OIDC   *OIDC   // nil: no ID tokens
}

// BearerToken reads the token of "Authorization: Bearer <token>".
func BearerToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", fmt.Errorf("%w: no Authorization header", ErrUnauthenticated)
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", fmt.Errorf("%w: Authorization must be \"Bearer <token>\"", ErrUnauthenticated)
	}
	return strings.TrimSpace(token), nil
}

// Authenticate returns the principal of a bearer token.
func (a Authenticator) Authenticate(ctx context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{}, fmt.Errorf("%w: no bearer token", ErrUnauthenticated)
	}
	if LooksLikeJWT(token) {
		if a.OIDC == nil {
			return Principal{}, fmt.Errorf("%w: an ID token, but no OIDC issuer is configured", ErrUnauthenticated)
		}
		return a.OIDC.Authenticate(ctx, token)
	}
	if a.Tokens == nil {
		return Principal{}, fmt.Errorf("%w: unknown token (only ID tokens are configured)", ErrUnauthenticated)
	}
	return a.Tokens.Authenticate(token)
}

// AuthenticateRequest authenticates the bearer token of a request.
func (a Authenticator) AuthenticateRequest(r *http.Request) (Principal, error) {
	token, err := BearerToken(r)
	if err != nil {
		return Principal{}, err
	}
	return a.Authenticate(r.Context(), token)
}
