package render

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/getter"
	"helm.sh/helm/v4/pkg/registry"
	repov1 "helm.sh/helm/v4/pkg/repo/v1"

	"github.com/mygitops/mgo/internal/repo"
)

// Options configure a chart source.
type Options struct {
	// CacheDir keeps downloaded charts and repository indexes. Required.
	CacheDir string
	// IndexTTL is how long a downloaded index.yaml answers version ranges
	// before it is fetched again. Exact versions already in the cache need
	// no index at all. Default 5 minutes.
	IndexTTL time.Duration
	// PlainHTTP talks to OCI registries over plain HTTP (local registries
	// and tests only).
	PlainHTTP bool
	// Timeout bounds one download. Default 2 minutes.
	Timeout time.Duration
	// Credentials is what credential references in mygitops.yaml may name.
	Credentials repo.CredentialPolicy
}

// DefaultOptions returns the defaults for a cache directory.
func DefaultOptions(cacheDir string) Options {
	return Options{CacheDir: cacheDir, IndexTTL: 5 * time.Minute, Timeout: 2 * time.Minute, Credentials: repo.DefaultCredentialPolicy()}
}

// Charts loads charts from repositories, registries and the gitops repo,
// through a disk cache. It is safe for concurrent use.
type Charts struct {
	opts    Options
	log     *slog.Logger
	getters getter.Providers

	mu    sync.Mutex
	locks map[string]*sync.Mutex // per cache key: one download at a time
	// Downloads counts network fetches of charts (not indexes), for tests
	// and metrics.
	downloads int
}

// NewCharts validates the options and prepares the cache directory.
func NewCharts(opts Options, log *slog.Logger) (*Charts, error) {
	if opts.CacheDir == "" {
		return nil, errors.New("render: chart cache directory is required")
	}
	if opts.IndexTTL <= 0 {
		opts.IndexTTL = 5 * time.Minute
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Minute
	}
	for _, d := range []string{"charts", "index"} {
		if err := os.MkdirAll(filepath.Join(opts.CacheDir, d), 0o700); err != nil {
			return nil, fmt.Errorf("render: chart cache: %w", err)
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Charts{
		opts:    opts,
		log:     log,
		getters: getter.Getters(getter.WithTimeout(opts.Timeout)),
		locks:   map[string]*sync.Mutex{},
	}, nil
}

// Chart is a loaded chart and where it came from.
type Chart struct {
	Chart   *chart.Chart
	Version string // the resolved version
	Source  string // repository URL, OCI reference or repo path
}

// Downloads returns how many charts were fetched over the network.
func (c *Charts) Downloads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.downloads
}

// Load returns the chart a release header names. repoDir is the root of the
// gitops repo checkout (for ./charts/x); cfg lists the chart repositories.
func (c *Charts) Load(ctx context.Context, repoDir string, cfg *repo.Config, h repo.Header) (*Chart, error) {
	ref, err := repo.ParseChartRef(h.Chart)
	if err != nil {
		return nil, err
	}
	switch ref.Kind {
	case repo.ChartInRepo:
		return c.loadLocal(repoDir, ref, h.Version)
	case repo.ChartFromOCI:
		creds, err := ociCredentials(cfg, ref.URL, c.opts.Credentials)
		if err != nil {
			return nil, err
		}
		return c.loadOCI(ctx, ref, h.Version, creds)
	default:
		r, ok := cfg.Repository(ref.Repository)
		if !ok {
			return nil, fmt.Errorf("chart %s: chart repository %q is not listed in %s", h.Chart, ref.Repository, repo.ConfigFile)
		}
		return c.loadFromRepository(ctx, r, ref.Name, h.Version)
	}
}

func (c *Charts) loadLocal(repoDir string, ref repo.ChartRef, version string) (*Chart, error) {
	dir := filepath.Join(repoDir, filepath.FromSlash(ref.Path))
	ch, err := loader.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", ref.Path, err)
	}
	if version != "" {
		if err := checkVersion(ch.Metadata.Version, version); err != nil {
			return nil, fmt.Errorf("chart %s: %w", ref.Path, err)
		}
	}
	return &Chart{Chart: ch, Version: ch.Metadata.Version, Source: ref.Path}, nil
}

func checkVersion(have, want string) error {
	cons, err := semver.NewConstraint(want)
	if err != nil {
		return fmt.Errorf("version %q: %w", want, err)
	}
	v, err := semver.NewVersion(have)
	if err != nil {
		return fmt.Errorf("chart version %q is not semver: %w", have, err)
	}
	if !cons.Check(v) {
		return fmt.Errorf("chart version %s does not satisfy %q", have, want)
	}
	return nil
}

