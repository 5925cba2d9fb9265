package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

var (
	// ErrRevertConflict: files the reverted commit changed were changed
	// again since. The error is a *RevertConflictError naming them.
	ErrRevertConflict = errors.New("revert conflict")
	// ErrUnknownCommit: the commit to revert is not a full hash of a commit
	// on the branch.
	ErrUnknownCommit = errors.New("unknown commit")
)

// RevertConflictError names the files that stop a revert.
type RevertConflictError struct {
	Commit string
	Files  []string
}

func (e *RevertConflictError) Error() string {
	return fmt.Sprintf("revert conflict: files changed by %s were changed again since: %s", e.Commit, strings.Join(e.Files, ", "))
}

// Is makes errors.Is(err, ErrRevertConflict) true.
func (e *RevertConflictError) Is(target error) bool { return target == ErrRevertConflict }

var fullHash = regexp.MustCompile(`^[0-9a-fA-F]{40}$`)

// revertFile is one path the reverted commit changed: its version before
// (want, nil when the commit added it) and after (had, nil when it deleted
// it).
type revertFile struct {
	path      string
	want, had *object.TreeEntry
}

// Revert makes a new commit that undoes commit (a full hash of a commit on
// the branch, not a merge) on the current head: files it added are
// removed, files it deleted restored, files it modified restored to their
// parent version. Files it changed that were changed again since make it
// fail with a *RevertConflictError (ErrRevertConflict); files already back
// at their parent version are left alone, and when all are, nothing is
// committed (Result.Changed is false). info.Summary defaults to
// `Revert "<summary of commit>"`; the body starts with "This reverts
// commit <hash>." and a Reverts trailer is added. Pushing follows Apply's
// rules (the conflict check is redone on the new head after a lost race).
func (r *Repo) Revert(ctx context.Context, commit string, info CommitInfo) (Result, error) {
	if err := r.lockW(ctx); err != nil {
		return Result{}, err
	}
	defer r.unlockW()
	if err := r.openLocked(ctx); err != nil {
		return Result{}, err
	}
	base, err := r.fetchLocked(ctx)
	if err != nil {
		return Result{}, r.restore(err)
	}
	res := Result{Head: base.String()}
	target, files, err := r.revertPlan(commit, base)
	if err != nil {
		return res, err
	}
	orig := ParseMessage(target.Message)
	if info.Summary == "" {
		info.Summary = `Revert "` + truncate(orig.Summary, maxSummaryLen-20) + `"`
	}
	info.Body = strings.TrimSpace("This reverts commit " + target.Hash.String() + ".\n\n" + info.Body)
	info.Trailers.Reverts = target.Hash.String()
	p, err := r.prepare(Change{Func: func(dir string) (bool, error) {
		return r.revertFiles(dir, target.Hash.String(), files)
	}, Info: info})
	if err != nil {
		return res, err
	}
	br := BatchResult{Changes: make([]ChangeResult, 1)}
	err = r.commitAndPush(ctx, &br, []prepared{p}, base)
	res = Result{Head: br.Head, Attempts: br.Attempts, Changed: br.Changes[0].Changed, Commit: br.Changes[0].Commit}
	if err == nil {
		err = br.Changes[0].Err
	}
	return res, err
}

// revertPlan finds commit on the branch at base and the files it changed.
func (r *Repo) revertPlan(commit string, base plumbing.Hash) (*object.Commit, []revertFile, error) {
	if !fullHash.MatchString(commit) {
		return nil, nil, fmt.Errorf("%w: %q is not a full commit hash", ErrUnknownCommit, truncate(commit, 80))
	}
	target, err := object.GetCommit(r.objs, plumbing.NewHash(commit))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrUnknownCommit, commit, err)
	}
	head, err := object.GetCommit(r.objs, base)
	if err != nil {
		return nil, nil, fmt.Errorf("revert: %w", err)
	}
	if ok, err := target.IsAncestor(head); err != nil || !ok {
		return nil, nil, fmt.Errorf("%w: %s is not on branch %s", ErrUnknownCommit, commit, r.opts.Branch)
	}
	if target.NumParents() > 1 {
		return nil, nil, fmt.Errorf("revert %s: a merge commit cannot be reverted", commit)
	}
	after, err := target.Tree()
	if err != nil {
		return nil, nil, fmt.Errorf("revert: %w", err)
	}
	before := &object.Tree{}
	if target.NumParents() == 1 {
		parent, err := target.Parent(0)
		if err != nil {
			return nil, nil, fmt.Errorf("revert: %w", err)
		}
		if before, err = parent.Tree(); err != nil {
			return nil, nil, fmt.Errorf("revert: %w", err)
		}
	}
	changes, err := object.DiffTree(before, after)
	if err != nil {
		return nil, nil, fmt.Errorf("revert: %w", err)
	}
	var files []revertFile
	for _, c := range changes {
		f := revertFile{path: c.From.Name}
		if f.path == "" {
			f.path = c.To.Name
		}
		if c.From.Name != "" {
			e := c.From.TreeEntry
			f.want = &e
		}
		if c.To.Name != "" {
			e := c.To.TreeEntry
			f.had = &e
		}
		files = append(files, f)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	return target, files, nil
}

func sameEntry(a, b *object.TreeEntry) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Hash == b.Hash && a.Mode == b.Mode
}

// revertFiles is the revert's ChangeFunc: it compares each file at the
// checked-out head with the reverted commit's version and writes the
// parent's version.
func (r *Repo) revertFiles(dir, commit string, files []revertFile) (bool, error) {
	head, err := object.GetCommit(r.objs, r.head)
	if err != nil {
		return false, err
	}
	tree, err := head.Tree()
	if err != nil {
		return false, err
	}
	var conflicts []string
	var todo []revertFile
	for _, f := range files {
		var cur *object.TreeEntry
		if e, err := tree.FindEntry(f.path); err == nil {
			cur = e
		} else if !errors.Is(err, object.ErrEntryNotFound) && !errors.Is(err, object.ErrDirectoryNotFound) {
			return false, err
		}
		switch {
		case sameEntry(cur, f.want):
			// Already back at the parent version.
		case sameEntry(cur, f.had):
			todo = append(todo, f)
		default:
			conflicts = append(conflicts, f.path)
		}
	}
	if len(conflicts) > 0 {
		return false, &RevertConflictError{Commit: commit, Files: conflicts}
	}
	for _, f := range todo {
		if err := r.writeEntry(dir, f.path, f.want); err != nil {
			return false, fmt.Errorf("revert %s: %w", f.path, err)
		}
	}
	return len(todo) > 0, nil
}

// writeEntry makes path in dir hold the blob e (or removes it when e is
// nil, with directories left empty).
func (r *Repo) writeEntry(dir, path string, e *object.TreeEntry) error {
	full := filepath.Join(dir, filepath.FromSlash(path))
	if e == nil {
		if err := os.Remove(full); err != nil {
			return err
		}
		for d := filepath.Dir(full); d != dir && strings.HasPrefix(d, dir); d = filepath.Dir(d) {
			if os.Remove(d) != nil { // not empty
				break
			}
		}
		return nil
	}
	return r.writeBlob(full, e.Hash, e.Mode)
}
