package values

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/distribution/reference"
	"github.com/pmezard/go-difflib/difflib"

	"github.com/mygitops/mgo/internal/repo"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

const (
	digest1 = "sha256:3333333333333333333333333333333333333333333333333333333333333333"
	digest2 = "sha256:4444444444444444444444444444444444444444444444444444444444444444"
)

// goldenCase edits testdata/golden/<input>.yaml; the expected output is
// testdata/golden/<name>.golden.
type goldenCase struct {
	name, input string
	trigger     string
	img         Image
	changed     bool
	// chart is the dotted path in the chart values (anchors and merges
	// resolved, as Helm gets them) that must hold the new image; "" skips.
	chart string
	// noRepo says why internal/repo cannot load the input; "" when it can.
	noRepo string
}

var goldenCases = []goldenCase{
	{name: "redis-app", input: "redis", trigger: "gitlab.com/acme/app",
		img: Image{Repository: "registry.acme.io/acme/app", Tag: "1.4.2"}, changed: true, chart: "app.image"},
	{name: "redis-worker", input: "redis", trigger: "gitlab.com/acme/worker",
		img: Image{Repository: "registry.acme.io/acme/worker", Tag: "2.1.0"}, changed: true},
	{name: "redis-noop", input: "redis", trigger: "gitlab.com/acme/app",
		img: Image{Repository: "registry.acme.io/acme/app", Tag: "1.4.1"}, chart: "app.image"},
	{name: "redis-new-repository", input: "redis", trigger: "gitlab.com/acme/app",
		img: Image{Repository: "registry.acme.io/acme/app-v2", Tag: "2.0.0"}, changed: true, chart: "app.image"},
	{name: "plain-tags", input: "plain-tags", trigger: "gitlab.com/acme/billing",
		img: Image{Repository: "registry.acme.io/payments/billing", Tag: "v3.3.0"}, changed: true, chart: "image"},
	{name: "plain-tags-float", input: "plain-tags", trigger: "gitlab.com/acme/billing-reconciler",
		img: Image{Repository: "registry.acme.io/payments/reconciler", Tag: "2024.12"}, changed: true, chart: "cronjobs.reconcile.image"},
	{name: "single-quoted", input: "single-quoted", trigger: "github.com/acme/docs",
		img: Image{Repository: "registry.acme.io/docs/site", Tag: "2024-06-01-d4e5f6a"}, changed: true, chart: "image"},
	{name: "flow-gateway", input: "flow", trigger: "github.com/acme/gateway",
		img: Image{Repository: "registry.acme.io/edge/gateway", Tag: "1.3.0"}, changed: true, chart: "deployment.image"},
	{name: "flow-authz", input: "flow", trigger: "github.com/acme/authz",
		img: Image{Repository: "registry.acme.io/edge/authz", Tag: "1.0.0", Digest: digest1}, changed: true, chart: "deployment.sidecars.0"},
	{name: "crlf-frontend", input: "crlf", trigger: "gitlab.com/acme/shop-frontend",
		img: Image{Repository: "registry.acme.io/shop/frontend", Tag: "4.1.0"}, changed: true, chart: "frontend.image"},
	{name: "crlf-backend", input: "crlf", trigger: "gitlab.com/acme/shop-backend",
		img: Image{Repository: "registry.acme.io/shop/backend", Tag: "4.1.0"}, changed: true, chart: "backend.image"},
	{name: "tabs-in-comments", input: "tabs-in-comments", trigger: "github.com/acme/search-indexer",
		img: Image{Repository: "registry.acme.io/search/indexer", Tag: "0.5.0"}, changed: true, chart: "indexer.image"},
	{name: "markers", input: "markers", trigger: "gitlab.com/acme/notifier",
		img: Image{Repository: "registry.acme.io/comms/notifier", Tag: "2.4.0"}, changed: true, chart: "notifier.image"},
	{name: "multi-doc", input: "multi-doc", trigger: "gitlab.com/acme/queue",
		img: Image{Repository: "registry.acme.io/queue/broker", Tag: "1.1.0"}, changed: true,
		noRepo: "a values file holds one YAML document"},
	{name: "no-final-newline", input: "no-final-newline", trigger: "gitlab.com/acme/jobs",
		img: Image{Repository: "registry.acme.io/jobs/worker", Tag: "0.2.0"}, changed: true, chart: "worker.image"},
	{name: "last-scalar", input: "last-scalar", trigger: "gitlab.com/acme/cron",
		img: Image{Repository: "registry.acme.io/jobs/cron", Tag: "6"}, changed: true},
	{name: "bom", input: "bom", trigger: "gitlab.com/acme/reports",
		img: Image{Repository: "registry.acme.io/bi/reports", Tag: "1.2.0"}, changed: true, chart: "image"},
	{name: "digest-in-tag", input: "digest-in-tag", trigger: "gitlab.com/acme/payments",
		img: Image{Repository: "registry.acme.io/payments/api", Tag: "7.2.0", Digest: digest1}, changed: true, chart: "api.image"},
	{name: "digest-in-tag-digest-only", input: "digest-in-tag", trigger: "gitlab.com/acme/payments",
		img: Image{Repository: "registry.acme.io/payments/api", Digest: digest2}, changed: true, chart: "api.image"},
	{name: "digest-in-tag-image", input: "digest-in-tag", trigger: "gitlab.com/acme/payments-ledger",
		img: Image{Repository: "registry.acme.io/payments/ledger", Tag: "7.1.0", Digest: digest1}, changed: true, chart: "ledger.image"},
	{name: "digest-key", input: "digest-key", trigger: "gitlab.com/acme/keycloak-theme",
		img: Image{Repository: "registry.acme.io/auth/keycloak", Tag: "24.0.2", Digest: digest1}, changed: true,
		noRepo: "the header parser does not know the digest key"},
	{name: "digest-key-digest-only", input: "digest-key", trigger: "gitlab.com/acme/keycloak-theme",
		img: Image{Repository: "registry.acme.io/auth/keycloak", Digest: digest2}, changed: true,
		noRepo: "the header parser does not know the digest key"},
	{name: "anchored-tag", input: "anchored-tag", trigger: "gitlab.com/acme/inventory",
		img: Image{Repository: "registry.acme.io/stock/inventory", Tag: "2.1.0"}, changed: true, chart: "image"},
	{name: "many-images-ui", input: "many-images", trigger: "gitlab.com/acme/platform-ui",
		img: Image{Repository: "registry.acme.io/platform/ui", Tag: "12.5.0"}, changed: true, chart: "ui.image"},
	{name: "many-images-otel", input: "many-images", trigger: "github.com/acme/otel-sidecar",
		img: Image{Repository: "ghcr.io/acme/otel-collector", Tag: "0.99.0"}, changed: true, chart: "api.sidecars.otel.image"},
	{name: "many-images-migrations", input: "many-images", trigger: "gitlab.com/acme/platform-migrations",
		img: Image{Repository: "registry.acme.io/platform/migrations", Tag: "12.5.0"}, changed: true, chart: "migrations.image"},
	{name: "empty-tag", input: "empty-tag", trigger: "gitlab.com/acme/notes",
		img: Image{Repository: "registry.acme.io/notes/app", Tag: "0.1.0"}, changed: true, chart: "image"},
	{name: "empty-tag-quoted", input: "empty-tag", trigger: "gitlab.com/acme/notes-search",
		img: Image{Repository: "registry.acme.io/notes/search", Tag: "0.1.0"}, changed: true, chart: "search.image"},
	{name: "registry-port", input: "registry-port", trigger: "git.internal:2222/infra/mirror",
		img: Image{Repository: "registry.internal:5000/infra/mirror", Tag: "1.1"}, changed: true, chart: "mirror.image"},
	{name: "registry-port-image", input: "registry-port", trigger: "git.internal:2222/infra/proxy",
		img: Image{Repository: "registry.internal:5000/infra/proxy", Tag: "1.1"}, changed: true, chart: "proxy.image"},
	{name: "registry-port-normalized", input: "registry-port", trigger: "github.com/nginx/nginx",
		img: Image{Repository: "docker.io/library/nginx", Tag: "1.27.0-alpine"}, changed: true, chart: "web.image"},
	{name: "tagged-str", input: "tagged-str", trigger: "gitlab.com/acme/legacy",
		img: Image{Repository: "registry.acme.io/legacy/app", Tag: "1.11"}, changed: true, chart: "image"},
	{name: "yaml11-noop", input: "yaml11", trigger: "gitlab.com/acme/tricky",
		img: Image{Repository: "registry.acme.io/tricky/app", Tag: "latest"}, chart: "image"},
	{name: "float-tag-requote", input: "float-tag", trigger: "gitlab.com/acme/calc",
		img: Image{Repository: "registry.acme.io/calc/app", Tag: "1.10"}, changed: true, chart: "image"},
	{name: "unicode", input: "unicode", trigger: "gitlab.com/acme/geo",
		img: Image{Repository: "registry.acme.io/geo/api", Tag: "3.1.0"}, changed: true, chart: "image"},
	{name: "unicode-legacy", input: "unicode", trigger: "gitlab.com/acme/géo-legacy",
		img: Image{Repository: "registry.acme.io/geo/legacy", Tag: "2"}, changed: true},
	{name: "indent4", input: "indent4", trigger: "gitlab.com/acme/ledger",
		img: Image{Repository: "registry.acme.io/finance/ledger-ng", Tag: "6.0.0"}, changed: true, chart: "ledger.image"},
	{name: "long", input: "long", trigger: "github.com/acme/mimir",
		img: Image{Repository: "registry.acme.io/observability/mimir", Tag: "3.0.0"}, changed: true, chart: "mimir.image"},
}

