package gitrepo

import (
	"context"
	"fmt"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
)

// CommitSummary is who made a commit and what it says, for messages about
// a sync of a pushed change.
type CommitSummary struct {
	Hash string
	// Author is "Name <email>".
	Author  string
	Subject string
}

// Commit describes a commit of the clone. It reads the object store only
// (no network), under the same lock as Read, so it never waits for a
// fetch or push.
func (r *Repo) Commit(ctx context.Context, hash string) (CommitSummary, error) {
	if err := r.ensureOpen(ctx); err != nil {
		return CommitSummary{}, err
	}
	if !plumbing.IsHash(hash) {
		return CommitSummary{}, fmt.Errorf("commit %q: not a commit hash", hash)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, err := r.repo.CommitObject(plumbing.NewHash(hash))
	if err != nil {
		return CommitSummary{}, fmt.Errorf("commit %s: %w", hash, err)
	}
	subject, _, _ := strings.Cut(strings.TrimSpace(c.Message), "\n")
	return CommitSummary{Hash: hash, Author: fmt.Sprintf("%s <%s>", c.Author.Name, c.Author.Email), Subject: subject}, nil
}
