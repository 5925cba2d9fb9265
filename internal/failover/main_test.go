// Package failover_test runs several `mgo serve --state kubernetes`
// replicas as real processes against real control planes: one home cluster
// (records, leases) and two target clusters, and kills one of them.
package failover_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/mygitops/mgo/internal/testenv"
)

const (
	home  = "home"
	alpha = "alpha"
	beta  = "beta"
)

var envs = map[string]*testenv.Env{}

func TestMain(m *testing.M) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	for _, name := range []string{home, alpha, beta} {
		wg.Go(func() {
			e, err := testenv.Start(context.Background(), testenv.Options{Context: name})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				return
			}
			envs[name] = e
		})
	}
	wg.Wait()
	code := 2
	if len(errs) > 0 {
		fmt.Fprintf(os.Stderr, "testenv: control planes did not start: %v\n", errs)
	} else {
		code = m.Run()
	}
	for _, e := range envs {
		e.Stop()
	}
	os.Exit(code)
}

// kubeconfig writes one kubeconfig with a context per control plane.
func kubeconfig(t *testing.T) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	for name, e := range envs {
		cfg.Clusters[name] = &clientcmdapi.Cluster{Server: e.Config.Host, CertificateAuthorityData: e.Config.CAData}
		cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: e.Config.BearerToken}
		cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	}
	cfg.CurrentContext = home
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// raceBuild is set under -race (race_test.go).
var raceBuild bool

// mgoBinary builds bin/mgo once: the test kills real processes.
var mgoBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "mgo-failover-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "mgo")
	args := []string{"build", "-o", bin}
	if raceBuild {
		args = append(args, "-race")
	}
	if out, err := exec.Command("go", append(args, "../../cmd/mgo")...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})
