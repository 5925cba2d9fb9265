package repo

import (
	"strings"
	"testing"
)

func dependsValues(name, ns string, deps ...string) string {
	s := "__mygitops:\n  chart: ./charts/app\n  name: " + name + "\n  namespace: " + ns + "\n"
	if len(deps) > 0 {
		s += "  dependsOn:\n"
		for _, d := range deps {
			s += "    - " + d + "\n"
		}
	}
	return s
}

// TestDependsOn: entries in both forms, unknown targets (a release of
// another cluster among them), a release naming itself, a cycle named file
// by file, and the releases concerned not synced; the others stay valid.
func TestDependsOn(t *testing.T) {
	dir := writeRepo(t, map[string]string{
		"mygitops.yaml": "{}\n",
		"installations/prod/cert-manager-values.yaml": dependsValues("cert-manager", "cert-manager"),
		"installations/prod/issuers-values.yaml":      dependsValues("issuers", "cert-manager", "cert-manager"),
		"installations/prod/app-values.yaml":          dependsValues("app", "app", "cert-manager/issuers", "app/db"),
		"installations/prod/db-values.yaml":           dependsValues("db", "app"),
		"installations/prod/lost-values.yaml":         dependsValues("lost", "app", "app/elsewhere", "staging/web"),
		"installations/prod/self-values.yaml":         dependsValues("self", "app", "self"),
		"installations/prod/a-values.yaml":            dependsValues("a", "loop", "b"),
		"installations/prod/b-values.yaml":            dependsValues("b", "loop", "c"),
		"installations/prod/c-values.yaml":            dependsValues("c", "loop", "a"),
		"installations/prod/d-values.yaml":            dependsValues("d", "loop", "a", "Not/Valid", "7"),
		"installations/staging/web-values.yaml":       dependsValues("web", "staging"),
		"installations/prod/issuers-raw.yaml":         "__mygitops:\n  dependsOn: [cert-manager/cert-manager, app/nothing, bare]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: app}\n",
		"installations/prod/odd-raw.yaml":             "__mygitops:\n  wait: true\n",
	})
	r, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range r.Problems {
		got = append(got, p.String())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		"installations/prod/lost-values.yaml:6: error: header: dependsOn: no release app/elsewhere in installations/prod",
		"installations/prod/lost-values.yaml:7: error: header: dependsOn: no release staging/web in installations/prod (a release may depend only on releases of its own cluster)",
		"installations/prod/self-values.yaml:6: error: header: dependsOn: app/self is this release",
		"installations/prod/a-values.yaml:6: error: header: dependsOn: cycle loop/a (installations/prod/a-values.yaml) → loop/b (installations/prod/b-values.yaml) → loop/c (installations/prod/c-values.yaml) → loop/a",
		"installations/prod/b-values.yaml:6: error: header: dependsOn: cycle loop/a",
		"installations/prod/c-values.yaml:6: error: header: dependsOn: cycle loop/a",
		`installations/prod/d-values.yaml:7: error: header: dependsOn[1]: "Not/Valid" is not a release`,
		"installations/prod/d-values.yaml:8: error: header: dependsOn[2] must be a string",
		"installations/prod/issuers-raw.yaml:2: error: header: dependsOn: no release app/nothing in installations/prod (a raw manifest file may depend only on releases of its own cluster)",
		`installations/prod/issuers-raw.yaml:2: error: header: dependsOn[2]: "bare" is not a release`,
		`installations/prod/odd-raw.yaml:2: error: header: unknown key "wait" (known in a raw manifest file: dependsOn)`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("problems lack %q:\n%s", want, all)
		}
	}
	valid := map[string]bool{}
	for _, rl := range r.Clusters["prod"].Releases {
		valid[rl.Header.Name] = rl.Valid
	}
	for name, want := range map[string]bool{"cert-manager": true, "issuers": true, "app": true, "db": true,
		"lost": false, "self": false, "a": false, "b": false, "c": false, "d": false} {
		if valid[name] != want {
			t.Errorf("release %s valid %v, want %v", name, valid[name], want)
		}
	}
	for _, rf := range r.Clusters["prod"].Raw {
		if rf.File == "installations/prod/issuers-raw.yaml" && (len(rf.DependsOn) != 2 || rf.DependsOn[0].Key() != "cert-manager/cert-manager" || len(rf.Objects) != 1) {
			t.Errorf("issuers-raw.yaml: dependsOn %+v, %d objects", rf.DependsOn, len(rf.Objects))
		}
	}
	app := r.Clusters["prod"].Releases[0]
	for _, rl := range r.Clusters["prod"].Releases {
		if rl.Header.Name == "app" {
			app = rl
		}
	}
	if len(app.Header.DependsOn) != 2 || app.Header.DependsOn[0].Key() != "cert-manager/issuers" || app.Header.DependsOn[1].Key() != "app/db" {
		t.Errorf("app dependsOn %+v", app.Header.DependsOn)
	}
}
