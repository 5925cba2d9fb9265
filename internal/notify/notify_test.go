package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"

	"github.com/mygitops/mgo/internal/logtest"
	"github.com/mygitops/mgo/internal/repo"
)

// hit is one request a receiver got.
type hit struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

// receiver is a local HTTP server standing in for Slack, a webhook or a
// forge API; answer decides the status and body of each request.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	hits   []hit
	got    chan hit
	answer func(h hit) (int, string)
}

func newReceiver(t *testing.T, tls bool, answer func(h hit) (int, string)) *receiver {
	r := &receiver{got: make(chan hit, 100), answer: answer}
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		h := hit{Method: req.Method, Path: req.URL.EscapedPath(), Header: req.Header.Clone(), Body: b}
		r.mu.Lock()
		r.hits = append(r.hits, h)
		r.mu.Unlock()
		r.got <- h
		code, body := http.StatusOK, "ok"
		if r.answer != nil {
			code, body = r.answer(h)
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	})
	if tls {
		r.Server = httptest.NewTLSServer(h)
	} else {
		r.Server = httptest.NewServer(h)
	}
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) next(t *testing.T) hit {
	t.Helper()
	select {
	case h := <-r.got:
		return h
	case <-time.After(10 * time.Second):
		t.Fatal("the receiver got nothing")
		return hit{}
	}
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.hits)
}

// start runs a Dispatcher with these notification settings; client is
// the HTTP client (a TLS receiver's).
func start(t *testing.T, n repo.Notifications, client *http.Client, tune func(*Options)) (*Dispatcher, *Metrics, *logtest.Buffer) {
	t.Helper()
	logs := &logtest.Buffer{}
	m := NewMetrics(nil)
	o := Options{
		Config:      func(context.Context) (repo.Notifications, error) { return n, nil },
		ExternalURL: "https://mgo.acme.io/",
		Client:      client,
		Backoff:     5 * time.Millisecond,
		Log:         slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:     m,
	}
	if tune != nil {
		tune(&o)
	}
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go d.Run(ctx)
	return d, m, logs
}

func route(receivers ...string) repo.Route { return repo.Route{Receivers: receivers} }

const sha = "0123456789abcdef0123456789abcdef01234567"

func deployEvent(typ, cluster string) Event {
	ok := !strings.HasSuffix(typ, ".failed")
	ev := Event{Type: typ, Cluster: cluster, Success: ok, DeploymentID: "20261130T120000Z-abcd1234",
		TriggerRepo: "gitlab.com/acme/app", Project: "acme/app", Image: "registry.acme.io/acme/app:1.4.2",
		Commit: "fedcba9876543210fedcba9876543210fedcba98", SourceCommit: sha, Author: "Ada <ada@acme.io>", Requester: "ci-app",
		Summary:  "deployed registry.acme.io/acme/app:1.4.2 to " + cluster + "/web",
		Releases: []Release{{Name: "web", Namespace: "app", Action: "upgraded", Revision: 3}},
		Seconds:  map[string]float64{"committed": 0.4, "total": 12.5}}
	if !ok {
		ev.Stage, ev.Error = "rollout", "rollout failed: app/web: Deployment app/web: 0 of 1 ready"
		ev.Summary = "deploy of registry.acme.io/acme/app:1.4.2 to " + cluster + "/web failed at rollout"
	}
	return ev
}

