// Package testenv runs a real, local Kubernetes control plane for tests, the
// dev cluster and the demo: etcd, kube-apiserver (token auth, RBAC),
// kube-controller-manager, kube-scheduler and kwok, which plays the kubelet for
// fake nodes so that pods become Running and Ready and workloads roll out.
//
// The binaries are built once by hack/build-testenv.sh into a cache directory
// outside the repository (see BinDir). A test package starts one control plane
// from TestMain with Main, and every test takes its own namespace:
//
//	var env *testenv.Env
//
//	func TestMain(m *testing.M) { testenv.Main(m, &env, testenv.Options{}) }
//
//	func TestX(t *testing.T) {
//		ns := env.Namespace(t)
//		...
//	}
//
// Every process runs in its own process group and receives SIGKILL when the
// test binary dies, however it dies (a panic, a test timeout, a signal), so no
// control-plane process outlives the test binary. Ports are taken from the
// kernel and reserved with a lock file for the lifetime of the Env, so test
// packages running at once never share a port; each Env has its own temporary
// directory.
package testenv
