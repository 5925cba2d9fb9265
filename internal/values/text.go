package values

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
	sigsyaml "sigs.k8s.io/yaml"
)

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// text is a values file being edited: its bytes and where each line starts,
// counted as the YAML parser counts (CR LF, CR, LF, NEL, LS and PS end a
// line; a leading byte order mark is not part of line 1; columns count
// characters, not bytes).
type text struct {
	src        []byte
	lineStarts []int // lineStarts[i] is the offset of line i+1
}

func newText(src []byte) *text {
	start := 0
	if bytes.HasPrefix(src, utf8BOM) {
		start = len(utf8BOM)
	}
	t := &text{src: src, lineStarts: make([]int, 1, 64+len(src)/32)}
	t.lineStarts[0] = start
	for i := start; i < len(src); {
		if n := breakLen(src, i); n > 0 {
			i += n
			t.lineStarts = append(t.lineStarts, i)
			continue
		}
		i++
	}
	return t
}

// breakLen returns the length of the line break at i, or 0.
func breakLen(b []byte, i int) int {
	switch b[i] {
	case '\n':
		return 1
	case '\r':
		if i+1 < len(b) && b[i+1] == '\n' {
			return 2
		}
		return 1
	case 0xC2: // NEL
		if i+1 < len(b) && b[i+1] == 0x85 {
			return 2
		}
	case 0xE2: // LS, PS
		if i+2 < len(b) && b[i+1] == 0x80 && (b[i+2] == 0xA8 || b[i+2] == 0xA9) {
			return 3
		}
	}
	return 0
}

// offset returns the byte offset of a node's position, or -1.
func (t *text) offset(n *yaml.Node) int {
	if n.Line < 1 || n.Line > len(t.lineStarts) || n.Column < 1 {
		return -1
	}
	p := t.lineStarts[n.Line-1]
	for c := 1; c < n.Column; c++ {
		if p >= len(t.src) || breakLen(t.src, p) > 0 {
			return -1
		}
		_, size := utf8.DecodeRune(t.src[p:])
		p += size
	}
	return p
}

func (t *text) at(i int) byte {
	if i < len(t.src) {
		return t.src[i]
	}
	return 0
}

func (t *text) isBlank(i int) bool { c := t.at(i); return c == ' ' || c == '\t' }

