package repo

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Raw objects carry the number types of the API machinery, so that
// copying them (as every diff and apply does) works.
func TestRawObjectsHaveJSONNumbers(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "installations", "c", "svc-raw.yaml")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	src := "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n    - port: 80\n      targetPort: 8080\n"
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o := r.Clusters["c"].Raw[0].Objects[0]
	u := (&unstructured.Unstructured{Object: o.Object}).DeepCopy()
	ports, _, _ := unstructured.NestedSlice(u.Object, "spec", "ports")
	if port := ports[0].(map[string]any)["port"]; port != int64(80) {
		t.Errorf("port is %T %v", port, port)
	}
}
