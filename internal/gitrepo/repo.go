package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"
)

const remoteName = "origin"

// Errors for expected outcomes; match them with errors.Is.
var (
	// ErrAuth: the server refused the credentials.
	ErrAuth = errors.New("git authentication failed")
	// ErrHostKey: the SSH server's host key is unknown or differs from the
	// one in known_hosts.
	ErrHostKey = errors.New("ssh host key verification failed")
	// ErrWorkdir: the working directory holds something other than a clone
	// of the configured URL.
	ErrWorkdir = errors.New("working directory is not a clone of the repository")
	// ErrPushRejected: the server refused the push although the branch had
	// not moved (a hook, a protected branch, a full disk).
	ErrPushRejected = errors.New("push rejected")
	// ErrTooManyRetries: every attempt lost the race against other pushers.
	ErrTooManyRetries = errors.New("push kept losing to concurrent pushes")
	// ErrChange: the ChangeFunc failed; nothing was committed for it.
	ErrChange = errors.New("change failed")
)

// Repo is a working clone of the gitops repository. Its methods are safe for
// concurrent use; changes are serialised.
type Repo struct {
	opts   Options
	ep     *transport.Endpoint
	log    *slog.Logger
	branch plumbing.ReferenceName // refs/heads/<branch>
	remote plumbing.ReferenceName // refs/remotes/origin/<branch>

	// wlock serialises writers, network I/O included; mu guards the work
	// tree and head that readers see, held only for local steps (see
	// lock.go).
	wlock     chan struct{}
	mu        sync.RWMutex
	open      atomic.Bool               // the clone is open
	published atomic.Pointer[string]    // head as last left by a local step
	net       atomic.Pointer[netStatus] // for LastFetch
	gitDir    string                    // <Dir>/repo.git, a bare repository
	treeDir   string                    // <Dir>/tree, the checked-out files
	repo      *git.Repository
	objs      *objects      // repo's objects and those of commits not pushed yet
	head      plumbing.Hash // checked out; equals remoteHead between operations
	// remoteHead is the remote branch head as last fetched or pushed; its
	// objects may still be in memory (objs) until persist.
	remoteHead plumbing.Hash
	// loose counts the loose objects written since the last packing
	// (packLoose runs once there are packLooseMin).
	loose, packLooseMin int
	wtTree              plumbing.Hash // the tree the work tree holds; zero when unknown
}

// New validates opts (URL, branch, directory, committer, and every
// credential, which it reads once) and returns a Repo. It does no network
// I/O: the clone happens on the first operation (or Open). A nil logger
// discards.
func New(opts Options, logger *slog.Logger) (*Repo, error) {
	ep, err := opts.validate()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Repo{
		opts:    opts,
		ep:      ep,
		log:     logger.With("repo", opts.URL, "branch", opts.Branch),
		branch:  plumbing.NewBranchReferenceName(opts.Branch),
		remote:  plumbing.NewRemoteReferenceName(remoteName, opts.Branch),
		gitDir:  filepath.Join(opts.Dir, "repo.git"),
		treeDir: filepath.Join(opts.Dir, "tree"),
		wlock:   make(chan struct{}, 1),

		packLooseMin: packLooseMin,
	}
	if opts.Auth.InsecureIgnoreHostKey {
		r.log.Warn("SSH host key checking is disabled (insecureIgnoreHostKey)")
	}
	return r, nil
}

// Open clones the repository into the working directory, or reopens the
// clone already there (after checking that its origin is the configured
// URL) and resets it to the last fetched head: a commit made but not
// pushed before a crash is discarded, and the work tree made equal to that
// head. Every other method opens on first use; calling Open at start-up
// surfaces errors early. Open does not fetch a reopened clone: call Fetch
// right after it to start from the remote's current head.
func (r *Repo) Open(ctx context.Context) error {
	if err := r.lockW(ctx); err != nil {
		return err
	}
	defer r.unlockW()
	return r.openLocked(ctx)
}

// ensureOpen opens the clone unless it is open already; an open clone
// stays open. Unlike Open it takes no lock when the clone is open.
func (r *Repo) ensureOpen(ctx context.Context) error {
	if r.open.Load() {
		return nil
	}
	return r.Open(ctx)
}

