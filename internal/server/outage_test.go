package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/gittest"
	"github.com/mygitops/mgo/internal/server"
)

// TestGitRemoteOutage takes the git remote down, then makes it hang, then
// brings it back: deploys fail fast with 502 naming the stage, /readyz
// answers within a second throughout, a queued request whose client left
// is dropped without a commit, and the next deploy after recovery works.
func TestGitRemoteOutage(t *testing.T) {
	files := withoutReleases(t)
	files["installations/"+cluster+"/app-values.yaml"] = values("app", "outage-app", "1.0.0", "")
	remote, gitSrv, pw := setupFiles(t, files)
	const gitTimeout = 3 * time.Second
	m := startMgo(t, gitSrv.URL, pw, t.TempDir(), func(c *server.Config) { c.Git.Timeout = gitTimeout })
	waitFor(t, "the first sync", 2*time.Minute, func() bool {
		return imageOrEmpty("outage-app", "app") == "registry.example.com/acme/app:1.0.0"
	})
	head := remote.Head(t)
	req := func(tag string) map[string]any {
		return map[string]any{"cluster": cluster, "triggerRepo": "gitlab.com/acme/app",
			"imageRepo": "registry.example.com/acme/app", "tag": tag, "author": "Dana <dana@example.com>", "wait": true}
	}
	// ready checks that /readyz answers within a second.
	ready := func(t *testing.T) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		hr, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.url+"/readyz", nil)
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatalf("/readyz did not answer within 1 s: %v", err)
		}
		resp.Body.Close()
	}

	t.Run("down: deploys fail fast with 502 naming the stage", func(t *testing.T) {
		gitSrv.SetMode(gittest.Down)
		start := time.Now()
		var e errorAnswer
		code := m.postJSON("/api/v1/deployments", ciToken, req("1.1.0"), &e)
		if code != http.StatusBadGateway {
			t.Fatalf("deploy with the remote down: %d %q, want 502", code, e.Error)
		}
		if e.Deployment == nil || (e.Deployment.Stage != deploy.StagePush && e.Deployment.Stage != deploy.StageCommit) || !strings.Contains(e.Error, "fetch") {
			t.Errorf("the answer does not name the stage: %q %+v", e.Error, e.Deployment)
		}
		if d := time.Since(start); d > 2*gitTimeout {
			t.Errorf("a refused fetch took %s to fail", d)
		}
		ready(t)
	})

	t.Run("hanging: readyz answers, a queued request whose client left is dropped", func(t *testing.T) {
		gitSrv.SetMode(gittest.Hang)
		first := make(chan int, 1)
		go func() {
			var e errorAnswer
			b, _ := json.Marshal(req("1.2.0"))
			hr, _ := http.NewRequest(http.MethodPost, m.url+"/api/v1/deployments", strings.NewReader(string(b)))
			hr.Header.Set("Authorization", "Bearer "+ciToken)
			hr.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(hr)
			if err != nil {
				first <- 0
				return
			}
			defer resp.Body.Close()
			json.NewDecoder(resp.Body).Decode(&e)
			first <- resp.StatusCode
		}()
		waitFor(t, "the first deploy to hang on the remote", 10*time.Second, func() bool { return gitSrv.Count("hung") > 0 })
		// A second request queues behind the hanging one; its client gives
		// up after half a second.
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		b, _ := json.Marshal(req("6.6.6"))
		hr, _ := http.NewRequestWithContext(ctx, http.MethodPost, m.url+"/api/v1/deployments", strings.NewReader(string(b)))
		hr.Header.Set("Authorization", "Bearer "+ciToken)
		hr.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(hr); err == nil {
			resp.Body.Close()
			t.Fatalf("the queued request was answered (%d) while the remote hung", resp.StatusCode)
		}
		ready(t)
		select {
		case code := <-first:
			if code != http.StatusBadGateway {
				t.Errorf("deploy with the remote hanging: %d, want 502", code)
			}
		case <-time.After(4 * gitTimeout):
			t.Fatal("the deploy was not failed by the git timeout")
		}
		ready(t)
		// The dropped request is failed without a commit.
		var list struct {
			Deployments []*deploy.Deployment `json:"deployments"`
		}
		waitFor(t, "the dropped request to be failed", 4*gitTimeout, func() bool {
			m.call(http.MethodGet, "/api/v1/deployments", ciToken, "", nil, &list)
			for _, d := range list.Deployments {
				if d.Request.Tag == "6.6.6" {
					return d.Status == deploy.Failed
				}
			}
			return false
		})
	})

	t.Run("back: the next deploy succeeds", func(t *testing.T) {
		gitSrv.SetMode(gittest.Up)
		var d deploy.Deployment
		if code := m.postJSON("/api/v1/deployments", ciToken, req("1.3.0"), &d); code != http.StatusOK || d.Status != deploy.Succeeded {
			t.Fatalf("deploy after recovery: %d %s %s", code, d.Status, d.Error)
		}
		if got := image(t, "outage-app", "app"); got != "registry.example.com/acme/app:1.3.0" {
			t.Errorf("after recovery the cluster runs %s", got)
		}
		log := remote.Git(t, "log", "--format=%s", head+"..")
		if strings.Contains(log, "6.6.6") || strings.Contains(log, "1.1.0") || strings.Contains(log, "1.2.0") {
			t.Errorf("a failed or dropped request left a commit:\n%s", log)
		}
		if n := strings.Count(log, "1.3.0"); n != 1 {
			t.Errorf("%d commits of 1.3.0, want 1:\n%s", n, log)
		}
		ready(t)
	})
}
