package cli

import (
	"bytes"
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

	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/gitrepo"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/repo"
	"github.com/mygitops/mgo/internal/secrets"
)

type deployFlags struct {
	git          gitFlags
	server       string
	req          deploy.Request
	output       string
	sync         bool
	kubeconfig   string
	chartCache   string
	timeout      time.Duration
	pollInterval time.Duration
	idTokenEnv   string
	audience     string
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
identity it sends, in this order: the ID token in the variable named by
--id-token-env (GitLab CI id_tokens); in GitHub Actions with
"permissions: id-token: write", an ID token requested from the runner for
--audience; else the static token in $MGO_TOKEN.

Exit status: 0 success (also when nothing changed), 1 refused (bad input,
unknown cluster or trigger repo), 2 failure (git, sync or rollout).`,
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
	fs.StringVar(&f.req.IdempotencyKey, "idempotency-key", "", "with --server: a retried request with this key returns the first deployment")
	fs.StringVar(&f.req.SourceCommit, "source-commit", "", "with --server: the trigger repo's commit the image was built from, for its commit status (default: $CI_COMMIT_SHA, $GITHUB_SHA)")
	fs.BoolVar(&f.req.Restart, "restart", false, "with --server: ask for a rolling restart when the image is unchanged")
	fs.BoolVarP(&f.sync, "sync", "s", false, "with --repo: sync the cluster after pushing (kubeconfig context = cluster)")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "with --sync: kubeconfig file (default $KUBECONFIG, then ~/.kube/config)")
	fs.StringVar(&f.chartCache, "chart-cache", "", "with --sync: chart cache directory")
	fs.StringVar(&f.ageKeyFile, "age-key-file", "", "with --sync: age identities that decrypt SOPS-encrypted *-secrets.yaml files (also read: $"+secrets.EnvAgeKeyFile+", $"+secrets.EnvAgeKey+")")
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

// local edits, commits and pushes from this process.
func (f *deployFlags) local(ctx context.Context, out, errOut io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req := f.req
	if req.Author == "" {
		req.Author = defaultAuthor()
	}
	req.Client = "mgo-cli"
	if err := req.Normalize(); err != nil {
		return &ExitError{Code: 1, Err: err}
	}
	opts, err := f.git.options(cacheBase())
	if err != nil {
		return &ExitError{Code: 1, Err: err}
	}
	log := slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	g, err := gitrepo.New(opts, log)
	if err != nil {
		return &ExitError{Code: 1, Err: err}
	}
	if _, err := g.Fetch(ctx); err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	var files []string
	if err := g.Read(ctx, func(dir, _ string) error {
		var err error
		files, err = deploy.Targets(dir, req)
		return err
	}); err != nil {
		code := 2
		if errors.Is(err, deploy.ErrNotFound) || errors.Is(err, deploy.ErrUnprocessable) || errors.Is(err, deploy.ErrForbidden) {
			code = 1
		}
		return &ExitError{Code: code, Err: err}
	}
	id := deploy.NewID()
	var changedFiles []string
	res, err := g.Apply(ctx, func(dir string) (bool, error) {
		changed, err := req.Edit(dir)
		changedFiles = changed
		return len(changed) > 0, err
	}, req.CommitInfo(id, files))
	if err != nil {
		code := 2
		if errors.Is(err, gitrepo.ErrChange) || errors.Is(err, gitrepo.ErrInvalidAuthor) {
			code = 1
		}
		return &ExitError{Code: code, Err: err}
	}
	d := &deploy.Deployment{ID: id, Kind: deploy.KindDeploy, Request: req, Status: deploy.Succeeded,
		Changed: res.Changed, Commit: res.Commit, Files: changedFiles}
	if !res.Changed {
		d.Commit, d.Files = res.Head, files
	}
	if f.sync {
		if err := f.syncAfter(ctx, g, req.Cluster, d, errOut); err != nil {
			return err
		}
	}
	if err := printDeployment(out, f.output, d); err != nil {
		return err
	}
	if d.Status == deploy.Failed {
		return &ExitError{Code: 2}
	}
	return nil
}

// syncAfter syncs the cluster from the clone just pushed and records the
// results of the deployment's releases.
func (f *deployFlags) syncAfter(ctx context.Context, g *gitrepo.Repo, cluster string, d *deploy.Deployment, errOut io.Writer) error {
	keys, err := loadKeys(f.ageKeyFile)
	if err != nil {
		return err
	}
	return g.Read(ctx, func(dir, _ string) error {
		r, err := repo.Load(dir, repo.LoadOptions{Cluster: cluster, Keys: keys})
		if err != nil {
			return &ExitError{Code: 2, Err: err}
		}
		log := slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
		e, err := reconcile.NewFromSetup(reconcile.Setup{Kubeconfig: f.kubeconfig, Cluster: cluster, CacheDir: f.chartCache,
			Engine: reconcile.Config{SecretKeys: keys}}, r, log)
		if err != nil {
			return &ExitError{Code: 2, Err: err}
		}
		res, err := e.Sync(ctx, r, reconcile.Options{Full: true})
		if err != nil {
			return &ExitError{Code: 2, Err: err}
		}
		for _, rr := range res.Releases {
			for _, file := range d.Files {
				if rr.File != file {
					continue
				}
				d.Releases = append(d.Releases, deploy.Outcome(rr))
				if rr.Action == reconcile.Failed {
					d.Status, d.Stage, d.Error = deploy.Failed, deploy.StageRollout, fmt.Sprintf("%s/%s: %s", rr.Namespace, rr.Name, rr.Error)
				}
			}
		}
		return nil
	})
}

// remote asks mgo serve and follows the deployment to its end.
func (f *deployFlags) remote(ctx context.Context, out, errOut io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	tokens, err := f.tokenSource(errOut)
	if err != nil {
		return &ExitError{Code: 1, Err: err}
	}
	if f.req.Author == "" {
		f.req.Author = defaultAuthor()
	}
	c := &apiClient{base: strings.TrimRight(f.server, "/"), tokens: tokens, http: &http.Client{Timeout: time.Minute}}
	body := map[string]any{
		"cluster": f.req.Cluster, "triggerRepo": f.req.TriggerRepo, "imageRepo": f.req.ImageRepo,
		"tag": f.req.Tag, "digest": f.req.Digest, "author": f.req.Author,
		"idempotencyKey": f.req.IdempotencyKey, "restart": f.req.Restart, "wait": false,
	}
	if f.req.SourceCommit == "" { // the commit the CI job built, for its commit status
		f.req.SourceCommit = cmp.Or(os.Getenv("CI_COMMIT_SHA"), os.Getenv("GITHUB_SHA"))
	}
	if f.req.SourceCommit != "" {
		body["sourceCommit"] = f.req.SourceCommit
	}
	var d deploy.Deployment
	if err := c.do(ctx, http.MethodPost, "/api/v1/deployments", body, &d); err != nil {
		return err
	}
	last := d.Status
	fmt.Fprintf(errOut, "deployment %s: %s\n", d.ID, d.Status)
	for !d.Status.Terminal() {
		select {
		case <-ctx.Done():
			return &ExitError{Code: 2, Err: fmt.Errorf("deployment %s still %s: %w", d.ID, d.Status, ctx.Err())}
		case <-time.After(f.pollInterval):
		}
		var next deploy.Deployment
		if err := c.do(ctx, http.MethodGet, "/api/v1/deployments/"+d.ID, nil, &next); err != nil {
			var exit *ExitError
			if errors.As(err, &exit) && exit.Code == 2 && ctx.Err() == nil {
				fmt.Fprintf(errOut, "deployment %s: asking again after: %v\n", d.ID, err)
				continue // mgo restarting or the network: keep asking
			}
			return err
		}
		d = next
		if d.Status != last {
			fmt.Fprintf(errOut, "deployment %s: %s\n", d.ID, d.Status)
			last = d.Status
		}
	}
	if err := printDeployment(out, f.output, &d); err != nil {
		return err
	}
	if d.Status == deploy.Failed {
		return &ExitError{Code: 2}
	}
	return nil
}

// apiClient calls mgo serve.
type apiClient struct {
	base   string
	tokens tokenSource
	http   *http.Client
}

// do sends a request and decodes the answer into v. A 4xx answer is exit
// 1 (refused), anything else that is not 2xx exit 2.
func (c *apiClient) do(ctx context.Context, method, path string, body, v any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return &ExitError{Code: 2, Err: err}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return &ExitError{Code: 1, Err: fmt.Errorf("--server: %w", err)}
	}
	token, err := c.tokens(ctx)
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		code := 2
		if resp.StatusCode/100 == 4 {
			code = 1
		}
		return &ExitError{Code: code, Err: fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, msg)}
	}
	if err := json.Unmarshal(b, v); err != nil {
		return &ExitError{Code: 2, Err: fmt.Errorf("%s %s: answer is not a deployment: %w", method, path, err)}
	}
	return nil
}

func printDeployment(out io.Writer, format string, d *deploy.Deployment) error {
	if format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	switch {
	case d.Status == deploy.Failed:
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
		if r.Error != "" {
			line += ": " + r.Error
		}
		fmt.Fprintln(out, line)
	}
	return nil
}
