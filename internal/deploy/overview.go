package deploy

// What the dashboard's read model (internal/dashboard) reads of the
// service, besides Clusters and ClusterStatus: the releases the repo
// defines at the head, a release's live state, the last change of files,
// the repo's web page and the deployments since a time.

import (
	"context"
	"time"

	"github.com/mygitops/mgo/internal/gitrepo"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/repo"
)

// ReleaseSource is a release as the gitops repo defines it at the head.
type ReleaseSource struct {
	File        string
	SecretsFile string
	Name        string
	Namespace   string
	Chart       string
	Version     string
	Valid       bool
	// Images are the image references of the header, by trigger repo.
	Images map[string]string
	// DependsOn are the releases it is synced after (namespace/name).
	DependsOn []string
}

// RepoReleases loads the releases the repo defines for a cluster at the
// current head, and returns that head.
func (s *Service) RepoReleases(ctx context.Context, cluster string) (string, []ReleaseSource, error) {
	if _, err := s.cluster(cluster); err != nil {
		return "", nil, err
	}
	var head string
	var out []ReleaseSource
	err := s.cfg.Git.Read(ctx, func(dir, h string) error {
		head = h
		r, err := repo.Load(dir, repo.LoadOptions{Cluster: cluster, Cache: s.parsed})
		if err != nil {
			return err
		}
		c, ok := r.Clusters[cluster]
		if !ok {
			return nil
		}
		for _, rel := range c.Releases {
			rs := ReleaseSource{File: rel.File, SecretsFile: rel.SecretsFile, Name: rel.Header.Name, Namespace: rel.Header.Namespace, DependsOn: rel.DependsOnKeys(),
				Chart: rel.Header.Chart, Version: rel.Header.Version, Valid: rel.Valid, Images: map[string]string{}}
			for _, im := range rel.Header.Images {
				rs.Images[im.TriggerRepo] = im.Reference()
			}
			out = append(out, rs)
		}
		return nil
	})
	return head, out, err
}

// LiveRelease reads a release's newest Helm revision in a served cluster
// and the kstatus of its objects.
func (s *Service) LiveRelease(ctx context.Context, cluster, namespace, name string) (reconcile.LiveRelease, error) {
	c, err := s.cluster(cluster)
	if err != nil {
		return reconcile.LiveRelease{}, err
	}
	return c.engine.Live(ctx, namespace, name)
}

// LastChanges returns the commits that last changed the given files of
// the gitops repo, as of head (see gitrepo.Repo.LastChanges).
func (s *Service) LastChanges(ctx context.Context, head string, files []string, maxCommits int) (map[string]gitrepo.FileChange, error) {
	return s.cfg.Git.LastChanges(ctx, head, files, maxCommits)
}

// RepoWebURL is the gitops repo's URL for links to its commits ("" when
// it has none, such as a local repository).
func (s *Service) RepoWebURL() string { return s.cfg.Git.WebURL() }

// Since returns the deployments asked for at or after t (their ids start
// with the time they were queued), oldest first, at most limit of them.
// It reads only those records, however many older ones the store holds.
func (s *Service) Since(t time.Time, limit int) ([]*Deployment, error) {
	return s.cfg.Store.Since(t, limit)
}
