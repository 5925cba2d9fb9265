package repo

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func loadGood(t *testing.T) *Repo {
	t.Helper()
	r, err := Load("testdata/good", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The one problem of testdata/good: its secrets file is in clear.
	want := Problems{{File: "installations/prod/app-secrets.yaml", Severity: Warning,
		Message: "not encrypted: anyone who reads the repository reads these values; encrypt it with `sops --encrypt --age <recipient> --in-place installations/prod/app-secrets.yaml` (docs/secrets.md)"}}
	if !reflect.DeepEqual(r.Problems, want) {
		t.Fatalf("testdata/good has problems:\n%v", r.Problems)
	}
	return r
}

func TestLoadGood(t *testing.T) {
	r := loadGood(t)
	if got := r.ClusterNames(); !reflect.DeepEqual(got, []string{"prod", "staging"}) {
		t.Fatalf("clusters %v", got)
	}
	prod := r.Clusters["prod"]
	var files []string
	for _, rl := range prod.Releases {
		files = append(files, rl.File)
		if !rl.Valid {
			t.Errorf("%s not valid", rl.File)
		}
	}
	want := []string{"installations/prod/app-values.yaml", "installations/prod/hello-values.yaml", "installations/prod/redis-values.yaml"}
	if !reflect.DeepEqual(files, want) {
		t.Errorf("release files %v, want %v", files, want)
	}
	app := prod.Releases[0]
	if app.SecretsFile != "installations/prod/app-secrets.yaml" {
		t.Errorf("secrets file %q", app.SecretsFile)
	}
	wantHeader := Header{
		Chart: "acme/app", Version: "~1.4.0", Name: "app", Namespace: "app", Line: 1,
		Images: []ImageSource{
			{TriggerRepo: "gitlab.com/acme/app", Repository: "registry.acme.io/acme/app", Tag: "1.4.1", Line: 7},
			{TriggerRepo: "gitlab.com/acme/worker", Image: "registry.acme.io/acme/worker:2.0.0", Line: 10},
		},
	}
	if !reflect.DeepEqual(app.Header, wantHeader) {
		t.Errorf("header\n got %+v\nwant %+v", app.Header, wantHeader)
	}
	if len(prod.Raw) != 1 || len(prod.Raw[0].Objects) != 2 {
		t.Fatalf("raw files %+v", prod.Raw)
	}
	if o := prod.Raw[0].Objects[1]; o.ID() != "ConfigMap web/motd" || o.Line != 7 {
		t.Errorf("raw object %s at line %d", o.ID(), o.Line)
	}

	cfg := r.Config
	acme, ok := cfg.Repository("acme")
	if !ok || acme.URL != "https://charts.acme.io" || acme.Username != "ci-bot" || acme.PasswordEnv != "ACME_CHARTS_PASSWORD" {
		t.Errorf("repository acme = %+v", acme)
	}
	prodSettings := cfg.Cluster("prod")
	if prodSettings.Drift != DriftRepair || prodSettings.Timeout != 10*time.Minute ||
		prodSettings.Budget != (Budget{QPS: 10, Burst: 20, MaxConcurrentReleases: 2}) || prodSettings.Sync != SyncAuto {
		t.Errorf("prod settings %+v", prodSettings)
	}
	if s := cfg.Cluster("staging"); s.Drift != DriftReport || s.Budget.MaxConcurrentReleases != 4 {
		t.Errorf("staging gets defaults, got %+v", s)
	}
}

func TestReleaseValues(t *testing.T) {
	r := loadGood(t)
	vals, err := r.Clusters["prod"].Releases[0].Values()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := vals[HeaderKey]; ok {
		t.Error("header reached the values")
	}
	want := map[string]any{
		"app": map[string]any{
			"image": map[string]any{ // merged from the header through the anchor
				"repository": "registry.acme.io/acme/app",
				"tag":        "1.4.1",
				"pullPolicy": "IfNotPresent",
			},
			"replicas": float64(3),
		},
		"database": map[string]any{ // secrets merged on top, key by key
			"host":     "db.app.svc",
			"password": "s3cr3t",
			"user":     "app",
		},
	}
	if !reflect.DeepEqual(vals, want) {
		t.Errorf("values\n got %#v\nwant %#v", vals, want)
	}
}

func TestReleasesForTrigger(t *testing.T) {
	r := loadGood(t)
	rels, err := r.ReleasesForTrigger("prod", "gitlab.com/acme/app")
	if err != nil {
		t.Fatal(err)
	}
	if len(rels) != 1 || rels[0].File != "installations/prod/app-values.yaml" {
		t.Errorf("got %v", rels)
	}

	_, err = r.ReleasesForTrigger("qa", "gitlab.com/acme/app")
	if !errors.Is(err, ErrUnknownCluster) {
		t.Fatalf("unknown cluster: %v", err)
	}
	for _, want := range []string{`"qa"`, "installations/qa", "clusters: prod, staging"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	_, err = r.ReleasesForTrigger("prod", "gitlab.com/acme/nothing")
	if !errors.Is(err, ErrTriggerRepoNotListed) {
		t.Fatalf("unlisted trigger repo: %v", err)
	}
	for _, want := range []string{"gitlab.com/acme/nothing", "installations/prod/*-values.yaml", "3 files",
		"github.com/acme/hello, gitlab.com/acme/app, gitlab.com/acme/worker"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(t.TempDir(), LoadOptions{}); !errors.Is(err, ErrNotARepo) {
		t.Errorf("empty dir: %v", err)
	}
	_, err := Load("testdata/good", LoadOptions{Cluster: "qa"})
	if !errors.Is(err, ErrUnknownCluster) || !strings.Contains(err.Error(), "clusters: prod, staging") {
		t.Errorf("unknown cluster: %v", err)
	}
	r, err := Load("testdata/good", LoadOptions{Cluster: "staging"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Clusters) != 1 || r.Clusters["staging"] == nil {
		t.Errorf("loaded %v", r.ClusterNames())
	}
}

func TestCredentials(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MGO_TEST_TOKEN", "from-env")
	r := ChartRepository{Name: "x", Username: "bot", PasswordFile: pw, TokenEnv: "MGO_TEST_TOKEN"}
	policy := CredentialPolicy{Dir: dir, EnvPrefix: "MGO_TEST_"}
	c, err := r.Credentials(policy)
	if err != nil {
		t.Fatal(err)
	}
	if c != (Credentials{Username: "bot", Password: "from-file", Token: "from-env"}) {
		t.Errorf("credentials %+v", c)
	}
	_, err = ChartRepository{Name: "x", PasswordEnv: "MGO_TEST_UNSET_VARIABLE"}.Credentials(policy)
	if err == nil || !strings.Contains(err.Error(), "MGO_TEST_UNSET_VARIABLE is not set") {
		t.Errorf("unset variable: %v", err)
	}
}

func TestParseChartRef(t *testing.T) {
	tests := []struct {
		in      string
		want    ChartRef
		wantErr string
	}{
		{in: "stable/redis", want: ChartRef{Kind: ChartFromRepository, Repository: "stable", Name: "redis"}},
		{in: "oci://ghcr.io/acme/charts/app", want: ChartRef{Kind: ChartFromOCI, URL: "oci://ghcr.io/acme/charts/app", Name: "app"}},
		{in: "./charts/hello", want: ChartRef{Kind: ChartInRepo, Path: "charts/hello", Name: "hello"}},
		{in: "charts/hello/", want: ChartRef{Kind: ChartInRepo, Path: "charts/hello", Name: "hello"}},
		{in: "./charts/../../etc", wantErr: "inside the repository"},
		{in: "https://charts.example.com/redis", wantErr: "only oci://"},
		{in: "oci://ghcr.io", wantErr: "want oci://host/path/chart"},
		{in: "oci://ghcr.io/acme/app:1.0", wantErr: "version field"},
		{in: "redis", wantErr: "want <repo-name>/<chart>"},
		{in: "a/b/c", wantErr: "want <repo-name>/<chart>"},
		{in: "", wantErr: "empty"},
	}
	for _, tt := range tests {
		got, err := ParseChartRef(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: error %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: got %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

// Every kind of problem the bad repository holds is found, with its line.
// The full report is a golden file of the validate command (internal/cli).
func TestLoadBadFindsEveryProblem(t *testing.T) {
	r, err := Load("testdata/bad", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"installations/prod/noheader-values.yaml:1: error: header __mygitops is missing",
		"installations/prod/incomplete-values.yaml:1: error: header: namespace missing",
		"installations/prod/incomplete-values.yaml:5: error: header: images.gitlab.com/acme/web: invalid image repository",
		"installations/prod/incomplete-values.yaml:8: error: header: images.gitlab.com/acme/api: invalid image reference",
		"installations/prod/unknown-repo-values.yaml:1: error: release redis in namespace data is already defined by installations/prod/dup-a-values.yaml",
		"installations/prod/unknown-repo-values.yaml:2: error: header: chart \"bitnami/redis\" names chart repository \"bitnami\"",
		"installations/prod/badyaml-values.yaml:4: error: invalid YAML",
		"installations/prod/orphan-secrets.yaml: error: secrets file without its values file",
		"installations/prod/objects-raw.yaml:6: error: document 2: apiVersion missing",
		"installations/prod/objects-raw.yaml:10: error: document 3: metadata.name missing",
		"installations/prod/objects-raw.yaml:14: error: ConfigMap ok is already defined",
		"installations/edge/range-values.yaml:3: error: header: version \"not-a-version!\"",
		"mygitops.yaml:7: error: helm.repositories[1] (private).password: credentials must not be written",
	}
	var got []string
	for _, p := range r.Problems {
		got = append(got, p.String())
	}
	all := strings.Join(got, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("missing problem %q", w)
		}
	}
	if strings.Contains(all, "hunter2") {
		t.Error("a problem message shows an inline password")
	}
	for _, rl := range r.Clusters["prod"].Releases {
		if rl.Valid != (rl.File == "installations/prod/dup-a-values.yaml") { // the first of two duplicates is fine
			t.Errorf("%s marked valid", rl.File)
		}
	}
}

func TestHeaderDigestKey(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("mygitops.yaml", "{}\n")
	write("installations/prod/app-values.yaml", `__mygitops:
  chart: ./charts/app
  name: app
  namespace: app
  images:
    gitlab.com/acme/app:
      repository: registry.acme.io/acme/app
      tag: "1.4.1"
      digest: sha256:a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90
`)
	r, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Problems {
		if strings.Contains(p.String(), "digest") {
			t.Errorf("problem: %s", p)
		}
	}
	src, ok := r.Clusters["prod"].Releases[0].Header.Image("gitlab.com/acme/app")
	if want := "registry.acme.io/acme/app:1.4.1@sha256:a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"; !ok || src.Reference() != want {
		t.Errorf("reference %q, want %q", src.Reference(), want)
	}
}
