package cli

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/mygitops/mgo/internal/auth"
	"github.com/mygitops/mgo/internal/outbound"
	"github.com/mygitops/mgo/internal/repo"
	"github.com/mygitops/mgo/internal/server"
)

// tokensFile is the file of --tokens-file: static tokens and OIDC issuers
// with their claim rules.
type tokensFile struct {
	Tokens []auth.TokenConfig `yaml:"tokens"`
	OIDC   auth.OIDCConfig    `yaml:"oidc"`
}

func newServeCommand(errOut io.Writer) *cobra.Command {
	var (
		g                         gitFlags
		cfg                       server.Config
		tokensPath, logLevel      string
		outboundLists             outboundSettings
		ageKeyFile                string
		auditLog                  string
		githubSecret, gitlabToken string
		creds                     = repo.DefaultCredentialPolicy()
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the deploy API: commit image changes, sync clusters, answer CI",
		Long: `Clones the gitops repository, connects to every cluster of the repo that has a
kubeconfig context, syncs them, and serves the deploy API (see docs/api.md).
Push events (webhooks) and polling sync clusters whose files changed; a
periodic drift check follows each cluster's drift policy.

Every endpoint but /healthz and /readyz needs a bearer token from
--tokens-file (hashed tokens with scopes; see mgo token).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("--log-level: %w", err)}
			}
			log := slog.New(slog.NewJSONHandler(errOut, &slog.HandlerOptions{Level: level}))
			serveGC()
			if cfg.DataDir == "" {
				cfg.DataDir = filepath.Join(cacheBase(), "serve")
			}
			var err error
			if cfg.Git, err = g.options(cfg.DataDir); err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if g.workdir == "" {
				cfg.Git.Dir = filepath.Join(cfg.DataDir, "repo")
			}
			if tokensPath != "" {
				if cfg.Tokens, cfg.OIDC, err = readTokens(tokensPath); err != nil {
					return &ExitError{Code: 2, Err: err}
				}
			}
			if cfg.GitHubSecret, err = readSecretFile(githubSecret, "--github-webhook-secret-file"); err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if cfg.GitLabToken, err = readSecretFile(gitlabToken, "--gitlab-webhook-token-file"); err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if cfg.Kubeconfig == "" {
				cfg.Kubeconfig = os.Getenv("KUBECONFIG")
			}
			if cfg.SecretKeys, err = loadKeys(ageKeyFile); err != nil {
				return err
			}
			if u, err := url.Parse(cfg.ExternalURL); cfg.ExternalURL != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
				return &ExitError{Code: 2, Err: fmt.Errorf("--external-url %q: must be an http or https URL", cfg.ExternalURL)}
			}
			if creds.Dir != "" {
				if creds.Dir, err = filepath.Abs(creds.Dir); err != nil {
					return &ExitError{Code: 2, Err: fmt.Errorf("--chart-credentials-dir: %w", err)}
				}
			}
			cfg.Credentials = &creds
			policies, err := outboundLists.policies(cmd.Flags())
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			cfg.ChartsOutbound, cfg.Notify.Outbound, cfg.ChecksOutbound = policies[outbound.Charts], policies[outbound.Notifications], policies[outbound.Checks]
			cfg.AuditLog = os.Stdout
			if auditLog != "" && auditLog != "-" {
				f, err := os.OpenFile(auditLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
				if err != nil {
					return &ExitError{Code: 2, Err: fmt.Errorf("--audit-log: %w", err)}
				}
				defer f.Close()
				cfg.AuditLog = f
			}
			if cfg.Namespace == "" {
				cfg.Namespace = os.Getenv("POD_NAMESPACE")
			}
			if cfg.State != server.StateBolt && cfg.State != server.StateKubernetes {
				return &ExitError{Code: 2, Err: fmt.Errorf("--state %q: must be %s or %s", cfg.State, server.StateBolt, server.StateKubernetes)}
			}
			cfg.Log = log
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := server.Run(ctx, cfg); err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			return nil
		},
	}
	fs := cmd.Flags()
	g.register(fs, "repo-url")
	fs.StringVar(&cfg.Listen, "listen", ":8080", "address to serve HTTP on")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "clone, deployment records and snapshots (default ~/.cache/mgo/serve)")
	fs.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig whose contexts are the repo's clusters (default $KUBECONFIG)")
	fs.StringVar(&cfg.InCluster, "in-cluster", "", "name of the cluster mgo runs in (uses its service account)")
	fs.StringVar(&cfg.ChartCache, "chart-cache", "", "chart cache directory (default <data-dir>/charts)")
	fs.StringVar(&cfg.ChartCAFile, "chart-ca-file", "", "PEM bundle of extra certificate authorities for chart repositories and OCI registries")
	fs.BoolVar(&cfg.PlainHTTP, "plain-http", false, "talk to OCI registries over plain HTTP (local registries only)")
	cfg.BudgetCap = repo.DefaultBudgetCap
	fs.Float32Var(&cfg.BudgetCap.QPS, "budget-max-qps", cfg.BudgetCap.QPS, "the highest budget.qps mygitops.yaml may give a cluster; a higher one is capped, with a warning (0: no cap)")
	fs.IntVar(&cfg.BudgetCap.Burst, "budget-max-burst", cfg.BudgetCap.Burst, "the highest budget.burst mygitops.yaml may give a cluster (0: no cap)")
	fs.IntVar(&cfg.BudgetCap.MaxConcurrentReleases, "budget-max-releases", cfg.BudgetCap.MaxConcurrentReleases, "the highest budget.maxConcurrentReleases mygitops.yaml may give a cluster (0: no cap)")
	fs.StringVar(&creds.Dir, "chart-credentials-dir", "", "the only directory whose files chart-repository and notification credentials in mygitops.yaml may name (default: none)")
	fs.StringVar(&creds.EnvPrefix, "chart-credentials-env-prefix", creds.EnvPrefix, "the prefix of every environment variable chart-repository and notification credentials in mygitops.yaml may name (\"\": none)")
	fs.StringVar(&tokensPath, "tokens-file", "", "YAML file: tokens: [{name, sha256, clusters, triggerRepos, routes, freezeOverride}], oidc: {issuers, rules: [{name, issuer, claims, clusters, triggerRepos, freezeOverride}]}; freezeOverride: true lets that token or rule deploy during a deploy freeze (docs/api.md, docs/gitops-repo.md)")
	fs.StringVar(&auditLog, "audit-log", "-", "file the audit log (a JSON line per authenticated request and refusal) is appended to; \"-\": standard output")
	fs.BoolVar(&cfg.InsecureNoAuth, "insecure-no-auth", false, "serve without authentication (local demos only)")
	fs.StringVar(&githubSecret, "github-webhook-secret-file", "", "file holding the GitHub webhook secret (enables /hooks/github)")
	fs.StringVar(&gitlabToken, "gitlab-webhook-token-file", "", "file holding the GitLab webhook token (enables /hooks/gitlab)")
	fs.DurationVar(&cfg.PollInterval, "poll-interval", time.Minute, "fetch the repo this often and sync what changed (0: webhooks only)")
	fs.DurationVar(&cfg.ResyncInterval, "resync-interval", time.Hour, "full drift check of every cluster this often, the safety net behind drift seen by watches within seconds (0: never)")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 5*time.Minute, "on SIGTERM, how long deployments in flight may take to finish")
	fs.DurationVar(&cfg.DrainDelay, "drain-delay", 5*time.Second, "on SIGTERM, how long /readyz answers 503 while requests are still served, before new ones are refused (for load balancers to drain)")
	fs.StringVar(&cfg.RepoID, "repo-id", "", "identity of the gitops repo on the clusters: mgo removes only releases and objects labelled with it (default: a hash of --repo-url and --branch)")
	fs.DurationVar(&cfg.PendingTimeout, "pending-timeout", 5*time.Minute, "a Helm release left pending this long by another mgo is taken as abandoned and recovered")
	fs.DurationVar(&cfg.DiffTimeout, "diff-timeout", 2*time.Minute, "deadline of a diff or drift check of one cluster")
	fs.DurationVar(&cfg.OIDCKeyRefetch, "oidc-key-refetch", auth.DefaultKeyRefetch, "least time between two fetches of an OIDC issuer's keys: a token of a key id not fetched yet is answered 503 (retry) until the next fetch is due, so no caller can make mgo fetch them per request")
	fs.StringVar(&cfg.ExternalURL, "external-url", "", "base URL of this mgo as people reach it, for links to its dashboard in notifications (e.g. https://mgo.acme.io)")
	fs.StringVar(&cfg.State, "state", server.StateBolt, "where deployment records live: bolt (a file in --data-dir; one replica) or kubernetes (DeployRecords and Leases in --namespace; several replicas share the clusters, docs/operations.md)")
	fs.StringVar(&cfg.Namespace, "namespace", "", "with --state kubernetes: the namespace of mgo's records and leases (default $POD_NAMESPACE)")
	fs.StringVar(&cfg.StateContext, "state-context", "", "with --state kubernetes: the kubeconfig context of mgo's home cluster (default: the in-cluster service account)")
	fs.StringVar(&cfg.Replica, "replica-name", "", "with --state kubernetes: this replica's name in leases and records (default: $POD_NAME or the host name, and a random suffix)")
	fs.DurationVar(&cfg.LeaseDuration, "lease-duration", 15*time.Second, "with --state kubernetes: how long a cluster's lease holds without renewal; another replica takes over a dead one's clusters after about this long")
	fs.DurationVar(&cfg.RecordMaxAge, "record-max-age", 30*24*time.Hour, "with --state kubernetes: finished deployment records older than this are deleted (0: no age limit)")
	fs.IntVar(&cfg.RecordMaxCount, "record-max-count", 10000, "with --state kubernetes: at most this many finished deployment records are kept, the newest (0: no limit)")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	outboundFlags(fs, &outboundLists)
	registerAgeKeyFile(cmd, &ageKeyFile)
	_ = cmd.MarkFlagRequired("repo-url")
	bindConfig(cmd) // --config, MGO_* environment, --print-config
	return cmd
}

func readTokens(path string) ([]auth.TokenConfig, auth.OIDCConfig, error) {
	var none auth.OIDCConfig
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, none, fmt.Errorf("--tokens-file: %w", err)
	}
	var tf tokensFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&tf); err != nil {
		return nil, none, fmt.Errorf("--tokens-file %s: %w", path, err)
	}
	if len(tf.Tokens) == 0 && !tf.OIDC.Enabled() {
		return nil, none, fmt.Errorf("--tokens-file %s: no tokens and no oidc issuers", path)
	}
	if len(tf.Tokens) > 0 {
		if _, err := auth.NewTokens(tf.Tokens); err != nil {
			return nil, none, fmt.Errorf("--tokens-file %s: %w", path, err)
		}
	}
	if tf.OIDC.Enabled() || len(tf.OIDC.Rules) > 0 {
		if _, err := auth.NewOIDC(tf.OIDC, auth.OIDCOptions{}); err != nil {
			return nil, none, fmt.Errorf("--tokens-file %s: %w", path, err)
		}
	}
	return tf.Tokens, tf.OIDC, nil
}

func readSecretFile(path, flag string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return nil, fmt.Errorf("%s: %s is empty", flag, path)
	}
	return []byte(s), nil
}

// serveGC runs the garbage collector of mgo serve at GOGC=50 unless GOGC or
// GOMEMLIMIT is set: a service that keeps the live state of a thousand
// releases peaks at about 1.5 times its live heap instead of twice it
// (measured at 1,000 releases: 232 MiB instead of 289 MiB at start-up, for
// about 10 % more CPU time; docs/operations.md).
func serveGC() {
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetGCPercent(50)
	}
}
