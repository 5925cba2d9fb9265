package render

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/helmpath"
	"helm.sh/helm/v4/pkg/registry"
	repov1 "helm.sh/helm/v4/pkg/repo/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/mygitops/mgo/internal/outbound"
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
	// CAFile is a PEM bundle of extra certificate authorities trusted for
	// chart repositories and OCI registries (beside the system's).
	CAFile string
	// PlainHTTP talks to OCI registries over plain HTTP (local registries
	// and tests only).
	PlainHTTP bool
	// Timeout bounds every request to a chart repository or an OCI
	// registry (connecting, sending, reading the whole answer), and one
	// Load of a chart from the network as a whole. Default 2 minutes.
	Timeout time.Duration
	// Credentials is what credential references in mygitops.yaml may name.
	Credentials repo.CredentialPolicy
	// Outbound, if set, bounds the addresses of chart repositories and OCI
	// registries: every connection, those of redirects included, is checked
	// after DNS resolution.
	Outbound *outbound.Policy
}

// DefaultOptions returns the defaults for a cache directory.
func DefaultOptions(cacheDir string) Options {
	return Options{CacheDir: cacheDir, IndexTTL: 5 * time.Minute, Timeout: 2 * time.Minute, Credentials: repo.DefaultCredentialPolicy()}
}

// Charts loads charts from repositories, registries and the gitops repo,
// through a disk cache. It is safe for concurrent use.
type Charts struct {
	opts Options
	log  *slog.Logger
	http *http.Client // every request to repositories and registries

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
	client := newHTTPClient(opts.Timeout, opts.Outbound)
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("render: chart CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("render: chart CA file %s holds no PEM certificate", opts.CAFile)
		}
		client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &Charts{
		opts:  opts,
		log:   log,
		http:  client,
		locks: map[string]*sync.Mutex{},
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

// newHTTPClient returns the client of every request to chart repositories
// and OCI registries: each request, its answer included, ends within
// timeout, and so do its connection, TLS handshake and wait for headers.
// With a policy, every connection is checked against it at dial time.
func newHTTPClient(timeout time.Duration, policy *outbound.Policy) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: min(timeout, 30*time.Second), KeepAlive: 30 * time.Second}).DialContext
	if policy != nil {
		t = policy.Transport(t, min(timeout, 30*time.Second))
	}
	t.TLSHandshakeTimeout = min(timeout, 10*time.Second)
	t.ResponseHeaderTimeout = timeout
	t.IdleConnTimeout = 90 * time.Second
	return &http.Client{Transport: t, Timeout: timeout}
}

