package reconcile

import (
	"context"
	"strconv"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	helmcommon "helm.sh/helm/v4/pkg/release/common"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
)

// leavePending stores a new revision of a release in Helm's storage with a
// pending status, as Helm does at the start of an action: what a Helm
// action killed before its end leaves behind.
func leavePending(t *testing.T, e *Engine, ns, name string, status helmcommon.Status, at time.Time, labels map[string]string) {
	t.Helper()
	cfg, err := e.cluster.Helm(ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	last, err := lastRelease(cfg, name)
	if err != nil {
		t.Fatal(err)
	}
	rel := &releasev1.Release{Name: name, Namespace: ns, Version: 1, Labels: labels,
		Info: &releasev1.Info{FirstDeployed: at, LastDeployed: at, Status: status, Description: "killed"}}
	if last != nil {
		cp := *last
		info := *last.Info
		rel, rel.Info = &cp, &info
		rel.Version = last.Version + 1
		rel.Labels = labels
		rel.Info.LastDeployed, rel.Info.Status, rel.Info.Description = at, status, "killed"
	}
	if err := cfg.Releases.Create(rel); err != nil {
		t.Fatal(err)
	}
	// It blocks Helm as a killed action would.
	if last != nil {
		up := action.NewUpgrade(cfg)
		if _, err := up.RunWithContext(context.Background(), name, last.Chart, last.Config); err == nil || !contains(err.Error(), "another operation") {
			t.Fatalf("a pending revision does not block an upgrade: %v", err)
		}
	}
}

func statuses(t *testing.T, e *Engine, ns, name string) []string {
	t.Helper()
	var out []string
	for _, r := range history(t, e, ns, name) {
		out = append(out, r.Info.Status.String())
	}
	return out
}

func TestPendingReleaseRecovered(t *testing.T) {
	const instance = "mgo-pending-test"
	started := time.Now()
	other := map[string]string{LabelManagedBy: managedBy, LabelInstance: "another-instance", LabelStarted: "1"}

	cases := []struct {
		name    string
		status  helmcommon.Status
		install bool // a release with a deployed revision first
		age     time.Duration
		labels  map[string]string
		timeout time.Duration // Config.PendingTimeout
		want    []string      // Helm history after the sync
	}{
		{"upgrade of another instance, old", helmcommon.StatusPendingUpgrade, true, 10 * time.Minute, other, time.Minute,
			[]string{"superseded", "failed", "deployed"}},
		{"rollback of an older mgo, old", helmcommon.StatusPendingRollback, true, 10 * time.Minute, map[string]string{LabelManagedBy: managedBy}, time.Minute,
			[]string{"superseded", "failed", "deployed"}},
		{"upgrade of this instance before its restart, fresh", helmcommon.StatusPendingUpgrade, true, 0,
			map[string]string{LabelInstance: instance, LabelStarted: strconv.FormatInt(started.Add(-time.Hour).Unix(), 10)}, time.Hour,
			[]string{"superseded", "failed", "deployed"}},
		{"install without a deployed revision", helmcommon.StatusPendingInstall, false, 10 * time.Minute, other, time.Minute,
			[]string{"failed", "deployed"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := env.Namespace(t)
			g := newGitops(t)
			g.release("web", ns, "hello", "1.0.0", "")
			e := newEngineFor(t, clusterName, Config{RepoID: "pending-test", InstanceID: instance, StartedAt: started, PendingTimeout: tc.timeout})
			if tc.install {
				if rr := mustRelease(t, syncOnce(t, e, g.load(), Options{}), ns, "web"); rr.Action != Installed {
					t.Fatalf("install: %+v", rr)
				}
			}
			leavePending(t, e, ns, "web", tc.status, time.Now().Add(-tc.age), tc.labels)

			g.release("web", ns, "hello", "1.1.0", "")
			rr := mustRelease(t, syncOnce(t, e, g.load(), Options{}), ns, "web")
			if rr.Action == Failed || !contains(rr.Recovered, string(tc.status)) || !contains(rr.Recovered, "marked failed") {
				t.Fatalf("sync: %+v", rr)
			}
			t.Logf("recovered: %s", rr.Recovered)
			if got := statuses(t, e, ns, "web"); fmtList(got) != fmtList(tc.want) {
				t.Errorf("history %v, want %v", got, tc.want)
			}
			if img := deployment(t, ns, "web-hello").Spec.Template.Spec.Containers[0].Image; img != "registry.example.com/web:1.1.0" {
				t.Errorf("image %s after the sync", img)
			}
		})
	}
}

// A fresh pending revision of another live instance is not touched: the
// sync reports it, and a later sync (once it is old enough) recovers it.
func TestPendingReleaseOfLiveInstanceLeftUntilThreshold(t *testing.T) {
	ns := env.Namespace(t)
	g := newGitops(t)
	g.release("web", ns, "hello", "1.0.0", "")
	e := newEngineFor(t, clusterName, Config{RepoID: "pending-test", InstanceID: "me", PendingTimeout: time.Hour})
	syncOnce(t, e, g.load(), Options{})
	leavePending(t, e, ns, "web", helmcommon.StatusPendingUpgrade, time.Now(), map[string]string{LabelInstance: "someone-else", LabelStarted: strconv.FormatInt(time.Now().Unix(), 10)})

	g.release("web", ns, "hello", "1.1.0", "")
	rr := mustRelease(t, syncOnce(t, e, g.load(), Options{}), ns, "web")
	if rr.Action != Failed || !contains(rr.Error, "pending-upgrade") || !contains(rr.Error, "someone-else") || rr.Recovered != "" {
		t.Fatalf("sync while another instance holds the release: %+v", rr)
	}
	if got := statuses(t, e, ns, "web"); fmtList(got) != fmtList([]string{"deployed", "pending-upgrade"}) {
		t.Errorf("history %v", got)
	}
	// Once older than the threshold: recovered, and the next sync (not a
	// full one) tries again.
	e.cfg.PendingTimeout = 100 * time.Millisecond
	time.Sleep(200 * time.Millisecond)
	rr = mustRelease(t, syncOnce(t, e, g.load(), Options{}), ns, "web")
	if rr.Action != Upgraded || rr.Recovered == "" {
		t.Fatalf("sync after the threshold: %+v", rr)
	}
}

func fmtList(l []string) string {
	out := ""
	for _, s := range l {
		out += s + ","
	}
	return out
}
