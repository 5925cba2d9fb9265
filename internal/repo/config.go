package repo

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
	"go.yaml.in/yaml/v3"

	"github.com/mygitops/mgo/internal/yamlnode"
)

// ConfigFile is the name of the repo-wide configuration file.
const ConfigFile = "mygitops.yaml"

// Config is mygitops.yaml:
//
//	helm:
//	  repositories:
//	  - name: stable
//	    url: https://charts.example.com/stable
//	    username: ci-bot                 # or usernameEnv / usernameFile
//	    passwordEnv: STABLE_PASSWORD     # or passwordFile; tokenEnv / tokenFile for a bearer token
//	clusters:
//	  prod:
//	    sync: auto                       # auto (default) or manual
//	    drift: report                    # report (default) or repair
//	    timeout: 5m                      # rollout wait per release
//	    budget: {qps: 50, burst: 100, maxConcurrentReleases: 4}
//	    allowedImages:                   # optional: the only image repositories
//	      - registry.acme.io/acme/*      # headers may name (path.Match; /** = any depth)
//	    ignoreDifferences:               # optional: fields left as they live (IgnoreDifference)
//	      - {kind: Deployment, jsonPointers: [/spec/replicas]}
//
// Credentials are references to environment variables or files, never the
// secret itself: an inline password or token is an error, and so are
// credentials for a plain http:// repository. Which references mgo honours
// is the operator's CredentialPolicy. The original shape, helm.repositories
// with name and url only, is valid as it is.
type Config struct {
	Repositories []ChartRepository
	Clusters     map[string]ClusterSettings
	// Notifications are the receivers and routes of deploy, sync and
	// drift events (see Notifications).
	Notifications Notifications
	// Promotions are the promotion paths between clusters (promotion.go).
	Promotions []PromotionPath
}

// ChartRepository is a Helm chart repository charts are named after
// (`<name>/<chart>` in a release header).
type ChartRepository struct {
	Name string
	URL  string
	// Username is not a secret and may be inline; UsernameEnv/UsernameFile
	// read it from the environment or a file instead.
	Username, UsernameEnv, UsernameFile string
	PasswordEnv, PasswordFile           string
	TokenEnv, TokenFile                 string
	Line                                int
}

// Credentials are resolved chart repository credentials. They are never
// logged or printed.
type Credentials struct {
	Username, Password, Token string
}

// CredentialPolicy is what the operator of mgo allows credential
// references in mygitops.yaml to name: anyone who can merge to the gitops
// repo writes those references, so they must not reach mgo's own secrets
// (its service account token, its git credentials).
type CredentialPolicy struct {
	// Dir is the only directory whose files may be referenced ("" refuses
	// every file reference).
	Dir string
	// EnvPrefix is the prefix every referenced environment variable must
	// have ("" refuses every environment reference).
	EnvPrefix string
}

// DefaultCredentialPolicy allows environment variables named MGO_CHART_*
// and no files.
func DefaultCredentialPolicy() CredentialPolicy {
	return CredentialPolicy{EnvPrefix: "MGO_CHART_"}
}

// Credentials reads the repository's credentials from the environment or
// files they reference, as far as policy allows: environment variables only
// with policy.EnvPrefix, files only inside policy.Dir (a relative reference
// is relative to it; links are resolved before the check). Credentials for
// a plain http:// repository are refused: they would cross the network in
// clear text. Errors name the reference and the rule, never a value.
func (r ChartRepository) Credentials(policy CredentialPolicy) (Credentials, error) {
	var c Credentials
	if r.hasCredentials() && isPlainHTTP(r.URL) {
		return c, fmt.Errorf("chart repository %q: refusing to send credentials over plain http (%s); use an https:// URL", r.Name, r.URL)
	}
	var err error
	if c.Username, err = secretRef(policy, r.Username, r.UsernameEnv, r.UsernameFile); err != nil {
		return Credentials{}, fmt.Errorf("chart repository %q username: %w", r.Name, err)
	}
	if c.Password, err = secretRef(policy, "", r.PasswordEnv, r.PasswordFile); err != nil {
		return Credentials{}, fmt.Errorf("chart repository %q password: %w", r.Name, err)
	}
	if c.Token, err = secretRef(policy, "", r.TokenEnv, r.TokenFile); err != nil {
		return Credentials{}, fmt.Errorf("chart repository %q token: %w", r.Name, err)
	}
	return c, nil
}

