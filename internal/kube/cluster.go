package kube

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/go-logr/logr"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling"
	"github.com/fluxcd/pkg/ssa"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/resource"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/flowcontrol"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/mygitops/mgo/internal/repo"
)

// FieldManager is the server-side apply field manager of everything mgo
// applies, and OwnerGroup the prefix of its ownership labels.
const (
	FieldManager = "mgo"
	OwnerGroup   = "mgo.io"
)

var ctrlLogOnce sync.Once

// Cluster is one target cluster: clients limited by the cluster's budget, a
// server-side apply manager and a request counter.
type Cluster struct {
	Name      string
	Config    *rest.Config // budget and counter applied
	Client    client.Client
	Clientset kubernetes.Interface
	Resources *ssa.ResourceManager
	Requests  *RequestCounter
	Budget    repo.Budget

	metrics       *clusterMetrics // nil without WithMetrics
	discoveryOnce sync.Once
	discovery     discovery.CachedDiscoveryInterface
	discoveryErr  error
	mapperOnce    sync.Once
	mapper        meta.RESTMapper
	mapperErr     error
	// liveCache is the live-state cache of the cluster's engine, which
	// raw manifest inventories are read from; nil without one.
	liveCache atomic.Pointer[Cache]
	// legacyAbsent are the inventories of older mgo versions found absent.
	legacyAbsent sync.Map
	verifierOnce sync.Once
	verifier     resource.Verifier // see fieldValidationVerifier
}

// NewCluster builds the clients of a cluster from a rest.Config. The
// budget's QPS and burst limit all clients built from Config together:
// they share one token bucket. Every
// request but watches gets a deadline: cfg.Timeout, or
// DefaultRequestTimeout when it is not set (Config.Timeout itself is
// cleared, since an http.Client timeout would cut watches too).
// WithMetrics reports the requests, the waits for the budget and the
// restarts of the cache's watches as Prometheus metrics.
func NewCluster(name string, cfg *rest.Config, budget repo.Budget, opts ...ClusterOption) (*Cluster, error) {
	if name == "" {
		return nil, errors.New("kube: cluster name is required")
	}
	if cfg == nil {
		return nil, fmt.Errorf("kube: cluster %s: no rest config", name)
	}
	def := repo.DefaultClusterSettings().Budget
	if budget.QPS <= 0 {
		budget.QPS = def.QPS
	}
	if budget.Burst <= 0 {
		budget.Burst = def.Burst
	}
	if budget.MaxConcurrentReleases <= 0 {
		budget.MaxConcurrentReleases = def.MaxConcurrentReleases
	}
	var o clusterOptions
	for _, opt := range opts {
		opt(&o)
	}
	cm := o.metrics.forCluster(name, budget.QPS)
	c := &Cluster{Name: name, Requests: &RequestCounter{metrics: cm}, Budget: budget, metrics: cm}
	c.Config = rest.CopyConfig(cfg)
	c.Config.QPS = budget.QPS
	c.Config.Burst = budget.Burst
	// One token bucket for every client built from Config (each Helm
	// action's, each kind's of controller-runtime, the cache's watches
	// and their relists): without it each would get its own budget.
	c.Config.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(budget.QPS, budget.Burst)
	if cm != nil {
		c.Config.RateLimiter = &measuredLimiter{RateLimiter: c.Config.RateLimiter, wait: cm.wait}
	}
	c.Config.UserAgent = "mgo"
	c.Config.Wrap(c.Requests.Wrap)
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	c.Config.Timeout = 0
	c.Config.Wrap(requestTimeout(timeout))

	// controller-runtime logs through a process-wide logger that must be set
	// once; mgo reports what matters itself.
	ctrlLogOnce.Do(func() { ctrllog.SetLogger(logr.Discard()) })

	httpClient, err := rest.HTTPClientFor(c.Config)
	if err != nil {
		return nil, fmt.Errorf("kube: cluster %s: %w", name, err)
	}
	mapper, err := apiutil.NewDynamicRESTMapper(c.Config, httpClient)
	if err != nil {
		return nil, fmt.Errorf("kube: cluster %s: REST mapper: %w", name, err)
	}
	c.Client, err = client.New(c.Config, client.Options{HTTPClient: httpClient, Mapper: mapper})
	if err != nil {
		return nil, fmt.Errorf("kube: cluster %s: %w", name, err)
	}
	c.Clientset, err = kubernetes.NewForConfigAndClient(c.Config, httpClient)
	if err != nil {
		return nil, fmt.Errorf("kube: cluster %s: %w", name, err)
	}
	poller := polling.NewStatusPoller(c.Client, mapper, polling.Options{})
	c.Resources = ssa.NewResourceManager(c.Client, poller, ssa.Owner{Field: FieldManager, Group: OwnerGroup})
	c.Resources.SetConcurrency(budget.MaxConcurrentReleases)
	return c, nil
}

// FromKubeconfig builds a cluster from a kubeconfig file and context; the
// context name is the cluster name mgo uses. Requests get the kubeconfig's
// timeout, if any, or DefaultRequestTimeout (see NewCluster).
func FromKubeconfig(path, context string, budget repo.Budget, opts ...ClusterOption) (*Cluster, error) {
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: path},
		&clientcmd.ConfigOverrides{CurrentContext: context},
	).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kube: context %q of %s: %w", context, path, err)
	}
	return NewCluster(context, cfg, budget, opts...)
}
