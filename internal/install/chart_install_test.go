package install

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	helmkube "helm.sh/helm/v4/pkg/kube"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/utils/ptr"

	"github.com/mygitops/mgo/internal/auth"
	"github.com/mygitops/mgo/internal/charttest"
	"github.com/mygitops/mgo/internal/gittest"
	"github.com/mygitops/mgo/internal/logtest"
)

const ciToken = "mgo_install_test_ci_token"

// The chart installs into a real control plane, cluster-wide, with the Helm
// SDK and rolls out in a namespace that enforces the restricted Pod
// Security Standard. mgo then runs as the chart's service account, in
// cluster mode as in its pod, and deploys through its API into a namespace
// of the cluster.
func TestChartInstallClusterWide(t *testing.T) {
	s := installChart(t, "mgo-wide", true)
	m := s.startMgo(t)
	d, code := m.deploy(t, "in", "1.1.0")
	if code != http.StatusOK || d.Status != "succeeded" {
		t.Fatalf("deploy into %s as %s: %d %+v\nmgo log:\n%s", s.nsIn, s.user, code, d, m.logs)
	}
	if img := deploymentImage(t, s.nsIn, "in-hello"); img != "registry.example.com/acme/in:1.1.0" {
		t.Errorf("%s/in-hello runs %s after the deploy", s.nsIn, img)
	}
	// Cluster-wide, a release into any namespace goes through.
	d, code = m.deploy(t, "out", "2.1.0")
	if code != http.StatusOK || d.Status != "succeeded" {
		t.Fatalf("deploy into %s: %d %+v\nmgo log:\n%s", s.nsOut, code, d, m.logs)
	}
}

