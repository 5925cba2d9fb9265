package reconcile

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"helm.sh/helm/v4/pkg/action"
	helmkube "helm.sh/helm/v4/pkg/kube"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	helmstorage "helm.sh/helm/v4/pkg/storage/driver"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/mygitops/mgo/internal/kube"
	"github.com/mygitops/mgo/internal/repo"
)

// uninstallRemoved uninstalls the releases mgo installed whose values file
// left the repo. It does nothing when a values file of the cluster could
// not be read: a broken file must not look like a removed release.
//
// A release that a sync of that release alone (Options.Release, from a
// newer tree) synced after started is not uninstalled: the tree of this
// sync may be older than its.
func (e *Engine) uninstallRemoved(ctx context.Context, c *repo.Cluster, opts Options, started time.Time) []ReleaseResult {
	want := map[string]bool{}
	var keys []string
	for _, rel := range c.Releases {
		if rel.Header.Name == "" || rel.Header.Namespace == "" {
			e.log.Warn("not uninstalling removed releases: a values file could not be read", "file", rel.File)
			return nil
		}
		key := rel.Header.Namespace + "/" + rel.Header.Name
		want[key] = true
		keys = append(keys, key)
	}
	slices.Sort(keys)
	set := strings.Join(keys, ",")
	e.mu.Lock()
	same := e.relSet == set
	e.mu.Unlock()
	if same && !opts.Full {
		return nil // the same releases as at the last check: nothing was removed
	}
	rels, err := e.mgoReleases(ctx)
	if err != nil {
		return []ReleaseResult{{Action: Failed, Stage: StageDiff, Error: fmt.Sprintf("listing mgo's releases: %v", err)}}
	}
	var out []ReleaseResult
	failed := false
	var leftAlone []string
	defer func() {
		if len(leftAlone) > 0 {
			e.log.Warn("releases of an older mgo left alone", "releases", leftAlone)
		}
		if !failed && !opts.DryRun {
			e.mu.Lock()
			e.relSet = set
			e.mu.Unlock()
		}
	}()
	for _, hr := range e.dependantsFirst(rels) {
		if want[hr.Namespace+"/"+hr.Name] {
			continue
		}
		e.mu.Lock()
		newer := e.syncedAt[hr.Namespace+"/"+hr.Name].After(started)
		e.mu.Unlock()
		if newer {
			continue
		}
		rr := ReleaseResult{Name: hr.Name, Namespace: hr.Namespace, Revision: hr.Version}
		switch {
		case e.owner.Owns(hr.Labels):
		case kube.Unowned(hr.Labels):
			// Installed by an mgo older than the ownership labels: it may
			// be another instance's. Never uninstalled; reported.
			rr.Action = LeftAlone
			rr.Note = fmt.Sprintf("installed by an older mgo (no %s and %s labels) and not in the repository: left alone; uninstall it by hand if no other mgo instance owns it",
				kube.LabelCluster, kube.LabelRepo)
			leftAlone = append(leftAlone, hr.Namespace+"/"+hr.Name)
			out = append(out, rr)
			continue
		default:
			continue // another mgo instance's, or another context's
		}
		if opts.DryRun {
			rr.Action = WouldChange
			out = append(out, rr)
			continue
		}
		ncfg, err := e.cluster.Helm(hr.Namespace, e.log)
		if err == nil {
			un := action.NewUninstall(ncfg)
			un.WaitStrategy = helmkube.LegacyStrategy
			un.Timeout = 2 * time.Minute
			un.Description = "values file removed from the gitops repo"
			_, err = un.Run(hr.Name)
		}
		if errors.Is(err, helmstorage.ErrReleaseNotFound) {
			continue // gone already: the cache had not seen its uninstall yet
		}
		if err != nil {
			rr.Action, rr.Stage, rr.Error = Failed, StageApply, fmt.Sprintf("uninstall: %v", err)
			failed = true
		} else {
			rr.Action = Uninstalled
			e.forget(hr.Namespace, hr.Name)
			e.mu.Lock()
			delete(e.applied, hr.Namespace+"/"+hr.Name)
			delete(e.inputsOf, hr.Namespace+"/"+hr.Name)
			delete(e.health, hr.Namespace+"/"+hr.Name)
			delete(e.dependsOf, hr.Namespace+"/"+hr.Name)
			e.mu.Unlock()
		}
		out = append(out, rr)
	}
	_ = ctx
	return out
}

// mgoReleases returns the newest revision of every release an mgo installed
// in the cluster (label mgo.io/managed-by), in every namespace. The first
// time, from Helm's storage (every release Secret, payload included: a
// release of an older mgo has no cluster label, so only this list sees
// it); after that, from the engine's cache of this cluster's release
// Secrets (labels only), without a request.
func (e *Engine) mgoReleases(ctx context.Context) ([]*releasev1.Release, error) {
	e.mu.Lock()
	listed := e.listedReleases
	e.mu.Unlock()
	if e.cache != nil && listed {
		sel := labels.SelectorFromSet(labels.Set{"owner": "helm", LabelManagedBy: managedBy})
		secrets, err := e.cache.ListEverywhere(ctx, schema.GroupVersionKind{Version: "v1", Kind: "Secret"}, sel)
		if err == nil {
			return newestRevisions(secrets), nil
		}
		e.log.Debug("listing releases from Helm's storage: the cache cannot", "error", err)
	}
	cfg, err := e.cluster.Helm("", e.log)
	if err != nil {
		return nil, err
	}
	list := action.NewList(cfg)
	list.AllNamespaces = true
	list.All = true
	list.Selector = LabelManagedBy + "=" + managedBy
	found, err := list.Run()
	if err != nil {
		return nil, err
	}
	var out []*releasev1.Release
	for _, x := range found {
		if hr, ok := x.(*releasev1.Release); ok {
			out = append(out, hr)
		}
	}
	e.mu.Lock()
	e.listedReleases = true
	e.mu.Unlock()
	return out, nil
}

// newestRevisions makes, of Helm's release Secrets (labels only), the
// newest revision of each release, with its name, namespace, version and
// labels.
func newestRevisions(secrets []*unstructured.Unstructured) []*releasev1.Release {
	newest := map[string]*releasev1.Release{}
	for _, s := range secrets {
		l := s.GetLabels()
		v, err := strconv.Atoi(l["version"])
		if err != nil || l["name"] == "" {
			continue
		}
		key := s.GetNamespace() + "/" + l["name"]
		if cur, ok := newest[key]; ok && cur.Version >= v {
			continue
		}
		newest[key] = &releasev1.Release{Name: l["name"], Namespace: s.GetNamespace(), Version: v, Labels: maps.Clone(l)}
	}
	out := slices.Collect(maps.Values(newest))
	slices.SortFunc(out, func(a, b *releasev1.Release) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return out
}
