package kube

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// Ignore names the fields of one object that mgo leaves as they are live
// (drift ignore rules): Respect turns an object as mgo would apply it into
// one that keeps those fields' live values, so that they are neither a
// difference (the local decision and the server-side dry-run compare the
// respected object) nor reverted (it is what is applied).
type Ignore struct {
	// Pointers are JSON pointers, as unescaped tokens.
	Pointers [][]string
	// Managers are field managers whose fields (by any operation) are
	// left to them.
	Managers []string
	// Appliers leaves to them the fields other field managers own by
	// apply and mgo does not, once mgo has applied the object (before,
	// a release mgo takes over from another tool is taken over whole).
	// The field managers of tools people run by hand (HumanAppliers)
	// are not left alone: what they apply is drift.
	Appliers bool
}

// HumanAppliers are the field managers of Helm's and kubectl's
// server-side applies.
var HumanAppliers = []string{"helm", "kubectl"}

// seg is a step of a path into an object: a JSON pointer token ('p': a
// field of a map or the index of a list), or a step of a field set ('f'
// a field, 'k' a list item by its key fields, 'v' a set item by value,
// 'i' an item by index), without its prefix.
type seg struct {
	kind byte
	s    string
}

// Edit is one change Respect made to an object: a field set to its live
// value, or removed. ApplyEdits makes the same changes to another copy of
// the object (what Helm renders).
type Edit struct {
	path   []seg
	value  any
	remove bool
}

// String is the path of the edit and what it does.
func (e Edit) String() string {
	var b strings.Builder
	for _, s := range e.path {
		switch s.kind {
		case 'p', 'f':
			b.WriteString("/" + strings.ReplaceAll(strings.ReplaceAll(s.s, "~", "~0"), "/", "~1"))
		default:
			b.WriteString("/[" + string(s.kind) + ":" + s.s + "]")
		}
	}
	if e.remove {
		return b.String() + " removed"
	}
	v, _ := json.Marshal(e.value)
	return b.String() + " kept at " + string(v)
}

// Respect returns a copy of wanted in which the fields ig names keep their
// values in live, and the edits that made it (none: wanted itself). For
// each field: when mgo owns it in live (its applied fields), wanted gets
// the live value, so the apply keeps both the value and mgo's ownership
// (leaving out a field only mgo owns would delete it); when mgo does not
// own it, or live has no such field, wanted leaves it out, so the apply
// neither sets it nor claims it from the manager that has it. A field
// another manager owns by apply (Ignore.Appliers) is left out unless mgo
// owns it too. With no live object (it will be created) nothing changes.
// mgo's and Helm's own labels and annotations, and the identity of the
// object, are never touched.
func (ig Ignore) Respect(wanted, live *unstructured.Unstructured) (*unstructured.Unstructured, []Edit) {
	if wanted == nil || live == nil {
		return wanted, nil
	}
	mine, _ := appliedFields(live, FieldManager)
	out := wanted.DeepCopy()
	var edits []Edit
	do := func(e Edit) {
		if _, ok := edit(out.Object, e.path, e); ok {
			edits = append(edits, e)
		}
	}
	remove := func(p []seg) {
		if _, in := get(out.Object, p); in {
			do(Edit{path: p, remove: true})
		}
	}
	keep := func(p []seg) {
		if protected(p) {
			return
		}
		lv, inLive := get(live.Object, p)
		if !inLive || !owns(mine, live.Object, p) {
			remove(p)
			return
		}
		if wv, in := get(out.Object, p); in && equal(wv, lv) {
			return
		}
		do(Edit{path: p, value: runtime.DeepCopyJSONValue(lv)})
	}
	for _, ptr := range ig.Pointers {
		p := make([]seg, len(ptr))
		for i, t := range ptr {
			p[i] = seg{'p', t}
		}
		keep(p)
	}
	for _, f := range live.GetManagedFields() {
		if f.Manager == FieldManager || f.FieldsV1 == nil || f.Subresource == "status" {
			continue
		}
		byRule := slices.Contains(ig.Managers, f.Manager)
		byApply := ig.Appliers && mine != nil && f.Operation == metav1.ManagedFieldsOperationApply && !slices.Contains(HumanAppliers, f.Manager)
		if !byRule && !byApply {
			continue
		}
		var set map[string]any
		if json.Unmarshal(f.FieldsV1.Raw, &set) != nil {
			continue
		}
		for _, p := range leaves(set, nil) {
			switch {
			case byRule:
				keep(p)
			case !protected(p) && !owns(mine, live.Object, p):
				remove(p)
			}
		}
	}
	return out, edits
}

// ApplyEdits makes the edits of Respect to obj (another rendering of the
// same object); an edit whose place obj does not have is skipped.
func ApplyEdits(obj map[string]any, edits []Edit) {
	for _, e := range edits {
		edit(obj, e.path, e)
	}
}

// EditsEqual reports whether two lists of edits are the same.
func EditsEqual(a, b []Edit) bool {
	return slices.EqualFunc(a, b, func(x, y Edit) bool {
		return x.remove == y.remove && slices.Equal(x.path, y.path) && equal(x.value, y.value)
	})
}

