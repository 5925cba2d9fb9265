package ui_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mygitops/mgo/internal/deploy"
)

// updateDocs copies the screenshots docs/ui.md shows into docs/ui.
var updateDocs = flag.Bool("update-docs", false, "copy the screenshots of docs/ui.md into docs/ui")

// chromiumPath is Debian's chromium (hack/install-deps.sh installs it);
// $MGO_CHROMIUM names another.
func chromiumPath(t *testing.T) string {
	p := os.Getenv("MGO_CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(p); err != nil {
		t.Fatalf("the browser tests need Chromium at %s (%v): run `make deps` (hack/install-deps.sh installs Debian's chromium) or set MGO_CHROMIUM", p, err)
	}
	return p
}

// outDir is where the screenshots go: $MGO_TEST_OUTPUT/ui, else
// testdata/out (git-ignored).
func outDir(t *testing.T) string {
	dir := filepath.Join("testdata", "out")
	if o := os.Getenv("MGO_TEST_OUTPUT"); o != "" {
		dir = filepath.Join(o, "ui")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	return abs
}

// sizes are the viewports every page is shot at: a laptop and a phone.
var sizes = []struct {
	name string
	w, h int64
}{{"1280x800", 1280, 800}, {"390x844", 390, 844}}

// docShots are the screenshots docs/ui.md shows.
var docShots = map[string]bool{"login": true, "overview": true, "cluster": true, "deployments": true, "deployment": true,
	"rollback-conflict": true, "diff": true}

// browser is one headless Chromium tab on mgo's dashboard.
type browser struct {
	t   *testing.T
	ctx context.Context
	m   *mgo
	out string

	mu      sync.Mutex
	foreign []string // requests to another origin than mgo's
	seen    int      // requests seen
}

func newBrowser(t *testing.T, m *mgo, parent context.Context, opts ...chromedp.ContextOption) *browser {
	ctx, cancel := chromedp.NewContext(parent, opts...)
	t.Cleanup(cancel)
	b := &browser{t: t, ctx: ctx, m: m, out: outDir(t)}
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && e.Request != nil {
			b.mu.Lock()
			b.seen++
			if u := e.Request.URL; !strings.HasPrefix(u, m.url+"/") && !strings.HasPrefix(u, "data:") {
				b.foreign = append(b.foreign, u)
			}
			b.mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	b.do(chromedp.EmulateViewport(1280, 800))
	return b
}

func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v\npage text:\n%s", err, b.text())
	}
}

// text is the page's visible text (for failure messages and checks).
func (b *browser) text() string {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	return s
}

func (b *browser) eval(expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return s
}

// wait polls a JavaScript condition in the page until it holds.
func (b *browser) wait(what, cond string, timeout time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout+10*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		b.t.Fatalf("waiting for %s (%s): %v\npage text:\n%s", what, cond, err, b.text())
	}
}

// open goes to a page of the dashboard by its hash route, as following a
// link does (no reload).
func (b *browser) open(hash string) {
	b.t.Helper()
	b.eval(fmt.Sprintf(`location.hash = %q; ""`, hash))
}

// audit lists what keeps the page from being used without a mouse or
// with a screen reader: form controls without a label, buttons and links
// without a name, tables without headers, images without a text.
const audit = `(() => {
  const bad = [];
  const name = e => (e.getAttribute('aria-label') || e.innerText || e.textContent || e.title || '').trim();
  for (const e of document.querySelectorAll('input, select, textarea')) {
    if (e.type === 'hidden') continue;
    if (!(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby')) bad.push('unlabelled ' + e.tagName + '#' + e.id);
  }
  for (const e of document.querySelectorAll('button, a[href], summary')) if (!name(e)) bad.push('nameless ' + e.tagName + ' ' + e.outerHTML.slice(0, 80));
  for (const e of document.querySelectorAll('table')) if (!e.querySelector('th')) bad.push('table without headers');
  for (const e of document.querySelectorAll('img, [role=img]')) if (!e.getAttribute('alt') && !e.getAttribute('aria-label')) bad.push('image without text');
  if (!document.querySelector('h1')) bad.push('no h1');
  return bad.join('; ');
})()`

