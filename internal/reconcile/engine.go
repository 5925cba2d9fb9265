package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/pkg/ssa"
	"helm.sh/helm/v4/pkg/action"
	helmkube "helm.sh/helm/v4/pkg/kube"
	helmcommon "helm.sh/helm/v4/pkg/release/common"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	helmstorage "helm.sh/helm/v4/pkg/storage/driver"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mygitops/mgo/internal/faults"
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
	// OnRelease, when set, is called with each release's result as soon
	// as that release is done (from several goroutines at once), so a
	// caller waiting for one release need not wait for the whole cluster.
	OnRelease func(ReleaseResult)
}

// Engine syncs one cluster. It is safe for concurrent use; syncs of the
// same engine run one at a time.
type Engine struct {
	cluster *kube.Cluster
	charts  *render.Charts
	log     *slog.Logger
	cfg     Config
	owner   kube.Owner

	syncMu  sync.Mutex // one sync of a cluster at a time
	mu      sync.Mutex
	applied map[string]string  // namespace/name -> digest of the last successful sync
	failed  map[string]failure // namespace/name -> the last failed sync
	rawDone string             // digest of the raw manifests at their last successful apply
	relSet  string             // the releases of the repo at the last uninstall check
	caps    *render.Capabilities
	capsAt  time.Time
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
	return &Engine{cluster: cluster, charts: charts, log: log.With("cluster", cluster.Name), cfg: cfg, owner: cluster.OwnerFor(cfg.RepoID),
		applied: map[string]string{}, failed: map[string]failure{}}, nil
}

// Sync makes the cluster equal to the repo and reports what it did. An
// error is returned only when the sync could not start; failures of single
// releases are in the result.
func (e *Engine) Sync(ctx context.Context, r *repo.Repo, opts Options) (*Result, error) {
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
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
	if opts.Release == "" {
		e.syncRaw(ctx, r, c, opts, res)
	}

	// 2. Releases, at most MaxConcurrentReleases at a time.
	renderer, err := e.renderer()
	if err != nil {
		return nil, err
	}
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
	sem := make(chan struct{}, e.cluster.Budget.MaxConcurrentReleases)
	var wg sync.WaitGroup
	for i, rel := range rels {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = e.syncRelease(ctx, r, rel, renderer, opts)
			if opts.OnRelease != nil {
				opts.OnRelease(results[i])
			}
		})
	}
	wg.Wait()
	res.Releases = results

	// 3. Releases whose values file is gone.
	if opts.Release == "" {
		res.Releases = append(res.Releases, e.uninstallRemoved(ctx, c, opts)...)
	}
	e.log.Info("sync done", "releases", len(res.Releases), "failed", res.Failed(), "duration", time.Since(start))
	return res, nil
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
		e.caps, e.capsAt = &caps, time.Now()
	}
	return render.NewRenderer(*e.caps)
}

