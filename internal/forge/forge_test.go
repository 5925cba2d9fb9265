package forge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mygitops/mgo/internal/outbound"
)

const token = "glpat-s3cret-t0ken-value"

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// mr is a merge request as the fake forges keep it.
type mr struct {
	Number                int
	Source, Target, Title string
	Description           string
	RemoveSource          bool
	State                 string // the forge's own word
	MergeCommit           string
}

// fakeForge holds the merge requests of one project and checks each
// request's auth.
type fakeForge struct {
	t    *testing.T
	mu   sync.Mutex
	mrs  []*mr
	seen []string // method and escaped path of each request
	srv  *httptest.Server
}

func (f *fakeForge) record(r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = append(f.seen, r.Method+" "+r.URL.EscapedPath())
}

func (f *fakeForge) set(number int, state, commit string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mrs[number-1].State, f.mrs[number-1].MergeCommit = state, commit
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// newGitLab serves /api/v4/projects/acme%2Fgitops/merge_requests like
// GitLab does.
func newGitLab(t *testing.T) *fakeForge {
	f := &fakeForge{t: t}
	const prefix = "/api/v4/projects/acme%2Fgitops/merge_requests"
	view := func(m *mr) map[string]any {
		v := map[string]any{"iid": m.Number, "state": m.State, "web_url": fmt.Sprintf("%s/acme/gitops/-/merge_requests/%d", f.srv.URL, m.Number),
			"sha": "source-head", "merge_commit_sha": nil}
		if m.MergeCommit != "" {
			v["merge_commit_sha"] = m.MergeCommit
		}
		return v
	}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.record(r)
		if r.Header.Get("PRIVATE-TOKEN") != token {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "401 Unauthorized"})
			return
		}
		path := r.URL.EscapedPath()
		if !strings.HasPrefix(path, prefix) {
			writeJSON(w, http.StatusNotFound, map[string]string{"message": "404 Project Not Found"})
			return
		}
		rest := strings.TrimPrefix(path, prefix)
		f.mu.Lock()
		defer f.mu.Unlock()
		switch {
		case r.Method == http.MethodPost && rest == "":
			var in struct {
				SourceBranch       string `json:"source_branch"`
				TargetBranch       string `json:"target_branch"`
				Title              string `json:"title"`
				Description        string `json:"description"`
				RemoveSourceBranch *bool  `json:"remove_source_branch"`
			}
			if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.SourceBranch == "" || in.TargetBranch == "" || in.Title == "" || in.RemoveSourceBranch == nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad body"})
				return
			}
			for _, m := range f.mrs {
				if m.Source == in.SourceBranch && m.State == "opened" {
					writeJSON(w, http.StatusConflict, map[string][]string{"message": {"Another open merge request already exists for this source branch: !" + strconv.Itoa(m.Number)}})
					return
				}
			}
			m := &mr{Number: len(f.mrs) + 1, Source: in.SourceBranch, Target: in.TargetBranch, Title: in.Title,
				Description: in.Description, RemoveSource: *in.RemoveSourceBranch, State: "opened"}
			f.mrs = append(f.mrs, m)
			writeJSON(w, http.StatusCreated, view(m))
		case r.Method == http.MethodGet && rest == "":
			q := r.URL.Query()
			out := []map[string]any{}
			for _, m := range f.mrs {
				if m.Source == q.Get("source_branch") && m.State == q.Get("state") && (q.Get("target_branch") == "" || q.Get("target_branch") == m.Target) {
					out = append(out, view(m))
				}
			}
			writeJSON(w, http.StatusOK, out)
		case r.Method == http.MethodGet && strings.HasPrefix(rest, "/"):
			n, err := strconv.Atoi(rest[1:])
			if err != nil || n < 1 || n > len(f.mrs) {
				writeJSON(w, http.StatusNotFound, map[string]string{"message": "404 Not found"})
				return
			}
			writeJSON(w, http.StatusOK, view(f.mrs[n-1]))
		default:
			writeJSON(w, http.StatusMethodNotAllowed, nil)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// newGitHub serves /repos/acme/gitops/pulls like GitHub does.
