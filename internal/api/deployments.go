package api

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/mygitops/mgo/internal/auth"
	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/pkg/apitypes"
)

// handleFormDeploy is POST /deploy with the original mgo's form fields. It
// always waits for the rollout, so `curl --fail` fails a CI job whose
// deploy or rollout fails.
func (s *Server) handleFormDeploy(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if err := r.ParseForm(); err != nil {
		writeErr(w, bodyError(err, "form"), p)
		return
	}
	f := r.PostForm
	s.deploy(w, r, p, deploy.Request{
		Cluster:        f.Get("cluster"),
		TriggerRepo:    f.Get("triggerRepo"),
		ImageRepo:      f.Get("imageRepo"),
		Tag:            f.Get("imageTag"),
		Author:         f.Get("author"),
		IdempotencyKey: f.Get("idempotencyKey"),
		Restart:        f.Get("restart") == "true",
		SourceCommit:   cmp.Or(f.Get("sourceCommit"), f.Get("commitSha")),
	}, true)
}

// dockerHubPush is the part of Docker Hub's push webhook mgo reads.
type dockerHubPush struct {
	PushData struct {
		Tag    string `json:"tag"`
		Pusher string `json:"pusher"`
	} `json:"push_data"`
	Repository struct {
		RepoName string `json:"repo_name"`
	} `json:"repository"`
}

// handleDockerHub is POST /deploy/dockerhub?triggerRepo=..&cluster=.. with
// Docker Hub's push webhook body. Docker Hub cannot send headers, so this
// endpoint also takes the token as ?token=.
func (s *Server) handleDockerHub(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var body dockerHubPush
	if err := decodeJSON(r, &body, false); err != nil {
		writeErr(w, err, p)
		return
	}
	q := r.URL.Query()
	repoName := body.Repository.RepoName
	if repoName != "" && !strings.Contains(repoName, "/") {
		repoName = "library/" + repoName
	}
	if repoName != "" {
		repoName = "docker.io/" + repoName
	}
	s.deploy(w, r, p, deploy.Request{
		Cluster:     q.Get("cluster"),
		TriggerRepo: q.Get("triggerRepo"),
		ImageRepo:   repoName,
		Tag:         body.PushData.Tag,
		Author:      body.PushData.Pusher,
	}, true)
}

func (s *Server) handleCreateDeployment(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var b apitypes.DeployRequest
	if err := decodeJSON(r, &b, true); err != nil {
		writeErr(w, err, p)
		return
	}
	if b.Tag == "" {
		b.Tag = b.ImageTag
	} else if b.ImageTag != "" && b.ImageTag != b.Tag {
		writeErr(w, &deploy.FieldError{Field: "imageTag", Msg: "differs from tag; give one of them"}, p)
		return
	}
	if b.SourceCommit != "" && b.CommitSHA != "" && b.SourceCommit != b.CommitSHA {
		writeErr(w, &deploy.FieldError{Field: "commitSha", Msg: "differs from sourceCommit; give one of them"}, p)
		return
	}
	s.deploy(w, r, p, deploy.Request{
		Cluster: b.Cluster, TriggerRepo: b.TriggerRepo, ImageRepo: b.ImageRepo, Tag: b.Tag, Digest: b.Digest,
		Author: b.Author, IdempotencyKey: b.IdempotencyKey, Restart: b.Restart,
		SourceCommit: cmp.Or(b.SourceCommit, b.CommitSHA),
	}, b.Wait)
}

// deploy checks the caller's scope, submits req and, when wait is set,
// answers once the deployment has finished.
func (s *Server) deploy(w http.ResponseWriter, r *http.Request, p auth.Principal, req deploy.Request, wait bool) {
	auditRequest(r, req)
	if err := p.AllowDeploy(strings.TrimSpace(req.Cluster), strings.TrimSpace(req.TriggerRepo)); err != nil {
		writeErr(w, err, p)
		return
	}
	req.Client = p.Name
	req.Identity = identityOf(p)
	req.OverrideFreeze = p.MayOverrideFreeze(strings.TrimSpace(req.Cluster), strings.TrimSpace(req.TriggerRepo))
	submit := s.svc.Submit // detached: the request goes on when the client leaves
	if wait {
		submit = s.svc.SubmitWaiting // dropped when the client leaves while it is queued
	}
	d, err := submit(r.Context(), req)
	if err != nil {
		s.log.Info("deploy request refused", "client", p.Name, "cluster", req.Cluster, "triggerRepo", req.TriggerRepo, "error", err)
		writeErr(w, err, p)
		return
	}
	auditOf(r).DeploymentID = d.ID
	auditOf(r).FreezeOverride = d.Request.FreezeOverride
	if wait && d.Status != deploy.Held { // a held deploy is answered at once, with its place
		if d, err = s.svc.Wait(r.Context(), d.ID); err != nil {
			writeErr(w, fmt.Errorf("waiting for deployment: %w", err), p)
			return
		}
	}
	answerDeployment(w, d)
}

