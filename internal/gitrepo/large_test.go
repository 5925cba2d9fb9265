package gitrepo

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mygitops/mgo/internal/gittest"
)

// largeHistory is the number of commits of TestLargeHistory's repository
// (MGO_GIT_HISTORY overrides it).
func largeHistory(t *testing.T) int {
	if s := os.Getenv("MGO_GIT_HISTORY"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("MGO_GIT_HISTORY=%q: %v", s, err)
		}
		return n
	}
	return 10000
}

// A repository with 10,000 commits: the first clone and a warm change
// (fetch, edit, commit, push) are timed and logged, not asserted.
//
//	go test -race -run TestLargeHistory -v ./internal/gitrepo/
func TestLargeHistory(t *testing.T) {
	// Not parallel: timed alone, it is not slowed down by other tests.
	n := largeHistory(t)
	remote := gittest.NewRemote(t, gittest.Skeleton())
	start := time.Now()
	remote.AddHistory(t, n)
	t.Logf("fast-import of %d commits: %v", n, time.Since(start).Round(time.Millisecond))
	server := gittest.NewHTTPServer(t, remote, httpUser, httpPass)

	opts := DefaultOptions()
	opts.URL = server.URL
	opts.InsecureAllowHTTP = true
	opts.Dir = filepath.Join(t.TempDir(), "clone")
	opts.Auth = Auth{Username: httpUser, Password: writeSecret(t, httpPass)}
	logger, _ := newLogger(t)
	r, err := New(opts, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)

	start = time.Now()
	if err := r.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("first clone (%d commits, over HTTP): %v", n+1, time.Since(start).Round(time.Millisecond))

	for i := 0; i < 3; i++ {
		start = time.Now()
		res, err := r.Apply(ctx, setTag(fmt.Sprintf("2.0.%d", i)), info("jane", "deploy", fmt.Sprint("dep-", i)))
		if err != nil || !res.Changed {
			t.Fatalf("result %+v, %v", res, err)
		}
		t.Logf("warm change %d (fetch + edit + commit + push): %v", i+1, time.Since(start).Round(time.Millisecond))
	}
	// Someone else pushes; the next change fetches their commit first.
	other := gittest.NewPerson(t, remote.Dir, "Other", "other@example.com")
	if _, err := other.PushChange(map[string]string{"other.txt": "x\n"}, "other", 1); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if _, err := r.Apply(ctx, setTag("3.0.0"), info("jane", "deploy", "dep-x")); err != nil {
		t.Fatal(err)
	}
	t.Logf("change after another push (fetch of 1 new commit + edit + commit + push): %v", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	r2, err := New(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("reopen after restart: %v", time.Since(start).Round(time.Millisecond))
	if got := remote.Count(t); got != n+6 {
		t.Errorf("%d commits, want %d", got, n+6)
	}
}
