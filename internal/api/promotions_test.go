package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mygitops/mgo/internal/api"
	"github.com/mygitops/mgo/internal/api/apitest"
	"github.com/mygitops/mgo/internal/auth"
	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/pkg/apitypes"
)

// fakePromotions knows candidates by id and one path, staging → prod; it
// records the decisions and promote-now requests it got.
type fakePromotions struct {
	Candidates map[string]apitypes.Promotion
	DecideErr  error // fails Approve and Reject

	mu        sync.Mutex
	decisions []string // "approve p1 by admin: comment"
	promoted  []deploy.Approver
}

var _ api.Promotions = (*fakePromotions)(nil)

func newFakePromotions() *fakePromotions {
	p1 := apitypes.Promotion{ID: "p1", Path: "main", From: "staging", To: "prod", Stage: 1, TriggerRepo: "gitlab.com/acme/app",
		ImageRepo: "registry.acme.io/acme/app", Tag: "1.4.3", Source: "d1", FromCommit: "3c1f00", Phase: apitypes.PhaseApproval,
		RolledOut: fakeTime, SoakStart: fakeTime, Created: fakeTime}
	p2 := p1
	p2.ID, p2.From, p2.To = "p2", "secret", "secret2"
	return &fakePromotions{Candidates: map[string]apitypes.Promotion{"p1": p1, "p2": p2}}
}

func (f *fakePromotions) Paths(_ context.Context, keep, canApprove func(string) bool) ([]apitypes.PromotionPath, error) {
	path := apitypes.PromotionPath{Name: "main", TriggerRepos: []string{"gitlab.com/acme/app"}, Stages: []apitypes.PromotionStageView{}}
	for _, c := range []string{"staging", "prod"} {
		if keep(c) {
			st := apitypes.PromotionStageView{Cluster: c, Image: "registry.acme.io/acme/app:1.4.2", CanApprove: canApprove(c)}
			if c == "prod" {
				p1 := f.Candidates["p1"]
				st.Candidate, st.Approval = &p1, "api"
			}
			path.Stages = append(path.Stages, st)
		}
	}
	return []apitypes.PromotionPath{path}, nil
}

func (f *fakePromotions) Get(_ context.Context, id string) (apitypes.Promotion, error) {
	c, ok := f.Candidates[id]
	if !ok {
		return c, fmt.Errorf("%w: no promotion %q", deploy.ErrNotFound, id)
	}
	return c, nil
}

func (f *fakePromotions) decide(verb, id string, by deploy.Approver, comment string, phase apitypes.PromotionPhase) (apitypes.Promotion, error) {
	if f.DecideErr != nil {
		return apitypes.Promotion{}, f.DecideErr
	}
	f.mu.Lock()
	f.decisions = append(f.decisions, fmt.Sprintf("%s %s by %s: %s", verb, id, by.Name(), comment))
	f.mu.Unlock()
	c := f.Candidates[id]
	c.Phase = phase
	c.Approval = &apitypes.Approval{By: by.Name(), Via: "api", At: fakeTime, Comment: comment}
	return c, nil
}

func (f *fakePromotions) Approve(_ context.Context, id string, by deploy.Approver, comment string) (apitypes.Promotion, error) {
	return f.decide("approve", id, by, comment, apitypes.PhasePromoting)
}

func (f *fakePromotions) Reject(_ context.Context, id string, by deploy.Approver, comment string) (apitypes.Promotion, error) {
	return f.decide("reject", id, by, comment, apitypes.PhaseRejected)
}

func (f *fakePromotions) PromoteNow(_ context.Context, req apitypes.PromoteRequest, by deploy.Approver) (apitypes.Promotion, error) {
	f.mu.Lock()
	f.promoted = append(f.promoted, by)
	f.mu.Unlock()
	c := f.Candidates["p1"]
	c.ID, c.Manual, c.Phase = "p3", true, apitypes.PhaseSoaking
	return c, nil
}

func (f *fakePromotions) Wait(_ context.Context, id string) (apitypes.Promotion, error) {
	c := f.Candidates["p1"]
	c.ID, c.Manual, c.Phase = id, true, apitypes.PhasePromoted
	return c, nil
}

