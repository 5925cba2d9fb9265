package cli

import (
	"testing"

	"github.com/mygitops/mgo/internal/testenv"
)

const testCluster = "cli-test"

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env, testenv.Options{Context: testCluster}) }
