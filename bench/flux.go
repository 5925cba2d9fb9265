package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
)

// Flux, pinned: the controllers a platform team would run instead of mgo to
// keep Helm releases equal to a git repo. Built from their Go modules (the
// module proxy serves them) once per cache; nothing of their source is kept
// in this repository.
const (
	sourceControllerModule  = "github.com/fluxcd/source-controller"
	sourceControllerVersion = "v1.7.0"
	helmControllerModule    = "github.com/fluxcd/helm-controller"
	helmControllerVersion   = "v1.4.0"
	fluxNamespace           = "flux-system"
	// The identities of the two controllers on the contender's cluster.
	fluxSourceUser = "bench-flux-source-controller"
	fluxHelmUser   = "bench-flux-helm-controller"
)

var (
	gitRepositoryGVR = schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "gitrepositories"}
	helmReleaseGVR   = schema.GroupVersionResource{Group: "helm.toolkit.fluxcd.io", Version: "v2", Resource: "helmreleases"}
)

// fluxModule is one Flux controller built into the cache.
type fluxModule struct {
	tool
	CRDs string // the module's config/crd/bases
}

// buildFluxController builds a Flux controller's main package (the module
// root) from a copy of its module whose `replace <module>/api => ./api` is
// dropped, so that the api module the proxy publishes at the same version is
// used, as `go install module@version` cannot build a module with replace
// directives. The other replace directives stay.
func buildFluxController(ctx context.Context, root, cache, module, version string) fluxModule {
	name := filepath.Base(module)
	dir, err := moduleDir(ctx, root, module+"@"+version)
	if err != nil {
		return fluxModule{tool: tool{Name: name, Version: version, Error: err.Error()}}
	}
	t := cached(ctx, cache, name, version, func(tmp string) error {
		src := filepath.Join(tmp, "src")
		if err := os.CopyFS(src, os.DirFS(dir)); err != nil {
			return err
		}
		defer os.RemoveAll(src)
		gomod := filepath.Join(src, "go.mod") // writable: CopyFS makes files 0666
		b, err := os.ReadFile(gomod)
		if err != nil {
			return err
		}
		var out []string
		for l := range strings.SplitSeq(string(b), "\n") {
			if strings.TrimSpace(l) == "replace "+module+"/api => ./api" {
				continue
			}
			out = append(out, l)
		}
		if err := os.WriteFile(gomod, []byte(strings.Join(out, "\n")), 0o644); err != nil {
			return err
		}
		return goBuild(ctx, src, []string{"CGO_ENABLED=0", "GOFLAGS=-mod=mod"},
			"build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(tmp, name), ".")
	})
	return fluxModule{tool: t, CRDs: filepath.Join(dir, "config", "crd", "bases")}
}

// moduleDir downloads a module through the Go module proxy and returns its
// directory in the module cache.
func moduleDir(ctx context.Context, root, modVersion string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", modVersion)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s: %v", modVersion, err)
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil {
		return "", err
	}
	if m.Error != "" || m.Dir == "" {
		return "", fmt.Errorf("go mod download %s: %s", modVersion, m.Error)
	}
	return m.Dir, nil
}

// fluxRun is Flux's source-controller and helm-controller running as local
// processes against the contender's cluster, each with an identity of its
// own. The repo reaches Flux as a Flux user would serve it: a GitRepository
// of the benchmark repo over HTTP (git http-backend) and one HelmRelease per
// values file, its chart the repo's charts/hello from that GitRepository with
// the chart's values.yaml and the release's values file as valuesFiles. A
// values file changed in git reaches a release only with the HelmChart's
// reconcileStrategy Revision (with ChartVersion, source-controller does not
// rebuild a chart whose version did not change), so every commit gives every
// release a new chart version (0.1.0+<commit>.<generation>) and an upgrade.
type fluxRun struct {
	source, helm fluxModule
	concurrent   int
	interval     time.Duration

	started bool
	procs   map[string]*exec.Cmd // identity -> process
	exited  chan string          // a controller that ended, with its error
	waited  chan struct{}        // closed when every controller was waited for
	srv     *http.Server
	url     string
	dyn     dynamic.Interface
	// readyAt is when the releases the scenario changed were rolled out.
	readyAt time.Time
}

