package server_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mygitops/mgo/internal/api/apitest"
	"github.com/mygitops/mgo/internal/auth"
	"github.com/mygitops/mgo/internal/cli"
	"github.com/mygitops/mgo/internal/gitrepo"
	"github.com/mygitops/mgo/internal/gittest"
	"github.com/mygitops/mgo/internal/logtest"
	"github.com/mygitops/mgo/internal/server"
)

// TestScenarios runs the end-to-end scenarios of testdata/scenarios, each
// a testscript (.txtar) of its own: its own gitops repo (the files under
// repo/ in the script, plus charts/hello), its own mgo serve and its own
// namespaces on the package's shared control plane. Every answer of the
// API is validated against the OpenAPI document.
//
// Commands beside testscript's own:
//
//	serve                   push repo/ to a new git remote and start mgo serve on it
//	stop / start            stop mgo gracefully / start it again on the same data
//	api [-token T] [-save VAR] [-bg NAME] METHOD PATH [FILE]  call the API (a FILE
//	                        ending in .form is a form); stdout is "HTTP <code>" and the
//	                        body; -save sets VAR to the id of the deployment answered;
//	                        -bg returns at once (see await)
//	hook github|gitlab EVENT [SECRET]  send a push webhook, signed (the right secret by default)
//	push FILE...            commit repo/FILE... (changed in the work tree) as a person and push
//	git ARGS...             git in the remote; stdout is its output
//	image NS RELEASE        the image of the release's Deployment
//	waitfor TIMEOUT CMD...  run an api, image or replicas command until its stdout matches
//	                        the last argument (a regexp)
//	await NAME              the answer of an api -bg NAME call, once it came
//	scale NS RELEASE N      set the replicas of the release's Deployment behind mgo's back
//	replicas NS RELEASE     the replicas of the release's Deployment
//	mgo ARGS...             run the mgo command line (token: the ci token); stdout is
//	                        its output and "exit <code>"
//	sleep DURATION          wait, before checking that something did not happen
func TestScenarios(t *testing.T) {
	// mgo deploy --server (the mgo command) reads its token here.
	prev, had := os.LookupEnv("MGO_TOKEN")
	os.Setenv("MGO_TOKEN", ciToken)
	t.Cleanup(func() {
		if had {
			os.Setenv("MGO_TOKEN", prev)
		} else {
			os.Unsetenv("MGO_TOKEN")
		}
	})
	testscript.RunT(scriptT{t}, testscript.Params{
		Dir: "testdata/scenarios",
		Setup: func(e *testscript.Env) error {
			e.Values["t"] = e.T().(scriptT).T
			e.Values["scenario"] = &scenario{}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"serve": cmdServe, "stop": cmdStop, "start": cmdStart, "api": cmdAPI, "hook": cmdHook,
			"push": cmdPush, "git": cmdGit, "image": cmdImage, "waitfor": cmdWaitFor,
			"await": cmdAwait, "scale": cmdScale, "replicas": cmdReplicas, "mgo": cmdMgo, "sleep": cmdSleep, "helm": cmdHelm,
		},
	})
}

// scriptT is testscript's T with the *testing.T of each script at hand,
// for the helpers that need one (git remotes, servers).
type scriptT struct{ *testing.T }

func (t scriptT) Run(name string, f func(testscript.T)) {
	t.T.Run(name, func(t *testing.T) { f(scriptT{t}) })
}

func (t scriptT) Verbose() bool { return testing.Verbose() }

func testingT(ts *testscript.TestScript) *testing.T { return ts.Value("t").(*testing.T) }

// scenario is the state of one script.
type scenario struct {
	remote  *gittest.Remote
	gitURL  string
	pw      string
	dataDir string
	url     string
	cancel  context.CancelFunc
	done    chan error
	logs    *logtest.Buffer
	bg      map[string]chan string // api -bg calls by name
}

func state(ts *testscript.TestScript) *scenario {
	s := ts.Value("scenario").(*scenario)
	if s.remote == nil {
		ts.Fatalf("no mgo: run serve first")
	}
	return s
}

