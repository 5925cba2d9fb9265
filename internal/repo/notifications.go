package repo

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/mygitops/mgo/internal/yamlnode"
)

// Receiver types.
const (
	ReceiverSlack   = "slack"   // Slack incoming webhook (Block Kit message)
	ReceiverWebhook = "webhook" // generic JSON webhook, HMAC-SHA256 signed
	ReceiverGitLab  = "gitlab"  // commit status on the source commit
	ReceiverGitHub  = "github"  // deployment and deployment status on the source commit
	// ReceiverShoutrrr sends through a shoutrrr service URL (teams://,
	// discord://, mattermost://, googlechat://, telegram://, ...); the URL
	// carries the service's token, so it is a secret.
	ReceiverShoutrrr = "shoutrrr"
)

// receiverTypes are the known receiver types, in the order errors list them.
var receiverTypes = []string{ReceiverSlack, ReceiverWebhook, ReceiverGitLab, ReceiverGitHub, ReceiverShoutrrr}

// The event types of notifications (internal/notify names them after
// these, so a route and an event always agree).
const (
	EventDeployStarted     = "deploy.started"
	EventDeploySucceeded   = "deploy.succeeded"
	EventDeployFailed      = "deploy.failed"
	EventRollbackSucceeded = "rollback.succeeded"
	EventRollbackFailed    = "rollback.failed"
	EventSyncSucceeded     = "sync.succeeded"
	EventSyncFailed        = "sync.failed"
	EventDriftDetected     = "drift.detected"
	EventDriftRepaired     = "drift.repaired"
	// Promotion between clusters: a candidate's gates began, it waits for
	// an approval (the merge request's link in the event), it was
	// promoted, it failed (the gate and its evidence).
	EventPromotionStarted   = "promotion.started"
	EventPromotionApproval  = "promotion.approval"
	EventPromotionSucceeded = "promotion.succeeded"
	EventPromotionFailed    = "promotion.failed"
)

// Event types a route may select.
var EventTypes = []string{
	EventDeployStarted, EventDeploySucceeded, EventDeployFailed,
	EventRollbackSucceeded, EventRollbackFailed,
	EventSyncSucceeded, EventSyncFailed,
	EventDriftDetected, EventDriftRepaired,
	EventPromotionStarted, EventPromotionApproval, EventPromotionSucceeded, EventPromotionFailed,
}

// Notifications is the notifications section of mygitops.yaml:
//
//	notifications:
//	  receivers:
//	  - name: team-chat
//	    type: slack                      # slack, webhook, gitlab, github or shoutrrr
//	    urlEnv: MGO_CHART_SLACK_URL      # the webhook URL is a secret: urlEnv or urlFile
//	  - name: audit
//	    type: webhook
//	    url: https://hooks.acme.io/mgo   # not a secret; the signing key is
//	    secretEnv: MGO_CHART_HOOK_SECRET
//	  - name: gitlab
//	    type: gitlab
//	    url: https://gitlab.acme.io      # default https://gitlab.com (github: https://api.github.com)
//	    tokenEnv: MGO_CHART_GITLAB_TOKEN
//	  routes:
//	  - clusters: [prod]                 # default: every cluster
//	    events: [deploy.failed]          # default: every event
//	    receivers: [team-chat, gitlab]
//
// Secrets are references under the same CredentialPolicy as chart
// repository credentials.
type Notifications struct {
	Receivers []Receiver
	Routes    []Route
}

// Receiver is one place notifications go to.
type Receiver struct {
	Name, Type string
	// URL is the endpoint (webhook) or API base (gitlab, github); a Slack
	// webhook URL is a secret and comes from URLEnv or URLFile.
	URL, URLEnv, URLFile string
	// SecretEnv/SecretFile: the HMAC key of a generic webhook.
	SecretEnv, SecretFile string
	// TokenEnv/TokenFile: the API token of a forge.
	TokenEnv, TokenFile string
	Line                int
}

// ReceiverSecrets are a receiver's resolved secrets. They are never
// logged or printed.
type ReceiverSecrets struct {
	URL, Secret, Token string
}

// Secrets resolves the receiver's URL and secrets as far as policy allows
// (see ChartRepository.Credentials). Errors name the reference and the
// rule, never a value. A token is refused for a plain http:// API.
func (r Receiver) Secrets(policy CredentialPolicy) (ReceiverSecrets, error) {
	var s ReceiverSecrets
	var err error
	if s.URL, err = secretRef(policy, r.URL, r.URLEnv, r.URLFile); err != nil {
		return ReceiverSecrets{}, fmt.Errorf("receiver %q url: %w", r.Name, err)
	}
	if s.URL == "" {
		s.URL = r.defaultURL()
	}
	if s.Secret, err = secretRef(policy, "", r.SecretEnv, r.SecretFile); err != nil {
		return ReceiverSecrets{}, fmt.Errorf("receiver %q secret: %w", r.Name, err)
	}
	if s.Token, err = secretRef(policy, "", r.TokenEnv, r.TokenFile); err != nil {
		return ReceiverSecrets{}, fmt.Errorf("receiver %q token: %w", r.Name, err)
	}
	if s.Token != "" && isPlainHTTP(s.URL) {
		return ReceiverSecrets{}, fmt.Errorf("receiver %q: refusing to send a token over plain http; use an https:// URL", r.Name)
	}
	return s, nil
}

