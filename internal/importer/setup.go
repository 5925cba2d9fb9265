package importer

import (
	"fmt"
	"log/slog"

	"github.com/mygitops/mgo/internal/outbound"
	"github.com/mygitops/mgo/internal/reconcile"
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
	// Outbound, if set, bounds the addresses chart repositories may be
	// reached at.
	Outbound *outbound.Policy
}

// NewFromSetup connects to the cluster (reconcile.Connect, with the
// default budget: the repo may not name the cluster yet) and returns an
// importer for it.
func NewFromSetup(s Setup, log *slog.Logger) (*Importer, error) {
	if s.Cluster == "" {
		return nil, fmt.Errorf("a cluster name is required")
	}
	rs := reconcile.Setup{Kubeconfig: s.Kubeconfig, Cluster: s.Cluster, Context: s.Context, CacheDir: s.CacheDir,
		PlainHTTP: s.PlainHTTP, CAFile: s.CAFile, Outbound: s.Outbound, Engine: reconcile.Config{RepoID: s.RepoID}}
	cluster, charts, err := reconcile.Connect(rs, repo.DefaultClusterSettings().Budget, log)
	if err != nil {
		return nil, err
	}
	engine, err := reconcile.NewWithConfig(cluster, charts, log, rs.Engine)
	if err != nil {
		return nil, err
	}
	return New(cluster, charts, engine, log)
}
