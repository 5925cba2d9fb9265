package gitrepo

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

// Trailer keys written at the end of every commit message mgo makes.
const (
	TrailerTriggerRepo  = "Trigger-Repo"
	TrailerRequestedBy  = "Requested-By"
	TrailerDeploymentID = "Deployment-Id"
	TrailerReverts      = "Reverts"
	// TrailerFreezeOverride names the deploy freeze a change went through
	// and who was allowed to: "<window> by <client>".
	TrailerFreezeOverride = "Freeze-Override"
	// TrailerRevertsDeployment and TrailerRevertReason mark the commit mgo
	// makes itself to undo a deploy whose rollout failed (onFailure:
	// revert): the failed deployment and why.
	TrailerRevertsDeployment = "Reverts-Deployment"
	TrailerRevertReason      = "Revert-Reason"
	// TrailerPromotedFrom, TrailerPromotionGates and TrailerApprovedBy mark
	// a promotion's commit: the cluster and commit the image comes from
	// ("staging@<commit>, candidate <id>"), the gates it passed there, and
	// who approved it.
	TrailerPromotedFrom   = "Promoted-From"
	TrailerPromotionGates = "Promotion-Gates"
	TrailerApprovedBy     = "Approved-By"
)

const (
	maxSummaryLen = 512
	maxTrailerLen = 1024
	maxBodyLen    = 64 << 10
)

// ErrInvalidMessage is wrapped by Message.Validate's errors.
var ErrInvalidMessage = errors.New("invalid commit message")

// Trailers are the git trailers of a commit made by mgo. Empty fields are
// left out.
type Trailers struct {
	// TriggerRepo is the source repository whose build asked for the
	// change (e.g. gitlab.com/acme/app).
	TriggerRepo string `json:"triggerRepo,omitempty"`
	// RequestedBy is the API client that sent the request (token name or
	// OIDC subject), as opposed to the author it named.
	RequestedBy string `json:"requestedBy,omitempty"`
	// DeploymentID is mgo's id of the deployment.
	DeploymentID string `json:"deploymentId,omitempty"`
	// Reverts is the commit a revert undoes.
	Reverts string `json:"reverts,omitempty"`
	// FreezeOverride is the freeze the change was made through.
	FreezeOverride string `json:"freezeOverride,omitempty"`
	// RevertsDeployment is the deployment whose failed rollout mgo undoes.
	RevertsDeployment string `json:"revertsDeployment,omitempty"`
	// RevertReason is why: the failed stage and its error's first line.
	RevertReason string `json:"revertReason,omitempty"`
	// PromotedFrom, PromotionGates and ApprovedBy are a promotion's.
	PromotedFrom   string `json:"promotedFrom,omitempty"`
	PromotionGates string `json:"promotionGates,omitempty"`
	ApprovedBy     string `json:"approvedBy,omitempty"`
}

func (t Trailers) list() [][2]string {
	var out [][2]string
	for _, kv := range [][2]string{
		{TrailerTriggerRepo, t.TriggerRepo},
		{TrailerRequestedBy, t.RequestedBy},
		{TrailerDeploymentID, t.DeploymentID},
		{TrailerReverts, t.Reverts},
		{TrailerFreezeOverride, t.FreezeOverride},
		{TrailerRevertsDeployment, t.RevertsDeployment},
		{TrailerRevertReason, t.RevertReason},
		{TrailerPromotedFrom, t.PromotedFrom},
		{TrailerPromotionGates, t.PromotionGates},
		{TrailerApprovedBy, t.ApprovedBy},
	} {
		if kv[1] != "" {
			out = append(out, kv)
		}
	}
	return out
}