func (r ChartRepository) hasCredentials() bool {
	return r.Username != "" || r.UsernameEnv != "" || r.UsernameFile != "" || r.PasswordEnv != "" ||
		r.PasswordFile != "" || r.TokenEnv != "" || r.TokenFile != ""
}

func isPlainHTTP(u string) bool {
	p, err := url.Parse(u)
	return err == nil && strings.EqualFold(p.Scheme, "http")
}

// maxCredentialFileSize bounds a credential file: a password or token.
const maxCredentialFileSize = 64 << 10

func secretRef(policy CredentialPolicy, inline, env, file string) (string, error) {
	switch {
	case env != "":
		if policy.EnvPrefix == "" {
			return "", fmt.Errorf("environment variable %s: refused, mgo is configured to allow no environment references", env)
		}
		if !strings.HasPrefix(env, policy.EnvPrefix) {
			return "", fmt.Errorf("environment variable %s: refused, only names starting with %s may be referenced", env, policy.EnvPrefix)
		}
		v, ok := os.LookupEnv(env)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", env)
		}
		return v, nil
	case file != "":
		p, err := policyFile(policy, file)
		if err != nil {
			return "", err
		}
		f, err := os.Open(p)
		if err != nil {
			return "", fmt.Errorf("file %s: %w", file, errors.Unwrap(err))
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxCredentialFileSize+1))
		if err != nil {
			return "", fmt.Errorf("file %s: reading failed", file)
		}
		if len(b) > maxCredentialFileSize {
			return "", fmt.Errorf("file %s: larger than %d bytes, not a credential", file, maxCredentialFileSize)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return inline, nil
}

// policyFile returns the real path of a credential file reference if it
// lies inside policy.Dir once cleaned and its links resolved.
func policyFile(policy CredentialPolicy, file string) (string, error) {
	if policy.Dir == "" {
		return "", fmt.Errorf("file %s: refused, mgo is configured to allow no credential files", file)
	}
	dir, err := filepath.Abs(policy.Dir)
	if err == nil {
		dir, err = filepath.EvalSymlinks(dir)
	}
	if err != nil {
		return "", fmt.Errorf("file %s: the credential directory %s is not usable: %w", file, policy.Dir, errors.Unwrap(err))
	}
	p := filepath.Clean(file)
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	if !within(dir, p) {
		return "", fmt.Errorf("file %s: refused, credential files must be inside %s", file, policy.Dir)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("file %s: %w", file, errors.Unwrap(err))
	}
	if !within(dir, real) {
		return "", fmt.Errorf("file %s: refused, it leads outside %s (a symbolic link)", file, policy.Dir)
	}
	fi, err := os.Stat(real)
	if err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("file %s: not a regular file", file)
	}
	return real, nil
}

// within reports whether clean absolute path p is inside directory dir.
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// Sync policies.
const (
	SyncAuto   = "auto"   // sync whenever the repository changes
	SyncManual = "manual" // sync only when asked
)

// Drift policies.
const (
	DriftReport = "report" // report live changes made behind mgo's back
	DriftRepair = "repair" // and undo them
)

// Failure policies: what a deploy whose rollout failed leaves behind.
const (
	FailureKeep   = "keep"   // the commit stays; the release stays failed
	FailureRevert = "revert" // mgo reverts the deploy's commit and syncs the release back
)

// ClusterSettings are the per-cluster settings of mygitops.yaml. The zero
// values are replaced by the defaults in DefaultClusterSettings.
type ClusterSettings struct {
	Sync    string
	Drift   string
	Timeout time.Duration
	Budget  Budget
	// OnFailure is the failure policy of the cluster's deploys
	// (FailureKeep or FailureRevert); a values header's overrides it.
	OnFailure string
	// AllowedImages, when not empty, lists the image repositories deploys
	// to this cluster may set (path.Match patterns such as
	// "registry.acme.io/acme/*").
	AllowedImages []string
	// IgnoreDifferences are drift ignore rules for every release of the
	// cluster, besides each release's own.
	IgnoreDifferences []IgnoreDifference
	// IgnoreInvalid is set when a rule of IgnoreDifferences has an error:
	// the releases of the cluster are then not synced (a sync without the
	// rule would revert what it leaves alone).
	IgnoreInvalid bool
	IgnoreLine    int // of the ignoreDifferences key
	// Health are health rules for every release of the cluster; a
	// release's rule for an apiVersion and kind replaces the cluster's.
	// HealthInvalid is set when one has an error: the releases are then
	// not synced (their waits would miss the rule).
	Health        []HealthRule
	HealthInvalid bool
	HealthLine    int // of the health key
	Line          int

	// Freezes are the deploy freeze windows (freezes) and what happens to
	// pushed changes during a freeze (syncDuringFreeze); see freeze.go.
	Freezes FreezePolicy
}

