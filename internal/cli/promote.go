package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mygitops/mgo/internal/version"
	"github.com/mygitops/mgo/pkg/apitypes"
	"github.com/mygitops/mgo/pkg/client"
)

// promoteFlags are the flags of mgo promote: the server and identity as
// for mgo deploy --server.
type promoteFlags struct {
	id      deployFlags
	output  string
	timeout time.Duration
	comment string
	now     apitypes.PromoteRequest
}

func newPromoteCommand(out, errOut io.Writer) *cobra.Command {
	f := &promoteFlags{}
	cmd := &cobra.Command{
		Use:   "promote",
		Short: "Promotion between clusters: list paths and candidates, approve, reject, promote now",
		Long: `Asks a running mgo serve (--server) about its promotion paths (mygitops.yaml
promotions): which image each stage runs, the candidate on its way into it
and its gates. approve and reject decide on a candidate waiting for an
approve call; now starts a promotion of what runs in the stage before --to.

Exit codes as mgo deploy: 0 done, 1 refused (a bad argument, or the server
refused: 4xx), 2 failed (the candidate failed or was rejected, or the
server could not be reached).`,
	}
	fs := cmd.PersistentFlags()
	fs.StringVar(&f.id.server, "server", "", "URL of mgo serve (identity: --id-token-env, the GitHub Actions ID token, else $MGO_TOKEN)")
	fs.StringVar(&f.id.idTokenEnv, "id-token-env", "", "environment variable holding an OIDC ID token (GitLab CI id_tokens)")
	fs.StringVar(&f.id.audience, "audience", "", "in GitHub Actions: audience of the requested ID token (default: the --server URL)")
	fs.StringVarP(&f.output, "output", "o", "text", "text or json")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Minute, "how long to wait (now --wait)")

	run := func(fn func(context.Context, *client.Client, []string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			if f.id.server == "" {
				return &ExitError{Code: 1, Err: errors.New("--server is required")}
			}
			if f.output != "text" && f.output != "json" {
				return &ExitError{Code: 1, Err: fmt.Errorf("--output: unknown format %q (want text or json)", f.output)}
			}
			tokens, err := f.id.tokenSource(errOut)
			if err != nil {
				return &ExitError{Code: 1, Err: err}
			}
			c, err := client.New(f.id.server, client.Options{Token: tokens, UserAgent: "mgo/" + version.Version,
				HTTPClient: &http.Client{Timeout: f.timeout + time.Minute}})
			if err != nil {
				return &ExitError{Code: 1, Err: fmt.Errorf("--server: %w", err)}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			if err := fn(ctx, c, args); err != nil {
				var e *client.Error
				var x *ExitError
				switch {
				case errors.As(err, &x):
					return err
				case errors.As(err, &e) && e.Refused():
					return &ExitError{Code: 1, Err: err}
				}
				return &ExitError{Code: 2, Err: err}
			}
			return nil
		}
	}
	show := func(p *apitypes.Promotion) error {
		if err := f.print(out, p); err != nil {
			return err
		}
		if p.Phase == apitypes.PhaseFailed || p.Phase == apitypes.PhaseRejected {
			return &ExitError{Code: 2}
		}
		return nil
	}

	list := &cobra.Command{Use: "list", Short: "The promotion paths, the image in each stage and the candidates", Args: cobra.NoArgs,
		RunE: run(func(ctx context.Context, c *client.Client, _ []string) error {
			ps, err := c.Promotions(ctx)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return writeJSONTo(out, ps)
			}
			printPaths(out, ps.Paths, time.Now())
			return nil
		})}
	showCmd := &cobra.Command{Use: "show ID", Short: "One candidate with its gates", Args: cobra.ExactArgs(1),
		RunE: run(func(ctx context.Context, c *client.Client, args []string) error {
			p, err := c.Promotion(ctx, args[0])
			if err != nil {
				return err
			}
			return f.print(out, p)
		})}
	approve := &cobra.Command{Use: "approve ID", Short: "Approve a candidate waiting for an approve call", Args: cobra.ExactArgs(1),
		RunE: run(func(ctx context.Context, c *client.Client, args []string) error {
			p, err := c.Approve(ctx, args[0], f.comment)
			if err != nil {
				return err
			}
			return show(p)
		})}
	reject := &cobra.Command{Use: "reject ID", Short: "Reject a candidate", Args: cobra.ExactArgs(1),
		RunE: run(func(ctx context.Context, c *client.Client, args []string) error {
			p, err := c.Reject(ctx, args[0], f.comment)
			if err != nil {
				return err
			}
			return f.print(out, p)
		})}
	for _, c := range []*cobra.Command{approve, reject} {
		c.Flags().StringVar(&f.comment, "comment", "", "a comment recorded with the decision")
	}
	now := &cobra.Command{Use: "now", Short: "Promote what runs in the stage before --to, through its gates", Args: cobra.NoArgs,
		RunE: run(func(ctx context.Context, c *client.Client, _ []string) error {
			for _, r := range [][2]string{{"path", f.now.Path}, {"to", f.now.To}, {"trigger-repo", f.now.TriggerRepo}} {
				if strings.TrimSpace(r[1]) == "" {
					return &ExitError{Code: 1, Err: fmt.Errorf("--%s is required", r[0])}
				}
			}
			p, err := c.Promote(ctx, f.now)
			if err != nil {
				return err
			}
			return show(p)
		})}
	nf := now.Flags()
	nf.StringVar(&f.now.Path, "path", "", "the promotion path (mygitops.yaml promotions)")
	nf.StringVar(&f.now.To, "to", "", "the cluster to promote to")
	nf.StringVar(&f.now.TriggerRepo, "trigger-repo", "", "the trigger repo whose image moves")
	nf.BoolVar(&f.now.SkipGates, "skip-gates", false, "skip soak, tests and checks (needs the skipGates permission)")
	nf.BoolVar(&f.now.Wait, "wait", false, "wait until the promotion has ended")
	cmd.AddCommand(list, showCmd, approve, reject, now)
	return cmd
}

