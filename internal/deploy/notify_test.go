package deploy

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mygitops/mgo/internal/notify"
	"github.com/mygitops/mgo/internal/reconcile"
)

// recorder is a Notifier that keeps the events.
type recorder struct {
	mu     sync.Mutex
	events []notify.Event
}

func (r *recorder) Notify(ev notify.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

// wait returns the events once there are n (the event follows the answer).
func (r *recorder) wait(t *testing.T, n int) []notify.Event {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); len(r.all()) < n && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	return r.all()
}

func (r *recorder) all() []notify.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notify.Event(nil), r.events...)
}

func TestDeployAndRollbackNotify(t *testing.T) {
	rec := &recorder{}
	f := newFixture(t, fixtureOptions{notifier: rec})
	f.run(t)
	req := request("1.5.0", "")
	req.SourceCommit = "  0123456789ABCDEF  "
	if _, err := f.deploy(t, req); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "sourceCommit") {
		t.Fatalf("an upper-case source commit: %v, want a sourceCommit field error", err)
	}
	req.SourceCommit = "0123456789abcdef0123456789abcdef01234567"
	d, err := f.deploy(t, req)
	if err != nil || d.Status != Succeeded {
		t.Fatalf("deploy: %+v %v", d, err)
	}
	evs := rec.wait(t, 2)
	if len(evs) != 2 {
		t.Fatalf("events %+v, want the start and the outcome", evs)
	}
	if st := evs[0]; st.Type != notify.DeployStarted || st.Success || st.DeploymentID != d.ID || st.SourceCommit != req.SourceCommit ||
		st.Project != "acme/app" || st.Commit != "" || st.Summary != "deploying registry.acme.io/acme/app:1.5.0 to prod" {
		t.Errorf("start event %+v", st)
	}
	ev := evs[1]
	if ev.Type != notify.DeploySucceeded || !ev.Success || ev.Cluster != "prod" || ev.DeploymentID != d.ID || ev.Commit != d.Commit ||
		ev.SourceCommit != req.SourceCommit || ev.Project != "acme/app" || ev.Image != "registry.acme.io/acme/app:1.5.0" ||
		ev.Author != "Alice <alice@acme.io>" || ev.Requester != "ci" || ev.Seconds["total"] <= 0 || ev.Time.IsZero() ||
		!strings.Contains(ev.Summary, "deployed registry.acme.io/acme/app:1.5.0 to prod") || !strings.Contains(ev.Summary, "syncs manually") {
		t.Errorf("event %+v", ev)
	}

	rb, err := f.svc.Rollback(testContext(t), d.ID, "ops", "Olga <olga@acme.io>")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Wait(testContext(t), rb.ID); err != nil {
		t.Fatal(err)
	}
	evs = rec.wait(t, 3) // a rollback has no start event: it names no source commit
	if len(evs) != 3 || evs[2].Type != notify.RollbackSucceeded || evs[2].RollbackOf != d.ID || evs[2].SourceCommit != "" ||
		!strings.Contains(evs[2].Summary, "rolled back deployment "+d.ID) {
		t.Errorf("rollback event %+v", evs[len(evs)-1])
	}
}

func TestDeploymentEventOfAFailure(t *testing.T) {
	q := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	d := &Deployment{ID: "x", Kind: KindDeploy, Status: Failed, Stage: StageRollout, Error: "rollout failed: app/web: not ready",
		Request: Request{Cluster: "prod", TriggerRepo: "github.com/acme/app", ImageRepo: "ghcr.io/acme/app", Tag: "2",
			Identity: Identity{Project: "acme/app-from-oidc"}},
		Releases: []ReleaseOutcome{{Name: "web", Namespace: "app", Action: reconcile.Failed, Stage: reconcile.StageWait, Error: "not ready"}},
		Times:    Times{Queued: q, Committed: q.Add(time.Second), Finished: q.Add(10 * time.Second)}}
	ev := deploymentEvent(d)
	if ev.Type != notify.DeployFailed || ev.Success || ev.Stage != "rollout" || ev.Error != d.Error || ev.Project != "acme/app-from-oidc" ||
		len(ev.Releases) != 1 || ev.Releases[0].Error != "not ready" || ev.Seconds["committed"] != 1 || ev.Seconds["total"] != 10 ||
		ev.Summary != "deploy of ghcr.io/acme/app:2 to prod/web failed at rollout" {
		t.Errorf("event %+v", ev)
	}
	for tr, want := range map[string]string{"gitlab.com/acme/group/app": "acme/group/app", "acme/app": "acme/app", "app": "app"} {
		if got := project(Request{TriggerRepo: tr}); got != want {
			t.Errorf("project(%s) = %s, want %s", tr, got, want)
		}
	}
}
