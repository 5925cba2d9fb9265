package deploy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mygitops/mgo/internal/gitrepo"
	"github.com/mygitops/mgo/internal/notify"
	"github.com/mygitops/mgo/internal/reconcile"
)

const revertConfig = autoConfig + "clusters:\n  prod:\n    onFailure: revert\n"

// newRevertService is newFakeService with a notifier.
func newRevertService(t *testing.T, g *fakeGit, e *fakeSyncer, n Notifier) *Service {
	t.Helper()
	store, err := OpenStore(t.TempDir() + "/deployments.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	svc, err := New(Config{Git: g, Engines: map[string]ClusterSyncer{"prod": e}, Store: store, SnapshotDir: t.TempDir(), Notifier: n})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return svc
}

func (g *fakeGit) revertsAsked() []fakeRevert {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]fakeRevert(nil), g.reverts...)
}

func readTree(t *testing.T, g *fakeGit, file string) string {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	b, err := os.ReadFile(filepath.Join(g.dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRevertOnFailure: under onFailure: revert, a deploy whose rollout
// fails is answered once mgo reverted its commit (as mgo, with trailers
// naming the deployment and the reason) and synced the release back:
// failed, reverted, with the revert's commit; the revert is a deployment of
// kind revert. Notifications say both.
func TestRevertOnFailure(t *testing.T) {
	g := newFakeGit(t, fakeFiles(revertConfig))
	e := &fakeSyncer{FailTag: map[string]reconcile.Stage{"2.0.0": reconcile.StageWait}}
	rec := &recorder{}
	svc := newRevertService(t, g, e, rec)
	d := deployAndWait(t, svc, request("2.0.0", ""))
	if d.Status != Failed || d.Stage != StageRollout || !d.Changed || d.Commit != "c1" {
		t.Fatalf("deploy: %+v, want failed at rollout with commit c1", d)
	}
	if !d.Reverted || d.RevertCommit != "c2" || d.RevertError != "" || d.RevertedBy == "" ||
		!strings.HasPrefix(d.RevertReason, "rollout: rollout failed: app/app: wait failed for tag 2.0.0") {
		t.Fatalf("deploy: reverted %v by %q commit %q reason %q error %q", d.Reverted, d.RevertedBy, d.RevertCommit, d.RevertReason, d.RevertError)
	}
	if !strings.Contains(d.Error, "wait failed for tag 2.0.0") {
		t.Errorf("deploy error %q: the rollout's failure stays", d.Error)
	}
	rv, err := svc.Get(d.RevertedBy)
	if err != nil {
		t.Fatal(err)
	}
	if rv.Kind != KindRevert || rv.RollbackOf != d.ID || rv.Status != Succeeded || rv.Commit != "c2" || rv.RevertReason != d.RevertReason ||
		rv.Request.Author != "mgo <mgo@users.noreply.mgo>" || rv.Request.Client != "mgo" {
		t.Fatalf("revert deployment: %+v", rv)
	}
	if len(rv.Releases) != 1 || rv.Releases[0].Action != reconcile.Upgraded {
		t.Errorf("revert releases %+v, want app upgraded back", rv.Releases)
	}
	reverts := g.revertsAsked()
	if len(reverts) != 1 || reverts[0].commit != "c1" {
		t.Fatalf("reverts %+v, want one of c1", reverts)
	}
	info := reverts[0].info
	want := gitrepo.Trailers{TriggerRepo: "gitlab.com/acme/app", RequestedBy: "mgo", DeploymentID: rv.ID, RevertsDeployment: d.ID, RevertReason: d.RevertReason}
	if info.Author != "mgo <mgo@users.noreply.mgo>" || info.Message.Trailers != want ||
		info.Message.Summary != "revert deployment "+d.ID+" on prod: its rollout failed" {
		t.Errorf("revert commit info %+v, want trailers %+v", info, want)
	}
	if err := info.Message.Validate(); err != nil {
		t.Error(err)
	}
	if v := readTree(t, g, valuesFile); !strings.Contains(v, `tag: "1.4.1"`) {
		t.Errorf("values after the revert:\n%s", v)
	}
	var failed, revertEv *notify.Event
	for _, ev := range rec.wait(t, 3) {
		switch {
		case ev.Type == notify.DeployFailed && ev.DeploymentID == d.ID:
			failed = &ev
		case ev.DeploymentID == rv.ID:
			revertEv = &ev
		}
	}
	if failed == nil || !failed.Reverted || failed.RevertCommit != "c2" || !strings.HasSuffix(failed.Summary, "; reverted by commit c2") {
		t.Errorf("deploy.failed event %+v", failed)
	}
	if revertEv == nil || revertEv.Type != notify.RollbackSucceeded || revertEv.RollbackOf != d.ID ||
		revertEv.Summary != "reverted deployment "+d.ID+" on prod/app after its rollout failed" {
		t.Errorf("revert event %+v", revertEv)
	}
}

// TestRevertPolicy: keep is the default; a values header's onFailure
// overrides its cluster's; a release that failed to render is no failed
// rollout and is not reverted.
func TestRevertPolicy(t *testing.T) {
	header := func(policy string) func(map[string]string) {
		return func(files map[string]string) {
			files[valuesFile] = strings.Replace(files[valuesFile], "  namespace: app\n", "  namespace: app\n  onFailure: "+policy+"\n", 1)
		}
	}
	tests := []struct {
		name     string
		config   string
		files    func(map[string]string)
		stage    reconcile.Stage
		reverted bool
	}{
		{name: "default keep", config: autoConfig, stage: reconcile.StageWait},
		{name: "cluster revert", config: revertConfig, stage: reconcile.StageWait, reverted: true},
		{name: "header keep overrides cluster revert", config: revertConfig, files: header("keep"), stage: reconcile.StageWait},
		{name: "header revert overrides cluster keep", config: autoConfig, files: header("revert"), stage: reconcile.StageWait, reverted: true},
		{name: "render failure", config: revertConfig, stage: reconcile.StageRender},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			files := fakeFiles(tc.config)
			if tc.files != nil {
				tc.files(files)
			}
			g := newFakeGit(t, files)
			svc := newRevertService(t, g, &fakeSyncer{FailTag: map[string]reconcile.Stage{"2.0.0": tc.stage}}, nil)
			d := deployAndWait(t, svc, request("2.0.0", ""))
			if d.Status != Failed || d.Reverted != tc.reverted {
				t.Fatalf("deploy: status %s reverted %v, want failed, reverted %v (%s)", d.Status, d.Reverted, tc.reverted, d.Error)
			}
			if n := len(g.revertsAsked()); (n == 1) != tc.reverted || n > 1 {
				t.Errorf("%d reverts", n)
			}
			if !tc.reverted && (d.RevertedBy != "" || d.RevertCommit != "" || d.RevertError != "") {
				t.Errorf("not reverted, yet: %+v", d)
			}
		})
	}
}

// TestRevertThatFails: a revert that fails is reported on the deploy and
// is never reverted or retried itself.
func TestRevertThatFails(t *testing.T) {
	t.Run("revert conflicts", func(t *testing.T) {
		t.Parallel()
		g := newFakeGit(t, fakeFiles(revertConfig))
		g.RevertErr = &gitrepo.RevertConflictError{Commit: "c1", Files: []string{valuesFile}}
		svc := newRevertService(t, g, &fakeSyncer{FailTag: map[string]reconcile.Stage{"2.0.0": reconcile.StageWait}}, nil)
		d := deployAndWait(t, svc, request("2.0.0", ""))
		if d.Status != Failed || d.Stage != StageRollout || d.Reverted || d.RevertCommit != "" ||
			!strings.Contains(d.RevertError, "failed at commit") || !strings.Contains(d.RevertError, "revert conflict") {
			t.Fatalf("deploy: %+v", d)
		}
		rv, err := svc.Get(d.RevertedBy)
		if err != nil || rv.Kind != KindRevert || rv.Status != Failed || rv.Stage != StageCommit {
			t.Fatalf("revert deployment: %+v %v", rv, err)
		}
		if n := len(g.revertsAsked()); n != 1 {
			t.Errorf("%d reverts, want 1", n)
		}
	})
	t.Run("revert's rollout fails", func(t *testing.T) {
		t.Parallel()
		g := newFakeGit(t, fakeFiles(revertConfig))
		// The release fails whatever its image: the revert's sync too.
		svc := newRevertService(t, g, &fakeSyncer{Fail: map[string]reconcile.Stage{valuesFile: reconcile.StageWait}}, nil)
		d := deployAndWait(t, svc, request("2.0.0", ""))
		if d.Status != Failed || d.Reverted || d.RevertCommit != "c2" || !strings.Contains(d.RevertError, "failed at rollout") {
			t.Fatalf("deploy: %+v", d)
		}
		rv, err := svc.Get(d.RevertedBy)
		if err != nil || rv.Kind != KindRevert || rv.Status != Failed || rv.Stage != StageRollout || rv.Reverted || rv.RevertedBy != "" {
			t.Fatalf("revert deployment: %+v %v", rv, err)
		}
		if n := len(g.revertsAsked()); n != 1 {
			t.Errorf("%d reverts, want 1: a revert is never reverted", n)
		}
		all, err := svc.List(10, nil)
		if err != nil || len(all) != 2 {
			t.Errorf("deployments %d (%v), want the deploy and its revert", len(all), err)
		}
	})
}

// TestRollbackNotReverted: a rollback asked through the API whose rollout
// fails is failed, not reverted, under onFailure: revert.
func TestRollbackNotReverted(t *testing.T) {
	g := newFakeGit(t, fakeFiles(revertConfig))
	svc := newRevertService(t, g, &fakeSyncer{FailTag: map[string]reconcile.Stage{"1.4.1": reconcile.StageWait}}, nil)
	d := deployAndWait(t, svc, request("2.0.0", ""))
	if d.Status != Succeeded {
		t.Fatalf("deploy: %+v", d)
	}
	ctx := fakeContext(t)
	rb, err := svc.Rollback(ctx, d.ID, "ci", "Alice <alice@acme.io>")
	if err != nil {
		t.Fatal(err)
	}
	if rb, err = svc.Wait(ctx, rb.ID); err != nil {
		t.Fatal(err)
	}
	if rb.Kind != KindRollback || rb.Status != Failed || rb.Stage != StageRollout || rb.Reverted || rb.RevertedBy != "" {
		t.Fatalf("rollback: %+v", rb)
	}
	if n := len(g.revertsAsked()); n != 1 {
		t.Errorf("%d reverts, want the rollback's only", n)
	}
	if v := readTree(t, g, valuesFile); !strings.Contains(v, `tag: "1.4.1"`) {
		t.Errorf("values after the rollback:\n%s", v)
	}
}

// TestRevertOnlyTheFailedOfABatch: of two deploys pushed together, the one
// whose rollout failed is reverted; the other keeps its commit.
func TestRevertOnlyTheFailedOfABatch(t *testing.T) {
	g := newFakeGit(t, fakeFiles(revertConfig))
	g.Hold, g.Applying = make(chan struct{}), make(chan int, 10)
	svc := newRevertService(t, g, &fakeSyncer{FailTag: map[string]reconcile.Stage{"2.0.0": reconcile.StageWait}}, nil)
	ctx := fakeContext(t)
	first, err := svc.Submit(ctx, Request{Cluster: "prod", TriggerRepo: "gitlab.com/acme/worker",
		ImageRepo: "registry.acme.io/acme/worker", Tag: "1.9.0", Author: "Bob <bob@acme.io>", Client: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	<-g.Applying // the first batch holds the git worker: the next two are batched
	app, err := svc.Submit(ctx, request("2.0.0", ""))
	if err != nil {
		t.Fatal(err)
	}
	worker, err := svc.Submit(ctx, Request{Cluster: "prod", TriggerRepo: "gitlab.com/acme/worker",
		ImageRepo: "registry.acme.io/acme/worker", Tag: "3.0.0", Author: "Bob <bob@acme.io>", Client: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	close(g.Hold)
	for _, id := range []string{first.ID, app.ID, worker.ID} {
		if _, err := svc.Wait(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if got := g.batchSizes(); len(got) != 2 || got[1] != 2 {
		t.Fatalf("batch sizes %v, want [1 2]", got)
	}
	app, _ = svc.Get(app.ID)
	worker, _ = svc.Get(worker.ID)
	if app.Status != Failed || !app.Reverted {
		t.Errorf("app: %+v, want failed and reverted", app)
	}
	if worker.Status != Succeeded || worker.Reverted || worker.RevertedBy != "" {
		t.Errorf("worker: %+v, want succeeded, not reverted", worker)
	}
	if reverts := g.revertsAsked(); len(reverts) != 1 || reverts[0].commit != app.Commit {
		t.Errorf("reverts %+v, want one of %s", reverts, app.Commit)
	}
	if v := readTree(t, g, valuesFile); !strings.Contains(v, `tag: "1.4.1"`) {
		t.Errorf("app values after the revert (want 1.4.1 back):\n%s", v)
	}
	if v := readTree(t, g, workerFile); !strings.Contains(v, `tag: "3.0.0"`) {
		t.Errorf("worker values (want 3.0.0 kept):\n%s", v)
	}
}
