package cli

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/mygitops/mgo/internal/outbound"
)

// outboundSettings are the allow lists of the addresses mgo may reach on
// the gitops repo's behalf, one per purpose.
type outboundSettings struct {
	lists map[string]*[]string
}

var outboundPurposes = []string{outbound.Charts, outbound.Notifications, outbound.Checks}

// outboundFlags adds --outbound-charts, --outbound-notifications and
// --outbound-checks to fs.
func outboundFlags(fs *pflag.FlagSet, s *outboundSettings) {
	what := map[string]string{
		outbound.Charts:        "chart repositories and OCI registries",
		outbound.Notifications: "notification receivers (webhook, slack, gitlab, github)",
		outbound.Checks:        "promotion checks (reserved)",
	}
	s.lists = map[string]*[]string{}
	for _, p := range outboundPurposes {
		s.lists[p] = fs.StringSlice("outbound-"+p, nil, "host names (*.example.com), IP addresses and CIDRs that "+what[p]+
			" may be reached at, checked after DNS resolution; once set (even to \"\"), loopback and link-local addresses are refused unless listed (default: unbounded)")
	}
}

// policies returns the Policy of every purpose whose flag is set.
func (s *outboundSettings) policies(fs *pflag.FlagSet) (map[string]*outbound.Policy, error) {
	out := map[string]*outbound.Policy{}
	for _, p := range outboundPurposes {
		if !fs.Changed("outbound-" + p) {
			continue
		}
		pol, err := outbound.Parse(p, *s.lists[p])
		if err != nil {
			return nil, fmt.Errorf("--outbound-%s: %w", p, err)
		}
		out[p] = pol
	}
	return out, nil
}

// chartsOutbound is --outbound-charts of the commands that fetch charts
// themselves (sync, diff, deploy --sync, import): a gitops repo checked out
// by a pipeline inside the cluster's network names its chart sources too.
type chartsOutbound struct {
	fs   *pflag.FlagSet
	list []string
}

func (c *chartsOutbound) register(fs *pflag.FlagSet) {
	c.fs = fs
	fs.StringSliceVar(&c.list, "outbound-"+outbound.Charts, nil, "host names (*.example.com), IP addresses and CIDRs that chart repositories and OCI registries may be reached at, checked after DNS resolution; once set (even to \"\"), loopback and link-local addresses are refused unless listed (default: unbounded)")
}

// policy is the flag's Policy, nil when it is not set.
func (c *chartsOutbound) policy() (*outbound.Policy, error) {
	if c.fs == nil || !c.fs.Changed("outbound-"+outbound.Charts) {
		return nil, nil
	}
	p, err := outbound.Parse(outbound.Charts, c.list)
	if err != nil {
		return nil, &ExitError{Code: 2, Err: fmt.Errorf("--outbound-%s: %w", outbound.Charts, err)}
	}
	return p, nil
}
