package reconcile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/fluxcd/pkg/ssa"
	"helm.sh/helm/v4/pkg/action"
	helmkube "helm.sh/helm/v4/pkg/kube"
	"helm.sh/helm/v4/pkg/postrenderer"
	helmcommon "helm.sh/helm/v4/pkg/release/common"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/kyaml/kio"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/mygitops/mgo/internal/kube"
	"github.com/mygitops/mgo/internal/render"
	"github.com/mygitops/mgo/internal/repo"
)

// AnnotationImmutable on an object says what to do when an update changes
// an immutable field: "recreate" deletes and recreates it. Without it the
// sync fails and names the object and field. StatefulSets are always
// recreated, orphaning their pods and volumes.
const AnnotationImmutable = kube.AnnotationImmutable

// applied is what the apply stage of a release did.
type applied struct {
	revision *releasev1.Release // the new revision, when Helm created one
	upgrade  bool               // an upgrade of a deployed release, not an install
	err      error              // of the Helm action
	// versions are those the API server answered the applies with, by
	// subject: the rollout wait reads these objects from the cache once
	// it holds them at least as new.
	versions map[string]string
}

// apply installs or upgrades a release whose plan found a change, with
// server-side apply, recreating first the objects with immutable changes
// that may be recreated. edits (by objectKey) keep the ignored fields of
// the release's objects at their live values, as the plan compared them. The error is a failure before Helm acted; the
// Helm action's own error is in applied.err, since what follows depends on
// whether the objects were applied (rollout wait or not).
func (e *Engine) apply(ctx context.Context, cfg *action.Configuration, rel *repo.Release, ch *render.Chart, rendered *render.Rendered,
	last *releasev1.Release, cmps []comparison, timeout time.Duration) (a applied, err error) {
	_, immutable := changes(cmps)
	edits := releaseEdits(cmps)
	log := e.log.With("release", rel.Header.Name, "namespace", rel.Header.Namespace)
	vals, err := rel.Values()
	if err != nil {
		return a, err
	}
	labels := e.releaseLabels(rendered.Digest[:40])
	deployed := last != nil && last.Info != nil && last.Info.Status == helmcommon.StatusDeployed
	a.upgrade = deployed || (last != nil && hasDeployedRevision(cfg, rel.Header.Name))
	if a.upgrade {
		if err := e.applyCRDDir(ctx, rendered, cmps, timeout); err != nil {
			return a, fmt.Errorf("%s: %w", rel.File, err)
		}
	}
	if immutable && a.upgrade {
		if _, err := e.recreateImmutable(ctx, rendered, rel.Header.Name, rel.Header.Namespace); err != nil {
			return a, fmt.Errorf("%s: %w", rel.File, err)
		}
	}
	unhold := e.hold(rel.Header.Namespace, rel.Header.Name)
	defer unhold()
	var hc *helmClient
	if c, ok := cfg.KubeClient.(*helmkube.Client); ok {
		hc = &helmClient{Client: c, unchanged: unchangedObjects(cmps), labels: e.releaseObjectLabels(), labelled: labelledObjects(cmps, rendered)}
		cfg.KubeClient = hc
		defer func() { a.versions = hc.appliedVersions() }()
	}
	a.revision, a.err = e.helmApply(ctx, cfg, rel, ch, vals, labels, a.upgrade, edits, timeout)
	if a.err != nil && a.upgrade && kube.IsImmutableFieldError(a.err) {
		// A field the API server will not update. StatefulSets are deleted
		// without their pods and volumes and recreated; other objects only
		// when they opt in with the mgo.io/immutable: recreate annotation.
		recreated, rerr := e.recreateImmutable(ctx, rendered, rel.Header.Name, rel.Header.Namespace)
		if rerr != nil {
			return a, fmt.Errorf("%s: %w", rel.File, rerr)
		}
		if recreated > 0 {
			log.Info("recreated objects with immutable changes", "objects", recreated)
			a.revision, a.err = e.helmApply(ctx, cfg, rel, ch, vals, labels, true, edits, timeout)
		}
	}
	return a, nil
}

