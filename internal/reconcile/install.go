package reconcile

import (
	"context"
	"time"

	"helm.sh/helm/v4/pkg/action"
	helmkube "helm.sh/helm/v4/pkg/kube"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"

	"github.com/mygitops/mgo/internal/kube"
	"github.com/mygitops/mgo/internal/render"
	"github.com/mygitops/mgo/internal/repo"
)

// install is the action of a release Helm has no revision of
// (stateAbsent) or that was never deployed (stateNeverDeployed): a Helm
// install, then the rollout wait.
func (s *releaseSync) install() ReleaseResult { return s.applyAndWait(false) }

// helmInstall installs a release with server-side apply. A release whose
// first install failed is installed again (Replace). Helm waits only for
// hooks; the rollout of the release's objects is waited for by
// waitRollout. Helm's own waiters are not used for that: its kstatus
// watcher (github.com/fluxcd/cli-utils v1.3.0) closes a channel that a
// status task may still send on when a wait times out (a data race, and a
// possible panic in a long-running service), and its polling waiter checks
// every 2 seconds, which doubles the time of a first sync.
func (e *Engine) helmInstall(ctx context.Context, cfg *action.Configuration, rel *repo.Release, ch *render.Chart,
	vals map[string]any, labels map[string]string, edits map[string][]kube.Edit, timeout time.Duration) (*releasev1.Release, error) {
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
		in.PostRenderer = postRenderer(edits)
		in.PostRenderStrategy = action.PostRenderStrategyNoHooks
		return in.RunWithContext(ctx, ch.Chart, vals)
	}
	// The namespace is created (applied) by the first install into it,
	// not by every one: a request on each install's critical path.
	e.mu.Lock()
	known := e.namespaces[ns]
	e.mu.Unlock()
	out, err := install(!known)
	if known && namespaceNotFound(err, ns) {
		// Deleted since: Helm stored nothing (its first write, the
		// new revision, is in the namespace).
		out, err = install(true)
	}
	e.mu.Lock()
	e.namespaces[ns] = err == nil
	e.mu.Unlock()
	hr, _ := out.(*releasev1.Release)
	return hr, err
}
