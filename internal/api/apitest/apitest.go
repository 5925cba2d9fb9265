// Package apitest holds answers of mgo serve to its OpenAPI document
// (internal/api/openapi.yaml) in tests: wrap a test's HTTP client with
// Transport, and every answer it receives is validated with kin-openapi.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/mygitops/mgo/internal/api"
)

var (
	loadOnce sync.Once
	doc      *openapi3.T
	router   routers.Router
	loadErr  error
)

// Document loads and validates the OpenAPI document.
func Document() (*openapi3.T, routers.Router, error) {
	loadOnce.Do(func() {
		loader := openapi3.NewLoader()
		if doc, loadErr = loader.LoadFromData(api.OpenAPI()); loadErr != nil {
			return
		}
		if loadErr = doc.Validate(context.Background()); loadErr != nil {
			loadErr = fmt.Errorf("openapi.yaml: %w", loadErr)
			return
		}
		router, loadErr = legacy.NewRouter(doc)
	})
	return doc, router, loadErr
}

// Validate checks one answer (status, headers, body) to req against the
// document. A route the document does not know is an error too.
func Validate(req *http.Request, status int, header http.Header, body []byte) error {
	_, router, err := Document()
	if err != nil {
		return err
	}
	u := *req.URL
	u.Scheme, u.Host = "", "" // match paths whatever the test server's address
	r := req.Clone(context.Background())
	r.URL = &u
	route, params, err := router.FindRoute(r)
	if err != nil {
		if status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
			return validateError(body) // an unknown route answers an Error too
		}
		return fmt.Errorf("%s %s: not in the OpenAPI document: %w", req.Method, req.URL.Path, err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: r, PathParams: params, Route: route,
			Options: &openapi3filter.Options{ExcludeRequestBody: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status: status,
		Header: header,
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true, // a status the document does not name (and no default) fails
			MultiError:            true,
		},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s answered %d against the OpenAPI document: %w\n%s", req.Method, req.URL.Path, status, err, clip(body))
	}
	return nil
}

// validateError checks that body is the document's Error schema.
func validateError(body []byte) error {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("error answer is not JSON: %w\n%s", err, clip(body))
	}
	if err := doc.Components.Schemas["Error"].Value.VisitJSON(v); err != nil {
		return fmt.Errorf("error answer is not an Error of the OpenAPI document: %w\n%s", err, clip(body))
	}
	return nil
}

func clip(b []byte) string {
	s := string(b)
	if len(s) > 2000 {
		s = s[:2000] + "…"
	}
	return strings.TrimSpace(s)
}

// Transport validates every answer it carries (for paths the API serves)
// and fails t on one that does not match the document. base nil:
// http.DefaultTransport.
func Transport(t testing.TB, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{t: t, base: base}
}

type transport struct {
	t    testing.TB
	base http.RoundTripper
}

func (v *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := v.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if rerr != nil {
		return resp, nil // the caller sees the short body
	}
	if err := Validate(req, resp.StatusCode, resp.Header, body); err != nil {
		v.t.Errorf("%v", err)
	}
	return resp, nil
}
