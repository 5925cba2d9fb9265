package gittest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ErrRejected is returned by Person.Push when the remote refused the push
// because its branch moved on (the push was not a fast-forward).
var ErrRejected = errors.New("push rejected")

// Person is another user of a repository: a clone made with the git CLI
// that commits under its own identity and pushes. Its methods return errors
// instead of failing the test, so a Person can work in its own goroutine.
type Person struct {
	Name, Email string
	// Dir is the clone's work tree.
	Dir    string
	branch string
}

// NewPerson clones url (a URL or the path of a bare repository) with the git
// CLI and commits as name <email>. env is added to the environment of every
// git command (e.g. GIT_SSH_COMMAND).
func NewPerson(t testing.TB, url, name, email string) *Person {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "clone")
	Git(t, "", "clone", "--quiet", "--branch", DefaultBranch, url, dir)
	return &Person{Name: name, Email: email, Dir: dir, branch: DefaultBranch}
}

func (p *Person) git(args ...string) (string, error) {
	return Run(p.Dir, nil, []string{
		"GIT_AUTHOR_NAME=" + p.Name, "GIT_AUTHOR_EMAIL=" + p.Email,
		"GIT_COMMITTER_NAME=" + p.Name, "GIT_COMMITTER_EMAIL=" + p.Email,
	}, args...)
}

// Sync fetches and resets the clone to the remote branch.
func (p *Person) Sync() error {
	if _, err := p.git("fetch", "--quiet", "origin", p.branch); err != nil {
		return err
	}
	_, err := p.git("reset", "--quiet", "--hard", "origin/"+p.branch)
	return err
}

// Commit writes files (path -> content; an empty content deletes the file),
// commits them with msg and returns the new commit.
func (p *Person) Commit(files map[string]string, msg string) (string, error) {
	for path, content := range files {
		full := filepath.Join(p.Dir, filepath.FromSlash(path))
		if content == "" {
			if err := os.Remove(full); err != nil {
				return "", err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	if _, err := p.git("add", "--all"); err != nil {
		return "", err
	}
	if _, err := p.git("commit", "--quiet", "--message", msg); err != nil {
		return "", err
	}
	return p.git("rev-parse", "HEAD")
}

// Push pushes the clone's branch (never forced). A rejection because the
// remote moved on is ErrRejected.
func (p *Person) Push() error {
	_, err := p.git("push", "--quiet", "origin", "HEAD:refs/heads/"+p.branch)
	if err != nil && (strings.Contains(err.Error(), "rejected") || strings.Contains(err.Error(), "failed to update ref") ||
		strings.Contains(err.Error(), "cannot lock ref")) {
		return fmt.Errorf("%w: %v", ErrRejected, err)
	}
	return err
}

// PushChange syncs the clone, commits files and pushes, starting again from
// the new remote head when the push is rejected, up to attempts times. It
// returns the commit that landed.
func (p *Person) PushChange(files map[string]string, msg string, attempts int) (string, error) {
	var err error
	for i := 0; i < attempts; i++ {
		if err = p.Sync(); err != nil {
			return "", err
		}
		var commit string
		if commit, err = p.Commit(files, msg); err != nil {
			return "", err
		}
		if err = p.Push(); err == nil {
			return commit, nil
		}
		if !errors.Is(err, ErrRejected) {
			return "", err
		}
	}
	return "", fmt.Errorf("after %d attempts: %w", attempts, err)
}
