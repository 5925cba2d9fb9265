package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Ownership labels. Everything mgo applies or installs carries the name of
// the cluster (the kubeconfig context it was synced through) and the
// identity of the gitops repository it came from, and mgo removes (prunes
// or uninstalls) only what carries both of its own values: two mgo
// instances, or two contexts on one physical cluster, never remove each
// other's objects or releases.
const (
	LabelCluster = OwnerGroup + "/cluster"
	LabelRepo    = OwnerGroup + "/repo"
	// DefaultRepoID is the repository identity of a caller that gives none.
	// Two instances that both leave it unset and sync clusters of the same
	// name share ownership; give each gitops repository its own identity.
	DefaultRepoID = "default"
)

var labelUnsafe = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// LabelValue returns s as a valid label value: s itself when it is one;
// otherwise its allowed characters, shortened, and a hash of s, so that
// different inputs give different values.
func LabelValue(s string) string {
	if len(validation.IsValidLabelValue(s)) == 0 {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	h := hex.EncodeToString(sum[:])[:10]
	clean := strings.Trim(labelUnsafe.ReplaceAllString(s, "-"), "-._")
	if len(clean) > 63-11 {
		clean = strings.Trim(clean[:63-11], "-._")
	}
	if clean == "" {
		return h
	}
	return clean + "-" + h
}

// Owner is what mgo labels its objects and releases with in one cluster.
type Owner struct {
	Cluster string // label value of the cluster name
	Repo    string // label value of the repository identity
}

// OwnerFor returns the owner labels of the cluster for a repository
// identity ("" is DefaultRepoID).
func (c *Cluster) OwnerFor(repoID string) Owner {
	if repoID == "" {
		repoID = DefaultRepoID
	}
	return Owner{Cluster: LabelValue(c.Name), Repo: LabelValue(repoID)}
}

// Labels returns the ownership labels.
func (o Owner) Labels() map[string]string {
	return map[string]string{LabelCluster: o.Cluster, LabelRepo: o.Repo}
}

// Owns reports whether labels carry both of the owner's values.
func (o Owner) Owns(labels map[string]string) bool {
	return labels[LabelCluster] == o.Cluster && labels[LabelRepo] == o.Repo
}

// Unowned reports whether labels carry neither ownership label: objects and
// releases of an mgo older than these labels.
func Unowned(labels map[string]string) bool {
	_, c := labels[LabelCluster]
	_, r := labels[LabelRepo]
	return !c && !r
}
