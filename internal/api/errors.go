package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/mygitops/mgo/internal/auth"
	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/pkg/apitypes"
)

var errRoute = errors.New("no such endpoint")

func errNoRoute(r *http.Request) error {
	return fmt.Errorf("%w: %s %s", errRoute, r.Method, r.URL.Path)
}

// statusOf maps an error to its status code: 4xx for what the caller or the
// repo can fix, 5xx only for faults of mgo or what it depends on.
func statusOf(err error) int {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, auth.ErrIssuerUnavailable):
		return http.StatusServiceUnavailable // the token could not be checked now; retry
	case errors.Is(err, auth.ErrUnauthenticated):
		return http.StatusUnauthorized
	case errors.Is(err, auth.ErrForbidden), errors.Is(err, deploy.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, deploy.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, deploy.ErrNotFound), errors.Is(err, errRoute):
		return http.StatusNotFound
	case errors.Is(err, deploy.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, deploy.ErrUnprocessable):
		return http.StatusUnprocessableEntity
	case errors.Is(err, deploy.ErrFrozen):
		return http.StatusLocked // a deploy freeze: retry after freeze.until
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, deploy.ErrClosed):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// deploymentStatus is the status code of a finished (or queued) deployment.
func deploymentStatus(d *deploy.Deployment) int {
	switch {
	case d.Status == deploy.Succeeded:
		return http.StatusOK
	case !d.Status.Terminal():
		return http.StatusAccepted
	}
	switch d.Stage {
	case deploy.StageCommit, deploy.StageValidate:
		if d.Kind == deploy.KindRollback || d.Kind == deploy.KindRevert {
			return http.StatusConflict // the revert conflicts with later changes
		}
		return http.StatusUnprocessableEntity // the repo cannot take this edit
	case deploy.StageSuperseded:
		return http.StatusConflict // a newer held deploy of the same trigger repo went instead
	case deploy.StageSync, deploy.StageRollout:
		return http.StatusFailedDependency // the commit landed; the cluster did not roll it out
	}
	return http.StatusBadGateway // the git server or the cluster failed us
}

func writeError(w http.ResponseWriter, err error, d *deploy.Deployment) {
	writeScopedError(w, err, d, nil)
}

// writeErr writes an error to an authenticated caller: a not-found error
// names only the clusters and trigger repos within the caller's scope.
func writeErr(w http.ResponseWriter, err error, p auth.Principal) {
	writeScopedError(w, err, nil, &p)
}

func writeScopedError(w http.ResponseWriter, err error, d *deploy.Deployment, p *auth.Principal) {
	body := apitypes.Error{Error: err.Error(), Deployment: WireDeployment(d)}
	var nf *deploy.NotFoundError
	if p != nil && errors.As(err, &nf) {
		body.Error = nf.Message(func(name string) bool {
			if nf.What == "cluster" {
				return p.AllowCluster(name) == nil
			}
			return p.AllowDeploy(nf.Cluster, name) == nil
		})
	}
	var fe *deploy.FieldError
	if errors.As(err, &fe) {
		body.Field = fe.Field
	}
	var fz *deploy.FrozenError
	if errors.As(err, &fz) {
		body.Freeze = wireFreezePeriod(fz.Period)
	}
	status := statusOf(err)
	if aw, ok := w.(*auditWriter); ok {
		aw.reason = body.Error
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mgo"`)
	}
	writeJSON(w, status, body)
}
