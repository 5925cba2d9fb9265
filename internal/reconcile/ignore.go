package reconcile

import (
	"context"

	"github.com/fluxcd/pkg/ssa"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mygitops/mgo/internal/kube"
	"github.com/mygitops/mgo/internal/repo"
)

// Drift ignore rules: the fields of a release's objects that mgo leaves as
// they live, neither drift nor reverted (kube.Ignore). They are the
// release header's ignoreDifferences, its cluster's in mygitops.yaml, and
// built in: the fields another field manager owns by apply, and the
// replicas of what a HorizontalPodAutoscaler of the release scales. Every
// comparison of a release's object (sync, dry-run, Diff, drift from watch
// events) goes through diffRespecting, and what Helm applies gets the
// same edits (releasePostRenderer), so what is compared is what is
// applied.

// ignores are the rules of one release.
type ignores struct {
	rules  []repo.IgnoreDifference
	scaled map[string]bool // objectKey of what an HPA of the release scales
}

// ignoresFor returns the rules of a release whose rendered objects are
// objs.
func (e *Engine) ignoresFor(r *repo.Repo, rel *repo.Release, objs []*unstructured.Unstructured) *ignores {
	ig := &ignores{scaled: map[string]bool{}}
	if r != nil && r.Config != nil {
		ig.rules = append(ig.rules, r.Config.Cluster(e.cluster.Name).IgnoreDifferences...)
	}
	ig.rules = append(ig.rules, rel.Header.IgnoreDifferences...)
	for _, o := range objs {
		if o.GetKind() != "HorizontalPodAutoscaler" || o.GroupVersionKind().Group != "autoscaling" {
			continue
		}
		apiVersion, _, _ := unstructured.NestedString(o.Object, "spec", "scaleTargetRef", "apiVersion")
		kind, _, _ := unstructured.NestedString(o.Object, "spec", "scaleTargetRef", "kind")
		name, _, _ := unstructured.NestedString(o.Object, "spec", "scaleTargetRef", "name")
		gv, err := schema.ParseGroupVersion(apiVersion)
		if err != nil || kind == "" || name == "" {
			continue
		}
		ns := o.GetNamespace()
		if ns == "" {
			ns = rel.Header.Namespace
		}
		ig.scaled[gv.Group+"|"+kind+"|"+ns+"|"+name] = true
	}
	return ig
}

// For returns the rules of one object, as mgo applies it (prepare). A nil
// ignores (raw manifests) leaves nothing alone: a raw manifest leaves a
// field to others by not setting it.
func (ig *ignores) For(obj *unstructured.Unstructured) kube.Ignore {
	if ig == nil {
		return kube.Ignore{}
	}
	k := kube.Ignore{Appliers: true}
	gvk := obj.GroupVersionKind()
	for _, r := range ig.rules {
		if !r.Matches(gvk.Group, gvk.Kind, obj.GetNamespace(), obj.GetName()) {
			continue
		}
		for _, p := range r.JSONPointers {
			if toks, err := repo.ParsePointer(p); err == nil { // checked when loaded
				k.Pointers = append(k.Pointers, toks)
			}
		}
		k.Managers = append(k.Managers, r.ManagedFieldsManagers...)
	}
	if ig.scaled[gvk.Group+"|"+gvk.Kind+"|"+obj.GetNamespace()+"|"+obj.GetName()] {
		k.Pointers = append(k.Pointers, []string{"spec", "replicas"})
	}
	return k
}

// diffFunc is Cluster.Diff or Cache.Diff.
type diffFunc func(context.Context, *unstructured.Unstructured) (*ssa.ChangeSetEntry, *unstructured.Unstructured, *unstructured.Unstructured, error)

// respected is a comparison of an object whose ignored fields keep their
// live values.
type respected struct {
	entry                *ssa.ChangeSetEntry
	live, merged, wanted *unstructured.Unstructured // wanted: as it will be applied
	edits                []kube.Edit
}

// diffRespecting compares wanted, its ignored fields respected, with the
// live object by diff. The ignored fields take their values from live when
// given (a watch event), else from the cache's copy. When the comparison
// finds a change that the rules may bear on, they are taken again from a
// fresh read of the object (the cache may lag behind; without a cache
// nothing was read yet; the objects the dry-run returns have no managed
// fields), and compared once more if that changes anything.
func (e *Engine) diffRespecting(ctx context.Context, diff diffFunc, wanted *unstructured.Unstructured, ig kube.Ignore, live *unstructured.Unstructured) (respected, error) {
	if ig.Empty() {
		entry, live, merged, err := diff(ctx, wanted)
		return respected{entry: entry, live: live, merged: merged, wanted: wanted}, err
	}
	if live == nil && e.cache != nil {
		live, _ = e.cache.Get(ctx, wanted.GroupVersionKind(), wanted.GetNamespace(), wanted.GetName())
	}
	adjusted, edits := ig.Respect(wanted, live)
	entry, read, merged, err := diff(ctx, adjusted)
	rules := len(edits) > 0 || len(ig.Pointers) > 0 || len(ig.Managers) > 0 || live == nil
	if err == nil && entry.Action == ssa.ConfiguredAction && rules {
		if fresh, ferr := e.readLive(ctx, wanted); ferr == nil && fresh != nil {
			if again, againEdits := ig.Respect(wanted, fresh); !kube.EditsEqual(edits, againEdits) {
				adjusted, edits = again, againEdits
				entry, read, merged, err = diff(ctx, adjusted)
			}
		}
	}
	if len(edits) > 0 {
		e.log.Debug("ignored fields keep their live values", "object", subject(wanted), "edits", edits)
	}
	return respected{entry: entry, live: read, merged: merged, wanted: adjusted, edits: edits}, err
}

// readLive reads the live object of obj from the API server, managed
// fields included; nil when there is none.
func (e *Engine) readLive(ctx context.Context, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(obj.GroupVersionKind())
	err := e.cluster.Client.Get(ctx, client.ObjectKeyFromObject(obj), live)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return live, err
}

// objectKey identifies a rendered object of a release as Helm's manifest
// has it (its namespace as rendered, maybe none).
func objectKey(o *unstructured.Unstructured) string {
	return o.GroupVersionKind().Group + "|" + o.GetKind() + "|" + o.GetNamespace() + "|" + o.GetName()
}

// releaseEdits are the edits of a release's comparisons, by objectKey.
func releaseEdits(cmps []comparison) map[string][]kube.Edit {
	out := map[string][]kube.Edit{}
	for _, c := range cmps {
		if len(c.Edits) > 0 {
			out[c.Key] = c.Edits
		}
	}
	return out
}
