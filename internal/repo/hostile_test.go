package repo

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodValues = `__mygitops:
  chart: stable/web
  version: 1.0.0
  name: good
  namespace: app
  images:
    gitlab.com/acme/web: &web
      repository: registry.acme.io/acme/web
      tag: "1.0"
web:
  image:
    <<: *web
`

func header(name string) string {
	return fmt.Sprintf("__mygitops: {chart: stable/web, version: 1.0.0, name: %s, namespace: app}\n", name)
}

// nestedMerges is the 27-second file: every level merges the one before
// twice, 2^levels mappings when expanded naively.
func nestedMerges(levels int) string {
	var b strings.Builder
	b.WriteString(header("nested"))
	b.WriteString("a0: &a0 {x: 1}\n")
	for i := 1; i < levels; i++ {
		fmt.Fprintf(&b, "a%d: &a%d {<<: [*a%d, *a%d], k%d: 1}\n", i, i, i-1, i-1, i)
	}
	fmt.Fprintf(&b, "<<: [*a%d, *a%d]\n", levels-1, levels-1)
	return b.String()
}

func billionLaughs() string {
	var b strings.Builder
	b.WriteString(header("laughs"))
	b.WriteString("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	prev := "a"
	for _, c := range "bcdefghi" {
		fmt.Fprintf(&b, "%c: &%c [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n", c, c, prev, prev, prev, prev, prev, prev, prev, prev, prev)
		prev = string(c)
	}
	return b.String()
}

// writeRepo writes files (path -> content) under a new directory.
func writeRepo(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func symlink(t testing.TB, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

const hostileConfig = "helm:\n  repositories:\n    - name: stable\n      url: https://charts.example.com\n"

// hostileRepo is a repository with one file of each bad class next to good
// releases in the same cluster and another.
func hostileRepo(t testing.TB) string {
	t.Helper()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "passwd-values.yaml"), []byte(goodValues), 0o644); err != nil {
		t.Fatal(err)
	}
	huge := header("huge") + "blob: \"" + strings.Repeat("x", 10<<20) + "\"\n"
	dir := writeRepo(t, map[string]string{
		ConfigFile:                                 hostileConfig,
		"installations/prod/good-values.yaml":      goodValues,
		"installations/prod/selfmerge-values.yaml": "--- &a\n" + header("selfmerge") + "x: 1\n<<: *a\n",
		"installations/prod/nested-values.yaml":    nestedMerges(30),
		"installations/prod/laughs-values.yaml":    billionLaughs(),
		"installations/prod/huge-values.yaml":      huge,
		"installations/prod/utf8-values.yaml":      header("utf8") + "motd: \"caf\xe9\"\n",
		"installations/prod/objects-raw.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\ndata:\n  a: \"1\"\n---\n" +
			"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: counts}\ndata:\n  replicas: 3\n  enabled: true\n  empty:\n---\n" +
			"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n  port: 5432\n  nested: {a: b}\n",
		"installations/staging/good-values.yaml": goodValues,
	})
	prod := filepath.Join(dir, "installations", "prod")
	symlink(t, filepath.Join(outside, "passwd-values.yaml"), filepath.Join(prod, "escape-values.yaml"))
	symlink(t, "good-values.yaml", filepath.Join(prod, "inside-values.yaml"))
	symlink(t, outside, filepath.Join(dir, "installations", "elsewhere"))
	return dir
}

func TestLoadHostileRepo(t *testing.T) {
	dir := hostileRepo(t)
	r, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{ // file:line -> part of the message
		"installations/prod/selfmerge-values.yaml:4": "merge key <<: *a names the node at line 1 that contains it",
		"installations/prod/nested-values.yaml:32":   "aliases expand the document by more than",
		"installations/prod/laughs-values.yaml:10":   "aliases expand the document by more than",
		"installations/prod/huge-values.yaml:0":      "larger than the limit of 1 MiB",
		"installations/prod/utf8-values.yaml:2":      "invalid UTF-8 at byte offset",
		"installations/prod/escape-values.yaml:0":    "symbolic link",
		"installations/prod/inside-values.yaml:0":    "symbolic link",
		"installations/elsewhere:0":                  "symbolic link",
		"installations/prod/objects-raw.yaml:11":     "ConfigMap counts: data.replicas must be a string, not a number",
		"installations/prod/objects-raw.yaml:12":     "ConfigMap counts: data.enabled must be a string, not a boolean",
		"installations/prod/objects-raw.yaml:13":     "ConfigMap counts: data.empty must be a string, not null",
		"installations/prod/objects-raw.yaml:19":     "Secret s: stringData.port must be a string, not a number",
		"installations/prod/objects-raw.yaml:20":     "Secret s: stringData.nested must be a string, not a mapping",
	}
	got := map[string]Problem{}
	for _, p := range r.Problems {
		got[fmt.Sprintf("%s:%d", p.File, p.Line)] = p
	}
	for where, msg := range want {
		p, ok := got[where]
		if !ok || p.Severity != Error || !strings.Contains(p.Message, msg) {
			t.Errorf("%s: want an error with %q, got %+v", where, msg, p)
		}
	}
	if len(r.Problems) != len(want) {
		t.Errorf("%d problems, want %d:\n%v", len(r.Problems), len(want), strings.ReplaceAll(fmt.Sprint(r.Problems), "} {", "}\n{"))
	}
	for _, name := range []string{"prod", "staging"} {
		for _, rl := range r.Clusters[name].Releases {
			wantValid := strings.HasSuffix(rl.File, "/good-values.yaml")
			if rl.Valid != wantValid {
				t.Errorf("%s: valid %v, want %v", rl.File, rl.Valid, wantValid)
			}
			// Values never crash or hang, valid release or not.
			vals, err := rl.Values()
			if wantValid && (err != nil || vals["web"] == nil) {
				t.Errorf("%s: values %v, %v", rl.File, vals, err)
			}
			if !wantValid && err == nil {
				t.Errorf("%s: values of an invalid release: no error", rl.File)
			}
		}
	}
	if raw := r.Clusters["prod"].Raw; len(raw) != 1 || len(raw[0].Objects) != 1 || raw[0].Skipped != 2 {
		t.Errorf("raw %+v", raw)
	}
}

func TestLoadRefusesSymlinkedConfigAndInstallations(t *testing.T) {
	dir := writeRepo(t, map[string]string{"installations/prod/good-values.yaml": goodValues, "real.yaml": hostileConfig})
	symlink(t, "real.yaml", filepath.Join(dir, ConfigFile))
	r, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ps := r.Problems.InFile(ConfigFile); len(ps) == 0 || !strings.Contains(ps[0].Message, "symbolic link") {
		t.Errorf("problems %v", r.Problems)
	}

	dir2 := t.TempDir()
	symlink(t, filepath.Join(dir, InstallationsDir), filepath.Join(dir2, InstallationsDir))
	if _, err := Load(dir2, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Load with a linked installations/: %v", err)
	}
}

func TestLoadRefusesSymlinksInLocalCharts(t *testing.T) {
	values := "__mygitops: {chart: ./charts/web, name: web, namespace: app}\n"
	dir := writeRepo(t, map[string]string{
		"installations/prod/web-values.yaml": values,
		"installations/prod/ok-values.yaml":  strings.ReplaceAll(strings.ReplaceAll(values, "web", "ok"), "./charts/ok", "./charts/plain"),
		"charts/web/Chart.yaml":              "apiVersion: v2\nname: web\nversion: 1.0.0\n",
		"charts/plain/Chart.yaml":            "apiVersion: v2\nname: plain\nversion: 1.0.0\n",
		"charts/plain/templates/cm.yaml":     "kind: ConfigMap\n",
	})
	symlink(t, "/etc/passwd", filepath.Join(dir, "charts", "web", "values.yaml"))
	r, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ps := r.Problems.InFile("installations/prod/web-values.yaml")
	if len(ps) != 1 || ps[0].Line != 1 || !strings.Contains(ps[0].Message, "charts/web/values.yaml is a symbolic link") {
		t.Errorf("problems %v", r.Problems)
	}
	for _, rl := range r.Clusters["prod"].Releases {
		if rl.Valid != (rl.Header.Name == "ok") {
			t.Errorf("%s valid %v", rl.File, rl.Valid)
		}
	}
}

// The secrets file of a release is read under the same rules, and a bad
// one makes its release invalid.
func TestLoadBadSecretsInvalidatesRelease(t *testing.T) {
	dir := writeRepo(t, map[string]string{
		ConfigFile:                             hostileConfig,
		"installations/prod/good-values.yaml":  goodValues,
		"installations/prod/good-secrets.yaml": "a: &a {b: *a}\n",
	})
	r, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rl := r.Clusters["prod"].Releases[0]; rl.Valid {
		t.Errorf("release valid with problems %v", r.Problems)
	}
	if ps := r.Problems.InFile("installations/prod/good-secrets.yaml"); len(ps) != 1 || ps[0].Line != 1 {
		t.Errorf("problems %v", r.Problems)
	}
	if _, err := r.Clusters["prod"].Releases[0].Values(); err == nil {
		t.Error("values with a self-containing secrets file")
	}
}

func TestReadValuesLimits(t *testing.T) {
	for name, src := range map[string]string{
		"self-merge": "--- &a\nx: 1\n<<: *a\n",
		"laughs":     billionLaughs(),
		"nested":     nestedMerges(30),
		"huge":       "a: \"" + strings.Repeat("x", MaxValuesFileSize) + "\"\n",
		"utf8":       "a: \xff\n",
	} {
		dir := writeRepo(t, map[string]string{"v.yaml": src})
		if _, err := readValues(dir, "v.yaml", nil); err == nil || !strings.HasPrefix(err.Error(), "v.yaml") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestHugeFileIsNotRead(t *testing.T) {
	// A sparse 1 GiB file: refused from its size, never read.
	dir := writeRepo(t, map[string]string{"installations/prod/good-values.yaml": goodValues})
	f, err := os.Create(filepath.Join(dir, "installations", "prod", "big-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := readRepoFile(dir, "installations/prod/big-values.yaml", MaxValuesFileSize); err == nil ||
		!strings.Contains(err.Error(), "1073741824 bytes") {
		t.Errorf("read: %v", err)
	}
	_ = bytes.MinRead
}

// A values file mgo reads but Helm's reader refuses is a problem at load,
// not a failure in the middle of a sync.
func TestLoadValuesHelmCannotRead(t *testing.T) {
	dir := writeRepo(t, map[string]string{
		ConfigFile:                             hostileConfig,
		"installations/prod/good-values.yaml":  goodValues,
		"installations/prod/bin-values.yaml":   header("bin") + "x: !!binary zz\n",
		"installations/prod/good-secrets.yaml": "y: !!binary zz\n",
	})
	r, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"installations/prod/bin-values.yaml", "installations/prod/good-secrets.yaml"} {
		if ps := r.Problems.Errors().InFile(file); len(ps) != 1 || !strings.Contains(ps[0].Message, "Helm cannot read these values") {
			t.Errorf("%s: problems %v", file, ps)
		}
	}
	for _, rl := range r.Clusters["prod"].Releases {
		if rl.Valid {
			t.Errorf("%s valid", rl.File)
		}
	}
}
