package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mygitops/mgo/internal/auth"

	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/pkg/apitypes"
)

// Promotions is what the API asks of promotion between clusters:
// *promote.Promoter in mgo serve, a fake in this package's tests. Errors
// wrap deploy.ErrNotFound (unknown path or candidate: 404), ErrInvalid
// (400), ErrConflict (a candidate that is not waiting for approval: 409),
// ErrForbidden (403) and ErrUnprocessable (422).
type Promotions interface {
	// Paths lists the promotion paths with the clusters for which keep
	// is true (the caller's scope); canApprove says whether the caller
	// may approve into a cluster.
	Paths(ctx context.Context, keep func(cluster string) bool, canApprove func(cluster string) bool) ([]apitypes.PromotionPath, error)
	// Get returns one candidate.
	Get(ctx context.Context, id string) (apitypes.Promotion, error)
	// Approve lets a candidate waiting for approval (approval: api) go
	// on; Reject stops it. The API has checked that the caller may deploy
	// to the candidate's To cluster.
	Approve(ctx context.Context, id string, by deploy.Approver, comment string) (apitypes.Promotion, error)
	Reject(ctx context.Context, id string, by deploy.Approver, comment string) (apitypes.Promotion, error)
	// PromoteNow starts a manual promotion of what runs in the cluster
	// before req.To on the path.
	PromoteNow(ctx context.Context, req apitypes.PromoteRequest, by deploy.Approver) (apitypes.Promotion, error)
	// Wait returns the candidate once it is terminal (or ctx ends).
	Wait(ctx context.Context, id string) (apitypes.Promotion, error)
}

// errNoPromotions answers the promotion routes of a server without
// promotion paths.
var errNoPromotions = fmt.Errorf("%w: promotion is not configured", deploy.ErrNotFound)

func (s *Server) promotionRoutes() {
	s.handle("GET /api/v1/promotions", s.authed("", s.handlePromotionPaths))
	s.handle("POST /api/v1/promotions", s.authed("", s.handlePromoteNow))
	s.handle("GET /api/v1/promotions/{id}", s.authed("", s.handleGetPromotion))
	s.handle("POST /api/v1/promotions/{id}/approve", s.authed("", s.handleDecision(true)))
	s.handle("POST /api/v1/promotions/{id}/reject", s.authed("", s.handleDecision(false)))
}

func approverOf(p auth.Principal) deploy.Approver {
	return deploy.Approver{Client: p.Name, Identity: identityOf(p)}
}

func (s *Server) handlePromotionPaths(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if s.cfg.Promotions == nil {
		writeErr(w, errNoPromotions, p)
		return
	}
	allowed := func(cluster string) bool { return p.AllowCluster(cluster) == nil }
	paths, err := s.cfg.Promotions.Paths(r.Context(), allowed, allowed)
	if err != nil {
		writeErr(w, err, p)
		return
	}
	if paths == nil {
		paths = []apitypes.PromotionPath{}
	}
	writeJSON(w, http.StatusOK, apitypes.PromotionPaths{Paths: paths})
}

// visiblePromotion returns the candidate of the request's id if the
// caller may see both of its clusters; else a not-found error that names
// nothing outside the caller's scope.
func (s *Server) visiblePromotion(r *http.Request, p auth.Principal) (apitypes.Promotion, error) {
	return s.promotionSeen(r, p, func(c apitypes.Promotion) bool { return p.AllowCluster(c.From) == nil && p.AllowCluster(c.To) == nil })
}

// promotionSeen returns the candidate of the request's id if seen says the
// caller may know of it.
func (s *Server) promotionSeen(r *http.Request, p auth.Principal, seen func(apitypes.Promotion) bool) (apitypes.Promotion, error) {
	if s.cfg.Promotions == nil {
		return apitypes.Promotion{}, errNoPromotions
	}
	id := r.PathValue("id")
	e := auditOf(r)
	e.Promotion = clip(id, 100)
	c, err := s.cfg.Promotions.Get(r.Context(), id)
	if err != nil {
		return c, err
	}
	if !seen(c) {
		return apitypes.Promotion{}, fmt.Errorf("%w: no promotion %q", deploy.ErrNotFound, clip(id, 100))
	}
	e.Cluster, e.TriggerRepo = c.To, c.TriggerRepo
	return c, nil
}