func (e *Engine) syncRaw(ctx context.Context, r *repo.Repo, c *repo.Cluster, opts Options, res *Result) {
	var objs []*unstructured.Unstructured
	h := sha256.New()
	for _, rf := range c.Raw {
		for _, o := range rf.Objects {
			objs = append(objs, &unstructured.Unstructured{Object: o.Object})
			b, _ := json.Marshal(o.Object)
			h.Write(b)
		}
	}
	digest := hex.EncodeToString(h.Sum(nil))
	// A document left out for its errors is missing from objs: pruning
	// would delete its live object. Apply the rest, prune nothing, and
	// report the files.
	skipped := skippedRaw(r, c)
	e.mu.Lock()
	unchanged := e.rawDone == digest
	e.mu.Unlock()
	if unchanged && skipped == nil && !opts.Full && !opts.DryRun {
		return // applied as they are at the last sync; drift checks are full syncs
	}
	if opts.DryRun {
		for _, o := range objs {
			entry, err := e.diffObject(ctx, o, "", "")
			if err != nil {
				res.RawError = err.Error()
				return
			}
			res.Raw = append(res.Raw, ObjectResult{Subject: entry.Subject, Action: string(entry.Action)})
		}
		if skipped != nil {
			res.RawError = skipped.Error()
		}
		return
	}
	rawOpts := kube.DefaultRawOptions()
	rawOpts.Repo = e.cfg.RepoID
	if skipped != nil {
		rawOpts.Prune = false
	}
	raw, err := e.cluster.ApplyRaw(ctx, objs, rawOpts)
	if raw != nil {
		leftAlone := map[string]bool{}
		for _, s := range raw.LeftAlone {
			leftAlone[s] = true
		}
		for _, en := range raw.ChangeSet.Entries {
			or := ObjectResult{Subject: en.Subject, Action: string(en.Action)}
			if leftAlone[en.Subject] {
				or.Message = "left alone: applied by an older mgo without cluster and repository labels and no longer in the repository; not pruned (delete it by hand if it is not another instance's)"
			}
			res.Raw = append(res.Raw, or)
		}
		if len(raw.LeftAlone) > 0 {
			e.log.Warn("raw objects of an older mgo left alone", "objects", raw.LeftAlone)
		}
	}
	if err != nil {
		res.RawError = errors.Join(skipped, err).Error()
		return
	}
	if skipped != nil {
		res.RawError = skipped.Error()
		return // not done: the next sync tries again
	}
	e.mu.Lock()
	e.rawDone = digest
	e.mu.Unlock()
}

// skippedRaw reports the raw files of c with documents left out for their
// errors, naming each problem; nil when there are none.
func skippedRaw(r *repo.Repo, c *repo.Cluster) error {
	var errs []error
	for _, rf := range c.Raw {
		if rf.Skipped == 0 {
			continue
		}
		errs = append(errs, fmt.Errorf("%s: %d document(s) left out and nothing pruned: %s", rf.File, rf.Skipped, problemsOf(r, rf.File)))
	}
	return errors.Join(errs...)
}

// invalidRelease is the error of a release whose files have errors: each
// problem with its file and line.
func invalidRelease(r *repo.Repo, rel *repo.Release) error {
	p := problemsOf(r, rel.File)
	if rel.SecretsFile != "" {
		if sp := problemsOf(r, rel.SecretsFile); sp != "" {
			p = strings.TrimPrefix(p+"; "+sp, "; ")
		}
	}
	if p == "" {
		p = "see mgo validate"
	}
	return fmt.Errorf("%s has errors: %s", rel.File, p)
}

// problemsOf lists the errors found in file when the repo was loaded.
func problemsOf(r *repo.Repo, file string) string {
	if r == nil {
		return ""
	}
	var out []string
	for _, p := range r.Problems.Errors().InFile(file) {
		out = append(out, p.String())
	}
	return strings.Join(out, "; ")
}

