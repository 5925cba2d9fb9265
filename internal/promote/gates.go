package promote

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"helm.sh/helm/v4/pkg/action"

	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/gates"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/repo"
)

// helmTester runs Helm tests through the engines' Helm configurations.
type helmTester map[string]interface {
	HelmConfig(namespace string) (*action.Configuration, error)
}

// HelmTester runs the Helm test hooks of releases in the engines' clusters.
func HelmTester(engines map[string]*reconcile.Engine) Tester {
	t := helmTester{}
	for name, e := range engines {
		if e != nil {
			t[name] = e
		}
	}
	return t
}

func (t helmTester) Test(ctx context.Context, cluster, namespace, release string, timeout time.Duration) ([]deploy.CheckResult, error) {
	e := t[cluster]
	if e == nil {
		return nil, fmt.Errorf("cluster %s is not served here", cluster)
	}
	cfg, err := e.HelmConfig(namespace)
	if err != nil {
		return nil, err
	}
	rs, err := gates.RunTests(ctx, cfg, release, timeout)
	if err != nil {
		return nil, err
	}
	out := make([]deploy.CheckResult, 0, len(rs))
	for _, r := range rs {
		out = append(out, deploy.CheckResult{Name: namespace + "/" + release + " " + r.Name, Passed: r.Passed, Detail: r.Detail, At: r.At})
	}
	return out, nil
}

// httpChecker runs the stage's checks through one HTTP client.
type httpChecker struct{ client *http.Client }

// HTTPChecker runs HTTP and Prometheus checks through client (whose dialer
// enforces the outbound list of checks).
func HTTPChecker(client *http.Client) Checker { return httpChecker{client} }

func (c httpChecker) Check(ctx context.Context, pc repo.PromotionCheck) deploy.CheckResult {
	var r gates.Result
	if pc.HTTP != "" {
		r = gates.HTTPCheck{Name: pc.Name, URL: pc.HTTP}.Run(ctx, c.client)
	} else {
		r = gates.PromCheck{Name: pc.Name, URL: pc.Prometheus, Query: pc.Query, Min: pc.Min, Max: pc.Max}.Run(ctx, c.client)
	}
	return deploy.CheckResult{Name: r.Name, Passed: r.Passed, Detail: r.Detail, At: r.At}
}
