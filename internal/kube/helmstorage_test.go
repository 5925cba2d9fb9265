package kube

import (
	"errors"
	"testing"

	"helm.sh/helm/v4/pkg/action"
	rcommon "helm.sh/helm/v4/pkg/release/common"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage/driver"
)

// TestHelmForReleaseListsOnceUntilItWrites: the release storage of a
// release sync lists the release's Secrets once, answers the next reads
// (its history, its deployed revision) from that list, and lists again
// after it wrote, so that it reads what it wrote.
func TestHelmForReleaseListsOnceUntilItWrites(t *testing.T) {
	c := newCluster(t)
	ns := env.Namespace(t)
	revision := func(cfg *action.Configuration, version int, status rcommon.Status) {
		t.Helper()
		rel := &releasev1.Release{Name: "web", Namespace: ns, Version: version, Info: &releasev1.Info{Status: status}}
		if err := cfg.Releases.Create(rel); err != nil {
			t.Fatal(err)
		}
	}

	cfg, err := c.HelmForRelease(ns, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := c.Requests.Snapshot()
	lists := func() int { return c.Requests.Since(before)["list"] }
	for range 2 {
		if _, err := cfg.Releases.History("web"); !errors.Is(err, driver.ErrReleaseNotFound) {
			t.Fatalf("history of a release with no revision: %v", err)
		}
	}
	if _, err := cfg.Releases.Deployed("web"); err == nil {
		t.Fatal("a deployed revision of a release with none")
	}
	if n := lists(); n != 1 {
		t.Fatalf("%d lists for three reads before any write, want 1", n)
	}

	revision(cfg, 1, rcommon.StatusDeployed)
	d, err := cfg.Releases.Deployed("web")
	if err != nil {
		t.Fatalf("the revision this configuration wrote is not read: %v", err)
	}
	if v := d.(*releasev1.Release).Version; v != 1 {
		t.Fatalf("deployed revision %d, want 1", v)
	}
	if n := lists(); n != 2 {
		t.Fatalf("%d lists after a write and a read, want 2", n)
	}

	// A revision another writer stored is seen by a new configuration,
	// whose reads filter its one list: the deployed revision among all.
	other, err := c.Helm(ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	revision(other, 2, rcommon.StatusFailed)
	cfg, err = c.HelmForRelease(ns, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	before = c.Requests.Snapshot()
	h, err := cfg.Releases.History("web")
	if err != nil || len(h) != 2 {
		t.Fatalf("history: %d revisions, %v; want 2", len(h), err)
	}
	d, err = cfg.Releases.Deployed("web")
	if err != nil {
		t.Fatal(err)
	}
	if v := d.(*releasev1.Release).Version; v != 1 {
		t.Fatalf("deployed revision %d, want 1 (revision 2 failed)", v)
	}
	if n := lists(); n != 1 {
		t.Fatalf("%d lists for the history and the deployed revision, want 1", n)
	}
}
