package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/knadh/koanf/parsers/yaml"
	kenv "github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	yamlv3 "go.yaml.in/yaml/v3"
)

// The configuration layer of a command: every flag of the command is also a
// key of a YAML config file (--config, or $MGO_CONFIG) and an environment
// variable MGO_<FLAG> (upper case, "-" as "_"). A flag given on the command
// line wins over the environment, which wins over the file, which wins over
// the flag's default. The file may hold nothing but flags' keys.
const (
	envPrefix = "MGO_"
	// secretAnnotation marks a flag whose value is a secret itself (not
	// the name of a file or variable holding one): --print-config shows it
	// redacted.
	secretAnnotation = "mgo.secret"
	redacted         = "REDACTED"
)

// Where a flag's value came from.
const (
	fromDefault = "default"
	fromFile    = "file"
	fromEnv     = "env"
	fromFlag    = "flag"
)

// envName is the environment variable of a flag.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// configSkip are flags that are not configuration: the config file itself,
// the printing of the configuration, help.
var configSkip = []string{"config", "print-config", "help"}

// bindConfig adds --config and --print-config to cmd and makes every other
// flag of cmd settable from the config file and the environment. Before
// cmd runs, flags not set on the command line take their values from
// MGO_<FLAG>, else from the file, else keep their defaults; with
// --print-config the command prints the result (secrets redacted) instead
// of running.
func bindConfig(cmd *cobra.Command) {
	var (
		path  string
		print bool
		src   configSources
	)
	fs := cmd.Flags()
	fs.StringVar(&path, "config", "", "YAML file whose keys are these flags' names (default $"+envName("config")+"); flags > MGO_* environment > file > defaults")
	fs.BoolVar(&print, "print-config", false, "print the configuration that results from flags, environment and file (secrets redacted) and exit")
	preRun, run := cmd.PreRunE, cmd.RunE
	cmd.PreRunE = func(c *cobra.Command, args []string) error {
		if path == "" {
			path = os.Getenv(envName("config"))
		}
		var err error
		if src, err = applyConfig(fs, path, os.Environ()); err != nil {
			return &ExitError{Code: 2, Err: err}
		}
		if print {
			// Printing needs no required flag: it shows what is missing.
			fs.VisitAll(func(f *pflag.Flag) { delete(f.Annotations, cobra.BashCompOneRequiredFlag) })
		}
		if preRun != nil {
			return preRun(c, args)
		}
		return nil
	}
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if print {
			return printConfig(c.OutOrStdout(), fs, src)
		}
		return run(c, args)
	}
}

// configSources records, per flag, where its value came from.
type configSources map[string]string

// applyConfig sets every flag of fs not set on the command line from the
// environment (environ, KEY=VALUE) or, failing that, from the YAML file at
// path (none when empty). A key of the file that is no flag, a nested key,
// or a value a flag refuses is an error naming the key and the file (or the
// variable). Environment variables with the prefix that name no flag are
// left alone: MGO_CHART_* and others mean something else.
func applyConfig(fs *pflag.FlagSet, path string, environ []string) (configSources, error) {
	isKey := func(name string) bool {
		return fs.Lookup(name) != nil && !slices.Contains(configSkip, name)
	}
	fileK := koanf.New(".")
	if path != "" {
		if err := fileK.Load(file.Provider(path), yaml.Parser()); err != nil {
			return nil, fmt.Errorf("config file %s: %w", path, err)
		}
		var unknown []string
		for _, k := range fileK.Keys() {
			if !isKey(k) {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			return nil, fmt.Errorf("config file %s: unknown key%s%s", path, quoteAll(unknown), suggest(fs, unknown[0]))
		}
	}
	envK := koanf.New(".")
	err := envK.Load(kenv.Provider(".", kenv.Opt{
		Prefix:      envPrefix,
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(k, v string) (string, any) {
			name := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k, envPrefix), "_", "-"))
			if !isKey(name) || envName(name) != k {
				return "", nil
			}
			return name, v
		},
	}), nil)
	if err != nil {
		return nil, err
	}

	src := configSources{}
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		switch {
		case !isKey(f.Name):
			return
		case f.Changed:
			src[f.Name] = fromFlag
		case envK.Exists(f.Name):
			if err := setFlag(f, envK.Get(f.Name)); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", envName(f.Name), err))
			}
			src[f.Name] = fromEnv
		case fileK.Exists(f.Name):
			if err := setFlag(f, fileK.Get(f.Name)); err != nil {
				errs = append(errs, fmt.Errorf("config file %s: key %q: %w", path, f.Name, err))
			}
			src[f.Name] = fromFile
		default:
			src[f.Name] = fromDefault
		}
	})
	return src, errors.Join(errs...)
}

