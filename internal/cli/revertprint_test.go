package cli

import (
	"strings"
	"testing"

	"github.com/mygitops/mgo/pkg/apitypes"
)

// TestPrintRevertedDeployment: a failed deploy that mgo reverted says so,
// with the revert; one whose revert failed says why.
func TestPrintRevertedDeployment(t *testing.T) {
	d := &apitypes.Deployment{ID: "20261207T120000Z-00000001", Status: apitypes.StatusFailed, Stage: apitypes.StageRollout,
		Error: "rollout failed: app/web: not ready", Reverted: true, RevertedBy: "20261207T120005Z-00000002", RevertCommit: "5e6f"}
	var b strings.Builder
	if err := printDeployment(&b, "text", d); err != nil {
		t.Fatal(err)
	}
	want := "deployment 20261207T120000Z-00000001 FAILED at rollout: rollout failed: app/web: not ready\n" +
		"  reverted by mgo: deployment 20261207T120005Z-00000002, commit 5e6f (onFailure: revert)\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	d.Reverted, d.RevertError = false, "the revert (deployment 20261207T120005Z-00000002) failed at commit: revert conflict"
	b.Reset()
	if err := printDeployment(&b, "text", d); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(b.String(), "  not reverted: the revert (deployment 20261207T120005Z-00000002) failed at commit: revert conflict\n") {
		t.Errorf("got:\n%s", b.String())
	}
}