func writeJSONTo(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (f *promoteFlags) print(out io.Writer, p *apitypes.Promotion) error {
	if f.output == "json" {
		return writeJSONTo(out, p)
	}
	fmt.Fprintf(out, "candidate %s: %s from %s to %s (path %s): %s\n", p.ID, p.Ref(), p.From, p.To, p.Path, p.Phase)
	if p.Error != "" {
		fmt.Fprintf(out, "  %s\n", p.Error)
	}
	for _, g := range p.Gates {
		line := fmt.Sprintf("  %-14s %-8s", g.Gate, g.State)
		if g.Detail != "" {
			line += " " + g.Detail
		}
		fmt.Fprintln(out, strings.TrimRight(line, " "))
		for _, c := range g.Checks {
			state := "passed"
			if !c.Passed {
				state = "FAILED"
			}
			fmt.Fprintf(out, "    %s %s: %s\n", c.Name, state, c.Detail)
		}
	}
	if a := p.Approval; a != nil {
		fmt.Fprintf(out, "  approved by %s (%s) at %s\n", a.By, a.Via, a.At.UTC().Format(time.RFC3339))
	}
	if m := p.MergeRequest; m != nil {
		fmt.Fprintf(out, "  merge request %s (%s)\n", m.URL, m.State)
	}
	if p.Deployment != "" {
		fmt.Fprintf(out, "  promote deployment %s\n", p.Deployment)
	}
	return nil
}

// printPaths is the table of mgo promote list.
func printPaths(out io.Writer, paths []apitypes.PromotionPath, now time.Time) {
	for i, p := range paths {
		if i > 0 {
			fmt.Fprintln(out)
		}
		fmt.Fprintf(out, "path %s (%s)\n", p.Name, strings.Join(p.TriggerRepos, ", "))
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "STAGE\tIMAGE\tCANDIDATE\tPHASE\tSOAK LEFT\tHELD")
		for _, s := range p.Stages {
			img, id, phase, left := dash(s.Image), "-", "-", "-"
			if c := s.Candidate; c != nil {
				id, phase = c.ID, string(c.Phase)
				if !c.SoakEnds.IsZero() {
					left = max(c.SoakEnds.Sub(now), 0).Round(time.Second).String()
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", s.Cluster, img, id, phase, left, s.Held)
		}
		tw.Flush()
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
