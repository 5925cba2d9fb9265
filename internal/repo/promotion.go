package repo

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mygitops/mgo/internal/yamlnode"
)

// Promotion approvals: who lets a candidate go on to the next cluster.
const (
	ApprovalNone         = "none"          // mgo deploys to the next cluster itself
	ApprovalAPI          = "api"           // an approve call of a caller allowed on the next cluster
	ApprovalMergeRequest = "merge-request" // merging the merge request mgo opened
)

// What an unhealthy moment during a soak does (onUnhealthy).
const (
	UnhealthyRestart = "restart" // the soak starts again once healthy
	UnhealthyFail    = "fail"    // the candidate fails
)

// Bounds of a promotion path.
const (
	MaxPromotionStages = 10
	MaxPromotionChecks = 20
	MaxHealthyFor      = 7 * 24 * time.Hour
)

// PromotionPath is one entry of promotions in mygitops.yaml:
//
//	promotions:
//	  app:                                   # the path's name
//	    triggerRepos: [gitlab.com/acme/*]     # path.Match patterns; the deploys that flow along it
//	    stages:
//	    - cluster: staging                   # CI deploys here
//	    - cluster: prod                      # gates on staging, then the same image here
//	      healthyFor: 10m                    # rolled out and healthy this long (default 0)
//	      onUnhealthy: restart               # or fail (default restart)
//	      tests: true                        # the releases' Helm test hooks, after the soak
//	      testTimeout: 5m
//	      checks:                            # every check answers or stays in bound during the soak
//	      - {name: smoke, http: https://staging.acme.io/healthz}
//	      - {name: errors, prometheus: http://prometheus.monitoring:9090,
//	         query: 'sum(rate(http_requests_total{code=~"5.."}[5m]))', max: 0.5}
//	      checkInterval: 30s
//	      approval: none                     # none, api or merge-request
//	      mergeRequest:                      # with approval: merge-request
//	        forge: gitlab                    # or github
//	        url: https://gitlab.com          # the forge's API (github: https://api.github.com)
//	        project: acme/gitops             # the gitops repo there (owner/repo on GitHub)
//	        tokenEnv: MGO_CHART_FORGE_TOKEN  # or tokenFile, under the credential policy
//
// A candidate is the image a deploy set in one stage's cluster for a
// trigger repo of the path; once the next stage's gates pass on that
// cluster, mgo deploys exactly that image (tag and digest as deployed) to
// the next cluster.
type PromotionPath struct {
	Name         string
	TriggerRepos []string
	Stages       []PromotionStage
	Line         int
	// Invalid is set when the path has an error: nothing is promoted
	// along it until it is fixed.
	Invalid bool
}

// PromotionStage is one cluster of a path and its gates on the cluster
// before it (none for the first stage).
type PromotionStage struct {
	Cluster       string
	HealthyFor    time.Duration
	OnUnhealthy   string
	Tests         bool
	TestTimeout   time.Duration
	Checks        []PromotionCheck
	CheckInterval time.Duration
	Approval      string
	MergeRequest  *MergeRequestSettings
	Line          int
}

// PromotionCheck is an HTTP check (HTTP set: must answer 2xx) or a
// Prometheus query (Prometheus and Query set: every sample within Min and
// Max), run during the soak.
type PromotionCheck struct {
	Name       string
	HTTP       string
	Prometheus string
	Query      string
	Min, Max   *float64
	Line       int
}

// MergeRequestSettings say where mgo opens the merge request of a stage
// approved by merge request.
type MergeRequestSettings struct {
	Forge               string // gitlab or github
	URL                 string // the API base
	Project             string
	TokenEnv, TokenFile string
	Line                int
}

// Token resolves the forge token under policy (see ChartRepository.Credentials).
func (m MergeRequestSettings) Token(policy CredentialPolicy) (string, error) {
	t, err := secretRef(policy, "", m.TokenEnv, m.TokenFile)
	if err != nil {
		return "", fmt.Errorf("mergeRequest token: %w", err)
	}
	return t, nil
}

// Matches reports whether the path carries deploys of triggerRepo.
func (p PromotionPath) Matches(triggerRepo string) bool {
	for _, pat := range p.TriggerRepos {
		if ok, _ := path.Match(pat, triggerRepo); ok {
			return true
		}
	}
	return false
}

// StageOf returns the index of cluster in the path, or -1.
func (p PromotionPath) StageOf(cluster string) int {
	return slices.IndexFunc(p.Stages, func(s PromotionStage) bool { return s.Cluster == cluster })
}