func cmdServe(ts *testscript.TestScript, neg bool, args []string) {
	t := testingT(ts)
	files := withoutReleases(t) // mygitops.yaml and charts/hello
	root := ts.MkAbs("repo")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		files[filepath.ToSlash(rel)] = string(b)
		return err
	})
	ts.Check(err)
	remote, srv, pw := setupFiles(t, files)
	s := ts.Value("scenario").(*scenario)
	*s = scenario{remote: remote, gitURL: srv.URL, pw: pw, dataDir: t.TempDir(), logs: &logtest.Buffer{}}
	startScenario(ts, s)
	t.Cleanup(func() {
		stopScenario(ts, s)
		if t.Failed() {
			t.Logf("mgo log:\n%s", s.logs.String())
		}
	})
}

func startScenario(ts *testscript.TestScript, s *scenario) {
	opts := gitrepo.DefaultOptions()
	opts.URL, opts.InsecureAllowHTTP = s.gitURL, true
	opts.Auth.Username, opts.Auth.Password = "mgo", gitrepo.SecretRef{File: s.pw}
	started := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan error, 1)
	cfg := server.Config{
		Listen: "127.0.0.1:0", Git: opts, DataDir: s.dataDir, Kubeconfig: env.Kubeconfig,
		ChartCache: filepath.Join(s.dataDir, "charts"),
		Tokens: []auth.TokenConfig{
			{Name: "ci", SHA256: auth.Hash(ciToken), Clusters: []string{cluster}, TriggerRepos: []string{"gitlab.com/acme/*"}},
			{Name: "other", SHA256: auth.Hash(otherToken), Clusters: []string{"staging"}, TriggerRepos: []string{"*"}},
			{Name: "hub", SHA256: auth.Hash(hubToken), Clusters: []string{cluster}, TriggerRepos: []string{"gitlab.com/acme/*"}, Routes: []string{auth.RouteDockerHub}},
			{Name: "release", SHA256: auth.Hash(releaseToken), Clusters: []string{cluster}, TriggerRepos: []string{"gitlab.com/acme/*"}, FreezeOverride: true},
		},
		GitLabToken: []byte(gitlabHook), GitHubSecret: []byte(githubSecret),
		ShutdownTimeout: time.Minute, ResyncInterval: 3 * time.Second,
		Log:     slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Started: func(addr string) { started <- addr },
	}
	go func() { s.done <- server.Run(ctx, cfg) }()
	select {
	case addr := <-started:
		s.url = "http://" + addr
	case err := <-s.done:
		ts.Fatalf("mgo serve did not start: %v\n%s", err, s.logs.String())
	case <-time.After(2 * time.Minute):
		ts.Fatalf("mgo serve did not start within 2 minutes")
	}
	ts.Setenv("MGO_URL", s.url)
}

func stopScenario(ts *testscript.TestScript, s *scenario) error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		return err
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("mgo serve did not stop within 2 minutes")
	}
}

func cmdStop(ts *testscript.TestScript, neg bool, args []string) {
	ts.Check(stopScenario(ts, state(ts)))
}

func cmdStart(ts *testscript.TestScript, neg bool, args []string) {
	startScenario(ts, state(ts))
}

// releaseToken may deploy during deploy freezes (freezeOverride).
const releaseToken = "mgo_release_token_for_tests"

var tokens = map[string]string{"ci": ciToken, "other": otherToken, "hub": hubToken, "release": releaseToken, "wrong": "wrong-token", "none": ""}

