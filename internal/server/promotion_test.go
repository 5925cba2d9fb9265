package server_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/mygitops/mgo/internal/auth"
	"github.com/mygitops/mgo/internal/cli"
	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/outbound"
	"github.com/mygitops/mgo/internal/server"
	"github.com/mygitops/mgo/internal/testenv"
	"github.com/mygitops/mgo/pkg/apitypes"
)

const (
	adminToken   = "mgo_admin_token_for_tests"
	stagingToken = "mgo_staging_token_for_tests"
)

// stagingAndProd starts a second control plane for prod and writes a
// kubeconfig whose context staging is the package's control plane and
// prod the new one.
func stagingAndProd(t *testing.T) (string, *testenv.Env) {
	t.Helper()
	prod, err := testenv.Start(context.Background(), testenv.Options{Context: "prod", Nodes: 1})
	if err != nil {
		t.Fatalf("prod control plane: %v", err)
	}
	t.Cleanup(prod.Stop)
	cfg, err := clientcmd.LoadFromFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := clientcmd.LoadFromFile(prod.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Contexts["staging"] = cfg.Contexts[env.Context].DeepCopy()
	delete(cfg.Contexts, env.Context)
	cfg.CurrentContext = "staging"
	for k, v := range pc.Clusters {
		cfg.Clusters[k] = v
	}
	for k, v := range pc.AuthInfos {
		cfg.AuthInfos["prod-"+k] = v
	}
	ctx := pc.Contexts["prod"].DeepCopy()
	ctx.AuthInfo = "prod-" + ctx.AuthInfo
	cfg.Contexts["prod"] = ctx
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, p); err != nil {
		t.Fatal(err)
	}
	return p, prod
}

