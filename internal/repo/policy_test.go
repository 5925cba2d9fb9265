package repo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCredentialPolicy(t *testing.T) {
	secrets, outside := t.TempDir(), t.TempDir()
	write := func(p, v string) {
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(secrets, "token"), "in-dir\n")
	write(filepath.Join(outside, "sa-token"), "mgo-own-secret")
	symlink(t, filepath.Join(outside, "sa-token"), filepath.Join(secrets, "escape"))
	symlink(t, "token", filepath.Join(secrets, "alias"))
	t.Setenv("MGO_CHART_TOKEN", "chart-token")
	t.Setenv("GIT_TOKEN", "mgo-git-token")
	policy := CredentialPolicy{Dir: secrets, EnvPrefix: "MGO_CHART_"}
	const https = "https://charts.example.com"

	for _, tt := range []struct {
		name   string
		repo   ChartRepository
		policy CredentialPolicy
		want   Credentials
		err    string
	}{
		{"env with prefix", ChartRepository{URL: https, TokenEnv: "MGO_CHART_TOKEN"}, policy, Credentials{Token: "chart-token"}, ""},
		{"env without prefix", ChartRepository{URL: https, TokenEnv: "GIT_TOKEN"}, policy, Credentials{}, "environment variable GIT_TOKEN: refused, only names starting with MGO_CHART_"},
		{"no env allowed", ChartRepository{URL: https, TokenEnv: "MGO_CHART_TOKEN"}, CredentialPolicy{Dir: secrets}, Credentials{}, "allow no environment references"},
		{"file in dir", ChartRepository{URL: https, PasswordFile: filepath.Join(secrets, "token")}, policy, Credentials{Password: "in-dir"}, ""},
		{"relative file", ChartRepository{URL: https, PasswordFile: "token"}, policy, Credentials{Password: "in-dir"}, ""},
		{"link inside dir", ChartRepository{URL: https, PasswordFile: "alias"}, policy, Credentials{Password: "in-dir"}, ""},
		{"file outside", ChartRepository{URL: https, PasswordFile: filepath.Join(outside, "sa-token")}, policy, Credentials{}, "must be inside"},
		{"dot-dot", ChartRepository{URL: https, PasswordFile: "../" + filepath.Base(outside) + "/sa-token"}, policy, Credentials{}, "must be inside"},
		{"link out of dir", ChartRepository{URL: https, PasswordFile: "escape"}, policy, Credentials{}, "leads outside"},
		{"the dir itself", ChartRepository{URL: https, PasswordFile: secrets}, policy, Credentials{}, "must be inside"},
		{"no files allowed", ChartRepository{URL: https, PasswordFile: "token"}, CredentialPolicy{EnvPrefix: "MGO_CHART_"}, Credentials{}, "allow no credential files"},
		{"default policy refuses files", ChartRepository{URL: https, PasswordFile: "/etc/passwd"}, DefaultCredentialPolicy(), Credentials{}, "allow no credential files"},
		{"plain http", ChartRepository{URL: "http://charts.example.com", TokenEnv: "MGO_CHART_TOKEN"}, policy, Credentials{}, "plain http"},
		{"plain http username only", ChartRepository{URL: "HTTP://charts.example.com", Username: "bot"}, policy, Credentials{}, "plain http"},
		{"plain http without credentials", ChartRepository{URL: "http://charts.example.com"}, policy, Credentials{}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.repo.Name = "r"
			c, err := tt.repo.Credentials(tt.policy)
			if tt.err == "" {
				if err != nil || c != tt.want {
					t.Fatalf("got %+v, %v; want %+v", c, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
			if c != (Credentials{}) {
				t.Errorf("credentials returned with the error: %+v", c)
			}
			for _, secret := range []string{"mgo-own-secret", "mgo-git-token", "chart-token", "in-dir"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows a secret: %v", err)
				}
			}
		})
	}
}

func TestConfigAllowedImagesAndPlainHTTP(t *testing.T) {
	config := `helm:
  repositories:
    - name: stable
      url: https://charts.example.com
    - name: plain
      url: http://charts.example.com
      passwordEnv: MGO_CHART_PW
clusters:
  prod:
    allowedImages:
      - registry.acme.io/acme/*
      - ghcr.io/acme/**
      - "registry.acme.io/[a-"
      - registry.acme.io/acme/app:1.0
      - 42
  staging:
    allowedImages: nope
`
	values := func(name, images string) string {
		return "__mygitops:\n  chart: stable/web\n  version: 1.0.0\n  name: " + name + "\n  namespace: app\n  images:\n" + images
	}
	dir := writeRepo(t, map[string]string{
		ConfigFile: config,
		"installations/prod/ok-values.yaml": values("ok", "    gitlab.com/acme/app:\n      repository: registry.acme.io/acme/app\n      tag: \"1\"\n"+
			"    gitlab.com/acme/deep:\n      image: ghcr.io/acme/team/tool:2\n"),
		"installations/prod/evil-values.yaml": values("evil", "    gitlab.com/acme/app:\n      repository: registry.acme.io/acme/app\n      tag: \"1\"\n"+
			"    gitlab.com/acme/other:\n      image: evil.example.com/acme/app:1\n"),
		"installations/staging/any-values.yaml": values("any", "    gitlab.com/acme/app:\n      image: registry.acme.io/acme/app:1\n"),
	})
	r, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`installations/prod/evil-values.yaml:10: error: header: images.gitlab.com/acme/other: image repository "evil.example.com/acme/app" is not allowed in cluster prod`,
		`installations/staging/any-values.yaml:7: error: header: images.gitlab.com/acme/app: image repository "registry.acme.io/acme/app" is not allowed in cluster staging`,
		`mygitops.yaml:6: error: helm.repositories[1] (plain): credentials over plain http would cross the network in clear text`,
		`mygitops.yaml:13: error: clusters.prod.allowedImages[2]: "registry.acme.io/[a-" is not a valid pattern`,
		`mygitops.yaml:14: error: clusters.prod.allowedImages[3]: "registry.acme.io/acme/app:1.0" must be an image repository pattern, without tag`,
		`mygitops.yaml:15: error: clusters.prod.allowedImages[4] must be a string, not a scalar`,
		`mygitops.yaml:17: error: clusters.staging.allowedImages must be a list of image repository patterns, not a scalar`,
	}
	if len(r.Problems) != len(want) {
		t.Errorf("problems:\n%s", strings.ReplaceAll(strings.Trim(strings.Join(problemStrings(r.Problems), "\n"), "[]"), "} {", "\n"))
	}
	for i, w := range want {
		if i >= len(r.Problems) || !strings.HasPrefix(r.Problems[i].String(), w) {
			t.Errorf("problem %d: want %s", i, w)
		}
	}
	for _, rl := range r.Clusters["prod"].Releases {
		if rl.Valid != (rl.Header.Name == "ok") {
			t.Errorf("%s valid %v", rl.File, rl.Valid)
		}
	}
	prod := r.Config.Cluster("prod")
	for img, ok := range map[string]bool{
		"registry.acme.io/acme/app":      true,
		"registry.acme.io/acme/app:1.2":  true,
		"registry.acme.io/acme/team/app": false, // * does not cross /
		"ghcr.io/acme/team/tool":         true,  // /** does
		"ghcr.io/acme":                   false,
		"registry.acme.io/other/app":     false,
		"docker.io/library/nginx":        false,
		"registry.acme.io/acme/../x/app": false,
	} {
		if prod.ImageAllowed(img) != ok {
			t.Errorf("prod.ImageAllowed(%q) = %v", img, !ok)
		}
	}
	hub := ClusterSettings{AllowedImages: []string{"docker.io/library/*"}}
	if !hub.ImageAllowed("nginx") || !hub.ImageAllowed("docker.io/library/nginx") || hub.ImageAllowed("acme/nginx") {
		t.Error("normalized names")
	}
	if !(ClusterSettings{}).ImageAllowed("anything.example.com/x") {
		t.Error("no list allows all")
	}
}

