package dashboard

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/pkg/apitypes"
)

// health is a release's health: failed when it is not installed, its
// newest revision failed, an object failed or is missing, or its last
// sync failed; progressing while Helm acts on it or an object is not
// ready yet; healthy otherwise. The reason says why when it is not
// healthy.
func health(live reconcile.LiveRelease, last reconcile.ReleaseResult) (apitypes.Health, string) {
	if !live.Installed {
		if last.Action == reconcile.Failed {
			return apitypes.HealthFailed, "not installed: " + last.Error
		}
		return apitypes.HealthProgressing, "not installed yet"
	}
	if live.HelmStatus == "failed" {
		return apitypes.HealthFailed, "Helm revision " + strconv.Itoa(live.Revision) + " failed"
	}
	var failed, progressing []string
	for _, ob := range live.Objects {
		switch ob.Status {
		case "Current":
		case "InProgress", "Unknown":
			progressing = append(progressing, ob.Subject)
		default: // Failed, NotFound, Terminating
			failed = append(failed, ob.Subject+" "+ob.Status)
		}
	}
	switch {
	case len(failed) > 0:
		return apitypes.HealthFailed, strings.Join(failed, ", ")
	case last.Action == reconcile.Failed:
		return apitypes.HealthFailed, "last sync failed at " + string(last.Stage)
	case strings.HasPrefix(live.HelmStatus, "pending"):
		return apitypes.HealthProgressing, "Helm " + live.HelmStatus
	case len(progressing) > 0:
		return apitypes.HealthProgressing, "not ready: " + strings.Join(progressing, ", ")
	}
	return apitypes.HealthHealthy, ""
}

// forge names the forge of a repository's web URL and the URL of its
// commits: GitHub and GitLab (gitlab.com, github.com and hosts named
// gitlab.* or github.*, as self-managed instances usually are).
func forge(web string) apitypes.Repo {
	v := apitypes.Repo{URL: web}
	u, err := url.Parse(web)
	if web == "" || err != nil {
		return v
	}
	host := strings.ToLower(u.Hostname())
	switch {
	case host == "github.com" || strings.HasPrefix(host, "github."):
		v.Forge, v.CommitURL = "github", web+"/commit/{commit}"
	case host == "gitlab.com" || strings.HasPrefix(host, "gitlab."):
		v.Forge, v.CommitURL = "gitlab", web+"/-/commit/{commit}"
	}
	return v
}
