package gitrepo

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mygitops/mgo/internal/gittest"
	"github.com/mygitops/mgo/internal/logtest"
)

const (
	valuesFile  = "installations/prod/app-values.yaml"
	httpUser    = "mgo-bot"
	httpPass    = "hunter2-http-secret"
	testTimeout = 3 * time.Minute
)

func newLogger(t *testing.T) (*slog.Logger, *logtest.Buffer) {
	buf := &logtest.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("repo log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// writeSecret writes a secret to a file and returns a reference to it.
func writeSecret(t *testing.T, v string) SecretRef {
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return SecretRef{File: path}
}

// httpFixture is a seeded remote served over HTTP with basic auth, and
// options for a Repo cloning it.
type httpFixture struct {
	remote *gittest.Remote
	server *gittest.HTTPServer
	opts   Options
}

func newHTTPFixture(t *testing.T) *httpFixture {
	t.Helper()
	remote := gittest.NewRemote(t, gittest.Skeleton())
	server := gittest.NewHTTPServer(t, remote, httpUser, httpPass)
	opts := DefaultOptions()
	opts.URL = server.URL
	opts.InsecureAllowHTTP = true
	opts.Dir = filepath.Join(t.TempDir(), "clone")
	opts.Auth = Auth{Username: httpUser, Password: writeSecret(t, httpPass)}
	opts.RetryBackoff = 10 * time.Millisecond
	opts.MaxRetryBackoff = 200 * time.Millisecond
	return &httpFixture{remote: remote, server: server, opts: opts}
}

func (f *httpFixture) repo(t *testing.T) (*Repo, *logtest.Buffer) {
	t.Helper()
	logger, buf := newLogger(t)
	r, err := New(f.opts, logger)
	if err != nil {
		t.Fatal(err)
	}
	return r, buf
}

// workTree is where a Repo with opts keeps its checked-out files.
func workTree(opts Options) string { return filepath.Join(opts.Dir, "tree") }

var tagLine = regexp.MustCompile(`(?m)^(\s+tag: )"[^"]*"`)

// setTag is a ChangeFunc that sets the image tag in the seeded values file.
func setTag(tag string) ChangeFunc {
	return func(dir string) (bool, error) {
		path := filepath.Join(dir, valuesFile)
		b, err := os.ReadFile(path)
		if err != nil {
			return false, err
		}
		out := tagLine.ReplaceAll(b, []byte(`${1}"`+tag+`"`))
		if bytes.Equal(b, out) {
			return false, nil
		}
		return true, os.WriteFile(path, out, 0o644)
	}
}

// setLine is a ChangeFunc that sets "key: value" in a shared file of sorted
// lines, computed from whatever the file holds when it runs.
func setLine(file, key, value string) ChangeFunc {
	return func(dir string) (bool, error) {
		path := filepath.Join(dir, filepath.FromSlash(file))
		b, err := os.ReadFile(path)
		if err != nil && !os.IsNotExist(err) {
			return false, err
		}
		lines := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if k, v, ok := strings.Cut(l, ": "); ok {
				lines[k] = v
			}
		}
		if lines[key] == value {
			return false, nil
		}
		lines[key] = value
		keys := make([]string, 0, len(lines))
		for k := range lines {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var out strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&out, "%s: %s\n", k, lines[k])
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return false, err
		}
		return true, os.WriteFile(path, []byte(out.String()), 0o644)
	}
}

func info(author, summary, deployment string) CommitInfo {
	return CommitInfo{
		Author: author,
		Message: Message{
			Summary: summary,
			Trailers: Trailers{
				TriggerRepo:  "gitlab.com/acme/app",
				RequestedBy:  "ci-acme",
				DeploymentID: deployment,
			},
		},
	}
}

// commitRecord is one commit as the git CLI reads it from the bare repo.
type commitRecord struct {
	Hash, AuthorName, AuthorEmail, CommitterName, CommitterEmail, Subject string
	Body                                                                  string
	Parents                                                               []string
}

// logOf reads the branch history of the bare repository with git log,
// newest first.
func logOf(t *testing.T, r *gittest.Remote, rng string) []commitRecord {
	t.Helper()
	out := r.Git(t, "log", "--format=%H%x1f%P%x1f%an%x1f%ae%x1f%cn%x1f%ce%x1f%s%x1f%B%x1e", rng)
	var recs []commitRecord
	for _, rec := range strings.Split(out, "\x1e") {
		rec = strings.TrimLeft(rec, "\n")
		if rec == "" {
			continue
		}
		f := strings.Split(rec, "\x1f")
		if len(f) != 8 {
			t.Fatalf("git log record %q", rec)
		}
		recs = append(recs, commitRecord{
			Hash: f[0], Parents: strings.Fields(f[1]), AuthorName: f[2], AuthorEmail: f[3],
			CommitterName: f[4], CommitterEmail: f[5], Subject: f[6], Body: f[7],
		})
	}
	return recs
}

// checkClone checks the clone in opts.Dir with the git CLI once a Repo is
// idle: the repository is sound (git fsck), its remote-tracking ref and
// branch are at the remote's head, the work tree holds that commit's files
// and fetches have not piled up packfiles.
func checkClone(t *testing.T, opts Options, remote *gittest.Remote) {
	t.Helper()
	checkCloneState(t, opts, remote)
	if packs := packfiles(opts); len(packs) > 1 {
		t.Errorf("%d packfiles in the clone, want the clone's one", len(packs))
	}
}

// packfiles lists the clone's packfiles.
func packfiles(opts Options) []string {
	packs, _ := filepath.Glob(filepath.Join(opts.Dir, "repo.git", "objects", "pack", "*.pack"))
	return packs
}

// looseObjects counts the clone's loose objects.
func looseObjects(opts Options) int {
	loose, _ := filepath.Glob(filepath.Join(opts.Dir, "repo.git", "objects", "??", "*"))
	return len(loose)
}

// checkCloneState is checkClone without the packfile count.
func checkCloneState(t *testing.T, opts Options, remote *gittest.Remote) {
	t.Helper()
	gitDir := filepath.Join(opts.Dir, "repo.git")
	if out, err := gittest.Run(gitDir, nil, nil, "fsck", "--strict", "--no-progress", "--no-dangling"); err != nil {
		t.Fatalf("git fsck of the clone: %v\n%s", err, out)
	}
	head := remote.Head(t)
	for _, ref := range []string{"refs/remotes/origin/" + remote.Branch, "refs/heads/" + remote.Branch, "HEAD"} {
		if got := gittest.Git(t, gitDir, "rev-parse", ref); got != head {
			t.Errorf("clone's %s at %s, want the remote head %s", ref, got, head)
		}
	}
	want := map[string]string{}
	for _, line := range strings.Split(gittest.Git(t, gitDir, "ls-tree", "-r", "HEAD"), "\n") {
		meta, path, _ := strings.Cut(line, "\t")
		want[path] = strings.Fields(meta)[2]
	}
	got := map[string]string{}
	root := workTree(opts)
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		got[filepath.ToSlash(rel)] = gittest.Git(t, "", "hash-object", p)
		return nil
	})
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("work tree:\n%v\nwant\n%v", got, want)
	}
}
