package importer

import (
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/mygitops/mgo/internal/repo"
)

// secretPattern matches the key names whose values are secrets.
var secretPattern = regexp.MustCompile(`(?i)(password|passwd|passphrase|secret|token|credential|apikey|api_key|privatekey|private_key|key$)`)

// isSecretKey reports whether a values key holds a secret: by the built-in
// pattern, or equal (case-insensitively) to or matching (path.Match) one of
// extra.
func isSecretKey(key string, extra []string) bool {
	if secretPattern.MatchString(key) {
		return true
	}
	for _, e := range extra {
		if strings.EqualFold(e, key) {
			return true
		}
		if ok, _ := path.Match(e, key); ok {
			return true
		}
	}
	return false
}

// splitSecrets moves the values under secret keys out of vals into a new
// map of the same shape, and returns that map and the dotted paths moved.
// Only whole values move (a scalar or a list), so merging the secrets file
// over the values file, as Helm merges -f files, gives vals back. Empty
// strings, booleans and nulls stay (they hide nothing).
func splitSecrets(vals map[string]any, extra []string, prefix string) (map[string]any, []string) {
	secrets := map[string]any{}
	var moved []string
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		v := vals[k]
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		if m, ok := v.(map[string]any); ok {
			if s, paths := splitSecrets(m, extra, p); len(s) > 0 {
				secrets[k] = s
				moved = append(moved, paths...)
			}
			continue
		}
		if !isSecretKey(k, extra) {
			continue
		}
		switch x := v.(type) {
		case nil, bool:
			continue
		case string:
			if x == "" {
				continue
			}
		}
		secrets[k] = v
		delete(vals, k)
		moved = append(moved, p)
	}
	return secrets, moved
}

// imageLink is a header image entry and the values path it feeds.
type imageLink struct {
	TriggerRepo string
	Repository  string
	Tag         string
	Path        []string // keys from the values root to the image mapping
}

// findImageField returns the path of the mapping in vals (the chart's
// values coalesced with the release's) whose repository is image, and
// that mapping's tag.
func findImageField(vals map[string]any, image string) ([]string, string, string, bool) {
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		m, ok := vals[k].(map[string]any)
		if !ok {
			continue
		}
		if r, ok := m["repository"].(string); ok && repo.SameRepository(r, image) {
			return []string{k}, r, scalarString(m["tag"]), true
		}
		if p, r, tag, ok := findImageField(m, image); ok {
			return append([]string{k}, p...), r, tag, true
		}
	}
	return nil, "", "", false
}

func scalarString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return fmt.Sprint(x)
	}
}

// deepCopy copies nested maps and lists of values.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}

// valuesFile builds the values file of a release: the header, then the
// user values, with each image mapping merging its header entry.
func valuesFile(h repo.Header, links []imageLink, vals map[string]any) ([]byte, error) {
	header := mapping()
	addPair(header, "chart", str(h.Chart))
	if h.Version != "" {
		addPair(header, "version", quoted(h.Version))
	}
	addPair(header, "name", str(h.Name))
	addPair(header, "namespace", str(h.Namespace))

	for _, l := range links {
		// The image mapping gets its place among the keys as the encoder
		// orders them, wherever the release's values had it or not.
		m := vals
		for _, k := range l.Path {
			next, ok := m[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[k] = next
			}
			m = next
		}
	}
	body := &yaml.Node{}
	if err := body.Encode(vals); err != nil {
		return nil, fmt.Errorf("values of %s: %w", h.Name, err)
	}
	if body.Kind != yaml.MappingNode {
		body = mapping()
	}
	if len(links) > 0 {
		images := mapping()
		used := map[string]bool{}
		for _, l := range links {
			entry := mapping()
			addPair(entry, "repository", str(l.Repository))
			addPair(entry, "tag", quoted(l.Tag))
			entry.Anchor = anchorName(l.TriggerRepo, used)
			addPair(images, l.TriggerRepo, entry)
			target := ensurePath(body, l.Path)
			removeKeys(target, "repository", "tag")
			merge := []*yaml.Node{{Kind: yaml.ScalarNode, Value: "<<"}, {Kind: yaml.AliasNode, Value: entry.Anchor, Alias: entry}}
			target.Content = append(merge, target.Content...)
		}
		addPair(header, "images", images)
	}
	root := mapping()
	addPair(root, repo.HeaderKey, header)
	root.Content = append(root.Content, body.Content...)
	return encode(root)
}

// secretsFile is the YAML of the secret values.
func secretsFile(secrets map[string]any) ([]byte, error) {
	n := &yaml.Node{}
	if err := n.Encode(secrets); err != nil {
		return nil, err
	}
	return encode(n)
}

func encode(n *yaml.Node) ([]byte, error) {
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

func mapping() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"} }

func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

func quoted(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s, Style: yaml.DoubleQuotedStyle}
}

func addPair(m *yaml.Node, key string, v *yaml.Node) {
	m.Content = append(m.Content, str(key), v)
}

// ensurePath returns the mapping at path under m, creating the mappings
// that are missing.
func ensurePath(m *yaml.Node, keys []string) *yaml.Node {
	for _, k := range keys {
		var next *yaml.Node
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == k && m.Content[i+1].Kind == yaml.MappingNode {
				next = m.Content[i+1]
			}
		}
		if next == nil {
			next = mapping()
			removeKeys(m, k)
			addPair(m, k, next)
		}
		next.Style &^= yaml.FlowStyle // an empty map encodes as {}
		m = next
	}
	return m
}

func removeKeys(m *yaml.Node, keys ...string) {
	out := m.Content[:0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if !slices.Contains(keys, m.Content[i].Value) {
			out = append(out, m.Content[i], m.Content[i+1])
		}
	}
	m.Content = out
}

var anchorUnsafe = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// anchorName derives a YAML anchor from a trigger repo: its last path
// element, made unique in the file.
func anchorName(triggerRepo string, used map[string]bool) string {
	base := anchorUnsafe.ReplaceAllString(path.Base(triggerRepo), "-")
	if base == "" || base == "-" {
		base = "image"
	}
	name := base
	for i := 2; used[name]; i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	used[name] = true
	return name
}
