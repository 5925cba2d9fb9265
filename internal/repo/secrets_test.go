package repo

import (
	"strings"
	"testing"

	"filippo.io/age"
	"go.yaml.in/yaml/v3"

	"github.com/mygitops/mgo/internal/secrets"
)

func encryptFor(t *testing.T, plain string, id *age.X25519Identity) string {
	t.Helper()
	b, err := secrets.Encrypt([]byte(plain), []string{id.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tamper changes one encrypted value for another of the same file.
func tamper(t *testing.T, enc string) string {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(enc), &doc); err != nil {
		t.Fatal(err)
	}
	a, b := doc["password"].(string), doc["token"].(string)
	return strings.Replace(enc, a, b, 1)
}

func TestLoadEncryptedSecrets(t *testing.T) {
	owner, stranger := newAgeIdentity(t), newAgeIdentity(t)
	plain := "password: hunter2-secret\ntoken: tok-0123456789\nnested:\n  key: nested-secret\n"
	enc := encryptFor(t, plain, owner)
	dir := writeRepo(t, map[string]string{
		ConfigFile:                              hostileConfig,
		"installations/prod/good-values.yaml":   header("good") + "password: from-values\nkeep: me\nnested: {other: 1}\n",
		"installations/prod/good-secrets.yaml":  enc,
		"installations/prod/bad-values.yaml":    header("bad"),
		"installations/prod/bad-secrets.yaml":   tamper(t, enc),
		"installations/prod/clear-values.yaml":  header("clear"),
		"installations/prod/clear-secrets.yaml": "password: in-clear-secret\n",
	})

	t.Run("with the key", func(t *testing.T) {
		r, err := Load(dir, LoadOptions{Keys: secrets.KeysFromIdentities(owner)})
		if err != nil {
			t.Fatal(err)
		}
		rels := releasesByName(r)
		if !rels["good"].Valid || !rels["clear"].Valid || rels["bad"].Valid {
			t.Errorf("valid: good %v clear %v bad %v; want true true false", rels["good"].Valid, rels["clear"].Valid, rels["bad"].Valid)
		}
		if ps := r.Problems.Errors(); len(ps) != 1 || ps[0].File != "installations/prod/bad-secrets.yaml" || !strings.Contains(ps[0].Message, "MAC mismatch") {
			t.Errorf("errors: %v", ps)
		}
		if ps := r.Problems.InFile("installations/prod/clear-secrets.yaml"); len(ps) != 1 || ps[0].Severity != Warning || !strings.Contains(ps[0].Message, "not encrypted") {
			t.Errorf("clear-text secrets file: %v", ps)
		}
		if ps := r.Problems.InFile("installations/prod/good-secrets.yaml"); len(ps) != 0 {
			t.Errorf("encrypted file that decrypts: %v", ps)
		}
		vals, err := rels["good"].Values()
		if err != nil {
			t.Fatal(err)
		}
		if vals["password"] != "hunter2-secret" || vals["keep"] != "me" || vals["nested"].(map[string]any)["key"] != "nested-secret" || vals["nested"].(map[string]any)["other"] != float64(1) {
			t.Errorf("values %v", vals)
		}
		if _, ok := vals["sops"]; ok {
			t.Error("the sops metadata block reached the values")
		}
		// The file is read once; no caller shares the cached maps.
		vals["nested"].(map[string]any)["key"] = "changed by a caller"
		again, err := rels["good"].Values()
		if err != nil || again["nested"].(map[string]any)["key"] != "nested-secret" {
			t.Errorf("second read: %v %v", again, err)
		}
		m := rels["good"].Masker()
		if got := m.Mask("a hunter2-secret, tok-0123456789 and nested-secret; me"); got != "a ***, *** and ***; me" {
			t.Errorf("masked: %s", got)
		}
		if _, err := rels["bad"].Values(); err == nil || !strings.Contains(err.Error(), "installations/prod/bad-secrets.yaml: MAC mismatch") {
			t.Errorf("tampered file: Values err = %v", err)
		}
	})

	t.Run("with a wrong key", func(t *testing.T) {
		r, err := Load(dir, LoadOptions{Keys: secrets.KeysFromIdentities(stranger)})
		if err != nil {
			t.Fatal(err)
		}
		errs := r.Problems.Errors()
		if len(errs) != 2 {
			t.Fatalf("errors: %v", errs)
		}
		for _, p := range errs {
			if !strings.Contains(p.Message, "none of the age keys given is a recipient") {
				t.Errorf("error %s", p)
			}
		}
	})

	t.Run("without keys", func(t *testing.T) {
		r, err := Load(dir, LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if errs := r.Problems.Errors(); len(errs) != 0 {
			t.Errorf("errors without keys: %v", errs)
		}
		for _, f := range []string{"installations/prod/good-secrets.yaml", "installations/prod/bad-secrets.yaml"} {
			if ps := r.Problems.InFile(f); len(ps) != 1 || !strings.Contains(ps[0].Message, "not checked: no age key") {
				t.Errorf("%s: %v", f, ps)
			}
		}
		rels := releasesByName(r)
		if _, err := rels["good"].Values(); err == nil || !strings.Contains(err.Error(), "no age key") {
			t.Errorf("Values without keys: err = %v", err)
		}
		r.UseKeys(secrets.KeysFromIdentities(owner))
		if vals, err := rels["good"].Values(); err != nil || vals["password"] != "hunter2-secret" {
			t.Errorf("after UseKeys: %v %v", vals, err)
		}
	})

	for _, p := range []string{"hunter2-secret", "tok-0123456789"} {
		r, _ := Load(dir, LoadOptions{Keys: secrets.KeysFromIdentities(stranger)})
		for _, pr := range r.Problems {
			if strings.Contains(pr.Message, p) {
				t.Errorf("problem shows a secret: %s", pr)
			}
		}
	}
}

func TestLoadEncryptedSecretsContent(t *testing.T) {
	id := newAgeIdentity(t)
	dir := writeRepo(t, map[string]string{
		ConfigFile:                            hostileConfig,
		"installations/prod/hdr-values.yaml":  header("hdr"),
		"installations/prod/hdr-secrets.yaml": encryptFor(t, "__mygitops:\n  chart: x\n", id),
	})
	r, err := Load(dir, LoadOptions{Keys: secrets.KeysFromIdentities(id)})
	if err != nil {
		t.Fatal(err)
	}
	if ps := r.Problems.Errors(); len(ps) != 1 || !strings.Contains(ps[0].Message, "decrypted: the __mygitops header belongs in the values file") {
		t.Errorf("errors: %v", ps)
	}
}

func releasesByName(r *Repo) map[string]*Release {
	out := map[string]*Release{}
	for _, c := range r.Clusters {
		for _, rl := range c.Releases {
			out[rl.Header.Name] = rl
		}
	}
	return out
}

func newAgeIdentity(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// A secrets file that looks encrypted gets yamlnode's checks before SOPS's
// reader sees it.
func TestLoadHostileEncryptedSecrets(t *testing.T) {
	id := newAgeIdentity(t)
	dir := writeRepo(t, map[string]string{
		ConfigFile:                               hostileConfig,
		"installations/prod/laughs-values.yaml":  header("laughs"),
		"installations/prod/laughs-secrets.yaml": strings.Replace(billionLaughs(), "a: &a", "sops: {mac: x}\na: &a", 1),
	})
	r, err := Load(dir, LoadOptions{Keys: secrets.KeysFromIdentities(id)})
	if err != nil {
		t.Fatal(err)
	}
	if ps := r.Problems.Errors(); len(ps) != 1 || !strings.Contains(ps[0].Message, "aliases expand the document by more than") {
		t.Errorf("errors: %v", ps)
	}
	if releasesByName(r)["laughs"].Valid {
		t.Error("release valid")
	}
}