// Head returns the head of the remote branch as last fetched or pushed,
// the commit Read's tree holds. Once the clone is open it takes no lock
// and does no I/O, so it answers at once even while a fetch or push
// hangs; before, it opens the clone as Open does.
func (r *Repo) Head(ctx context.Context) (string, error) {
	if err := r.ensureOpen(ctx); err != nil {
		return "", err
	}
	return *r.published.Load(), nil
}

// Fetch fetches the branch, checks out its head and returns it. The
// network exchange runs without holding up Read and Head; only the
// checkout does.
func (r *Repo) Fetch(ctx context.Context) (string, error) {
	if err := r.lockW(ctx); err != nil {
		return "", err
	}
	defer r.unlockW()
	if err := r.openLocked(ctx); err != nil {
		return "", err
	}
	h, err := r.fetchLocked(ctx)
	if err == nil {
		err = r.local(func() error { return r.checkout(h) })
	}
	if err == nil {
		err = r.persist()
	}
	if err != nil {
		return "", r.restore(err)
	}
	return h.String(), nil
}

// Read runs fn with the path of the checked-out tree at head, the last
// fetched (or pushed) head of the branch. It waits for local steps of a
// change (checkout, the ChangeFuncs, commit), never for a fetch or push.
// fn must only read, and should load what it needs and return: those
// local steps wait until it does.
func (r *Repo) Read(ctx context.Context, fn func(dir, head string) error) error {
	if err := r.ensureOpen(ctx); err != nil {
		return err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return fn(r.treeDir, r.head.String())
}

func (r *Repo) openLocked(ctx context.Context) error {
	if r.repo != nil {
		return nil
	}
	cloned := false
	repo, err := git.PlainOpen(r.gitDir)
	switch {
	case errors.Is(err, git.ErrRepositoryNotExists):
		if !r.emptyOrMissing() {
			return fmt.Errorf("%w: %s is neither empty nor a clone made by mgo", ErrWorkdir, r.opts.Dir)
		}
		if err := r.cloneLocked(ctx); err != nil {
			return err
		}
		cloned = true
		repo, err = git.PlainOpen(r.gitDir)
	case err == nil:
		err = r.checkClone(repo)
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", r.gitDir, err)
	}
	r.repo = repo
	r.objs = newObjectStore(repo.Storer)
	r.loose = countLoose(repo)
	r.wtTree = plumbing.ZeroHash // unknown: compare every file
	r.remoteHead = plumbing.ZeroHash
	start := time.Now()
	h, err := r.trackingHead()
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		h, err = r.fetchLocked(ctx)
	}
	if err == nil {
		r.remoteHead = h
		err = r.local(func() error { return r.checkout(h) })
	}
	if err == nil {
		err = r.persist()
	}
	if err != nil {
		r.repo, r.objs = nil, nil
		return err
	}
	r.open.Store(true)
	msg := "reopened clone"
	if cloned {
		msg = "checked out"
	}
	r.log.Info(msg, "dir", r.opts.Dir, "head", h.String(), "duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// emptyOrMissing reports whether the working directory is missing or holds
// nothing but leftovers of interrupted clones (which it removes).
func (r *Repo) emptyOrMissing() bool {
	entries, err := os.ReadDir(r.opts.Dir)
	if os.IsNotExist(err) {
		return true
	}
	if err != nil {
		return false
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), cloneTempPrefix) {
			return false
		}
	}
	for _, e := range entries {
		os.RemoveAll(filepath.Join(r.opts.Dir, e.Name()))
	}
	return true
}

// checkClone accepts a bare repository whose origin is the configured URL.
func (r *Repo) checkClone(repo *git.Repository) error {
	cfg, err := repo.Config()
	if err != nil {
		return err
	}
	if !cfg.Core.IsBare {
		return fmt.Errorf("%w: %s is not a bare repository", ErrWorkdir, r.gitDir)
	}
	remote, ok := cfg.Remotes[remoteName]
	if !ok || len(remote.URLs) == 0 {
		return fmt.Errorf("%w: %s has no remote %s", ErrWorkdir, r.gitDir, remoteName)
	}
	if remote.URLs[0] != r.opts.URL {
		return fmt.Errorf("%w: %s is a clone of %s, not %s", ErrWorkdir, r.opts.Dir, remote.URLs[0], r.opts.URL)
	}
	return nil
}

