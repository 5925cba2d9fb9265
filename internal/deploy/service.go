package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mygitops/mgo/internal/faults"
	"github.com/mygitops/mgo/internal/gitrepo"
	"github.com/mygitops/mgo/internal/repo"
	"github.com/mygitops/mgo/internal/secrets"
)

// Config wires a Service.
type Config struct {
	// Git is the clone of the gitops repo.
	Git GitWriter
	// Engines syncs each cluster this mgo serves, by name (kubeconfig
	// context, installations/<name>).
	Engines map[string]ClusterSyncer
	// SecretKeys decrypt SOPS-encrypted secrets files when a request is
	// checked: one that does not decrypt refuses the deploy (422) before
	// anything is committed.
	SecretKeys secrets.Keys
	// Store keeps the deployment records.
	Store Store
	// SnapshotDir holds the copies of the tree that syncs read, so a long
	// rollout wait never blocks the next commit.
	SnapshotDir string
	// MaxBatch bounds how many queued requests one push carries (default 50).
	MaxBatch int
	// QueueSize bounds the requests waiting for the git worker (default
	// 1000); a full queue refuses new requests.
	QueueSize int
	Log       *slog.Logger
	Metrics   *Metrics
	// Notifier is told of finished deployments, syncs of pushed changes
	// and drift (nothing when nil). It never delays or fails a deploy.
	Notifier Notifier
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Owner, with a Store that is a Watcher, shares the clusters with other
	// replicas: only the clusters it holds are synced here (nil: all).
	Owner Owner
	// Committer is mgo's own git identity ("Name <email>"), the author of
	// the reverts it makes of deploys whose rollout failed (onFailure:
	// revert); gitrepo.DefaultOptions' committer when empty.
	Committer string
	// SyncStopTimeout bounds how long Run waits, once its context ended,
	// for the cancelled cluster syncs to return (default 30s).
	SyncStopTimeout time.Duration
}

// Service runs deploy requests. Start it with Run.
type Service struct {
	cfg       Config
	log       *slog.Logger
	snapshots *snapshots // of the tree, for syncs (withSnapshot)
	// parsed keeps what the values files say between loads of the tree.
	parsed *repo.ParseCache
	// action is the deploy pipeline whose steps the service runs (check,
	// change, settle), as mgo deploy --repo does.
	action *DeployAction
	// ctx is cancelled when Run returns: syncs in flight stop with it.
	ctx      context.Context
	cancel   context.CancelFunc
	queue    chan *job
	clusters map[string]*scheduler
	// replicas is how the clusters are shared with other replicas: alone,
	// or shared (the same value as shared) by leases.
	replicas replicaPolicy
	shared   *shared // nil unless the records and clusters are shared

	holds freezeHolds // pushed changes held by freezes (freeze.go)
	// holder holds deploys behind soaking candidates (held.go); config is
	// mygitops.yaml at the last head read.
	holder Holder
	config headConfig

	mu      sync.Mutex
	closed  bool                     // Shutdown began: no new requests or syncs
	stopped bool                     // Run returned: nothing starts any more
	waiters map[string]chan struct{} // closed when the deployment is finished
	running sync.WaitGroup           // jobs accepted and not finished
	syncing int                      // cluster sync goroutines running
	idle    chan struct{}            // closed when syncing drops to 0
}

// errClientGone fails a queued request whose waiting client left.
var errClientGone = errors.New("the client went away before the deploy started; nothing was committed")

// job is a deployment in flight.
type job struct {
	d *Deployment
	// client is the context of a client waiting for the answer (nil when
	// the request is detached): when it ends before the edit is made, the
	// request is dropped.
	client context.Context
	edited bool // the edit ran at least once (a commit may exist)
	// files are the values files the request concerns: those the edit
	// changed, or, when nothing changed, those listing the trigger repo.
	files []string
	// revert is the commit a rollback reverts.
	revert string
	// revertOf is the deploy whose failed rollout a revert job undoes: it
	// is finished when the revert is (revert.go).
	revertOf *job
	// head is the branch head its push left (the tip of its batch).
	head string
}

