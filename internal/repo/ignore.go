package repo

import (
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/mygitops/mgo/internal/yamlnode"
)

// IgnoreDifference is one rule of ignoreDifferences, in a release header or
// in a cluster's settings of mygitops.yaml (the names are Argo CD's):
//
//	ignoreDifferences:
//	- kind: Deployment                    # required; "*" for any kind
//	  group: apps                         # optional: any group when left out ("" is the core group)
//	  name: web                           # optional
//	  namespace: app                      # optional
//	  jsonPointers: [/spec/replicas]      # RFC 6901, ~1 for '/' and ~0 for '~'
//	  managedFieldsManagers: [kube-controller-manager] # fields these field managers own
//
// The fields a rule names are neither drift nor reverted: mgo keeps their
// live values when it upgrades the object for another reason.
type IgnoreDifference struct {
	Group     string // "*" when left out: any group
	Kind      string // "*" for any kind
	Name      string // "" for any name
	Namespace string // "" for any namespace
	// JSONPointers are RFC 6901 pointers, as written (ParsePointer).
	JSONPointers []string
	// ManagedFieldsManagers are field managers whose fields are left to them.
	ManagedFieldsManagers []string
	File                  string
	Line                  int
}

// Matches reports whether the rule targets an object.
func (d IgnoreDifference) Matches(group, kind, namespace, name string) bool {
	return (d.Group == "*" || d.Group == group) && (d.Kind == "*" || d.Kind == kind) &&
		(d.Name == "" || d.Name == name) && (d.Namespace == "" || d.Namespace == namespace)
}

