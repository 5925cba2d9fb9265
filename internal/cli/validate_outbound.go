package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"

	"github.com/mygitops/mgo/internal/outbound"
	"github.com/mygitops/mgo/internal/repo"
)

// outboundFromServe sets the --outbound-* flags of fs not given on the
// command line as mgo serve would: from MGO_OUTBOUND_*, else from the
// outbound-* keys of serve's config file at path (its other keys are
// serve's own and ignored here).
func outboundFromServe(fs *pflag.FlagSet, path string, environ []string) error {
	fileK := koanf.New(".")
	if path != "" {
		if err := fileK.Load(file.Provider(path), yaml.Parser()); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
	}
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	for _, p := range outboundPurposes {
		f := fs.Lookup("outbound-" + p)
		if f == nil || f.Changed {
			continue
		}
		if v, ok := env[envName(f.Name)]; ok {
			if err := setFlag(f, v); err != nil {
				return fmt.Errorf("%s: %w", envName(f.Name), err)
			}
			f.Changed = true
			continue
		}
		if fileK.Exists(f.Name) {
			if err := setFlag(f, fileK.Get(f.Name)); err != nil {
				return fmt.Errorf("config file %s: key %q: %w", path, f.Name, err)
			}
			f.Changed = true
		}
	}
	return nil
}

// outboundWarnings are the URLs of the repo that mgo serve, with these
// allow lists, would refuse to reach: chart repositories, OCI charts of
// release headers and notification receivers. A URL that only mgo serve
// knows (from an environment variable or file) is not checked. They are
// warnings: the lists belong to the service, not to the repository.
func outboundWarnings(r *repo.Repo, policies map[string]*outbound.Policy) repo.Problems {
	var out repo.Problems
	warn := func(file string, line int, format string, args ...any) {
		out = append(out, repo.Problem{File: file, Line: line, Severity: repo.Warning, Message: fmt.Sprintf(format, args...)})
	}
	if p := policies[outbound.Charts]; p != nil {
		for _, cr := range r.Config.Repositories {
			if err := p.CheckURL(cr.URL); err != nil {
				warn(repo.ConfigFile, cr.Line, "chart repository %q: mgo serve would not reach it: %v", cr.Name, err)
			}
		}
		for _, name := range r.ClusterNames() {
			for _, rl := range r.Clusters[name].Releases {
				if strings.HasPrefix(rl.Header.Chart, "oci://") {
					if err := p.CheckURL(rl.Header.Chart); err != nil {
						warn(rl.File, rl.Header.Line, "chart %s: mgo serve would not reach it: %v", rl.Header.Chart, err)
					}
				}
			}
		}
	}
	if p := policies[outbound.Notifications]; p != nil {
		for _, rc := range r.Config.Notifications.Receivers {
			if rc.Type == repo.ReceiverShoutrrr {
				warn(repo.ConfigFile, rc.Line, "receiver %q: mgo serve refuses shoutrrr receivers while --outbound-notifications is set (their clients dial past the check)", rc.Name)
				continue
			}
			u := rc.StaticURL()
			if u == "" {
				continue
			}
			if err := p.CheckURL(u); err != nil {
				warn(repo.ConfigFile, rc.Line, "receiver %q: mgo serve would not reach it: %v", rc.Name, err)
			}
		}
	}
	return out
}

// serveConfigPath is --config of validate, else $MGO_CONFIG.
func serveConfigPath(flag string) string {
	if flag != "" {
		return flag
	}
	return os.Getenv(envName("config"))
}
