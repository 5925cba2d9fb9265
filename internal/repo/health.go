package repo

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/mygitops/mgo/internal/health"
	"github.com/mygitops/mgo/internal/yamlnode"
)

// HealthRule is one rule of health, in a release header or in a cluster's
// settings of mygitops.yaml (the shape is Flux's healthCheckExprs):
//
//	health:
//	- apiVersion: cert-manager.io/v1   # required: the objects' group/version (v1 for the core group)
//	  kind: Certificate                # required
//	  current: "status.?conditions.orValue([]).exists(c, c.type == 'Ready' && c.status == 'True')" # required
//	  inProgress: "..."                # optional
//	  failed: "status.?conditions.orValue([]).exists(c, c.type == 'Issuing' && c.status == 'False' && c.reason == 'Failed')" # optional
//
// Its expressions are CEL (internal/health says what they see and how
// they are evaluated); each is compiled when the file is loaded. A rule
// says the status of the objects of its apiVersion and kind in place of
// kstatus; a release's rule for an apiVersion and kind replaces its
// cluster's.
type HealthRule struct {
	APIVersion string // as written
	Group      string // of APIVersion; "" for the core group
	Version    string // of APIVersion
	Kind       string
	Current    string
	InProgress string // "" when not given
	Failed     string // "" when not given
	File       string
	Line       int
}

// Rule is the rule as internal/health compiles it.
func (r HealthRule) Rule() health.Rule {
	return health.Rule{APIVersion: r.APIVersion, Kind: r.Kind, Current: r.Current, InProgress: r.InProgress, Failed: r.Failed,
		Source: r.File + ":" + strconv.Itoa(r.Line)}
}

var healthKeys = []string{"apiVersion", "kind", "current", "inProgress", "failed"}

// parseHealthRules reads a list of health rules at where (for messages),
// compiling every expression. ok is false when any rule has an error: a
// wait without a rule the repository gives would call objects ready that
// are not, so the caller does not sync with a part of the rules.
func parseHealthRules(file, where string, n *yaml.Node, ps *problems) ([]HealthRule, bool) {
	list := yamlnode.Resolve(n)
	if list == nil || yamlnode.IsNull(list) {
		return nil, true
	}
	if list.Kind != yaml.SequenceNode {
		ps.errorf(file, n.Line, "%s must be a list of rules (apiVersion, kind, current, ...), not %s", where, yamlnode.KindName(n))
		return nil, false
	}
	var out []HealthRule
	ok := true
	seen := map[string]int{} // apiVersion|kind -> line
	for i, item := range list.Content {
		at := fmt.Sprintf("%s[%d]", where, i)
		r, valid := parseHealthRule(file, at, item, ps)
		if !valid {
			ok = false
			continue
		}
		k := r.APIVersion + "|" + r.Kind
		if line, dup := seen[k]; dup {
			ps.errorf(file, r.Line, "%s: a second rule for %s %s (the first is at line %d)", at, r.APIVersion, r.Kind, line)
			ok = false
			continue
		}
		seen[k] = r.Line
		out = append(out, r)
	}
	return out, ok
}

func parseHealthRule(file, where string, n *yaml.Node, ps *problems) (HealthRule, bool) {
	r := HealthRule{File: file, Line: yamlnode.Resolve(n).Line}
	es, isMap := yamlnode.Entries(n)
	if !isMap {
		ps.errorf(file, r.Line, "%s must be a mapping (apiVersion, kind, current, ...), not %s", where, yamlnode.KindName(n))
		return r, false
	}
	ok := true
	for _, e := range es {
		if !slices.Contains(healthKeys, e.Key) {
			ps.errorf(file, e.KeyNode.Line, "%s: unknown key %q (known: %s)", where, e.Key, strings.Join(healthKeys, ", "))
			ok = false
			continue
		}
		v, isScalar := yamlnode.Scalar(e.Value)
		if !isScalar || e.Value.Tag != "!!str" {
			ps.errorf(file, e.Value.Line, "%s.%s must be a string, not %s", where, e.Key, scalarKind(e.Value))
			ok = false
			continue
		}
		if strings.TrimSpace(v) == "" {
			ps.errorf(file, e.Value.Line, "%s.%s is empty", where, e.Key)
			ok = false
			continue
		}
		switch e.Key {
		case "apiVersion":
			gv, err := schema.ParseGroupVersion(v)
			if err != nil || gv.Version == "" {
				ps.errorf(file, e.Value.Line, "%s.apiVersion: %q is not a group/version (e.g. cert-manager.io/v1, or v1 for the core group)", where, v)
				ok = false
				continue
			}
			r.APIVersion, r.Group, r.Version = v, gv.Group, gv.Version
		case "kind":
			r.Kind = v
		default:
			if err := health.Check(v); err != nil {
				ps.errorf(file, e.Value.Line, "%s.%s: %v", where, e.Key, err)
				ok = false
				continue
			}
			switch e.Key {
			case "current":
				r.Current = v
			case "inProgress":
				r.InProgress = v
			case "failed":
				r.Failed = v
			}
		}
	}
	for _, k := range []string{"apiVersion", "kind", "current"} {
		if yamlnode.Lookup(n, k) == nil {
			ps.errorf(file, r.Line, "%s: %s missing", where, k)
			ok = false
		}
	}
	return r, ok
}
