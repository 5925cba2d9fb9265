package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mygitops/mgo/internal/api"
	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/gitrepo"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/repo"
	"github.com/mygitops/mgo/internal/secrets"
	"github.com/mygitops/mgo/internal/version"
	"github.com/mygitops/mgo/pkg/apitypes"
	"github.com/mygitops/mgo/pkg/client"
)

type deployFlags struct {
	git          gitFlags
	server       string
	req          deploy.Request
	output       string
	sync         bool
	kubeconfig   string
	chartCache   string
	chartCAFile  string
	outbound     chartsOutbound
	timeout      time.Duration
	pollInterval time.Duration
	idTokenEnv   string
	audience     string
	attempts     int
	ageKeyFile   string
}

func newDeployCommand(out, errOut io.Writer) *cobra.Command {
	f := &deployFlags{}
	cmd := &cobra.Command{
		Use:   "deploy",
		Short: "Set an image in the gitops repo: edit, commit, push (and sync)",
		Long: `Sets the image of a trigger repo in every values file of the cluster whose
header lists that trigger repo, commits the change with the requester as
author, and pushes it (retrying on a fresh fetch when someone else pushed
first). Setting the image that is already there makes no commit.

With --repo, mgo does this itself (and with --sync syncs the cluster
afterwards). With --server URL, it asks a running mgo serve, follows the
deployment to its end and prints the result: what a CI job runs. The
request carries an idempotency key (--idempotency-key, else a new random
one): when the connection breaks or a gateway answers 502, 503 or 504, it
is sent again with the same key (--attempts times at most, with backoff),
so it deploys once, and the one deployment is followed to its end. The
identity it sends, in this order: the ID token in the variable named by
--id-token-env (GitLab CI id_tokens); in GitHub Actions with
"permissions: id-token: write", an ID token requested from the runner for
--audience; else the static token in $MGO_TOKEN.

During a deploy freeze of the cluster (the freezes of mygitops.yaml) the
deploy is refused, unless --override-freeze (with --repo) or the token's
freezeOverride (with --server) lets it through.

Exit status: 0 success (also when nothing changed), 1 refused (bad input,
unknown cluster or trigger repo, a deploy freeze), 2 failure (git, sync or
rollout).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			if f.output != "text" && f.output != "json" {
				return &ExitError{Code: 1, Err: fmt.Errorf("--output: unknown format %q (want text or json)", f.output)}
			}
			switch {
			case f.server != "" && f.git.url != "":
				return &ExitError{Code: 1, Err: errors.New("give --repo or --server, not both")}
			case f.server != "" && f.req.OverrideFreeze:
				return &ExitError{Code: 1, Err: errors.New("--override-freeze is for --repo; with --server the token's (or claim rule's) freezeOverride decides")}
			case f.server != "":
				return f.remote(ctx, out, errOut)
			case f.git.url != "":
				return f.local(ctx, out, errOut)
			}
			return &ExitError{Code: 1, Err: errors.New("give --repo (deploy from here) or --server (ask mgo serve)")}
		},
	}
	fs := cmd.Flags()
	f.git.register(fs, "repo")
	fs.StringVar(&f.server, "server", "", "URL of mgo serve (identity: --id-token-env, the GitHub Actions ID token, else $MGO_TOKEN)")
	fs.StringVar(&f.idTokenEnv, "id-token-env", "", "with --server: environment variable holding an OIDC ID token (GitLab CI id_tokens), e.g. MGO_ID_TOKEN")
	fs.StringVar(&f.audience, "audience", "", "with --server in GitHub Actions: audience of the requested ID token (default: the --server URL)")
	fs.StringVar(&f.req.Cluster, "cluster", "", "cluster (installations/<cluster>)")
	fs.StringVar(&f.req.TriggerRepo, "trigger-repo", "", "source repository whose image changes, as listed in the headers")
	fs.StringVar(&f.req.ImageRepo, "image", "", "image repository, e.g. registry.acme.io/acme/app")
	fs.StringVar(&f.req.Tag, "tag", "", "image tag (may carry @sha256:...)")
	fs.StringVar(&f.req.Digest, "digest", "", "image digest sha256:...")
	fs.StringVar(&f.req.Author, "author", "", "commit author: \"Name <email>\", a name or an email (default: $GITLAB_USER_EMAIL, $GITHUB_ACTOR, $USER)")
	fs.StringVar(&f.req.IdempotencyKey, "idempotency-key", "", "with --server: a retried request with this key returns the first deployment (default: a new random key per run)")
	fs.IntVar(&f.attempts, "attempts", 6, "with --server: sends of the request (same idempotency key, with backoff) when the connection breaks or a gateway answers 502, 503 or 504")
	fs.StringVar(&f.req.SourceCommit, "source-commit", "", "with --server: the trigger repo's commit the image was built from, for its commit status (default: $CI_COMMIT_SHA, $GITHUB_SHA)")
	fs.BoolVar(&f.req.Restart, "restart", false, "with --server: ask for a rolling restart when the image is unchanged")
	fs.BoolVar(&f.req.OverrideFreeze, "override-freeze", false, "with --repo: deploy during a deploy freeze of the cluster (the commit's Freeze-Override trailer records it)")
	fs.BoolVarP(&f.sync, "sync", "s", false, "with --repo: sync the cluster after pushing (kubeconfig context = cluster)")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "with --sync: kubeconfig file (default $KUBECONFIG, then ~/.kube/config)")
	fs.StringVar(&f.chartCache, "chart-cache", "", "with --sync: chart cache directory")
	fs.StringVar(&f.chartCAFile, "chart-ca-file", "", "with --sync: PEM bundle of extra certificate authorities for chart repositories and OCI registries")
	f.outbound.register(fs)
	fs.StringVar(&f.ageKeyFile, "age-key-file", "", "age identities that decrypt SOPS-encrypted *-secrets.yaml files, checked before the commit and rendered by --sync (also read: $"+secrets.EnvAgeKeyFile+", $"+secrets.EnvAgeKey+")")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Minute, "give up after this long")
	fs.DurationVar(&f.pollInterval, "poll-interval", time.Second, "with --server: how often to ask for progress")
	fs.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	return cmd
}

func defaultAuthor() string {
	for _, v := range []string{"GITLAB_USER_EMAIL", "GITHUB_ACTOR", "USER"} {
		if s := strings.TrimSpace(os.Getenv(v)); s != "" {
			return s
		}
	}
	return ""
}

// local runs the deploy pipeline (deploy.DeployAction) from this process.
func (f *deployFlags) local(ctx context.Context, out, errOut io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req := f.req
	if req.Author == "" {
		req.Author = defaultAuthor()
	}
	req.Client = "mgo-cli"
	opts, err := f.git.options(cacheBase())
	if err != nil {
		return &ExitError{Code: 1, Err: err}
	}
	log := slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	g, err := gitrepo.New(opts, log)
	if err != nil {
		return &ExitError{Code: 1, Err: err}
	}
	keys, err := loadKeys(f.ageKeyFile)
	if err != nil {
		return err
	}
	policy, err := f.outbound.policy()
	if err != nil {
		return err
	}
	action := &deploy.DeployAction{Git: g, SecretKeys: keys}
	if f.sync {
		action.NewSyncer = func(r *repo.Repo) (deploy.ClusterSyncer, error) {
			return reconcile.NewFromSetup(reconcile.Setup{Kubeconfig: f.kubeconfig, Cluster: req.Cluster, CacheDir: f.chartCache,
				CAFile: f.chartCAFile, Outbound: policy,
				Engine: reconcile.Config{SecretKeys: keys}}, r, log)
		}
	}
	d, err := action.Run(ctx, req)
	if err != nil {
		code := 2
		if deploy.Refused(err) {
			code = 1
		}
		return &ExitError{Code: code, Err: err}
	}
	if err := printDeployment(out, f.output, api.WireDeployment(d)); err != nil {
		return err
	}
	if d.Status == deploy.Failed {
		return &ExitError{Code: 2}
	}
	return nil
}

// remote asks mgo serve and follows the deployment to its end. It sends
// an idempotency key (--idempotency-key, or a new random one), so when the
// connection breaks or a gateway answers 502, 503 or 504 it sends the same
// request again and follows the one deployment the key names.
func (f *deployFlags) remote(ctx context.Context, out, errOut io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	tokens, err := f.tokenSource(errOut)
	if err != nil {
		return &ExitError{Code: 1, Err: err}
	}
	c, err := client.New(f.server, client.Options{Token: tokens, UserAgent: "mgo/" + version.Version,
		HTTPClient: &http.Client{Timeout: time.Minute}})
	if err != nil {
		return &ExitError{Code: 1, Err: fmt.Errorf("--server: %w", err)}
	}
	req := apitypes.DeployRequest{Cluster: f.req.Cluster, TriggerRepo: f.req.TriggerRepo, ImageRepo: f.req.ImageRepo,
		Tag: f.req.Tag, Digest: f.req.Digest, Author: cmp.Or(f.req.Author, defaultAuthor()),
		IdempotencyKey: cmp.Or(f.req.IdempotencyKey, client.NewIdempotencyKey()), Restart: f.req.Restart,
		// the commit the CI job built, for its commit status
		SourceCommit: cmp.Or(f.req.SourceCommit, os.Getenv("CI_COMMIT_SHA"), os.Getenv("GITHUB_SHA"))}
	d, err := c.Follow(ctx, req, client.FollowOptions{
		PollInterval: f.pollInterval, Attempts: f.attempts,
		OnChange: func(d *apitypes.Deployment) { fmt.Fprintf(errOut, "deployment %s: %s\n", d.ID, d.Status) },
		OnRetry: func(err error, wait time.Duration) {
			fmt.Fprintf(errOut, "retrying in %s with idempotency key %s after: %v\n", wait, req.IdempotencyKey, err)
		},
	})
	if err != nil {
		var e *client.Error
		if errors.As(err, &e) && e.Refused() {
			return &ExitError{Code: 1, Err: err}
		}
		return &ExitError{Code: 2, Err: err}
	}
	if err := printDeployment(out, f.output, d); err != nil {
		return err
	}
	if d.Status == apitypes.StatusFailed {
		return &ExitError{Code: 2}
	}
	return nil
}

func printDeployment(out io.Writer, format string, d *apitypes.Deployment) error {
	if format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	switch {
	case d.Status == apitypes.StatusFailed:
		fmt.Fprintf(out, "deployment %s FAILED at %s: %s\n", d.ID, d.Stage, d.Error)
	case d.Changed:
		fmt.Fprintf(out, "deployed %s to %s: commit %s (%s)\n", d.Request.Ref(), d.Request.Cluster, d.Commit, strings.Join(d.Files, ", "))
	default:
		fmt.Fprintf(out, "%s is already set in %s: no commit (head %s)\n", d.Request.Ref(), d.Request.Cluster, d.Commit)
	}
	for _, r := range d.Releases {
		line := fmt.Sprintf("  %s/%s: %s", r.Namespace, r.Name, r.Action)
		if r.Revision > 0 {
			line += fmt.Sprintf(" (revision %d)", r.Revision)
		}
		if len(r.After) > 0 {
			line += " after " + strings.Join(r.After, ", ")
		}
		if r.Error != "" {
			line += ": " + r.Error
		}
		fmt.Fprintln(out, line)
	}
	switch {
	case d.Reverted:
		fmt.Fprintf(out, "  reverted by mgo: deployment %s, commit %s (onFailure: revert)\n", d.RevertedBy, d.RevertCommit)
	case d.RevertError != "":
		fmt.Fprintf(out, "  not reverted: %s\n", d.RevertError)
	}
	return nil
}
