// Package auth decides who may call mgo's API and what they may deploy.
//
// Static bearer tokens are configured by their SHA-256 hash, never in clear,
// each with scopes: the clusters and trigger repos it may deploy (shell
// patterns such as "gitlab.com/acme/*"). Errors distinguish an unknown
// caller (ErrUnauthenticated, HTTP 401) from a known caller outside its
// scope (ErrForbidden, HTTP 403).
package auth
