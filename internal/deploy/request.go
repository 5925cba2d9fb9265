package deploy

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mygitops/mgo/internal/gitrepo"
	"github.com/mygitops/mgo/internal/repo"
	"github.com/mygitops/mgo/internal/values"
)

// Errors a Service returns for expected outcomes; the API maps them to
// status codes.
var (
	ErrInvalid  = errors.New("invalid request") // bad input: 400
	ErrNotFound = errors.New("not found")       // unknown cluster, trigger repo or deployment: 404
	ErrConflict = errors.New("conflict")        // idempotency key reused for another request: 409
	// ErrUnprocessable: a valid request the repository cannot take (a
	// values file it would edit has errors): 422.
	ErrUnprocessable = errors.New("the repository cannot take this change")
	ErrRollout       = errors.New("rollout failed")   // the change landed but did not become ready
	ErrClosed        = errors.New("service stopping") // no new requests during shutdown: 503
	// ErrForbidden: the repository does not allow the request (an image
	// repository outside the cluster's allowedImages): 403.
	ErrForbidden = errors.New("not allowed")
	// ErrQueueFull: too many requests wait for the git worker: 503. Nothing
	// was recorded; a retry (with the same idempotency key) may succeed.
	ErrQueueFull = fmt.Errorf("%w: the deploy queue is full", ErrClosed)
)

// NotFoundError is an unknown cluster or trigger repo. Its message lists
// what is known (clusters, trigger repos); Message filters that list, so
// an answer names only what the caller may see.
type NotFoundError struct {
	// What is "cluster" or "trigger repo"; Name is what was asked for;
	// Cluster is the cluster searched for a trigger repo.
	What, Name, Cluster string
	// Where says what was searched, e.g. "installations/prod/*-values.yaml (3 files)".
	Where string
	// Known are the names of that kind that exist (clusters served, trigger
	// repos listed in the cluster's values files).
	Known []string
}

func (e *NotFoundError) Error() string { return e.Message(nil) }
func (e *NotFoundError) Unwrap() error { return ErrNotFound }

// Message is the error text listing only the known names keep accepts
// (all of them when keep is nil).
func (e *NotFoundError) Message(keep func(string) bool) string {
	var known []string
	for _, k := range e.Known {
		if keep == nil || keep(k) {
			known = append(known, k)
		}
	}
	list := "none"
	if len(known) > 0 {
		list = strings.Join(known, ", ")
	}
	if keep != nil && len(known) < len(e.Known) {
		list += " (of those you may see)"
	}
	msg := fmt.Sprintf("%s: %s %q", ErrNotFound, e.What, e.Name)
	if e.What == "cluster" {
		msg += " is not served here"
		if e.Where != "" {
			msg += ": " + e.Where
		}
		if e.Known == nil {
			return msg
		}
		return msg + "; clusters: " + list
	}
	return msg + " is listed in no values file: searched " + e.Where + "; they list " + list
}

// FieldError is a bad input field.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Request asks to set the image of a trigger repo in a cluster.
type Request struct {
	Cluster     string `json:"cluster"`
	TriggerRepo string `json:"triggerRepo"`
	ImageRepo   string `json:"imageRepo"`
	Tag         string `json:"tag,omitempty"`
	Digest      string `json:"digest,omitempty"`
	// Author is the person the commit is made for: "Name <email>", a bare
	// name or a bare email (see gitrepo.ParseAuthor). Default: the client.
	Author string `json:"author,omitempty"`
	// Client is the authenticated caller; set by the API, not by the body.
	Client string `json:"client,omitempty"`
	// IdempotencyKey makes a retried request return the first one's
	// deployment instead of deploying again (per client).
	IdempotencyKey string `json:"idempotencyKey,omitempty"`
	// Restart asks for a rolling restart of the affected workloads when the
	// image is already set.
	Restart bool `json:"restart,omitempty"`
	// SourceCommit is the commit of the trigger repo the image was built
	// from (CI_COMMIT_SHA, GITHUB_SHA): notifications report the deploy on
	// it as a GitLab commit status or a GitHub deployment status.
	SourceCommit string `json:"sourceCommit,omitempty"`
	// Identity is the CI identity of a caller with an OIDC ID token; set
	// by the API, not by the body.
	Identity Identity `json:"identity,omitzero"`
	// OverrideFreeze is the caller's freezeOverride permission (a token or
	// claim rule); set by the API, never by the body, and not recorded.
	OverrideFreeze bool `json:"-"`
	// FreezeOverride, set by DeployAction.Check, is the freeze the request
	// went through: "<window> by <client>", the commit's Freeze-Override
	// trailer.
	FreezeOverride string `json:"freezeOverride,omitempty"`
	// Promoted, on a promote deploy, says where the image comes from; set
	// by internal/promote, never by the body.
	Promoted *Promoted `json:"promoted,omitempty"`
}

