package gitrepo

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// The work tree is a plain directory of files, without .git: the bare
// repository next to it holds the history. mgo checks trees out and reads
// changes back itself instead of keeping a git index:
//
//   - checkout applies the difference between the tree the directory is
//     known to hold and the target tree (a handful of files per deploy), or,
//     when the directory's state is unknown (after a ChangeFunc, a failure
//     or a restart), compares every file with the target and fixes what
//     differs;
//   - after a ChangeFunc, every file is hashed and compared with the base
//     tree, so a change is seen whatever its size or timestamp (no stat
//     heuristics), and the new tree is built from the result.
//
// Everything in the directory is content: there are no ignored files, and a
// .git anywhere in it is removed, never committed.

// entry is a file of a tree: a blob (regular, executable or symlink) or a
// gitlink (submodule commit).
type entry struct {
	hash plumbing.Hash
	mode filemode.FileMode
}

// treeFiles maps every non-directory path of tree to its entry. It also
// returns the hashes of tree and of every tree under it.
func (r *Repo) treeFiles(tree plumbing.Hash) (map[string]entry, map[plumbing.Hash]bool, error) {
	t, err := object.GetTree(r.objs, tree)
	if err != nil {
		return nil, nil, fmt.Errorf("tree %s: %w", tree, err)
	}
	files := map[string]entry{}
	trees := map[plumbing.Hash]bool{tree: true}
	w := object.NewTreeWalker(t, true, nil)
	defer w.Close()
	for {
		name, e, err := w.Next()
		if err == io.EOF {
			return files, trees, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("tree %s: %w", tree, err)
		}
		if e.Mode == filemode.Dir {
			trees[e.Hash] = true
		} else {
			files[name] = entry{hash: e.Hash, mode: e.Mode}
		}
	}
}

// scannedFile is a file found in the work tree.
type scannedFile struct {
	entry
	content []byte // blob content (a symlink's target)
}

// scan hashes every file under the work tree. Directories named .git are
// reported in junk.
func (r *Repo) scan() (files map[string]scannedFile, junk []string, err error) {
	files = map[string]scannedFile{}
	root := r.treeDir
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel := filepath.ToSlash(p[len(root)+1:])
		if strings.EqualFold(d.Name(), ".git") {
			junk = append(junk, rel)
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		var f scannedFile
		switch t := d.Type(); {
		case t&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			f.mode, f.content = filemode.Symlink, []byte(target)
		case t.IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			f.mode = filemode.Regular
			if info.Mode().Perm()&0o111 != 0 {
				f.mode = filemode.Executable
			}
			if f.content, err = os.ReadFile(p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unsupported file type %v", rel, t)
		}
		f.hash = plumbing.ComputeHash(plumbing.BlobObject, f.content)
		files[rel] = f
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("scan work tree: %w", err)
	}
	return files, junk, nil
}

// checkout makes the work tree equal to commit's tree and commit the
// branch head (the local branch ref is moved only to commits in the
// repository, not to pending ones).
func (r *Repo) checkout(commit plumbing.Hash) error {
	c, err := object.GetCommit(r.objs, commit)
	if err != nil {
		return fmt.Errorf("checkout %s: %w", commit, err)
	}
	if !r.objs.isPending(commit) {
		if err := r.setBranch(commit); err != nil {
			return fmt.Errorf("checkout: %w", err)
		}
	}
	if r.wtTree != c.TreeHash {
		if r.wtTree.IsZero() {
			err = r.restoreTree(c.TreeHash)
		} else {
			err = r.switchTree(r.wtTree, c.TreeHash)
		}
		if err != nil {
			r.wtTree = plumbing.ZeroHash
			return fmt.Errorf("checkout %s: %w", commit, err)
		}
	}
	r.wtTree = c.TreeHash
	r.head = commit
	return nil
}

// setBranch points the local branch (and HEAD) at commit, writing only
// what differs.
func (r *Repo) setBranch(commit plumbing.Hash) error {
	if ref, err := r.repo.Storer.Reference(plumbing.HEAD); err != nil || ref.Type() != plumbing.SymbolicReference || ref.Target() != r.branch {
		if err := r.repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, r.branch)); err != nil {
			return err
		}
	}
	if ref, err := r.repo.Storer.Reference(r.branch); err == nil && ref.Hash() == commit {
		return nil
	}
	return r.repo.Storer.SetReference(plumbing.NewHashReference(r.branch, commit))
}

