package dashboard

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/gitrepo"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/pkg/apitypes"
)

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func newTest(t *testing.T, src Source) *Dashboard {
	t.Helper()
	d, err := New(src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	d.now = func() time.Time { return now }
	return d
}

func TestNewNeedsASource(t *testing.T) {
	if _, err := New(nil, Options{}); err == nil {
		t.Fatal("New without a source")
	}
}

func TestForge(t *testing.T) {
	for web, want := range map[string]apitypes.Repo{
		"https://github.com/acme/gitops":         {URL: "https://github.com/acme/gitops", Forge: "github", CommitURL: "https://github.com/acme/gitops/commit/{commit}"},
		"https://gitlab.com/acme/infra/gitops":   {URL: "https://gitlab.com/acme/infra/gitops", Forge: "gitlab", CommitURL: "https://gitlab.com/acme/infra/gitops/-/commit/{commit}"},
		"https://gitlab.acme.io/platform/gitops": {URL: "https://gitlab.acme.io/platform/gitops", Forge: "gitlab", CommitURL: "https://gitlab.acme.io/platform/gitops/-/commit/{commit}"},
		"https://git.acme.io/platform/gitops":    {URL: "https://git.acme.io/platform/gitops"},
		"":                                       {},
	} {
		if got := forge(web); got != want {
			t.Errorf("forge(%q) = %+v, want %+v", web, got, want)
		}
	}
}

func TestHealth(t *testing.T) {
	obj := func(st string) reconcile.ObjectResult {
		return reconcile.ObjectResult{Subject: "Deployment/ns/x", Status: st}
	}
	for name, c := range map[string]struct {
		live reconcile.LiveRelease
		last reconcile.ReleaseResult
		want apitypes.Health
	}{
		"ready":                 {reconcile.LiveRelease{Installed: true, HelmStatus: "deployed", Objects: []reconcile.ObjectResult{obj("Current")}}, reconcile.ReleaseResult{Action: reconcile.Upgraded}, apitypes.HealthHealthy},
		"rolling":               {reconcile.LiveRelease{Installed: true, HelmStatus: "deployed", Objects: []reconcile.ObjectResult{obj("Current"), obj("InProgress")}}, reconcile.ReleaseResult{}, apitypes.HealthProgressing},
		"helm acting":           {reconcile.LiveRelease{Installed: true, HelmStatus: "pending-upgrade"}, reconcile.ReleaseResult{}, apitypes.HealthProgressing},
		"not installed yet":     {reconcile.LiveRelease{}, reconcile.ReleaseResult{}, apitypes.HealthProgressing},
		"install failed":        {reconcile.LiveRelease{}, reconcile.ReleaseResult{Action: reconcile.Failed, Error: "boom"}, apitypes.HealthFailed},
		"revision failed":       {reconcile.LiveRelease{Installed: true, HelmStatus: "failed", Revision: 3}, reconcile.ReleaseResult{}, apitypes.HealthFailed},
		"object failed":         {reconcile.LiveRelease{Installed: true, HelmStatus: "deployed", Objects: []reconcile.ObjectResult{obj("Failed")}}, reconcile.ReleaseResult{}, apitypes.HealthFailed},
		"object gone":           {reconcile.LiveRelease{Installed: true, HelmStatus: "deployed", Objects: []reconcile.ObjectResult{obj("NotFound")}}, reconcile.ReleaseResult{}, apitypes.HealthFailed},
		"ready, last sync fail": {reconcile.LiveRelease{Installed: true, HelmStatus: "deployed", Objects: []reconcile.ObjectResult{obj("Current")}}, reconcile.ReleaseResult{Action: reconcile.Failed, Stage: reconcile.StageRender}, apitypes.HealthFailed},
	} {
		if got, reason := health(c.live, c.last); got != c.want || (got != apitypes.HealthHealthy && reason == "") {
			t.Errorf("%s: %s (%q), want %s with a reason", name, got, reason, c.want)
		}
	}
}

// Callers of the same cluster share one read of its live state while it
// runs and for the TTL after; then the next caller reads again.
func TestLiveCache(t *testing.T) {
	d := newTest(t, &fakeSource{})
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	d.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	release := make(chan struct{})
	var reads atomic.Int32
	stalled := make(chan struct{}) // the read of "staging" never ends while the test runs
	t.Cleanup(func() { close(stalled) })
	d.load = func(_ context.Context, cluster string) (apitypes.LiveCluster, error) {
		if cluster == "staging" {
			<-stalled
			return apitypes.LiveCluster{}, nil
		}
		reads.Add(1)
		<-release
		return apitypes.LiveCluster{Cluster: cluster, Counts: apitypes.ReleaseCounts{Total: int(reads.Load())}}, nil
	}
	var wg sync.WaitGroup
	got := make([]apitypes.LiveCluster, 20)
	for i := range got {
		wg.Go(func() {
			lc, err := d.Live(context.Background(), "prod")
			if err != nil {
				t.Error(err)
			}
			got[i] = lc
		})
	}
	// The read is under way: callers during it and within the TTL share it.
	for {
		d.mu.Lock()
		started := d.live["prod"] != nil
		d.mu.Unlock()
		if started {
			break
		}
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if n := reads.Load(); n != 1 {
		t.Fatalf("20 concurrent callers made %d reads, want 1", n)
	}
	for _, lc := range got {
		if lc.Cluster != "prod" || lc.Counts.Total != 1 {
			t.Fatalf("a caller got %+v", lc)
		}
	}
	if _, err := d.Live(context.Background(), "prod"); err != nil || reads.Load() != 1 {
		t.Fatalf("within the TTL: %d reads, %v", reads.Load(), err)
	}
	mu.Lock()
	now = now.Add(DefaultTTL + time.Second)
	mu.Unlock()
	if lc, err := d.Live(context.Background(), "prod"); err != nil || reads.Load() != 2 || lc.Counts.Total != 2 {
		t.Fatalf("after the TTL: %d reads, %+v, %v", reads.Load(), lc, err)
	}
	// A caller that gives up does not wait for the read.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Live(ctx, "staging"); err == nil {
		t.Error("a cancelled caller got an answer")
	}
}

// twoClusters is a repo with prod (a ready release, a rolling one and
// one whose values file has errors) and staging (none), on GitHub.
func twoClusters() *fakeSource {
	ready := reconcile.ObjectResult{Subject: "Deployment/app/app", Status: "Current", Message: "Deployment is available. Replicas: 1"}
	rolling := reconcile.ObjectResult{Subject: "Deployment/web/web", Status: "InProgress"}
	return &fakeSource{
		Status: map[string]deploy.ClusterStatus{
			"prod": {Name: "prod", Head: "3c1f00", LastSync: now.Add(-time.Minute), Drift: 2, DriftChecked: now.Add(-30 * time.Second),
				LastResult: &reconcile.Result{Releases: []reconcile.ReleaseResult{
					{File: "installations/prod/app-values.yaml", Action: reconcile.Upgraded},
					{File: "installations/prod/web-values.yaml", Action: reconcile.Failed, Error: "wait: timed out"}}}},
			"staging": {Name: "staging", Manual: true, Pending: "3c1f00", Failed: true, Error: "render failed"},
		},
		Deployments: []*deploy.Deployment{
			{ID: "old", Request: deploy.Request{Cluster: "prod"}, Status: deploy.Failed, Times: deploy.Times{Queued: now.Add(-25 * time.Hour)}},
			{ID: "d1", Request: deploy.Request{Cluster: "prod"}, Status: deploy.Succeeded, Times: deploy.Times{Queued: now.Add(-time.Hour)}},
			{ID: "d2", Request: deploy.Request{Cluster: "prod"}, Status: deploy.Failed, Times: deploy.Times{Queued: now.Add(-time.Minute)}},
			{ID: "d3", Request: deploy.Request{Cluster: "staging"}, Status: deploy.Failed, Times: deploy.Times{Queued: now.Add(-time.Minute)}},
		},
		Head: "3c1f00",
		Releases: map[string][]deploy.ReleaseSource{"prod": {
			{File: "installations/prod/app-values.yaml", Name: "app", Namespace: "app", Chart: "acme/app", Version: "1.4.0", Valid: true,
				Images: map[string]string{"gitlab.com/acme/app": "registry.acme.io/acme/app:1.4.2"}},
			{File: "installations/prod/web-values.yaml", Name: "web", Namespace: "web", Chart: "acme/web", Valid: true, Images: map[string]string{},
				DependsOn: []string{"app/app"}},
			{File: "installations/prod/bad-values.yaml", Name: "bad", Namespace: "bad", Chart: "acme/bad", Images: map[string]string{}},
		}},
		Live: map[string]reconcile.LiveRelease{
			"app/app": {Installed: true, Revision: 7, HelmStatus: "deployed", ChartVersion: "1.4.0", AppVersion: "1.4.2", Updated: now.Add(-time.Hour),
				Objects: []reconcile.ObjectResult{ready}},
			"web/web": {Installed: true, Revision: 2, HelmStatus: "deployed", Objects: []reconcile.ObjectResult{rolling}},
		},
		Changes: map[string]gitrepo.FileChange{"installations/prod/app-values.yaml": {Commit: "3c1f00", AuthorName: "Alice",
			AuthorEmail: "alice@acme.io", Time: now.Add(-time.Hour), Summary: "deploy 1.4.2"}},
		WebURL: "https://github.com/acme/gitops",
	}
}

// Live assembles each release from the repo, the cluster, the last sync
// and git, and counts them by health.
func TestLive(t *testing.T) {
	d := newTest(t, twoClusters())
	lc, err := d.Live(t.Context(), "prod")
	if err != nil {
		t.Fatal(err)
	}
	if lc.Cluster != "prod" || lc.Head != "3c1f00" || !lc.Read.Equal(now) || lc.Repo.Forge != "github" {
		t.Errorf("cluster %q head %q read %v repo %+v", lc.Cluster, lc.Head, lc.Read, lc.Repo)
	}
	if want := (apitypes.ReleaseCounts{Total: 3, Healthy: 1, Failed: 2}); lc.Counts != want {
		t.Errorf("counts %+v, want %+v", lc.Counts, want)
	}
	if len(lc.Releases) != 3 {
		t.Fatalf("%d releases, want 3", len(lc.Releases))
	}
	app, web, bad := lc.Releases[0], lc.Releases[1], lc.Releases[2]
	if app.Name != "app" || app.Health != apitypes.HealthHealthy || app.Revision != 7 || app.ChartVersion != "1.4.0" || app.Version != "1.4.0" ||
		app.AppVersion != "1.4.2" || app.LastAction != apitypes.ReleaseUpgraded || app.Images["gitlab.com/acme/app"] != "registry.acme.io/acme/app:1.4.2" ||
		len(app.Objects) != 1 || app.Objects[0].Status != apitypes.ObjectCurrent || app.Objects[0].Message == "" {
		t.Errorf("app: %+v", app)
	}
	if c := app.LastChange; c == nil || c.Author != "Alice" || c.Email != "alice@acme.io" || c.Summary != "deploy 1.4.2" {
		t.Errorf("app's last change: %+v", c)
	}
	// Its objects are progressing, but its last sync failed.
	if web.Health != apitypes.HealthFailed || web.Error != "wait: timed out" || web.LastChange != nil || web.Objects[0].Status != apitypes.ObjectInProgress ||
		len(web.DependsOn) != 1 || web.DependsOn[0] != "app/app" {
		t.Errorf("web: %+v", web)
	}
	if bad.Health != apitypes.HealthFailed || !strings.Contains(bad.Reason, "mgo validate") || bad.Installed || bad.Objects == nil {
		t.Errorf("bad: %+v", bad)
	}

	empty, err := d.Live(t.Context(), "staging")
	if err != nil || empty.Releases == nil || empty.Counts.Total != 0 {
		t.Errorf("a cluster without releases: %+v %v", empty, err)
	}
	var nf *deploy.NotFoundError
	if _, err := d.Live(t.Context(), "nope"); !errors.As(err, &nf) {
		t.Errorf("an unknown cluster: %v", err)
	}
}

// A release whose live state cannot be read is failed with the reason,
// and so is counted; a failing history read leaves the last changes out.
func TestLiveReadErrors(t *testing.T) {
	src := twoClusters()
	src.LiveErr, src.ChangesErr = errBoom, errBoom
	d := newTest(t, src)
	lc, err := d.Live(t.Context(), "prod")
	if err != nil {
		t.Fatal(err)
	}
	if lc.Counts.Failed != 3 || lc.Releases[0].Reason != "reading the release: boom" {
		t.Errorf("counts %+v, first release %+v", lc.Counts, lc.Releases[0])
	}
}

// The last changes are read once per head: a second read of the cluster
// after the TTL asks git only for files it has not seen under that head.
func TestLastChangesPerHead(t *testing.T) {
	src := twoClusters()
	d := newTest(t, src)
	if _, err := d.Live(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	now := now
	d.now = func() time.Time { return now.Add(time.Hour) }
	if _, err := d.Live(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	reads := src.historyReads()
	// web and bad have no change in the history: they are asked again.
	if len(reads) != 2 || len(reads[0]) != 3 || !slices.Equal(reads[1], []string{"installations/prod/web-values.yaml", "installations/prod/bad-values.yaml"}) {
		t.Errorf("history reads %q", reads)
	}
	src.Head = "4d2e11"
	d.now = func() time.Time { return now.Add(2 * time.Hour) }
	if _, err := d.Live(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	if reads = src.historyReads(); len(reads) != 3 || len(reads[2]) != 3 {
		t.Errorf("after a new head: history reads %q", reads)
	}
}

// The overview keeps the clusters the filter keeps, with their last sync,
// drift, releases by health and the deployments of the last 24 hours.
func TestOverview(t *testing.T) {
	src := twoClusters()
	d := newTest(t, src)
	ov, err := d.Overview(t.Context(), func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if ov.Repo.CommitURL != "https://github.com/acme/gitops/commit/{commit}" || len(ov.Clusters) != 2 {
		t.Fatalf("%+v", ov)
	}
	byName := map[string]apitypes.ClusterSummary{}
	for _, cs := range ov.Clusters {
		byName[cs.Name] = cs
	}
	prod, staging := byName["prod"], byName["staging"]
	if prod.LastSync.Commit != "3c1f00" || !prod.LastSync.Time.Equal(now.Add(-time.Minute)) || prod.LastSync.Failed || prod.Drift != 2 ||
		prod.DriftChecked.IsZero() || prod.Deploys24h != 2 || prod.FailedDeploys24h != 1 ||
		prod.Releases != (apitypes.ReleaseCounts{Total: 3, Healthy: 1, Failed: 2}) || prod.LiveError != "" {
		t.Errorf("prod: %+v", prod)
	}
	if !staging.Manual || staging.Pending != "3c1f00" || !staging.LastSync.Failed || staging.LastSync.Error != "render failed" ||
		staging.Deploys24h != 1 || staging.FailedDeploys24h != 1 || staging.Releases.Total != 0 {
		t.Errorf("staging: %+v", staging)
	}

	only, err := d.Overview(t.Context(), func(c string) bool { return c == "staging" })
	if err != nil || len(only.Clusters) != 1 || only.Clusters[0].Name != "staging" || only.Clusters[0].Deploys24h != 1 {
		t.Errorf("within a scope of staging: %+v %v", only, err)
	}
	none, err := d.Overview(t.Context(), func(string) bool { return false })
	if err != nil || none.Clusters == nil || len(none.Clusters) != 0 {
		t.Errorf("within no scope: %+v %v", none, err)
	}
}

// A cluster whose live state cannot be read is still summarised, with
// the reason; the records failing to read fail the overview.
func TestOverviewErrors(t *testing.T) {
	src := twoClusters()
	src.Status["gone"] = deploy.ClusterStatus{Name: "gone"}
	d := newTest(t, src)
	d.load = func(ctx context.Context, cluster string) (apitypes.LiveCluster, error) {
		if cluster == "gone" {
			return apitypes.LiveCluster{}, errBoom
		}
		return d.read(ctx, cluster)
	}
	ov, err := d.Overview(t.Context(), func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	for _, cs := range ov.Clusters {
		if (cs.Name == "gone") != (cs.LiveError == "boom") {
			t.Errorf("%s: live error %q", cs.Name, cs.LiveError)
		}
	}
	src.SinceErr = errBoom
	if _, err := d.Overview(t.Context(), func(string) bool { return true }); !errors.Is(err, errBoom) {
		t.Errorf("records not read: %v", err)
	}
}
