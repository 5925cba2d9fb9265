package reconcile

import (
	"context"
	"testing"

	"github.com/mygitops/mgo/internal/charttest"
)

// The CA file of a Setup reaches the chart clients: a chart repository
// served with a certificate only that file trusts is read with it, and
// refused without it.
func TestSetupCAFileReachesTheChartClients(t *testing.T) {
	srv := charttest.NewRepoServer(t, "", "")
	srv.Add(t, charttest.ChartDir("hello"), "0.1.0")
	g := newGitops(t)
	g.write("mygitops.yaml", "helm:\n  repositories:\n    - name: acme\n      url: "+srv.URL+"\n")
	g.releaseOf("tls", env.Namespace(t), "acme/hello", "0.1.0", "1.0.0", "")
	r := g.load()

	diff := func(caFile string) ReleaseDiff {
		t.Helper()
		e, err := NewFromSetup(Setup{Kubeconfig: env.Kubeconfig, Cluster: clusterName, CacheDir: t.TempDir(), CAFile: caFile}, r, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		res, err := e.Diff(context.Background(), r, Options{Release: "tls"})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Releases) != 1 {
			t.Fatalf("releases: %+v", res.Releases)
		}
		return res.Releases[0]
	}
	if rd := diff(srv.CAFile); rd.Error != "" || len(rd.Objects) == 0 {
		t.Errorf("with the CA file: %s: %s, %d objects", rd.Stage, rd.Error, len(rd.Objects))
	}
	if rd := diff(""); rd.Stage != StageChart || !contains(rd.Error, "certificate") {
		t.Errorf("without the CA file: %s: %s, want a chart failure over the certificate", rd.Stage, rd.Error)
	}
}
