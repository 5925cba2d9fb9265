package secrets

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestMasker(t *testing.T) {
	m := NewMasker(map[string]any{
		"db":    map[string]any{"password": `p@ss"word\1`, "port": 54321},
		"token": "tok-abcdef",
		"short": "ab",
		"flag":  true,
		"list":  []any{"list-secret"},
		"cert":  "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90\n-----END KEY-----\n",
	})
	cases := []struct{ in, want string }{
		{"password=tok-abcdef;", "password=***;"},
		{"port: 54321", "port: ***"},
		{"b64: " + base64.StdEncoding.EncodeToString([]byte("tok-abcdef")), "b64: ***"},
		{`"value": "p@ss\"word\\1"`, `"value": "***"`},
		{"value: p@ss\"word\\1", "value: ***"},
		{"ab stays, list-secret goes", "ab stays, *** goes"},
		{"        MIIBOgIBAAJBAKj34GkxFhD90", "        ***"},
		{"true", "true"},
	}
	for _, c := range cases {
		if got := m.Mask(c.in); got != c.want {
			t.Errorf("Mask(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	var nilMasker *Masker
	if nilMasker.Mask("tok-abcdef") != "tok-abcdef" || !nilMasker.Empty() || !NewMasker().Empty() {
		t.Error("an empty masker changed its input")
	}
}

func TestMaskDiffPreviousValue(t *testing.T) {
	m := NewMaskerFor("new-secret-value")
	diff := `--- live/ConfigMap/ns/app
+++ repo/ConfigMap/ns/app
@@ -1,4 +1,4 @@
 apiVersion: v1
 data:
-  password: old-secret-value
+  password: new-secret-value
   user: admin
`
	got := m.MaskDiff(diff)
	if strings.Contains(got, "old-secret-value") || strings.Contains(got, "new-secret-value") {
		t.Fatalf("secret left in diff:\n%s", got)
	}
	if !strings.Contains(got, "-  password: *** (previous value)\n") || !strings.Contains(got, "+  password: ***\n") || !strings.Contains(got, "   user: admin\n") {
		t.Errorf("masked diff:\n%s", got)
	}
}
