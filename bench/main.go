// Command bench measures mgo against the tools a team would use instead to
// keep a cluster equal to a gitops repo, a `helm upgrade --install` loop and
// helmfile, and against the floor: the same rendered objects applied by
// server-side apply without Helm (bench/floor). Every contender gets a fresh
// local control plane (internal/testenv) with an audit log and an API
// identity of its own, the same gitops repo of N releases, and the same
// scenarios: first sync, no-op resync, one image changed, ten images
// changed, and (mgo only, through mgo serve) a burst of deploy requests,
// deploys one after the other, an out-of-band change until mgo reports the
// drift, the service's start-up on the synced cluster (with a deploy sent
// during it) and a no-op resync of a settled service. It reports wall time,
// API requests by verb and writes, new Helm revisions, peak RSS and CPU of
// the contender's processes, prints a table with the ratios mgo/contender
// (mgo's first sync over the floor's among them), and writes the raw
// results as JSON.
//
//	go run ./bench [-n 100] [-contenders mgo,floor,helm,helmfile] [-scenarios ...] [-helm-diff PATH] [-out file.json]
//
// `make bench` runs it. See docs/benchmarks.md.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Scenarios, in the order they run.
const (
	firstSync   = "first-sync"
	noopSync    = "noop-sync"
	oneImage    = "one-image"
	tenImages   = "ten-images"
	deployBurst = "deploy-burst"
	// singleDeploy: deploy requests one after the other, each answered
	// after its rollout, through mgo serve.
	singleDeploy = "single-deploy"
	// drift: an out-of-band change, until mgo serve reports it.
	drift = "drift"
	// serveStartup: mgo serve started on the synced cluster, until its
	// start-up comparison is done; then a deploy sent during a start-up.
	serveStartup = "serve-startup"
	// serveResync: a periodic drift check and a sync asked through the API
	// of a settled mgo serve, nothing having changed.
	serveResync = "serve-resync"
	// steadyState: requests of mgo serve and of Flux over -steady with
	// nothing changing, their periodic checks at -flux-interval.
	steadyState = "steady-state"
)

var allScenarios = []string{firstSync, noopSync, oneImage, tenImages, deployBurst, singleDeploy, drift, serveStartup, serveResync, steadyState}

// serveScenario reports whether s measures mgo serve (mgo only).
func serveScenario(s string) bool {
	return s == deployBurst || s == singleDeploy || s == drift || s == serveStartup || s == serveResync
}

// contenderNames are the contenders -contenders accepts.
var contenderNames = []string{"mgo", "floor", "helm", "helmfile", "flux"}

// Measure is one contender in one scenario.
type Measure struct {
	Contender string `json:"contender"`
	Scenario  string `json:"scenario"`
	// Status is ok, failed, skipped or unavailable.
	Status      string   `json:"status"`
	Error       string   `json:"error,omitempty"`
	WallSeconds float64  `json:"wallSeconds"`
	Requests    Requests `json:"requests"`
	// RequestsTotal and Writes are by the contender's identity only.
	RequestsTotal int `json:"requestsTotal"`
	Writes        int `json:"writes"`
	// Revisions is the number of Helm revisions created.
	Revisions int   `json:"helmRevisions"`
	Usage     Usage `json:"usage"`
	// NotReadySeconds is how long the cluster still needed to match the repo
	// after the contender had finished (0: it waited for the rollout).
	NotReadySeconds float64       `json:"notReadySeconds"`
	Burst           *BurstStats   `json:"burst,omitempty"`
	Drift           *DriftStats   `json:"drift,omitempty"`
	Startup         *StartupStats `json:"startup,omitempty"`
	Resync          *ResyncStats  `json:"resync,omitempty"`
	// Parts splits a contender of several processes by identity (Flux:
	// source-controller and helm-controller): requests, CPU in the scenario,
	// peak RSS since the process started.
	Parts map[string]Part `json:"parts,omitempty"`
	// Load1 is the machine's 1-minute load average when the scenario ended:
	// other work on the machine slows every contender down.
	Load1 float64 `json:"load1"`
}

// Part is one process of a contender in a scenario.
type Part struct {
	Requests      Requests `json:"requests"`
	RequestsTotal int      `json:"requestsTotal"`
	Writes        int      `json:"writes"`
	Usage         Usage    `json:"usage"`
}

func (m *Measure) setRequests(r Requests) {
	m.Requests = r
	m.RequestsTotal = r.Total()
	m.Writes = r.Writes()
}

