// Package charttest serves real Helm charts to tests: a chart repository
// (index.yaml and archives over HTTP, with basic auth) and an OCI registry,
// both in-process on loopback, plus the charts under testdata/.
package charttest

import (
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	helmregistry "helm.sh/helm/v4/pkg/registry"
	repov1 "helm.sh/helm/v4/pkg/repo/v1"
	"sigs.k8s.io/yaml"
)

// ChartDir returns the directory of a chart under this package's testdata
// (e.g. "hello"), wherever the calling test runs.
func ChartDir(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", name)
}

// Package builds a chart archive of the chart in dir at version (the
// chart's own version when empty) and returns its path in a temp dir.
func Package(t testing.TB, dir, version string) string {
	t.Helper()
	ch, err := loader.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if version != "" {
		ch.Metadata.Version = version
	}
	path, err := chartutil.Save(ch, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// RepoServer is a Helm chart repository over HTTP.
type RepoServer struct {
	URL string

	dir      string
	user     string
	password string
	mu       sync.Mutex
	requests map[string]int // path -> count
}

// NewRepoServer serves an empty chart repository. With a non-empty user,
// every request needs that basic-auth user and password.
func NewRepoServer(t testing.TB, user, password string) *RepoServer {
	t.Helper()
	s := &RepoServer{dir: t.TempDir(), user: user, password: password, requests: map[string]int{}}
	files := http.FileServer(http.Dir(s.dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests[r.URL.Path]++
		s.mu.Unlock()
		if s.user != "" {
			u, p, ok := r.BasicAuth()
			if !ok || u != s.user || p != s.password {
				w.Header().Set("WWW-Authenticate", `Basic realm="charts"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	s.reindex(t)
	return s
}

// Add publishes the chart in dir at each version and rewrites index.yaml.
func (s *RepoServer) Add(t testing.TB, dir string, versions ...string) {
	t.Helper()
	for _, v := range versions {
		src := Package(t, dir, v)
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(s.dir, filepath.Base(src)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s.reindex(t)
}

func (s *RepoServer) reindex(t testing.TB) {
	t.Helper()
	idx, err := repov1.IndexDirectory(s.dir, s.URL)
	if err != nil {
		t.Fatal(err)
	}
	idx.SortEntries()
	b, err := yaml.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "index.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Requests returns how many requests a path received (e.g. "/index.yaml");
// with an empty path, the number of chart archive downloads.
func (s *RepoServer) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if path != "" {
		return s.requests[path]
	}
	n := 0
	for p, c := range s.requests {
		if strings.HasSuffix(p, ".tgz") {
			n += c
		}
	}
	return n
}

// Registry is an OCI registry in-process, over plain HTTP.
type Registry struct {
	Host string // 127.0.0.1:port
}

// NewRegistry starts an empty OCI registry.
func NewRegistry(t testing.TB) *Registry {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return &Registry{Host: strings.TrimPrefix(srv.URL, "http://")}
}

// Push publishes the chart in dir at version under oci://Host/<repoPath>/<name>
// and returns that chart URL (without the version).
func (r *Registry) Push(t testing.TB, dir, repoPath, version string) string {
	t.Helper()
	b, err := os.ReadFile(Package(t, dir, version))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := loader.LoadArchive(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	client, err := helmregistry.NewClient(helmregistry.ClientOptPlainHTTP(), helmregistry.ClientOptWriter(&bytes.Buffer{}))
	if err != nil {
		t.Fatal(err)
	}
	ref := r.Host + "/" + strings.Trim(repoPath, "/") + "/" + ch.Metadata.Name
	if _, err := client.Push(b, ref+":"+strings.ReplaceAll(ch.Metadata.Version, "+", "_")); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	return "oci://" + ref
}
