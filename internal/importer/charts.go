package importer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"sigs.k8s.io/yaml"

	"github.com/mygitops/mgo/internal/repo"
)

// ChartSource tells where the chart of an imported release was found.
type ChartSource string

const (
	FromRepository ChartSource = "repository" // a chart repository of mygitops.yaml
	FromOCI        ChartSource = "oci"        // an oci:// repository of mygitops.yaml
	FromRepoDir    ChartSource = "local"      // ./charts/<name>, already in the gitops repo
	FromRelease    ChartSource = "release"    // written into ./charts/<name> from the release's stored chart
)

// resolvedChart is a release's chart reference and, for a chart written
// from the release, its files.
type resolvedChart struct {
	Chart   string // header chart field
	Version string
	Source  ChartSource
	Where   string            // repository name, OCI URL or repo path, for messages
	Dir     string            // repo-relative directory of a chart kept in the repo
	Files   map[string][]byte // files of a chart to write (FromRelease), relative to Dir
	Tried   []string          // what was looked at and why it did not match
}

// resolveChart finds the chart a release runs: in each chart repository of
// cfg (by name and version, then confirmed to be the same chart by its
// files), else in charts/ of the gitops repo, else it is written there
// from the release's stored chart. taken are the chart directories other
// releases of this import already use, with their charts.
// takenChart is a chart directory an earlier release of the import uses.
type takenChart struct {
	chart  *chart.Chart
	source ChartSource
}

func (im *Importer) resolveChart(ctx context.Context, repoDir string, cfg *repo.Config, stored *chart.Chart, taken map[string]takenChart) (*resolvedChart, error) {
	name, version := stored.Metadata.Name, stored.Metadata.Version
	rc := &resolvedChart{Version: version}
	for _, r := range cfg.Repositories {
		h := repo.Header{Chart: r.Name + "/" + name, Version: version, Name: "import", Namespace: "import"}
		src := FromRepository
		if strings.HasPrefix(r.URL, "oci://") {
			h.Chart = strings.TrimSuffix(r.URL, "/") + "/" + name
			src = FromOCI
		}
		ch, err := im.charts.Load(ctx, repoDir, cfg, h)
		if err != nil {
			rc.Tried = append(rc.Tried, fmt.Sprintf("%s: %v", r.Name, err))
			continue
		}
		if diff := chartDifference(ch.Chart, stored); diff != "" {
			rc.Tried = append(rc.Tried, fmt.Sprintf("%s: %s %s is another chart than the release's: %s", r.Name, name, version, diff))
			continue
		}
		rc.Chart, rc.Source, rc.Where = h.Chart, src, r.Name
		return rc, nil
	}
	if len(stored.Metadata.Dependencies) > 0 {
		return nil, fmt.Errorf("chart %s %s is in none of the chart repositories of %s (%s), and it has subcharts, which Helm does not keep with the release: add its repository with --chart-repo",
			name, version, repo.ConfigFile, triedOrNone(rc.Tried))
	}
	// A chart in the repo's charts/: charts/<name>, else charts/<name>-<version>.
	for _, dir := range []string{path.Join("charts", name), path.Join("charts", name+"-"+version)} {
		rc.Chart, rc.Dir = "./"+dir, dir
		if tc, ok := taken[dir]; ok {
			if chartDifference(tc.chart, stored) == "" {
				rc.Source, rc.Where = tc.source, dir
				return rc, nil // written once, by the first release
			}
			continue
		}
		existing, err := loader.LoadDir(filepath.Join(repoDir, filepath.FromSlash(dir)))
		switch {
		case err == nil && chartDifference(existing, stored) == "":
			rc.Source, rc.Where = FromRepoDir, dir
			taken[dir] = takenChart{stored, FromRepoDir}
			return rc, nil
		case err == nil:
			continue // another chart lives there
		case !errors.Is(err, fs.ErrNotExist) && dirExists(filepath.Join(repoDir, filepath.FromSlash(dir))):
			continue // something that is not this chart
		}
		files, err := chartFiles(stored)
		if err != nil {
			return nil, fmt.Errorf("chart %s %s: %w", name, version, err)
		}
		rc.Source, rc.Where, rc.Files = FromRelease, dir, files
		taken[dir] = takenChart{stored, FromRelease}
		return rc, nil
	}
	return nil, fmt.Errorf("chart %s %s: charts/%s and charts/%s-%s of the gitops repo hold other charts", name, version, name, name, version)
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func triedOrNone(tried []string) string {
	if len(tried) == 0 {
		return "it lists none"
	}
	return strings.Join(tried, "; ")
}

// chartDifference says how two charts differ in what rendering uses:
// metadata, templates, files, default values and schema ("" when they are
// the same chart). Subcharts are not compared: Helm does not store them
// with a release.
func chartDifference(a, b *chart.Chart) string {
	if a.Metadata == nil || b.Metadata == nil {
		return "no metadata"
	}
	if a.Metadata.Name != b.Metadata.Name || a.Metadata.Version != b.Metadata.Version {
		return fmt.Sprintf("%s %s is not %s %s", a.Metadata.Name, a.Metadata.Version, b.Metadata.Name, b.Metadata.Version)
	}
	if d := filesDifference("template", a.Templates, b.Templates); d != "" {
		return d
	}
	if d := filesDifference("file", a.Files, b.Files); d != "" {
		return d
	}
	if !jsonEqual(a.Values, b.Values) {
		return "default values differ"
	}
	if !bytes.Equal(bytes.TrimSpace(a.Schema), bytes.TrimSpace(b.Schema)) {
		return "values schema differs"
	}
	if !jsonEqual(a.Metadata, b.Metadata) {
		return "Chart.yaml differs"
	}
	return ""
}

func filesDifference(what string, a, b []*common.File) string {
	am, bm := map[string][]byte{}, map[string][]byte{}
	for _, f := range a {
		am[f.Name] = f.Data
	}
	for _, f := range b {
		bm[f.Name] = f.Data
	}
	for _, n := range sortedKeys(am) {
		other, ok := bm[n]
		switch {
		case !ok:
			return fmt.Sprintf("%s %s is only in one of them", what, n)
		case !bytes.Equal(am[n], other):
			return fmt.Sprintf("%s %s differs", what, n)
		}
	}
	for _, n := range sortedKeys(bm) {
		if _, ok := am[n]; !ok {
			return fmt.Sprintf("%s %s is only in one of them", what, n)
		}
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func jsonEqual(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		return false
	}
	var va, vb any
	if json.Unmarshal(ja, &va) != nil || json.Unmarshal(jb, &vb) != nil {
		return false
	}
	na, _ := json.Marshal(va)
	nb, _ := json.Marshal(vb)
	return bytes.Equal(na, nb)
}

// chartFiles returns the files of a chart directory for a chart as Helm
// stores it with a release (which keeps no raw values.yaml: the default
// values are written from the parsed ones).
func chartFiles(ch *chart.Chart) (map[string][]byte, error) {
	tmp, err := os.MkdirTemp("", "mgo-import-chart-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := chartutil.SaveDir(ch, tmp); err != nil {
		return nil, err
	}
	root := filepath.Join(tmp, ch.Metadata.Name)
	files := map[string][]byte{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		files[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, ok := files[chartutil.ValuesfileName]; !ok && len(ch.Values) > 0 {
		b, err := yaml.Marshal(ch.Values)
		if err != nil {
			return nil, fmt.Errorf("default values: %w", err)
		}
		files[chartutil.ValuesfileName] = b
	}
	return files, nil
}
