// Command floor is the benchmark's lower bound for a sync: it applies the
// objects that mgo would apply, without Helm (no release storage, no
// revisions, no comparison first), by server-side apply, and waits for the
// rollout. It renders every release of a cluster with mgo's own packages
// (internal/repo, internal/render: the same chart, values and capabilities),
// then, as many releases at once as the cluster's budget allows (mgo's
// default: 4), applies each rendered object with one server-side apply
// patch (field manager mgo-bench-floor, forced) and waits until the
// release's Deployments are rolled out (kstatus Current, read from one
// cluster-wide watch of Deployments). The clients have the cluster's budget
// (default 50 QPS, burst 100), as mgo's. Every run applies everything:
// there is no state to skip unchanged releases with.
//
//	floor --repo DIR --cluster NAME --kubeconfig FILE [--chart-cache DIR] [--timeout 5m]
//
// The benchmark (go run ./bench -contenders floor) builds and runs it as a
// process of its own, measured like the other contenders.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/mygitops/mgo/internal/render"
	"github.com/mygitops/mgo/internal/repo"
)

// fieldManager is the floor's server-side apply identity.
const fieldManager = "mgo-bench-floor"

func main() {
	var (
		repoDir, clusterName, kubeconfig, chartCache string
		timeout                                      time.Duration
	)
	flag.StringVar(&repoDir, "repo", "", "gitops repo directory")
	flag.StringVar(&clusterName, "cluster", "", "cluster (installations/<cluster>, and the kubeconfig context)")
	flag.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file")
	flag.StringVar(&chartCache, "chart-cache", "", "chart cache directory (default: a temporary one)")
	flag.DurationVar(&timeout, "timeout", 5*time.Minute, "give up after this long")
	flag.Parse()
	if repoDir == "" || clusterName == "" || kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "floor: --repo, --cluster and --kubeconfig are required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	st, err := floor(ctx, repoDir, clusterName, kubeconfig, chartCache)
	if err != nil {
		fmt.Fprintf(os.Stderr, "floor: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("floor: %d releases, %d objects applied, %d Deployments rolled out in %s\n",
		st.releases, st.objects.Load(), st.deployments.Load(), time.Since(start).Round(time.Millisecond))
}

type stats struct {
	releases    int
	objects     atomic.Int64
	deployments atomic.Int64
}

func floor(ctx context.Context, repoDir, clusterName, kubeconfig, chartCache string) (*stats, error) {
	r, err := repo.Load(repoDir, repo.LoadOptions{Cluster: clusterName})
	if err != nil {
		return nil, err
	}
	if errs := r.Problems.Errors(); len(errs) > 0 {
		return nil, fmt.Errorf("gitops repo: %s", errs[0].String())
	}
	rc := r.Clusters[clusterName]
	if rc == nil || len(rc.Releases) == 0 {
		return nil, fmt.Errorf("no releases for cluster %s", clusterName)
	}
	budget := r.Config.Cluster(clusterName).Budget

	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig},
		&clientcmd.ConfigOverrides{CurrentContext: clusterName}).ClientConfig()
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst, cfg.UserAgent = budget.QPS, budget.Burst, fieldManager
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	cached := memory.NewMemCacheClient(dc)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(cached)
	dyn, err := dynamic.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	caps, err := render.DiscoverCapabilities(cached)
	if err != nil {
		return nil, err
	}
	renderer, err := render.NewRenderer(caps)
	if err != nil {
		return nil, err
	}
	if chartCache == "" {
		if chartCache, err = os.MkdirTemp("", "floor-charts-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(chartCache)
	}
	charts, err := render.NewCharts(render.DefaultOptions(chartCache), slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}

	// One watch of every Deployment: the waits read from it.
	deps := newDeploymentWatch(cs)
	if err := deps.start(ctx); err != nil {
		return nil, err
	}

	st := &stats{releases: len(rc.Releases)}
	jobs := make(chan *repo.Release)
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for range max(1, budget.MaxConcurrentReleases) {
		wg.Go(func() {
			for rel := range jobs {
				if err := syncRelease(ctx, r, rel, charts, renderer, mapper, dyn, deps, st); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("%s: %w", rel.File, err))
					mu.Unlock()
				}
			}
		})
	}
	for _, rel := range rc.Releases {
		select {
		case jobs <- rel:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	if len(errs) > 0 {
		return st, fmt.Errorf("%d of %d releases failed, first: %w", len(errs), len(rc.Releases), errs[0])
	}
	return st, ctx.Err()
}

// syncRelease renders a release, applies its objects one after the other
// (the chart's order) and waits for its Deployments.
func syncRelease(ctx context.Context, r *repo.Repo, rel *repo.Release, charts *render.Charts, renderer *render.Renderer,
	mapper meta.RESTMapper, dyn dynamic.Interface, deps *deploymentWatch, st *stats) error {
	ch, err := charts.Load(ctx, r.Dir, r.Config, rel.Header)
	if err != nil {
		return err
	}
	rendered, err := renderer.Render(ctx, rel, ch, false)
	if err != nil {
		return err
	}
	type rollout struct {
		key        string
		generation int64
	}
	var waits []rollout
	for _, obj := range rendered.Objects {
		gvk := obj.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("%s %s: %w", gvk.Kind, obj.GetName(), err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			if obj.GetNamespace() == "" {
				obj.SetNamespace(rendered.Namespace)
			}
			ri = dyn.Resource(m.Resource).Namespace(obj.GetNamespace())
		}
		applied, err := ri.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: fieldManager, Force: true})
		if err != nil {
			return fmt.Errorf("applying %s %s/%s: %w", gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
		}
		st.objects.Add(1)
		if gvk.Group == "apps" && gvk.Kind == "Deployment" {
			waits = append(waits, rollout{key: applied.GetNamespace() + "/" + applied.GetName(), generation: applied.GetGeneration()})
		}
	}
	for _, w := range waits {
		if err := deps.wait(ctx, w.key, w.generation); err != nil {
			return err
		}
		st.deployments.Add(1)
	}
	return nil
}