func (e *Engine) syncRelease(ctx context.Context, r *repo.Repo, rel *repo.Release, renderer *render.Renderer, opts Options) (rr ReleaseResult) {
	start := time.Now()
	rr = ReleaseResult{File: rel.File, Name: rel.Header.Name, Namespace: rel.Header.Namespace, Chart: rel.Header.Chart}
	mask := rel.Masker() // values of its secrets files: never in a result or a log line
	log := mask.Logger(e.log).With("release", rel.Header.Name, "namespace", rel.Header.Namespace)
	var digest string // of the rendered release, once rendered
	fail := func(stage Stage, err error) ReleaseResult {
		rr.Action, rr.Stage, rr.Error = Failed, stage, err.Error()
		rr.Duration = time.Since(start)
		log.Error("release sync failed", "stage", stage, "error", err)
		if digest != "" && stage != StageDiff {
			e.mu.Lock()
			e.failed[rel.Header.Namespace+"/"+rel.Header.Name] = failure{digest: digest, at: time.Now(), result: rr}
			e.mu.Unlock()
		}
		return rr
	}
	defer func() { rr.Duration, rr = time.Since(start), maskResult(rr, mask) }()
	if !rel.Valid {
		return fail(StageValidate, invalidRelease(r, rel))
	}
	key := rel.Header.Namespace + "/" + rel.Header.Name

	// Chart and render: local work, no request to the cluster.
	ch, err := e.charts.Load(ctx, r.Dir, r.Config, rel.Header)
	if err != nil {
		return fail(StageChart, err)
	}
	rr.ChartVersion = ch.Version
	e.mu.Lock()
	lastDigest, synced := e.applied[key]
	e.mu.Unlock()
	rendered, err := renderer.Render(ctx, rel, ch, synced)
	if err != nil {
		return fail(StageRender, err)
	}
	if synced && lastDigest == rendered.Digest && !opts.Full {
		rr.Action = UpToDate
		return rr
	}
	// A release that failed with this very rendering is not tried again
	// (and waited for again) on every sync of its cluster: only when its
	// rendering changes or on a full sync.
	e.mu.Lock()
	f, failedBefore := e.failed[key]
	e.mu.Unlock()
	if failedBefore && f.digest == rendered.Digest && !opts.Full && !opts.DryRun {
		prev := f.result
		prev.Error = fmt.Sprintf("unchanged since its failed sync at %s (retried on the next full sync): %s",
			f.at.UTC().Format(time.RFC3339), prev.Error)
		prev.Duration = time.Since(start)
		return prev
	}
	digest = rendered.Digest

	// Compare with the live cluster.
	cfg, err := e.cluster.Helm(rel.Header.Namespace, log)
	if err != nil {
		return fail(StageDiff, fmt.Errorf("%s: %w", rel.File, err))
	}
	last, err := lastRelease(cfg, rel.Header.Name)
	if err != nil {
		return fail(StageDiff, fmt.Errorf("%s: %w", rel.File, err))
	}
	if !opts.DryRun {
		// A revision left pending by a killed mgo blocks every Helm
		// action on the release: recover it first, when no live mgo
		// holds it.
		var recovered string
		last, recovered, err = e.recoverPending(cfg, last)
		rr.Recovered = recovered
		if herr := (*errPendingHeld)(nil); errors.As(err, &herr) {
			// Not remembered as a failure of this rendering: the next
			// sync looks again.
			rr.Action, rr.Stage, rr.Error = Failed, StageApply, fmt.Sprintf("%s: %v", rel.File, err)
			log.Error("release sync failed", "stage", StageApply, "error", err)
			return rr
		}
		if err != nil {
			return fail(StageApply, fmt.Errorf("%s: %w", rel.File, err))
		}
	}
	drifted := last == nil || last.Info == nil || last.Info.Status != "deployed"
	immutable := false
	dctx, dcancel := context.WithTimeout(ctx, e.cfg.DiffTimeout)
	defer dcancel()
	for _, obj := range rendered.Objects {
		entry, err := e.diffObject(dctx, obj, rel.Header.Name, rel.Header.Namespace)
		if err != nil && isImmutableFieldError(err) {
			// Handled before the upgrade (recreate) or refused there.
			rr.Objects = append(rr.Objects, ObjectResult{Subject: subject(obj), Action: "recreate", Message: err.Error()})
			drifted, immutable = true, true
			continue
		}
		if err != nil {
			return fail(StageDiff, fmt.Errorf("%s: %w", rel.File, err))
		}
		rr.Objects = append(rr.Objects, ObjectResult{Subject: entry.Subject, Action: string(entry.Action)})
		if entry.Action != ssa.UnchangedAction {
			drifted = true
		}
	}
	if last != nil {
		rr.Revision = last.Version
	}
	dcancel()
	if !drifted {
		rr.Action = Unchanged
		if !opts.DryRun {
			e.adopt(cfg, last)
			e.remember(key, rendered.Digest)
		}
		return rr
	}
	if opts.DryRun {
		rr.Action = WouldChange
		return rr
	}

	// Install or upgrade with server-side apply, and wait for the rollout.
	vals, err := rel.Values()
	if err != nil {
		return fail(StageApply, err)
	}
	labels := e.releaseLabels(rendered.Digest[:40])
	hasDeployed := last != nil && hasDeployedRevision(cfg, rel.Header.Name)
	if immutable && hasDeployed {
		if _, err := e.recreateImmutable(ctx, rendered, rel.Header.Name, rel.Header.Namespace); err != nil {
			return fail(StageApply, fmt.Errorf("%s: %w", rel.File, err))
		}
	}
	unhold := e.hold(rel.Header.Namespace, rel.Header.Name)
	out, err := e.helmApply(ctx, cfg, rel, ch, vals, labels, hasDeployed, opts.Timeout)
	if err != nil && hasDeployed && isImmutableFieldError(err) {
		// A field the API server will not update. StatefulSets are deleted
		// without their pods and volumes and recreated; other objects only
		// when they opt in with the mgo.io/immutable: recreate annotation.
		recreated, rerr := e.recreateImmutable(ctx, rendered, rel.Header.Name, rel.Header.Namespace)
		if rerr != nil {
			return fail(StageApply, fmt.Errorf("%s: %w", rel.File, rerr))
		}
		if recreated > 0 {
			log.Info("recreated objects with immutable changes", "objects", recreated)
			out, err = e.helmApply(ctx, cfg, rel, ch, vals, labels, true, opts.Timeout)
		}
	}
	unhold()
	if out != nil {
		rr.Revision = out.Version
	}
	if err == nil {
		if testHookBeforeWait != nil {
			testHookBeforeWait(rel.Header.Name)
		}
		if werr := e.waitRollout(ctx, rendered, rel.Header.Namespace, opts.Timeout, &rr); werr != nil {
			e.markFailed(cfg, out, werr)
			return fail(StageWait, fmt.Errorf("%s: %w", rel.File, werr))
		}
	}
	e.objectStatus(ctx, rendered, rel.Header.Namespace, &rr)
	if err != nil {
		stage := StageApply
		if strings.Contains(err.Error(), "context deadline exceeded") || strings.Contains(err.Error(), "timed out") || strings.Contains(err.Error(), "resource not ready") {
			stage = StageWait
			err = fmt.Errorf("rollout not ready within %s: %w%s", opts.Timeout, err, notReady(rr.Objects))
		}
		return fail(stage, fmt.Errorf("%s: %w", rel.File, err))
	}
	if hasDeployed {
		rr.Action = Upgraded
	} else {
		rr.Action = Installed
	}
	e.remember(key, rendered.Digest)
	log.Info("release synced", "action", rr.Action, "revision", rr.Revision)
	return rr
}

