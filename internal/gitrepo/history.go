package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// FileChange is the commit that last changed a file on the branch.
type FileChange struct {
	Commit      string
	AuthorName  string
	AuthorEmail string
	Time        time.Time
	Summary     string
}

// ErrNotInHistory is returned by LastChanges when head is not (yet) in
// the object store that readers see; a later call finds it.
var ErrNotInHistory = errors.New("commit not in the clone yet")

// LastChanges finds, for each path, the newest commit reachable from head
// along first parents (the commits that brought changes to the branch)
// whose tree differs from its parent's at that path. It looks at most at
// maxCommits commits; paths not found by then are absent from the answer.
//
// It reads the clone's object store through its own handle, without any
// of the Repo's locks: objects a fetch or push is still holding in memory
// are not visible yet, and ErrNotInHistory says so.
func (r *Repo) LastChanges(ctx context.Context, head string, paths []string, maxCommits int) (map[string]FileChange, error) {
	if err := r.ensureOpen(ctx); err != nil {
		return nil, err
	}
	if !fullHash.MatchString(head) {
		return nil, fmt.Errorf("last changes: %q is not a full commit hash", truncate(head, 80))
	}
	repo, err := git.PlainOpen(r.gitDir)
	if err != nil {
		return nil, fmt.Errorf("last changes: %w", err)
	}
	cur, err := object.GetCommit(repo.Storer, plumbing.NewHash(head))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNotInHistory, head, err)
	}
	out := map[string]FileChange{}
	left := map[string]bool{}
	for _, p := range paths {
		left[p] = true
	}
	entry := func(t *object.Tree, p string) plumbing.Hash {
		if t == nil {
			return plumbing.ZeroHash
		}
		e, err := t.FindEntry(p)
		if err != nil {
			return plumbing.ZeroHash
		}
		return e.Hash
	}
	for n := 0; cur != nil && len(left) > 0 && n < maxCommits; n++ {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		tree, err := cur.Tree()
		if err != nil {
			return out, fmt.Errorf("last changes: commit %s: %w", cur.Hash, err)
		}
		var parent *object.Commit
		var ptree *object.Tree
		if cur.NumParents() > 0 {
			if parent, err = cur.Parent(0); err != nil {
				return out, fmt.Errorf("last changes: parent of %s: %w", cur.Hash, err)
			}
			if ptree, err = parent.Tree(); err != nil {
				return out, fmt.Errorf("last changes: commit %s: %w", parent.Hash, err)
			}
		}
		if ptree == nil || ptree.Hash != tree.Hash {
			for p := range left {
				if h := entry(tree, p); h != entry(ptree, p) {
					if !h.IsZero() {
						out[p] = FileChange{Commit: cur.Hash.String(), AuthorName: cur.Author.Name, AuthorEmail: cur.Author.Email,
							Time: cur.Author.When, Summary: ParseMessage(cur.Message).Summary}
					}
					delete(left, p)
				}
			}
		}
		cur = parent
	}
	return out, nil
}

// WebURL is the repository's URL without credentials, as https when it
// is an SSH or scp-like URL of a host, for links to commits; "" for a
// local repository.
func (r *Repo) WebURL() string { return webURL(r.opts.URL) }

func webURL(raw string) string {
	s := strings.TrimSuffix(strings.TrimSpace(raw), "/")
	if !strings.Contains(s, "://") {
		// scp-like: user@host:path
		at := strings.LastIndex(s, "@")
		colon := strings.Index(s, ":")
		if colon <= at+1 {
			return ""
		}
		s = "ssh://" + s[at+1:colon] + "/" + strings.TrimPrefix(s[colon+1:], "/")
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return ""
	}
	switch u.Scheme {
	case "http", "https":
	case "ssh", "git":
		u.Scheme = "https"
		u.Host = u.Hostname()
	default:
		return ""
	}
	u.User = nil
	u.RawQuery, u.Fragment = "", ""
	u.Path = strings.TrimSuffix(u.Path, ".git")
	return u.String()
}