// switchTree turns the work tree, known to hold tree from, into tree to by
// applying their difference.
func (r *Repo) switchTree(from, to plumbing.Hash) error {
	a, err := object.GetTree(r.objs, from)
	if err != nil {
		return err
	}
	b, err := object.GetTree(r.objs, to)
	if err != nil {
		return err
	}
	changes, err := object.DiffTree(a, b)
	if err != nil {
		return err
	}
	// Removals first, so a file can become a directory and back.
	for _, c := range changes {
		if c.From.Name != "" && (c.To.Name == "" || c.To.Name != c.From.Name) {
			if err := r.removeFile(c.From.Name); err != nil {
				return err
			}
		}
	}
	for _, c := range changes {
		if c.To.Name != "" {
			if err := r.writeFile(c.To.Name, entry{hash: c.To.TreeEntry.Hash, mode: c.To.TreeEntry.Mode}); err != nil {
				return err
			}
		}
	}
	return nil
}

// restoreTree compares every file of the work tree with tree and fixes what
// differs: extra files and directories removed, missing or changed ones
// written.
func (r *Repo) restoreTree(tree plumbing.Hash) error {
	if err := os.MkdirAll(r.treeDir, 0o755); err != nil {
		return err
	}
	want, _, err := r.treeFiles(tree)
	if err != nil {
		return err
	}
	have, junk, err := r.scan()
	if err != nil {
		return err
	}
	for _, p := range junk {
		if err := os.RemoveAll(filepath.Join(r.treeDir, filepath.FromSlash(p))); err != nil {
			return err
		}
	}
	for p := range have {
		if _, ok := want[p]; !ok {
			if err := r.removeFile(p); err != nil {
				return err
			}
		}
	}
	for p, e := range want {
		if h, ok := have[p]; ok && h.entry == e {
			continue
		}
		if err := r.writeFile(p, e); err != nil {
			return err
		}
	}
	return r.removeEmptyDirs(want)
}

// removeEmptyDirs removes directories holding no file (gitlink directories
// excepted).
func (r *Repo) removeEmptyDirs(want map[string]entry) error {
	var dirs []string
	err := filepath.WalkDir(r.treeDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != r.treeDir {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- { // deepest first
		rel := filepath.ToSlash(dirs[i][len(r.treeDir)+1:])
		if e, ok := want[rel]; ok && e.mode == filemode.Submodule {
			continue
		}
		os.Remove(dirs[i]) // fails, as it should, when not empty
	}
	return nil
}

// removeFile removes a file of the work tree and the directories it leaves
// empty.
func (r *Repo) removeFile(rel string) error {
	full, err := r.safePath(rel)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(full); err != nil {
		return err
	}
	for d := filepath.Dir(full); d != r.treeDir && strings.HasPrefix(d, r.treeDir); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			break
		}
	}
	return nil
}

// writeFile writes the blob of e at rel (a directory for a gitlink).
func (r *Repo) writeFile(rel string, e entry) error {
	full, err := r.safePath(rel)
	if err != nil {
		return err
	}
	if e.mode == filemode.Submodule {
		return os.MkdirAll(full, 0o755)
	}
	if err := r.writeBlob(full, e.hash, e.mode); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	return nil
}

// writeBlob writes the blob hash at full, replacing what is there, as a
// file of mode (regular, executable) or a symlink to the blob's content.
func (r *Repo) writeBlob(full string, hash plumbing.Hash, mode filemode.FileMode) error {
	var perm os.FileMode
	switch mode {
	case filemode.Regular, filemode.Deprecated:
		perm = 0o644
	case filemode.Executable:
		perm = 0o755
	case filemode.Symlink:
	default:
		return fmt.Errorf("cannot write an entry of mode %s", mode)
	}
	blob, err := object.GetBlob(r.objs, hash)
	if err != nil {
		return err
	}
	rd, err := blob.Reader()
	if err != nil {
		return err
	}
	content, err := io.ReadAll(rd)
	rd.Close()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	if err := os.RemoveAll(full); err != nil {
		return err
	}
	if mode == filemode.Symlink {
		return os.Symlink(string(content), full)
	}
	return os.WriteFile(full, content, perm)
}

// safePath returns the absolute path of rel in the work tree, refusing a
// path that leaves it or goes through a symlink (a tree could otherwise
// make mgo write outside the work tree).
func (r *Repo) safePath(rel string) (string, error) {
	clean := path.Clean(rel)
	if rel == "" || clean != rel || path.IsAbs(rel) || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("refusing path %q", rel)
	}
	full := r.treeDir
	parts := strings.Split(rel, "/")
	for _, part := range parts[:len(parts)-1] {
		full = filepath.Join(full, part)
		fi, err := os.Lstat(full)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return "", fmt.Errorf("refusing path %q: %s is a symlink", rel, full)
		}
	}
	return filepath.Join(r.treeDir, filepath.FromSlash(rel)), nil
}

