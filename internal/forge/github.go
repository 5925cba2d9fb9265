package forge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// github speaks REST: POST/GET /repos/:owner/:repo/pulls.
type github struct {
	http  *httpClient
	owner string
	repo  string // .../repos/<owner>/<repo>
}

type githubPR struct {
	Number         int    `json:"number"`
	State          string `json:"state"`
	Merged         bool   `json:"merged"`
	MergedAt       string `json:"merged_at"`
	MergeCommitSHA string `json:"merge_commit_sha"`
	HTMLURL        string `json:"html_url"`
}

func (g *github) open(ctx context.Context, mr MergeRequest) (Ref, error) {
	var created githubPR
	err := g.http.do(ctx, http.MethodPost, g.repo+"/pulls", map[string]any{
		"head":  mr.Branch,
		"base":  mr.Target,
		"title": mr.Title,
		"body":  mr.Description,
	}, &created)
	if isStatus(err, http.StatusUnprocessableEntity) {
		// Maybe "A pull request already exists for owner:branch"; a
		// listing tells, and another 422 reason finds none.
		return g.existing(ctx, mr, err)
	}
	if err != nil {
		return Ref{}, err
	}
	if created.Number <= 0 {
		return Ref{}, errors.New("the pull request GitHub created has no number")
	}
	return Ref{Number: created.Number, URL: created.HTMLURL}, nil
}

// existing returns the open pull request from mr.Branch into mr.Target,
// or unprocessable when there is none.
func (g *github) existing(ctx context.Context, mr MergeRequest, unprocessable error) (Ref, error) {
	q := url.Values{"head": {g.owner + ":" + mr.Branch}, "base": {mr.Target}, "state": {"open"}}
	var list []githubPR
	if err := g.http.do(ctx, http.MethodGet, g.repo+"/pulls?"+q.Encode(), nil, &list); err != nil {
		return Ref{}, fmt.Errorf("%w; then listing the open ones: %w", unprocessable, err)
	}
	for _, p := range list {
		if p.Number > 0 {
			return Ref{Number: p.Number, URL: p.HTMLURL}, nil
		}
	}
	return Ref{}, unprocessable
}

func (g *github) state(ctx context.Context, number int) (State, error) {
	var p githubPR
	if err := g.http.do(ctx, http.MethodGet, g.repo+"/pulls/"+strconv.Itoa(number), nil, &p); err != nil {
		return State{}, err
	}
	st := State{URL: p.HTMLURL}
	switch {
	case p.Merged || p.MergedAt != "":
		st.State = StateMerged
		st.MergeCommit = p.MergeCommitSHA
	case p.State == "open":
		st.State = StateOpen // merge_commit_sha is only a test merge then
	case p.State == "closed":
		st.State = StateClosed
	default:
		return State{}, fmt.Errorf("GitHub gave the unknown state %q", p.State)
	}
	return st, nil
}
