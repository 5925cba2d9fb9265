package kube

import (
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"

	"github.com/mygitops/mgo/internal/repo"
)

// proxy forwards TCP connections to an API server until it is cut: then
// it closes every connection and refuses new ones until it is resumed, as
// a network outage between mgo and its cluster does.
type proxy struct {
	t      *testing.T
	addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
}

// cut closes the listener and every connection: new ones are refused.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// resume listens again on the same address.
func (p *proxy) resume() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.serve(ln)
}

// A watch that loses its connection resumes when the API server can be
// reached again and misses nothing: objects changed, created and deleted
// during the outage are in the cache afterwards.
func TestCacheResumesAfterDisconnect(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	direct := newCluster(t)
	u, err := url.Parse(env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, u.Host)
	cfg := rest.CopyConfig(env.Config)
	u.Host = p.addr
	cfg.Host = u.String()
	c, err := NewCluster("kube-test", cfg, repo.Budget{QPS: 50, Burst: 100})
	if err != nil {
		t.Fatal(err)
	}
	owner := c.OwnerFor("resume-" + ns)
	ca, err := c.NewCache(owner, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	var mu sync.Mutex
	events := map[string]int{}
	ca.OnEvent(func(e CacheEvent) {
		mu.Lock()
		events[string(e.Type)+" "+e.Object.GetName()]++
		mu.Unlock()
	})

	changed, deleted, created := cm(t, owner, ns, "changed", "1"), cm(t, owner, ns, "deleted", "1"), cm(t, owner, ns, "created", "1")
	for _, o := range []string{"changed", "deleted"} {
		applyAs(t, direct, FieldManager, cm(t, owner, ns, o, "1"))
	}
	waitCached(t, c, ca, changed)
	waitCached(t, c, ca, deleted)
	lists := c.Requests.Snapshot()

	p.cut()
	applyAs(t, direct, FieldManager, cm(t, owner, ns, "changed", "2"))
	applyAs(t, direct, FieldManager, created)
	if err := direct.Client.Delete(ctx, deleted); err != nil {
		t.Fatal(err)
	}
	p.resume()

	if got := waitCached(t, direct, ca, changed); got == nil || got.Object["data"].(map[string]any)["value"] != "2" {
		t.Errorf("changed during the outage: cached %v", got)
	}
	if got := waitCached(t, direct, ca, created); got == nil {
		t.Error("created during the outage: not cached")
	}
	if got := waitCached(t, direct, ca, deleted); got != nil {
		t.Error("deleted during the outage: still cached")
	}
	mu.Lock()
	t.Logf("events: %v; requests after the outage: %+v", events, c.Requests.Since(lists))
	if events["updated changed"] == 0 || events["added created"] == 0 || events["deleted deleted"] == 0 {
		t.Errorf("events after the outage: %v", events)
	}
	mu.Unlock()
}

func cm(t *testing.T, owner Owner, ns, name, value string) *unstructured.Unstructured {
	u := obj(t, owner, ns, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: "+name+"}\ndata: {value: \""+value+"\"}\n")
	return u
}
