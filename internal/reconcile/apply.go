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

// applyAndWait is the apply and wait stages of a release whose state
// calls for a Helm action: install or upgrade (apply), then the rollout of
// every object.
func (s *releaseSync) applyAndWait(upgrade bool) ReleaseResult {
	e, rel, rendered := s.e, s.rel, s.rendered
	s.rr.Revision = s.lastRevision()

	// 2. Apply: install or upgrade with server-side apply.
	a, err := e.apply(s.ctx, s.cfg, rel, s.ch, rendered, upgrade, s.cmps, s.opts.Timeout)
	if err != nil {
		return s.fail(atStage(StageApply, err))
	}
	if a.revision != nil {
		s.rr.Revision = a.revision.Version
	}
	e.apisChanged(rendered)

	// 3. Wait for the rollout of every object.
	if a.err == nil {
		if testHookBeforeWait != nil {
			testHookBeforeWait(rel.Header.Name)
		}
		known := unchangedVersions(s.cmps)
		maps.Copy(known, a.versions)
		if werr := e.waitRollout(s.ctx, rendered, rel.Header.Namespace, s.health, s.opts.Timeout, &s.rr, known); werr != nil {
			e.markFailed(s.cfg, a.revision, werr)
			return s.fail(atStage(StageWait, fmt.Errorf("%s: %w", rel.File, werr)))
		}
	} else {
		e.objectStatus(s.ctx, rendered, rel.Header.Namespace, s.health, &s.rr)
	}
	if err := a.err; err != nil {
		if timedOut(err) {
			return s.fail(atStage(StageWait, fmt.Errorf("%s: rollout not ready within %s: %w%s", rel.File, s.opts.Timeout, err, notReady(s.rr.Objects))))
		}
		return s.fail(atStage(StageApply, fmt.Errorf("%s: %w", rel.File, err)))
	}
	if a.upgrade {
		s.rr.Action = Upgraded
	} else {
		s.rr.Action = Installed
	}
	s.remember()
	s.log.Info("release synced", "action", s.rr.Action, "revision", s.rr.Revision)
	return s.rr
}

// apply installs or upgrades a release whose plan found a change, with
// server-side apply. An upgrade first applies the changed
// CustomResourceDefinitions of the chart's crds directories and recreates
// the objects with immutable changes that may be recreated (recreate.go).
// edits (by objectKey) keep the ignored fields of the release's objects at
// their live values, as the plan compared them. The error is a failure
// before Helm acted; the Helm action's own error is in applied.err, since
// what follows depends on whether the objects were applied (rollout wait
// or not).
func (e *Engine) apply(ctx context.Context, cfg *action.Configuration, rel *repo.Release, ch *render.Chart, rendered *render.Rendered,
	upgrade bool, cmps []comparison, timeout time.Duration) (a applied, err error) {
	_, immutable := changes(cmps)
	edits := releaseEdits(cmps)
	log := e.log.With("release", rel.Header.Name, "namespace", rel.Header.Namespace)
	vals, err := rel.Values()
	if err != nil {
		return a, err
	}
	labels := e.releaseLabels(rendered.Digest[:40])
	a.upgrade = upgrade
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
	run := e.helmInstall
	if a.upgrade {
		run = e.helmUpgrade
	}
	a.revision, a.err = run(ctx, cfg, rel, ch, vals, labels, edits, timeout)
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
			a.revision, a.err = e.helmUpgrade(ctx, cfg, rel, ch, vals, labels, edits, timeout)
		}
	}
	return a, nil
}

// postRenderer is the Helm post-renderer of a release sync: the objects
// get mgo's labels from helmClient's Build; a post-renderer (and the
// parsing of every manifest twice more that Helm does around one) only
// when ignored fields are kept.
func postRenderer(edits map[string][]kube.Edit) postrenderer.PostRenderer {
	if len(edits) == 0 {
		return nil
	}
	return releasePostRenderer{edits: edits}
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
