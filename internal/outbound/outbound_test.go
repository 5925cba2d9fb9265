package outbound

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// serveOn starts an HTTP server on ip (a loopback address) and returns its URL.
func serveOn(t *testing.T, ip string, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	s := httptest.NewUnstartedServer(h)
	s.Listener.Close()
	s.Listener = l
	s.Start()
	t.Cleanup(s.Close)
	return s.URL
}

var ok = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })

func mustParse(t *testing.T, purpose string, entries ...string) *Policy {
	t.Helper()
	p, err := Parse(purpose, entries)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func get(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

func TestAllowedCIDRIsReachedAndOthersRefused(t *testing.T) {
	allowed := serveOn(t, "127.0.0.1", ok)
	other := serveOn(t, "127.0.0.2", ok)
	c := mustParse(t, Notifications, "127.0.0.1/32").Client(5 * time.Second)
	if err := get(c, allowed); err != nil {
		t.Fatalf("allowed address: %v", err)
	}
	err := get(c, other)
	var re *RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("127.0.0.2 is outside the list, got %v", err)
	}
	if re.Addr != netip.MustParseAddr("127.0.0.2") || re.Purpose != Notifications {
		t.Fatalf("refusal names %s for %s", re.Addr, re.Purpose)
	}
}

func TestLoopbackIsRefusedByDefault(t *testing.T) {
	u := serveOn(t, "127.0.0.1", ok)
	c := (&Policy{Purpose: Charts}).Client(5 * time.Second)
	var re *RefusedError
	if err := get(c, u); !errors.As(err, &re) {
		t.Fatalf("loopback without a list: %v", err)
	}
}

func TestAllowedHostNameDoesNotAllowLoopbackAddress(t *testing.T) {
	// The name is in the list but resolves to loopback, as a rebound name would.
	srv := serveOn(t, "127.0.0.1", ok)
	u := strings.Replace(srv, "127.0.0.1", "localhost", 1)
	c := mustParse(t, Charts, "localhost").Client(5 * time.Second)
	var re *RefusedError
	if err := get(c, u); !errors.As(err, &re) || re.Host != "localhost" {
		t.Fatalf("localhost by name: %v", err)
	}
	c = mustParse(t, Charts, "localhost", "127.0.0.0/8", "::1").Client(5 * time.Second)
	if err := get(c, u); err != nil {
		t.Fatalf("localhost with its addresses allowed: %v", err)
	}
}

func TestRedirectIsCheckedAgain(t *testing.T) {
	target := serveOn(t, "127.0.0.2", ok)
	start := serveOn(t, "127.0.0.1", http.RedirectHandler(target+"/meta", http.StatusFound))
	c := mustParse(t, Notifications, "127.0.0.1").Client(5 * time.Second)
	var re *RefusedError
	if err := get(c, start); !errors.As(err, &re) || re.Addr != netip.MustParseAddr("127.0.0.2") {
		t.Fatalf("redirect to a refused address: %v", err)
	}
	c = mustParse(t, Notifications, "127.0.0.1", "127.0.0.2").Client(5 * time.Second)
	if err := get(c, start); err != nil {
		t.Fatalf("redirect to an allowed address: %v", err)
	}
}

func TestRefusalNeverShowsCredential(t *testing.T) {
	u := serveOn(t, "127.0.0.2", ok)
	u = strings.Replace(u, "http://", "http://robot:s3cret@", 1) + "/hook?token=t0ken"
	err := get(mustParse(t, Notifications, "127.0.0.1").Client(5*time.Second), u)
	var re *RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("got %v", err)
	}
	for _, secret := range []string{"s3cret", "t0ken", "robot"} {
		if strings.Contains(re.Error(), secret) {
			t.Fatalf("refusal %q shows %s", re.Error(), secret)
		}
	}
}

func TestCheck(t *testing.T) {
	p := mustParse(t, Charts, "charts.example.com", "*.registry.example", "10.0.0.0/8")
	for _, tc := range []struct {
		host, addr string
		ok         bool
	}{
		{"charts.example.com", "203.0.113.7", true},
		{"a.registry.example", "203.0.113.7", true},
		{"registry.example", "203.0.113.7", false},
		{"other.example.com", "203.0.113.7", false},
		{"internal", "10.1.2.3", true},
		{"charts.example.com", "169.254.169.254", false},
		{"charts.example.com", "::ffff:127.0.0.1", false},
		{"charts.example.com", "fe80::1", false},
		{"charts.example.com", "0.0.0.0", false},
	} {
		err := p.Check(tc.host, netip.MustParseAddr(tc.addr))
		if (err == nil) != tc.ok {
			t.Errorf("%s at %s: allowed %v, want %v (%v)", tc.host, tc.addr, err == nil, tc.ok, err)
		}
	}
	open := &Policy{Purpose: Charts}
	if err := open.Check("any.example", netip.MustParseAddr("203.0.113.7")); err != nil {
		t.Errorf("an empty list allows public addresses: %v", err)
	}
	if err := open.Check("meta", netip.MustParseAddr("169.254.169.254")); err == nil {
		t.Error("an empty list allows the metadata address")
	}
}

func TestCheckURL(t *testing.T) {
	p := mustParse(t, Notifications, "hooks.example.com")
	for url, ok := range map[string]bool{
		"https://hooks.example.com/x":         true,
		"https://evil.example.com/x":          false,
		"http://169.254.169.254/latest":       false,
		"http://localhost:8080/":              false,
		"https://user:pw@hooks.example.com/x": true,
	} {
		if err := p.CheckURL(url); (err == nil) != ok {
			t.Errorf("%s: allowed %v, want %v (%v)", url, err == nil, ok, err)
		}
	}
	if _, err := Parse(Charts, []string{"http://x/"}); err == nil {
		t.Error("a URL is not a list entry")
	}
}
