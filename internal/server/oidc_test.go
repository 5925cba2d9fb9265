package server_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/mygitops/mgo/internal/audit"
	"github.com/mygitops/mgo/internal/auth"
	"github.com/mygitops/mgo/internal/auth/oidctest"
	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/logtest"
	"github.com/mygitops/mgo/internal/server"
)

// The audience the CI documents configure.
const ciAudience = "https://mgo.acme.io"

// twoClusters writes a kubeconfig whose contexts prod and staging are both
// the test control plane.
func twoClusters(t *testing.T) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	cfg.Contexts = map[string]*clientcmdapi.Context{"prod": ctx.DeepCopy(), "staging": ctx.DeepCopy()}
	cfg.CurrentContext = "prod"
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// docBlocks returns the fenced blocks of a markdown file with the info
// string lang.
func docBlocks(t *testing.T, name, lang string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "ci", name))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?ms)^```" + lang + "\n(.*?)^```")
	var out []string
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		out = append(out, m[1])
	}
	return out
}

// docBlock is the one block of name starting with prefix.
func docBlock(t *testing.T, name, lang, prefix string) string {
	t.Helper()
	for _, b := range docBlocks(t, name, lang) {
		if strings.HasPrefix(b, prefix) {
			return b
		}
	}
	t.Fatalf("docs/ci/%s has no %s block starting with %q", name, lang, prefix)
	return ""
}

// docOIDC is the oidc: section a CI document tells the operator to write.
func docOIDC(t *testing.T, name string) auth.OIDCConfig {
	t.Helper()
	var f struct {
		OIDC auth.OIDCConfig `yaml:"oidc"`
	}
	dec := yaml.NewDecoder(strings.NewReader(docBlock(t, name, "yaml", "oidc:")))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("docs/ci/%s: oidc: %v", name, err)
	}
	return f.OIDC
}

// buildMgo builds the mgo binary once for the test and returns its
// directory, for PATH.
func buildMgo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "mgo"), "../../cmd/mgo")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build mgo: %v\n%s", err, out)
	}
	return dir
}