// setFlag sets a flag from a config value: a scalar, or a list for a flag
// that takes several values.
func setFlag(f *pflag.Flag, v any) error {
	var vals []string
	switch x := v.(type) {
	case nil:
		return errors.New("no value")
	case []any:
		for _, e := range x {
			if _, ok := e.(map[string]any); ok {
				return errors.New("a list of maps is not a flag value")
			}
			vals = append(vals, fmt.Sprint(e))
		}
	case map[string]any:
		return errors.New("a map is not a flag value")
	default:
		vals = []string{fmt.Sprint(x)}
	}
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		if err := sv.Replace(vals); err != nil {
			return err
		}
		f.Changed = true
		return nil
	}
	if len(vals) != 1 {
		return fmt.Errorf("takes one value, not a list")
	}
	if err := f.Value.Set(vals[0]); err != nil {
		return err
	}
	f.Changed = true
	return nil
}

// printConfig writes the configuration of fs as a config file would hold
// it, one key per flag with a comment saying where its value came from,
// secrets redacted.
func printConfig(w io.Writer, fs *pflag.FlagSet, src configSources) error {
	doc := &yamlv3.Node{Kind: yamlv3.MappingNode}
	fs.VisitAll(func(f *pflag.Flag) {
		if slices.Contains(configSkip, f.Name) {
			return
		}
		val := configNode(f)
		val.LineComment = src[f.Name]
		if val.LineComment == "" {
			val.LineComment = fromDefault
		}
		doc.Content = append(doc.Content, &yamlv3.Node{Kind: yamlv3.ScalarNode, Value: f.Name}, val)
	})
	var buf bytes.Buffer
	enc := yamlv3.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// configNode is a flag's value as a config file holds it: typed, with
// secrets and passwords in URLs redacted.
func configNode(f *pflag.Flag) *yamlv3.Node {
	str := func(s string) *yamlv3.Node { return &yamlv3.Node{Kind: yamlv3.ScalarNode, Tag: "!!str", Value: s} }
	if isSecret(f) {
		if f.Value.String() == "" {
			return str("")
		}
		return str(redacted)
	}
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		seq := &yamlv3.Node{Kind: yamlv3.SequenceNode, Style: yamlv3.FlowStyle}
		for _, v := range sv.GetSlice() {
			seq.Content = append(seq.Content, str(redactURL(v)))
		}
		return seq
	}
	s := redactURL(f.Value.String())
	switch f.Value.Type() {
	case "bool":
		return &yamlv3.Node{Kind: yamlv3.ScalarNode, Tag: "!!bool", Value: s}
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return &yamlv3.Node{Kind: yamlv3.ScalarNode, Tag: "!!int", Value: s}
	case "float32", "float64":
		return &yamlv3.Node{Kind: yamlv3.ScalarNode, Tag: "!!float", Value: s}
	}
	return str(s)
}

// secretName matches flag names whose value would be a secret itself.
// Flags naming where a secret is (…-file, …-env) are not secrets.
var secretName = regexp.MustCompile(`(password|passwd|secret|token|credential|private-key)$`)

func isSecret(f *pflag.Flag) bool {
	if _, ok := f.Annotations[secretAnnotation]; ok {
		return true
	}
	return secretName.MatchString(f.Name)
}

