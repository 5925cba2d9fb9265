package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	helmchart "helm.sh/helm/v4/pkg/chart/common"

	"github.com/mygitops/mgo/internal/health"
	"github.com/mygitops/mgo/internal/kube"
	"github.com/mygitops/mgo/internal/render"
	"github.com/mygitops/mgo/internal/repo"
)

// Helm release labels mgo sets. Only releases labelled managed-by=mgo and
// with the engine's own kube.LabelCluster and kube.LabelRepo are ever
// uninstalled.
const (
	LabelManagedBy = "mgo.io/managed-by"
	LabelDigest    = "mgo.io/digest"
	managedBy      = "mgo"
	maxHistory     = 10
)

// What Helm sets on every object of a release (helm.sh/helm/v4/pkg/action).
const (
	helmManagedByLabel             = "app.kubernetes.io/managed-by"
	helmReleaseNameAnnotation      = "meta.helm.sh/release-name"
	helmReleaseNamespaceAnnotation = "meta.helm.sh/release-namespace"
)

// ErrUnknownCluster means the repo has no installations directory for the
// engine's cluster.
var ErrUnknownCluster = errors.New("cluster not in the repository")

// Options control one sync.
type Options struct {
	// DryRun renders and compares with the live cluster but changes nothing.
	DryRun bool
	// Release limits the sync to the release of this name (raw manifests
	// and uninstalls are skipped).
	Release string
	// Full compares every release with the live cluster, even those whose
	// rendered output has not changed since their last sync (drift check).
	Full bool
	// Timeout bounds the rollout wait of each release; default: the
	// cluster's timeout in mygitops.yaml.
	Timeout time.Duration
	// Background marks a sync that nobody waits for (a start-up
	// comparison, a drift check): its releases get a sync slot only when
	// no foreground sync waits for one.
	Background bool
	// OnRelease, when set, is called with each release's result as soon
	// as that release is done (from several goroutines at once), so a
	// caller waiting for one release need not wait for the whole cluster.
	OnRelease func(ReleaseResult)
	// Superseded, when set, is asked about each release (by values file)
	// once this sync holds it: true means a sync of a newer head synced it
	// meanwhile (a deploy that went ahead of a background sync), and this
	// one leaves it alone and out of its result, so as not to roll it back.
	Superseded func(file string) bool
}

// Engine syncs one cluster. It is safe for concurrent use: syncs of the
// whole cluster (raw manifests and uninstalls included) run one at a time,
// a release is synced by one sync at a time, and at most the cluster's
// MaxConcurrentReleases releases sync at once across all syncs, foreground
// syncs first (Options.Background).
type Engine struct {
	cluster *kube.Cluster
	charts  *render.Charts
	log     *slog.Logger
	cfg     Config
	owner   kube.Owner
	cache   *kube.Cache // nil with Config.NoCache
	drift   drifts
	stop    context.CancelFunc // of the drift watcher

	fullMu   sync.Mutex // one sync of the raw manifests and uninstalls at a time
	slots    *slots     // releases syncing at once
	relMu    sync.Mutex
	releases map[string]*sync.Mutex // namespace/name -> held while the release syncs
	mu       sync.Mutex
	applied  map[string]string // namespace/name -> digest of the last successful sync
	// inputsOf are the inputs (see inputs) and chart version of each
	// release's last successful sync, by namespace/name.
	inputsOf map[string]lastInputs
	syncedAt map[string]time.Time // namespace/name -> when it was last synced
	// health are the health rules of each release's last sync, by
	// namespace/name; healthOfCluster the cluster's, as of the last sync.
	health          map[string]*health.Rules
	healthOfCluster *health.Rules
	failed          map[string]failure // namespace/name -> the last failed sync
	// failedAt is the stage each release's last sync failed at, whatever
	// the stage (failed keeps only those that rendered); dependants of it
	// synced alone are not synced (order.go).
	failedAt map[string]Stage
	// dependsOf is each release's dependsOn as the repo last had it, for
	// uninstalling removed releases dependants first (order.go).
	dependsOf map[string][]string
	// namespaces a release was installed into by this engine: the next
	// install there does not create (apply) the namespace again.
	namespaces map[string]bool
	rawDone    string // digest of the raw manifests at their last successful apply
	relSet     string // the releases of the repo at the last uninstall check
	// listedReleases is set once Helm's storage was listed for the
	// releases to uninstall; later checks read the cache.
	listedReleases bool
	caps           *render.Capabilities
	hcaps          *helmchart.Capabilities // caps as Helm's actions take them
	capsAt         time.Time
}

