package kube

import (
	"maps"
	"net/http"
	"strings"
	"sync"
)

// RequestCounts are API requests by verb. Dry-run requests (dryRun=All) are
// counted under "dryrun-<verb>", never as writes.
type RequestCounts map[string]int

// Writes is the number of requests that changed something: create, update,
// patch and delete, dry-runs excluded.
func (c RequestCounts) Writes() int {
	return c["create"] + c["update"] + c["patch"] + c["delete"]
}

// RequestCounter counts the requests of one cluster client, by verb and by
// the namespace in the request path.
type RequestCounter struct {
	metrics    *clusterMetrics // the cluster's, nil without metrics
	mu         sync.Mutex
	counts     RequestCounts
	namespaces map[string]int
}

// Namespaces returns how many requests named each namespace in their path
// (requests for cluster-scoped or all-namespace paths are not counted).
func (c *RequestCounter) Namespaces() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.namespaces)
}

// Snapshot returns a copy of the counts so far.
func (c *RequestCounter) Snapshot() RequestCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts)
}

// Since returns the counts added after an earlier snapshot.
func (c *RequestCounter) Since(before RequestCounts) RequestCounts {
	now := c.Snapshot()
	for k, v := range before {
		now[k] -= v
		if now[k] == 0 {
			delete(now, k)
		}
	}
	return now
}

// Total is every request so far.
func (c *RequestCounter) Total() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for _, v := range c.counts {
		n += int64(v)
	}
	return n
}

func (c *RequestCounter) add(verb, namespace string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = RequestCounts{}
		c.namespaces = map[string]int{}
	}
	c.counts[verb]++
	if namespace != "" {
		c.namespaces[namespace]++
	}
}

// Wrap is a rest.Config WrapTransport that counts requests, and, for a
// cluster built WithMetrics, reports each with its status code.
func (c *RequestCounter) Wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		verb := verbOf(r)
		c.add(verb, namespaceOf(r.URL.Path))
		resp, err := rt.RoundTrip(r)
		c.metrics.request(verb, resp, err)
		return resp, err
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// verbOf maps an HTTP request to a Kubernetes verb.
func verbOf(r *http.Request) string {
	q := r.URL.Query()
	var verb string
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case q.Get("watch") == "true" || q.Get("watch") == "1":
			verb = "watch"
		case !strings.HasPrefix(r.URL.Path, "/api/") && !strings.HasPrefix(r.URL.Path, "/apis/") || isCollection(r.URL.Path):
			verb = "list" // discovery, /version and collections
		default:
			verb = "get"
		}
	case http.MethodPost:
		verb = "create"
	case http.MethodPut:
		verb = "update"
	case http.MethodPatch:
		verb = "patch"
	case http.MethodDelete:
		verb = "delete"
	default:
		verb = strings.ToLower(r.Method)
	}
	if q.Get("dryRun") != "" {
		return "dryrun-" + verb
	}
	return verb
}

// isCollection reports whether an API path names a collection (…/pods)
// rather than one object (…/pods/name). Paths are
// /api/v1[/namespaces/ns]/resource[/name[/sub]] and
// /apis/group/version[/namespaces/ns]/resource[/name[/sub]].
func isCollection(path string) bool {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if parts[0] == "api" {
		parts = parts[2:]
	} else if len(parts) >= 3 {
		parts = parts[3:]
	} else {
		return true
	}
	if len(parts) >= 2 && parts[0] == "namespaces" {
		if len(parts) == 2 {
			return false // the namespace object itself
		}
		parts = parts[2:]
	}
	return len(parts) <= 1
}

// namespaceOf returns the namespace an API path is about: the object of
// /api/v1/namespaces/<ns>, or what lives in it.
func namespaceOf(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i := 0; i+1 < len(parts); i++ {
		if parts[i] == "namespaces" {
			return parts[i+1]
		}
	}
	return ""
}