// New checks cfg and returns a Service. Deployments left unfinished by an
// earlier run are marked failed.
func New(cfg Config) (*Service, error) {
	if cfg.Git == nil || cfg.Store == nil || cfg.SnapshotDir == "" {
		return nil, errors.New("deploy: git, store and snapshot directory are required")
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 50
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1000
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Committer == "" {
		cfg.Committer = gitrepo.DefaultOptions().Committer.String()
	}
	if _, err := gitrepo.ParseAuthor(cfg.Committer); err != nil {
		return nil, fmt.Errorf("deploy: committer: %w", err)
	}
	if cfg.SyncStopTimeout <= 0 {
		cfg.SyncStopTimeout = 30 * time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	s := &Service{
		cfg:       cfg,
		log:       cfg.Log,
		queue:     make(chan *job, cfg.QueueSize),
		clusters:  map[string]*scheduler{},
		waiters:   map[string]chan struct{}{},
		snapshots: &snapshots{dir: cfg.SnapshotDir},
		parsed:    repo.NewParseCache(),
		replicas:  alone{},
	}
	s.action = &DeployAction{Git: cfg.Git, SecretKeys: cfg.SecretKeys, Now: cfg.Now, Cache: s.parsed}
	// Copies left by an earlier run are stale.
	if old, err := filepath.Glob(filepath.Join(cfg.SnapshotDir, "tree-*")); err == nil {
		for _, d := range old {
			os.RemoveAll(d)
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for name, e := range cfg.Engines {
		c := newScheduler(s, name, e)
		s.clusters[name] = c
		if ds, ok := e.(DriftSource); ok && !nilEngine(e) {
			ds.OnDrift(c.onDrift)
		}
	}
	if r := cfg.Store.Recovered(); r != nil {
		s.log.Error("the deployment store was corrupt: moved aside, starting with no deployment records (git trailers say what was deployed)",
			"movedTo", r.MovedTo, "error", r.Cause)
	}
	if n, err := cfg.Store.Interrupted(cfg.Now()); err != nil {
		return nil, err
	} else if n > 0 {
		s.log.Warn("deployments left unfinished by the last run marked failed", "count", n)
	}
	s.startShared()
	return s, nil
}

// Clusters returns the names of the served clusters, sorted.
func (s *Service) Clusters() []string { return slices.Sorted(maps.Keys(s.clusters)) }

// Run processes queued requests until ctx ends. Requests still queued then
// are failed; deployments and cluster syncs in flight are cancelled with
// ctx. Run returns once every cluster sync goroutine has ended (or
// SyncStopTimeout passed, which it logs).
func (s *Service) Run(ctx context.Context) {
	defer func() {
		s.mu.Lock()
		s.closed, s.stopped = true, true
		s.mu.Unlock()
		s.cancel()
		select {
		case <-s.syncsIdle():
		case <-time.After(s.cfg.SyncStopTimeout):
			// A sync stuck in a call that ignores its context: do not hang
			// the shutdown for ever.
			s.log.Error("cluster syncs did not stop after they were cancelled", "waited", s.cfg.SyncStopTimeout)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			s.drain(ctx.Err())
			return
		case j := <-s.queue:
			batch := []*job{j}
		more:
			for len(batch) < s.cfg.MaxBatch {
				select {
				case j := <-s.queue:
					batch = append(batch, j)
				default:
					break more
				}
			}
			s.cfg.Metrics.QueueDepth.Set(float64(len(s.queue)))
			s.process(ctx, batch)
		}
	}
}

// Shutdown refuses new requests and sync requests, and waits until every
// accepted request has finished and no cluster sync runs any more (so no
// Helm action is cut short), or until ctx ends. When ctx ends first, cancel
// Run's context: Run cancels the syncs and returns when they have ended.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.running.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("deployments still in flight: %w", ctx.Err())
	}
	select {
	case <-s.syncsIdle():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cluster syncs still running: %w", ctx.Err())
	}
}

// syncStarted counts a new sync goroutine; false once Run has returned.
func (s *Service) syncStarted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	s.syncing++
	return true
}

func (s *Service) syncEnded() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncing--
	if s.syncing == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

// syncsIdle is closed when no cluster sync goroutine runs.
func (s *Service) syncsIdle() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.syncing == 0 {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	if s.idle == nil {
		s.idle = make(chan struct{})
	}
	return s.idle
}

// isClosed reports whether Shutdown began or Run returned.
func (s *Service) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Service) drain(cause error) {
	for {
		select {
		case j := <-s.queue:
			s.fail(j, StageCommit, fmt.Errorf("not started: %w", cause))
		default:
			return
		}
	}
}

