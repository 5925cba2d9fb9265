// Package importer writes the gitops repo of a cluster that already runs
// Helm releases: one values file per release (header with the chart
// reference resolved against the chart repositories of mygitops.yaml, an
// OCI reference, or the release's stored chart written into charts/), its
// user-supplied values, image entries linked to the chart's image fields,
// secret values in a separate secrets file, and optionally the objects no
// release owns as raw manifests. Before it writes anything it renders the
// new files and diffs them against the live cluster with the same diff as
// `mgo diff`: an import is only written when that diff is empty (or when
// forced).
//
// The pipeline reads top to bottom in Importer.Run: list releases, resolve
// charts, build files, prove (render and diff), write.
package importer
