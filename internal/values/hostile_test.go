package values

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Hostile values files get an ErrInvalidYAML error with the line, from the
// checks of package yamlnode, before anything walks them.
func TestSetImageHostileFiles(t *testing.T) {
	const hdr = "__mygitops:\n  images:\n    gitlab.com/acme/app: {repository: r.io/app, tag: \"1\"}\n"
	var nested strings.Builder
	nested.WriteString(hdr + "a0: &a0 {x: 1}\n")
	for i := 1; i < 40; i++ {
		fmt.Fprintf(&nested, "a%d: &a%d {<<: [*a%d, *a%d]}\n", i, i, i-1, i-1)
	}
	nested.WriteString("<<: [*a39, *a39]\n")
	for _, tt := range []struct {
		name, src string
		line      int
		want      string
	}{
		{"self-merge", "--- &a\n" + hdr + "<<: *a\n", 5, "names the node at line 1 that contains it"},
		{"nested merges", nested.String(), 44, "aliases expand the document"},
		{"invalid UTF-8", hdr + "x: \"\xc3\x28\"\n", 4, "invalid UTF-8 at byte offset"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := SetImage([]byte(tt.src), "gitlab.com/acme/app", Image{Repository: "r.io/app", Tag: "2"})
			var e *Error
			if !errors.Is(err, ErrInvalidYAML) || !errors.As(err, &e) || e.Line != tt.line || !strings.Contains(e.Msg, tt.want) {
				t.Errorf("error %v, want line %d %q", err, tt.line, tt.want)
			}
		})
	}
}
