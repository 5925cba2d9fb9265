package reconcile

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/mygitops/mgo/internal/kube"
	"github.com/mygitops/mgo/internal/render"
	"github.com/mygitops/mgo/internal/repo"
)

// Setup says how to reach a cluster for the command line.
type Setup struct {
	Kubeconfig string // kubeconfig file; default $KUBECONFIG, then ~/.kube/config
	Cluster    string // kubeconfig context, the cluster's name in the repo
	CacheDir   string // chart cache; default ~/.cache/mgo/charts
	PlainHTTP  bool   // OCI registries over plain HTTP
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
	cluster, err := kube.FromKubeconfig(s.Kubeconfig, s.Cluster, r.Config.Cluster(s.Cluster).Budget)
	if err != nil {
		return nil, err
	}
	opts := render.DefaultOptions(s.CacheDir)
	opts.PlainHTTP = s.PlainHTTP
	charts, err := render.NewCharts(opts, log)
	if err != nil {
		return nil, err
	}
	return NewWithConfig(cluster, charts, log, s.Engine)
}