// adopt labels the newest revision of a release an older mgo installed
// (managed-by only, no cluster or repository label) as this engine's, so
// that it is uninstalled when it leaves the repository. Releases whose
// objects changed are relabelled by their upgrade instead.
func (e *Engine) adopt(cfg *action.Configuration, last *releasev1.Release) {
	if last == nil || last.Labels[LabelManagedBy] != managedBy || !kube.Unowned(last.Labels) {
		return
	}
	maps.Copy(last.Labels, e.owner.Labels())
	if err := cfg.Releases.Update(last); err != nil {
		e.log.Warn("could not label the Helm release as this mgo's", "release", last.Name, "namespace", last.Namespace, "error", err)
		return
	}
	e.log.Info("adopted a release of an older mgo", "release", last.Name, "namespace", last.Namespace, "revision", last.Version)
}

// testHookBeforeWait, set by tests only, is called with a release's name
// when its objects are applied and its rollout wait begins.
var testHookBeforeWait func(release string)

// failure is a release's last failed sync.
type failure struct {
	digest string
	at     time.Time
	result ReleaseResult
}

func (e *Engine) remember(key, digest string) {
	e.mu.Lock()
	e.applied[key] = digest
	delete(e.failed, key)
	e.mu.Unlock()
}

// helmApply installs or upgrades with server-side apply. Helm waits only
// for hooks; the rollout of the release's objects is waited for by
// waitRollout. Helm's own waiters are not used for that: its kstatus
// watcher (github.com/fluxcd/cli-utils v1.3.0) closes a channel that a
// status task may still send on when a wait times out (a data race, and a
// possible panic in a long-running service), and its polling waiter checks
// every 2 seconds, which doubles the time of a first sync.
func (e *Engine) helmApply(ctx context.Context, cfg *action.Configuration, rel *repo.Release, ch *render.Chart,
	vals map[string]any, labels map[string]string, upgrade bool, timeout time.Duration) (*releasev1.Release, error) {
	var out any
	var err error
	if upgrade {
		up := action.NewUpgrade(cfg)
		up.Namespace = rel.Header.Namespace
		up.ServerSideApply = "true"
		up.ForceConflicts = true // the repo is the authority over what mgo applies
		up.WaitStrategy = helmkube.HookOnlyStrategy
		up.Timeout = timeout
		up.Labels = labels
		up.MaxHistory = maxHistory
		up.Description = "mgo sync of " + rel.File
		out, err = up.RunWithContext(ctx, rel.Header.Name, ch.Chart, vals)
	} else {
		in := action.NewInstall(cfg)
		in.ReleaseName = rel.Header.Name
		in.Namespace = rel.Header.Namespace
		in.CreateNamespace = true
		in.Replace = true // a release whose first install failed is installed again
		in.ServerSideApply = true
		in.ForceConflicts = true
		in.WaitStrategy = helmkube.HookOnlyStrategy
		in.Timeout = timeout
		in.Labels = labels
		in.Description = "mgo sync of " + rel.File
		out, err = in.RunWithContext(ctx, ch.Chart, vals)
	}
	hr, _ := out.(*releasev1.Release)
	return hr, err
}

