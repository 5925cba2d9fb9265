package deploy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/mygitops/mgo/internal/gitrepo"
	"github.com/mygitops/mgo/internal/gittest"
	"github.com/mygitops/mgo/internal/kube"
	"github.com/mygitops/mgo/internal/logtest"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/render"
	"github.com/mygitops/mgo/internal/repo"
)

const (
	valuesFile = "installations/prod/app-values.yaml"
	httpUser   = "mgo"
	httpPass   = "git-password-for-tests"
)

// manualConfig is the skeleton's mygitops.yaml with cluster prod syncing
// manually: deploys commit and push, and no sync touches a cluster.
const manualConfig = `helm:
  repositories:
    - name: acme
      url: https://charts.acme.io
clusters:
  prod:
    sync: manual
`

// fixture is a Service on a real clone of a real git server.
type fixture struct {
	remote *gittest.Remote
	server *gittest.HTTPServer
	svc    *Service
	store  *BoltStore
	log    *logtest.Buffer
}

type fixtureOptions struct {
	files     map[string]string
	queueSize int
	// engine serves cluster prod; nil for tests that never sync it.
	engine *reconcile.Engine
	// notifier is told of events (none when nil).
	notifier Notifier
}

func newFixture(t *testing.T, o fixtureOptions) *fixture {
	t.Helper()
	if o.files == nil {
		o.files = gittest.Skeleton()
		o.files["mygitops.yaml"] = manualConfig
	}
	f := &fixture{remote: gittest.NewRemote(t, o.files), log: &logtest.Buffer{}}
	f.server = gittest.NewHTTPServer(t, f.remote, httpUser, httpPass)
	pw := filepath.Join(t.TempDir(), "pw")
	writeFile(t, pw, httpPass)
	opts := gitrepo.DefaultOptions()
	opts.URL, opts.InsecureAllowHTTP = f.server.URL, true
	opts.Dir = filepath.Join(t.TempDir(), "clone")
	opts.Auth = gitrepo.Auth{Username: httpUser, Password: gitrepo.SecretRef{File: pw}}
	opts.RetryBackoff, opts.MaxRetryBackoff = 10*time.Millisecond, 50*time.Millisecond
	opts.Timeout = 20 * time.Second
	log := slog.New(slog.NewTextHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", f.log.String())
		}
	})
	git, err := gitrepo.New(opts, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := git.Open(testContext(t)); err != nil {
		t.Fatal(err)
	}
	f.store, err = OpenStore(filepath.Join(t.TempDir(), "deployments.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.store.Close() })
	f.svc, err = New(Config{Git: git, Engines: Syncers(map[string]*reconcile.Engine{"prod": o.engine}), Store: f.store,
		SnapshotDir: filepath.Join(t.TempDir(), "snapshots"), QueueSize: o.queueSize, Log: log, Notifier: o.notifier})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// run starts the git worker; it stops (and Run returns) when the test ends.
func (f *fixture) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func request(tag, key string) Request {
	return Request{Cluster: "prod", TriggerRepo: "gitlab.com/acme/app", ImageRepo: "registry.acme.io/acme/app",
		Tag: tag, Author: "Alice <alice@acme.io>", Client: "ci", IdempotencyKey: key}
}

func (f *fixture) deploy(t *testing.T, req Request) (*Deployment, error) {
	t.Helper()
	ctx := testContext(t)
	d, err := f.svc.SubmitWaiting(ctx, req)
	if err != nil {
		return nil, err
	}
	return f.svc.Wait(ctx, d.ID)
}

func TestManualClusterIsNotSyncedByPushes(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	f.run(t)
	d, err := f.deploy(t, request("1.5.0", ""))
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != Succeeded || d.Synced == nil || *d.Synced || !strings.Contains(d.Message, "syncs manually") || !d.Changed {
		t.Fatalf("deploy to a manual cluster: %+v, want succeeded, changed, synced=false and a message", d)
	}
	if !d.Times.Synced.IsZero() || !d.Times.RolledOut.IsZero() {
		t.Errorf("times say it was synced: %+v", d.Times)
	}
	if got := f.remote.File(t, valuesFile); !strings.Contains(got, `tag: "1.5.0"`) {
		t.Errorf("not pushed:\n%s", got)
	}
	st, _ := f.svc.ClusterStatus("prod")
	if !st.Manual || st.Pending != f.remote.Head(t) || !st.LastSync.IsZero() {
		t.Errorf("cluster status: %+v, want manual with the pushed head pending", st)
	}

	// A person's push, seen by a poll or a webhook, syncs nothing either.
	p := gittest.NewPerson(t, f.remote.Dir, "Bob", "bob@acme.io")
	if _, err := p.PushChange(map[string]string{"installations/prod/other-values.yaml": "x: 1\n"}, "add a file", 3); err != nil {
		t.Fatal(err)
	}
	synced, err := f.svc.Refresh(testContext(t))
	if err != nil || len(synced) != 0 {
		t.Errorf("refresh: synced %v (%v), want none", synced, err)
	}
	// Nor does the start-up sync.
	f.svc.StartupSync(testContext(t))
	if !strings.Contains(f.log.String(), "initial sync skipped") {
		t.Errorf("start-up sync did not skip the manual cluster")
	}
}

// unreachableEngine is a real engine for cluster prod whose API server
// accepts connections and never answers: a sync through it runs until its
// context ends.
func unreachableEngine(t *testing.T) *reconcile.Engine {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	// Requests give up after a second, as discovery (which takes no
	// context) would otherwise wait for ever.
	c, err := kube.NewCluster("prod", &rest.Config{Host: "http://" + ln.Addr().String(), Timeout: time.Second}, repo.Budget{})
	if err != nil {
		t.Fatal(err)
	}
	charts, err := render.NewCharts(render.DefaultOptions(t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := reconcile.New(c, charts, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// rawOnly is a repo whose cluster prod (manual) holds one raw manifest and
// no release, so a sync goes to the API server at once.
func rawOnly() map[string]string {
	return map[string]string{
		"mygitops.yaml":                    manualConfig,
		"installations/prod/base-raw.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: app\n",
	}
}

func TestExplicitSyncSyncsManualCluster(t *testing.T) {
	f := newFixture(t, fixtureOptions{files: rawOnly(), engine: unreachableEngine(t)})
	f.run(t)
	res, err := f.svc.Sync(testContext(t), "prod", false)
	// The explicit sync went to the (silent) API server and failed there,
	// instead of being skipped.
	if err == nil && (res == nil || res.RawError == "") {
		t.Fatalf("explicit sync of a manual cluster: %+v, want the engine's failure", res)
	}
	if errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if st, _ := f.svc.ClusterStatus("prod"); st.LastSync.IsZero() || !st.Failed || st.Pending != "" {
		t.Errorf("status after the explicit sync: %+v, want a failed sync", st)
	}
}

func TestShutdownWaitsForClusterSyncs(t *testing.T) {
	f := newFixture(t, fixtureOptions{files: rawOnly(), engine: unreachableEngine(t)})
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	runDone := make(chan struct{})
	go func() { f.svc.Run(runCtx); close(runDone) }()

	go func() { _, _ = f.svc.Sync(context.Background(), "prod", true) }()
	waitFor(t, "the sync to start", func() bool { return f.svc.syncRunning() })

	sctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := f.svc.Shutdown(sctx); err == nil || !strings.Contains(err.Error(), "cluster syncs still running") {
		t.Fatalf("Shutdown returned %v while a sync ran", err)
	}
	if _, err := f.svc.Sync(context.Background(), "prod", false); !errors.Is(err, ErrClosed) {
		t.Errorf("sync request after Shutdown: %v, want ErrClosed", err)
	}
	// Cancelling Run cancels the sync; Run returns once it has ended.
	stopRun()
	select {
	case <-runDone:
	case <-time.After(time.Minute):
		t.Fatal("Run did not return")
	}
	if f.svc.syncRunning() {
		t.Error("Run returned while a sync goroutine ran")
	}
}

// syncRunning reports whether a cluster sync goroutine runs.
func (s *Service) syncRunning() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncing > 0
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestIdempotencyKeyRetryAfterFailure(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	f.run(t)
	seed := f.remote.Count(t)

	// The git server refuses mgo's credentials: the push fails.
	f.server.SetCredentials(httpUser, "rotated")
	failed, err := f.deploy(t, request("1.6.0", "pipeline-1"))
	if err != nil || failed.Status != Failed || failed.Stage != StagePush {
		t.Fatalf("deploy with the git server refusing: %+v %v, want failed at push", failed, err)
	}
	// A different request with the key of the failure is still a conflict.
	if _, err := f.svc.Submit(testContext(t), request("9.9.9", "pipeline-1")); !errors.Is(err, ErrConflict) {
		t.Errorf("another request with the key: %v, want ErrConflict", err)
	}

	// Back up: the retry with the same key deploys.
	f.server.SetCredentials(httpUser, httpPass)
	ok, err := f.deploy(t, request("1.6.0", "pipeline-1"))
	if err != nil || ok.Status != Succeeded || ok.ID == failed.ID || !ok.Changed {
		t.Fatalf("retry after the failure: %+v %v, want a new, successful deployment", ok, err)
	}
	// The key now points at the success, and a further retry returns it.
	again, err := f.svc.Submit(testContext(t), request("1.6.0", "pipeline-1"))
	if err != nil || again.ID != ok.ID {
		t.Errorf("retry after success: %+v %v, want %s", again, err, ok.ID)
	}
	if n := f.remote.Count(t); n != seed+1 {
		t.Errorf("%d commits after the seed, want 1", n-seed)
	}
	if old, err := f.store.Get(failed.ID); err != nil || old.Status != Failed {
		t.Errorf("the failed deployment's record: %+v %v", old, err)
	}
}

func TestFullQueueStoresNothing(t *testing.T) {
	f := newFixture(t, fixtureOptions{queueSize: 1})
	first, err := f.svc.Submit(testContext(t), request("2.0.0", "a"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.Submit(testContext(t), request("2.0.1", "b"))
	if !errors.Is(err, ErrQueueFull) || !errors.Is(err, ErrClosed) {
		t.Fatalf("second request with the queue full: %v, want ErrQueueFull (503)", err)
	}
	if d, err := f.store.Lookup("ci", "b"); d != nil || err != nil {
		t.Errorf("the refused request's key was stored: %+v %v", d, err)
	}
	if list, _ := f.store.List(10, nil); len(list) != 1 {
		t.Errorf("%d records, want only the queued one", len(list))
	}
	// A repeat of the queued request still gets its deployment.
	if d, err := f.svc.Submit(testContext(t), request("2.0.0", "a")); err != nil || d.ID != first.ID {
		t.Errorf("repeat of the queued request with the queue full: %+v %v", d, err)
	}

	f.run(t)
	if d, err := f.svc.Wait(testContext(t), first.ID); err != nil || d.Status != Succeeded {
		t.Fatalf("first: %+v %v", d, err)
	}
	d, err := f.deploy(t, request("2.0.1", "b"))
	if err != nil || d.Status != Succeeded {
		t.Fatalf("retry of the refused request: %+v %v", d, err)
	}
	if got := f.remote.File(t, valuesFile); !strings.Contains(got, `tag: "2.0.1"`) {
		t.Errorf("retry not pushed:\n%s", got)
	}
}

func TestQueuedRequestOfDepartedClientIsDropped(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	seed := f.remote.Count(t)
	gone, cancel := context.WithCancel(testContext(t))
	waiting, err := f.svc.SubmitWaiting(gone, request("3.0.0", "w"))
	if err != nil {
		t.Fatal(err)
	}
	detachedCtx, cancelDetached := context.WithCancel(testContext(t))
	detached, err := f.svc.Submit(detachedCtx, request("3.1.0", "d"))
	if err != nil {
		t.Fatal(err)
	}
	cancel()         // the waiting client hangs up while its request is queued
	cancelDetached() // a detached request goes on without its client
	f.run(t)

	d, err := f.svc.Wait(testContext(t), waiting.ID)
	if err != nil || d.Status != Failed || d.Stage != StageCommit || !strings.Contains(d.Error, "client went away") {
		t.Fatalf("request of a departed client: %+v %v, want failed at commit", d, err)
	}
	d, err = f.svc.Wait(testContext(t), detached.ID)
	if err != nil || d.Status != Succeeded || !d.Changed {
		t.Fatalf("detached request: %+v %v, want succeeded", d, err)
	}
	if n := f.remote.Count(t); n != seed+1 {
		t.Errorf("%d commits, want only the detached request's", n-seed)
	}
	if got := f.remote.File(t, valuesFile); !strings.Contains(got, `tag: "3.1.0"`) {
		t.Errorf("values file:\n%s", got)
	}
}

func TestSubmitRefusals(t *testing.T) {
	files := gittest.Skeleton()
	files["mygitops.yaml"] = manualConfig + "    allowedImages: [\"registry.acme.io/acme/*\"]\n"
	f := newFixture(t, fixtureOptions{files: files})
	ctx := testContext(t)

	evil := request("1.0.0", "")
	evil.ImageRepo = "evil.example.com/acme/app"
	_, err := f.svc.Submit(ctx, evil)
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "registry.acme.io/acme/*") {
		t.Errorf("image outside allowedImages: %v, want ErrForbidden naming the allowed patterns", err)
	}
	if _, err := f.svc.Submit(ctx, request("1.0.0", "")); err != nil {
		t.Errorf("allowed image: %v", err)
	}

	unknown := request("1.0.0", "")
	unknown.TriggerRepo = "gitlab.com/acme/nobody"
	_, err = f.svc.Submit(ctx, unknown)
	var nf *NotFoundError
	if !errors.As(err, &nf) || !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "searched installations/prod/*-values.yaml") {
		t.Fatalf("unlisted trigger repo: %v", err)
	}
	if msg := nf.Message(func(string) bool { return false }); strings.Contains(msg, "gitlab.com/acme/app") {
		t.Errorf("filtered message names a trigger repo: %s", msg)
	}
	if !strings.Contains(nf.Error(), "gitlab.com/acme/app") {
		t.Errorf("unfiltered message does not list the trigger repos: %s", nf.Error())
	}
	noCluster := request("1.0.0", "")
	noCluster.Cluster = "staging"
	if _, err := f.svc.Submit(ctx, noCluster); !errors.As(err, &nf) || nf.What != "cluster" {
		t.Errorf("unserved cluster: %v", err)
	}
	if list, _ := f.store.List(10, nil); len(list) != 1 {
		t.Errorf("%d records, want only the allowed request's", len(list))
	}
}
