// Package reconcile makes one cluster equal to the gitops repo. A sync reads
// top to bottom: raw manifests (Namespaces and CRDs first, pruned through an
// inventory, raw.go), then every Helm release in three stages (engine.go):
//
//   - plan (plan.go): load the chart, render it locally, compare the
//     rendered objects with the live cluster (server-side dry-run). Sync,
//     a dry-run sync, a drift check (a full sync) and Diff share this one
//     compare path;
//   - apply (apply.go): install or upgrade through the Helm v4 SDK with
//     server-side apply, only when the plan found a difference; objects
//     with immutable changes are recreated first when they may be;
//   - wait (wait.go): the rollout of every object (kstatus), reported per
//     object.
//
// One failing release never stops the others; its result names the file,
// the stage that failed and why. Releases whose values file left the repo
// are uninstalled (uninstall.go).
//
// The engine remembers the digest of what each release rendered at its last
// successful sync. A release whose rendered output has not changed since is
// not looked at again (no API request at all) unless a full sync asks for a
// live drift check.
package reconcile
