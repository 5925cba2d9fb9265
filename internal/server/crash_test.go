package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mygitops/mgo/internal/auth"
	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/faults"
)

// mgoBinary builds bin/mgo once per test run: the crash tests kill a real
// process, which an in-process server cannot stand in for.
var mgoBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "mgo-crash-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "mgo")
	cmd := exec.Command("go", "build", "-o", bin, "../../cmd/mgo")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// process is `mgo serve` running as its own process.
type process struct {
	t    *testing.T
	cmd  *exec.Cmd
	url  string
	logs string // file with its stderr
	done chan error
}

// startProcess starts bin/mgo serve on the repo behind gitURL with the
// extra environment env (MGO_FAULT_KILL_AT) and waits until it serves.
func startProcess(t *testing.T, gitURL, passwordFile, dataDir, tokensFile string, env ...string) *process {
	t.Helper()
	bin, err := mgoBinary()
	if err != nil {
		t.Fatal(err)
	}
	logs := filepath.Join(dataDir, fmt.Sprintf("mgo-%d.log", time.Now().UnixNano()))
	lf, err := os.Create(logs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--repo-url", gitURL, "--insecure-allow-http",
		"--git-username", "mgo", "--git-password-file", passwordFile,
		"--data-dir", dataDir, "--listen", "127.0.0.1:0", "--kubeconfig", env0Kubeconfig(),
		"--tokens-file", tokensFile, "--poll-interval", "0", "--resync-interval", "0",
		"--shutdown-timeout", "30s", "--log-level", "debug")
	cmd.Env = append(os.Environ(), env...)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr, cmd.Stdout = pw, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	p := &process{t: t, cmd: cmd, logs: logs, done: make(chan error, 1)}
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
	go func() { p.done <- cmd.Wait() }()
	select {
	case a := <-addr:
		p.url = "http://" + a
	case err := <-p.done:
		t.Fatalf("mgo serve exited before serving: %v\n%s", err, p.logText())
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("mgo serve did not serve within 2 minutes\n%s", p.logText())
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(os.Interrupt)
			select {
			case <-p.done:
			case <-time.After(time.Minute):
				cmd.Process.Kill()
			}
		}
	})
	return p
}

func (p *process) logText() string {
	b, _ := os.ReadFile(p.logs)
	return string(b)
}

// client returns an mgo test client for the process's address.
func (p *process) client() *mgo { return &mgo{t: p.t, url: p.url} }

// waitExit waits for the process to end (it kills itself at a fault point).
func (p *process) waitExit(timeout time.Duration) error {
	p.t.Helper()
	select {
	case err := <-p.done:
		return err
	case <-time.After(timeout):
		p.t.Fatalf("mgo serve did not die at its fault point within %s\n%s", timeout, p.logText())
		return nil
	}
}

func env0Kubeconfig() string { return env.Kubeconfig }

// writeTokens writes a tokens file granting ciToken the test cluster.
func writeTokens(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "tokens.yaml")
	body := fmt.Sprintf("tokens:\n  - name: ci\n    sha256: %s\n    clusters: [%s]\n    triggerRepos: [\"gitlab.com/acme/*\"]\n", auth.Hash(ciToken), cluster)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// helmStatuses returns the status of every stored Helm revision of
// release in ns, by revision secret name.
func helmStatuses(t *testing.T, ns, release string) map[string]string {
	t.Helper()
	list, err := env.Client.CoreV1().Secrets(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "owner=helm,name=" + release})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range list.Items {
		out[s.Name] = s.Labels["status"]
	}
	return out
}