// StaticURL is the receiver's URL when the repository states it (written
// inline, or an API's default base), "" when it comes from URLEnv or
// URLFile and is known only to mgo serve.
func (r Receiver) StaticURL() string {
	if r.URLEnv != "" || r.URLFile != "" {
		return ""
	}
	if r.URL != "" {
		return r.URL
	}
	return r.defaultURL()
}

func (r Receiver) defaultURL() string {
	switch r.Type {
	case ReceiverGitLab:
		return "https://gitlab.com"
	case ReceiverGitHub:
		return "https://api.github.com"
	}
	return ""
}

// Route sends the events of some clusters to receivers.
type Route struct {
	// Clusters and Events select; empty means every one.
	Clusters, Events []string
	Receivers        []string
	Line             int
}

// Matches reports whether the route selects an event of this type in
// this cluster.
func (r Route) Matches(cluster, event string) bool {
	return (len(r.Clusters) == 0 || slices.Contains(r.Clusters, cluster)) &&
		(len(r.Events) == 0 || slices.Contains(r.Events, event))
}

// ReceiversFor returns the receivers of every route matching an event of
// this type in this cluster, each once, in the order they are defined.
func (n Notifications) ReceiversFor(cluster, event string) []Receiver {
	want := map[string]bool{}
	for _, r := range n.Routes {
		if r.Matches(cluster, event) {
			for _, name := range r.Receivers {
				want[name] = true
			}
		}
	}
	var out []Receiver
	for _, r := range n.Receivers {
		if want[r.Name] {
			out = append(out, r)
		}
	}
	return out
}

func parseNotifications(n *yaml.Node, cfg *Config, ps *problems) {
	es, ok := yamlnode.Entries(n)
	if !ok {
		if !yamlnode.IsNull(yamlnode.Resolve(n)) {
			ps.errorf(ConfigFile, n.Line, "notifications must be a mapping, not %s", yamlnode.KindName(n))
		}
		return
	}
	known := map[string]int{}
	for _, e := range es {
		switch e.Key {
		case "receivers":
			for i, item := range listItems(e.Value, "notifications.receivers", ps) {
				r, ok := parseReceiver(item, i, ps)
				if r.Name == "" {
					continue
				}
				if prev, dup := known[r.Name]; dup {
					ps.errorf(ConfigFile, r.Line, "receiver %q defined twice (first on line %d)", r.Name, prev)
					continue
				}
				known[r.Name] = r.Line
				if ok {
					cfg.Notifications.Receivers = append(cfg.Notifications.Receivers, r)
				}
			}
		case "routes":
			for i, item := range listItems(e.Value, "notifications.routes", ps) {
				cfg.Notifications.Routes = append(cfg.Notifications.Routes, parseRoute(item, i, ps))
			}
		default:
			ps.errorf(ConfigFile, e.KeyNode.Line, "notifications: unknown key %q (known: receivers, routes)", e.Key)
		}
	}
	for _, r := range cfg.Notifications.Routes {
		for _, name := range r.Receivers {
			if _, ok := known[name]; !ok {
				ps.errorf(ConfigFile, r.Line, "notifications.routes: receiver %q is not defined in notifications.receivers", name)
			}
		}
	}
}

func listItems(n *yaml.Node, where string, ps *problems) []*yaml.Node {
	list := yamlnode.Resolve(n)
	if list.Kind != yaml.SequenceNode {
		if !yamlnode.IsNull(list) {
			ps.errorf(ConfigFile, list.Line, "%s must be a list, not %s", where, yamlnode.KindName(list))
		}
		return nil
	}
	return list.Content
}

