package reconcile

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/mygitops/mgo/internal/kube"
	"github.com/mygitops/mgo/internal/outbound"
	"github.com/mygitops/mgo/internal/render"
	"github.com/mygitops/mgo/internal/repo"
)

// Setup says how to reach a cluster and its charts for the command line
// (mgo sync, diff, deploy --repo and import).
type Setup struct {
	Kubeconfig string // kubeconfig file; default $KUBECONFIG, then ~/.kube/config
	Cluster    string // the cluster's name in the repo: installations/<Cluster>
	Context    string // kubeconfig context; default Cluster
	CacheDir   string // chart cache; default ~/.cache/mgo/charts
	PlainHTTP  bool   // OCI registries over plain HTTP
	CAFile     string // extra certificate authorities for chart repositories and OCI registries
	// Outbound, if set, bounds the addresses chart repositories and OCI
	// registries may be reached at (checked at dial time).
	Outbound *outbound.Policy
	// Engine configures the engine (repository identity, instance id,
	// pending-release threshold, diff deadline); the zero value is usable.
	Engine Config
}

// NewFromSetup connects an engine to a cluster, with the cluster's budget
// from the repo's mygitops.yaml.
func NewFromSetup(s Setup, r *repo.Repo, log *slog.Logger) (*Engine, error) {
	if s.Cluster == "" {
		return nil, fmt.Errorf("a cluster (kubeconfig context) is required")
	}
	cluster, charts, err := Connect(s, r.Config.Cluster(s.Cluster).Budget, log)
	if err != nil {
		return nil, err
	}
	return NewWithConfig(cluster, charts, log, s.Engine)
}

// Connect connects to the cluster of s within budget and opens its chart
// sources, with the defaults of Setup; the cluster is named s.Cluster,
// whatever its kubeconfig context is called.
func Connect(s Setup, budget repo.Budget, log *slog.Logger) (*kube.Cluster, *render.Charts, error) {
	if s.Cluster == "" {
		return nil, nil, fmt.Errorf("a cluster name is required")
	}
	if s.Context == "" {
		s.Context = s.Cluster
	}
	if s.Kubeconfig == "" {
		s.Kubeconfig = os.Getenv("KUBECONFIG")
	}
	if s.Kubeconfig == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, nil, err
		}
		s.Kubeconfig = filepath.Join(home, ".kube", "config")
	}
	if s.CacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return nil, nil, err
		}
		s.CacheDir = filepath.Join(base, "mgo", "charts")
	}
	cluster, err := kube.FromKubeconfig(s.Kubeconfig, s.Context, budget)
	if err != nil {
		return nil, nil, err
	}
	cluster.Name = s.Cluster
	opts := render.DefaultOptions(s.CacheDir)
	opts.PlainHTTP, opts.CAFile, opts.Outbound = s.PlainHTTP, s.CAFile, s.Outbound
	charts, err := render.NewCharts(opts, log)
	if err != nil {
		return nil, nil, err
	}
	return cluster, charts, nil
}
