package values

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/mygitops/mgo/internal/repo"
)

// EditCluster sets img in every values file of installations/<cluster>/
// under the repository at root whose header lists triggerRepo. All files are
// edited in memory first; only when every edit succeeded are the changed
// ones written, each atomically (temporary file and rename, keeping the file
// mode). It returns the changed files, relative to root and sorted; none when
// all of them already had that image.
//
// An unknown cluster wraps repo.ErrUnknownCluster and a trigger repo no file
// lists wraps repo.ErrTriggerRepoNotListed; both say what was searched. Edit
// errors name the file and line (see SetImage); all of them are reported.
func EditCluster(root, cluster, triggerRepo string, img Image) (changed []string, err error) {
	return EditClusterCached(root, cluster, triggerRepo, img, nil)
}

// EditClusterCached is EditCluster reading the headers of the values files
// through cache (see repo.ParseCache); nil reads every file anew.
func EditClusterCached(root, cluster, triggerRepo string, img Image, cache *repo.ParseCache) (changed []string, err error) {
	if err := img.Validate(); err != nil {
		return nil, err
	}
	r, err := repo.Load(root, repo.LoadOptions{Cluster: cluster, Cache: cache})
	if err != nil {
		return nil, err
	}
	releases, err := r.ReleasesForTrigger(cluster, triggerRepo)
	if err != nil {
		if errors.Is(err, repo.ErrTriggerRepoNotListed) {
			// A values file mgo refused to read (a link, too large, not
			// YAML) may be the one that lists it: say so.
			if unread := unreadable(r, cluster); len(unread) > 0 {
				return nil, errors.Join(append(unread, err)...)
			}
		}
		return nil, err
	}
	var (
		writes []pendingWrite
		errs   []error
	)
	for _, rl := range releases {
		w, changed, err := editFile(root, rl.File, triggerRepo, img)
		switch {
		case err != nil:
			errs = append(errs, err)
		case changed:
			writes = append(writes, w)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := writeAll(writes); err != nil {
		return nil, err
	}
	for _, w := range writes {
		changed = append(changed, w.rel)
	}
	slices.Sort(changed)
	return changed, nil
}

// unreadable returns an ErrCannotEdit error for each problem of a values
// file of the cluster whose header could not be read at all.
func unreadable(r *repo.Repo, cluster string) []error {
	var errs []error
	for _, rl := range r.Clusters[cluster].Releases {
		if rl.Valid || rl.Header.Line != 0 {
			continue
		}
		for _, p := range r.Problems.Errors().InFile(rl.File) {
			errs = append(errs, &Error{File: p.File, Line: p.Line, Msg: p.Message, Err: ErrCannotEdit})
		}
	}
	return errs
}

// pendingWrite is an edited file waiting to be written.
type pendingWrite struct {
	rel, path string
	data      []byte
	mode      fs.FileMode
	tmp       string
}

func editFile(root, rel, triggerRepo string, img Image) (pendingWrite, bool, error) {
	p := filepath.Join(root, filepath.FromSlash(rel))
	fi, err := os.Lstat(p)
	if err != nil {
		return pendingWrite{}, false, err
	}
	if !fi.Mode().IsRegular() {
		return pendingWrite{}, false, &Error{File: rel, Err: ErrCannotEdit,
			Msg: "not a regular file (a symbolic link?); mgo edits values files only in place"}
	}
	if fi.Size() > repo.MaxValuesFileSize {
		return pendingWrite{}, false, &Error{File: rel, Err: ErrCannotEdit,
			Msg: fmt.Sprintf("the file is %d bytes, larger than the limit of %d", fi.Size(), repo.MaxValuesFileSize)}
	}
	src, err := os.ReadFile(p)
	if err != nil {
		return pendingWrite{}, false, err
	}
	out, changed, err := SetImage(src, triggerRepo, img)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e2 := *e
			e2.File = rel
			return pendingWrite{}, false, &e2
		}
		return pendingWrite{}, false, fmt.Errorf("%s: %w", rel, err)
	}
	return pendingWrite{rel: rel, path: p, data: out, mode: fi.Mode().Perm()}, changed, nil
}

// writeAll writes every file to a temporary file beside it first and
// renames them into place only when all were written.
func writeAll(ws []pendingWrite) error {
	cleanup := func() {
		for _, w := range ws {
			if w.tmp != "" {
				os.Remove(w.tmp)
			}
		}
	}
	for i := range ws {
		tmp, err := writeTemp(ws[i])
		if err != nil {
			cleanup()
			return fmt.Errorf("%s: writing: %w", ws[i].rel, err)
		}
		ws[i].tmp = tmp
	}
	for i := range ws {
		if err := os.Rename(ws[i].tmp, ws[i].path); err != nil {
			cleanup()
			var done []string
			for _, w := range ws[:i] {
				done = append(done, w.rel)
			}
			return fmt.Errorf("%s: writing: %w (already written: %s)", ws[i].rel, err, listOrNone(done))
		}
		ws[i].tmp = ""
	}
	return nil
}

func writeTemp(w pendingWrite) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(w.path), "."+filepath.Base(w.path)+".*.tmp")
	if err != nil {
		return "", err
	}
	_, err = f.Write(w.data)
	if err == nil {
		err = f.Chmod(w.mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}
