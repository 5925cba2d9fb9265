package server_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mygitops/mgo/internal/cli"
	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/gittest"
	"github.com/mygitops/mgo/internal/reconcile"
)

// TestServe drives mgo serve over HTTP against a real git server and the
// local control plane: refusals that write nothing, the form API as CI
// uses it, no-op redeploys, concurrent requests, a rollout that fails,
// rollback, a push by a person seen through the GitLab webhook, and
// deployment records that survive a restart.
func TestServe(t *testing.T) {
	remote, gitSrv, pw := setup(t)
	dataDir := t.TempDir()
	m := startMgo(t, gitSrv.URL, pw, dataDir)
	seedHead := remote.Head(t)

	// The initial sync installs every release; app and worker roll out.
	waitFor(t, "initial sync", 90*time.Second, func() bool {
		var cs struct {
			Clusters []deploy.ClusterStatus `json:"clusters"`
		}
		m.call(http.MethodGet, "/api/v1/clusters", ciToken, "", nil, &cs)
		return len(cs.Clusters) == 1 && !cs.Clusters[0].LastSync.IsZero()
	})
	if got := image(t, "e2e-app", "app"); got != "registry.example.com/acme/app:1.0.0" {
		t.Fatalf("after the initial sync app runs %s", got)
	}

	t.Run("refused requests write nothing", func(t *testing.T) {
		form := url.Values{"cluster": {cluster}, "triggerRepo": {"gitlab.com/acme/app"},
			"imageRepo": {"registry.example.com/acme/app"}, "imageTag": {"9.9.9"}, "author": {"Eve <eve@example.com>"}}
		var e errorAnswer
		if code := m.postForm("/deploy", "", form, &e); code != http.StatusUnauthorized {
			t.Errorf("no token: %d %s, want 401", code, e.Error)
		}
		if code := m.postForm("/deploy", "wrong", form, &e); code != http.StatusUnauthorized {
			t.Errorf("wrong token: %d, want 401", code)
		}
		if code := m.postForm("/deploy", otherToken, form, &e); code != http.StatusForbidden {
			t.Errorf("token scoped to another cluster: %d %s, want 403", code, e.Error)
		}
		evil := url.Values{}
		for k, v := range form {
			evil[k] = v
		}
		evil.Set("triggerRepo", "gitlab.com/evil/app")
		if code := m.postForm("/deploy", ciToken, evil, &e); code != http.StatusForbidden {
			t.Errorf("trigger repo outside the scope: %d %s, want 403", code, e.Error)
		}
		bad := url.Values{}
		for k, v := range form {
			bad[k] = v
		}
		bad.Set("imageTag", "no spaces allowed")
		if code := m.postForm("/deploy", ciToken, bad, &e); code != http.StatusBadRequest || e.Field == "" {
			t.Errorf("bad tag: %d field %q %s, want 400 naming the field", code, e.Field, e.Error)
		}
		unknown := url.Values{}
		for k, v := range form {
			unknown[k] = v
		}
		unknown.Set("triggerRepo", "gitlab.com/acme/nobody")
		if code := m.postForm("/deploy", ciToken, unknown, &e); code != http.StatusNotFound || !strings.Contains(e.Error, "searched") {
			t.Errorf("unlisted trigger repo: %d %s, want 404 saying what was searched", code, e.Error)
		}
		big := []byte(`{"author": "` + strings.Repeat("x", 2<<20) + `"}`)
		if code := m.call(http.MethodPost, "/api/v1/deployments", ciToken, "application/json", bytes.NewReader(big), &e); code != http.StatusRequestEntityTooLarge {
			t.Errorf("2 MiB body: %d, want 413", code)
		}
		if code := m.postJSON("/api/v1/deployments", ciToken, map[string]any{"cluster": cluster, "bogus": 1}, &e); code != http.StatusBadRequest {
			t.Errorf("unknown JSON field: %d, want 400", code)
		}
		if h := remote.Head(t); h != seedHead {
			t.Fatalf("a refused request moved the remote head to %s", h)
		}
	})

	var first deploy.Deployment
	t.Run("form deploy waits for the rollout", func(t *testing.T) {
		form := url.Values{"cluster": {cluster}, "triggerRepo": {"gitlab.com/acme/app"},
			"imageRepo": {"registry.example.com/acme/app"}, "imageTag": {"1.1.0"}, "author": {"alice@example.com"}}
		if code := m.postForm("/deploy", ciToken, form, &first); code != http.StatusOK {
			t.Fatalf("deploy: %d %+v", code, first)
		}
		if first.Status != deploy.Succeeded || !first.Changed || first.Commit != remote.Head(t) {
			t.Fatalf("deployment %+v; remote head %s", first, remote.Head(t))
		}
		if got := image(t, "e2e-app", "app"); got != "registry.example.com/acme/app:1.1.0" {
			t.Errorf("app runs %s after the deploy", got)
		}
		author := remote.Git(t, "log", "-1", "--format=%an <%ae>|%cn|%s|%(trailers:key=Deployment-Id,valueonly)", first.Commit)
		if !strings.HasPrefix(author, "alice <alice@example.com>|mgo|deploy registry.example.com/acme/app:1.1.0 to e2e/app") ||
			!strings.Contains(author, first.ID) {
			t.Errorf("commit: %q", author)
		}
		if len(first.Releases) != 1 || first.Releases[0].Action != "upgraded" || len(first.Releases[0].Objects) == 0 {
			t.Errorf("release results: %+v", first.Releases)
		}
		s := first.Seconds
		if !(s.Committed > 0 && s.Pushed >= s.Committed && s.Synced >= s.Pushed && s.RolledOut >= s.Synced && s.Total > 0) {
			t.Errorf("stage times out of order: %+v", s)
		}
	})

	t.Run("redeploying the current tag makes no commit", func(t *testing.T) {
		head := remote.Head(t)
		var d deploy.Deployment
		code := m.postJSON("/api/v1/deployments", ciToken, map[string]any{"cluster": cluster, "triggerRepo": "gitlab.com/acme/app",
			"imageRepo": "registry.example.com/acme/app", "tag": "1.1.0", "author": "bob", "wait": true}, &d)
		if code != http.StatusOK || d.Changed || d.Commit != head || remote.Head(t) != head {
			t.Fatalf("no-op deploy: %d %+v, head %s -> %s", code, d, head, remote.Head(t))
		}
	})

	t.Run("restart rolls the workloads when the tag is unchanged", func(t *testing.T) {
		head := remote.Head(t)
		var d deploy.Deployment
		code := m.postJSON("/api/v1/deployments", ciToken, map[string]any{"cluster": cluster, "triggerRepo": "gitlab.com/acme/app",
			"imageRepo": "registry.example.com/acme/app", "tag": "1.1.0", "author": "bob", "wait": true, "restart": true}, &d)
		if code != http.StatusOK || d.Changed || remote.Head(t) != head || len(d.Releases) != 1 || d.Releases[0].Action != "restarted" {
			t.Fatalf("restart: %d %+v", code, d)
		}
		dep, err := env.Client.AppsV1().Deployments("e2e-app").Get(t.Context(), "app-hello", metav1.GetOptions{})
		if err != nil || dep.Spec.Template.Annotations[reconcile.RestartedAtAnnotation] == "" {
			t.Fatalf("pod template after the restart: %v %v", dep.Spec.Template.Annotations, err)
		}
		// The next sync leaves the restart alone: no drift, no new revision.
		var res reconcile.Result
		if code := m.postJSON("/api/v1/clusters/"+cluster+"/sync?full=true", ciToken, nil, &res); code != http.StatusFailedDependency && code != http.StatusOK {
			t.Fatalf("sync: %d", code)
		}
		if rr, _ := res.Release("e2e-app", "app"); rr.Action != reconcile.Unchanged {
			t.Errorf("full sync after the restart: app %s", rr.Action)
		}
	})

	t.Run("concurrent requests each get their own commit", func(t *testing.T) {
		before := remote.Count(t)
		pushes := gitSrv.Count("receive-pack")
		var wg sync.WaitGroup
		results := make([]deploy.Deployment, 6)
		codes := make([]int, 6)
		for i := range results {
			wg.Go(func() {
				name := []string{"app", "worker"}[i%2]
				codes[i] = m.postJSON("/api/v1/deployments", ciToken, map[string]any{"cluster": cluster,
					"triggerRepo": "gitlab.com/acme/" + name, "imageRepo": "registry.example.com/acme/" + name,
					"tag": fmt.Sprintf("3.0.%d", i), "author": fmt.Sprintf("dev%d@example.com", i), "wait": true}, &results[i])
			})
		}
		wg.Wait()
		for i, d := range results {
			if codes[i] != http.StatusOK || d.Status != deploy.Succeeded || !d.Changed {
				t.Errorf("request %d: %d %+v", i, codes[i], d)
			}
		}
		if n := remote.Count(t) - before; n != 6 {
			t.Errorf("%d new commits, want 6", n)
		}
		authors := remote.Git(t, "log", "--format=%ae", fmt.Sprintf("-%d", 6))
		for i := range results {
			if !strings.Contains(authors, fmt.Sprintf("dev%d@example.com", i)) {
				t.Errorf("no commit by dev%d: %s", i, authors)
			}
		}
		t.Logf("6 concurrent deploys: %d pushes", gitSrv.Count("receive-pack")-pushes)
	})

	t.Run("a rollout that never becomes ready fails the request", func(t *testing.T) {
		form := url.Values{"cluster": {cluster}, "triggerRepo": {"gitlab.com/acme/stuck"},
			"imageRepo": {"registry.example.com/acme/stuck"}, "imageTag": {"0.2.0"}, "author": {"carol"}}
		var e errorAnswer
		code := m.postForm("/deploy", ciToken, form, &e)
		if code < 400 || e.Deployment == nil || e.Deployment.Stage != deploy.StageRollout || !strings.Contains(e.Error, "stuck") {
			t.Fatalf("stuck rollout: %d %+v", code, e)
		}
		t.Logf("stuck rollout answered %d: %s", code, e.Error)
	})

	t.Run("rollback reverts the commit and syncs", func(t *testing.T) {
		var d deploy.Deployment
		var e errorAnswer
		// The concurrent deploys changed app since; reverting the first
		// deploy conflicts with them and must say so.
		if code := m.postJSON("/api/v1/deployments/"+first.ID+"/rollback", ciToken, map[string]any{"wait": true}, &e); code != http.StatusConflict {
			t.Errorf("rollback over later changes: %d %+v", code, e)
		}
		// Deploy, then roll that back.
		code := m.postJSON("/api/v1/deployments", ciToken, map[string]any{"cluster": cluster, "triggerRepo": "gitlab.com/acme/worker",
			"imageRepo": "registry.example.com/acme/worker", "tag": "4.0.0", "author": "dave", "wait": true}, &d)
		if code != http.StatusOK {
			t.Fatalf("deploy: %d %+v", code, d)
		}
		before := image(t, "e2e-worker", "worker")
		var rb deploy.Deployment
		code = m.postJSON("/api/v1/deployments/"+d.ID+"/rollback", ciToken, map[string]any{"wait": true, "author": "erin"}, &rb)
		if code != http.StatusOK || rb.Kind != deploy.KindRollback || !rb.Changed || rb.RollbackOf != d.ID {
			t.Fatalf("rollback: %d %+v", code, rb)
		}
		after := image(t, "e2e-worker", "worker")
		if before != "registry.example.com/acme/worker:4.0.0" || after == before {
			t.Errorf("worker image %s before the rollback, %s after", before, after)
		}
		if msg := remote.Git(t, "log", "-1", "--format=%an|%B"); !strings.Contains(msg, "erin|") || !strings.Contains(msg, d.Commit) {
			t.Errorf("rollback commit: %q", msg)
		}
	})

	t.Run("a push by a person is synced after the GitLab webhook", func(t *testing.T) {
		p := gittest.NewPerson(t, remote.Dir, "Frank", "frank@example.com")
		content := strings.Replace(remote.File(t, "installations/"+cluster+"/worker-values.yaml"), "replicaCount: 1", "replicaCount: 3", 1)
		if _, err := p.Commit(map[string]string{"installations/" + cluster + "/worker-values.yaml": content}, "scale worker"); err != nil {
			t.Fatal(err)
		}
		if err := p.Push(); err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, m.url+"/hooks/gitlab", strings.NewReader(`{"object_kind":"push"}`))
		req.Header.Set("X-Gitlab-Event", "Push Hook")
		req.Header.Set("X-Gitlab-Token", "wrong")
		if resp, err := apiClient(t).Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("webhook with a wrong token: %v %v", resp, err)
		}
		req, _ = http.NewRequest(http.MethodPost, m.url+"/hooks/gitlab", strings.NewReader(`{"object_kind":"push"}`))
		req.Header.Set("X-Gitlab-Event", "Push Hook")
		req.Header.Set("X-Gitlab-Token", gitlabHook)
		resp, err := apiClient(t).Do(req)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("webhook: %v %v", resp, err)
		}
		waitFor(t, "worker scaled to 3", 60*time.Second, func() bool {
			d, err := env.Client.AppsV1().Deployments("e2e-worker").Get(t.Context(), "worker-hello", metav1.GetOptions{})
			return err == nil && d.Spec.Replicas != nil && *d.Spec.Replicas == 3
		})
	})

	t.Run("the drift check reports a change made behind mgo's back", func(t *testing.T) {
		ctx := t.Context()
		dep, err := env.Client.AppsV1().Deployments("e2e-app").Get(ctx, "app-hello", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		five := int32(5)
		dep.Spec.Replicas = &five
		if _, err := env.Client.AppsV1().Deployments("e2e-app").Update(ctx, dep, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "drift reported", 60*time.Second, func() bool {
			var cs struct {
				Clusters []deploy.ClusterStatus `json:"clusters"`
			}
			m.call(http.MethodGet, "/api/v1/clusters", ciToken, "", nil, &cs)
			return len(cs.Clusters) == 1 && cs.Clusters[0].Drift > 0
		})
		var diff struct {
			Differences bool `json:"differences"`
		}
		if code := m.call(http.MethodGet, "/api/v1/clusters/"+cluster+"/diff", ciToken, "", nil, &diff); code != http.StatusOK || !diff.Differences {
			t.Errorf("diff: %d %+v", code, diff)
		}
		// The default policy only reports: the change stays.
		dep, err = env.Client.AppsV1().Deployments("e2e-app").Get(ctx, "app-hello", metav1.GetOptions{})
		if err != nil || *dep.Spec.Replicas != 5 {
			t.Errorf("report policy changed the cluster: %v %v", dep.Spec.Replicas, err)
		}
		// A sync puts it back.
		if code := m.postJSON("/api/v1/clusters/"+cluster+"/sync?full=true", ciToken, nil, nil); code != http.StatusOK && code != http.StatusFailedDependency {
			t.Fatalf("sync: %d", code)
		}
		dep, err = env.Client.AppsV1().Deployments("e2e-app").Get(ctx, "app-hello", metav1.GetOptions{})
		if err != nil || *dep.Spec.Replicas != 1 {
			t.Errorf("after a full sync: replicas %v %v", dep.Spec.Replicas, err)
		}
	})

	t.Run("GitHub push events must carry a valid signature", func(t *testing.T) {
		body := []byte(`{"ref":"refs/heads/main"}`)
		post := func(sig, event string) int {
			req, _ := http.NewRequest(http.MethodPost, m.url+"/hooks/github", bytes.NewReader(body))
			req.Header.Set("X-GitHub-Event", event)
			if sig != "" {
				req.Header.Set("X-Hub-Signature-256", sig)
			}
			resp, err := apiClient(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		mac := hmac.New(sha256.New, []byte(githubSecret))
		mac.Write(body)
		good := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		if code := post("", "push"); code != http.StatusUnauthorized {
			t.Errorf("unsigned: %d", code)
		}
		if code := post("sha256="+strings.Repeat("0", 64), "push"); code != http.StatusUnauthorized {
			t.Errorf("wrong signature: %d", code)
		}
		if code := post(good, "ping"); code != http.StatusOK {
			t.Errorf("ping: %d", code)
		}
		if code := post(good, "push"); code != http.StatusAccepted {
			t.Errorf("signed push: %d", code)
		}
	})

	t.Run("Docker Hub push webhook deploys", func(t *testing.T) {
		hook := `{"push_data": {"tag": "6.0.0", "pusher": "hub-user"}, "repository": {"repo_name": "acme/worker"}}`
		var e errorAnswer
		// The header form repository is docker.io/acme/worker, not the one the
		// values file names: the registry differs, so the repository changes too.
		code := m.call(http.MethodPost, "/deploy/dockerhub?cluster="+cluster+"&triggerRepo=gitlab.com/acme/worker&token="+hubToken,
			"", "application/json", strings.NewReader(hook), &e)
		if code != http.StatusOK {
			t.Fatalf("docker hub hook: %d %+v", code, e)
		}
		if got := image(t, "e2e-worker", "worker"); got != "docker.io/acme/worker:6.0.0" {
			t.Errorf("worker runs %s", got)
		}
		if code := m.call(http.MethodPost, "/deploy/dockerhub?cluster="+cluster+"&triggerRepo=gitlab.com/acme/worker&token=wrong",
			"", "application/json", strings.NewReader(hook), &e); code != http.StatusUnauthorized {
			t.Errorf("wrong token: %d", code)
		}
	})

	t.Run("metrics count deploys", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, m.url+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+ciToken)
		resp, err := apiClient(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{`mgo_deploys_total{result="succeeded"}`, `mgo_deploys_total{result="refused"}`, "mgo_sync_duration_seconds_bucket", "mgo_deploy_queue_depth"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("/metrics has no %s", want)
			}
		}
	})

	t.Run("mgo deploy --server follows the deployment", func(t *testing.T) {
		t.Setenv("MGO_TOKEN", ciToken)
		run := func(name, tag string) (int, string) {
			var out, errOut bytes.Buffer
			code := cli.Execute([]string{"deploy", "--server", m.url, "--cluster", cluster, "--trigger-repo", "gitlab.com/acme/" + name,
				"--image", "registry.example.com/acme/" + name, "--tag", tag, "--author", "gina@example.com", "--poll-interval", "200ms"}, &out, &errOut)
			return code, out.String() + errOut.String()
		}
		if code, out := run("app", "5.0.0"); code != 0 || !strings.Contains(out, "deployed registry.example.com/acme/app:5.0.0") {
			t.Errorf("deploy: exit %d\n%s", code, out)
		}
		if code, out := run("stuck", "0.3.0"); code != 2 || !strings.Contains(out, "FAILED at rollout") {
			t.Errorf("stuck rollout: exit %d, want 2\n%s", code, out)
		}
		if code, out := run("nobody", "1.0.0"); code != 1 || !strings.Contains(out, "404") {
			t.Errorf("unlisted trigger repo: exit %d, want 1\n%s", code, out)
		}
	})

	t.Run("a graceful stop answers deployments in flight; records survive a restart", func(t *testing.T) {
		answered := make(chan int, 1)
		var inflight errorAnswer
		go func() {
			answered <- m.postJSON("/api/v1/deployments", ciToken, map[string]any{"cluster": cluster, "triggerRepo": "gitlab.com/acme/stuck",
				"imageRepo": "registry.example.com/acme/stuck", "tag": "0.4.0", "author": "hal", "wait": true}, &inflight)
		}()
		waitFor(t, "the in-flight deployment to be pushed", 30*time.Second, func() bool {
			var list struct {
				Deployments []deploy.Deployment `json:"deployments"`
			}
			m.call(http.MethodGet, "/api/v1/deployments?limit=1", ciToken, "", nil, &list)
			return len(list.Deployments) == 1 && list.Deployments[0].Request.Tag == "0.4.0" && list.Deployments[0].Status == deploy.Pushed
		})
		if err := m.stop(); err != nil {
			t.Fatalf("graceful stop: %v", err)
		}
		if code := <-answered; code != http.StatusFailedDependency || inflight.Deployment == nil || inflight.Deployment.Stage != deploy.StageRollout {
			t.Errorf("in-flight request answered %d %+v", code, inflight)
		}
		m2 := startMgo(t, gitSrv.URL, pw, dataDir)
		var d deploy.Deployment
		if code := m2.call(http.MethodGet, "/api/v1/deployments/"+first.ID, ciToken, "", nil, &d); code != http.StatusOK || d.Commit != first.Commit || d.Status != deploy.Succeeded {
			t.Fatalf("after restart: %d %+v", code, d)
		}
		var list struct {
			Deployments []deploy.Deployment `json:"deployments"`
		}
		if code := m2.call(http.MethodGet, "/api/v1/deployments?limit=100", ciToken, "", nil, &list); code != http.StatusOK || len(list.Deployments) < 10 {
			t.Fatalf("list after restart: %d, %d deployments", code, len(list.Deployments))
		}
		if code := m2.call(http.MethodGet, "/healthz", "", "", nil, nil); code != http.StatusOK {
			t.Errorf("/healthz: %d", code)
		}
		if code := m2.call(http.MethodGet, "/metrics", "", "", nil, nil); code != http.StatusUnauthorized {
			t.Errorf("/metrics without a token: %d, want 401", code)
		}
	})
}