// New returns an engine for a cluster with the default Config.
func New(cluster *kube.Cluster, charts *render.Charts, log *slog.Logger) (*Engine, error) {
	return NewWithConfig(cluster, charts, log, Config{})
}

// NewWithConfig returns an engine for a cluster.
func NewWithConfig(cluster *kube.Cluster, charts *render.Charts, log *slog.Logger, cfg Config) (*Engine, error) {
	if cluster == nil || charts == nil {
		return nil, errors.New("reconcile: a cluster and a chart source are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	e := &Engine{cluster: cluster, charts: charts, log: log.With("cluster", cluster.Name), cfg: cfg, owner: cluster.OwnerFor(cfg.RepoID),
		applied: map[string]string{}, failed: map[string]failure{}, syncedAt: map[string]time.Time{}, inputsOf: map[string]lastInputs{},
		namespaces: map[string]bool{}, health: map[string]*health.Rules{},
		slots: newSlots(cluster.Budget.MaxConcurrentReleases), releases: map[string]*sync.Mutex{}}
	if !cfg.NoCache {
		var err error
		if e.cache, err = cluster.NewCache(e.owner, e.log); err != nil {
			return nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		e.stop = cancel
		e.startDrift(ctx)
	}
	return e, nil
}

// Close stops the watches of the engine's cache of live objects.
func (e *Engine) Close() {
	if e.cache != nil {
		e.stop()
		e.cache.Close()
	}
}

// Cache is the engine's watch-backed view of the objects it owns in its
// cluster, or nil (Config.NoCache).
func (e *Engine) Cache() *kube.Cache { return e.cache }

// Sync makes the cluster equal to the repo and reports what it did. An
// error is returned only when the sync could not start; failures of single
// releases are in the result.
func (e *Engine) Sync(ctx context.Context, r *repo.Repo, opts Options) (*Result, error) {
	if opts.Release == "" {
		e.fullMu.Lock()
		defer e.fullMu.Unlock()
	}
	start := time.Now()
	before := e.cluster.Requests.Snapshot()
	res := &Result{Cluster: e.cluster.Name}
	defer func() {
		res.Duration = time.Since(start)
		res.Requests = e.cluster.Requests.Since(before)
	}()
	r.UseKeys(e.cfg.SecretKeys)

	c, ok := r.Clusters[e.cluster.Name]
	if !ok {
		return nil, fmt.Errorf("%w: %s has no %s/%s", ErrUnknownCluster, r.Dir, repo.InstallationsDir, e.cluster.Name)
	}
	settings := r.Config.Cluster(e.cluster.Name)
	e.clusterHealth(r)
	if opts.Timeout <= 0 {
		opts.Timeout = settings.Timeout
	}
	if opts.DryRun {
		// A dry run only compares: it has the deadline of a diff.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.cfg.DiffTimeout)
		defer cancel()
	}

	// 1. Raw manifests, first: they may hold the Namespaces and CRDs the
	// releases need.
	rawLater := false
	if opts.Release == "" {
		rawLater = e.syncRaw(ctx, r, c, opts, res, rawFirst)
	}

	// 2. Releases, at most MaxConcurrentReleases at a time.
	renderer, err := e.renderer()
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	in := newInputs(e.caps)
	e.mu.Unlock()
	var rels []*repo.Release
	for _, rel := range c.Releases {
		if opts.Release == "" || rel.Header.Name == opts.Release {
			rels = append(rels, rel)
		}
	}
	if opts.Release != "" && len(rels) == 0 {
		return nil, fmt.Errorf("no release %q in %s/%s", opts.Release, repo.InstallationsDir, e.cluster.Name)
	}
	results := make([]ReleaseResult, len(rels))
	skipped := make([]bool, len(rels)) // Options.Superseded
	order := newReleaseOrder(rels)     // dependsOn: order.go
	var wg sync.WaitGroup
	for i, rel := range rels {
		wg.Go(func() {
			defer order.finish(i) // last: after the slot and the release's lock are let go
			if blocked := e.awaitDependencies(ctx, rel, order, results, skipped); blocked != nil {
				results[i] = *blocked
				e.recordOutcome(results[i])
				if opts.OnRelease != nil {
					opts.OnRelease(results[i])
				}
				return
			}
			if err := e.slots.acquire(ctx, opts.Background); err != nil {
				results[i] = ReleaseResult{File: rel.File, Name: rel.Header.Name, Namespace: rel.Header.Namespace, Chart: rel.Header.Chart,
					Action: Failed, Stage: StageDiff, Error: fmt.Sprintf("%s: not synced: %v", rel.File, err)}
				return
			}
			defer e.slots.release()
			unlock := e.lockRelease(rel.Header.Namespace + "/" + rel.Header.Name)
			defer unlock()
			if opts.Superseded != nil && opts.Superseded(rel.File) {
				skipped[i] = true
				return
			}
			results[i] = e.syncRelease(ctx, r, rel, renderer, in, opts)
			results[i].After = rel.DependsOnKeys()
			e.recordOutcome(results[i])
			if opts.OnRelease != nil {
				opts.OnRelease(results[i])
			}
		})
	}
	wg.Wait()
	for i, rr := range results {
		if !skipped[i] {
			res.Releases = append(res.Releases, rr)
		}
	}
	// Raw manifest files with dependsOn, once the releases they name are
	// synced; then every raw file is pruned as one.
	if rawLater {
		if blocked := e.rawBlocked(c, order, results, skipped); blocked != "" {
			res.RawError = strings.TrimPrefix(res.RawError+"; "+blocked, "; ")
		} else {
			e.syncRaw(ctx, r, c, opts, res, rawAll)
		}
	}

	// 3. Releases whose values file is gone, dependants first.
	if opts.Release == "" {
		e.rememberDependencies(c)
		res.Releases = append(res.Releases, e.uninstallRemoved(ctx, c, opts, start)...)
	}
	e.log.Info("sync done", "releases", len(res.Releases), "failed", res.Failed(), "duration", time.Since(start))
	return res, nil
}

// lockRelease holds a release for one sync; the returned func lets it go.
func (e *Engine) lockRelease(key string) func() {
	e.relMu.Lock()
	m, ok := e.releases[key]
	if !ok {
		m = &sync.Mutex{}
		e.releases[key] = m
	}
	e.relMu.Unlock()
	m.Lock()
	return m.Unlock
}

// renderer returns a renderer for the cluster's capabilities, discovered at
// most every five minutes.
func (e *Engine) renderer() (*render.Renderer, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.caps == nil || time.Since(e.capsAt) > 5*time.Minute {
		caps, err := render.DiscoverCapabilities(e.cluster.Clientset.Discovery())
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", e.cluster.Name, err)
		}
		e.caps, e.hcaps, e.capsAt = &caps, helmCapabilities(caps), time.Now()
	}
	return render.NewRenderer(*e.caps)
}

// helmCapabilities are caps as Helm's actions render with them, so that
// Helm renders a release as mgo's plan did, without reading them from the
// cluster once more.
func helmCapabilities(caps render.Capabilities) *helmchart.Capabilities {
	kv, err := helmchart.ParseKubeVersion(caps.KubeVersion)
	if err != nil {
		return nil // Helm reads them itself
	}
	hc := helmchart.DefaultCapabilities.Copy()
	hc.KubeVersion = *kv
	hc.APIVersions = helmchart.VersionSet(slices.Clone(caps.APIVersions))
	return hc
}

// helmCaps returns the capabilities the engine renders with, for Helm.
func (e *Engine) helmCaps() *helmchart.Capabilities {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.hcaps
}

// apisChanged drops what the engine knows of the cluster's API after a
// release applied CustomResourceDefinitions: the next renders and Helm
// actions see the new kinds.
func (e *Engine) apisChanged(rendered *render.Rendered) {
	for _, o := range rendered.Objects {
		if o.GetKind() == "CustomResourceDefinition" || o.GetKind() == "APIService" {
			e.mu.Lock()
			e.caps, e.hcaps = nil, nil
			e.mu.Unlock()
			e.cluster.InvalidateDiscovery()
			return
		}
	}
}

// failure is a release's last failed sync.
type failure struct {
	digest string
	at     time.Time
	result ReleaseResult
}

// lastInputs are the inputs of a release's last successful sync.
type lastInputs struct {
	inputs, chartVersion string
}

func (e *Engine) remember(key, digest string, in lastInputs) {
	e.mu.Lock()
	e.applied[key] = digest
	e.inputsOf[key] = in
	e.syncedAt[key] = time.Now()
	delete(e.failed, key)
	e.mu.Unlock()
}
