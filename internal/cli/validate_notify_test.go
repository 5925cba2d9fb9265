package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateNotifications: mgo validate checks the notifications of
// mygitops.yaml and never prints a secret written there by mistake.
func TestValidateNotifications(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "installations", "prod"), 0o755); err != nil {
		t.Fatal(err)
	}
	config := `notifications:
  receivers:
    - name: chat
      type: slack
      url: https://hooks.slack.com/services/T0/B0/SLACKSECRET
    - name: hook
      type: webhook
      url: https://hooks.acme.io/x
      secret: hunter2
  routes:
    - clusters: [prod]
      receivers: [chat, hook, nobody]
`
	if err := os.WriteFile(filepath.Join(dir, "mygitops.yaml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"text", "json"} {
		var out, errOut bytes.Buffer
		if code := Execute([]string{"validate", "--repo", dir, "-o", format}, &out, &errOut); code != 1 {
			t.Fatalf("%s: exit %d, want 1; stderr %s", format, code, errOut.String())
		}
		all := out.String() + errOut.String()
		for _, want := range []string{"a Slack webhook URL is a secret", "secrets must not be written in the repository", `receiver \"nobody\" is not defined`} {
			if format == "text" {
				want = strings.ReplaceAll(want, `\"`, `"`)
			}
			if !strings.Contains(all, want) {
				t.Errorf("%s: output lacks %s:\n%s", format, want, all)
			}
		}
		if strings.Contains(all, "SLACKSECRET") || strings.Contains(all, "hunter2") {
			t.Errorf("%s: output shows a secret:\n%s", format, all)
		}
	}
}
