package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mygitops/mgo/internal/charttest"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Execute(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// mgo diff shows drift and exits 1; mgo sync repairs it; mgo diff then
// exits 0.
func TestSyncAndDiff(t *testing.T) {
	ns := env.Namespace(t)
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "charts", "hello"), os.DirFS(charttest.ChartDir("hello"))); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "installations", testCluster, "web-values.yaml"), `__mygitops:
  chart: ./charts/hello
  name: web
  namespace: `+ns+`
image:
  tag: "1.0.0"
replicaCount: 2
`)
	writeFile(t, filepath.Join(dir, "installations", testCluster, "config-raw.yaml"), `apiVersion: v1
kind: Secret
metadata:
  name: api-key
  namespace: `+ns+`
stringData:
  key: very-secret-value
`)
	common := []string{"--repo", dir, "--cluster", testCluster, "--kubeconfig", env.Kubeconfig, "--chart-cache", t.TempDir()}

	code, out, errOut := run(t, append([]string{"diff"}, common...)...)
	if code != 1 || !strings.Contains(out, "+++ repo/Deployment/"+ns+"/web-hello") {
		t.Fatalf("diff before the first sync: exit %d\n%s\n%s", code, out, errOut)
	}
	if strings.Contains(out, "very-secret-value") {
		t.Errorf("diff shows a Secret value:\n%s", out)
	}

	code, out, errOut = run(t, append([]string{"sync"}, common...)...)
	if code != 0 || !strings.Contains(out, ns+"/web: installed (revision 1)") {
		t.Fatalf("sync: exit %d\n%s\n%s", code, out, errOut)
	}

	code, out, _ = run(t, append([]string{"diff"}, common...)...)
	if code != 0 || out != "" {
		t.Fatalf("diff after sync: exit %d\n%s", code, out)
	}

	// Drift behind mgo's back.
	ctx := context.Background()
	if _, err := env.Client.AppsV1().Deployments(ns).Patch(ctx, "web-hello", types.MergePatchType,
		[]byte(`{"spec":{"replicas":4}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	code, out, _ = run(t, append([]string{"diff"}, common...)...)
	if code != 1 || !strings.Contains(out, "-  replicas: 4") || !strings.Contains(out, "+  replicas: 2") {
		t.Fatalf("diff after drift: exit %d\n%s", code, out)
	}

	code, out, errOut = run(t, append([]string{"sync"}, common...)...)
	if code != 0 || !strings.Contains(out, ns+"/web: upgraded (revision 2)") {
		t.Fatalf("sync after drift: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = run(t, append([]string{"diff"}, common...)...)
	if code != 0 {
		t.Fatalf("diff after repair: exit %d\n%s", code, out)
	}
	// A sync with nothing to do makes no write.
	code, out, _ = run(t, append([]string{"sync"}, common...)...)
	if code != 0 || !strings.Contains(out, "web: unchanged (revision 2)") || !strings.Contains(out, "(0 writes)") {
		t.Fatalf("no-op sync: exit %d\n%s", code, out)
	}

	// A raw manifest leaves the repo: diff shows the deletion (masked), sync
	// prunes it.
	if err := os.Remove(filepath.Join(dir, "installations", testCluster, "config-raw.yaml")); err != nil {
		t.Fatal(err)
	}
	code, out, _ = run(t, append([]string{"diff"}, common...)...)
	if code != 1 || !strings.Contains(out, "--- live/Secret/"+ns+"/api-key") || !strings.Contains(out, "-kind: Secret") {
		t.Fatalf("diff of a removed raw manifest: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "very-secret-value") || strings.Contains(out, "dmVyeS1zZWNyZXQtdmFsdWU=") {
		t.Errorf("diff shows the Secret value:\n%s", out)
	}
	code, out, _ = run(t, append([]string{"sync"}, common...)...)
	if code != 0 || !strings.Contains(out, "raw Secret/"+ns+"/api-key deleted") {
		t.Fatalf("sync of a removed raw manifest: exit %d\n%s", code, out)
	}
	if code, out, _ = run(t, append([]string{"diff"}, common...)...); code != 0 {
		t.Fatalf("diff after prune: exit %d\n%s", code, out)
	}
}

func TestSyncCannotRun(t *testing.T) {
	for _, args := range [][]string{
		{"sync", "--repo", t.TempDir(), "--cluster", testCluster},
		{"sync", "--repo", "../repo/testdata/good", "--cluster", "prod", "--kubeconfig", filepath.Join(t.TempDir(), "none")},
		{"diff", "--repo", "../repo/testdata/good"},
	} {
		if code, _, errOut := run(t, args...); code != 2 || !strings.HasPrefix(errOut, "Error: ") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
}