// ContenderInfo describes a contender of a run.
type ContenderInfo struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Available   bool   `json:"available"`
	Reason      string `json:"reason,omitempty"`
}

// Results is the JSON written by -out.
type Results struct {
	Date       time.Time       `json:"date"`
	Machine    map[string]any  `json:"machine"`
	Releases   int             `json:"releases"`
	Namespaces int             `json:"namespaces"`
	Chart      string          `json:"chart"`
	Contenders []ContenderInfo `json:"contenders"`
	Tools      []tool          `json:"tools"`
	Measures   []Measure       `json:"measures"`
	// MgoOverFloor is mgo's first-sync wall time divided by the floor's,
	// both measured in this run (target: at most 1.1).
	MgoOverFloor *float64 `json:"mgoFirstSyncOverFloor,omitempty"`
	WallSeconds  float64  `json:"wallSeconds"`
}

type options struct {
	n                   int
	dependsOnLayers     int
	contenders          []string
	scenarios           []string
	out                 string
	mgoBin              string
	mgoRev              string
	helmParallel        int
	helmfileConcurrency int
	burst               int
	deploys             int
	resyncInterval      time.Duration
	helmDiff            string
	timeout             time.Duration
	fluxConcurrent      int
	fluxInterval        time.Duration
	steady              time.Duration
}

func main() {
	var o options
	var contenders, scenarios string
	flag.IntVar(&o.n, "n", 100, "number of Helm releases in the gitops repo (e.g. 1000)")
	flag.IntVar(&o.dependsOnLayers, "depends-on-layers", 0, "chain the releases into this many layers of dependsOn (release i after release i-n/layers), read by mgo only")
	flag.StringVar(&contenders, "contenders", strings.Join(contenderNames, ","), "contenders to run, comma-separated: "+strings.Join(contenderNames, ", "))
	flag.StringVar(&scenarios, "scenarios", strings.Join(allScenarios, ","), "scenarios to report, comma-separated (a first sync always runs: the others need it)")
	flag.StringVar(&o.out, "out", "", "JSON results file (default bench/results/bench-n<N>-<time>.json; a .log beside it keeps the contenders' output)")
	flag.StringVar(&o.mgoBin, "mgo", "", "mgo binary to measure (default: build ./cmd/mgo from the working tree into bin/mgo)")
	flag.StringVar(&o.mgoRev, "mgo-rev", "", "build mgo from this git revision instead of the working tree")
	flag.IntVar(&o.helmParallel, "helm-parallel", 1, "releases the helm loop upgrades at once")
	flag.IntVar(&o.helmfileConcurrency, "helmfile-concurrency", 4, "helmfile --concurrency (mgo's default is 4 releases at once)")
	flag.IntVar(&o.burst, "burst", 30, "deploy requests in the deploy-burst scenario")
	flag.IntVar(&o.deploys, "deploys", 20, "deploy requests, one after the other, in the single-deploy scenario")
	flag.DurationVar(&o.resyncInterval, "resync-interval", 15*time.Second, "mgo serve --resync-interval in the serve-resync scenario")
	flag.StringVar(&o.helmDiff, "helm-diff", os.Getenv("MGO_BENCH_HELM_DIFF"), "a helm-diff plugin binary (built from its source) for `helmfile apply` (env MGO_BENCH_HELM_DIFF; default: try to build it, else `helmfile sync`)")
	flag.IntVar(&o.fluxConcurrent, "flux-concurrent", 4, "helm-controller --concurrent (mgo's 4 releases at once; Flux's own benchmark uses 10)")
	flag.DurationVar(&o.fluxInterval, "flux-interval", time.Minute, "interval of Flux's GitRepository, HelmCharts and HelmReleases (drift detection runs at the HelmRelease interval)")
	flag.DurationVar(&o.steady, "steady", 5*time.Minute, "how long the steady-state scenario counts requests")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up on a contender after this long")
	flag.Parse()
	o.contenders = splitList(contenders)
	o.scenarios = splitList(scenarios)
	for _, c := range o.contenders {
		if !slices.Contains(contenderNames, c) {
			fatalf("-contenders: unknown contender %q", c)
		}
	}
	for _, s := range o.scenarios {
		if !slices.Contains(allScenarios, s) {
			fatalf("-scenarios: unknown scenario %q (have %s)", s, strings.Join(allScenarios, ", "))
		}
	}
	if o.n < 1 {
		fatalf("-n must be at least 1")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := benchmark(ctx, o); err != nil {
		fatalf("%v", err)
	}
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench %s: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(2)
}

// repoRoot finds the mgo module root from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/mygitops/mgo\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run the benchmark inside the mgo repository")
		}
		dir = parent
	}
}