// ImageAllowed reports whether a deploy may set an image of repository
// imageRepo in this cluster. Patterns are path.Match patterns ('*' does
// not cross '/'); one ending in "/**" also matches every repository below
// its prefix. imageRepo matches as written and in its normalized forms
// (nginx, docker.io/library/nginx); a tag or digest on it is ignored.
func (s ClusterSettings) ImageAllowed(imageRepo string) bool {
	if len(s.AllowedImages) == 0 {
		return true
	}
	names := []string{imageRepo}
	if ref, err := reference.ParseNormalizedNamed(imageRepo); err == nil {
		ref = reference.TrimNamed(ref)
		names = append(names, ref.Name(), reference.FamiliarName(ref))
	}
	for _, pat := range s.AllowedImages {
		for _, name := range names {
			if imagePatternMatch(pat, name) {
				return true
			}
		}
	}
	return false
}

func imagePatternMatch(pat, name string) bool {
	if prefix, ok := strings.CutSuffix(pat, "/**"); ok {
		k := strings.Count(prefix, "/") + 1
		segs := strings.Split(name, "/")
		if len(segs) <= k {
			return false
		}
		m, _ := path.Match(prefix, strings.Join(segs[:k], "/"))
		return m
	}
	m, _ := path.Match(pat, name)
	return m
}

// checkImagePattern returns what is wrong with an allowedImages pattern,
// or "".
func checkImagePattern(pat string) string {
	switch {
	case pat == "":
		return "is empty"
	case strings.ContainsAny(pat, "@ \t"):
		return "must be an image repository pattern, without digest or spaces"
	case strings.Contains(path.Base(pat), ":"):
		return "must be an image repository pattern, without tag"
	}
	if _, err := path.Match(strings.TrimSuffix(pat, "/**"), ""); err != nil {
		return "is not a valid pattern (path.Match syntax: *, ?, [a-z])"
	}
	return ""
}

// Budget limits the load mgo puts on one cluster's API server.
type Budget struct {
	QPS                   float32
	Burst                 int
	MaxConcurrentReleases int
}

// DefaultBudgetCap is the largest budget mygitops.yaml may give a cluster
// unless the operator of mgo allows more (mgo serve --budget-max-*).
var DefaultBudgetCap = Budget{QPS: 200, Burst: 400, MaxConcurrentReleases: 16}

// Capped returns b with every field at most cap's (a zero field of cap
// caps nothing) and the names of the fields it lowered.
func (b Budget) Capped(cap Budget) (Budget, []string) {
	var lowered []string
	if cap.QPS > 0 && b.QPS > cap.QPS {
		b.QPS, lowered = cap.QPS, append(lowered, "qps")
	}
	if cap.Burst > 0 && b.Burst > cap.Burst {
		b.Burst, lowered = cap.Burst, append(lowered, "burst")
	}
	if cap.MaxConcurrentReleases > 0 && b.MaxConcurrentReleases > cap.MaxConcurrentReleases {
		b.MaxConcurrentReleases, lowered = cap.MaxConcurrentReleases, append(lowered, "maxConcurrentReleases")
	}
	return b, lowered
}

// DefaultClusterSettings are used for clusters mygitops.yaml does not
// mention, and fill in what it leaves out.
func DefaultClusterSettings() ClusterSettings {
	return ClusterSettings{
		Sync:      SyncAuto,
		Drift:     DriftReport,
		Timeout:   5 * time.Minute,
		Budget:    Budget{QPS: 50, Burst: 100, MaxConcurrentReleases: 4},
		OnFailure: FailureKeep,
	}
}

// Repository returns the chart repository with this name.
func (c *Config) Repository(name string) (ChartRepository, bool) {
	for _, r := range c.Repositories {
		if r.Name == name {
			return r, true
		}
	}
	return ChartRepository{}, false
}

// Cluster returns the settings of a cluster, defaults filled in.
func (c *Config) Cluster(name string) ClusterSettings {
	if s, ok := c.Clusters[name]; ok {
		return s
	}
	return DefaultClusterSettings()
}

