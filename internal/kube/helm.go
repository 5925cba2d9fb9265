package kube

import (
	"fmt"
	"log/slog"
	"sync"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
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
// request counter included) instead of a kubeconfig file, and the
// cluster's one discovery cache.
type restClientGetter struct {
	cluster   *Cluster
	namespace string
}

func (g *restClientGetter) ToRESTConfig() (*rest.Config, error) {
	return rest.CopyConfig(g.cluster.Config), nil
}

func (g *restClientGetter) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	return g.cluster.helmDiscovery()
}

func (g *restClientGetter) ToRESTMapper() (meta.RESTMapper, error) {
	return g.cluster.helmRESTMapper()
}

func (g *restClientGetter) ToRawKubeConfigLoader() clientcmd.ClientConfig {
	cfg := clientcmdapi.NewConfig()
	cfg.Contexts["mgo"] = &clientcmdapi.Context{Namespace: g.namespace}
	cfg.CurrentContext = "mgo"
	return clientcmd.NewDefaultClientConfig(*cfg, &clientcmd.ConfigOverrides{Context: clientcmdapi.Context{Namespace: g.namespace}})
}

// helmDiscovery is the discovery client every Helm action on the cluster
// shares: API groups, resources and OpenAPI documents are read once, not
// once per release (kubectl's validation behind Helm's Build reads the
// OpenAPI document of every kind it applies). It is refreshed when a kind
// is not found (the REST mapper resets it) and by InvalidateDiscovery.
func (c *Cluster) helmDiscovery() (discovery.CachedDiscoveryInterface, error) {
	c.discoveryOnce.Do(func() {
		dc, err := discovery.NewDiscoveryClientForConfig(c.Config)
		if err != nil {
			c.discoveryErr = err
			return
		}
		c.discovery = memory.NewMemCacheClient(dc)
	})
	return c.discovery, c.discoveryErr
}

// helmRESTMapper is the REST mapper every Helm action on the cluster
// shares, over helmDiscovery: built once, reset (by the mapper itself) when
// a kind is not found.
func (c *Cluster) helmRESTMapper() (meta.RESTMapper, error) {
	c.mapperOnce.Do(func() {
		dc, err := c.helmDiscovery()
		if err != nil {
			c.mapperErr = err
			return
		}
		c.mapper = restmapper.NewShortcutExpander(restmapper.NewDeferredDiscoveryRESTMapper(dc), dc, nil)
	})
	return c.mapper, c.mapperErr
}

// InvalidateDiscovery makes the next Helm action read the cluster's API
// groups and resources again: after a CustomResourceDefinition changed.
func (c *Cluster) InvalidateDiscovery() {
	if dc, err := c.helmDiscovery(); err == nil {
		dc.Invalidate()
	}
	if m, err := c.helmRESTMapper(); err == nil {
		if r, ok := m.(meta.ResettableRESTMapper); ok {
			r.Reset()
		}
	}
}

var helmFieldManager sync.Once

// Helm returns a Helm action configuration for releases in namespace,
// storing releases as Secrets (Helm's default driver), so that `helm ls`,
// `helm history` and `helm rollback` see them.
func (c *Cluster) Helm(namespace string, log *slog.Logger) (*action.Configuration, error) {
	return c.HelmWith(namespace, log, nil)
}

// HelmWith is Helm with the capabilities Helm renders with, when caps is
// not nil, instead of reading them from the cluster again (three requests)
// for every action.
func (c *Cluster) HelmWith(namespace string, log *slog.Logger, caps *common.Capabilities) (*action.Configuration, error) {
	// Helm applies with the same field manager as mgo's dry-run diffs, so a
	// diff sees what an upgrade would change, removed fields included.
	helmFieldManager.Do(func() { helmkube.ManagedFieldsManager = FieldManager })
	cfg := action.NewConfiguration()
	if log != nil {
		cfg.SetLogger(log.Handler())
	} else {
		cfg.SetLogger(slog.DiscardHandler)
	}
	if err := cfg.Init(&restClientGetter{cluster: c, namespace: namespace}, namespace, "secret"); err != nil {
		return nil, fmt.Errorf("cluster %s: helm in namespace %s: %w", c.Name, namespace, err)
	}
	if caps != nil {
		cfg.Capabilities = caps.Copy()
	}
	if kc, ok := cfg.KubeClient.(*helmkube.Client); ok {
		if v := c.fieldValidationVerifier(); v != nil {
			kc.Factory = fieldValidation{Factory: kc.Factory, verifier: v}
		}
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