// call sends one request, validates the answer against the OpenAPI
// document and returns "HTTP <code>\n<body>".
func call(ts *testscript.TestScript, args []string) string {
	token, save, bg := ciToken, "", ""
	for len(args) > 1 && strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "-token":
			tok, ok := tokens[args[1]]
			if !ok {
				ts.Fatalf("unknown token %q", args[1])
			}
			token = tok
		case "-save":
			save = args[1]
		case "-bg":
			bg = args[1]
		default:
			ts.Fatalf("unknown flag %s", args[0])
		}
		args = args[2:]
	}
	if len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: api [-token T] METHOD PATH [FILE]")
	}
	var body io.Reader
	ctype := ""
	if len(args) == 3 {
		b := []byte(ts.ReadFile(args[2]))
		ctype = "application/json"
		if strings.HasSuffix(args[2], ".form") {
			ctype, b = "application/x-www-form-urlencoded", bytes.TrimSpace(b)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(args[0], state(ts).url+args[1], body)
	ts.Check(err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if bg != "" {
		s := state(ts)
		if s.bg == nil {
			s.bg = map[string]chan string{}
		}
		ch := make(chan string, 1)
		s.bg[bg] = ch
		go func() { ch <- answer(req) }()
		return ""
	}
	out := do(ts, req)
	if save != "" {
		var a struct {
			ID         string `json:"id"`
			Deployment struct {
				ID string `json:"id"`
			} `json:"deployment"`
		}
		_ = json.Unmarshal([]byte(out[strings.Index(out, "\n")+1:]), &a)
		id := cmp.Or(a.ID, a.Deployment.ID)
		if id == "" {
			ts.Fatalf("-save %s: no deployment id in the answer:\n%s", save, out)
		}
		ts.Setenv(save, id)
	}
	return out
}

func do(ts *testscript.TestScript, req *http.Request) string {
	out := answer(req)
	if strings.HasPrefix(out, "ERROR ") {
		ts.Fatalf("%s", out)
	}
	return out
}

// answer sends req and returns "HTTP <code>\n<body>", or "ERROR <why>"
// when there is no answer or it does not match the OpenAPI document. It
// may run in its own goroutine.
func answer(req *http.Request) string {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return "ERROR " + err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "ERROR " + err.Error()
	}
	if err := apitest.Validate(req, resp.StatusCode, resp.Header, b); err != nil {
		return "ERROR " + err.Error()
	}
	return fmt.Sprintf("HTTP %d\n%s", resp.StatusCode, b)
}

func cmdAwait(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: await NAME")
	}
	ch := state(ts).bg[args[0]]
	if ch == nil {
		ts.Fatalf("no api -bg %s", args[0])
	}
	select {
	case out := <-ch:
		if strings.HasPrefix(out, "ERROR ") {
			ts.Fatalf("%s", out)
		}
		_, _ = ts.Stdout().Write([]byte(out))
	case <-time.After(3 * time.Minute):
		ts.Fatalf("api -bg %s: no answer within 3 minutes", args[0])
	}
}

func cmdScale(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: scale NS RELEASE N")
	}
	n, err := strconv.Atoi(args[2])
	ts.Check(err)
	// A patch, not get-and-update: the Deployment controller writes the
	// object too, and an update of a stale copy would conflict.
	_, err = env.Client.AppsV1().Deployments(args[0]).Patch(context.Background(), args[1]+"-hello", types.MergePatchType,
		fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, n), metav1.PatchOptions{})
	ts.Check(err)
}

func cmdReplicas(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: replicas NS RELEASE")
	}
	d, err := env.Client.AppsV1().Deployments(args[0]).Get(context.Background(), args[1]+"-hello", metav1.GetOptions{})
	ts.Check(err)
	_, _ = fmt.Fprintf(ts.Stdout(), "%d\n", *d.Spec.Replicas)
}

func cmdSleep(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: sleep DURATION")
	}
	d, err := time.ParseDuration(args[0])
	ts.Check(err)
	time.Sleep(d)
}

func cmdMgo(ts *testscript.TestScript, neg bool, args []string) {
	var out bytes.Buffer
	code := cli.Execute(args, &out, &out)
	_, _ = fmt.Fprintf(ts.Stdout(), "%sexit %d\n", out.String(), code)
}

func cmdAPI(ts *testscript.TestScript, neg bool, args []string) {
	_, _ = ts.Stdout().Write([]byte(call(ts, args)))
}

