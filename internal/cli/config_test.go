package cli

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// configCommand is a command with flags of each kind serve has, bound to
// the config layer; its run records the values it ran with.
type configCommand struct {
	cmd                       *cobra.Command
	listen, repoURL, logLevel string
	plainHTTP                 bool
	poll                      time.Duration
	secret                    string
	ran                       bool
	out                       bytes.Buffer
}

func newConfigCommand() *configCommand {
	c := &configCommand{}
	c.cmd = &cobra.Command{Use: "serve", SilenceErrors: true, SilenceUsage: true,
		RunE: func(*cobra.Command, []string) error { c.ran = true; return nil }}
	fs := c.cmd.Flags()
	fs.StringVar(&c.repoURL, "repo-url", "", "gitops repository")
	fs.StringVar(&c.listen, "listen", ":8080", "address to serve HTTP on")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level")
	fs.BoolVar(&c.plainHTTP, "plain-http", false, "plain HTTP")
	fs.DurationVar(&c.poll, "poll-interval", time.Minute, "poll interval")
	fs.StringVar(&c.secret, "webhook-secret", "", "a secret given as a value")
	_ = c.cmd.MarkFlagRequired("repo-url")
	bindConfig(c.cmd)
	c.cmd.SetOut(&c.out)
	c.cmd.SetErr(io.Discard)
	return c
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mgo.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Flags win over the environment, the environment over the file, the file
// over the defaults; each flag on its own.
func TestConfigPrecedence(t *testing.T) {
	file := "repo-url: https://file.example/repo.git\nlisten: \":7001\"\npoll-interval: 30s\nplain-http: true\nlog-level: warn\n"
	cases := []struct {
		name string
		file string
		env  []string
		args []string
		// want: listen, poll, plain-http, log-level, and where listen came from
		listen    string
		poll      time.Duration
		plain     bool
		level     string
		listenSrc string
	}{
		{name: "defaults", listen: ":8080", poll: time.Minute, level: "info", listenSrc: fromDefault},
		{name: "file", file: file, listen: ":7001", poll: 30 * time.Second, plain: true, level: "warn", listenSrc: fromFile},
		{name: "env over file", file: file, env: []string{"MGO_LISTEN=:7002", "MGO_PLAIN_HTTP=false"},
			listen: ":7002", poll: 30 * time.Second, plain: false, level: "warn", listenSrc: fromEnv},
		{name: "flag over env over file", file: file, env: []string{"MGO_LISTEN=:7002", "MGO_POLL_INTERVAL=2m"},
			args: []string{"--listen=:7003"}, listen: ":7003", poll: 2 * time.Minute, plain: true, level: "warn", listenSrc: fromFlag},
		{name: "env without file", env: []string{"MGO_LISTEN=:7002", "MGO_LOG_LEVEL=debug"},
			listen: ":7002", poll: time.Minute, level: "debug", listenSrc: fromEnv},
		{name: "flag over file", file: file, args: []string{"--listen=:7003", "--plain-http=false"},
			listen: ":7003", poll: 30 * time.Second, plain: false, level: "warn", listenSrc: fromFlag},
		{name: "other MGO_ variables are left alone", env: []string{"MGO_CHART_PASSWORD=x", "MGO_TOKEN=y", "MGO_listen=:1", "MGO_HELP=1"},
			listen: ":8080", poll: time.Minute, level: "info", listenSrc: fromDefault},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cc := newConfigCommand()
			fs := cc.cmd.Flags()
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			path := ""
			if c.file != "" {
				path = writeConfig(t, c.file)
			}
			src, err := applyConfig(fs, path, c.env)
			if err != nil {
				t.Fatal(err)
			}
			if cc.listen != c.listen || cc.poll != c.poll || cc.plainHTTP != c.plain || cc.logLevel != c.level {
				t.Errorf("listen %q poll %s plain-http %v log-level %q; want %q %s %v %q",
					cc.listen, cc.poll, cc.plainHTTP, cc.logLevel, c.listen, c.poll, c.plain, c.level)
			}
			if src["listen"] != c.listenSrc {
				t.Errorf("listen came from %q, want %q", src["listen"], c.listenSrc)
			}
		})
	}
}

