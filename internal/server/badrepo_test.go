package server_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/gittest"
	"github.com/mygitops/mgo/internal/reconcile"
)

// TestHostileRepoFiles pushes each class of bad file to the gitops repo of
// a running mgo: it stays up, the sync names the file (and line where
// there is one), and the other releases still sync.
func TestHostileRepoFiles(t *testing.T) {
	files := withoutReleases(t)
	dir := "installations/" + cluster + "/"
	files[dir+"good-values.yaml"] = values("good", "hostile-good", "1.0.0", "")
	remote, gitSrv, pw := setupFiles(t, files)
	m := startMgo(t, gitSrv.URL, pw, t.TempDir())
	waitFor(t, "the first sync", 2*time.Minute, func() bool {
		return imageOrEmpty("hostile-good", "good") == "registry.example.com/acme/good:1.0.0"
	})
	person := gittest.NewPerson(t, remote.Dir, "Mallory", "mallory@example.com")

	var bomb strings.Builder
	bomb.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		p := "*a" + string(rune('0'+i-1))
		bomb.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [" + strings.Repeat(p+", ", 9) + p + "]\n")
	}

	// A raw ConfigMap applied while it was valid must survive a push that
	// breaks it: the broken document is left out of the apply, and pruning
	// would delete it.
	settings := dir + "config-raw.yaml"
	if _, err := person.PushChange(map[string]string{settings: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: default\ndata:\n  retries: \"3\"\n"}, "add settings", 3); err != nil {
		t.Fatal(err)
	}
	hook(t, m)
	waitFor(t, "the raw ConfigMap", time.Minute, func() bool {
		_, err := env.Client.CoreV1().ConfigMaps("default").Get(t.Context(), "settings", metav1.GetOptions{})
		return err == nil
	})

	cases := []struct {
		name    string
		file    string // the bad file
		content string
		symlink string // when set, file is a symlink to it
		line    bool   // the error names a line
		raw     bool   // a raw manifest: the error is the raw manifests'
	}{
		{name: "self-merging YAML", file: dir + "selfmerge-values.yaml", line: true,
			content: "--- &a\n__mygitops:\n  chart: ./charts/hello\n  name: selfmerge\n  namespace: hostile-x\n<<: *a\n"},
		{name: "alias bomb", file: dir + "bomb-values.yaml", line: true,
			content: "__mygitops:\n  chart: ./charts/hello\n  name: bomb\n  namespace: hostile-x\n" + bomb.String()},
		{name: "10 MiB values file", file: dir + "huge-values.yaml",
			content: "__mygitops:\n  chart: ./charts/hello\n  name: huge\n  namespace: hostile-x\npad: \"" + strings.Repeat("x", 10<<20) + "\"\n"},
		{name: "invalid UTF-8", file: dir + "latin1-values.yaml", line: true,
			content: "__mygitops:\n  chart: ./charts/hello\n  name: latin1\n  namespace: hostile-x\nowner: \"J\xf6rg\"\n"},
		{name: "symlink out of the repo", file: dir + "link-values.yaml", symlink: "/etc/passwd"},
		{name: "number in ConfigMap data", file: settings, raw: true, line: true,
			content: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: default\ndata:\n  retries: 3\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := person.Sync(); err != nil {
				t.Fatal(err)
			}
			if tc.symlink != "" {
				if err := os.Symlink(tc.symlink, filepath.Join(person.Dir, tc.file)); err != nil {
					t.Fatal(err)
				}
			} else {
				if err := os.WriteFile(filepath.Join(person.Dir, tc.file), []byte(tc.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// The good release changes in the same push: it must still sync.
			tag := "1.0." + string(rune('1'+len(tc.name)%9))
			good := values("good", "hostile-good", tag, "")
			if _, err := person.Commit(map[string]string{dir + "good-values.yaml": good}, "add "+tc.name); err != nil {
				t.Fatal(err)
			}
			if err := person.Push(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := person.Sync(); err != nil {
					t.Fatal(err)
				}
				if tc.raw {
					// The file was valid before: it stays, valid again.
					if err := os.WriteFile(filepath.Join(person.Dir, tc.file), []byte(strings.Replace(tc.content, "retries: 3", "retries: \"3\"", 1)), 0o644); err != nil {
						t.Fatal(err)
					}
				} else if err := os.Remove(filepath.Join(person.Dir, tc.file)); err != nil {
					t.Fatal(err)
				}
				if _, err := person.Commit(map[string]string{}, "remove "+tc.name); err != nil {
					t.Fatal(err)
				}
				if err := person.Push(); err != nil {
					t.Fatal(err)
				}
			})
			hook(t, m)
			head := remote.Head(t)
			waitFor(t, "the pushed change to be fetched and synced", 2*time.Minute, func() bool {
				var cs struct {
					Clusters []deploy.ClusterStatus `json:"clusters"`
				}
				m.call(http.MethodGet, "/api/v1/clusters", ciToken, "", nil, &cs)
				return len(cs.Clusters) == 1 && cs.Clusters[0].Head == head
			})

			var res reconcile.Result
			code := m.call(http.MethodPost, "/api/v1/clusters/"+cluster+"/sync", ciToken, "", nil, &res)
			if code != http.StatusFailedDependency {
				t.Fatalf("sync with %s: %d, want 424 (failed)", tc.name, code)
			}
			var where string
			if tc.raw {
				where = res.RawError
			} else {
				for _, rr := range res.Releases {
					if rr.File == tc.file {
						if rr.Action != reconcile.Failed {
							t.Errorf("%s: action %s, want failed", tc.file, rr.Action)
						}
						where = rr.Error
					} else if rr.Action == reconcile.Failed {
						t.Errorf("release %s failed too: %s", rr.File, rr.Error)
					}
				}
			}
			if !strings.Contains(where, tc.file) {
				t.Errorf("the sync's error does not name %s: %q", tc.file, where)
			}
			if tc.line && !strings.Contains(where, tc.file+":") {
				t.Errorf("the sync's error names no line of %s: %q", tc.file, where)
			}
			if got := imageOrEmpty("hostile-good", "good"); got != "registry.example.com/acme/good:"+tag {
				t.Errorf("the good release beside %s runs %s, want tag %s", tc.name, got, tag)
			}
			if tc.raw {
				if _, err := env.Client.CoreV1().ConfigMaps("default").Get(t.Context(), "settings", metav1.GetOptions{}); err != nil {
					t.Errorf("the ConfigMap of the broken document was pruned: %v", err)
				}
			}
			if code := m.call(http.MethodGet, "/healthz", "", "", nil, nil); code != http.StatusOK {
				t.Fatalf("mgo is not healthy after %s: %d", tc.name, code)
			}
		})
	}
}

// hook tells mgo about a push, as GitLab's webhook does.
func hook(t *testing.T, m *mgo) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, m.url+"/hooks/gitlab", strings.NewReader(`{"object_kind":"push"}`))
	req.Header.Set("X-Gitlab-Event", "Push Hook")
	req.Header.Set("X-Gitlab-Token", gitlabHook)
	resp, err := apiClient(t).Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook: %v %v", resp, err)
	}
	resp.Body.Close()
}
