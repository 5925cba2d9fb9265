package render

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mygitops/mgo/internal/charttest"
	"github.com/mygitops/mgo/internal/outbound"
)

func guardedCharts(t *testing.T, plainHTTP bool, allow ...string) *Charts {
	t.Helper()
	p, err := outbound.Parse(outbound.Charts, allow)
	if err != nil {
		t.Fatal(err)
	}
	opts := DefaultOptions(t.TempDir())
	opts.PlainHTTP, opts.CAFile, opts.Outbound = plainHTTP, charttest.CAFile(t), p
	c, err := NewCharts(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The chart repository and registry listen on 127.0.0.1: a list that allows
// it loads the chart, one that allows only 127.0.0.2 refuses it, naming the
// repository and the address and not the password.
func TestChartSourcesOutsideTheOutboundListAreRefused(t *testing.T) {
	srv := charttest.NewRepoServer(t, "ci", "s3cret")
	srv.Add(t, charttest.ChartDir("hello"), "0.1.0")
	t.Setenv("MGO_CHART_TEST_PASSWORD", "s3cret")
	config := "helm:\n  repositories:\n    - name: acme\n      url: " + srv.URL + "\n      username: ci\n      passwordEnv: MGO_CHART_TEST_PASSWORD\n"
	reg := charttest.NewRegistry(t)
	ociURL := reg.Push(t, charttest.ChartDir("hello"), "charts", "0.1.0")
	ctx := context.Background()

	for _, tc := range []struct {
		name, config, chart string
		plain               bool
		names               string
	}{
		{"repository", config, "acme/hello", false, "acme"},
		{"registry", "", ociURL, true, strings.SplitN(ociURL, "/", 4)[2]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, rel := gitopsRepo(t, tc.config, tc.chart, "0.1.0", "1.0.0")
			_, err := guardedCharts(t, tc.plain, "127.0.0.2").Load(ctx, r.Dir, r.Config, rel.Header)
			var re *outbound.RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("load from 127.0.0.1 with only 127.0.0.2 allowed: %v", err)
			}
			if !strings.Contains(err.Error(), "127.0.0.1") || !strings.Contains(err.Error(), tc.names) {
				t.Errorf("refusal %q names neither the address nor %s", err, tc.names)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("refusal shows the password: %v", err)
			}
			if _, err := guardedCharts(t, tc.plain, "127.0.0.1").Load(ctx, r.Dir, r.Config, rel.Header); err != nil {
				t.Fatalf("load with 127.0.0.1 allowed: %v", err)
			}
		})
	}
}
