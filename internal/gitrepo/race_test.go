package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mygitops/mgo/internal/gittest"
)

// Someone pushes between mgo's fetch and its push: the push is refused
// before any pack is sent (the remote ref is not at the base any more), the
// ChangeFunc runs again on the new head, and both changes survive.
func TestRetryAfterLostRace(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	r, logs := f.repo(t)
	ctx := testContext(t)
	other := gittest.NewPerson(t, f.remote.Dir, "Other", "other@example.com")

	var runs atomic.Int32
	var theirs string
	change := func(dir string) (bool, error) {
		if runs.Add(1) == 1 {
			var err error
			theirs, err = other.PushChange(map[string]string{"other.txt": "theirs\n"}, "unrelated", 1)
			if err != nil {
				return false, err
			}
		}
		return setTag("1.4.2")(dir)
	}
	res, err := r.Apply(ctx, change, info("jane", "deploy 1.4.2", "dep-1"))
	if err != nil {
		t.Fatal(err)
	}
	if runs.Load() != 2 || res.Attempts != 2 || !res.Changed {
		t.Fatalf("runs %d, result %+v; want 2 runs, 2 attempts", runs.Load(), res)
	}
	if !f.remote.IsAncestor(t, theirs) {
		t.Fatal("the other commit was lost")
	}
	log := logOf(t, f.remote, "-2")
	if log[0].Hash != res.Commit || log[0].Parents[0] != theirs {
		t.Fatalf("history %+v; want ours on top of theirs", log)
	}
	if !strings.Contains(logs.String(), "push lost a race") {
		t.Errorf("log: %s", logs)
	}
	checkClone(t, f.opts, f.remote)
}

// A push that lands but whose answer is lost is recognised on the next
// fetch: the result names the commit, and the change is not made again.
func TestPushLandedAnswerLost(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	r, logs := f.repo(t)
	f.server.LoseNextPushResponse()
	var runs atomic.Int32
	change := func(dir string) (bool, error) {
		runs.Add(1)
		return setTag("1.4.2")(dir)
	}
	res, err := r.Apply(testContext(t), change, info("jane", "deploy 1.4.2", "dep-1"))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.Commit == "" || res.Commit != f.remote.Head(t) || runs.Load() != 1 || f.server.Count("receive-pack") != 1 {
		t.Fatalf("result %+v, remote head %s, %d runs, %d pushes", res, f.remote.Head(t), runs.Load(), f.server.Count("receive-pack"))
	}
	if !strings.Contains(logs.String(), "its commits are on the remote") {
		t.Errorf("log: %s", logs)
	}
	checkClone(t, f.opts, f.remote)
}

// The branch moves after the server advertised it but before it updates the
// ref (a pre-receive hook plays the other pusher): git receive-pack refuses
// the update, and mgo retries as above.
func TestRetryAfterServerSideRejection(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	hook := `#!/bin/sh
[ -f race-once ] || exit 0
rm -f race-once
unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES
c=$(echo sneaky | GIT_AUTHOR_NAME=S GIT_AUTHOR_EMAIL=s@example.com GIT_COMMITTER_NAME=S GIT_COMMITTER_EMAIL=s@example.com \
	git commit-tree refs/heads/main^{tree} -p refs/heads/main) || exit 1
git update-ref refs/heads/main "$c" || exit 1
echo "$c" > sneaky
`
	if err := os.WriteFile(filepath.Join(f.remote.Dir, "hooks", "pre-receive"), []byte(hook), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(f.remote.Dir, "race-once"), nil, 0o644)
	r, logs := f.repo(t)
	res, err := r.Apply(testContext(t), setTag("1.4.2"), info("jane", "deploy 1.4.2", "dep-1"))
	if err != nil {
		t.Fatal(err)
	}
	sneaky, _ := os.ReadFile(filepath.Join(f.remote.Dir, "sneaky"))
	if len(sneaky) == 0 {
		t.Fatal("the hook did not run")
	}
	if res.Attempts != 2 || !f.remote.IsAncestor(t, strings.TrimSpace(string(sneaky))) || f.remote.Head(t) != res.Commit {
		t.Fatalf("result %+v, remote head %s", res, f.remote.Head(t))
	}
	if !strings.Contains(logs.String(), "command error on refs/heads/main") {
		t.Errorf("the first push was not refused by the server: %s", logs)
	}
}

