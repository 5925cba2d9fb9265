package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/repo"
)

// notSyncedManual says why an automatic sync of a cluster that syncs
// manually did not run.
func notSyncedManual(cluster string) string {
	return fmt.Sprintf("not synced: cluster %s syncs manually (sync: %s in %s); POST /api/v1/clusters/%s/sync to sync it",
		cluster, repo.SyncManual, repo.ConfigFile, cluster)
}

// syncOutcome is the result of one sync of a cluster.
type syncOutcome struct {
	res     *reconcile.Result
	head    string
	started time.Time
	timeout time.Duration // the cluster's rollout timeout
	err     error
	// notSynced says why an automatic sync did not run (the cluster syncs
	// manually); res is nil then.
	notSynced string
	// revert are the values files whose failure policy, in the synced
	// tree, is revert (revert.go).
	revert map[string]bool
}

// ClusterStatus is what mgo knows of a cluster.
type ClusterStatus struct {
	Name       string            `json:"name"`
	Head       string            `json:"head,omitempty"` // commit of the last sync
	LastSync   time.Time         `json:"lastSync,omitzero"`
	Failed     bool              `json:"failed"`
	Error      string            `json:"error,omitempty"`
	Releases   int               `json:"releases"`
	LastResult *reconcile.Result `json:"-"`
	// Drift is the number of objects that differed from the repo at the
	// last drift check, plus those the engine's watches saw drift since
	// (reported within moments of the change); DriftChecked is when the
	// count last changed or was checked.
	Drift        int       `json:"drift"`
	DriftChecked time.Time `json:"driftChecked,omitzero"`
	// Manual is set when the cluster syncs only when asked (sync: manual
	// in mygitops.yaml); Pending is then the head an automatic sync
	// skipped, until an explicit sync.
	Manual  bool   `json:"manual,omitempty"`
	Pending string `json:"pending,omitempty"`
}

// syncReleases syncs the releases of the jobs' values files at the
// current head, each release by itself and all at once (the engine's
// slots bound them, before any background sync's releases). onRelease is
// called with each release's result as soon as it is synced, so that a
// job is answered when its own releases are.
func (c *scheduler) syncReleases(jobs []*job, onRelease func(reconcile.ReleaseResult), onPolicies func(map[string]bool)) syncOutcome {
	ctx := c.s.ctx
	out := syncOutcome{started: c.s.cfg.Now()}
	err := c.s.withSnapshot(ctx, func(dir, head string) error {
		out.head = head
		r, err := repo.Load(dir, repo.LoadOptions{Cluster: c.name, Cache: c.s.parsed})
		if err != nil {
			return err
		}
		settings := r.Config.Cluster(c.name)
		out.timeout = settings.Timeout
		c.setPolicy(settings)
		out.revert = revertPolicies(r, c.name)
		if onPolicies != nil {
			onPolicies(out.revert)
		}
		if settings.Sync == repo.SyncManual {
			out.notSynced = notSyncedManual(c.name)
			return nil
		}
		files := map[string]bool{}
		for _, j := range jobs {
			for _, f := range j.files {
				files[f] = true
			}
		}
		var names []string
		c.mu.Lock()
		if rc, ok := r.Clusters[c.name]; ok {
			for _, rel := range rc.Releases {
				if files[rel.File] && !slices.Contains(names, rel.Header.Name) {
					names = append(names, rel.Header.Name)
				}
				if files[rel.File] {
					c.markAheadLocked(rel.File)
				}
			}
		}
		c.mu.Unlock()
		res := &reconcile.Result{Cluster: c.name}
		var mu sync.Mutex
		var wg sync.WaitGroup
		var errs []error
		for _, name := range names {
			wg.Go(func() {
				rr, err := c.engine.Sync(ctx, r, reconcile.Options{Release: name, OnRelease: onRelease})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				res.Releases = append(res.Releases, rr.Releases...)
			})
		}
		wg.Wait()
		out.res = res
		return errors.Join(errs...)
	})
	out.err = err
	result := "succeeded"
	if err != nil || (out.res != nil && out.res.Failed()) {
		result = "failed"
	}
	if out.notSynced == "" {
		c.s.cfg.Metrics.Syncs.WithLabelValues(c.name, result).Observe(c.s.cfg.Now().Sub(out.started).Seconds())
	}
	if err != nil {
		c.s.log.Error("sync of deployed releases failed", "cluster", c.name, "error", err)
	}
	return out
}

