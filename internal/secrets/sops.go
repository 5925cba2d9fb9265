// Package secrets encrypts and decrypts the `*-secrets.yaml` files of a
// gitops repository with SOPS and age, and masks the values they hold in
// everything mgo writes.
//
// Files are read and written with the SOPS Go library
// (github.com/getsops/sops/v3): its YAML store, its AES-GCM cipher and its
// age key source, so a file is exactly what `sops --encrypt --age ...`
// writes and `sops --decrypt` reads. mgo does not use the library's
// `decrypt` package: that one finds keys through SOPS's key service, which
// reads the process environment and tries every cloud KMS. Decrypt here
// unwraps the data key with the age identities it is given and nothing
// else, then decrypts the tree with the AES cipher and checks the MAC.
// (The library's root package still links its key service, so the cloud
// KMS clients end up in the binary all the same; they are never called.)
//
// Keys come from `--age-key-file`, SOPS_AGE_KEY_FILE and SOPS_AGE_KEY
// (LoadKeys), read once when mgo starts.
package secrets

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/keys"
	"github.com/getsops/sops/v3/shamir"
	"github.com/getsops/sops/v3/stores"
	sopsyaml "github.com/getsops/sops/v3/stores/yaml"
	sopsversion "github.com/getsops/sops/v3/version"
	"go.yaml.in/yaml/v3"
)

// Environment variables read by LoadKeys, as the sops command reads them.
const (
	EnvAgeKeyFile = "SOPS_AGE_KEY_FILE"
	EnvAgeKey     = "SOPS_AGE_KEY"
)

// Sentinel errors of Decrypt, for callers that tell the cases apart.
var (
	// ErrNoKeys: the file is encrypted and mgo was given no age key.
	ErrNoKeys = errors.New("no age key to decrypt it (set --age-key-file, SOPS_AGE_KEY_FILE or SOPS_AGE_KEY)")
	// ErrWrongKey: none of the keys given opens the file.
	ErrWrongKey = errors.New("none of the age keys given is a recipient of this file")
	// ErrMAC: the file was changed after it was encrypted (its MAC does
	// not match its content), or its metadata is damaged.
	ErrMAC = errors.New("MAC mismatch: the file was changed after it was encrypted; re-encrypt it with sops")
	// ErrNotEncrypted: Decrypt was given a file without SOPS metadata.
	ErrNotEncrypted = errors.New("not a SOPS-encrypted file (no sops metadata block)")
)

// Keys are the age identities mgo decrypts with. The zero value holds no
// key: Decrypt then fails with ErrNoKeys.
type Keys struct {
	identities []age.Identity
	// Sources names where the identities came from (a file path or an
	// environment variable), for messages; never the keys themselves.
	Sources []string
}

// Empty reports whether there is no key at all.
func (k Keys) Empty() bool { return len(k.identities) == 0 }

// LoadKeys reads the age identities of keyFile (the --age-key-file flag,
// "" for none) and of the environment variables SOPS_AGE_KEY_FILE and
// SOPS_AGE_KEY (looked up with getenv; nil means os.Getenv). A file that
// cannot be read or parsed is an error naming it, never its content.
func LoadKeys(keyFile string, getenv func(string) string) (Keys, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	var k Keys
	add := func(source string, text []byte) error {
		ids, err := age.ParseIdentities(bytes.NewReader(text))
		if err != nil {
			return fmt.Errorf("age identities from %s: %w", source, err)
		}
		k.identities = append(k.identities, ids...)
		k.Sources = append(k.Sources, source)
		return nil
	}
	for _, f := range []struct{ path, what string }{{keyFile, "--age-key-file"}, {getenv(EnvAgeKeyFile), EnvAgeKeyFile}} {
		if f.path == "" {
			continue
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			return Keys{}, fmt.Errorf("%s: %w", f.what, err)
		}
		if err := add(f.path, b); err != nil {
			return Keys{}, err
		}
	}
	if v := getenv(EnvAgeKey); v != "" {
		if err := add(EnvAgeKey, []byte(v)); err != nil {
			return Keys{}, err
		}
	}
	return k, nil
}

// KeysFromIdentities returns Keys holding ids (for tests and callers that
// hold parsed identities).
func KeysFromIdentities(ids ...age.Identity) Keys {
	return Keys{identities: ids, Sources: []string{"identities given"}}
}