// diffObject compares one object with the live cluster by a server-side
// dry-run apply. For a drifted object it also returns the live object and
// what it would become (Secret data masked in both).
func (e *Engine) diffObject(ctx context.Context, obj *unstructured.Unstructured, release, ns string) (*ssa.ChangeSetEntry, error) {
	entry, _, _, err := e.diffObjectFull(ctx, obj, release, ns)
	return entry, err
}

func (e *Engine) diffObjectFull(ctx context.Context, obj *unstructured.Unstructured, release, ns string) (*ssa.ChangeSetEntry, *unstructured.Unstructured, *unstructured.Unstructured, error) {
	obj, err := e.prepare(obj, release, ns)
	switch {
	case meta.IsNoMatchError(err):
		// A kind the cluster does not know yet (its CRD comes with the
		// release): it will be created.
		return &ssa.ChangeSetEntry{Subject: subject(obj), Action: ssa.CreatedAction}, nil, nil, nil
	case err != nil:
		return nil, nil, nil, fmt.Errorf("%s: %w", subject(obj), err)
	}
	entry, live, merged, err := e.cluster.Resources.Diff(ctx, obj, ssa.DefaultDiffOptions())
	if err != nil {
		if apierrors.IsNotFound(err) && obj.GetNamespace() != "" {
			// Its namespace does not exist yet: the object will be created.
			return &ssa.ChangeSetEntry{Subject: subject(obj), Action: ssa.CreatedAction}, nil, nil, nil
		}
		return nil, nil, nil, fmt.Errorf("%s: %w", subject(obj), err)
	}
	entry.Subject = subject(obj)
	return entry, live, merged, nil
}

