package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/kubestate"
	"github.com/mygitops/mgo/internal/reconcile"
)

// Where deployment records live (--state).
const (
	StateBolt       = "bolt"
	StateKubernetes = "kubernetes"
)

// state is the deployment store and, with the Kubernetes state, the
// leases that share the clusters between replicas.
type state struct {
	store   deploy.Store
	kube    *kubestate.Store  // nil with bolt
	leases  *kubestate.Leases // nil with bolt
	replica string
}

// openState opens the store cfg.State names.
func openState(ctx context.Context, cfg Config, engines map[string]*reconcile.Engine, log *slog.Logger) (*state, error) {
	switch cfg.State {
	case "", StateBolt:
		store, err := deploy.OpenStore(filepath.Join(cfg.DataDir, "deployments.db"))
		if err != nil {
			return nil, err
		}
		return &state{store: store}, nil
	case StateKubernetes:
	default:
		return nil, fmt.Errorf("--state %q: must be %s or %s", cfg.State, StateBolt, StateKubernetes)
	}
	if cfg.Namespace == "" {
		return nil, errors.New("--state kubernetes needs --namespace (or $POD_NAMESPACE): the namespace of mgo's records and leases")
	}
	rc, err := stateConfig(cfg)
	if err != nil {
		return nil, err
	}
	replica := cfg.Replica
	if replica == "" {
		replica = defaultReplica()
	}
	leases, err := kubestate.NewLeases(rc, kubestate.LeaseOptions{Namespace: cfg.Namespace, Replica: replica,
		Clusters: slices.Sorted(maps.Keys(engines)), Duration: cfg.LeaseDuration, Log: log.With("component", "leases")})
	if err != nil {
		return nil, err
	}
	store, err := kubestate.Open(ctx, rc, kubestate.Options{Namespace: cfg.Namespace, Replica: replica, Live: leases.Live, Log: log})
	if err != nil {
		return nil, err
	}
	log.Info("deployment records and cluster leases in the Kubernetes API", "namespace", cfg.Namespace, "replica", replica,
		"context", cfg.StateContext, "leaseDuration", cfg.LeaseDuration)
	return &state{store: store, kube: store, leases: leases, replica: replica}, nil
}

// stateConfig is the API server of mgo's home cluster: the kubeconfig
// context --state-context, or the in-cluster service account.
func stateConfig(cfg Config) (*rest.Config, error) {
	if cfg.StateContext == "" {
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("--state kubernetes without --state-context uses the in-cluster service account: %w", err)
		}
		return rc, nil
	}
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: cfg.Kubeconfig}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: cfg.StateContext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("--state-context %q: %w", cfg.StateContext, err)
	}
	return rc, nil
}

// defaultReplica names this process: the pod (host) name and a random
// suffix, new at every start, so the records a killed process left are
// told from those of its successor.
func defaultReplica() string {
	host := os.Getenv("POD_NAME")
	if host == "" {
		host, _ = os.Hostname()
	}
	host = strings.ToLower(host)
	if len(host) > 50 {
		host = host[:50]
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return strings.Trim(host, "-.") + "-" + hex.EncodeToString(b[:])
}

// housekeeping fails the queued deployments of replicas that died and
// collects old records, until ctx ends (Kubernetes state only).
func (st *state) housekeeping(ctx context.Context, cfg Config, log *slog.Logger) {
	if st.kube == nil {
		return
	}
	interval := cfg.LeaseDuration
	if interval <= 0 {
		interval = 15 * time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var lastCollect time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-st.leases.Synced():
		}
		now := time.Now()
		if n, err := st.store.Interrupted(now); err != nil {
			log.Warn("failing deployments of stopped replicas", "error", err)
		} else if n > 0 {
			log.Warn("deployments queued by replicas that stopped marked failed", "count", n)
		}
		if now.Sub(lastCollect) >= 5*time.Minute && (cfg.RecordMaxAge > 0 || cfg.RecordMaxCount > 0) {
			lastCollect = now
			if n, err := st.store.Collect(now, cfg.RecordMaxAge, cfg.RecordMaxCount); err != nil {
				log.Warn("collecting old deployment records", "error", err)
			} else if n > 0 {
				log.Info("old deployment records deleted", "count", n, "maxAge", cfg.RecordMaxAge, "maxCount", cfg.RecordMaxCount)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
