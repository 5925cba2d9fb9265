package gates

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mygitops/mgo/internal/outbound"
)

func TestHTTPCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	defer srv.Close()
	ctx := context.Background()
	if r := (HTTPCheck{Name: "up", URL: srv.URL + "/up"}).Run(ctx, srv.Client()); !r.Passed || !strings.Contains(r.Detail, "200") {
		t.Errorf("up: %+v", r)
	}
	if r := (HTTPCheck{Name: "down", URL: srv.URL + "/down"}).Run(ctx, srv.Client()); r.Passed || !strings.Contains(r.Detail, "503") || !strings.Contains(r.Detail, "database unreachable") {
		t.Errorf("down: %+v", r)
	}
	// The default policy of checks refuses loopback: the detail says so.
	p := &outbound.Policy{Purpose: outbound.Checks}
	if r := (HTTPCheck{Name: "local", URL: srv.URL}).Run(ctx, p.Client(0)); r.Passed || !strings.Contains(r.Detail, "outbound checks") {
		t.Errorf("loopback through the default policy: %+v", r)
	}
}

// prometheus answers /api/v1/query as Prometheus does, by query.
func prometheus(t *testing.T) *httptest.Server {
	answers := map[string]string{
		"errors": `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"a"},"value":[1700000000,"0.2"]},{"metric":{"job":"b"},"value":[1700000000,"0.4"]}]}}`,
		"high":   `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"a"},"value":[1700000000,"0.2"]},{"metric":{"job":"b"},"value":[1700000000,"7"]}]}}`,
		"empty":  `{"status":"success","data":{"resultType":"vector","result":[]}}`,
		"scalar": `{"status":"success","data":{"resultType":"scalar","result":[1700000000,"3"]}}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" {
			http.NotFound(w, r)
			return
		}
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		a, ok := answers[r.Form.Get("query")]
		if !ok {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"parse error at char 1"}`)
			return
		}
		fmt.Fprint(w, a)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestPromCheck(t *testing.T) {
	srv := prometheus(t)
	ctx := context.Background()
	half, two := 0.5, 2.0
	for _, c := range []struct {
		query  string
		min    *float64
		max    *float64
		passed bool
		detail string
	}{
		{"errors", nil, &half, true, `= 0.4 (max 0.5)`},
		{"high", nil, &half, false, `= 7 (max 0.5)`},
		{"empty", nil, &half, false, "no data"},
		{"scalar", &two, nil, true, "= 3 (min 2)"},
		{"nonsense(", nil, &half, false, "parse error"},
	} {
		r := PromCheck{Name: c.query, URL: srv.URL, Query: c.query, Min: c.min, Max: c.max}.Run(ctx, srv.Client())
		if r.Passed != c.passed || !strings.Contains(r.Detail, c.detail) {
			t.Errorf("%s: %+v, want passed %v and %q", c.query, r, c.passed, c.detail)
		}
	}
}
