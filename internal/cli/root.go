// Package cli holds mgo's command-line interface: one file per subcommand.
// Commands parse flags, call the library packages and print results; they do
// not talk to git, Helm or Kubernetes themselves. Every command writes to the
// io.Writer it is given, so tests capture its output.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// ExitError carries the exit code a command wants, e.g. 1 for "differences
// found" or "refused" and 2 for "could not run".
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// NewRootCommand builds the mgo command tree writing to out and errOut.
func NewRootCommand(out, errOut io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "mgo",
		Short: "GitOps continuous delivery for Kubernetes with Helm",
		Long: `mgo keeps Kubernetes clusters equal to a gitops repository of Helm releases
and raw manifests. CI asks it to deploy a new image; it commits the change,
syncs the cluster, waits for the rollout and answers with the result.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetErr(errOut)
	root.AddCommand(
		newDeployCommand(out, errOut),
		newDiffCommand(out, errOut),
		newImportCommand(out, errOut),
		newPromoteCommand(out, errOut),
		newServeCommand(errOut),
		newSyncCommand(out, errOut),
		newTokenCommand(os.Stdin, out),
		newValidateCommand(out),
		newVersionCommand(out),
	)
	return root
}

// Execute runs the command line args and returns the process exit code.
func Execute(args []string, out, errOut io.Writer) int {
	root := NewRootCommand(out, errOut)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var exit *ExitError
	if errors.As(err, &exit) {
		if exit.Err != nil {
			fmt.Fprintln(errOut, "Error:", exit.Err)
		}
		return exit.Code
	}
	fmt.Fprintln(errOut, "Error:", err)
	return 2
}
