package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateOutboundWarnings: given mgo serve's allow lists, by flag, by
// MGO_OUTBOUND_* or by serve's config file, mgo validate warns about every
// chart repository, OCI chart and receiver URL serve would refuse, naming
// the file, line and the refused host, and never a credential.
func TestValidateOutboundWarnings(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("mygitops.yaml", `helm:
  repositories:
    - name: good
      url: https://charts.acme.io
    - name: meta
      url: http://169.254.169.254/latest
    - name: inside
      url: https://user:pw@10.1.2.3/charts
notifications:
  receivers:
    - name: hook
      type: webhook
      url: http://127.0.0.1:9/hook
    - name: gh
      type: github
      tokenEnv: MGO_CHART_GH
    - name: chat
      type: shoutrrr
      urlEnv: MGO_CHART_CHAT
`)
	write("installations/prod/app-values.yaml", `__mygitops:
  chart: oci://registry.internal.example/charts/app
  version: 1.0.0
  name: app
  namespace: app
`)
	serveConfig := filepath.Join(t.TempDir(), "mgo.yaml")
	if err := os.WriteFile(serveConfig, []byte("listen: :8080\noutbound-charts: [charts.acme.io]\noutbound-notifications: [api.github.com]\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	wantAll := []string{
		"mygitops.yaml:5: warning: chart repository \"meta\": mgo serve would not reach it: outbound charts: 169.254.169.254 refused: link-local",
		"mygitops.yaml:7: warning: chart repository \"inside\": mgo serve would not reach it: outbound charts: 10.1.2.3 refused",
		"installations/prod/app-values.yaml:1: warning: chart oci://registry.internal.example/charts/app: mgo serve would not reach it: outbound charts: registry.internal.example refused",
		"mygitops.yaml:11: warning: receiver \"hook\": mgo serve would not reach it: outbound notifications: 127.0.0.1 refused: loopback",
		"mygitops.yaml:17: warning: receiver \"chat\": mgo serve refuses shoutrrr receivers",
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"flags", []string{"--outbound-charts", "charts.acme.io", "--outbound-notifications", "api.github.com"}, nil},
		{"environment", nil, map[string]string{"MGO_OUTBOUND_CHARTS": "charts.acme.io", "MGO_OUTBOUND_NOTIFICATIONS": "api.github.com"}},
		{"serve's config file", []string{"--config", serveConfig}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var out, errOut bytes.Buffer
			if code := Execute(append([]string{"validate", "--repo", dir}, tc.args...), &out, &errOut); code != 0 {
				t.Fatalf("exit %d, want 0 (warnings only); stdout %s stderr %s", code, out.String(), errOut.String())
			}
			got := out.String()
			for _, want := range wantAll {
				if !strings.Contains(got, want) {
					t.Errorf("output lacks %q:\n%s", want, got)
				}
			}
			for _, never := range []string{"charts.acme.io refused", "\"good\"", "\"gh\"", "user:pw", "pw@"} {
				if strings.Contains(got, never) {
					t.Errorf("output has %q:\n%s", never, got)
				}
			}
			if !strings.Contains(got, "valid: 0 error(s), 5 warning(s)") {
				t.Errorf("want 5 warnings:\n%s", got)
			}
		})
	}

	// Without lists nothing is refused but what serve refuses by default:
	// no list, no warning.
	var out, errOut bytes.Buffer
	if code := Execute([]string{"validate", "--repo", dir}, &out, &errOut); code != 0 || strings.Contains(out.String(), "would not reach") {
		t.Fatalf("without lists: exit %d, output:\n%s", code, out.String())
	}
}
