package secrets

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Masked replaces a secret value in everything mgo writes.
const Masked = "***"

// MinMaskedLen is the shortest value a Masker hides. Shorter values
// ("yes", "1", "on") would mask every occurrence of common words and
// numbers in a diff; docs/secrets.md says so.
const MinMaskedLen = 4

// Masker hides the values of secrets files in text: diffs, results,
// errors. It is built from the leaf values of a release's secrets files
// and replaces each value, its base64 form (a chart that puts it in a
// Secret's data or b64encs it), its escaped forms in JSON and YAML
// quoting, and each line of a multi-line value. The nil Masker and the
// zero Masker mask nothing. A Masker is safe for concurrent use.
type Masker struct {
	r *strings.Replacer
	n int
}

// NewMasker returns a Masker for the leaf values (strings and numbers) of
// the given values trees, as read from secrets files.
func NewMasker(trees ...map[string]any) *Masker {
	var vals []string
	for _, t := range trees {
		vals = leaves(t, vals)
	}
	return NewMaskerFor(vals...)
}

// NewMaskerFor returns a Masker for the given secret strings.
func NewMaskerFor(values ...string) *Masker {
	seen := map[string]bool{}
	var forms []string
	add := func(s string) {
		if len(s) >= MinMaskedLen && !seen[s] && s != Masked {
			seen[s] = true
			forms = append(forms, s)
		}
	}
	for _, v := range values {
		if len(v) < MinMaskedLen {
			continue
		}
		add(v)
		add(base64.StdEncoding.EncodeToString([]byte(v)))
		add(jsonEscaped(v))
		add(strings.ReplaceAll(v, "'", "''"))
		if strings.Contains(v, "\n") {
			for _, line := range strings.Split(v, "\n") {
				if line = strings.TrimSpace(line); len(line) >= 8 {
					add(line)
				}
			}
		}
	}
	if len(forms) == 0 {
		return &Masker{}
	}
	// Longest first: at one position the longer form wins (a value that
	// contains another value is masked whole).
	slices.SortStableFunc(forms, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(forms))
	for _, f := range forms {
		pairs = append(pairs, f, Masked)
	}
	return &Masker{r: strings.NewReplacer(pairs...), n: len(forms)}
}

func jsonEscaped(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if enc.Encode(s) != nil {
		return s
	}
	out := strings.TrimSuffix(b.String(), "\n")
	return strings.TrimSuffix(strings.TrimPrefix(out, `"`), `"`)
}

func leaves(v any, out []string) []string {
	switch v := v.(type) {
	case map[string]any:
		for _, x := range v {
			out = leaves(x, out)
		}
	case []any:
		for _, x := range v {
			out = leaves(x, out)
		}
	case string:
		out = append(out, v)
	case bool, nil:
	default: // numbers
		out = append(out, fmt.Sprint(v))
	}
	return out
}

// Empty reports whether the Masker masks nothing.
func (m *Masker) Empty() bool { return m == nil || m.r == nil }

// Mask returns s with every secret value replaced by Masked.
func (m *Masker) Mask(s string) string {
	if m.Empty() || s == "" {
		return s
	}
	return m.r.Replace(s)
}

// MaskDiff masks a unified diff. Beyond Mask, a removed line ('-') is
// masked from where its added counterpart ('+', same hunk, same text up
// to the mask) was masked: the live side of a changed secret shows the
// previous value, which no secrets file holds any more.
func (m *Masker) MaskDiff(diff string) string {
	if m.Empty() || diff == "" {
		return diff
	}
	lines := strings.SplitAfter(m.Mask(diff), "\n")
	var prefixes []string // of masked '+' lines in the current hunk
	hunkStart := 0
	flush := func(end int) {
		for i := hunkStart; i < end; i++ {
			l := lines[i]
			if !strings.HasPrefix(l, "-") || strings.HasPrefix(l, "---") {
				continue
			}
			for _, p := range prefixes {
				if strings.HasPrefix(l[1:], p) && !strings.HasPrefix(l[1+len(p):], Masked) {
					nl := ""
					if strings.HasSuffix(l, "\n") {
						nl = "\n"
					}
					lines[i] = "-" + p + Masked + " (previous value)" + nl
					break
				}
			}
		}
		prefixes = prefixes[:0]
	}
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "@@"):
			flush(i)
			hunkStart = i
		case strings.HasPrefix(l, "+") && !strings.HasPrefix(l, "+++"):
			if k := strings.Index(l, Masked); k > 0 {
				prefixes = append(prefixes, l[1:k])
			}
		}
	}
	flush(len(lines))
	return strings.Join(lines, "")
}
