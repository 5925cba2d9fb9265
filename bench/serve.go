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
	"time"

	"github.com/mygitops/mgo/internal/auth"
)

// startupDone is what mgo serve logs (level info) when its start-up
// comparison of a cluster has ended: the full sync of every cluster it
// runs at start (deploy.Service.StartupSync). "initial sync" also begins
// the lines of a failed or partly failed one.
const (
	startupLine = "initial sync"
	startupOK   = "initial sync done"
)

// serveRepoID is the repo identity every mgo serve of the benchmark runs
// with: the one `mgo sync` labels releases with by default, as an operator
// gives it when moving a cluster from `mgo sync` to `mgo serve` (see `mgo
// sync --help`). With another identity mgo serve would not trust the cached
// Helm release labels of releases `mgo sync` installed and would read each
// release's Helm storage instead.
const serveRepoID = "default"

// serveProc is one `mgo serve` process on the contender's cluster, serving
// the benchmark repo from a bare git remote, with a token for the cluster.
type serveProc struct {
	cmd     *exec.Cmd
	base    string // http://addr
	token   string
	lines   *lineWatch
	started time.Time
	exited  chan struct{}
	waitErr error
	cancel  context.CancelFunc
}

// serveOptions are the flags that differ between scenarios.
type serveOptions struct {
	dataDir        string // under the contender's home
	resyncInterval time.Duration
}

// startServe starts mgo serve with its log at level info (the start-up
// line) and waits for nothing.
func startServe(ctx context.Context, w *world, bin string, o serveOptions) (*serveProc, error) {
	remote := filepath.Join(w.Home, "gitops.git")
	if err := gitRemote(ctx, w.Repo.Dir, remote); err != nil {
		return nil, err
	}
	token := auth.NewToken()
	tokens := filepath.Join(w.Home, "tokens-"+o.dataDir+".yaml")
	if err := os.WriteFile(tokens, fmt.Appendf(nil, "tokens:\n  - name: ci\n    sha256: %s\n    clusters: [%q]\n    triggerRepos: [\"*\"]\n",
		auth.Hash(token), w.Cluster.Env.Context), 0o600); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	p := &serveProc{base: "http://" + addr, token: token, lines: newLineWatch(startupLine, driftLine), exited: make(chan struct{}), cancel: cancel}
	p.cmd = exec.CommandContext(sctx, bin, "serve",
		"--repo-url", "file://"+remote, "--branch", "main",
		"--listen", addr, "--data-dir", filepath.Join(w.Home, o.dataDir),
		"--kubeconfig", w.Cluster.Kubeconfig, "--tokens-file", tokens,
		"--poll-interval", "0", "--resync-interval", o.resyncInterval.String(), "--log-level", "info",
		"--repo-id", serveRepoID, "--drain-delay", "0")
	p.cmd.Env = w.baseEnv()
	p.cmd.Dir = w.Home
	out := io.MultiWriter(w.Log, p.lines)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.cmd.Cancel = func() error { return p.cmd.Process.Signal(os.Interrupt) }
	p.cmd.WaitDelay = 30 * time.Second
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		cancel()
		return nil, err
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.exited) }()
	return p, nil
}

// stop interrupts the service, waits for it and returns its rusage.
func (p *serveProc) stop() Usage {
	p.cancel()
	<-p.exited
	return rusageOf(p.cmd.ProcessState)
}