// prepare returns a copy of obj as it will be applied. Objects of a Helm
// release (release != "") get what Helm adds when it applies them: the
// release namespace when they have none, and Helm's ownership label and
// annotations. Raw objects get mgo's owner labels, and go to "default" when
// they have no namespace.
func (e *Engine) prepare(obj *unstructured.Unstructured, release, ns string) (*unstructured.Unstructured, error) {
	obj = obj.DeepCopy()
	if release == "" {
		e.cluster.SetRawLabels([]*unstructured.Unstructured{obj}, kube.DefaultRawSet, e.cfg.RepoID)
	} else {
		labels := obj.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[helmManagedByLabel] = "Helm"
		obj.SetLabels(labels)
		annotations := obj.GetAnnotations()
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[helmReleaseNameAnnotation] = release
		annotations[helmReleaseNamespaceAnnotation] = ns
		obj.SetAnnotations(annotations)
	}
	namespaced, err := e.cluster.Client.IsObjectNamespaced(obj)
	if err != nil {
		return obj, err
	}
	if namespaced && obj.GetNamespace() == "" {
		if ns == "" {
			ns = metav1.NamespaceDefault
		}
		obj.SetNamespace(ns)
	}
	return obj, nil
}

// objectStatus records the kstatus of every rendered object after the
// rollout wait.
func (e *Engine) objectStatus(ctx context.Context, rendered *render.Rendered, ns string, rr *ReleaseResult) {
	byName := map[string]int{}
	for i, o := range rr.Objects {
		byName[o.Subject] = i
	}
	for _, obj := range rendered.Objects {
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(obj.GroupVersionKind())
		key := client.ObjectKey{Namespace: obj.GetNamespace(), Name: obj.GetName()}
		if namespaced, _ := e.cluster.Client.IsObjectNamespaced(obj); namespaced && key.Namespace == "" {
			key.Namespace = ns
		}
		s := subject(obj)
		if key.Namespace != "" && obj.GetNamespace() == "" {
			o := obj.DeepCopy()
			o.SetNamespace(key.Namespace)
			s = subject(o)
		}
		i, ok := byName[s]
		if !ok {
			rr.Objects = append(rr.Objects, ObjectResult{Subject: s})
			i = len(rr.Objects) - 1
		}
		if err := e.cluster.Client.Get(ctx, key, live); err != nil {
			st := "Unknown" // the API server did not answer
			if apierrors.IsNotFound(err) {
				st = "NotFound"
			}
			rr.Objects[i].Status, rr.Objects[i].Message = st, err.Error()
			continue
		}
		st, err := status.Compute(live)
		if err != nil {
			rr.Objects[i].Status, rr.Objects[i].Message = "Unknown", err.Error()
			continue
		}
		rr.Objects[i].Status, rr.Objects[i].Message = st.Status.String(), st.Message
	}
}

// waitRollout polls the kstatus of every rendered object until all are
// Current or timeout passes; then the error names those that are not.
func (e *Engine) waitRollout(ctx context.Context, rendered *render.Rendered, ns string, timeout time.Duration, rr *ReleaseResult) error {
	faults.Point(faults.RolloutWait)
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	interval := 200 * time.Millisecond
	for {
		probe := ReleaseResult{Objects: slices.Clone(rr.Objects)}
		e.objectStatus(wctx, rendered, ns, &probe)
		pending := notReady(probe.Objects)
		if pending == "" {
			return nil
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("rollout not ready within %s%s", timeout, pending)
		case <-time.After(interval):
		}
		interval = min(interval*3/2, 2*time.Second)
	}
}

// markFailed records a failed rollout on the Helm release, as Helm does
// when its own wait fails, so `helm ls` and `helm history` tell the truth.
func (e *Engine) markFailed(cfg *action.Configuration, hr *releasev1.Release, cause error) {
	if hr == nil || hr.Info == nil {
		return
	}
	hr.Info.Status = helmcommon.StatusFailed
	hr.Info.Description = "mgo: " + cause.Error()
	if err := cfg.Releases.Update(hr); err != nil {
		e.log.Warn("could not mark the Helm release failed", "release", hr.Name, "error", err)
	}
}

