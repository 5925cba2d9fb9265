package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeJWT is a token of the shape the runner hands out, expiring at exp.
func fakeJWT(sub string, exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(fmt.Sprintf(`{"sub":%q,"exp":%d}`, sub, exp.Unix()))) + ".c2ln"
}

// TestDeployIdentity: mgo deploy --server sends the ID token of
// --id-token-env, else one requested from the GitHub Actions runner for
// the audience (reused while valid), else $MGO_TOKEN; without any it
// refuses, and it never prints a token.
func TestDeployIdentity(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		status := "queued"
		if r.Method == http.MethodGet {
			status = "succeeded"
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "d1", "status": status, "changed": true, "commit": "abc",
			"request": map[string]any{"cluster": "prod", "imageRepo": "registry.acme.io/acme/app", "tag": "1.0.0"}})
	}))
	defer api.Close()
	ghToken := fakeJWT("repo:acme/app:environment:production", time.Now().Add(10*time.Minute))
	var runnerHits int
	var gotAudience, gotAuth string
	runner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		runnerHits++
		gotAudience, gotAuth = r.URL.Query().Get("audience"), r.Header.Get("Authorization")
		mu.Unlock()
		if r.URL.Query().Get("api-version") != "2.0" {
			http.Error(w, "the request URL's own query was lost", 400)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"value": ghToken})
	}))
	defer runner.Close()

	run := func(env map[string]string, extra ...string) (int, string, []string) {
		t.Helper()
		for _, k := range []string{"MGO_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "MY_ID_TOKEN"} {
			t.Setenv(k, env[k])
		}
		mu.Lock()
		seen, runnerHits = nil, 0
		mu.Unlock()
		args := append([]string{"deploy", "--server", api.URL, "--cluster", "prod", "--trigger-repo", "gitlab.com/acme/app",
			"--image", "registry.acme.io/acme/app", "--tag", "1.0.0", "--author", "alice", "--poll-interval", "10ms"}, extra...)
		var out, errOut bytes.Buffer
		code := Execute(args, &out, &errOut)
		mu.Lock()
		defer mu.Unlock()
		return code, out.String() + errOut.String(), append([]string(nil), seen...)
	}
	github := map[string]string{"ACTIONS_ID_TOKEN_REQUEST_URL": runner.URL + "/token?api-version=2.0", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "runner-secret"}

	code, out, seen := run(github)
	if code != 0 || len(seen) != 2 || seen[0] != "POST Bearer "+ghToken || seen[1] != "GET Bearer "+ghToken {
		t.Fatalf("GitHub Actions: exit %d %v\n%s", code, seen, out)
	}
	if runnerHits != 1 || gotAudience != api.URL || gotAuth != "Bearer runner-secret" {
		t.Errorf("runner asked %d times, audience %q, auth %q", runnerHits, gotAudience, gotAuth)
	}
	if _, _, _ = run(github, "--audience", "https://mgo.acme.io"); gotAudience != "https://mgo.acme.io" {
		t.Errorf("--audience: runner asked for %q", gotAudience)
	}

	gitlab := map[string]string{"MY_ID_TOKEN": "eyJ.gitlab.token", "MGO_TOKEN": "static", "ACTIONS_ID_TOKEN_REQUEST_URL": github["ACTIONS_ID_TOKEN_REQUEST_URL"],
		"ACTIONS_ID_TOKEN_REQUEST_TOKEN": "runner-secret"}
	if code, out, seen := run(gitlab, "--id-token-env", "MY_ID_TOKEN"); code != 0 || seen[0] != "POST Bearer eyJ.gitlab.token" {
		t.Errorf("--id-token-env: exit %d %v\n%s", code, seen, out)
	}
	if code, out, seen := run(map[string]string{"MGO_TOKEN": "static"}); code != 0 || seen[0] != "POST Bearer static" {
		t.Errorf("MGO_TOKEN: exit %d %v\n%s", code, seen, out)
	}
	if code, out, seen := run(map[string]string{"MGO_TOKEN": "static"}, "--id-token-env", "MY_ID_TOKEN"); code != 1 || len(seen) != 0 || !strings.Contains(out, "$MY_ID_TOKEN is empty") {
		t.Errorf("empty --id-token-env: exit %d %v\n%s", code, seen, out)
	}
	if code, out, _ := run(nil); code != 1 || !strings.Contains(out, "no identity") {
		t.Errorf("no identity: exit %d\n%s", code, out)
	}
	for _, secret := range []string{ghToken, "runner-secret", "eyJ.gitlab.token"} {
		if strings.Contains(out, secret) {
			t.Errorf("output shows a secret")
		}
	}
}

func TestJWTExpiry(t *testing.T) {
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	if got := jwtExpiry(fakeJWT("x", exp)); !got.Equal(exp) {
		t.Errorf("expiry %v, want %v", got, exp)
	}
	if !jwtExpiry("mgo_static").IsZero() {
		t.Error("a static token has no expiry")
	}
}