// helmApply installs or upgrades with server-side apply. Helm waits only
// for hooks; the rollout of the release's objects is waited for by
// waitRollout. Helm's own waiters are not used for that: its kstatus
// watcher (github.com/fluxcd/cli-utils v1.3.0) closes a channel that a
// status task may still send on when a wait times out (a data race, and a
// possible panic in a long-running service), and its polling waiter checks
// every 2 seconds, which doubles the time of a first sync.
func (e *Engine) helmApply(ctx context.Context, cfg *action.Configuration, rel *repo.Release, ch *render.Chart,
	vals map[string]any, labels map[string]string, upgrade bool, edits map[string][]kube.Edit, timeout time.Duration) (*releasev1.Release, error) {
	// The objects get mgo's labels from helmClient's Build; a
	// post-renderer (and the parsing of every manifest twice more that
	// Helm does around one) only when ignored fields are kept.
	var post postrenderer.PostRenderer
	if len(edits) > 0 {
		post = releasePostRenderer{edits: edits}
	}
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
		up.PostRenderer = post
		up.PostRenderStrategy = action.PostRenderStrategyNoHooks
		out, err = up.RunWithContext(ctx, rel.Header.Name, ch.Chart, vals)
	} else {
		ns := rel.Header.Namespace
		install := func(createNamespace bool) (any, error) {
			in := action.NewInstall(cfg)
			in.ReleaseName = rel.Header.Name
			in.Namespace = ns
			in.CreateNamespace = createNamespace
			in.Replace = true // a release whose first install failed is installed again
			in.ServerSideApply = true
			in.ForceConflicts = true
			in.WaitStrategy = helmkube.HookOnlyStrategy
			in.Timeout = timeout
			in.Labels = labels
			in.Description = "mgo sync of " + rel.File
			in.PostRenderer = post
			in.PostRenderStrategy = action.PostRenderStrategyNoHooks
			return in.RunWithContext(ctx, ch.Chart, vals)
		}
		// The namespace is created (applied) by the first install into it,
		// not by every one: a request on each install's critical path.
		e.mu.Lock()
		known := e.namespaces[ns]
		e.mu.Unlock()
		out, err = install(!known)
		if known && namespaceNotFound(err, ns) {
			// Deleted since: Helm stored nothing (its first write, the
			// new revision, is in the namespace).
			out, err = install(true)
		}
		e.mu.Lock()
		e.namespaces[ns] = err == nil
		e.mu.Unlock()
	}
	hr, _ := out.(*releasev1.Release)
	return hr, err
}

// namespaceNotFound reports whether err is the API server's answer that
// namespace ns does not exist.
func namespaceNotFound(err error, ns string) bool {
	var st apierrors.APIStatus
	if !apierrors.IsNotFound(err) || !errors.As(err, &st) || st.Status().Details == nil {
		return false
	}
	d := st.Status().Details
	return d.Kind == "namespaces" && d.Name == ns
}

// applyCRDDir applies, before an upgrade, the CustomResourceDefinitions of
// the chart's crds directories that the plan found missing or changed, as
// they are, by server-side apply with mgo's field manager, and waits until
// they are established. Helm installs them on the release's install only
// and never upgrades them: without this, a changed one would be found
// changed by every sync again.
func (e *Engine) applyCRDDir(ctx context.Context, rendered *render.Rendered, cmps []comparison, timeout time.Duration) error {
	var applied []*unstructured.Unstructured
	for _, c := range cmps {
		if c.Prepared == nil || c.Action == ssa.UnchangedAction || !rendered.FromCRDDir(c.Prepared) {
			continue
		}
		if _, err := e.cluster.Resources.Apply(ctx, c.Prepared.DeepCopy(), ssa.ApplyOptions{}); err != nil {
			return fmt.Errorf("applying %s of the chart's crds directory: %w", c.Subject, err)
		}
		applied = append(applied, c.Prepared)
	}
	if len(applied) == 0 {
		return nil
	}
	e.cluster.InvalidateDiscovery()
	if err := e.cluster.Resources.Wait(applied, ssa.WaitOptions{Interval: 500 * time.Millisecond, Timeout: timeout}); err != nil {
		return fmt.Errorf("waiting for the chart's CustomResourceDefinitions: %w", err)
	}
	return nil
}

// recreateImmutable deletes the rendered objects of a release whose update
// the API server refuses, so that the next apply recreates them
// (kube.RecreateImmutable).
func (e *Engine) recreateImmutable(ctx context.Context, rendered *render.Rendered, release, ns string) (int, error) {
	var objs []*unstructured.Unstructured
	for _, obj := range rendered.Objects {
		o, err := e.prepareIn(rendered, obj, release, ns)
		if err != nil {
			continue
		}
		objs = append(objs, o)
	}
	return e.cluster.RecreateImmutable(ctx, objs)
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

// releasePostRenderer is the Helm post-renderer of mgo's releases (hooks
// aside) whose comparison kept ignored fields: it keeps the ignored fields
// of each object at their live values (the edits of its comparison, by
// objectKey), as the plan compared it.
type releasePostRenderer struct {
	edits map[string][]kube.Edit
}

func (p releasePostRenderer) Run(in *bytes.Buffer) (*bytes.Buffer, error) {
	nodes, err := kio.ParseAll(in.String())
	if err != nil {
		return nil, fmt.Errorf("post-rendering the rendered objects: %w", err)
	}
	for i, n := range nodes {
		if nodes[i], err = p.edit(n); err != nil {
			return nil, fmt.Errorf("keeping ignored fields of %s %s: %w", n.GetKind(), n.GetName(), err)
		}
	}
	out, err := kio.StringAll(nodes)
	if err != nil {
		return nil, fmt.Errorf("post-rendering the rendered objects: %w", err)
	}
	return bytes.NewBufferString(out), nil
}

// edit makes the edits of its comparison to one object.
func (p releasePostRenderer) edit(n *kyaml.RNode) (*kyaml.RNode, error) {
	b, err := n.MarshalJSON()
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(b); err != nil {
		return nil, err
	}
	edits := p.edits[objectKey(u)]
	if len(edits) == 0 {
		return n, nil
	}
	kube.ApplyEdits(u.Object, edits)
	return kyaml.FromMap(u.Object)
}
