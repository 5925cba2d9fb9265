package repo

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/distribution/reference"
	"go.yaml.in/yaml/v3"

	"github.com/mygitops/mgo/internal/yamlnode"
)

// HeaderKey is the top-level key of a values file that holds mgo's header.
// It is removed before the values reach the chart.
const HeaderKey = "__mygitops"

// Header is the __mygitops header of a values file.
type Header struct {
	Chart     string // <repo-name>/<chart>, oci://host/path/chart, or ./charts/x
	Version   string // exact version or semver range; optional for charts in the repo
	Name      string // Helm release name
	Namespace string // release namespace
	Images    []ImageSource
	// IgnoreDifferences are the release's drift ignore rules.
	IgnoreDifferences []IgnoreDifference
	// DependsOn are the releases of the cluster this one is synced after.
	DependsOn []Dependency
	// Health are the release's health rules (HealthRule).
	Health []HealthRule
	// OnFailure is the release's failure policy (FailureKeep or
	// FailureRevert), "" to follow its cluster's.
	OnFailure string
	Line      int // line of the __mygitops key
}

// ImageSource is one entry of the header's images: what a deploy request for
// TriggerRepo may change, in one of two forms.
type ImageSource struct {
	TriggerRepo string // the source repository key, e.g. gitlab.com/acme/app
	Repository  string // repository+tag form
	Tag         string
	Digest      string // repository+tag form with its own digest key (sha256:...)
	Image       string // single-string form: registry/app:tag
	Line        int
}

// Reference returns the image reference the entry describes.
func (s ImageSource) Reference() string {
	if s.Image != "" {
		return s.Image
	}
	ref := s.Repository
	switch {
	case strings.HasPrefix(s.Tag, "sha256:"):
		ref += "@" + s.Tag
	case s.Tag != "":
		ref += ":" + s.Tag
	}
	if s.Digest != "" {
		ref += "@" + s.Digest
	}
	return ref
}

// Image returns the header's entry for a trigger repo.
func (h Header) Image(triggerRepo string) (ImageSource, bool) {
	for _, s := range h.Images {
		if s.TriggerRepo == triggerRepo {
			return s, true
		}
	}
	return ImageSource{}, false
}

// ChartKind tells where a chart comes from.
type ChartKind string

const (
	ChartFromRepository ChartKind = "repository" // <repo-name>/<chart>, from mygitops.yaml
	ChartFromOCI        ChartKind = "oci"        // oci://host/path/chart
	ChartInRepo         ChartKind = "local"      // ./charts/x, kept in the gitops repo
)

// ChartRef is a parsed Header.Chart.
type ChartRef struct {
	Kind       ChartKind
	Repository string // repository name (ChartFromRepository)
	Name       string // chart name
	URL        string // oci:// URL (ChartFromOCI)
	Path       string // clean path relative to the repo root (ChartInRepo)
}

// ParseChartRef parses the chart field of a header.
func ParseChartRef(s string) (ChartRef, error) {
	switch {
	case s == "":
		return ChartRef{}, fmt.Errorf("chart is empty")
	case strings.HasPrefix(s, "oci://"):
		rest := strings.TrimPrefix(s, "oci://")
		host, p, ok := strings.Cut(rest, "/")
		if !ok || host == "" || p == "" || strings.HasSuffix(p, "/") {
			return ChartRef{}, fmt.Errorf("chart %q: want oci://host/path/chart", s)
		}
		if strings.ContainsAny(path.Base(p), ":@") {
			return ChartRef{}, fmt.Errorf("chart %q: give the version in the version field, not in the URL", s)
		}
		return ChartRef{Kind: ChartFromOCI, URL: s, Name: path.Base(p)}, nil
	case strings.HasPrefix(s, "./") || strings.HasPrefix(s, "charts/"):
		p := path.Clean(s)
		if p == "." || strings.HasPrefix(p, "../") || p == ".." {
			return ChartRef{}, fmt.Errorf("chart %q: a local chart must be inside the repository (./charts/<name>)", s)
		}
		return ChartRef{Kind: ChartInRepo, Path: p, Name: path.Base(p)}, nil
	case strings.Contains(s, "://"):
		return ChartRef{}, fmt.Errorf("chart %q: only oci:// URLs are allowed; name charts of HTTP repositories <repo-name>/<chart> and list the repository in %s", s, ConfigFile)
	}
	repoName, name, ok := strings.Cut(s, "/")
	if !ok || repoName == "" || name == "" || strings.Contains(name, "/") {
		return ChartRef{}, fmt.Errorf("chart %q: want <repo-name>/<chart>, oci://host/path/chart or ./charts/<name>", s)
	}
	return ChartRef{Kind: ChartFromRepository, Repository: repoName, Name: name}, nil
}

