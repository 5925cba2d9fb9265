package values

import (
	"bytes"
	"errors"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/mygitops/mgo/internal/repo"
	"github.com/mygitops/mgo/internal/yamlnode"
)

// SetImage edits the header entry __mygitops.images[triggerRepo] of one
// values file. out is src with only the edited scalars' bytes replaced.
// changed is false when the file already says that (out is then src).
//
// The header is read from the first YAML document that has a __mygitops key;
// other documents are not touched. Errors wrap one of ErrInvalidImage,
// ErrInvalidYAML, ErrNoHeader, ErrNotListed or ErrCannotEdit, and those about
// the file are *Error values with the line.
func SetImage(src []byte, triggerRepo string, img Image) (out []byte, changed bool, err error) {
	out, edits, err := setImage(src, triggerRepo, img)
	if err != nil {
		return nil, false, err
	}
	return out, len(edits) > 0, nil
}

// edit replaces src[start:end] with text; node is the edited scalar and
// value its new value.
type edit struct {
	start, end int
	text       string
	node       *yaml.Node
	value      string
}

// field is a key of an images entry: repository, tag, image or digest.
type field struct {
	name     string
	key, val *yaml.Node
	merged   *yaml.Node // the merge key it came through, or nil
}

func (f field) present() bool { return f.val != nil }

// current returns the field's value as the header parser reads it.
func (f field) current() string {
	n := yamlnode.Resolve(f.val)
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return ""
	}
	return n.Value
}

func setImage(src []byte, triggerRepo string, img Image) ([]byte, []edit, error) {
	if err := img.Validate(); err != nil {
		return nil, nil, err
	}
	docs, err := parseAll(src)
	if err != nil {
		return nil, nil, err
	}
	t := newText(src)
	var root *yaml.Node
	var hdr field
	for _, d := range docs {
		if len(d.Content) == 0 || d.Content[0].Kind != yaml.MappingNode {
			continue
		}
		f, ferr := own(d.Content[0], repo.HeaderKey)
		if ferr != nil {
			return nil, nil, ferr
		}
		if f.present() {
			root, hdr = d.Content[0], f
			break
		}
	}
	switch {
	case len(docs) == 0:
		return nil, nil, errorf(ErrNoHeader, 0, "no %s header: the file is empty", repo.HeaderKey)
	case root == nil:
		return nil, nil, errorf(ErrNoHeader, 0, "no %s header: none of the file's YAML documents (%d) has it as a top-level key",
			repo.HeaderKey, len(docs))
	}
	flow := root.Style&yaml.FlowStyle != 0
	h, err := mappingAt(hdr, repo.HeaderKey)
	if err != nil {
		return nil, nil, err
	}
	flow = flow || h.Style&yaml.FlowStyle != 0

	imagesF, err := find(h, "images")
	if err != nil {
		return nil, nil, err
	}
	if !imagesF.present() || yamlnode.Resolve(imagesF.val).Tag == "!!null" {
		return nil, nil, errorf(ErrNotListed, hdr.key.Line, "the %s header has no images, so it does not list %s",
			repo.HeaderKey, triggerRepo)
	}
	if imagesF.merged != nil {
		return nil, nil, viaMerge("images", imagesF)
	}
	images, err := mappingAt(imagesF, "images")
	if err != nil {
		return nil, nil, err
	}
	flow = flow || images.Style&yaml.FlowStyle != 0

	entryF, err := find(images, triggerRepo)
	if err != nil {
		return nil, nil, err
	}
	if !entryF.present() {
		return nil, nil, errorf(ErrNotListed, imagesF.key.Line, "images does not list %s (it lists %s)",
			triggerRepo, listOrNone(yamlnode.Keys(images)))
	}
	name := "images[" + triggerRepo + "]"
	if entryF.merged != nil {
		return nil, nil, viaMerge(name, entryF)
	}
	entry, err := mappingAt(entryF, name)
	if err != nil {
		return nil, nil, err
	}
	flow = flow || entry.Style&yaml.FlowStyle != 0

	fields := map[string]field{}
	for _, k := range []string{"repository", "tag", "image", "digest"} {
		f, err := find(entry, k)
		if err != nil {
			return nil, nil, err
		}
		f.name = name + "." + k
		fields[k] = f
	}
	want, err := planEntry(name, entryF, fields, img)
	if err != nil {
		return nil, nil, err
	}

	var edits []edit
	for _, w := range want {
		if !needsEdit(w.f.val, w.value, flow) {
			continue
		}
		e, err := t.editFor(w.f, w.value, flow)
		if err != nil {
			return nil, nil, err
		}
		edits = append(edits, e)
	}
	if len(edits) == 0 {
		return src, nil, nil
	}
	slices.SortFunc(edits, func(a, b edit) int { return a.start - b.start })
	for i := 1; i < len(edits); i++ {
		if edits[i].start < edits[i-1].end {
			return nil, nil, errorf(ErrCannotEdit, edits[i].node.Line, "%s: overlapping edits", name)
		}
	}
	out := apply(src, edits)
	if err := verify(docs, out, edits); err != nil {
		return nil, nil, err
	}
	return out, edits, nil
}