func (f *fluxRun) Name() string { return "flux" }
func (f *fluxRun) Describe() string {
	return fmt.Sprintf("Flux source-controller %s + helm-controller %s (--concurrent %d), local processes, --kube-api-qps 50 --kube-api-burst 100 each; GitRepository over HTTP, one HelmRelease per values file (valuesFiles, reconcileStrategy Revision, driftDetection enabled), intervals %s",
		f.source.Version, f.helm.Version, f.concurrent, f.interval)
}

func (f *fluxRun) Sync(ctx context.Context, w *world) (Usage, error) {
	f.readyAt = time.Time{}
	before := f.cpu()
	var err error
	switch {
	case !f.started:
		err = f.firstSync(ctx, w)
	case w.Scenario == noopSync:
		err = f.noop(ctx, w)
	default:
		err = f.commit(ctx, w)
	}
	u := f.usage()
	u.CPU -= before
	return u, err
}

// ReadyAt is when the scenario's changed releases were rolled out, zero when
// Sync's return is.
func (f *fluxRun) ReadyAt() time.Time { return f.readyAt }

func (f *fluxRun) firstSync(ctx context.Context, w *world) error {
	f.started = true
	c := w.Cluster
	dyn, err := dynamic.NewForConfig(c.Env.Config)
	if err != nil {
		return err
	}
	f.dyn = dyn
	// The CRDs and the namespace, as the administrator (not counted).
	for _, dir := range []string{f.source.CRDs, f.helm.CRDs} {
		if err := applyCRDs(ctx, dyn, dir); err != nil {
			return err
		}
	}
	if err := c.CreateNamespaces(ctx, []string{fluxNamespace}); err != nil {
		return err
	}
	// The repo over HTTP.
	remote := filepath.Join(w.Home, "gitops.git")
	if err := gitRemote(ctx, w.Repo.Dir, remote); err != nil {
		return err
	}
	if err := f.serveGit(ctx, w.Home); err != nil {
		return err
	}
	if err := f.startControllers(ctx, w); err != nil {
		return err
	}
	if err := f.create(ctx, w); err != nil {
		return err
	}
	return f.waitReleases(ctx, w, func(hr *unstructured.Unstructured) bool { return true })
}

// serveGit serves the bare repos under home over git's smart HTTP protocol.
func (f *fluxRun) serveGit(ctx context.Context, home string) error {
	out, err := exec.CommandContext(ctx, "git", "--exec-path").Output()
	if err != nil {
		return fmt.Errorf("git --exec-path: %v", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	f.srv = &http.Server{Handler: &cgi.Handler{Path: backend, Root: "/",
		Env: []string{"GIT_PROJECT_ROOT=" + home, "GIT_HTTP_EXPORT_ALL=1"}}}
	go func() { _ = f.srv.Serve(l) }()
	f.url = "http://" + l.Addr().String() + "/gitops.git"
	return nil
}

func (f *fluxRun) startControllers(ctx context.Context, w *world) error {
	f.procs = map[string]*exec.Cmd{}
	f.exited = make(chan string, 2)
	f.waited = make(chan struct{})
	storagePath := filepath.Join(w.Home, "flux-storage")
	if err := os.MkdirAll(storagePath, 0o755); err != nil {
		return err
	}
	budget := []string{"--kube-api-qps", "50", "--kube-api-burst", "100", "--enable-leader-election=false", "--metrics-addr", "0", "--log-level", "info"}
	storage, _ := freeAddr()
	health1, _ := freeAddr()
	health2, _ := freeAddr()
	start := func(user, bin string, args ...string) error {
		cmd := exec.CommandContext(ctx, bin, append(args, budget...)...)
		env := w.baseEnv("RUNTIME_NAMESPACE=" + fluxNamespace)
		for i, e := range env {
			if strings.HasPrefix(e, "KUBECONFIG=") {
				env[i] = "KUBECONFIG=" + w.Cluster.Extra[user]
			}
		}
		cmd.Env = env
		cmd.Dir = w.Home
		cmd.Stdout, cmd.Stderr = w.Log, w.Log
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
		cmd.WaitDelay = 20 * time.Second
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("%s: %w", bin, err)
		}
		f.procs[user] = cmd
		return nil
	}
	defer func() {
		procs := f.procs
		var wg sync.WaitGroup
		for user, cmd := range procs {
			wg.Go(func() {
				err := cmd.Wait()
				f.exited <- fmt.Sprintf("%s exited: %v", user, err)
			})
		}
		go func() { wg.Wait(); close(f.waited) }()
	}()
	if err := start(fluxSourceUser, f.source.Path, "--storage-path", storagePath,
		"--storage-addr", storage, "--storage-adv-addr", storage, "--health-addr", health1); err != nil {
		return err
	}
	return start(fluxHelmUser, f.helm.Path, "--concurrent", strconv.Itoa(f.concurrent), "--health-addr", health2)
}

// Close stops the controllers and the git server.
func (f *fluxRun) Close() {
	for _, cmd := range f.procs {
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		}
	}
	if f.waited != nil {
		<-f.waited
	}
	if f.srv != nil {
		_ = f.srv.Close()
	}
	f.started, f.procs, f.srv = false, nil, nil
}

