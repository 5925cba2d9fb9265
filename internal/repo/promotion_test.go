package repo

import (
	"strings"
	"testing"
	"time"
)

func TestPromotionPaths(t *testing.T) {
	dir := writeRepo(t, map[string]string{
		ConfigFile: `promotions:
  app:
    triggerRepos: [gitlab.com/acme/*]
    stages:
      - cluster: staging
      - cluster: prod
        healthyFor: 10m
        onUnhealthy: fail
        tests: true
        checks:
          - {name: smoke, http: "https://staging.acme.io/healthz"}
          - {name: errors, prometheus: "http://prometheus:9090", query: "sum(rate(x[5m]))", max: 0.5}
        approval: merge-request
        mergeRequest: {forge: github, project: acme/gitops, tokenEnv: MGO_CHART_GH}
`,
		"installations/prod/.keep":    "",
		"installations/staging/.keep": "",
	})
	cfg, ps := LoadConfig(dir)
	if len(ps) > 0 {
		t.Fatalf("problems: %v", problemStrings(ps))
	}
	p, i, ok := cfg.Next("staging", "gitlab.com/acme/app")
	if !ok || p.Name != "app" || i != 1 {
		t.Fatalf("Next(staging) = %v %d %v", p, i, ok)
	}
	if _, _, ok := cfg.Next("prod", "gitlab.com/acme/app"); ok {
		t.Error("prod is the last stage: nothing follows it")
	}
	if _, _, ok := cfg.Next("staging", "gitlab.com/other/app"); ok {
		t.Error("a trigger repo outside the path is promoted")
	}
	s := p.Stages[1]
	if s.HealthyFor != 10*time.Minute || s.OnUnhealthy != UnhealthyFail || !s.Tests || len(s.Checks) != 2 ||
		*s.Checks[1].Max != 0.5 || s.Approval != ApprovalMergeRequest || s.MergeRequest.URL != "https://api.github.com" ||
		s.CheckInterval != 30*time.Second || s.TestTimeout != 5*time.Minute {
		t.Errorf("stage %+v", s)
	}
}

func TestPromotionParseErrors(t *testing.T) {
	dir := writeRepo(t, map[string]string{
		ConfigFile: `promotions:
  app:
    triggerRepos: [gitlab.com/acme/app]
    stages:
      - cluster: staging
        healthyFor: 1m
      - cluster: prod
        healthyFor: forever
        onUnhealthy: ignore
        tests: maybe
        checks:
          - {name: a, http: "ftp://x"}
          - {name: b, prometheus: "http://p:9090", query: up}
          - {name: c, prometheus: "http://p:9090", query: up, min: 2, max: 1}
          - {http: "https://x", prometheus: "https://y"}
        approval: always
        mergeRequest: {forge: bitbucket, project: x, token: abc}
  again:
    triggerRepos: [gitlab.com/acme/*]
    stages:
      - cluster: staging
      - cluster: qa
  short:
    stages:
      - cluster: prod
`,
		"installations/prod/.keep": "",
	})
	cfg, ps := LoadConfig(dir)
	want := []string{
		`mygitops.yaml:5: error: promotions.app.stages[0]: the first stage has no stage before it`,
		`mygitops.yaml:8: error: promotions.app.stages[1]: healthyFor: "forever" is not a duration`,
		`mygitops.yaml:9: error: promotions.app.stages[1]: onUnhealthy: "ignore" is not restart or fail`,
		`mygitops.yaml:10: error: promotions.app.stages[1]: tests: "maybe" is not true or false`,
		`mygitops.yaml:12: error: promotions.app.stages[1].checks[0]: http: "ftp://x" must be an http or https URL`,
		`mygitops.yaml:13: error: promotions.app.stages[1].checks[1]: min, max or both are required with prometheus`,
		`mygitops.yaml:14: error: promotions.app.stages[1].checks[2]: min is greater than max`,
		`mygitops.yaml:15: error: promotions.app.stages[1].checks[3]: name is required`,
		`mygitops.yaml:15: error: promotions.app.stages[1].checks[3]: give http or prometheus, not both`,
		`mygitops.yaml:16: error: promotions.app.stages[1]: approval: "always" is not none, api or merge-request`,
		`mygitops.yaml:17: error: promotions.app.stages[1].mergeRequest: token: secrets must not be written`,
		`mygitops.yaml:17: error: promotions.app.stages[1].mergeRequest: forge: "bitbucket" is not gitlab or github`,
		`mygitops.yaml:17: error: promotions.app.stages[1].mergeRequest: give tokenEnv or tokenFile`,
		`mygitops.yaml:17: error: promotions.app.stages[1]: mergeRequest is for approval: merge-request`,
		`mygitops.yaml:18: error: promotions.again: cluster staging promotes the same trigger repos as path app (line 2)`,
		`mygitops.yaml:23: error: promotions.short: triggerRepos is required`,
		`mygitops.yaml:23: error: promotions.short: at least two stages are required`,
	}
	got := problemStrings(ps)
	for i, w := range want {
		if i >= len(got) || !strings.HasPrefix(got[i], w) {
			t.Errorf("problem %d: want %s", i, w)
		}
	}
	if t.Failed() || len(got) != len(want) {
		t.Errorf("problems:\n%s", strings.Join(got, "\n"))
	}
	for _, p := range cfg.Promotions {
		if !p.Invalid {
			t.Errorf("path %s with errors is valid", p.Name)
		}
	}
	if _, _, ok := cfg.Next("staging", "gitlab.com/acme/app"); ok {
		t.Error("an invalid path promotes")
	}
}
