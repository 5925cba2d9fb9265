// Package yamlnode reads go.yaml.in/yaml/v3 node trees of files mgo does
// not trust: every file of the gitops repository is input written by whoever
// can merge to it. It is the one place that resolves aliases, expands `<<`
// merge keys and looks keys up, for the repository model (package repo) and
// the image edits (package values).
//
// A tree that passed Check has no alias cycle (no value contains itself,
// directly or through a merge key), is at most MaxDepth deep and expands
// through its aliases to at most MaxAliasNodes more nodes than it holds, so
// walking it, expanding its merge keys or decoding it terminates quickly.
// The walkers below also guard themselves (a visited set for merge keys, a
// bound on alias chains), so a tree that skipped Check cannot make them
// loop or recurse without end either.
package yamlnode

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Limits of Check.
const (
	// MaxDepth is the deepest nesting of collections a document may have,
	// counted through aliases. Helm values rarely go past 20 levels and
	// Kubernetes objects past 30; the YAML parser itself stops at 10000.
	MaxDepth = 1000
	// MaxAliasNodes is how many nodes the aliases of a document may add
	// when expanded (a billion-laughs document adds billions). A values file
	// that reuses an image block through an anchor adds a handful.
	MaxAliasNodes = 1 << 20
	// maxAliasChain bounds the walk from an alias to the node it names (one
	// step for trees the parser built).
	maxAliasChain = 64
)

// Error is a problem of a YAML document at a line.
type Error struct {
	Line int // 1-based; 0 when unknown
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return "line " + strconv.Itoa(e.Line) + ": " + e.Msg
	}
	return e.Msg
}

func errorf(line int, format string, args ...any) *Error {
	return &Error{Line: line, Msg: fmt.Sprintf(format, args...)}
}

// Resolve follows alias nodes to the node they name. A chain that does not
// end (only in trees not built by the parser) resolves to nil.
func Resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i == maxAliasChain {
			return nil
		}
		n = n.Alias
	}
	return n
}

// IsMergeKey reports whether k is the key `<<` of a YAML 1.1 merge.
func IsMergeKey(k *yaml.Node) bool {
	return k != nil && (k.Tag == "!!merge" || (k.Kind == yaml.ScalarNode && k.Value == "<<" && k.Style == 0))
}

// Scalar returns the value of a scalar node (aliases resolved); ok is false
// for other kinds and for null.
func Scalar(n *yaml.Node) (string, bool) {
	n = Resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", false
	}
	return n.Value, true
}

// IsNull reports whether n (resolved) is a null scalar.
func IsNull(n *yaml.Node) bool {
	n = Resolve(n)
	return n != nil && n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// KindName names a node's kind for messages: "a mapping", "a list",
// "null", "a scalar", "a document" or "nothing".
func KindName(n *yaml.Node) string {
	n = Resolve(n)
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

var yamlLine = regexp.MustCompile(`line (\d+)`)

// ErrorLine returns the line an error of this package or of the YAML
// parser names, or 0.
func ErrorLine(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Line
	}
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

// CheckUTF8 returns an *Error naming the line and byte offset of the first
// byte of b that is not UTF-8, or nil. (The YAML parser refuses such a byte
// too, but without saying where.)
func CheckUTF8(b []byte) error {
	if utf8.Valid(b) {
		return nil
	}
	off := 0
	for off < len(b) {
		r, size := utf8.DecodeRune(b[off:])
		if r == utf8.RuneError && size <= 1 {
			break
		}
		off += size
	}
	line := 1 + strings.Count(string(b[:off]), "\n")
	return errorf(line, "invalid UTF-8 at byte offset %d (byte 0x%02x); YAML files must be UTF-8", off, b[off])
}

// Parse parses every document of src and checks each (CheckUTF8, Check).
// Errors are *Error values or the parser's errors (ErrorLine finds their
// line).
func Parse(src []byte) ([]*yaml.Node, error) {
	if err := CheckUTF8(src); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(strings.NewReader(string(src)))
	var docs []*yaml.Node
	for {
		d := new(yaml.Node)
		err := dec.Decode(d)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return docs, err
		}
		if err := Check(d); err != nil {
			return docs, err
		}
		docs = append(docs, d)
	}
}

// stat is what Check knows of a node once visited.
type stat struct {
	size   int // nodes, aliases expanded (saturated at sizeCap)
	height int // nesting below the node, aliases expanded
}

const sizeCap = 1 << 50

// Check verifies that the tree under n has no alias naming a node that
// contains it (which includes merge keys that merge their own mapping), is
// at most MaxDepth deep and that its aliases add at most MaxAliasNodes
// nodes when expanded. It visits every node once (the expansion is counted,
// not done). The error is an *Error with the line of the offending node.
func Check(n *yaml.Node) error {
	c := &checker{memo: map[*yaml.Node]stat{}, open: map[*yaml.Node]bool{}}
	st, err := c.visit(n, 0)
	if err != nil {
		return err
	}
	if extra := st.size - len(c.memo); extra > MaxAliasNodes {
		return errorf(c.bigAlias, "aliases expand the document by more than %d nodes (an alias bomb?); the largest is the alias at this line", MaxAliasNodes)
	}
	return nil
}

type checker struct {
	memo     map[*yaml.Node]stat
	open     map[*yaml.Node]bool // nodes being visited: the current path
	bigAlias int                 // line of the alias that expands most
	bigSize  int
}

func (c *checker) visit(n *yaml.Node, depth int) (stat, error) {
	if n == nil {
		return stat{}, nil
	}
	if st, ok := c.memo[n]; ok {
		if depth+st.height > MaxDepth {
			return st, errorf(n.Line, "nesting deeper than %d levels (aliases included)", MaxDepth)
		}
		return st, nil
	}
	if depth > MaxDepth {
		return stat{}, errorf(n.Line, "nesting deeper than %d levels (aliases included)", MaxDepth)
	}
	if n.Kind == yaml.AliasNode {
		t := n.Alias
		if t == nil {
			c.memo[n] = stat{size: 1}
			return stat{size: 1}, nil
		}
		if c.open[t] {
			what := "alias *" + n.Value
			if IsMergeKey(c.mergeKeyFor(n)) {
				what = "merge key <<: *" + n.Value
			}
			return stat{}, errorf(n.Line, "%s names the node at line %d that contains it: a value cannot include itself", what, t.Line)
		}
		c.open[n] = true
		st, err := c.visit(t, depth)
		delete(c.open, n)
		if err != nil {
			return stat{}, err
		}
		if st.size > c.bigSize {
			c.bigSize, c.bigAlias = st.size, n.Line
		}
		c.memo[n] = st
		return st, nil
	}
	c.open[n] = true
	st := stat{size: 1}
	for _, ch := range n.Content {
		cs, err := c.visit(ch, depth+1)
		if err != nil {
			delete(c.open, n)
			return stat{}, err
		}
		st.size = min(st.size+cs.size, sizeCap)
		st.height = max(st.height, cs.height+1)
	}
	delete(c.open, n)
	c.memo[n] = st
	return st, nil
}

// mergeKeyFor is only for messages: the key whose value is alias a, among
// the open mappings.
func (c *checker) mergeKeyFor(a *yaml.Node) *yaml.Node {
	for m := range c.open {
		if m.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			v := m.Content[i+1]
			if v == a {
				return m.Content[i]
			}
			if v.Kind == yaml.SequenceNode && c.open[v] {
				for _, e := range v.Content {
					if e == a {
						return m.Content[i]
					}
				}
			}
		}
	}
	return nil
}
