package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadTokensFile(t *testing.T) {
	cases := []struct {
		name, body string
		tokens     int
		oidc       bool
		err        string
	}{
		{name: "static tokens", tokens: 1,
			body: "tokens:\n  - name: ci\n    sha256: " + strings.Repeat("ab", 32) + "\n    clusters: [prod]\n    triggerRepos: [\"*\"]\n"},
		{name: "oidc only", oidc: true,
			body: "oidc:\n  issuers:\n    - name: gitlab\n      url: https://gitlab.com\n      audience: https://mgo.acme.io\n  rules:\n    - name: app\n      issuer: gitlab\n      claims: {project_path: acme/app}\n      clusters: [prod]\n"},
		{name: "neither", body: "tokens: []\n", err: "no tokens and no oidc issuers"},
		{name: "unknown key", body: "tokenz: []\n", err: "tokenz"},
		{name: "oidc over http", body: "oidc:\n  issuers:\n    - name: gitlab\n      url: http://gitlab.com\n      audience: x\n  rules:\n    - name: app\n      issuer: gitlab\n      claims: {project_path: acme/app}\n      clusters: [prod]\n", err: "https"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "tokens.yaml")
			if err := os.WriteFile(p, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			tokens, oidc, err := readTokens(p)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), p) {
					t.Fatalf("error %v, want one naming %s and saying %q", err, p, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(tokens) != tc.tokens || oidc.Enabled() != tc.oidc {
				t.Errorf("%d tokens, oidc %v; want %d, %v", len(tokens), oidc.Enabled(), tc.tokens, tc.oidc)
			}
		})
	}
}
