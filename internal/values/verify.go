package values

import (
	"go.yaml.in/yaml/v3"
)

// verify parses the edited text and checks that its documents equal the
// original ones except for the edited scalars, which must now be strings
// with their new values. It is the last guard against an edit that would
// change more than it should.
func verify(docs []*yaml.Node, out []byte, edits []edit) error {
	got, err := parseAll(out)
	if err != nil {
		return errorf(ErrCannotEdit, edits[0].node.Line, "the edit would make the file invalid (%v); refusing", err)
	}
	want := make(map[*yaml.Node]string, len(edits))
	for _, e := range edits {
		want[e.node] = e.value
	}
	if len(got) != len(docs) {
		return errorf(ErrCannotEdit, edits[0].node.Line, "the edit would change the number of YAML documents; refusing")
	}
	var ca, cb []string
	for i := range docs {
		if line, ok := sameTree(docs[i], got[i], want, &ca, &cb); !ok {
			return errorf(ErrCannotEdit, line, "the edit would change more than the image fields here; refusing")
		}
	}
	if len(ca) != len(cb) {
		return errorf(ErrCannotEdit, edits[0].node.Line, "the edit would change comments; refusing")
	}
	for i := range ca {
		if ca[i] != cb[i] {
			return errorf(ErrCannotEdit, edits[0].node.Line, "the edit would change comments; refusing")
		}
	}
	return nil
}

// sameTree compares two node trees. Nodes in want are expected to have
// become string scalars with the given values (their style may change).
// Comments are collected in order, since an edit may move a comment
// between a key and its value without changing it. On a difference it
// returns the line of the original node.
func sameTree(a, b *yaml.Node, want map[*yaml.Node]string, ca, cb *[]string) (int, bool) {
	if a.Kind != b.Kind || a.Anchor != b.Anchor || len(a.Content) != len(b.Content) {
		return a.Line, false
	}
	*ca = appendComments(*ca, a.HeadComment, a.LineComment)
	*cb = appendComments(*cb, b.HeadComment, b.LineComment)
	if v, ok := want[a]; ok {
		if b.Kind != yaml.ScalarNode || b.Tag != "!!str" || b.Value != v {
			return a.Line, false
		}
	} else if a.Tag != b.Tag || a.Value != b.Value || a.Style != b.Style {
		return a.Line, false
	}
	if a.Kind != yaml.AliasNode {
		for i := range a.Content {
			if line, ok := sameTree(a.Content[i], b.Content[i], want, ca, cb); !ok {
				return line, false
			}
		}
	}
	*ca = appendComments(*ca, a.FootComment)
	*cb = appendComments(*cb, b.FootComment)
	return 0, true
}

func appendComments(list []string, cs ...string) []string {
	for _, c := range cs {
		if c != "" {
			list = append(list, c)
		}
	}
	return list
}