func benchmark(ctx context.Context, o options) error {
	began := time.Now()
	root, err := repoRoot()
	if err != nil {
		return err
	}
	cache, err := benchCache()
	if err != nil {
		return err
	}
	if o.out == "" {
		o.out = filepath.Join(root, "bench", "results", fmt.Sprintf("bench-n%d-%s.json", o.n, began.Format("20060102-150405")))
	}
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return err
	}
	logPath := strings.TrimSuffix(o.out, ".json") + ".log"
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()

	res := &Results{
		Date:       began.UTC(),
		Machine:    machine(),
		Releases:   o.n,
		Namespaces: namespaceCount(o.n),
		Chart:      "internal/charttest/testdata/hello: Deployment (2 replicas), Service, ServiceAccount, ConfigMap",
	}

	// Build the contenders (cached outside the repo, except bin/mgo).
	var ks []contender
	var mgoBin string
	for _, name := range o.contenders {
		info := ContenderInfo{Name: name, Available: true}
		var k contender
		switch name {
		case "mgo":
			t := tool{Name: "mgo", Path: o.mgoBin, Version: "given"}
			switch {
			case o.mgoBin != "":
			case o.mgoRev != "":
				t = buildMgoRev(ctx, root, cache, o.mgoRev)
			default:
				t = buildMgo(ctx, root)
			}
			res.Tools = append(res.Tools, t)
			if t.ok() {
				mgoBin, _ = filepath.Abs(t.Path)
				k = &mgoSync{bin: mgoBin}
			} else {
				info.Reason = "mgo cannot be built: " + t.Error
			}
		case "floor":
			t := buildFloor(ctx, root)
			res.Tools = append(res.Tools, t)
			if t.ok() {
				bin, _ := filepath.Abs(t.Path)
				k = &floorRun{bin: bin}
			} else {
				info.Reason = "bench/floor cannot be built: " + t.Error
			}
		case "helm":
			t := buildHelm(ctx, root, cache)
			res.Tools = append(res.Tools, t)
			if t.ok() {
				k = &helmLoop{bin: t.Path, version: t.Version, parallel: o.helmParallel}
			} else {
				info.Reason = "helm cannot be built: " + t.Error
			}
		case "flux":
			src := buildFluxController(ctx, root, cache, sourceControllerModule, sourceControllerVersion)
			hc := buildFluxController(ctx, root, cache, helmControllerModule, helmControllerVersion)
			res.Tools = append(res.Tools, src.tool, hc.tool)
			switch {
			case !src.ok():
				info.Reason = "source-controller cannot be built: " + src.Error
			case !hc.ok():
				info.Reason = "helm-controller cannot be built: " + hc.Error
			default:
				k = &fluxRun{source: src, helm: hc, concurrent: o.fluxConcurrent, interval: o.fluxInterval}
			}
		case "helmfile":
			h := buildHelm(ctx, root, cache)
			hf := buildHelmfile(ctx, root, cache)
			var diff tool
			if o.helmDiff != "" {
				diff = helmDiffPlugin(ctx, cache, o.helmDiff)
			} else {
				diff = buildHelmDiff(ctx, root, cache)
			}
			res.Tools = append(res.Tools, hf, diff)
			switch {
			case !h.ok():
				info.Reason = "helm cannot be built: " + h.Error
			case !hf.ok():
				info.Reason = "helmfile cannot be built: " + hf.Error
			default:
				run := &helmfileRun{bin: hf.Path, version: hf.Version, helm: h.Path, concurrency: o.helmfileConcurrency}
				if diff.ok() {
					run.plugins = diff.Path
				} else {
					info.Reason = "no helm-diff plugin, so `helmfile apply` cannot run; measured `helmfile sync` instead: " + diff.Error
				}
				k = run
			}
		}
		if k == nil {
			info.Available = false
		} else {
			info.Description = k.Describe()
			ks = append(ks, k)
		}
		res.Contenders = append(res.Contenders, info)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	for _, c := range res.Contenders {
		if !c.Available {
			logf("%s unavailable: %s", c.Name, c.Reason)
			for _, s := range o.scenarios {
				if !serveScenario(s) || c.Name == "mgo" {
					res.Measures = append(res.Measures, Measure{Contender: c.Name, Scenario: s, Status: "unavailable", Error: c.Reason})
				}
			}
		}
	}

	for _, k := range ks {
		if ctx.Err() != nil {
			break
		}
		logf("%s: %s", k.Name(), k.Describe())
		fmt.Fprintf(logFile, "\n===== %s: %s\n", k.Name(), k.Describe())
		ms, err := runContender(ctx, o, k, mgoBin, logFile)
		if err != nil {
			logf("%s: %v", k.Name(), err)
		}
		res.Measures = append(res.Measures, ms...)
		res.WallSeconds = time.Since(began).Seconds()
		if err := writeJSON(o.out, res); err != nil { // keep what is measured so far
			return err
		}
	}
	res.MgoOverFloor = mgoOverFloor(res.Measures)
	res.WallSeconds = time.Since(began).Seconds()
	if err := writeJSON(o.out, res); err != nil {
		return err
	}
	printReport(os.Stdout, res, o.scenarios)
	logf("results: %s (contender output: %s); %s in all", o.out, logPath, time.Since(began).Round(time.Second))
	return ctx.Err()
}

