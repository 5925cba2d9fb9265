package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mygitops/mgo/internal/gittest"
)

// TestDeployCommandFreeze: `mgo deploy --repo` during a deny window is
// refused (exit 1) with nothing pushed; --override-freeze deploys and the
// commit records it; --override-freeze with --server is refused.
func TestDeployCommandFreeze(t *testing.T) {
	files := gittest.Skeleton()
	files["mygitops.yaml"] += `clusters:
  prod:
    freezes:
      - name: always
        kind: deny
        schedule: "* * * * *"
        duration: 1h
`
	remote := gittest.NewRemote(t, files)
	srv := gittest.NewHTTPServer(t, remote, "mgo", "right-password")
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("right-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	workdir := filepath.Join(t.TempDir(), "clone")
	run := func(extra ...string) (int, string, string) {
		t.Helper()
		args := append([]string{"deploy", "--repo", srv.URL, "--insecure-allow-http", "--git-username", "mgo",
			"--git-password-file", pwFile, "--git-workdir", workdir, "--cluster", "prod",
			"--trigger-repo", "gitlab.com/acme/app", "--image", "registry.acme.io/acme/app", "--tag", "1.5.0", "--author", "alice"}, extra...)
		var out, errOut bytes.Buffer
		code := Execute(args, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	seed := remote.Head(t)
	if code, out, errOut := run(); code != 1 || !strings.Contains(errOut, "deploy freeze: cluster prod is frozen (deny window always") {
		t.Fatalf("deploy in a freeze: exit %d\n%s%s", code, out, errOut)
	}
	if remote.Head(t) != seed {
		t.Fatal("a refused deploy moved the remote head")
	}
	if code, out, errOut := run("--override-freeze"); code != 0 {
		t.Fatalf("deploy with --override-freeze: exit %d\n%s%s", code, out, errOut)
	}
	if got := remote.Git(t, "log", "-1", "--format=%(trailers:key=Freeze-Override,valueonly)"); got != "always by mgo-cli" {
		t.Errorf("Freeze-Override trailer %q", got)
	}
	var out, errOut bytes.Buffer
	if code := Execute([]string{"deploy", "--server", "http://127.0.0.1:1", "--override-freeze", "--cluster", "prod"}, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), "--override-freeze is for --repo") {
		t.Errorf("--override-freeze with --server: exit %d\n%s", code, errOut.String())
	}
}