func (s *Server) handleGetPromotion(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	c, err := s.visiblePromotion(r, p)
	if err != nil {
		writeErr(w, err, p)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// maxComment bounds the comment of an approve or reject.
const maxComment = 1000

func (s *Server) handleDecision(approve bool) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) {
		var b apitypes.PromotionDecision
		if r.ContentLength != 0 {
			if err := decodeJSON(r, &b, true); err != nil {
				writeErr(w, err, p)
				return
			}
		}
		if err := checkComment(b.Comment); err != nil {
			writeErr(w, err, p)
			return
		}
		// A caller who sees one of its clusters learns that it may not
		// decide (403); one who sees neither, nothing (404).
		c, err := s.promotionSeen(r, p, func(c apitypes.Promotion) bool { return p.AllowCluster(c.From) == nil || p.AllowCluster(c.To) == nil })
		if err == nil {
			err = p.AllowCluster(c.To)
		}
		if err != nil {
			writeErr(w, err, p)
			return
		}
		decide, decision := s.cfg.Promotions.Approve, "approve"
		if !approve {
			decide, decision = s.cfg.Promotions.Reject, "reject"
		}
		auditOf(r).PromotionDecision = decision
		if c, err = decide(r.Context(), c.ID, approverOf(p), b.Comment); err != nil {
			writeErr(w, err, p)
			return
		}
		writeJSON(w, http.StatusOK, c)
	}
}

func checkComment(c string) error {
	if utf8.RuneCountInString(c) > maxComment {
		return &deploy.FieldError{Field: "comment", Msg: fmt.Sprintf("is longer than %d characters", maxComment)}
	}
	for _, r := range c {
		if !unicode.IsPrint(r) && r != ' ' {
			return &deploy.FieldError{Field: "comment", Msg: "holds a character that is not printable"}
		}
	}
	return nil
}

func (s *Server) handlePromoteNow(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if s.cfg.Promotions == nil {
		writeErr(w, errNoPromotions, p)
		return
	}
	var b apitypes.PromoteRequest
	if err := decodeJSON(r, &b, true); err != nil {
		writeErr(w, err, p)
		return
	}
	b.Path, b.To, b.TriggerRepo = strings.TrimSpace(b.Path), strings.TrimSpace(b.To), strings.TrimSpace(b.TriggerRepo)
	e := auditOf(r)
	e.Cluster, e.TriggerRepo = clip(b.To, 300), clip(b.TriggerRepo, 300)
	e.PromotionDecision = "promote"
	if b.SkipGates {
		e.PromotionDecision = "promote-skip-gates"
	}
	for _, f := range []struct{ name, v string }{{"path", b.Path}, {"to", b.To}, {"triggerRepo", b.TriggerRepo}} {
		if f.v == "" {
			writeErr(w, &deploy.FieldError{Field: f.name, Msg: "is required"}, p)
			return
		}
		if len(f.v) > 300 {
			writeErr(w, &deploy.FieldError{Field: f.name, Msg: "is longer than 300 bytes"}, p)
			return
		}
	}
	if err := p.AllowDeploy(b.To, b.TriggerRepo); err != nil {
		writeErr(w, err, p)
		return
	}
	by := approverOf(p)
	by.SkipGates = p.MaySkipGates(b.To, b.TriggerRepo)
	if b.SkipGates && !by.SkipGates {
		writeErr(w, fmt.Errorf("%w: skipGates needs the skipGates permission", auth.ErrForbidden), p)
		return
	}
	c, err := s.cfg.Promotions.PromoteNow(r.Context(), b, by)
	if err != nil {
		writeErr(w, err, p)
		return
	}
	e.Promotion = c.ID
	if !b.Wait {
		writeJSON(w, http.StatusAccepted, c)
		return
	}
	if c, err = s.cfg.Promotions.Wait(r.Context(), c.ID); err != nil {
		writeErr(w, fmt.Errorf("waiting for promotion: %w", err), p)
		return
	}
	writeJSON(w, http.StatusOK, c)
}
