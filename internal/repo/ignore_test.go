package repo

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// ignoreRepo writes a repository with one release whose header ends in
// header and a mygitops.yaml ending in cluster (settings of cluster prod).
func ignoreRepo(t *testing.T, header, cluster string) *Repo {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		ConfigFile:                           "clusters:\n  prod:\n    drift: report\n" + cluster,
		"installations/prod/web-values.yaml": "__mygitops:\n  chart: ./charts/web\n  name: web\n  namespace: app\n" + header + "replicaCount: 2\n",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestIgnoreDifferencesParsed(t *testing.T) {
	r := ignoreRepo(t, `  ignoreDifferences:
  - {kind: Deployment, name: web, jsonPointers: [/spec/replicas]}
  - group: apps
    kind: StatefulSet
    jsonPointers:
    - /spec/template/metadata/annotations/example.com~1restartedAt
`, `    ignoreDifferences:
    - {group: "", kind: ConfigMap, namespace: app, managedFieldsManagers: [kube-controller-manager]}
`)
	if errs := r.Problems.Errors(); len(errs) > 0 {
		t.Fatalf("problems: %v", errs)
	}
	rel := r.Clusters["prod"].Releases[0]
	if !rel.Valid {
		t.Fatal("release not valid")
	}
	h := rel.Header.IgnoreDifferences
	if len(h) != 2 || h[0].Kind != "Deployment" || h[0].Group != "*" || h[0].Name != "web" || !slices.Equal(h[0].JSONPointers, []string{"/spec/replicas"}) ||
		h[0].File != rel.File || h[0].Line != 6 || h[1].Group != "apps" || h[1].Line != 7 {
		t.Errorf("header rules: %+v", h)
	}
	if !h[0].Matches("apps", "Deployment", "app", "web") || h[0].Matches("apps", "Deployment", "app", "api") || h[1].Matches("", "StatefulSet", "app", "db") {
		t.Error("matching")
	}
	c := r.Config.Cluster("prod")
	if c.IgnoreInvalid || len(c.IgnoreDifferences) != 1 || c.IgnoreDifferences[0].Group != "" || c.IgnoreDifferences[0].File != ConfigFile ||
		!slices.Equal(c.IgnoreDifferences[0].ManagedFieldsManagers, []string{"kube-controller-manager"}) {
		t.Errorf("cluster rules: %+v", c)
	}
	toks, err := ParsePointer(h[1].JSONPointers[0])
	if err != nil || !slices.Equal(toks, []string{"spec", "template", "metadata", "annotations", "example.com/restartedAt"}) {
		t.Errorf("pointer tokens %q, %v", toks, err)
	}
}

func TestParsePointer(t *testing.T) {
	for p, want := range map[string][]string{
		"/a~1b/c~0d": {"a/b", "c~d"},
		"/":          {""},
		"/a/0/~01":   {"a", "0", "~1"},
	} {
		got, err := ParsePointer(p)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%q: %q, %v; want %q", p, got, err, want)
		}
	}
	for _, p := range []string{"", "spec/replicas", "/a~2", "/a~"} {
		if _, err := ParsePointer(p); err == nil {
			t.Errorf("%q parsed", p)
		}
	}
}

