package deploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// snapshots are the private copies of the checked-out tree that syncs
// read, so that a sync may take as long as a rollout without blocking
// commits. A copy is kept when its sync is done and the next sync brings
// it up to date: it compares every file of the tree with what the copy
// holds (by content) and writes only those that differ, removing those
// gone, instead of creating every file of the repository again (with a
// thousand releases that was a third of the CPU time of a deploy).
type snapshots struct {
	dir  string
	mu   sync.Mutex
	free []*snapshot
}

// maxFreeSnapshots bounds the copies kept between syncs; syncs running at
// once beyond it make copies of their own.
const maxFreeSnapshots = 2

// snapshot is one copy of the tree, with what each path held when copied.
type snapshot struct {
	dir   string
	files map[string]entry // path relative to the tree -> what it is
}

// entry is what a path of a snapshot holds.
type entry struct {
	kind byte     // 'd' directory, 'f' regular file, 'l' symbolic link
	sum  [32]byte // of a file's content
	link string   // target of a link
}

// take returns a snapshot of src: a kept copy brought up to date, or a new
// one.
func (p *snapshots) take(src string) (*snapshot, error) {
	p.mu.Lock()
	var sn *snapshot
	if n := len(p.free); n > 0 {
		sn, p.free = p.free[n-1], p.free[:n-1]
	}
	p.mu.Unlock()
	if sn == nil {
		if err := os.MkdirAll(p.dir, 0o700); err != nil {
			return nil, err
		}
		dir, err := os.MkdirTemp(p.dir, "tree-")
		if err != nil {
			return nil, err
		}
		sn = &snapshot{dir: dir, files: map[string]entry{}}
	}
	if err := sn.update(src); err != nil {
		os.RemoveAll(sn.dir)
		return nil, err
	}
	return sn, nil
}

// give keeps a snapshot for the next sync, or removes it.
func (p *snapshots) give(sn *snapshot) {
	p.mu.Lock()
	if len(p.free) < maxFreeSnapshots {
		p.free = append(p.free, sn)
		sn = nil
	}
	p.mu.Unlock()
	if sn != nil {
		os.RemoveAll(sn.dir)
	}
}

// update makes the copy equal to src: regular files, directories and
// symbolic links (as links, never followed: the repo loader refuses links
// by name and must see them to do so); not .git, nor other types.
func (sn *snapshot) update(src string) error {
	seen := map[string]bool{}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return nil
		}
		if d.Name() == ".git" && d.IsDir() {
			return filepath.SkipDir
		}
		var want entry
		switch {
		case d.IsDir():
			want.kind = 'd'
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			want.kind, want.sum = 'f', sha256.Sum256(b)
			seen[rel] = true
			if sn.files[rel] == want {
				return nil
			}
			target := filepath.Join(sn.dir, rel)
			if have, ok := sn.files[rel]; ok && have.kind != 'f' {
				if err := os.RemoveAll(target); err != nil {
					return err
				}
			}
			if err := os.WriteFile(target, b, 0o600); err != nil {
				return err
			}
			sn.files[rel] = want
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			to, err := os.Readlink(p)
			if err != nil {
				return err
			}
			want.kind, want.link = 'l', to
		default:
			return nil // sockets, devices: not copied
		}
		seen[rel] = true
		if sn.files[rel] == want {
			return nil
		}
		target := filepath.Join(sn.dir, rel)
		if _, ok := sn.files[rel]; ok {
			if err := os.RemoveAll(target); err != nil {
				return err
			}
		}
		if want.kind == 'd' {
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
		} else if err := os.Symlink(want.link, target); err != nil {
			return err
		}
		sn.files[rel] = want
		return nil
	})
	if err != nil {
		return err
	}
	// What the tree no longer has, deepest first.
	var gone []string
	for rel := range sn.files {
		if !seen[rel] {
			gone = append(gone, rel)
		}
	}
	slices.SortFunc(gone, func(a, b string) int {
		if c := strings.Count(b, string(filepath.Separator)) - strings.Count(a, string(filepath.Separator)); c != 0 {
			return c
		}
		return bytes.Compare([]byte(a), []byte(b))
	})
	for _, rel := range gone {
		if err := os.RemoveAll(filepath.Join(sn.dir, rel)); err != nil {
			return err
		}
		delete(sn.files, rel)
	}
	return nil
}

// withSnapshot brings a private copy of the checked-out tree (at the last
// fetched head) up to date (snapshots) and runs fn on it, so fn may take
// as long as a rollout without blocking commits.
func (s *Service) withSnapshot(ctx context.Context, fn func(dir, head string) error) error {
	var head string
	var sn *snapshot
	err := s.cfg.Git.Read(ctx, func(src, h string) error {
		head = h
		var err error
		sn, err = s.snapshots.take(src)
		return err
	})
	if err != nil {
		return fmt.Errorf("snapshot of the repo: %w", err)
	}
	defer s.snapshots.give(sn)
	return fn(sn.dir, head)
}
