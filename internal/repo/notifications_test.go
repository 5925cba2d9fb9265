package repo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNotificationsConfig(t *testing.T) {
	dir := writeRepo(t, map[string]string{
		ConfigFile: `notifications:
  receivers:
    - name: chat
      type: slack
      urlEnv: MGO_CHART_SLACK_URL
    - name: audit
      type: webhook
      url: https://hooks.acme.io/mgo
      secretEnv: MGO_CHART_HOOK_SECRET
    - name: gl
      type: gitlab
      tokenFile: gitlab-token
    - name: leaky
      type: webhook
      url: https://hooks.acme.io/x
      secret: hunter2-inline
    - name: leakyslack
      type: slack
      url: https://hooks.slack.com/services/T0/B0/SLACKSECRET
    - name: plain
      type: github
      url: http://github.acme.io/api/v3
      tokenEnv: MGO_CHART_GH
    - name: odd
      type: pager
    - name: leakychat
      type: shoutrrr
      url: discord://DISCORDSECRET@123456
    - name: teams
      type: shoutrrr
      urlFile: teams-url
  routes:
    - clusters: [prod]
      events: [deploy.failed, deploy.exploded]
      receivers: [chat, gl, nobody]
    - clusters: [staging]
      receivers: [audit]
`,
		"installations/prod/.keep": "",
	})
	r, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`mygitops.yaml:16: error: notifications.receivers[3] (leaky).secret: secrets must not be written in the repository; reference them with secretEnv or secretFile`,
		`mygitops.yaml:17: error: notifications.receivers[4] (leakyslack): url: a Slack webhook URL is a secret; reference it with urlEnv or urlFile`,
		`mygitops.yaml:20: error: notifications.receivers[5] (plain): a token over plain http would cross the network in clear text`,
		`mygitops.yaml:24: error: notifications.receivers[6] (odd): type "pager" is not a receiver type (slack, webhook, gitlab, github, shoutrrr)`,
		`mygitops.yaml:26: error: notifications.receivers[7] (leakychat): url: a shoutrrr service URL is a secret; reference it with urlEnv or urlFile`,
		`mygitops.yaml:33: error: notifications.routes: receiver "nobody" is not defined in notifications.receivers`,
		`mygitops.yaml:34: error: notifications.routes[0].events[1]: "deploy.exploded" is not an event`,
	}
	got := problemStrings(r.Problems)
	if len(got) != len(want) {
		t.Errorf("problems:\n%s", strings.Join(got, "\n"))
	}
	for i, w := range want {
		if i >= len(got) || !strings.HasPrefix(got[i], w) {
			t.Errorf("problem %d: want %s\ngot %v", i, w, got)
		}
	}
	for _, p := range got {
		if strings.Contains(p, "hunter2") || strings.Contains(p, "SLACKSECRET") || strings.Contains(p, "DISCORDSECRET") {
			t.Errorf("a problem shows a secret: %s", p)
		}
	}
	n := r.Config.Notifications
	if len(n.Receivers) != 4 || len(n.Routes) != 2 {
		t.Fatalf("receivers %+v routes %+v", n.Receivers, n.Routes)
	}
	names := func(rs []Receiver) string {
		var s []string
		for _, r := range rs {
			s = append(s, r.Name)
		}
		return strings.Join(s, ",")
	}
	for _, c := range []struct{ cluster, event, want string }{
		{"prod", "deploy.failed", "chat,gl"},
		{"prod", "deploy.succeeded", ""},
		{"staging", "deploy.failed", "audit"},
		{"staging", "drift.detected", "audit"},
		{"dev", "deploy.failed", ""},
	} {
		if got := names(n.ReceiversFor(c.cluster, c.event)); got != c.want {
			t.Errorf("%s %s: receivers %q, want %q", c.cluster, c.event, got, c.want)
		}
	}
	if cfg, ps := LoadConfig(dir); len(ps) != len(want) || len(cfg.Notifications.Receivers) != 4 {
		t.Errorf("LoadConfig: %d problems, %d receivers", len(ps), len(cfg.Notifications.Receivers))
	}
}

func TestReceiverSecrets(t *testing.T) {
	secrets := t.TempDir()
	if err := os.WriteFile(filepath.Join(secrets, "gitlab-token"), []byte("glpat-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MGO_CHART_SLACK_URL", "https://hooks.slack.com/services/T0/B0/XYZ")
	t.Setenv("OTHER_SECRET", "nope")
	policy := CredentialPolicy{Dir: secrets, EnvPrefix: "MGO_CHART_"}

	s, err := Receiver{Name: "chat", Type: ReceiverSlack, URLEnv: "MGO_CHART_SLACK_URL"}.Secrets(policy)
	if err != nil || s.URL != "https://hooks.slack.com/services/T0/B0/XYZ" {
		t.Errorf("slack: %+v %v", s, err)
	}
	s, err = Receiver{Name: "gl", Type: ReceiverGitLab, TokenFile: "gitlab-token"}.Secrets(policy)
	if err != nil || s.Token != "glpat-secret" || s.URL != "https://gitlab.com" {
		t.Errorf("gitlab: %+v %v", s, err)
	}
	_, err = Receiver{Name: "hook", Type: ReceiverWebhook, URL: "https://x.io", SecretEnv: "OTHER_SECRET"}.Secrets(policy)
	if err == nil || !strings.Contains(err.Error(), "only names starting with MGO_CHART_") || strings.Contains(err.Error(), "nope") {
		t.Errorf("env outside the policy: %v", err)
	}
	_, err = Receiver{Name: "gh", Type: ReceiverGitHub, TokenFile: "/etc/passwd"}.Secrets(policy)
	if err == nil || !strings.Contains(err.Error(), "must be inside") {
		t.Errorf("file outside the policy: %v", err)
	}
	t.Setenv("MGO_CHART_GL_URL", "http://gitlab.acme.io")
	_, err = Receiver{Name: "gl", Type: ReceiverGitLab, URLEnv: "MGO_CHART_GL_URL", TokenFile: "gitlab-token"}.Secrets(policy)
	if err == nil || !strings.Contains(err.Error(), "plain http") || strings.Contains(err.Error(), "glpat") {
		t.Errorf("token over http: %v", err)
	}
}
