// Package kube talks to the clusters: one Cluster per kubeconfig context,
// with its own load budget (client QPS and burst) and request counter, and
// server-side apply through fluxcd/pkg/ssa: dry-run diffs against the live
// objects, applies of what drifted, raw manifests pruned through an
// inventory kept in the cluster, and kstatus waits.
//
// Every request a Cluster sends is counted by verb, with server-side
// dry-runs counted apart from real writes, so a no-op sync can prove it made
// no write.
package kube
