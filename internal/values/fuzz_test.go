package values

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
	sigsyaml "sigs.k8s.io/yaml"
)

// FuzzSetImage checks, for any input: when SetImage succeeds, the input
// parsed; the output parses; its tree equals the input's except the edited
// scalars, which hold the new values as strings; the bytes outside the
// edited spans are untouched; Helm reads the header entry as the new
// strings; and editing the output again changes nothing.
func FuzzSetImage(f *testing.F) {
	for _, c := range goldenCases {
		src := readFile(f, filepath.Join("testdata/golden", c.input+".yaml"))
		if len(src) > maxSeed {
			// Long inputs make every execution slow; their start (the
			// header and the first values) is what matters.
			src = src[:bytes.LastIndexByte(src[:maxSeed], '\n')+1]
		}
		f.Add(src, c.trigger, c.img.Repository, c.img.Tag, c.img.Digest)
	}
	for _, c := range errorCases {
		f.Add(readFile(f, filepath.Join("testdata/errors", c.file+".yaml")), c.trigger, c.img.Repository, c.img.Tag, c.img.Digest)
	}
	f.Fuzz(func(t *testing.T, src []byte, trigger, repository, tag, digest string) {
		img := Image{Repository: repository, Tag: tag, Digest: digest}
		out, edits, err := setImage(src, trigger, img)
		if err != nil {
			var e *Error
			if img.Validate() == nil && !errors.As(err, &e) {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		in, perr := decodeAll(src)
		if perr != nil {
			t.Fatalf("SetImage succeeded on input that does not parse: %v", perr)
		}
		if len(edits) == 0 {
			if !bytes.Equal(out, src) {
				t.Fatalf("no edits, but the output differs")
			}
			return
		}
		checkUntouched(t, src, out, edits)
		got, err := decodeAll(out)
		if err != nil {
			t.Fatalf("output does not parse: %v\n%s", err, out)
		}
		if len(got) != len(in) {
			t.Fatalf("%d documents in, %d out", len(in), len(got))
		}
		at := map[[2]int]string{}
		for _, e := range edits {
			at[[2]int{e.node.Line, e.node.Column}] = e.value
		}
		for i := range in {
			if err := compareTrees(in[i], got[i], at); err != nil {
				t.Fatalf("%v\ninput:\n%s\noutput:\n%s", err, src, out)
			}
		}
		checkHelmView(t, src, out, trigger, edits)
		again, more, err := setImage(out, trigger, img)
		if err != nil || len(more) > 0 || !bytes.Equal(again, out) {
			t.Fatalf("editing the output again: %d edits, error %v\n%s", len(more), err, out)
		}
	})
}

const maxSeed = 4 << 10

func decodeAll(b []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []*yaml.Node
	for {
		var d yaml.Node
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, &d)
	}
}

// checkUntouched checks that out is src with only the edit spans replaced.
func checkUntouched(t *testing.T, src, out []byte, edits []edit) {
	t.Helper()
	pos, last := 0, 0
	for _, e := range edits {
		if e.start < last || e.end < e.start || e.end > len(src) {
			t.Fatalf("bad edit span [%d,%d) after %d", e.start, e.end, last)
		}
		keep := src[last:e.start]
		if !bytes.HasPrefix(out[pos:], keep) {
			t.Fatalf("bytes %d..%d of the input changed", last, e.start)
		}
		pos += len(keep) + len(e.text)
		if pos > len(out) || string(out[pos-len(e.text):pos]) != e.text {
			t.Fatalf("the edit of [%d,%d) is not %q in the output", e.start, e.end, e.text)
		}
		last = e.end
	}
	if !bytes.Equal(out[pos:], src[last:]) {
		t.Fatalf("bytes after offset %d of the input changed", last)
	}
}

// compareTrees compares two node trees; the scalars at the positions in
// edited must hold the given strings, everything else must be equal.
func compareTrees(a, b *yaml.Node, edited map[[2]int]string) error {
	if a.Kind != b.Kind || len(a.Content) != len(b.Content) || a.Anchor != b.Anchor {
		return fmt.Errorf("line %d: node kind, anchor or size changed", a.Line)
	}
	if a.HeadComment != b.HeadComment || a.FootComment != b.FootComment {
		return fmt.Errorf("line %d: comments changed", a.Line)
	}
	if v, ok := edited[[2]int{a.Line, a.Column}]; ok && a.Kind == yaml.ScalarNode {
		if b.Tag != "!!str" || b.Value != v {
			return fmt.Errorf("line %d: edited scalar is %s %q, want the string %q", a.Line, b.Tag, b.Value, v)
		}
	} else if a.Tag != b.Tag || a.Value != b.Value || a.Style != b.Style {
		return fmt.Errorf("line %d: %s %q became %s %q", a.Line, a.Tag, a.Value, b.Tag, b.Value)
	}
	if a.Kind == yaml.AliasNode {
		return nil
	}
	for i := range a.Content {
		if err := compareTrees(a.Content[i], b.Content[i], edited); err != nil {
			return err
		}
	}
	return nil
}

// checkHelmView reads the output as Helm does (sigs.k8s.io/yaml, first
// document only) and checks the edited header fields are the new strings.
func checkHelmView(t *testing.T, src, out []byte, trigger string, edits []edit) {
	t.Helper()
	var before map[string]any
	if err := sigsyaml.Unmarshal(src, &before); err != nil {
		return // Helm could not read the input either
	}
	var after map[string]any
	if err := sigsyaml.Unmarshal(out, &after); err != nil {
		t.Fatalf("Helm could read the input but not the output: %v\n%s", err, out)
	}
	h, _ := after["__mygitops"].(map[string]any)
	images, _ := h["images"].(map[string]any)
	entry, ok := images[trigger].(map[string]any)
	if !ok {
		return // the header is in a later document, or keys differ in YAML 1.1
	}
	for _, e := range edits {
		found := false
		for _, v := range entry {
			if s, ok := v.(string); ok && s == e.value {
				found = true
			}
		}
		if !found {
			t.Fatalf("Helm does not read %q in the header entry: %#v\n%s", e.value, entry, out)
		}
	}
}
