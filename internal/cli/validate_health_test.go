package cli

import (
	"bytes"
	"strings"
	"testing"
)

// TestValidateHealth: mgo validate compiles every health rule, in a
// release header or in mygitops.yaml, and fails on a bad one naming file,
// line, rule and CEL's error.
func TestValidateHealth(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"mygitops.yaml": `clusters:
  prod:
    health:
    - apiVersion: cert-manager.io/v1
      kind: Certificate
      current: "status.?conditions.orValue([]).exists(c, c.type == 'Ready' && c.status == 'True')"
      failed: "status.conditions.exists(c, c.type == 'Ready' && c.status = 'False')"
`,
		"installations/prod/web-values.yaml": `__mygitops:
  chart: ./charts/web
  name: web
  namespace: app
  health:
  - apiVersion: example.com/v1
    kind: Database
    current: "stat.phase == 'Ready'"
replicaCount: 2
`,
	}
	writeTree(t, dir, files)
	var out, errOut bytes.Buffer
	if code := Execute([]string{"validate", "--repo", dir}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1; stdout %s; stderr %s", code, out.String(), errOut.String())
	}
	for _, want := range []string{
		`mygitops.yaml:7: error: clusters.prod.health[0].failed: column 59: Syntax error: token recognition error at: '= '`,
		`installations/prod/web-values.yaml:8: error: header: health[0].current: column 1: undeclared reference to 'stat'`,
		`installations/prod/web-values.yaml:1: error: not synced until clusters.prod.health in mygitops.yaml (line 3) is fixed`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %s:\n%s", want, out.String())
		}
	}
}
