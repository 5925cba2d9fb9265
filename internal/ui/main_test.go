package ui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/mygitops/mgo/internal/api/apitest"
	"github.com/mygitops/mgo/internal/auth"
	"github.com/mygitops/mgo/internal/charttest"
	"github.com/mygitops/mgo/internal/gitrepo"
	"github.com/mygitops/mgo/internal/gittest"
	"github.com/mygitops/mgo/internal/logtest"
	"github.com/mygitops/mgo/internal/server"
	"github.com/mygitops/mgo/internal/testenv"
)

// The browser tests serve two clusters, prod and staging: two kubeconfig
// contexts of one local control plane (mgo tells them apart by its
// ownership labels, and the releases live in their own namespaces).
var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Main(m, &env, testenv.Options{Context: "prod", Nodes: 1})
}

const (
	adminToken   = "mgo_ui_admin_token_for_tests"
	stagingToken = "mgo_ui_staging_token_for_tests"
)

// values is a values file of the hello chart whose image belongs to
// trigger repo gitlab.com/acme/<name>.
func values(name, ns, tag string) string {
	return `# ` + name + `: deployed by mgo
__mygitops:
  chart: ./charts/hello
  name: ` + name + `
  namespace: ` + ns + `
  images:
    gitlab.com/acme/` + name + `: &img
      repository: registry.example.com/acme/` + name + `
      tag: "` + tag + `"

image:
  <<: *img
  pullPolicy: IfNotPresent
replicaCount: 1
`
}

// gitopsFiles is the repo the browser tests start from.
func gitopsFiles(t *testing.T) map[string]string {
	files := map[string]string{
		"mygitops.yaml": "clusters:\n  prod:\n    timeout: 30s\n  staging:\n    timeout: 30s\n" +
			"    freezes:\n      - {name: new-year, reason: new year, kind: deny, schedule: \"0 0 1 1 *\", duration: 24h}\n",
		"installations/prod/app-values.yaml":      values("app", "ui-prod-app", "1.0.0"),
		"installations/prod/worker-values.yaml":   values("worker", "ui-prod-worker", "2.0.0"),
		"installations/staging/app-values.yaml":   values("app", "ui-staging-app", "1.0.0"),
		"installations/staging/cache-values.yaml": values("cache", "ui-staging-cache", "7.0.0"),
	}
	charttest.AddChart(t, files, "hello")
	return files
}

// kubeconfig writes a kubeconfig with the contexts prod and staging, both
// on the local control plane.
func kubeconfig(t *testing.T) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Contexts["staging"] = cfg.Contexts[env.Context].DeepCopy()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// mgo is a running mgo serve; client validates every answer of the API
// against its OpenAPI document.
type mgo struct {
	t      *testing.T
	url    string
	logs   *logtest.Buffer
	client *http.Client
}

// startMgo serves the gitops repo of files from a real git server, with
// a token for every cluster and one scoped to staging.
func startMgo(t *testing.T, files map[string]string) (*mgo, *gittest.Remote) {
	t.Helper()
	remote := gittest.NewRemote(t, files)
	gitSrv := gittest.NewHTTPServer(t, remote, "mgo", "s3cret")
	pw := filepath.Join(t.TempDir(), "git-password")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := gitrepo.DefaultOptions()
	opts.URL, opts.InsecureAllowHTTP = gitSrv.URL, true
	opts.Auth.Username = "mgo"
	opts.Auth.Password = gitrepo.SecretRef{File: pw}
	dataDir := t.TempDir()
	m := &mgo{t: t, logs: &logtest.Buffer{}, client: &http.Client{Transport: apitest.Transport(t, nil)}}
	started := make(chan string, 1)
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cfg := server.Config{
		Listen: "127.0.0.1:0", Git: opts, DataDir: dataDir, Kubeconfig: kubeconfig(t),
		ChartCache: filepath.Join(dataDir, "charts"),
		Tokens: []auth.TokenConfig{
			{Name: "admin", SHA256: auth.Hash(adminToken), Clusters: []string{"*"}, TriggerRepos: []string{"*"}},
			{Name: "staging-ci", SHA256: auth.Hash(stagingToken), Clusters: []string{"staging"}, TriggerRepos: []string{"*"}},
		},
		ShutdownTimeout: time.Minute,
		Log:             slog.New(slog.NewTextHandler(m.logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Started:         func(addr string) { started <- addr },
	}
	go func() { done <- server.Run(ctx, cfg) }()
	select {
	case addr := <-started:
		m.url = "http://" + addr
	case err := <-done:
		cancel()
		t.Fatalf("mgo serve did not start: %v", err)
	case <-time.After(2 * time.Minute):
		cancel()
		t.Fatal("mgo serve did not start within 2 minutes")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			t.Error("mgo serve did not stop within 2 minutes")
		}
		if t.Failed() {
			t.Logf("mgo serve's log:\n%s", m.logs.String())
		}
	})
	return m, remote
}

// call sends a JSON request with a bearer token and decodes the answer.
func (m *mgo) call(method, p, token string, body, out any) int {
	m.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, m.url+p, r)
	if err != nil {
		m.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.client.Do(req)
	if err != nil {
		m.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			m.t.Fatalf("%s %s: %d %s: %v", method, p, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
