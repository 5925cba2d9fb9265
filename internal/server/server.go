// Package server assembles `mgo serve`: the clone of the gitops repo, one
// sync engine per cluster the repo names, the deploy service, the HTTP API,
// the poll and drift loops, and a graceful shutdown.
package server

import (
	"github.com/mygitops/mgo/internal/secrets"

	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/client-go/rest"

	"github.com/mygitops/mgo/internal/api"
	"github.com/mygitops/mgo/internal/audit"
	"github.com/mygitops/mgo/internal/auth"
	"github.com/mygitops/mgo/internal/dashboard"
	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/gitrepo"
	"github.com/mygitops/mgo/internal/kube"
	"github.com/mygitops/mgo/internal/notify"
	"github.com/mygitops/mgo/internal/outbound"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/render"
	"github.com/mygitops/mgo/internal/repo"
	"github.com/mygitops/mgo/internal/ui"
)

// Config is everything `mgo serve` is told.
type Config struct {
	Listen string
	// Git is the gitops repository; Git.Dir defaults to <DataDir>/repo.
	Git gitrepo.Options
	// DataDir holds the clone, the deployment store and sync snapshots.
	DataDir string
	// Kubeconfig and its contexts name the clusters; InCluster names the
	// cluster mgo runs in (its service account), if any.
	Kubeconfig string
	InCluster  string
	ChartCache string
	// ChartCAFile is a PEM bundle of extra CAs for chart repositories and
	// OCI registries.
	ChartCAFile string
	// ChartsOutbound, if set, bounds the addresses of chart repositories
	// and OCI registries (internal/outbound).
	ChartsOutbound *outbound.Policy
	// ChecksOutbound bounds the addresses promotion checks reach (HTTP
	// checks, Prometheus); nil: every address but loopback and link-local.
	ChecksOutbound *outbound.Policy
	// PromotionTick is how often promotion candidates advance (default 1s).
	PromotionTick time.Duration
	PlainHTTP     bool
	// BudgetCap bounds the budget mygitops.yaml gives each cluster: whoever
	// merges to the gitops repo must not be able to turn mgo on a
	// cluster's API server (zero fields cap nothing).
	BudgetCap repo.Budget
	// Credentials is what chart-repository credential references in
	// mygitops.yaml may name (default: repo.DefaultCredentialPolicy).
	Credentials *repo.CredentialPolicy

	Tokens []auth.TokenConfig
	// OIDC trusts ID tokens of CI jobs (GitLab, GitHub Actions) under its
	// claim rules; AuditLog receives one JSON line per authenticated
	// request and per refusal (nil: no audit log).
	OIDC auth.OIDCConfig
	// OIDCKeyRefetch is the least time between two fetches of an issuer's
	// keys (default auth.DefaultKeyRefetch).
	OIDCKeyRefetch time.Duration
	AuditLog       io.Writer
	InsecureNoAuth bool
	GitHubSecret   []byte
	GitLabToken    []byte

	// PollInterval fetches the repo this often (0: only webhooks);
	// ResyncInterval runs the full drift check of every cluster this
	// often: the safety net behind the drift the engines' watches report
	// as it happens.
	PollInterval    time.Duration
	ResyncInterval  time.Duration
	ShutdownTimeout time.Duration
	// DrainDelay is how long, on shutdown, /readyz answers 503 while
	// everything else is served as before, so load balancers take mgo out
	// of rotation before it refuses requests (0: no delay).
	DrainDelay time.Duration

	// RepoID identifies the gitops repo on the clusters: mgo labels what it
	// installs with it and the cluster name and removes only what carries
	// both. Default: derived from Git.URL and Git.Branch.
	RepoID string
	// PendingTimeout is when a Helm release left pending by another mgo
	// is taken as abandoned and recovered (0: the engine's default).
	PendingTimeout time.Duration
	// DiffTimeout bounds diffs and drift checks (0: the engine's default).
	DiffTimeout time.Duration
	// SecretKeys decrypt SOPS-encrypted secrets files (--age-key-file,
	// SOPS_AGE_KEY_FILE, SOPS_AGE_KEY).
	SecretKeys secrets.Keys
	// ExternalURL is the base URL of mgo's API as people reach it, for the
	// links in notifications (none when empty).
	ExternalURL string
	// Notify tunes notification delivery (tests shorten the backoff); its
	// Config, Credentials, ExternalURL, Log and Metrics are set by Run.
	Notify notify.Options

	// State is where deployment records live: "bolt" (default; a file in
	// DataDir, one replica) or "kubernetes" (DeployRecords and Leases in
	// Namespace of the cluster StateContext names, or of the in-cluster
	// service account; several replicas share the clusters).
	State        string
	Namespace    string
	StateContext string
	// Replica names this process in leases and records (default: pod or
	// host name and a random suffix).
	Replica string
	// LeaseDuration is how long a cluster's lease holds without renewal
	// (default 15s): about the failover time.
	LeaseDuration time.Duration
	// RecordMaxAge and RecordMaxCount bound the finished records kept with
	// the Kubernetes state (0: no bound).
	RecordMaxAge   time.Duration
	RecordMaxCount int

	Log *slog.Logger
	// Started, when set, is called with the listening address.
	Started func(addr string)
}