const cloneTempPrefix = ".clone-"

// cloneLocked clones the branch into a bare repository in a temporary
// directory and renames it into place, so an interrupted clone never looks
// like a clone. A failed clone leaves nothing behind (the working
// directory is removed again when the clone created it). The work tree is
// checked out by openLocked.
func (r *Repo) cloneLocked(ctx context.Context) (err error) {
	if _, statErr := os.Stat(r.opts.Dir); os.IsNotExist(statErr) {
		defer func() {
			if err != nil {
				os.Remove(r.opts.Dir) // empty again: the temporary clone is gone
			}
		}()
	}
	if err := os.MkdirAll(r.opts.Dir, 0o755); err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	tmp, err := os.MkdirTemp(r.opts.Dir, cloneTempPrefix)
	if err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	defer os.RemoveAll(tmp)
	auth, err := r.opts.Auth.method(r.ep)
	if err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	ca, err := r.caBundle()
	if err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	start := time.Now()
	cctx, cancel := r.netContext(ctx, r.opts.cloneTimeout())
	defer cancel()
	_, err = git.PlainCloneContext(cctx, tmp, true, &git.CloneOptions{
		URL:           r.opts.URL,
		Auth:          auth,
		RemoteName:    remoteName,
		ReferenceName: r.branch,
		SingleBranch:  true,
		Tags:          git.NoTags,
		CABundle:      ca,
	})
	if err != nil {
		err = r.netErr(cctx, "clone", err)
	}
	r.noteNet(ctx, err)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, r.gitDir); err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	r.log.Info("cloned", "dir", r.gitDir, "duration", time.Since(start).Round(time.Millisecond))
	return nil
}

func (r *Repo) caBundle() ([]byte, error) {
	if r.opts.Auth.CAFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(r.opts.Auth.CAFile)
	if err != nil {
		return nil, fmt.Errorf("caFile: %w", err)
	}
	return b, nil
}

func (r *Repo) trackingHead() (plumbing.Hash, error) {
	ref, err := r.repo.Reference(r.remote, true)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("remote branch %s: %w", r.opts.Branch, err)
	}
	return ref.Hash(), nil
}

// netErr wraps an error of a network operation, marking authentication and
// host key failures. go-git's errors carry the URL at most, never the
// credentials (which are never in the URL).
func (r *Repo) netErr(ctx context.Context, op string, err error) error {
	var keyErr *xknownhosts.KeyError
	switch {
	case ctx.Err() != nil:
		// ctx is the operation's (netContext): its cause tells our timeout
		// (ErrTimeout) from the caller's deadline or cancellation.
		return fmt.Errorf("%s %s: %w", op, r.opts.URL, context.Cause(ctx))
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed),
		strings.Contains(err.Error(), "ssh: unable to authenticate"):
		return fmt.Errorf("%s %s: %w: %w", op, r.opts.URL, ErrAuth, err)
	case errors.As(err, &keyErr):
		if len(keyErr.Want) > 0 {
			return fmt.Errorf("%s %s: %w: the server's host key differs from the one in %s (%w)", op, r.opts.URL, ErrHostKey, r.opts.Auth.KnownHosts, err)
		}
		return fmt.Errorf("%s %s: %w: %s holds no key for the host (%w)", op, r.opts.URL, ErrHostKey, r.opts.Auth.KnownHosts, err)
	}
	return fmt.Errorf("%s %s: %w", op, r.opts.URL, err)
}

// countLoose returns the number of loose objects in repo.
func countLoose(repo *git.Repository) int {
	n := 0
	if los, ok := repo.Storer.(storer.LooseObjectStorer); ok {
		_ = los.ForEachObjectHash(func(plumbing.Hash) error { n++; return nil })
	}
	return n
}
