package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mygitops/mgo/internal/importer"
	"github.com/mygitops/mgo/internal/secrets"
)

type importFlags struct {
	setup      importer.Setup
	opts       importer.Options
	chartRepos []string
	images     []string
	ageKeyFile string
	output     string
	outbound   chartsOutbound
}

func newImportCommand(out, errOut io.Writer) *cobra.Command {
	f := &importFlags{}
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Write the gitops repo of a cluster's running Helm releases",
		Long: `Reads the Helm releases of a cluster and writes, for each one,
installations/<cluster>/<release>-values.yaml: a header naming its chart
(found by name, version and content in the chart repositories of
mygitops.yaml and those --chart-repo adds there; an OCI chart keeps its
oci:// reference; a chart found nowhere is written into charts/<name>/ from
the release), then the values it was installed with. Values under secret
key names go to <release>-secrets.yaml, SOPS-encrypted for --age-recipient.
--image links the chart's image field of every release running that image
to a header image entry, so that deploys work at once.

Before it writes anything it renders every imported release from the new
files and diffs it with the live cluster, as mgo diff does: it writes only
when nothing differs, and otherwise prints per release and object what
differs. Importing again over an imported repo changes nothing.

Exit status: 0 imported (also with --force when something differs), 1
refused (differences, a release that cannot be imported, secrets that
would be written in clear), 2 could not run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return f.run(ctx, out, errOut)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.setup.Cluster, "cluster", "", "cluster: installations/<cluster> in the repo, and the kubeconfig context unless --context (required)")
	fs.StringVar(&f.setup.Kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG, then ~/.kube/config)")
	fs.StringVar(&f.setup.Context, "context", "", "kubeconfig context (default: --cluster)")
	fs.StringArrayVar(&f.opts.Namespaces, "namespace", nil, "import only the releases of this namespace (repeatable; default all)")
	fs.StringVar(&f.opts.RepoDir, "repo", ".", "gitops repository directory (created when missing)")
	fs.StringArrayVar(&f.chartRepos, "chart-repo", nil, "chart repository name=url to search and add to mygitops.yaml (https:// or oci://; repeatable)")
	fs.StringArrayVar(&f.images, "image", nil, "registry/app=gitlab.com/acme/app: link the image field of every release running registry/app to a header image entry for that trigger repo (repeatable)")
	fs.StringArrayVar(&f.opts.SecretKeys, "secret-key", nil, "value key name (or pattern) that holds a secret, beside password, token, secret, key... (repeatable)")
	fs.StringArrayVar(&f.opts.AgeRecipients, "age-recipient", nil, "age public key to encrypt the secrets files for with SOPS (repeatable)")
	fs.StringVar(&f.ageKeyFile, "age-key-file", "", "age identities to open secrets files already in the repo, so unchanged ones stay byte for byte (also SOPS_AGE_KEY_FILE, SOPS_AGE_KEY)")
	fs.BoolVar(&f.opts.AllowPlaintextSecrets, "allow-plaintext-secrets", false, "write secrets files in clear when no --age-recipient is given")
	fs.StringVar(&f.opts.RawSelector, "raw-selector", "", "label selector: also export the matching objects no Helm release owns as *-raw.yaml")
	fs.BoolVar(&f.opts.Force, "force", false, "write the files even when they do not render the live cluster")
	fs.StringVar(&f.setup.CacheDir, "chart-cache", "", "chart cache directory (default ~/.cache/mgo/charts)")
	fs.StringVar(&f.setup.CAFile, "ca-file", "", "PEM file of extra certificate authorities for chart repositories")
	fs.BoolVar(&f.setup.PlainHTTP, "plain-http", false, "talk to OCI registries over plain HTTP (local registries only)")
	f.outbound.register(fs)
	fs.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	_ = cmd.MarkFlagRequired("cluster")
	return cmd
}

func (f *importFlags) run(ctx context.Context, out, errOut io.Writer) error {
	if f.output != "text" && f.output != "json" {
		return &ExitError{Code: 2, Err: fmt.Errorf("--output: unknown format %q (want text or json)", f.output)}
	}
	for _, s := range f.chartRepos {
		r, err := importer.ParseChartRepo(s)
		if err != nil {
			return &ExitError{Code: 2, Err: err}
		}
		f.opts.ChartRepos = append(f.opts.ChartRepos, r)
	}
	for _, s := range f.images {
		img, trigger, ok := strings.Cut(s, "=")
		if !ok || img == "" || trigger == "" {
			return &ExitError{Code: 2, Err: fmt.Errorf("--image %q: want registry/app=gitlab.com/acme/app", s)}
		}
		if f.opts.Images == nil {
			f.opts.Images = map[string]string{}
		}
		f.opts.Images[img] = trigger
	}
	if len(f.opts.AgeRecipients) > 0 {
		f.opts.Encrypt = secrets.Encrypt
		keys, err := secrets.LoadKeys(f.ageKeyFile, nil)
		if err != nil {
			return &ExitError{Code: 2, Err: err}
		}
		if !keys.Empty() {
			f.opts.Decrypt = func(path string, data []byte) ([]byte, error) { return secrets.Decrypt(path, data, keys) }
		}
	}
	policy, err := f.outbound.policy()
	if err != nil {
		return err
	}
	f.setup.Outbound = policy
	log := slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	im, err := importer.NewFromSetup(f.setup, log)
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	res, err := im.Run(ctx, f.opts)
	if res != nil {
		if perr := printImport(out, f.output, res); perr != nil {
			return perr
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, importer.ErrNotProven) && res != nil && res.Written:
		fmt.Fprintln(errOut, "Warning: written with --force although the files do not render the live cluster (see above)")
		return nil
	case errors.Is(err, importer.ErrNotProven), errors.Is(err, importer.ErrPlaintextSecrets):
		return &ExitError{Code: 1, Err: err}
	}
	return &ExitError{Code: 2, Err: err}
}

func printImport(out io.Writer, format string, res *importer.Result) error {
	if format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Fprintf(out, "cluster %s: %d release(s)\n", res.Cluster, len(res.Releases))
	for _, rr := range res.Releases {
		fmt.Fprintf(out, "  %s/%s (revision %d)", rr.Namespace, rr.Name, rr.Revision)
		if rr.Chart != "" {
			fmt.Fprintf(out, ": chart %s %s (%s)", rr.Chart, rr.Version, rr.ChartSource)
		}
		if rr.File != "" {
			fmt.Fprintf(out, " -> %s", rr.File)
		}
		fmt.Fprintln(out)
		if len(rr.Images) > 0 {
			fmt.Fprintf(out, "    images: %s\n", strings.Join(rr.Images, ", "))
		}
		if len(rr.Secrets) > 0 {
			fmt.Fprintf(out, "    secret values in %s: %s\n", rr.SecretsFile, strings.Join(rr.Secrets, ", "))
		}
		for _, w := range rr.Warnings {
			fmt.Fprintf(out, "    warning: %s\n", w)
		}
		if rr.Error != "" {
			fmt.Fprintf(out, "    failed: %s\n", rr.Error)
		}
		for _, o := range rr.Objects {
			fmt.Fprintf(out, "    %s %s: the imported files render it differently from the live object:\n", o.Subject, o.Action)
			for _, line := range strings.Split(strings.TrimRight(o.Diff, "\n"), "\n") {
				fmt.Fprintf(out, "      %s\n", line)
			}
		}
	}
	for _, r := range res.Raw {
		fmt.Fprintf(out, "  raw %s: %d object(s)\n", r.File, len(r.Objects))
	}
	for _, o := range res.RawDiff {
		fmt.Fprintf(out, "  raw %s %s:\n", o.Subject, o.Action)
		for _, line := range strings.Split(strings.TrimRight(o.Diff, "\n"), "\n") {
			fmt.Fprintf(out, "      %s\n", line)
		}
	}
	switch {
	case res.Proven:
		fmt.Fprintln(out, "proven: the imported files render the live cluster exactly")
	case res.Forced:
		fmt.Fprintln(out, "NOT proven: the files differ from the live cluster; written anyway (--force)")
	default:
		fmt.Fprintln(out, "NOT proven: nothing written")
	}
	if res.Written {
		for _, fr := range res.Files {
			fmt.Fprintf(out, "  %s %s\n", fr.Action, fr.Path)
		}
	}
	return nil
}