// Next returns the stage after cluster for a deploy of triggerRepo: the
// path, the index of the next stage and true, when cluster is a stage of
// a valid path carrying triggerRepo that has a stage after it.
func (c *Config) Next(cluster, triggerRepo string) (*PromotionPath, int, bool) {
	for i := range c.Promotions {
		p := &c.Promotions[i]
		if p.Invalid || !p.Matches(triggerRepo) {
			continue
		}
		if k := p.StageOf(cluster); k >= 0 && k+1 < len(p.Stages) {
			return p, k + 1, true
		}
	}
	return nil, 0, false
}

// Promotion returns the path of this name.
func (c *Config) Promotion(name string) (*PromotionPath, bool) {
	for i := range c.Promotions {
		if c.Promotions[i].Name == name {
			return &c.Promotions[i], true
		}
	}
	return nil, false
}

func parsePromotions(n *yaml.Node, cfg *Config, ps *problems) {
	es, ok := yamlnode.Entries(n)
	if !ok {
		if !yamlnode.IsNull(yamlnode.Resolve(n)) {
			ps.errorf(ConfigFile, n.Line, "promotions must be a mapping of path name to path, not %s", yamlnode.KindName(n))
		}
		return
	}
	// A cluster takes a trigger repo's deploys onwards along one path only.
	for _, e := range es {
		p := parsePromotionPath(e.Key, e.KeyNode.Line, e.Value, ps)
		cfg.Promotions = append(cfg.Promotions, p)
	}
	for i := range cfg.Promotions {
		a := &cfg.Promotions[i]
		for j := range i {
			b := &cfg.Promotions[j]
			for _, sa := range a.Stages[:max(len(a.Stages)-1, 0)] {
				if k := b.StageOf(sa.Cluster); k >= 0 && k+1 < len(b.Stages) && overlaps(a.TriggerRepos, b.TriggerRepos) {
					ps.errorf(ConfigFile, a.Line, "promotions.%s: cluster %s promotes the same trigger repos as path %s (line %d): a deploy there would go two ways",
						a.Name, sa.Cluster, b.Name, b.Line)
					a.Invalid = true
				}
			}
		}
	}
}

// overlaps reports whether two lists of patterns may match one repo: a
// pattern of one matches the other's pattern as written, or they are equal.
func overlaps(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			mx, _ := path.Match(x, y)
			my, _ := path.Match(y, x)
			if x == y || mx || my {
				return true
			}
		}
	}
	return false
}