func counter(m *Metrics, receiver, result string) float64 {
	var out dto.Metric
	if err := m.Notifications.WithLabelValues(receiver, result).Write(&out); err != nil {
		panic(err)
	}
	return out.GetCounter().GetValue()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestWebhookSignedJSON(t *testing.T) {
	t.Setenv("MGO_CHART_HOOK_SECRET", "s3cret-key")
	rcv := newReceiver(t, false, nil)
	d, m, logs := start(t, repo.Notifications{
		Receivers: []repo.Receiver{{Name: "audit", Type: repo.ReceiverWebhook, URL: rcv.URL + "/hook", SecretEnv: "MGO_CHART_HOOK_SECRET"}},
		Routes:    []repo.Route{route("audit")},
	}, nil, nil)
	d.Notify(deployEvent(DeployFailed, "prod"))
	h := rcv.next(t)
	if h.Method != http.MethodPost || h.Path != "/hook" || h.Header.Get("Content-Type") != "application/json" ||
		h.Header.Get(EventHeader) != DeployFailed || h.Header.Get(DeliveryHeader) == "" {
		t.Errorf("request %s %s %v", h.Method, h.Path, h.Header)
	}
	if !Verify([]byte("s3cret-key"), h.Body, h.Header.Get(SignatureHeader)) {
		t.Errorf("signature %q does not verify", h.Header.Get(SignatureHeader))
	}
	if Verify([]byte("other"), h.Body, h.Header.Get(SignatureHeader)) || Verify([]byte("s3cret-key"), append(h.Body, ' '), h.Header.Get(SignatureHeader)) {
		t.Error("a wrong key or a changed body verifies")
	}
	var ev Event
	if err := json.Unmarshal(h.Body, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != DeployFailed || ev.Cluster != "prod" || ev.Success || ev.Stage != "rollout" || ev.DeploymentID != "20261130T120000Z-abcd1234" ||
		ev.Image != "registry.acme.io/acme/app:1.4.2" || ev.URL != "https://mgo.acme.io/ui/#/deployments/20261130T120000Z-abcd1234" ||
		len(ev.Releases) != 1 || ev.Releases[0].Name != "web" || ev.Seconds["total"] != 12.5 || ev.Time.IsZero() {
		t.Errorf("event %+v", ev)
	}
	waitFor(t, "the sent metric", func() bool { return counter(m, "audit", "sent") == 1 })
	if strings.Contains(logs.String(), "s3cret-key") {
		t.Error("the secret is in the log")
	}
}

func TestSlackBlockKit(t *testing.T) {
	rcv := newReceiver(t, true, nil)
	t.Setenv("MGO_CHART_SLACK_URL", rcv.URL+"/services/T000/B000/XXXX")
	d, _, _ := start(t, repo.Notifications{
		Receivers: []repo.Receiver{{Name: "chat", Type: repo.ReceiverSlack, URLEnv: "MGO_CHART_SLACK_URL"}},
		Routes:    []repo.Route{route("chat")},
	}, rcv.Client(), nil)
	for _, typ := range []string{DeploySucceeded, DeployFailed} {
		d.Notify(deployEvent(typ, "prod"))
		h := rcv.next(t)
		if h.Method != http.MethodPost || h.Path != "/services/T000/B000/XXXX" || h.Header.Get("Content-Type") != "application/json" {
			t.Errorf("request %s %s", h.Method, h.Path)
		}
		var msg struct {
			Text        string `json:"text"`
			Attachments []struct {
				Color  string `json:"color"`
				Blocks []struct {
					Type     string            `json:"type"`
					Text     map[string]string `json:"text"`
					Fields   []map[string]string
					Elements []map[string]any `json:"elements"`
				} `json:"blocks"`
			} `json:"attachments"`
		}
		if err := json.Unmarshal(h.Body, &msg); err != nil {
			t.Fatal(err)
		}
		if len(msg.Attachments) != 1 || !strings.Contains(msg.Text, "registry.acme.io/acme/app:1.4.2") {
			t.Fatalf("%s: message %s", typ, h.Body)
		}
		a := msg.Attachments[0]
		var types []string
		for _, b := range a.Blocks {
			types = append(types, b.Type)
		}
		wantTypes := "header,section,section,context,actions"
		wantColor := "#2eb886"
		if typ == DeployFailed {
			wantTypes, wantColor = "header,section,section,section,context,actions", "#d00000"
		}
		if strings.Join(types, ",") != wantTypes || a.Color != wantColor {
			t.Errorf("%s: blocks %v colour %s", typ, types, a.Color)
		}
		if a.Blocks[0].Text["type"] != "plain_text" || a.Blocks[0].Text["text"] != typ+" on prod" {
			t.Errorf("%s: header %v", typ, a.Blocks[0].Text)
		}
		body := string(h.Body)
		for _, want := range []string{"*Cluster*\\nprod", "app/web (upgraded)", "fedcba987654", "Ada", "ci-app", "20261130T120000Z-abcd1234",
			"https://mgo.acme.io/ui/#/deployments/20261130T120000Z-abcd1234", `"mrkdwn"`} {
			if !strings.Contains(body, want) {
				t.Errorf("%s: message lacks %s: %s", typ, want, body)
			}
		}
		if typ == DeployFailed && !strings.Contains(body, "failed at stage *rollout*: rollout failed: app/web") {
			t.Errorf("failed message lacks the stage and error: %s", body)
		}
	}
}

func TestGitLabCommitStatus(t *testing.T) {
	t.Setenv("MGO_CHART_GITLAB_TOKEN", "glpat-XYZ")
	rcv := newReceiver(t, true, func(hit) (int, string) { return http.StatusCreated, `{"id": 1}` })
	d, m, _ := start(t, repo.Notifications{
		Receivers: []repo.Receiver{{Name: "gl", Type: repo.ReceiverGitLab, URL: rcv.URL, TokenEnv: "MGO_CHART_GITLAB_TOKEN"}},
		Routes:    []repo.Route{route("gl")},
	}, rcv.Client(), nil)
	noSource := deployEvent(DeploySucceeded, "prod")
	noSource.SourceCommit = ""
	d.Notify(noSource) // nothing to report on: not sent
	d.Notify(Event{Type: DriftDetected, Cluster: "prod"})
	for _, c := range []struct{ typ, state string }{{DeploySucceeded, "success"}, {DeployFailed, "failed"}} {
		d.Notify(deployEvent(c.typ, "prod"))
		h := rcv.next(t)
		if h.Method != http.MethodPost || h.Path != "/api/v4/projects/acme%2Fapp/statuses/"+sha || h.Header.Get("PRIVATE-TOKEN") != "glpat-XYZ" {
			t.Errorf("request %s %s token %q", h.Method, h.Path, h.Header.Get("PRIVATE-TOKEN"))
		}
		var body map[string]string
		if err := json.Unmarshal(h.Body, &body); err != nil {
			t.Fatal(err)
		}
		if body["state"] != c.state || body["name"] != "mgo/prod" || body["target_url"] != "https://mgo.acme.io/ui/#/deployments/20261130T120000Z-abcd1234" ||
			!strings.Contains(body["description"], "registry.acme.io/acme/app:1.4.2") {
			t.Errorf("body %v", body)
		}
	}
	waitFor(t, "two sent", func() bool { return counter(m, "gl", "sent") == 2 })
	if n := rcv.count(); n != 2 {
		t.Errorf("the forge got %d requests, want 2 (none for events without a source commit)", n)
	}
}

func TestGitHubDeploymentStatus(t *testing.T) {
	t.Setenv("MGO_CHART_GITHUB_TOKEN", "ghs_XYZ")
	var mu sync.Mutex
	statusCalls := 0
	rcv := newReceiver(t, true, func(h hit) (int, string) {
		if h.Method == http.MethodGet {
			return http.StatusOK, `[]` // no deployment was created when the deploy started
		}
		if strings.HasSuffix(h.Path, "/deployments") {
			return http.StatusCreated, `{"id": 42, "sha": "` + sha + `"}`
		}
		mu.Lock()
		defer mu.Unlock()
		if statusCalls++; statusCalls == 1 {
			return http.StatusBadGateway, "try again"
		}
		return http.StatusCreated, `{"id": 1}`
	})
	d, m, _ := start(t, repo.Notifications{
		Receivers: []repo.Receiver{{Name: "gh", Type: repo.ReceiverGitHub, URL: rcv.URL + "/api/v3", TokenEnv: "MGO_CHART_GITHUB_TOKEN"}},
		Routes:    []repo.Route{route("gh")},
	}, rcv.Client(), nil)
	d.Notify(deployEvent(DeployFailed, "prod"))
	if list := rcv.next(t); list.Method != http.MethodGet || list.Path != "/api/v3/repos/acme/app/deployments" {
		t.Errorf("lookup: %s %s", list.Method, list.Path)
	}
	created := rcv.next(t)
	if created.Method != http.MethodPost || created.Path != "/api/v3/repos/acme/app/deployments" ||
		created.Header.Get("Authorization") != "Bearer ghs_XYZ" || created.Header.Get("Accept") != "application/vnd.github+json" {
		t.Errorf("create: %s %s %v", created.Method, created.Path, created.Header)
	}
	var dep map[string]any
	if err := json.Unmarshal(created.Body, &dep); err != nil {
		t.Fatal(err)
	}
	if dep["ref"] != sha || dep["environment"] != "prod" || dep["auto_merge"] != false {
		t.Errorf("deployment %v", dep)
	}
	for i := range 2 { // the first status answer is 502: retried without a second deployment
		h := rcv.next(t)
		if h.Path != "/api/v3/repos/acme/app/deployments/42/statuses" || h.Header.Get("Authorization") != "Bearer ghs_XYZ" {
			t.Errorf("status %d: %s %s", i, h.Method, h.Path)
		}
		var st map[string]string
		if err := json.Unmarshal(h.Body, &st); err != nil {
			t.Fatal(err)
		}
		if st["state"] != "failure" || st["environment"] != "prod" || st["log_url"] != "https://mgo.acme.io/ui/#/deployments/20261130T120000Z-abcd1234" {
			t.Errorf("status %v", st)
		}
	}
	waitFor(t, "sent", func() bool { return counter(m, "gh", "sent") == 1 })
	if counter(m, "gh", "retried") != 1 || rcv.count() != 4 {
		t.Errorf("retried %v, requests %d", counter(m, "gh", "retried"), rcv.count())
	}
}

func TestRetriesThenDrop(t *testing.T) {
	rcv := newReceiver(t, true, func(hit) (int, string) { return http.StatusInternalServerError, "down" })
	t.Setenv("MGO_CHART_SLACK_URL", rcv.URL+"/services/T000/B000/TOPSECRETPART")
	d, m, logs := start(t, repo.Notifications{
		Receivers: []repo.Receiver{{Name: "chat", Type: repo.ReceiverSlack, URLEnv: "MGO_CHART_SLACK_URL"}},
		Routes:    []repo.Route{route("chat")},
	}, rcv.Client(), func(o *Options) { o.Attempts = 3 })
	d.Notify(deployEvent(DeploySucceeded, "prod"))
	waitFor(t, "the drop", func() bool { return counter(m, "chat", "dropped") == 1 })
	if n := rcv.count(); n != 3 || counter(m, "chat", "retried") != 2 || counter(m, "chat", "sent") != 0 {
		t.Errorf("requests %d, retried %v", n, counter(m, "chat", "retried"))
	}
	out := logs.String()
	if !strings.Contains(out, "notification dropped") || !strings.Contains(out, "answered 500") {
		t.Errorf("log:\n%s", out)
	}
	if strings.Contains(out, "TOPSECRETPART") {
		t.Errorf("the Slack URL is in the log:\n%s", out)
	}
}

func TestHangingReceiverDoesNotDelayNotify(t *testing.T) {
	release := make(chan struct{})
	rcv := newReceiver(t, false, func(hit) (int, string) { <-release; return http.StatusOK, "" })
	t.Cleanup(func() { close(release) }) // runs before the server closes
	d, m, _ := start(t, repo.Notifications{
		Receivers: []repo.Receiver{{Name: "slow", Type: repo.ReceiverWebhook, URL: rcv.URL}},
		Routes:    []repo.Route{route("slow")},
	}, nil, func(o *Options) { o.Workers, o.QueueSize, o.AttemptTimeout = 1, 4, time.Minute })
	d.Notify(deployEvent(DeploySucceeded, "prod"))
	rcv.next(t) // the worker now hangs on the receiver
	// While the receiver still hangs (it is released only at cleanup),
	// 200 more events must all be handed over: Notify never waits for a
	// delivery.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			d.Notify(deployEvent(DeploySucceeded, "prod"))
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Notify waits for a hanging receiver")
	}
	waitFor(t, "drops of a full queue", func() bool {
		return counter(m, "", "dropped")+counter(m, "slow", "dropped") > 0
	})
}

func TestRoutes(t *testing.T) {
	staging, prod := newReceiver(t, false, nil), newReceiver(t, false, nil)
	d, m, _ := start(t, repo.Notifications{
		Receivers: []repo.Receiver{
			{Name: "staging-hook", Type: repo.ReceiverWebhook, URL: staging.URL},
			{Name: "prod-failures", Type: repo.ReceiverWebhook, URL: prod.URL},
		},
		Routes: []repo.Route{
			{Clusters: []string{"staging"}, Receivers: []string{"staging-hook"}},
			{Clusters: []string{"prod"}, Events: []string{DeployFailed}, Receivers: []string{"prod-failures"}},
		},
	}, nil, nil)
	d.Notify(deployEvent(DeploySucceeded, "prod"))
	d.Notify(deployEvent(DeployFailed, "prod"))
	d.Notify(deployEvent(DeploySucceeded, "staging"))
	d.Notify(Event{Type: DriftDetected, Cluster: "prod"})
	waitFor(t, "two sent", func() bool { return counter(m, "staging-hook", "sent")+counter(m, "prod-failures", "sent") == 2 })
	time.Sleep(50 * time.Millisecond) // anything misrouted would arrive by now
	var ev Event
	if h := staging.next(t); json.Unmarshal(h.Body, &ev) != nil || ev.Cluster != "staging" || ev.Type != DeploySucceeded {
		t.Errorf("staging got %s", h.Body)
	}
	if h := prod.next(t); json.Unmarshal(h.Body, &ev) != nil || ev.Cluster != "prod" || ev.Type != DeployFailed {
		t.Errorf("prod got %s", h.Body)
	}
	if staging.count() != 1 || prod.count() != 1 {
		t.Errorf("staging got %d, prod got %d; want 1 each", staging.count(), prod.count())
	}
}

func TestUnusableReceiverIsDroppedWithoutItsSecret(t *testing.T) {
	t.Setenv("NOT_ALLOWED_SECRET", "leak-me")
	rcv := newReceiver(t, false, nil)
	d, m, logs := start(t, repo.Notifications{
		Receivers: []repo.Receiver{{Name: "hook", Type: repo.ReceiverWebhook, URL: rcv.URL, SecretEnv: "NOT_ALLOWED_SECRET"}},
		Routes:    []repo.Route{route("hook")},
	}, nil, nil)
	d.Notify(deployEvent(DeploySucceeded, "prod"))
	waitFor(t, "the drop", func() bool { return counter(m, "hook", "dropped") == 1 })
	if out := logs.String(); !strings.Contains(out, "NOT_ALLOWED_SECRET: refused") || strings.Contains(out, "leak-me") {
		t.Errorf("log:\n%s", out)
	}
	if rcv.count() != 0 {
		t.Error("sent unsigned")
	}
}

func TestSlackMessageStaysWithinBlockKitLimits(t *testing.T) {
	ev := deployEvent(DeployFailed, strings.Repeat("c", 200))
	for i := range 500 {
		ev.Releases = append(ev.Releases, Release{Name: fmt.Sprintf("release-%03d", i), Namespace: "ns"})
	}
	ev.Error = strings.Repeat("é", 5000)
	b, err := json.Marshal(slackMessage(ev))
	if err != nil {
		t.Fatal(err)
	}
	var msg struct {
		Attachments []struct {
			Blocks []struct {
				Type   string            `json:"type"`
				Text   map[string]string `json:"text"`
				Fields []map[string]string
			} `json:"blocks"`
		} `json:"attachments"`
	}
	if err := json.Unmarshal(b, &msg); err != nil {
		t.Fatal(err)
	}
	for _, bl := range msg.Attachments[0].Blocks {
		limit := 3000
		if bl.Type == "header" {
			limit = 150
		}
		if n := len([]rune(bl.Text["text"])); n > limit {
			t.Errorf("%s text of %d characters", bl.Type, n)
		}
		if len(bl.Fields) > 10 {
			t.Errorf("%d fields", len(bl.Fields))
		}
		for _, f := range bl.Fields {
			if n := len([]rune(f["text"])); n > 2000 {
				t.Errorf("a field of %d characters", n)
			}
		}
	}
	if !utf8.Valid(b) {
		t.Error("invalid UTF-8")
	}
}

// fakeGitHub keeps deployments and their statuses as GitHub's REST API does.
type fakeGitHub struct {
	mu       sync.Mutex
	deps     []map[string]any
	statuses map[string][]string // deployment id: states in order
	queries  []string
}

func (g *fakeGitHub) handle(h hit) (int, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case h.Method == http.MethodGet && h.Path == "/repos/acme/app/deployments":
		b, _ := json.Marshal(g.deps)
		return http.StatusOK, string(b)
	case h.Method == http.MethodPost && h.Path == "/repos/acme/app/deployments":
		var dep map[string]any
		if err := json.Unmarshal(h.Body, &dep); err != nil {
			return http.StatusUnprocessableEntity, err.Error()
		}
		dep["id"] = len(g.deps) + 100
		g.deps = append(g.deps, dep)
		b, _ := json.Marshal(dep)
		return http.StatusCreated, string(b)
	case h.Method == http.MethodPost && strings.HasPrefix(h.Path, "/repos/acme/app/deployments/") && strings.HasSuffix(h.Path, "/statuses"):
		id := strings.TrimSuffix(strings.TrimPrefix(h.Path, "/repos/acme/app/deployments/"), "/statuses")
		var st map[string]any
		_ = json.Unmarshal(h.Body, &st)
		g.statuses[id] = append(g.statuses[id], fmt.Sprint(st["state"]))
		return http.StatusCreated, `{"id": 1}`
	}
	return http.StatusNotFound, "not found"
}

