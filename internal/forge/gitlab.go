package forge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// gitlab speaks API v4: POST/GET /projects/:id/merge_requests.
type gitlab struct {
	http    *httpClient
	project string // .../api/v4/projects/<escaped id>
}

type gitlabMR struct {
	IID             int    `json:"iid"`
	State           string `json:"state"`
	WebURL          string `json:"web_url"`
	SHA             string `json:"sha"`
	MergeCommitSHA  string `json:"merge_commit_sha"`
	SquashCommitSHA string `json:"squash_commit_sha"`
}

func (g *gitlab) open(ctx context.Context, mr MergeRequest) (Ref, error) {
	var created gitlabMR
	err := g.http.do(ctx, http.MethodPost, g.project+"/merge_requests", map[string]any{
		"source_branch":        mr.Branch,
		"target_branch":        mr.Target,
		"title":                mr.Title,
		"description":          mr.Description,
		"remove_source_branch": true,
	}, &created)
	if isStatus(err, http.StatusConflict) {
		// "Another open merge request already exists for this source
		// branch": find it.
		return g.existing(ctx, mr, err)
	}
	if err != nil {
		return Ref{}, err
	}
	if created.IID <= 0 {
		return Ref{}, errors.New("the merge request GitLab created has no iid")
	}
	return Ref{Number: created.IID, URL: created.WebURL}, nil
}

// existing returns the open merge request from mr.Branch into mr.Target,
// or conflict when there is none.
func (g *gitlab) existing(ctx context.Context, mr MergeRequest, conflict error) (Ref, error) {
	q := url.Values{"source_branch": {mr.Branch}, "target_branch": {mr.Target}, "state": {"opened"}}
	var list []gitlabMR
	if err := g.http.do(ctx, http.MethodGet, g.project+"/merge_requests?"+q.Encode(), nil, &list); err != nil {
		return Ref{}, fmt.Errorf("%w; then listing the open ones: %w", conflict, err)
	}
	for _, m := range list {
		if m.IID > 0 {
			return Ref{Number: m.IID, URL: m.WebURL}, nil
		}
	}
	return Ref{}, fmt.Errorf("%w; and no open merge request from %s into %s was listed", conflict, mr.Branch, mr.Target)
}

func (g *gitlab) state(ctx context.Context, number int) (State, error) {
	var m gitlabMR
	if err := g.http.do(ctx, http.MethodGet, g.project+"/merge_requests/"+strconv.Itoa(number), nil, &m); err != nil {
		return State{}, err
	}
	st := State{URL: m.WebURL}
	switch m.State {
	case "opened", "locked":
		st.State = StateOpen
	case "merged":
		st.State = StateMerged
		// A fast-forward merge makes no merge commit: the source head is
		// what landed.
		st.MergeCommit = firstOf(m.MergeCommitSHA, m.SquashCommitSHA, m.SHA)
	case "closed":
		st.State = StateClosed
	default:
		return State{}, fmt.Errorf("GitLab gave the unknown state %q", m.State)
	}
	return st, nil
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
