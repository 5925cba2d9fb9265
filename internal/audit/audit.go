// Package audit writes the audit log of mgo serve: one JSON line per
// authenticated request and per refusal, saying who (static token or CI
// identity), from where, what, the decision and the deployment, on a
// stream of its own. Nothing secret goes in: no token, no query string, no
// request body.
package audit

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// Decisions.
const (
	Allowed = "allowed" // authenticated and authorized; Status says how it ended
	Refused = "refused" // 401, 403 or 423 (a deploy freeze): Reason says why
)

// Who is the caller of a request.
type Who struct {
	// Kind is "token", "oidc", "webhook", "anonymous" (--insecure-no-auth)
	// or "" when the caller could not be authenticated.
	Kind string `json:"kind,omitempty"`
	// Name is the token name, "<issuer name>:<subject>" or the webhook.
	Name        string `json:"name,omitempty"`
	Issuer      string `json:"issuer,omitempty"`
	Subject     string `json:"subject,omitempty"`
	Project     string `json:"project,omitempty"`
	Ref         string `json:"ref,omitempty"`
	Environment string `json:"environment,omitempty"`
	RunURL      string `json:"runURL,omitempty"`
	Rules       string `json:"rules,omitempty"`
}

// Entry is one line of the audit log.
type Entry struct {
	Time time.Time `json:"time"`
	Who  Who       `json:"who"`
	// Remote is the peer address; ForwardedFor the X-Forwarded-For header
	// as received (what a proxy claims).
	Remote       string `json:"remote"`
	ForwardedFor string `json:"forwardedFor,omitempty"`
	// Route is the endpoint ("POST /deploy"); Path the request path
	// without its query.
	Route        string  `json:"route"`
	Path         string  `json:"path"`
	Cluster      string  `json:"cluster,omitempty"`
	TriggerRepo  string  `json:"triggerRepo,omitempty"`
	Image        string  `json:"image,omitempty"`
	DeploymentID string  `json:"deploymentId,omitempty"`
	RollbackOf   string  `json:"rollbackOf,omitempty"`
	Decision     string  `json:"decision"`
	Status       int     `json:"status"`
	Reason       string  `json:"reason,omitempty"`
	Seconds      float64 `json:"seconds"`

	// FreezeOverride is set when a deploy or rollback went through a
	// deploy freeze: "<window> by <client>".
	FreezeOverride string `json:"freezeOverride,omitempty"`

	// Promotion is the candidate an approve, reject or promote-now is
	// about; PromotionDecision what the caller asked (approve, reject,
	// promote or promote-skip-gates).
	Promotion         string `json:"promotion,omitempty"`
	PromotionDecision string `json:"promotionDecision,omitempty"`
}

// Logger writes entries as JSON lines; one Write per entry, so lines of
// concurrent requests never interleave.
type Logger struct {
	mu sync.Mutex
	w  io.Writer
}

// New returns a logger writing to w; nil w discards.
func New(w io.Writer) *Logger { return &Logger{w: w} }

// Log writes e (Time defaults to now).
func (l *Logger) Log(e Entry) error {
	if l == nil || l.w == nil {
		return nil
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err = l.w.Write(b)
	return err
}