// When the re-run finds that someone else already made the change, the
// request succeeds without a commit, at their head.
func TestRerunFindsNoChange(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	r, _ := f.repo(t)
	other := gittest.NewPerson(t, f.remote.Dir, "Other", "other@example.com")
	var theirs string
	var once sync.Once
	change := func(dir string) (bool, error) {
		var err error
		once.Do(func() {
			other.Sync()
			setTag("1.4.2")(other.Dir)
			theirs, err = other.Commit(nil, "same tag, first")
			if err == nil {
				err = other.Push()
			}
		})
		if err != nil {
			return false, err
		}
		return setTag("1.4.2")(dir)
	}
	res, err := r.Apply(testContext(t), change, info("jane", "deploy 1.4.2", "dep-1"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed || res.Commit != "" || res.Head != theirs || f.remote.Head(t) != theirs {
		t.Fatalf("result %+v; want unchanged at their commit %s", res, theirs)
	}
}

// Retries are bounded: against a remote that moves before every push,
// the error is ErrTooManyRetries after PushRetries+1 attempts.
func TestRetriesExhausted(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	f.opts.PushRetries = 2
	r, _ := f.repo(t)
	other := gittest.NewPerson(t, f.remote.Dir, "Other", "other@example.com")
	n := 0
	change := func(dir string) (bool, error) {
		n++
		if _, err := other.PushChange(map[string]string{"other.txt": fmt.Sprint(n)}, "unrelated", 1); err != nil {
			return false, err
		}
		return setTag("1.4.2")(dir)
	}
	res, err := r.Apply(testContext(t), change, info("jane", "deploy", "dep-1"))
	if !errors.Is(err, ErrTooManyRetries) || res.Attempts != 3 || res.Changed {
		t.Fatalf("result %+v, err %v; want ErrTooManyRetries after 3 attempts", res, err)
	}
	t.Logf("error: %v", err)
	if f.remote.File(t, "other.txt") != "3" {
		t.Fatal("the other pusher's commits were lost")
	}
	checkClone(t, f.opts, f.remote)
}

// 50 deploys through one Repo, concurrently, while another client pushes
// unrelated commits to the same branch every 100 to 300 ms with the git
// CLI: every deploy lands as its own commit with its own
// author, and the branch's full history is exactly the seed, the other
// client's commits (unchanged, in their order) and the deploys.
func TestConcurrentDeploysAgainstAnotherPusher(t *testing.T) {
	// Not parallel: who wins the races depends on CPU time, which other
	// tests would take.
	const deploys = 50
	f := newHTTPFixture(t)
	f.opts.PushRetries = 50 // the other pusher never pauses
	r, logs := f.repo(t)
	// How many races the deploys lose depends on CPU time: on a loaded
	// machine (a CI run building other packages beside this one) they take
	// minutes. The test is about what lands, not how fast: a roomier
	// deadline than the other tests'.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := r.Open(ctx); err != nil {
		t.Fatal(err)
	}
	seed := f.remote.Head(t)

	// The other client: a git CLI clone of the server's repository
	// directory (faster than going through HTTP, so it wins races often),
	// pushing every 100 to 300 ms.
	other := gittest.NewPerson(t, f.remote.Dir, "Other", "other@example.com")
	stop := make(chan struct{})
	var mu sync.Mutex
	var theirs []string
	landed := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(theirs)
	}
	var otherErr error
	otherDone := make(chan struct{})
	go func() {
		defer close(otherDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			c, err := other.PushChange(map[string]string{fmt.Sprintf("other/%03d.txt", i): fmt.Sprintln(i)}, fmt.Sprint("unrelated ", i), 1000)
			if err != nil {
				otherErr = err
				return
			}
			mu.Lock()
			theirs = append(theirs, c)
			mu.Unlock()
			// A person or another tool pushes often, not back to back: a
			// pusher that never pauses starves any client that fetches
			// before it pushes (git's own CLI included) on a loaded machine.
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(100+rand.IntN(200)) * time.Millisecond):
			}
		}
	}()
	// waitOther waits until the other client has landed n commits.
	waitOther := func(n int) {
		for landed() < n {
			select {
			case <-otherDone:
				t.Fatalf("other pusher: %v", otherErr)
			case <-ctx.Done():
				t.Fatalf("the other client landed %d commits, want %d", landed(), n)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	waitOther(2)

	// A reader, as the sync engine: every tree it sees is a whole commit.
	readDone := make(chan struct{})
	stopRead := make(chan struct{})
	reads := 0
	go func() {
		defer close(readDone)
		for {
			select {
			case <-stopRead:
				return
			case <-time.After(20 * time.Millisecond):
			}
			err := r.Read(ctx, func(dir, head string) error {
				reads++
				b, err := os.ReadFile(filepath.Join(dir, "installations/prod/images.txt"))
				if os.IsNotExist(err) {
					return nil
				}
				for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
					if !strings.HasPrefix(l, "svc-") {
						return fmt.Errorf("at %s images.txt holds %q", head, b)
					}
				}
				return err
			})
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()

	start := time.Now()
	results := make([]Result, deploys)
	errs := make([]error, deploys)
	var wg sync.WaitGroup
	for i := 0; i < deploys; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("svc-%02d", i)
			results[i], errs[i] = r.Apply(ctx, setLine("installations/prod/images.txt", key, fmt.Sprintf("registry.acme.io/%s:1.0.%d", key, i)),
				info(fmt.Sprintf("dev%02d@acme.io", i), "deploy "+key, fmt.Sprintf("dep-%02d", i)))
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stopRead)
	<-readDone
	if reads < 5 {
		t.Errorf("%d reads while %d deploys ran: Read waits for the whole queue of changes", reads, deploys)
	}
	// The other client goes on a little on top of the deploys.
	waitOther(landed() + 2)
	close(stop)
	<-otherDone
	if otherErr != nil {
		t.Fatalf("other pusher: %v", otherErr)
	}

	retries, maxAttempts := 0, 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("deploy %d: %v", i, err)
		}
		if !results[i].Changed {
			t.Fatalf("deploy %d made no commit: %+v", i, results[i])
		}
		retries += results[i].Attempts - 1
		maxAttempts = max(maxAttempts, results[i].Attempts)
	}
	t.Logf("%d deploys in %v against %d pushes of another client: %d push retries (most attempts for one deploy: %d); %d reads",
		deploys, elapsed.Round(time.Millisecond), len(theirs), retries, maxAttempts, reads)

	// The full history, oldest first: a straight line of the seed, then
	// the other client's commits in their order and the deploys in any
	// order, nothing else.
	history := logOf(t, f.remote, "main")
	slices.Reverse(history)
	if len(history) != 1+len(theirs)+deploys {
		t.Fatalf("%d commits in the history, want 1 seed + %d theirs + %d deploys", len(history), len(theirs), deploys)
	}
	if history[0].Hash != seed {
		t.Fatalf("history starts at %s, not at the seed %s", history[0].Hash, seed)
	}
	byDeployment := map[string]commitRecord{}
	var otherOrder []string
	for i, c := range history[1:] {
		if len(c.Parents) != 1 || c.Parents[0] != history[i].Hash {
			t.Fatalf("commit %s has parents %v, want [%s]", c.Hash, c.Parents, history[i].Hash)
		}
		if c.AuthorEmail == "other@example.com" {
			otherOrder = append(otherOrder, c.Hash)
			continue
		}
		id := ParseMessage(c.Body).Trailers.DeploymentID
		if _, dup := byDeployment[id]; dup || id == "" {
			t.Fatalf("commit %s: deployment %q is not a new deploy", c.Hash, id)
		}
		byDeployment[id] = c
	}
	if !slices.Equal(otherOrder, theirs) {
		t.Fatalf("the other client's commits in the history:\n%v\nwant\n%v", otherOrder, theirs)
	}
	for i := 0; i < deploys; i++ {
		id := fmt.Sprintf("dep-%02d", i)
		c, ok := byDeployment[id]
		if !ok {
			t.Fatalf("%s: no commit", id)
		}
		if want := fmt.Sprintf("dev%02d@acme.io", i); c.AuthorEmail != want || c.CommitterName != "mgo" {
			t.Errorf("%s: author %s, committer %s", id, c.AuthorEmail, c.CommitterName)
		}
		if c.Hash != results[i].Commit {
			t.Errorf("%s: landed %s, result says %s", id, c.Hash, results[i].Commit)
		}
	}
	// Every deploy's line is in the final file, and every file of the
	// other client is there.
	file := f.remote.File(t, "installations/prod/images.txt")
	if n := strings.Count(file, "\n") + 1; n != deploys {
		t.Errorf("images.txt has %d lines, want %d:\n%s", n, deploys, file)
	}
	if files := f.remote.Git(t, "ls-tree", "--name-only", "main", "other/"); strings.Count(files, "\n")+1 != len(theirs) {
		t.Errorf("%d files of the other client, want %d", strings.Count(files, "\n")+1, len(theirs))
	}
	if strings.Contains(logs.String(), httpPass) {
		t.Error("the password is in the log")
	}
	if _, err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	checkClone(t, f.opts, f.remote)
}
