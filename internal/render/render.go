package render

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/yaml"

	"github.com/mygitops/mgo/internal/repo"
)

// Capabilities are what templates see of the target cluster
// (.Capabilities.KubeVersion and .Capabilities.APIVersions).
type Capabilities struct {
	KubeVersion string   // e.g. v1.37.2
	APIVersions []string // group/version and group/version/Kind entries
}

// DiscoverCapabilities reads the capabilities of a live cluster.
func DiscoverCapabilities(dc discovery.DiscoveryInterface) (Capabilities, error) {
	v, err := dc.ServerVersion()
	if err != nil {
		return Capabilities{}, fmt.Errorf("reading the server version: %w", err)
	}
	caps := Capabilities{KubeVersion: v.GitVersion}
	_, lists, err := dc.ServerGroupsAndResources()
	if err != nil && len(lists) == 0 {
		return Capabilities{}, fmt.Errorf("discovering API resources: %w", err)
	}
	for _, l := range lists {
		caps.APIVersions = append(caps.APIVersions, l.GroupVersion)
		for _, r := range l.APIResources {
			caps.APIVersions = append(caps.APIVersions, l.GroupVersion+"/"+r.Kind)
		}
	}
	sort.Strings(caps.APIVersions)
	return caps, nil
}

// Rendered is a release rendered to Kubernetes objects.
type Rendered struct {
	Release      string // Helm release name
	Namespace    string
	ChartVersion string
	// Objects are the chart's resources (CRDs from crds/ first, then the
	// templates), hooks excluded, namespaced objects without a namespace
	// given the release namespace is left to the applier.
	Objects []*unstructured.Unstructured
	// Hooks are the hooks Helm would run, test hooks excluded.
	Hooks []Hook
	// Digest identifies the rendered output: chart version, manifest and
	// hooks. Equal digests mean the release would apply the same objects.
	Digest string
	// crds are the names of the CustomResourceDefinitions of the chart's
	// crds directories (its subcharts' included), which Helm installs as
	// they are, before the templates, and never upgrades.
	crds map[string]bool
}

// FromCRDDir reports whether obj is a CustomResourceDefinition of the
// chart's crds directories.
func (r *Rendered) FromCRDDir(obj *unstructured.Unstructured) bool {
	gvk := obj.GroupVersionKind()
	return r != nil && gvk.Group == "apiextensions.k8s.io" && gvk.Kind == "CustomResourceDefinition" && r.crds[obj.GetName()]
}

// CRDDir returns the objects of the chart's crds directories.
func (r *Rendered) CRDDir() []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range r.Objects {
		if r.FromCRDDir(o) {
			out = append(out, o)
		}
	}
	return out
}

// Hook is a rendered Helm hook.
type Hook struct {
	Name, Kind string
	Events     []string
}

// Renderer renders releases client-side for a cluster's capabilities.
type Renderer struct {
	caps Capabilities
}

// NewRenderer returns a renderer for a cluster with these capabilities.
func NewRenderer(caps Capabilities) (*Renderer, error) {
	if caps.KubeVersion == "" {
		return nil, errors.New("render: capabilities need the cluster's Kubernetes version")
	}
	if _, err := common.ParseKubeVersion(caps.KubeVersion); err != nil {
		return nil, fmt.Errorf("render: kube version %q: %w", caps.KubeVersion, err)
	}
	return &Renderer{caps: caps}, nil
}

// Render renders a release's chart with its values, as `helm template`
// would with the cluster's capabilities. upgrade sets .Release.IsUpgrade
// (the release exists in the cluster). Nothing is written anywhere.
func (r *Renderer) Render(ctx context.Context, rel *repo.Release, ch *Chart, upgrade bool) (*Rendered, error) {
	vals, err := rel.Values()
	if err != nil {
		return nil, fmt.Errorf("%s: values: %w", rel.File, err)
	}
	kv, _ := common.ParseKubeVersion(r.caps.KubeVersion)

	cfg := action.NewConfiguration()
	install := action.NewInstall(cfg)
	install.DryRunStrategy = action.DryRunClient
	install.Replace = true // no name check against a release store
	install.IsUpgrade = upgrade
	install.ReleaseName = rel.Header.Name
	install.Namespace = rel.Header.Namespace
	install.KubeVersion = kv
	install.APIVersions = common.VersionSet(r.caps.APIVersions)
	install.IncludeCRDs = true
	install.DisableHooks = false
	cfg.SetLogger(slog.DiscardHandler)

	out, err := install.RunWithContext(ctx, ch.Chart, vals)
	if err != nil {
		return nil, fmt.Errorf("%s: rendering chart %s %s: %w", rel.File, rel.Header.Chart, ch.Version, err)
	}
	hrel, ok := out.(*releasev1.Release)
	if !ok {
		return nil, fmt.Errorf("%s: unexpected release type %T", rel.File, out)
	}
	objs, err := DecodeManifest(hrel.Manifest)
	if err != nil {
		return nil, fmt.Errorf("%s: rendered manifest of chart %s: %w", rel.File, rel.Header.Chart, err)
	}
	res := &Rendered{
		Release:      rel.Header.Name,
		Namespace:    rel.Header.Namespace,
		ChartVersion: ch.Version,
		Objects:      objs,
		crds:         map[string]bool{},
	}
	for _, crd := range ch.Chart.CRDObjects() {
		dir, err := DecodeManifest(string(crd.File.Data))
		if err != nil {
			return nil, fmt.Errorf("%s: %s of chart %s: %w", rel.File, crd.Filename, rel.Header.Chart, err)
		}
		for _, o := range dir {
			res.crds[o.GetName()] = true
		}
	}
	h := sha256.New()
	fmt.Fprintf(h, "chart %s %s\n", rel.Header.Chart, ch.Version)
	io.WriteString(h, hrel.Manifest)
	for _, hk := range hrel.Hooks {
		var events []string
		test := false
		for _, e := range hk.Events {
			events = append(events, e.String())
			if e == releasev1.HookTest {
				test = true
			}
		}
		if test {
			continue // test hooks never run during a sync
		}
		res.Hooks = append(res.Hooks, Hook{Name: hk.Name, Kind: hk.Kind, Events: events})
		fmt.Fprintf(h, "---\n# hook %s\n%s", strings.Join(events, ","), hk.Manifest)
	}
	res.Digest = hex.EncodeToString(h.Sum(nil))
	return res, nil
}

// DecodeManifest splits a multi-document manifest into objects, with
// numbers typed as the API machinery types them (int64, float64).
func DecodeManifest(manifest string) ([]*unstructured.Unstructured, error) {
	rd := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifest)))
	var out []*unstructured.Unstructured
	for {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, err
		}
		if s := strings.TrimSpace(string(j)); s == "null" || s == "{}" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(j); err != nil {
			return nil, fmt.Errorf("%w in:\n%s", err, doc)
		}
		if u.GetName() == "" {
			return nil, fmt.Errorf("%s without a name", u.GetKind())
		}
		out = append(out, u)
	}
}
