package repo

import (
	"errors"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// entry is one key/value pair of a YAML mapping, aliases resolved.
type entry struct {
	Key   string
	KeyN  *yaml.Node
	Value *yaml.Node
}

// resolve follows alias nodes to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// entries returns the pairs of a mapping node in order, with `<<` merge keys
// expanded (explicit keys win over merged ones, as in YAML 1.1). ok is false
// when n is not a mapping.
func entries(n *yaml.Node) (out []entry, ok bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, false
	}
	var merged []entry
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Tag == "!!merge" || (k.Value == "<<" && k.Style == 0) {
			for _, src := range mergeSources(v) {
				es, _ := entries(src)
				merged = append(merged, es...)
			}
			continue
		}
		seen[k.Value] = true
		out = append(out, entry{Key: k.Value, KeyN: k, Value: resolve(v)})
	}
	for _, e := range merged {
		if !seen[e.Key] {
			seen[e.Key] = true
			out = append(out, e)
		}
	}
	return out, true
}

func mergeSources(v *yaml.Node) []*yaml.Node {
	v = resolve(v)
	if v != nil && v.Kind == yaml.SequenceNode {
		return v.Content
	}
	return []*yaml.Node{v}
}

// lookup returns the value of key in a mapping node, or nil.
func lookup(n *yaml.Node, key string) *yaml.Node {
	es, _ := entries(n)
	for _, e := range es {
		if e.Key == key {
			return e.Value
		}
	}
	return nil
}

// scalar returns the value of a scalar node; ok is false for other kinds and
// for null.
func scalar(n *yaml.Node) (string, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", false
	}
	return n.Value, true
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// yamlErrorLine extracts the line number from a YAML parser error, or 0.
func yamlErrorLine(err error) int {
	var te *yaml.TypeError
	msg := err.Error()
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

// kindName names a node kind for messages.
func kindName(n *yaml.Node) string {
	n = resolve(n)
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return "a scalar"
	}
	return "a document"
}
