package forge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Kinds of forge.
const (
	GitLab = "gitlab"
	GitHub = "github"
)

// States of a merge request, the same for both forges.
const (
	StateOpen   = "open"
	StateMerged = "merged"
	StateClosed = "closed"
)

// Config says which forge and project to talk to.
type Config struct {
	// Kind is GitLab or GitHub.
	Kind string
	// BaseURL is the forge's API root: https://gitlab.com (or a
	// self-hosted GitLab; /api/v4 is added), https://api.github.com (or a
	// GitHub Enterprise API root such as https://ghe.example.com/api/v3).
	BaseURL string
	// Project is the gitops repo: group/project (or a numeric project id)
	// on GitLab, owner/repo on GitHub.
	Project string
	// Token authenticates every request.
	Token string
	// Client sends the requests; it carries the outbound allow list and
	// the timeouts.
	Client *http.Client
}

// MergeRequest is what Open asks for: merge Branch into Target.
type MergeRequest struct {
	Branch      string
	Target      string
	Title       string
	Description string
}

// Ref names a merge request: its number in the project (GitLab's iid,
// GitHub's pull request number) and its web page.
type Ref struct {
	Number int    `json:"number"`
	URL    string `json:"url"`
}

// State is what State reads of a merge request.
type State struct {
	// State is StateOpen, StateMerged or StateClosed (closed without
	// merging).
	State string `json:"state"`
	// MergeCommit is the commit the merge made on the target branch, set
	// only when State is StateMerged (it may be empty when the forge does
	// not say).
	MergeCommit string `json:"mergeCommit,omitempty"`
	// URL is the merge request's web page.
	URL string `json:"url"`
}

// Client talks to one project of one forge. It is safe for concurrent use.
type Client struct {
	cfg  Config
	base string // BaseURL without a trailing '/'
	api  api
}

// api is what differs between the forges.
type api interface {
	open(ctx context.Context, mr MergeRequest) (Ref, error)
	state(ctx context.Context, number int) (State, error)
}

// New checks cfg and returns a Client for it. An invalid field is an error
// naming it.
func New(cfg Config) (*Client, error) {
	base, err := checkBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	if cfg.Token == "" {
		return nil, errors.New("forge: token: empty")
	}
	if strings.ContainsAny(cfg.Token, "\r\n\x00") {
		return nil, errors.New("forge: token: contains a line break or NUL")
	}
	if cfg.Client == nil {
		return nil, errors.New("forge: client: none given")
	}
	c := &Client{cfg: cfg, base: base}
	h := &httpClient{client: cfg.Client, token: cfg.Token}
	switch cfg.Kind {
	case GitLab:
		if err := checkGitLabProject(cfg.Project); err != nil {
			return nil, err
		}
		h.header = http.Header{"Private-Token": {cfg.Token}}
		c.api = &gitlab{http: h, project: base + "/api/v4/projects/" + url.PathEscape(cfg.Project)}
	case GitHub:
		owner, repo, ok := strings.Cut(cfg.Project, "/")
		if !ok || !validSegment(owner) || !validSegment(repo) || strings.Contains(repo, "/") {
			return nil, fmt.Errorf("forge: project %q: want owner/repo", cfg.Project)
		}
		h.header = http.Header{
			"Authorization":        {"Bearer " + cfg.Token},
			"Accept":               {"application/vnd.github+json"},
			"X-Github-Api-Version": {"2022-11-28"},
		}
		c.api = &github{http: h, owner: owner, repo: base + "/repos/" + url.PathEscape(owner) + "/" + url.PathEscape(repo)}
	default:
		return nil, fmt.Errorf("forge: kind %q: want %q or %q", cfg.Kind, GitLab, GitHub)
	}
	return c, nil
}

// Kind returns the forge's kind, GitLab or GitHub.
func (c *Client) Kind() string { return c.cfg.Kind }

// Project returns the project as configured.
func (c *Client) Project() string { return c.cfg.Project }

// Open asks for mr.Branch to be merged into mr.Target and returns the new
// merge request; GitLab is asked to remove the branch once merged. When an
// open merge request from mr.Branch already exists (a repeat after a
// restart), that one is returned.
func (c *Client) Open(ctx context.Context, mr MergeRequest) (Ref, error) {
	switch {
	case mr.Branch == "":
		return Ref{}, errors.New("forge: merge request: no branch")
	case mr.Target == "":
		return Ref{}, errors.New("forge: merge request: no target branch")
	case mr.Branch == mr.Target:
		return Ref{}, fmt.Errorf("forge: merge request: branch and target are both %q", mr.Branch)
	case strings.TrimSpace(mr.Title) == "":
		return Ref{}, errors.New("forge: merge request: no title")
	}
	ref, err := c.api.open(ctx, mr)
	if err != nil {
		return Ref{}, fmt.Errorf("forge: open a merge request from %s into %s of %s: %w", mr.Branch, mr.Target, c.cfg.Project, err)
	}
	return ref, nil
}

// State reads the state of merge request number.
func (c *Client) State(ctx context.Context, number int) (State, error) {
	if number <= 0 {
		return State{}, fmt.Errorf("forge: merge request number %d: not positive", number)
	}
	st, err := c.api.state(ctx, number)
	if err != nil {
		return State{}, fmt.Errorf("forge: merge request %d of %s: %w", number, c.cfg.Project, err)
	}
	return st, nil
}

func checkBaseURL(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("forge: base URL: empty")
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", fmt.Errorf("forge: base URL %q: does not parse", raw)
	case u.Scheme != "https" && u.Scheme != "http":
		return "", fmt.Errorf("forge: base URL %q: want an http or https URL", raw)
	case u.Host == "":
		return "", fmt.Errorf("forge: base URL %q: no host", raw)
	case u.User != nil:
		return "", errors.New("forge: base URL: must not hold credentials (the token is given apart)")
	case u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("forge: base URL %q: must not have a query or fragment", raw)
	}
	return strings.TrimRight(raw, "/"), nil
}

func checkGitLabProject(p string) error {
	if p == "" {
		return errors.New("forge: project: empty")
	}
	for seg := range strings.SplitSeq(p, "/") {
		if !validSegment(seg) {
			return fmt.Errorf("forge: project %q: want group/project (or a project id)", p)
		}
	}
	return nil
}

// validSegment: a non-empty path segment without characters no forge
// allows in a name.
func validSegment(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsFunc(s, func(r rune) bool {
		return r <= ' ' || r == 0x7f || strings.ContainsRune(`?#%\`, r)
	})
}
