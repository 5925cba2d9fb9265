// Package outbound bounds the addresses mgo calls on behalf of the gitops
// repo: chart repositories and OCI registries, notification receivers and
// promotion checks. Whoever merges into the gitops repo chooses those URLs,
// so without a bound a merged file could make mgo request the cloud metadata
// address, the API server or any internal service.
//
// A Policy lists the hosts and CIDRs one purpose may reach. The check runs at
// dial time on the address DNS resolved to (a net.Dialer Control function),
// so a name that resolves to an allowed address at validation time and to a
// refused one later cannot pass, and every redirect dials anew and is
// checked again. Loopback, link-local and unspecified addresses are refused
// unless a CIDR allows them, whatever the host list says.
package outbound

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Purposes of outbound requests, each with its own list.
const (
	Charts        = "charts"
	Notifications = "notifications"
	Checks        = "checks"
)

// Policy is the allow list of one purpose. The zero Policy allows every
// address except loopback, link-local and unspecified ones.
type Policy struct {
	Purpose  string
	Hosts    []string       // host names, exact or "*.example.com"
	Prefixes []netip.Prefix // CIDRs
}

// Parse builds the Policy of purpose from entries, each a host name, a
// "*.domain" wildcard, an IP address or a CIDR.
func Parse(purpose string, entries []string) (*Policy, error) {
	p := &Policy{Purpose: purpose}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if pfx, err := netip.ParsePrefix(e); err == nil {
			p.Prefixes = append(p.Prefixes, pfx.Masked())
			continue
		}
		if a, err := netip.ParseAddr(e); err == nil {
			p.Prefixes = append(p.Prefixes, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		if strings.ContainsAny(e, "/: ") {
			return nil, fmt.Errorf("outbound: %s: %q is neither a host name nor a CIDR", purpose, e)
		}
		p.Hosts = append(p.Hosts, strings.ToLower(strings.TrimSuffix(e, ".")))
	}
	return p, nil
}

// RefusedError says which address a purpose may not reach. It names the
// host and the address, never the URL, so no credential in it is shown.
type RefusedError struct {
	Purpose string
	Host    string
	Addr    netip.Addr
	Reason  string
}

func (e *RefusedError) Error() string {
	if e.Addr.IsValid() && e.Host != e.Addr.String() {
		return fmt.Sprintf("outbound %s: %s (%s) refused: %s", e.Purpose, e.Host, e.Addr, e.Reason)
	}
	return fmt.Sprintf("outbound %s: %s refused: %s", e.Purpose, e.Host, e.Reason)
}

func (p *Policy) hostAllowed(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, h := range p.Hosts {
		if h == host {
			return true
		}
		if suffix, ok := strings.CutPrefix(h, "*"); ok && strings.HasSuffix(host, suffix) && len(host) > len(suffix) {
			return true
		}
	}
	return false
}

func (p *Policy) restricted() bool { return len(p.Hosts) > 0 || len(p.Prefixes) > 0 }

// Check says whether host, which resolved to addr, may be reached.
func (p *Policy) Check(host string, addr netip.Addr) error {
	addr = addr.Unmap()
	for _, pfx := range p.Prefixes {
		if pfx.Contains(addr) {
			return nil
		}
	}
	refuse := func(reason string) error {
		return &RefusedError{Purpose: p.Purpose, Host: host, Addr: addr, Reason: reason}
	}
	switch {
	case addr.IsLoopback():
		return refuse("loopback addresses are not allowed")
	case addr.IsLinkLocalUnicast(), addr.IsLinkLocalMulticast(), addr.IsInterfaceLocalMulticast():
		return refuse("link-local addresses are not allowed")
	case addr.IsUnspecified():
		return refuse("the unspecified address is not allowed")
	}
	if !p.restricted() || p.hostAllowed(host) {
		return nil
	}
	return refuse("neither the host nor the address is in the allowed list")
}

// CheckURL is the check `mgo validate` makes before any request: the URL's
// host must be allowed by name or, if it is an IP address, by address. A name
// not in the list is reported only when the list is restricted, as its
// address is known only at dial time.
func (p *Policy) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("outbound %s: unparsable URL", p.Purpose)
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		return p.Check(host, a)
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return p.Check(host, netip.MustParseAddr("127.0.0.1"))
	}
	if p.restricted() && !p.hostAllowed(host) {
		return &RefusedError{Purpose: p.Purpose, Host: host, Reason: "the host is not in the allowed list"}
	}
	return nil
}

type hostKey struct{}

// Dialer returns a dialer whose every connection is checked against p after
// DNS resolution.
func (p *Policy) Dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout:   timeout,
		KeepAlive: 30 * time.Second,
		ControlContext: func(ctx context.Context, network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("outbound %s: unexpected address %q", p.Purpose, address)
			}
			host, _ := ctx.Value(hostKey{}).(string)
			if host == "" {
				host = ap.Addr().String()
			}
			return p.Check(host, ap.Addr())
		},
	}
}

// DialContext dials address after checking every address its host resolves
// to is allowed; the check itself runs in the dialer's Control.
func (p *Policy) DialContext(d *net.Dialer) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			host = address
		}
		conn, err := d.DialContext(context.WithValue(ctx, hostKey{}, host), network, address)
		if err != nil {
			var re *RefusedError
			if errors.As(err, &re) {
				return nil, re
			}
		}
		return conn, err
	}
}

// Transport returns a clone of base (http.DefaultTransport if nil) whose
// connections are checked against p. A proxy is not used: it would dial the
// target on mgo's behalf, past the check.
func (p *Policy) Transport(base *http.Transport, dialTimeout time.Duration) *http.Transport {
	if base == nil {
		base = http.DefaultTransport.(*http.Transport)
	}
	t := base.Clone()
	t.Proxy = nil
	t.DialContext = p.DialContext(p.Dialer(dialTimeout))
	return t
}

// Client returns an http.Client of p: every connection, those of redirects
// included, is checked at dial time, and at most 10 redirects are followed.
func (p *Policy) Client(timeout time.Duration) *http.Client {
	return &http.Client{
		Transport: p.Transport(nil, min(timeout, 30*time.Second)),
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			return nil
		},
	}
}