// OnFailure is the failure policy of a release of cluster with header h:
// the header's onFailure, else the cluster's, else FailureKeep.
func (c *Config) OnFailure(cluster string, h Header) string {
	if h.OnFailure != "" {
		return h.OnFailure
	}
	if p := c.Cluster(cluster).OnFailure; p != "" {
		return p
	}
	return FailureKeep
}

// parseConfig reads mygitops.yaml. A missing file is an empty config.
func parseConfig(root string, ps *problems) *Config {
	cfg := &Config{Clusters: map[string]ClusterSettings{}}
	b, err := readRepoFile(root, ConfigFile, MaxValuesFileSize)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg
	}
	if err != nil {
		readProblem(ConfigFile, err, ps)
		return cfg
	}
	docs, err := yamlnode.Parse(b)
	if err != nil {
		yamlProblem(ConfigFile, "", err, ps)
		return cfg
	}
	if len(docs) == 0 || len(docs[0].Content) == 0 {
		return cfg
	}
	doc := docs[0]
	top, ok := yamlnode.Entries(doc.Content[0])
	if !ok {
		ps.errorf(ConfigFile, doc.Content[0].Line, "must be a mapping, not %s", yamlnode.KindName(doc.Content[0]))
		return cfg
	}
	for _, e := range top {
		switch e.Key {
		case "helm":
			parseHelm(e.Value, cfg, ps)
		case "clusters":
			parseClusters(e.Value, cfg, ps)
		case "notifications":
			parseNotifications(e.Value, cfg, ps)
		case "promotions":
			parsePromotions(e.Value, cfg, ps)
		default:
			ps.errorf(ConfigFile, e.KeyNode.Line, "unknown key %q (known: helm, clusters, notifications, promotions)", e.Key)
		}
	}
	return cfg
}

func parseHelm(n *yaml.Node, cfg *Config, ps *problems) {
	es, ok := yamlnode.Entries(n)
	if !ok {
		ps.errorf(ConfigFile, n.Line, "helm must be a mapping, not %s", yamlnode.KindName(n))
		return
	}
	for _, e := range es {
		if e.Key != "repositories" {
			ps.errorf(ConfigFile, e.KeyNode.Line, "helm: unknown key %q (known: repositories)", e.Key)
			continue
		}
		list := yamlnode.Resolve(e.Value)
		if list.Kind != yaml.SequenceNode {
			if list.Tag != "!!null" {
				ps.errorf(ConfigFile, list.Line, "helm.repositories must be a list, not %s", yamlnode.KindName(list))
			}
			continue
		}
		seen := map[string]int{}
		for i, item := range list.Content {
			// An invalid repository is still recorded (when it has a name), so
			// charts naming it get no second, misleading "unknown" error.
			r, _ := parseRepository(item, i, ps)
			if r.Name == "" {
				continue
			}
			if prev, dup := seen[r.Name]; dup {
				ps.errorf(ConfigFile, r.Line, "chart repository %q defined twice (first on line %d)", r.Name, prev)
				continue
			}
			seen[r.Name] = r.Line
			cfg.Repositories = append(cfg.Repositories, r)
		}
	}
}

// stringFields reads a list entry that must be a mapping of strings. It
// returns where, for messages, qualified with the entry's name; the
// entries whose values are strings; valid, false when any value was not a
// string (reported); and ok, false when n is not a mapping (reported).
func stringFields(n *yaml.Node, where string, ps *problems) (string, []yamlnode.Entry, bool, bool) {
	if name, _ := yamlnode.Scalar(yamlnode.Lookup(n, "name")); name != "" {
		where += " (" + name + ")"
	}
	es, ok := yamlnode.Entries(n)
	if !ok {
		ps.errorf(ConfigFile, n.Line, "%s must be a mapping, not %s", where, yamlnode.KindName(n))
		return where, nil, false, false
	}
	valid := true
	out := es[:0:0]
	for _, e := range es {
		if _, isScalar := yamlnode.Scalar(e.Value); !isScalar {
			ps.errorf(ConfigFile, e.Value.Line, "%s.%s must be a string, not %s", where, e.Key, yamlnode.KindName(e.Value))
			valid = false
			continue
		}
		out = append(out, e)
	}
	return where, out, valid, true
}