var headerKeys = []string{"chart", "version", "name", "namespace", "images", "ignoreDifferences", "dependsOn", "health", "onFailure"}

// parseHeader reads the header of a values document. It reports problems and
// returns ok=false when the header is unusable.
func parseHeader(file string, doc *yaml.Node, cfg *Config, ps *problems) (Header, bool) {
	var h Header
	var hn *yaml.Node
	es, isMap := yamlnode.Entries(doc)
	if !isMap {
		ps.errorf(file, doc.Line, "a values file must be a mapping with a %s header, not %s", HeaderKey, yamlnode.KindName(doc))
		return h, false
	}
	for _, e := range es {
		if e.Key == HeaderKey {
			hn, h.Line = e.Value, e.KeyNode.Line
		}
	}
	if hn == nil {
		ps.errorf(file, 1, "header %s is missing (it names the chart, version, release name and namespace)", HeaderKey)
		return h, false
	}
	fields, isMap := yamlnode.Entries(hn)
	if !isMap {
		ps.errorf(file, h.Line, "header %s must be a mapping, not %s", HeaderKey, yamlnode.KindName(hn))
		return h, false
	}
	ok := true
	var imagesNode, dependsNode *yaml.Node
	for _, f := range fields {
		if f.Key == "images" {
			imagesNode = f.Value
			continue
		}
		if f.Key == "dependsOn" {
			dependsNode = f.Value
			continue
		}
		if f.Key == "ignoreDifferences" {
			rules, valid := parseIgnoreDifferences(file, "header: ignoreDifferences", f.Value, ps)
			h.IgnoreDifferences = rules
			ok = ok && valid
			continue
		}
		if f.Key == "health" {
			rules, valid := parseHealthRules(file, "header: health", f.Value, ps)
			h.Health = rules
			ok = ok && valid
			continue
		}
		if !slices.Contains(headerKeys, f.Key) {
			ps.errorf(file, f.KeyNode.Line, "header: unknown key %q (known: %s)", f.Key, strings.Join(headerKeys, ", "))
			ok = false
			continue
		}
		v, isScalar := yamlnode.Scalar(f.Value)
		if !isScalar {
			ps.errorf(file, f.Value.Line, "header: %s must be a string, not %s", f.Key, yamlnode.KindName(f.Value))
			ok = false
			continue
		}
		switch f.Key {
		case "chart":
			h.Chart = v
		case "version":
			h.Version = v
		case "name":
			h.Name = v
		case "namespace":
			h.Namespace = v
		case "onFailure":
			if v != FailureKeep && v != FailureRevert {
				ps.errorf(file, f.Value.Line, "header: onFailure %q is not a failure policy (keep or revert)", v)
				ok = false
				continue
			}
			h.OnFailure = v
		}
	}
	var missing []string
	for _, m := range []struct{ key, val string }{{"chart", h.Chart}, {"name", h.Name}, {"namespace", h.Namespace}} {
		if m.val == "" {
			missing = append(missing, m.key)
		}
	}
	if len(missing) > 0 {
		ps.errorf(file, h.Line, "header: %s missing", strings.Join(missing, ", "))
		ok = false
	}
	if h.Chart != "" {
		ref, err := ParseChartRef(h.Chart)
		switch {
		case err != nil:
			ps.errorf(file, valueLine(hn, "chart", h.Line), "header: %v", err)
			ok = false
		case ref.Kind == ChartFromRepository:
			if _, known := cfg.Repository(ref.Repository); !known {
				ps.errorf(file, valueLine(hn, "chart", h.Line), "header: chart %q names chart repository %q, which %s does not list%s",
					h.Chart, ref.Repository, ConfigFile, knownRepos(cfg))
				ok = false
			}
		}
		if err == nil && ref.Kind != ChartInRepo && h.Version == "" {
			ps.errorf(file, h.Line, "header: version missing (required for charts from a repository or registry)")
			ok = false
		}
	}
	if h.Version != "" {
		if _, err := semver.NewConstraint(h.Version); err != nil {
			ps.errorf(file, valueLine(hn, "version", h.Line), "header: version %q is neither a version nor a semver range: %v", h.Version, err)
			ok = false
		}
	}
	for _, m := range []struct {
		key, val string
		max      int
	}{{"name", h.Name, 53}, {"namespace", h.Namespace, 63}} {
		if m.val != "" && !isDNSLabel(m.val, m.max) {
			ps.errorf(file, valueLine(hn, m.key, h.Line), "header: %s %q must be a lowercase DNS label (a-z, 0-9, '-', at most %d characters)", m.key, m.val, m.max)
			ok = false
		}
	}
	if imagesNode != nil {
		h.Images = parseImages(file, imagesNode, ps)
	}
	if dependsNode != nil {
		deps, valid := parseDependsOn(file, dependsNode, h.Namespace, ps)
		h.DependsOn, ok = deps, ok && valid
	}
	return h, ok
}

