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

// upgrade is the action of a release with a deployed revision whose
// objects differ (stateOutOfSync), or whose newest revision is not
// deployed while an earlier one was (stateFailed): a Helm upgrade
// (recreating objects with immutable changes), then the rollout wait.
func (s *releaseSync) upgrade() ReleaseResult { return s.applyAndWait(true) }

// helmUpgrade upgrades a release with server-side apply, taking over
// fields other managers hold (the repo is the authority over what mgo
// applies). Helm waits only for hooks, as for an install (helmInstall).
func (e *Engine) helmUpgrade(ctx context.Context, cfg *action.Configuration, rel *repo.Release, ch *render.Chart,
	vals map[string]any, labels map[string]string, edits map[string][]kube.Edit, timeout time.Duration) (*releasev1.Release, error) {
	up := action.NewUpgrade(cfg)
	up.Namespace = rel.Header.Namespace
	up.ServerSideApply = "true"
	up.ForceConflicts = true // the repo is the authority over what mgo applies
	up.WaitStrategy = helmkube.HookOnlyStrategy
	up.Timeout = timeout
	up.Labels = labels
	up.MaxHistory = maxHistory
	up.Description = "mgo sync of " + rel.File
	up.PostRenderer = postRenderer(edits)
	up.PostRenderStrategy = action.PostRenderStrategyNoHooks
	out, err := up.RunWithContext(ctx, rel.Header.Name, ch.Chart, vals)
	hr, _ := out.(*releasev1.Release)
	return hr, err
}
