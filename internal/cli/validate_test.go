package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mygitops/mgo/internal/repo"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		golden   string
	}{
		{"good", []string{"validate", "--repo", "../repo/testdata/good"}, 0, "validate/good.txt"},
		{"good json", []string{"validate", "--repo", "../repo/testdata/good", "-o", "json"}, 0, "validate/good.json"},
		{"bad", []string{"validate", "--repo", "../repo/testdata/bad"}, 1, "validate/bad.txt"},
		{"bad json", []string{"validate", "--repo", "../repo/testdata/bad", "-o", "json"}, 1, "validate/bad.json"},
		{"one cluster", []string{"validate", "--repo", "../repo/testdata/bad", "--cluster", "edge"}, 1, "validate/bad-edge.txt"},
		{"path as an argument", []string{"validate", "../repo/testdata/bad"}, 1, "validate/bad.txt"},
		{"path and the same --repo", []string{"validate", "../repo/testdata/good", "--repo", "../repo/testdata/good"}, 0, "validate/good.txt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := Execute(tt.args, &out, &errOut); code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr %s", code, tt.wantCode, errOut.String())
			}
			if errOut.Len() > 0 {
				t.Errorf("unexpected stderr %q", errOut.String())
			}
			assertGolden(t, tt.golden, out.Bytes())
		})
	}
}

func TestValidateJSONIsMachineReadable(t *testing.T) {
	var out, errOut bytes.Buffer
	Execute([]string{"validate", "--repo", "../repo/testdata/bad", "-o", "json"}, &out, &errOut)
	var rep validateReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Valid || rep.Errors == 0 || len(rep.Problems) != rep.Errors+rep.Warnings {
		t.Errorf("report %+v", rep)
	}
	for _, p := range rep.Problems {
		if p.File == "" || p.Message == "" || (p.Severity != "error" && p.Severity != "warning") {
			t.Errorf("incomplete problem %+v", p)
		}
	}
}

func TestValidateCannotRun(t *testing.T) {
	for _, args := range [][]string{
		{"validate", "--repo", t.TempDir()},
		{"validate", "../repo/testdata/good", "--repo", "../repo/testdata/bad"},
		{"validate", "a", "b"},
		{"validate", "--repo", "../repo/testdata/good", "--cluster", "qa"},
		{"validate", "--repo", "../repo/testdata/good", "-o", "xml"},
	} {
		var out, errOut bytes.Buffer
		if code := Execute(args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
		if !strings.HasPrefix(errOut.String(), "Error: ") {
			t.Errorf("%v: stderr %q", args, errOut.String())
		}
	}
}

// hostileRepo writes a repository with one file of each bad class the
// service must survive (they cannot all live in testdata: a 10 MiB file, a
// link out of the repository), next to valid releases.
func hostileRepo(t *testing.T) string {
	t.Helper()
	dir, outside := t.TempDir(), t.TempDir()
	hdr := func(name string) string {
		return "__mygitops: {chart: stable/web, version: 1.0.0, name: " + name + ", namespace: app}\n"
	}
	var nested strings.Builder
	nested.WriteString(hdr("nested") + "a0: &a0 {x: 1}\n")
	for i := 1; i < 30; i++ {
		fmt.Fprintf(&nested, "a%d: &a%d {<<: [*a%d, *a%d], k%d: 1}\n", i, i, i-1, i-1, i)
	}
	nested.WriteString("<<: [*a29, *a29]\n")
	laughs := hdr("laughs") + "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
	prev := "a"
	for _, c := range "bcdefghi" {
		laughs += fmt.Sprintf("%c: &%c [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n", c, c, prev, prev, prev, prev, prev, prev, prev, prev, prev)
		prev = string(c)
	}
	good := "__mygitops:\n  chart: stable/web\n  version: 1.0.0\n  name: good\n  namespace: app\n  images:\n" +
		"    gitlab.com/acme/web: {repository: registry.acme.io/acme/web, tag: \"1.0\"}\n"
	files := map[string]string{
		"mygitops.yaml": "helm:\n  repositories:\n    - name: stable\n      url: https://charts.example.com\n" +
			"    - name: plain\n      url: http://charts.example.com\n      tokenEnv: MGO_CHART_TOKEN\n" +
			"clusters:\n  prod:\n    allowedImages: [registry.acme.io/acme/*, \"registry.acme.io/[\"]\n",
		"installations/prod/good-values.yaml":      good,
		"installations/prod/selfmerge-values.yaml": "--- &a\n" + hdr("selfmerge") + "x: 1\n<<: *a\n",
		"installations/prod/nested-values.yaml":    nested.String(),
		"installations/prod/laughs-values.yaml":    laughs,
		"installations/prod/huge-values.yaml":      hdr("huge") + "blob: \"" + strings.Repeat("x", 10<<20) + "\"\n",
		"installations/prod/utf8-values.yaml":      hdr("utf8") + "motd: \"caf\xe9\"\n",
		"installations/prod/elsewhere-values.yaml": strings.ReplaceAll(good, "name: good", "name: elsewhere") +
			"    gitlab.com/acme/tool: {image: docker.io/evil/tool:1}\n",
		"installations/prod/settings-raw.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata:\n  replicas: 3\n  debug: false\n",
		"installations/staging/good-values.yaml": good,
	}
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "token"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"installations/prod/escape-values.yaml": filepath.Join(outside, "token"),
		"installations/prod/escape-raw.yaml":    "/etc/passwd",
		"installations/elsewhere":               outside,
	} {
		if err := os.Symlink(target, filepath.Join(dir, filepath.FromSlash(link))); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestValidateHostileRepo: every bad file is named with its line, mgo
// validate returns (no crash, no hang) and the valid releases stay valid.
func TestValidateHostileRepo(t *testing.T) {
	dir := hostileRepo(t)
	var out, errOut bytes.Buffer
	if code := Execute([]string{"validate", "--repo", dir}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1; stderr %s", code, errOut.String())
	}
	if strings.Contains(out.String(), "secret") || strings.Contains(out.String(), dir) {
		t.Errorf("output shows a secret or the host's paths:\n%s", out.String())
	}
	assertGolden(t, "validate/hostile.txt", out.Bytes())

	out.Reset()
	Execute([]string{"validate", "--repo", dir, "-o", "json"}, &out, &errOut)
	var rep validateReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		if p.File == "" {
			t.Errorf("problem without a file: %+v", p)
		}
	}
	// The valid releases still load valid, in this cluster and the other.
	r, err := repo.Load(dir, repo.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range r.Clusters {
		for _, rl := range c.Releases {
			if want := strings.HasSuffix(rl.File, "/good-values.yaml"); rl.Valid != want {
				t.Errorf("%s: valid %v, want %v", rl.File, rl.Valid, want)
			}
		}
	}
}