// Promoted is where a promote deploy's image comes from: its commit's
// Promoted-From, Promotion-Gates and Approved-By trailers.
type Promoted struct {
	Candidate  string `json:"candidate"`  // the promotion record
	Path       string `json:"path"`       // the promotion path
	From       string `json:"from"`       // the previous cluster
	FromCommit string `json:"fromCommit"` // its gitops commit that set the image
	Gates      string `json:"gates"`      // the gate results, one line
	ApprovedBy string `json:"approvedBy,omitempty"`
}

// Identity is who an OIDC ID token said the caller was: kept in the
// deployment record and written to the commit's Requested-By trailer.
type Identity struct {
	Issuer      string `json:"issuer"`
	Subject     string `json:"subject"`
	Project     string `json:"project,omitempty"`
	Ref         string `json:"ref,omitempty"`
	Environment string `json:"environment,omitempty"`
	// RunURL is the pipeline (GitLab) or workflow run (GitHub).
	RunURL string `json:"runURL,omitempty"`
	// Rules are the names of the claim rules that matched, comma-separated.
	Rules string `json:"rules,omitempty"`
}

// RequestedBy is the Requested-By trailer of the request: the client, or
// for an OIDC caller its identity on one line: "acme/app (issuer
// https://gitlab.com, sub project_path:acme/app:..., ref main, run
// https://gitlab.com/acme/app/-/pipelines/42, rule prod)".
func (r Request) RequestedBy() string {
	id := r.Identity
	if id.Issuer == "" {
		return r.Client
	}
	who := id.Project
	if who == "" {
		who = id.Subject
	}
	parts := []string{"issuer " + id.Issuer, "sub " + id.Subject}
	for _, kv := range [][2]string{{"ref", id.Ref}, {"environment", id.Environment}, {"run", id.RunURL}, {"rule", id.Rules}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+" "+kv[1])
		}
	}
	s := who + " (" + strings.Join(parts, ", ") + ")"
	if len(s) > 1000 { // a trailer is at most 1024 bytes
		s = strings.ToValidUTF8(s[:1000], "")
	}
	return s
}

// Image is the requested image.
func (r Request) Image() values.Image {
	return values.Image{Repository: r.ImageRepo, Tag: r.Tag, Digest: r.Digest}
}

// Ref is the image reference as people write it: repo:tag@digest.
func (r Request) Ref() string {
	s := r.ImageRepo
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

var (
	clusterName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,252}$`)
	commitSHA   = regexp.MustCompile(`^[0-9a-f]{7,64}$`)
	triggerRepo = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._~/-]{0,254}$`)
)

