package repo

import (
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/mygitops/mgo/internal/yamlnode"
)

// Dependency is one entry of a header's dependsOn: a release of the same
// cluster that must be rolled out and healthy before this one is
// installed or upgraded.
type Dependency struct {
	Namespace, Name string
	Line            int
}

// Key is namespace/name.
func (d Dependency) Key() string { return d.Namespace + "/" + d.Name }

// Key is the release's namespace/name, as dependsOn names it.
func (r *Release) Key() string { return r.Header.Namespace + "/" + r.Header.Name }

// parseDependsOn reads the header's dependsOn: a list of "namespace/name"
// or "name" (a release of the same namespace as this one).
func parseDependsOn(file string, n *yaml.Node, namespace string, ps *problems) ([]Dependency, bool) {
	list := yamlnode.Resolve(n)
	if list == nil || yamlnode.IsNull(list) {
		return nil, true
	}
	if list.Kind != yaml.SequenceNode {
		ps.errorf(file, n.Line, "header: dependsOn must be a list of releases (namespace/name), not %s", yamlnode.KindName(n))
		return nil, false
	}
	ok := true
	var out []Dependency
	for i, item := range list.Content {
		v, isScalar := yamlnode.Scalar(item)
		if !isScalar || yamlnode.Resolve(item).Tag != "!!str" {
			ps.errorf(file, item.Line, "header: dependsOn[%d] must be a string (namespace/name), not %s", i, yamlnode.KindName(item))
			ok = false
			continue
		}
		ns, name, qualified := strings.Cut(v, "/")
		if !qualified {
			ns, name = namespace, v
		}
		if !isDNSLabel(ns, 63) || !isDNSLabel(name, 53) {
			ps.errorf(file, item.Line, "header: dependsOn[%d]: %q is not a release (namespace/name, or name for one in the same namespace)", i, v)
			ok = false
			continue
		}
		d := Dependency{Namespace: ns, Name: name, Line: item.Line}
		if slices.ContainsFunc(out, func(o Dependency) bool { return o.Key() == d.Key() }) {
			ps.errorf(file, item.Line, "header: dependsOn[%d]: %s is listed twice", i, d.Key())
			ok = false
			continue
		}
		out = append(out, d)
	}
	return out, ok
}

// checkDependencies refuses dependsOn entries naming no release of the
// cluster (releases of other clusters cannot be depended on: each cluster
// syncs by itself), a release naming itself, and cycles, which it names
// file by file. The releases concerned are not synced.
func checkDependencies(c *Cluster, ps *problems) {
	byKey := map[string]*Release{}
	for _, rl := range c.Releases {
		if rl.Header.Name != "" && rl.Header.Namespace != "" {
			if _, dup := byKey[rl.Key()]; !dup {
				byKey[rl.Key()] = rl
			}
		}
	}
	for _, rl := range c.Releases {
		for _, d := range rl.Header.DependsOn {
			switch {
			case d.Key() == rl.Key():
				ps.errorf(rl.File, d.Line, "header: dependsOn: %s is this release", d.Key())
				rl.Valid = false
			case byKey[d.Key()] == nil:
				ps.errorf(rl.File, d.Line, "header: dependsOn: no release %s in %s/%s (a release may depend only on releases of its own cluster)", d.Key(), InstallationsDir, c.Name)
				rl.Valid = false
			}
		}
	}
	checkRawDependencies(c, byKey, ps)
	// Cycles: a depth-first walk; a release met again while on the path
	// closes a cycle, reported once on each of its releases.
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	inCycle := map[string]bool{}
	var path []*Release
	var walk func(rl *Release)
	walk = func(rl *Release) {
		state[rl.Key()] = onPath
		path = append(path, rl)
		for _, d := range rl.Header.DependsOn {
			next := byKey[d.Key()]
			if next == nil || next == rl {
				continue
			}
			switch state[next.Key()] {
			case unseen:
				walk(next)
			case onPath:
				i := slices.Index(path, next)
				cycle := slices.Clone(path[i:])
				var steps []string
				for _, m := range cycle {
					steps = append(steps, fmt.Sprintf("%s (%s)", m.Key(), m.File))
				}
				steps = append(steps, next.Key())
				msg := strings.Join(steps, " → ")
				for _, m := range cycle {
					if inCycle[m.Key()] {
						continue
					}
					inCycle[m.Key()] = true
					ps.errorf(m.File, dependsLine(m), "header: dependsOn: cycle %s", msg)
					m.Valid = false
				}
			}
		}
		path = path[:len(path)-1]
		state[rl.Key()] = done
	}
	for _, rl := range c.Releases {
		if byKey[rl.Key()] == rl && state[rl.Key()] == unseen {
			walk(rl)
		}
	}
}

// dependsLine is the line of a release's first dependsOn entry (its header's
// line when it has none).
func dependsLine(rl *Release) int {
	if len(rl.Header.DependsOn) > 0 {
		return rl.Header.DependsOn[0].Line
	}
	return rl.Header.Line
}

// DependsOnKeys are the namespace/name of the releases it depends on.
func (r *Release) DependsOnKeys() []string {
	if len(r.Header.DependsOn) == 0 {
		return nil
	}
	out := make([]string, len(r.Header.DependsOn))
	for i, d := range r.Header.DependsOn {
		out[i] = d.Key()
	}
	return out
}

// parseRawHeader reads the header document of a raw manifest file: only
// `__mygitops: {dependsOn: [namespace/name, ...]}`. A name without a
// namespace is refused: a raw file has no namespace of its own.
func parseRawHeader(file string, doc *yaml.Node, rf *RawFile, ps *problems) bool {
	es, _ := yamlnode.Entries(doc)
	ok := true
	for _, e := range es {
		if e.Key != HeaderKey {
			ps.errorf(file, e.KeyNode.Line, "document 1: a header document holds only %s, not %q", HeaderKey, e.Key)
			ok = false
			continue
		}
		fields, isMap := yamlnode.Entries(e.Value)
		if !isMap {
			ps.errorf(file, e.Value.Line, "header %s must be a mapping, not %s", HeaderKey, yamlnode.KindName(e.Value))
			ok = false
			continue
		}
		for _, f := range fields {
			if f.Key != "dependsOn" {
				ps.errorf(file, f.KeyNode.Line, "header: unknown key %q (known in a raw manifest file: dependsOn)", f.Key)
				ok = false
				continue
			}
			deps, valid := parseDependsOn(file, f.Value, "", ps)
			rf.DependsOn, ok = deps, ok && valid
		}
	}
	return ok
}

// checkRawDependencies refuses a raw file's dependsOn entries that name no
// release of the cluster; the file is then not applied.
func checkRawDependencies(c *Cluster, byKey map[string]*Release, ps *problems) {
	for _, rf := range c.Raw {
		for _, d := range rf.DependsOn {
			if byKey[d.Key()] == nil {
				ps.errorf(rf.File, d.Line, "header: dependsOn: no release %s in %s/%s (a raw manifest file may depend only on releases of its own cluster)", d.Key(), InstallationsDir, c.Name)
				rf.Skipped++
			}
		}
	}
}
