package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mygitops/mgo/internal/api/apitest"
	"github.com/mygitops/mgo/internal/auth"
	"github.com/mygitops/mgo/internal/charttest"
	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/gitrepo"
	"github.com/mygitops/mgo/internal/gittest"
	"github.com/mygitops/mgo/internal/logtest"
	"github.com/mygitops/mgo/internal/server"
	"github.com/mygitops/mgo/internal/testenv"
)

const cluster = "e2e"

var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Main(m, &env, testenv.Options{Context: cluster, Nodes: 2})
}

// values is a values file of the hello chart whose image belongs to
// trigger repo gitlab.com/acme/<name>.
func values(name, ns, tag, extra string) string {
	return `# ` + name + `: deployed by mgo
__mygitops:
  chart: ./charts/hello
  name: ` + name + `
  namespace: ` + ns + `
  images:
    gitlab.com/acme/` + name + `: &img   # CI sets this
      repository: registry.example.com/acme/` + name + `
      tag: "` + tag + `"

image:
  <<: *img
  pullPolicy: IfNotPresent
replicaCount: 1
` + extra
}

// seed is the gitops repo the tests start from: two releases that roll
// out, and one that never becomes ready (its pods fit no node).
func seed(t *testing.T) map[string]string {
	files := map[string]string{
		"mygitops.yaml": "clusters:\n  " + cluster + ":\n    timeout: 20s\n",
		"installations/" + cluster + "/app-values.yaml":    values("app", "e2e-app", "1.0.0", ""),
		"installations/" + cluster + "/worker-values.yaml": values("worker", "e2e-worker", "2.0.0", ""),
		"installations/" + cluster + "/stuck-values.yaml":  values("stuck", "e2e-stuck", "0.1.0", "nodeSelector:\n  pool: none\n"),
	}
	charttest.AddChart(t, files, "hello")
	return files
}

// mgo is a running mgo serve for a test.
type mgo struct {
	t       *testing.T
	url     string
	cancel  context.CancelFunc
	done    chan error
	dataDir string
	logs    *logtest.Buffer
}

const (
	ciToken      = "mgo_ci_token_for_tests"
	otherToken   = "mgo_other_token_for_tests"
	hubToken     = "mgo_dockerhub_token_for_tests"
	gitlabHook   = "gitlab-hook-token"
	githubSecret = "github-hook-secret"
)

func startMgo(t *testing.T, gitURL, passwordFile, dataDir string, mods ...func(*server.Config)) *mgo {
	t.Helper()
	opts := gitrepo.DefaultOptions()
	opts.URL, opts.InsecureAllowHTTP = gitURL, true
	opts.Auth.Username = "mgo"
	opts.Auth.Password = gitrepo.SecretRef{File: passwordFile}
	m := &mgo{t: t, done: make(chan error, 1), dataDir: dataDir, logs: &logtest.Buffer{}}
	started := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	cfg := server.Config{
		Listen: "127.0.0.1:0", Git: opts, DataDir: dataDir, Kubeconfig: env.Kubeconfig,
		ChartCache: filepath.Join(dataDir, "charts"),
		Tokens: []auth.TokenConfig{
			{Name: "ci", SHA256: auth.Hash(ciToken), Clusters: []string{cluster}, TriggerRepos: []string{"gitlab.com/acme/*"}},
			{Name: "other", SHA256: auth.Hash(otherToken), Clusters: []string{"staging"}, TriggerRepos: []string{"*"}},
			{Name: "hub", SHA256: auth.Hash(hubToken), Clusters: []string{cluster}, TriggerRepos: []string{"gitlab.com/acme/*"}, Routes: []string{auth.RouteDockerHub}},
		},
		GitLabToken:     []byte(gitlabHook),
		GitHubSecret:    []byte(githubSecret),
		ShutdownTimeout: time.Minute,
		ResyncInterval:  3 * time.Second,
		Log:             slog.New(slog.NewTextHandler(m.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Started:         func(addr string) { started <- addr },
	}
	for _, mod := range mods {
		mod(&cfg)
	}
	go func() { m.done <- server.Run(ctx, cfg) }()
	select {
	case addr := <-started:
		m.url = "http://" + addr
	case err := <-m.done:
		t.Fatalf("mgo serve did not start: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("mgo serve did not start within 2 minutes")
	}
	t.Cleanup(func() { m.stop() })
	return m
}

// stop shuts mgo down gracefully and returns Run's error.
func (m *mgo) stop() error {
	if m.cancel == nil {
		return nil
	}
	m.cancel()
	m.cancel = nil
	select {
	case err := <-m.done:
		return err
	case <-time.After(2 * time.Minute):
		m.t.Error("mgo serve did not stop within 2 minutes")
		return nil
	}
}

// apiClient is an HTTP client that holds every answer of mgo serve to the
// OpenAPI document (internal/api/openapi.yaml) and fails t on one that
// does not match.
func apiClient(t testing.TB) *http.Client {
	return &http.Client{Transport: apitest.Transport(t, nil)}
}

// call sends a request with a bearer token and decodes the JSON answer.
func (m *mgo) call(method, p, token, contentType string, body io.Reader, out any) int {
	m.t.Helper()
	req, err := http.NewRequest(method, m.url+p, body)
	if err != nil {
		m.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := apiClient(m.t).Do(req)
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

func (m *mgo) postJSON(p, token string, body any, out any) int {
	m.t.Helper()
	b, _ := json.Marshal(body)
	return m.call(http.MethodPost, p, token, "application/json", bytes.NewReader(b), out)
}

func (m *mgo) postForm(p, token string, form url.Values, out any) int {
	m.t.Helper()
	return m.call(http.MethodPost, p, token, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()), out)
}

// errorAnswer is an error answer of the API.
type errorAnswer struct {
	Error      string             `json:"error"`
	Field      string             `json:"field"`
	Deployment *deploy.Deployment `json:"deployment"`
}

// image returns the image of the hello Deployment of a release.
func image(t *testing.T, ns, release string) string {
	t.Helper()
	d, err := env.Client.AppsV1().Deployments(ns).Get(context.Background(), release+"-hello", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
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
		time.Sleep(200 * time.Millisecond)
	}
}

// withoutReleases is seed without its releases: mygitops.yaml and the chart,
// for tests that add the releases they need.
func withoutReleases(t *testing.T) map[string]string {
	files := seed(t)
	for k := range files {
		if strings.HasPrefix(k, "installations/") {
			delete(files, k)
		}
	}
	return files
}

func setup(t *testing.T) (*gittest.Remote, *gittest.HTTPServer, string) {
	t.Helper()
	return setupFiles(t, seed(t))
}

// setupFiles serves a gitops repo of files over HTTP with basic auth and
// returns it, its server and a file holding the password.
func setupFiles(t *testing.T, files map[string]string) (*gittest.Remote, *gittest.HTTPServer, string) {
	t.Helper()
	remote := gittest.NewRemote(t, files)
	srv := gittest.NewHTTPServer(t, remote, "mgo", "s3cret")
	pw := filepath.Join(t.TempDir(), "git-password")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return remote, srv, pw
}
