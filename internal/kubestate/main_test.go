package kubestate

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/mygitops/mgo/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Main(m, &env, testenv.Options{Context: "kubestate-test"})
}

// crd installs the CRD once per test binary.
func crd(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := InstallCRD(ctx, env.Config); err != nil {
		t.Fatal(err)
	}
}

func TestChartShipsTheCRD(t *testing.T) {
	chart, err := os.ReadFile("../../charts/mgo/crds/deployrecords.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(chart, CRD) {
		t.Fatal("charts/mgo/crds/deployrecords.yaml differs from internal/kubestate/crd.yaml: copy it")
	}
}
