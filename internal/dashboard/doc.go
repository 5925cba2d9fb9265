// Package dashboard is the read model of mgo's dashboard (internal/ui): what
// GET /api/v1/overview and GET /api/v1/clusters/{c}/live answer, as the
// types of pkg/apitypes.
//
//	Overview   per cluster: last sync, drift, releases by health, deploys in the last 24 h
//	Live       per release of the repo at the head: chart, images, Helm revision,
//	           status of its objects (kstatus, or their health rule's:
//	           internal/health), health and the commit that last changed it
//
// It reads the deploy service through Source (the service's records, the
// repo at the head, a release's live state, git history), and adds what
// the views need and the service does not keep:
//
//   - the health rules of a release (health.go): failed, progressing or
//     healthy from its Helm status, its objects' kstatus and its last sync;
//   - a cache of each cluster's live state (reading it costs a Helm storage
//     read and a GET per object): kept for TTL, and callers that come while
//     it is read share that read, so any number of open dashboards cost the
//     cluster the same;
//   - the last change of each values file, kept per head (the history
//     under a head does not change);
//   - the forge of the repo's web URL, for links to commits.
//
// Who may see which cluster is the caller's business (internal/api): Live
// answers any served cluster, Overview the clusters its filter keeps.
package dashboard
