package kube

import (
	"testing"

	"github.com/mygitops/mgo/internal/repo"
	"github.com/mygitops/mgo/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env, testenv.Options{Context: "kube-test"}) }

// newCluster connects a Cluster to the test control plane.
func newCluster(t *testing.T) *Cluster {
	t.Helper()
	c, err := FromKubeconfig(env.Kubeconfig, env.Context, repo.Budget{QPS: 50, Burst: 100})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