func parseRepository(n *yaml.Node, i int, ps *problems) (ChartRepository, bool) {
	r := ChartRepository{Line: n.Line}
	where, es, valid, ok := stringFields(n, fmt.Sprintf("helm.repositories[%d]", i), ps)
	if !ok {
		return r, false
	}
	for _, e := range es {
		v, _ := yamlnode.Scalar(e.Value)
		switch e.Key {
		case "name":
			r.Name = v
		case "url":
			r.URL = v
		case "username":
			r.Username = v
		case "usernameEnv":
			r.UsernameEnv = v
		case "usernameFile":
			r.UsernameFile = v
		case "passwordEnv":
			r.PasswordEnv = v
		case "passwordFile":
			r.PasswordFile = v
		case "tokenEnv":
			r.TokenEnv = v
		case "tokenFile":
			r.TokenFile = v
		case "password", "token":
			// Say where, never what: the value is a secret.
			ps.errorf(ConfigFile, e.KeyNode.Line, "%s.%s: credentials must not be written in the repository; reference them with %sEnv or %sFile", where, e.Key, e.Key, e.Key)
			valid = false
		default:
			ps.errorf(ConfigFile, e.KeyNode.Line, "%s: unknown key %q", where, e.Key)
			valid = false
		}
	}
	if r.Name == "" {
		ps.errorf(ConfigFile, n.Line, "%s: name is missing", where)
		valid = false
	} else if strings.ContainsAny(r.Name, "/: ") {
		ps.errorf(ConfigFile, n.Line, "%s: name %q must not contain '/', ':' or spaces", where, r.Name)
		valid = false
	}
	if r.URL == "" {
		ps.errorf(ConfigFile, n.Line, "%s: url is missing", where)
		valid = false
	} else if u, err := url.Parse(r.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "oci") || u.Host == "" {
		ps.errorf(ConfigFile, n.Line, "%s: url %q must be an http, https or oci URL with a host", where, r.URL)
		valid = false
	} else if u.Scheme == "http" && r.hasCredentials() {
		ps.errorf(ConfigFile, valueLine(n, "url", n.Line), "%s: credentials over plain http would cross the network in clear text; use an https:// URL or no credentials", where)
		valid = false
	}
	for _, pair := range [][3]string{
		{"username", r.UsernameEnv, r.UsernameFile},
		{"password", r.PasswordEnv, r.PasswordFile},
		{"token", r.TokenEnv, r.TokenFile},
	} {
		if pair[1] != "" && pair[2] != "" {
			ps.errorf(ConfigFile, n.Line, "%s: give %sEnv or %sFile, not both", where, pair[0], pair[0])
			valid = false
		}
	}
	if r.Username != "" && (r.UsernameEnv != "" || r.UsernameFile != "") {
		ps.errorf(ConfigFile, n.Line, "%s: give username, usernameEnv or usernameFile, not several", where)
		valid = false
	}
	return r, valid
}