// runContender runs every scenario with one contender on a fresh control
// plane and returns the measures of the scenarios asked for.
func runContender(ctx context.Context, o options, k contender, mgoBin string, log io.Writer) ([]Measure, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	work, err := os.MkdirTemp("", "mgo-bench-"+k.Name()+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	home := filepath.Join(work, "home")
	if err := os.MkdirAll(filepath.Join(home, "tmp"), 0o755); err != nil {
		return nil, err
	}
	const clusterName = "bench"
	start := time.Now()
	var extra []string
	if _, ok := k.(*fluxRun); ok {
		extra = []string{fluxSourceUser, fluxHelmUser}
	}
	c, err := startCluster(ctx, clusterName, "bench-"+k.Name(), work, extra...)
	if err != nil {
		return nil, fmt.Errorf("control plane: %w", err)
	}
	defer c.Env.Stop()
	if cl, ok := k.(interface{ Close() }); ok {
		defer cl.Close()
	}
	logf("%s: control plane ready in %s", k.Name(), time.Since(start).Round(time.Millisecond))
	g, err := newGitops(filepath.Join(work, "gitops"), clusterName, chartDir(), o.n, o.dependsOnLayers)
	if err != nil {
		return nil, err
	}
	if err := c.CreateNamespaces(ctx, g.Namespaces()); err != nil {
		return nil, err
	}
	w := &world{Repo: g, Cluster: c, Home: home, Log: log}
	wanted := func(s string) bool { return slices.Contains(o.scenarios, s) }

	var out []Measure
	failedFirst := ""
	flux, isFlux := k.(*fluxRun)
	for _, s := range allScenarios {
		if s == steadyState || (isFlux && s == drift) {
			if !wanted(s) || (k.Name() != "mgo" && !isFlux) {
				continue
			}
		} else if serveScenario(s) {
			if !wanted(s) || k.Name() != "mgo" {
				continue
			}
		} else if s != firstSync && !wanted(s) {
			continue
		}
		m := Measure{Contender: k.Name(), Scenario: s, Status: "ok"}
		if failedFirst != "" {
			m.Status, m.Error = "skipped", "the first sync failed: "+failedFirst
			out = append(out, m)
			continue
		}
		logf("%s: %s", k.Name(), s)
		fmt.Fprintf(log, "----- %s %s\n", k.Name(), s)
		if isFlux && s == drift {
			if err := flux.drift(ctx, w, &m); err != nil {
				m.Status, m.Error = "failed", err.Error()
			}
		} else if isFlux && s == steadyState {
			if err := flux.steady(ctx, w, o.steady, &m); err != nil {
				m.Status, m.Error = "failed", err.Error()
			}
		} else if s == steadyState {
			if err := runServeSteady(ctx, w, mgoBin, o.fluxInterval, o.steady, &m); err != nil {
				m.Status, m.Error = "failed", err.Error()
			}
		} else if s == drift {
			if err := runDrift(ctx, w, mgoBin, &m); err != nil {
				m.Status, m.Error = "failed", err.Error()
			}
		} else if s == serveStartup {
			if err := runServeStartup(ctx, w, mgoBin, &m); err != nil {
				m.Status, m.Error = "failed", err.Error()
			}
		} else if s == serveResync {
			if err := runServeResync(ctx, w, mgoBin, o.resyncInterval, &m); err != nil {
				m.Status, m.Error = "failed", err.Error()
			}
		} else if serveScenario(s) {
			k, tag, sequential := o.burst, "2.0.0", false
			if s == singleDeploy {
				k, tag, sequential = o.deploys, "3.0.0", true
			}
			if err := runBurst(ctx, w, mgoBin, k, tag, sequential, &m); err != nil {
				m.Status, m.Error = "failed", err.Error()
			}
		} else if err := measureSync(ctx, w, k, s, &m); err != nil {
			m.Status, m.Error = "failed", err.Error()
		}
		if m.Status == "ok" || m.Status == "failed" {
			if waited, err := c.Verify(ctx, g, 3*time.Minute); err != nil {
				m.Status = "failed"
				m.Error = strings.TrimSpace(m.Error + "; " + err.Error())
			} else {
				m.NotReadySeconds = waited.Seconds()
			}
		}
		m.Load1 = load1()
		logf("%s: %s %s in %.1fs: %d requests (%d writes), %d new revisions, peak RSS %s, CPU %.1fs%s",
			k.Name(), s, m.Status, m.WallSeconds, m.RequestsTotal, m.Writes, m.Revisions,
			fmtKiB(m.Usage.MaxRSSKiB), m.Usage.CPU.Seconds(), errSuffix(m.Error))
		logf("load average %.1f", m.Load1)
		if s == firstSync && m.Status == "failed" {
			failedFirst = m.Error
		}
		if s != firstSync || wanted(s) {
			out = append(out, m)
		}
	}
	return out, nil
}

// measureSync changes the repo as the scenario says, then runs the
// contender and measures it.
func measureSync(ctx context.Context, w *world, k contender, s string, m *Measure) error {
	n := len(w.Repo.Releases)
	switch s {
	case oneImage:
		if err := w.Repo.SetTag("1.0.1", spread(n, 1)...); err != nil {
			return err
		}
	case tenImages:
		if err := w.Repo.SetTag("1.0.2", spread(n, 10)...); err != nil {
			return err
		}
	}
	if _, err := w.Cluster.Requests(); err != nil { // count from here on
		return err
	}
	before, err := w.Cluster.Revisions(ctx)
	if err != nil {
		return err
	}
	w.Scenario = s
	start := time.Now()
	var cpuBefore map[string]Usage
	f, isFlux := k.(*fluxRun)
	if isFlux {
		cpuBefore = f.Parts()
	}
	u, runErr := k.Sync(ctx, w)
	m.WallSeconds = time.Since(start).Seconds()
	if isFlux && !f.ReadyAt().IsZero() {
		m.WallSeconds = f.ReadyAt().Sub(start).Seconds()
	}
	m.Usage = u
	reqs, err := w.Cluster.Requests()
	if err != nil {
		return err
	}
	m.setRequests(reqs)
	if isFlux {
		m.Parts = map[string]Part{}
		for user, pu := range f.Parts() {
			pu.CPU -= cpuBefore[user].CPU
			r := w.Cluster.LastByUser[user]
			m.Parts[user] = Part{Requests: r, RequestsTotal: r.Total(), Writes: r.Writes(), Usage: pu}
		}
	}
	after, err := w.Cluster.Revisions(ctx)
	if err != nil {
		return err
	}
	m.Revisions = newRevisions(before, after)
	return runErr
}

func chartDir() string {
	root, _ := repoRoot()
	return filepath.Join(root, "internal", "charttest", "testdata", "hello")
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return ": " + e
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// machine describes where the benchmark ran.
func machine() map[string]any {
	m := map[string]any{"cpus": runtime.NumCPU(), "goos": runtime.GOOS, "goarch": runtime.GOARCH, "go": runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for l := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kib int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kib); err == nil {
			m["memory"] = fmtKiB(kib)
		}
	}
	return m
}

// load1 is the 1-minute load average.
func load1() float64 {
	var l float64
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		_, _ = fmt.Sscanf(string(b), "%f", &l)
	}
	return l
}

// mgoOverFloor is mgo's first-sync wall time over the floor's, when both
// were measured.
func mgoOverFloor(ms []Measure) *float64 {
	var mgo, floor *Measure
	for i := range ms {
		if ms[i].Scenario != firstSync || ms[i].Status != "ok" {
			continue
		}
		switch ms[i].Contender {
		case "mgo":
			mgo = &ms[i]
		case "floor":
			floor = &ms[i]
		}
	}
	if mgo == nil || floor == nil {
		return nil
	}
	return ratio(mgo.WallSeconds, floor.WallSeconds)
}