// waitLine waits until the service logged a line containing sub.
func (p *serveProc) waitLine(ctx context.Context, sub string, timeout time.Duration) (time.Time, error) {
	deadline := time.After(timeout)
	for {
		if t, ok := p.lines.first(sub); ok {
			return t, nil
		}
		select {
		case <-p.lines.seen:
		case <-deadline:
			return time.Time{}, fmt.Errorf("mgo serve logged no %q within %s", sub, timeout)
		case <-p.exited:
			return time.Time{}, fmt.Errorf("mgo serve exited: %v", p.waitErr)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

// cluster reads the cluster's status from GET /api/v1/clusters.
func (p *serveProc) cluster(ctx context.Context, name string) (lastSync, driftChecked time.Time, err error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/api/v1/clusters", nil)
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	defer resp.Body.Close()
	var body struct {
		Clusters []struct {
			Name         string    `json:"name"`
			LastSync     time.Time `json:"lastSync"`
			DriftChecked time.Time `json:"driftChecked"`
		} `json:"clusters"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("GET /api/v1/clusters: HTTP %d: %w", resp.StatusCode, err)
	}
	for _, c := range body.Clusters {
		if c.Name == name {
			return c.LastSync, c.DriftChecked, nil
		}
	}
	return time.Time{}, time.Time{}, fmt.Errorf("GET /api/v1/clusters: no cluster %s", name)
}

// deployAnswer is the outcome of one deploy request.
type deployAnswer struct {
	Code    int
	Status  string
	Error   string
	Latency time.Duration
	At      time.Time // when the answer arrived
	Synced  time.Time // when the sync of its release began (times.synced)
}

// deploy sends one deploy request for r (a new tag, wait: true) and
// waits for the answer.
func (p *serveProc) deploy(ctx context.Context, cluster string, r release, tag string) deployAnswer {
	body, _ := json.Marshal(map[string]any{
		"cluster": cluster, "triggerRepo": TriggerRepo(r), "imageRepo": ImageRepo(r),
		"tag": tag, "author": "CI <ci@example.com>", "wait": true,
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/api/v1/deployments", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+p.token)
	req.Header.Set("Content-Type", "application/json")
	t0 := time.Now()
	resp, err := (&http.Client{Timeout: 10 * time.Minute}).Do(req)
	if err != nil {
		return deployAnswer{Error: err.Error(), Latency: time.Since(t0), At: time.Now()}
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	a := deployAnswer{Code: resp.StatusCode, Latency: time.Since(t0), At: time.Now()}
	var ans struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Times  struct {
			Synced time.Time `json:"synced"`
		} `json:"times"`
	}
	_ = json.Unmarshal(b, &ans)
	a.Status, a.Error, a.Synced = ans.Status, strings.TrimSpace(ans.Error), ans.Times.Synced
	if a.Status == "" && resp.StatusCode/100 != 2 {
		a.Error = strings.TrimSpace(string(b))
	}
	return a
}

// StartupStats is what mgo serve's start on a synced cluster costs.
type StartupStats struct {
	// Signal is what was taken as the end of the start-up comparison.
	Signal string `json:"signal"`
	// ReadySeconds: process start to /readyz answering 200;
	// StartupSeconds: process start to the start-up comparison done.
	ReadySeconds   float64 `json:"readySeconds"`
	StartupSeconds float64 `json:"startupSeconds"`
	// The second start, with one deploy request sent as soon as /readyz
	// answered: its latency (answered after its rollout), whether it was
	// answered before that start's comparison ended, and that start's own
	// figures.
	Deploy            *BurstStats `json:"deploy,omitempty"`
	DeploySentSeconds float64     `json:"deploySentSeconds"`
	// DeploySyncSeconds is when the sync of the deploy's release began
	// (its record's times.synced), from the process start.
	DeploySyncSeconds    float64  `json:"deploySyncStartedSeconds"`
	DeploySyncedFirst    bool     `json:"deploySyncStartedBeforeStartupDone"`
	DeployAnsweredFirst  bool     `json:"deployAnsweredBeforeStartupDone"`
	WithDeployStartup    float64  `json:"withDeployStartupSeconds"`
	WithDeployRequests   Requests `json:"withDeployRequests"`
	WithDeployMaxRSSKiB  int64    `json:"withDeployMaxRSSKiB"`
	WithDeployRevisions  int      `json:"withDeployHelmRevisions"`
	WithDeployStartupErr string   `json:"withDeployError,omitempty"`
}

// runServeStartup measures `mgo serve` starting on a cluster already
// synced (by `mgo sync`): the time from the process start until it logs
// the end of its start-up comparison ("initial sync done", the full sync
// of every cluster it runs at start), with the requests it sent meanwhile
// and its peak RSS. A second, fresh start then gets one deploy request as
// soon as /readyz answers, to see whether it is answered before the
// start-up comparison ends. Each start has a data directory of its own
// (a fresh clone and store, as a new pod).
func runServeStartup(ctx context.Context, w *world, bin string, m *Measure) error {
	if err := serveAvailable(ctx, bin); err != nil {
		m.Status, m.Error = "skipped", "mgo serve not available: "+err.Error()
		return nil
	}
	st := &StartupStats{Signal: "mgo serve's log line \"" + startupOK + "\" (level info), logged when the start-up sync of the cluster returns"}
	m.Startup = st
	cluster := w.Cluster.Env.Context

	// 1. The start-up alone.
	if _, err := w.Cluster.Requests(); err != nil { // count from here on
		return err
	}
	p, err := startServe(ctx, w, bin, serveOptions{dataDir: "serve-startup-1"})
	if err != nil {
		return err
	}
	if err := waitReady(ctx, p.base+"/readyz", 5*time.Minute, p.exited, &p.waitErr); err != nil {
		p.stop()
		return fmt.Errorf("mgo serve did not become ready: %w", err)
	}
	st.ReadySeconds = time.Since(p.started).Seconds()
	done, err := p.waitLine(ctx, startupLine, 10*time.Minute)
	if err != nil {
		p.stop()
		return err
	}
	st.StartupSeconds = done.Sub(p.started).Seconds()
	reqs, err := w.Cluster.Requests()
	m.Usage = p.stop()
	if err != nil {
		return err
	}
	m.WallSeconds = st.StartupSeconds
	m.setRequests(reqs)
	if !p.lines.matching(startupOK) {
		return fmt.Errorf("the start-up sync did not succeed: %s", p.lines.firstLine(startupLine))
	}

	// 2. A fresh start with one deploy as soon as the API answers.
	if _, err := w.Cluster.Requests(); err != nil {
		return err
	}
	before, err := w.Cluster.Revisions(ctx)
	if err != nil {
		return err
	}
	p, err = startServe(ctx, w, bin, serveOptions{dataDir: "serve-startup-2"})
	if err != nil {
		return err
	}
	if err := waitReady(ctx, p.base+"/readyz", 5*time.Minute, p.exited, &p.waitErr); err != nil {
		p.stop()
		return fmt.Errorf("mgo serve (second start) did not become ready: %w", err)
	}
	i := spread(len(w.Repo.Releases), 1)[0]
	r := w.Repo.Releases[i]
	const tag = "4.0.0"
	st.DeploySentSeconds = time.Since(p.started).Seconds()
	a := p.deploy(ctx, cluster, r, tag)
	b := &BurstStats{Requests: 1, Codes: map[int]int{a.Code: 1}, P50: a.Latency.Seconds(), P95: a.Latency.Seconds(),
		Max: a.Latency.Seconds(), Total: a.Latency.Seconds()}
	if a.Code/100 == 2 && a.Status == "succeeded" {
		b.Succeeded = 1
		w.Repo.Releases[i].Tag = tag
	} else {
		b.Errors = []string{fmt.Sprintf("%s: HTTP %d %s %s", r.Name, a.Code, a.Status, a.Error)}
	}
	st.Deploy = b
	if !a.Synced.IsZero() {
		st.DeploySyncSeconds = a.Synced.Sub(p.started).Seconds()
	}
	done2, err := p.waitLine(ctx, startupLine, 10*time.Minute)
	if err != nil {
		st.WithDeployStartupErr = err.Error()
	} else {
		st.WithDeployStartup = done2.Sub(p.started).Seconds()
		st.DeployAnsweredFirst = a.At.Before(done2)
		st.DeploySyncedFirst = !a.Synced.IsZero() && a.Synced.Before(done2)
	}
	reqs2, err := w.Cluster.Requests()
	u2 := p.stop()
	if err != nil {
		return err
	}
	st.WithDeployRequests, st.WithDeployMaxRSSKiB = reqs2, u2.MaxRSSKiB
	after, err := w.Cluster.Revisions(ctx)
	if err != nil {
		return err
	}
	st.WithDeployRevisions = newRevisions(before, after)
	if b.Succeeded != 1 {
		m.Status, m.Error = "failed", "the deploy sent during the start-up failed: "+b.Errors[0]
	}
	return nil
}

// ResyncStats is what a resync of a synced, settled cluster costs mgo
// serve: one periodic drift check (--resync-interval) and one sync asked
// through the API (POST /api/v1/clusters/{cluster}/sync?full=true).
type ResyncStats struct {
	Interval float64 `json:"intervalSeconds"`
	// Periodic: the requests between the end of one periodic check and
	// the end of the next (nothing else runs meanwhile).
	Periodic              Requests `json:"periodic"`
	PeriodicBeyondWatches int      `json:"periodicBeyondWatches"`
	// API: the requests and wall time of the sync request.
	API              Requests `json:"api"`
	APIBeyondWatches int      `json:"apiBeyondWatches"`
	APISeconds       float64  `json:"apiSeconds"`
	APICode          int      `json:"apiCode"`
}

// beyondWatches counts the requests that are not watches.
func beyondWatches(r Requests) int { return r.Total() - r["watch"] }

// runServeResync measures resyncs of a cluster that already equals the
// repo, by a settled `mgo serve` (start-up sync done and one periodic drift
// check after it): the requests of the next periodic drift check, then of
// a full sync asked through the API at once after it. The target is no
// request beyond the watches: the live-state cache decides everything.
func runServeResync(ctx context.Context, w *world, bin string, interval time.Duration, m *Measure) error {
	if err := serveAvailable(ctx, bin); err != nil {
		m.Status, m.Error = "skipped", "mgo serve not available: "+err.Error()
		return nil
	}
	cluster := w.Cluster.Env.Context
	p, err := startServe(ctx, w, bin, serveOptions{dataDir: "serve-resync", resyncInterval: interval})
	if err != nil {
		return err
	}
	fail := func(err error) error { m.Usage = p.stop(); return err }
	if err := waitReady(ctx, p.base+"/readyz", 5*time.Minute, p.exited, &p.waitErr); err != nil {
		return fail(fmt.Errorf("mgo serve did not become ready: %w", err))
	}
	synced, err := p.waitLine(ctx, startupLine, 10*time.Minute)
	if err != nil {
		return fail(err)
	}
	if !p.lines.matching(startupOK) {
		return fail(fmt.Errorf("the start-up sync did not succeed: %s", p.lines.firstLine(startupLine)))
	}
	// nextCheck waits for a drift check that ended after since.
	nextCheck := func(since time.Time) (time.Time, error) {
		deadline := time.Now().Add(3*interval + 5*time.Minute)
		for time.Now().Before(deadline) {
			if _, checked, err := p.cluster(ctx, cluster); err == nil && checked.After(since) {
				return checked, nil
			}
			select {
			case <-time.After(100 * time.Millisecond):
			case <-p.exited:
				return time.Time{}, fmt.Errorf("mgo serve exited: %v", p.waitErr)
			case <-ctx.Done():
				return time.Time{}, ctx.Err()
			}
		}
		return time.Time{}, fmt.Errorf("no periodic drift check ended within %s", 3*interval+5*time.Minute)
	}
	settled, err := nextCheck(synced) // settled: one check after the start-up
	if err != nil {
		return fail(err)
	}
	st := &ResyncStats{Interval: interval.Seconds()}
	m.Resync = st
	if _, err := w.Cluster.Requests(); err != nil { // count from here on
		return fail(err)
	}
	before, err := w.Cluster.Revisions(ctx)
	if err != nil {
		return fail(err)
	}
	if _, err := nextCheck(settled); err != nil {
		return fail(err)
	}
	if st.Periodic, err = w.Cluster.Requests(); err != nil {
		return fail(err)
	}
	st.PeriodicBeyondWatches = beyondWatches(st.Periodic)

	// At once after a periodic check, so the next one is an interval away.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/api/v1/clusters/"+cluster+"/sync?full=true", nil)
	req.Header.Set("Authorization", "Bearer "+p.token)
	t0 := time.Now()
	resp, err := (&http.Client{Timeout: 10 * time.Minute}).Do(req)
	if err != nil {
		return fail(fmt.Errorf("POST /api/v1/clusters/%s/sync: %w", cluster, err))
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	st.APISeconds, st.APICode = time.Since(t0).Seconds(), resp.StatusCode
	if st.API, err = w.Cluster.Requests(); err != nil {
		return fail(err)
	}
	st.APIBeyondWatches = beyondWatches(st.API)
	after, err := w.Cluster.Revisions(ctx)
	if err != nil {
		return fail(err)
	}
	m.Usage = p.stop()
	all := Requests{}
	for _, r := range []Requests{st.Periodic, st.API} {
		for v, n := range r {
			all[v] += n
		}
	}
	m.setRequests(all)
	m.WallSeconds = st.APISeconds
	m.Revisions = newRevisions(before, after)
	if resp.StatusCode != http.StatusOK {
		m.Status, m.Error = "failed", fmt.Sprintf("POST /api/v1/clusters/%s/sync?full=true: HTTP %d: %s", cluster, resp.StatusCode, oneLine(string(body), 300))
	}
	return nil
}