// wanted is the value one field of the entry should have.
type wanted struct {
	f     field
	value string
}

// planEntry decides the new value of each field of the entry, in the form
// the entry already uses.
func planEntry(name string, entryF field, fs map[string]field, img Image) ([]wanted, error) {
	repoF, tagF, imageF, digestF := fs["repository"], fs["tag"], fs["image"], fs["digest"]
	switch {
	case imageF.present() && (repoF.present() || tagF.present() || digestF.present()):
		return nil, errorf(ErrCannotEdit, entryF.key.Line, "%s gives both image and repository/tag/digest; keep one form", name)
	case imageF.present():
		repository := img.Repository
		if cur := repositoryOf(imageF.current()); repo.SameRepository(cur, img.Repository) {
			repository = cur // keep the spelling the file uses
		}
		return []wanted{{imageF, repository + img.suffix()}}, nil
	case !repoF.present():
		return nil, errorf(ErrCannotEdit, entryF.key.Line, "%s has neither image nor repository", name)
	case !tagF.present():
		return nil, errorf(ErrCannotEdit, entryF.key.Line, "%s has no tag; add tag: \"\" under repository", name)
	}
	repository := img.Repository
	if cur := repoF.current(); repo.SameRepository(cur, img.Repository) {
		repository = cur
	}
	want := []wanted{{repoF, repository}}
	if digestF.present() {
		tag := img.Tag
		if tag == "" {
			tag = tagF.current()
		}
		return append(want, wanted{tagF, tag}, wanted{digestF, img.Digest}), nil
	}
	return append(want, wanted{tagF, img.tagValue()}), nil
}

// needsEdit reports whether node n (as found, possibly an alias) does not
// already hold the string want in a way both mgo and Helm read as that string.
func needsEdit(n *yaml.Node, want string, flow bool) bool {
	r := yamlnode.Resolve(n)
	switch {
	case r.Kind != yaml.ScalarNode:
		return true
	case r.Tag == "!!null":
		return want != ""
	case r.Value != want || r.Tag != "!!str":
		return true
	case r.Style&(quotedStyles|blockStyles) == 0 && r.Style&yaml.TaggedStyle == 0:
		return !plainSafe(want, flow)
	}
	return false
}

// editFor builds the edit that gives field f the value v.
func (t *text) editFor(f field, v string, flow bool) (edit, error) {
	n := f.val
	switch {
	case f.merged != nil:
		return edit{}, viaMerge(f.name, f)
	case n.Kind == yaml.AliasNode:
		return edit{}, errorf(ErrCannotEdit, n.Line, "%s is an alias of &%s (line %d), which may be used elsewhere: "+
			"write the value here and point the other uses at it with an anchor", f.name, n.Value, yamlnode.Resolve(n).Line)
	case n.Kind != yaml.ScalarNode:
		return edit{}, errorf(ErrCannotEdit, n.Line, "%s is %s, not a string", f.name, yamlnode.KindName(n))
	case n.Style&yaml.TaggedStyle != 0 && n.Tag != "!!str":
		return edit{}, errorf(ErrCannotEdit, n.Line, "%s has the explicit tag %s; remove it (or use !!str)", f.name, n.Tag)
	case n.Style&blockStyles != 0:
		return edit{}, errorf(ErrCannotEdit, n.Line, "%s is a block scalar (| or >); write it as a quoted string", f.name)
	}
	text := render(n, v, flow)
	if n.Value == "" && n.Style&quotedStyles == 0 {
		// An empty value (`tag:`): insert after the properties or the colon.
		p := t.offset(n)
		if n.Anchor != "" || n.Style&yaml.TaggedStyle != 0 {
			if p < 0 {
				return edit{}, errorf(ErrCannotEdit, n.Line, "%s: cannot locate its text", f.name)
			}
			p, _ = t.skipProperties(p)
		} else {
			_, kend, problem := t.scalarSpan(f.key, flow)
			if problem != "" {
				return edit{}, errorf(ErrCannotEdit, f.key.Line, "%s: cannot locate the key: %s", f.name, problem)
			}
			for t.isBlank(kend) {
				kend++
			}
			if t.at(kend) != ':' {
				return edit{}, errorf(ErrCannotEdit, f.key.Line, "%s: cannot locate the colon after the key", f.name)
			}
			p = kend + 1
		}
		return edit{start: p, end: p, text: " " + text, node: n, value: v}, nil
	}
	start, end, problem := t.scalarSpan(n, flow)
	if problem != "" {
		return edit{}, errorf(ErrCannotEdit, n.Line, "%s: %s", f.name, problem)
	}
	return edit{start: start, end: end, text: text, node: n, value: v}, nil
}

