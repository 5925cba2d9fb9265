package importer

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"

	"github.com/mygitops/mgo/internal/repo"
)

func TestValuesFileLinksImageAndSplitsSecrets(t *testing.T) {
	user := map[string]any{
		"replicaCount":   float64(3),
		"image":          map[string]any{"tag": "1.2.0", "pullPolicy": "Always"},
		"db":             map[string]any{"host": "db", "password": "hunter2", "ports": []any{float64(5432), float64(5433)}},
		"apiToken":       "t0k",
		"existingSecret": "",
		"flags":          []any{"a", map[string]any{"b": "on"}},
	}
	chartDefaults := map[string]any{"image": map[string]any{"repository": "registry.example.com/hello", "tag": "1.0.0", "pullPolicy": "IfNotPresent"}}
	want := deepCopy(user).(map[string]any)
	secrets, moved := splitSecrets(user, nil, "")
	if got := strings.Join(moved, ","); got != "apiToken,db.password" {
		t.Fatalf("moved %s", got)
	}
	p, r, tag, ok := findImageField(repo.MergeValues(chartDefaults, user, repo.NullsDelete), "registry.example.com/hello")
	if !ok || strings.Join(p, ".") != "image" || tag != "1.2.0" {
		t.Fatalf("image field %v %s %s %v", p, r, tag, ok)
	}
	h := repo.Header{Chart: "charts/hello", Version: "0.1.0", Name: "web", Namespace: "apps"}
	b, err := valuesFile(h, []imageLink{{TriggerRepo: "gitlab.com/acme/hello", Repository: r, Tag: tag, Path: p}}, user)
	if err != nil {
		t.Fatal(err)
	}
	s, err := secretsFile(secrets)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("values:\n%s\nsecrets:\n%s", b, s)
	if !strings.Contains(string(b), "<<: *hello") || !strings.Contains(string(b), "gitlab.com/acme/hello: &hello") {
		t.Errorf("no anchor/merge:\n%s", b)
	}
	if strings.Contains(string(b), "hunter2") || strings.Contains(string(b), "t0k") {
		t.Errorf("secret in values file:\n%s", b)
	}
	vals, err := common.ReadValues(b)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := common.ReadValues(s)
	if err != nil {
		t.Fatal(err)
	}
	delete(vals, repo.HeaderKey)
	got := repo.MergeValues(vals, sv, repo.NullsDelete)
	// the image mapping now also carries the repository (same value as the
	// chart default)
	want["image"].(map[string]any)["repository"] = "registry.example.com/hello"
	if !reflect.DeepEqual(normalize(t, got), normalize(t, want)) {
		t.Errorf("values differ:\n got %#v\nwant %#v", got, want)
	}
}

func normalize(t *testing.T, v map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := common.ReadValues(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
