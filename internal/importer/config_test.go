package importer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/v2/loader"

	"github.com/mygitops/mgo/internal/charttest"
	"github.com/mygitops/mgo/internal/repo"
)

func TestConfigWithRepos(t *testing.T) {
	dir := t.TempDir()
	// No mygitops.yaml: one is made.
	b, err := configWithRepos(dir, []ChartRepo{{Name: "a", URL: "https://a.example.com/charts"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "helm:\n  repositories:\n    - name: a\n      url: https://a.example.com/charts\n"; string(b) != want {
		t.Errorf("new config:\n%s\nwant\n%s", b, want)
	}
	// An existing one keeps its comments and other keys, and gains only
	// the repositories it lacks.
	cur := "# repo-wide settings\nhelm:\n  repositories:\n    - name: a\n      url: https://a.example.com/charts/\nclusters:\n  prod:\n    driftPolicy: report # watch only\n"
	if err := os.WriteFile(filepath.Join(dir, repo.ConfigFile), []byte(cur), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err = configWithRepos(dir, []ChartRepo{{Name: "a", URL: "https://a.example.com/charts"}})
	if err != nil || string(b) != cur {
		t.Errorf("a listed repository changed the file (%v):\n%s", err, b)
	}
	b, err = configWithRepos(dir, []ChartRepo{{Name: "oci", URL: "oci://r.example.com/charts"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# repo-wide settings", "# watch only", "- name: oci", "url: oci://r.example.com/charts", "driftPolicy: report"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("config lacks %q:\n%s", want, b)
		}
	}
	if _, err := configWithRepos(dir, []ChartRepo{{Name: "a", URL: "https://b.example.com"}}); err == nil || !strings.Contains(err.Error(), "already lists") {
		t.Errorf("same name, other URL: %v", err)
	}
}

func TestParseChartRepo(t *testing.T) {
	for _, bad := range []string{"a", "=https://x", "a=", "a/b=https://x", "a=ftp://x"} {
		if _, err := ParseChartRepo(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if r, err := ParseChartRepo("acme=oci://r.example.com/charts"); err != nil || r.Name != "acme" || r.URL != "oci://r.example.com/charts" {
		t.Errorf("%+v %v", r, err)
	}
}

// A chart of the same name and version with other files is another chart.
func TestChartDifference(t *testing.T) {
	a, err := loader.LoadDir(charttest.ChartDir("hello"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := loader.LoadDir(charttest.ChartDir("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if d := chartDifference(a, b); d != "" {
		t.Fatalf("same chart differs: %s", d)
	}
	b.Templates[0].Data = append(b.Templates[0].Data, []byte("\n# changed\n")...)
	if d := chartDifference(a, b); !strings.Contains(d, "template "+b.Templates[0].Name+" differs") {
		t.Errorf("changed template: %q", d)
	}
	b, _ = loader.LoadDir(charttest.ChartDir("hello"))
	b.Values["replicaCount"] = 7
	if d := chartDifference(a, b); d != "default values differ" {
		t.Errorf("changed values: %q", d)
	}
	// A chart written from a release reads back as the same chart.
	files, err := chartFiles(a)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "hello")
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	back, err := loader.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d := chartDifference(a, back); d != "" {
		t.Errorf("written chart differs: %s", d)
	}
}