// A deploy that names its source commit shows on the forge as pending when
// it starts and then as its outcome: GitLab gets a pending then a success
// status; GitHub gets one deployment whose statuses go pending, success.
// Chat receivers on the same route hear only the outcome.
func TestForgesSeePendingThenOutcome(t *testing.T) {
	t.Setenv("MGO_CHART_GITHUB_TOKEN", "ghs_XYZ")
	t.Setenv("MGO_CHART_GITLAB_TOKEN", "glpat-XYZ")
	gh := &fakeGitHub{statuses: map[string][]string{}}
	ghRcv := newReceiver(t, true, gh.handle)
	var glStates []string
	var glMu sync.Mutex
	glRcv := newReceiver(t, true, func(h hit) (int, string) {
		var body map[string]any
		_ = json.Unmarshal(h.Body, &body)
		glMu.Lock()
		glStates = append(glStates, fmt.Sprint(body["state"]))
		glMu.Unlock()
		return http.StatusCreated, "{}"
	})
	slackRcv := newReceiver(t, true, nil)
	t.Setenv("MGO_CHART_SLACK_URL", slackRcv.URL)
	client := ghRcv.Client() // every httptest TLS server shares its certificate
	d, m, _ := start(t, repo.Notifications{
		Receivers: []repo.Receiver{
			{Name: "gh", Type: repo.ReceiverGitHub, URL: ghRcv.URL, TokenEnv: "MGO_CHART_GITHUB_TOKEN"},
			{Name: "gl", Type: repo.ReceiverGitLab, URL: glRcv.URL, TokenEnv: "MGO_CHART_GITLAB_TOKEN"},
			{Name: "chat", Type: repo.ReceiverSlack, URLEnv: "MGO_CHART_SLACK_URL"},
		},
		Routes: []repo.Route{{Events: []string{DeploySucceeded, DeployFailed}, Receivers: []string{"gh", "gl", "chat"}}},
	}, client, nil)

	started := deployEvent(DeploySucceeded, "prod")
	started.Type, started.Success, started.Summary = DeployStarted, false, "deploying registry.acme.io/acme/app:1.4.2 to prod"
	d.Notify(started)
	d.Notify(deployEvent(DeploySucceeded, "prod"))

	waitFor(t, "both forges told twice", func() bool {
		return counter(m, "gh", "sent") == 2 && counter(m, "gl", "sent") == 2 && counter(m, "chat", "sent") == 1
	})
	glMu.Lock()
	if strings.Join(glStates, ",") != "pending,success" {
		t.Errorf("GitLab states %v, want pending then success", glStates)
	}
	glMu.Unlock()
	gh.mu.Lock()
	defer gh.mu.Unlock()
	if len(gh.deps) != 1 {
		t.Fatalf("GitHub deployments %v, want one", gh.deps)
	}
	if got := gh.statuses["100"]; strings.Join(got, ",") != "pending,success" {
		t.Errorf("GitHub statuses %v, want pending then success on the one deployment", gh.statuses)
	}
	if slackRcv.count() != 1 {
		t.Errorf("the chat receiver got %d messages, want only the outcome", slackRcv.count())
	}
}

