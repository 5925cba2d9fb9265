package deploy

import "context"

// replicaPolicy is how the schedulers of this replica share the clusters
// with other replicas: alone (every cluster is synced here, records in a
// file of this replica's) or, with records shared by several replicas
// (shared.go), by the clusters' leases.
type replicaPolicy interface {
	// holds reports whether this replica syncs cluster.
	holds(cluster string) bool
	// overlap reports whether a job pushed during a sync may be served by
	// a sync that runs beside it (the foreground lane), or by the sync in
	// flight when its tree holds the job's commit. With shared records it
	// may not: the holder's syncs after taking a lease also finish adopted
	// records, and two lanes over one cluster lost Helm revisions to each
	// other in the failover test ("release: already exists"); those jobs
	// wait for the next sync.
	overlap() bool
	// hold returns the context of a sync of cluster that starts now, from
	// the service's context ctx, and whether this replica may run it: with
	// leases, a context cancelled when the lease is lost (release).
	hold(ctx context.Context, h *leaseHold, cluster string) (context.Context, bool)
	// lostDuring reports whether the lease of cluster was lost while a sync
	// with ctx ran: what it did not finish is the new holder's.
	lostDuring(ctx context.Context, cluster string) bool
	// leave gives a job up to the holder of its cluster's lease.
	leave(j *job, why string)
}

// alone is the policy of a replica that shares nothing.
type alone struct{}

var (
	_ replicaPolicy = alone{}
	_ replicaPolicy = (*shared)(nil)
)

func (alone) holds(string) bool { return true }
func (alone) overlap() bool     { return true }
func (alone) hold(ctx context.Context, _ *leaseHold, _ string) (context.Context, bool) {
	return ctx, true
}
func (alone) lostDuring(context.Context, string) bool { return false }

// leave is never asked of a replica alone: it holds every cluster.
func (alone) leave(*job, string) {}