func parseClusters(n *yaml.Node, cfg *Config, ps *problems) {
	es, ok := yamlnode.Entries(n)
	if !ok {
		if yamlnode.Resolve(n).Tag != "!!null" {
			ps.errorf(ConfigFile, n.Line, "clusters must be a mapping of cluster name to settings, not %s", yamlnode.KindName(n))
		}
		return
	}
	for _, c := range es {
		s := DefaultClusterSettings()
		s.Line = c.KeyNode.Line
		where := "clusters." + c.Key
		fields, ok := yamlnode.Entries(c.Value)
		if !ok {
			if yamlnode.Resolve(c.Value).Tag != "!!null" {
				ps.errorf(ConfigFile, c.Value.Line, "%s must be a mapping, not %s", where, yamlnode.KindName(c.Value))
			}
			cfg.Clusters[c.Key] = s
			continue
		}
		for _, f := range fields {
			switch f.Key {
			case "sync":
				v, _ := yamlnode.Scalar(f.Value)
				if v != SyncAuto && v != SyncManual {
					ps.errorf(ConfigFile, f.Value.Line, "%s.sync: %q is not a sync policy (auto or manual)", where, v)
					continue
				}
				s.Sync = v
			case "drift":
				v, _ := yamlnode.Scalar(f.Value)
				if v != DriftReport && v != DriftRepair {
					ps.errorf(ConfigFile, f.Value.Line, "%s.drift: %q is not a drift policy (report or repair)", where, v)
					continue
				}
				s.Drift = v
			case "onFailure":
				v, _ := yamlnode.Scalar(f.Value)
				if v != FailureKeep && v != FailureRevert {
					ps.errorf(ConfigFile, f.Value.Line, "%s.onFailure: %q is not a failure policy (keep or revert)", where, v)
					continue
				}
				s.OnFailure = v
			case "timeout":
				v, _ := yamlnode.Scalar(f.Value)
				d, err := time.ParseDuration(v)
				if err != nil || d <= 0 {
					ps.errorf(ConfigFile, f.Value.Line, "%s.timeout: %q is not a positive duration (e.g. 5m)", where, v)
					continue
				}
				s.Timeout = d
			case "budget":
				parseBudget(f.Value, where+".budget", &s.Budget, ps)
			case "allowedImages":
				s.AllowedImages = parseAllowedImages(f.Value, where+".allowedImages", ps)
			case "ignoreDifferences":
				var valid bool
				s.IgnoreDifferences, valid = parseIgnoreDifferences(ConfigFile, where+".ignoreDifferences", f.Value, ps)
				s.IgnoreInvalid = !valid
				s.IgnoreLine = f.KeyNode.Line
			case "health":
				var valid bool
				s.Health, valid = parseHealthRules(ConfigFile, where+".health", f.Value, ps)
				s.HealthInvalid, s.HealthLine = !valid, f.KeyNode.Line
			case "freezes":
				parseFreezes(f.Value, where+".freezes", &s.Freezes, ps)
			case "syncDuringFreeze":
				parseSyncDuringFreeze(f.Value, where+".syncDuringFreeze", &s.Freezes, ps)
			default:
				ps.errorf(ConfigFile, f.KeyNode.Line, "%s: unknown key %q (known: sync, drift, onFailure, timeout, budget, allowedImages, ignoreDifferences, health, freezes, syncDuringFreeze)", where, f.Key)
			}
		}
		cfg.Clusters[c.Key] = s
	}
}

// parseAllowedImages reads a list of image repository patterns. A list
// with an invalid pattern keeps its valid ones: it can only allow less.
func parseAllowedImages(n *yaml.Node, where string, ps *problems) []string {
	list := yamlnode.Resolve(n)
	if list == nil || yamlnode.IsNull(list) {
		return nil
	}
	if list.Kind != yaml.SequenceNode {
		ps.errorf(ConfigFile, n.Line, "%s must be a list of image repository patterns, not %s", where, yamlnode.KindName(n))
		return []string{""} // allow no image rather than every one
	}
	out := []string{}
	for i, item := range list.Content {
		v, ok := yamlnode.Scalar(item)
		if !ok || yamlnode.Resolve(item).Tag != "!!str" {
			ps.errorf(ConfigFile, item.Line, "%s[%d] must be a string, not %s", where, i, yamlnode.KindName(item))
			continue
		}
		if msg := checkImagePattern(v); msg != "" {
			ps.errorf(ConfigFile, item.Line, "%s[%d]: %q %s", where, i, v, msg)
			continue
		}
		out = append(out, v)
	}
	if len(out) == 0 && len(list.Content) > 0 {
		out = append(out, "") // only invalid patterns: allow nothing
	}
	return out
}

func parseBudget(n *yaml.Node, where string, b *Budget, ps *problems) {
	es, ok := yamlnode.Entries(n)
	if !ok {
		ps.errorf(ConfigFile, n.Line, "%s must be a mapping, not %s", where, yamlnode.KindName(n))
		return
	}
	for _, e := range es {
		v, _ := yamlnode.Scalar(e.Value)
		switch e.Key {
		case "qps":
			f, err := strconv.ParseFloat(v, 32)
			if err != nil || f <= 0 {
				ps.errorf(ConfigFile, e.Value.Line, "%s.qps: %q is not a positive number", where, v)
				continue
			}
			b.QPS = float32(f)
		case "burst", "maxConcurrentReleases":
			i, err := strconv.Atoi(v)
			if err != nil || i <= 0 {
				ps.errorf(ConfigFile, e.Value.Line, "%s.%s: %q is not a positive integer", where, e.Key, v)
				continue
			}
			if e.Key == "burst" {
				b.Burst = i
			} else {
				b.MaxConcurrentReleases = i
			}
		default:
			ps.errorf(ConfigFile, e.KeyNode.Line, "%s: unknown key %q (known: qps, burst, maxConcurrentReleases)", where, e.Key)
		}
	}
}
