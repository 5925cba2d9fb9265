// Package render turns a release of the gitops repo into Kubernetes objects,
// in-process with the Helm v4 SDK and without writing to any cluster.
//
// Charts come from three sources, named by the release header: a Helm chart
// repository listed in mygitops.yaml (`<repo>/<chart>`, index.yaml over
// HTTP(S) with basic auth), an OCI registry (`oci://host/path/chart`), or the
// gitops repo itself (`./charts/<name>`). Downloaded charts are kept in a
// cache keyed by source, chart and version, so a sync does not download a
// chart it already has; a semver range is resolved to the newest matching
// version through the repository index (kept for IndexTTL) or the registry's
// tags.
package render