const (
	stagingToken = "mgo_staging" // cluster staging only
	gatesToken   = "mgo_gates"   // prod and staging, with skipGates
)

// servePromotions runs the API with promotions (none when nil); its client
// validates every answer against the OpenAPI document.
func servePromotions(t *testing.T, promos *fakePromotions) (string, *http.Client) {
	t.Helper()
	tokens, err := auth.NewTokens([]auth.TokenConfig{
		{Name: "admin", SHA256: auth.Hash(allToken), Clusters: []string{"*"}, TriggerRepos: []string{"*"}},
		{Name: "prod-ci", SHA256: auth.Hash(prodToken), Clusters: []string{"prod"}, TriggerRepos: []string{"gitlab.com/acme/app"}},
		{Name: "staging-ci", SHA256: auth.Hash(stagingToken), Clusters: []string{"staging"}, TriggerRepos: []string{"gitlab.com/acme/app"}},
		{Name: "release", SHA256: auth.Hash(gatesToken), Clusters: []string{"staging", "prod"}, TriggerRepos: []string{"gitlab.com/acme/app"}, SkipGates: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := api.Config{Service: newFake(), Tokens: tokens, Gatherer: prometheus.NewRegistry()}
	if promos != nil {
		cfg.Promotions = promos
	}
	h, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, &http.Client{Transport: apitest.Transport(t, nil)}
}

func callAPI(t *testing.T, client *http.Client, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

const promoteJSON = `{"path":"main","to":"prod","triggerRepo":"gitlab.com/acme/app"%s}`

// TestPromotionRoutes sends a request per answer of the promotion routes.
func TestPromotionRoutes(t *testing.T) {
	for _, tc := range []struct {
		name, method, path, token, body string
		decideErr                       error
		want                            int
		wantIn, wantOut                 string
		decisions                       []string
		promoted                        int
	}{
		{name: "list for admin", method: "GET", path: "/api/v1/promotions", token: allToken, want: 200,
			wantIn: `"canApprove": true`},
		{name: "list for a staging token hides prod", method: "GET", path: "/api/v1/promotions", token: stagingToken, want: 200,
			wantIn: `"cluster": "staging"`, wantOut: `"prod"`},
		{name: "show", method: "GET", path: "/api/v1/promotions/p1", token: allToken, want: 200, wantIn: `"phase": "approval"`},
		{name: "show hidden from a staging token", method: "GET", path: "/api/v1/promotions/p1", token: stagingToken, want: 404, wantOut: "prod"},
		{name: "show outside the scope", method: "GET", path: "/api/v1/promotions/p2", token: prodToken, want: 404, wantOut: "secret"},
		{name: "show unknown", method: "GET", path: "/api/v1/promotions/p9", token: allToken, want: 404},
		{name: "approve", method: "POST", path: "/api/v1/promotions/p1/approve", token: prodToken, body: `{"comment":"soaked well"}`, want: 200,
			wantIn: `"phase": "promoting"`, decisions: []string{"approve p1 by prod-ci: soaked well"}},
		{name: "approve without a body", method: "POST", path: "/api/v1/promotions/p1/approve", token: allToken, want: 200,
			decisions: []string{"approve p1 by admin: "}},
		{name: "approve by a staging token", method: "POST", path: "/api/v1/promotions/p1/approve", token: stagingToken, want: 403},
		{name: "approve outside the scope", method: "POST", path: "/api/v1/promotions/p2/approve", token: prodToken, want: 404},
		{name: "comment too long", method: "POST", path: "/api/v1/promotions/p1/approve", token: allToken,
			body: `{"comment":"` + strings.Repeat("x", 1001) + `"}`, want: 400, wantIn: `"field": "comment"`},
		{name: "comment not printable", method: "POST", path: "/api/v1/promotions/p1/approve", token: allToken,
			body: `{"comment":"a\u001bb"}`, want: 400, wantIn: `"field": "comment"`},
		{name: "approve not waiting", method: "POST", path: "/api/v1/promotions/p1/approve", token: allToken,
			decideErr: fmt.Errorf("%w: promotion p1 is promoted, not waiting for approval", deploy.ErrConflict), want: 409, wantIn: "not waiting"},
		{name: "reject", method: "POST", path: "/api/v1/promotions/p1/reject", token: prodToken, body: `{"comment":"no"}`, want: 200,
			wantIn: `"phase": "rejected"`, decisions: []string{"reject p1 by prod-ci: no"}},
		{name: "reject by a staging token", method: "POST", path: "/api/v1/promotions/p1/reject", token: stagingToken, want: 403},
		{name: "promote now", method: "POST", path: "/api/v1/promotions", token: prodToken, body: fmt.Sprintf(promoteJSON, ""), want: 202,
			wantIn: `"manual": true`, promoted: 1},
		{name: "promote now and wait", method: "POST", path: "/api/v1/promotions", token: prodToken, body: fmt.Sprintf(promoteJSON, `,"wait":true`), want: 200,
			wantIn: `"phase": "promoted"`, promoted: 1},
		{name: "skip gates without the permission", method: "POST", path: "/api/v1/promotions", token: allToken,
			body: fmt.Sprintf(promoteJSON, `,"skipGates":true`), want: 403, wantIn: "skipGates needs the skipGates permission"},
		{name: "skip gates with the permission", method: "POST", path: "/api/v1/promotions", token: gatesToken,
			body: fmt.Sprintf(promoteJSON, `,"skipGates":true`), want: 202, promoted: 1},
		{name: "promote into a cluster outside the scope", method: "POST", path: "/api/v1/promotions", token: stagingToken,
			body: fmt.Sprintf(promoteJSON, ""), want: 403},
		{name: "promote without a path", method: "POST", path: "/api/v1/promotions", token: allToken,
			body: `{"to":"prod","triggerRepo":"gitlab.com/acme/app"}`, want: 400, wantIn: `"field": "path"`},
		{name: "promote with an unknown field", method: "POST", path: "/api/v1/promotions", token: allToken,
			body: fmt.Sprintf(promoteJSON, `,"from":"staging"`), want: 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			promos := newFakePromotions()
			promos.DecideErr = tc.decideErr
			url, client := servePromotions(t, promos)
			code, raw := callAPI(t, client, tc.method, url+tc.path, tc.token, tc.body)
			if code != tc.want {
				t.Fatalf("%s %s: %d, want %d\n%s", tc.method, tc.path, code, tc.want, raw)
			}
			if tc.wantIn != "" && !strings.Contains(raw, tc.wantIn) {
				t.Errorf("answer lacks %s:\n%s", tc.wantIn, raw)
			}
			if tc.wantOut != "" && strings.Contains(raw, tc.wantOut) {
				t.Errorf("answer shows %s:\n%s", tc.wantOut, raw)
			}
			if code >= 400 {
				var e apitypes.Error
				if err := json.Unmarshal([]byte(raw), &e); err != nil || e.Error == "" {
					t.Errorf("error answer without an error: %v\n%s", err, raw)
				}
			}
			if fmt.Sprint(promos.decisions) != fmt.Sprint(tc.decisions) {
				t.Errorf("decisions %q, want %q", promos.decisions, tc.decisions)
			}
			if len(promos.promoted) != tc.promoted {
				t.Errorf("%d promotions started, want %d", len(promos.promoted), tc.promoted)
			}
			if strings.Contains(tc.body, "skipGates") && code < 400 && !promos.promoted[0].SkipGates {
				t.Error("the approver lacks the skipGates permission")
			}
		})
	}
}

// TestPromotionsNotConfigured: without promotion paths every promotion
// route answers 404 with a clear error.
func TestPromotionsNotConfigured(t *testing.T) {
	url, client := servePromotions(t, nil)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/api/v1/promotions", ""},
		{"GET", "/api/v1/promotions/p1", ""},
		{"POST", "/api/v1/promotions/p1/approve", ""},
		{"POST", "/api/v1/promotions/p1/reject", ""},
		{"POST", "/api/v1/promotions", fmt.Sprintf(promoteJSON, "")},
	} {
		code, raw := callAPI(t, client, c.method, url+c.path, allToken, c.body)
		if code != http.StatusNotFound || !strings.Contains(raw, "promotion is not configured") {
			t.Errorf("%s %s: %d %s, want 404 promotion is not configured", c.method, c.path, code, raw)
		}
	}
}