func parseReceiver(n *yaml.Node, i int, ps *problems) (Receiver, bool) {
	r := Receiver{Line: n.Line}
	where, es, valid, ok := stringFields(n, fmt.Sprintf("notifications.receivers[%d]", i), ps)
	if !ok {
		return r, false
	}
	for _, e := range es {
		v, _ := yamlnode.Scalar(e.Value)
		switch e.Key {
		case "name":
			r.Name = v
		case "type":
			r.Type = v
		case "url":
			r.URL = v
		case "urlEnv":
			r.URLEnv = v
		case "urlFile":
			r.URLFile = v
		case "secretEnv":
			r.SecretEnv = v
		case "secretFile":
			r.SecretFile = v
		case "tokenEnv":
			r.TokenEnv = v
		case "tokenFile":
			r.TokenFile = v
		case "secret", "token":
			// Say where, never what: the value is a secret.
			ps.errorf(ConfigFile, e.KeyNode.Line, "%s.%s: secrets must not be written in the repository; reference them with %sEnv or %sFile", where, e.Key, e.Key, e.Key)
			valid = false
		default:
			ps.errorf(ConfigFile, e.KeyNode.Line, "%s: unknown key %q", where, e.Key)
			valid = false
		}
	}
	fail := func(format string, args ...any) {
		ps.errorf(ConfigFile, n.Line, where+": "+format, args...)
		valid = false
	}
	if r.Name == "" {
		fail("name is missing")
	}
	if !slices.Contains(receiverTypes, r.Type) {
		fail("type %q is not a receiver type (%s)", r.Type, strings.Join(receiverTypes, ", "))
	}
	for _, pair := range [][3]string{{"url", r.URLEnv, r.URLFile}, {"secret", r.SecretEnv, r.SecretFile}, {"token", r.TokenEnv, r.TokenFile}} {
		if pair[1] != "" && pair[2] != "" {
			fail("give %sEnv or %sFile, not both", pair[0], pair[0])
		}
	}
	if r.URL != "" && (r.URLEnv != "" || r.URLFile != "") {
		fail("give url, urlEnv or urlFile, not several")
	}
	hasURL := r.URL != "" || r.URLEnv != "" || r.URLFile != ""
	hasToken := r.TokenEnv != "" || r.TokenFile != ""
	hasSecret := r.SecretEnv != "" || r.SecretFile != ""
	switch r.Type {
	case ReceiverSlack, ReceiverShoutrrr:
		if r.URL != "" {
			// The URL itself is the credential: never echo it.
			what := map[string]string{ReceiverSlack: "a Slack webhook URL", ReceiverShoutrrr: "a shoutrrr service URL"}[r.Type]
			fail("url: %s is a secret; reference it with urlEnv or urlFile", what)
		} else if !hasURL {
			fail("urlEnv or urlFile is required")
		}
	case ReceiverWebhook:
		if !hasURL {
			fail("url, urlEnv or urlFile is required")
		}
	case ReceiverGitLab, ReceiverGitHub:
		if !hasToken {
			fail("tokenEnv or tokenFile is required")
		}
	}
	if hasSecret && r.Type != ReceiverWebhook {
		fail("secretEnv/secretFile are for type webhook only")
	}
	if hasToken && r.Type != ReceiverGitLab && r.Type != ReceiverGitHub {
		fail("tokenEnv/tokenFile are for types gitlab and github only")
	}
	if r.URL != "" && r.Type != ReceiverSlack && r.Type != ReceiverShoutrrr { // those URLs are secrets: refused above, never echoed
		u, err := url.Parse(r.URL)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			fail("url %q must be an http or https URL with a host", r.URL)
		case u.User != nil:
			fail("url must not carry credentials; reference it with urlEnv or urlFile")
		case u.Scheme == "http" && hasToken:
			fail("a token over plain http would cross the network in clear text; use an https:// URL")
		}
	}
	return r, valid
}

func parseRoute(n *yaml.Node, i int, ps *problems) Route {
	r := Route{Line: n.Line}
	where := fmt.Sprintf("notifications.routes[%d]", i)
	es, ok := yamlnode.Entries(n)
	if !ok {
		ps.errorf(ConfigFile, n.Line, "%s must be a mapping, not %s", where, yamlnode.KindName(n))
		return r
	}
	for _, e := range es {
		var dst *[]string
		switch e.Key {
		case "clusters":
			dst = &r.Clusters
		case "events":
			dst = &r.Events
		case "receivers":
			dst = &r.Receivers
		default:
			ps.errorf(ConfigFile, e.KeyNode.Line, "%s: unknown key %q (known: clusters, events, receivers)", where, e.Key)
			continue
		}
		for j, item := range listItems(e.Value, where+"."+e.Key, ps) {
			v, ok := yamlnode.Scalar(item)
			if !ok || v == "" {
				ps.errorf(ConfigFile, item.Line, "%s.%s[%d] must be a non-empty string", where, e.Key, j)
				continue
			}
			if e.Key == "events" && !slices.Contains(EventTypes, v) {
				ps.errorf(ConfigFile, item.Line, "%s.events[%d]: %q is not an event (%s)", where, j, v, strings.Join(EventTypes, ", "))
				continue
			}
			*dst = append(*dst, v)
		}
	}
	if len(r.Receivers) == 0 {
		ps.errorf(ConfigFile, n.Line, "%s: receivers is required", where)
	}
	return r
}

// LoadConfig reads only mygitops.yaml of the repository at dir (a missing
// file is an empty config) and returns it with its problems; the config
// holds what was valid.
func LoadConfig(dir string) (*Config, Problems) {
	ps := &problems{}
	cfg := parseConfig(dir, ps)
	ps.list.sort()
	return cfg, ps.list
}