func viaMerge(name string, f field) error {
	return errorf(ErrCannotEdit, f.merged.Line, "%s comes from the merge key (<<) at line %d, which may be used elsewhere: "+
		"write it here instead", name, f.merged.Line)
}

// apply returns src with the edits (sorted, not overlapping) applied.
func apply(src []byte, edits []edit) []byte {
	size := len(src)
	for _, e := range edits {
		size += len(e.text) - (e.end - e.start)
	}
	out := make([]byte, 0, size)
	last := 0
	for _, e := range edits {
		out = append(out, src[last:e.start]...)
		out = append(out, e.text...)
		last = e.end
	}
	return append(out, src[last:]...)
}

// parseAll parses every document of a values file.
func parseAll(src []byte) ([]*yaml.Node, error) {
	if bytes.HasPrefix(src, []byte{0xFE, 0xFF}) || bytes.HasPrefix(src, []byte{0xFF, 0xFE}) {
		return nil, errorf(ErrInvalidYAML, 0, "the file is UTF-16; values files must be UTF-8")
	}
	docs, err := yamlnode.Parse(src)
	if err != nil {
		var e *yamlnode.Error
		if errors.As(err, &e) {
			return nil, errorf(ErrInvalidYAML, e.Line, "invalid YAML: %s", e.Msg)
		}
		return nil, errorf(ErrInvalidYAML, yamlnode.ErrorLine(err), "invalid YAML: %v", err)
	}
	return docs, nil
}

// mappingAt returns the mapping a header field holds, refusing aliases.
func mappingAt(f field, name string) (*yaml.Node, error) {
	n := f.val
	switch {
	case n.Kind == yaml.AliasNode:
		return nil, errorf(ErrCannotEdit, n.Line, "%s is an alias of &%s (line %d), which may be used elsewhere: "+
			"write the mapping here and anchor it instead", name, n.Value, yamlnode.Resolve(n).Line)
	case n.Kind != yaml.MappingNode:
		return nil, errorf(ErrCannotEdit, n.Line, "%s must be a mapping, not %s", name, yamlnode.KindName(n))
	}
	return n, nil
}

// own returns the pair of mapping m whose key is key, among m's own pairs
// (not merged ones). A key written twice is an error.
func own(m *yaml.Node, key string) (field, error) {
	e, found, dup := yamlnode.Own(m, key)
	return asField(key, e, found, dup)
}

// find returns the pair of mapping m for key: its own pair, or else the
// first one found through its merge keys (marked with the merge key).
func find(m *yaml.Node, key string) (field, error) {
	e, found, dup := yamlnode.Find(m, key)
	return asField(key, e, found, dup)
}

func asField(key string, e yamlnode.Entry, found bool, dup *yaml.Node) (field, error) {
	switch {
	case dup != nil:
		return field{}, errorf(ErrCannotEdit, dup.Line, "key %s is written twice (lines %d and %d)", key, e.KeyNode.Line, dup.Line)
	case !found:
		return field{}, nil
	}
	return field{key: e.KeyNode, val: e.Raw, merged: e.Merged}, nil
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
