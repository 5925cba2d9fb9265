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
	req, _ := http.NewRequest(http.MethodGet, m.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+ciToken)
	resp, err := apiClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	prefix := `mgo_drift_objects{cluster="` + cluster + `"} `
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics (%d)", prefix, resp.StatusCode)
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
