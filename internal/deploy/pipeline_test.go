package deploy

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mygitops/mgo/internal/gittest"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/repo"
)

const workerFile = "installations/prod/worker-values.yaml"

// fakeFiles is the skeleton with a second release, worker, of trigger
// repo gitlab.com/acme/worker; config is mygitops.yaml.
func fakeFiles(config string) map[string]string {
	files := gittest.Skeleton()
	files["mygitops.yaml"] = config
	files[workerFile] = strings.NewReplacer("name: app", "name: worker", "gitlab.com/acme/app", "gitlab.com/acme/worker",
		"acme/app:", "acme/worker:", "registry.acme.io/acme/app", "registry.acme.io/acme/worker").Replace(files[valuesFile])
	return files
}

const autoConfig = `helm:
  repositories:
    - name: acme
      url: https://charts.acme.io
`

// newFakeService runs a Service on fakes; it stops when the test ends.
func newFakeService(t *testing.T, g *fakeGit, e *fakeSyncer) *Service {
	t.Helper()
	store, err := OpenStore(t.TempDir() + "/deployments.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	svc, err := New(Config{Git: g, Engines: map[string]ClusterSyncer{"prod": e}, Store: store, SnapshotDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return svc
}

func fakeContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func deployAndWait(t *testing.T, svc *Service, req Request) *Deployment {
	t.Helper()
	ctx := fakeContext(t)
	d, err := svc.Submit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if d, err = svc.Wait(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDeploymentStatus maps what git and the cluster did to the
// deployment's status, stage and releases.
func TestDeploymentStatus(t *testing.T) {
	manual := autoConfig + "clusters:\n  prod:\n    sync: manual\n"
	tests := []struct {
		name      string
		config    string
		tag       string // "1.4.1" is already set
		git       func(*fakeGit)
		sync      func(*fakeSyncer)
		status    Status
		stage     Stage
		changed   bool
		synced    bool
		releases  int
		errorPart string
	}{
		{name: "deployed and rolled out", tag: "2.0.0", status: Succeeded, changed: true, synced: true, releases: 1},
		{name: "image already set", tag: "1.4.1", status: Succeeded, synced: true, releases: 1},
		{name: "push failed", tag: "2.0.0", git: func(g *fakeGit) { g.PushErr = errTest }, status: Failed, stage: StagePush, errorPart: "injected"},
		{name: "sync failed", tag: "2.0.0", sync: func(e *fakeSyncer) { e.Err = errTest }, status: Failed, stage: StageSync, changed: true, synced: true},
		{name: "rollout failed", tag: "2.0.0", sync: func(e *fakeSyncer) { e.Fail = map[string]reconcile.Stage{valuesFile: reconcile.StageWait} },
			status: Failed, stage: StageRollout, changed: true, synced: true, releases: 1, errorPart: "rollout failed"},
		{name: "render failed", tag: "2.0.0", sync: func(e *fakeSyncer) { e.Fail = map[string]reconcile.Stage{valuesFile: reconcile.StageRender} },
			status: Failed, stage: StageSync, changed: true, synced: true, releases: 1},
		{name: "another release failed", tag: "2.0.0", sync: func(e *fakeSyncer) { e.Fail = map[string]reconcile.Stage{workerFile: reconcile.StageWait} },
			status: Succeeded, changed: true, synced: true, releases: 1},
		{name: "manual cluster", config: manual, tag: "2.0.0", status: Succeeded, changed: true, errorPart: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			config := tc.config
			if config == "" {
				config = autoConfig
			}
			g, e := newFakeGit(t, fakeFiles(config)), &fakeSyncer{}
			if tc.git != nil {
				tc.git(g)
			}
			if tc.sync != nil {
				tc.sync(e)
			}
			d := deployAndWait(t, newFakeService(t, g, e), request(tc.tag, ""))
			if d.Status != tc.status || d.Stage != tc.stage || d.Changed != tc.changed || len(d.Releases) != tc.releases {
				t.Fatalf("status %s stage %q changed %v releases %d; want %s %q %v %d (error %q)",
					d.Status, d.Stage, d.Changed, len(d.Releases), tc.status, tc.stage, tc.changed, tc.releases, d.Error)
			}
			if synced := d.Synced != nil && *d.Synced; synced != tc.synced && d.Stage != StagePush {
				t.Errorf("synced %v, want %v", synced, tc.synced)
			}
			if !strings.Contains(d.Error, tc.errorPart) {
				t.Errorf("error %q lacks %q", d.Error, tc.errorPart)
			}
			if tc.config == manual && !strings.Contains(d.Message, "syncs manually") {
				t.Errorf("manual cluster: message %q", d.Message)
			}
			if d.Changed && d.Commit == "" || !d.Changed && d.Commit != "c0" && d.Stage != StagePush {
				t.Errorf("commit %q (changed %v)", d.Commit, d.Changed)
			}
		})
	}
}

// TestBatching: requests queued while a push runs are pushed together in
// the next batch, each as its own commit.
func TestBatching(t *testing.T) {
	g, e := newFakeGit(t, fakeFiles(autoConfig)), &fakeSyncer{}
	g.Hold, g.Applying = make(chan struct{}), make(chan int, 10)
	svc := newFakeService(t, g, e)
	ctx := fakeContext(t)
	first, err := svc.Submit(ctx, request("2.0.0", ""))
	if err != nil {
		t.Fatal(err)
	}
	<-g.Applying // the first batch holds the git worker
	var ids []string
	for _, r := range []Request{request("2.0.1", ""), {Cluster: "prod", TriggerRepo: "gitlab.com/acme/worker",
		ImageRepo: "registry.acme.io/acme/worker", Tag: "3.0.0", Author: "Bob <bob@acme.io>", Client: "ci"}, request("2.0.2", "")} {
		d, err := svc.Submit(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	close(g.Hold)
	var commits []string
	for _, id := range append([]string{first.ID}, ids...) {
		d, err := svc.Wait(ctx, id)
		if err != nil || d.Status != Succeeded || !d.Changed {
			t.Fatalf("deployment %s: %+v %v", id, d, err)
		}
		commits = append(commits, d.Commit)
	}
	if got := g.batchSizes(); len(got) != 2 || got[0] != 1 || got[1] != 3 {
		t.Errorf("batch sizes %v, want [1 3]", got)
	}
	if commits[1] == commits[2] || commits[2] == commits[3] || commits[1] == commits[3] {
		t.Errorf("commits %v: one per request expected", commits)
	}
}

// TestSyncCoalescing: every sync asked for while one runs is served by one
// next sync, which covers them all.
func TestSyncCoalescing(t *testing.T) {
	g := newFakeGit(t, fakeFiles(autoConfig))
	gate := make(chan struct{})
	e := &fakeSyncer{Started: make(chan struct{}, 10), Gates: map[string]chan struct{}{valuesFile: gate}}
	svc := newFakeService(t, g, e)
	ctx := fakeContext(t)
	results := make(chan error, 5)
	go func() { _, err := svc.Sync(ctx, "prod", false); results <- err }()
	<-e.Started // the first sync runs and waits at the app release
	for range 4 {
		go func() { _, err := svc.Sync(ctx, "prod", true); results <- err }()
	}
	c := svc.clusters["prod"]
	waitFor(t, "four waiting sync requests", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.queue.waiters) == 4
	})
	close(gate)
	for range 5 {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.syncs != 2 || e.full[0] || !e.full[1] {
		t.Errorf("%d syncs (full %v), want 2: the first, then one full for the four asked meanwhile", e.syncs, e.full)
	}
}

// TestEarlyAnswer: a deployment is answered as soon as its own release is
// rolled out, while the cluster's sync still waits for another release.
func TestEarlyAnswer(t *testing.T) {
	g := newFakeGit(t, fakeFiles(autoConfig))
	workerGate := make(chan struct{})
	e := &fakeSyncer{Gates: map[string]chan struct{}{workerFile: workerGate}}
	svc := newFakeService(t, g, e)
	var once sync.Once
	release := func() { once.Do(func() { close(workerGate) }) }
	t.Cleanup(release)
	d := deployAndWait(t, svc, request("2.0.0", "")) // returns before workerGate opens
	if d.Status != Succeeded || len(d.Releases) != 1 || d.Releases[0].File != valuesFile {
		t.Fatalf("early answer: %+v", d)
	}
	if st, _ := svc.ClusterStatus("prod"); !st.LastSync.IsZero() {
		t.Fatalf("the cluster's sync ended before the worker release: %+v", st)
	}
	release()
	waitFor(t, "the sync to end", func() bool { st, _ := svc.ClusterStatus("prod"); return !st.LastSync.IsZero() })
}

// TestDeployAction runs the pipeline of mgo deploy --repo on fakes: a
// deploy synced and settled, a refusal that writes nothing, a rollout
// that failed.
func TestDeployAction(t *testing.T) {
	g := newFakeGit(t, fakeFiles(autoConfig))
	e := &fakeSyncer{}
	a := &DeployAction{Git: g, NewSyncer: func(*repo.Repo) (ClusterSyncer, error) { return e, nil }}
	d, err := a.Run(fakeContext(t), request("2.0.0", ""))
	if err != nil || d.Status != Succeeded || !d.Changed || d.Commit != "c1" || len(d.Releases) != 1 || e.count() != 1 {
		t.Fatalf("deploy: %+v %v (%d syncs)", d, err, e.count())
	}
	req := request("2.0.1", "")
	req.TriggerRepo = "gitlab.com/acme/nothing"
	if _, err := a.Run(fakeContext(t), req); !Refused(err) || len(g.batchSizes()) != 1 {
		t.Fatalf("unlisted trigger repo: %v, %d batches", err, len(g.batchSizes()))
	}
	e.Fail = map[string]reconcile.Stage{valuesFile: reconcile.StageWait}
	if d, err = a.Run(fakeContext(t), request("2.0.2", "")); err != nil || d.Status != Failed || d.Stage != StageRollout {
		t.Fatalf("failed rollout: %+v %v", d, err)
	}
	g.PushErr = errTest
	if _, err := a.Run(fakeContext(t), request("2.0.3", "")); err == nil || Refused(err) {
		t.Fatalf("push failure: %v", err)
	}
}