// deploymentWatch keeps every Deployment of the cluster from one list and
// one watch, and wakes the waiters at each event.
type deploymentWatch struct {
	informer cache.SharedIndexInformer
	mu       sync.Mutex
	changed  chan struct{} // closed and replaced at every event
}

func newDeploymentWatch(cs kubernetes.Interface) *deploymentWatch {
	f := informers.NewSharedInformerFactory(cs, 0)
	d := &deploymentWatch{informer: f.Apps().V1().Deployments().Informer(), changed: make(chan struct{})}
	notify := func(any) { d.notify() }
	_, _ = d.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    notify,
		UpdateFunc: func(_, o any) { d.notify() },
		DeleteFunc: notify,
	})
	return d
}

func (d *deploymentWatch) start(ctx context.Context) error {
	go d.informer.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), d.informer.HasSynced) {
		return errors.New("watching Deployments: the cache did not sync")
	}
	return nil
}

func (d *deploymentWatch) notify() {
	d.mu.Lock()
	close(d.changed)
	d.changed = make(chan struct{})
	d.mu.Unlock()
}

// wait waits until the Deployment key (namespace/name) has seen generation
// and is rolled out, as kstatus judges it (Current).
func (d *deploymentWatch) wait(ctx context.Context, key string, generation int64) error {
	last := "not seen yet"
	for {
		d.mu.Lock()
		changed := d.changed
		d.mu.Unlock()
		obj, ok, err := d.informer.GetStore().GetByKey(key)
		if err != nil {
			return err
		}
		if dep, isDep := obj.(*appsv1.Deployment); ok && isDep && dep.Generation >= generation {
			u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(dep)
			if err != nil {
				return err
			}
			u["apiVersion"], u["kind"] = "apps/v1", "Deployment" // kstatus judges by kind
			res, err := status.Compute(&unstructured.Unstructured{Object: u})
			if err != nil {
				return fmt.Errorf("Deployment %s: %w", key, err)
			}
			if res.Status == status.CurrentStatus {
				return nil
			}
			last = fmt.Sprintf("%s: %s", res.Status, res.Message)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("Deployment %s not rolled out (%s): %w", key, last, ctx.Err())
		}
	}
}
