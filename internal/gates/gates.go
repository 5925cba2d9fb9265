// Package gates runs the promotion gates that reach outside mgo's own
// watch cache: the Helm test hooks of a release (Helm SDK, as `helm test`
// does), HTTP checks and Prometheus queries. Each gives a result with the
// evidence: the hook's phase, the status code, the query's value.
package gates

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"helm.sh/helm/v4/pkg/action"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
)

// Result is one check or test: whether it passed and what it saw.
type Result struct {
	Name   string
	Passed bool
	Detail string
	At     time.Time
	// Value is a Prometheus check's value (the sample furthest out of
	// bounds, or the last one).
	Value float64
}

// maxBody bounds what an HTTP check reads of an answer.
const maxBody = 64 << 10

// HTTPCheck must answer 2xx to a GET.
type HTTPCheck struct {
	Name, URL string
	Timeout   time.Duration // default 10s
}

// Run sends the GET through client (whose dialer enforces mgo's outbound
// list of checks) and follows its redirects.
func (c HTTPCheck) Run(ctx context.Context, client *http.Client) Result {
	r := Result{Name: c.Name, At: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, orDefault(c.Timeout, 10*time.Second))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		r.Detail = err.Error()
		return r
	}
	resp, err := client.Do(req)
	if err != nil {
		r.Detail = "GET " + c.URL + ": " + errorText(err)
		return r
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	r.Passed = resp.StatusCode/100 == 2
	r.Detail = fmt.Sprintf("GET %s: %s", c.URL, resp.Status)
	if !r.Passed {
		if excerpt := strings.TrimSpace(strings.ToValidUTF8(string(b[:min(len(b), 200)]), "")); excerpt != "" {
			r.Detail += ": " + excerpt
		}
	}
	return r
}

// errorText is an HTTP client's error without Go's URL wrapper noise.
func errorText(err error) string {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) && ue.Unwrap() != nil {
		return ue.Unwrap().Error()
	}
	return err.Error()
}

// PromCheck is a Prometheus instant query whose every sample must lie
// within Min and Max (a nil bound does not bound). An empty result fails:
// no data proves nothing.
type PromCheck struct {
	Name, URL, Query string
	Min, Max         *float64
	Timeout          time.Duration // default 10s
}

// Run queries Prometheus's HTTP API (/api/v1/query) through client.
func (c PromCheck) Run(ctx context.Context, client *http.Client) Result {
	r := Result{Name: c.Name, At: time.Now()}
	pc, err := api.NewClient(api.Config{Address: c.URL, Client: client})
	if err != nil {
		r.Detail = err.Error()
		return r
	}
	ctx, cancel := context.WithTimeout(ctx, orDefault(c.Timeout, 10*time.Second))
	defer cancel()
	v, _, err := promv1.NewAPI(pc).Query(ctx, c.Query, time.Now())
	if err != nil {
		r.Detail = fmt.Sprintf("query %q: %s", c.Query, errorText(err))
		return r
	}
	var samples []float64
	switch x := v.(type) {
	case model.Vector:
		for _, s := range x {
			samples = append(samples, float64(s.Value))
		}
	case *model.Scalar:
		samples = append(samples, float64(x.Value))
	default:
		r.Detail = fmt.Sprintf("query %q: a %s, not a vector or scalar", c.Query, v.Type())
		return r
	}
	if len(samples) == 0 {
		r.Detail = fmt.Sprintf("query %q: no data", c.Query)
		return r
	}
	r.Passed, r.Value = true, samples[len(samples)-1]
	for _, s := range samples {
		if math.IsNaN(s) || (c.Min != nil && s < *c.Min) || (c.Max != nil && s > *c.Max) {
			r.Passed, r.Value = false, s
			break
		}
	}
	r.Detail = fmt.Sprintf("query %q = %g (%s)", c.Query, r.Value, c.bounds())
	return r
}

func (c PromCheck) bounds() string {
	var parts []string
	if c.Min != nil {
		parts = append(parts, fmt.Sprintf("min %g", *c.Min))
	}
	if c.Max != nil {
		parts = append(parts, fmt.Sprintf("max %g", *c.Max))
	}
	return strings.Join(parts, ", ")
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// RunTests runs the test hooks of the release's last revision with the
// Helm SDK (as `helm test`) and reports each hook. A release without test
// hooks gives no results and no error.
func RunTests(ctx context.Context, cfg *action.Configuration, release string, timeout time.Duration) ([]Result, error) {
	t := action.NewReleaseTesting(cfg)
	t.Timeout = orDefault(timeout, 5*time.Minute)
	done := make(chan struct{})
	var rel *releasev1.Release
	var err error
	go func() {
		defer close(done)
		var out any
		var shutdown action.ExecuteShutdownFunc
		out, shutdown, err = t.Run(release)
		if shutdown != nil {
			_ = shutdown()
		}
		rel, _ = out.(*releasev1.Release)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return nil, ctx.Err() // the hooks end by their own timeout
	}
	var results []Result
	if rel != nil {
		for _, h := range rel.Hooks {
			if !isTest(h) {
				continue
			}
			r := Result{Name: h.Kind + "/" + h.Name, At: h.LastRun.CompletedAt, Passed: h.LastRun.Phase == releasev1.HookPhaseSucceeded}
			r.Detail = "phase " + string(h.LastRun.Phase)
			results = append(results, r)
		}
	}
	if err != nil && len(results) == 0 {
		return nil, fmt.Errorf("helm test %s: %w", release, err)
	}
	return results, nil
}

func isTest(h *releasev1.Hook) bool {
	for _, e := range h.Events {
		if e == releasev1.HookTest {
			return true
		}
	}
	return false
}