// Load returns the chart a release header names. repoDir is the root of the
// gitops repo checkout (for ./charts/x); cfg lists the chart repositories.
// A chart from the network is loaded within Options.Timeout (and ctx): no
// request outlives it.
func (c *Charts) Load(ctx context.Context, repoDir string, cfg *repo.Config, h repo.Header) (*Chart, error) {
	ref, err := repo.ParseChartRef(h.Chart)
	if err != nil {
		return nil, err
	}
	if ref.Kind != repo.ChartInRepo {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.Timeout)
		defer cancel()
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
	auth := basicAuth{url: r.URL, username: creds.Username, password: password}

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
func (c *Charts) index(ctx context.Context, r repo.ChartRepository, auth basicAuth) (*repov1.IndexFile, error) {
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

// basicAuth are a chart repository's credentials; they are sent only to
// the host of its URL, as Helm does.
type basicAuth struct {
	url                string
	username, password string
}

// maxDownload bounds an index or chart archive.
const maxDownload = 64 << 20

// get downloads a URL within ctx.
func (c *Charts) get(ctx context.Context, u string, auth basicAuth) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, http.NoBody)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "mgo")
	if auth.username != "" || auth.password != "" {
		if base, err := url.Parse(auth.url); err == nil && base.Scheme == req.URL.Scheme && base.Host == req.URL.Host {
			req.SetBasicAuth(auth.username, auth.password)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("failed to fetch %s : %s", u, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxDownload+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxDownload {
		return nil, fmt.Errorf("%s is larger than %d MiB", u, maxDownload>>20)
	}
	return data, nil
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
	repository, err := c.ociRepository(ref.URL, creds)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}

	resolved := version
	if !isExact(version) {
		var tags []string
		err := repository.Tags(ctx, "", func(page []string) error {
			tags = append(tags, page...)
			return nil
		})
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
	// OCI tags cannot hold '+': Helm stores semver build metadata as '_'.
	data, err := pullChart(ctx, repository, strings.ReplaceAll(resolved, "+", "_"))
	if err != nil {
		return nil, fmt.Errorf("%s: pulling: %w", where, err)
	}
	ch, err := c.store(path, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	c.log.Info("pulled chart", "reference", ref.URL, "version", resolved)
	return &Chart{Chart: ch, Version: resolved, Source: ref.URL}, nil
}

// ociRepository is the registry repository of an oci:// chart URL, reached
// through the engine's HTTP client. Without credentials in mygitops.yaml,
// those of Helm's registry configuration, then Docker's, are used, as the
// Helm client does.
func (c *Charts) ociRepository(chartURL string, creds repo.Credentials) (*remote.Repository, error) {
	repository, err := remote.NewRepository(strings.TrimPrefix(chartURL, "oci://"))
	if err != nil {
		return nil, err
	}
	repository.PlainHTTP = c.opts.PlainHTTP
	client := &auth.Client{Client: c.http, Cache: auth.NewCache(), Header: http.Header{"User-Agent": {"mgo"}}}
	password := creds.Password
	if password == "" {
		password = creds.Token
	}
	if creds.Username != "" || password != "" {
		client.Credential = auth.StaticCredential(repository.Reference.Registry, auth.Credential{Username: creds.Username, Password: password})
	} else {
		store, err := credentials.NewStore(helmpath.ConfigPath(registry.CredentialsFileBasename), credentials.StoreOptions{})
		if err != nil {
			return nil, fmt.Errorf("registry credentials: %w", err)
		}
		var fallback []credentials.Store
		if docker, err := credentials.NewStoreFromDocker(credentials.StoreOptions{}); err == nil {
			fallback = append(fallback, docker)
		}
		client.Credential = credentials.Credential(credentials.NewStoreWithFallbacks(store, fallback...))
	}
	repository.Client = client
	return repository, nil
}

// pullChart fetches the chart archive of a tag: the manifest, then its
// chart layer, each verified against its digest.
func pullChart(ctx context.Context, repository *remote.Repository, tag string) ([]byte, error) {
	desc, rc, err := repository.FetchReference(ctx, tag)
	if err != nil {
		return nil, err
	}
	if desc.Size > maxManifest {
		rc.Close()
		return nil, fmt.Errorf("manifest of %s is %d bytes, more than %d", tag, desc.Size, maxManifest)
	}
	body, err := content.ReadAll(rc, desc)
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", tag, err)
	}
	if desc.MediaType != ocispec.MediaTypeImageManifest {
		return nil, fmt.Errorf("%s is a %s, not a chart (an OCI image manifest)", tag, desc.MediaType)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", tag, err)
	}
	for _, l := range m.Layers {
		if l.MediaType != registry.ChartLayerMediaType && l.MediaType != registry.LegacyChartLayerMediaType {
			continue
		}
		if l.Size > maxDownload {
			return nil, fmt.Errorf("chart layer of %s is larger than %d MiB", tag, maxDownload>>20)
		}
		return content.FetchAll(ctx, repository, l)
	}
	return nil, fmt.Errorf("%s has no chart layer (%s)", tag, registry.ChartLayerMediaType)
}

// maxManifest bounds an OCI manifest.
const maxManifest = 4 << 20

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
