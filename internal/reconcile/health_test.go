package reconcile

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mygitops/mgo/internal/kube"
)

// databaseChart writes a chart whose crds directory defines a Database
// kind of group (with a status subresource and no controller behind it)
// and whose template is one Database named after the release.
func databaseChart(g *gitops, group string) {
	g.write("charts/databases/Chart.yaml", "apiVersion: v2\nname: databases\nversion: 1.0.0\n")
	g.write("charts/databases/crds/databases.yaml", crdYAML(group, "Database", true))
	g.write("charts/databases/templates/database.yaml", `apiVersion: `+group+`/v1
kind: Database
metadata:
  name: {{ .Release.Name }}
spec:
  size: 3
`)
}

// databaseRelease writes a release of the databases chart whose header's
// health rule reads the Database's status.phase.
func databaseRelease(g *gitops, name, ns, group string) {
	g.write("installations/"+clusterName+"/"+name+"-values.yaml", `__mygitops:
  chart: ./charts/databases
  name: `+name+`
  namespace: `+ns+`
  health:
  - apiVersion: `+group+`/v1
    kind: Database
    current: "has(status.phase) && status.phase == 'Ready'"
    failed: "has(status.phase) && status.phase == 'Failed'"
`)
}

// syncInBackground syncs one release in a goroutine; the channel gets its
// result.
func syncInBackground(t *testing.T, e *Engine, g *gitops, release string) <-chan ReleaseResult {
	t.Helper()
	r := g.load()
	done := make(chan ReleaseResult, 1)
	go func() {
		res, err := e.Sync(context.Background(), r, Options{Release: release, Timeout: 90 * time.Second})
		if err != nil {
			done <- ReleaseResult{Name: release, Action: Failed, Error: err.Error()}
			return
		}
		for _, rr := range res.Releases {
			if rr.Name == release {
				done <- rr
				return
			}
		}
		done <- ReleaseResult{Name: release, Action: Failed, Error: "no result in " + res.String()}
	}()
	return done
}

// waitDatabase waits until the Database of a release exists and returns
// it.
func waitDatabase(t *testing.T, e *Engine, group, ns, name string) *unstructured.Unstructured {
	t.Helper()
	db := &unstructured.Unstructured{}
	db.SetGroupVersionKind(schema.GroupVersionKind{Group: group, Version: "v1", Kind: "Database"})
	waitFor(t, "the Database "+name, func() bool {
		return e.cluster.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, db) == nil
	})
	return db
}

func setPhase(t *testing.T, e *Engine, db *unstructured.Unstructured, phase string) {
	t.Helper()
	patch := []byte(`{"status":{"phase":"` + phase + `"}}`)
	if err := e.cluster.Client.Status().Patch(context.Background(), db, client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatalf("patch the status of %s: %v", db.GetName(), err)
	}
}

func objectOf(rr []ObjectResult, subject string) (ObjectResult, bool) {
	for _, o := range rr {
		if o.Subject == subject {
			return o, true
		}
	}
	return ObjectResult{}, false
}

// TestHealthRuleHoldsTheRolloutWait: a custom resource with no controller
// behind it is Current to kstatus at once; the release's health rule,
// which reads its status.phase, holds the rollout wait (and the live
// status) until the field says Ready, and fails the wait as soon as it
// says Failed, naming the object and the rule. The release's rule for the
// kind replaces the cluster's (which would call it ready at once).
func TestHealthRuleHoldsTheRolloutWait(t *testing.T) {
	ns := env.Namespace(t)
	group := ns + ".example.com"
	g := newGitops(t)
	databaseChart(g, group)
	g.write("mygitops.yaml", `clusters:
  `+clusterName+`:
    health:
    - apiVersion: `+group+`/v1
      kind: Database
      current: "true"
`)
	databaseRelease(g, "orders", ns, group)
	databaseRelease(g, "payments", ns, group)
	e := newEngine(t)
	crd := &unstructured.Unstructured{}
	crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	crd.SetName("databases." + group)
	t.Cleanup(func() { _ = e.cluster.Client.Delete(context.Background(), crd) })
	ctx := context.Background()

	// Ready: the wait holds until the status says so.
	done := syncInBackground(t, e, g, "orders")
	db := waitDatabase(t, e, group, ns, "orders")
	if st := kube.StatusOf(db); st.Status != "Current" {
		t.Fatalf("kstatus of a Database without status is %s (%s); the test assumes Current", st.Status, st.Message)
	}
	time.Sleep(3 * watchPatience / 2) // past the wait's first reads and its patience
	select {
	case rr := <-done:
		t.Fatalf("the sync did not wait for the health rule: %+v", rr)
	default:
	}
	subject := "Database/" + ns + "/orders"
	lr, err := e.Live(ctx, ns, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := objectOf(lr.Objects, subject); !ok || o.Status != "InProgress" || !strings.Contains(o.Message, "waiting for current: has(status.phase) && status.phase == 'Ready'") {
		t.Errorf("live status of %s during the wait: %+v (all: %+v)", subject, o, lr.Objects)
	}
	setPhase(t, e, db, "Ready")
	var rr ReleaseResult
	select {
	case rr = <-done:
	case <-time.After(time.Minute):
		t.Fatal("the sync did not end within a minute of the Database becoming Ready")
	}
	if rr.Action != Installed {
		t.Fatalf("sync of orders: %+v", rr)
	}
	if o, ok := objectOf(rr.Objects, subject); !ok || o.Status != "Current" || !strings.Contains(o.Message, "current holds") {
		t.Errorf("%s after the sync: %+v", subject, o)
	}
	lr, err = e.Live(ctx, ns, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := objectOf(lr.Objects, subject); o.Status != "Current" {
		t.Errorf("live status of %s after the sync: %+v", subject, o)
	}

	// Failed: the wait ends at once, at the wait stage, naming the object
	// and the rule.
	start := time.Now()
	done = syncInBackground(t, e, g, "payments")
	setPhase(t, e, waitDatabase(t, e, group, ns, "payments"), "Failed")
	select {
	case rr = <-done:
	case <-time.After(time.Minute):
		t.Fatal("the sync did not end within a minute of the Database failing")
	}
	file := "installations/" + clusterName + "/payments-values.yaml"
	if rr.Action != Failed || rr.Stage != StageWait ||
		!strings.Contains(rr.Error, "Database/"+ns+"/payments is Failed: health rule "+file+":6: failed holds: has(status.phase) && status.phase == 'Failed'") {
		t.Fatalf("sync of payments: %+v", rr)
	}
	if d := time.Since(start); d > 45*time.Second {
		t.Errorf("the failed wait took %s: it waited for its timeout", d)
	}
}