func answerDeployment(w http.ResponseWriter, d *deploy.Deployment) {
	status := deploymentStatus(d)
	if status >= 400 {
		writeJSON(w, status, apitypes.Error{Error: d.Error, Deployment: WireDeployment(d)})
		return
	}
	writeJSON(w, status, WireDeployment(d))
}

func (s *Server) handleGetDeployment(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	auditOf(r).DeploymentID = clip(r.PathValue("id"), 100)
	d, err := s.svc.Get(r.PathValue("id"))
	if err == nil && d.Kind == deploy.KindPromotion {
		err = fmt.Errorf("%w: %s is a promotion candidate: see /api/v1/promotions/%s", deploy.ErrNotFound, d.ID, d.ID)
	}
	if err == nil {
		auditOf(r).Cluster = d.Request.Cluster
		err = p.AllowCluster(d.Request.Cluster)
	}
	if err != nil {
		writeErr(w, err, p)
		return
	}
	if r.URL.Query().Get("wait") == "true" {
		if d, err = s.svc.Wait(r.Context(), d.ID); err != nil {
			writeErr(w, err, p)
			return
		}
	}
	writeJSON(w, http.StatusOK, WireDeployment(d))
}

func (s *Server) handleListDeployments(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeErr(w, &deploy.FieldError{Field: "limit", Msg: "must be a number from 1 to 1000"}, p)
			return
		}
		limit = n
	}
	out, err := s.svc.List(limit, func(d *deploy.Deployment) bool {
		return d.Kind != deploy.KindPromotion && p.AllowCluster(d.Request.Cluster) == nil // candidates: /api/v1/promotions
	})
	if err != nil {
		writeErr(w, err, p)
		return
	}
	list := apitypes.DeploymentList{Deployments: make([]apitypes.Deployment, 0, len(out))}
	for _, d := range out {
		list.Deployments = append(list.Deployments, *WireDeployment(d))
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) handleRollback(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var b apitypes.RollbackRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &b, true); err != nil {
			writeErr(w, err, p)
			return
		}
	}
	e := auditOf(r)
	e.RollbackOf = clip(r.PathValue("id"), 100)
	orig, err := s.svc.Get(r.PathValue("id"))
	if err == nil {
		e.Cluster, e.TriggerRepo = orig.Request.Cluster, orig.Request.TriggerRepo
		err = p.AllowDeploy(orig.Request.Cluster, orig.Request.TriggerRepo)
	}
	if err != nil {
		writeErr(w, err, p)
		return
	}
	ctx := deploy.WithFreezeOverride(r.Context(), p.MayOverrideFreeze(orig.Request.Cluster, orig.Request.TriggerRepo))
	d, err := s.svc.RollbackBy(ctx, orig.ID, p.Name, identityOf(p), b.Author)
	if err == nil {
		e.DeploymentID, e.FreezeOverride = d.ID, d.Request.FreezeOverride
	}
	if err == nil && b.Wait {
		d, err = s.svc.Wait(r.Context(), d.ID)
	}
	if err != nil {
		writeErr(w, err, p)
		return
	}
	answerDeployment(w, d)
}

// decodeJSON reads one JSON object; strict refuses unknown fields.
func decodeJSON(r *http.Request, v any, strict bool) error {
	dec := json.NewDecoder(r.Body)
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return bodyError(err, "JSON")
	}
	if dec.More() {
		return fmt.Errorf("%w: body holds more than one JSON value", deploy.ErrInvalid)
	}
	return nil
}

func bodyError(err error, what string) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fmt.Errorf("body is larger than %d bytes: %w", MaxBody, err)
	}
	return fmt.Errorf("%w: body is not valid %s: %v", deploy.ErrInvalid, what, err)
}