// ParsePointer parses an RFC 6901 JSON pointer into its unescaped tokens.
func ParsePointer(p string) ([]string, error) {
	if p == "" {
		return nil, fmt.Errorf("empty: it would name the whole object")
	}
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("must start with '/'")
	}
	toks := strings.Split(p[1:], "/")
	for i, t := range toks {
		for j := 0; j < len(t); j++ {
			if t[j] == '~' && (j+1 == len(t) || (t[j+1] != '0' && t[j+1] != '1')) {
				return nil, fmt.Errorf("'~' must be followed by 0 (for '~') or 1 (for '/')")
			}
		}
		toks[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return toks, nil
}

// ownManager is mgo's own field manager (kube.FieldManager).
const ownManager = "mgo"

var ignoreKeys = []string{"group", "kind", "name", "namespace", "jsonPointers", "managedFieldsManagers"}

// parseIgnoreDifferences reads a list of rules at where (for messages). ok
// is false when any rule has an error: ignoring less than the repository
// says would revert fields it leaves alone, so the caller does not sync
// with a part of the rules.
func parseIgnoreDifferences(file, where string, n *yaml.Node, ps *problems) ([]IgnoreDifference, bool) {
	list := yamlnode.Resolve(n)
	if list == nil || yamlnode.IsNull(list) {
		return nil, true
	}
	if list.Kind != yaml.SequenceNode {
		ps.errorf(file, n.Line, "%s must be a list of rules (kind, jsonPointers, ...), not %s", where, yamlnode.KindName(n))
		return nil, false
	}
	var out []IgnoreDifference
	ok := true
	for i, item := range list.Content {
		d, valid := parseIgnoreDifference(file, fmt.Sprintf("%s[%d]", where, i), item, ps)
		if !valid {
			ok = false
			continue
		}
		out = append(out, d)
	}
	return out, ok
}

func parseIgnoreDifference(file, where string, n *yaml.Node, ps *problems) (IgnoreDifference, bool) {
	d := IgnoreDifference{Group: "*", File: file, Line: yamlnode.Resolve(n).Line}
	es, isMap := yamlnode.Entries(n)
	if !isMap {
		ps.errorf(file, d.Line, "%s must be a mapping (kind, jsonPointers, ...), not %s", where, yamlnode.KindName(n))
		return d, false
	}
	ok := true
	for _, e := range es {
		switch e.Key {
		case "group", "kind", "name", "namespace":
			v, isScalar := yamlnode.Scalar(e.Value)
			if !isScalar || e.Value.Tag != "!!str" {
				ps.errorf(file, e.Value.Line, "%s.%s must be a string, not %s", where, e.Key, scalarKind(e.Value))
				ok = false
				continue
			}
			switch e.Key {
			case "group":
				d.Group = v
			case "kind":
				d.Kind = v
			case "name":
				d.Name = v
			case "namespace":
				d.Namespace = v
			}
			if v == "" && e.Key != "group" {
				ps.errorf(file, e.Value.Line, "%s.%s is empty (leave it out to match any %s)", where, e.Key, e.Key)
				ok = false
			}
		case "jsonPointers":
			ptrs, valid := stringList(file, where+"."+e.Key, e.Value, ps)
			for i, p := range ptrs {
				if msg := checkIgnorePointer(p.v); msg != "" {
					ps.errorf(file, p.line, "%s.%s[%d]: %q: %s", where, e.Key, i, p.v, msg)
					valid = false
					continue
				}
				d.JSONPointers = append(d.JSONPointers, p.v)
			}
			ok = ok && valid
		case "managedFieldsManagers":
			ms, valid := stringList(file, where+"."+e.Key, e.Value, ps)
			for i, m := range ms {
				if m.v == ownManager {
					ps.errorf(file, m.line, "%s.%s[%d]: %q is mgo's own field manager: it would leave every field mgo applies alone", where, e.Key, i, m.v)
					valid = false
					continue
				}
				d.ManagedFieldsManagers = append(d.ManagedFieldsManagers, m.v)
			}
			ok = ok && valid
		default:
			ps.errorf(file, e.KeyNode.Line, "%s: unknown key %q (known: %s)", where, e.Key, strings.Join(ignoreKeys, ", "))
			ok = false
		}
	}
	if d.Kind == "" && yamlnode.Lookup(n, "kind") == nil {
		ps.errorf(file, d.Line, "%s: kind missing (the kind of the objects the rule is for, or \"*\")", where)
		ok = false
	}
	if ok && len(d.JSONPointers) == 0 && len(d.ManagedFieldsManagers) == 0 {
		ps.errorf(file, d.Line, "%s: nothing to ignore: give jsonPointers or managedFieldsManagers", where)
		ok = false
	}
	return d, ok
}

// checkIgnorePointer returns what is wrong with a pointer of a rule, or "".
func checkIgnorePointer(p string) string {
	toks, err := ParsePointer(p)
	if err != nil {
		return "not a JSON pointer: " + err.Error()
	}
	switch {
	case toks[0] == "apiVersion" || toks[0] == "kind":
		return "names the identity of the object, which cannot be ignored"
	case toks[0] == "metadata" && (len(toks) == 1 || slices.Contains([]string{"name", "namespace", "managedFields"}, toks[1]) && len(toks) == 2):
		return "names the identity of the object, which cannot be ignored"
	case toks[0] == "metadata" && len(toks) == 2 && (toks[1] == "labels" || toks[1] == "annotations"):
		return "ignore single " + toks[1] + " (e.g. /metadata/" + toks[1] + "/example.com~1key), not all: mgo and Helm set some of their own"
	}
	return ""
}

type lineString struct {
	v    string
	line int
}

// stringList reads a non-empty list of non-empty strings.
func stringList(file, where string, n *yaml.Node, ps *problems) ([]lineString, bool) {
	list := yamlnode.Resolve(n)
	if list == nil || list.Kind != yaml.SequenceNode {
		ps.errorf(file, n.Line, "%s must be a list of strings, not %s", where, yamlnode.KindName(n))
		return nil, false
	}
	if len(list.Content) == 0 {
		ps.errorf(file, n.Line, "%s is empty (leave it out, or name at least one)", where)
		return nil, false
	}
	var out []lineString
	ok := true
	for i, item := range list.Content {
		v, isScalar := yamlnode.Scalar(item)
		switch {
		case !isScalar || yamlnode.Resolve(item).Tag != "!!str":
			ps.errorf(file, item.Line, "%s[%d] must be a string, not %s", where, i, scalarKind(yamlnode.Resolve(item)))
			ok = false
		case v == "":
			ps.errorf(file, item.Line, "%s[%d] is empty", where, i)
			ok = false
		default:
			out = append(out, lineString{v, item.Line})
		}
	}
	return out, ok
}
