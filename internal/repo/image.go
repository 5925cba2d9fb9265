package repo

import "github.com/distribution/reference"

// ImageRepository returns the repository of an image reference, its name
// without tag or digest, in its familiar form (nginx for
// docker.io/library/nginx:1.27), or image as written when it does not
// parse.
func ImageRepository(image string) string {
	ref, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return image
	}
	return reference.FamiliarName(reference.TrimNamed(ref))
}

// SameRepository reports whether two repository names name the same
// repository once normalized, as a deploy compares them (nginx and
// docker.io/library/nginx do). A name with a tag or digest is not a
// repository name: it matches only itself as written.
func SameRepository(a, b string) bool {
	if a == b {
		return true
	}
	na, err := reference.ParseNormalizedNamed(a)
	if err != nil || !reference.IsNameOnly(na) {
		return false
	}
	nb, err := reference.ParseNormalizedNamed(b)
	if err != nil || !reference.IsNameOnly(nb) {
		return false
	}
	return na.Name() == nb.Name()
}

// Nulls says what a null in an override layer does when values are
// merged (MergeValues).
type Nulls int

const (
	// KeepNulls keeps the null, as Helm merges several -f files: it then
	// removes the key from the chart's defaults when Helm coalesces the
	// user values over them.
	KeepNulls Nulls = iota
	// NullsDelete removes the key, as Helm coalesces user values over a
	// chart's defaults.
	NullsDelete
)

// MergeValues merges override over base, nested maps key by key (other
// values, lists included, are replaced whole), with nulls in override
// treated as nulls says. Neither map is changed.
func MergeValues(base, override map[string]any, nulls Nulls) map[string]any {
	out := make(map[string]any, len(base))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range override {
		if v == nil && nulls == NullsDelete {
			delete(out, k)
			continue
		}
		if vm, ok := v.(map[string]any); ok {
			if bm, ok := out[k].(map[string]any); ok {
				out[k] = MergeValues(bm, vm, nulls)
				continue
			}
		}
		out[k] = v
	}
	return out
}