// The whole command: a required flag may come from the file; without it
// the command refuses to run as cobra does.
func TestConfigRequiredFromFile(t *testing.T) {
	cc := newConfigCommand()
	cc.cmd.SetArgs([]string{"--config", writeConfig(t, "repo-url: https://git.example/repo.git\n")})
	if err := cc.cmd.Execute(); err != nil || !cc.ran || cc.repoURL != "https://git.example/repo.git" {
		t.Fatalf("run: %v ran %v repo-url %q", err, cc.ran, cc.repoURL)
	}
	cc = newConfigCommand()
	cc.cmd.SetArgs([]string{"--config", writeConfig(t, "listen: :9\n")})
	if err := cc.cmd.Execute(); err == nil || !strings.Contains(err.Error(), `"repo-url" not set`) || cc.ran {
		t.Fatalf("without repo-url: %v, ran %v", err, cc.ran)
	}
	// $MGO_CONFIG names the file when --config does not.
	t.Setenv("MGO_CONFIG", writeConfig(t, "repo-url: https://env.example/repo.git\n"))
	cc = newConfigCommand()
	cc.cmd.SetArgs([]string{})
	if err := cc.cmd.Execute(); err != nil || cc.repoURL != "https://env.example/repo.git" {
		t.Fatalf("MGO_CONFIG: %v repo-url %q", err, cc.repoURL)
	}
}