// Every bad rule is an error at its file and line, and the release is not
// synced.
func TestIgnoreDifferencesErrors(t *testing.T) {
	const file = "installations/prod/web-values.yaml"
	for _, tt := range []struct {
		name, header string
		line         int
		msg          string
	}{
		{"not a list", "  ignoreDifferences: {kind: Deployment}\n", 5, "header: ignoreDifferences must be a list"},
		{"item not a mapping", "  ignoreDifferences: [Deployment]\n", 5, "header: ignoreDifferences[0] must be a mapping"},
		{"unknown key", "  ignoreDifferences:\n  - kind: Deployment\n    jsonPointers: [/spec/replicas]\n    managers: [x]\n", 8, `header: ignoreDifferences[0]: unknown key "managers" (known: group, kind, name, namespace, jsonPointers, managedFieldsManagers)`},
		{"missing kind", "  ignoreDifferences:\n  - name: web\n    jsonPointers: [/spec/replicas]\n", 6, "header: ignoreDifferences[0]: kind missing"},
		{"kind not a string", "  ignoreDifferences:\n  - kind: [Deployment]\n    jsonPointers: [/spec/replicas]\n", 6, "header: ignoreDifferences[0].kind must be a string, not a list"},
		{"empty pointer list", "  ignoreDifferences:\n  - kind: Deployment\n    jsonPointers: []\n", 7, "header: ignoreDifferences[0].jsonPointers is empty"},
		{"pointer without slash", "  ignoreDifferences:\n  - kind: Deployment\n    jsonPointers:\n    - /spec/replicas\n    - spec/paused\n", 9, `header: ignoreDifferences[0].jsonPointers[1]: "spec/paused": not a JSON pointer: must start with '/'`},
		{"bad escape", "  ignoreDifferences:\n  - kind: Deployment\n    jsonPointers: [/metadata/annotations/a~2b]\n", 7, "'~' must be followed by 0"},
		{"pointer not a string", "  ignoreDifferences:\n  - kind: Deployment\n    jsonPointers: [3]\n", 7, "jsonPointers[0] must be a string, not a number"},
		{"identity", "  ignoreDifferences:\n  - kind: Deployment\n    jsonPointers: [/metadata/name]\n", 7, "names the identity of the object"},
		{"all labels", "  ignoreDifferences:\n  - kind: Deployment\n    jsonPointers: [/metadata/labels]\n", 7, "ignore single labels"},
		{"nothing to ignore", "  ignoreDifferences:\n  - kind: Deployment\n    name: web\n", 6, "nothing to ignore: give jsonPointers or managedFieldsManagers"},
		{"own manager", "  ignoreDifferences:\n  - kind: Deployment\n    managedFieldsManagers: [mgo]\n", 7, "mgo's own field manager"},
		{"empty name", "  ignoreDifferences:\n  - kind: Deployment\n    name: \"\"\n    jsonPointers: [/spec/replicas]\n", 7, "name is empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := ignoreRepo(t, tt.header, "")
			errs := r.Problems.Errors()
			if len(errs) != 1 || errs[0].File != file || errs[0].Line != tt.line || !strings.Contains(errs[0].Message, tt.msg) {
				t.Fatalf("problems %v, want %s:%d: ...%s", errs, file, tt.line, tt.msg)
			}
			if r.Clusters["prod"].Releases[0].Valid {
				t.Error("a release with a bad rule is valid")
			}
		})
	}
}

// A bad rule of a cluster is an error in mygitops.yaml, and no release of
// the cluster is synced without it.
func TestIgnoreDifferencesClusterErrors(t *testing.T) {
	r := ignoreRepo(t, "", `    ignoreDifferences:
    - kind: Deployment
      jsonPointers: [/spec/replicas]
    - kind: StatefulSet
      jsonPointers: [spec/replicas]
`)
	errs := r.Problems.Errors()
	if len(errs) != 2 {
		t.Fatalf("problems %v", errs)
	}
	if errs[1].File != ConfigFile || errs[1].Line != 8 || !strings.Contains(errs[1].Message, `clusters.prod.ignoreDifferences[1].jsonPointers[0]: "spec/replicas": not a JSON pointer`) {
		t.Errorf("problem %v", errs[1])
	}
	if errs[0].File != "installations/prod/web-values.yaml" || !strings.Contains(errs[0].Message, "not synced until clusters.prod.ignoreDifferences in mygitops.yaml (line 4) is fixed") {
		t.Errorf("problem %v", errs[0])
	}
	if r.Clusters["prod"].Releases[0].Valid || !r.Config.Cluster("prod").IgnoreInvalid {
		t.Error("the release of a cluster with a bad rule is valid")
	}
}