// Normalize trims every field and splits a digest out of the tag
// ("1.4.2@sha256:..." or a bare "sha256:..."), then checks every field. The
// error names the first bad field.
func (r *Request) Normalize() error {
	for _, f := range []*string{&r.Cluster, &r.TriggerRepo, &r.ImageRepo, &r.Tag, &r.Digest, &r.Author, &r.IdempotencyKey, &r.SourceCommit} {
		*f = strings.TrimSpace(*f)
	}
	if tag, dig, ok := strings.Cut(r.Tag, "@"); ok {
		if r.Digest != "" && r.Digest != dig {
			return &FieldError{"digest", "differs from the digest in the tag"}
		}
		r.Tag, r.Digest = tag, dig
	} else if strings.HasPrefix(r.Tag, "sha256:") && r.Digest == "" {
		r.Tag, r.Digest = "", r.Tag
	}
	switch {
	case r.Cluster == "":
		return &FieldError{"cluster", "is required"}
	case !clusterName.MatchString(r.Cluster):
		return &FieldError{"cluster", fmt.Sprintf("%q is not a valid cluster name", r.Cluster)}
	case r.TriggerRepo == "":
		return &FieldError{"triggerRepo", "is required"}
	case !triggerRepo.MatchString(r.TriggerRepo) || strings.Contains(r.TriggerRepo, ".."):
		return &FieldError{"triggerRepo", fmt.Sprintf("%q is not a repository path like gitlab.com/group/project", r.TriggerRepo)}
	case r.ImageRepo == "":
		return &FieldError{"imageRepo", "is required"}
	case r.Tag == "" && r.Digest == "":
		return &FieldError{"imageTag", "a tag or a digest is required"}
	case r.SourceCommit != "" && !commitSHA.MatchString(r.SourceCommit):
		return &FieldError{"sourceCommit", "must be a commit hash (7 to 64 lowercase hex digits)"}
	case len(r.IdempotencyKey) > 128 || strings.IndexFunc(r.IdempotencyKey, unicode.IsControl) >= 0:
		return &FieldError{"idempotencyKey", "must be at most 128 printable characters"}
	}
	// Each part on its own, so the error names the field.
	for _, c := range []struct {
		field string
		img   values.Image
	}{
		{"imageRepo", values.Image{Repository: r.ImageRepo, Tag: "latest"}},
		{"imageTag", values.Image{Repository: r.ImageRepo, Tag: r.Tag}},
		{"digest", values.Image{Repository: r.ImageRepo, Digest: r.Digest}},
	} {
		if c.img.Tag == "" && c.img.Digest == "" {
			continue
		}
		if err := c.img.Validate(); err != nil {
			return &FieldError{c.field, err.Error()}
		}
	}
	if err := r.Image().Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if r.Author == "" {
		r.Author = r.Client
	}
	if r.Author == "" {
		return &FieldError{"author", "is required (a name, an email or \"Name <email>\")"}
	}
	return CheckAuthor(r.Author)
}

// CheckAuthor refuses an author gitrepo.ParseAuthor refuses, and one with
// invisible characters that change how text reads (Unicode format
// characters such as U+202E RIGHT-TO-LEFT OVERRIDE, line and paragraph
// separators U+2028/U+2029): a commit's author must read as it is.
func CheckAuthor(author string) error {
	if i := strings.IndexFunc(author, invisible); i >= 0 {
		r, _ := utf8.DecodeRuneInString(author[i:])
		return &FieldError{"author", fmt.Sprintf("contains the invisible character %U; give a plain name or e-mail", r)}
	}
	if _, err := gitrepo.ParseAuthor(author); err != nil {
		return &FieldError{"author", err.Error()}
	}
	return nil
}

// invisible is a control, format, line or paragraph separator character.
func invisible(r rune) bool {
	return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)
}

// Edit sets the requested image in every values file of the cluster that
// lists the trigger repo, in the work tree at dir, and returns the files it
// changed (none when the image was already set).
func (r Request) Edit(dir string) ([]string, error) {
	return r.edit(dir, nil)
}

// edit is Edit reading the values files' headers through cache.
func (r Request) edit(dir string, cache *repo.ParseCache) ([]string, error) {
	return values.EditClusterCached(dir, r.Cluster, r.TriggerRepo, r.Image(), cache)
}

// CommitInfo is the commit of the request: the requester as author, the
// summary "deploy <image> to <cluster>/<releases>" and trailers naming the
// trigger repo, the client and the deployment.
func (r Request) CommitInfo(id string, files []string) gitrepo.CommitInfo {
	names := make([]string, 0, len(files))
	for _, f := range files {
		names = append(names, releaseName(f))
	}
	ci := gitrepo.CommitInfo{
		Author: r.Author,
		Message: gitrepo.Message{
			Summary: fmt.Sprintf("deploy %s to %s/%s", r.Ref(), r.Cluster, strings.Join(names, ",")),
			Trailers: gitrepo.Trailers{
				TriggerRepo:    r.TriggerRepo,
				RequestedBy:    r.RequestedBy(),
				DeploymentID:   id,
				FreezeOverride: r.FreezeOverride,
			},
		},
	}
	if p := r.Promoted; p != nil {
		ci.Message.Summary = fmt.Sprintf("promote %s from %s to %s/%s", r.Ref(), p.From, r.Cluster, strings.Join(names, ","))
		ci.Message.Trailers.PromotedFrom = fmt.Sprintf("%s@%s, candidate %s, path %s", p.From, p.FromCommit, p.Candidate, p.Path)
		ci.Message.Trailers.PromotionGates = p.Gates
		ci.Message.Trailers.ApprovedBy = p.ApprovedBy
	}
	return ci
}

// NewID returns a new deployment id.
func NewID() string { return newID(time.Now()) }
