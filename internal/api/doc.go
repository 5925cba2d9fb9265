// Package api is mgo's HTTP edge: routes, authentication, size limits, the
// webhooks, and the mapping of outcomes to status codes and JSON errors.
// Every request is authenticated and validated completely before it reaches
// the deploy service, so nothing is written for a refused request.
//
//	POST /deploy                                  form fields of the original mgo; waits for the rollout
//	POST /deploy/dockerhub?triggerRepo=&cluster=  Docker Hub push webhook; waits
//	POST /api/v1/deployments                      JSON; wait=true waits, else 202
//	GET  /api/v1/deployments[?limit=N]            recent deployments, newest first
//	GET  /api/v1/deployments/{id}                 status, commit, stage times, per-object results
//	POST /api/v1/deployments/{id}/rollback        git revert of its commit, then sync
//	GET  /api/v1/clusters                         served clusters and their last sync
//	GET  /api/v1/clusters/{c}/releases            per release: last sync action, revision, objects
//	GET  /api/v1/clusters/{c}/diff                live diff against the repo
//	POST /api/v1/clusters/{c}/sync[?full=true]    sync now
//	GET  /api/v1/overview                         per cluster: last sync, drift, release health, deploys in 24 h (overview.go, internal/dashboard)
//	GET  /api/v1/clusters/{c}/live                releases: chart, images, revision, kstatus, last change (overview.go, internal/dashboard)
//	POST /hooks/github, /hooks/gitlab             push events (signature or token checked): fetch and sync
//	GET  /metrics                                 Prometheus
//	GET  /healthz, /readyz                        no authentication
package api
