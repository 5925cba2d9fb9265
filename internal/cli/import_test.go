package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	helmkube "helm.sh/helm/v4/pkg/kube"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mygitops/mgo/internal/charttest"
	"github.com/mygitops/mgo/internal/gittest"
	"github.com/mygitops/mgo/internal/kube"
	"github.com/mygitops/mgo/internal/repo"
	"github.com/mygitops/mgo/internal/secrets"
)

// helmInstall installs a chart archive as a Helm user did.
func helmInstall(t *testing.T, ns, name, archive string, vals map[string]any) {
	t.Helper()
	c, err := kube.FromKubeconfig(env.Kubeconfig, testCluster, repo.Budget{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := c.Helm(ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := loader.Load(archive)
	if err != nil {
		t.Fatal(err)
	}
	in := action.NewInstall(cfg)
	in.ReleaseName, in.Namespace = name, ns
	in.ServerSideApply = true
	in.WaitStrategy = helmkube.HookOnlyStrategy
	in.Timeout = time.Minute
	if _, err := in.RunWithContext(context.Background(), ch, vals); err != nil {
		t.Fatal(err)
	}
}

// mgo import writes a repo that mgo diff --age-key-file finds equal to the
// cluster; secrets are encrypted for --age-recipient; mgo deploy --sync
// through a git server deploys into the imported release and keeps the
// encrypted secrets file; a hand-edited object makes import refuse with
// exit 1 and the diff.
func TestImportThenDiff(t *testing.T) {
	ns := env.Namespace(t)
	srv := charttest.NewRepoServer(t, "", "")
	srv.Add(t, charttest.ChartDir("hello"), "0.1.0")
	archive := charttest.Package(t, charttest.ChartDir("hello"), "0.1.0")
	helmInstall(t, ns, "shop", archive, map[string]any{"replicaCount": 1,
		"image": map[string]any{"repository": "registry.example.com/shop", "tag": "1.5.0"},
		"db":    map[string]any{"password": "pw-9f8e7d"}})

	dir, cache := t.TempDir(), t.TempDir()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"import", "--cluster", testCluster, "--kubeconfig", env.Kubeconfig, "--namespace", ns, "--repo", dir,
		"--chart-repo", "charts=" + srv.URL, "--ca-file", srv.CAFile, "--chart-cache", cache,
		"--image", "registry.example.com/shop=gitlab.com/acme/shop", "--age-recipient", id.Recipient().String()}
	code, out, errOut := run(t, args...)
	if code != 0 || !strings.Contains(out, "proven") || !strings.Contains(out, "images: gitlab.com/acme/shop") {
		t.Fatalf("mgo import: exit %d\n%s\n%s", code, out, errOut)
	}
	values, err := os.ReadFile(filepath.Join(dir, "installations", testCluster, "shop-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	enc, err := os.ReadFile(filepath.Join(dir, "installations", testCluster, "shop-secrets.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !secrets.IsEncrypted(enc) || strings.Contains(string(enc), "pw-9f8e7d") || strings.Contains(string(values), "pw-9f8e7d") {
		t.Errorf("the password is in clear:\n%s\n%s", values, enc)
	}

	// mgo diff decrypts the imported secrets file with --age-key-file:
	// the repo as imported renders the cluster exactly.
	keyFile := filepath.Join(t.TempDir(), "keys.txt")
	writeFile(t, keyFile, id.String()+"\n")
	code, out, errOut = run(t, "diff", "--repo", dir, "--cluster", testCluster, "--kubeconfig", env.Kubeconfig, "--chart-cache", cache, "--age-key-file", keyFile)
	if code != 0 {
		t.Fatalf("mgo diff after import: exit %d\n%s\n%s", code, out, errOut)
	}
	noSecretIn(t, "mgo diff", out+errOut, "pw-9f8e7d")

	// A deploy into the imported release through the real deploy path:
	// the imported repo on a git server, mgo deploy --sync with the key.
	// The values file changes, the secrets file stays byte for byte.
	remote := gittest.NewRemote(t, filesOf(t, dir))
	gsrv := gittest.NewHTTPServer(t, remote, "mgo", "pw")
	pwFile := filepath.Join(t.TempDir(), "pw")
	writeFile(t, pwFile, "pw\n")
	seed := remote.Head(t)
	code, out, errOut = run(t, "deploy", "--repo", gsrv.URL, "--insecure-allow-http", "--git-username", "mgo",
		"--git-password-file", pwFile, "--git-workdir", filepath.Join(t.TempDir(), "clone"), "--cluster", testCluster,
		"--trigger-repo", "gitlab.com/acme/shop", "--image", "registry.example.com/shop", "--tag", "1.6.0", "--author", "ada@example.com",
		"--sync", "--kubeconfig", env.Kubeconfig, "--chart-cache", cache, "--age-key-file", keyFile)
	if code != 0 {
		t.Fatalf("mgo deploy into the imported release: exit %d\n%s\n%s", code, out, errOut)
	}
	noSecretIn(t, "mgo deploy", out+errOut, "pw-9f8e7d")
	inst := "installations/" + testCluster + "/"
	head := remote.Head(t)
	if got := remote.Git(t, "diff", "--name-only", seed, head); got != inst+"shop-values.yaml" {
		t.Errorf("the deploy changed %q", got)
	}
	if before, after := remote.Git(t, "rev-parse", seed+":"+inst+"shop-secrets.yaml"), remote.Git(t, "rev-parse", head+":"+inst+"shop-secrets.yaml"); before != after {
		t.Errorf("the deploy changed the secrets file: blob %s -> %s", before, after)
	}
	dep, err := env.Client.AppsV1().Deployments(ns).Get(context.Background(), "shop-hello", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := dep.Spec.Template.Spec.Containers[0].Image; got != "registry.example.com/shop:1.6.0" {
		t.Errorf("shop runs %s after the deploy", got)
	}

	// A hand edit: import refuses, naming the object and field.
	cm, err := env.Client.CoreV1().ConfigMaps(ns).Get(context.Background(), "shop-hello", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["greeting"] = "edited by hand"
	if _, err := env.Client.CoreV1().ConfigMaps(ns).Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	args[8] = other // --repo
	code, out, errOut = run(t, args...)
	if code != 1 || !strings.Contains(out, "ConfigMap/"+ns+"/shop-hello") || !strings.Contains(out, "edited by hand") || !strings.Contains(out, "nothing written") {
		t.Fatalf("mgo import of a hand-edited release: exit %d\n%s\n%s", code, out, errOut)
	}
	if ents, _ := os.ReadDir(other); len(ents) != 0 {
		t.Errorf("a refused import wrote %v", ents)
	}
}

// filesOf reads every file under dir, by slash-separated relative path.
func filesOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func noSecretIn(t *testing.T, what, out, secret string) {
	t.Helper()
	if strings.Contains(out, secret) {
		t.Errorf("%s shows the secret in clear:\n%s", what, out)
	}
}
