package cli

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mygitops/mgo/internal/auth"
	"github.com/mygitops/mgo/internal/gitrepo"
	"github.com/mygitops/mgo/internal/gittest"
	"github.com/mygitops/mgo/internal/server"
	"github.com/mygitops/mgo/pkg/apitypes"
	"github.com/mygitops/mgo/pkg/client"
)

// TestDeployRepoAndServeMakeTheSameCommit: the same request through
// `mgo deploy --repo` and through `mgo serve` (both run
// deploy.DeployAction's steps) makes byte-identical commits: message,
// trailers, author, committer and tree; only the deployment id differs.
func TestDeployRepoAndServeMakeTheSameCommit(t *testing.T) {
	files := gittest.Skeleton()
	files["installations/"+testCluster+"/app-values.yaml"] = files["installations/prod/app-values.yaml"]
	delete(files, "installations/prod/app-values.yaml")
	files["mygitops.yaml"] += "clusters:\n  " + testCluster + ":\n    sync: manual\n"
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("git-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cliRemote, serveRemote := gittest.NewRemote(t, files), gittest.NewRemote(t, files)
	cliGit := gittest.NewHTTPServer(t, cliRemote, "mgo", "git-password")
	serveGit := gittest.NewHTTPServer(t, serveRemote, "mgo", "git-password")
	const author = "Alice Example <alice@example.com>"

	var out, errOut bytes.Buffer
	if code := Execute([]string{"deploy", "--repo", cliGit.URL, "--insecure-allow-http", "--git-username", "mgo",
		"--git-password-file", pwFile, "--git-workdir", filepath.Join(t.TempDir(), "clone"), "--cluster", testCluster,
		"--trigger-repo", "gitlab.com/acme/app", "--image", "registry.acme.io/acme/app", "--tag", "2.0.0", "--author", author},
		&out, &errOut); code != 0 {
		t.Fatalf("mgo deploy --repo: exit %d\n%s%s", code, out.String(), errOut.String())
	}

	opts := gitrepo.DefaultOptions()
	opts.URL, opts.InsecureAllowHTTP = serveGit.URL, true
	opts.Auth.Username, opts.Auth.Password = "mgo", gitrepo.SecretRef{File: pwFile}
	dataDir := t.TempDir()
	started := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Config{Listen: "127.0.0.1:0", Git: opts, DataDir: dataDir, Kubeconfig: env.Kubeconfig,
			ChartCache: filepath.Join(dataDir, "charts"), ShutdownTimeout: time.Minute,
			// the client name is the Requested-By trailer: the one mgo deploy --repo writes
			Tokens:  []auth.TokenConfig{{Name: "mgo-cli", SHA256: auth.Hash("serve-token"), Clusters: []string{"*"}, TriggerRepos: []string{"*"}}},
			Log:     slog.New(slog.DiscardHandler),
			Started: func(addr string) { started <- addr }})
	}()
	t.Cleanup(func() { cancel(); <-done })
	var addr string
	select {
	case addr = <-started:
	case err := <-done:
		t.Fatalf("mgo serve: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("mgo serve did not start")
	}
	c, err := client.New("http://"+addr, client.Options{Token: func(context.Context) (string, error) { return "serve-token", nil }})
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Deploy(t.Context(), apitypes.DeployRequest{Cluster: testCluster, TriggerRepo: "gitlab.com/acme/app",
		ImageRepo: "registry.acme.io/acme/app", Tag: "2.0.0", Author: author, Wait: true})
	if err != nil || d.Status != apitypes.StatusSucceeded || !d.Changed {
		t.Fatalf("mgo serve deploy: %+v %v", d, err)
	}

	id := regexp.MustCompile(`(?m)^Deployment-Id: .*$`)
	show := func(r *gittest.Remote) string {
		s := r.Git(t, "log", "-1", "--format=%an <%ae>%n%cn <%ce>%ntree %T%n%B")
		if !id.MatchString(s) {
			t.Errorf("commit without a Deployment-Id trailer:\n%s", s)
		}
		return id.ReplaceAllString(s, "Deployment-Id: <id>")
	}
	cliCommit, serveCommit := show(cliRemote), show(serveRemote)
	if cliCommit != serveCommit {
		t.Errorf("the commits differ:\nmgo deploy --repo:\n%s\nmgo serve:\n%s", cliCommit, serveCommit)
	}
	if !strings.Contains(cliCommit, "deploy registry.acme.io/acme/app:2.0.0 to "+testCluster+"/app") {
		t.Errorf("commit:\n%s", cliCommit)
	}
}