// redactURL hides the password of a URL with user information
// (https://user:token@host/...), leaving everything else as it was.
func redactURL(s string) string {
	if !strings.Contains(s, "://") || !strings.Contains(s, "@") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

func quoteAll(keys []string) string {
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = fmt.Sprintf("%q", k)
	}
	if len(q) > 1 {
		return "s " + strings.Join(q, ", ")
	}
	return " " + q[0]
}

// suggest names the flag closest to an unknown key, if one is close.
func suggest(fs *pflag.FlagSet, key string) string {
	best, bestD := "", 3
	fs.VisitAll(func(f *pflag.Flag) {
		if slices.Contains(configSkip, f.Name) {
			return
		}
		if d := editDistance(key, f.Name); d < bestD {
			best, bestD = f.Name, d
		}
	})
	if best == "" {
		return " (every key is the name of a flag)"
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// configDoc is docs/configuration.md: every configuration key of cmd (its
// flags) with its environment variable, default and description, generated
// from the flag definitions.
func configDoc(cmd *cobra.Command) string {
	var b strings.Builder
	name := cmd.CommandPath()
	fmt.Fprintf(&b, `# Configuring `+"`%s`"+`

<!-- Generated from the flag definitions by `+"`go test ./internal/cli -run ConfigDoc -update`"+`; do not edit. -->

Every flag of `+"`%s`"+` is also a key of a YAML configuration file and an
environment variable. A value given as a flag wins over the environment,
which wins over the file, which wins over the default:

    flags  >  MGO_* environment  >  config file  >  defaults

- **Config file**: `+"`--config mgo.yaml`"+` (or `+"`MGO_CONFIG=mgo.yaml`"+`). Its keys are the
  flag names without the dashes; values are strings, booleans, numbers or
  durations (`+"`30s`"+`, `+"`5m`"+`) as the flag takes them. A key that is no flag is an
  error naming the key and the file, so a typo never goes unnoticed.
- **Environment**: `+"`MGO_`"+` and the flag name in upper case with `+"`_`"+` for `+"`-`"+`
  (`+"`--poll-interval`"+` is `+"`MGO_POLL_INTERVAL`"+`). `+"`MGO_*`"+` variables that name no flag are
  left alone: chart-repository credentials that mygitops.yaml names (`+"`MGO_CHART_*`"+`,
  never named like a key, e.g. not `+"`MGO_CHART_CACHE`"+`), `+"`MGO_TOKEN`"+` of `+"`mgo deploy`"+`.
- `+"`--print-config`"+` prints the configuration that results, as a config file,
  each key with where its value came from (flag, env, file or default), and
  exits. Passwords in URLs are shown as `+"`xxxxx`"+`.

Secrets are never configuration values: the git password, SSH key, API
tokens and webhook secrets are read from files (or environment variables)
that these keys name, e.g. a Kubernetes Secret mounted as files (the Helm
chart does this; see [install.md](install.md)).

An example `+"`mgo.yaml`"+`:

`+"```yaml"+`
repo-url: https://git.example.com/acme/gitops.git
branch: main
git-username: mgo
git-password-file: /etc/mgo/git/password
tokens-file: /etc/mgo/tokens/tokens.yaml
in-cluster: prod
data-dir: /var/lib/mgo
poll-interval: 1m
log-level: info
`+"```"+`

## Keys

| key | environment | default | description |
| --- | --- | --- | --- |
`, name, name)
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Name == "help" {
			return
		}
		key := "`" + f.Name + "`"
		if _, ok := f.Annotations[cobra.BashCompOneRequiredFlag]; ok {
			key += " (required)"
		}
		env := "`" + envName(f.Name) + "`"
		if f.Name == "print-config" {
			key, env = "`--print-config` (flag only)", ""
		}
		if f.Name == "config" {
			key = "`--config` (flag or environment)"
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "[]" {
			def = "`" + f.DefValue + "`"
		}
		usage := strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;").Replace(f.Usage)
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", key, env, def, usage)
	})
	return b.String()
}
