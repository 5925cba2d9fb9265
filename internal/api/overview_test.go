package api_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mygitops/mgo/internal/api"
	"github.com/mygitops/mgo/internal/api/apitest"
)

// A server without a read model of the dashboard still serves its routes,
// and answers them 404 (after the scope check of a cluster).
func TestViewsWithoutDashboard(t *testing.T) {
	h, err := api.New(api.Config{Service: newFake(), InsecureNoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: apitest.Transport(t, nil)}
	for _, path := range []string{"/api/v1/overview", "/api/v1/clusters/prod/live"} {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %s, want 404", path, resp.Status)
		}
	}
}
