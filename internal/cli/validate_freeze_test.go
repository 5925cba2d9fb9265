package cli

import (
	"bytes"
	"strings"
	"testing"
)

// TestValidateFreezes: mgo validate names each bad freeze window with file
// and line, and lists the valid windows of each cluster.
func TestValidateFreezes(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"mygitops.yaml": `clusters:
  prod:
    syncDuringFreeze: false
    freezes:
      - name: weekend
        kind: deny
        schedule: "0 22 * * 5"
        duration: 60h
        timeZone: Europe/Berlin
      - name: typo
        kind: deny
        schedule: "0 22 * * fri-"
        duration: 1h
`,
		"installations/prod/raw.yaml": "",
	}
	writeTree(t, dir, files)
	var out, errOut bytes.Buffer
	if code := Execute([]string{"validate", "--repo", dir}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1; stdout %s; stderr %s", code, out.String(), errOut.String())
	}
	for _, want := range []string{
		`mygitops.yaml:12: error: clusters.prod.freezes[1] (typo): schedule "0 22 * * fri-": not a cron schedule`,
		`cluster prod: freezes: weekend: deny "0 22 * * 5" for 60h0m0s in Europe/Berlin; pushed changes are held during a freeze; `,
		`next deny window weekend from `,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %s:\n%s", want, out.String())
		}
	}
}
