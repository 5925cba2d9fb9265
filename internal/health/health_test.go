package health

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func object(status map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/v1",
		"kind":       "Database",
		"metadata":   map[string]any{"name": "db", "namespace": "apps", "generation": int64(2)},
		"spec":       map[string]any{"replicas": int64(3)},
	}}
	if status != nil {
		u.Object["status"] = status
	}
	return u
}

var database = Rule{
	APIVersion: "example.com/v1", Kind: "Database", Source: "mygitops.yaml:7",
	Current:    "status.phase == 'Ready' && status.observedGeneration == metadata.generation",
	InProgress: "has(status.phase) && status.phase == 'Upgrading'",
	Failed:     "status.phase == 'Failed'",
}

func TestStatus(t *testing.T) {
	rules, err := Compile([]Rule{database})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		obj     *unstructured.Unstructured
		status  string
		message string // a part of the message
	}{
		{"ready", object(map[string]any{"phase": "Ready", "observedGeneration": int64(2)}), Current, "current holds"},
		{"ready at an older generation", object(map[string]any{"phase": "Ready", "observedGeneration": int64(1)}), InProgress, "waiting for current"},
		{"failed", object(map[string]any{"phase": "Failed"}), Failed, "mygitops.yaml:7: failed holds: status.phase == 'Failed'"},
		{"in progress before failed", object(map[string]any{"phase": "Upgrading"}), InProgress, "inProgress holds"},
		{"no status yet", object(nil), InProgress, "no such key: phase"},
		{"status without the field", object(map[string]any{"other": "x"}), InProgress, "waiting for current: status.phase == 'Ready'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, msg, handled := rules.Status(tc.obj)
			if !handled || st != tc.status || !strings.Contains(msg, tc.message) {
				t.Fatalf("Status = %q, %q, %v; want %q with %q", st, msg, handled, tc.status, tc.message)
			}
		})
	}
}

func TestStatusNotHandled(t *testing.T) {
	rules, err := Compile([]Rule{database})
	if err != nil {
		t.Fatal(err)
	}
	other := object(map[string]any{"phase": "Ready"})
	other.SetAPIVersion("example.com/v2") // another version: another rule
	if st, _, handled := rules.Status(other); handled {
		t.Fatalf("a rule of example.com/v1 handled example.com/v2: %s", st)
	}
	deleting := object(map[string]any{"phase": "Ready"})
	deleting.Object["metadata"].(map[string]any)["deletionTimestamp"] = "2026-01-01T00:00:00Z"
	if st, _, handled := rules.Status(deleting); handled {
		t.Fatalf("an object being deleted was handled: %s", st)
	}
	var none *Rules
	if _, _, handled := none.Status(other); handled || none.Len() != 0 {
		t.Fatal("nil rules handled an object")
	}
}

func TestEvaluationError(t *testing.T) {
	rules, err := Compile([]Rule{{APIVersion: "example.com/v1", Kind: "Database", Source: "apps.yaml:4",
		Current: "status.phase > 3"}})
	if err != nil {
		t.Fatal(err)
	}
	st, msg, handled := rules.Status(object(map[string]any{"phase": "Ready"}))
	if !handled || st != Unknown || !strings.Contains(msg, "apps.yaml:4: current: no such overload") {
		t.Fatalf("Status = %q, %q, %v; want Unknown with the error", st, msg, handled)
	}
}

func TestLaterRuleReplaces(t *testing.T) {
	release := Rule{APIVersion: "example.com/v1", Kind: "Database", Source: "apps.yaml:5", Current: "true"}
	rules, err := Compile([]Rule{database, release})
	if err != nil {
		t.Fatal(err)
	}
	if st, msg, _ := rules.Status(object(nil)); st != Current || !strings.Contains(msg, "apps.yaml:5") {
		t.Fatalf("Status = %q, %q; want Current by the release's rule", st, msg)
	}
	if rules.Len() != 1 || !rules.Has("example.com/v1", "Database") {
		t.Fatalf("Len = %d", rules.Len())
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct{ expr, err string }{
		{"status.conditions.filter(c, c.type == 'Ready').all(c, c.status == 'True')", ""},
		{"status.?phase.orValue('') == 'Ready'", ""},
		{"self.status.phase.lowerAscii() == 'ready'", ""},
		// the examples of docs/gitops-repo.md
		{"status.?conditions.orValue([]).exists(c, c.type == 'Ready' && c.status == 'True')", ""},
		{"status.?conditions.orValue([]).exists(c, c.type == 'Issuing' && c.status == 'False' && c.reason == 'Failed')", ""},
		{"status.?phase.orValue('') == 'Cluster in healthy state'", ""},
		{"status.?observedGeneration.orValue(0) == metadata.generation", ""},
		{"status.phase ==", "Syntax error"},
		{"state.phase == 'Ready'", "column 1: undeclared reference to 'state'"},
		{"'Ready'", "gives string, not a bool"},
		{"size(status) + 1", "gives int, not a bool"},
		{"  ", "empty expression"},
	} {
		err := Check(tc.expr)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("Check(%q) = %v", tc.expr, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Check(%q) = %v, want %q", tc.expr, err, tc.err)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		rule Rule
		err  string
	}{
		{Rule{APIVersion: "example.com/v1", Kind: "Database", Source: "a.yaml:3"}, "a.yaml:3 for example.com/v1 Database: current is required"},
		{Rule{Kind: "Database", Current: "true", Source: "a.yaml:3"}, "apiVersion and kind are required"},
		{Rule{APIVersion: "example.com/v1", Kind: "Database", Current: "true", Failed: "status.x ==", Source: "a.yaml:3"}, "failed: column 12: Syntax error"},
	} {
		if _, err := Compile([]Rule{tc.rule}); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Compile(%+v) = %v, want %q", tc.rule, err, tc.err)
		}
	}
}
