// Package gitrepo is mgo's clone of the gitops repository: the only place
// that fetches, commits and pushes. It is built on go-git; no git binary is
// needed.
//
// A Repo clones the repository once into a working directory it owns and
// keeps it (reopening it after a restart when it is a clone of the same
// URL). Every change follows one straight line, under a lock (one writer
// per repository):
//
//	fetch -> hard-reset the work tree to the remote branch -> run the
//	ChangeFunc -> stage everything (deletions too) -> commit -> push
//
// A ChangeFunc is the caller's edit (the image editor, a revert): it gets
// the work tree's path, edits files and reports whether it changed
// anything. A push that loses a race with another pusher is retried: fetch,
// reset to the new remote head and run the ChangeFunc again on that tree
// (no textual rebase), with bounded, jittered backoff. mgo never
// force-pushes and never makes an empty commit: when nothing changed (or
// the re-run finds that someone else already made the change) the result
// has Changed=false and the current remote head.
//
// Each commit's author is the requester (ParseAuthor), its committer mgo
// itself (Options.Committer), and its message ends with trailers naming the
// trigger repo, the API client and the deployment (Message, ParseMessage).
//
// Credentials (HTTPS basic auth or bearer token, SSH key with known_hosts
// checking) come from files or environment variables named in Options and
// are re-read on every use; they never appear in logs or errors.
//
// Read gives the sync engine the checked-out tree at the last fetched head
// while no change is running.
package gitrepo
