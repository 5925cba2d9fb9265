package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mygitops/mgo/internal/charttest"
	"github.com/mygitops/mgo/internal/gittest"
	"github.com/mygitops/mgo/internal/secrets"
)

const cliSecret = "cli-greeting-s3cret"

// TestEncryptedSecrets: releases with SOPS-encrypted secrets files through
// mgo validate, sync and diff against the local control plane. The value
// decrypts into a ConfigMap, never shows in mgo's output, and a tampered
// file or a file for another key fails its own release only.
func TestEncryptedSecrets(t *testing.T) {
	ns := env.Namespace(t)
	owner, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	stranger, _ := age.GenerateX25519Identity()
	keyFile := filepath.Join(t.TempDir(), "keys.txt")
	writeFile(t, keyFile, "# mgo test key\n"+owner.String()+"\n")
	encrypt := func(plain string, id *age.X25519Identity) string {
		b, err := secrets.Encrypt([]byte(plain), []string{id.Recipient().String()})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "charts", "hello"), os.DirFS(charttest.ChartDir("hello"))); err != nil {
		t.Fatal(err)
	}
	inst := filepath.Join(dir, "installations", testCluster)
	release := func(name string) {
		writeFile(t, filepath.Join(inst, name+"-values.yaml"), "__mygitops:\n  chart: ./charts/hello\n  name: "+name+"\n  namespace: "+ns+"\nreplicaCount: 1\n")
	}
	release("app")
	writeFile(t, filepath.Join(inst, "app-secrets.yaml"), encrypt("greeting: "+cliSecret+"\n", owner))
	release("tampered")
	enc := encrypt("greeting: tampered-greeting-1\nother: tampered-greeting-2\n", owner)
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(enc), &doc); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(inst, "tampered-secrets.yaml"), strings.Replace(enc, doc["greeting"].(string), doc["other"].(string), 1))
	release("foreign")
	writeFile(t, filepath.Join(inst, "foreign-secrets.yaml"), encrypt("greeting: foreign-greeting\n", stranger))

	t.Run("validate without keys names the files it could not check", func(t *testing.T) {
		code, out, _ := run(t, "validate", "--repo", dir)
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, out)
		}
		for _, f := range []string{"app", "tampered", "foreign"} {
			if !strings.Contains(out, "installations/"+testCluster+"/"+f+"-secrets.yaml: warning: SOPS-encrypted; not checked: no age key") {
				t.Errorf("%s not named as unchecked:\n%s", f, out)
			}
		}
	})
	t.Run("validate with the key fails the tampered and the foreign file", func(t *testing.T) {
		code, out, _ := run(t, "validate", "--repo", dir, "--age-key-file", keyFile)
		if code != 1 ||
			!strings.Contains(out, "installations/"+testCluster+"/tampered-secrets.yaml: error: MAC mismatch") ||
			!strings.Contains(out, "installations/"+testCluster+"/foreign-secrets.yaml: error: none of the age keys given is a recipient") ||
			strings.Contains(out, "app-secrets.yaml") || !strings.Contains(out, "2 error(s)") {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})

	common := []string{"--repo", dir, "--cluster", testCluster, "--kubeconfig", env.Kubeconfig, "--chart-cache", t.TempDir(), "--age-key-file", keyFile}
	code, out, errOut := run(t, append([]string{"diff"}, common...)...)
	// Exit 2: two releases could not be diffed; app could.
	if code != 2 || !strings.Contains(out, "+++ repo/ConfigMap/"+ns+"/app-hello") || !strings.Contains(out, "greeting: "+secrets.Masked) {
		t.Fatalf("diff before the first sync: exit %d\n%s\n%s", code, out, errOut)
	}
	noSecret(t, "diff before the first sync", out+errOut)

	code, out, errOut = run(t, append([]string{"sync"}, common...)...)
	if code == 0 || !strings.Contains(out, ns+"/app: installed") ||
		!strings.Contains(out, "tampered-secrets.yaml: error: MAC mismatch") || !strings.Contains(out, "foreign-secrets.yaml: error: none of the age keys") {
		t.Fatalf("sync: exit %d\n%s\n%s", code, out, errOut)
	}
	noSecret(t, "sync", out+errOut)
	ctx := context.Background()
	cm, err := env.Client.CoreV1().ConfigMaps(ns).Get(ctx, "app-hello", metav1.GetOptions{})
	if err != nil || cm.Data["greeting"] != cliSecret {
		t.Fatalf("the ConfigMap does not hold the decrypted value: %v %v", cm.Data, err)
	}
	for _, name := range []string{"tampered-hello", "foreign-hello"} {
		if _, err := env.Client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
			t.Errorf("ConfigMap %s installed from a secrets file that does not decrypt", name)
		}
	}

	// Drift: the value changed by hand; the diff shows the line, masked on
	// both sides.
	cm.Data["greeting"] = "changed-by-hand"
	if _, err := env.Client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = run(t, append([]string{"diff", "--release", "app"}, common...)...)
	if code != 1 || !strings.Contains(out, "+  greeting: "+secrets.Masked) || !strings.Contains(out, "-  greeting: "+secrets.Masked) {
		t.Fatalf("diff after drift: exit %d\n%s\n%s", code, out, errOut)
	}
	noSecret(t, "diff after drift", out+errOut)
	code, out, errOut = run(t, append([]string{"diff", "-o", "json"}, common...)...)
	if code != 2 || !strings.Contains(out, "greeting: "+secrets.Masked) || !strings.Contains(out, "tampered-secrets.yaml: error: MAC mismatch") {
		t.Fatalf("diff -o json: exit %d\n%s\n%s", code, out, errOut)
	}
	noSecret(t, "diff -o json", out+errOut)

	// Without the key, the releases with encrypted files fail and say why.
	code, out, errOut = run(t, "diff", "--repo", dir, "--cluster", testCluster, "--kubeconfig", env.Kubeconfig, "--chart-cache", t.TempDir(), "--release", "app")
	if code == 0 || !strings.Contains(out+errOut, "app-secrets.yaml: no age key") {
		t.Fatalf("diff without keys: exit %d\n%s\n%s", code, out, errOut)
	}
}

func noSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, v := range []string{cliSecret, "tampered-greeting", "foreign-greeting", "Y2xpLWdyZWV0aW5nLXMzY3JldA=="} {
		if strings.Contains(s, v) {
			t.Errorf("%s shows a secret value %q:\n%s", what, v, s)
		}
	}
}

// TestDeployKeepsSecretsFile: `mgo deploy --repo --sync` into a release
// with an encrypted secrets file edits the values file only, and the sync
// decrypts the secrets file with --age-key-file.
func TestDeployKeepsSecretsFile(t *testing.T) {
	ns := env.Namespace(t)
	owner, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "keys.txt")
	writeFile(t, keyFile, owner.String()+"\n")
	enc, err := secrets.Encrypt([]byte("greeting: "+cliSecret+"\n"), []string{owner.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	root := charttest.ChartDir("hello")
	if err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		files["charts/hello/"+filepath.ToSlash(rel)] = string(b)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	inst := "installations/" + testCluster + "/"
	files[inst+"app-values.yaml"] = `__mygitops:
  chart: ./charts/hello
  name: app
  namespace: ` + ns + `
  images:
    gitlab.com/acme/app: &img
      repository: registry.example.com/acme/app
      tag: "1.0.0"
image:
  <<: *img
replicaCount: 1
`
	files[inst+"app-secrets.yaml"] = string(enc)
	remote := gittest.NewRemote(t, files)
	srv := gittest.NewHTTPServer(t, remote, "mgo", "pw")
	pwFile := filepath.Join(t.TempDir(), "pw")
	writeFile(t, pwFile, "pw\n")
	seed := remote.Head(t)

	code, out, errOut := run(t, "deploy", "--repo", srv.URL, "--insecure-allow-http", "--git-username", "mgo",
		"--git-password-file", pwFile, "--git-workdir", filepath.Join(t.TempDir(), "clone"), "--cluster", testCluster,
		"--trigger-repo", "gitlab.com/acme/app", "--image", "registry.example.com/acme/app", "--tag", "1.1.0", "--author", "ada@example.com",
		"--sync", "--kubeconfig", env.Kubeconfig, "--chart-cache", t.TempDir(), "--age-key-file", keyFile)
	if code != 0 {
		t.Fatalf("deploy: exit %d\n%s\n%s", code, out, errOut)
	}
	noSecret(t, "deploy", out+errOut)
	head := remote.Head(t)
	if got := remote.Git(t, "diff", "--name-only", seed, head); got != inst+"app-values.yaml" {
		t.Errorf("the deploy changed %q", got)
	}
	if before, after := remote.Git(t, "rev-parse", seed+":"+inst+"app-secrets.yaml"), remote.Git(t, "rev-parse", head+":"+inst+"app-secrets.yaml"); before != after {
		t.Errorf("the secrets file changed: blob %s -> %s", before, after)
	}
	cm, err := env.Client.CoreV1().ConfigMaps(ns).Get(context.Background(), "app-hello", metav1.GetOptions{})
	if err != nil || cm.Data["greeting"] != cliSecret {
		t.Fatalf("the ConfigMap does not hold the decrypted value: %v %v", cm.Data, err)
	}
}
