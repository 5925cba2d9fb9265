package ui_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/mygitops/mgo/internal/ui"
)

// Mount serves the files under /ui/ with a policy that allows no other
// origin, sends / to the dashboard and everything else to the API.
func TestMount(t *testing.T) {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "api "+r.Method+" "+r.URL.Path) })
	srv := httptest.NewServer(ui.Mount(api))
	defer srv.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(method, p string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+p, nil)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	resp, body := get(http.MethodGet, "/ui/")
	if resp.StatusCode != 200 || !strings.Contains(body, `<script src="app.js" defer></script>`) {
		t.Fatalf("/ui/: %d %s", resp.StatusCode, body)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no nosniff")
	}
	for p, ctype := range map[string]string{"/ui/app.js": "text/javascript", "/ui/app.css": "text/css"} {
		if resp, _ := get(http.MethodGet, p); resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) {
			t.Errorf("%s: %d %s", p, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	if resp, _ := get(http.MethodGet, "/"); resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("GET /: %d to %q, want a redirect to /ui/", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := get(http.MethodGet, "/ui"); resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("GET /ui: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := get(http.MethodPost, "/ui/"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /ui/: %d, want 405", resp.StatusCode)
	}
	if resp, _ := get(http.MethodGet, "/ui/nothing.js"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown file: %d, want 404", resp.StatusCode)
	}
	for _, p := range []string{"/api/v1/overview", "/healthz", "/deploy"} {
		if _, body := get(http.MethodGet, p); body != "api GET "+p {
			t.Errorf("GET %s reached %q, want the API", p, body)
		}
	}
	if _, body := get(http.MethodPost, "/"); body != "api POST /" {
		t.Errorf("POST / reached %q, want the API", body)
	}
}

// The assets name no other origin: no CDN, fonts or scripts from
// elsewhere (the browser test also watches every request the pages make).
// It reports what the dashboard ships.
func TestAssetsAreSelfContained(t *testing.T) {
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import|fetch\(\s*["'` + "`" + `]https?:`)
	err := fs.WalkDir(ui.Assets(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(ui.Assets(), p)
		if err != nil {
			return err
		}
		if m := external.Find(b); m != nil {
			t.Errorf("%s refers to another origin: %q", p, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	files, bytes, err := ui.Size()
	if err != nil || files != 3 || bytes == 0 {
		t.Fatalf("Size: %d files, %d bytes, %v", files, bytes, err)
	}
	t.Logf("the dashboard ships %d files, %d bytes (uncompressed)", files, bytes)
}

// TestAssetsNeverParseHTML: the dashboard shows what callers, committers
// and charts wrote (release names, commit summaries, authors, errors)
// through DOM text only: no asset hands a string to an HTML parser or to
// eval, so none of it can run as script (the CSP forbids inline script
// besides).
func TestAssetsNeverParseHTML(t *testing.T) {
	sinks := regexp.MustCompile(`\.(innerHTML|outerHTML|insertAdjacentHTML)\b|document\.write|\beval\(|new Function\(|setTimeout\(\s*["'` + "`" + `]`)
	err := fs.WalkDir(ui.Assets(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".js") {
			return err
		}
		b, err := fs.ReadFile(ui.Assets(), p)
		if err != nil {
			return err
		}
		if m := sinks.Find(b); m != nil {
			t.Errorf("%s passes a string to an HTML or script sink: %q", p, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
