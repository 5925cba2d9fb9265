package yamlnode

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func parseOne(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var d yaml.Node
	if err := yaml.Unmarshal([]byte(src), &d); err != nil {
		t.Fatal(err)
	}
	return d.Content[0]
}

// nestedMerges is the shape that took 27 s: each level merges the previous
// one twice, so expanding level n naively visits 2^n mappings.
func nestedMerges(levels int) string {
	var b strings.Builder
	b.WriteString("a0: &a0 {x: 1}\n")
	for i := 1; i < levels; i++ {
		fmt.Fprintf(&b, "a%d: &a%d {<<: [*a%d, *a%d], k%d: 1}\n", i, i, i-1, i-1, i)
	}
	fmt.Fprintf(&b, "top:\n  <<: [*a%d, *a%d]\n", levels-1, levels-1)
	return b.String()
}

func billionLaughs() string {
	var b strings.Builder
	b.WriteString("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	prev := "a"
	for _, c := range "bcdefghi" {
		fmt.Fprintf(&b, "%c: &%c [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n", c, c, prev, prev, prev, prev, prev, prev, prev, prev, prev)
		prev = string(c)
	}
	return b.String()
}

func TestCheckRefuses(t *testing.T) {
	deep := strings.Repeat("[", MaxDepth+5) + strings.Repeat("]", MaxDepth+5)
	// Depth through aliases: 50 levels of 30 nested lists each.
	var viaAliases strings.Builder
	viaAliases.WriteString("l0: &l0 1\n")
	for i := 1; i <= 50; i++ {
		fmt.Fprintf(&viaAliases, "l%d: &l%d %s*l%d%s\n", i, i, strings.Repeat("[", 30), i-1, strings.Repeat("]", 30))
	}
	for _, tt := range []struct {
		name, src string
		line      int
		want      string
	}{
		{"self-merge document", "--- &a\nx: 1\n<<: *a\n", 3, "merge key <<: *a names the node at line 1 that contains it"},
		{"self-merge nested", "a: &a\n  b: 1\n  c:\n    <<: [*a]\n", 4, "merge key <<: *a names the node at line 1"},
		{"self alias", "a: &a\n  b: *a\n", 2, "alias *a names the node at line 1"},
		{"merge loop through list", "x: &x\n  - &y {k: 1, <<: *x}\n", 2, "names the node"},
		{"nested merge lists", nestedMerges(30), 0, "aliases expand the document by more than"},
		{"billion laughs", billionLaughs(), 0, "aliases expand the document by more than"},
		{"too deep", deep, 1, "nesting deeper than 1000 levels"},
		{"too deep through aliases", viaAliases.String(), 0, "nesting deeper than 1000 levels"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var d yaml.Node
			if err := yaml.Unmarshal([]byte(tt.src), &d); err != nil {
				t.Fatal(err)
			}
			err := Check(&d)
			var e *Error
			if !errors.As(err, &e) || !strings.Contains(e.Msg, tt.want) {
				t.Fatalf("Check = %v, want an *Error with %q", err, tt.want)
			}
			if tt.line > 0 && e.Line != tt.line {
				t.Errorf("line %d, want %d (%v)", e.Line, tt.line, err)
			}
			if e.Line == 0 {
				t.Errorf("no line in %v", err)
			}
			if _, err := Parse([]byte(tt.src)); ErrorLine(err) != e.Line {
				t.Errorf("Parse: %v", err)
			}
		})
	}
}

func TestCheckAccepts(t *testing.T) {
	for _, src := range []string{
		"__mygitops:\n  images:\n    a: &app {repository: r, tag: t}\napp:\n  image:\n    <<: *app\n    pull: x\n",
		nestedMerges(12), // 4096 expansions: fine
		"a: &a [1, 2]\nb: [*a, *a, *a]\n",
		strings.Repeat("[", 900) + strings.Repeat("]", 900),
	} {
		docs, err := Parse([]byte(src))
		if err != nil || len(docs) != 1 {
			t.Errorf("Parse(%.40q) = %v", src, err)
		}
	}
}

