package values

import (
	"strings"
	"testing"
)

// A request with a tag and no digest empties a digest field, so that the
// old digest does not keep pinning the old image.
func TestSetImageClearsDigest(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`digest: "` + digest1 + `"`, `digest: ""`},
		{`digest: '` + digest1 + `'`, `digest: ''`},
		{`digest: ` + digest1 + `  # pinned`, `digest: ""  # pinned`},
		{`digest: ""`, `digest: ""`},
		{`digest:`, `digest:`},
		{`digest: ~`, `digest: ~`},
	} {
		src := "__mygitops:\n  images:\n    gitlab.com/acme/app:\n      repository: registry.acme.io/acme/app\n      tag: \"1.0.0\"\n      " + c.in + "\n"
		out, changed, err := SetImage([]byte(src), "gitlab.com/acme/app", Image{Repository: "registry.acme.io/acme/app", Tag: "1.0.1"})
		if err != nil || !changed {
			t.Fatalf("%s: changed=%v err=%v", c.in, changed, err)
		}
		want := strings.Replace(strings.Replace(src, c.in, c.want, 1), `"1.0.0"`, `"1.0.1"`, 1)
		if string(out) != want {
			t.Errorf("%s:\n%s", c.in, diff(want, string(out)))
		}
	}
}

func TestErrorString(t *testing.T) {
	for _, c := range []struct {
		e    Error
		want string
	}{
		{Error{File: "installations/prod/app-values.yaml", Line: 9, Msg: "m"}, "installations/prod/app-values.yaml:9: m"},
		{Error{File: "installations/prod/app-values.yaml", Msg: "m"}, "installations/prod/app-values.yaml: m"},
		{Error{Line: 9, Msg: "m"}, "line 9: m"},
		{Error{Msg: "m"}, "m"},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("%q, want %q", got, c.want)
		}
	}
}

// Plain values that YAML (1.2 for mgo, 1.1 for Helm) reads as strings stay
// plain; the others are quoted.
func TestPlainSafe(t *testing.T) {
	for v, want := range map[string]bool{
		"1.4.1": true, "v1.10": true, "latest": true, "registry.acme.io:5000/app:1.0": true,
		"app@" + digest1: true, "1.10": false, "1e3": false, "0x10": false, "true": false, "on": false,
		"yes": false, "y": false, "n": false, "null": false, "2024-01-01": false, "1_000": false, "": false,
		"-1": false, ".5": false, "a: b": false, "a #b": false,
	} {
		if got := plainSafe(v, false); got != want {
			t.Errorf("plainSafe(%q) = %v, want %v", v, got, want)
		}
	}
	if !plainSafe("registry.acme.io:5000/app:1.0", true) || plainSafe("a,b", true) {
		t.Errorf("flow context")
	}
}
