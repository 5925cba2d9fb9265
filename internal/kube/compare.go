package kube

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Unchanged decides locally, without a request, whether a server-side
// apply of wanted by manager would leave live as it is. It answers true
// only when it is sure; otherwise it gives the reason it cannot decide,
// and the caller asks the API server (a server-side dry-run). It is sure
// when:
//
//   - manager owns fields of live by an apply (its managed fields), so
//     live is what an earlier apply of manager left, or became since;
//   - every value wanted sets equals live's value (extra fields in live,
//     set by defaulting or by other managers, are not looked at; a list
//     must have the same items in the same order; a field manager owns as
//     a whole, an atomic map or list, must equal live's exactly);
//   - every field manager owns in live is still in wanted, so the apply
//     removes nothing.
//
// What the API server would normalise (quantities such as 0.5 for 500m, a
// port given as a string, a field that defaulting fills in inside an
// atomic value) makes values differ here: undecided, never wrongly
// unchanged.
func Unchanged(wanted, live *unstructured.Unstructured, manager string) (bool, string) {
	if live == nil {
		return false, "not in the cache"
	}
	fields, err := appliedFields(live, manager)
	if err != nil {
		return false, err.Error()
	}
	want := wanted.DeepCopy()
	unstructured.RemoveNestedField(want.Object, "status")
	if path, ok := contains(want.Object, live.Object, fields, ""); !ok {
		return false, "differs at " + path
	}
	if path, ok := keeps(fields, want.Object, live.Object, ""); !ok {
		return false, "the apply removes " + path
	}
	return true, ""
}

// appliedFields returns the fields manager owns in live by an apply, as
// decoded FieldsV1 JSON.
func appliedFields(live *unstructured.Unstructured, manager string) (map[string]any, error) {
	for _, f := range live.GetManagedFields() {
		if f.Manager != manager || f.Operation != metav1.ManagedFieldsOperationApply || f.Subresource != "" {
			continue
		}
		if f.FieldsV1 == nil {
			return nil, fmt.Errorf("no fields of %s", manager)
		}
		var m map[string]any
		if err := json.Unmarshal(f.FieldsV1.Raw, &m); err != nil {
			return nil, fmt.Errorf("managed fields of %s: %w", manager, err)
		}
		return m, nil
	}
	return nil, fmt.Errorf("not applied by %s", manager)
}

// contains reports whether every value of want is in have. owned is the
// field set of the same node: a map or list the manager owns as a whole
// (atomic), or does not own at all, must be equal; in one it owns field
// by field, only the fields of want are looked at.
func contains(want, have any, owned map[string]any, path string) (string, bool) {
	_, isMap := want.(map[string]any)
	_, isList := want.([]any)
	if (isMap || isList) && len(owned) == 0 {
		return path, equal(want, have)
	}
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return path, false
		}
		for k, wv := range w {
			hv, ok := h[k]
			if !ok || wv == nil {
				return path + "." + k, false
			}
			if p, ok := contains(wv, hv, child(owned, "f:"+k), path+"."+k); !ok {
				return p, false
			}
		}
		return "", true
	case []any:
		h, ok := have.([]any)
		if !ok || len(h) != len(w) {
			return path, false
		}
		for i := range w {
			if p, ok := contains(w[i], h[i], itemFields(owned, h[i], i), path+"["+strconv.Itoa(i)+"]"); !ok {
				return p, false
			}
		}
		return "", true
	default:
		return path, equal(want, have)
	}
}

// itemFields is the field set of item, the i-th of a live list, in the
// field set of the list: by its key fields (defaulted ones included, hence
// the live item), its value or its index.
func itemFields(owned map[string]any, item any, i int) map[string]any {
	if c := child(owned, "i:"+strconv.Itoa(i)); c != nil {
		return c
	}
	for k, sub := range owned {
		c, _ := sub.(map[string]any)
		switch {
		case strings.HasPrefix(k, "k:"):
			if found, ok := keyedItem([]any{item}, k[2:]); ok && found != nil {
				return c
			}
		case strings.HasPrefix(k, "v:"):
			var v any
			if json.Unmarshal([]byte(k[2:]), &v) == nil && equal(v, item) {
				return c
			}
		}
	}
	return nil
}

