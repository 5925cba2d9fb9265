package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/mygitops/mgo/internal/notify"
	"github.com/mygitops/mgo/internal/server"
	"github.com/mygitops/mgo/pkg/apitypes"
)

// TestDriftFromWatchIsReportedAtOnce: a change by hand to a release's
// Deployment under mgo serve shows in the cluster's status, in the
// mgo_drift_objects metric and as a drift.detected notification, while the
// periodic drift check is an hour away.
func TestDriftFromWatchIsReportedAtOnce(t *testing.T) {
	var mu sync.Mutex
	var events []notify.Event
	hook := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		var ev notify.Event
		if json.NewDecoder(r.Body).Decode(&ev) == nil {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		}
	}))
	defer hook.Close()
	drifts := func() []notify.Event {
		mu.Lock()
		defer mu.Unlock()
		var out []notify.Event
		for _, ev := range events {
			if ev.Type == notify.DriftDetected {
				out = append(out, ev)
			}
		}
		return out
	}

	const ns = "watch-drift"
	files := withoutReleases(t)
	files["mygitops.yaml"] = `clusters:
  ` + cluster + `:
    timeout: 20s
notifications:
  receivers:
    - name: hook
      type: webhook
      url: ` + hook.URL + `
  routes:
    - events: [drift.detected]
      receivers: [hook]
`
	files["installations/"+cluster+"/app-values.yaml"] = values("app", ns, "1.0.0", "")
	_, gitSrv, pw := setupFiles(t, files)
	m := startMgo(t, gitSrv.URL, pw, t.TempDir(), func(c *server.Config) { c.ResyncInterval = time.Hour })

	status := func() apitypes.Cluster {
		var list apitypes.ClusterList
		if code := m.call(http.MethodGet, "/api/v1/clusters", ciToken, "", nil, &list); code != http.StatusOK {
			t.Fatalf("GET /api/v1/clusters: %d", code)
		}
		for _, c := range list.Clusters {
			if c.Name == cluster {
				return c
			}
		}
		t.Fatalf("cluster %s not listed: %+v", cluster, list)
		return apitypes.Cluster{}
	}
	waitFor(t, "the start-up sync", 2*time.Minute, func() bool { return !status().LastSync.IsZero() })
	if st := status(); st.Drift != 0 || len(drifts()) != 0 {
		t.Fatalf("drift before any change: %+v %+v", st, drifts())
	}

	scaleByHand(t, ns, 3)

	waitFor(t, "the drift in the cluster's status", time.Minute, func() bool { return status().Drift == 1 })
	waitFor(t, "the drift.detected notification", 30*time.Second, func() bool { return len(drifts()) > 0 })
	ev := drifts()[0]
	if ev.Cluster != cluster || ev.Objects != 1 || len(ev.Releases) != 1 || ev.Releases[0].Name != "app" ||
		!strings.Contains(ev.Summary, "Deployment/"+ns+"/app-hello") {
		t.Errorf("drift event %+v", ev)
	}
	if v := driftMetric(t, m); v != 1 {
		t.Errorf("mgo_drift_objects{cluster=%q} = %v, want 1", cluster, v)
	}
	// The cluster's API cost is exposed beside it: the watch that saw the
	// change, the waits for the budget, the budget, the watch restarts.
	for series, atLeast := range map[string]float64{
		`mgo_kube_requests_total{cluster="` + cluster + `",code="200",verb="watch"}`: 1,
		`mgo_kube_throttle_wait_seconds_count{cluster="` + cluster + `"}`:            1,
		`mgo_kube_budget_qps{cluster="` + cluster + `"}`:                             50,
		`mgo_kube_watch_restarts_total{cluster="` + cluster + `",reason="expired"}`:  0,
	} {
		if v := metric(t, m, series); v < atLeast {
			t.Errorf("%s = %v, want at least %v", series, v, atLeast)
		}
	}
	if strings.Contains(m.logs.String(), "drift: the cluster differs from the repo") {
		t.Error("the periodic drift check ran; the drift must have come from the watch")
	}

	// The same object changed again is the same drift: told once.
	scaleByHand(t, ns, 4)
	// The second change is seen once the watch has passed it on.
	waitFor(t, "the second change seen by the watch", time.Minute, func() bool {
		return strings.Count(m.logs.String(), "drift: an object changed behind mgo's back") >= 2
	})
	if got := drifts(); len(got) != 1 {
		t.Errorf("drift.detected %d times for one object, want once: %+v", len(got), got)
	}
	if st := status(); st.Drift != 1 {
		t.Errorf("drift count %d after the same object changed twice, want 1", st.Drift)
	}
}