func (t *Trailers) set(key, value string) bool {
	switch strings.ToLower(key) {
	case strings.ToLower(TrailerTriggerRepo):
		t.TriggerRepo = value
	case strings.ToLower(TrailerRequestedBy):
		t.RequestedBy = value
	case strings.ToLower(TrailerDeploymentID):
		t.DeploymentID = value
	case strings.ToLower(TrailerReverts):
		t.Reverts = value
	case strings.ToLower(TrailerFreezeOverride):
		t.FreezeOverride = value
	case strings.ToLower(TrailerRevertsDeployment):
		t.RevertsDeployment = value
	case strings.ToLower(TrailerRevertReason):
		t.RevertReason = value
	case strings.ToLower(TrailerPromotedFrom):
		t.PromotedFrom = value
	case strings.ToLower(TrailerPromotionGates):
		t.PromotionGates = value
	case strings.ToLower(TrailerApprovedBy):
		t.ApprovedBy = value
	default:
		return false
	}
	return true
}

// Message is a commit message: a one-line summary (e.g. "deploy
// registry.acme.io/acme/app:1.4.2 to prod/app"), an optional body and the
// trailers.
type Message struct {
	Summary  string   `json:"summary"`
	Body     string   `json:"body,omitempty"`
	Trailers Trailers `json:"trailers"`
}

// Validate checks that the summary is one non-empty line of at most 512
// bytes, that the body holds no control characters other than newlines
// and tabs, and that each trailer value is one line of at most 1024 bytes.
func (m Message) Validate() error {
	var errs []error
	if strings.TrimSpace(m.Summary) == "" {
		errs = append(errs, errors.New("summary is empty"))
	} else if err := checkLine(m.Summary, maxSummaryLen); err != nil {
		errs = append(errs, fmt.Errorf("summary: %w", err))
	}
	if len(m.Body) > maxBodyLen {
		errs = append(errs, fmt.Errorf("body: longer than %d bytes", maxBodyLen))
	} else if strings.IndexFunc(m.Body, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }) >= 0 {
		errs = append(errs, errors.New("body contains a control character"))
	}
	for _, kv := range m.Trailers.list() {
		if err := checkLine(kv[1], maxTrailerLen); err != nil {
			errs = append(errs, fmt.Errorf("trailer %s: %w", kv[0], err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	return nil
}

func checkLine(s string, max int) error {
	switch {
	case len(s) > max:
		return fmt.Errorf("longer than %d bytes", max)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return errors.New("contains a newline or another control character")
	}
	return nil
}

// String formats the message as git stores it:
//
//	<summary>
//
//	<body>
//
//	Trigger-Repo: gitlab.com/acme/app
//	Requested-By: ci-acme
//	Deployment-Id: 01J9...
//
// The body and trailer paragraphs are left out when empty. String does not
// validate; Validate first.
func (m Message) String() string {
	var b strings.Builder
	b.WriteString(strings.TrimSpace(m.Summary))
	b.WriteString("\n")
	if body := strings.Trim(m.Body, "\n "); body != "" {
		b.WriteString("\n")
		b.WriteString(body)
		b.WriteString("\n")
	}
	if tr := m.Trailers.list(); len(tr) > 0 {
		b.WriteString("\n")
		for _, kv := range tr {
			b.WriteString(kv[0] + ": " + strings.TrimSpace(kv[1]) + "\n")
		}
	}
	return b.String()
}

var trailerLine = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9-]*):\s*(.*?)\s*$`)

// ParseMessage splits a commit message into summary, body and trailers.
// The trailers are the last paragraph when every line of it is "Key: value"
// and at least one key is known; other keys there are dropped.
func ParseMessage(s string) Message {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	summary, rest, _ := strings.Cut(strings.TrimLeft(s, "\n"), "\n")
	m := Message{Summary: strings.TrimSpace(summary)}
	rest = strings.Trim(rest, "\n")
	if rest == "" {
		return m
	}
	body, last := "", rest
	if i := strings.LastIndex(rest, "\n\n"); i >= 0 {
		body, last = rest[:i], rest[i+2:]
	}
	var tr Trailers
	known := false
	for _, line := range strings.Split(last, "\n") {
		sub := trailerLine.FindStringSubmatch(line)
		if sub == nil {
			known = false
			break
		}
		if tr.set(sub[1], sub[2]) {
			known = true
		}
	}
	if !known {
		m.Body = rest
		return m
	}
	m.Body = strings.Trim(body, "\n")
	m.Trailers = tr
	return m
}
