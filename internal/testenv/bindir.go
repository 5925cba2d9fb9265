package testenv

import (
	"fmt"
	"os"
	"path/filepath"
)

// KubeVersion is the Kubernetes version the control plane binaries are built
// at. It must match the k8s.io/kubernetes requirement in
// hack/testenv/kube/go.mod (a test checks it).
const KubeVersion = "v1.37.2"

// Binaries started by the control plane, in start order.
var binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

// CacheDir returns the directory hack/build-testenv.sh builds into:
// $MGO_TESTENV_DIR if set, else $XDG_CACHE_HOME/mgo/testenv/<KubeVersion>
// (XDG_CACHE_HOME defaulting to ~/.cache).
func CacheDir() (string, error) {
	if d := os.Getenv("MGO_TESTENV_DIR"); d != "" {
		return d, nil
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("locating the testenv cache: %w", err)
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "mgo", "testenv", KubeVersion), nil
}

// checkInstall verifies that every binary and the kwok stages are present in
// dir, and names what is missing and how to build it.
func checkInstall(dir string) error {
	var missing []string
	for _, b := range binaries {
		if fi, err := os.Stat(filepath.Join(dir, "bin", b)); err != nil || fi.Mode()&0o111 == 0 {
			missing = append(missing, "bin/"+b)
		}
	}
	if stages, _ := filepath.Glob(filepath.Join(dir, "stages", "*.yaml")); len(stages) == 0 {
		missing = append(missing, "stages/*.yaml")
	}
	if len(missing) > 0 {
		return fmt.Errorf("testenv: %s missing in %s; build them with `make testenv` (hack/build-testenv.sh)", missing, dir)
	}
	return nil
}
