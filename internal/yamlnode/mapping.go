package yamlnode

import (
	"slices"

	"go.yaml.in/yaml/v3"
)

// Entry is one key/value pair of a mapping.
type Entry struct {
	Key     string     // the key's value
	KeyNode *yaml.Node // the key as written
	Value   *yaml.Node // the value, aliases resolved
	Raw     *yaml.Node // the value as written (maybe an alias)
	// Merged is the `<<` key the pair came through, nil for the mapping's
	// own pairs.
	Merged *yaml.Node
}

// MaxEntries bounds the pairs Entries returns for one mapping (merged ones
// included): a mapping cannot have more pairs than the nodes of its file,
// and Check bounds those.
const MaxEntries = 1 << 20

// Entries returns the pairs of a mapping node in order, with `<<` merge
// keys expanded: its own pairs first, then the merged ones, explicit keys
// winning over merged ones and earlier merge sources over later ones (YAML
// 1.1). Each mapping is expanded once however often merge keys reach it, so
// merge loops end and shared merges do not multiply. ok is false when n is
// not a mapping.
func Entries(n *yaml.Node) (out []Entry, ok bool) {
	n = Resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, false
	}
	seen := map[string]bool{}
	var merged []Entry
	visited := map[*yaml.Node]bool{n: true}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if IsMergeKey(k) {
			merged = expand(k, v, visited, merged, 1)
			continue
		}
		seen[k.Value] = true
		out = append(out, Entry{Key: k.Value, KeyNode: k, Value: Resolve(v), Raw: v})
	}
	for _, e := range merged {
		if len(out) >= MaxEntries {
			break
		}
		if !seen[e.Key] {
			seen[e.Key] = true
			out = append(out, e)
		}
	}
	return out, true
}

// expand appends the pairs merge key k (with value v) brings, in
// precedence order, marked with k.
func expand(k, v *yaml.Node, visited map[*yaml.Node]bool, out []Entry, depth int) []Entry {
	for _, src := range mergeSources(v) {
		src = Resolve(src)
		if src == nil || src.Kind != yaml.MappingNode || visited[src] || depth > MaxDepth || len(out) >= MaxEntries {
			continue
		}
		visited[src] = true
		var nested []Entry
		for i := 0; i+1 < len(src.Content); i += 2 {
			sk, sv := src.Content[i], src.Content[i+1]
			if IsMergeKey(sk) {
				nested = expand(k, sv, visited, nested, depth+1)
				continue
			}
			out = append(out, Entry{Key: sk.Value, KeyNode: sk, Value: Resolve(sv), Raw: sv, Merged: k})
		}
		out = append(out, nested...)
	}
	return out
}

// MergeSources returns the mappings a merge key's value names: one mapping
// or a list of them (aliases resolved; anything else is left out).
func MergeSources(v *yaml.Node) []*yaml.Node {
	var out []*yaml.Node
	for _, s := range mergeSources(v) {
		if s = Resolve(s); s != nil && s.Kind == yaml.MappingNode {
			out = append(out, s)
		}
	}
	return out
}

func mergeSources(v *yaml.Node) []*yaml.Node {
	v = Resolve(v)
	if v != nil && v.Kind == yaml.SequenceNode {
		return v.Content
	}
	return []*yaml.Node{v}
}

// Lookup returns the value (resolved) of key in a mapping node, merged
// pairs included, or nil.
func Lookup(n *yaml.Node, key string) *yaml.Node {
	e, found, _ := Find(n, key)
	if !found {
		return nil
	}
	return e.Value
}

// Own returns the pair of mapping m whose key is key among m's own pairs
// (not merged ones). dup is the key node of a second pair with that key
// (the parser accepts it; the decoder refuses it), or nil.
func Own(m *yaml.Node, key string) (e Entry, found bool, dup *yaml.Node) {
	m = Resolve(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return Entry{}, false, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if IsMergeKey(k) {
			continue
		}
		rk := Resolve(k)
		if rk == nil || rk.Kind != yaml.ScalarNode || rk.Value != key {
			continue
		}
		if found {
			return e, true, k
		}
		v := m.Content[i+1]
		e, found = Entry{Key: key, KeyNode: k, Value: Resolve(v), Raw: v}, true
	}
	return e, found, nil
}

// Find returns the pair of mapping m for key: its own pair, or else the
// first one its merge keys bring (Entry.Merged set to the merge key of m
// it came through). dup is as for Own, for the mapping the pair was found
// in.
func Find(m *yaml.Node, key string) (e Entry, found bool, dup *yaml.Node) {
	return find(Resolve(m), key, map[*yaml.Node]bool{}, 0)
}

func find(m *yaml.Node, key string, visited map[*yaml.Node]bool, depth int) (Entry, bool, *yaml.Node) {
	if m == nil || m.Kind != yaml.MappingNode || visited[m] || depth > MaxDepth {
		return Entry{}, false, nil
	}
	visited[m] = true
	if e, found, dup := Own(m, key); found {
		return e, found, dup
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if !IsMergeKey(k) {
			continue
		}
		for _, s := range mergeSources(m.Content[i+1]) {
			if e, found, dup := find(Resolve(s), key, visited, depth+1); found {
				e.Merged = k
				return e, true, dup
			}
		}
	}
	return Entry{}, false, nil
}

// Keys returns the own keys of a mapping (not merged ones), sorted, for
// messages.
func Keys(m *yaml.Node) []string {
	m = Resolve(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	var out []string
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := Resolve(m.Content[i]); k != nil && !IsMergeKey(m.Content[i]) && k.Kind == yaml.ScalarNode {
			out = append(out, k.Value)
		}
	}
	slices.Sort(out)
	return out
}
