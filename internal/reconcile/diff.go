package reconcile

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/fluxcd/pkg/ssa"
	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mygitops/mgo/internal/kube"
	"github.com/mygitops/mgo/internal/render"
	"github.com/mygitops/mgo/internal/repo"
)

// ObjectDiff is how one object differs between the repo and the cluster.
type ObjectDiff struct {
	Subject string       `json:"subject"`        // Kind/namespace/name
	Action  ObjectAction `json:"action"`         // created, configured, unchanged, deleted, recreate
	Diff    string       `json:"diff,omitempty"` // unified diff, live (---) to wanted (+++); Secret values masked
}

// ReleaseDiff is the diff of one release.
type ReleaseDiff struct {
	File      string       `json:"file"`
	Name      string       `json:"name"`
	Namespace string       `json:"namespace"`
	Objects   []ObjectDiff `json:"objects,omitempty"`
	Stage     Stage        `json:"stage,omitempty"` // set when the diff failed
	Error     string       `json:"error,omitempty"`
	// After are the releases it depends on (dependsOn), which a sync
	// rolls out before it.
	After []string `json:"after,omitempty"`
}

// DiffResult is the diff of a cluster against the repo.
type DiffResult struct {
	Cluster  string        `json:"cluster"`
	Releases []ReleaseDiff `json:"releases"`
	Raw      []ObjectDiff  `json:"raw,omitempty"`
	RawError string        `json:"rawError,omitempty"`
}

// HasDifferences reports whether any object would change.
func (d *DiffResult) HasDifferences() bool {
	for _, o := range d.Raw {
		if o.Action != ObjectUnchanged {
			return true
		}
	}
	for _, r := range d.Releases {
		for _, o := range r.Objects {
			if o.Action != ObjectUnchanged {
				return true
			}
		}
	}
	return false
}

// Failed reports whether some part could not be diffed.
func (d *DiffResult) Failed() bool {
	if d.RawError != "" {
		return true
	}
	for _, r := range d.Releases {
		if r.Error != "" {
			return true
		}
	}
	return false
}

// Diff compares every object the repo defines for the cluster with the live
// cluster (server-side dry-run apply, mgo's field manager) and returns the
// differences. It changes nothing. Its releases are compared at once in
// the cluster's release slots (MaxConcurrentReleases, shared with syncs),
// in the background lane whatever Options.Background says: a diff never
// delays a deploy's release. It ends within Config.DiffTimeout: a release
// (or the raw manifests) not compared by then has the deadline as its
// error.
func (e *Engine) Diff(ctx context.Context, r *repo.Repo, opts Options) (*DiffResult, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.DiffTimeout)
	defer cancel()
	c, ok := r.Clusters[e.cluster.Name]
	if !ok {
		return nil, fmt.Errorf("%w: %s has no %s/%s", ErrUnknownCluster, r.Dir, repo.InstallationsDir, e.cluster.Name)
	}
	r.UseKeys(e.cfg.SecretKeys)
	res := &DiffResult{Cluster: e.cluster.Name}
	if opts.Release == "" {
		if err := e.diffRaw(ctx, c, res); err != nil {
			res.RawError = err.Error()
		}
	}
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
	if len(rels) > 0 {
		res.Releases = make([]ReleaseDiff, len(rels))
	}
	var wg sync.WaitGroup
	for i, rel := range rels {
		wg.Go(func() {
			// A release slot of the background lane, as a sync's: a diff
			// counts in the cluster's releases at once and never delays
			// a deploy's release.
			if err := e.slots.acquire(ctx, true); err != nil {
				res.Releases[i] = ReleaseDiff{File: rel.File, Name: rel.Header.Name, Namespace: rel.Header.Namespace,
					Stage: StageDiff, Error: fmt.Sprintf("%s: not compared: %v", rel.File, err)}
				return
			}
			defer e.slots.release()
			res.Releases[i] = e.diffRelease(ctx, r, rel, renderer)
			res.Releases[i].After = rel.DependsOnKeys()
		})
	}
	wg.Wait()
	explainWaits(res)
	return res, nil
}

