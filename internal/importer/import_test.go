package importer

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mygitops/mgo/internal/charttest"
	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/repo"
	"github.com/mygitops/mgo/internal/secrets"
)

const password = "s3cret-Passw0rd"

// Ten releases from an HTTP chart repository, an OCI registry and a chart
// in no repository are imported with their secrets SOPS-encrypted for an
// age recipient; the import renders the live cluster exactly, so diff with
// the key is empty, sync writes nothing, a deploy works, the password is in
// no file in clear, and importing again changes nothing, byte for byte.
func TestImportTenReleases(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	nsA, nsB := env.Namespace(t), env.Namespace(t)

	f.http.Add(t, charttest.ChartDir("hello"), "0.1.0", "0.2.0")
	f.http.Add(t, charttest.ChartDir("hooked"), "0.1.0")
	ociURL := f.oci.Push(t, charttest.ChartDir("stateful"), "charts", "0.1.0")
	f.oci.Push(t, charttest.ChartDir("hello"), "charts", "0.3.0")
	ociBase := strings.TrimSuffix(ociURL, "/stateful")
	repos := []ChartRepo{{Name: "test", URL: f.http.URL}, {Name: "acme", URL: ociBase}}
	cfg := &repo.Config{Repositories: []repo.ChartRepository{{Name: "test", URL: f.http.URL}, {Name: "acme", URL: ociBase}}}

	img := func(tag string) map[string]any {
		return map[string]any{"repository": "registry.example.com/hello", "tag": tag}
	}
	f.install(nsA, "web", f.chartFrom(cfg, "test/hello", "0.1.0"), map[string]any{
		"replicaCount": 1,
		"image":        img("1.1.0"),
		"greeting":     "hi from web",
		"settings":     map[string]any{"cache": map[string]any{"size": "1Gi", "zone": "a"}, "enabled": true},
		"db":           map[string]any{"host": "db.internal", "user": "app", "password": password, "ports": []any{5432, 5433}},
		"extraEnv":     []any{map[string]any{"name": "A", "value": "1"}, map[string]any{"name": "B", "value": "on"}},
	})
	f.install(nsA, "web2", f.chartFrom(cfg, "test/hello", "0.2.0"), map[string]any{"replicaCount": 1})
	f.install(nsA, "api", f.chartFrom(cfg, "test/hooked", "0.1.0"), map[string]any{"image": map[string]any{"tag": "2.0.0"}})
	f.install(nsA, "db", f.chartFrom(cfg, ociURL, "0.1.0"), map[string]any{"replicas": 1, "worker": map[string]any{"tier": "backend"}})
	f.install(nsA, "web3", f.chartFrom(cfg, ociBase+"/hello", "0.3.0"), map[string]any{"replicaCount": 1, "image": img("1.3.0")})
	f.install(nsA, "greeter", localChart(t, "greeter", "1.0.0"), map[string]any{"replicaCount": 1, "greeting": "local"})
	f.install(nsB, "cache", f.chartFrom(cfg, "test/hello", "0.1.0"), map[string]any{"replicaCount": 1})
	f.install(nsA, "cache", f.chartFrom(cfg, "test/hello", "0.2.0"), map[string]any{"replicaCount": 1, "apiToken": "tok-123"})
	f.install(nsB, "plain", f.chartFrom(cfg, "test/hello", "0.1.0"), nil)
	f.install(nsB, "greeter2", localChart(t, "greeter", "1.0.0"), map[string]any{"replicaCount": 1})

	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	keys := secrets.KeysFromIdentities(id)
	dir := t.TempDir()
	opts := Options{
		RepoDir:       dir,
		Namespaces:    []string{nsA, nsB},
		ChartRepos:    repos,
		Images:        map[string]string{"registry.example.com/hello": "gitlab.com/acme/hello"},
		AgeRecipients: []string{id.Recipient().String()},
		Encrypt:       secrets.Encrypt,
		Decrypt:       func(path string, data []byte) ([]byte, error) { return secrets.Decrypt(path, data, keys) },
	}
	res, err := f.importer.Run(ctx, opts)
	if err != nil {
		t.Fatalf("import: %v\n%s", err, dump(res))
	}
	if len(res.Releases) != 10 || !res.Proven || !res.Written {
		t.Fatalf("import result:\n%s", dump(res))
	}
	sources := map[string]ChartSource{}
	for _, rr := range res.Releases {
		sources[rr.Namespace+"/"+rr.Name] = rr.ChartSource
	}
	for key, want := range map[string]ChartSource{nsA + "/web": FromRepository, nsA + "/db": FromOCI, nsA + "/web3": FromOCI,
		nsA + "/greeter": FromRelease, nsB + "/greeter2": FromRelease, nsA + "/api": FromRepository} {
		if sources[key] != want {
			t.Errorf("%s: chart from %q, want %q\n%s", key, sources[key], want, dump(res))
		}
	}
	cdir := "installations/" + clusterName + "/"
	web := readFile(t, dir, cdir+"web-values.yaml")
	for _, want := range []string{"chart: test/hello", `version: "0.1.0"`, "gitlab.com/acme/hello: &hello", "<<: *hello", "zone: a"} {
		if !strings.Contains(web, want) {
			t.Errorf("web-values.yaml lacks %q:\n%s", want, web)
		}
	}
	if db := readFile(t, dir, cdir+"db-values.yaml"); !strings.Contains(db, "chart: "+ociURL) {
		t.Errorf("db-values.yaml:\n%s", db)
	}
	if g := readFile(t, dir, cdir+"greeter-values.yaml"); !strings.Contains(g, "chart: ./charts/greeter") {
		t.Errorf("greeter-values.yaml:\n%s", g)
	}
	readFile(t, dir, "charts/greeter/Chart.yaml")
	readFile(t, dir, cdir+nsA+"-cache-values.yaml")
	readFile(t, dir, cdir+nsB+"-cache-values.yaml")
	if !strings.Contains(readFile(t, dir, "mygitops.yaml"), f.http.URL) {
		t.Errorf("mygitops.yaml lacks the chart repository")
	}
	// The secrets files are encrypted; the password is in no file in
	// clear, and decrypts back from the secrets file.
	secretsFiles := map[string]string{cdir + "web-secrets.yaml": password, cdir + nsA + "-cache-secrets.yaml": "tok-123"}
	encrypted := map[string]string{}
	for sf, secret := range secretsFiles {
		enc := readFile(t, dir, sf)
		if !secrets.IsEncrypted([]byte(enc)) {
			t.Fatalf("%s is not encrypted:\n%s", sf, enc)
		}
		assertNowhere(t, dir, secret)
		plain, err := secrets.Decrypt(sf, []byte(enc), keys)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(plain), secret) {
			t.Errorf("%s decrypted:\n%s", sf, plain)
		}
		encrypted[sf] = enc
	}
	keepsEncrypted := func(when string) {
		t.Helper()
		for sf, enc := range encrypted {
			if readFile(t, dir, sf) != enc {
				t.Errorf("%s: %s changed", when, sf)
			}
		}
	}

	// mgo diff with the key: nothing differs.
	r := loadRepoKeys(t, dir, keys)
	d, err := f.engine.Diff(ctx, r, reconcile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.HasDifferences() || d.Failed() {
		t.Fatalf("diff after import:\n%+v", d)
	}

	// mgo sync: no write, no Helm revision.
	before := map[string]int{}
	for _, rr := range res.Releases {
		before[rr.Namespace+"/"+rr.Name] = f.history(rr.Namespace, rr.Name)
	}
	sres, err := f.engine.Sync(ctx, r, reconcile.Options{Full: true})
	if err != nil {
		t.Fatal(err)
	}
	if sres.Failed() || sres.Requests.Writes() != 0 {
		t.Fatalf("sync after import: %d writes\n%s", sres.Requests.Writes(), sres)
	}
	for _, rr := range res.Releases {
		if n := f.history(rr.Namespace, rr.Name); n != before[rr.Namespace+"/"+rr.Name] {
			t.Errorf("%s/%s: %d revisions after sync, %d before", rr.Namespace, rr.Name, n, before[rr.Namespace+"/"+rr.Name])
		}
	}

	// Importing again changes nothing.
	again, err := f.importer.Run(ctx, opts)
	if err != nil {
		t.Fatalf("second import: %v\n%s", err, dump(again))
	}
	for _, fr := range again.Files {
		if fr.Action != Unchanged {
			t.Errorf("second import: %s %s", fr.Path, fr.Action)
		}
	}
	keepsEncrypted("second import")

	// A deploy into the imported releases works at once.
	req := deploy.Request{Cluster: clusterName, TriggerRepo: "gitlab.com/acme/hello", ImageRepo: "registry.example.com/hello", Tag: "2.0.0", Author: "ci"}
	if err := req.Normalize(); err != nil {
		t.Fatal(err)
	}
	changed, err := req.Edit(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) < 5 {
		t.Errorf("deploy changed %v", changed)
	}
	keepsEncrypted("deploy")
	sres, err = f.engine.Sync(ctx, loadRepoKeys(t, dir, keys), reconcile.Options{Full: true, Timeout: 90 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if sres.Failed() {
		t.Fatalf("sync after deploy:\n%s", sres)
	}
	dep, err := env.Client.AppsV1().Deployments(nsA).Get(ctx, "web-hello", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := dep.Spec.Template.Spec.Containers[0].Image; got != "registry.example.com/hello:2.0.0" {
		t.Errorf("web runs %s after the deploy", got)
	}

	// Importing the cluster as mgo left it gives the repo as it is.
	after, err := f.importer.Run(ctx, opts)
	if err != nil {
		t.Fatalf("import after the deploy: %v\n%s", err, dump(after))
	}
	for _, fr := range after.Files {
		if fr.Action != Unchanged {
			t.Errorf("import after the deploy: %s %s", fr.Path, fr.Action)
		}
	}
	keepsEncrypted("import after the deploy")
	for _, secret := range secretsFiles {
		assertNowhere(t, dir, secret)
	}
}

// A release whose objects were changed by hand after install is refused,
// with a diff naming the object and the field, and nothing is written.
func TestImportRefusesHandChangedRelease(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ns := env.Namespace(t)
	f.install(ns, "edited", localChart(t, "edited", "0.1.0"), map[string]any{"replicaCount": 1})
	cm, err := env.Client.CoreV1().ConfigMaps(ns).Get(ctx, "edited-edited", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["greeting"] = "changed by hand"
	if _, err := env.Client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	res, err := f.importer.Run(ctx, Options{RepoDir: dir, Namespaces: []string{ns}})
	if !errors.Is(err, ErrNotProven) {
		t.Fatalf("import of a hand-changed release: %v\n%s", err, dump(res))
	}
	if res.Written || len(res.Releases) != 1 || len(res.Releases[0].Objects) == 0 {
		t.Fatalf("result:\n%s", dump(res))
	}
	o := res.Releases[0].Objects[0]
	if !strings.Contains(o.Subject, "ConfigMap") || !strings.Contains(o.Diff, "greeting") || !strings.Contains(o.Diff, "changed by hand") {
		t.Errorf("diff does not name the object and field: %s\n%s", o.Subject, o.Diff)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files written by a refused import: %v", ents)
	}

	// --force writes it anyway and says so.
	res, err = f.importer.Run(ctx, Options{RepoDir: dir, Namespaces: []string{ns}, Force: true})
	if !errors.Is(err, ErrNotProven) || !res.Written || !res.Forced {
		t.Fatalf("forced import: %v\n%s", err, dump(res))
	}
	readFile(t, dir, "installations/"+clusterName+"/edited-values.yaml")
}

// Secret values are not written in clear without consent.
func TestImportRefusesPlaintextSecrets(t *testing.T) {
	f := newFixture(t)
	ns := env.Namespace(t)
	f.install(ns, "withpw", localChart(t, "withpw", "0.1.0"), map[string]any{"replicaCount": 1, "auth": map[string]any{"password": password}})
	dir := t.TempDir()
	res, err := f.importer.Run(context.Background(), Options{RepoDir: dir, Namespaces: []string{ns}})
	if !errors.Is(err, ErrPlaintextSecrets) || !strings.Contains(err.Error(), "auth.password") {
		t.Fatalf("import: %v\n%s", err, dump(res))
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files written by a refused import: %v", ents)
	}
}

func assertOnlyInSecrets(t *testing.T, dir, secret, secretsFile string) {
	t.Helper()
	if secretsFile != "" && !strings.Contains(readFile(t, dir, secretsFile), secret) {
		t.Errorf("%s does not hold the secret", secretsFile)
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if filepath.ToSlash(rel) == secretsFile {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), secret) {
			t.Errorf("%s holds the secret", rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func dump(res *Result) string {
	if res == nil {
		return "(no result)"
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	return string(b)
}

// With age recipients the secrets file is SOPS-encrypted: the password is
// in no file in clear, it decrypts back, and importing again keeps the
// encrypted file byte for byte.
func TestImportEncryptsSecrets(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ns := env.Namespace(t)
	f.install(ns, "vault", localChart(t, "vault", "0.1.0"), map[string]any{"replicaCount": 1,
		"auth": map[string]any{"password": password, "user": "app"}, "licence": "L-42"})
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	keys := secrets.KeysFromIdentities(id)
	dir := t.TempDir()
	opts := Options{RepoDir: dir, Namespaces: []string{ns}, SecretKeys: []string{"licen?e"},
		AgeRecipients: []string{id.Recipient().String()}, Encrypt: secrets.Encrypt,
		Decrypt: func(path string, data []byte) ([]byte, error) { return secrets.Decrypt(path, data, keys) }}
	res, err := f.importer.Run(ctx, opts)
	if err != nil {
		t.Fatalf("import: %v\n%s", err, dump(res))
	}
	if got := strings.Join(res.Releases[0].Secrets, ","); got != "auth.password,licence" {
		t.Errorf("secret paths %s", got)
	}
	sf := "installations/" + clusterName + "/vault-secrets.yaml"
	enc := readFile(t, dir, sf)
	if !secrets.IsEncrypted([]byte(enc)) {
		t.Fatalf("%s is not encrypted:\n%s", sf, enc)
	}
	for _, s := range []string{password, "L-42"} {
		assertNowhere(t, dir, s)
	}
	plain, err := secrets.Decrypt(sf, []byte(enc), keys)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(plain), password) || !strings.Contains(string(plain), "L-42") {
		t.Errorf("decrypted secrets:\n%s", plain)
	}
	again, err := f.importer.Run(ctx, opts)
	if err != nil {
		t.Fatalf("second import: %v", err)
	}
	for _, fr := range again.Files {
		if fr.Action != Unchanged {
			t.Errorf("second import: %s %s", fr.Path, fr.Action)
		}
	}
	if readFile(t, dir, sf) != enc {
		t.Errorf("the encrypted secrets file changed")
	}
}

// --raw-selector exports the matching objects no release owns, without
// the fields the server sets, and the export renders the live objects.
func TestImportRawSelector(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ns := env.Namespace(t)
	f.install(ns, "web", localChart(t, "web", "0.1.0"), map[string]any{"replicaCount": 1})
	for _, name := range []string{"settings", "unlabelled"} {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: map[string]string{"mode": "fast"}}
		if name == "settings" {
			cm.Labels = map[string]string{"team": "shop"}
		}
		if _, err := env.Client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns, Labels: map[string]string{"team": "shop"}},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}, Selector: map[string]string{"app": "shop"}}}
	if _, err := env.Client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	res, err := f.importer.Run(ctx, Options{RepoDir: dir, Namespaces: []string{ns}, RawSelector: "team=shop"})
	if err != nil {
		t.Fatalf("import: %v\n%s", err, dump(res))
	}
	if len(res.Raw) != 1 || strings.Join(res.Raw[0].Objects, ",") != "ConfigMap/"+ns+"/settings,Service/"+ns+"/shop" {
		t.Fatalf("raw export:\n%s", dump(res))
	}
	raw := readFile(t, dir, "installations/"+clusterName+"/"+ns+"-raw.yaml")
	for _, gone := range []string{"uid:", "resourceVersion:", "managedFields", "creationTimestamp", "clusterIP", "status:"} {
		if strings.Contains(raw, gone) {
			t.Errorf("raw export keeps %s:\n%s", gone, raw)
		}
	}
	if !strings.Contains(raw, "mode: fast") || strings.Contains(raw, "unlabelled") {
		t.Errorf("raw export:\n%s", raw)
	}
	loadRepo(t, dir)
}

func assertNowhere(t *testing.T, dir, secret string) {
	t.Helper()
	assertOnlyInSecrets(t, dir, secret, "")
}