// create makes the GitRepository and the HelmReleases, as the administrator
// (what a user or kustomize-controller would apply once; not counted).
func (f *fluxRun) create(ctx context.Context, w *world) error {
	iv := f.interval.String()
	gr := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
		"metadata": map[string]any{"name": "gitops", "namespace": fluxNamespace},
		"spec":     map[string]any{"url": f.url, "ref": map[string]any{"branch": "main"}, "interval": iv},
	}}
	if _, err := f.dyn.Resource(gitRepositoryGVR).Namespace(fluxNamespace).Create(ctx, gr, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("GitRepository: %w", err)
	}
	chart := "charts/" + chartName
	for _, r := range w.Repo.Releases {
		values, _ := filepath.Rel(w.Repo.Dir, w.Repo.ValuesFile(r))
		hr := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
			"metadata": map[string]any{"name": r.Name, "namespace": r.Namespace},
			"spec": map[string]any{
				"interval":    iv,
				"releaseName": r.Name,
				"chart": map[string]any{"spec": map[string]any{
					"chart":             "./" + chart,
					"sourceRef":         map[string]any{"kind": "GitRepository", "name": "gitops", "namespace": fluxNamespace},
					"reconcileStrategy": "Revision",
					"valuesFiles":       []any{chart + "/values.yaml", values},
					"interval":          iv,
				}},
				"driftDetection": map[string]any{"mode": "enabled"},
			},
		}}
		if _, err := f.dyn.Resource(helmReleaseGVR).Namespace(r.Namespace).Create(ctx, hr, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("HelmRelease %s/%s: %w", r.Namespace, r.Name, err)
		}
	}
	return nil
}

// noop asks every HelmRelease for a reconcile (reconcile.fluxcd.io/requestedAt,
// as `flux reconcile helmrelease` does) and waits until each has handled it.
func (f *fluxRun) noop(ctx context.Context, w *world) error {
	token := time.Now().UTC().Format(time.RFC3339Nano)
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{"reconcile.fluxcd.io/requestedAt":%q}}}`, token)
	for _, r := range w.Repo.Releases {
		if _, err := f.dyn.Resource(helmReleaseGVR).Namespace(r.Namespace).Patch(ctx, r.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return err
		}
	}
	return f.waitReleases(ctx, w, func(hr *unstructured.Unstructured) bool {
		v, _, _ := unstructured.NestedString(hr.Object, "status", "lastHandledReconcileAt")
		return v == token
	})
}

// commit commits the repo's change and pushes it, asks for the
// GitRepository's reconcile as a webhook Receiver would, and waits until the
// changed releases are rolled out (readyAt) and then every release has
// handled the commit.
func (f *fluxRun) commit(ctx context.Context, w *world) error {
	remote := filepath.Join(w.Home, "gitops.git")
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = w.Repo.Dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@example.com",
			"GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, tail(string(out), 3))
		}
		return strings.TrimSpace(string(out)), nil
	}
	for _, args := range [][]string{{"add", "-A", "."}, {"commit", "-q", "-m", w.Scenario}, {"push", "-q", remote, "main"}} {
		if _, err := git(args...); err != nil {
			return err
		}
	}
	sha, err := git("rev-parse", "HEAD")
	if err != nil {
		return err
	}
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{"reconcile.fluxcd.io/requestedAt":%q}}}`, time.Now().UTC().Format(time.RFC3339Nano))
	if _, err := f.dyn.Resource(gitRepositoryGVR).Namespace(fluxNamespace).Patch(ctx, "gitops", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return err
	}
	if _, err := w.Cluster.Verify(ctx, w.Repo, 10*time.Minute); err != nil {
		return err
	}
	f.readyAt = time.Now()
	return f.waitReleases(ctx, w, func(hr *unstructured.Unstructured) bool {
		v, _, _ := unstructured.NestedString(hr.Object, "status", "lastAttemptedRevision")
		return strings.Contains(v, "+"+sha[:12]+".")
	})
}