// TestCrashRecovery kills `mgo serve` with SIGKILL at each stage of a
// deploy and restarts it: the cluster converges to the repo, no Helm
// release stays pending, the interrupted deployment's record says what
// happened, a retry with the same idempotency key succeeds, and git has
// the change exactly once.
func TestCrashRecovery(t *testing.T) {
	for _, stage := range []string{faults.AfterCommit, faults.AfterPush, faults.HelmUpgrade, faults.RolloutWait} {
		t.Run(stage, func(t *testing.T) {
			ns := "crash-" + stage
			files := withoutReleases(t)
			files["installations/"+cluster+"/app-values.yaml"] = values("app", ns, "1.0.0", "")
			remote, gitSrv, pw := setupFiles(t, files)
			dataDir := t.TempDir()
			tokens := writeTokens(t, dataDir)

			// A first run installs the release at 1.0.0.
			p := startProcess(t, gitSrv.URL, pw, dataDir, tokens)
			waitFor(t, "the first sync", 2*time.Minute, func() bool { return imageOrEmpty(ns, "app") == "registry.example.com/acme/app:1.0.0" })
			p.cmd.Process.Signal(os.Interrupt)
			if err := p.waitExit(time.Minute); err != nil {
				t.Fatalf("a clean stop failed: %v\n%s", err, p.logText())
			}
			seedHead := remote.Head(t)

			// The second run dies at the fault point while deploying 1.1.0.
			p = startProcess(t, gitSrv.URL, pw, dataDir, tokens, faults.EnvKillAt+"="+stage)
			req := map[string]any{"cluster": cluster, "triggerRepo": "gitlab.com/acme/app",
				"imageRepo": "registry.example.com/acme/app", "tag": "1.1.0", "author": "Dana <dana@example.com>",
				"idempotencyKey": "pipeline-" + stage, "wait": true}
			body, _ := json.Marshal(req)
			hr, _ := http.NewRequest(http.MethodPost, p.url+"/api/v1/deployments", strings.NewReader(string(body)))
			hr.Header.Set("Authorization", "Bearer "+ciToken)
			hr.Header.Set("Content-Type", "application/json")
			if resp, err := http.DefaultClient.Do(hr); err == nil {
				resp.Body.Close()
				t.Fatalf("the deploy was answered (%d) although mgo was to die at %s", resp.StatusCode, stage)
			}
			p.waitExit(2 * time.Minute)

			switch stage {
			case faults.AfterCommit:
				if h := remote.Head(t); h != seedHead {
					t.Fatalf("killed before the push, the remote moved: %s", remote.Git(t, "log", "--oneline", "-3"))
				}
			default:
				if n := countDeployCommits(t, remote, "1.1.0"); n != 1 {
					t.Fatalf("killed after the push: %d commits deploy 1.1.0, want 1", n)
				}
			}

			// Restarted without the fault, mgo converges and recovers.
			p = startProcess(t, gitSrv.URL, pw, dataDir, tokens)
			c := p.client()
			if stage != faults.AfterCommit {
				waitFor(t, "the start-up sync to converge", 2*time.Minute, func() bool {
					return imageOrEmpty(ns, "app") == "registry.example.com/acme/app:1.1.0"
				})
			}
			var list struct {
				Deployments []*deploy.Deployment `json:"deployments"`
			}
			c.call(http.MethodGet, "/api/v1/deployments", ciToken, "", nil, &list)
			var interrupted *deploy.Deployment
			for _, d := range list.Deployments {
				if d.Request.IdempotencyKey == "pipeline-"+stage {
					interrupted = d
				}
			}
			if interrupted == nil {
				t.Fatalf("no record of the interrupted deployment: %+v", list.Deployments)
			}
			if interrupted.Status != deploy.Failed || !strings.Contains(interrupted.Error, "mgo stopped") {
				t.Errorf("interrupted deployment: status %s, error %q; want failed, saying mgo stopped", interrupted.Status, interrupted.Error)
			}

			// The same request again, with the same key, succeeds.
			var d deploy.Deployment
			if code := c.postJSON("/api/v1/deployments", ciToken, req, &d); code != http.StatusOK {
				t.Fatalf("retry with the same idempotency key: %d %+v\n%s", code, d, p.logText())
			}
			if d.Status != deploy.Succeeded || d.ID == interrupted.ID {
				t.Fatalf("retry: status %s id %s (interrupted %s), want a new, succeeded deployment: %s", d.Status, d.ID, interrupted.ID, d.Error)
			}
			if got := image(t, ns, "app"); got != "registry.example.com/acme/app:1.1.0" {
				t.Errorf("after the retry the cluster runs %s", got)
			}
			if n := countDeployCommits(t, remote, "1.1.0"); n != 1 {
				t.Errorf("%d commits deploy 1.1.0, want exactly 1:\n%s", n, remote.Git(t, "log", "--oneline"))
			}
			for name, st := range helmStatuses(t, ns, "app") {
				if strings.HasPrefix(st, "pending") {
					t.Errorf("Helm revision %s is still %s", name, st)
				}
			}
		})
	}
}

// countDeployCommits counts the commits on the remote that deploy tag.
func countDeployCommits(t *testing.T, remote interface {
	Git(testing.TB, ...string) string
}, tag string) int {
	t.Helper()
	out := remote.Git(t, "log", "--format=%s")
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "deploy ") && strings.Contains(l, ":"+tag+" ") {
			n++
		}
	}
	return n
}

// imageOrEmpty is image without failing when the Deployment is missing.
func imageOrEmpty(ns, release string) string {
	d, err := env.Client.AppsV1().Deployments(ns).Get(context.Background(), release+"-hello", metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return d.Spec.Template.Spec.Containers[0].Image
}
