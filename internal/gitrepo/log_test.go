package gitrepo

import (
	"strings"
	"testing"

	"github.com/mygitops/mgo/internal/gittest"
)

// Commit describes commits mgo pushed and commits it fetched; a name that
// is not a hash, or a hash the clone does not have, is an error.
func TestCommit(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	r, _ := f.repo(t)
	ctx := testContext(t)

	res, err := r.Apply(ctx, setTag("2.0.0"), info("jane@acme.io", "deploy 2.0.0", "dep-9"))
	if err != nil || !res.Changed {
		t.Fatalf("deploy: %+v, %v", res, err)
	}
	c, err := r.Commit(ctx, res.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if c.Hash != res.Commit || !strings.HasSuffix(c.Author, "<jane@acme.io>") || c.Subject != "deploy 2.0.0" {
		t.Errorf("pushed commit: %+v", c)
	}

	other, err := gittest.NewPerson(t, f.remote.Dir, "Other", "other@example.com").
		PushChange(map[string]string{"README.md": "hello\n"}, "someone else's change", 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	c, err = r.Commit(ctx, other)
	if err != nil || c.Subject != "someone else's change" || c.Author != "Other <other@example.com>" {
		t.Errorf("fetched commit: %+v, %v", c, err)
	}

	for _, bad := range []string{"main", "", strings.Repeat("0", 40)} {
		if _, err := r.Commit(ctx, bad); err == nil {
			t.Errorf("Commit(%q) found a commit", bad)
		}
	}
}
