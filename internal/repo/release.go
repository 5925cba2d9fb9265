package repo

import (
	"fmt"
	"strings"
	"sync"

	"helm.sh/helm/v4/pkg/chart/common"

	"github.com/mygitops/mgo/internal/secrets"
	"github.com/mygitops/mgo/internal/yamlnode"
)

// ID names the release for messages: cluster/namespace/name.
func (r *Release) ID() string {
	return r.Cluster + "/" + r.Header.Namespace + "/" + r.Header.Name
}

// Values returns the values Helm gets for the release: the values file with
// the __mygitops header removed, anchors and merge keys resolved, and the
// secrets file (if any) merged on top the way `helm -f values.yaml -f
// secrets.yaml` merges: nested maps key by key, anything else replaced.
// A SOPS-encrypted secrets file is decrypted in memory with the keys the
// repository was loaded with (LoadOptions.Keys, Repo.UseKeys).
func (r *Release) Values() (map[string]any, error) {
	vals, err := readValues(r.root, r.File, nil)
	if err != nil {
		return nil, err
	}
	delete(vals, HeaderKey)
	if r.SecretsFile == "" {
		return vals, nil
	}
	secrets, err := r.SecretValues()
	if err != nil {
		return nil, err
	}
	return MergeValues(vals, secrets, KeepNulls), nil
}

// SecretValues returns the values of the release's secrets file, decrypted
// when it is SOPS-encrypted; an empty map when there is none.
func (r *Release) SecretValues() (map[string]any, error) {
	if r.SecretsFile == "" {
		return map[string]any{}, nil
	}
	if c := r.secretsRead; c != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.done {
			c.vals, c.err = r.readSecrets()
			c.done = true
		}
		if c.err != nil {
			return nil, c.err
		}
		return copyValues(c.vals), nil
	}
	return r.readSecrets()
}

// secretsCache is a release's secrets file read once.
type secretsCache struct {
	mu   sync.Mutex
	done bool
	vals map[string]any
	err  error
}

func (r *Release) readSecrets() (map[string]any, error) {
	vals, err := readValues(r.root, r.SecretsFile, &r.keys)
	if err != nil {
		return nil, err
	}
	if _, ok := vals[HeaderKey]; ok {
		return nil, fmt.Errorf("%s: the %s header belongs in the values file", r.SecretsFile, HeaderKey)
	}
	return vals, nil
}

// Masker returns the masker of the release's secret values: every text
// mgo writes about the release (diffs, results, errors) passes through
// it. A secrets file that cannot be read gives an empty masker: its
// values then reach no chart either.
func (r *Release) Masker() *secrets.Masker {
	vals, err := r.SecretValues()
	if err != nil {
		return &secrets.Masker{}
	}
	return secrets.NewMasker(vals)
}

// UseKeys sets the keys that Values decrypts secrets files with, on every
// release of a repository loaded without keys (LoadOptions.Keys empty).
func (r *Repo) UseKeys(keys secrets.Keys) {
	if keys.Empty() {
		return
	}
	for _, c := range r.Clusters {
		for _, rl := range c.Releases {
			if rl.keys.Empty() {
				rl.keys = keys
				if c := rl.secretsRead; c != nil {
					c.mu.Lock()
					c.done, c.vals, c.err = false, nil, nil
					c.mu.Unlock()
				}
			}
		}
	}
}

// readValues reads a values or secrets file as Helm does, under the rules
// Load applies: no symbolic link, at most MaxValuesFileSize bytes, UTF-8, no
// alias cycle or bomb (checked before Helm's decoder sees the file). With
// keys (secrets files), a SOPS-encrypted file is decrypted first.
func readValues(root, rel string, keys *secrets.Keys) (map[string]any, error) {
	b, err := readRepoFile(root, rel, MaxValuesFileSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	if keys != nil && secrets.IsEncrypted(b) {
		if _, err := yamlnode.Parse(b); err != nil {
			return nil, fmt.Errorf("%s: %w", rel, err)
		}
		if b, err = secrets.Decrypt(rel, b, *keys); err != nil {
			return nil, err
		}
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return map[string]any{}, nil
	}
	if _, err := yamlnode.Parse(b); err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	vals, err := common.ReadValues(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	return vals, nil
}

// copyValues returns a deep copy of values as Helm reads them (maps,
// lists, scalars), so that no caller shares a cached map.
func copyValues(v map[string]any) map[string]any {
	out := make(map[string]any, len(v))
	for k, x := range v {
		out[k] = copyValue(x)
	}
	return out
}

func copyValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return copyValues(v)
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = copyValue(x)
		}
		return out
	}
	return v
}
