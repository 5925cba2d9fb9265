// Package deploy carries a deploy request from the API (or the command line)
// to an answer:
//
//	check -> queue -> change (edit, commit) -> push -> sync the cluster -> settle -> answer
//
// DeployAction (action.go) is that pipeline's steps: mgo deploy --repo runs
// them for one request; a Service runs the same steps for many. Check
// refuses a request before anything is written (unknown cluster or trigger
// repo, invalid values files, an image outside allowedImages). The git
// worker (service.go) takes every request queued at that moment as a
// batch: each request becomes its own commit with its own author, and the
// batch is pushed once.
//
// Each served cluster has a scheduler (scheduler.go): a coalescing queue
// of sync jobs (queue.go), one sync at a time for everything pushed before
// it began, a foreground lane that syncs deploys beside a background sync
// (start-up comparison, drift check), and the answerer of each sync
// (answers.go), which finishes a job as soon as its releases are synced.
// Clusters sync independently, so a request for one cluster never waits
// for another cluster's rollout. How the clusters are shared with other
// replicas is a replicaPolicy (replicas.go): alone, or by leases
// (shared.go), where only the holder of a cluster's lease syncs it and
// takes over the records other replicas pushed for it.
//
// Around the syncs: Refresh after pushes (refresh.go), drift checks and
// drift from the engines' watches (drift.go) with repairs (repair.go), and
// rollback (a revert commit, then a sync).
//
// Every deployment is a record in a Store (store.go: bbolt for one
// replica; internal/kubestate for several): its request, status, commit,
// stage times and per-release results survive a restart of mgo. The store
// is not the source of truth: git holds what was deployed (its commits
// carry the deployment id as a trailer), the store holds how it went.
package deploy
