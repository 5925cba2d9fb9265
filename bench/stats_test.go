package main

import (
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var ds []time.Duration
		for _, n := range ns {
			ds = append(ds, time.Duration(n)*time.Millisecond)
		}
		return ds
	}
	cases := []struct {
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 95, 7 * time.Millisecond},
		{ms(5, 1, 4, 2, 3), 50, 3 * time.Millisecond},
		{ms(5, 1, 4, 2, 3), 100, 5 * time.Millisecond},
		{ms(5, 1, 4, 2, 3), 0, 1 * time.Millisecond},
		// 30 values 1..30 ms: p50 is the 15th, p95 the 29th (ceil(28.5)).
		{ms(30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 50, 15 * time.Millisecond},
		{ms(30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 95, 29 * time.Millisecond},
	}
	for _, c := range cases {
		if got := percentile(c.in, c.p); got != c.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", c.in, c.p, got, c.want)
		}
	}
}

func TestRatio(t *testing.T) {
	if r := ratio(1, 0); r != nil {
		t.Errorf("ratio(1, 0) = %v, want nil", *r)
	}
	if r := ratio(3, 4); r == nil || *r != 0.75 {
		t.Errorf("ratio(3, 4) = %v, want 0.75", r)
	}
}

func TestCountAudit(t *testing.T) {
	log := `{"kind":"Event","stage":"RequestReceived","verb":"get","requestURI":"/api/v1/namespaces/a/secrets/x","user":{"username":"bench-helm"}}
{"kind":"Event","stage":"RequestReceived","verb":"patch","requestURI":"/apis/apps/v1/namespaces/a/deployments/d?dryRun=All&fieldManager=mgo","user":{"username":"bench-mgo"}}
{"kind":"Event","stage":"RequestReceived","verb":"patch","requestURI":"/apis/apps/v1/namespaces/a/deployments/d?fieldManager=mgo&force=true","user":{"username":"bench-mgo"}}
{"kind":"Event","stage":"ResponseComplete","verb":"patch","requestURI":"/apis/apps/v1/namespaces/a/deployments/d?fieldManager=mgo","user":{"username":"bench-mgo"}}
{"kind":"Event","stage":"RequestReceived","verb":"create","requestURI":"/api/v1/namespaces/a/configmaps?dryRun=","user":{"username":"bench-mgo"}}
{"kind":"Event","stage":"RequestReceived","verb":"watch","requestURI":"/api/v1/pods?watch=true","user":{"username":"system:kube-scheduler"}}
{"kind":"Event","stage":"RequestReceived","verb":"delete","requestURI":"/api/v1/na`
	counts, n, err := countAudit(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(strings.LastIndex(log, "\n") + 1); n != want {
		t.Errorf("consumed %d bytes, want %d (up to the partial last line)", n, want)
	}
	mgo := counts["bench-mgo"]
	if mgo["dryrun-patch"] != 1 || mgo["patch"] != 1 || mgo["create"] != 1 || mgo.Total() != 3 {
		t.Errorf("bench-mgo counts %v", mgo)
	}
	if mgo.Writes() != 2 {
		t.Errorf("bench-mgo writes %d, want 2 (the dry-run is no write)", mgo.Writes())
	}
	if h := counts["bench-helm"]; h["get"] != 1 || h.Writes() != 0 {
		t.Errorf("bench-helm counts %v", h)
	}
	if got := mgo.String(); got != "create 1, dryrun-patch 1, patch 1" {
		t.Errorf("String() = %q", got)
	}
}

func TestSpread(t *testing.T) {
	for _, c := range []struct{ n, k int }{{100, 1}, {100, 10}, {100, 30}, {3, 30}, {1000, 30}, {31, 30}} {
		idx := spread(c.n, c.k)
		if len(idx) != min(c.n, c.k) {
			t.Errorf("spread(%d, %d) has %d indexes", c.n, c.k, len(idx))
		}
		seen := map[int]bool{}
		for _, i := range idx {
			if i < 0 || i >= c.n || seen[i] {
				t.Errorf("spread(%d, %d) = %v: index %d out of range or repeated", c.n, c.k, idx, i)
			}
			seen[i] = true
		}
	}
}

func TestNewRevisions(t *testing.T) {
	before := map[string]int{"a/x": 3, "a/y": 1}
	after := map[string]int{"a/x": 4, "a/y": 1, "b/z": 1}
	if n := newRevisions(before, after); n != 2 {
		t.Errorf("newRevisions = %d, want 2", n)
	}
}