// shoot checks the page with audit and saves it at each size as
// <name>-<size>.png.
func (b *browser) shoot(name string) {
	b.t.Helper()
	if problems := b.eval(audit); problems != "" {
		b.t.Errorf("page %s: %s", name, problems)
	}
	for _, s := range sizes {
		b.do(chromedp.EmulateViewport(s.w, s.h))
		// Two animation frames: the new layout is painted.
		ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
		_, err := chromedp.Run(ctx, chromedp.Evaluate[string](`new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(""))))`, chromedp.EvalAwaitPromise))
		cancel()
		if err != nil {
			b.t.Fatalf("waiting for a frame: %v", err)
		}
		ctx, cancel = context.WithTimeout(b.ctx, time.Minute)
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		cancel()
		if err != nil {
			b.t.Fatalf("screenshot %s: %v", name, err)
		}
		file := name + "-" + s.name + ".png"
		if err := os.WriteFile(filepath.Join(b.out, file), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
		if *updateDocs && docShots[name] {
			if err := os.WriteFile(filepath.Join("..", "..", "docs", "ui", file), png, 0o644); err != nil {
				b.t.Fatal(err)
			}
		}
	}
	b.do(chromedp.EmulateViewport(1280, 800))
}

func (b *browser) login(token string) {
	b.t.Helper()
	b.wait("the login page", `!!document.querySelector('#token')`, time.Minute)
	b.do(chromedp.SetValue(chromedp.ID("token"), token), chromedp.Click(chromedp.CSS(`form.login button[type=submit]`)))
}

func (b *browser) noForeignRequests() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen == 0 {
		b.t.Error("no request of the page was seen: the network listener does not work")
	}
	if len(b.foreign) > 0 {
		b.t.Errorf("the dashboard made requests to other origins: %v", b.foreign)
	}
}