// isExact reports whether a version string names one version (not a range).
func isExact(version string) bool {
	_, err := semver.StrictNewVersion(strings.TrimPrefix(version, "v"))
	return err == nil
}

func (c *Charts) lock(key string) func() {
	c.mu.Lock()
	l, ok := c.locks[key]
	if !ok {
		l = &sync.Mutex{}
		c.locks[key] = l
	}
	c.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// cachePath is where a chart archive of a source, name and version lives.
func (c *Charts) cachePath(source, name, version string) string {
	sum := sha256.Sum256([]byte(source))
	return filepath.Join(c.opts.CacheDir, "charts", hex.EncodeToString(sum[:8]), name+"-"+version+".tgz")
}

// fromCache loads a cached archive, or returns nil.
func (c *Charts) fromCache(path string) *chart.Chart {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	ch, err := loader.LoadArchive(f)
	if err != nil {
		c.log.Warn("discarding unreadable cached chart", "path", path, "error", err)
		_ = os.Remove(path)
		return nil
	}
	return ch
}

// store writes an archive to the cache atomically and loads it.
func (c *Charts) store(path string, data []byte) (*chart.Chart, error) {
	ch, err := loader.LoadArchive(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("downloaded chart is not a valid archive: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.downloads++
	c.mu.Unlock()
	return ch, nil
}

func (c *Charts) loadFromRepository(ctx context.Context, r repo.ChartRepository, name, version string) (*Chart, error) {
	where := fmt.Sprintf("chart %s/%s %s", r.Name, name, version)
	creds, err := r.Credentials(c.opts.Credentials)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	password := creds.Password
	if password == "" {
		password = creds.Token // token-authenticated repositories take it as the basic-auth password
	}
	auth := []getter.Option{getter.WithURL(r.URL), getter.WithBasicAuth(creds.Username, password)}

	if isExact(version) {
		unlock := c.lock(r.URL + "|" + name + "|" + version)
		defer unlock()
		if ch := c.fromCache(c.cachePath(r.URL, name, version)); ch != nil {
			return &Chart{Chart: ch, Version: ch.Metadata.Version, Source: r.URL}, nil
		}
	}
	idx, err := c.index(ctx, r, auth)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	cv, err := idx.Get(name, version)
	if err != nil {
		return nil, fmt.Errorf("%s: not in the index of %s: %w", where, r.URL, err)
	}
	if len(cv.URLs) == 0 {
		return nil, fmt.Errorf("%s: the index lists no download URL", where)
	}
	if !isExact(version) {
		unlock := c.lock(r.URL + "|" + name + "|" + cv.Version)
		defer unlock()
	}
	path := c.cachePath(r.URL, name, cv.Version)
	if ch := c.fromCache(path); ch != nil {
		return &Chart{Chart: ch, Version: cv.Version, Source: r.URL}, nil
	}
	u, err := repov1.ResolveReferenceURL(r.URL, cv.URLs[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	data, err := c.get(ctx, u, auth)
	if err != nil {
		return nil, fmt.Errorf("%s: downloading %s: %w", where, u, err)
	}
	if cv.Digest != "" {
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != strings.TrimPrefix(cv.Digest, "sha256:") {
			return nil, fmt.Errorf("%s: downloaded archive has digest %s, the index says %s", where, got, cv.Digest)
		}
	}
	ch, err := c.store(path, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	c.log.Info("downloaded chart", "repository", r.Name, "chart", name, "version", cv.Version)
	return &Chart{Chart: ch, Version: cv.Version, Source: r.URL}, nil
}

// index returns the repository's index, from the cache while it is fresh.
func (c *Charts) index(ctx context.Context, r repo.ChartRepository, auth []getter.Option) (*repov1.IndexFile, error) {
	sum := sha256.Sum256([]byte(r.URL))
	path := filepath.Join(c.opts.CacheDir, "index", hex.EncodeToString(sum[:8])+"-index.yaml")
	unlock := c.lock("index|" + r.URL)
	defer unlock()
	if fi, err := os.Stat(path); err == nil && time.Since(fi.ModTime()) < c.opts.IndexTTL {
		if idx, err := repov1.LoadIndexFile(path); err == nil {
			return idx, nil
		}
	}
	u, err := repov1.ResolveReferenceURL(r.URL, "index.yaml")
	if err != nil {
		return nil, err
	}
	data, err := c.get(ctx, u, auth)
	if err != nil {
		return nil, fmt.Errorf("downloading index %s: %w", u, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return nil, err
	}
	idx, err := repov1.LoadIndexFile(tmp)
	if err != nil {
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("index %s: %w", u, err)
	}
	return idx, os.Rename(tmp, path)
}

// get downloads a URL with Helm's HTTP getter, honouring ctx.
func (c *Charts) get(ctx context.Context, u string, opts []getter.Option) ([]byte, error) {
	g, err := c.getters.ByScheme(strings.SplitN(u, ":", 2)[0])
	if err != nil {
		return nil, err
	}
	type result struct {
		buf *bytes.Buffer
		err error
	}
	done := make(chan result, 1)
	go func() {
		buf, err := g.Get(u, opts...)
		done <- result{buf, err}
	}()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-done:
		if r.err != nil {
			return nil, r.err
		}
		return io.ReadAll(r.buf)
	}
}

// ociCredentials finds credentials for an OCI chart URL: the chart
// repository of mygitops.yaml whose oci:// URL is a prefix of it.
func ociCredentials(cfg *repo.Config, chartURL string, policy repo.CredentialPolicy) (repo.Credentials, error) {
	best := -1
	for i, r := range cfg.Repositories {
		if strings.HasPrefix(r.URL, "oci://") && strings.HasPrefix(chartURL, strings.TrimSuffix(r.URL, "/")+"/") {
			if best < 0 || len(r.URL) > len(cfg.Repositories[best].URL) {
				best = i
			}
		}
	}
	if best < 0 {
		return repo.Credentials{}, nil
	}
	return cfg.Repositories[best].Credentials(policy)
}

func (c *Charts) loadOCI(ctx context.Context, ref repo.ChartRef, version string, creds repo.Credentials) (*Chart, error) {
	where := fmt.Sprintf("chart %s %s", ref.URL, version)
	opts := []registry.ClientOption{registry.ClientOptWriter(io.Discard)}
	if c.opts.PlainHTTP {
		opts = append(opts, registry.ClientOptPlainHTTP())
	}
	password := creds.Password
	if password == "" {
		password = creds.Token
	}
	if creds.Username != "" || password != "" {
		opts = append(opts, registry.ClientOptBasicAuth(creds.Username, password))
	}
	client, err := registry.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: registry client: %w", where, err)
	}
	host := strings.TrimPrefix(ref.URL, "oci://")

	resolved := version
	if !isExact(version) {
		tags, err := client.Tags(host)
		if err != nil {
			return nil, fmt.Errorf("%s: listing tags: %w", where, err)
		}
		if resolved, err = newestMatch(tags, version); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
	}
	unlock := c.lock(ref.URL + "|" + resolved)
	defer unlock()
	path := c.cachePath(ref.URL, ref.Name, resolved)
	if ch := c.fromCache(path); ch != nil {
		return &Chart{Chart: ch, Version: resolved, Source: ref.URL}, nil
	}
	type result struct {
		res *registry.PullResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		// OCI tags cannot hold '+': Helm stores semver build metadata as '_'.
		res, err := client.Pull(host + ":" + strings.ReplaceAll(resolved, "+", "_"))
		done <- result{res, err}
	}()
	var res *registry.PullResult
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("%s: pulling: %w", where, r.err)
		}
		res = r.res
	}
	ch, err := c.store(path, res.Chart.Data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	c.log.Info("pulled chart", "reference", ref.URL, "version", resolved)
	return &Chart{Chart: ch, Version: resolved, Source: ref.URL}, nil
}

// newestMatch returns the newest tag satisfying a semver range.
func newestMatch(tags []string, rng string) (string, error) {
	cons, err := semver.NewConstraint(rng)
	if err != nil {
		return "", fmt.Errorf("version %q: %w", rng, err)
	}
	var versions []*semver.Version
	for _, t := range tags {
		v, err := semver.NewVersion(strings.ReplaceAll(t, "_", "+"))
		if err == nil && cons.Check(v) {
			versions = append(versions, v)
		}
	}
	if len(versions) == 0 {
		return "", fmt.Errorf("no version matches %q (tags: %s)", rng, strings.Join(tags, ", "))
	}
	sort.Sort(sort.Reverse(semver.Collection(versions)))
	return versions[0].Original(), nil
}
