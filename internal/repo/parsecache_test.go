package repo

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// Loads through a ParseCache see what loads without one see: the same
// releases and problems, after a values file changed, and after
// mygitops.yaml changed what the files may say.
func TestParseCacheLoadsAsWithout(t *testing.T) {
	values := func(tag string) string {
		return "__mygitops:\n  chart: ./charts/app\n  name: app\n  namespace: prod\n  images:\n    gitlab.com/acme/app:\n      repository: registry.acme.io/acme/app\n      tag: \"" + tag + "\"\nbroken: [\n"
	}
	dir := writeRepo(t, map[string]string{
		"mygitops.yaml":                        "clusters:\n  prod:\n    allowedImages: [registry.acme.io/acme/*]\n",
		"charts/app/Chart.yaml":                "apiVersion: v2\nname: app\nversion: 0.1.0\n",
		"installations/prod/app-values.yaml":   values("1.0.0"),
		"installations/prod/other-values.yaml": "__mygitops:\n  chart: ./charts/app\n  name: other\n  namespace: prod\n",
	})
	cache := NewParseCache()
	check := func(step string) {
		t.Helper()
		want, err := Load(dir, LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			got, err := Load(dir, LoadOptions{Cache: cache})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Problems, want.Problems) {
				t.Fatalf("%s: problems through the cache %v, without %v", step, got.Problems, want.Problems)
			}
			for i, rl := range want.Clusters["prod"].Releases {
				g := got.Clusters["prod"].Releases[i]
				if !reflect.DeepEqual(g.Header, rl.Header) || g.Valid != rl.Valid || g.File != rl.File {
					t.Fatalf("%s: release through the cache %+v, without %+v", step, g, rl)
				}
			}
		}
		if len(want.Problems) == 0 {
			t.Fatalf("%s: the broken values file has no problem", step)
		}
	}
	check("first load")
	if err := os.WriteFile(filepath.Join(dir, "installations/prod/app-values.yaml"), []byte(values("2.0.0")), 0o644); err != nil {
		t.Fatal(err)
	}
	check("a values file changed")
	if err := os.WriteFile(filepath.Join(dir, "mygitops.yaml"), []byte("clusters:\n  prod:\n    allowedImages: [registry.other.io/*]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	check("allowed images changed")
}