// IsEncrypted reports whether data is a YAML document whose top-level
// mapping carries a SOPS metadata block (`sops:` with a `mac`).
func IsEncrypted(data []byte) bool {
	var doc struct {
		Sops map[string]any `yaml:"sops"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return false
	}
	_, mac := doc.Sops["mac"]
	_, age := doc.Sops["age"]
	return mac || age
}

func newStore() *sopsyaml.Store { return sopsyaml.NewStore(&config.YAMLStoreConfig{}) }

// Encrypt encrypts the YAML document plain for the age recipients (age1...
// public keys) as `sops --encrypt --age R1,R2` does: every value encrypted
// with a fresh data key, keys and comments in clear, the data key wrapped
// for each recipient in the `sops` metadata block with the MAC.
func Encrypt(plain []byte, ageRecipients []string) ([]byte, error) {
	if len(ageRecipients) == 0 {
		return nil, errors.New("encrypting secrets: no age recipient")
	}
	store := newStore()
	branches, err := store.LoadPlainFile(plain)
	if err != nil {
		return nil, fmt.Errorf("encrypting secrets: %w", err)
	}
	for _, b := range branches {
		for _, item := range b {
			if item.Key == stores.SopsMetadataKey {
				return nil, errors.New("encrypting secrets: the file already has a top-level sops key (is it encrypted already?)")
			}
		}
	}
	var group sops.KeyGroup
	for _, r := range ageRecipients {
		mk, err := sopsage.MasterKeyFromRecipient(strings.TrimSpace(r))
		if err != nil {
			return nil, fmt.Errorf("encrypting secrets: age recipient %q: %w", r, err)
		}
		group = append(group, mk)
	}
	dataKey := make([]byte, 32)
	if _, err := rand.Read(dataKey); err != nil {
		return nil, fmt.Errorf("encrypting secrets: data key: %w", err)
	}
	for _, mk := range group {
		if err := mk.Encrypt(dataKey); err != nil {
			return nil, fmt.Errorf("encrypting secrets: %w", err)
		}
	}
	tree := sops.Tree{
		Branches: branches,
		Metadata: sops.Metadata{
			KeyGroups:         []sops.KeyGroup{group},
			UnencryptedSuffix: sops.DefaultUnencryptedSuffix,
			Version:           sopsversion.Version,
		},
	}
	cipher := aes.NewCipher()
	mac, err := tree.Encrypt(dataKey, cipher)
	if err != nil {
		return nil, fmt.Errorf("encrypting secrets: %w", err)
	}
	tree.Metadata.LastModified = time.Now().UTC()
	tree.Metadata.MessageAuthenticationCode, err = cipher.Encrypt(mac, dataKey, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil {
		return nil, fmt.Errorf("encrypting secrets: MAC: %w", err)
	}
	out, err := store.EmitEncryptedFile(tree)
	if err != nil {
		return nil, fmt.Errorf("encrypting secrets: %w", err)
	}
	return out, nil
}

// Decrypt decrypts the SOPS-encrypted YAML data (read from path, which is
// only named in errors) with keys and checks its MAC. It returns the clear
// YAML without the metadata block. Errors name path and wrap ErrNoKeys,
// ErrWrongKey, ErrMAC or ErrNotEncrypted; they never hold a value.
func Decrypt(path string, data []byte, keys Keys) ([]byte, error) {
	if !IsEncrypted(data) {
		return nil, fmt.Errorf("%s: %w", path, ErrNotEncrypted)
	}
	store := newStore()
	tree, err := store.LoadEncryptedFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: reading the SOPS file: %w", path, err)
	}
	if keys.Empty() {
		return nil, fmt.Errorf("%s: %w", path, ErrNoKeys)
	}
	dataKey, err := dataKey(tree.Metadata, keys)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cipher := aes.NewCipher()
	mac, err := tree.Decrypt(dataKey, cipher)
	if err != nil {
		// AES-GCM authenticates each value: a changed ciphertext fails here.
		return nil, fmt.Errorf("%s: %w (a value does not decrypt)", path, ErrMAC)
	}
	stored, err := cipher.Decrypt(tree.Metadata.MessageAuthenticationCode, dataKey, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil || stored != mac {
		return nil, fmt.Errorf("%s: %w", path, ErrMAC)
	}
	out, err := store.EmitPlainFile(tree.Branches)
	if err != nil {
		return nil, fmt.Errorf("%s: writing the clear values: %w", path, err)
	}
	return out, nil
}

// dataKey recovers the file's data key from its age master keys (other
// kinds of master key are skipped: mgo holds only age identities).
func dataKey(m sops.Metadata, k Keys) ([]byte, error) {
	ids := sopsage.ParsedIdentities(k.identities)
	var parts [][]byte
	ageKeys := 0
	for _, group := range m.KeyGroups {
		for _, mk := range group {
			ak, ok := mk.(*sopsage.MasterKey)
			if !ok {
				continue
			}
			ageKeys++
			ids.ApplyToMasterKey(ak)
			if part, err := ak.Decrypt(); err == nil {
				parts = append(parts, part)
				break
			}
		}
	}
	switch {
	case ageKeys == 0:
		return nil, fmt.Errorf("the file has no age recipient (only %s keys); mgo decrypts with age keys only", keyKinds(m.KeyGroups))
	case len(m.KeyGroups) <= 1 && len(parts) == 1:
		return parts[0], nil
	case len(m.KeyGroups) > 1 && len(parts) >= max(m.ShamirThreshold, 1):
		key, err := shamir.Combine(parts)
		if err != nil {
			return nil, fmt.Errorf("combining the key groups' shares: %w", err)
		}
		return key, nil
	}
	return nil, fmt.Errorf("%w (keys from %s)", ErrWrongKey, strings.Join(k.Sources, ", "))
}

func keyKinds(groups []sops.KeyGroup) string {
	seen := map[string]bool{}
	var out []string
	for _, g := range groups {
		for _, mk := range g {
			if t := mk.TypeToIdentifier(); !seen[t] {
				seen[t] = true
				out = append(out, t)
			}
		}
	}
	return strings.Join(out, ", ")
}

var _ keys.MasterKey = (*sopsage.MasterKey)(nil)