// Other chat systems go through shoutrrr: a Mattermost incoming webhook
// (served here over plain HTTP) gets the event as text with its details.
// A receiver that fails is retried and dropped, and its token, which is
// part of the service URL, never appears in a log line.
func TestShoutrrrChat(t *testing.T) {
	const token = "mmtoken7x9q2w"
	var failing bool
	var mu sync.Mutex
	rcv := newReceiver(t, false, func(hit) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return http.StatusInternalServerError, "down"
		}
		return http.StatusOK, "ok"
	})
	host := strings.TrimPrefix(rcv.URL, "http://")
	t.Setenv("MGO_CHART_MATTERMOST_URL", "mattermost://mgo@"+host+"/"+token+"?disabletls=yes")
	d, m, logs := start(t, repo.Notifications{
		Receivers: []repo.Receiver{{Name: "mm", Type: repo.ReceiverShoutrrr, URLEnv: "MGO_CHART_MATTERMOST_URL"}},
		Routes:    []repo.Route{route("mm")},
	}, nil, nil)

	d.Notify(deployEvent(DeployFailed, "prod"))
	h := rcv.next(t)
	if h.Method != http.MethodPost || h.Path != "/hooks/"+token {
		t.Errorf("request: %s %s", h.Method, h.Path)
	}
	var body struct{ Text, Username string }
	if err := json.Unmarshal(h.Body, &body); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"❌ deploy of registry.acme.io/acme/app:1.4.2 to prod/web failed at rollout",
		"Cluster: prod", "Releases: app/web (upgraded)", "Failed at: rollout", "0 of 1 ready", "Author: Ada <ada@acme.io>",
		"Times: committed 0.4s · total 12.5s", "Link: https://mgo.acme.io/ui/#/deployments/20261130T120000Z-abcd1234"} {
		if !strings.Contains(body.Text, want) {
			t.Errorf("message lacks %q:\n%s", want, body.Text)
		}
	}
	if body.Username != "mgo" {
		t.Errorf("username %q", body.Username)
	}
	waitFor(t, "sent", func() bool { return counter(m, "mm", "sent") == 1 })

	mu.Lock()
	failing = true
	mu.Unlock()
	d.Notify(deployEvent(DeploySucceeded, "prod"))
	waitFor(t, "the drop", func() bool { return counter(m, "mm", "dropped") == 1 })
	if counter(m, "mm", "retried") != 4 {
		t.Errorf("retried %v times, want 4", counter(m, "mm", "retried"))
	}
	if out := logs.String(); strings.Contains(out, token) || !strings.Contains(out, "notification dropped") {
		t.Errorf("log:\n%s", out)
	}
}

