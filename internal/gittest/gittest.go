// Package gittest gives tests real git servers and real git clients on
// loopback, so that the git layer is tested against the thing it talks to in
// production:
//
//   - Remote: a bare repository in a temporary directory, seeded with
//     `git fast-import` (a gitops repo skeleton, or thousands of commits in
//     well under a second);
//   - HTTPServer: `git http-backend` served by net/http/cgi behind basic
//     auth, switchable (SetMode) between Up, Down (503 at once) and Hang
//     (requests held until the mode changes);
//   - HangingServer: a TCP listener that accepts and never answers, for
//     timeouts over http:// or ssh://;
//   - SSHServer: an in-process SSH server (golang.org/x/crypto/ssh) that runs
//     git-upload-pack and git-receive-pack on the bare repository, with
//     public-key auth and a host key the test knows (KnownHosts);
//   - Person: another user of the repository, with a clone made by the git
//     CLI, who commits and pushes concurrently with the code under test.
//
// Every git command runs with the machine's global and system configuration
// ignored, so results do not depend on who runs the tests.
package gittest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// DefaultBranch is the branch every Remote starts with.
const DefaultBranch = "main"

// Env returns the environment for a git command: the process environment
// without GIT_* variables, with the global and system configuration
// disabled, prompts off and the C locale, followed by extra.
func Env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GIT_") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL="+os.DevNull,
		"GIT_TERMINAL_PROMPT=0",
		"LC_ALL=C",
	)
	return append(env, extra...)
}

// Run runs git with args in dir (stdin from stdin when not nil) and returns
// its trimmed standard output. The error carries standard error. Run is safe
// to call from any goroutine.
func Run(dir string, stdin []byte, env []string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = Env(env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Git runs git with args in dir and fails the test on error.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := Run(dir, nil, nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Skeleton is a minimal gitops repository: mygitops.yaml and one release in
// cluster prod with an image of trigger repo gitlab.com/acme/app.
func Skeleton() map[string]string {
	return map[string]string{
		"mygitops.yaml": `helm:
  repositories:
    - name: acme
      url: https://charts.acme.io
`,
		"installations/prod/app-values.yaml": `__mygitops:
  chart: acme/app
  version: 1.4.0
  name: app
  namespace: app
  images:
    gitlab.com/acme/app: &app
      repository: registry.acme.io/acme/app
      tag: "1.4.1"

app:
  image:
    <<: *app
    pullPolicy: IfNotPresent
`,
	}
}

// Remote is a bare repository in a temporary directory, the "server side"
// that HTTPServer and SSHServer serve and Person pushes to directly.
type Remote struct {
	// Dir is the bare repository (a directory named repo.git).
	Dir string
	// Branch is the branch seeded by NewRemote.
	Branch string
}

// NewRemote creates a bare repository whose branch main holds files in one
// commit ("seed"). Pushes over HTTP are enabled.
func NewRemote(t testing.TB, files map[string]string) *Remote {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo.git")
	Git(t, "", "init", "--quiet", "--bare", "--initial-branch="+DefaultBranch, dir)
	Git(t, dir, "config", "http.receivepack", "true")
	// A push must never be a non-fast-forward, whoever sends it.
	Git(t, dir, "config", "receive.denyNonFastForwards", "true")
	r := &Remote{Dir: dir, Branch: DefaultBranch}
	r.commitFiles(t, files, "seed")
	return r
}

// Head returns the commit the remote's branch points at.
func (r *Remote) Head(t testing.TB) string {
	t.Helper()
	return Git(t, r.Dir, "rev-parse", "refs/heads/"+r.Branch)
}

// Git runs git in the bare repository.
func (r *Remote) Git(t testing.TB, args ...string) string {
	t.Helper()
	return Git(t, r.Dir, args...)
}

// File returns the content of path at the tip of the branch.
func (r *Remote) File(t testing.TB, path string) string {
	t.Helper()
	return Git(t, r.Dir, "show", r.Branch+":"+path)
}

// Count returns the number of commits reachable from the branch.
func (r *Remote) Count(t testing.TB) int {
	t.Helper()
	var n int
	fmt.Sscan(Git(t, r.Dir, "rev-list", "--count", r.Branch), &n)
	return n
}

// IsAncestor reports whether commit is reachable from the branch.
func (r *Remote) IsAncestor(t testing.TB, commit string) bool {
	t.Helper()
	_, err := Run(r.Dir, nil, nil, "merge-base", "--is-ancestor", commit, "refs/heads/"+r.Branch)
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// commitFiles adds one commit with files on top of the branch (or as the
// root commit when the branch does not exist yet).
func (r *Remote) commitFiles(t testing.TB, files map[string]string, msg string) {
	t.Helper()
	var b bytes.Buffer
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	fmt.Fprintf(&b, "commit refs/heads/%s\n", r.Branch)
	fmt.Fprintf(&b, "committer Seed <seed@example.com> %d +0000\n", time.Now().Unix())
	fmt.Fprintf(&b, "data %d\n%s\n", len(msg), msg)
	if _, err := Run(r.Dir, nil, nil, "rev-parse", "--verify", "--quiet", "refs/heads/"+r.Branch); err == nil {
		fmt.Fprintf(&b, "from refs/heads/%s^0\n", r.Branch)
	}
	for _, p := range paths {
		fmt.Fprintf(&b, "M 100644 inline %s\ndata %d\n%s\n", p, len(files[p]), files[p])
	}
	r.fastImport(t, b.Bytes())
}

// AddHistory appends n commits to the branch with `git fast-import`. Commit
// i rewrites history/<i%100>.txt; 10,000 commits take about a second.
func (r *Remote) AddHistory(t testing.TB, n int) {
	t.Helper()
	var b bytes.Buffer
	b.Grow(n * 200)
	start := time.Now().Add(-time.Duration(n) * time.Minute).Unix()
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "commit refs/heads/%s\n", r.Branch)
		fmt.Fprintf(&b, "author Historian <history@example.com> %d +0000\n", start+int64(i)*60)
		fmt.Fprintf(&b, "committer Historian <history@example.com> %d +0000\n", start+int64(i)*60)
		msg := fmt.Sprintf("history %d", i)
		fmt.Fprintf(&b, "data %d\n%s\n", len(msg), msg)
		if i == 0 {
			fmt.Fprintf(&b, "from refs/heads/%s^0\n", r.Branch)
		}
		content := fmt.Sprintf("commit %d\n", i)
		fmt.Fprintf(&b, "M 100644 inline history/%02d.txt\ndata %d\n%s\n", i%100, len(content), content)
	}
	r.fastImport(t, b.Bytes())
}

func (r *Remote) fastImport(t testing.TB, stream []byte) {
	t.Helper()
	if _, err := Run(r.Dir, stream, nil, "fast-import", "--quiet"); err != nil {
		t.Fatal(err)
	}
}
