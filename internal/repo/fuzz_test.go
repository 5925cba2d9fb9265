package repo

import (
	"os"
	"path/filepath"
	"testing"
)

// Where FuzzLoad writes its input, chosen by its first argument.
var fuzzTargets = []string{
	"installations/prod/zz-values.yaml", // after good-values.yaml: a duplicate release is the invalid one
	ConfigFile,
	"installations/prod/zz-raw.yaml",
	"installations/prod/good-secrets.yaml",
}

// FuzzLoad writes the input as one file of a repository that is otherwise
// valid (a values file, mygitops.yaml, a raw manifest file or a secrets
// file) and loads it. Load and Release.Values must return (never crash or
// hang: package yamlnode bounds the work), every problem must name its
// file, and a broken values or raw file must not invalidate the release
// next to it or the other cluster.
func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		goodValues,
		"--- &a\n" + header("selfmerge") + "x: 1\n<<: *a\n",
		nestedMerges(30),
		billionLaughs(),
		header("utf8") + "motd: \"caf\xe9\"\n",
		header("x") + "a: &a {b: *a}\n",
		header("x") + "---\n" + header("y"),
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  replicas: 3\n  on: true\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {a: {b: c}}\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: &m {name: c, <<: *m}\n",
		hostileConfig + "clusters:\n  prod:\n    allowedImages: [registry.acme.io/*, \"[\", {a: b}]\n    budget: {qps: 1}\n",
		hostileConfig + "    - name: plain\n      url: http://x.example.com\n      tokenEnv: MGO_CHART_T\n",
		"a: b\n<<: [*x]\n",
		"",
	} {
		for i := range fuzzTargets {
			f.Add(uint8(i), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		target := fuzzTargets[int(which)%len(fuzzTargets)]
		files := map[string]string{
			ConfigFile:                               hostileConfig,
			"installations/prod/good-values.yaml":    goodValues,
			"installations/staging/good-values.yaml": goodValues,
		}
		dir := writeRepo(t, files)
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(target)), data, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := Load(dir, LoadOptions{})
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		for _, p := range r.Problems {
			if p.File == "" || p.Message == "" || p.Line < 0 {
				t.Errorf("incomplete problem %+v", p)
			}
		}
		for _, c := range r.Clusters {
			for _, rl := range c.Releases {
				vals, err := rl.Values()
				if rl.Valid && err != nil && target != fuzzTargets[3] {
					t.Errorf("%s is valid but its values fail: %v", rl.File, err)
				}
				if err == nil && vals == nil {
					t.Errorf("%s: nil values", rl.File)
				}
				if rl.File == "installations/staging/good-values.yaml" && target != ConfigFile && !rl.Valid {
					t.Errorf("the other cluster's release is invalid: %v", r.Problems)
				}
				if rl.File == "installations/prod/good-values.yaml" && (target == fuzzTargets[0] || target == fuzzTargets[2]) && !rl.Valid {
					t.Errorf("a broken %s invalidated the release next to it: %v", target, r.Problems)
				}
			}
		}
	})
}
