package repo

import "fmt"

// jsonValues returns v with the types the Kubernetes API machinery expects
// of an unstructured object: YAML integers (int, uint...) as int64, nested
// maps as map[string]any. Its deep copy panics on a plain int, so a raw
// manifest with `port: 80` would crash a diff.
func jsonValues(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonValues(e)
		}
		return x
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = jsonValues(e)
		}
		return out
	case []any:
		for i, e := range x {
			x[i] = jsonValues(e)
		}
		return x
	case int:
		return int64(x)
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case uint:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint64:
		return int64(x)
	case float32:
		return float64(x)
	}
	return v
}
