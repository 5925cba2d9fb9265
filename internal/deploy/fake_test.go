package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mygitops/mgo/internal/gitrepo"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/repo"
)

// fakeGit is a GitWriter on a plain directory: every change is applied to
// it and "pushed" as commit c1, c2, ... One field per injected failure or
// hold.
type fakeGit struct {
	dir string
	// PushErr fails every ApplyBatch (nothing is applied).
	PushErr error
	// Hold, when set, makes ApplyBatch wait for a value before applying;
	// Applying is sent the batch size first.
	Hold     chan struct{}
	Applying chan int
	// RevertErr fails every Revert.
	RevertErr error

	mu      sync.Mutex
	head    string
	commits int
	batches []int // the size of each batch, in order
	// before holds, per commit, the content its change replaced of each
	// file it changed; Revert puts it back.
	before  map[string]map[string][]byte
	reverts []fakeRevert
}

// fakeRevert is a Revert that was asked for.
type fakeRevert struct {
	commit string
	info   gitrepo.CommitInfo
}

var _ GitWriter = (*fakeGit)(nil)

func newFakeGit(t *testing.T, files map[string]string) *fakeGit {
	g := &fakeGit{dir: t.TempDir(), head: "c0"}
	for name, content := range files {
		p := filepath.Join(g.dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

func (g *fakeGit) Fetch(context.Context) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.head, nil
}

func (g *fakeGit) Read(_ context.Context, fn func(dir, head string) error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return fn(g.dir, g.head)
}

func (g *fakeGit) ApplyBatch(ctx context.Context, changes []gitrepo.Change) (gitrepo.BatchResult, error) {
	if g.Applying != nil {
		g.Applying <- len(changes)
	}
	if g.Hold != nil {
		select {
		case <-g.Hold:
		case <-ctx.Done():
			return gitrepo.BatchResult{}, ctx.Err()
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.batches = append(g.batches, len(changes))
	if g.PushErr != nil {
		return gitrepo.BatchResult{}, g.PushErr
	}
	res := gitrepo.BatchResult{Attempts: 1, Changes: make([]gitrepo.ChangeResult, len(changes))}
	for i, c := range changes {
		prev := g.files()
		changed, err := c.Func(g.dir)
		if err != nil {
			res.Changes[i].Err = fmt.Errorf("%w: %w", gitrepo.ErrChange, err)
			continue
		}
		if changed {
			g.commits++
			g.head = fmt.Sprintf("c%d", g.commits)
			res.Changes[i] = gitrepo.ChangeResult{Changed: true, Commit: g.head}
			now, was := g.files(), map[string][]byte{}
			for name, b := range prev {
				if string(now[name]) != string(b) {
					was[name] = b
				}
			}
			if g.before == nil {
				g.before = map[string]map[string][]byte{}
			}
			g.before[g.head] = was
		}
	}
	res.Head = g.head
	return res, nil
}

// files reads every file of the tree, by slash path.
func (g *fakeGit) files() map[string][]byte {
	out := map[string][]byte{}
	_ = filepath.WalkDir(g.dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(g.dir, p)
			out[filepath.ToSlash(rel)] = b
		}
		return nil
	})
	return out
}

// Revert puts back the files commit changed (when ApplyBatch made it),
// and fails as gitrepo's does when a later commit changed them again.
func (g *fakeGit) Revert(_ context.Context, commit string, info gitrepo.CommitInfo) (gitrepo.Result, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.reverts = append(g.reverts, fakeRevert{commit: commit, info: info})
	if g.RevertErr != nil {
		return gitrepo.Result{Head: g.head}, g.RevertErr
	}
	var n int
	fmt.Sscanf(commit, "c%d", &n)
	for later := n + 1; later <= g.commits; later++ {
		for name := range g.before[fmt.Sprintf("c%d", later)] {
			if _, ok := g.before[commit][name]; ok {
				return gitrepo.Result{Head: g.head}, &gitrepo.RevertConflictError{Commit: commit, Files: []string{name}}
			}
		}
	}
	was := map[string][]byte{}
	for name, b := range g.before[commit] {
		was[name], _ = os.ReadFile(filepath.Join(g.dir, filepath.FromSlash(name)))
		if err := os.WriteFile(filepath.Join(g.dir, filepath.FromSlash(name)), b, 0o644); err != nil {
			return gitrepo.Result{}, err
		}
	}
	g.commits++
	g.head = fmt.Sprintf("c%d", g.commits)
	if g.before == nil {
		g.before = map[string]map[string][]byte{}
	}
	g.before[g.head] = was
	return gitrepo.Result{Changed: true, Commit: g.head, Head: g.head}, nil
}

func (g *fakeGit) batchSizes() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.batches...)
}

