package values

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mygitops/mgo/internal/repo"
)

const clusterConfig = `helm:
  repositories:
    - name: acme
      url: https://charts.acme.io
`

const appValues = `__mygitops:
  chart: acme/app
  version: 1.4.0
  name: app
  namespace: app
  images:
    gitlab.com/acme/app: &app
      repository: registry.acme.io/acme/app
      tag: "1.4.1"   # set by CI
app:
  image:
    <<: *app
`

const canaryValues = `# canary: same image, single-string form
__mygitops:
  chart: acme/app
  version: 1.4.0
  name: app-canary
  namespace: app
  images:
    gitlab.com/acme/app: &app {image: registry.acme.io/acme/app:1.4.1}
app:
  image: *app
  replicas: 1
`

const otherValues = `__mygitops:
  chart: acme/billing
  version: 2.0.0
  name: billing
  namespace: billing
  images:
    gitlab.com/acme/billing:
      repository: registry.acme.io/acme/billing
      tag: "2.0.0"
`

// aliasValues lists the trigger repo, but its tag is an alias SetImage
// refuses to edit.
const aliasValues = `versions:
  app: &v "1.4.1"
__mygitops:
  chart: acme/app
  version: 1.4.0
  name: app-mirror
  namespace: mirror
  images:
    gitlab.com/acme/app:
      repository: registry.acme.io/acme/app
      tag: *v
`

// newClusterRepo writes a gitops repository with two clusters.
func newClusterRepo(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	writeFile(t, filepath.Join(root, repo.ConfigFile), clusterConfig)
	writeFile(t, filepath.Join(root, "installations/prod/app-values.yaml"), appValues)
	writeFile(t, filepath.Join(root, "installations/prod/app-canary-values.yaml"), canaryValues)
	writeFile(t, filepath.Join(root, "installations/prod/billing-values.yaml"), otherValues)
	writeFile(t, filepath.Join(root, "installations/staging/app-values.yaml"), appValues)
	if err := os.Chmod(filepath.Join(root, "installations/prod/app-canary-values.yaml"), 0o600); err != nil {
		t.Fatal(err)
	}
	return root
}

// snapshot returns the content of every file under root.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		files[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestEditCluster(t *testing.T) {
	root := newClusterRepo(t)
	before := snapshot(t, root)
	img := Image{Repository: "registry.acme.io/acme/app", Tag: "1.5.0"}

	changed, err := EditCluster(root, "prod", "gitlab.com/acme/app", img)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"installations/prod/app-canary-values.yaml", "installations/prod/app-values.yaml"}
	if !reflect.DeepEqual(changed, want) {
		t.Fatalf("changed %v, want %v", changed, want)
	}
	after := snapshot(t, root)
	if len(after) != len(before) {
		t.Errorf("files before %d, after %d (temporary files left?)", len(before), len(after))
	}
	wantFiles := map[string]string{
		"installations/prod/app-values.yaml":        strings.Replace(appValues, `tag: "1.4.1"`, `tag: "1.5.0"`, 1),
		"installations/prod/app-canary-values.yaml": strings.Replace(canaryValues, "app:1.4.1}", "app:1.5.0}", 1),
		"installations/prod/billing-values.yaml":    otherValues,
		"installations/staging/app-values.yaml":     appValues,
		repo.ConfigFile:                             clusterConfig,
	}
	for name, content := range wantFiles {
		if after[name] != content {
			t.Errorf("%s:\n%s", name, diff(content, after[name]))
		}
	}
	fi, err := os.Stat(filepath.Join(root, "installations/prod/app-canary-values.yaml"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode after the edit: %v, %v; want 0600", fi.Mode(), err)
	}

	// The chart values of every edited release now hold the new image.
	r, err := repo.Load(root, repo.LoadOptions{Cluster: "prod"})
	if err != nil {
		t.Fatal(err)
	}
	rels, err := r.ReleasesForTrigger("prod", "gitlab.com/acme/app")
	if err != nil {
		t.Fatal(err)
	}
	for _, rl := range rels {
		vals, err := rl.Values()
		if err != nil {
			t.Fatal(err)
		}
		im := vals["app"].(map[string]any)["image"].(map[string]any)
		if got := im["tag"]; got != nil && got != "1.5.0" {
			t.Errorf("%s: chart values tag %v", rl.File, got)
		}
		if got := im["image"]; got != nil && got != "registry.acme.io/acme/app:1.5.0" {
			t.Errorf("%s: chart values image %v", rl.File, got)
		}
	}

	// The same request again changes nothing.
	changed, err = EditCluster(root, "prod", "gitlab.com/acme/app", img)
	if err != nil || len(changed) != 0 {
		t.Errorf("second edit: changed %v, error %v; want none", changed, err)
	}
	if again := snapshot(t, root); !reflect.DeepEqual(again, after) {
		t.Errorf("a no-op edit wrote files")
	}
}