// Submit validates req completely, records it and queues it. It returns the
// queued deployment (or, for a repeated idempotency key, the earlier one,
// unless that one failed: then the retry is a new deployment). Nothing is
// recorded or written for a refused request. ctx bounds only the checks:
// once queued, the request is detached from its client (see SubmitWaiting).
func (s *Service) Submit(ctx context.Context, req Request) (*Deployment, error) {
	return s.submit(ctx, req, nil)
}

// SubmitWaiting is Submit for a client that waits for the answer: when
// ctx ends while the request is still queued (before its edit is made),
// the request is dropped, failed at stage commit with nothing committed.
func (s *Service) SubmitWaiting(ctx context.Context, req Request) (*Deployment, error) {
	return s.submit(ctx, req, ctx)
}

func (s *Service) submit(ctx context.Context, req Request, client context.Context) (*Deployment, error) {
	if err := req.Normalize(); err != nil {
		s.cfg.Metrics.Deploys.WithLabelValues("refused").Inc()
		return nil, err
	}
	files, err := s.check(ctx, &req)
	if err != nil {
		s.cfg.Metrics.Deploys.WithLabelValues("refused").Inc()
		return nil, err
	}
	d := &Deployment{ID: newID(s.cfg.Now()), Kind: KindDeploy, Request: req, Status: Queued}
	if out, held, err := s.hold(d); held {
		return out, err
	}
	out, err := s.enqueue(&job{d: d, files: files, client: client})
	if err != nil {
		s.cfg.Metrics.Deploys.WithLabelValues("refused").Inc()
	}
	return out, err
}

// check finds the values files of req's cluster that list its trigger repo,
// at the last fetched head.
func (s *Service) check(ctx context.Context, req *Request) ([]string, error) {
	if _, err := s.cluster(req.Cluster); err != nil {
		return nil, err
	}
	return s.action.Check(ctx, req)
}

// Targets returns the values files (relative to dir) of req's cluster that
// list its trigger repo. An unknown cluster or trigger repo is a
// *NotFoundError (ErrNotFound) saying what was searched; an image
// repository the cluster's allowedImages in mygitops.yaml does not allow is
// ErrForbidden.
//
// keys decrypt the releases' SOPS-encrypted secrets files, so a file that
// does not decrypt or whose MAC fails refuses the deploy before anything
// is committed; without keys such files are not checked.
func Targets(dir string, req Request, keys secrets.Keys) ([]string, error) {
	return targets(dir, req, keys, nil)
}

