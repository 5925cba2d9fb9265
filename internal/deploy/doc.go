// Package deploy carries a deploy request from the API (or the command line)
// to an answer:
//
//	validate -> queue -> edit values files -> commit -> push -> sync the cluster -> wait -> answer
//
// A Service owns the gitops clone (internal/gitrepo) and one sync engine per
// cluster (internal/reconcile). Requests are validated completely before they
// are queued (unknown cluster or trigger repo: refused, nothing written).
// One worker takes every request queued at that moment as a batch: each
// request becomes its own commit with its own author, the batch is pushed
// once, and every affected cluster is synced once for the whole batch.
// Clusters sync independently, so a request for one cluster never waits for
// another cluster's rollout.
//
// Every deployment is a record in a small embedded store (bbolt, see Store):
// its request, status, commit, stage times and per-release results survive a
// restart of mgo. The store is local state, not the source of truth: git
// holds what was deployed (its commits carry the deployment id as a
// trailer), the store holds how it went.
package deploy