// Namespaced, the chart's RBAC is enough for the listed namespace and no
// more: a deploy into it succeeds, a deploy into a namespace outside the
// list fails naming the permission mgo lacks.
func TestChartInstallNamespaced(t *testing.T) {
	s := installChart(t, "mgo-ns", false)

	// What the service account may do, as the API server decides.
	for _, c := range []struct {
		ns, verb, group, resource string
		allowed                   bool
	}{
		{s.nsIn, "create", "apps", "deployments", true},
		{s.nsIn, "create", "", "secrets", true},
		{s.nsIn, "patch", "", "namespaces", true},
		{s.nsOut, "create", "apps", "deployments", false},
		{s.nsOut, "get", "", "secrets", false},
		{s.nsOut, "patch", "", "namespaces", false},
		{s.ns, "get", "", "secrets", false},
		{"", "create", "", "namespaces", false},
		{"", "list", "", "nodes", false},
		{"", "create", "rbac.authorization.k8s.io", "clusterroles", false},
	} {
		ra := &authorizationv1.ResourceAttributes{Namespace: c.ns, Verb: c.verb, Group: c.group, Resource: c.resource}
		if c.resource == "namespaces" {
			ra.Namespace, ra.Name = "", c.ns
		}
		sar, err := env.Client.AuthorizationV1().SubjectAccessReviews().Create(t.Context(), &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: s.user, Groups: []string{"system:serviceaccounts", "system:authenticated"},
				ResourceAttributes: ra}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if sar.Status.Allowed != c.allowed {
			t.Errorf("%s may %s %s.%s in %q: %v, want %v", s.user, c.verb, c.resource, c.group, c.ns, sar.Status.Allowed, c.allowed)
		}
	}

	m := s.startMgo(t)
	d, code := m.deploy(t, "in", "1.1.0")
	if code != http.StatusOK || d.Status != "succeeded" {
		t.Fatalf("deploy into listed namespace %s: %d %+v\nmgo log:\n%s", s.nsIn, code, d, m.logs)
	}
	if img := deploymentImage(t, s.nsIn, "in-hello"); img != "registry.example.com/acme/in:1.1.0" {
		t.Errorf("%s/in-hello runs %s after the deploy", s.nsIn, img)
	}

	d, code = m.deploy(t, "out", "2.1.0")
	if code == http.StatusOK || d.Status == "succeeded" {
		t.Fatalf("deploy into %s, outside rbac.namespaces: %d %+v, want a failure", s.nsOut, code, d)
	}
	msg := d.Error
	for _, r := range d.Releases {
		msg += "\n" + r.Error
	}
	for _, want := range []string{"forbidden", s.user, "cannot", `in the namespace "` + s.nsOut + `"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("deploy outside the list: %d, error does not name %q:\n%s", code, want, msg)
		}
	}
	if _, err := env.Client.AppsV1().Deployments(s.nsOut).Get(t.Context(), "out-hello", metav1.GetOptions{}); err == nil {
		t.Errorf("mgo created out-hello in %s without the permission", s.nsOut)
	}
}

// setup is one install of the chart and what it serves.
type setup struct {
	release, ns  string // the chart's release and namespace
	sa, user     string // its service account, as a user name
	nsIn, nsOut  string // namespaces: in rbac.namespaces, and not
	gitURL       string
	deploy       *appsv1.Deployment
	secretsFiles map[string]map[string][]byte // mount path -> files, as the kubelet would mount them
}

// installChart serves a gitops repo of two releases (in: namespace nsIn,
// out: namespace nsOut), creates the secrets the chart references and
// installs the chart with the Helm SDK, waiting for the rollout.
func installChart(t *testing.T, release string, clusterWide bool) *setup {
	s := &setup{release: release, ns: env.Namespace(t), nsIn: env.Namespace(t), nsOut: env.Namespace(t)}
	s.sa = release // the chart's full name: the release name, which contains "mgo"
	s.user = "system:serviceaccount:" + s.ns + ":" + s.sa
	ctx := t.Context()

	// The chart's namespace enforces the restricted Pod Security Standard:
	// mgo's pods are admitted only if they comply.
	ns, err := env.Client.CoreV1().Namespaces().Get(ctx, s.ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns.Labels["pod-security.kubernetes.io/enforce"] = "restricted"
	ns.Labels["pod-security.kubernetes.io/enforce-version"] = "latest"
	if _, err := env.Client.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	files := map[string]string{
		"mygitops.yaml": "clusters:\n  " + cluster + ":\n    timeout: 60s\n",
		"installations/" + cluster + "/in-values.yaml":  helloValues("in", s.nsIn, "1.0.0"),
		"installations/" + cluster + "/out-values.yaml": helloValues("out", s.nsOut, "2.0.0"),
	}
	charttest.AddChart(t, files, "hello")
	remote := gittest.NewRemote(t, files)
	srv := gittest.NewHTTPServer(t, remote, "mgo", "s3cret")
	s.gitURL = srv.URL

	tokens := fmt.Sprintf("tokens:\n  - name: ci\n    sha256: %s\n    clusters: [%s]\n    triggerRepos: [\"gitlab.com/acme/*\"]\n", auth.Hash(ciToken), cluster)
	for name, data := range map[string]map[string][]byte{
		"mgo-git":    {"password": []byte("s3cret\n")},
		"mgo-tokens": {"tokens.yaml": []byte(tokens)},
	} {
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns}, Data: data}
		if _, err := env.Client.CoreV1().Secrets(s.ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	vals := map[string]any{
		"clusterName": cluster,
		"image":       map[string]any{"repository": registryHost + "/" + imageRepo, "tag": testVersion},
		"git":         map[string]any{"url": s.gitURL, "existingSecret": "mgo-git", "username": "mgo"},
		"auth":        map[string]any{"tokensSecret": "mgo-tokens"},
		"extraArgs":   []any{"--insecure-allow-http"},
		"rbac":        map[string]any{"clusterWide": clusterWide},
	}
	if !clusterWide {
		vals["rbac"] = map[string]any{"clusterWide": false, "namespaces": []any{s.nsIn}}
	}
	getter := &genericclioptions.ConfigFlags{KubeConfig: ptr.To(env.Kubeconfig), Context: ptr.To(env.Context), Namespace: ptr.To(s.ns)}
	cfg := action.NewConfiguration()
	if err := cfg.Init(getter, s.ns, "secret"); err != nil {
		t.Fatal(err)
	}
	ch, err := loader.LoadDir(chartDir())
	if err != nil {
		t.Fatal(err)
	}
	in := action.NewInstall(cfg)
	in.ReleaseName, in.Namespace = release, s.ns
	in.ServerSideApply = true
	in.WaitStrategy = helmkube.StatusWatcherStrategy
	in.Timeout = 2 * time.Minute
	start := time.Now()
	if _, err := in.RunWithContext(ctx, ch, vals); err != nil {
		t.Fatalf("helm install %s: %v", release, err)
	}
	t.Logf("helm install %s (%s) rolled out in %s", release, map[bool]string{true: "cluster-wide", false: "namespaced"}[clusterWide],
		time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		un := action.NewUninstall(cfg)
		un.WaitStrategy = helmkube.HookOnlyStrategy
		if _, err := un.Run(release); err != nil {
			t.Errorf("helm uninstall %s: %v", release, err)
		}
	})

	d, err := env.Client.AppsV1().Deployments(s.ns).Get(ctx, release, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Status.AvailableReplicas != 1 || d.Spec.Template.Spec.ServiceAccountName != s.sa {
		t.Fatalf("deployment %s: %d available, service account %s", release, d.Status.AvailableReplicas, d.Spec.Template.Spec.ServiceAccountName)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != registryHost+"/"+imageRepo+":"+testVersion {
		t.Errorf("image %s", img)
	}
	s.deploy = d

	// The secret volumes, as the kubelet would mount them.
	s.secretsFiles = map[string]map[string][]byte{}
	c := d.Spec.Template.Spec.Containers[0]
	for _, vm := range c.VolumeMounts {
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name != vm.Name || v.Secret == nil {
				continue
			}
			sec, err := env.Client.CoreV1().Secrets(s.ns).Get(ctx, v.Secret.SecretName, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("volume %s: %v", v.Name, err)
			}
			s.secretsFiles[vm.MountPath] = sec.Data
		}
	}
	return s
}

func helloValues(name, ns, tag string) string {
	return `__mygitops:
  chart: ./charts/hello
  name: ` + name + `
  namespace: ` + ns + `
  images:
    gitlab.com/acme/` + name + `: &img
      repository: registry.example.com/acme/` + name + `
      tag: "` + tag + `"
image:
  <<: *img
replicaCount: 1
`
}

// mgoProcess is `mgo serve` running as the chart's service account.
type mgoProcess struct {
	url  string
	logs *logtest.Buffer
}

// startMgo runs the mgo binary of the pushed image with the arguments of the
// installed Deployment, as in its pod: in a mount namespace where
// /var/run/secrets/kubernetes.io/serviceaccount holds a token minted for
// the chart's service account (TokenRequest) and the cluster's CA, with
// KUBERNETES_SERVICE_HOST and _PORT set, and the secret volumes as files.
// Only the listen address and the host paths of the volumes differ.
func (s *setup) startMgo(t *testing.T) *mgoProcess {
	t.Helper()
	bin := imageBinary(t)
	ctx := t.Context()
	tr, err := env.Client.CoreV1().ServiceAccounts(s.ns).CreateToken(ctx, s.sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s: %v", s.user, err)
	}
	dir := t.TempDir()
	saDir := filepath.Join(dir, "serviceaccount")
	writeFiles(t, saDir, map[string][]byte{"token": []byte(tr.Status.Token), "ca.crt": env.Config.CAData, "namespace": []byte(s.ns)})

	// Volumes: each mount path of the pod becomes a directory under dir.
	mounts := map[string]string{}
	for mp, data := range s.secretsFiles {
		host := filepath.Join(dir, "mounts", strings.ReplaceAll(strings.Trim(mp, "/"), "/", "_"))
		writeFiles(t, host, data)
		mounts[mp] = host
	}
	mounts["/var/lib/mgo"] = filepath.Join(dir, "data")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	c := s.deploy.Spec.Template.Spec.Containers[0]
	var args []string
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--listen=") {
			a = "--listen=" + addr
		}
		for mp, host := range mounts {
			a = strings.Replace(a, "="+mp, "="+host, 1)
		}
		args = append(args, a)
	}
	u, err := url.Parse(env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	const saPath = "/var/run/secrets/kubernetes.io/serviceaccount"
	script := `set -e
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p ` + saPath + `
cp "$SA_DIR"/token "$SA_DIR"/ca.crt "$SA_DIR"/namespace ` + saPath + `/
exec "$@"`
	unshare := []string{"--mount", "--propagation", "private"}
	if os.Geteuid() != 0 {
		unshare = append(unshare, "--map-root-user")
	}
	cmdArgs := append(append(unshare, "sh", "-c", script, "sh", bin), args...)
	cmd := exec.Command("unshare", cmdArgs...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(dir, "home"), "SA_DIR=" + saDir,
		"KUBERNETES_SERVICE_HOST=" + u.Hostname(), "KUBERNETES_SERVICE_PORT=" + u.Port()}
	for _, e := range c.Env {
		cmd.Env = append(cmd.Env, e.Name+"="+e.Value)
	}
	m := &mgoProcess{url: "http://" + addr, logs: &logtest.Buffer{}}
	cmd.Stdout, cmd.Stderr = m.logs, m.logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := os.MkdirAll(filepath.Join(dir, "home"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			<-done
			t.Error("mgo serve did not stop within a minute of SIGTERM")
		}
		if t.Failed() {
			t.Logf("mgo serve log:\n%s", m.logs)
		}
	})

	// Ready: the clone is there and the initial sync ran.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case err := <-done:
			t.Fatalf("mgo serve exited: %v\n%s", err, m.logs)
		default:
		}
		resp, err := http.Get(m.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("mgo serve not ready within 2 minutes\n%s", m.logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(m.logs.String(), `"cluster":"`+cluster+`"`) && !strings.Contains(m.logs.String(), cluster) {
		t.Fatalf("mgo serve does not serve cluster %s:\n%s", cluster, m.logs)
	}
	return m
}

// deployment is what the deploy API answers (the fields the tests read).
type deployment struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Error    string `json:"error"`
	Releases []struct {
		Name, Namespace, Action, Error string
	} `json:"releases"`
	Deployment *deployment `json:"deployment"` // an error answer carries the deployment
}

// deploy asks mgo, as a CI job would, to deploy tag to release name's image.
func (m *mgoProcess) deploy(t *testing.T, name, tag string) (deployment, int) {
	t.Helper()
	form := url.Values{"cluster": {cluster}, "triggerRepo": {"gitlab.com/acme/" + name},
		"imageRepo": {"registry.example.com/acme/" + name}, "imageTag": {tag}, "author": {"ci@example.com"}}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, m.url+"/deploy", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+ciToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var d deployment
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("deploy answer %d: %v: %s", resp.StatusCode, err, b)
	}
	if d.Deployment != nil {
		msg := d.Error
		d = *d.Deployment
		if d.Error == "" {
			d.Error = msg
		} else if !strings.Contains(d.Error, msg) {
			d.Error = msg + "; " + d.Error
		}
	}
	t.Logf("deploy %s:%s: %d %s %s", name, tag, resp.StatusCode, d.Status, d.Error)
	return d, resp.StatusCode
}

func deploymentImage(t *testing.T, ns, name string) string {
	t.Helper()
	d, err := env.Client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d.Spec.Template.Spec.Containers[0].Image
}

func writeFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