// waitReleases waits until every HelmRelease is Ready for its generation and
// done says so, then until the cluster matches the repo.
func (f *fluxRun) waitReleases(ctx context.Context, w *world, done func(*unstructured.Unstructured) bool) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 20*time.Minute, true, func(ctx context.Context) (bool, error) {
		select {
		case e := <-f.exited:
			return false, fmt.Errorf("%s", e)
		default:
		}
		list, err := f.dyn.Resource(helmReleaseGVR).Namespace("").List(ctx, metav1.ListOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		if len(list.Items) < len(w.Repo.Releases) {
			last = fmt.Sprintf("%d HelmReleases of %d", len(list.Items), len(w.Repo.Releases))
			return false, nil
		}
		pending := 0
		for i := range list.Items {
			hr := &list.Items[i]
			if !ready(hr) || !done(hr) {
				pending++
				last = fmt.Sprintf("%d HelmReleases pending, e.g. %s/%s: %s", pending, hr.GetNamespace(), hr.GetName(), readyMessage(hr))
			}
		}
		return pending == 0, nil
	})
	if err != nil {
		return fmt.Errorf("HelmReleases: %w (%s)", err, last)
	}
	_, err = w.Cluster.Verify(ctx, w.Repo, 5*time.Minute)
	return err
}

func ready(obj *unstructured.Unstructured) bool {
	og, _, _ := unstructured.NestedInt64(obj.Object, "status", "observedGeneration")
	if og != obj.GetGeneration() {
		return false
	}
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Ready" {
			return m["status"] == "True"
		}
	}
	return false
}

func readyMessage(obj *unstructured.Unstructured) string {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Ready" {
			return fmt.Sprintf("%v: %v", m["status"], m["message"])
		}
	}
	return "no Ready condition"
}

// applyCRDs creates the CRDs of a directory of YAML files and waits until
// they are established.
func applyCRDs(ctx context.Context, dyn dynamic.Interface, dir string) error {
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no CRDs in %s", dir)
	}
	var names []string
	for _, p := range files {
		fh, err := os.Open(p)
		if err != nil {
			return err
		}
		dec := yaml.NewYAMLOrJSONDecoder(fh, 1<<20)
		for {
			var obj unstructured.Unstructured
			if err := dec.Decode(&obj.Object); err != nil {
				break
			}
			if obj.GetKind() != "CustomResourceDefinition" {
				continue
			}
			if _, err := dyn.Resource(crdGVR).Create(ctx, &obj, metav1.CreateOptions{}); err != nil {
				fh.Close()
				return fmt.Errorf("CRD %s: %w", obj.GetName(), err)
			}
			names = append(names, obj.GetName())
		}
		fh.Close()
	}
	for _, n := range names {
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			o, err := dyn.Resource(crdGVR).Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
			for _, c := range conds {
				if m, _ := c.(map[string]any); m["type"] == "Established" && m["status"] == "True" {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("CRD %s not established: %w", n, err)
		}
	}
	return nil
}

// cpu is the CPU time the controllers used so far.
func (f *fluxRun) cpu() time.Duration {
	var d time.Duration
	for _, cmd := range f.procs {
		d += procCPU(cmd.Process.Pid)
	}
	return d
}

// usage is the controllers' CPU so far and the larger peak RSS; the split by
// controller is in Parts.
func (f *fluxRun) usage() Usage {
	u := Usage{Processes: len(f.procs), CPU: f.cpu()}
	for _, cmd := range f.procs {
		u.MaxRSSKiB = max(u.MaxRSSKiB, procHWM(cmd.Process.Pid))
	}
	return u
}