// fakeSyncer is a ClusterSyncer that reports a result per values file of
// the cluster, in file order, as Helm would report releases.
type fakeSyncer struct {
	// Err fails every Sync; Fail fails the release of a values file at a
	// stage.
	Err  error
	Fail map[string]reconcile.Stage
	// FailTag fails, at a stage, every release whose values file holds
	// tag: "<key>" (the fake's image tags are quoted).
	FailTag map[string]reconcile.Stage
	// Gates hold the result of a values file until a value arrives.
	Gates map[string]chan struct{}
	// Started is sent to when a sync starts (when set).
	Started chan struct{}
	// BackgroundGate, when set, holds each background sync at its start
	// until it is closed.
	BackgroundGate chan struct{}
	// DiffGate, when set, holds each Diff until it is sent to; DiffStarted
	// is sent to when one begins (when set).
	DiffGate, DiffStarted chan struct{}

	mu         sync.Mutex
	diffs      int
	syncs      int
	full       []bool
	background []bool   // Options.Background of each Sync and Diff
	releases   []string // Options.Release of each Sync
	drift      []func(reconcile.Drift)
}

// OnDrift makes the fake a DriftSource; report calls the handlers.
func (f *fakeSyncer) OnDrift(h func(reconcile.Drift)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drift = append(f.drift, h)
}

// report tells the handlers of a drift, as an engine's watch would.
func (f *fakeSyncer) report(d reconcile.Drift) {
	f.mu.Lock()
	hs := f.drift
	f.mu.Unlock()
	for _, h := range hs {
		h(d)
	}
}

// syncsOf returns Options.Release of each Sync ("" for the whole cluster)
// and Options.Full and Options.Background of each.
func (f *fakeSyncer) syncsOf() (releases []string, full []bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.releases...), append([]bool(nil), f.full...)
}

func (f *fakeSyncer) backgrounds() []bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bool(nil), f.background...)
}

var _ ClusterSyncer = (*fakeSyncer)(nil)

func (f *fakeSyncer) Sync(ctx context.Context, r *repo.Repo, opts reconcile.Options) (*reconcile.Result, error) {
	f.mu.Lock()
	f.syncs++
	f.full = append(f.full, opts.Full)
	f.background = append(f.background, opts.Background)
	f.releases = append(f.releases, opts.Release)
	f.mu.Unlock()
	if f.Started != nil {
		f.Started <- struct{}{}
	}
	if f.BackgroundGate != nil && opts.Background {
		select {
		case <-f.BackgroundGate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.Err != nil {
		return nil, f.Err
	}
	res := &reconcile.Result{}
	for _, c := range r.Clusters {
		for _, rel := range c.Releases {
			if opts.Release != "" && rel.Header.Name != opts.Release {
				continue
			}
			if opts.Superseded != nil && opts.Superseded(rel.File) {
				continue
			}
			if g := f.Gates[rel.File]; g != nil {
				select {
				case <-g:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			rr := reconcile.ReleaseResult{File: rel.File, Name: rel.Header.Name, Namespace: rel.Header.Namespace, Action: reconcile.Upgraded,
				Objects: []reconcile.ObjectResult{{Subject: "Deployment/" + rel.Header.Namespace + "/" + rel.Header.Name, Action: "configured", Status: "Current"}}}
			if stage, ok := f.Fail[rel.File]; ok {
				rr.Action, rr.Stage, rr.Error = reconcile.Failed, stage, string(stage)+" failed"
			}
			if len(f.FailTag) > 0 {
				b, err := os.ReadFile(filepath.Join(r.Dir, filepath.FromSlash(rel.File)))
				if err != nil {
					return nil, err
				}
				for tag, stage := range f.FailTag {
					if strings.Contains(string(b), `tag: "`+tag+`"`) {
						rr.Action, rr.Stage, rr.Error = reconcile.Failed, stage, string(stage)+" failed for tag "+tag
					}
				}
			}
			if opts.OnRelease != nil {
				opts.OnRelease(rr)
			}
			res.Releases = append(res.Releases, rr)
		}
	}
	return res, nil
}

func (f *fakeSyncer) Diff(ctx context.Context, _ *repo.Repo, opts reconcile.Options) (*reconcile.DiffResult, error) {
	f.mu.Lock()
	f.background = append(f.background, opts.Background)
	f.diffs++
	f.mu.Unlock()
	if f.DiffStarted != nil {
		f.DiffStarted <- struct{}{}
	}
	if f.DiffGate != nil {
		select {
		case <-f.DiffGate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &reconcile.DiffResult{}, nil
}

func (f *fakeSyncer) Restart(_ context.Context, namespace, release string, _ time.Duration) ([]reconcile.ObjectResult, error) {
	return []reconcile.ObjectResult{{Subject: "Deployment/" + namespace + "/" + release, Action: "restarted"}}, nil
}

func (f *fakeSyncer) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syncs
}

// errTest is an injected failure.
var errTest = errors.New("injected failure")

func (g *fakeGit) Commit(_ context.Context, hash string) (gitrepo.CommitSummary, error) {
	return gitrepo.CommitSummary{Hash: hash, Author: "Fake <fake@example.com>", Subject: "change " + hash}, nil
}

func (g *fakeGit) LastChanges(context.Context, string, []string, int) (map[string]gitrepo.FileChange, error) {
	return nil, nil
}

func (g *fakeGit) WebURL() string { return "" }

func (f *fakeSyncer) Live(_ context.Context, namespace, name string) (reconcile.LiveRelease, error) {
	return reconcile.LiveRelease{Name: name, Namespace: namespace}, nil
}
