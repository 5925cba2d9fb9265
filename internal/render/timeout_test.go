package render

import (
	"context"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// silentServer accepts connections, reads what they send and never
// answers: a chart repository or registry that hangs.
type silentServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func newSilentServer(t *testing.T) *silentServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silentServer{ln: ln}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Go(func() {
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			})
		}
	})
	return s
}

func (s *silentServer) Addr() string { return s.ln.Addr().String() }

func (s *silentServer) Close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// settledGoroutines waits until the number of goroutines is at most want,
// and returns the last count.
func settledGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(10 * time.Second); n > want && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		time.Sleep(50 * time.Millisecond)
	}
	return n
}

// A registry or chart repository that accepts connections and never answers
// makes the load fail within the configured timeout, and leaves no
// goroutine behind.
func TestLoadFromSilentServerTimesOut(t *testing.T) {
	for _, tc := range []struct {
		name, config, chart, version string
	}{
		{"oci tags", "", "oci://%s/charts/hello", "~0.3"},
		{"oci pull", "", "oci://%s/charts/hello", "1.0.0"},
		{"chart repository", "helm:\n  repositories:\n    - name: hung\n      url: http://%s/charts\n", "hung/hello", "1.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			baseline := runtime.NumGoroutine()
			srv := newSilentServer(t)
			config := strings.ReplaceAll(tc.config, "%s", srv.Addr())
			r, rel := gitopsRepo(t, config, strings.ReplaceAll(tc.chart, "%s", srv.Addr()), tc.version, "1.0.0")
			opts := DefaultOptions(t.TempDir())
			opts.PlainHTTP = true
			opts.Timeout = time.Second
			c, err := NewCharts(opts, nil)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = c.Load(context.Background(), r.Dir, r.Config, rel.Header)
			took := time.Since(start)
			if err == nil {
				t.Fatal("loading from a server that never answers succeeded")
			}
			if took > 3*time.Second {
				t.Errorf("load failed after %s, want about the 1s timeout: %v", took, err)
			}
			t.Logf("failed after %s: %v", took.Round(time.Millisecond), err)
			srv.Close()
			if n := settledGoroutines(baseline); n > baseline {
				buf := make([]byte, 1<<20)
				t.Errorf("%d goroutines after the load, %d before:\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
			}
		})
	}
}

// A caller's context ends a load at once, and takes no goroutine with it.
func TestLoadHonoursContext(t *testing.T) {
	baseline := runtime.NumGoroutine()
	srv := newSilentServer(t)
	r, rel := gitopsRepo(t, "", "oci://"+srv.Addr()+"/charts/hello", "1.0.0", "1.0.0")
	c := newCharts(t, true) // default timeout: minutes
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.Load(ctx, r.Dir, r.Config, rel.Header); err == nil {
		t.Fatal("load succeeded")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("load ended %s after its context", took)
	}
	srv.Close()
	if n := settledGoroutines(baseline); n > baseline {
		t.Errorf("%d goroutines after the load, %d before", n, baseline)
	}
}