// protected reports whether a path is one Respect never touches: the
// identity of the object, whole label or annotation maps, and the labels
// and annotations mgo and Helm set.
func protected(p []seg) bool {
	if len(p) == 0 || p[0].s == "apiVersion" || p[0].s == "kind" {
		return true
	}
	if p[0].s != "metadata" {
		return false
	}
	if len(p) == 1 || len(p) == 2 && slices.Contains([]string{"name", "namespace", "labels", "annotations", "managedFields"}, p[1].s) {
		return true
	}
	if len(p) == 3 && (p[1].s == "labels" || p[1].s == "annotations") {
		k := p[2].s
		return strings.HasPrefix(k, OwnerGroup+"/") || strings.HasPrefix(k, "meta.helm.sh/") || k == "app.kubernetes.io/managed-by"
	}
	return false
}

// leaves lists the paths of the fields a field set owns: its leaves, and
// list items owned whole. The key fields of a keyed item are its identity,
// not leaves of their own.
func leaves(set map[string]any, prefix []seg) [][]seg {
	var out [][]seg
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range set {
			if k != "." && !yield(k) {
				return
			}
		}
	}) {
		kind, rest, ok := strings.Cut(k, ":")
		if !ok || len(kind) != 1 {
			continue
		}
		p := append(slices.Clone(prefix), seg{kind[0], rest})
		sub, _ := set[k].(map[string]any)
		children := map[string]any{}
		for ck, cv := range sub {
			if ck != "." {
				children[ck] = cv
			}
		}
		if kind == "k" {
			var key map[string]any
			if json.Unmarshal([]byte(rest), &key) == nil {
				for f := range key {
					delete(children, "f:"+f)
				}
			}
		}
		if len(children) == 0 {
			out = append(out, p)
			continue
		}
		out = append(out, leaves(children, p)...)
	}
	return out
}

// step returns the child of node at s, and its index in a list.
func step(node any, s seg) (any, int, bool) {
	switch n := node.(type) {
	case map[string]any:
		if s.kind == 'p' || s.kind == 'f' {
			v, ok := n[s.s]
			return v, -1, ok
		}
	case []any:
		if j := itemIndex(n, s); j >= 0 {
			return n[j], j, true
		}
	}
	return nil, -1, false
}

// itemIndex is the index of the item of a list that s names, or -1.
func itemIndex(l []any, s seg) int {
	switch s.kind {
	case 'p', 'i':
		if s.s == "" || strings.Trim(s.s, "0123456789") != "" || (len(s.s) > 1 && s.s[0] == '0') {
			return -1
		}
		j, err := strconv.Atoi(s.s)
		if err != nil || j >= len(l) {
			return -1
		}
		return j
	case 'k':
		return keyedIndex(l, s.s)
	case 'v':
		var v any
		if json.Unmarshal([]byte(s.s), &v) != nil {
			return -1
		}
		return slices.IndexFunc(l, func(x any) bool { return equal(v, x) })
	}
	return -1
}

// get returns the value at a path.
func get(obj any, p []seg) (any, bool) {
	node := obj
	for _, s := range p {
		child, _, ok := step(node, s)
		if !ok {
			return nil, false
		}
		node = child
	}
	return node, true
}

// owns reports whether the field set owned (of live) holds the field at a
// path, or a value that contains it whole (an atomic map or list).
func owns(owned map[string]any, live any, p []seg) bool {
	node := live
	for _, s := range p {
		if owned == nil {
			return false
		}
		if len(owned) == 0 {
			return true // owned whole
		}
		child, j, ok := step(node, s)
		if !ok {
			return false
		}
		if _, isMap := node.(map[string]any); isMap {
			owned = childSet(owned, "f:"+s.s)
		} else {
			owned = itemFields(owned, child, j)
		}
		node = child
	}
	return owned != nil
}

// childSet is the field set below key; nil when there is none (an owned
// leaf is an empty, non-nil set).
func childSet(owned map[string]any, key string) map[string]any {
	v, ok := owned[key]
	if !ok {
		return nil
	}
	c, _ := v.(map[string]any)
	if c == nil {
		c = map[string]any{}
	}
	return c
}

// edit makes an edit at path p below node, creating missing maps on the
// way to a value it sets; it returns the new node (a list may be another
// slice) and whether it changed anything.
func edit(node any, p []seg, e Edit) (any, bool) {
	s, last := p[0], len(p) == 1
	switch n := node.(type) {
	case map[string]any:
		if s.kind != 'p' && s.kind != 'f' {
			return node, false
		}
		if last {
			if e.remove {
				_, ok := n[s.s]
				delete(n, s.s)
				return n, ok
			}
			n[s.s] = runtime.DeepCopyJSONValue(e.value)
			return n, true
		}
		child, ok := n[s.s]
		if !ok || child == nil {
			if e.remove || (p[1].kind != 'p' && p[1].kind != 'f') {
				return n, false
			}
			child = map[string]any{}
		}
		c, done := edit(child, p[1:], e)
		if done {
			n[s.s] = c
		}
		return n, done
	case []any:
		j := itemIndex(n, s)
		if last {
			switch {
			case e.remove && j >= 0:
				return slices.Delete(slices.Clone(n), j, j+1), true
			case e.remove:
				return n, false
			case j >= 0:
				n[j] = runtime.DeepCopyJSONValue(e.value)
				return n, true
			case s.kind == 'k' || s.kind == 'v':
				return append(n, runtime.DeepCopyJSONValue(e.value)), true
			}
			return n, false
		}
		if j < 0 {
			return n, false
		}
		c, done := edit(n[j], p[1:], e)
		if done {
			n[j] = c
		}
		return n, done
	}
	return node, false
}

// Empty reports whether ig leaves nothing alone.
func (ig Ignore) Empty() bool {
	return len(ig.Pointers) == 0 && len(ig.Managers) == 0 && !ig.Appliers
}
