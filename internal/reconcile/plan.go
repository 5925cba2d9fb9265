package reconcile

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/fluxcd/pkg/ssa"
	"helm.sh/helm/v4/pkg/action"
	helmcommon "helm.sh/helm/v4/pkg/release/common"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	helmstorage "helm.sh/helm/v4/pkg/storage/driver"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/mygitops/mgo/internal/kube"
	"github.com/mygitops/mgo/internal/render"
	"github.com/mygitops/mgo/internal/repo"
)

// The plan of a release is its first stage: load the chart, render it
// locally (no request to the cluster), then compare every rendered object
// with the live cluster. Sync, a dry-run sync, a drift check (a full sync)
// and Diff all compare through compare; they differ only in what they do
// with the comparisons.

// loadAndRender loads the chart of a release and renders it. upgrade
// renders as Helm renders an upgrade (.Release.IsUpgrade). The error says
// which stage failed (StageChart or StageRender, stageOf).
func (e *Engine) loadAndRender(ctx context.Context, r *repo.Repo, rel *repo.Release, renderer *render.Renderer, upgrade bool) (*render.Chart, *render.Rendered, error) {
	ch, err := e.charts.Load(ctx, r.Dir, r.Config, rel.Header)
	if err != nil {
		return nil, nil, atStage(StageChart, err)
	}
	rendered, err := renderer.Render(ctx, rel, ch, upgrade)
	if err != nil {
		return ch, nil, atStage(StageRender, err)
	}
	return ch, rendered, nil
}

// comparison is one object compared with the live cluster.
type comparison struct {
	Subject string     // Kind/namespace/name
	Action  ssa.Action // created, configured, unchanged; actionRecreate when Immutable is set
	// Wanted is the object as it will be applied (see prepare), its
	// ignored fields at their live values (Edits).
	Wanted *unstructured.Unstructured
	// Live and Merged are the live object and what an apply makes of it,
	// for a configured object.
	Live, Merged *unstructured.Unstructured
	// Immutable is set when the API server refuses the update because an
	// immutable field changed: the object must be recreated.
	Immutable error
	// Prepared is Wanted before its ignored fields were given their live
	// values, Ignore the rules of the object: a drift check takes the
	// fields again from the object it sees.
	Prepared *unstructured.Unstructured
	Ignore   kube.Ignore
	// Key identifies the rendered object in Helm's manifest (objectKey),
	// Edits are what the post-renderer changes in it.
	Key   string
	Edits []kube.Edit
}

// actionRecreate is the action of an object with an immutable change.
const actionRecreate = ssa.Action(ObjectRecreate)

// compare compares one rendered object of a raw manifest (release == "")
// or of a release without rules with the live cluster (compareWith).
func (e *Engine) compare(ctx context.Context, obj *unstructured.Unstructured, release, ns string) (comparison, error) {
	return e.compareWith(ctx, obj, release, ns, nil, nil)
}

