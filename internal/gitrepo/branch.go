package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// ErrBranchExists is wrapped by PushBranch's error when the remote already
// has the branch with a commit whose tree differs from the change's.
var ErrBranchExists = errors.New("the remote branch already exists with other content")

// BranchResult is the outcome of PushBranch.
type BranchResult struct {
	// Branch is the branch name as given (without refs/heads/).
	Branch string `json:"branch"`
	// Changed reports whether the change changed anything; when false
	// nothing was committed nor pushed.
	Changed bool `json:"changed"`
	// Commit is the branch's commit on the remote ("" when nothing
	// changed): the one pushed, or the one found there with the same tree.
	Commit string `json:"commit,omitempty"`
	// Base is the default branch head the commit was made on.
	Base string `json:"base"`
}

// PushBranch commits change (as Apply does: author info.Author, committer
// Options.Committer) on top of the fetched head of the default branch and
// pushes that one commit to a new branch refs/heads/<branch> of the remote.
// The default branch, local and remote, does not move, and the work tree is
// back at its head afterwards whatever happens.
//
// It may be repeated: when the remote already has the branch at a commit
// whose tree equals the change's, that commit is the result. A remote
// branch with other content is an error wrapping ErrBranchExists (the
// existing commit is fetched when the clone lacks it). When change
// changes nothing, nothing is pushed and Changed is false.
func (r *Repo) PushBranch(ctx context.Context, branch string, change ChangeFunc, info CommitInfo) (BranchResult, error) {
	res := BranchResult{Branch: branch}
	if err := ValidBranchName(branch); err != nil {
		return res, err
	}
	ref := plumbing.NewBranchReferenceName(branch)
	if ref == r.branch {
		return res, fmt.Errorf("invalid branch name %q: it is the default branch", branch)
	}
	p, err := r.prepare(Change{Func: change, Info: info})
	if err != nil {
		return res, err
	}
	if err := r.lockW(ctx); err != nil {
		return res, err
	}
	defer r.unlockW()
	if err := r.openLocked(ctx); err != nil {
		return res, err
	}
	base, err := r.fetchLocked(ctx)
	if err != nil {
		return res, r.restore(err)
	}
	res.Base = base.String()
	var tip plumbing.Hash
	err = r.local(func() error {
		if err := r.resetTo(base, false); err != nil {
			return err
		}
		r.objs.drop()
		if tip, err = r.commitOne(&p); err != nil || tip.IsZero() {
			return err
		}
		return r.checkout(base)
	})
	if err != nil {
		return res, r.restore(err)
	}
	if tip.IsZero() {
		return res, r.restore(r.persist())
	}
	res.Changed = true
	err = r.pushRef(ctx, ref, plumbing.ZeroHash, base, tip)
	if exists, ok := errors.AsType[errRefExists](err); ok {
		if r.objs.HasEncodedObject(exists.commit) != nil {
			// Pushed by an earlier clone: fetch it to compare.
			if _, ferr := r.fetchRef(ctx, ref); ferr != nil {
				return res, r.restore(fmt.Errorf("push %s: %s exists: %w", r.opts.URL, branch, ferr))
			}
		}
		if r.sameTree(exists.commit, tip) {
			r.log.Info("branch already pushed", "branch", branch, "commit", exists.commit.String())
			res.Commit = exists.commit.String()
			return res, r.restore(nil)
		}
		err = fmt.Errorf("push %s: %w: %s is at %s", r.opts.URL, ErrBranchExists, branch, exists.commit)
	}
	if err != nil {
		res.Changed = false
		return res, r.restore(err)
	}
	res.Commit = tip.String()
	r.log.Info("pushed branch", "branch", branch, "commit", res.Commit, "base", res.Base)
	// Keep the commit, so that a repeat finds its tree; the default branch
	// stays at base.
	return res, r.restore(r.persist())
}

// sameTree reports whether commit a (which may be missing locally) has the
// tree of commit b.
func (r *Repo) sameTree(a, b plumbing.Hash) bool {
	ca, err := object.GetCommit(r.objs, a)
	if err != nil {
		return false
	}
	cb, err := object.GetCommit(r.objs, b)
	return err == nil && ca.TreeHash == cb.TreeHash
}

// ValidBranchName checks name (without refs/heads/) against the rules of
// git check-ref-format for a branch: no "..", "@{", "//", spaces, control
// characters, any of ~^:?*[\, no leading '-' or '/', no trailing '/' or
// '.', no component starting with '.' or ending in ".lock", not "@".
func ValidBranchName(name string) error {
	bad := func(why string) error { return fmt.Errorf("invalid branch name %q: %s", name, why) }
	switch {
	case name == "":
		return bad("empty")
	case len(name) > 255:
		return bad("longer than 255 bytes")
	case name == "@":
		return bad(`it is "@"`)
	case strings.HasPrefix(name, "-"):
		return bad("starts with '-'")
	case strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/"):
		return bad("starts or ends with '/'")
	case strings.HasSuffix(name, "."):
		return bad("ends with '.'")
	case strings.Contains(name, ".."):
		return bad(`contains ".."`)
	case strings.Contains(name, "@{"):
		return bad(`contains "@{"`)
	case strings.Contains(name, "//"):
		return bad(`contains "//"`)
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f || c == ' ' || strings.ContainsRune(`~^:?*[\`, c) {
			return bad(fmt.Sprintf("contains %q", c))
		}
	}
	for comp := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(comp, ".") || strings.HasSuffix(comp, ".lock") {
			return bad(fmt.Sprintf("component %q starts with '.' or ends with \".lock\"", comp))
		}
	}
	return plumbing.NewBranchReferenceName(name).Validate()
}
