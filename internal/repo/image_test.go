package repo

import (
	"reflect"
	"testing"
)

func TestSameRepository(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"nginx", "nginx", true},
		{"nginx", "docker.io/library/nginx", true},
		{"library/nginx", "index.docker.io/library/nginx", true}, // index.docker.io is Docker Hub too
		{"registry.acme.io:5000/acme/app", "registry.acme.io:5000/acme/app", true},
		{"registry.acme.io:5000/acme/app", "registry.acme.io/acme/app", false},
		{"acme/app", "docker.io/acme/app", true},
		{"acme/app:1.0", "acme/app", false}, // a tag is no repository name
		{"acme/app@sha256:" + sha, "acme/app", false},
		{"Not A Name", "not-a-name", false},
		{"registry.acme.io/acme/app", "registry.acme.io/acme/worker", false},
	} {
		if got := SameRepository(tc.a, tc.b); got != tc.want {
			t.Errorf("SameRepository(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

const sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestImageRepository(t *testing.T) {
	for in, want := range map[string]string{
		"nginx:1.27":                                  "nginx",
		"docker.io/library/nginx:1.27":                "nginx",
		"registry.acme.io:5000/acme/app:1.0":          "registry.acme.io:5000/acme/app",
		"registry.acme.io/acme/app@sha256:" + sha:     "registry.acme.io/acme/app",
		"registry.acme.io/acme/app:1.0@sha256:" + sha: "registry.acme.io/acme/app",
		"Not A Name":                                  "Not A Name",
	} {
		if got := ImageRepository(in); got != want {
			t.Errorf("ImageRepository(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMergeValues(t *testing.T) {
	base := map[string]any{
		"image":  map[string]any{"repository": "acme/app", "tag": "1.0", "pullPolicy": "Always"},
		"ports":  []any{80, 443},
		"debug":  true,
		"limits": map[string]any{"cpu": "1"},
	}
	override := map[string]any{
		"image":  map[string]any{"tag": "2.0", "pullPolicy": nil},
		"ports":  []any{8080},
		"debug":  nil,
		"limits": "none",
		"extra":  map[string]any{"a": 1},
	}
	keep := MergeValues(base, override, KeepNulls)
	wantKeep := map[string]any{
		"image":  map[string]any{"repository": "acme/app", "tag": "2.0", "pullPolicy": nil},
		"ports":  []any{8080},
		"debug":  nil,
		"limits": "none",
		"extra":  map[string]any{"a": 1},
	}
	if !reflect.DeepEqual(keep, wantKeep) {
		t.Errorf("KeepNulls: %v, want %v", keep, wantKeep)
	}
	del := MergeValues(base, override, NullsDelete)
	wantDel := map[string]any{
		"image":  map[string]any{"repository": "acme/app", "tag": "2.0"},
		"ports":  []any{8080},
		"limits": "none",
		"extra":  map[string]any{"a": 1},
	}
	if !reflect.DeepEqual(del, wantDel) {
		t.Errorf("NullsDelete: %v, want %v", del, wantDel)
	}
	if base["image"].(map[string]any)["tag"] != "1.0" || base["debug"] != true {
		t.Errorf("base was changed: %v", base)
	}
}