// commitTree records the work tree as a commit on top of r.head, in memory
// (see objects) until it is pushed. It returns the zero hash when the tree
// equals the head's. The work tree then holds exactly the new commit's
// tree.
func (r *Repo) commitTree(msg string, author, committer object.Signature) (plumbing.Hash, error) {
	parent, err := object.GetCommit(r.objs, r.head)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	base, known, err := r.treeFiles(parent.TreeHash)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	files, junk, err := r.scan()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	for _, p := range junk {
		if err := os.RemoveAll(filepath.Join(r.treeDir, filepath.FromSlash(p))); err != nil {
			return plumbing.ZeroHash, err
		}
	}
	next := make(map[string]entry, len(files))
	for p, f := range files {
		if b, ok := base[p]; !ok || b != f.entry {
			if err := r.storeBlob(f); err != nil {
				return plumbing.ZeroHash, fmt.Errorf("%s: %w", p, err)
			}
		}
		next[p] = f.entry
	}
	// Gitlinks are not files; keep them unless a file took their place.
	for p, e := range base {
		if _, ok := next[p]; !ok && e.mode == filemode.Submodule {
			next[p] = e
		}
	}
	tree, err := r.buildTree(next, known)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if tree == parent.TreeHash {
		r.wtTree = tree
		return plumbing.ZeroHash, nil
	}
	c := &object.Commit{
		Author:       author,
		Committer:    committer,
		Message:      msg,
		TreeHash:     tree,
		ParentHashes: []plumbing.Hash{parent.Hash},
	}
	obj := r.objs.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	h, err := r.objs.SetEncodedObject(obj)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	r.head, r.wtTree = h, tree
	return h, nil
}

// storeBlob stores a file's content (in memory until pushed).
func (r *Repo) storeBlob(f scannedFile) error {
	obj := r.objs.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	obj.SetSize(int64(len(f.content)))
	w, err := obj.Writer()
	if err != nil {
		return err
	}
	if _, err := w.Write(f.content); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	_, err = r.objs.SetEncodedObject(obj)
	return err
}

// buildTree stores the tree objects for files (path -> entry) that are not
// among known (trees the repository holds) and returns the root tree's
// hash.
func (r *Repo) buildTree(files map[string]entry, known map[plumbing.Hash]bool) (plumbing.Hash, error) {
	type dir struct {
		files map[string]entry
		dirs  map[string]*dir
	}
	newDir := func() *dir { return &dir{files: map[string]entry{}, dirs: map[string]*dir{}} }
	root := newDir()
	for p, e := range files {
		d := root
		parts := strings.Split(p, "/")
		for _, part := range parts[:len(parts)-1] {
			sub, ok := d.dirs[part]
			if !ok {
				sub = newDir()
				d.dirs[part] = sub
			}
			d = sub
		}
		d.files[parts[len(parts)-1]] = e
	}
	var write func(d *dir) (plumbing.Hash, error)
	write = func(d *dir) (plumbing.Hash, error) {
		var entries []object.TreeEntry
		for name, e := range d.files {
			if _, clash := d.dirs[name]; clash {
				return plumbing.ZeroHash, fmt.Errorf("%s is both a file and a directory", name)
			}
			entries = append(entries, object.TreeEntry{Name: name, Mode: e.mode, Hash: e.hash})
		}
		for name, sub := range d.dirs {
			h, err := write(sub)
			if err != nil {
				return plumbing.ZeroHash, err
			}
			entries = append(entries, object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h})
		}
		// Git orders entries by name, a directory's name as if it ended in '/'.
		key := func(e object.TreeEntry) string {
			if e.Mode == filemode.Dir {
				return e.Name + "/"
			}
			return e.Name
		}
		sort.Slice(entries, func(i, j int) bool { return key(entries[i]) < key(entries[j]) })
		t := &object.Tree{Entries: entries}
		obj := r.objs.NewEncodedObject()
		if err := t.Encode(obj); err != nil {
			return plumbing.ZeroHash, err
		}
		if known[obj.Hash()] {
			return obj.Hash(), nil
		}
		return r.objs.SetEncodedObject(obj)
	}
	return write(root)
}
