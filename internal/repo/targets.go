package repo

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
)

// ErrTriggerRepoNotListed means no values file of the cluster lists the
// trigger repo under its header's images.
var ErrTriggerRepoNotListed = errors.New("trigger repo not listed")

// ReleasesForTrigger returns the releases of a cluster whose header lists
// triggerRepo, in file order: the files a deploy request for it edits. The
// errors say what was searched.
func (r *Repo) ReleasesForTrigger(cluster, triggerRepo string) ([]*Release, error) {
	c, ok := r.Clusters[cluster]
	if !ok {
		return nil, fmt.Errorf("%w %q: no directory %s/%s in %s (clusters: %s)",
			ErrUnknownCluster, cluster, InstallationsDir, cluster, r.Dir, listOrNone(r.ClusterNames()))
	}
	var out []*Release
	var listed []string
	for _, rl := range c.Releases {
		for _, img := range rl.Header.Images {
			if !slices.Contains(listed, img.TriggerRepo) {
				listed = append(listed, img.TriggerRepo)
			}
		}
		if _, ok := rl.Header.Image(triggerRepo); ok {
			out = append(out, rl)
		}
	}
	if len(out) == 0 {
		slices.Sort(listed)
		return nil, fmt.Errorf("%w: %q is listed in no values file of cluster %s: searched %s (%d files; they list %s)",
			ErrTriggerRepoNotListed, triggerRepo, cluster,
			path.Join(InstallationsDir, cluster, "*"+ValuesSuffix), len(c.Releases), listOrNone(listed))
	}
	return out, nil
}

// Summary counts what was loaded, for reports.
type Summary struct {
	Clusters int `json:"clusters"`
	Releases int `json:"releases"`
	RawFiles int `json:"rawFiles"`
	Objects  int `json:"rawObjects"`
}

// Summary counts the clusters, releases and raw manifests loaded.
func (r *Repo) Summary() Summary {
	s := Summary{Clusters: len(r.Clusters)}
	for _, c := range r.Clusters {
		s.Releases += len(c.Releases)
		s.RawFiles += len(c.Raw)
		for _, rf := range c.Raw {
			s.Objects += len(rf.Objects)
		}
	}
	return s
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, strings.TrimSuffix(word, "s"))
}

// String renders the summary for people.
func (s Summary) String() string {
	return fmt.Sprintf("%s, %s, %s (%s)", plural(s.Clusters, "cluster"), plural(s.Releases, "release"),
		plural(s.RawFiles, "raw file"), plural(s.Objects, "object"))
}
