// Package repo is the model of a gitops repository: the repo-wide
// configuration in mygitops.yaml and the installations of every cluster.
//
//	mygitops.yaml                                    chart repositories, cluster settings
//	installations/<cluster>/<release>-values.yaml    one Helm release: __mygitops header + values
//	installations/<cluster>/<release>-secrets.yaml   optional extra values for that release
//	installations/<cluster>/<name>-raw.yaml          raw Kubernetes manifests (multi-document)
//	charts/<chart>/                                  charts kept in the repository
//
// Load reads everything and collects every problem it finds, each with the
// file and line, instead of stopping at the first: `mgo validate` prints them
// and the service refuses a repository state that has errors. A Release gives
// Helm its values: the file's values with the header removed, anchors and
// merge keys resolved, and the secrets file merged on top as `helm -f
// values.yaml -f secrets.yaml` would. A SOPS-encrypted secrets file is
// decrypted in memory (package secrets) with the keys of LoadOptions.Keys or
// Repo.UseKeys; Release.Masker hides its values in what mgo writes.
package repo
