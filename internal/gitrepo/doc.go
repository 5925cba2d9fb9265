// Package gitrepo is mgo's clone of the gitops repository: the only place
// that fetches, commits and pushes. It is built on go-git; no git binary is
// needed.
//
// # Layout
//
// A Repo owns its working directory (Options.Dir) and keeps two things in
// it:
//
//   - repo.git, a bare repository cloned once (into a temporary directory
//     renamed into place, so an interrupted clone never looks like one) and
//     reopened after a restart when its origin is the configured URL;
//   - tree, a plain directory of the branch's files, without .git, that mgo
//     checks out and reads back itself. There is no git index: a checkout
//     applies the difference between the tree the directory is known to
//     hold and the target tree, or, when its state is unknown (after a
//     ChangeFunc, a failure or a restart), compares every file with the
//     target and fixes what differs (extra files, .git directories and empty
//     directories removed). After a ChangeFunc every file is hashed and
//     compared with the base tree, so an edit is seen whatever its size or
//     timestamp, and the new tree is built from the result.
//
// A directory that is neither empty nor such a clone is refused
// (ErrWorkdir); a failed first clone leaves nothing behind.
//
// # Changes
//
// Every change follows one straight line, one writer at a time:
//
//	fetch -> check out the remote branch head -> run the ChangeFunc ->
//	hash the tree -> commit -> push
//
// Writers (Open, Fetch, ApplyBatch, Revert) queue on a writer lock that
// is held throughout, network included; waiting for it honours the
// caller's context. Readers (Read, Head) never wait for the network: a
// second lock guards the work tree and head, and writers hold it only for
// the local steps (checkout, the ChangeFuncs, commit). While the push
// runs, the work tree is back at the fetched base, so a reader never sees
// a commit that is not on the remote; once the push landed it moves to
// the new head. Head takes no lock at all.
//
// Each fetch and push is bounded by Options.Timeout (30 s by default; the
// first clone by CloneTimeout): a remote that hangs fails the change with
// an error naming the stage ("fetch <url>: ...", "push <url>: ...") that
// wraps ErrTimeout. LastFetch reports, without a lock, the time of the
// last successful exchange with the remote and the error of a later
// failed one, for a health check.
//
// A crash at any point leaves nothing to undo: new commits live in memory
// until their push landed, and Open resets the work tree to the
// remote-tracking head. Open does not fetch a reopened clone; call Fetch
// after it to start from the remote's current head. The fault point
// faults.AfterCommit sits between the commit and the push.
//
// A ChangeFunc is the caller's edit (the image editor, a revert): it gets
// the work tree's path, edits files and reports whether it changed
// anything. ApplyBatch runs several in order, each its own commit with its
// own author, and pushes once.
//
// Fetch and push are mgo's own upload-pack and receive-pack exchanges over
// go-git's transports (go-git's Fetch writes a packfile per fetch, and its
// Push walks the whole history to find what to send). A fetch asks for the
// branch head, offering the last known remote head, and keeps the objects
// in memory; new commits are built in memory on top of them. A push checks
// that the advertised branch is still at the fetched base and sends a pack
// of exactly the objects the new commits introduce; the ref update names
// the base as the old value, so the server refuses it if the branch moved
// meanwhile. Only once the push landed (or there was nothing to push) are
// the objects written to the repository and the refs moved. So the time
// between the fetch and the push, when someone else can push first, holds
// no writes to the repository, and an attempt that lost leaves nothing
// behind.
//
// A push that loses a race is retried: fetch, check out the new remote head
// and run the ChangeFunc again on that tree (no textual rebase), with
// bounded, jittered backoff (Options.PushRetries, RetryBackoff,
// MaxRetryBackoff; then ErrTooManyRetries). A refusal with the branch not
// moved (a hook, a protected branch) is ErrPushRejected at once; a push
// that got no answer (timeout, dropped connection, error status) with the
// branch not moved fails with its own error; a push whose answer was lost
// but whose commits the next fetch finds on the remote counts as pushed. mgo never force-pushes and never makes an empty
// commit: when nothing changed (or the re-run finds that someone else
// already made the change) the result has Changed=false and the current
// remote head. After a failure no change result claims a commit.
//
// Revert makes a new commit undoing a given commit on the current head: the
// files it changed go back to their parent version; files changed again
// since make it a *RevertConflictError (ErrRevertConflict). It pushes like
// Apply, redoing the conflict check on the new head after a lost race.
//
// Each commit's author is the requester (ParseAuthor), its committer mgo
// itself (Options.Committer), and its message ends with trailers naming the
// trigger repo, the API client and the deployment (Message, ParseMessage).
//
// # Credentials
//
// HTTPS basic auth or bearer token, or an SSH key with host keys checked
// against a known_hosts file (InsecureIgnoreHostKey only for tests, with a
// warning logged). They come from files, environment variables or
// already-read Secrets named in Options, are re-read on every network
// operation (so a rotated secret is picked up) and never appear in logs,
// errors or printed options. Failures are ErrAuth and ErrHostKey.
//
// # Reading
//
// Read gives the sync engine the checked-out tree at the last fetched (or
// pushed) head, waiting only for the local steps of a change; Head
// returns that head.
//
// Author names and addresses are refused (ErrInvalidAuthor) when they hold
// control characters, Unicode format characters (U+202E and the other
// bidirectional controls, zero-width characters: category Cf), line or
// paragraph separators or invalid UTF-8, so that a commit's author always
// reads as what it is.
package gitrepo
