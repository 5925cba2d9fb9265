package failover_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"github.com/mygitops/mgo/internal/auth"
	"github.com/mygitops/mgo/internal/charttest"
	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/gittest"
	"github.com/mygitops/mgo/internal/kubestate"
)

const (
	token    = "mgo_ci_token_for_failover"
	releases = 10 // per cluster: each deploy of a burst has its own release
	appsNS   = "apps"
	// leaseDuration is short so the test is quick; production uses 15s.
	leaseDuration = 3 * time.Second
)

var clusters = []string{alpha, beta}

// replica is one `mgo serve --state kubernetes` process.
type replica struct {
	name string
	url  string
	cmd  *exec.Cmd
	logs string
	done chan error

	mu     sync.Mutex
	killed bool
}

func (r *replica) dead() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.killed
}

func (r *replica) kill9(t *testing.T) {
	r.mu.Lock()
	r.killed = true
	r.mu.Unlock()
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-r.done
}

func (r *replica) logText() string {
	b, _ := os.ReadFile(r.logs)
	return string(b)
}

// fixture is the gitops repo, its HTTP remote, the home namespace and
// the three replicas.
type fixture struct {
	t        *testing.T
	remote   *gittest.Remote
	ns       string
	replicas []*replica
}

func repoFiles(t *testing.T) map[string]string {
	files := map[string]string{"mygitops.yaml": "clusters:\n  alpha:\n    timeout: 60s\n  beta:\n    timeout: 60s\n"}
	for _, c := range clusters {
		for i := range releases {
			name := fmt.Sprintf("app%d", i)
			files[fmt.Sprintf("installations/%s/%s-values.yaml", c, name)] = `__mygitops:
  chart: ./charts/hello
  name: ` + name + `
  namespace: ` + appsNS + `
  images:
    gitlab.com/acme/` + name + `: &img
      repository: registry.example.com/acme/` + name + `
      tag: "1.0.0"
image:
  <<: *img
replicaCount: 1
`
		}
	}
	charttest.AddChart(t, files, "hello")
	return files
}

func newFixture(t *testing.T) *fixture {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := kubestate.InstallCRD(ctx, envs[home].Config); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, remote: gittest.NewRemote(t, repoFiles(t)), ns: envs[home].Namespace(t)}
	srv := gittest.NewHTTPServer(t, f.remote, "mgo", "s3cret")
	dir := t.TempDir()
	pw := filepath.Join(dir, "git-password")
	tokens := filepath.Join(dir, "tokens.yaml")
	kc := kubeconfig(t)
	write(t, pw, "s3cret\n")
	write(t, tokens, fmt.Sprintf("tokens:\n  - name: ci\n    sha256: %s\n    clusters: [alpha, beta]\n    triggerRepos: [\"gitlab.com/acme/*\"]\n", auth.Hash(token)))
	var wg sync.WaitGroup
	f.replicas = make([]*replica, 3)
	for i := range f.replicas {
		wg.Go(func() { f.replicas[i] = f.start(fmt.Sprintf("replica-%d", i+1), srv.URL, pw, tokens, kc) })
	}
	wg.Wait()
	for _, r := range f.replicas {
		if r == nil {
			t.FailNow()
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range f.replicas {
				t.Logf("log of %s:\n%s", r.name, tail(r.logText(), 80))
			}
		}
	})
	// Each cluster held by one replica and synced at 1.0.0.
	waitFor(t, "both clusters' leases held and their releases installed", 3*time.Minute, func() bool {
		for _, c := range clusters {
			if f.holder(c) == nil {
				return false
			}
			for i := range releases {
				if imageOf(c, i) != "registry.example.com/acme/"+fmt.Sprintf("app%d", i)+":1.0.0" {
					return false
				}
			}
		}
		return true
	})
	return f
}

