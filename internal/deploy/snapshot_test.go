package deploy

import (
	"os"
	"path/filepath"
	"testing"
)

// A kept snapshot brought up to date equals the tree: changed files (also
// of the same size), new and removed files and directories, a file that
// became a directory, links kept as links; .git is never copied.
func TestSnapshotUpdate(t *testing.T) {
	src := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(src, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("mygitops.yaml", "clusters: {}\n")
	write("installations/prod/app-values.yaml", "tag: 1.0.0\n")
	write("installations/prod/old-values.yaml", "tag: 1.0.0\n")
	write("charts/hello/Chart.yaml", "name: hello\n")
	write("charts/gone/Chart.yaml", "name: gone\n")
	write("thing", "a file\n")
	write(".git/HEAD", "ref: refs/heads/main\n")
	if err := os.Symlink("app-values.yaml", filepath.Join(src, "installations/prod/link-values.yaml")); err != nil {
		t.Fatal(err)
	}

	pool := &snapshots{dir: t.TempDir()}
	sn, err := pool.take(src)
	if err != nil {
		t.Fatal(err)
	}
	same(t, src, sn.dir)
	pool.give(sn)

	write("installations/prod/app-values.yaml", "tag: 2.0.0\n") // same size
	write("installations/prod/new-values.yaml", "tag: 3.0.0\n")
	os.Remove(filepath.Join(src, "installations/prod/old-values.yaml"))
	os.RemoveAll(filepath.Join(src, "charts/gone"))
	os.Remove(filepath.Join(src, "thing"))
	write("thing/inside", "now a directory\n")
	os.Remove(filepath.Join(src, "installations/prod/link-values.yaml"))
	if err := os.Symlink("new-values.yaml", filepath.Join(src, "installations/prod/link-values.yaml")); err != nil {
		t.Fatal(err)
	}

	again, err := pool.take(src)
	if err != nil {
		t.Fatal(err)
	}
	if again.dir != sn.dir {
		t.Fatalf("the kept snapshot %s was not reused (got %s)", sn.dir, again.dir)
	}
	same(t, src, again.dir)
}

// same fails unless dst holds what src holds, .git aside.
func same(t *testing.T, src, dst string) {
	t.Helper()
	list := func(root string) map[string]string {
		out := map[string]string{}
		err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			switch {
			case d.Name() == ".git":
				return filepath.SkipDir
			case d.Type()&os.ModeSymlink != 0:
				to, _ := os.Readlink(p)
				out[rel] = "link " + to
			case d.IsDir():
				out[rel] = "dir"
			default:
				b, _ := os.ReadFile(p)
				out[rel] = string(b)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	want, got := list(src), list(dst)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: snapshot has %q, tree has %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: in the snapshot, not in the tree", k)
		}
	}
}