// pathName and clusterNamePattern are what a path's and a stage's names may be.
var (
	pathName           = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	clusterNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,252}$`)
)

func parsePromotionPath(name string, line int, n *yaml.Node, ps *problems) PromotionPath {
	p := PromotionPath{Name: name, Line: line}
	where := "promotions." + name
	bad := func(l int, format string, args ...any) {
		ps.errorf(ConfigFile, l, where+": "+format, args...)
		p.Invalid = true
	}
	if !pathName.MatchString(name) {
		bad(line, "the path name must be letters, digits, '.', '_' or '-'")
	}
	es, ok := yamlnode.Entries(n)
	if !ok {
		bad(n.Line, "must be a mapping with triggerRepos and stages, not %s", yamlnode.KindName(n))
		return p
	}
	for _, e := range es {
		switch e.Key {
		case "triggerRepos":
			p.TriggerRepos = parseFreezeRepos(e.Value, where+".triggerRepos", func(l int, f string, a ...any) {
				ps.errorf(ConfigFile, l, f, a...)
				p.Invalid = true
			})
		case "stages":
			items := listItems(e.Value, where+".stages", ps)
			if len(items) > MaxPromotionStages {
				bad(e.Value.Line, "at most %d stages", MaxPromotionStages)
				items = items[:MaxPromotionStages]
			}
			for i, item := range items {
				s, ok := parsePromotionStage(item, fmt.Sprintf("%s.stages[%d]", where, i), i, ps)
				if !ok {
					p.Invalid = true
				}
				if s.Cluster != "" && p.StageOf(s.Cluster) >= 0 {
					bad(item.Line, "cluster %s is a stage twice", s.Cluster)
				}
				p.Stages = append(p.Stages, s)
			}
		default:
			bad(e.KeyNode.Line, "unknown key %q (known: triggerRepos, stages)", e.Key)
		}
	}
	if len(p.TriggerRepos) == 0 {
		bad(line, "triggerRepos is required (the trigger repos whose deploys flow along the path)")
	}
	if len(p.Stages) < 2 {
		bad(line, "at least two stages are required (a cluster deploys go to, and the next one)")
	}
	return p
}

func parsePromotionStage(n *yaml.Node, where string, index int, ps *problems) (PromotionStage, bool) {
	s := PromotionStage{Line: n.Line, OnUnhealthy: UnhealthyRestart, Approval: ApprovalNone,
		TestTimeout: 5 * time.Minute, CheckInterval: 30 * time.Second}
	valid := true
	bad := func(l int, format string, args ...any) {
		ps.errorf(ConfigFile, l, where+": "+format, args...)
		valid = false
	}
	es, ok := yamlnode.Entries(n)
	if !ok {
		bad(n.Line, "must be a mapping with a cluster, not %s", yamlnode.KindName(n))
		return s, false
	}
	duration := func(e yamlnode.Entry, max time.Duration) (time.Duration, bool) {
		v, _ := yamlnode.Scalar(e.Value)
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > max {
			bad(e.Value.Line, "%s: %q is not a duration between 0 and %s (e.g. 10m)", e.Key, v, max)
			return 0, false
		}
		return d, true
	}
	gates := false
	for _, e := range es {
		v, _ := yamlnode.Scalar(e.Value)
		switch e.Key {
		case "cluster":
			if !clusterNamePattern.MatchString(v) {
				bad(e.Value.Line, "cluster: %q is not a cluster name", v)
				continue
			}
			s.Cluster = v
			continue
		case "healthyFor":
			s.HealthyFor, _ = duration(e, MaxHealthyFor)
		case "onUnhealthy":
			if v != UnhealthyRestart && v != UnhealthyFail {
				bad(e.Value.Line, "onUnhealthy: %q is not restart or fail", v)
			}
			s.OnUnhealthy = v
		case "tests":
			b, err := strconv.ParseBool(v)
			if err != nil || yamlnode.Resolve(e.Value).Kind != yaml.ScalarNode {
				bad(e.Value.Line, "tests: %q is not true or false", v)
			}
			s.Tests = b
		case "testTimeout":
			if d, ok := duration(e, 24*time.Hour); ok && d > 0 {
				s.TestTimeout = d
			}
		case "checkInterval":
			if d, ok := duration(e, time.Hour); ok {
				if d < time.Second {
					bad(e.Value.Line, "checkInterval: at least 1s")
				} else {
					s.CheckInterval = d
				}
			}
		case "checks":
			items := listItems(e.Value, where+".checks", ps)
			if len(items) > MaxPromotionChecks {
				bad(e.Value.Line, "checks: at most %d", MaxPromotionChecks)
				items = items[:MaxPromotionChecks]
			}
			for i, item := range items {
				c, ok := parsePromotionCheck(item, fmt.Sprintf("%s.checks[%d]", where, i), ps)
				valid = valid && ok
				s.Checks = append(s.Checks, c)
			}
		case "approval":
			if v != ApprovalNone && v != ApprovalAPI && v != ApprovalMergeRequest {
				bad(e.Value.Line, "approval: %q is not none, api or merge-request", v)
			}
			s.Approval = v
		case "mergeRequest":
			m, ok := parseMergeRequest(e.Value, where+".mergeRequest", ps)
			valid = valid && ok
			s.MergeRequest = &m
		default:
			bad(e.KeyNode.Line, "unknown key %q (known: cluster, healthyFor, onUnhealthy, tests, testTimeout, checks, checkInterval, approval, mergeRequest)", e.Key)
			continue
		}
		gates = true
	}
	if s.Cluster == "" {
		bad(n.Line, "cluster is required")
	}
	if index == 0 && gates {
		bad(n.Line, "the first stage has no stage before it: gates and approval belong to the stages after it")
	}
	if s.Approval == ApprovalMergeRequest && s.MergeRequest == nil {
		bad(n.Line, "approval merge-request needs mergeRequest (forge, url, project, tokenEnv or tokenFile)")
	}
	if s.Approval != ApprovalMergeRequest && s.MergeRequest != nil {
		bad(s.MergeRequest.Line, "mergeRequest is for approval: merge-request")
	}
	return s, valid
}

func parsePromotionCheck(n *yaml.Node, where string, ps *problems) (PromotionCheck, bool) {
	c := PromotionCheck{Line: n.Line}
	valid := true
	bad := func(l int, format string, args ...any) {
		ps.errorf(ConfigFile, l, where+": "+format, args...)
		valid = false
	}
	es, ok := yamlnode.Entries(n)
	if !ok {
		bad(n.Line, "must be a mapping (name and http, or name, prometheus and query), not %s", yamlnode.KindName(n))
		return c, false
	}
	number := func(e yamlnode.Entry) *float64 {
		v, _ := yamlnode.Scalar(e.Value)
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			bad(e.Value.Line, "%s: %q is not a number", e.Key, v)
			return nil
		}
		return &f
	}
	for _, e := range es {
		v, _ := yamlnode.Scalar(e.Value)
		switch e.Key {
		case "name":
			c.Name = v
		case "http":
			c.HTTP = v
		case "prometheus":
			c.Prometheus = v
		case "query":
			c.Query = v
		case "min":
			c.Min = number(e)
		case "max":
			c.Max = number(e)
		default:
			bad(e.KeyNode.Line, "unknown key %q (known: name, http, prometheus, query, min, max)", e.Key)
		}
	}
	if c.Name == "" {
		bad(n.Line, "name is required")
	}
	for _, u := range []struct{ key, v string }{{"http", c.HTTP}, {"prometheus", c.Prometheus}} {
		if u.v == "" {
			continue
		}
		p, err := url.Parse(u.v)
		switch {
		case err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "":
			bad(n.Line, "%s: %q must be an http or https URL with a host", u.key, u.v)
		case p.User != nil:
			bad(n.Line, "%s: the URL must not carry credentials", u.key)
		}
	}
	switch {
	case c.HTTP != "" && c.Prometheus != "":
		bad(n.Line, "give http or prometheus, not both")
	case c.HTTP == "" && c.Prometheus == "":
		bad(n.Line, "http or prometheus is required")
	case c.Prometheus != "" && strings.TrimSpace(c.Query) == "":
		bad(n.Line, "query is required with prometheus")
	case c.Prometheus != "" && c.Min == nil && c.Max == nil:
		bad(n.Line, "min, max or both are required with prometheus")
	case c.Min != nil && c.Max != nil && *c.Min > *c.Max:
		bad(n.Line, "min is greater than max")
	case c.HTTP != "" && (c.Query != "" || c.Min != nil || c.Max != nil):
		bad(n.Line, "query, min and max are for prometheus checks")
	}
	return c, valid
}

func parseMergeRequest(n *yaml.Node, where string, ps *problems) (MergeRequestSettings, bool) {
	m := MergeRequestSettings{Line: n.Line}
	valid := true
	bad := func(l int, format string, args ...any) {
		ps.errorf(ConfigFile, l, where+": "+format, args...)
		valid = false
	}
	es, ok := yamlnode.Entries(n)
	if !ok {
		bad(n.Line, "must be a mapping, not %s", yamlnode.KindName(n))
		return m, false
	}
	for _, e := range es {
		v, _ := yamlnode.Scalar(e.Value)
		switch e.Key {
		case "forge":
			m.Forge = v
		case "url":
			m.URL = v
		case "project":
			m.Project = v
		case "tokenEnv":
			m.TokenEnv = v
		case "tokenFile":
			m.TokenFile = v
		case "token":
			bad(e.KeyNode.Line, "token: secrets must not be written in the repository; reference it with tokenEnv or tokenFile")
		default:
			bad(e.KeyNode.Line, "unknown key %q (known: forge, url, project, tokenEnv, tokenFile)", e.Key)
		}
	}
	switch m.Forge {
	case ReceiverGitLab:
		if m.URL == "" {
			m.URL = "https://gitlab.com"
		}
	case ReceiverGitHub:
		if m.URL == "" {
			m.URL = "https://api.github.com"
		}
	default:
		bad(n.Line, "forge: %q is not gitlab or github", m.Forge)
	}
	if u, err := url.Parse(m.URL); m.URL != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil) {
		bad(n.Line, "url: %q must be an http or https URL with a host and no credentials", m.URL)
	}
	if m.Project == "" || strings.Contains(m.Project, "..") || strings.HasPrefix(m.Project, "/") {
		bad(n.Line, "project: %q must be a project path such as acme/gitops", m.Project)
	}
	if (m.TokenEnv == "") == (m.TokenFile == "") {
		bad(n.Line, "give tokenEnv or tokenFile (one of them)")
	}
	return m, valid
}