// isBlankz reports a space, tab, line break or the end of the text at i.
func (t *text) isBlankz(i int) bool {
	return i >= len(t.src) || t.isBlank(i) || breakLen(t.src, i) > 0
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// skipProperties skips the anchor (&name) and tag (!tag) in front of a node's
// content at p. It returns the offset right after the last property and the
// offset of the content (after blanks, line breaks and comments).
func (t *text) skipProperties(p int) (propsEnd, content int) {
	propsEnd = p
	for {
		switch t.at(p) {
		case '&':
			p++
			for p < len(t.src) && (isAlnum(t.src[p]) || t.src[p] == '_' || t.src[p] == '-') {
				p++
			}
		case '!':
			for !t.isBlankz(p) {
				p++
			}
		default:
			return propsEnd, p
		}
		propsEnd = p
		p = t.skipSpace(p)
	}
}

// skipSpace skips blanks, line breaks and comments.
func (t *text) skipSpace(p int) int {
	for p < len(t.src) {
		switch {
		case t.isBlank(p):
			p++
		case breakLen(t.src, p) > 0:
			p += breakLen(t.src, p)
		case t.src[p] == '#':
			for p < len(t.src) && breakLen(t.src, p) == 0 {
				p++
			}
		default:
			return p
		}
	}
	return p
}

// scalarSpan returns the byte span of a scalar node's content (without its
// properties), checked against the node's value. It refuses block scalars and
// plain scalars that continue on the next line.
func (t *text) scalarSpan(n *yaml.Node, flow bool) (start, end int, problem string) {
	p := t.offset(n)
	if p < 0 {
		return 0, 0, "its position is outside the file"
	}
	_, start = t.skipProperties(p)
	switch t.at(start) {
	case '|', '>':
		return 0, 0, "it is a block scalar (| or >); write it as a quoted string"
	case '"':
		end = start + 1
		for end < len(t.src) && t.src[end] != '"' {
			if t.src[end] == '\\' {
				end++
			}
			end++
		}
		end++
	case '\'':
		end = start + 1
		for end < len(t.src) {
			if t.src[end] == '\'' {
				if t.at(end+1) != '\'' {
					break
				}
				end++
			}
			end++
		}
		end++
	default:
		end = t.plainEnd(start, flow)
		if string(t.src[start:end]) != n.Value {
			return 0, 0, "it is a plain scalar that continues on the next line; write it on one line or quote it"
		}
		return start, end, ""
	}
	if end > len(t.src) {
		return 0, 0, "its closing quote is missing"
	}
	var d yaml.Node
	if err := yaml.Unmarshal(t.src[start:end], &d); err != nil || len(d.Content) != 1 || d.Content[0].Value != n.Value {
		return 0, 0, "its text could not be located"
	}
	return start, end, ""
}

// plainEnd returns the end of the plain scalar starting at p on its line.
func (t *text) plainEnd(p int, flow bool) int {
	end := p
	for i := p; i < len(t.src) && breakLen(t.src, i) == 0; i++ {
		c := t.src[i]
		if t.isBlank(i) {
			if t.at(i+1) == '#' {
				break
			}
			continue
		}
		if c == ':' && (t.isBlankz(i+1) || flow && strings.IndexByte(",?[]{}", t.at(i+1)) >= 0) {
			break
		}
		if flow && strings.IndexByte(",[]{}", c) >= 0 {
			break
		}
		end = i + 1
	}
	return end
}

// Scalar styles.
const quotedStyles = yaml.DoubleQuotedStyle | yaml.SingleQuotedStyle
const blockStyles = yaml.LiteralStyle | yaml.FoldedStyle

// render writes v as a scalar in the style of n: quoted stays quoted the same
// way; plain stays plain unless v would then read as something other than
// the string v, in which case it is double-quoted.
func render(n *yaml.Node, v string, flow bool) string {
	switch {
	case n.Style&yaml.SingleQuotedStyle != 0 && printableLine(v):
		return "'" + strings.ReplaceAll(v, "'", "''") + "'"
	case n.Style&quotedStyles != 0:
		return strconv.Quote(v)
	case plainSafe(v, flow):
		return v
	}
	return strconv.Quote(v)
}

// printableLine reports whether s holds only printable characters and no
// line break, so that it can be single-quoted as it is.
func printableLine(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0x85 || r == 0x2028 || r == 0x2029 || r == utf8.RuneError || r == 0xFEFF {
			return false
		}
	}
	return true
}

// plainSafe reports whether v can be written as a plain scalar and still be
// read as the string v, both by mgo's header parser (YAML 1.2 rules) and by
// Helm, which reads values with sigs.k8s.io/yaml (YAML 1.1 rules, where
// 1.10 is a number and on, yes and y are booleans).
func plainSafe(v string, flow bool) bool {
	if v == "" || !isAlnum(v[0]) || v[len(v)-1] == ':' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if !isAlnum(v[i]) && strings.IndexByte("._-/:@+", v[i]) < 0 {
			return false
		}
	}
	doc := "k: " + v
	if flow {
		doc = "{k: " + v + "}"
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &n); err != nil || len(n.Content) != 1 {
		return false
	}
	m := n.Content[0]
	if m.Kind != yaml.MappingNode || len(m.Content) != 2 {
		return false
	}
	if s := m.Content[1]; s.Kind != yaml.ScalarNode || s.Tag != "!!str" || s.Value != v || s.Style != 0 {
		return false
	}
	var h map[string]any
	if err := sigsyaml.Unmarshal([]byte(doc), &h); err != nil {
		return false
	}
	got, ok := h["k"].(string)
	return ok && got == v
}