func (f *fixture) start(name, gitURL, pw, tokens, kc string) *replica {
	t := f.t
	bin, err := mgoBinary()
	if err != nil {
		t.Error(err)
		return nil
	}
	dataDir := t.TempDir()
	r := &replica{name: name, logs: filepath.Join(dataDir, "mgo.log"), done: make(chan error, 1)}
	lf, err := os.Create(r.logs)
	if err != nil {
		t.Error(err)
		return nil
	}
	r.cmd = exec.Command(bin, "serve", "--repo-url", gitURL, "--insecure-allow-http",
		"--git-username", "mgo", "--git-password-file", pw, "--data-dir", dataDir, "--listen", "127.0.0.1:0",
		"--kubeconfig", kc, "--tokens-file", tokens, "--poll-interval", "0", "--resync-interval", "0",
		"--state", "kubernetes", "--namespace", f.ns, "--state-context", home, "--replica-name", name,
		"--lease-duration", leaseDuration.String(), "--pending-timeout", "2s", "--shutdown-timeout", "20s",
		"--audit-log", filepath.Join(dataDir, "audit.log"), "--log-level", "debug")
	pr, pwr, err := os.Pipe()
	if err != nil {
		t.Error(err)
		return nil
	}
	r.cmd.Stderr, r.cmd.Stdout = pwr, lf
	if err := r.cmd.Start(); err != nil {
		t.Error(err)
		return nil
	}
	pwr.Close()
	addr := make(chan string, 1)
	go func() {
		defer lf.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Bytes()
			lf.Write(append(line, '\n'))
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if !sent && json.Unmarshal(line, &rec) == nil && rec.Msg == "serving" {
				addr <- rec.Addr
				sent = true
			}
		}
	}()
	go func() { r.done <- r.cmd.Wait() }()
	select {
	case a := <-addr:
		r.url = "http://" + a
	case err := <-r.done:
		t.Errorf("%s exited before serving: %v\n%s", name, err, r.logText())
		return nil
	case <-time.After(2 * time.Minute):
		r.cmd.Process.Kill()
		t.Errorf("%s did not serve within 2 minutes\n%s", name, r.logText())
		return nil
	}
	t.Cleanup(func() {
		if r.dead() {
			return
		}
		r.cmd.Process.Signal(os.Interrupt)
		select {
		case <-r.done:
		case <-time.After(time.Minute):
			r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// holder returns the replica holding a cluster's lease, or nil.
func (f *fixture) holder(cluster string) *replica {
	le, err := envs[home].Client.CoordinationV1().Leases(f.ns).Get(context.Background(), kubestate.LeaseName(cluster), metav1.GetOptions{})
	if err != nil || le.Spec.HolderIdentity == nil {
		return nil
	}
	for _, r := range f.replicas {
		if r.name == *le.Spec.HolderIdentity && !r.dead() {
			return r
		}
	}
	return nil
}

// request is the deploy of tag to release i of cluster c.
func request(c string, i int, tag, key string) map[string]any {
	return map[string]any{"cluster": c, "triggerRepo": fmt.Sprintf("gitlab.com/acme/app%d", i),
		"imageRepo": fmt.Sprintf("registry.example.com/acme/app%d", i), "tag": tag,
		"author": fmt.Sprintf("Dev %s %d <dev-%s-%d@acme.io>", c, i, c, i), "idempotencyKey": key, "wait": true}
}

var client = &http.Client{Timeout: 3 * time.Minute}

// post sends one deploy to one replica and decodes the deployment.
func post(r *replica, req map[string]any) (*deploy.Deployment, int, error) {
	body, _ := json.Marshal(req)
	hr, _ := http.NewRequest(http.MethodPost, r.url+"/api/v1/deployments", bytes.NewReader(body))
	hr.Header.Set("Authorization", "Bearer "+token)
	hr.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(hr)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, resp.StatusCode, err
	}
	var failed struct {
		Deployment *deploy.Deployment `json:"deployment"`
	}
	if json.Unmarshal(b, &failed) == nil && failed.Deployment != nil {
		return failed.Deployment, resp.StatusCode, nil
	}
	d := &deploy.Deployment{}
	if err := json.Unmarshal(b, d); err != nil || d.ID == "" {
		return nil, resp.StatusCode, fmt.Errorf("answer %d: %s", resp.StatusCode, b)
	}
	return d, resp.StatusCode, nil
}

// deployRetrying is a CI job: it sends req to one replica and, when that
// one dies or answers that the deployment was interrupted, sends it again
// with the same idempotency key through the next live replica, until the
// deployment succeeds.
func (f *fixture) deployRetrying(start int, req map[string]any) (*deploy.Deployment, int, error) {
	var last error
	for attempt := range 20 {
		r := f.replicas[(start+attempt)%len(f.replicas)]
		if r.dead() {
			continue
		}
		d, code, err := post(r, req)
		switch {
		case err != nil:
			last = fmt.Errorf("%s: %w", r.name, err) // connection broke: retry elsewhere
		case d.Status == deploy.Succeeded:
			return d, attempt, nil
		case d.Status == deploy.Failed && strings.Contains(d.Error, "stopped"):
			last = fmt.Errorf("%s: %s", r.name, d.Error) // interrupted: the key is free again
		default:
			return d, attempt, fmt.Errorf("%s answered %d: %s %s", r.name, code, d.Status, d.Error)
		}
		time.Sleep(200 * time.Millisecond) // a CI job's retry delay, not a synchronization
	}
	return nil, 20, fmt.Errorf("gave up: %w", last)
}

// burst sends one deploy per release of both clusters at once, spread over
// the replicas, and returns their outcomes by cluster/release.
func (f *fixture) burst(tag string, during func()) map[string]*deploy.Deployment {
	t := f.t
	var wg sync.WaitGroup
	var mu sync.Mutex
	out := map[string]*deploy.Deployment{}
	n := 0
	for _, c := range clusters {
		for i := range releases {
			start := n
			n++
			wg.Go(func() {
				req := request(c, i, tag, fmt.Sprintf("%s-%s-%d", tag, c, i))
				d, retries, err := f.deployRetrying(start, req)
				if err != nil {
					t.Errorf("deploy %s to %s/app%d: %v", tag, c, i, err)
					return
				}
				if retries > 0 {
					t.Logf("deploy %s to %s/app%d succeeded after %d retries (deployment %s)", tag, c, i, retries, d.ID)
				}
				mu.Lock()
				out[fmt.Sprintf("%s/app%d", c, i)] = d
				mu.Unlock()
			})
		}
	}
	if during != nil {
		during()
	}
	wg.Wait()
	return out
}

// checkBurst: every deploy of tag succeeded, made one commit with its own
// author, and the clusters run it.
func (f *fixture) checkBurst(tag string, out map[string]*deploy.Deployment) {
	t := f.t
	if len(out) != len(clusters)*releases {
		t.Fatalf("%d deploys of %s succeeded, want %d", len(out), tag, len(clusters)*releases)
	}
	log := f.remote.Git(t, "log", "--format=%s|%an")
	for _, c := range clusters {
		for i := range releases {
			subject := fmt.Sprintf("deploy registry.example.com/acme/app%d:%s to %s/app%d|Dev %s %d", i, tag, c, i, c, i)
			if n := strings.Count(log, subject+"\n"); n != 1 {
				t.Errorf("%d commits %q, want 1", n, subject)
			}
			if got, want := imageOf(c, i), fmt.Sprintf("registry.example.com/acme/app%d:%s", i, tag); got != want {
				t.Errorf("%s/app%d runs %s, want %s", c, i, got, want)
			}
		}
	}
}

// records returns every DeployRecord of the home namespace.
func (f *fixture) records() []*deploy.Deployment {
	dc, err := dynamic.NewForConfig(envs[home].Config)
	if err != nil {
		f.t.Fatal(err)
	}
	list, err := dc.Resource(kubestate.Resource).Namespace(f.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	var out []*deploy.Deployment
	for _, it := range list.Items {
		b, _ := json.Marshal(it.Object["spec"])
		d := &deploy.Deployment{}
		if err := json.Unmarshal(b, d); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

// TestReplicasFailover is the end-to-end test of several replicas: bursts
// of concurrent deploys through three replicas for two clusters, one key
// sent to two replicas at once, and a kill -9 of a cluster's lease holder
// during its sync.
func TestReplicasFailover(t *testing.T) {
	f := newFixture(t)
	start := time.Now()

	// Every replica is ready, also the one that holds no cluster (three
	// replicas, two clusters).
	idle := 0
	for _, r := range f.replicas {
		resp, err := http.Get(r.url + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Clusters []string `json:"clusters"`
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		_ = json.Unmarshal(b, &body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s /readyz: %d %s", r.name, resp.StatusCode, b)
		}
		if len(body.Clusters) == 0 {
			idle++
		}
	}
	if idle == 0 {
		t.Fatal("three replicas hold two clusters, yet every replica reports a cluster in /readyz")
	}

	// 1. A burst of 20 deploys across the replicas, for both clusters.
	out := f.burst("1.1.0", nil)
	f.checkBurst("1.1.0", out)
	t.Logf("burst of %d deploys through 3 replicas: %s", len(out), time.Since(start).Round(time.Millisecond))

	// 2. One idempotency key sent to two replicas at the same moment.
	req := request(beta, 0, "1.2.0", "same-key-two-replicas")
	var wg sync.WaitGroup
	got := make([]*deploy.Deployment, 2)
	errs := make([]error, 2)
	for k := range 2 {
		wg.Go(func() { got[k], _, errs[k] = post(f.replicas[k], req) })
	}
	wg.Wait()
	for k := range 2 {
		if errs[k] != nil || got[k].Status != deploy.Succeeded {
			t.Fatalf("same key through %s: %+v %v", f.replicas[k].name, got[k], errs[k])
		}
	}
	if got[0].ID != got[1].ID {
		t.Fatalf("one idempotency key through two replicas made two deployments: %s and %s", got[0].ID, got[1].ID)
	}
	if n := strings.Count(f.remote.Git(t, "log", "--format=%s"), "deploy registry.example.com/acme/app0:1.2.0 to beta/app0\n"); n != 1 {
		t.Fatalf("%d commits for one idempotency key, want 1", n)
	}

	// 3. The burst again; the holder of alpha's lease is killed while it
	// syncs alpha.
	victim := f.holder(alpha)
	if victim == nil {
		t.Fatal("nobody holds alpha's lease")
	}
	var killedAt time.Time
	out = f.burst("1.3.0", func() {
		waitFor(t, "a Helm upgrade of alpha in progress", 2*time.Minute, func() bool { return upgrading(alpha) })
		victim.kill9(t)
		killedAt = time.Now()
		t.Logf("killed %s (holder of alpha's lease) with SIGKILL during its sync of alpha", victim.name)
		var took *replica
		waitFor(t, "another replica to take over alpha", 2*time.Minute, func() bool {
			for _, r := range f.replicas {
				if !r.dead() && strings.Contains(r.logText(), `"msg":"cluster taken over: syncing it","cluster":"alpha"`) {
					took = r
					return true
				}
			}
			return false
		})
		t.Logf("failover: %s started syncing alpha %s after the kill (lease duration %s)",
			took.name, time.Since(killedAt).Round(10*time.Millisecond), leaseDuration)
	})
	f.checkBurst("1.3.0", out)
	// Nothing is left in flight, and no Helm release pending.
	waitFor(t, "every record finished", time.Minute, func() bool {
		for _, d := range f.records() {
			if !d.Status.Terminal() {
				return false
			}
		}
		return true
	})
	for _, c := range clusters {
		if upgrading(c) {
			t.Errorf("a Helm release of %s is still pending", c)
		}
	}
	for _, r := range f.replicas {
		if strings.Contains(r.logText(), "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race:\n%s", r.name, r.logText())
		}
	}
	t.Logf("whole test: %s", time.Since(start).Round(time.Millisecond))
}

// upgrading reports whether a Helm release of cluster is pending.
func upgrading(cluster string) bool {
	list, err := envs[cluster].Client.CoreV1().Secrets(appsNS).List(context.Background(), metav1.ListOptions{LabelSelector: "owner=helm"})
	if err != nil {
		return false
	}
	for _, s := range list.Items {
		if strings.HasPrefix(s.Labels["status"], "pending") {
			return true
		}
	}
	return false
}

func imageOf(cluster string, i int) string {
	d, err := envs[cluster].Client.AppsV1().Deployments(appsNS).Get(context.Background(), fmt.Sprintf("app%d-hello", i), metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return d.Spec.Template.Spec.Containers[0].Image
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
