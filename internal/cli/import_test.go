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

// mgo import writes a repo that mgo diff finds equal to the cluster;
// secrets are encrypted for --age-recipient; a hand-edited object makes it
// refuse with exit 1 and the diff.
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

	// The values file alone (the secrets file is encrypted) is what mgo
	// diff compares; here the password is not rendered, so a copy of the
	// repo with the decrypted secrets file is diffed.
	plain, err := secrets.Decrypt("shop-secrets.yaml", enc, secrets.KeysFromIdentities(id))
	if err != nil {
		t.Fatal(err)
	}
	clear := t.TempDir()
	if err := os.CopyFS(clear, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(clear, "installations", testCluster, "shop-secrets.yaml"), string(plain))
	code, out, errOut = run(t, "diff", "--repo", clear, "--cluster", testCluster, "--kubeconfig", env.Kubeconfig, "--chart-cache", cache)
	if code != 0 {
		t.Fatalf("mgo diff after import: exit %d\n%s\n%s", code, out, errOut)
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