// Parts are the controllers' own CPU so far and peak RSS.
func (f *fluxRun) Parts() map[string]Usage {
	out := map[string]Usage{}
	for user, cmd := range f.procs {
		out[user] = Usage{Processes: 1, CPU: procCPU(cmd.Process.Pid), MaxRSSKiB: procHWM(cmd.Process.Pid)}
	}
	return out
}

// procCPU reads a live process's user and system time (clock ticks of 10ms).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// procHWM reads a live process's peak resident set (VmHWM) in KiB.
func procHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// drift scales one Deployment by hand and waits until helm-controller's
// drift detection (at the HelmRelease interval) has put it back.
func (f *fluxRun) drift(ctx context.Context, w *world, m *Measure) error {
	r := w.Repo.Releases[spread(len(w.Repo.Releases), 1)[0]]
	name := r.Name + "-" + chartName
	if _, err := w.Cluster.Requests(); err != nil { // count from here on
		return err
	}
	before := f.cpu()
	deps := w.Cluster.Env.Client.AppsV1().Deployments(r.Namespace)
	start := time.Now()
	if _, err := deps.Patch(ctx, name, types.MergePatchType, []byte(`{"spec":{"replicas":3}}`),
		metav1.PatchOptions{FieldManager: "kubectl-scale"}); err != nil {
		return fmt.Errorf("scaling %s/%s by hand: %w", r.Namespace, name, err)
	}
	st := &DriftStats{Object: "Deployment/" + r.Namespace + "/" + name}
	m.Drift = st
	timeout := 2*f.interval + 2*time.Minute
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, false, func(ctx context.Context) (bool, error) {
		d, err := deps.Get(ctx, name, metav1.GetOptions{})
		return err == nil && d.Spec.Replicas != nil && *d.Spec.Replicas == replicas, nil
	})
	if err == nil {
		st.Reported, st.LatencySeconds = true, time.Since(start).Seconds()
	}
	reqs, rerr := w.Cluster.Requests()
	if rerr != nil {
		return rerr
	}
	m.setRequests(reqs)
	m.WallSeconds = st.LatencySeconds
	m.Usage = f.usage()
	m.Usage.CPU -= before
	if !st.Reported {
		_, _ = deps.Patch(ctx, name, types.MergePatchType, fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, replicas), metav1.PatchOptions{FieldManager: "kubectl-scale"})
		m.Status, m.Error = "failed", fmt.Sprintf("the out-of-band change of %s was not corrected within %s", st.Object, timeout)
	}
	return nil
}

// steady counts the controllers' requests over d with nothing changing.
func (f *fluxRun) steady(ctx context.Context, w *world, d time.Duration, m *Measure) error {
	if _, err := w.Cluster.Requests(); err != nil { // count from here on
		return err
	}
	before := f.cpu()
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return ctx.Err()
	}
	reqs, err := w.Cluster.Requests()
	if err != nil {
		return err
	}
	m.setRequests(reqs)
	m.WallSeconds = d.Seconds()
	m.Usage = f.usage()
	m.Usage.CPU -= before
	return nil
}

// runServeSteady counts mgo serve's requests over d with nothing changing,
// its periodic drift check at interval (the interval Flux gets), after its
// start-up sync.
func runServeSteady(ctx context.Context, w *world, bin string, interval, d time.Duration, m *Measure) error {
	if err := serveAvailable(ctx, bin); err != nil {
		m.Status, m.Error = "skipped", "mgo serve not available: "+err.Error()
		return nil
	}
	p, err := startServe(ctx, w, bin, serveOptions{dataDir: "serve-steady", resyncInterval: interval})
	if err != nil {
		return err
	}
	fail := func(err error) error { m.Usage = p.stop(); return err }
	if err := waitReady(ctx, p.base+"/readyz", 5*time.Minute, p.exited, &p.waitErr); err != nil {
		return fail(fmt.Errorf("mgo serve did not become ready: %w", err))
	}
	if _, err := p.waitLine(ctx, startupLine, 10*time.Minute); err != nil {
		return fail(err)
	}
	if _, err := w.Cluster.Requests(); err != nil { // count from here on
		return fail(err)
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	reqs, err := w.Cluster.Requests()
	if err != nil {
		return fail(err)
	}
	m.setRequests(reqs)
	m.WallSeconds = d.Seconds()
	m.Usage = p.stop()
	return nil
}