func cmdHook(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: hook github|gitlab EVENT [SECRET]")
	}
	body := []byte(`{"ref":"refs/heads/main","object_kind":"push"}`)
	req, err := http.NewRequest(http.MethodPost, state(ts).url+"/hooks/"+args[0], bytes.NewReader(body))
	ts.Check(err)
	req.Header.Set("Content-Type", "application/json")
	switch args[0] {
	case "github":
		secret := githubSecret
		if len(args) > 2 {
			secret = args[2]
		}
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		req.Header.Set("X-GitHub-Event", args[1])
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	case "gitlab":
		token := gitlabHook
		if len(args) > 2 {
			token = args[2]
		}
		req.Header.Set("X-Gitlab-Event", args[1])
		req.Header.Set("X-Gitlab-Token", token)
	default:
		ts.Fatalf("unknown hook %q", args[0])
	}
	_, _ = ts.Stdout().Write([]byte(do(ts, req)))
}

func cmdPush(ts *testscript.TestScript, neg bool, args []string) {
	s := state(ts)
	t := testingT(ts)
	files := map[string]string{}
	for _, f := range args {
		files[f] = ts.ReadFile(filepath.Join("repo", f))
	}
	p := gittest.NewPerson(t, s.remote.Dir, "Frank", "frank@example.com")
	_, err := p.Commit(files, "change "+strings.Join(args, ", "))
	ts.Check(err)
	ts.Check(p.Push())
}

func cmdGit(ts *testscript.TestScript, neg bool, args []string) {
	_, _ = ts.Stdout().Write([]byte(state(ts).remote.Git(testingT(ts), args...) + "\n"))
}

func imageOf(ts *testscript.TestScript, args []string) string {
	if len(args) != 2 {
		ts.Fatalf("usage: image NS RELEASE")
	}
	d, err := env.Client.AppsV1().Deployments(args[0]).Get(context.Background(), args[1]+"-hello", metav1.GetOptions{})
	if err != nil {
		return "error: " + err.Error() + "\n"
	}
	return d.Spec.Template.Spec.Containers[0].Image + "\n"
}

func cmdImage(ts *testscript.TestScript, neg bool, args []string) {
	_, _ = ts.Stdout().Write([]byte(imageOf(ts, args)))
}

// cmdWaitFor polls an api or image command until its output matches a
// regexp (the last argument), within a timeout.
func cmdWaitFor(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 3 {
		ts.Fatalf("usage: waitfor TIMEOUT api|image ARGS... REGEXP")
	}
	timeout, err := time.ParseDuration(args[0])
	ts.Check(err)
	re, err := regexpCompile(args[len(args)-1])
	ts.Check(err)
	run := func() string {
		switch args[1] {
		case "api":
			return call(ts, args[2:len(args)-1])
		case "image":
			return imageOf(ts, args[2:len(args)-1])
		case "replicas":
			var b bytes.Buffer
			a := args[2 : len(args)-1]
			if len(a) != 2 {
				ts.Fatalf("usage: replicas NS RELEASE")
			}
			d, err := env.Client.AppsV1().Deployments(a[0]).Get(context.Background(), a[1]+"-hello", metav1.GetOptions{})
			if err == nil && d.Spec.Replicas != nil {
				fmt.Fprintf(&b, "%d\n", *d.Spec.Replicas)
			}
			return b.String()
		}
		ts.Fatalf("waitfor: unknown command %q", args[1])
		return ""
	}
	deadline := time.Now().Add(timeout)
	for {
		out := run()
		if re.MatchString(out) {
			_, _ = ts.Stdout().Write([]byte(out))
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("timed out after %s waiting for %s in:\n%s", timeout, re, out)
		}
		time.Sleep(200 * time.Millisecond) // polling interval, not a synchronisation
	}
}

func regexpCompile(s string) (*regexp.Regexp, error) { return regexp.Compile("(?m)" + s) }