// redact takes every credential-like part of a service URL out of an
// error, whichever way the library quoted it.
func TestRedact(t *testing.T) {
	secret := "telegram://123456:ABCdefGHI@telegram?chats=@mgo_deploys,-100123456"
	err := redact(fmt.Errorf("posting to https://api.telegram.org/bot123456:ABCdefGHI/sendMessage for %s: 401", secret), secret)
	for _, leak := range []string{"123456:ABCdefGHI", "@mgo_deploys"} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("%q left in %q", leak, err)
		}
	}
	if !strings.Contains(err.Error(), "401") {
		t.Errorf("the cause is gone: %q", err)
	}
}

// Flush waits for what was notified to be delivered (mgo serve calls it at
// shutdown), and gives up when its context ends while a receiver hangs.
func TestFlush(t *testing.T) {
	release := make(chan struct{})
	rcv := newReceiver(t, false, func(h hit) (int, string) {
		if strings.Contains(string(h.Body), "hang") {
			<-release
		}
		return http.StatusOK, "ok"
	})
	t.Cleanup(func() { close(release) })
	d, m, _ := start(t, repo.Notifications{
		Receivers: []repo.Receiver{{Name: "hook", Type: repo.ReceiverWebhook, URL: rcv.URL}},
		Routes:    []repo.Route{route("hook")},
	}, nil, nil)
	if err := d.Flush(t.Context()); err != nil {
		t.Fatalf("nothing to flush: %v", err)
	}
	for range 3 {
		d.Notify(deployEvent(DeploySucceeded, "prod"))
	}
	if err := d.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := counter(m, "hook", "sent"); got != 3 {
		t.Errorf("after Flush: %v sent, want 3", got)
	}
	for range 3 {
		rcv.next(t)
	}

	ev := deployEvent(DeploySucceeded, "prod")
	ev.Summary = "hang"
	d.Notify(ev)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		rcv.next(t) // both requests arrived, one of them hangs
		rcv.next(t)
		cancel()
	}()
	d.Notify(deployEvent(DeploySucceeded, "prod"))
	if err := d.Flush(ctx); err == nil || !strings.Contains(err.Error(), "still being delivered") {
		t.Errorf("Flush with a hanging receiver: %v", err)
	}
}