// Entries and Find expand each mapping once: the unchecked 60-level nested
// merge (2^60 naive expansions) returns at once, with every key.
func TestEntriesLinearOnNestedMerges(t *testing.T) {
	d := parseOne(t, nestedMerges(60))
	top := Lookup(d, "top")
	es, ok := Entries(top)
	if !ok {
		t.Fatal("not a mapping")
	}
	if len(es) != 60 { // x and k1..k59
		t.Errorf("%d entries, want 60", len(es))
	}
	if e, found, _ := Find(top, "x"); !found || e.Merged == nil || e.Value.Value != "1" {
		t.Errorf("Find x = %+v %v", e, found)
	}
	if _, found, _ := Find(top, "nope"); found {
		t.Error("found nope")
	}
}

// An unchecked self-merge ends (each mapping expanded once) instead of
// recursing until the stack overflows.
func TestEntriesSelfMergeEnds(t *testing.T) {
	d := parseOne(t, "--- &a\nx: 1\n<<: *a\n")
	es, ok := Entries(d)
	if !ok || len(es) != 1 || es[0].Key != "x" {
		t.Errorf("entries %+v", es)
	}
	if Lookup(d, "y") != nil {
		t.Error("y found")
	}
	// A hand-built alias loop resolves to nil instead of spinning.
	a := &yaml.Node{Kind: yaml.AliasNode}
	a.Alias = a
	if Resolve(a) != nil {
		t.Error("alias loop resolved")
	}
}

func TestEntriesMergeOrder(t *testing.T) {
	d := parseOne(t, "b: &b {k: b, only: b}\nc: &c {k: c, <<: *b, deep: c}\nm:\n  k: own\n  <<: [*c, *b]\n")
	es, _ := Entries(Lookup(d, "m"))
	got := map[string]string{}
	var order []string
	for _, e := range es {
		got[e.Key] = e.Value.Value
		order = append(order, e.Key)
	}
	want := map[string]string{"k": "own", "deep": "c", "only": "b"}
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(order, []string{"k", "deep", "only"}) {
		t.Errorf("got %v in order %v", got, order)
	}
}

func TestOwnDuplicate(t *testing.T) {
	d := parseOne(t, "a: 1\nb: 2\na: 3\n")
	e, found, dup := Own(d, "a")
	if !found || e.KeyNode.Line != 1 || dup == nil || dup.Line != 3 {
		t.Errorf("Own = %+v %v %v", e, found, dup)
	}
	if got := Keys(d); !reflect.DeepEqual(got, []string{"a", "a", "b"}) {
		t.Errorf("Keys %v", got)
	}
}

func TestCheckUTF8(t *testing.T) {
	err := CheckUTF8([]byte("a: 1\nb: ok\nc: \xff\xfe\n"))
	var e *Error
	if !errors.As(err, &e) || e.Line != 3 || !strings.Contains(e.Msg, "byte offset 14") {
		t.Errorf("CheckUTF8 = %v", err)
	}
	if err := CheckUTF8([]byte("\xef\xbb\xbfa: é\n")); err != nil {
		t.Error(err)
	}
}

func TestErrorLine(t *testing.T) {
	var d yaml.Node
	err := yaml.Unmarshal([]byte("a: 1\nb: c: d\n"), &d)
	if ErrorLine(err) != 2 {
		t.Errorf("ErrorLine(%v) = %d", err, ErrorLine(err))
	}
	if ErrorLine(&Error{Line: 7, Msg: "x"}) != 7 || ErrorLine(errors.New("none")) != 0 {
		t.Error("ErrorLine")
	}
}

func TestKindName(t *testing.T) {
	d := parseOne(t, "m: {}\nl: []\ns: x\nn: null\n")
	for k, want := range map[string]string{"m": "a mapping", "l": "a list", "s": "a scalar", "n": "null"} {
		if got := KindName(Lookup(d, k)); got != want {
			t.Errorf("%s: %s", k, got)
		}
	}
	if KindName(nil) != "nothing" {
		t.Error("nil")
	}
}

func BenchmarkCheckNestedMerges(b *testing.B) {
	src := []byte(nestedMerges(40))
	for b.Loop() {
		Parse(src)
	}
}
