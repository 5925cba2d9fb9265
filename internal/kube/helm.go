package kube

import (
	"fmt"
	"log/slog"
	"sync"

	"helm.sh/helm/v4/pkg/action"
	helmkube "helm.sh/helm/v4/pkg/kube"
	"helm.sh/helm/v4/pkg/release"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage/driver"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/mygitops/mgo/internal/faults"
)

// restClientGetter gives Helm the cluster's own rest.Config (budget and
// request counter included) instead of a kubeconfig file.
type restClientGetter struct {
	cfg       *rest.Config
	namespace string

	once      sync.Once
	discovery discovery.CachedDiscoveryInterface
	err       error
}

func (g *restClientGetter) ToRESTConfig() (*rest.Config, error) { return rest.CopyConfig(g.cfg), nil }

func (g *restClientGetter) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	g.once.Do(func() {
		dc, err := discovery.NewDiscoveryClientForConfig(g.cfg)
		if err != nil {
			g.err = err
			return
		}
		g.discovery = memory.NewMemCacheClient(dc)
	})
	return g.discovery, g.err
}

func (g *restClientGetter) ToRESTMapper() (meta.RESTMapper, error) {
	dc, err := g.ToDiscoveryClient()
	if err != nil {
		return nil, err
	}
	return restmapper.NewShortcutExpander(restmapper.NewDeferredDiscoveryRESTMapper(dc), dc, nil), nil
}

func (g *restClientGetter) ToRawKubeConfigLoader() clientcmd.ClientConfig {
	cfg := clientcmdapi.NewConfig()
	cfg.Contexts["mgo"] = &clientcmdapi.Context{Namespace: g.namespace}
	cfg.CurrentContext = "mgo"
	return clientcmd.NewDefaultClientConfig(*cfg, &clientcmd.ConfigOverrides{Context: clientcmdapi.Context{Namespace: g.namespace}})
}

var helmFieldManager sync.Once

// Helm returns a Helm action configuration for releases in namespace,
// storing releases as Secrets (Helm's default driver), so that `helm ls`,
// `helm history` and `helm rollback` see them.
func (c *Cluster) Helm(namespace string, log *slog.Logger) (*action.Configuration, error) {
	// Helm applies with the same field manager as mgo's dry-run diffs, so a
	// diff sees what an upgrade would change, removed fields included.
	helmFieldManager.Do(func() { helmkube.ManagedFieldsManager = FieldManager })
	cfg := action.NewConfiguration()
	if log != nil {
		cfg.SetLogger(log.Handler())
	} else {
		cfg.SetLogger(slog.DiscardHandler)
	}
	if err := cfg.Init(&restClientGetter{cfg: c.Config, namespace: namespace}, namespace, "secret"); err != nil {
		return nil, fmt.Errorf("cluster %s: helm in namespace %s: %w", c.Name, namespace, err)
	}
	cfg.Releases.Driver = faultDriver{cfg.Releases.Driver}
	return cfg, nil
}

// faultDriver is Helm's release storage with the fault point of a Helm
// action: right after Helm stored a new revision as pending-install or
// pending-upgrade, before it applies any object (hooks included).
type faultDriver struct{ driver.Driver }

func (d faultDriver) Create(key string, rls release.Releaser) error {
	if err := d.Driver.Create(key, rls); err != nil {
		return err
	}
	if r, ok := rls.(*releasev1.Release); ok && r.Info != nil && r.Info.Status.IsPending() {
		faults.Point(faults.HelmUpgrade)
	}
	return nil
}