func newGitHub(t *testing.T) *fakeForge {
	f := &fakeForge{t: t}
	const prefix = "/repos/acme/gitops/pulls"
	view := func(m *mr) map[string]any {
		state, merged := m.State, false
		if state == "merged" {
			state, merged = "closed", true
		}
		return map[string]any{"number": m.Number, "state": state, "merged": merged,
			"merge_commit_sha": m.MergeCommit, "html_url": fmt.Sprintf("%s/acme/gitops/pull/%d", f.srv.URL, m.Number)}
	}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.record(r)
		if r.Header.Get("Authorization") != "Bearer "+token || r.Header.Get("Accept") != "application/vnd.github+json" ||
			r.Header.Get("X-GitHub-Api-Version") != "2022-11-28" {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Bad credentials"})
			return
		}
		path := r.URL.EscapedPath()
		if !strings.HasPrefix(path, prefix) {
			writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
			return
		}
		rest := strings.TrimPrefix(path, prefix)
		f.mu.Lock()
		defer f.mu.Unlock()
		switch {
		case r.Method == http.MethodPost && rest == "":
			var in struct{ Head, Base, Title, Body string }
			if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Head == "" || in.Base == "" || in.Title == "" {
				writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "Validation Failed"})
				return
			}
			for _, m := range f.mrs {
				if m.Source == in.Head && m.State == "open" {
					writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed",
						"errors": []map[string]string{{"message": "A pull request already exists for acme:" + in.Head + "."}}})
					return
				}
			}
			m := &mr{Number: len(f.mrs) + 1, Source: in.Head, Target: in.Base, Title: in.Title, Description: in.Body, State: "open",
				MergeCommit: "test-merge-sha"}
			f.mrs = append(f.mrs, m)
			writeJSON(w, http.StatusCreated, view(m))
		case r.Method == http.MethodGet && rest == "":
			q := r.URL.Query()
			out := []map[string]any{}
			for _, m := range f.mrs {
				if "acme:"+m.Source == q.Get("head") && m.State == q.Get("state") && (q.Get("base") == "" || q.Get("base") == m.Target) {
					out = append(out, view(m))
				}
			}
			writeJSON(w, http.StatusOK, out)
		case r.Method == http.MethodGet && strings.HasPrefix(rest, "/"):
			n, err := strconv.Atoi(rest[1:])
			if err != nil || n < 1 || n > len(f.mrs) {
				writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
				return
			}
			writeJSON(w, http.StatusOK, view(f.mrs[n-1]))
		default:
			writeJSON(w, http.StatusMethodNotAllowed, nil)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func newClient(t *testing.T, kind string, f *fakeForge, tok string) *Client {
	t.Helper()
	c, err := New(Config{Kind: kind, BaseURL: f.srv.URL + "/", Project: "acme/gitops", Token: tok, Client: f.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var request = MergeRequest{Branch: "mgo/promote/prod-1", Target: "main", Title: "Promote app 2.0.0 to prod", Description: "Merge to approve."}

func TestLifecycle(t *testing.T) {
	for _, tc := range []struct {
		kind     string
		fake     func(*testing.T) *fakeForge
		merged   string // the forge's word for merged, closed
		closed   string
		urlPart  string
		openPath string
	}{
		{GitLab, newGitLab, "merged", "closed", "/-/merge_requests/", "POST /api/v4/projects/acme%2Fgitops/merge_requests"},
		{GitHub, newGitHub, "merged", "closed", "/pull/", "POST /repos/acme/gitops/pulls"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			ctx := testContext(t)
			f := tc.fake(t)
			c := newClient(t, tc.kind, f, token)

			ref, err := c.Open(ctx, request)
			if err != nil {
				t.Fatal(err)
			}
			if ref.Number != 1 || !strings.Contains(ref.URL, tc.urlPart+"1") {
				t.Fatalf("Open = %+v", ref)
			}
			got := f.mrs[0]
			if got.Source != request.Branch || got.Target != request.Target || got.Title != request.Title || got.Description != request.Description {
				t.Fatalf("the forge got %+v", got)
			}
			if tc.kind == GitLab && !got.RemoveSource {
				t.Fatal("remove_source_branch was not asked for")
			}
			if f.seen[0] != tc.openPath {
				t.Fatalf("first request %q, want %q", f.seen[0], tc.openPath)
			}

			// Again: the open one is found, no second one is made.
			again, err := c.Open(ctx, request)
			if err != nil {
				t.Fatalf("open again: %v", err)
			}
			if again != ref || len(f.mrs) != 1 {
				t.Fatalf("open again = %+v with %d merge requests, want %+v and 1", again, len(f.mrs), ref)
			}

			st, err := c.State(ctx, ref.Number)
			if err != nil {
				t.Fatal(err)
			}
			if st != (State{State: StateOpen, URL: ref.URL}) {
				t.Fatalf("State = %+v, want open without a merge commit", st)
			}

			f.set(1, tc.merged, "abc123merge")
			if st, err = c.State(ctx, 1); err != nil || st != (State{State: StateMerged, MergeCommit: "abc123merge", URL: ref.URL}) {
				t.Fatalf("State after merge = %+v, %v", st, err)
			}

			// A second merge request, closed without merging.
			other := request
			other.Branch = "mgo/promote/prod-2"
			ref2, err := c.Open(ctx, other)
			if err != nil || ref2.Number != 2 {
				t.Fatalf("Open second = %+v, %v", ref2, err)
			}
			f.set(2, tc.closed, "")
			if st, err = c.State(ctx, 2); err != nil || st.State != StateClosed || st.MergeCommit != "" {
				t.Fatalf("State after close = %+v, %v", st, err)
			}

			_, err = c.State(ctx, 99)
			if he, ok := errors.AsType[*HTTPError](err); !ok || he.Status != http.StatusNotFound || !strings.Contains(err.Error(), "99") {
				t.Fatalf("State of a missing one: %v", err)
			}
		})
	}
}

func TestGitLabFastForwardMergeNamesSourceHead(t *testing.T) {
	ctx := testContext(t)
	f := newGitLab(t)
	c := newClient(t, GitLab, f, token)
	if _, err := c.Open(ctx, request); err != nil {
		t.Fatal(err)
	}
	f.set(1, "merged", "") // merge_commit_sha null
	st, err := c.State(ctx, 1)
	if err != nil || st.State != StateMerged || st.MergeCommit != "source-head" {
		t.Fatalf("State = %+v, %v", st, err)
	}
}

func TestUnauthorizedErrorHidesToken(t *testing.T) {
	for _, kind := range []string{GitLab, GitHub} {
		t.Run(kind, func(t *testing.T) {
			ctx := testContext(t)
			f := newGitLab(t)
			if kind == GitHub {
				f = newGitHub(t)
			}
			wrong := "wrong-" + token
			c := newClient(t, kind, f, wrong)
			for _, call := range []func() error{
				func() error { _, err := c.Open(ctx, request); return err },
				func() error { _, err := c.State(ctx, 1); return err },
			} {
				err := call()
				he, ok := errors.AsType[*HTTPError](err)
				if !ok || he.Status != http.StatusUnauthorized {
					t.Fatalf("err = %v, want a 401", err)
				}
				msg := err.Error()
				if !strings.Contains(msg, "401") || !strings.Contains(msg, "acme/gitops") {
					t.Fatalf("error %q does not say 401 and the project", msg)
				}
				if !strings.Contains(msg, "nauthorized") && !strings.Contains(msg, "Bad credentials") {
					t.Fatalf("error %q does not quote the answer", msg)
				}
				if strings.Contains(msg, token) {
					t.Fatalf("error %q holds the token", msg)
				}
			}
		})
	}
}

func TestErrorQuotesBoundedBodyWithoutToken(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, "token %s was\nrefused %s", r.Header.Get("PRIVATE-TOKEN"), strings.Repeat("x", 4000))
	}))
	defer srv.Close()
	c, err := New(Config{Kind: GitLab, BaseURL: srv.URL, Project: "42", Token: token, Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.State(testContext(t), 1)
	he, ok := errors.AsType[*HTTPError](err)
	if !ok || he.Status != 500 {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), token) || !strings.Contains(he.Body, "token [redacted] was refused") || len(he.Body) > maxErrorBody+4 {
		t.Fatalf("body quoted as %q", he.Body)
	}
}

