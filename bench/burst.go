package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mygitops/mgo/internal/auth"
)

// BurstStats are the end-to-end latencies of the deploy requests of a burst:
// from sending the request to the answer (commit, sync, rollout done).
type BurstStats struct {
	Requests  int         `json:"requests"`
	Succeeded int         `json:"succeeded"`
	Codes     map[int]int `json:"codes"`
	P50       float64     `json:"p50Seconds"`
	P95       float64     `json:"p95Seconds"`
	Max       float64     `json:"maxSeconds"`
	Total     float64     `json:"totalSeconds"`
	Errors    []string    `json:"errors,omitempty"`
}

// serveAvailable runs `mgo serve --help`: the deploy API scenario needs the
// service.
func serveAvailable(ctx context.Context, bin string) error {
	out, err := exec.CommandContext(ctx, bin, "serve", "--help").CombinedOutput()
	if err != nil {
		return fmt.Errorf("`mgo serve --help`: %v: %s", err, tail(string(out), 2))
	}
	for _, flag := range []string{"--repo-url", "--listen", "--tokens-file", "--kubeconfig", "--data-dir"} {
		if !strings.Contains(string(out), flag) {
			return fmt.Errorf("`mgo serve` has no %s flag", flag)
		}
	}
	return nil
}

// runBurst measures `mgo serve` answering deploy requests: k requests, each
// a new tag for a different release, every one waiting for the rollout
// (wait: true); all at the same moment, as CI pipelines finishing at once
// would send them, or one after the other (sequential: the latency of one
// deploy). The service runs on the contender's cluster, after the other
// scenarios, started anew for each scenario; its startup (clone, first
// sync) is not measured.
func runBurst(ctx context.Context, w *world, bin string, k int, tag string, sequential bool, m *Measure) error {
	if err := serveAvailable(ctx, bin); err != nil {
		m.Status = "skipped"
		m.Error = "mgo serve not available: " + err.Error()
		return nil
	}
	// The gitops repo as a git remote.
	remote := filepath.Join(w.Home, "gitops.git")
	if err := gitRemote(ctx, w.Repo.Dir, remote); err != nil {
		return err
	}
	token := auth.NewToken()
	tokens := filepath.Join(w.Home, "tokens.yaml")
	if err := os.WriteFile(tokens, fmt.Appendf(nil, "tokens:\n  - name: ci\n    sha256: %s\n    clusters: [%q]\n    triggerRepos: [\"*\"]\n",
		auth.Hash(token), w.Cluster.Env.Context), 0o600); err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "serve",
		"--repo-url", "file://"+remote, "--branch", "main",
		"--listen", addr, "--data-dir", filepath.Join(w.Home, "serve"),
		"--kubeconfig", w.Cluster.Kubeconfig, "--tokens-file", tokens,
		"--poll-interval", "0", "--resync-interval", "0", "--log-level", "warn",
		"--repo-id", serveRepoID)
	cmd.Env = w.baseEnv()
	cmd.Dir = w.Home
	cmd.Stdout = w.Log
	cmd.Stderr = w.Log
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
	if err := waitReady(ctx, base+"/readyz", 5*time.Minute, exited, &waitErr); err != nil {
		stop()
		m.Status = "skipped"
		m.Error = "mgo serve did not become ready: " + err.Error()
		return nil
	}
	// Only the burst is measured.
	if _, err := w.Cluster.Requests(); err != nil {
		stop()
		return err
	}
	before, err := w.Cluster.Revisions(ctx)
	if err != nil {
		stop()
		return err
	}
	idx := spread(len(w.Repo.Releases), k)
	lat := make([]time.Duration, len(idx))
	codes := make([]int, len(idx))
	errs := make([]string, len(idx))
	client := &http.Client{Timeout: 10 * time.Minute}
	start := time.Now()
	var wg sync.WaitGroup
	for j, i := range idx {
		r := w.Repo.Releases[i]
		if sequential {
			wg.Wait() // the previous deploy is answered
		}
		wg.Go(func() {
			body, _ := json.Marshal(map[string]any{
				"cluster": w.Cluster.Env.Context, "triggerRepo": TriggerRepo(r), "imageRepo": ImageRepo(r),
				"tag": tag, "author": "CI <ci@example.com>", "wait": true,
			})
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/deployments", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				lat[j], errs[j] = time.Since(t0), err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			lat[j], codes[j] = time.Since(t0), resp.StatusCode
			var ans struct {
				Status string `json:"status"`
				Error  string `json:"error"`
			}
			_ = json.Unmarshal(b, &ans)
			if resp.StatusCode/100 != 2 || ans.Status != "succeeded" {
				errs[j] = fmt.Sprintf("%s: HTTP %d %s %s", r.Name, resp.StatusCode, ans.Status, strings.TrimSpace(ans.Error))
			}
		})
	}
	wg.Wait()
	total := time.Since(start)
	reqs, err := w.Cluster.Requests()
	if err != nil {
		stop()
		return err
	}
	after, err := w.Cluster.Revisions(ctx)
	if err != nil {
		stop()
		return err
	}
	m.Usage = stop()
	st := &BurstStats{Requests: len(idx), Codes: map[int]int{}, Total: total.Seconds(),
		P50: percentile(lat, 50).Seconds(), P95: percentile(lat, 95).Seconds(), Max: percentile(lat, 100).Seconds()}
	for j := range idx {
		st.Codes[codes[j]]++
		if errs[j] == "" {
			st.Succeeded++
		} else if len(st.Errors) < 5 {
			st.Errors = append(st.Errors, errs[j])
		}
	}
	m.Burst = st
	m.WallSeconds = total.Seconds()
	m.setRequests(reqs)
	m.Revisions = newRevisions(before, after)
	for _, i := range idx {
		w.Repo.Releases[i].Tag = tag // what the cluster should now run
	}
	if st.Succeeded != st.Requests {
		m.Status = "failed"
		m.Error = fmt.Sprintf("%d of %d deploy requests failed: %s", st.Requests-st.Succeeded, st.Requests, strings.Join(st.Errors, "; "))
	}
	return nil
}

// gitRemote makes a bare repository holding dir as one commit on main; a
// remote made for an earlier scenario is kept (mgo serve pushed to it).
func gitRemote(ctx context.Context, dir, remote string) error {
	if _, err := os.Stat(remote); err == nil {
		return nil
	}
	git := func(d string, args ...string) error {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = d
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@example.com",
			"GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@example.com")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, tail(string(out), 3))
		}
		return nil
	}
	if err := git(dir, "init", "-q", "-b", "main"); err != nil {
		return err
	}
	if err := git(dir, "add", "-A", "."); err != nil {
		return err
	}
	if err := git(dir, "commit", "-q", "-m", "benchmark repo"); err != nil {
		return err
	}
	return git(dir, "clone", "-q", "--bare", dir, remote)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitReady polls url until it answers 200, the process exits or timeout.
func waitReady(ctx context.Context, url string, timeout time.Duration, exited <-chan struct{}, waitErr *error) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("exited: %v", *waitErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		resp, err := http.Get(url)
		if err != nil {
			last = err.Error()
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
		last = resp.Status
	}
	return fmt.Errorf("%s not ready after %s (last: %s)", url, timeout, last)
}
