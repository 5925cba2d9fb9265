package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/repo"
	"github.com/mygitops/mgo/internal/secrets"
)

// clusterFlags are the flags of commands that talk to a cluster.
type clusterFlags struct {
	repoDir    string
	cluster    string
	kubeconfig string
	release    string
	cacheDir   string
	plainHTTP  bool
	caFile     string
	outbound   chartsOutbound
	output     string
	repoID     string
	ageKeyFile string
}

func (f *clusterFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.repoDir, "repo", ".", "gitops repository directory")
	cmd.Flags().StringVar(&f.cluster, "cluster", "", "cluster: the kubeconfig context, and installations/<cluster> in the repo (required)")
	cmd.Flags().StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG, then ~/.kube/config)")
	cmd.Flags().StringVar(&f.release, "release", "", "only this release (by Helm release name)")
	cmd.Flags().StringVar(&f.cacheDir, "chart-cache", "", "chart cache directory (default ~/.cache/mgo/charts)")
	cmd.Flags().BoolVar(&f.plainHTTP, "plain-http", false, "talk to OCI registries over plain HTTP (local registries only)")
	cmd.Flags().StringVar(&f.caFile, "chart-ca-file", "", "PEM bundle of extra certificate authorities for chart repositories and OCI registries")
	f.outbound.register(cmd.Flags())
	cmd.Flags().StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	cmd.Flags().StringVar(&f.repoID, "repo-id", "", "identity of the gitops repo on the cluster: only releases and objects labelled with it are removed; give the one mgo serve logs at start to act as it does (default \"default\")")
	registerAgeKeyFile(cmd, &f.ageKeyFile)
	_ = cmd.MarkFlagRequired("cluster")
}

func registerAgeKeyFile(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVar(p, "age-key-file", "", "age identities that decrypt SOPS-encrypted *-secrets.yaml files (also read: $"+secrets.EnvAgeKeyFile+", $"+secrets.EnvAgeKey+")")
}

// loadKeys reads the age identities of --age-key-file and the SOPS_AGE_KEY*
// environment; a key that cannot be read is exit 2.
func loadKeys(keyFile string) (secrets.Keys, error) {
	keys, err := secrets.LoadKeys(keyFile, nil)
	if err != nil {
		return keys, &ExitError{Code: 2, Err: err}
	}
	return keys, nil
}

// engine loads the repo and connects to the cluster; failures are exit 2.
func (f *clusterFlags) engine(errOut io.Writer) (*repo.Repo, *reconcile.Engine, error) {
	if f.output != "text" && f.output != "json" {
		return nil, nil, &ExitError{Code: 2, Err: fmt.Errorf("--output: unknown format %q (want text or json)", f.output)}
	}
	keys, err := loadKeys(f.ageKeyFile)
	if err != nil {
		return nil, nil, err
	}
	policy, err := f.outbound.policy()
	if err != nil {
		return nil, nil, err
	}
	r, err := repo.Load(f.repoDir, repo.LoadOptions{Cluster: f.cluster, Keys: keys})
	if err != nil {
		return nil, nil, &ExitError{Code: 2, Err: err}
	}
	for _, p := range r.Problems.Errors() {
		fmt.Fprintln(errOut, p) // the releases concerned fail; the others go on
	}
	log := slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e, err := reconcile.NewFromSetup(reconcile.Setup{
		Kubeconfig: f.kubeconfig, Cluster: f.cluster, CacheDir: f.cacheDir, PlainHTTP: f.plainHTTP,
		CAFile: f.caFile, Outbound: policy,
		Engine: reconcile.Config{RepoID: f.repoID, SecretKeys: keys},
	}, r, log)
	if err != nil {
		return nil, nil, &ExitError{Code: 2, Err: err}
	}
	return r, e, nil
}

