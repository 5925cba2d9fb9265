package secrets

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"go.yaml.in/yaml/v3"
)

const plainSecrets = `# database credentials
db:
  password: s3cr3t-Pa55word
  port: 5432
token: tok-abcdef123456
list:
  - one-secret
  - two-secret
enabled: true
`

func newIdentity(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestEncryptDecryptRoundTrip(t *testing.T) {
	a, b := newIdentity(t), newIdentity(t)
	enc, err := Encrypt([]byte(plainSecrets), []string{a.Recipient().String(), b.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	if !IsEncrypted(enc) {
		t.Fatalf("IsEncrypted(encrypted) = false:\n%s", enc)
	}
	if IsEncrypted([]byte(plainSecrets)) {
		t.Fatal("IsEncrypted(plain) = true")
	}
	for _, secret := range []string{"s3cr3t-Pa55word", "tok-abcdef123456", "one-secret", "5432"} {
		if bytes.Contains(enc, []byte(secret)) {
			t.Errorf("encrypted file holds %q in clear", secret)
		}
	}
	// Keys stay readable, values and comments are encrypted, as sops
	// writes them.
	if bytes.Contains(enc, []byte("database credentials")) {
		t.Error("comment left in clear")
	}
	for _, clear := range []string{"password:", "token:", "sops:", "age:", "recipient: " + a.Recipient().String(), "mac: ENC[AES256_GCM", "unencrypted_suffix: _unencrypted"} {
		if !bytes.Contains(enc, []byte(clear)) {
			t.Errorf("encrypted file lacks %q:\n%s", clear, enc)
		}
	}
	for _, id := range []*age.X25519Identity{a, b} {
		out, err := Decrypt("x-secrets.yaml", enc, KeysFromIdentities(id))
		if err != nil {
			t.Fatal(err)
		}
		var got, want map[string]any
		if err := yaml.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal([]byte(plainSecrets), &want); err != nil {
			t.Fatal(err)
		}
		if !equalYAML(got, want) {
			t.Errorf("decrypted\n%s\nwant the values of\n%s", out, plainSecrets)
		}
		if _, ok := got["sops"]; ok {
			t.Error("decrypted output still has the sops metadata block")
		}
	}
}

func equalYAML(a, b any) bool {
	x, _ := yaml.Marshal(a)
	y, _ := yaml.Marshal(b)
	return bytes.Equal(x, y)
}

func TestDecryptFailures(t *testing.T) {
	owner, stranger := newIdentity(t), newIdentity(t)
	enc, err := Encrypt([]byte(plainSecrets), []string{owner.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	// A value changed by hand after encryption: the password's ciphertext
	// is replaced by the token's (valid ENC[] syntax, wrong content).
	var doc map[string]any
	if err := yaml.Unmarshal(enc, &doc); err != nil {
		t.Fatal(err)
	}
	pw := doc["db"].(map[string]any)["password"].(string)
	tok := doc["token"].(string)
	swapped := bytes.Replace(enc, []byte(pw), []byte(tok), 1)
	// The file's content edited in clear next to encrypted values: sops
	// decrypts the clear value as is only with the unencrypted suffix, so
	// an added key changes the MAC.
	added := bytes.Replace(enc, []byte("sops:\n"), []byte("extra_unencrypted: added\nsops:\n"), 1)

	cases := []struct {
		name string
		data []byte
		keys Keys
		want error
	}{
		{"no keys", enc, Keys{}, ErrNoKeys},
		{"wrong key", enc, KeysFromIdentities(stranger), ErrWrongKey},
		{"swapped ciphertext", swapped, KeysFromIdentities(owner), ErrMAC},
		{"added clear key", added, KeysFromIdentities(owner), ErrMAC},
		{"not encrypted", []byte(plainSecrets), KeysFromIdentities(owner), ErrNotEncrypted},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decrypt("installations/prod/app-secrets.yaml", c.data, c.keys)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, "installations/prod/app-secrets.yaml") {
				t.Errorf("error does not name the file: %s", msg)
			}
			for _, secret := range []string{"s3cr3t-Pa55word", "tok-abcdef123456", "AGE-SECRET-KEY"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error holds a secret: %s", msg)
				}
			}
		})
	}
}

func TestLoadKeys(t *testing.T) {
	a, b, c := newIdentity(t), newIdentity(t), newIdentity(t)
	dir := t.TempDir()
	flagFile := filepath.Join(dir, "flag.txt")
	envFile := filepath.Join(dir, "env.txt")
	os.WriteFile(flagFile, []byte("# created: now\n"+a.String()+"\n"), 0o600)
	os.WriteFile(envFile, []byte(b.String()+"\n"), 0o600)
	env := map[string]string{EnvAgeKeyFile: envFile, EnvAgeKey: c.String()}
	keys, err := LoadKeys(flagFile, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(keys.Sources, ","); got != flagFile+","+envFile+","+EnvAgeKey {
		t.Errorf("sources = %s", got)
	}
	for _, id := range []*age.X25519Identity{a, b, c} {
		enc, err := Encrypt([]byte("k: v\n"), []string{id.Recipient().String()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decrypt("f", enc, keys); err != nil {
			t.Errorf("key %s not loaded: %v", id.Recipient(), err)
		}
	}

	none, err := LoadKeys("", func(string) string { return "" })
	if err != nil || !none.Empty() {
		t.Errorf("no sources: keys=%v err=%v", none, err)
	}
	if _, err := LoadKeys(filepath.Join(dir, "missing.txt"), func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "--age-key-file") {
		t.Errorf("missing key file: err = %v", err)
	}
	os.WriteFile(filepath.Join(dir, "bad.txt"), []byte("AGE-SECRET-KEY-1NOTAKEY\n"), 0o600)
	_, err = LoadKeys(filepath.Join(dir, "bad.txt"), func(string) string { return "" })
	if err == nil || strings.Contains(err.Error(), "NOTAKEY") {
		t.Errorf("bad key file: err = %v (must fail without quoting the key)", err)
	}
}

func TestEncryptRefuses(t *testing.T) {
	id := newIdentity(t)
	if _, err := Encrypt([]byte("a: b\n"), nil); err == nil {
		t.Error("no recipient: no error")
	}
	if _, err := Encrypt([]byte("a: b\n"), []string{"age1notarecipient"}); err == nil {
		t.Error("bad recipient: no error")
	}
	enc, err := Encrypt([]byte("a: b\n"), []string{id.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Encrypt(enc, []string{id.Recipient().String()}); err == nil {
		t.Error("encrypting an encrypted file: no error")
	}
}
