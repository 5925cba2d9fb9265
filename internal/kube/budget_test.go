package kube

import (
	"testing"

	helmkube "helm.sh/helm/v4/pkg/kube"
	"k8s.io/client-go/rest"

	"github.com/mygitops/mgo/internal/repo"
)

// TestBudgetIsSharedByEveryClient: the clients built from a cluster's
// Config (here a Helm action's) draw on the cluster's one token bucket, so
// that the budget bounds all of mgo's requests to the cluster together.
func TestBudgetIsSharedByEveryClient(t *testing.T) {
	c, err := FromKubeconfig(env.Kubeconfig, env.Context, repo.Budget{QPS: 0.001, Burst: 2})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := c.HelmForRelease("default", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	helmConfig, err := cfg.KubeClient.(*helmkube.Client).Factory.ToRESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range []*rest.Config{helmConfig, rest.CopyConfig(c.Config)} {
		if rc.RateLimiter != c.Config.RateLimiter {
			t.Fatal("a client built from the cluster's Config has a rate limiter of its own")
		}
	}
	// The Helm action's two tokens (the burst) leave none for the others.
	for i := range 2 {
		if !helmConfig.RateLimiter.TryAccept() {
			t.Fatalf("token %d of the burst refused", i+1)
		}
	}
	if c.Config.RateLimiter.TryAccept() {
		t.Error("the cluster's clients have tokens left after a Helm action took the whole burst")
	}
}