// TestPromotion runs a promotion path staging → prod on two control
// planes: a deploy to staging through the form soaks there, passes an HTTP
// check and waits for an approval (a staging-only token gets 403, nothing
// written); approved, the same image goes to prod in one commit authored
// by the original deployer with the promotion trailers. Then a deploy
// during a soak is held (202, nothing committed), a second one supersedes
// it, and staging made unhealthy during the soak restarts it and says
// which object; healthy again, the soak passes and the newest held deploy
// goes.
func TestPromotion(t *testing.T) {
	kubeconfig, prod := stagingAndProd(t)
	var checks atomic.Int64
	check := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		checks.Add(1)
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(check.Close)

	files := withoutReleases(t)
	files["mygitops.yaml"] = `clusters:
  staging: {timeout: 20s}
  prod: {timeout: 20s}
promotions:
  app:
    triggerRepos: [gitlab.com/acme/*]
    stages:
      - cluster: staging
      - cluster: prod
        healthyFor: 4s
        checks:
          - {name: smoke, http: "` + check.URL + `/healthz"}
        checkInterval: 1s
        approval: api
`
	files["installations/staging/app-values.yaml"] = values("app", "pr-app", "1.0.0", "")
	files["installations/prod/app-values.yaml"] = values("app", "pr-app", "1.0.0", "")
	remote, srv, pw := setupFiles(t, files)
	checksPolicy, err := outbound.Parse(outbound.Checks, []string{"127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	m := startMgo(t, srv.URL, pw, t.TempDir(), func(c *server.Config) {
		c.Kubeconfig = kubeconfig
		c.ChecksOutbound = checksPolicy
		c.PromotionTick = 200 * time.Millisecond
		c.Tokens = append(c.Tokens,
			auth.TokenConfig{Name: "admin", SHA256: auth.Hash(adminToken), Clusters: []string{"*"}, TriggerRepos: []string{"*"}},
			auth.TokenConfig{Name: "staging-ci", SHA256: auth.Hash(stagingToken), Clusters: []string{"staging"}, TriggerRepos: []string{"*"}})
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mgo serve's log:\n%s", m.logs.String())
		}
	})
	prodImage := func() string {
		d, err := prod.Client.AppsV1().Deployments("pr-app").Get(context.Background(), "app-hello", metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return d.Spec.Template.Spec.Containers[0].Image
	}
	waitFor(t, "the first sync of both clusters", 2*time.Minute, func() bool {
		return imageOrEmpty("pr-app", "app") == "registry.example.com/acme/app:1.0.0" && prodImage() == "registry.example.com/acme/app:1.0.0"
	})

	// CI deploys to staging, as it always does.
	var d deploy.Deployment
	code := m.postForm("/deploy", stagingToken, url.Values{"cluster": {"staging"}, "triggerRepo": {"gitlab.com/acme/app"},
		"imageRepo": {"registry.example.com/acme/app"}, "imageTag": {"1.1.0"}, "author": {"Alice <alice@example.com>"}, "wait": {"true"}}, &d)
	if code != http.StatusOK || d.Status != deploy.Succeeded {
		t.Fatalf("deploy to staging: %d %+v", code, d)
	}
	candidate := func() *apitypes.Promotion {
		var paths apitypes.PromotionPaths
		if code := m.call(http.MethodGet, "/api/v1/promotions", adminToken, "", nil, &paths); code != http.StatusOK {
			t.Fatalf("promotions: %d", code)
		}
		for _, p := range paths.Paths {
			for _, s := range p.Stages {
				if s.Cluster == "prod" && s.Candidate != nil {
					return s.Candidate
				}
			}
		}
		return nil
	}
	var c *apitypes.Promotion
	waitFor(t, "the candidate to wait for approval after its soak and checks", time.Minute, func() bool {
		c = candidate()
		return c != nil && c.Phase == apitypes.PhaseApproval
	})
	if c.Source != d.ID || c.Tag != "1.1.0" || c.From != "staging" || c.Author != "Alice <alice@example.com>" || c.FromCommit != d.Commit {
		t.Errorf("candidate %+v: want deployment %s's image and commit", c, d.ID)
	}
	if got := c.SoakStart.Sub(d.Times.RolledOut); got < 0 || got > time.Second {
		t.Errorf("the soak started %s after the rollout ended: it is measured from the rollout", got)
	}
	if checks.Load() < 2 {
		t.Errorf("the check ran %d times: want it through the soak", checks.Load())
	}
	for _, g := range c.Gates {
		if g.Gate == deploy.GateHealthy && (g.State != apitypes.GatePassed || !g.Finished.After(c.RolledOut.Add(4*time.Second-time.Millisecond))) {
			t.Errorf("healthyFor gate %+v: want passed 4s after the rollout (%s)", g, c.RolledOut)
		}
	}
	commits := remote.Count(t)

	// A staging-only token may not approve into prod: nothing is written.
	if code := m.postJSON("/api/v1/promotions/"+c.ID+"/approve", stagingToken, apitypes.PromotionDecision{}, nil); code != http.StatusForbidden {
		t.Errorf("approve with a staging token: %d, want 403", code)
	}
	if got := candidate(); got.Phase != apitypes.PhaseApproval || got.Approval != nil {
		t.Errorf("after a refused approve: %+v", got)
	}
	// mgo promote: the table, a refused approve (exit 1), the approve.
	promote := func(token string, args ...string) (string, int) {
		t.Setenv("MGO_TOKEN", token)
		var out, errOut bytes.Buffer
		code := cli.Execute(append([]string{"promote", "--server", m.url}, args...), &out, &errOut)
		return out.String() + errOut.String(), code
	}
	if out, code := promote(adminToken, "list"); code != 0 || !regexp.MustCompile(`(?m)^prod\s+-\s+`+c.ID+`\s+approval\s`).MatchString(out) {
		t.Errorf("mgo promote list: exit %d\n%s", code, out)
	}
	if out, code := promote(stagingToken, "approve", c.ID); code != 1 || !strings.Contains(out, "403") {
		t.Errorf("mgo promote approve with a staging token: exit %d, want 1\n%s", code, out)
	}
	if out, code := promote(adminToken, "approve", c.ID, "--comment", "looks good"); code != 0 || !strings.Contains(out, "approved by admin (api)") {
		t.Fatalf("mgo promote approve: exit %d\n%s", code, out)
	}
	var done apitypes.Promotion
	waitFor(t, "the promotion to prod", time.Minute, func() bool {
		m.call(http.MethodGet, "/api/v1/promotions/"+c.ID, adminToken, "", nil, &done)
		return done.Phase.Terminal()
	})
	if done.Phase != apitypes.PhasePromoted || prodImage() != "registry.example.com/acme/app:1.1.0" {
		t.Fatalf("promotion %+v; prod runs %s", done, prodImage())
	}
	if out, code := promote(adminToken, "show", c.ID); code != 0 || !strings.Contains(out, ": promoted") || !strings.Contains(out, "healthyFor     passed") {
		t.Errorf("mgo promote show: exit %d\n%s", code, out)
	}
	if got := remote.Count(t) - commits; got != 1 {
		t.Errorf("%d commits for the promotion, want 1", got)
	}
	log := remote.Git(t, "log", "-1", "--format=%an <%ae>|%s|%(trailers:key=Promoted-From,valueonly,separator=)|%(trailers:key=Approved-By,valueonly,separator=)|%(trailers:key=Promotion-Gates,valueonly,separator=)")
	for _, want := range []string{"Alice <alice@example.com>|promote registry.example.com/acme/app:1.1.0 from staging to prod/app|",
		"staging@" + d.Commit + ", candidate " + c.ID, "admin (api)", "healthyFor passed", "checks passed"} {
		if !strings.Contains(log, want) {
			t.Errorf("promotion commit %q lacks %q", log, want)
		}
	}
	if files := remote.Git(t, "show", "--name-only", "--format=", "HEAD"); strings.TrimSpace(files) != "installations/prod/app-values.yaml" {
		t.Errorf("the promotion commit changed %q, want prod's values file only", files)
	}

	// The next build soaks; CI deploys twice more meanwhile: both are held.
	code = m.postForm("/deploy", stagingToken, url.Values{"cluster": {"staging"}, "triggerRepo": {"gitlab.com/acme/app"},
		"imageRepo": {"registry.example.com/acme/app"}, "imageTag": {"1.2.0"}, "author": {"Bob <bob@example.com>"}, "wait": {"true"}}, &d)
	if code != http.StatusOK || d.Status != deploy.Succeeded {
		t.Fatalf("second deploy to staging: %d %+v", code, d)
	}
	waitFor(t, "the second candidate soaking", 30*time.Second, func() bool {
		c = candidate()
		return c != nil && c.Tag == "1.2.0" && c.Phase == apitypes.PhaseSoaking
	})
	// Staging goes unhealthy during the soak: the soak restarts and says why.
	patch := []byte(`{"spec":{"template":{"spec":{"nodeSelector":{"pool":"none"}}}}}`)
	if _, err := env.Client.AppsV1().Deployments("pr-app").Patch(context.Background(), "app-hello", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	var held [2]deploy.Deployment
	for i, tag := range []string{"1.3.0", "1.4.0"} {
		code := m.postForm("/deploy", stagingToken, url.Values{"cluster": {"staging"}, "triggerRepo": {"gitlab.com/acme/app"},
			"imageRepo": {"registry.example.com/acme/app"}, "imageTag": {tag}, "author": {"Carol <carol@example.com>"}, "wait": {"true"}}, &held[i])
		if code != http.StatusAccepted || held[i].Status != deploy.Held || held[i].HeldBy != c.ID {
			t.Fatalf("deploy %s during the soak: %d %+v, want 202 held by %s", tag, code, held[i], c.ID)
		}
	}
	waitFor(t, "the soak to restart on the unhealthy Deployment", time.Minute, func() bool {
		c = candidate()
		return c.SoakRestarts > 0
	})
	var detail string
	for _, g := range c.Gates {
		if g.Gate == deploy.GateHealthy {
			detail = g.Detail
		}
	}
	if !strings.Contains(detail, "pr-app/app in staging") || !strings.Contains(detail, "Deployment/pr-app/app-hello") {
		t.Errorf("the restart says %q: want the release and the object", detail)
	}
	if got := image(t, "pr-app", "app"); got != "registry.example.com/acme/app:1.2.0" {
		t.Errorf("staging runs %s during the soak, want the candidate 1.2.0", got)
	}
	// Repaired, the soak passes; the newest held deploy goes, the other
	// is superseded.
	if _, err := env.Client.AppsV1().Deployments("pr-app").Patch(context.Background(), "app-hello", types.MergePatchType,
		[]byte(`{"spec":{"template":{"spec":{"nodeSelector":null}}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the candidate past its soak", time.Minute, func() bool {
		c = candidate()
		return c.Tag == "1.2.0" && c.Phase == apitypes.PhaseApproval
	})
	var newest, older deploy.Deployment
	waitFor(t, "the newest held deploy to run", time.Minute, func() bool {
		m.call(http.MethodGet, "/api/v1/deployments/"+held[1].ID, adminToken, "", nil, &newest)
		return newest.Status == deploy.Succeeded
	})
	m.call(http.MethodGet, "/api/v1/deployments/"+held[0].ID, adminToken, "", nil, &older)
	if older.Status != deploy.Failed || older.Stage != deploy.StageSuperseded || !strings.Contains(older.Error, held[1].ID) {
		t.Errorf("the older held deploy: %+v, want superseded by %s", older, held[1].ID)
	}
	if got := image(t, "pr-app", "app"); got != "registry.example.com/acme/app:1.4.0" {
		t.Errorf("staging runs %s, want the newest held 1.4.0", got)
	}
	// Rejected, the 1.2.0 candidate is done; prod keeps 1.1.0.
	var rejected apitypes.Promotion
	if code := m.postJSON("/api/v1/promotions/"+c.ID+"/reject", adminToken, apitypes.PromotionDecision{Comment: "not this one"}, &rejected); code != http.StatusOK || rejected.Phase != apitypes.PhaseRejected {
		t.Errorf("reject: %d %+v", code, rejected)
	}
	if got := prodImage(); got != "registry.example.com/acme/app:1.1.0" {
		t.Errorf("prod runs %s after the rejection, want 1.1.0", got)
	}
}
