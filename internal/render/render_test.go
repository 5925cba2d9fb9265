package render

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mygitops/mgo/internal/charttest"
	"github.com/mygitops/mgo/internal/repo"
)

// gitopsRepo writes a one-release gitops repo whose header names chart and
// version, with the hello chart kept in charts/hello, and loads it.
func gitopsRepo(t *testing.T, config, chart, version, tag string) (*repo.Repo, *repo.Release) {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"hello", "hooked"} {
		if err := os.CopyFS(filepath.Join(dir, "charts", name), os.DirFS(charttest.ChartDir(name))); err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel, content string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("mygitops.yaml", config)
	header := "__mygitops:\n  chart: " + chart + "\n  name: web\n  namespace: shop\n"
	if version != "" {
		header += "  version: " + version + "\n"
	}
	write("installations/prod/web-values.yaml", header+`  images:
    gitlab.com/acme/web: &web
      repository: registry.example.com/web
      tag: "`+tag+`"
image:
  <<: *web
replicaCount: 3
`)
	r, err := repo.Load(dir, repo.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) > 0 {
		t.Fatalf("test repo has problems: %v", r.Problems)
	}
	return r, r.Clusters["prod"].Releases[0]
}

func newCharts(t *testing.T, plainHTTP bool) *Charts {
	t.Helper()
	opts := DefaultOptions(t.TempDir())
	opts.PlainHTTP = plainHTTP
	opts.CAFile = charttest.CAFile(t)
	c, err := NewCharts(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLoadLocalChart(t *testing.T) {
	r, rel := gitopsRepo(t, "", "./charts/hello", "", "1.0.0")
	c := newCharts(t, false)
	ch, err := c.Load(context.Background(), r.Dir, r.Config, rel.Header)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Chart.Metadata.Name != "hello" || ch.Version != "0.1.0" || ch.Source != "charts/hello" {
		t.Errorf("loaded %s %s from %s", ch.Chart.Metadata.Name, ch.Version, ch.Source)
	}
	rel.Header.Version = "^2.0.0"
	if _, err := c.Load(context.Background(), r.Dir, r.Config, rel.Header); err == nil || !strings.Contains(err.Error(), `does not satisfy "^2.0.0"`) {
		t.Errorf("version mismatch: %v", err)
	}
}

func TestLoadFromRepository(t *testing.T) {
	srv := charttest.NewRepoServer(t, "ci", "s3cret")
	srv.Add(t, charttest.ChartDir("hello"), "0.1.0", "0.2.0", "0.2.1", "1.0.0")
	t.Setenv("MGO_CHART_TEST_PASSWORD", "s3cret")
	config := "helm:\n  repositories:\n    - name: acme\n      url: " + srv.URL + "\n      username: ci\n      passwordEnv: MGO_CHART_TEST_PASSWORD\n"
	ctx := context.Background()

	r, rel := gitopsRepo(t, config, "acme/hello", "0.2.0", "1.0.0")
	c := newCharts(t, false)
	ch, err := c.Load(ctx, r.Dir, r.Config, rel.Header)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Version != "0.2.0" || ch.Chart.Metadata.Version != "0.2.0" {
		t.Fatalf("loaded version %s", ch.Version)
	}
	if srv.Requests("") != 1 || srv.Requests("/index.yaml") != 1 {
		t.Fatalf("first load: %d downloads, %d index fetches; want 1 and 1", srv.Requests(""), srv.Requests("/index.yaml"))
	}
	// The same exact version again comes from the cache: no request at all.
	if _, err := c.Load(ctx, r.Dir, r.Config, rel.Header); err != nil {
		t.Fatal(err)
	}
	if srv.Requests("") != 1 || srv.Requests("/index.yaml") != 1 {
		t.Errorf("cached load made requests: %d downloads, %d index fetches", srv.Requests(""), srv.Requests("/index.yaml"))
	}
	// A range resolves to the newest match, through the cached index.
	rel.Header.Version = ">=0.1.0 <1.0.0"
	ch, err = c.Load(ctx, r.Dir, r.Config, rel.Header)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Version != "0.2.1" {
		t.Errorf("range resolved to %s, want 0.2.1", ch.Version)
	}
	if srv.Requests("/index.yaml") != 1 {
		t.Errorf("index fetched %d times within its TTL", srv.Requests("/index.yaml"))
	}
	if c.Downloads() != 2 {
		t.Errorf("%d chart downloads, want 2", c.Downloads())
	}

	// A version the index does not have, and a wrong password.
	rel.Header.Version = "9.9.9"
	if _, err := c.Load(ctx, r.Dir, r.Config, rel.Header); err == nil || !strings.Contains(err.Error(), "not in the index") {
		t.Errorf("missing version: %v", err)
	}
	t.Setenv("MGO_CHART_TEST_PASSWORD", "wrong-password")
	rel.Header.Version = "1.0.0"
	_, err = newCharts(t, false).Load(ctx, r.Dir, r.Config, rel.Header)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong password: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("error shows the password: %v", err)
	}
}

func TestLoadFromOCI(t *testing.T) {
	reg := charttest.NewRegistry(t)
	var url string
	for _, v := range []string{"0.1.0", "0.3.0", "1.0.0"} {
		url = reg.Push(t, charttest.ChartDir("hello"), "charts", v)
	}
	ctx := context.Background()
	r, rel := gitopsRepo(t, "", url, "~0.3", "1.0.0")
	c := newCharts(t, true)
	ch, err := c.Load(ctx, r.Dir, r.Config, rel.Header)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Version != "0.3.0" || ch.Chart.Metadata.Name != "hello" {
		t.Fatalf("loaded %s %s", ch.Chart.Metadata.Name, ch.Version)
	}
	rel.Header.Version = "1.0.0"
	for range 2 {
		if ch, err = c.Load(ctx, r.Dir, r.Config, rel.Header); err != nil || ch.Version != "1.0.0" {
			t.Fatalf("exact version: %v %v", ch, err)
		}
	}
	if c.Downloads() != 2 {
		t.Errorf("%d pulls, want 2 (the second exact load is cached)", c.Downloads())
	}
	rel.Header.Version = "2.0.0"
	if _, err := c.Load(ctx, r.Dir, r.Config, rel.Header); err == nil {
		t.Error("pulling a missing version succeeded")
	}
}

var caps = Capabilities{KubeVersion: "v1.37.2", APIVersions: []string{"v1", "apps/v1", "batch/v1"}}

func TestRender(t *testing.T) {
	ctx := context.Background()
	render := func(tag string) *Rendered {
		t.Helper()
		r, rel := gitopsRepo(t, "", "./charts/hello", "", tag)
		ch, err := newCharts(t, false).Load(ctx, r.Dir, r.Config, rel.Header)
		if err != nil {
			t.Fatal(err)
		}
		rr, err := NewRenderer(caps)
		if err != nil {
			t.Fatal(err)
		}
		out, err := rr.Render(ctx, rel, ch, false)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	a := render("1.0.0")
	var kinds []string
	for _, o := range a.Objects {
		kinds = append(kinds, o.GetKind()+"/"+o.GetName())
	}
	want := []string{"ServiceAccount/web-hello", "ConfigMap/web-hello", "Service/web-hello", "Deployment/web-hello"}
	if !reflect.DeepEqual(kinds, want) {
		t.Errorf("objects %v, want %v", kinds, want)
	}
	dep := a.Objects[3]
	containers, _, _ := unstructuredSlice(dep.Object, "spec", "template", "spec", "containers")
	if img := containers[0].(map[string]any)["image"]; img != "registry.example.com/web:1.0.0" {
		t.Errorf("image %v: the header's values did not reach the chart through the anchor", img)
	}
	if replicas, _, _ := unstructuredInt(dep.Object, "spec", "replicas"); replicas != 3 {
		t.Errorf("replicas %d", replicas)
	}
	if a.Digest != render("1.0.0").Digest {
		t.Error("the same input rendered to different digests")
	}
	if a.Digest == render("1.0.1").Digest {
		t.Error("a new tag kept the digest")
	}
}

func TestRenderHooksWithoutTests(t *testing.T) {
	ctx := context.Background()
	r, rel := gitopsRepo(t, "", "./charts/hooked", "", "2.0.0")
	ch, err := newCharts(t, false).Load(ctx, r.Dir, r.Config, rel.Header)
	if err != nil {
		t.Fatal(err)
	}
	rr, _ := NewRenderer(caps)
	out, err := rr.Render(ctx, rel, ch, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Objects) != 1 || out.Objects[0].GetKind() != "Deployment" {
		t.Errorf("objects %v: hooks must not be among them", out.Objects)
	}
	want := []Hook{{Name: "web-migrate", Kind: "Job", Events: []string{"pre-upgrade"}}}
	if !reflect.DeepEqual(out.Hooks, want) {
		t.Errorf("hooks %+v, want %+v (the test hook never runs in a sync)", out.Hooks, want)
	}
}

func TestRenderBrokenTemplate(t *testing.T) {
	r, rel := gitopsRepo(t, "", "./charts/hello", "", "1.0.0")
	broken := filepath.Join(r.Dir, "charts", "hello", "templates", "broken.yaml")
	if err := os.WriteFile(broken, []byte("kind: ConfigMap\nmetadata:\n  name: {{ .Values.nope.deeper }}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ch, err := newCharts(t, false).Load(context.Background(), r.Dir, r.Config, rel.Header)
	if err != nil {
		t.Fatal(err)
	}
	rr, _ := NewRenderer(caps)
	_, err = rr.Render(context.Background(), rel, ch, false)
	if err == nil || !strings.Contains(err.Error(), "installations/prod/web-values.yaml") || !strings.Contains(err.Error(), "broken.yaml") {
		t.Errorf("broken template: %v", err)
	}
}

// Template functions convert as they do in helm itself: sprig's int, int64
// and float64 go through spf13/cast, whose conversions changed after the
// version Helm is built with (go.mod pins it). A chart must render the same
// under mgo as under `helm template`.
func TestRenderConvertsAsHelm(t *testing.T) {
	r, rel := gitopsRepo(t, "", "./charts/hello", "", "1.0.0")
	conv := filepath.Join(r.Dir, "charts", "hello", "templates", "conversions.yaml")
	tpl := `apiVersion: v1
kind: ConfigMap
metadata:
  name: conversions
data:
  int: "{{ int "1.5" }}"
  int64: "{{ int64 "42" }}"
  float: "{{ float64 "2.5" }}"
  bad: "{{ int "seven" }}"
`
	if err := os.WriteFile(conv, []byte(tpl), 0o644); err != nil {
		t.Fatal(err)
	}
	ch, err := newCharts(t, false).Load(context.Background(), r.Dir, r.Config, rel.Header)
	if err != nil {
		t.Fatal(err)
	}
	rr, _ := NewRenderer(caps)
	out, err := rr.Render(context.Background(), rel, ch, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Objects {
		if o.GetName() != "conversions" {
			continue
		}
		data, _, _ := unstructured.NestedStringMap(o.Object, "data")
		want := map[string]string{"int": "0", "int64": "42", "float": "2.5", "bad": "0"}
		for k, v := range want {
			if data[k] != v {
				t.Errorf("%s rendered %q, helm renders %q", k, data[k], v)
			}
		}
		return
	}
	t.Fatal("the ConfigMap was not rendered")
}
