package api

import (
	"testing"

	"github.com/mygitops/mgo/internal/reconcile"
)

func TestForge(t *testing.T) {
	for web, want := range map[string]repoView{
		"https://github.com/acme/gitops":         {URL: "https://github.com/acme/gitops", Forge: "github", CommitURL: "https://github.com/acme/gitops/commit/{commit}"},
		"https://gitlab.com/acme/infra/gitops":   {URL: "https://gitlab.com/acme/infra/gitops", Forge: "gitlab", CommitURL: "https://gitlab.com/acme/infra/gitops/-/commit/{commit}"},
		"https://gitlab.acme.io/platform/gitops": {URL: "https://gitlab.acme.io/platform/gitops", Forge: "gitlab", CommitURL: "https://gitlab.acme.io/platform/gitops/-/commit/{commit}"},
		"https://git.acme.io/platform/gitops":    {URL: "https://git.acme.io/platform/gitops"},
		"":                                       {},
	} {
		if got := forge(web); got != want {
			t.Errorf("forge(%q) = %+v, want %+v", web, got, want)
		}
	}
}

func TestHealth(t *testing.T) {
	obj := func(st string) reconcile.ObjectResult {
		return reconcile.ObjectResult{Subject: "Deployment/ns/x", Status: st}
	}
	for name, c := range map[string]struct {
		live reconcile.LiveRelease
		last reconcile.ReleaseResult
		want string
	}{
		"ready":                 {reconcile.LiveRelease{Installed: true, HelmStatus: "deployed", Objects: []reconcile.ObjectResult{obj("Current")}}, reconcile.ReleaseResult{Action: reconcile.Upgraded}, Healthy},
		"rolling":               {reconcile.LiveRelease{Installed: true, HelmStatus: "deployed", Objects: []reconcile.ObjectResult{obj("Current"), obj("InProgress")}}, reconcile.ReleaseResult{}, Progressing},
		"helm acting":           {reconcile.LiveRelease{Installed: true, HelmStatus: "pending-upgrade"}, reconcile.ReleaseResult{}, Progressing},
		"not installed yet":     {reconcile.LiveRelease{}, reconcile.ReleaseResult{}, Progressing},
		"install failed":        {reconcile.LiveRelease{}, reconcile.ReleaseResult{Action: reconcile.Failed, Error: "boom"}, Unhealthy},
		"revision failed":       {reconcile.LiveRelease{Installed: true, HelmStatus: "failed", Revision: 3}, reconcile.ReleaseResult{}, Unhealthy},
		"object failed":         {reconcile.LiveRelease{Installed: true, HelmStatus: "deployed", Objects: []reconcile.ObjectResult{obj("Failed")}}, reconcile.ReleaseResult{}, Unhealthy},
		"object gone":           {reconcile.LiveRelease{Installed: true, HelmStatus: "deployed", Objects: []reconcile.ObjectResult{obj("NotFound")}}, reconcile.ReleaseResult{}, Unhealthy},
		"ready, last sync fail": {reconcile.LiveRelease{Installed: true, HelmStatus: "deployed", Objects: []reconcile.ObjectResult{obj("Current")}}, reconcile.ReleaseResult{Action: reconcile.Failed, Stage: reconcile.StageRender}, Unhealthy},
	} {
		if got, reason := health(c.live, c.last); got != c.want || (got != Healthy && reason == "") {
			t.Errorf("%s: %s (%q), want %s with a reason", name, got, reason, c.want)
		}
	}
}
