package repo

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// ParseCache keeps, across loads, what each values file says, by its
// cluster, path and content and the content of mygitops.yaml: a service
// that loads the tree for every deploy parses only the files that changed
// since (with a thousand releases, parsing every values file three times
// per deploy made its latency grow with the number of releases). Safe for
// concurrent use.
type ParseCache struct {
	mu sync.Mutex
	m  map[parseKey]parsedRelease
}

// maxParsed bounds a ParseCache: past it the cache starts again empty.
const maxParsed = 20000

// NewParseCache returns an empty cache.
func NewParseCache() *ParseCache { return &ParseCache{m: map[parseKey]parsedRelease{}} }

type parseKey struct {
	cluster, file string
	content       [32]byte
	config        [32]byte
}

// parsedRelease is what parseRelease found in a values file.
type parsedRelease struct {
	parsed    bool // one YAML document was read
	header    Header
	valid     bool
	chartLine int
	problems  Problems
}

// loadContext is what one Load shares between its values files.
type loadContext struct {
	cache  *ParseCache
	config [32]byte
	mu     sync.Mutex
	links  map[string]string // chart path -> chartLinks' message
}

func newLoadContext(dir string, cache *ParseCache) *loadContext {
	lc := &loadContext{cache: cache, links: map[string]string{}}
	if cache != nil {
		b, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
		lc.config = sha256.Sum256(b)
	}
	return lc
}

func (lc *loadContext) key(cluster, file string, b []byte) parseKey {
	return parseKey{cluster: cluster, file: file, content: sha256.Sum256(b), config: lc.config}
}

func (lc *loadContext) lookup(cluster, file string, b []byte) (parsedRelease, bool) {
	if lc.cache == nil {
		return parsedRelease{}, false
	}
	lc.cache.mu.Lock()
	defer lc.cache.mu.Unlock()
	p, ok := lc.cache.m[lc.key(cluster, file, b)]
	return p, ok
}

func (lc *loadContext) store(cluster, file string, b []byte, p parsedRelease) {
	if lc.cache == nil {
		return
	}
	lc.cache.mu.Lock()
	defer lc.cache.mu.Unlock()
	if len(lc.cache.m) >= maxParsed {
		lc.cache.m = map[parseKey]parsedRelease{}
	}
	lc.cache.m[lc.key(cluster, file, b)] = p
}

// chartLinks is chartLinks of the tree, once per chart and load.
func (lc *loadContext) chartLinks(root, path string) string {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	msg, ok := lc.links[path]
	if !ok {
		msg = chartLinks(root, path)
		lc.links[path] = msg
	}
	return msg
}

// clone returns a copy of h that shares no slice with it.
func (h Header) clone() Header {
	h.Images = slices.Clone(h.Images)
	h.IgnoreDifferences = slices.Clone(h.IgnoreDifferences)
	h.Health = slices.Clone(h.Health)
	return h
}
