package repo

import (
	"fmt"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"

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
func (r *Release) Values() (map[string]any, error) {
	vals, err := readValues(r.root, r.File)
	if err != nil {
		return nil, err
	}
	delete(vals, HeaderKey)
	if r.SecretsFile == "" {
		return vals, nil
	}
	secrets, err := readValues(r.root, r.SecretsFile)
	if err != nil {
		return nil, err
	}
	if _, ok := secrets[HeaderKey]; ok {
		return nil, fmt.Errorf("%s: the %s header belongs in the values file", r.SecretsFile, HeaderKey)
	}
	return mergeValues(vals, secrets), nil
}

// readValues reads a values or secrets file as Helm does, under the rules
// Load applies: no symbolic link, at most MaxValuesFileSize bytes, UTF-8, no
// alias cycle or bomb (checked before Helm's decoder sees the file).
func readValues(root, rel string) (map[string]any, error) {
	b, err := readRepoFile(root, rel, MaxValuesFileSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
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

// mergeValues merges override into base as Helm merges several -f files.
func mergeValues(base, override map[string]any) map[string]any {
	out := make(map[string]any, len(base))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range override {
		if vm, ok := v.(map[string]any); ok {
			if bm, ok := out[k].(map[string]any); ok {
				out[k] = mergeValues(bm, vm)
				continue
			}
		}
		out[k] = v
	}
	return out
}