// Run serves until ctx ends, then shuts down in the order load balancers
// expect: /readyz answers 503 at once while the rest is served for
// DrainDelay; then new requests are refused (503) while deployments in
// flight finish (up to ShutdownTimeout) and answer their waiting clients;
// then the listener closes and what is left is cancelled.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	if cfg.DataDir == "" {
		return errors.New("a data directory is required")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	if cfg.Git.Dir == "" {
		cfg.Git.Dir = filepath.Join(cfg.DataDir, "repo")
	}
	var tokens *auth.Tokens
	if len(cfg.Tokens) > 0 {
		var err error
		if tokens, err = auth.NewTokens(cfg.Tokens); err != nil {
			return fmt.Errorf("tokens: %w", err)
		}
	}
	var oidcV *auth.OIDC
	if cfg.OIDC.Enabled() || len(cfg.OIDC.Rules) > 0 {
		var err error
		if oidcV, err = auth.NewOIDC(cfg.OIDC, auth.OIDCOptions{Log: log, KeyRefetch: cfg.OIDCKeyRefetch}); err != nil {
			return fmt.Errorf("oidc: %w", err)
		}
		go oidcV.Warm(ctx)
	}
	if tokens == nil && oidcV == nil && !cfg.InsecureNoAuth {
		return errors.New("no API tokens configured: give --tokens-file (or --insecure-no-auth for a local demo)")
	}

	git, err := gitrepo.New(cfg.Git, log)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := git.Open(ctx); err != nil {
		return fmt.Errorf("cloning the gitops repo: %w", err)
	}
	// A reopened clone holds the head of the last run: fetch before the
	// first load, so a broken file fixed on the remote meanwhile is not
	// read again. An unreachable remote is no reason not to start: the
	// clone is usable, and the poll and webhooks fetch again.
	if _, err := git.Fetch(ctx); err != nil {
		log.Warn("fetch at start failed; serving the clone as last fetched", "error", err)
	}
	head, _ := git.Head(ctx)
	log.Info("gitops repo ready", "url", cfg.Git.URL, "branch", cfg.Git.Branch, "head", head, "duration", time.Since(start).Round(time.Millisecond))

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	engines, err := engines(ctx, cfg, git, start, kube.NewMetrics(reg), log)
	if err != nil {
		return err
	}
	// Last of all, once no sync runs any more: no watch outlives its engine.
	defer closeEngines(engines)
	st, err := openState(ctx, cfg, engines, log)
	if err != nil {
		return err
	}
	defer st.store.Close()
	var owner deploy.Owner
	if st.leases != nil {
		owner = st.leases
	}

	notifier, err := newNotifier(cfg, git, reg, log)
	if err != nil {
		return err
	}
	svc, err := deploy.New(deploy.Config{
		Git: git, Engines: deploy.Syncers(engines), SecretKeys: cfg.SecretKeys, Store: st.store, Owner: owner,
		SnapshotDir: filepath.Join(cfg.DataDir, "snapshots"),
		Log:         log, Metrics: deploy.NewMetrics(reg), Notifier: notifier, Committer: cfg.Git.Committer.String(),
	})
	if err != nil {
		return err
	}
	var draining atomic.Bool // shutdown began: /readyz answers 503
	refresher := deploy.NewRefresher(svc.Refresh, deploy.RefresherOptions{Interval: cfg.PollInterval, Log: log})
	promoter, err := newPromoter(cfg, svc, st.store, engines, git, notifier, refresher.Trigger, log)
	if err != nil {
		return err
	}
	dash, err := dashboard.New(svc, dashboard.Options{Log: log})
	if err != nil {
		return err
	}
	h, err := api.New(api.Config{
		Service: svc, Refresher: refresher, Tokens: tokens, OIDC: oidcV, Audit: audit.New(cfg.AuditLog), InsecureNoAuth: cfg.InsecureNoAuth && tokens == nil && oidcV == nil,
		GitHubSecret: cfg.GitHubSecret, GitLabToken: cfg.GitLabToken, Gatherer: reg, Log: log,
		Ready: func() (map[string]any, error) {
			if draining.Load() {
				return map[string]any{}, errors.New("shutting down")
			}
			return readiness(ctx, git, st)
		},
		Dashboard: dash, Promotions: promoter,
	})
	if err != nil {
		return err
	}
	if tokens == nil && oidcV == nil {
		log.Warn("API authentication is OFF (--insecure-no-auth): anyone who reaches this port can deploy")
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: ui.Mount(h), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}

	work, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	var wg sync.WaitGroup
	wg.Go(func() { svc.Run(work) })
	wg.Go(func() { notifier.Run(work) })
	wg.Go(func() { refresher.Run(work) })
	wg.Go(func() { promoter.Run(work) })
	wg.Go(func() { loops(work, cfg, svc, st.leases == nil, log) })
	if st.leases != nil {
		st.leases.OnAcquire(func(cluster string) { svc.Acquired(work, cluster) })
		st.leases.OnLose(svc.Lost)
		st.leases.SetBusy(svc.Busy)
		wg.Go(func() { st.leases.Run(work) })
		wg.Go(func() { st.housekeeping(work, cfg, log) })
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("serving", "addr", ln.Addr().String(), "clusters", svc.Clusters())
	if cfg.Started != nil {
		cfg.Started(ln.Addr().String())
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		stopWork()
		wg.Wait()
		return err
	}
	draining.Store(true)
	if cfg.DrainDelay > 0 {
		log.Info("shutting down: not ready, serving on while load balancers drain", "drainDelay", cfg.DrainDelay)
		time.Sleep(cfg.DrainDelay) // not a synchronisation: the time load balancers take to see /readyz
	}
	log.Info("shutting down: no new requests, finishing deployments in flight", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	if err := svc.Shutdown(sctx); err != nil {
		errs = append(errs, err)
	}
	// Every deployment has answered its waiting client; the handlers still
	// writing get the rest of the timeout.
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	// The outcomes of the deployments just finished are still on their way.
	if err := notifier.Flush(sctx); err != nil {
		log.Warn("shutdown: notifications not delivered", "error", err)
	}
	stopWork()
	wg.Wait()
	log.Info("stopped")
	return errors.Join(errs...)
}

// newNotifier is the dispatcher of notifications, reading the receivers
// and routes of mygitops.yaml at the current head for each event.
func newNotifier(cfg Config, git *gitrepo.Repo, reg prometheus.Registerer, log *slog.Logger) (*notify.Dispatcher, error) {
	o := cfg.Notify
	o.Credentials, o.ExternalURL, o.Metrics = cfg.Credentials, cfg.ExternalURL, notify.NewMetrics(reg)
	o.Log = log.With("component", "notify")
	o.Config = func(ctx context.Context) (repo.Notifications, error) {
		var n repo.Notifications
		err := git.Read(ctx, func(dir, _ string) error {
			c, _ := repo.LoadConfig(dir) // a broken receiver is left out; mgo validate names it
			n = c.Notifications
			return nil
		})
		return n, err
	}
	return notify.New(o)
}

// DefaultRepoID is the repo identity of a gitops repo URL and branch: a
// short hash, the same for every mgo that serves the same branch.
func DefaultRepoID(url, branch string) string {
	sum := sha256.Sum256([]byte(url + "#" + branch))
	return "r-" + hex.EncodeToString(sum[:8])
}

// instanceID returns the id of this mgo instance, kept in the data
// directory so that it survives restarts: Helm revisions it left pending
// when it was killed are recovered at its next start.
func instanceID(dataDir string) (string, error) {
	p := filepath.Join(dataDir, "instance-id")
	if b, err := os.ReadFile(p); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	id := "i-" + hex.EncodeToString(b[:])
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("instance id: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", fmt.Errorf("instance id: %w", err)
	}
	return id, nil
}

// readiness is /readyz: ready while the clone is usable, whatever the
// remote does; the last successful fetch (or push) and the error of a
// later failed one say how fresh it is. It takes no lock and does no I/O.
func readiness(ctx context.Context, git *gitrepo.Repo, st *state) (map[string]any, error) {
	details := map[string]any{}
	if st.kube != nil {
		// Holding leases is no condition: a replica holding none serves
		// the API all the same.
		details["state"], details["replica"], details["clusters"] = StateKubernetes, st.replica, st.leases.Held()
		if err := st.leases.Healthy(); err != nil {
			details["stateError"] = err.Error()
			return details, err
		}
	}
	last, fetchErr := git.LastFetch()
	if !last.IsZero() {
		details["lastFetch"] = last.UTC().Format(time.RFC3339)
	}
	if fetchErr != nil {
		details["fetchError"] = fetchErr.Error()
	}
	head, err := git.Head(ctx)
	if err == nil && head == "" {
		err = errors.New("the gitops repo is not checked out")
	}
	details["head"] = head
	return details, err
}

// engines connects to every cluster of the repo that the kubeconfig (or
// the in-cluster config) knows. A cluster without a context is reported and
// left out; no cluster at all is an error.
func engines(ctx context.Context, cfg Config, git *gitrepo.Repo, started time.Time, metrics *kube.Metrics, log *slog.Logger) (map[string]*reconcile.Engine, error) {
	var r *repo.Repo
	err := git.Read(ctx, func(dir, _ string) error {
		var err error
		r, err = repo.Load(dir, repo.LoadOptions{Keys: cfg.SecretKeys})
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, p := range r.Problems.Errors() {
		log.Warn("gitops repo problem", "problem", p.String())
	}
	cacheDir := cfg.ChartCache
	if cacheDir == "" {
		cacheDir = filepath.Join(cfg.DataDir, "charts")
	}
	opts := render.DefaultOptions(cacheDir)
	opts.PlainHTTP, opts.CAFile, opts.Outbound = cfg.PlainHTTP, cfg.ChartCAFile, cfg.ChartsOutbound
	if cfg.Credentials != nil {
		opts.Credentials = *cfg.Credentials
	}
	charts, err := render.NewCharts(opts, log)
	if err != nil {
		return nil, err
	}
	instance, err := instanceID(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	ecfg := reconcile.Config{
		RepoID: cfg.RepoID, InstanceID: instance, StartedAt: started,
		PendingTimeout: cfg.PendingTimeout, DiffTimeout: cfg.DiffTimeout,
		SecretKeys: cfg.SecretKeys,
	}
	if ecfg.RepoID == "" {
		ecfg.RepoID = DefaultRepoID(cfg.Git.URL, cfg.Git.Branch)
	}
	log.Info("what this mgo owns is labelled with its cluster names and", "repoID", ecfg.RepoID, "instance", instance)
	out := map[string]*reconcile.Engine{}
	done := false
	defer func() {
		if !done {
			closeEngines(out) // those made before the failure
		}
	}()
	for _, name := range r.ClusterNames() {
		budget, lowered := r.Config.Cluster(name).Budget.Capped(cfg.BudgetCap)
		if len(lowered) > 0 {
			log.Warn("the cluster's budget in "+repo.ConfigFile+" is above the operator's cap (--budget-max-*): capped", "cluster", name,
				"fields", lowered, "qps", budget.QPS, "burst", budget.Burst, "maxConcurrentReleases", budget.MaxConcurrentReleases)
		}
		var c *kube.Cluster
		switch {
		case name == cfg.InCluster:
			rc, err := rest.InClusterConfig()
			if err != nil {
				return nil, fmt.Errorf("cluster %s (in-cluster): %w", name, err)
			}
			c, err = kube.NewCluster(name, rc, budget, kube.WithMetrics(metrics))
			if err != nil {
				return nil, err
			}
		case cfg.Kubeconfig != "":
			c, err = kube.FromKubeconfig(cfg.Kubeconfig, name, budget, kube.WithMetrics(metrics))
			if err != nil {
				log.Warn("cluster of the repo not served: no usable kubeconfig context", "cluster", name, "error", err)
				continue
			}
		default:
			log.Warn("cluster of the repo not served: no kubeconfig", "cluster", name)
			continue
		}
		e, err := reconcile.NewWithConfig(c, charts, log, ecfg)
		if err != nil {
			return nil, err
		}
		out[name] = e
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("none of the repo's clusters (%v) has a kubeconfig context in %q", r.ClusterNames(), cfg.Kubeconfig)
	}
	done = true
	return out, nil
}

// closeEngines stops the watches of the engines' caches.
func closeEngines(engines map[string]*reconcile.Engine) {
	for _, e := range engines {
		e.Close()
	}
}

// loops syncs every cluster whose sync policy is auto once at start, then runs
// drift checks on their intervals, until ctx ends.
//
// With shared clusters (startup false), the sync at start is the one of
// taking a cluster's lease, and drift checks run only for held clusters.
func loops(ctx context.Context, cfg Config, svc *deploy.Service, startup bool, log *slog.Logger) {
	if startup {
		go svc.StartupSync(ctx)
	}
	tick := func(d time.Duration) <-chan time.Time {
		if d <= 0 {
			return nil
		}
		return time.Tick(d)
	}
	resync := tick(cfg.ResyncInterval)
	for {
		select {
		case <-ctx.Done():
			return
		case <-resync:
			for _, name := range svc.Clusters() {
				if !svc.Owns(name) {
					continue
				}
				if err := svc.CheckDrift(ctx, name); err != nil {
					log.Warn("drift check failed", "cluster", name, "error", err)
				}
			}
		}
	}
}
