package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mygitops/mgo/internal/auth"
)

// driftLine is what mgo serve logs when a watch sees an object changed
// behind its back.
const driftLine = "drift: an object changed behind mgo"

// DriftStats is how long mgo serve took to report an out-of-band change.
type DriftStats struct {
	Object         string  `json:"object"`
	Reported       bool    `json:"reported"`
	LatencySeconds float64 `json:"latencySeconds"`
}

// lineWatch scans written output for lines containing any of its
// strings, and keeps them with the time they were written.
type lineWatch struct {
	mu    sync.Mutex
	subs  []string
	buf   bytes.Buffer
	lines []seenLine
	seen  chan struct{}
}

type seenLine struct {
	text string
	at   time.Time
}

func newLineWatch(subs ...string) *lineWatch {
	return &lineWatch{subs: subs, seen: make(chan struct{}, 1)}
}

func (l *lineWatch) Write(p []byte) (int, error) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		line, err := l.buf.ReadString('\n')
		if err != nil {
			l.buf.WriteString(line) // incomplete: keep for the next write
			break
		}
		for _, sub := range l.subs {
			if strings.Contains(line, sub) {
				l.lines = append(l.lines, seenLine{text: line, at: now})
				select {
				case l.seen <- struct{}{}:
				default:
				}
				break
			}
		}
	}
	return len(p), nil
}

// first returns when the first line containing sub was written.
func (l *lineWatch) first(sub string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line.text, sub) {
			return line.at, true
		}
	}
	return time.Time{}, false
}

// firstLine returns the first line containing sub, or "".
func (l *lineWatch) firstLine(sub string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line.text, sub) {
			return strings.TrimSpace(line.text)
		}
	}
	return ""
}

func (l *lineWatch) matching(sub string) bool {
	_, ok := l.first(sub)
	return ok
}

// runDrift measures how long `mgo serve` takes to report an out-of-band
// change: once its start-up sync is done, the benchmark scales one
// Deployment by hand (another field manager) and waits for the drift line
// in the service's log. The periodic drift check is off
// (--resync-interval 0): only watches can find it. The requests are the
// service's from the change to the report.
func runDrift(ctx context.Context, w *world, bin string, m *Measure) error {
	if err := serveAvailable(ctx, bin); err != nil {
		m.Status, m.Error = "skipped", "mgo serve not available: "+err.Error()
		return nil
	}
	remote := filepath.Join(w.Home, "gitops.git")
	if err := gitRemote(ctx, w.Repo.Dir, remote); err != nil {
		return err
	}
	token := auth.NewToken()
	tokens := filepath.Join(w.Home, "tokens-drift.yaml")
	if err := os.WriteFile(tokens, fmt.Appendf(nil, "tokens:\n  - name: ci\n    sha256: %s\n    clusters: [%q]\n    triggerRepos: [\"*\"]\n",
		auth.Hash(token), w.Cluster.Env.Context), 0o600); err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx) // of the service
	defer cancel()
	lines := newLineWatch(driftLine)
	cmd := exec.CommandContext(sctx, bin, "serve",
		"--repo-url", "file://"+remote, "--branch", "main",
		"--listen", addr, "--data-dir", filepath.Join(w.Home, "serve"),
		"--kubeconfig", w.Cluster.Kubeconfig, "--tokens-file", tokens,
		"--poll-interval", "0", "--resync-interval", "0", "--log-level", "warn",
		"--repo-id", serveRepoID)
	cmd.Env = w.baseEnv()
	cmd.Dir = w.Home
	out := io.MultiWriter(w.Log, lines) // mgo serve logs to stdout
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Start(); err != nil {
		return err
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	stop := func() Usage {
		cancel()
		<-exited
		return rusageOf(cmd.ProcessState)
	}
	base := "http://" + addr
	if err := waitReady(sctx, base+"/readyz", 5*time.Minute, exited, &waitErr); err != nil {
		stop()
		m.Status, m.Error = "skipped", "mgo serve did not become ready: "+err.Error()
		return nil
	}
	if err := waitSynced(sctx, base, token, w.Cluster.Env.Context, 10*time.Minute); err != nil {
		stop()
		return err
	}
	r := w.Repo.Releases[spread(len(w.Repo.Releases), 1)[0]]
	name := r.Name + "-hello"
	if _, err := w.Cluster.Requests(); err != nil { // count from here on
		stop()
		return err
	}
	start := time.Now()
	deps := w.Cluster.Env.Client.AppsV1().Deployments(r.Namespace)
	scale := func(n int) error {
		_, err := deps.Patch(ctx, name, types.MergePatchType, fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, n),
			metav1.PatchOptions{FieldManager: "kubectl-scale"})
		return err
	}
	if err := scale(3); err != nil {
		stop()
		return fmt.Errorf("scaling %s/%s by hand: %w", r.Namespace, name, err)
	}
	st := &DriftStats{Object: "Deployment/" + r.Namespace + "/" + name}
	deadline := time.After(2 * time.Minute)
wait:
	for !lines.matching(st.Object) {
		select {
		case <-lines.seen:
		case <-deadline:
			break wait
		case <-exited:
			break wait
		}
	}
	if lines.matching(st.Object) {
		st.Reported, st.LatencySeconds = true, time.Since(start).Seconds()
	}
	reqs, err := w.Cluster.Requests()
	if err != nil {
		stop()
		return err
	}
	m.Usage = stop()
	m.setRequests(reqs)
	m.WallSeconds = st.LatencySeconds
	m.Drift = st
	if err := scale(2); err != nil { // as the repo says, for the checks after the scenario
		return err
	}
	if !st.Reported {
		m.Status, m.Error = "failed", "the out-of-band change of "+st.Object+" was not reported within 2 minutes"
	}
	return nil
}

// waitSynced waits until mgo serve reports a first sync of the cluster.
func waitSynced(ctx context.Context, base, token, cluster string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/clusters", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			var body struct {
				Clusters []struct {
					Name     string    `json:"name"`
					LastSync time.Time `json:"lastSync"`
				} `json:"clusters"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			for _, c := range body.Clusters {
				if c.Name == cluster && !c.LastSync.IsZero() {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return fmt.Errorf("mgo serve did not sync cluster %s within %s", cluster, timeout)
}
