package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/secrets"
	"github.com/mygitops/mgo/internal/server"
)

const serveSecret = "serve-greeting-s3cret"

// TestEncryptedSecretsServe runs mgo serve on a repo whose releases carry
// SOPS-encrypted secrets files: the value is decrypted into a ConfigMap,
// and never shows in the API diff, the drift report, a deployment answer,
// a notification or a log line; a tampered file and a file for another key
// fail their own release only; a deploy leaves the secrets file as it was.
func TestEncryptedSecretsServe(t *testing.T) {
	owner, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	stranger, _ := age.GenerateX25519Identity()
	keyFile := filepath.Join(t.TempDir(), "keys.txt")
	if err := os.WriteFile(keyFile, []byte(owner.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := secrets.LoadKeys(keyFile, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	encrypt := func(plain string, id *age.X25519Identity) string {
		b, err := secrets.Encrypt([]byte(plain), []string{id.Recipient().String()})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	var mu sync.Mutex
	var bodies []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
	}))
	defer hook.Close()
	notified := func(sub string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, b := range bodies {
			if strings.Contains(b, sub) {
				return true
			}
		}
		return false
	}

	files := withoutReleases(t)
	files["mygitops.yaml"] = `clusters:
  ` + cluster + `:
    timeout: 20s
notifications:
  receivers:
    - name: hook
      type: webhook
      url: ` + hook.URL + `
  routes:
    - clusters: [` + cluster + `]
      receivers: [hook]
`
	inst := "installations/" + cluster + "/"
	appSecrets := encrypt("greeting: "+serveSecret+"\n", owner)
	files[inst+"app-values.yaml"] = values("app", "sops-app", "1.0.0", "")
	files[inst+"app-secrets.yaml"] = appSecrets
	enc := encrypt("greeting: tampered-greeting-1\nother: tampered-greeting-2\n", owner)
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(enc), &doc); err != nil {
		t.Fatal(err)
	}
	files[inst+"tampered-values.yaml"] = values("tampered", "sops-tampered", "1.0.0", "")
	files[inst+"tampered-secrets.yaml"] = strings.Replace(enc, doc["greeting"].(string), doc["other"].(string), 1)
	files[inst+"foreign-values.yaml"] = values("foreign", "sops-foreign", "1.0.0", "")
	files[inst+"foreign-secrets.yaml"] = encrypt("greeting: foreign-greeting\n", stranger)
	remote, gitSrv, pw := setupFiles(t, files)
	seedHead := remote.Head(t)
	if got := remote.File(t, inst+"app-secrets.yaml"); got != strings.TrimSuffix(appSecrets, "\n") {
		t.Fatalf("the seed holds another secrets file:\n%s", got)
	}
	m := startMgo(t, gitSrv.URL, pw, t.TempDir(), func(c *server.Config) {
		c.SecretKeys = keys
		c.ResyncInterval = 2 * time.Second
	})
	clean := func(what, s string) {
		t.Helper()
		for _, v := range []string{serveSecret, "c2VydmUtZ3JlZXRpbmctczNjcmV0", "tampered-greeting", "foreign-greeting"} {
			if strings.Contains(s, v) {
				t.Errorf("%s shows a secret value %q:\n%s", what, v, s)
			}
		}
	}

	// The initial sync installs app with the decrypted value; the two
	// broken files fail their releases, each named.
	ctx := t.Context()
	waitFor(t, "app installed", 90*time.Second, func() bool {
		cm, err := env.Client.CoreV1().ConfigMaps("sops-app").Get(ctx, "app-hello", metav1.GetOptions{})
		return err == nil && cm.Data["greeting"] == serveSecret
	})
	get := func(method, p string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, m.url+p, nil)
		req.Header.Set("Authorization", "Bearer "+ciToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, synced := get(http.MethodPost, "/api/v1/clusters/"+cluster+"/sync")
	if code != http.StatusFailedDependency || !strings.Contains(synced, "tampered-secrets.yaml: MAC mismatch") ||
		!strings.Contains(synced, "foreign-secrets.yaml: none of the age keys given") || strings.Count(synced, `"failed"`) != 2 {
		t.Errorf("sync: %d\n%s", code, synced)
	}
	clean("the sync answer", synced)
	for _, ns := range []string{"sops-tampered", "sops-foreign"} {
		if _, err := env.Client.CoreV1().ConfigMaps(ns).Get(ctx, strings.TrimPrefix(ns, "sops-")+"-hello", metav1.GetOptions{}); err == nil {
			t.Errorf("%s installed from a secrets file that does not decrypt", ns)
		}
	}

	// Drift: the value changed by hand is reported, masked.
	cm, err := env.Client.CoreV1().ConfigMaps("sops-app").Get(ctx, "app-hello", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["greeting"] = "changed-by-hand"
	if _, err := env.Client.CoreV1().ConfigMaps("sops-app").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	logged := len(m.logs.String())
	// The API diff and the periodic drift check see the change (they
	// share one path; a drift.detected notification, sent when the count
	// of objects changes, is checked with all notifications below).
	var diff string
	waitFor(t, "the drift in the API diff", 60*time.Second, func() bool {
		code, diff = get(http.MethodGet, "/api/v1/clusters/"+cluster+"/diff")
		return code == http.StatusOK && strings.Contains(diff, `-  greeting: `+secrets.Masked)
	})
	if !strings.Contains(diff, `+  greeting: `+secrets.Masked) || !strings.Contains(diff, "tampered-secrets.yaml: MAC mismatch") {
		t.Errorf("API diff: %d\n%s", code, diff)
	}
	waitFor(t, "a drift check that reports the change", 30*time.Second, func() bool {
		return strings.Contains(m.logs.String()[logged:], "drift: the cluster differs from the repo")
	})
	clean("the API diff", diff)

	// A deploy into app edits its values file only.
	var d deploy.Deployment
	code = m.postJSON("/api/v1/deployments", ciToken, map[string]any{"cluster": cluster, "triggerRepo": "gitlab.com/acme/app",
		"imageRepo": "registry.example.com/acme/app", "tag": "1.1.0", "author": "ada", "wait": true}, &d)
	if code != http.StatusOK || d.Status != deploy.Succeeded {
		t.Fatalf("deploy: %d %+v", code, d)
	}
	if got := remote.Git(t, "diff", "--name-only", d.Commit+"~1", d.Commit); got != inst+"app-values.yaml" {
		t.Errorf("the deploy changed %q", got)
	}
	// The same blob: byte for byte the file that was encrypted.
	if before, after := remote.Git(t, "rev-parse", seedHead+":"+inst+"app-secrets.yaml"), remote.Git(t, "rev-parse", d.Commit+":"+inst+"app-secrets.yaml"); before != after {
		t.Errorf("the secrets file changed: blob %s -> %s", before, after)
	}
	if cm, err := env.Client.CoreV1().ConfigMaps("sops-app").Get(ctx, "app-hello", metav1.GetOptions{}); err != nil || cm.Data["greeting"] != serveSecret {
		t.Errorf("after the deploy the ConfigMap holds %v (%v)", cm.Data, err)
	}
	_, answer := get(http.MethodGet, "/api/v1/deployments/"+d.ID)
	clean("the deployment answer", answer)

	waitFor(t, "the deploy notified", 30*time.Second, func() bool { return notified(d.ID) })
	mu.Lock()
	all := strings.Join(bodies, "\n")
	mu.Unlock()
	clean("the notifications", all)
	clean("the logs", m.logs.String())
}
