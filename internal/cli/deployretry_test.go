package cli

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestDeployServerRetriesWithTheSameKey: mgo deploy --server sends an
// idempotency key of its own; when the connection of its request breaks
// it sends the request again with that key, then follows the deployment.
// --idempotency-key replaces the random key.
func TestDeployServerRetriesWithTheSameKey(t *testing.T) {
	var mu sync.Mutex
	var keys []string
	gets := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		d := map[string]any{"id": "d1", "kind": "deploy", "status": "queued", "changed": false, "times": map[string]any{"queued": "2026-11-25T17:45:01Z"},
			"request": map[string]any{"cluster": "prod", "triggerRepo": "gitlab.com/acme/app", "imageRepo": "registry.acme.io/acme/app", "tag": "1.0.0"}}
		if r.Method == http.MethodPost {
			var body map[string]any
			_ = json.NewDecoder(r.Body).Decode(&body)
			key, _ := body["idempotencyKey"].(string)
			keys = append(keys, key)
			if len(keys)%2 == 1 { // every first send: the connection breaks
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					conn.Close()
				}
				return
			}
		} else {
			gets++
			d["status"], d["changed"], d["commit"] = "succeeded", true, "abc"
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(d)
	}))
	defer srv.Close()
	t.Setenv("MGO_TOKEN", "static")
	run := func(extra ...string) {
		t.Helper()
		args := append([]string{"deploy", "--server", srv.URL, "--cluster", "prod", "--trigger-repo", "gitlab.com/acme/app",
			"--image", "registry.acme.io/acme/app", "--tag", "1.0.0", "--author", "alice", "--poll-interval", "10ms"}, extra...)
		var out, errOut bytes.Buffer
		if code := Execute(args, &out, &errOut); code != 0 || !strings.Contains(out.String(), "deployed registry.acme.io/acme/app:1.0.0 to prod") {
			t.Fatalf("exit %d:\n%s%s", code, out.String(), errOut.String())
		}
		if !strings.Contains(errOut.String(), "retrying in") {
			t.Errorf("no retry reported:\n%s", errOut.String())
		}
	}
	run()
	run("--idempotency-key", "pipeline-4711")
	mu.Lock()
	defer mu.Unlock()
	if len(keys) != 4 || keys[0] == "" || keys[0] != keys[1] || keys[2] != "pipeline-4711" || keys[3] != keys[2] || gets < 2 {
		t.Fatalf("keys sent %q, %d looks", keys, gets)
	}
}
