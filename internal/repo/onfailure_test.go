package repo

import (
	"strings"
	"testing"
)

// TestOnFailure: the failure policy of a release is its header's, else
// its cluster's, else keep; values other than keep and revert are errors
// naming the file and line.
func TestOnFailure(t *testing.T) {
	config := `clusters:
  prod:
    onFailure: revert
  staging:
    onFailure: undo
  dev: {}
`
	values := func(name, policy string) string {
		s := "__mygitops:\n  chart: ./charts/web\n  name: " + name + "\n  namespace: app\n"
		if policy != "" {
			s += "  onFailure: " + policy + "\n"
		}
		return s
	}
	dir := writeRepo(t, map[string]string{
		ConfigFile:                              config,
		"charts/web/Chart.yaml":                 "apiVersion: v2\nname: web\nversion: 1.0.0\n",
		"installations/prod/follow-values.yaml": values("follow", ""),
		"installations/prod/keep-values.yaml":   values("keep", "keep"),
		"installations/dev/revert-values.yaml":  values("revert", "revert"),
		"installations/dev/plain-values.yaml":   values("plain", ""),
		"installations/dev/bad-values.yaml":     values("bad", "rollback"),
	})
	r, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`installations/dev/bad-values.yaml:5: error: header: onFailure "rollback" is not a failure policy (keep or revert)`,
		`mygitops.yaml:4: warning: clusters.staging: no directory installations/staging`,
		`mygitops.yaml:5: error: clusters.staging.onFailure: "undo" is not a failure policy (keep or revert)`,
	}
	got := problemStrings(r.Problems)
	if len(got) != len(want) {
		t.Fatalf("problems:\n%s", strings.Join(got, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("problem %d: %s, want %s", i, got[i], w)
		}
	}
	policies := map[string]string{}
	for _, cluster := range []string{"prod", "dev"} {
		for _, rl := range r.Clusters[cluster].Releases {
			policies[rl.Header.Name] = r.Config.OnFailure(cluster, rl.Header)
		}
	}
	for name, p := range map[string]string{"follow": FailureRevert, "keep": FailureKeep, "revert": FailureRevert, "plain": FailureKeep} {
		if policies[name] != p {
			t.Errorf("%s: policy %q, want %q", name, policies[name], p)
		}
	}
	if p := r.Config.OnFailure("staging", Header{}); p != FailureKeep {
		t.Errorf("staging (invalid policy): %q, want keep", p)
	}
	if p := r.Config.OnFailure("unknown", Header{}); p != FailureKeep {
		t.Errorf("a cluster mygitops.yaml does not name: %q, want keep", p)
	}
}
