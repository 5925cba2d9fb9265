package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// contender is a way to make a cluster equal to the gitops repo.
type contender interface {
	// Name is the short name used by -contenders and in the table.
	Name() string
	// Describe says what runs, for the report.
	Describe() string
	// Sync makes the cluster equal to the repo and waits for the rollout.
	Sync(ctx context.Context, w *world) (Usage, error)
}

// world is what a contender works on: the repo, the cluster, and a home
// directory of its own (Helm's config, cache and data, the discovery cache,
// the chart cache) kept across the scenarios, as a CI runner or an operator's
// laptop would keep it.
type world struct {
	Repo    *gitops
	Cluster *cluster
	Home    string
	Log     io.Writer
	// Scenario is the scenario being measured.
	Scenario string
}

// baseEnv is the environment of every contender process: nothing of the
// benchmark's own user configuration leaks in.
func (w *world) baseEnv(extra ...string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + w.Home,
		"TMPDIR=" + filepath.Join(w.Home, "tmp"),
		"KUBECONFIG=" + w.Cluster.Kubeconfig,
		"HELM_CACHE_HOME=" + filepath.Join(w.Home, "helm", "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(w.Home, "helm", "config"),
		"HELM_DATA_HOME=" + filepath.Join(w.Home, "helm", "data"),
		"NO_COLOR=1",
	}
	return append(env, extra...)
}

// mgoSync runs `mgo sync`: one process renders every release, diffs it
// against the live cluster and upgrades what differs.
type mgoSync struct{ bin string }

func (m *mgoSync) Name() string { return "mgo" }
func (m *mgoSync) Describe() string {
	return "`mgo sync` (" + m.bin + "), default budget: 50 QPS, burst 100, 4 releases at once"
}

func (m *mgoSync) Sync(ctx context.Context, w *world) (Usage, error) {
	return run(ctx, command{
		Path: m.bin,
		Args: []string{"sync", "--repo", w.Repo.Dir, "--cluster", w.Cluster.Env.Context,
			"--kubeconfig", w.Cluster.Kubeconfig, "--chart-cache", filepath.Join(w.Home, "charts"), "--timeout", "5m"},
		Env: w.baseEnv(),
		Dir: w.Home,
		Log: w.Log,
	})
}

// helmLoop is the script many teams start with: `helm upgrade --install`
// once per values file, every time.
type helmLoop struct {
	bin      string
	version  string
	parallel int
}

func (h *helmLoop) Name() string { return "helm" }
func (h *helmLoop) Describe() string {
	p := "one release at a time"
	if h.parallel > 1 {
		p = fmt.Sprintf("%d releases at a time", h.parallel)
	}
	return fmt.Sprintf("`helm upgrade --install --wait` per release, %s (helm %s)", p, h.version)
}

func (h *helmLoop) Sync(ctx context.Context, w *world) (Usage, error) {
	var (
		mu    sync.Mutex
		total Usage
		errs  []error
	)
	jobs := make(chan release)
	var wg sync.WaitGroup
	for range max(1, h.parallel) {
		wg.Go(func() {
			for r := range jobs {
				u, err := run(ctx, command{
					Path: h.bin,
					Args: []string{"upgrade", "--install", r.Name, w.Repo.ChartDir(),
						"--namespace", r.Namespace, "--kube-context", w.Cluster.Env.Context,
						"--values", w.Repo.ValuesFile(r), "--wait", "--timeout", "5m"},
					Env: w.baseEnv(),
					Dir: w.Home,
					Log: w.Log,
				})
				mu.Lock()
				total.Add(u)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", r.Name, err))
				}
				mu.Unlock()
			}
		})
	}
	for _, r := range w.Repo.Releases {
		select {
		case jobs <- r:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	if len(errs) > 0 {
		return total, fmt.Errorf("%d of %d helm runs failed, first: %w", len(errs), len(w.Repo.Releases), errs[0])
	}
	return total, ctx.Err()
}

// helmfileRun runs helmfile over a helmfile.yaml that lists the same
// releases with the same chart and values files. With the helm-diff plugin
// it runs `helmfile apply` (diff first, upgrade only what differs); without
// it `helmfile sync` (upgrade every release), the only mode that works.
type helmfileRun struct {
	bin         string
	version     string
	helm        string
	plugins     string // HELM_PLUGINS with helm-diff, or ""
	concurrency int
}

func (h *helmfileRun) Name() string { return "helmfile" }
func (h *helmfileRun) Describe() string {
	return fmt.Sprintf("`helmfile %s --concurrency %d` (helmfile %s)", h.verb(), h.concurrency, h.version)
}

func (h *helmfileRun) verb() string {
	if h.plugins != "" {
		return "apply"
	}
	return "sync"
}

func (h *helmfileRun) Sync(ctx context.Context, w *world) (Usage, error) {
	file := filepath.Join(w.Home, "helmfile.yaml")
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(file, []byte(helmfileYAML(w)), 0o644); err != nil {
			return Usage{}, err
		}
	}
	env := w.baseEnv()
	if h.plugins != "" {
		env = append(env, "HELM_PLUGINS="+h.plugins)
	}
	return run(ctx, command{
		Path: h.bin,
		Args: []string{"--file", file, "--helm-binary", h.helm, "--no-color", h.verb(), "--concurrency", fmt.Sprint(h.concurrency)},
		Env:  env,
		Dir:  w.Home,
		Log:  w.Log,
	})
}

// helmfileYAML lists the repo's releases for helmfile: the same chart and
// values files as the other contenders.
func helmfileYAML(w *world) string {
	var b strings.Builder
	fmt.Fprintf(&b, "helmDefaults:\n  kubeContext: %s\n  wait: true\n  timeout: 300\n  createNamespace: false\n\nreleases:\n", w.Cluster.Env.Context)
	for _, r := range w.Repo.Releases {
		fmt.Fprintf(&b, "  - name: %s\n    namespace: %s\n    chart: %s\n    values:\n      - %s\n", r.Name, r.Namespace, w.Repo.ChartDir(), w.Repo.ValuesFile(r))
	}
	return b.String()
}

// floorRun runs bench/floor: the objects mgo would apply, rendered with
// mgo's own packages inside the measured run, applied without Helm by one
// server-side apply each, as many releases at once and with the same client
// budget as mgo (the cluster's budget in mygitops.yaml: 50 QPS, burst 100,
// 4 releases at once), then the same wait for the rollout. Every run applies
// everything. The lower bound of what a sync through Helm can cost.
type floorRun struct{ bin string }

func (f *floorRun) Name() string { return "floor" }
func (f *floorRun) Describe() string {
	return "bench/floor (" + f.bin + "): render with mgo's packages, one server-side apply per object, no Helm, wait for the Deployments; 50 QPS, burst 100, 4 releases at once"
}

func (f *floorRun) Sync(ctx context.Context, w *world) (Usage, error) {
	return run(ctx, command{
		Path: f.bin,
		Args: []string{"--repo", w.Repo.Dir, "--cluster", w.Cluster.Env.Context,
			"--kubeconfig", w.Cluster.Kubeconfig, "--chart-cache", filepath.Join(w.Home, "floor-charts"), "--timeout", "5m"},
		Env: w.baseEnv(),
		Dir: w.Home,
		Log: w.Log,
	})
}
