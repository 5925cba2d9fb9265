// Package kube talks to the clusters: one Cluster per kubeconfig context,
// with its own load budget (client QPS and burst) and request counter, and
// server-side apply through fluxcd/pkg/ssa. The verbs on objects are one
// file each, as in fluxcd/pkg/ssa: diff.go (a server-side dry-run against
// the live object, or the Cache first), wait.go (kstatus of live objects, or
// their health rule's status),
// recreate.go (objects with immutable changes), raw.go (raw manifests
// applied and pruned through an inventory kept in the cluster).
//
// cache.go keeps a live view of the objects mgo applied, by watches
// restricted to its ownership label, and compare.go decides from an
// object's managed fields, without a request, when an apply would change
// nothing; everything it cannot decide goes to a dry-run.
//
// Every request a Cluster sends is counted by verb, with server-side
// dry-runs counted apart from real writes, so a no-op sync can prove it made
// no write. metrics.go exposes the same requests to Prometheus, by cluster,
// verb and status code, with the time requests waited for the budget and
// the restarts of the cache's watches.
package kube
