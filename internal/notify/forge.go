package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// gitlab sets a commit status on the source commit:
// POST /api/v4/projects/:id/statuses/:sha.
type gitlab struct {
	base, token string
	client      *http.Client
}

func (g *gitlab) send(ctx context.Context, d *delivery) error {
	ev := d.ev
	state := "success"
	switch {
	case ev.Type == DeployStarted:
		state = "pending"
	case !ev.Success:
		state = "failed"
	}
	body := map[string]any{
		"state":       state,
		"name":        "mgo/" + ev.Cluster,
		"description": truncate(ev.Summary, 255),
	}
	if ev.URL != "" {
		body["target_url"] = ev.URL
	}
	target := fmt.Sprintf("%s/api/v4/projects/%s/statuses/%s", g.base, url.PathEscape(ev.Project), url.PathEscape(ev.SourceCommit))
	h := http.Header{}
	h.Set("PRIVATE-TOKEN", g.token)
	_, err := post(ctx, g.client, target, h, body)
	return err
}

// github creates a deployment of the source commit to the cluster's
// environment, then its status: POST /repos/:owner/:repo/deployments and
// .../deployments/:id/statuses.
type github struct {
	base, token string
	client      *http.Client
}

func (g *github) send(ctx context.Context, d *delivery) error {
	ev := d.ev
	owner, name, ok := strings.Cut(ev.Project, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return &permanentError{fmt.Errorf("project %q is not owner/repo", ev.Project)}
	}
	repoURL := fmt.Sprintf("%s/repos/%s/%s", g.base, url.PathEscape(owner), url.PathEscape(name))
	h := http.Header{}
	h.Set("Authorization", "Bearer "+g.token)
	h.Set("Accept", "application/vnd.github+json")
	h.Set("X-GitHub-Api-Version", "2022-11-28")
	id := d.memo["deployment"]
	if id == "" && ev.Type != DeployStarted {
		// The deployment created when the deploy started, if any: its
		// status moves from pending to the outcome.
		var err error
		if id, err = g.find(ctx, repoURL, h, ev); err != nil {
			return err
		}
		d.memo["deployment"] = id
	}
	if id == "" { // a retry reuses the deployment an earlier attempt created
		answer, err := post(ctx, g.client, repoURL+"/deployments", h, map[string]any{
			"ref":               ev.SourceCommit,
			"environment":       ev.Cluster,
			"description":       truncate(ev.Summary, 140),
			"auto_merge":        false,
			"required_contexts": []string{},
			"payload":           map[string]string{"deploymentId": ev.DeploymentID, "image": ev.Image},
		})
		if err != nil {
			return err
		}
		var created struct {
			ID int64 `json:"id"`
		}
		if err := json.Unmarshal(answer, &created); err != nil || created.ID == 0 {
			return errors.New("the deployment GitHub created has no id")
		}
		id = strconv.FormatInt(created.ID, 10)
		d.memo["deployment"] = id
	}
	state := "success"
	switch {
	case ev.Type == DeployStarted:
		state = "pending"
	case !ev.Success:
		state = "failure"
	}
	status := map[string]any{"state": state, "description": truncate(ev.Summary, 140), "environment": ev.Cluster}
	if ev.URL != "" {
		status["log_url"] = ev.URL
	}
	_, err := post(ctx, g.client, repoURL+"/deployments/"+id+"/statuses", h, status)
	return err
}

// find returns the id of the GitHub deployment that mgo created for this
// deployment when it started (its payload names the deployment id), or ""
// when there is none: GET /repos/:owner/:repo/deployments?sha=&environment=.
func (g *github) find(ctx context.Context, repoURL string, h http.Header, ev Event) (string, error) {
	q := url.Values{"sha": {ev.SourceCommit}, "environment": {ev.Cluster}, "per_page": {"100"}}
	answer, err := get(ctx, g.client, repoURL+"/deployments?"+q.Encode(), h)
	if err != nil {
		return "", err
	}
	var list []struct {
		ID      int64 `json:"id"`
		Payload any   `json:"payload"`
	}
	if err := json.Unmarshal(answer, &list); err != nil {
		return "", fmt.Errorf("the deployments GitHub listed: %w", err)
	}
	for _, dep := range list {
		// GitHub returns the payload as an object, or as the JSON string it
		// was given.
		p, _ := dep.Payload.(map[string]any)
		if s, ok := dep.Payload.(string); ok {
			_ = json.Unmarshal([]byte(s), &p)
		}
		if p != nil && p["deploymentId"] == ev.DeploymentID && dep.ID != 0 {
			return strconv.FormatInt(dep.ID, 10), nil
		}
	}
	return "", nil
}