// child is the field set below key, nil when there is none.
func child(owned map[string]any, key string) map[string]any {
	if owned == nil {
		return nil
	}
	c, ok := owned[key].(map[string]any)
	if !ok {
		return nil
	}
	return c
}

// keeps reports whether every field of the set owned is in want. have is
// the live value at the same place, with the same list items in the same
// order (contains checked it): list items are found by their keys in have,
// since keys hold defaulted fields (a port's protocol) that want may leave
// out.
func keeps(owned map[string]any, want, have any, path string) (string, bool) {
	for k, sub := range owned {
		if k == "." {
			continue
		}
		subset, _ := sub.(map[string]any)
		var next, nextHave any
		ok := false
		switch {
		case strings.HasPrefix(k, "f:"):
			m, isMap := want.(map[string]any)
			if isMap {
				next, ok = m[k[2:]]
			}
			if hm, isMap := have.(map[string]any); isMap {
				nextHave = hm[k[2:]]
			}
		case strings.HasPrefix(k, "k:"):
			w, isList := want.([]any)
			if j := keyedIndex(have, k[2:]); isList && j >= 0 && j < len(w) {
				next, nextHave, ok = w[j], have.([]any)[j], true
			}
		case strings.HasPrefix(k, "v:"):
			var v any
			if json.Unmarshal([]byte(k[2:]), &v) == nil {
				if l, isList := want.([]any); isList {
					ok = slices.ContainsFunc(l, func(x any) bool { return equal(v, x) })
				}
			}
			next = v
		case strings.HasPrefix(k, "i:"):
			i, err := strconv.Atoi(k[2:])
			if l, isList := want.([]any); isList && err == nil && i >= 0 && i < len(l) {
				next, ok = l[i], true
				if hl, isList := have.([]any); isList && i < len(hl) {
					nextHave = hl[i]
				}
			}
		}
		if !ok {
			return path + "/" + k, false
		}
		if len(subset) > 0 {
			if p, ok := keeps(subset, next, nextHave, path+"/"+k); !ok {
				return p, false
			}
		}
	}
	return "", true
}

// keyedIndex is the index of the item of a list whose fields have the
// values of the JSON key of a field set ({"name":"web"}), or -1.
func keyedIndex(list any, key string) int {
	l, ok := list.([]any)
	if !ok {
		return -1
	}
	for j, item := range l {
		if _, ok := keyedItem([]any{item}, key); ok {
			return j
		}
	}
	return -1
}

// keyedItem finds the item of a list whose fields have the values of the
// JSON key of a field set ({"name":"web"}).
func keyedItem(list any, key string) (any, bool) {
	l, ok := list.([]any)
	if !ok {
		return nil, false
	}
	var k map[string]any
	if json.Unmarshal([]byte(key), &k) != nil {
		return nil, false
	}
	for _, item := range l {
		m, ok := item.(map[string]any)
		if !ok {
			continue
		}
		match := true
		for f, v := range k {
			if !equal(v, m[f]) {
				match = false
				break
			}
		}
		if match {
			return item, true
		}
	}
	return nil, false
}

// equal compares decoded JSON values; numbers by value (1 equals 1.0).
func equal(a, b any) bool {
	if x, ok := number(a); ok {
		y, ok := number(b)
		return ok && x == y
	}
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok || len(av) != len(bv) {
			return false
		}
		for k, v := range av {
			w, ok := bv[k]
			if !ok || !equal(v, w) {
				return false
			}
		}
		return true
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			return false
		}
		for i := range av {
			if !equal(av[i], bv[i]) {
				return false
			}
		}
		return true
	default:
		return a == b
	}
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	case int32:
		return float64(n), true
	case float64:
		return n, !math.IsNaN(n)
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}
