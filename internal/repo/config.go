package repo

import (
	"fmt"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
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
//
// Credentials are references to environment variables or files, never the
// secret itself: an inline password or token is an error. The original
// shape, helm.repositories with name and url only, is valid as it is.
type Config struct {
	Repositories []ChartRepository
	Clusters     map[string]ClusterSettings
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
// files they reference, as far as policy allows. A reference to an unset
// variable or unreadable file is an error naming the reference (not the
// value).
func (r ChartRepository) Credentials(policy CredentialPolicy) (Credentials, error) {
	var c Credentials
	var err error
	if c.Username, err = secretRef(r.Username, r.UsernameEnv, r.UsernameFile); err != nil {
		return c, fmt.Errorf("chart repository %q username: %w", r.Name, err)
	}
	if c.Password, err = secretRef("", r.PasswordEnv, r.PasswordFile); err != nil {
		return c, fmt.Errorf("chart repository %q password: %w", r.Name, err)
	}
	if c.Token, err = secretRef("", r.TokenEnv, r.TokenFile); err != nil {
		return c, fmt.Errorf("chart repository %q token: %w", r.Name, err)
	}
	return c, nil
}

func secretRef(inline, env, file string) (string, error) {
	switch {
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", env)
		}
		return v, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", file, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return inline, nil
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

// ClusterSettings are the per-cluster settings of mygitops.yaml. The zero
// values are replaced by the defaults in DefaultClusterSettings.
type ClusterSettings struct {
	Sync    string
	Drift   string
	Timeout time.Duration
	Budget  Budget
	// AllowedImages, when not empty, lists the image repositories deploys
	// to this cluster may set (path.Match patterns such as
	// "registry.acme.io/acme/*").
	AllowedImages []string
	Line          int
}

// ImageAllowed reports whether a deploy may set an image of repository
// imageRepo in this cluster.
func (s ClusterSettings) ImageAllowed(imageRepo string) bool {
	if len(s.AllowedImages) == 0 {
		return true
	}
	for _, pat := range s.AllowedImages {
		if ok, _ := path.Match(pat, imageRepo); ok {
			return true
		}
	}
	return false
}

// Budget limits the load mgo puts on one cluster's API server.
type Budget struct {
	QPS                   float32
	Burst                 int
	MaxConcurrentReleases int
}

// DefaultClusterSettings are used for clusters mygitops.yaml does not
// mention, and fill in what it leaves out.
func DefaultClusterSettings() ClusterSettings {
	return ClusterSettings{
		Sync:    SyncAuto,
		Drift:   DriftReport,
		Timeout: 5 * time.Minute,
		Budget:  Budget{QPS: 50, Burst: 100, MaxConcurrentReleases: 4},
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

// parseConfig reads mygitops.yaml. A missing file is an empty config.
func parseConfig(root string, ps *problems) *Config {
	cfg := &Config{Clusters: map[string]ClusterSettings{}}
	b, err := os.ReadFile(root + "/" + ConfigFile)
	if os.IsNotExist(err) {
		return cfg
	}
	if err != nil {
		ps.errorf(ConfigFile, 0, "cannot read: %v", err)
		return cfg
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		ps.errorf(ConfigFile, yamlErrorLine(err), "invalid YAML: %v", err)
		return cfg
	}
	if len(doc.Content) == 0 {
		return cfg
	}
	top, ok := entries(doc.Content[0])
	if !ok {
		ps.errorf(ConfigFile, doc.Content[0].Line, "must be a mapping, not %s", kindName(doc.Content[0]))
		return cfg
	}
	for _, e := range top {
		switch e.Key {
		case "helm":
			parseHelm(e.Value, cfg, ps)
		case "clusters":
			parseClusters(e.Value, cfg, ps)
		default:
			ps.errorf(ConfigFile, e.KeyN.Line, "unknown key %q (known: helm, clusters)", e.Key)
		}
	}
	return cfg
}

func parseHelm(n *yaml.Node, cfg *Config, ps *problems) {
	es, ok := entries(n)
	if !ok {
		ps.errorf(ConfigFile, n.Line, "helm must be a mapping, not %s", kindName(n))
		return
	}
	for _, e := range es {
		if e.Key != "repositories" {
			ps.errorf(ConfigFile, e.KeyN.Line, "helm: unknown key %q (known: repositories)", e.Key)
			continue
		}
		list := resolve(e.Value)
		if list.Kind != yaml.SequenceNode {
			if list.Tag != "!!null" {
				ps.errorf(ConfigFile, list.Line, "helm.repositories must be a list, not %s", kindName(list))
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

func parseRepository(n *yaml.Node, i int, ps *problems) (ChartRepository, bool) {
	r := ChartRepository{Line: n.Line}
	where := fmt.Sprintf("helm.repositories[%d]", i)
	if name, _ := scalar(lookup(n, "name")); name != "" {
		where += " (" + name + ")"
	}
	es, ok := entries(n)
	if !ok {
		ps.errorf(ConfigFile, n.Line, "%s must be a mapping, not %s", where, kindName(n))
		return r, false
	}
	valid := true
	for _, e := range es {
		v, isScalar := scalar(e.Value)
		if !isScalar {
			ps.errorf(ConfigFile, e.Value.Line, "%s.%s must be a string, not %s", where, e.Key, kindName(e.Value))
			valid = false
			continue
		}
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
			ps.errorf(ConfigFile, e.KeyN.Line, "%s.%s: credentials must not be written in the repository; reference them with %sEnv or %sFile", where, e.Key, e.Key, e.Key)
			valid = false
		default:
			ps.errorf(ConfigFile, e.KeyN.Line, "%s: unknown key %q", where, e.Key)
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
	es, ok := entries(n)
	if !ok {
		if resolve(n).Tag != "!!null" {
			ps.errorf(ConfigFile, n.Line, "clusters must be a mapping of cluster name to settings, not %s", kindName(n))
		}
		return
	}
	for _, c := range es {
		s := DefaultClusterSettings()
		s.Line = c.KeyN.Line
		where := "clusters." + c.Key
		fields, ok := entries(c.Value)
		if !ok {
			if resolve(c.Value).Tag != "!!null" {
				ps.errorf(ConfigFile, c.Value.Line, "%s must be a mapping, not %s", where, kindName(c.Value))
			}
			cfg.Clusters[c.Key] = s
			continue
		}
		for _, f := range fields {
			switch f.Key {
			case "sync":
				v, _ := scalar(f.Value)
				if v != SyncAuto && v != SyncManual {
					ps.errorf(ConfigFile, f.Value.Line, "%s.sync: %q is not a sync policy (auto or manual)", where, v)
					continue
				}
				s.Sync = v
			case "drift":
				v, _ := scalar(f.Value)
				if v != DriftReport && v != DriftRepair {
					ps.errorf(ConfigFile, f.Value.Line, "%s.drift: %q is not a drift policy (report or repair)", where, v)
					continue
				}
				s.Drift = v
			case "timeout":
				v, _ := scalar(f.Value)
				d, err := time.ParseDuration(v)
				if err != nil || d <= 0 {
					ps.errorf(ConfigFile, f.Value.Line, "%s.timeout: %q is not a positive duration (e.g. 5m)", where, v)
					continue
				}
				s.Timeout = d
			case "budget":
				parseBudget(f.Value, where+".budget", &s.Budget, ps)
			default:
				ps.errorf(ConfigFile, f.KeyN.Line, "%s: unknown key %q (known: sync, drift, timeout, budget)", where, f.Key)
			}
		}
		cfg.Clusters[c.Key] = s
	}
}

func parseBudget(n *yaml.Node, where string, b *Budget, ps *problems) {
	es, ok := entries(n)
	if !ok {
		ps.errorf(ConfigFile, n.Line, "%s must be a mapping, not %s", where, kindName(n))
		return
	}
	for _, e := range es {
		v, _ := scalar(e.Value)
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
			ps.errorf(ConfigFile, e.KeyN.Line, "%s: unknown key %q (known: qps, burst, maxConcurrentReleases)", where, e.Key)
		}
	}
}
