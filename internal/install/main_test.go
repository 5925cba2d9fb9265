package install

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/mygitops/mgo/internal/testenv"
)

const (
	cluster     = "home" // the chart's clusterName and the repo's cluster
	testVersion = "v0.0.0-install.1"
	testCommit  = "0123abc"
	testDate    = "2026-01-02T03:04:05Z"
	imageRepo   = "mygitops/mgo"
)

var (
	env *testenv.Env
	// registryHost is an in-process OCI registry (127.0.0.1:port) that
	// `make image PUSH=...` pushes to.
	registryHost string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	registryHost = strings.TrimPrefix(reg.URL, "http://")
	defer func() {
		if built.dir != "" {
			os.RemoveAll(built.dir)
		}
	}()
	start := time.Now()
	e, err := testenv.Start(context.Background(), testenv.Options{Context: cluster})
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: control plane did not start: %v\n", err)
		return 2
	}
	defer e.Stop()
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "testenv: control plane ready in %s\n", time.Since(start).Round(time.Millisecond))
	}
	env = e
	return m.Run()
}

// artefacts is what one `make dist image` built for the whole test run.
type artefacts struct {
	once sync.Once
	dir  string // BIN_DIR
	err  error
	log  string
	took time.Duration
}

var built artefacts

// repoRoot is the root of the mgo repository.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// build runs `make dist image` once per test run, stamped with testVersion
// and pushing to the in-process registry, and returns its BIN_DIR.
func build(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "mgo-install-"); built.err != nil {
			return
		}
		start := time.Now()
		cmd := exec.Command("make", "--no-print-directory", "dist", "image",
			"BIN_DIR="+built.dir, "VERSION="+testVersion, "COMMIT="+testCommit, "DATE="+testDate,
			"PUSH="+registryHost+"/"+imageRepo, "IMAGE_FLAGS=--insecure")
		cmd.Dir = repoRoot()
		out, err := cmd.CombinedOutput()
		built.log, built.took = string(out), time.Since(start)
		if err != nil {
			built.err = fmt.Errorf("make dist image: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	t.Logf("make dist image: %s (once per test run)", built.took.Round(time.Second))
	return built.dir
}