// TestDashboard drives the dashboard in headless Chromium against mgo
// serve on the local control plane: login, overview, a cluster's
// releases, a deploy made through the API appearing and finishing in the
// deployment list without a reload, its page, its rollback, a rollback
// that conflicts (409), the live diff; a wrong token and an expired
// session lead back to the login page; a token scoped to staging never
// sees prod. Every page is shot at 1280x800 and 390x844.
func TestDashboard(t *testing.T) {
	chromium := chromiumPath(t)
	m, remote := startMgo(t, gitopsFiles(t))
	waitFor(t, "the first sync of both clusters", 2*time.Minute, func() bool {
		var cs struct {
			Clusters []deploy.ClusterStatus `json:"clusters"`
		}
		m.call(http.MethodGet, "/api/v1/clusters", adminToken, nil, &cs)
		synced := 0
		for _, c := range cs.Clusters {
			if !c.LastSync.IsZero() {
				synced++
			}
		}
		return synced == 2
	})

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 800), chromedp.UserDataDir(t.TempDir()))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)

	b := newBrowser(t, m, allocCtx)
	b.do(chromedp.Navigate(m.url + "/"))
	b.wait("the login page at /", `location.pathname === "/ui/" && !!document.querySelector('#token')`, time.Minute)
	b.shoot("login")

	t.Run("a wrong token gets the login page again", func(t *testing.T) {
		b.t = t
		b.login("mgo_not_a_token")
		b.wait("the refusal", `!!document.querySelector('#login-error') && document.querySelector('#login-error').textContent.includes('401')`, time.Minute)
		if got := b.eval(`sessionStorage.getItem("mgo.token") || ""`); got != "" {
			t.Errorf("a refused token stays in the session: %q", got)
		}
		b.shoot("login-refused")
	})

	t.Run("overview", func(t *testing.T) {
		b.t = t
		b.login(adminToken)
		b.wait("both clusters", `document.querySelectorAll('[data-cluster]').length === 2`, time.Minute)
		b.wait("healthy releases", `[...document.querySelectorAll('[data-cluster="prod"] .badge')].some(e => e.textContent === '2 healthy')`, time.Minute)
		b.shoot("overview-start")
	})

	t.Run("cluster releases with filter", func(t *testing.T) {
		b.t = t
		b.open("#/clusters/prod")
		b.wait("the releases of prod", `document.querySelectorAll('tr[data-release]').length === 2 && document.querySelector('tr[data-release="app"]').textContent.includes('registry.example.com/acme/app:1.0.0')`, time.Minute)
		row := b.eval(`document.querySelector('tr[data-release="app"]').innerText`)
		for _, want := range []string{"./charts/hello", "Deployment/app-hello", "Current", "healthy"} {
			if !strings.Contains(row, want) {
				t.Errorf("the app row lacks %q:\n%s", want, row)
			}
		}
		b.shoot("cluster")
		b.do(chromedp.Focus(chromedp.ID("filter")), chromedp.SendKeys(chromedp.ID("filter"), "worker"))
		b.wait("the filter", `document.querySelectorAll('tr[data-release]').length === 1 && !!document.querySelector('tr[data-release="worker"]')`, 30*time.Second)
		b.eval(`(f => { f.value = ""; f.dispatchEvent(new Event("input")); return ""; })(document.querySelector('#filter'))`)
		b.wait("the filter cleared", `document.querySelectorAll('tr[data-release]').length === 2`, 30*time.Second)
	})

	var first deploy.Deployment
	t.Run("a deploy appears and finishes without a reload", func(t *testing.T) {
		b.t = t
		b.open("#/deployments")
		b.wait("the deployment list", `!!document.querySelector('#deployments')`, time.Minute)
		b.eval(`window.mgoNoReload = "still here"; ""`)
		code := m.call(http.MethodPost, "/api/v1/deployments", adminToken, map[string]any{"cluster": "prod", "triggerRepo": "gitlab.com/acme/app",
			"imageRepo": "registry.example.com/acme/app", "tag": "1.1.0", "author": "Alice <alice@example.com>"}, &first)
		if code != http.StatusAccepted {
			t.Fatalf("deploy: %d %+v", code, first)
		}
		b.wait("the deployment in the list", fmt.Sprintf(`!!document.querySelector('tr[data-deployment=%q]')`, first.ID), time.Minute)
		b.wait("the deployment to succeed", fmt.Sprintf(`!!document.querySelector('tr[data-deployment=%q][data-status="succeeded"]')`, first.ID), 2*time.Minute)
		if got := b.eval(`window.mgoNoReload || "reloaded"`); got != "still here" {
			t.Fatalf("the page was reloaded: %q", got)
		}
		row := b.eval(fmt.Sprintf(`document.querySelector('tr[data-deployment=%q]').innerText`, first.ID))
		for _, want := range []string{"Alice <alice@example.com>", "registry.example.com/acme/app:1.1.0", "prod", "succeeded"} {
			if !strings.Contains(row, want) {
				t.Errorf("the row lacks %q:\n%s", want, row)
			}
		}
		if n := b.eval(fmt.Sprintf(`String(document.querySelectorAll('tr[data-deployment=%q] .bar span').length)`, first.ID)); n != "4" {
			t.Errorf("the stage bar has %s segments, want 4 (committed, pushed, synced, rolled out)", n)
		}
		b.shoot("deployments")
	})

	var rollbackID string
	t.Run("its page and its rollback", func(t *testing.T) {
		b.t = t
		b.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-deployment=%q] a`, first.ID))))
		b.wait("the deployment page", `document.querySelector('#status') && document.querySelector('#status').dataset.status === "succeeded"`, time.Minute)
		page := b.text()
		for _, want := range []string{first.ID, "Deployment/ui-prod-app/app-hello", "Rolled out", "Roll back"} {
			if !strings.Contains(page, want) {
				t.Errorf("the deployment page lacks %q", want)
			}
		}
		b.shoot("deployment")
		b.do(chromedp.Click(chromedp.ID("rollback")))
		b.wait("the confirmation", `document.querySelector('#confirm').open`, 30*time.Second)
		b.shoot("rollback-confirm")
		b.do(chromedp.Click(chromedp.ID("confirm-ok")))
		b.wait("the rollback's page", fmt.Sprintf(`location.hash.startsWith('#/deployments/') && location.hash !== %q && !!document.querySelector('#status')`, "#/deployments/"+first.ID), time.Minute)
		rollbackID = strings.TrimPrefix(b.eval(`location.hash`), "#/deployments/")
		b.wait("the rollback to finish", `document.querySelector('#status').dataset.status === "succeeded"`, 2*time.Minute)
		var rb deploy.Deployment
		m.call(http.MethodGet, "/api/v1/deployments/"+rollbackID, adminToken, nil, &rb)
		if rb.Kind != deploy.KindRollback || rb.RollbackOf != first.ID || rb.Status != deploy.Succeeded || rb.Commit != remote.Head(t) {
			t.Fatalf("rollback %+v, remote head %s", rb, remote.Head(t))
		}
		if got := image(t, "ui-prod-app", "app"); got != "registry.example.com/acme/app:1.0.0" {
			t.Errorf("after the rollback app runs %s", got)
		}
		b.shoot("rollback")
	})

	t.Run("a rollback that conflicts shows 409", func(t *testing.T) {
		b.t = t
		var d2, d3 deploy.Deployment
		m.call(http.MethodPost, "/api/v1/deployments", adminToken, map[string]any{"cluster": "prod", "triggerRepo": "gitlab.com/acme/app",
			"imageRepo": "registry.example.com/acme/app", "tag": "1.2.0", "author": "Bob <bob@example.com>", "wait": true}, &d2)
		m.call(http.MethodPost, "/api/v1/deployments", adminToken, map[string]any{"cluster": "prod", "triggerRepo": "gitlab.com/acme/app",
			"imageRepo": "registry.example.com/acme/app", "tag": "1.3.0", "author": "Carol <carol@example.com>", "wait": true}, &d3)
		if d2.Status != deploy.Succeeded || d3.Status != deploy.Succeeded {
			t.Fatalf("deploys: %s %s", d2.Status, d3.Status)
		}
		b.open("#/deployments/" + d2.ID)
		b.wait("the deployment page", `!!document.querySelector('#rollback')`, time.Minute)
		// By keyboard alone: Escape cancels, the dialog opens on Cancel,
		// Tab reaches the confirmation.
		b.do(chromedp.Focus(chromedp.ID("rollback")), chromedp.KeyEvent(kb.Enter))
		b.wait("the confirmation", `document.querySelector('#confirm').open && document.activeElement.value === "cancel"`, 30*time.Second)
		b.do(chromedp.KeyEvent(kb.Escape))
		b.wait("the dialog closed, focus back on the button", `!document.querySelector('#confirm').open && document.activeElement.id === "rollback"`, 30*time.Second)
		b.do(chromedp.KeyEvent(kb.Enter))
		b.wait("the confirmation", `document.querySelector('#confirm').open`, 30*time.Second)
		b.do(chromedp.KeyEvent(kb.Tab))
		b.wait("focus on Roll back", `document.activeElement.id === "confirm-ok"`, 30*time.Second)
		b.do(chromedp.KeyEvent(kb.Enter))
		b.wait("the conflict", `!!document.querySelector('#error') && document.querySelector('#error').textContent.includes('Conflict (409)')`, 2*time.Minute)
		b.shoot("rollback-conflict")

		// What a busy machine does now and then, made certain: the dialog
		// closes and opens again within one task, so the first close event
		// comes after the second opening. The second question is still
		// answered by the keyboard.
		first409 := b.eval(`location.hash`)
		b.open("#/deployments/" + d2.ID)
		b.wait("the deployment page", `!!document.querySelector('#rollback')`, time.Minute)
		b.eval(`(btn => { btn.click(); document.querySelector('#confirm').close(); btn.click(); return ""; })(document.querySelector('#rollback'))`)
		b.wait("the confirmation opened again", `document.querySelector('#confirm').open && document.activeElement.value === "cancel"`, 30*time.Second)
		b.do(chromedp.KeyEvent(kb.Tab))
		b.wait("focus on Roll back", `document.activeElement.id === "confirm-ok"`, 30*time.Second)
		b.do(chromedp.KeyEvent(kb.Enter))
		b.wait("the second conflict", fmt.Sprintf(`location.hash !== %q && location.hash !== %q && !!document.querySelector('#error') && document.querySelector('#error').textContent.includes('Conflict (409)')`,
			first409, "#/deployments/"+d2.ID), 2*time.Minute)
		var list struct {
			Deployments []deploy.Deployment `json:"deployments"`
		}
		m.call(http.MethodGet, "/api/v1/deployments?limit=100", adminToken, nil, &list)
		n := 0
		for _, d := range list.Deployments {
			if d.RollbackOf == d2.ID {
				n++
			}
		}
		if n != 2 {
			t.Errorf("%d rollbacks of %s, want 2: one per confirmed question", n, d2.ID)
		}
	})

	t.Run("live diff", func(t *testing.T) {
		b.t = t
		// Someone scales the app by hand: the diff shows replicas.
		patch := []byte(`{"spec":{"replicas":2}}`)
		if _, err := env.Client.AppsV1().Deployments("ui-prod-app").Patch(context.Background(), "app-hello", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		b.open("#/clusters/prod/diff")
		b.wait("the diff", `!!document.querySelector('[data-object="Deployment/ui-prod-app/app-hello"]')`, 2*time.Minute)
		cells := b.eval(`[...document.querySelectorAll('[data-object="Deployment/ui-prod-app/app-hello"] td')].map(td => td.className + ":" + td.textContent).join("\n")`)
		if !strings.Contains(cells, "del:") || !strings.Contains(cells, "replicas: 2") || !strings.Contains(cells, "replicas: 1") {
			t.Errorf("the diff does not show replicas 2 (live) beside 1 (repo):\n%s", cells)
		}
		b.shoot("diff")
	})

	t.Run("the overview counts deploys and drift", func(t *testing.T) {
		b.t = t
		b.open("#/")
		// Three deploys and three rollbacks, two of which conflicted; the
		// diff above found the replicas changed by hand.
		b.wait("the counts", `(e => !!e && e.innerText.includes('6 (2 failed)') && e.innerText.includes('1 object differs'))(document.querySelector('[data-cluster="prod"]'))`, time.Minute)
		b.shoot("overview")
	})

	t.Run("an expired session returns to the login page", func(t *testing.T) {
		b.t = t
		b.eval(`sessionStorage.setItem("mgo.token", "mgo_revoked"); location.hash = "#/"; ""`)
		b.wait("the login page", `!!document.querySelector('#token') && document.querySelector('#login-error').textContent.includes('401')`, time.Minute)
	})
	b.noForeignRequests()

	t.Run("the API views answer within the token's scope", func(t *testing.T) {
		var ov struct {
			Clusters []struct {
				Name       string `json:"name"`
				Deploys24h int    `json:"deploys24h"`
				Releases   struct {
					Total, Healthy int
				} `json:"releases"`
			} `json:"clusters"`
		}
		if code := m.call(http.MethodGet, "/api/v1/overview", stagingToken, nil, &ov); code != http.StatusOK || len(ov.Clusters) != 1 || ov.Clusters[0].Name != "staging" {
			t.Errorf("overview for the staging token: %d %+v", code, ov)
		}
		if code := m.call(http.MethodGet, "/api/v1/overview", adminToken, nil, &ov); code != http.StatusOK || len(ov.Clusters) != 2 {
			t.Errorf("overview for the admin token: %d %+v", code, ov)
		}
		var e struct {
			Error string `json:"error"`
		}
		if code := m.call(http.MethodGet, "/api/v1/clusters/prod/live", stagingToken, nil, &e); code != http.StatusForbidden {
			t.Errorf("prod's live releases for the staging token: %d %s, want 403", code, e.Error)
		}
		var live struct {
			Releases []struct {
				Name       string            `json:"name"`
				Images     map[string]string `json:"images"`
				Revision   int               `json:"revision"`
				Health     string            `json:"health"`
				LastChange struct {
					Commit, Author, Email string
				} `json:"lastChange"`
			} `json:"releases"`
		}
		if code := m.call(http.MethodGet, "/api/v1/clusters/prod/live", adminToken, nil, &live); code != http.StatusOK || len(live.Releases) != 2 {
			t.Fatalf("prod's live releases: %d %+v", code, live)
		}
		app := live.Releases[0]
		// The last deploy of app (1.3.0 by Carol) stands: the conflicting
		// rollback changed nothing.
		if app.Name != "app" || app.Images["gitlab.com/acme/app"] != "registry.example.com/acme/app:1.3.0" || app.Health != "healthy" ||
			app.Revision < 5 || app.LastChange.Email != "carol@example.com" || app.LastChange.Commit != remote.Head(t) {
			t.Errorf("app: %+v, remote head %s", app, remote.Head(t))
		}
	})

	t.Run("a token scoped to staging never sees prod", func(t *testing.T) {
		s := newBrowser(t, m, b.ctx, chromedp.WithNewBrowserContext()) // a new tab: its own session
		s.do(chromedp.Navigate(m.url + "/ui/"))
		s.login(stagingToken)
		s.wait("the staging cluster", `document.querySelectorAll('[data-cluster]').length >= 1 && !document.querySelector('#updated').textContent.includes('Loading')`, time.Minute)
		if got := s.eval(`[...document.querySelectorAll('[data-cluster]')].map(e => e.dataset.cluster).join(",")`); got != "staging" {
			t.Errorf("the overview shows clusters %q, want only staging", got)
		}
		if strings.Contains(s.text(), "prod") {
			t.Errorf("the overview mentions prod:\n%s", s.text())
		}
		// staging's deploy freeze: on now (on New Year's Day) or next.
		s.wait("the deploy freeze", `[...document.querySelectorAll('[data-cluster="staging"] .freeze')].some(e => e.textContent.includes('new-year'))`, time.Minute)
		s.shoot("overview-staging")
		s.open("#/deployments")
		s.wait("the deployment list", `document.querySelector('#updated').textContent.includes('updated')`, time.Minute)
		if txt := s.eval(`document.querySelector('#deployments').innerText`); strings.Contains(txt, "prod") || strings.Contains(txt, first.ID) {
			t.Errorf("the deployment list shows prod's deployments:\n%s", txt)
		}
		s.open("#/deployments/" + first.ID)
		s.wait("the refusal", `!!document.querySelector('[role=alert]') && document.querySelector('[role=alert]').textContent.includes('403')`, time.Minute)
		if strings.Contains(s.text(), "alice@example.com") || strings.Contains(s.text(), "ui-prod-app") {
			t.Errorf("the page of a prod deployment shows its content:\n%s", s.text())
		}
		s.open("#/clusters/prod")
		s.wait("the refusal", `!!document.querySelector('[role=alert]') && document.querySelector('[role=alert]').textContent.includes('403')`, time.Minute)
		if n := s.eval(`String(document.querySelectorAll('tr[data-release]').length)`); n != "0" {
			t.Errorf("the page of cluster prod lists %s releases", n)
		}
		s.shoot("cluster-forbidden")
		s.noForeignRequests()
	})
}

// image returns the image of the hello Deployment of a release.
func image(t *testing.T, ns, release string) string {
	t.Helper()
	d, err := env.Client.AppsV1().Deployments(ns).Get(context.Background(), release+"-hello", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d.Spec.Template.Spec.Containers[0].Image
}
