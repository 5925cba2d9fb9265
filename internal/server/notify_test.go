package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/gittest"
	"github.com/mygitops/mgo/internal/notify"
	"github.com/mygitops/mgo/internal/server"
)

// TestNotifications: a successful and a failed deploy through mgo serve
// each reach a signed webhook with the deployment's details, while a
// receiver that hangs delays no answer and a route for another cluster
// hears nothing.
func TestNotifications(t *testing.T) {
	const secret = "hook-signing-secret"
	t.Setenv("MGO_CHART_HOOK_SECRET", secret)
	var mu sync.Mutex
	var events []notify.Event
	var bad []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var ev notify.Event
		mu.Lock()
		defer mu.Unlock()
		if r.Method != http.MethodPost || !notify.Verify([]byte(secret), b, r.Header.Get(notify.SignatureHeader)) || json.Unmarshal(b, &ev) != nil {
			bad = append(bad, r.Method+" "+string(b))
			return
		}
		events = append(events, ev)
	}))
	defer hook.Close()
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-hang }))
	defer slow.Close()
	defer close(hang)
	var otherHits int
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		mu.Lock()
		otherHits++
		mu.Unlock()
	}))
	defer other.Close()

	files := withoutReleases(t)
	files["mygitops.yaml"] = `clusters:
  ` + cluster + `:
    timeout: 5s
notifications:
  receivers:
    - name: hook
      type: webhook
      url: ` + hook.URL + `/mgo
      secretEnv: MGO_CHART_HOOK_SECRET
    - name: slow
      type: webhook
      url: ` + slow.URL + `
    - name: staging-only
      type: webhook
      url: ` + other.URL + `
  routes:
    - clusters: [` + cluster + `]
      events: [deploy.succeeded, deploy.failed, sync.succeeded, sync.failed, drift.detected]
      receivers: [slow, hook]
    - clusters: [staging]
      receivers: [staging-only]
`
	files["installations/"+cluster+"/app-values.yaml"] = values("app", "notify-app", "1.0.0", "")
	files["installations/"+cluster+"/stuck-values.yaml"] = values("stuck", "notify-stuck", "0.1.0", "nodeSelector:\n  pool: none\n")
	remote, gitSrv, pw := setupFiles(t, files)
	m := startMgo(t, gitSrv.URL, pw, t.TempDir(), func(c *server.Config) {
		c.ExternalURL = "https://mgo.example.com/"
		c.ResyncInterval = 2 * time.Second
	})

	const sourceCommit = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
	req := func(name, tag string) map[string]any {
		return map[string]any{"cluster": cluster, "triggerRepo": "gitlab.com/acme/" + name, "imageRepo": "registry.example.com/acme/" + name,
			"tag": tag, "author": "Ada <ada@example.com>", "commitSha": sourceCommit, "wait": true}
	}
	var ok deploy.Deployment
	if code := m.postJSON("/api/v1/deployments", ciToken, req("app", "1.1.0"), &ok); code != http.StatusOK || ok.Status != deploy.Succeeded {
		t.Fatalf("deploy app: %d %s %s", code, ok.Status, ok.Error)
	}
	if ok.Request.SourceCommit != sourceCommit {
		t.Errorf("the deployment records source commit %q", ok.Request.SourceCommit)
	}
	var failed errorAnswer
	if code := m.postJSON("/api/v1/deployments", ciToken, req("stuck", "0.2.0"), &failed); code == http.StatusOK || failed.Deployment == nil {
		t.Fatalf("deploy stuck: %d %+v, want a failed rollout", code, failed)
	}

	find := func(match func(notify.Event) bool) (notify.Event, bool) {
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range events {
			if match(ev) {
				return ev, true
			}
		}
		return notify.Event{}, false
	}
	byID := func(id string) (notify.Event, bool) {
		return find(func(ev notify.Event) bool { return ev.DeploymentID == id })
	}
	var got notify.Event
	waitFor(t, "the notification of the successful deploy", 10*time.Second, func() (found bool) { got, found = byID(ok.ID); return })
	if got.Type != notify.DeploySucceeded || !got.Success || got.Cluster != cluster || got.Image != "registry.example.com/acme/app:1.1.0" ||
		got.Commit != ok.Commit || got.SourceCommit != sourceCommit || got.Project != "acme/app" || got.Author != "Ada <ada@example.com>" ||
		got.Requester != "ci" || len(got.Releases) != 1 || got.Releases[0].Name != "app" || got.Seconds["total"] <= 0 ||
		got.URL != "https://mgo.example.com/ui/#/deployments/"+ok.ID {
		t.Errorf("succeeded event %+v", got)
	}
	waitFor(t, "the notification of the failed deploy", 10*time.Second, func() (found bool) { got, found = byID(failed.Deployment.ID); return })
	if got.Type != notify.DeployFailed || got.Success || got.Stage != string(deploy.StageRollout) || !strings.Contains(got.Error, "stuck") ||
		got.Image != "registry.example.com/acme/stuck:0.2.0" || len(got.Releases) != 1 || got.Releases[0].Name != "stuck" {
		t.Errorf("failed event %+v", got)
	}

	// A person's push, synced after the GitLab webhook, is told as a sync.
	p := gittest.NewPerson(t, remote.Dir, "Frank", "frank@example.com")
	content := strings.Replace(remote.File(t, "installations/"+cluster+"/app-values.yaml"), "replicaCount: 1", "replicaCount: 2", 1)
	if _, err := p.Commit(map[string]string{"installations/" + cluster + "/app-values.yaml": content}, "scale app"); err != nil {
		t.Fatal(err)
	}
	if err := p.Push(); err != nil {
		t.Fatal(err)
	}
	pushed := remote.Head(t)
	hookReq, _ := http.NewRequest(http.MethodPost, m.url+"/hooks/gitlab", strings.NewReader(`{"object_kind":"push"}`))
	hookReq.Header.Set("X-Gitlab-Event", "Push Hook")
	hookReq.Header.Set("X-Gitlab-Token", gitlabHook)
	if resp, err := http.DefaultClient.Do(hookReq); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook: %v %v", resp, err)
	}
	waitFor(t, "the notification of the sync", 30*time.Second, func() (found bool) {
		got, found = find(func(ev notify.Event) bool { return strings.HasPrefix(ev.Type, "sync.") && ev.Commit == pushed })
		return
	})
	// The release stuck still fails its rollout, so the sync as a whole
	// failed; app was upgraded with the pushed change.
	if got.Type != notify.SyncFailed || got.Cluster != cluster || !strings.Contains(got.Error, "notify-stuck/stuck") ||
		len(got.Releases) != 2 || got.Releases[0].Name != "app" || got.Releases[0].Action != "upgraded" ||
		got.Author != "Frank <frank@example.com>" || !strings.HasSuffix(got.Summary, ": scale app") || got.Seconds["synced"] <= 0 ||
		got.URL != "https://mgo.example.com/ui/#/clusters/"+cluster {
		t.Errorf("sync event %+v", got)
	}

	// A change behind mgo's back is told by the drift check.
	if _, err := env.Client.AppsV1().Deployments("notify-app").Patch(t.Context(), "app-hello", types.MergePatchType,
		[]byte(`{"spec":{"replicas":5}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the notification of drift", 30*time.Second, func() (found bool) {
		got, found = find(func(ev notify.Event) bool { return ev.Type == notify.DriftDetected })
		return
	})
	if got.Success || got.Cluster != cluster || got.Objects == 0 {
		t.Errorf("drift event %+v", got)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 || otherHits > 0 {
		t.Errorf("unsigned or unreadable deliveries %q; the staging route got %d", bad, otherHits)
	}
	for _, ev := range events {
		if strings.HasPrefix(ev.Type, "rollback.") || ev.Type == notify.DriftRepaired {
			t.Errorf("the route does not select %s", ev.Type)
		}
	}
}