func newSyncCommand(out, errOut io.Writer) *cobra.Command {
	f := &clusterFlags{}
	var dryRun bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Make a cluster equal to the gitops repo",
		Long: `Applies the raw manifests of installations/<cluster>/ (pruning what left the
repo), then installs or upgrades every Helm release whose rendered objects
differ from the live cluster, waits for the rollout and reports per release
and object. Releases whose live state already matches are not upgraded.

Exit status: 0 everything synced, 1 some release failed, 2 could not run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, e, err := f.engine(errOut)
			if err != nil {
				return err
			}
			defer e.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			// A command-line sync has no memory of earlier syncs: every
			// release is compared with the live cluster.
			res, err := e.Sync(ctx, r, reconcile.Options{DryRun: dryRun, Release: f.release, Full: true, Timeout: timeout})
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if err := printSync(out, f.output, res); err != nil {
				return err
			}
			if res.Failed() {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "compare and report, change nothing")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "rollout wait per release (default: the cluster's timeout in mygitops.yaml, 5m)")
	return cmd
}

func printSync(out io.Writer, format string, res *reconcile.Result) error {
	if format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Fprintf(out, "cluster %s: %d release(s) in %s\n", res.Cluster, len(res.Releases), res.Duration.Round(time.Millisecond))
	for _, rr := range res.Releases {
		line := fmt.Sprintf("  %s/%s: %s", rr.Namespace, rr.Name, rr.Action)
		if rr.Revision > 0 {
			line += fmt.Sprintf(" (revision %d)", rr.Revision)
		}
		if len(rr.After) > 0 {
			line += " after " + strings.Join(rr.After, ", ")
		}
		if rr.Action == reconcile.Failed {
			line += fmt.Sprintf(" at %s: %s", rr.Stage, rr.Error)
		}
		fmt.Fprintln(out, line)
		for _, o := range rr.Objects {
			if o.Action == reconcile.ObjectUnchanged && (o.Status == "" || o.Status == "Current") {
				continue
			}
			fmt.Fprintf(out, "    %s %s %s\n", o.Subject, o.Action, o.Status)
		}
	}
	if len(res.Raw) > 0 || res.RawError != "" {
		counts := map[string]int{}
		for _, o := range res.Raw {
			counts[string(o.Action)]++
			if o.Action != reconcile.ObjectUnchanged {
				fmt.Fprintf(out, "  raw %s %s\n", o.Subject, o.Action)
			}
		}
		fmt.Fprintf(out, "  raw manifests: %s\n", countsString(counts))
		if res.RawError != "" {
			fmt.Fprintf(out, "  raw manifests failed: %s\n", res.RawError)
		}
	}
	fmt.Fprintf(out, "  API requests: %s (%d writes)\n", countsString(res.Requests), res.Requests.Writes())
	return nil
}

func countsString[M ~map[string]int](m M) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%d %s", m[k], k))
	}
	return strings.Join(parts, ", ")
}

func newDiffCommand(out, errOut io.Writer) *cobra.Command {
	f := &clusterFlags{}
	cmd := &cobra.Command{
		Use:   "diff",
		Short: "Show how a cluster differs from the gitops repo",
		Long: `Renders every release of installations/<cluster>/ and compares each object,
and each raw manifest, with the live cluster by a server-side dry-run apply.
Prints a unified diff per object that would change; Secret values are masked.

Exit status: 0 no differences, 1 differences, 2 error (as diff and kubectl diff).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, e, err := f.engine(errOut)
			if err != nil {
				return err
			}
			defer e.Close()
			res, err := e.Diff(context.WithoutCancel(cmd.Context()), r, reconcile.Options{Release: f.release})
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if f.output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return err
				}
			} else {
				printDiff(out, res)
			}
			switch {
			case res.Failed():
				return &ExitError{Code: 2}
			case res.HasDifferences():
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func printDiff(out io.Writer, res *reconcile.DiffResult) {
	for _, o := range res.Raw {
		if o.Diff != "" {
			fmt.Fprint(out, o.Diff)
		}
	}
	if res.RawError != "" {
		fmt.Fprintf(out, "# raw manifests: %s\n", res.RawError)
	}
	for _, rd := range res.Releases {
		if rd.Error != "" {
			fmt.Fprintf(out, "# %s/%s (%s): %s failed: %s\n", rd.Namespace, rd.Name, rd.File, rd.Stage, rd.Error)
		}
		if len(rd.After) > 0 && (rd.Error != "" || rd.Changes()) {
			fmt.Fprintf(out, "# %s/%s is synced after %s\n", rd.Namespace, rd.Name, strings.Join(rd.After, ", "))
		}
		for _, o := range rd.Objects {
			if o.Diff != "" {
				fmt.Fprint(out, o.Diff)
			}
		}
	}
}