func notReady(objs []ObjectResult) string {
	var b strings.Builder
	for _, o := range objs {
		if o.Status != "" && o.Status != status.CurrentStatus.String() {
			fmt.Fprintf(&b, "; %s is %s", o.Subject, o.Status)
			if o.Message != "" {
				fmt.Fprintf(&b, ": %s", o.Message)
			}
		}
	}
	return b.String()
}

func subject(o *unstructured.Unstructured) string {
	if o.GetNamespace() != "" {
		return o.GetKind() + "/" + o.GetNamespace() + "/" + o.GetName()
	}
	return o.GetKind() + "/" + o.GetName()
}

// lastRelease returns the newest revision of a release, or nil.
func lastRelease(cfg *action.Configuration, name string) (*releasev1.Release, error) {
	last, err := cfg.Releases.Last(name)
	if errors.Is(err, helmstorage.ErrReleaseNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading release %s: %w", name, err)
	}
	hr, ok := last.(*releasev1.Release)
	if !ok {
		return nil, fmt.Errorf("release %s: unexpected type %T", name, last)
	}
	return hr, nil
}

func hasDeployedRevision(cfg *action.Configuration, name string) bool {
	_, err := cfg.Releases.Deployed(name)
	return err == nil
}

// AnnotationImmutable on an object says what to do when an update changes
// an immutable field: "recreate" deletes and recreates it. Without it the
// sync fails and names the object and field. StatefulSets are always
// recreated, orphaning their pods and volumes.
const AnnotationImmutable = "mgo.io/immutable"

func isImmutableFieldError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "field is immutable") || strings.Contains(msg, "Forbidden: updates to statefulset spec")
}

// recreateImmutable finds the rendered objects whose update the API server
// refuses (by a server-side dry-run apply) and deletes them so the next
// apply recreates them: StatefulSets with orphan propagation (their pods
// and PVCs stay and are adopted by the new StatefulSet, which then rolls
// them), other objects only with the opt-in annotation. It returns how many
// it deleted, or an error naming each object it may not recreate.
func (e *Engine) recreateImmutable(ctx context.Context, rendered *render.Rendered, release, ns string) (int, error) {
	type victim struct {
		obj    *unstructured.Unstructured
		policy metav1.DeletionPropagation
	}
	var victims []victim
	var refused []error
	for _, obj := range rendered.Objects {
		o, err := e.prepare(obj, release, ns)
		if err != nil {
			continue
		}
		_, _, _, err = e.cluster.Resources.Diff(ctx, o, ssa.DefaultDiffOptions())
		if err == nil || !isImmutableFieldError(err) {
			continue
		}
		switch {
		case o.GetKind() == "StatefulSet" && o.GroupVersionKind().Group == "apps":
			victims = append(victims, victim{o, metav1.DeletePropagationOrphan})
		case o.GetAnnotations()[AnnotationImmutable] == "recreate":
			victims = append(victims, victim{o, metav1.DeletePropagationBackground})
		default:
			refused = append(refused, fmt.Errorf("%s: an immutable field changed (%v); annotate the object %s: recreate to let mgo delete and recreate it", subject(o), err, AnnotationImmutable))
		}
	}
	// All or nothing: no object is deleted when one may not be recreated.
	if len(refused) > 0 {
		return 0, errors.Join(refused...)
	}
	var deleted []*unstructured.Unstructured
	for _, v := range victims {
		if err := e.cluster.Client.Delete(ctx, v.obj, client.PropagationPolicy(v.policy)); err != nil && !apierrors.IsNotFound(err) {
			return len(deleted), fmt.Errorf("%s: delete for recreate: %w", subject(v.obj), err)
		}
		deleted = append(deleted, v.obj)
	}
	if len(deleted) > 0 {
		wopts := ssa.DefaultWaitOptions()
		wopts.Timeout = time.Minute
		if err := e.cluster.Resources.WaitForTermination(deleted, wopts); err != nil {
			return len(deleted), fmt.Errorf("waiting for objects to be deleted for recreate: %w", err)
		}
	}
	return len(deleted), nil
}