// A key that is no flag, a nested key, or a value the flag refuses is an
// error naming the key and the file (or the variable).
func TestConfigRefused(t *testing.T) {
	cases := []struct {
		name, file string
		env        []string
		want       []string
	}{
		{"misspelt key", "repo-url: x\nlisen: :9090\n", nil, []string{"mgo.yaml", `unknown key "lisen"`, `did you mean "listen"`}},
		{"two unknown keys", "bogus: 1\nlisen: 2\n", nil, []string{`unknown keys "bogus", "lisen"`}},
		{"nested key", "git:\n  url: x\n", nil, []string{`unknown key "git.url"`}},
		{"not a flag of the command", "config: other.yaml\n", nil, []string{`unknown key "config"`}},
		{"bad duration", "poll-interval: soon\n", nil, []string{"mgo.yaml", `key "poll-interval"`, "soon"}},
		{"list for a scalar", "listen: [a, b]\n", nil, []string{`key "listen"`, "one value"}},
		{"empty value", "listen:\n", nil, []string{`key "listen"`, "no value"}},
		{"not YAML", "listen: [\n", nil, []string{"mgo.yaml"}},
		{"bad env value", "", []string{"MGO_PLAIN_HTTP=maybe"}, []string{"MGO_PLAIN_HTTP", "maybe"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := newConfigCommand().cmd.Flags()
			path := ""
			if c.file != "" {
				path = writeConfig(t, c.file)
			}
			_, err := applyConfig(fs, path, c.env)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if _, err := applyConfig(newConfigCommand().cmd.Flags(), filepath.Join(t.TempDir(), "missing.yaml"), nil); err == nil ||
		!strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

// --print-config prints the resulting configuration as a config file that
// mgo reads back, with where each value came from, and shows no secret:
// neither a secret-valued flag nor the password of a URL.
func TestConfigPrint(t *testing.T) {
	t.Setenv("MGO_LOG_LEVEL", "debug")
	t.Setenv("MGO_WEBHOOK_SECRET", "hunter2-from-env")
	cc := newConfigCommand()
	cc.cmd.SetArgs([]string{"--print-config", "--config", writeConfig(t, "poll-interval: 30s\n"),
		"--repo-url", "https://mgo:s3cr3t-token@git.example.com/acme/gitops.git"})
	if err := cc.cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if cc.ran {
		t.Error("--print-config ran the command")
	}
	out := cc.out.String()
	for _, secret := range []string{"s3cr3t-token", "hunter2"} {
		if strings.Contains(out, secret) {
			t.Errorf("--print-config shows a secret (%s):\n%s", secret, out)
		}
	}
	for _, want := range []string{
		"repo-url: https://mgo:xxxxx@git.example.com/acme/gitops.git # flag",
		"log-level: debug # env",
		"poll-interval: 30s # file",
		"listen: :8080 # default",
		"plain-http: false # default",
		"webhook-secret: REDACTED # env",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("--print-config lacks %q:\n%s", want, out)
		}
	}
	// What it prints is a config file mgo accepts.
	var m map[string]any
	if err := yaml.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "webhook-secret")
	b, _ := yaml.Marshal(m)
	again := newConfigCommand()
	if _, err := applyConfig(again.cmd.Flags(), writeConfig(t, string(b)), nil); err != nil {
		t.Fatalf("the printed configuration is refused: %v", err)
	}
	if again.poll != 30*time.Second || again.logLevel != "debug" || again.plainHTTP {
		t.Errorf("read back: poll %s log-level %s plain-http %v", again.poll, again.logLevel, again.plainHTTP)
	}

	// Without the required flag, --print-config still prints.
	cc = newConfigCommand()
	cc.cmd.SetArgs([]string{"--print-config"})
	if err := cc.cmd.Execute(); err != nil || !strings.Contains(cc.out.String(), `repo-url: "" # default`) {
		t.Errorf("--print-config without repo-url: %v\n%s", err, cc.out.String())
	}
}

// docs/configuration.md is generated from the flags of mgo serve; -update
// rewrites it.
func TestConfigDoc(t *testing.T) {
	got := configDoc(newServeCommand(io.Discard))
	path := filepath.Join("..", "..", "docs", "configuration.md")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("docs/configuration.md is stale: go test ./internal/cli -run ConfigDoc -update rewrites it")
	}
	for _, key := range []string{"`repo-url` (required)", "`MGO_POLL_INTERVAL`", "`tokens-file`"} {
		if !strings.Contains(got, key) {
			t.Errorf("docs/configuration.md lacks %s", key)
		}
	}
}

// mgo serve takes its flags from a config file and the environment too;
// --print-config shows no secret and runs nothing; a misspelt key stops it
// before it starts.
func TestServeConfig(t *testing.T) {
	t.Setenv("MGO_POLL_INTERVAL", "15s")
	cfg := writeConfig(t, "listen: 127.0.0.1:9999\ntokens-file: /etc/mgo/tokens/tokens.yaml\ninsecure-allow-http: true\n")
	var out, errOut bytes.Buffer
	code := Execute([]string{"serve", "--config", cfg, "--print-config",
		"--repo-url", "https://mgo:glpat-s3cr3t@git.example.com/acme/gitops.git"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{
		"listen: 127.0.0.1:9999 # file",
		"poll-interval: 15s # env",
		"repo-url: https://mgo:xxxxx@git.example.com/acme/gitops.git # flag",
		"insecure-allow-http: true # file",
		"tokens-file: /etc/mgo/tokens/tokens.yaml # file",
		"resync-interval: 1h0m0s # default",
	} {
		if !strings.Contains(out.String(), want+"\n") {
			t.Errorf("--print-config lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "s3cr3t") {
		t.Errorf("--print-config shows the password:\n%s", out.String())
	}

	out.Reset()
	errOut.Reset()
	bad := writeConfig(t, "repo-url: https://git.example.com/acme/gitops.git\npoll-intervall: 1m\n")
	if code := Execute([]string{"serve", "--config", bad}, &out, &errOut); code != 2 ||
		!strings.Contains(errOut.String(), bad+`: unknown key "poll-intervall" (did you mean "poll-interval"?)`) {
		t.Errorf("misspelt key: exit %d: %s", code, errOut.String())
	}
}
