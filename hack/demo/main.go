// Command demo runs mgo's main job end to end on the local control plane:
//
//	make demo            # or: go run ./hack/demo --mgo bin/mgo
//
// It starts the control plane (etcd, kube-apiserver, controller manager,
// scheduler, kwok nodes), writes a demo gitops repository (one release of a
// small chart) into a local git repository, starts `mgo serve` on it with
// an API token, sends a deploy request the way a CI job does (`mgo deploy
// --server`), and shows the commit and the rollout. With --keep it then
// runs until interrupted, printing how to try more with curl and kubectl
// and, last, the URL of the dashboard.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mygitops/mgo/internal/auth"
	"github.com/mygitops/mgo/internal/charttest"
	"github.com/mygitops/mgo/internal/testenv"
)

const (
	cluster     = "demo"
	triggerRepo = "gitlab.com/acme/hello"
	imageRepo   = "registry.example.com/acme/hello"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	var (
		mgoBin = fs.String("mgo", "bin/mgo", "the mgo binary to run")
		keep   = fs.Bool("keep", false, "keep everything running after the deploy, until interrupted")
		tag    = fs.String("tag", "1.1.0", "the image tag to deploy")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	bin, err := filepath.Abs(*mgoBin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s: %w (run make build first)", bin, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	work, err := os.MkdirTemp("", "mgo-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	step(out, "starting the local control plane")
	start := time.Now()
	env, err := testenv.Start(ctx, testenv.Options{Context: cluster, Nodes: 2})
	if err != nil {
		return err
	}
	defer env.Stop()
	fmt.Fprintf(out, "   ready in %s; kubeconfig %s (context %q)\n", time.Since(start).Round(100*time.Millisecond), env.Kubeconfig, cluster)

	step(out, "writing the demo gitops repository")
	repoURL, err := gitopsRepo(filepath.Join(work, "gitops"))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "   %s\n", repoURL)

	step(out, "starting mgo serve with an API token")
	token := auth.NewToken()
	tokens := filepath.Join(work, "tokens.yaml")
	if err := os.WriteFile(tokens, fmt.Appendf(nil, "tokens:\n  - name: ci\n    sha256: %s\n    clusters: [%q]\n    triggerRepos: [\"gitlab.com/acme/*\"]\n", auth.Hash(token), cluster), 0o600); err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	logPath := filepath.Join(work, "mgo-serve.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	serve := exec.Command(bin, "serve", "--repo-url", repoURL, "--kubeconfig", env.Kubeconfig,
		"--tokens-file", tokens, "--listen", addr, "--data-dir", filepath.Join(work, "mgo"), "--poll-interval", "10s")
	serve.Stdout, serve.Stderr = logFile, logFile
	serve.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := serve.Start(); err != nil {
		return err
	}
	defer func() {
		_ = serve.Process.Signal(syscall.SIGTERM)
		_ = serve.Wait()
	}()
	url := "http://" + addr
	if err := waitSynced(ctx, url, token, 2*time.Minute); err != nil {
		tail(out, logPath)
		return err
	}
	fmt.Fprintf(out, "   serving on %s; first sync done: %s\n", url, deployedImage(ctx, env))

	step(out, "CI asks for a deploy: mgo deploy --server "+url+" --tag "+*tag)
	cmd := exec.CommandContext(ctx, bin, "deploy", "--server", url, "--cluster", cluster, "--trigger-repo", triggerRepo,
		"--image", imageRepo, "--tag", *tag, "--author", "Dana Developer <dana@example.com>")
	cmd.Env = append(os.Environ(), "MGO_TOKEN="+token)
	cmd.Stdout, cmd.Stderr = out, out
	deployErr := cmd.Run()

	step(out, "the commit in the gitops repository")
	if err := showHead(out, filepath.Join(work, "gitops", "repo.git")); err != nil {
		return err
	}
	step(out, "the cluster")
	fmt.Fprintf(out, "   deployment hello-hello: %s\n", deployedImage(ctx, env))
	if deployErr != nil {
		tail(out, logPath)
		return fmt.Errorf("the deploy failed: %w", deployErr)
	}
	if !*keep {
		step(out, "done; stopping mgo and the control plane (run with --keep to try more)")
		return nil
	}
	fmt.Fprintf(out, `
mgo keeps running. Try:

  export KUBECONFIG=%s
  curl --fail -H "Authorization: Bearer %s" %s/deploy \
    --data triggerRepo=%s --data imageRepo=%s --data imageTag=1.2.0 \
    --data cluster=%s --data author=you@example.com
  curl -H "Authorization: Bearer %s" %s/api/v1/deployments
  kubectl get deploy -A

mgo's log: %s. Press Ctrl-C to stop.

The dashboard: %s/ui/ (log in with the API token %s)
`, env.Kubeconfig, token, url, triggerRepo, imageRepo, cluster, token, url, logPath, url, token)
	<-ctx.Done()
	return nil
}

func step(out io.Writer, s string) { fmt.Fprintf(out, "\n==> %s\n", s) }

// gitopsRepo writes the demo repository, commits it, and returns the URL of
// a bare repository holding it (what mgo clones and pushes to).
func gitopsRepo(dir string) (string, error) {
	seed := filepath.Join(dir, "seed")
	files := map[string]string{
		"mygitops.yaml": "# Demo gitops repository for mgo.\nclusters:\n  " + cluster + ":\n    timeout: 60s\n",
		"installations/" + cluster + "/hello-values.yaml": `# The hello service, deployed by mgo.
__mygitops:
  chart: ./charts/hello
  name: hello
  namespace: demo
  images:
    ` + triggerRepo + `: &hello   # CI of this repo sets the tag
      repository: ` + imageRepo + `
      tag: "1.0.0"

image:
  <<: *hello
  pullPolicy: IfNotPresent
replicaCount: 2
greeting: hello from mgo
`,
	}
	for rel, content := range files {
		if err := write(filepath.Join(seed, rel), []byte(content)); err != nil {
			return "", err
		}
	}
	chart := charttest.ChartDir("hello")
	err := filepath.WalkDir(chart, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(chart, p)
		return write(filepath.Join(seed, "charts", "hello", rel), b)
	})
	if err != nil {
		return "", err
	}
	r, err := git.PlainInitWithOptions(seed, &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: "refs/heads/main"}})
	if err != nil {
		return "", err
	}
	wt, err := r.Worktree()
	if err != nil {
		return "", err
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		return "", err
	}
	sig := &object.Signature{Name: "Platform Team", Email: "platform@example.com", When: time.Now()}
	if _, err := wt.Commit("Demo gitops repository", &git.CommitOptions{Author: sig, Committer: sig}); err != nil {
		return "", err
	}
	bare := filepath.Join(dir, "repo.git")
	if _, err := git.PlainClone(bare, true, &git.CloneOptions{URL: seed}); err != nil {
		return "", err
	}
	return "file://" + bare, nil
}

