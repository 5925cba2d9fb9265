package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/Masterminds/semver/v3"

	"github.com/mygitops/mgo/internal/render"
	"github.com/mygitops/mgo/internal/repo"
)

// inputs identifies, for one sync, what the rendering of each release
// depends on: its values and secrets files, its header, its chart (the
// files of a chart kept in the repo; the repository URL and exact version
// of any other) and the cluster's capabilities. A sync that is not full
// finds a release whose inputs are those of its last successful sync up to
// date without loading its chart or rendering it: with a thousand
// releases, rendering every one for each deploy's sync cost seconds of CPU
// time and made a deploy's latency grow with the number of releases.
type inputs struct {
	base   string
	mu     sync.Mutex
	charts map[string]string // chart directory -> digest of its files ("" unreadable)
}

func newInputs(caps *render.Capabilities) *inputs {
	h := sha256.New()
	if caps != nil {
		write(h, caps.KubeVersion)
		for _, v := range caps.APIVersions {
			write(h, v)
		}
	}
	return &inputs{base: hex.EncodeToString(h.Sum(nil)), charts: map[string]string{}}
}

// release returns the digest of a release's inputs, or "" when it cannot
// tell (a chart version range, which a newer chart may match; a file that
// cannot be read): the release is then rendered.
func (in *inputs) release(r *repo.Repo, rel *repo.Release) string {
	if in == nil || r == nil {
		return ""
	}
	ref, err := repo.ParseChartRef(rel.Header.Chart)
	if err != nil {
		return ""
	}
	h := sha256.New()
	write(h, in.base, rel.Header.Chart, rel.Header.Version, rel.Header.Name, rel.Header.Namespace)
	switch ref.Kind {
	case repo.ChartInRepo:
		d := in.chart(filepath.Join(r.Dir, filepath.FromSlash(ref.Path)))
		if d == "" {
			return ""
		}
		write(h, d)
	default:
		if _, err := semver.StrictNewVersion(rel.Header.Version); err != nil {
			return ""
		}
		if ref.Kind == repo.ChartFromRepository {
			cr, ok := r.Config.Repository(ref.Repository)
			if !ok {
				return ""
			}
			write(h, cr.URL)
		}
	}
	for _, f := range []string{rel.File, rel.SecretsFile} {
		if f == "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(r.Dir, filepath.FromSlash(f)))
		if err != nil {
			return ""
		}
		write(h, f, string(b))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// chart returns the digest of the files of a chart directory, read once
// per sync.
func (in *inputs) chart(dir string) string {
	in.mu.Lock()
	defer in.mu.Unlock()
	if d, ok := in.charts[dir]; ok {
		return d
	}
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			write(h, "link", rel, target)
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			write(h, "file", rel, string(b))
		}
		return nil
	})
	d := ""
	if err == nil {
		d = hex.EncodeToString(h.Sum(nil))
	}
	in.charts[dir] = d
	return d
}

// write adds strings to h, each with its length, so that no two lists of
// strings give the same bytes.
func write(h hash.Hash, ss ...string) {
	for _, s := range ss {
		var n [8]byte
		for i, l := 0, len(s); i < 8; i, l = i+1, l>>8 {
			n[i] = byte(l)
		}
		h.Write(n[:])
		h.Write([]byte(s))
	}
}