// explainWaits adds to the error of a release that could not be compared
// the releases it depends on that a sync would change first: a chart whose
// objects need another's CRDs cannot be compared until those exist.
func explainWaits(res *DiffResult) {
	byKey := map[string]*ReleaseDiff{}
	for i := range res.Releases {
		byKey[res.Releases[i].Namespace+"/"+res.Releases[i].Name] = &res.Releases[i]
	}
	for i := range res.Releases {
		rd := &res.Releases[i]
		if rd.Error == "" {
			continue
		}
		var first []string
		for _, k := range rd.After {
			if dep := byKey[k]; dep != nil && (dep.Error != "" || dep.Changes()) {
				first = append(first, k)
			}
		}
		if len(first) > 0 {
			rd.Error += fmt.Sprintf(" (it depends on %s, which a sync changes first)", strings.Join(first, ", "))
		}
	}
}

// Changes reports whether a sync would change any of its objects.
func (rd *ReleaseDiff) Changes() bool {
	for _, o := range rd.Objects {
		if o.Action != ObjectUnchanged {
			return true
		}
	}
	return false
}

// diffRelease compares one release with the live cluster.
func (e *Engine) diffRelease(ctx context.Context, r *repo.Repo, rel *repo.Release, renderer *render.Renderer) ReleaseDiff {
	rd := ReleaseDiff{File: rel.File, Name: rel.Header.Name, Namespace: rel.Header.Namespace}
	fail := func(stage Stage, err error) {
		rd.Stage, rd.Error = stage, err.Error()
	}
	if !rel.Valid {
		fail(StageValidate, invalidRelease(r, rel))
		return maskDiff(rd, rel.Masker())
	}
	_, rendered, err := e.loadAndRender(ctx, r, rel, renderer, true)
	if err != nil {
		fail(stageOf(err), err)
		return maskDiff(rd, rel.Masker())
	}
	wanted := map[string]bool{}
	ig := e.ignoresFor(r, rel, rendered.Objects)
	for _, obj := range rendered.Objects {
		cmp, err := e.compareWith(ctx, obj, rel.Header.Name, rel.Header.Namespace, ig, rendered)
		var d ObjectDiff
		if err == nil {
			d, err = objectDiff(cmp)
		}
		if err != nil {
			fail(StageDiff, err)
			break
		}
		wanted[d.Subject] = true
		rd.Objects = append(rd.Objects, d)
	}
	if rd.Error == "" && !e.renderedAsLast(ctx, rel, rendered) {
		removed, err := e.removedFromRelease(ctx, rel, wanted)
		if err != nil {
			fail(StageDiff, err)
		}
		rd.Objects = append(rd.Objects, removed...)
	}
	return maskDiff(rd, rel.Masker())
}

// diffRaw diffs the raw manifests, and lists as deleted the objects of the
// inventory that left the repo (a sync prunes them).
func (e *Engine) diffRaw(ctx context.Context, c *repo.Cluster, res *DiffResult) error {
	wanted := map[string]bool{}
	for _, rf := range c.Raw {
		for _, o := range rf.Objects {
			cmp, err := e.compare(ctx, &unstructured.Unstructured{Object: o.Object}, "", "")
			var d ObjectDiff
			if err == nil {
				d, err = objectDiff(cmp)
			}
			if err != nil {
				return fmt.Errorf("%s:%d: %w", rf.File, o.Line, err)
			}
			wanted[d.Subject] = true
			res.Raw = append(res.Raw, d)
		}
	}
	inv, err := e.cluster.RawInventoryFor(ctx, kube.DefaultRawSet, e.cfg.RepoID)
	if err != nil {
		return err
	}
	for _, id := range inv {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(id.GroupKind.WithVersion(""))
		u.SetNamespace(id.Namespace)
		u.SetName(id.Name)
		if wanted[subject(u)] {
			continue
		}
		res.Raw = append(res.Raw, e.deletedDiff(ctx, u))
	}
	return nil
}

