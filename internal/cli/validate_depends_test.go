package cli

import (
	"bytes"
	"strings"
	"testing"
)

// TestValidateDependsOnCycle: mgo validate refuses a dependsOn cycle,
// naming each file of it, and a dependency on a release of no cluster's
// directory, and exits 1.
func TestValidateDependsOnCycle(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"mygitops.yaml":                    "{}\n",
		"installations/prod/a-values.yaml": "__mygitops:\n  chart: ./charts/x\n  name: a\n  namespace: app\n  dependsOn: [b]\n",
		"installations/prod/b-values.yaml": "__mygitops:\n  chart: ./charts/x\n  name: b\n  namespace: app\n  dependsOn: [app/a]\n",
		"installations/prod/c-values.yaml": "__mygitops:\n  chart: ./charts/x\n  name: c\n  namespace: app\n  dependsOn: [web/site]\n",
		"charts/x/Chart.yaml":              "apiVersion: v2\nname: x\nversion: 1.0.0\n",
	})
	var out, errOut bytes.Buffer
	if code := Execute([]string{"validate", dir}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{
		"installations/prod/a-values.yaml:5: error: header: dependsOn: cycle app/a (installations/prod/a-values.yaml) → app/b (installations/prod/b-values.yaml) → app/a",
		"installations/prod/b-values.yaml:5: error: header: dependsOn: cycle app/a",
		"installations/prod/c-values.yaml:5: error: header: dependsOn: no release web/site in installations/prod",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
