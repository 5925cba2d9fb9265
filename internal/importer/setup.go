package importer

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/mygitops/mgo/internal/kube"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/render"
	"github.com/mygitops/mgo/internal/repo"
)

// Setup says how to reach the cluster to import, for the command line.
type Setup struct {
	Kubeconfig string // default $KUBECONFIG, then ~/.kube/config
	Context    string // kubeconfig context; default Cluster
	Cluster    string // the cluster's name in the repo: installations/<Cluster>
	CacheDir   string // chart cache; default ~/.cache/mgo/charts
	PlainHTTP  bool   // OCI registries over plain HTTP
	CAFile     string // extra certificate authorities for chart repositories
	RepoID     string // repository identity of the engine that proves the import
}

// NewFromSetup connects to the cluster and returns an importer for it.
func NewFromSetup(s Setup, log *slog.Logger) (*Importer, error) {
	if s.Cluster == "" {
		return nil, fmt.Errorf("a cluster name is required")
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
			return nil, err
		}
		s.Kubeconfig = filepath.Join(home, ".kube", "config")
	}
	if s.CacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return nil, err
		}
		s.CacheDir = filepath.Join(base, "mgo", "charts")
	}
	cluster, err := kube.FromKubeconfig(s.Kubeconfig, s.Context, repo.DefaultClusterSettings().Budget)
	if err != nil {
		return nil, err
	}
	cluster.Name = s.Cluster // the repo's name for it, whatever the context is called
	opts := render.DefaultOptions(s.CacheDir)
	opts.PlainHTTP, opts.CAFile = s.PlainHTTP, s.CAFile
	charts, err := render.NewCharts(opts, log)
	if err != nil {
		return nil, err
	}
	engine, err := reconcile.NewWithConfig(cluster, charts, log, reconcile.Config{RepoID: s.RepoID})
	if err != nil {
		return nil, err
	}
	return New(cluster, charts, engine, log)
}
