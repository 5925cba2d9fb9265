package cli

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// TestDeploySourceCommit: mgo deploy --server names the commit the CI job
// built (--source-commit, else $CI_COMMIT_SHA, else $GITHUB_SHA), so
// notifications can report on it; without one the field is left out.
func TestDeploySourceCommit(t *testing.T) {
	var mu sync.Mutex
	var body map[string]any
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			mu.Lock()
			body = nil
			_ = json.NewDecoder(r.Body).Decode(&body)
			mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "d1", "status": "succeeded", "changed": true, "commit": "abc",
			"request": map[string]any{"cluster": "prod", "imageRepo": "registry.acme.io/acme/app", "tag": "1.0.0"}})
	}))
	defer api.Close()
	t.Setenv("MGO_TOKEN", "static")
	for _, c := range []struct {
		gitlab, github, flag string
		want                 any
	}{
		{gitlab: "aaaaaaa1", github: "bbbbbbb2", want: "aaaaaaa1"},
		{github: "bbbbbbb2", want: "bbbbbbb2"},
		{gitlab: "aaaaaaa1", flag: "ccccccc3", want: "ccccccc3"},
		{want: nil},
	} {
		t.Setenv("CI_COMMIT_SHA", c.gitlab)
		t.Setenv("GITHUB_SHA", c.github)
		args := []string{"deploy", "--server", api.URL, "--cluster", "prod", "--trigger-repo", "gitlab.com/acme/app",
			"--image", "registry.acme.io/acme/app", "--tag", "1.0.0", "--author", "alice", "--poll-interval", "10ms"}
		if c.flag != "" {
			args = append(args, "--source-commit", c.flag)
		}
		var out, errOut bytes.Buffer
		if code := Execute(args, &out, &errOut); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
		mu.Lock()
		got, ok := body["sourceCommit"]
		mu.Unlock()
		if c.want == nil && ok || c.want != nil && got != c.want {
			t.Errorf("CI_COMMIT_SHA=%q GITHUB_SHA=%q --source-commit=%q: sent sourceCommit %v, want %v", c.gitlab, c.github, c.flag, got, c.want)
		}
	}
}