// targets is Targets, loading the tree with a parse cache.
func targets(dir string, req Request, keys secrets.Keys, cache *repo.ParseCache) ([]string, error) {
	noCluster := &NotFoundError{What: "cluster", Name: req.Cluster,
		Where: fmt.Sprintf("the repo has no directory %s/%s", repo.InstallationsDir, req.Cluster)}
	r, err := repo.Load(dir, repo.LoadOptions{Cluster: req.Cluster, Keys: keys, Cache: cache})
	if err != nil {
		if errors.Is(err, repo.ErrUnknownCluster) {
			return nil, noCluster
		}
		return nil, err
	}
	c := r.Clusters[req.Cluster]
	if c == nil {
		return nil, noCluster
	}
	settings := r.Config.Cluster(req.Cluster)
	if !settings.ImageAllowed(req.ImageRepo) {
		return nil, fmt.Errorf("%w: image repository %q may not be deployed to cluster %s: its allowedImages in %s are %s",
			ErrForbidden, req.ImageRepo, req.Cluster, repo.ConfigFile, strings.Join(settings.AllowedImages, ", "))
	}
	rels, err := r.ReleasesForTrigger(req.Cluster, req.TriggerRepo)
	if err != nil {
		var listed []string
		for _, rl := range c.Releases {
			for _, img := range rl.Header.Images {
				if !slices.Contains(listed, img.TriggerRepo) {
					listed = append(listed, img.TriggerRepo)
				}
			}
		}
		slices.Sort(listed)
		return nil, &NotFoundError{What: "trigger repo", Name: req.TriggerRepo, Cluster: req.Cluster, Known: listed,
			Where: fmt.Sprintf("%s (%d files)", path.Join(repo.InstallationsDir, req.Cluster, "*"+repo.ValuesSuffix), len(c.Releases))}
	}
	var files, problems []string
	for _, rel := range rels {
		files = append(files, rel.File)
		for _, p := range r.Problems.Errors() {
			if p.File == rel.File || p.File == rel.SecretsFile {
				problems = append(problems, p.String())
			}
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: fix these first (mgo validate): %s", ErrUnprocessable, strings.Join(problems, "; "))
	}
	return files, nil
}

// enqueue records j and queues it. A full queue refuses it with nothing
// recorded, so a retry with the same idempotency key can succeed later.
func (s *Service) enqueue(j *job) (*Deployment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	j.d.Times.Queued = s.cfg.Now()
	req := j.d.Request
	// Only enqueue sends to the queue, under s.mu, so a queue with room now
	// still has room below.
	if len(s.queue) >= cap(s.queue) {
		if req.IdempotencyKey != "" {
			prev, err := s.cfg.Store.Lookup(req.Client, req.IdempotencyKey)
			if err != nil {
				return nil, err
			}
			if prev != nil && (prev.Status != Failed || !sameRequest(prev.Request, req)) {
				return repeated(prev, req)
			}
		}
		return nil, fmt.Errorf("%w (%d requests); nothing was recorded, retry later", ErrQueueFull, cap(s.queue))
	}
	prev, err := s.cfg.Store.Create(j.d)
	if err != nil {
		return nil, err
	}
	if prev != nil {
		return repeated(prev, req)
	}
	out := clone(j.d) // the worker owns j.d once it is queued
	s.running.Add(1)
	s.waiters[j.d.ID] = make(chan struct{})
	s.shared.track(j.d.ID)
	s.queue <- j
	s.cfg.Metrics.QueueDepth.Set(float64(len(s.queue)))
	s.log.Info("deployment queued", "id", out.ID, "kind", out.Kind, "cluster", out.Request.Cluster,
		"triggerRepo", out.Request.TriggerRepo, "image", out.Request.Ref(), "client", out.Request.Client)
	if out.Kind == KindDeploy {
		s.notify(startedEvent(out))
	}
	return out, nil
}

// repeated answers a request whose idempotency key points at prev.
func repeated(prev *Deployment, req Request) (*Deployment, error) {
	if !sameRequest(prev.Request, req) {
		return nil, fmt.Errorf("%w: idempotency key %q was used for deployment %s with another request",
			ErrConflict, req.IdempotencyKey, prev.ID)
	}
	prev.Seconds = prev.Times.Durations()
	return prev, nil
}

func sameRequest(a, b Request) bool {
	// A retried CI job is another job (or run attempt) of the same
	// client: its identity may differ in detail.
	a.Author, b.Author = "", ""
	a.Identity, b.Identity = Identity{}, Identity{}
	// The freeze it went through is the check's, not the request's.
	a.OverrideFreeze, b.OverrideFreeze, a.FreezeOverride, b.FreezeOverride = false, false, "", ""
	return a == b
}

// Get returns the deployment with id.
func (s *Service) Get(id string) (*Deployment, error) { return s.cfg.Store.Get(id) }

// List returns up to limit recent deployments for which keep is true
// (every one when keep is nil), newest first.
func (s *Service) List(limit int, keep func(*Deployment) bool) ([]*Deployment, error) {
	return s.cfg.Store.List(limit, keep)
}

// Wait waits until the deployment is finished or ctx ends, and returns it.
func (s *Service) Wait(ctx context.Context, id string) (*Deployment, error) {
	s.mu.Lock()
	ch := s.waiters[id]
	s.mu.Unlock()
	if ch == nil {
		ch = s.waitRemote(id)
	}
	if ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.cfg.Store.Get(id)
}

// Rollback queues a deployment that reverts the commit of deployment id and
// syncs its cluster.
func (s *Service) Rollback(ctx context.Context, id, client, author string) (*Deployment, error) {
	return s.RollbackBy(ctx, id, client, Identity{}, author)
}

// RollbackBy is Rollback for a caller with an OIDC identity, which the
// rollback's record and commit carry.
func (s *Service) RollbackBy(ctx context.Context, id, client string, identity Identity, author string) (*Deployment, error) {
	orig, err := s.cfg.Store.Get(id)
	if err != nil {
		return nil, err
	}
	switch {
	case !orig.Status.Terminal():
		return nil, fmt.Errorf("%w: deployment %s is still %s", ErrConflict, id, orig.Status)
	case !orig.Changed || orig.Commit == "":
		return nil, fmt.Errorf("%w: deployment %s made no commit; there is nothing to revert", ErrConflict, id)
	}
	if _, err := s.cluster(orig.Request.Cluster); err != nil {
		return nil, err
	}
	req := orig.Request
	req.Client, req.Author, req.IdempotencyKey, req.Restart = client, author, "", false
	req.Identity = identity // the rollback's caller, not the original's
	req.SourceCommit = ""   // a rollback builds nothing from the source
	if req.Author == "" {
		req.Author = client
	}
	if err := CheckAuthor(strings.TrimSpace(req.Author)); err != nil {
		return nil, err
	}
	req.OverrideFreeze = freezeOverrideOf(ctx) // a rollback changes the cluster as a deploy does
	if err := s.action.CheckFreeze(ctx, &req); err != nil {
		return nil, err
	}
	d := &Deployment{ID: newID(s.cfg.Now()), Kind: KindRollback, Request: req, RollbackOf: id, Status: Queued}
	return s.enqueue(&job{d: d, files: orig.Files, revert: orig.Commit})
}

// process runs one batch: deploys as one ApplyBatch (one push), rollbacks
// one by one, then hands the jobs to their clusters' syncs.
func (s *Service) process(ctx context.Context, batch []*job) {
	var deploys []*job
	for _, j := range batch {
		if j.gone() {
			s.fail(j, StageCommit, errClientGone)
			continue
		}
		if j.d.Kind == KindRollback || j.d.Kind == KindRevert {
			s.revert(ctx, j)
		} else {
			deploys = append(deploys, j)
		}
	}
	if len(deploys) == 0 {
		return
	}
	changes := make([]gitrepo.Change, len(deploys))
	for i, j := range deploys {
		changes[i] = s.change(j)
	}
	start := s.cfg.Now()
	res, err := s.cfg.Git.ApplyBatch(ctx, changes)
	s.cfg.Metrics.Stage.WithLabelValues("push").Observe(s.cfg.Now().Sub(start).Seconds())
	if err != nil {
		for _, j := range deploys {
			s.fail(j, StagePush, err)
		}
		return
	}
	now := s.cfg.Now()
	for i, j := range deploys {
		cr := res.Changes[i]
		if errors.Is(cr.Err, errClientGone) {
			s.fail(j, StageCommit, errClientGone)
			continue
		}
		if cr.Err != nil {
			s.fail(j, StageCommit, cr.Err)
			continue
		}
		s.pushed(j, cr.Changed, cr.Commit, res.Head, now)
	}
}

// change is the request's commit, DeployAction's Change step; its edit runs
// again on a fresh tree after a lost push race.
func (s *Service) change(j *job) gitrepo.Change {
	before := func() error {
		// The first run is after the fetch, which may have taken long: a
		// waiting client that left meanwhile gets nothing committed. Later
		// runs (after a lost push race) must redo what the first one did.
		if !j.edited {
			if j.gone() {
				return errClientGone
			}
			j.edited = true
		}
		return nil
	}
	changed := func(files []string) {
		if len(files) > 0 {
			j.files = files
		}
		j.d.Times.Committed = s.cfg.Now()
	}
	return s.action.Change(j.d.Request, j.d.ID, j.files, before, changed)
}

// gone reports whether the job's waiting client has left.
func (j *job) gone() bool { return j.client != nil && j.client.Err() != nil }

// releaseName is "app" for installations/prod/app-values.yaml.
func releaseName(file string) string {
	base := file[strings.LastIndex(file, "/")+1:]
	return strings.TrimSuffix(base, repo.ValuesSuffix)
}

func (s *Service) revert(ctx context.Context, j *job) {
	req := j.d.Request
	info := gitrepo.CommitInfo{Author: req.Author, Message: gitrepo.Message{
		Summary:  fmt.Sprintf("rollback deployment %s on %s", j.d.RollbackOf, req.Cluster),
		Trailers: gitrepo.Trailers{TriggerRepo: req.TriggerRepo, RequestedBy: req.RequestedBy(), DeploymentID: j.d.ID, FreezeOverride: req.FreezeOverride},
	}}
	if j.d.Kind == KindRevert {
		info.Message.Summary = fmt.Sprintf("revert deployment %s on %s: its rollout failed", j.d.RollbackOf, req.Cluster)
		info.Message.Trailers.RevertsDeployment, info.Message.Trailers.RevertReason = j.d.RollbackOf, j.d.RevertReason
	}
	res, err := s.cfg.Git.Revert(ctx, j.revert, info)
	if err != nil {
		stage := StagePush
		if errors.Is(err, gitrepo.ErrRevertConflict) || errors.Is(err, gitrepo.ErrUnknownCommit) {
			stage = StageCommit
			err = fmt.Errorf("%w: %w", ErrConflict, err)
		}
		s.fail(j, stage, err)
		return
	}
	j.d.Times.Committed = s.cfg.Now()
	s.pushed(j, res.Changed, res.Commit, res.Head, s.cfg.Now())
}

// pushed records the commit and hands the job to its cluster's sync.
func (s *Service) pushed(j *job, changed bool, commit, head string, now time.Time) {
	s.mu.Lock()
	j.d.Status, j.d.Changed, j.d.Files = Pushed, changed, j.files
	j.d.Commit, j.head = commit, head
	if !changed {
		j.d.Commit = head
	}
	j.d.Times.Pushed = now
	if j.d.Times.Committed.IsZero() || !changed {
		j.d.Times.Committed = now
	}
	err := s.cfg.Store.Put(j.d)
	s.mu.Unlock()
	if err != nil {
		s.log.Error("storing deployment", "id", j.d.ID, "error", err)
	}
	s.log.Info("deployment pushed", "id", j.d.ID, "changed", changed, "commit", j.d.Commit)
	faults.Point(faults.AfterPush)
	if s.handOff(j) {
		s.revertLeft(j)
		return
	}
	if !s.clusters[j.d.Request.Cluster].add(j) {
		s.fail(j, StageSync, fmt.Errorf("%w: mgo stopped before the sync", ErrClosed))
	}
}

// fail finishes j as failed.
func (s *Service) fail(j *job, stage Stage, err error) {
	s.finish(j, func(d *Deployment) {
		d.Status, d.Stage, d.Error = Failed, stage, err.Error()
	})
}

// finish applies set to j's record, stores it and wakes its waiters.
func (s *Service) finish(j *job, set func(*Deployment)) {
	s.mu.Lock()
	set(j.d)
	j.d.Times.Finished = s.cfg.Now()
	if err := s.cfg.Store.Put(j.d); err != nil {
		s.log.Error("storing deployment", "id", j.d.ID, "error", err)
	}
	if ch := s.waiters[j.d.ID]; ch != nil {
		close(ch)
		delete(s.waiters, j.d.ID)
	}
	s.mu.Unlock()
	s.shared.untrack(j.d.ID)
	result := "succeeded"
	if j.d.Status == Failed {
		result = "failed"
		s.log.Warn("deployment failed", "id", j.d.ID, "stage", j.d.Stage, "error", j.d.Error)
	} else {
		s.log.Info("deployment succeeded", "id", j.d.ID, "commit", j.d.Commit, "duration", j.d.Times.Finished.Sub(j.d.Times.Queued))
	}
	s.notify(deploymentEvent(j.d))
	m := s.cfg.Metrics
	m.Deploys.WithLabelValues(result).Inc()
	for stage, at := range map[string]time.Time{"commit": j.d.Times.Committed, "sync": j.d.Times.Synced, "rollout": j.d.Times.RolledOut, "total": j.d.Times.Finished} {
		if !at.IsZero() {
			m.StageFromQueued.WithLabelValues(stage).Observe(at.Sub(j.d.Times.Queued).Seconds())
		}
	}
	s.running.Done()
	if j.revertOf != nil {
		s.reverted(j)
	}
}

func clone(d *Deployment) *Deployment {
	c := *d
	c.Seconds = c.Times.Durations()
	return &c
}