// driftMetric reads mgo_drift_objects of the test's cluster from /metrics.
func driftMetric(t *testing.T, m *mgo) float64 {
	t.Helper()
	return metric(t, m, `mgo_drift_objects{cluster="`+cluster+`"}`)
}

// metric reads one series from /metrics, named with its labels in
// alphabetical order as the exposition writes them.
func metric(t *testing.T, m *mgo, series string) float64 {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, m.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+ciToken)
	resp, err := apiClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics (%d)", series, resp.StatusCode)
	return 0
}

// scaleByHand sets the replicas of the app's Deployment as a person would,
// reading again on a conflict with the Deployment controller's updates.
func scaleByHand(t *testing.T, ns string, n int32) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		dep, err := env.Client.AppsV1().Deployments(ns).Get(t.Context(), "app-hello", metav1.GetOptions{})
		if err != nil {
			return err
		}
		dep.Spec.Replicas = &n
		_, err = env.Client.AppsV1().Deployments(ns).Update(t.Context(), dep, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// driftHook is an in-process HTTP receiver of mgo's drift notifications.
type driftHook struct {
	*httptest.Server
	mu     sync.Mutex
	events []notify.Event
}

func newDriftHook(t *testing.T) *driftHook {
	h := &driftHook{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		var ev notify.Event
		if json.NewDecoder(r.Body).Decode(&ev) == nil {
			h.mu.Lock()
			h.events = append(h.events, ev)
			h.mu.Unlock()
		}
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *driftHook) of(typ string) []notify.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []notify.Event
	for _, ev := range h.events {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// startDriftMgo serves a repo with the app release in ns, the cluster's
// drift policy set to policy and drift notifications sent to a hook; the
// periodic drift check is an hour away. It returns once the start-up sync
// is done.
func startDriftMgo(t *testing.T, ns, policy string) (*mgo, *driftHook, func() apitypes.Cluster) {
	hook := newDriftHook(t)
	files := withoutReleases(t)
	files["mygitops.yaml"] = `clusters:
  ` + cluster + `:
    timeout: 20s
    drift: ` + policy + `
notifications:
  receivers:
    - name: hook
      type: webhook
      url: ` + hook.URL + `
  routes:
    - events: [drift.detected, drift.repaired]
      receivers: [hook]
`
	files["installations/"+cluster+"/app-values.yaml"] = values("app", ns, "1.0.0", "")
	_, gitSrv, pw := setupFiles(t, files)
	m := startMgo(t, gitSrv.URL, pw, t.TempDir(), func(c *server.Config) { c.ResyncInterval = time.Hour })
	status := func() apitypes.Cluster {
		var list apitypes.ClusterList
		if code := m.call(http.MethodGet, "/api/v1/clusters", ciToken, "", nil, &list); code != http.StatusOK {
			t.Fatalf("GET /api/v1/clusters: %d", code)
		}
		for _, c := range list.Clusters {
			if c.Name == cluster {
				return c
			}
		}
		t.Fatalf("cluster %s not listed: %+v", cluster, list)
		return apitypes.Cluster{}
	}
	waitFor(t, "the start-up sync", 2*time.Minute, func() bool { return !status().LastSync.IsZero() })
	return m, hook, status
}

// replicas reads the replicas of the app's Deployment.
func replicas(t *testing.T, ns string) int32 {
	t.Helper()
	dep, err := env.Client.AppsV1().Deployments(ns).Get(t.Context(), "app-hello", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return *dep.Spec.Replicas
}

// TestDriftFromWatchIsRepaired: under drift: repair, a change by hand to a
// release's Deployment is undone by a sync of that release within moments,
// drift.repaired is sent and the drift count falls back; a second change
// is undone too, while the periodic drift check is an hour away.
func TestDriftFromWatchIsRepaired(t *testing.T) {
	const ns = "watch-repair"
	m, hook, status := startDriftMgo(t, ns, "repair")
	if r := replicas(t, ns); r != 1 {
		t.Fatalf("replicas %d after the start-up sync, want the repo's 1", r)
	}

	changed := time.Now()
	scaleByHand(t, ns, 3)
	waitFor(t, "the repo's replicas back", time.Minute, func() bool { return replicas(t, ns) == 1 })
	t.Logf("replicas back %s after the change by hand", time.Since(changed).Round(time.Millisecond))
	waitFor(t, "drift.repaired", 30*time.Second, func() bool { return len(hook.of(notify.DriftRepaired)) == 1 })
	ev := hook.of(notify.DriftRepaired)[0]
	if !ev.Success || ev.Cluster != cluster || ev.Objects != 1 || len(ev.Releases) != 1 || ev.Releases[0].Name != "app" || ev.Commit == "" {
		t.Errorf("drift.repaired %+v", ev)
	}
	waitFor(t, "the drift count back to 0", 30*time.Second, func() bool { return status().Drift == 0 })
	if v := driftMetric(t, m); v != 0 {
		t.Errorf("mgo_drift_objects{cluster=%q} = %v after the repair, want 0", cluster, v)
	}
	if strings.Contains(m.logs.String(), "drift: repairing") {
		t.Error("the periodic drift check repaired; the repair must have come from the watch")
	}

	scaleByHand(t, ns, 4)
	waitFor(t, "the second drift.repaired", time.Minute, func() bool { return len(hook.of(notify.DriftRepaired)) == 2 })
	if r := replicas(t, ns); r != 1 {
		t.Errorf("replicas %d after the second repair, want 1", r)
	}
	waitFor(t, "the drift count back to 0", 30*time.Second, func() bool { return status().Drift == 0 })
	// One sync per change: the release's own events while it is repaired
	// are no drift.
	if n := strings.Count(m.logs.String(), "drift: repaired a release"); n != 2 {
		t.Errorf("%d repairs for two changes, want 2", n)
	}
}

// TestDriftFromWatchIsNotRepairedUnderReport: under drift: report, a
// change by hand is reported and left as it is.
func TestDriftFromWatchIsNotRepairedUnderReport(t *testing.T) {
	const ns = "watch-report"
	m, hook, status := startDriftMgo(t, ns, "report")
	scaleByHand(t, ns, 3)
	waitFor(t, "the drift in the cluster's status", time.Minute, func() bool { return status().Drift == 1 })
	waitFor(t, "drift.detected", 30*time.Second, func() bool { return len(hook.of(notify.DriftDetected)) == 1 })
	// Changed again and seen by the watch: still as set by hand.
	scaleByHand(t, ns, 4)
	waitFor(t, "the second change seen by the watch", time.Minute, func() bool {
		return strings.Count(m.logs.String(), "drift: an object changed behind mgo's back") >= 2
	})
	if r := replicas(t, ns); r != 4 {
		t.Errorf("replicas %d under drift: report, want the hand-set 4", r)
	}
	if n := len(hook.of(notify.DriftRepaired)); n != 0 || strings.Contains(m.logs.String(), "drift: repaired") {
		t.Errorf("drift.repaired sent %d times under drift: report", n)
	}
	if st := status(); st.Drift != 1 {
		t.Errorf("drift count %d, want 1", st.Drift)
	}
}