// Tags that YAML would read as something other than a string.
var yaml11Tags = []string{"1.10", "on", "y", "1e3", "0x10", "null", "2024-01-01", "1_000", "0777", "true", "v1.0"}

func init() {
	for _, tag := range yaml11Tags {
		goldenCases = append(goldenCases, goldenCase{name: "yaml11-" + tag, input: "yaml11", trigger: "gitlab.com/acme/tricky",
			img: Image{Repository: "registry.acme.io/tricky/app", Tag: tag}, changed: true, chart: "image"})
	}
}

func TestSetImageGolden(t *testing.T) {
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			src := readFile(t, filepath.Join("testdata/golden", c.input+".yaml"))
			out, changed, err := SetImage(src, c.trigger, c.img)
			if err != nil {
				t.Fatal(err)
			}
			if changed != c.changed {
				t.Errorf("changed = %v, want %v", changed, c.changed)
			}
			if !changed && string(out) != string(src) {
				t.Errorf("unchanged, but the output differs from the input")
			}
			golden := filepath.Join("testdata/golden", c.name+".golden")
			if *update {
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if want := readFile(t, golden); string(out) != string(want) {
				t.Errorf("output differs from %s (run with -update to accept):\n%s", golden, diff(string(want), string(out)))
			}
			again, changed, err := SetImage(out, c.trigger, c.img)
			if err != nil || changed || string(again) != string(out) {
				t.Errorf("editing the output again: changed=%v err=%v; want no change", changed, err)
			}
			if c.noRepo == "" {
				checkWithRepo(t, c, out)
			}
		})
	}
}

