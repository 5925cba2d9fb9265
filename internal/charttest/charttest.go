// Package charttest serves real Helm charts to tests: a chart repository
// (index.yaml and archives over HTTP, with basic auth) and an OCI registry,
// both in-process on loopback, plus the charts under testdata/.
package charttest

import (
	"bytes"
	"encoding/pem"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
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

// CAFile returns a PEM file trusting the certificate of every RepoServer
// (net/http/httptest serves them all with one certificate).
func CAFile(t testing.TB) string {
	t.Helper()
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	return writeCA(t, srv)
}

func writeCA(t testing.TB, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, cert, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// RepoServer is a Helm chart repository over HTTPS (mgo refuses to send
// credentials over plain http); its certificate is trusted through
// CAFile.
type RepoServer struct {
	URL string
	// CAFile is a PEM file of the certificate authority that signed the
	// server's certificate, for render.Options.CAFile.
	CAFile string

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
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	s.CAFile = writeCA(t, srv)
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

// AddChart copies the chart name of this package's testdata into files
// (a gitops repo's files by path, as gittest.NewRemote takes them) under
// charts/<name>, where a values file's ./charts/<name> finds it.
func AddChart(t testing.TB, files map[string]string, name string) {
	t.Helper()
	root := ChartDir(name)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		files[path.Join("charts", name, filepath.ToSlash(rel))] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