func parseImages(file string, n *yaml.Node, ps *problems) []ImageSource {
	es, isMap := yamlnode.Entries(n)
	if !isMap {
		if n.Tag != "!!null" {
			ps.errorf(file, n.Line, "header: images must be a mapping of source repository to image, not %s", yamlnode.KindName(n))
		}
		return nil
	}
	var out []ImageSource
	for _, e := range es {
		src := ImageSource{TriggerRepo: e.Key, Line: e.KeyNode.Line}
		fields, isMap := yamlnode.Entries(e.Value)
		if !isMap {
			ps.errorf(file, e.KeyNode.Line, "header: images.%s must be a mapping with repository and tag, or with image; not %s", e.Key, yamlnode.KindName(e.Value))
			continue
		}
		valid := true
		for _, f := range fields {
			v, isScalar := yamlnode.Scalar(f.Value)
			switch {
			case f.Key != "repository" && f.Key != "tag" && f.Key != "digest" && f.Key != "image":
				ps.errorf(file, f.KeyNode.Line, "header: images.%s: unknown key %q (known: repository, tag, digest, image)", e.Key, f.Key)
				valid = false
			case !isScalar && !((f.Key == "tag" || f.Key == "digest") && yamlnode.Resolve(f.Value).Tag == "!!null"):
				ps.errorf(file, f.Value.Line, "header: images.%s.%s must be a string, not %s", e.Key, f.Key, yamlnode.KindName(f.Value))
				valid = false
			case f.Key == "repository":
				src.Repository = v
			case f.Key == "tag":
				src.Tag = v
			case f.Key == "digest":
				src.Digest = v
			case f.Key == "image":
				src.Image = v
			}
		}
		if !valid {
			continue
		}
		switch {
		case src.Image != "" && (src.Repository != "" || src.Tag != "" || src.Digest != ""):
			ps.errorf(file, src.Line, "header: images.%s: give repository and tag, or image, not both forms", e.Key)
			continue
		case src.Image != "":
			ref, err := reference.ParseNormalizedNamed(src.Image)
			if err != nil {
				ps.errorf(file, src.Line, "header: images.%s: invalid image reference %q: %v", e.Key, src.Image, err)
				continue
			}
			if reference.IsNameOnly(ref) {
				ps.warnf(file, src.Line, "header: images.%s: image %q has no tag or digest (Kubernetes pulls :latest)", e.Key, src.Image)
			}
		case src.Repository == "":
			ps.errorf(file, src.Line, "header: images.%s: repository missing (or give image: registry/app:tag)", e.Key)
			continue
		default:
			ref, err := reference.ParseNormalizedNamed(src.Repository)
			if err != nil {
				ps.errorf(file, src.Line, "header: images.%s: invalid image repository %q: %v", e.Key, src.Repository, err)
				continue
			}
			if !reference.IsNameOnly(ref) {
				ps.errorf(file, src.Line, "header: images.%s: repository %q must not carry a tag or digest; put it in tag", e.Key, src.Repository)
				continue
			}
			if src.Tag == "" && src.Digest == "" {
				ps.warnf(file, src.Line, "header: images.%s: tag is empty (the chart's default applies until the first deploy)", e.Key)
			} else if _, err := reference.ParseNormalizedNamed(src.Reference()); err != nil {
				ps.errorf(file, src.Line, "header: images.%s: invalid tag or digest %q: %v", e.Key, src.Reference(), err)
				continue
			}
		}
		out = append(out, src)
	}
	return out
}

// valueLine returns the line of key's value in mapping n, or def.
func valueLine(n *yaml.Node, key string, def int) int {
	if v := yamlnode.Lookup(n, key); v != nil {
		return v.Line
	}
	return def
}

func knownRepos(cfg *Config) string {
	if len(cfg.Repositories) == 0 {
		return " (it lists none)"
	}
	names := make([]string, len(cfg.Repositories))
	for i, r := range cfg.Repositories {
		names[i] = r.Name
	}
	return " (it lists " + strings.Join(names, ", ") + ")"
}

// isDNSLabel reports whether s is a lowercase RFC 1123 label of at most max
// characters, as Helm requires of release names and Kubernetes of namespaces.
func isDNSLabel(s string, max int) bool {
	if s == "" || len(s) > max || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