func TestEditClusterSearchErrors(t *testing.T) {
	root := newClusterRepo(t)
	before := snapshot(t, root)
	img := Image{Repository: "registry.acme.io/acme/app", Tag: "1.5.0"}
	for _, c := range []struct {
		name, cluster, trigger string
		img                    Image
		is                     error
		says                   []string
	}{
		{"unknown cluster", "qa", "gitlab.com/acme/app", img, repo.ErrUnknownCluster,
			[]string{`"qa"`, "installations/qa", "clusters: prod, staging"}},
		{"trigger repo not listed", "prod", "gitlab.com/acme/nope", img, repo.ErrTriggerRepoNotListed,
			[]string{"gitlab.com/acme/nope", "installations/prod/*-values.yaml", "3 files", "gitlab.com/acme/app, gitlab.com/acme/billing"}},
		{"invalid image", "prod", "gitlab.com/acme/app", Image{Repository: "registry.acme.io/acme/app", Tag: "1.5.0 "}, ErrInvalidImage,
			[]string{`tag "1.5.0 "`}},
		{"not a repository", "prod", "gitlab.com/acme/app", img, repo.ErrNotARepo, []string{"installations/"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := root
			if c.is == repo.ErrNotARepo {
				dir = t.TempDir()
			}
			changed, err := EditCluster(dir, c.cluster, c.trigger, c.img)
			if !errors.Is(err, c.is) {
				t.Fatalf("error %v, want %v", err, c.is)
			}
			for _, s := range c.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if changed != nil {
				t.Errorf("changed %v on error", changed)
			}
		})
	}
	if after := snapshot(t, root); !reflect.DeepEqual(after, before) {
		t.Errorf("files changed")
	}
}

func TestEditClusterAllOrNothing(t *testing.T) {
	root := newClusterRepo(t)
	writeFile(t, filepath.Join(root, "installations/prod/app-mirror-values.yaml"), aliasValues)
	before := snapshot(t, root)

	changed, err := EditCluster(root, "prod", "gitlab.com/acme/app", Image{Repository: "registry.acme.io/acme/app", Tag: "1.5.0"})
	if err == nil {
		t.Fatalf("no error; changed %v", changed)
	}
	if !errors.Is(err, ErrCannotEdit) {
		t.Errorf("error %v is not ErrCannotEdit", err)
	}
	if want := "installations/prod/app-mirror-values.yaml:11: images[gitlab.com/acme/app].tag is an alias of &v (line 2)"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.File != "installations/prod/app-mirror-values.yaml" || e.Line != 11 {
		t.Errorf("error %#v does not carry the file and line", e)
	}
	if after := snapshot(t, root); !reflect.DeepEqual(after, before) {
		t.Errorf("a failed edit wrote files")
	}
}

func TestEditClusterRefusesSymlinks(t *testing.T) {
	root := newClusterRepo(t)
	link := filepath.Join(root, "installations/staging/app-values.yaml")
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../prod/app-values.yaml", link); err != nil {
		t.Fatal(err)
	}
	_, err := EditCluster(root, "staging", "gitlab.com/acme/app", Image{Repository: "registry.acme.io/acme/app", Tag: "1.5.0"})
	if !errors.Is(err, ErrCannotEdit) || !strings.Contains(err.Error(), "installations/staging/app-values.yaml") {
		t.Errorf("error %v, want a refusal naming the link", err)
	}
}