// sync syncs the cluster from a snapshot of the tree at the current head.
// Unless force is set, a cluster whose sync policy at that head is manual
// is not synced: the outcome says so in notSynced.
func (c *scheduler) sync(ctx context.Context, full, force, background bool, onRelease func(reconcile.ReleaseResult), onHead func(string), onPolicies func(map[string]bool)) syncOutcome {
	out := syncOutcome{started: c.s.cfg.Now()}
	var inputs string
	manual := false
	err := c.s.withSnapshot(ctx, func(dir, head string) error {
		out.head = head
		if onHead != nil {
			onHead(head)
		}
		var err error
		if inputs, err = clusterInputs(dir, c.name); err != nil {
			return err
		}
		r, err := repo.Load(dir, repo.LoadOptions{Cluster: c.name, Cache: c.s.parsed})
		if err != nil {
			return err
		}
		settings := r.Config.Cluster(c.name)
		out.timeout = settings.Timeout
		manual = settings.Sync == repo.SyncManual
		c.setPolicy(settings)
		out.revert = revertPolicies(r, c.name)
		if onPolicies != nil {
			onPolicies(out.revert)
		}
		if manual && !force {
			out.notSynced = notSyncedManual(c.name)
			return nil
		}
		opts := reconcile.Options{Full: full, Background: background, OnRelease: onRelease}
		if background {
			opts.Superseded = c.superseded
		}
		out.res, err = c.engine.Sync(ctx, r, opts)
		return err
	})
	out.err = err
	if err == nil && out.notSynced != "" {
		c.mu.Lock()
		c.state.skipped = inputs
		c.state.status.Manual, c.state.status.Pending = true, out.head
		c.mu.Unlock()
		c.s.log.Info("automatic sync skipped: the cluster syncs manually", "cluster", c.name, "head", out.head)
		return out
	}
	result := "succeeded"
	if err != nil || out.res.Failed() {
		result = "failed"
	}
	c.s.cfg.Metrics.Syncs.WithLabelValues(c.name, result).Observe(c.s.cfg.Now().Sub(out.started).Seconds())

	c.mu.Lock()
	defer c.mu.Unlock()
	st := &c.state.status
	st.LastSync, st.Head, st.Failed, st.Error = c.s.cfg.Now(), out.head, result == "failed", ""
	if err != nil {
		st.Error = err.Error()
		c.s.log.Error("sync failed", "cluster", c.name, "error", err)
		return out
	}
	c.state.inputs = inputs
	st.Manual, st.Pending = manual, ""
	st.LastResult, st.Releases = out.res, len(out.res.Releases)
	if out.res.RawError != "" {
		st.Error = "raw manifests: " + out.res.RawError
	}
	return out
}

// Status returns what mgo knows of the cluster.
func (c *scheduler) Status() ClusterStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state.status
}

// Sync syncs a cluster now (full: compare every release with the live
// cluster) and returns the result. It is an explicit request: a cluster
// that syncs manually is synced too.
func (s *Service) Sync(ctx context.Context, cluster string, full bool) (*reconcile.Result, error) {
	out, err := s.sync(ctx, cluster, full, true, false)
	return out.res, err
}

// sync requests a sync and waits for its outcome; without force, a
// cluster that syncs manually is not synced (outcome.notSynced). A
// background sync (start-up, drift check) gives way to deploy syncs.
func (s *Service) sync(ctx context.Context, cluster string, full, force, background bool) (syncOutcome, error) {
	c, err := s.cluster(cluster)
	if err != nil {
		return syncOutcome{}, err
	}
	if !s.owns(cluster) {
		return syncOutcome{}, notOwned(cluster)
	}
	ch, err := c.request(full, force, background)
	if err != nil {
		return syncOutcome{}, err
	}
	select {
	case out := <-ch:
		return out, out.err
	case <-ctx.Done():
		return syncOutcome{}, ctx.Err()
	}
}

// StartupSync syncs every served cluster once (full), as mgo serve does at
// start, except those that sync manually, and waits for them. It logs
// each outcome.
func (s *Service) StartupSync(ctx context.Context) {
	var wg sync.WaitGroup
	for _, name := range s.Clusters() {
		wg.Go(func() {
			out, err := s.sync(ctx, name, true, false, true)
			switch {
			case err != nil:
				s.log.Error("initial sync failed", "cluster", name, "error", err)
			case out.notSynced != "":
				s.log.Info("initial sync skipped: the cluster syncs manually", "cluster", name)
			case out.res.Failed():
				s.log.Warn("initial sync: some releases failed", "cluster", name, "result", out.res.String())
			default:
				s.log.Info("initial sync done", "cluster", name, "head", out.head)
			}
		})
	}
	wg.Wait()
}

// ClusterStatus returns the status of one cluster.
func (s *Service) ClusterStatus(cluster string) (ClusterStatus, error) {
	c, err := s.cluster(cluster)
	if err != nil {
		return ClusterStatus{}, err
	}
	return c.Status(), nil
}

// cluster returns the sync of a served cluster, or a *NotFoundError.
func (s *Service) cluster(name string) (*scheduler, error) {
	c, ok := s.clusters[name]
	if !ok {
		return nil, &NotFoundError{What: "cluster", Name: name, Known: s.Clusters()}
	}
	return c, nil
}

// clusterInputs digests everything a sync of cluster reads: its
// installations directory, the repo's charts and mygitops.yaml.
func clusterInputs(dir, cluster string) (string, error) {
	h := sha256.New()
	for _, root := range []string{filepath.Join(repo.InstallationsDir, cluster), "charts", repo.ConfigFile} {
		err := filepath.WalkDir(filepath.Join(dir, root), func(p string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			if d.Type()&fs.ModeSymlink != 0 {
				// A link is an input too: the loader refuses it.
				to, err := os.Readlink(p)
				fmt.Fprintf(h, "%s\x00link\x00%s\x00", filepath.ToSlash(rel), to)
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(rel), len(b))
			h.Write(b)
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