// compareWith compares one rendered object of a release (release == ""
// for a raw manifest) with the live cluster, by a server-side dry-run
// apply with mgo's field manager, or locally from the cache when it can
// tell; the fields the release's rules ig leave alone keep their live
// values (diffRespecting). An object whose kind the cluster does not know
// yet (its CRD comes with the release) or whose namespace does not exist
// yet will be created.
func (e *Engine) compareWith(ctx context.Context, obj *unstructured.Unstructured, release, ns string, ig *ignores, rendered *render.Rendered) (comparison, error) {
	wanted, err := e.prepareIn(rendered, obj, release, ns)
	switch {
	case meta.IsNoMatchError(err):
		return comparison{Subject: subject(wanted), Action: ssa.CreatedAction, Wanted: wanted, Prepared: wanted, Key: objectKey(obj)}, nil
	case err != nil:
		return comparison{}, fmt.Errorf("%s: %w", subject(wanted), err)
	}
	diff := e.cluster.Diff
	if e.cache != nil {
		diff = e.cache.Diff
	}
	rules := ig.For(wanted)
	d, err := e.diffRespecting(ctx, diff, wanted, rules, nil)
	if err != nil && kube.IsImmutableFieldError(err) {
		// Handled before the upgrade (recreate) or refused there.
		return comparison{Subject: subject(obj), Action: actionRecreate, Wanted: d.wanted, Immutable: err,
			Prepared: wanted, Ignore: rules, Key: objectKey(obj), Edits: d.edits}, nil
	}
	if err != nil {
		return comparison{}, err
	}
	if release != "" && d.entry.Action == ssa.ConfiguredAction && d.live != nil && !hasLabels(d.live, e.releaseObjectLabels()) {
		// The object predates mgo's cluster label (Helm installed it, or
		// mgo import took the release over): a difference in that label
		// alone is no change, so an imported release stays without a new
		// revision; the label comes with the release's next real upgrade.
		bare := wanted.DeepCopy()
		labels := bare.GetLabels()
		for k := range e.releaseObjectLabels() {
			delete(labels, k)
		}
		bare.SetLabels(labels)
		if again, err := e.diffRespecting(ctx, diff, bare, rules, nil); err == nil && again.entry.Action == ssa.UnchangedAction {
			return comparison{Subject: again.entry.Subject, Action: again.entry.Action, Wanted: again.wanted, Live: again.live, Merged: again.merged,
				Prepared: bare, Ignore: rules, Key: objectKey(obj), Edits: again.edits}, nil
		}
	}
	return comparison{Subject: d.entry.Subject, Action: d.entry.Action, Wanted: d.wanted, Live: d.live, Merged: d.merged,
		Prepared: wanted, Ignore: rules, Key: objectKey(obj), Edits: d.edits}, nil
}

// hasLabels reports whether o carries every one of labels.
func hasLabels(o *unstructured.Unstructured, labels map[string]string) bool {
	have := o.GetLabels()
	for k, v := range labels {
		if have[k] != v {
			return false
		}
	}
	return true
}

// compareRelease compares every rendered object of a release with the
// live cluster, within Config.DiffTimeout, under the release's drift
// ignore rules.
func (e *Engine) compareRelease(ctx context.Context, r *repo.Repo, rel *repo.Release, rendered *render.Rendered) ([]comparison, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.DiffTimeout)
	defer cancel()
	ig := e.ignoresFor(r, rel, rendered.Objects)
	out := make([]comparison, 0, len(rendered.Objects))
	for _, obj := range rendered.Objects {
		c, err := e.compareWith(ctx, obj, rel.Header.Name, rel.Header.Namespace, ig, rendered)
		if err != nil {
			return out, err
		}
		out = append(out, c)
	}
	return out, nil
}

// installPlan is the plan of a release Helm has no revision of: every
// rendered object will be created (Helm's install refuses one that exists
// and belongs to no release), without a request.
func (e *Engine) installPlan(r *repo.Repo, rel *repo.Release, rendered *render.Rendered) []comparison {
	ig := e.ignoresFor(r, rel, rendered.Objects)
	out := make([]comparison, 0, len(rendered.Objects))
	for _, obj := range rendered.Objects {
		wanted, _ := e.prepareIn(rendered, obj, rel.Header.Name, rel.Header.Namespace)
		out = append(out, comparison{Subject: subject(wanted), Action: ssa.CreatedAction, Wanted: wanted, Prepared: wanted,
			Ignore: ig.For(wanted), Key: objectKey(obj)})
	}
	return out
}

// changes reports whether some comparison is not unchanged, and whether
// some object needs recreating.
func changes(cs []comparison) (changed, immutable bool) {
	for _, c := range cs {
		changed = changed || c.Action != ssa.UnchangedAction
		immutable = immutable || c.Immutable != nil
	}
	return changed, immutable
}

// objectResults are the comparisons as a sync reports them.
func objectResults(cs []comparison) []ObjectResult {
	out := make([]ObjectResult, 0, len(cs))
	for _, c := range cs {
		or := ObjectResult{Subject: c.Subject, Action: ObjectAction(c.Action)}
		if c.Immutable != nil {
			or.Message = c.Immutable.Error()
		}
		out = append(out, or)
	}
	return out
}

