package cli

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mygitops/mgo/internal/outbound"
	"github.com/mygitops/mgo/internal/repo"
)

type validateOptions struct {
	repoDir string
	cluster string
	output  string
	ageKey  string
	// outbound are mgo serve's allow lists: URLs of the repo outside them
	// are warnings.
	outbound    outboundSettings
	serveConfig string
}

// validateReport is the --output json form.
type validateReport struct {
	Valid    bool          `json:"valid"`
	Errors   int           `json:"errors"`
	Warnings int           `json:"warnings"`
	Checked  repo.Summary  `json:"checked"`
	Problems repo.Problems `json:"problems"`
}

func newValidateCommand(out io.Writer) *cobra.Command {
	o := &validateOptions{}
	cmd := &cobra.Command{
		Use:   "validate [PATH]",
		Short: "Check a gitops repository and report every problem with file and line",
		Long: `Loads mygitops.yaml and every installations/<cluster>/ directory and reports
every problem found, each with its file and line: missing or incomplete
headers, duplicate releases, unknown chart repositories, invalid image
references, bad YAML, secrets files without values files, raw manifests
without apiVersion, kind or name. The repository is treated as untrusted
input: YAML whose aliases or merge keys include themselves or expand too far
(alias bombs), files over the size limit, invalid UTF-8, symbolic links,
non-string ConfigMap or Secret data, credentials over plain http and images
outside a cluster's allowedImages are errors too. Every SOPS-encrypted
*-secrets.yaml is decrypted with the age keys given (--age-key-file,
SOPS_AGE_KEY_FILE, SOPS_AGE_KEY) and its MAC checked: one that does not
decrypt or was changed after encryption is an error naming it; without keys
each is a warning saying it was not checked. A secrets file in clear is a
warning.

Given mgo serve's outbound allow lists (--outbound-charts,
--outbound-notifications, --outbound-checks, the MGO_OUTBOUND_* variables or
the outbound-* keys of serve's --config file), every chart repository, OCI
chart and notification receiver URL that mgo serve would refuse to reach is
a warning naming the file, the line and the refused host or address.

PATH is the repository's directory (default: the current one, or --repo).

Exit status: 0 no errors (warnings allowed), 1 errors found, 2 could not run.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if cmd.Flags().Changed("repo") && o.repoDir != args[0] {
					return &ExitError{Code: 2, Err: fmt.Errorf("give the repository as PATH or --repo, not both (%s, --repo %s)", args[0], o.repoDir)}
				}
				o.repoDir = args[0]
			}
			if err := outboundFromServe(cmd.Flags(), serveConfigPath(o.serveConfig), os.Environ()); err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			policies, err := o.outbound.policies(cmd.Flags())
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			return o.run(out, policies)
		},
	}
	cmd.Flags().StringVar(&o.repoDir, "repo", ".", "gitops repository directory (or give it as PATH)")
	cmd.Flags().StringVar(&o.cluster, "cluster", "", "check only this cluster (and mygitops.yaml)")
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "output format: text or json")
	registerAgeKeyFile(cmd, &o.ageKey)
	outboundFlags(cmd.Flags(), &o.outbound)
	cmd.Flags().StringVar(&o.serveConfig, "config", "", "mgo serve's config file: its outbound-* keys are read, the others ignored (default $"+envName("config")+")")
	return cmd
}

func (o *validateOptions) run(out io.Writer, policies map[string]*outbound.Policy) error {
	if o.output != "text" && o.output != "json" {
		return &ExitError{Code: 2, Err: fmt.Errorf("--output: unknown format %q (want text or json)", o.output)}
	}
	keys, err := loadKeys(o.ageKey)
	if err != nil {
		return err
	}
	r, err := repo.Load(o.repoDir, repo.LoadOptions{Cluster: o.cluster, Keys: keys})
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	r.Problems = append(r.Problems, outboundWarnings(r, policies)...)
	rep := validateReport{Checked: r.Summary(), Problems: r.Problems}
	if rep.Problems == nil {
		rep.Problems = repo.Problems{}
	}
	for _, p := range r.Problems {
		if p.Severity == repo.Error {
			rep.Errors++
		} else {
			rep.Warnings++
		}
	}
	rep.Valid = rep.Errors == 0

	if o.output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		for _, p := range r.Problems {
			fmt.Fprintln(out, p)
		}
		if len(r.Problems) > 0 {
			fmt.Fprintln(out)
		}
		printFreezes(out, r, time.Now())
		verdict := "valid"
		if !rep.Valid {
			verdict = "INVALID"
		}
		fmt.Fprintf(out, "%s: %d error(s), %d warning(s); checked %s\n", verdict, rep.Errors, rep.Warnings, rep.Checked)
	}
	if !rep.Valid {
		return &ExitError{Code: 1} // the report says it all
	}
	return nil
}

// printFreezes lists each checked cluster's deploy freeze windows (valid
// ones; the problems above name the others) and its freeze at now.
func printFreezes(out io.Writer, r *repo.Repo, now time.Time) {
	for _, name := range r.ClusterNames() {
		set := r.Config.Cluster(name)
		if len(set.Freezes.Windows) == 0 {
			continue
		}
		var ws []string
		for _, w := range set.Freezes.Windows {
			zone := cmp.Or(w.TimeZone, "UTC")
			s := fmt.Sprintf("%s %q for %s in %s", w.Kind, w.Schedule, w.Duration, zone)
			if w.Name != "" {
				s = w.Name + ": " + s
			}
			if len(w.TriggerRepos) > 0 {
				s += " for " + strings.Join(w.TriggerRepos, ", ")
			}
			ws = append(ws, s)
		}
		pushes := "synced"
		if set.Freezes.HoldPushes {
			pushes = "held"
		}
		st := set.Freeze(now, "")
		state := "not frozen now"
		if st.Active != nil {
			state = "frozen now (" + st.Active.Describe() + ") " + until(st.Active.Until)
		}
		if st.Next != nil {
			state += "; next " + st.Next.Describe() + " from " + st.Next.From.UTC().Format(time.RFC3339) + " " + until(st.Next.Until)
		}
		fmt.Fprintf(out, "cluster %s: freezes: %s; pushed changes are %s during a freeze; %s\n", name, strings.Join(ws, "; "), pushes, state)
	}
}

func until(t time.Time) string {
	if t.IsZero() {
		return "with no end within a year"
	}
	return "until " + t.UTC().Format(time.RFC3339)
}