// runShell runs a CI script with bash -eo pipefail in env (and nothing
// else from the test's environment but PATH and HOME).
func runShell(t *testing.T, script string, vars map[string]string) (string, error) {
	t.Helper()
	cmd := exec.Command("bash", "-eo", "pipefail", "-c", script)
	cmd.Env = []string{"HOME=" + t.TempDir()}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestOIDCServe runs mgo serve with two local issuers (GitLab- and
// GitHub-shaped) configured as docs/ci tells, two clusters (prod and
// staging) and a static token beside them; then runs the deploy jobs of
// docs/ci/gitlab.md and docs/ci/github.md against it.
func TestOIDCServe(t *testing.T) {
	gl, gh := oidctest.New(t), oidctest.New(t)
	oidcCfg := auth.OIDCConfig{}
	for _, doc := range []struct {
		name   string
		is     *oidctest.Issuer
		kind   string
		host   string
		issuer string
	}{{"gitlab.md", gl, auth.KindGitLab, "gitlab.com", "gitlab"}, {"github.md", gh, auth.KindGitHub, "github.com", "github"}} {
		c := docOIDC(t, doc.name)
		if len(c.Issuers) != 1 || c.Issuers[0].Name != doc.issuer || c.Issuers[0].Audience != ciAudience {
			t.Fatalf("docs/ci/%s: issuers %+v", doc.name, c.Issuers)
		}
		// The local issuer stands in for gitlab.com / GitHub: its URL, its
		// CA, the kind and project host those URLs imply.
		c.Issuers[0].URL, c.Issuers[0].CAFile, c.Issuers[0].Kind, c.Issuers[0].ProjectHost = doc.is.URL, doc.is.CAFile, doc.kind, doc.host
		oidcCfg.Issuers = append(oidcCfg.Issuers, c.Issuers...)
		oidcCfg.Rules = append(oidcCfg.Rules, c.Rules...)
	}

	files := withoutReleases(t)
	files["mygitops.yaml"] = "clusters:\n  prod:\n    timeout: 30s\n  staging:\n    timeout: 30s\n"
	for _, c := range []string{"prod", "staging"} {
		files["installations/"+c+"/app-values.yaml"] = values("app", "oidc-"+c+"-app", "1.0.0", "")
		files["installations/"+c+"/web-values.yaml"] = strings.ReplaceAll(values("web", "oidc-"+c+"-web", "1.0.0", ""), "gitlab.com/acme/web", "github.com/acme/web")
	}
	remote, gitSrv, pw := setupFiles(t, files)
	const opsToken = "mgo_ops_token_for_oidc_tests"
	auditLog := &logtest.Buffer{}
	m := startMgo(t, gitSrv.URL, pw, t.TempDir(), func(c *server.Config) {
		c.Kubeconfig = twoClusters(t)
		c.OIDC = oidcCfg
		c.OIDCKeyRefetch = time.Nanosecond // keys fetched for every unknown signature: the unknown key is 401, the rotated one accepted at once
		c.AuditLog = auditLog
		c.Tokens = append(c.Tokens, auth.TokenConfig{Name: "ops", SHA256: auth.Hash(opsToken), Clusters: []string{"prod", "staging"}, TriggerRepos: []string{"gitlab.com/acme/*"}})
	})
	waitFor(t, "initial sync of prod and staging", 3*time.Minute, func() bool {
		var cs struct {
			Clusters []deploy.ClusterStatus `json:"clusters"`
		}
		m.call(http.MethodGet, "/api/v1/clusters", opsToken, "", nil, &cs)
		return len(cs.Clusters) == 2 && !cs.Clusters[0].LastSync.IsZero() && !cs.Clusters[1].LastSync.IsZero()
	})

	form := func(cluster, trigger, tag string) url.Values {
		img := "registry.example.com/acme/app"
		if strings.HasSuffix(trigger, "/web") {
			img = "registry.example.com/acme/web"
		}
		return url.Values{"cluster": {cluster}, "triggerRepo": {trigger}, "imageRepo": {img}, "imageTag": {tag}, "author": {"Alice <alice@example.com>"}}
	}
	glProd := oidctest.Claims{"environment": "production"}
	type call struct {
		name, token string
		form        url.Values
		status      int
	}
	var usedTokens []string
	do := func(c call) deploy.Deployment {
		t.Helper()
		usedTokens = append(usedTokens, c.token)
		var d struct {
			deploy.Deployment
			Error string `json:"error"`
		}
		if code := m.postForm("/deploy", c.token, c.form, &d); code != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, code, d.Error, c.status)
		}
		return d.Deployment
	}
	seedHead := remote.Head(t)
	refusals := []call{
		{"GitLab token for another project", gl.Token(t, oidctest.GitLab(ciAudience, "acme/app", "main", true, glProd)), form("prod", "gitlab.com/acme/other", "2.0.0"), 403},
		{"GitLab token of an unprotected ref", gl.Token(t, oidctest.GitLab(ciAudience, "acme/app", "feature", false, glProd)), form("prod", "gitlab.com/acme/app", "2.0.0"), 403},
		{"expired GitLab token", gl.Token(t, oidctest.GitLab(ciAudience, "acme/app", "main", true, oidctest.Claims{"environment": "production", "exp": time.Now().Add(-10 * time.Minute).Unix()})), form("prod", "gitlab.com/acme/app", "2.0.0"), 401},
		{"GitLab token for another audience", gl.Token(t, oidctest.GitLab("https://other.example.com", "acme/app", "main", true, glProd)), form("prod", "gitlab.com/acme/app", "2.0.0"), 401},
		{"GitLab token signed by an unknown key", gl.TokenWithUnknownKey(t, oidctest.GitLab(ciAudience, "acme/app", "main", true, glProd)), form("prod", "gitlab.com/acme/app", "2.0.0"), 401},
		{"unsigned token", gl.UnsignedToken(t, oidctest.GitLab(ciAudience, "acme/app", "main", true, glProd)), form("prod", "gitlab.com/acme/app", "2.0.0"), 401},
		{"GitHub token for another repository", gh.Token(t, oidctest.GitHub(ciAudience, "acme/web", "refs/heads/main", "production", nil)), form("prod", "github.com/acme/other", "2.0.0"), 403},
		{"GitHub token of the staging environment to prod", gh.Token(t, oidctest.GitHub(ciAudience, "acme/web", "refs/heads/main", "staging", nil)), form("prod", "github.com/acme/web", "2.0.0"), 403},
	}
	t.Run("refusals write nothing", func(t *testing.T) {
		for _, c := range refusals {
			do(c)
		}
		if h := remote.Head(t); h != seedHead {
			t.Fatalf("a refused request moved the remote head to %s", h)
		}
	})

	var allowed []call
	t.Run("ID tokens deploy their own project", func(t *testing.T) {
		c := call{"GitLab token of acme/app on a protected ref", gl.Token(t, oidctest.GitLab(ciAudience, "acme/app", "main", true, glProd)), form("prod", "gitlab.com/acme/app", "2.0.0"), 200}
		allowed = append(allowed, c)
		d := do(c)
		if !d.Changed || d.Status != deploy.Succeeded || d.Request.Identity.Project != "acme/app" || d.Request.Identity.Issuer != gl.URL {
			t.Fatalf("deployment %+v", d)
		}
		if got := image(t, "oidc-prod-app", "app"); got != "registry.example.com/acme/app:2.0.0" {
			t.Errorf("prod app runs %s", got)
		}
		msg := remote.Git(t, "log", "-1", "--format=%an <%ae>|%(trailers:key=Requested-By,valueonly)", d.Commit)
		glHost := strings.TrimPrefix(gl.URL, "https://")
		if !strings.HasPrefix(msg, "Alice <alice@example.com>|acme/app (issuer "+gl.URL+", sub project_path:acme/app:ref_type:branch:ref:main, ref main, environment production, run https://"+glHost+"/acme/app/-/pipelines/1234, rule acme-staging,acme-production)") {
			t.Errorf("commit author and Requested-By: %q", msg)
		}

		// The issuer rotates its key: new tokens work, mgo not restarted.
		gl.Rotate(t)
		c = call{"GitLab token after the issuer's key rotation", gl.Token(t, oidctest.GitLab(ciAudience, "acme/app", "main", true, glProd)), form("prod", "gitlab.com/acme/app", "2.0.1"), 200}
		allowed = append(allowed, c)
		if d := do(c); !d.Changed {
			t.Errorf("after rotation: %+v", d)
		}

		c = call{"GitHub token of acme/web in production", gh.Token(t, oidctest.GitHub(ciAudience, "acme/web", "refs/heads/main", "production", nil)), form("prod", "github.com/acme/web", "2.0.0"), 200}
		allowed = append(allowed, c)
		d = do(c)
		if !d.Changed || d.Request.Identity.RunURL != "https://"+strings.TrimPrefix(gh.URL, "https://")+"/acme/web/actions/runs/5551212" {
			t.Errorf("GitHub deployment %+v", d)
		}
		if got := image(t, "oidc-prod-web", "web"); got != "registry.example.com/acme/web:2.0.0" {
			t.Errorf("prod web runs %s", got)
		}

		c = call{"static token beside OIDC", opsToken, form("staging", "gitlab.com/acme/app", "2.0.2"), 200}
		allowed = append(allowed, c)
		if d := do(c); !d.Changed || remote.Git(t, "log", "-1", "--format=%(trailers:key=Requested-By,valueonly)", d.Commit) != "ops" {
			t.Errorf("static token deployment %+v", d)
		}
	})

	t.Run("audit log", func(t *testing.T) {
		entries := auditEntries(t, auditLog.String())
		var deploys []audit.Entry
		for _, e := range entries {
			if e.Route == "POST /deploy" {
				deploys = append(deploys, e)
			}
		}
		want := append(append([]call{}, refusals...), allowed...)
		if len(deploys) != len(want) {
			t.Fatalf("%d audit lines for POST /deploy, want %d", len(deploys), len(want))
		}
		for i, c := range want {
			e := deploys[i]
			decision := audit.Allowed
			if c.status >= 400 {
				decision = audit.Refused
			}
			if e.Decision != decision || e.Status != c.status || e.Remote == "" || e.Path != "/deploy" {
				t.Errorf("%s: audit line %+v", c.name, e)
			}
			// What was asked is known once the caller is authenticated and
			// granted something (the body of others is not read).
			if (decision == audit.Allowed || e.Who.Rules != "") && (e.Cluster != c.form.Get("cluster") || e.TriggerRepo != c.form.Get("triggerRepo")) {
				t.Errorf("%s: audit line without what was asked: %+v", c.name, e)
			}
			if decision == audit.Refused && e.Reason == "" {
				t.Errorf("%s: a refusal without a reason: %+v", c.name, e)
			}
			if decision == audit.Allowed && (e.DeploymentID == "" || e.Who.Name == "") {
				t.Errorf("%s: audit line without deployment or caller: %+v", c.name, e)
			}
			if c.status == 403 && e.Who.Kind != "oidc" {
				t.Errorf("%s: a 403 should name the identity: %+v", c.name, e.Who)
			}
		}
		if e := deploys[len(refusals)]; e.Who.Kind != "oidc" || e.Who.Project != "acme/app" || e.Who.Issuer != gl.URL || e.Who.RunURL == "" {
			t.Errorf("who of the GitLab deploy: %+v", e.Who)
		}
		if e := deploys[len(deploys)-1]; e.Who.Kind != "token" || e.Who.Name != "ops" {
			t.Errorf("who of the static token: %+v", e.Who)
		}
		assertNoTokens(t, "audit log", auditLog.String(), usedTokens)
		assertNoTokens(t, "server log", m.logs.String(), usedTokens)
	})

	bin := buildMgo(t)
	path := bin + string(os.PathListSeparator) + os.Getenv("PATH")

	t.Run("docs/ci/gitlab.md", func(t *testing.T) {
		var ci struct {
			Variables map[string]string `yaml:"variables"`
			Jobs      map[string]any    `yaml:",inline"`
		}
		if err := yaml.Unmarshal([]byte(docBlock(t, "gitlab.md", "yaml", "stages:")), &ci); err != nil {
			t.Fatal(err)
		}
		ran := 0
		for _, name := range []string{"deploy-staging", "deploy-production"} {
			var job struct {
				Stage       string                       `yaml:"stage"`
				Environment string                       `yaml:"environment"`
				IDTokens    map[string]map[string]string `yaml:"id_tokens"`
				Script      []string                     `yaml:"script"`
			}
			b, _ := yaml.Marshal(ci.Jobs[name])
			if err := yaml.Unmarshal(b, &job); err != nil || job.Stage != "deploy" || len(job.Script) == 0 {
				t.Fatalf("job %s: %v %+v", name, err, job)
			}
			aud := job.IDTokens["MGO_ID_TOKEN"]["aud"]
			vars := map[string]string{}
			for k, v := range ci.Variables {
				vars[k] = v
			}
			tag := "d0c5a1b" + fmt.Sprint(ran)
			token := gl.Token(t, oidctest.GitLab(aud, "acme/app", "main", true, oidctest.Claims{"environment": job.Environment, "pipeline_id": "777"}))
			for k, v := range map[string]string{
				"PATH": path, "MGO_URL": m.url, "IMAGE": "registry.example.com/acme/app", "MGO_ID_TOKEN": token,
				"CI_PROJECT_PATH": "acme/app", "CI_COMMIT_SHORT_SHA": tag, "GITLAB_USER_EMAIL": "alice@example.com",
				"CI_PIPELINE_ID": "777", "CI_COMMIT_BRANCH": "main", "CI_DEFAULT_BRANCH": "main",
			} {
				vars[k] = v
			}
			cluster := map[string]string{"deploy-staging": "staging", "deploy-production": "prod"}[name]
			for _, line := range job.Script {
				out, err := runShell(t, line, vars)
				if err != nil {
					t.Fatalf("%s: %s: %v\n%s", name, line, err, out)
				}
				assertNoTokens(t, name+" output", out, []string{token})
			}
			if got := image(t, "oidc-"+cluster+"-app", "app"); got != "registry.example.com/acme/app:"+tag {
				t.Errorf("%s: %s app runs %s", name, cluster, got)
			}
			tr := remote.Git(t, "log", "-1", "--format=%ae|%(trailers:key=Requested-By,valueonly)")
			if !strings.HasPrefix(tr, "alice@example.com|acme/app (issuer "+gl.URL) || !strings.Contains(tr, "environment "+job.Environment) || !strings.Contains(tr, "/-/pipelines/777") {
				t.Errorf("%s: commit %q", name, tr)
			}
			ran++
		}
	})

	t.Run("docs/ci/github.md", func(t *testing.T) {
		var wf struct {
			Env  map[string]string `yaml:"env"`
			Jobs map[string]struct {
				Environment string `yaml:"environment"`
				Steps       []struct {
					Name string `yaml:"name"`
					Run  string `yaml:"run"`
				} `yaml:"steps"`
			} `yaml:"jobs"`
		}
		if err := yaml.Unmarshal([]byte(docBlock(t, "github.md", "yaml", "name: deploy")), &wf); err != nil {
			t.Fatal(err)
		}
		// The runner's token service: signs for the requested audience
		// with the claims of the job that runs.
		var mu sync.Mutex
		environment := ""
		var issued []string
		runner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "bearer runner-request-token" && r.Header.Get("Authorization") != "Bearer runner-request-token" {
				http.Error(w, "no", http.StatusUnauthorized)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			tok := gh.Token(t, oidctest.GitHub(r.URL.Query().Get("audience"), "acme/web", "refs/heads/main", environment, oidctest.Claims{"run_id": "888"}))
			issued = append(issued, tok)
			_ = json.NewEncoder(w).Encode(map[string]string{"value": tok})
		}))
		defer runner.Close()
		expr := regexp.MustCompile(`\$\{\{\s*([^}]*?)\s*\}\}`)
		github := map[string]string{"github.repository": "acme/web", "github.actor": "alice", "github.run_id": "888"}
		base := map[string]string{
			"PATH": path, "ACTIONS_ID_TOKEN_REQUEST_URL": runner.URL + "/token?api-version=2.0", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "runner-request-token",
			"GITHUB_REPOSITORY": "acme/web", "GITHUB_ACTOR": "alice",
		}
		run := func(name, env, script, sha string) {
			t.Helper()
			vars := map[string]string{}
			for k, v := range wf.Env {
				vars[k] = v
			}
			for k, v := range base {
				vars[k] = v
			}
			vars["MGO_URL"], vars["IMAGE"], vars["GITHUB_SHA"] = m.url, "registry.example.com/acme/web", sha
			github["github.sha"] = sha
			script = expr.ReplaceAllStringFunc(script, func(s string) string {
				k := expr.FindStringSubmatch(s)[1]
				v, ok := github[k]
				if !ok {
					t.Fatalf("%s: the test does not know ${{ %s }}", name, k)
				}
				return v
			})
			mu.Lock()
			environment = env
			mu.Unlock()
			out, err := runShell(t, script, vars)
			if err != nil {
				t.Fatalf("%s: %v\n%s", name, err, out)
			}
			mu.Lock()
			assertNoTokens(t, name+" output", out, append(issued, "runner-request-token"))
			mu.Unlock()
		}
		for i, name := range []string{"deploy-staging", "deploy-production"} {
			job := wf.Jobs[name]
			steps := 0
			sha := fmt.Sprintf("5a%06d", i) // a commit hash, as GITHUB_SHA is
			for _, s := range job.Steps {
				if s.Name == "Deploy" {
					run(name, job.Environment, s.Run, sha)
					steps++
				}
			}
			cluster := map[string]string{"deploy-staging": "staging", "deploy-production": "prod"}[name]
			if steps != 1 || image(t, "oidc-"+cluster+"-web", "web") != "registry.example.com/acme/web:"+sha {
				t.Errorf("%s: %d Deploy steps; %s web runs %s", name, steps, cluster, image(t, "oidc-"+cluster+"-web", "web"))
			}
			if tr := remote.Git(t, "log", "-1", "--format=%(trailers:key=Requested-By,valueonly)"); !strings.HasPrefix(tr, "acme/web (issuer "+gh.URL) ||
				!strings.Contains(tr, "/acme/web/actions/runs/888") || !strings.Contains(tr, "environment "+job.Environment) {
				t.Errorf("%s: Requested-By %q", name, tr)
			}
		}
		// The curl-only form.
		run("curl form", "staging", docBlock(t, "github.md", "sh", "ID_TOKEN="), "c0r1")
		if got := image(t, "oidc-staging-web", "web"); got != "registry.example.com/acme/web:c0r1" {
			t.Errorf("curl form: staging web runs %s", got)
		}
		assertNoTokens(t, "audit log", auditLog.String(), issued)
	})
}

func auditEntries(t *testing.T, s string) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var e audit.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

// assertNoTokens fails when text contains a token or any long part of one
// (a JWT's header is shared by many tokens, so only payload and signature
// are looked for).
func assertNoTokens(t *testing.T, what, text string, tokens []string) {
	t.Helper()
	for _, tok := range tokens {
		parts := strings.Split(tok, ".")
		if len(parts) == 3 {
			parts = parts[1:]
		}
		for _, p := range parts {
			if len(p) >= 16 && strings.Contains(text, p) {
				_, file, line, _ := runtime.Caller(1)
				t.Fatalf("%s contains token text (%s:%d)", what, file, line)
			}
		}
	}
}
