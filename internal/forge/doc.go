// Package forge opens merge requests on the forge that hosts the gitops
// repo and reads their state, so that merging one can approve a stage of a
// promotion: mgo pushes a branch with the change (gitrepo.Repo.PushBranch),
// Open asks for it to be merged into the default branch, and State tells
// whether someone merged or closed it.
//
// Two forges are spoken to through their HTTP APIs: GitLab (API v4 merge
// requests, token in PRIVATE-TOKEN) and GitHub (REST pull requests, a
// Bearer token). Requests go through the http.Client given in Config, so
// the caller's outbound allow list applies to them. Errors carry the HTTP
// status and the start of the answer, never the token.
package forge