// checkWithRepo loads the edited file with internal/repo, as a sync would:
// the header must list the new image and the chart values (anchors and
// merge keys resolved) must hold it as strings.
func checkWithRepo(t *testing.T, c goldenCase, out []byte) {
	t.Helper()
	root := t.TempDir()
	writeFile(t, filepath.Join(root, repo.ConfigFile), "helm:\n  repositories:\n"+
		"    - {name: stable, url: https://charts.example.com/stable}\n"+
		"    - {name: acme, url: https://charts.acme.io}\n"+
		"    - {name: bitnami, url: https://charts.bitnami.com/bitnami}\n")
	rel := "installations/test/" + c.name + "-values.yaml"
	writeFile(t, filepath.Join(root, rel), string(out))
	r, err := repo.Load(root, repo.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if errs := r.Problems.Errors(); len(errs) > 0 {
		t.Fatalf("internal/repo finds errors in the output: %v", errs)
	}
	rl := r.Clusters["test"].Releases[0]
	src, ok := rl.Header.Image(c.trigger)
	if !ok {
		t.Fatalf("the header of the output does not list %s", c.trigger)
	}
	if !sameRef(src.Reference(), c.img.String()) {
		t.Errorf("header image %s, want %s", src.Reference(), c.img.String())
	}
	if c.chart == "" {
		return
	}
	vals, err := rl.Values()
	if err != nil {
		t.Fatal(err)
	}
	var v any = vals
	for _, k := range strings.Split(c.chart, ".") {
		switch m := v.(type) {
		case map[string]any:
			v = m[k]
		case []any:
			i, _ := strconv.Atoi(k)
			v = m[i]
		}
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("chart values at %s: %#v, want a mapping", c.chart, v)
	}
	var got string
	if img, ok := m["image"]; ok {
		s, isString := img.(string)
		if !isString {
			t.Fatalf("chart values %s.image is %T %v, want a string", c.chart, img, img)
		}
		got = s
	} else {
		repository, isString := m["repository"].(string)
		tag, tagIsString := m["tag"].(string)
		if !isString || !tagIsString {
			t.Fatalf("chart values %s: repository %T %v, tag %T %v; want strings", c.chart, m["repository"], m["repository"], m["tag"], m["tag"])
		}
		got = repository + ":" + tag
		if strings.HasPrefix(tag, "sha256:") {
			got = repository + "@" + tag
		}
		if d, ok := m["digest"].(string); ok && d != "" {
			got += "@" + d
		}
	}
	if !sameRef(got, c.img.String()) {
		t.Errorf("chart values %s hold %s, want %s", c.chart, got, c.img.String())
	}
}

// sameRef compares image references after normalization (nginx:1 and
// docker.io/library/nginx:1 are the same).
func sameRef(a, b string) bool {
	na, err := reference.ParseNormalizedNamed(a)
	if err != nil {
		return false
	}
	nb, err := reference.ParseNormalizedNamed(b)
	return err == nil && na.String() == nb.String()
}

var errorCases = []struct {
	file, trigger string
	img           Image
	is            error
	line          int
	msg           string
}{
	{"no-header", "gitlab.com/acme/app", appImage, ErrNoHeader, 0, "no __mygitops header"},
	{"empty", "gitlab.com/acme/app", appImage, ErrNoHeader, 0, "no __mygitops header"},
	{"not-listed", "gitlab.com/acme/api", appImage, ErrNotListed, 6, "images does not list gitlab.com/acme/api (it lists gitlab.com/acme/app, gitlab.com/acme/worker)"},
	{"no-images", "gitlab.com/acme/app", appImage, ErrNotListed, 1, "has no images"},
	{"alias-tag", "gitlab.com/acme/app", appImage, ErrCannotEdit, 11, "images[gitlab.com/acme/app].tag is an alias of &platform (line 2)"},
	{"alias-entry", "gitlab.com/acme/app", appImage, ErrCannotEdit, 10, "images[gitlab.com/acme/app] is an alias of &img (line 1)"},
	{"merged-tag", "gitlab.com/acme/app", appImage, ErrCannotEdit, 11, "images[gitlab.com/acme/app].tag comes from the merge key (<<) at line 11"},
	{"block-scalar", "gitlab.com/acme/app", appImage, ErrCannotEdit, 9, "block scalar"},
	{"invalid", "gitlab.com/acme/app", appImage, ErrInvalidYAML, 3, "invalid YAML"},
	{"both-forms", "gitlab.com/acme/app", appImage, ErrCannotEdit, 4, "both image and repository"},
	{"int-tag", "gitlab.com/acme/app", appImage, ErrCannotEdit, 6, "explicit tag !!int"},
	{"multiline-plain", "gitlab.com/acme/app", appImage, ErrCannotEdit, 6, "continues on the next line"},
	{"duplicate-key", "gitlab.com/acme/app", appImage, ErrCannotEdit, 7, "key tag is written twice (lines 6 and 7)"},
	{"no-tag", "gitlab.com/acme/app", appImage, ErrCannotEdit, 4, "has no tag"},
	{"not-listed", "gitlab.com/acme/app", Image{Repository: "registry.acme.io/acme/app", Tag: "-bad"}, ErrInvalidImage, 0, `tag "-bad"`},
}

var appImage = Image{Repository: "registry.acme.io/acme/app", Tag: "2.0.0"}

func TestSetImageErrors(t *testing.T) {
	for _, c := range errorCases {
		t.Run(c.file, func(t *testing.T) {
			src := readFile(t, filepath.Join("testdata/errors", c.file+".yaml"))
			out, changed, err := SetImage(src, c.trigger, c.img)
			if err == nil {
				t.Fatalf("no error; changed=%v, output:\n%s", changed, out)
			}
			if !errors.Is(err, c.is) {
				t.Errorf("error %q is not %v", err, c.is)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error %q does not say %q", err, c.msg)
			}
			var e *Error
			if errors.As(err, &e) {
				if e.Line != c.line {
					t.Errorf("error %q at line %d, want %d", err, e.Line, c.line)
				}
			} else if c.line != 0 {
				t.Errorf("error %q carries no line, want %d", err, c.line)
			}
			if out != nil || changed {
				t.Errorf("an error returns no output")
			}
		})
	}
	if !errors.Is(ErrNotListed, repo.ErrTriggerRepoNotListed) {
		t.Errorf("ErrNotListed does not wrap repo.ErrTriggerRepoNotListed")
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		img  Image
		want string // "" when valid
	}{
		{Image{Repository: "registry.acme.io/acme/app", Tag: "1.4.2"}, ""},
		{Image{Repository: "nginx", Tag: "1.27"}, ""},
		{Image{Repository: "localhost:5000/app", Digest: digest1}, ""},
		{Image{Repository: "registry.acme.io:443/a/b/c", Tag: "v1", Digest: digest1}, ""},
		{Image{Repository: "", Tag: "1"}, "repository is empty"},
		{Image{Repository: "Registry.acme.io/App", Tag: "1"}, "repository"},
		{Image{Repository: "registry.acme.io/app:1", Tag: "1"}, "must not carry a tag"},
		{Image{Repository: "registry.acme.io/app"}, "give a tag, a digest or both"},
		{Image{Repository: "registry.acme.io/app", Tag: "1 2"}, `tag "1 2"`},
		{Image{Repository: "registry.acme.io/app", Tag: strings.Repeat("a", 129)}, "tag"},
		{Image{Repository: "registry.acme.io/app", Digest: "sha256:abc"}, `digest "sha256:abc"`},
		{Image{Repository: "registry.acme.io/app", Digest: "1.0"}, `digest "1.0"`},
	} {
		err := c.img.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: %v", c.img, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrInvalidImage)):
			t.Errorf("%+v: error %v, want one saying %q", c.img, err, c.want)
		}
	}
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil && !(*update && os.IsNotExist(err)) {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func diff(want, got string) string {
	d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(want), B: difflib.SplitLines(got), FromFile: "want", ToFile: "got", Context: 2,
	})
	return d
}
