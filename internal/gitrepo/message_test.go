package gitrepo

import "testing"

// TestFreezeOverrideTrailer: the Freeze-Override trailer is written after
// the others and read back.
func TestFreezeOverrideTrailer(t *testing.T) {
	m := Message{Summary: "deploy x:1 to prod/app", Trailers: Trailers{TriggerRepo: "gitlab.com/acme/app", RequestedBy: "ci",
		DeploymentID: "20261207T120000Z-00000001", FreezeOverride: "weekend by release-manager"}}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	const want = "deploy x:1 to prod/app\n\nTrigger-Repo: gitlab.com/acme/app\nRequested-By: ci\nDeployment-Id: 20261207T120000Z-00000001\n" +
		"Freeze-Override: weekend by release-manager\n"
	if got := m.String(); got != want {
		t.Fatalf("message:\n%s\nwant:\n%s", got, want)
	}
	if got := ParseMessage(m.String()); got != m {
		t.Errorf("parsed %+v, want %+v", got, m)
	}
}