// uninstallRemoved uninstalls the releases mgo installed whose values file
// left the repo. It does nothing when a values file of the cluster could
// not be read: a broken file must not look like a removed release.
func (e *Engine) uninstallRemoved(ctx context.Context, c *repo.Cluster, opts Options) []ReleaseResult {
	want := map[string]bool{}
	var keys []string
	for _, rel := range c.Releases {
		if rel.Header.Name == "" || rel.Header.Namespace == "" {
			e.log.Warn("not uninstalling removed releases: a values file could not be read", "file", rel.File)
			return nil
		}
		key := rel.Header.Namespace + "/" + rel.Header.Name
		want[key] = true
		keys = append(keys, key)
	}
	slices.Sort(keys)
	set := strings.Join(keys, ",")
	e.mu.Lock()
	same := e.relSet == set
	e.mu.Unlock()
	if same && !opts.Full {
		return nil // the same releases as at the last check: nothing was removed
	}
	cfg, err := e.cluster.Helm("", e.log)
	if err != nil {
		return []ReleaseResult{{Action: Failed, Stage: StageDiff, Error: err.Error()}}
	}
	list := action.NewList(cfg)
	list.AllNamespaces = true
	list.All = true
	list.Selector = LabelManagedBy + "=" + managedBy
	rels, err := list.Run()
	if err != nil {
		return []ReleaseResult{{Action: Failed, Stage: StageDiff, Error: fmt.Sprintf("listing mgo's releases: %v", err)}}
	}
	var out []ReleaseResult
	failed := false
	var leftAlone []string
	defer func() {
		if len(leftAlone) > 0 {
			e.log.Warn("releases of an older mgo left alone", "releases", leftAlone)
		}
		if !failed && !opts.DryRun {
			e.mu.Lock()
			e.relSet = set
			e.mu.Unlock()
		}
	}()
	for _, x := range rels {
		hr, ok := x.(*releasev1.Release)
		if !ok || want[hr.Namespace+"/"+hr.Name] {
			continue
		}
		rr := ReleaseResult{Name: hr.Name, Namespace: hr.Namespace, Revision: hr.Version}
		switch {
		case e.owner.Owns(hr.Labels):
		case kube.Unowned(hr.Labels):
			// Installed by an mgo older than the ownership labels: it may
			// be another instance's. Never uninstalled; reported.
			rr.Action = LeftAlone
			rr.Note = fmt.Sprintf("installed by an older mgo (no %s and %s labels) and not in the repository: left alone; uninstall it by hand if no other mgo instance owns it",
				kube.LabelCluster, kube.LabelRepo)
			leftAlone = append(leftAlone, hr.Namespace+"/"+hr.Name)
			out = append(out, rr)
			continue
		default:
			continue // another mgo instance's, or another context's
		}
		if opts.DryRun {
			rr.Action = WouldChange
			out = append(out, rr)
			continue
		}
		ncfg, err := e.cluster.Helm(hr.Namespace, e.log)
		if err == nil {
			un := action.NewUninstall(ncfg)
			un.WaitStrategy = helmkube.LegacyStrategy
			un.Timeout = 2 * time.Minute
			un.Description = "values file removed from the gitops repo"
			_, err = un.Run(hr.Name)
		}
		if err != nil {
			rr.Action, rr.Stage, rr.Error = Failed, StageApply, fmt.Sprintf("uninstall: %v", err)
			failed = true
		} else {
			rr.Action = Uninstalled
			e.mu.Lock()
			delete(e.applied, hr.Namespace+"/"+hr.Name)
			e.mu.Unlock()
		}
		out = append(out, rr)
	}
	_ = ctx
	return out
}
