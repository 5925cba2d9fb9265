// Package reconcile makes one cluster equal to the gitops repo. A sync reads
// top to bottom (engine.go): raw manifests (Namespaces and CRDs first,
// pruned through an inventory, raw.go), then every Helm release, then the
// uninstall of releases whose values file left the repo (uninstall.go).
//
// A release sync (release.go) is driven by the release's state, as
// helm-controller's DetermineReleaseState drives its reconciliation: one
// pure function (determineState, state.go) says from what the sync found
// out so far whether the release is invalid, unchanged since its last
// sync (inputs or rendering), failed with this very rendering, absent
// from Helm, pending (left by a Helm action that did not end), locked by
// a live one, in sync, out of sync, or failed; and each state picks one
// action. Some states first ask for more to be found out, in the order of
// their cost, in the three stages of a release:
//
//   - plan (plan.go): load the chart, render it locally, compare the
//     rendered objects with the live cluster (the cache, else a
//     server-side dry-run), read Helm's newest revision. Sync, a dry-run
//     sync, a drift check (a full sync) and Diff share this one compare
//     path;
//   - apply (apply.go): install (install.go) or upgrade (upgrade.go)
//     through the Helm v4 SDK with server-side apply, only when the state
//     calls for it; objects with immutable changes are recreated first
//     when they may be (recreate.go); a pending revision no live mgo holds
//     is recovered first (pending.go);
//   - wait (wait.go): the rollout of every object (kstatus, or the health
//     rule of its kind: health.go), reported per object.
//
// A release in sync is left alone (unchanged.go). One failing release never
// stops the others; its result names the file, the stage that failed (a
// typed error of its step, stage.go) and why.
//
// The engine remembers the inputs (inputs.go) and the digest of what each
// release rendered at its last successful sync. A release whose inputs or
// rendered output have not changed since is not looked at again (no API
// request at all) unless a full sync asks for a live drift check.
package reconcile
