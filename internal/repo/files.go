package repo

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Size limits of the files mgo reads from the repository. A file over its
// limit is a problem naming it, and is not read at all.
const (
	// MaxValuesFileSize bounds values and secrets files and mygitops.yaml.
	// Helm keeps each release, values included, in one Secret, which the
	// API server limits to 1 MiB; a larger values file could not be
	// installed anyway. Real ones are a few KiB.
	MaxValuesFileSize = 1 << 20
	// MaxRawFileSize bounds a raw manifest file. Each object is limited to
	// about 1.5 MiB by etcd, but a file holds several (CRD bundles run to a
	// few MiB).
	MaxRawFileSize = 8 << 20
	// maxChartFiles bounds the walk of a chart kept in the repository for
	// symbolic links.
	maxChartFiles = 10000
)

// errSymlink is the message for a symbolic link anywhere mgo reads: a link
// in the repository can point anywhere on the mgo host (its service
// account token, its git credentials), so mgo follows none.
const errSymlink = "is a symbolic link; mgo follows no links in the gitops repository (one could point outside it): commit the file itself"

// refusal is a file mgo will not read; its message is a sentence of its own.
type refusal struct{ msg string }

func (r *refusal) Error() string { return r.msg }

func refusef(format string, args ...any) error { return &refusal{fmt.Sprintf(format, args...)} }

// readRepoFile reads rel (slash-separated, relative to root) if it is a
// regular file of at most limit bytes, never following a symbolic link and
// never leaving root. Errors are refusals (a link, not a regular file, too
// large) or the operating system's.
func readRepoFile(root, rel string, limit int64) ([]byte, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	name := filepath.FromSlash(rel)
	fi, err := r.Lstat(name)
	if err != nil {
		return nil, err
	}
	if err := checkFileInfo(fi, limit); err != nil {
		return nil, err
	}
	f, err := r.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The file may have changed since Lstat (a link within root is
	// followed by Open, one leaving root is refused): check what was opened.
	if fi, err = f.Stat(); err != nil {
		return nil, err
	}
	if err := checkFileInfo(fi, limit); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, refusef("the file is larger than the limit of %s", sizeName(limit))
	}
	return b, nil
}

func checkFileInfo(fi fs.FileInfo, limit int64) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return refusef("%s", errSymlink)
	case !fi.Mode().IsRegular():
		return refusef("not a regular file")
	case fi.Size() > limit:
		return refusef("the file is %d bytes, larger than the limit of %s", fi.Size(), sizeName(limit))
	}
	return nil
}

func sizeName(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// readProblem reports a failed readRepoFile as a problem of rel.
func readProblem(rel string, err error, ps *problems) {
	var r *refusal
	if errors.As(err, &r) {
		ps.errorf(rel, 0, "%s", r.msg)
		return
	}
	ps.errorf(rel, 0, "cannot read: %v", err)
}

// chartLinks returns a message naming the first symbolic link on the way to
// or inside chart directory p (clean, slash-separated, relative to root),
// or "".
func chartLinks(root, p string) string {
	parts := strings.Split(p, "/")
	for i := range parts {
		sub := path.Join(parts[:i+1]...)
		fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(sub)))
		if err != nil {
			return "" // a missing chart is reported where it is loaded
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return sub + " " + errSymlink
		}
	}
	found, n := "", 0
	base := filepath.Join(root, filepath.FromSlash(p))
	filepath.WalkDir(base, func(file string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if n++; n > maxChartFiles {
			return filepath.SkipAll
		}
		if d.Type()&fs.ModeSymlink != 0 {
			rel, _ := filepath.Rel(root, file)
			found = filepath.ToSlash(rel) + " " + errSymlink
			return filepath.SkipAll
		}
		return nil
	})
	return found
}
