// Package reconcile makes one cluster equal to the gitops repo. A sync reads
// top to bottom: raw manifests (Namespaces and CRDs first, pruned through an
// inventory), then every Helm release: load the chart, render it locally,
// compare the rendered objects with the live cluster (server-side dry-run),
// install or upgrade through the Helm v4 SDK with server-side apply only
// when something differs, wait for the rollout (kstatus) and report per
// object. One failing release never stops the others; its result names the
// file, the stage that failed and why.
//
// The engine remembers the digest of what each release rendered at its last
// successful sync. A release whose rendered output has not changed since is
// not looked at again (no API request at all) unless a full sync asks for a
// live drift check.
package reconcile