func write(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitSynced waits until mgo serve answers and has synced the cluster once.
func waitSynced(ctx context.Context, url, token string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/api/v1/clusters", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			var cs struct {
				Clusters []struct {
					LastSync time.Time `json:"lastSync"`
					Error    string    `json:"error"`
				} `json:"clusters"`
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if json.Unmarshal(b, &cs) == nil && len(cs.Clusters) == 1 && !cs.Clusters[0].LastSync.IsZero() {
				if cs.Clusters[0].Error != "" {
					return errors.New("first sync failed: " + cs.Clusters[0].Error)
				}
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	return fmt.Errorf("mgo serve did not sync the cluster within %s", timeout)
}

func deployedImage(ctx context.Context, env *testenv.Env) string {
	d, err := env.Client.AppsV1().Deployments("demo").Get(ctx, "hello-hello", metav1.GetOptions{})
	if err != nil {
		return "not found: " + err.Error()
	}
	return fmt.Sprintf("image %s, %d/%d replicas ready", d.Spec.Template.Spec.Containers[0].Image, d.Status.ReadyReplicas, *d.Spec.Replicas)
}

func showHead(out io.Writer, bare string) error {
	r, err := git.PlainOpen(bare)
	if err != nil {
		return err
	}
	head, err := r.Head()
	if err != nil {
		return err
	}
	c, err := r.CommitObject(head.Hash())
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "   commit %s\n   Author:    %s <%s>\n   Committer: %s <%s>\n\n", c.Hash, c.Author.Name, c.Author.Email, c.Committer.Name, c.Committer.Email)
	for _, line := range strings.Split(strings.TrimSpace(c.Message), "\n") {
		fmt.Fprintf(out, "       %s\n", line)
	}
	return nil
}

func tail(out io.Writer, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	fmt.Fprintf(out, "\n--- last lines of mgo serve's log (%s) ---\n%s\n", path, bytes.Join(lines, []byte("\n")))
}
