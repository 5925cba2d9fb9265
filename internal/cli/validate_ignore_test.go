package cli

import (
	"bytes"
	"strings"
	"testing"
)

// TestValidateIgnoreDifferences: mgo validate fails on a bad drift ignore
// rule, in a release header or in mygitops.yaml, naming file and line.
func TestValidateIgnoreDifferences(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"mygitops.yaml": `clusters:
  prod:
    ignoreDifferences:
    - kind: Deployment
      jsonPointers: [spec/replicas]
`,
		"installations/prod/web-values.yaml": `__mygitops:
  chart: ./charts/web
  name: web
  namespace: app
  ignoreDifferences:
  - name: web
    jsonPointers: [/spec/replicas]
replicaCount: 2
`,
	}
	writeTree(t, dir, files)
	var out, errOut bytes.Buffer
	if code := Execute([]string{"validate", "--repo", dir}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1; stdout %s; stderr %s", code, out.String(), errOut.String())
	}
	for _, want := range []string{
		`mygitops.yaml:5: error: clusters.prod.ignoreDifferences[0].jsonPointers[0]: "spec/replicas": not a JSON pointer: must start with '/'`,
		`installations/prod/web-values.yaml:6: error: header: ignoreDifferences[0]: kind missing`,
		`installations/prod/web-values.yaml:1: error: not synced until clusters.prod.ignoreDifferences in mygitops.yaml (line 3) is fixed`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %s:\n%s", want, out.String())
		}
	}
}