// prepareIn is prepare of an object of rendered: a CustomResourceDefinition
// of the chart's crds directories is applied as it is (Helm installs them
// without its ownership metadata or mgo's labels, and mgo applies them so
// on upgrades, see applyCRDDir).
func (e *Engine) prepareIn(rendered *render.Rendered, obj *unstructured.Unstructured, release, ns string) (*unstructured.Unstructured, error) {
	if rendered.FromCRDDir(obj) {
		return obj.DeepCopy(), nil
	}
	return e.prepare(obj, release, ns)
}

// prepare returns a copy of obj as it will be applied. Objects of a Helm
// release (release != "") get what Helm adds when it applies them: the
// release namespace when they have none, Helm's ownership label and
// annotations, and mgo's cluster label (releaseObjectLabels, added by
// Helm's post-renderer, so that the engine's cache watches them). Raw objects get mgo's owner labels, and go to "default" when
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
		maps.Copy(labels, e.releaseObjectLabels())
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

// helmRelease returns the Helm configuration of a release's namespace and
// the newest revision of the release, or nil.
func (e *Engine) helmRelease(rel *repo.Release) (*action.Configuration, *releasev1.Release, error) {
	cfg, err := e.cluster.HelmForRelease(rel.Header.Namespace, e.log.With("release", rel.Header.Name, "namespace", rel.Header.Namespace), e.helmCaps())
	if err != nil {
		return nil, nil, err
	}
	last, err := lastRelease(cfg, rel.Header.Name)
	return cfg, last, err
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

func subject(o *unstructured.Unstructured) string {
	if o.GetNamespace() != "" {
		return o.GetKind() + "/" + o.GetNamespace() + "/" + o.GetName()
	}
	return o.GetKind() + "/" + o.GetName()
}

// releaseObjectLabels are the labels mgo adds to every object of a release:
// the cluster ownership label, by which the engine's cache watches them.
// Not the repository label: a change of repository identity must not
// change every object. Releases themselves are owned through the labels of
// their Helm revisions (releaseLabels).
func (e *Engine) releaseObjectLabels() map[string]string {
	return map[string]string{kube.LabelCluster: e.owner.Cluster}
}

// cachedRevision returns the newest revision of a release as the engine's
// cache holds its Helm release Secret, when that revision is deployed and
// this engine's (managed-by mgo, its cluster and repository labels): a
// release whose objects are all unchanged then needs no read of Helm's
// storage. ok is false whenever the cache cannot tell.
func (e *Engine) cachedRevision(ctx context.Context, rel *repo.Release) (int, bool) {
	version, l := e.newestCachedRevision(ctx, rel)
	if version < 1 || l["status"] != string(helmcommon.StatusDeployed) || l[LabelManagedBy] != managedBy || !e.owner.Owns(l) {
		return 0, false
	}
	return version, true
}

// renderedAsLast reports whether the newest revision of a release, as the
// engine's cache holds its Secret, is this engine's and was made from this
// very rendering (its digest label): its manifest then holds exactly the
// rendered objects, so none was removed from the release, without reading
// the manifest from Helm's storage.
func (e *Engine) renderedAsLast(ctx context.Context, rel *repo.Release, rendered *render.Rendered) bool {
	version, l := e.newestCachedRevision(ctx, rel)
	return version >= 1 && len(rendered.Digest) >= 40 && l[LabelDigest] == rendered.Digest[:40] &&
		l[LabelManagedBy] == managedBy && e.owner.Owns(l)
}

// newestCachedRevision returns the version and labels of the newest Helm
// release Secret of a release in the engine's cache; version is 0 when
// the cache has none or there is no cache.
func (e *Engine) newestCachedRevision(ctx context.Context, rel *repo.Release) (int, map[string]string) {
	if e.cache == nil {
		return 0, nil
	}
	sel := labels.SelectorFromSet(labels.Set{"owner": "helm", "name": rel.Header.Name})
	secrets, err := e.cache.List(ctx, schema.GroupVersionKind{Version: "v1", Kind: "Secret"}, rel.Header.Namespace, sel)
	if err != nil || len(secrets) == 0 {
		return 0, nil
	}
	newest, version := secrets[0], -1
	for _, s := range secrets {
		if v, err := strconv.Atoi(s.GetLabels()["version"]); err == nil && v > version {
			newest, version = s, v
		}
	}
	if version < 1 {
		return 0, nil
	}
	return version, newest.GetLabels()
}
