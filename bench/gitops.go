package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// release is one Helm release of the benchmark repo.
type release struct {
	Name      string
	Namespace string
	Tag       string
	// DependsOn is the release (namespace/name) it is synced after, "" for
	// none (-depends-on-layers).
	DependsOn string
}

// gitops is the benchmark's gitops repo on disk (DESIGN.md section 2): the
// chart kept in the repo under charts/hello, one values file per release in
// installations/<cluster>/, images keyed by a source repo per release.
type gitops struct {
	Dir      string
	Cluster  string
	Releases []release
}

const (
	chartName  = "hello"
	initialTag = "1.0.0"
	replicas   = 2
)

// namespaceCount spreads the releases over several namespaces: ten, fewer
// for a tiny N.
func namespaceCount(n int) int { return max(1, min(10, n)) }

func namespaceName(i int) string { return fmt.Sprintf("bench-%02d", i) }

// newGitops writes a repo of n releases of chartDir over namespaceCount(n)
// namespaces into dir. With layers > 1, the releases form that many layers
// of dependsOn: release i depends on release i-n/layers (mgo only reads
// it; the other contenders install in their own order).
func newGitops(dir, cluster, chartDir string, n, layers int) (*gitops, error) {
	g := &gitops{Dir: dir, Cluster: cluster}
	if err := os.CopyFS(filepath.Join(dir, "charts", chartName), os.DirFS(chartDir)); err != nil {
		return nil, fmt.Errorf("copying the chart: %w", err)
	}
	// The defaults a user gets (budget: 50 QPS, burst 100, 4 releases at
	// once); only the rollout timeout is set.
	cfg := "clusters:\n  " + cluster + ":\n    timeout: 5m\n"
	if err := os.WriteFile(filepath.Join(dir, "mygitops.yaml"), []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	nss := namespaceCount(n)
	for i := range n {
		r := release{Name: fmt.Sprintf("svc%03d", i), Namespace: namespaceName(i % nss), Tag: initialTag}
		if width := n / max(layers, 1); layers > 1 && i >= width {
			dep := g.Releases[i-width]
			r.DependsOn = dep.Namespace + "/" + dep.Name
		}
		g.Releases = append(g.Releases, r)
		if err := g.write(r); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// Namespaces lists the namespaces of the releases.
func (g *gitops) Namespaces() []string {
	var out []string
	for i := range namespaceCount(len(g.Releases)) {
		out = append(out, namespaceName(i))
	}
	return out
}

// ValuesFile is the path of a release's values file.
func (g *gitops) ValuesFile(r release) string {
	return filepath.Join(g.Dir, "installations", g.Cluster, r.Name+"-values.yaml")
}

// ChartDir is the path of the chart in the repo.
func (g *gitops) ChartDir() string { return filepath.Join(g.Dir, "charts", chartName) }

// TriggerRepo is the source repo whose deploy requests change a release.
func TriggerRepo(r release) string { return "gitlab.com/acme/" + r.Name }

// ImageRepo is the image of a release.
func ImageRepo(r release) string { return "registry.example.com/acme/" + r.Name }

func (g *gitops) write(r release) error {
	deps := ""
	if r.DependsOn != "" {
		deps = "\n  dependsOn: [" + r.DependsOn + "]"
	}
	body := fmt.Sprintf(`# %[1]s: one release of the benchmark.
__mygitops:
  chart: ./charts/%[4]s
  name: %[1]s
  namespace: %[2]s%[8]s
  images:
    %[5]s: &img
      repository: %[6]s
      tag: "%[3]s"

image:
  <<: *img
  pullPolicy: IfNotPresent
replicaCount: %[7]d
greeting: hello from %[1]s
`, r.Name, r.Namespace, r.Tag, chartName, TriggerRepo(r), ImageRepo(r), replicas, deps)
	p := g.ValuesFile(r)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(body), 0o644)
}

// SetTag changes the image tag of the releases at the given indexes, as a
// merged pull request would.
func (g *gitops) SetTag(tag string, idx ...int) error {
	for _, i := range idx {
		g.Releases[i].Tag = tag
		if err := g.write(g.Releases[i]); err != nil {
			return err
		}
	}
	return nil
}

// spread returns k indexes spread evenly over n releases.
func spread(n, k int) []int {
	k = min(k, n)
	out := make([]int, k)
	for i := range k {
		out[i] = (i*n + n/2) / k
	}
	return out
}
