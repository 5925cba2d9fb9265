package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mygitops/mgo/internal/gittest"
)

// TestDeployCommand runs `mgo deploy --repo` against a git server over HTTP
// with basic auth: a deploy, a no-op redeploy, refusals (exit 1) and a
// wrong password (exit 2) that never shows the password.
func TestDeployCommand(t *testing.T) {
	remote := gittest.NewRemote(t, gittest.Skeleton())
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
			"--trigger-repo", "gitlab.com/acme/app", "--image", "registry.acme.io/acme/app"}, extra...)
		var out, errOut bytes.Buffer
		code := Execute(args, &out, &errOut)
		return code, out.String(), errOut.String()
	}

	seed := remote.Head(t)
	code, out, errOut := run("--tag", "1.5.0", "--author", "Alice Example <alice@example.com>")
	if code != 0 || !strings.Contains(out, "deployed registry.acme.io/acme/app:1.5.0 to prod") {
		t.Fatalf("deploy: exit %d\n%s%s", code, out, errOut)
	}
	head := remote.Head(t)
	if head == seed || !strings.Contains(out, head) {
		t.Fatalf("remote head %s; output %s", head, out)
	}
	if got := remote.Git(t, "log", "-1", "--format=%an <%ae>|%cn|%s"); got != "Alice Example <alice@example.com>|mgo|deploy registry.acme.io/acme/app:1.5.0 to prod/app" {
		t.Errorf("commit: %q", got)
	}
	if f := remote.File(t, "installations/prod/app-values.yaml"); !strings.Contains(f, `tag: "1.5.0"`) || !strings.Contains(f, "<<: *app") {
		t.Errorf("values file after the deploy:\n%s", f)
	}

	code, out, errOut = run("--tag", "1.5.0", "--author", "bob@example.com")
	if code != 0 || !strings.Contains(out, "already set") || remote.Head(t) != head {
		t.Fatalf("redeploy of the same tag: exit %d, head %s -> %s\n%s%s", code, head, remote.Head(t), out, errOut)
	}

	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"bad tag", []string{"--tag", "1.5 beta", "--author", "bob"}, "imageTag"},
		{"no author", []string{"--tag", "1.6.0", "--author", "<>"}, "author"},
		{"unlisted trigger repo", []string{"--tag", "1.6.0", "--author", "bob", "--trigger-repo", "gitlab.com/acme/other"}, "searched installations/prod/*-values.yaml"},
		{"unknown cluster", []string{"--tag", "1.6.0", "--author", "bob", "--cluster", "nowhere"}, "nowhere"},
	} {
		code, out, errOut := run(c.args...)
		if code != 1 || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d, want 1 with %q\n%s%s", c.name, code, c.want, out, errOut)
		}
	}
	if remote.Head(t) != head {
		t.Fatal("a refused deploy moved the remote head")
	}

	// A values file with errors is not edited: the deploy would not sync.
	p := gittest.NewPerson(t, remote.Dir, "Ops", "ops@example.com")
	broken := strings.Replace(remote.File(t, "installations/prod/app-values.yaml"), "chart: acme/app", "chart: nowhere/app", 1)
	if _, err := p.Commit(map[string]string{"installations/prod/app-values.yaml": broken}, "break the chart reference"); err != nil {
		t.Fatal(err)
	}
	if err := p.Push(); err != nil {
		t.Fatal(err)
	}
	head = remote.Head(t)
	code, out, errOut = run("--tag", "1.8.0", "--author", "bob")
	if code != 1 || !strings.Contains(errOut, "app-values.yaml") || !strings.Contains(errOut, "nowhere") || remote.Head(t) != head {
		t.Errorf("values file with errors: exit %d, want 1 naming the file\n%s%s", code, out, errOut)
	}

	srv.SetCredentials("mgo", "rotated-password")
	code, out, errOut = run("--tag", "1.7.0", "--author", "bob")
	if code != 2 || strings.Contains(out+errOut, "right-password") {
		t.Errorf("wrong password: exit %d, want 2 without the password\n%s%s", code, out, errOut)
	}
	if remote.Head(t) != head {
		t.Fatal("a failed deploy moved the remote head")
	}
}
