//go:build race

package failover_test

// Under -race the replicas are built with the race detector too: the code
// they share records and clusters with runs in them, not in the test.
func init() { raceBuild = true }
