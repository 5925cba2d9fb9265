package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/mygitops/mgo/internal/server"
)

// TestShutdownOrder: on shutdown /readyz turns 503 first while the API is
// still served (the drain delay, for load balancers), and only then does
// the listener close.
func TestShutdownOrder(t *testing.T) {
	files := withoutReleases(t)
	files["mygitops.yaml"] = "clusters:\n  " + cluster + ":\n    sync: manual\n"
	files["installations/"+cluster+"/app-values.yaml"] = values("app", "drain-app", "1.0.0", "")
	_, gitSrv, pw := setupFiles(t, files)
	m := startMgo(t, gitSrv.URL, pw, t.TempDir(), func(c *server.Config) { c.DrainDelay = 5 * time.Second })
	get := func(path string) int {
		req, _ := http.NewRequest(http.MethodGet, m.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+ciToken)
		resp, err := apiClient(t).Do(req)
		if err != nil {
			return 0 // the listener is closed
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz before the shutdown: %d", code)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- m.stop() }()
	waitFor(t, "/readyz to answer 503", 5*time.Second, func() bool { return get("/readyz") == http.StatusServiceUnavailable })
	if code := get("/api/v1/clusters"); code != http.StatusOK {
		t.Errorf("the API while draining: %d, want 200", code)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if code := get("/healthz"); code != 0 {
		t.Errorf("/healthz after the shutdown: %d, want no answer", code)
	}
}
