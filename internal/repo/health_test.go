package repo

import (
	"strings"
	"testing"
)

func TestHealthParsed(t *testing.T) {
	r := ignoreRepo(t, `  health:
  - apiVersion: example.com/v1
    kind: Database
    current: "has(status.phase) && status.phase == 'Ready'"
    failed: status.phase == 'Failed'
`, `    health:
    - apiVersion: cert-manager.io/v1
      kind: Certificate
      current: "status.?conditions.orValue([]).exists(c, c.type == 'Ready' && c.status == 'True')"
      inProgress: "status.?conditions.orValue([]).exists(c, c.type == 'Issuing' && c.status == 'True')"
    - {apiVersion: v1, kind: ConfigMap, current: "true"}
`)
	if errs := r.Problems.Errors(); len(errs) > 0 {
		t.Fatalf("problems: %v", errs)
	}
	rel := r.Clusters["prod"].Releases[0]
	if !rel.Valid {
		t.Fatal("release not valid")
	}
	h := rel.Header.Health
	if len(h) != 1 || h[0].APIVersion != "example.com/v1" || h[0].Group != "example.com" || h[0].Version != "v1" || h[0].Kind != "Database" ||
		h[0].Failed != "status.phase == 'Failed'" || h[0].InProgress != "" || h[0].File != rel.File || h[0].Line != 6 {
		t.Errorf("header rules: %+v", h)
	}
	if src := h[0].Rule().Source; src != rel.File+":6" {
		t.Errorf("source %q", src)
	}
	c := r.Config.Cluster("prod")
	if c.HealthInvalid || len(c.Health) != 2 || c.Health[0].Kind != "Certificate" || c.Health[0].InProgress == "" || c.Health[0].Line != 5 ||
		c.Health[1].Group != "" || c.Health[1].Version != "v1" || c.Health[1].File != ConfigFile {
		t.Errorf("cluster rules: %+v", c.Health)
	}
}

// Every bad rule is an error at its file and line, and the release is not
// synced.
func TestHealthErrors(t *testing.T) {
	const file = "installations/prod/web-values.yaml"
	rule := "  health:\n  - apiVersion: example.com/v1\n    kind: Database\n"
	for _, tt := range []struct {
		name, header string
		line         int
		msg          string
	}{
		{"not a list", "  health: {kind: Database}\n", 5, "header: health must be a list of rules"},
		{"item not a mapping", "  health: [Database]\n", 5, "header: health[0] must be a mapping"},
		{"bad current", rule + "    current: status.phase ==\n", 8, "header: health[0].current: column 16: Syntax error"},
		{"unknown variable", rule + "    current: state.phase == 'Ready'\n", 8, "header: health[0].current: column 1: undeclared reference to 'state'"},
		{"not a bool", rule + "    current: \"true\"\n    failed: status.phase\n", 9, "" /* dyn: allowed */},
		{"string result", rule + "    current: \"'Ready'\"\n", 8, "header: health[0].current: the expression gives string, not a bool"},
		{"bad failed", rule + "    current: \"true\"\n    failed: status.phase = 'Failed'\n", 9, "header: health[0].failed: column 14: Syntax error"},
		{"missing current", rule + "    failed: \"true\"\n", 6, "header: health[0]: current missing"},
		{"missing kind", "  health:\n  - apiVersion: example.com/v1\n    current: \"true\"\n", 6, "header: health[0]: kind missing"},
		{"bad apiVersion", "  health:\n  - apiVersion: example.com/v1/x\n    kind: Database\n    current: \"true\"\n", 6, `header: health[0].apiVersion: "example.com/v1/x" is not a group/version`},
		{"group only", "  health:\n  - apiVersion: example.com/\n    kind: Database\n    current: \"true\"\n", 6, "is not a group/version"},
		{"unknown key", rule + "    current: \"true\"\n    ready: \"true\"\n", 9, `header: health[0]: unknown key "ready" (known: apiVersion, kind, current, inProgress, failed)`},
		{"not a string", rule + "    current: true\n", 8, "header: health[0].current must be a string, not a boolean"},
		{"empty", rule + "    current: \"\"\n", 8, "header: health[0].current is empty"},
		{"twice", rule + "    current: \"true\"\n  - {apiVersion: example.com/v1, kind: Database, current: \"false\"}\n", 9, "header: health[1]: a second rule for example.com/v1 Database (the first is at line 6)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := ignoreRepo(t, tt.header, "")
			errs := r.Problems.Errors()
			if tt.msg == "" {
				if len(errs) > 0 || !r.Clusters["prod"].Releases[0].Valid {
					t.Fatalf("problems %v", errs)
				}
				return
			}
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
func TestHealthClusterErrors(t *testing.T) {
	r := ignoreRepo(t, "", `    health:
    - apiVersion: example.com/v1
      kind: Database
      current: "true"
    - apiVersion: example.com/v1
      kind: Cache
      current: status.ready &&
`)
	errs := r.Problems.Errors()
	if len(errs) != 2 {
		t.Fatalf("problems %v", errs)
	}
	if errs[1].File != ConfigFile || errs[1].Line != 10 || !strings.Contains(errs[1].Message, "clusters.prod.health[1].current: column 16: Syntax error") {
		t.Errorf("problem %v", errs[1])
	}
	if errs[0].File != "installations/prod/web-values.yaml" || !strings.Contains(errs[0].Message, "not synced until clusters.prod.health in mygitops.yaml (line 4) is fixed") {
		t.Errorf("problem %v", errs[0])
	}
	if r.Clusters["prod"].Releases[0].Valid || !r.Config.Cluster("prod").HealthInvalid {
		t.Error("the release of a cluster with a bad rule is valid")
	}
}
