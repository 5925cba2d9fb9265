package cli

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mygitops/mgo/internal/auth"
)

func newTokenCommand(in io.Reader, out io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Make API tokens and their hashes for --tokens-file"}
	cmd.AddCommand(&cobra.Command{
		Use:   "new NAME",
		Short: "Print a new random token and its tokens-file entry",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			t := auth.NewToken()
			fmt.Fprintf(out, "token: %s\n\n# tokens-file entry (only the hash is stored):\n- name: %s\n  sha256: %s\n  clusters: [\"*\"]\n  triggerRepos: [\"*\"]\n",
				t, args[0], auth.Hash(t))
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "hash",
		Short: "Print the sha256 of a token read from standard input",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			line, err := bufio.NewReader(in).ReadString('\n')
			line = strings.TrimRight(line, "\r\n")
			if line == "" {
				return &ExitError{Code: 2, Err: fmt.Errorf("no token on standard input: %v", err)}
			}
			fmt.Fprintln(out, auth.Hash(line))
			return nil
		},
	})
	return cmd
}