// removedFromRelease lists the objects of the release's deployed revision
// that its rendered output no longer has: an upgrade deletes them.
func (e *Engine) removedFromRelease(ctx context.Context, rel *repo.Release, wanted map[string]bool) ([]ObjectDiff, error) {
	cfg, err := e.cluster.Helm(rel.Header.Namespace, nil)
	if err != nil {
		return nil, err
	}
	last, err := lastRelease(cfg, rel.Header.Name)
	if err != nil || last == nil {
		return nil, err
	}
	objs, err := render.DecodeManifest(last.Manifest)
	if err != nil {
		return nil, fmt.Errorf("release %s revision %d: %w", rel.Header.Name, last.Version, err)
	}
	var out []ObjectDiff
	for _, o := range objs {
		o, err := e.prepare(o, rel.Header.Name, rel.Header.Namespace)
		if err != nil || wanted[subject(o)] {
			continue
		}
		out = append(out, e.deletedDiff(ctx, o))
	}
	return out, nil
}

// deletedDiff shows a live object that a sync will delete.
func (e *Engine) deletedDiff(ctx context.Context, id *unstructured.Unstructured) ObjectDiff {
	d := ObjectDiff{Subject: subject(id), Action: ObjectDeleted}
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(id.GroupVersionKind())
	if m, err := e.cluster.Client.RESTMapper().RESTMapping(id.GroupVersionKind().GroupKind()); err == nil {
		live.SetGroupVersionKind(m.GroupVersionKind)
	}
	if err := e.cluster.Client.Get(ctx, client.ObjectKey{Namespace: id.GetNamespace(), Name: id.GetName()}, live); err != nil {
		d.Action = ObjectUnchanged // already gone
		return d
	}
	d.Diff, _ = unified(d.Subject, maskSecret(live), nil)
	return d
}

// objectDiff renders a comparison as a diff: an object to be created in
// full, a configured one as the change from its live state.
func objectDiff(c comparison) (ObjectDiff, error) {
	d := ObjectDiff{Subject: c.Subject, Action: ObjectAction(c.Action)}
	var err error
	switch {
	case c.Immutable != nil:
		d.Diff = fmt.Sprintf("# %s: an immutable field changed; a sync deletes and recreates it (StatefulSets keep their pods and volumes; other kinds need the %s: recreate annotation): %v\n", c.Subject, AnnotationImmutable, c.Immutable)
	case c.Action == ssa.CreatedAction:
		d.Diff, err = unified(d.Subject, nil, maskSecret(c.Wanted))
	case c.Action == ssa.ConfiguredAction:
		d.Diff, err = unified(d.Subject, c.Live, c.Merged)
	}
	return d, err
}

// maskSecret replaces the values of a Secret's data and stringData.
func maskSecret(o *unstructured.Unstructured) *unstructured.Unstructured {
	if o == nil || o.GetKind() != "Secret" || o.GetAPIVersion() != "v1" {
		return o
	}
	o = o.DeepCopy()
	for _, field := range []string{"data", "stringData"} {
		m, ok, _ := unstructured.NestedMap(o.Object, field)
		if !ok {
			continue
		}
		for k := range m {
			m[k] = "***"
		}
		_ = unstructured.SetNestedMap(o.Object, m, field)
	}
	return o
}

// unified renders a unified diff between two objects' YAML, without the
// fields the server sets.
func unified(subject string, from, to *unstructured.Unstructured) (string, error) {
	a, err := normalizedYAML(from)
	if err != nil {
		return "", err
	}
	b, err := normalizedYAML(to)
	if err != nil {
		return "", err
	}
	return difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A:        difflib.SplitLines(a),
		B:        difflib.SplitLines(b),
		FromFile: "live/" + subject,
		ToFile:   "repo/" + subject,
		Context:  3,
	})
}

func normalizedYAML(o *unstructured.Unstructured) (string, error) {
	if o == nil {
		return "", nil
	}
	o = o.DeepCopy()
	for _, f := range [][]string{
		{"metadata", "managedFields"}, {"metadata", "resourceVersion"}, {"metadata", "uid"},
		{"metadata", "creationTimestamp"}, {"metadata", "generation"}, {"status"},
	} {
		unstructured.RemoveNestedField(o.Object, f...)
	}
	b, err := yaml.Marshal(o.Object)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(b), "\n") + "\n", nil
}