func TestNewRefusesInvalidConfig(t *testing.T) {
	good := Config{Kind: GitLab, BaseURL: "https://gitlab.example.com", Project: "group/sub/project", Token: token, Client: http.DefaultClient}
	if _, err := New(good); err != nil {
		t.Fatal(err)
	}
	gh := good
	gh.Kind, gh.BaseURL, gh.Project = GitHub, "https://api.github.com", "acme/gitops"
	if _, err := New(gh); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		field string
		edit  func(*Config)
	}{
		{"kind", func(c *Config) { c.Kind = "bitbucket" }},
		{"kind", func(c *Config) { c.Kind = "" }},
		{"base URL", func(c *Config) { c.BaseURL = "" }},
		{"base URL", func(c *Config) { c.BaseURL = "ftp://gitlab.example.com" }},
		{"base URL", func(c *Config) { c.BaseURL = "https://" }},
		{"base URL", func(c *Config) { c.BaseURL = "https://user:pw@gitlab.example.com" }},
		{"base URL", func(c *Config) { c.BaseURL = "https://gitlab.example.com/?x=1" }},
		{"project", func(c *Config) { c.Project = "" }},
		{"project", func(c *Config) { c.Project = "group//project" }},
		{"project", func(c *Config) { c.Project = "group/../x" }},
		{"project", func(c *Config) { c.Kind, c.Project = GitHub, "owner" }},
		{"project", func(c *Config) { c.Kind, c.Project = GitHub, "owner/repo/extra" }},
		{"token", func(c *Config) { c.Token = "" }},
		{"token", func(c *Config) { c.Token = "a\nb" }},
		{"client", func(c *Config) { c.Client = nil }},
	} {
		cfg := good
		tc.edit(&cfg)
		_, err := New(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("New(%+v) err = %v, want one naming %s", cfg, err, tc.field)
		}
		if err != nil && cfg.Token != "" && strings.Contains(err.Error(), cfg.Token) {
			t.Errorf("error %q holds the token", err)
		}
	}
	c, _ := New(good)
	for _, bad := range []MergeRequest{{Target: "main", Title: "t"}, {Branch: "b", Title: "t"}, {Branch: "b", Target: "main"}, {Branch: "main", Target: "main", Title: "t"}} {
		if _, err := c.Open(context.Background(), bad); err == nil {
			t.Errorf("Open(%+v) succeeded", bad)
		}
	}
	if _, err := c.State(context.Background(), 0); err == nil {
		t.Error("State(0) succeeded")
	}
}

func TestRequestsGoThroughTheGivenClient(t *testing.T) {
	f := newGitLab(t)
	ctx := testContext(t)
	// A client whose allow list does not let it reach the loopback server.
	refusing, err := outbound.Parse(outbound.Checks, []string{"gitlab.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Kind: GitLab, BaseURL: f.srv.URL, Project: "acme/gitops", Token: token, Client: refusing.Client(5 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Open(ctx, request)
	if _, refused := errors.AsType[*outbound.RefusedError](err); !refused || strings.Contains(err.Error(), token) {
		t.Fatalf("err = %v, want the allow list's refusal", err)
	}
	if len(f.seen) != 0 {
		t.Fatalf("the forge got %v", f.seen)
	}
	// Allowing the loopback CIDR lets it through.
	allowing, err := outbound.Parse(outbound.Checks, []string{"127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	c, err = New(Config{Kind: GitLab, BaseURL: f.srv.URL, Project: "acme/gitops", Token: token, Client: allowing.Client(5 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if ref, err := c.Open(ctx, request); err != nil || ref.Number != 1 {
		t.Fatalf("Open = %+v, %v", ref, err)
	}
}