func problemStrings(ps Problems) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// TestBudgetCapped: a budget above the operator's cap is lowered field by
// field, and the fields lowered are named; a zero cap field caps nothing.
func TestBudgetCapped(t *testing.T) {
	for _, c := range []struct {
		in, cap, want Budget
		lowered       string
	}{
		{Budget{QPS: 50, Burst: 100, MaxConcurrentReleases: 4}, DefaultBudgetCap, Budget{QPS: 50, Burst: 100, MaxConcurrentReleases: 4}, ""},
		{Budget{QPS: 100000, Burst: 100000, MaxConcurrentReleases: 1000}, DefaultBudgetCap, DefaultBudgetCap, "qps,burst,maxConcurrentReleases"},
		{Budget{QPS: 300, Burst: 100, MaxConcurrentReleases: 4}, DefaultBudgetCap, Budget{QPS: 200, Burst: 100, MaxConcurrentReleases: 4}, "qps"},
		{Budget{QPS: 300, Burst: 600, MaxConcurrentReleases: 40}, Budget{}, Budget{QPS: 300, Burst: 600, MaxConcurrentReleases: 40}, ""},
	} {
		got, lowered := c.in.Capped(c.cap)
		if got != c.want || strings.Join(lowered, ",") != c.lowered {
			t.Errorf("%+v capped by %+v = %+v %v, want %+v %s", c.in, c.cap, got, lowered, c.want, c.lowered)
		}
	}
}
