package importer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/mygitops/mgo/internal/repo"
)

// ChartRepo is a chart repository to add to mygitops.yaml.
type ChartRepo struct {
	Name string
	URL  string
}

// ParseChartRepo parses name=url.
func ParseChartRepo(s string) (ChartRepo, error) {
	name, url, ok := strings.Cut(s, "=")
	name, url = strings.TrimSpace(name), strings.TrimSpace(url)
	if !ok || name == "" || url == "" || strings.Contains(name, "/") {
		return ChartRepo{}, fmt.Errorf("chart repository %q: want name=url (e.g. bitnami=https://charts.bitnami.com/bitnami or acme=oci://registry.acme.io/charts)", s)
	}
	if !strings.HasPrefix(url, "https://") && !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "oci://") {
		return ChartRepo{}, fmt.Errorf("chart repository %q: the URL must start with https://, http:// or oci://", s)
	}
	return ChartRepo{Name: name, URL: url}, nil
}

// configWithRepos returns mygitops.yaml (its current content, or nil when
// there is none) with the chart repositories added that it does not list
// yet. A repository listed under the same name with another URL is an
// error. Comments and the rest of the file stay; the file is rewritten
// only when a repository is added.
func configWithRepos(repoDir string, add []ChartRepo) ([]byte, error) {
	cur, err := os.ReadFile(filepath.Join(repoDir, repo.ConfigFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if len(add) == 0 {
		return cur, nil
	}
	var doc yaml.Node
	if len(strings.TrimSpace(string(cur))) > 0 {
		if err := yaml.Unmarshal(cur, &doc); err != nil {
			return nil, fmt.Errorf("%s: %w", repo.ConfigFile, err)
		}
	}
	if len(doc.Content) == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{mapping()}}
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: must be a mapping", repo.ConfigFile)
	}
	helm := child(top, "helm", yaml.MappingNode)
	list := child(helm, "repositories", yaml.SequenceNode)
	if helm == nil || list == nil {
		return nil, fmt.Errorf("%s: helm.repositories must be a list in a mapping", repo.ConfigFile)
	}
	changed := false
	for _, r := range add {
		found := false
		for _, item := range list.Content {
			var have struct{ Name, URL string }
			_ = item.Decode(&have)
			if have.Name != r.Name {
				continue
			}
			found = true
			if strings.TrimSuffix(have.URL, "/") != strings.TrimSuffix(r.URL, "/") {
				return nil, fmt.Errorf("--chart-repo %s=%s: %s already lists chart repository %q with url %s", r.Name, r.URL, repo.ConfigFile, r.Name, have.URL)
			}
		}
		if found {
			continue
		}
		entry := mapping()
		addPair(entry, "name", str(r.Name))
		addPair(entry, "url", str(r.URL))
		list.Content = append(list.Content, entry)
		changed = true
	}
	if !changed {
		return cur, nil
	}
	return encode(&doc)
}

// child returns the value of key in mapping m, creating it as an empty
// node of kind when it is missing or null; nil when it is another kind.
func child(m *yaml.Node, key string, kind yaml.Kind) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != key {
			continue
		}
		v := m.Content[i+1]
		if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
			*v = yaml.Node{Kind: kind}
		}
		if v.Kind != kind {
			return nil
		}
		return v
	}
	v := &yaml.Node{Kind: kind}
	addPair(m, key, v)
	return v
}
