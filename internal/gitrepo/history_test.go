package gitrepo

import (
	"testing"
)

// LastChanges names, per file, the newest commit of the branch that
// changed it, with its author; files no commit of the branch touched
// since are attributed to the commit that last changed them, however far
// back; unknown files are absent.
func TestLastChanges(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	r, _ := f.repo(t)
	ctx := testContext(t)
	seed := f.remote.Head(t)

	first, err := r.Apply(ctx, setTag("1.4.2"), info("jane@acme.io", "deploy 1.4.2", "dep-1"))
	if err != nil || !first.Changed {
		t.Fatalf("deploy: %+v, %v", first, err)
	}
	other, err := r.Apply(ctx, setLine("installations/prod/images.txt", "svc", "x:1"), info("joe@acme.io", "deploy svc", "dep-2"))
	if err != nil || !other.Changed {
		t.Fatalf("other: %+v, %v", other, err)
	}
	head, err := r.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.LastChanges(ctx, head, []string{valuesFile, "installations/prod/images.txt", "mygitops.yaml", "no/such/file"}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if c := got[valuesFile]; c.Commit != first.Commit || c.AuthorEmail != "jane@acme.io" || c.Summary != "deploy 1.4.2" || c.Time.IsZero() {
		t.Errorf("values file: %+v, want commit %s by jane", c, first.Commit)
	}
	if c := got["installations/prod/images.txt"]; c.Commit != other.Commit || c.AuthorEmail != "joe@acme.io" {
		t.Errorf("images.txt: %+v, want commit %s by joe", c, other.Commit)
	}
	if c := got["mygitops.yaml"]; c.Commit != seed {
		t.Errorf("mygitops.yaml: %+v, want the seed commit %s", c, seed)
	}
	if c, ok := got["no/such/file"]; ok {
		t.Errorf("a file that does not exist has a change: %+v", c)
	}
	// A bound on the walk leaves what it did not reach out.
	got, err = r.LastChanges(ctx, head, []string{"mygitops.yaml"}, 1)
	if err != nil || len(got) != 0 {
		t.Errorf("with a walk of 1 commit: %+v, %v", got, err)
	}
	if _, err := r.LastChanges(ctx, "not-a-hash", nil, 10); err == nil {
		t.Error("a malformed head was accepted")
	}
}

func TestWebURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://github.com/acme/gitops.git":         "https://github.com/acme/gitops",
		"https://mgo:secret@gitlab.com/acme/gitops":  "https://gitlab.com/acme/gitops",
		"ssh://git@github.com:22/acme/gitops.git":    "https://github.com/acme/gitops",
		"git@gitlab.acme.io:platform/gitops.git":     "https://gitlab.acme.io/platform/gitops",
		"http://127.0.0.1:8080/repo.git":             "http://127.0.0.1:8080/repo",
		"file:///srv/git/gitops.git":                 "",
		"/srv/git/gitops.git":                        "",
		"https://github.com/acme/gitops.git?x=1#top": "https://github.com/acme/gitops",
	} {
		if got := webURL(in); got != want {
			t.Errorf("webURL(%q) = %q, want %q", in, got, want)
		}
	}
}
