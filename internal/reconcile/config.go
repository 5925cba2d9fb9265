package reconcile

import (
	"github.com/mygitops/mgo/internal/secrets"

	"crypto/rand"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/mygitops/mgo/internal/kube"
)

// Helm release labels mgo stamps on every revision it creates, besides
// LabelManagedBy, LabelDigest and the ownership labels kube.LabelCluster
// and kube.LabelRepo.
const (
	// LabelInstance is the id of the mgo instance that created the
	// revision (Config.InstanceID).
	LabelInstance = "mgo.io/instance"
	// LabelStarted is when the process that created the revision started,
	// in Unix seconds (Config.StartedAt).
	LabelStarted = "mgo.io/started"
)

// Defaults of Config.
const (
	DefaultPendingTimeout = 5 * time.Minute
	DefaultDiffTimeout    = 2 * time.Minute
)

var (
	processStart    = time.Now()
	processInstance = func() string {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		return "p-" + hex.EncodeToString(b)
	}()
)

// Config is what an engine is told beyond its cluster and chart source.
// The zero value is usable: see each field's default.
type Config struct {
	// RepoID identifies the gitops repository (any string: a label-safe
	// form is used, see kube.LabelValue). Releases and raw objects are
	// labelled with it and with the cluster name, and mgo removes
	// (uninstalls, prunes) only what carries both. Default
	// kube.DefaultRepoID ("default"): instances syncing clusters of the
	// same name from different repositories must each set their own.
	RepoID string
	// InstanceID identifies this mgo instance across restarts (the server
	// persists it in its data directory). Every Helm revision mgo creates
	// is stamped with it and with StartedAt, so that a revision this
	// instance left pending before it restarted is recovered at once.
	// Default: an id of this process, new at every start (the command
	// line), whose pending revisions are recovered after PendingTimeout.
	InstanceID string
	// StartedAt is when this process started. Default: when the package
	// was initialised.
	StartedAt time.Time
	// PendingTimeout is the age after which a release left
	// pending-install, pending-upgrade or pending-rollback by another mgo
	// instance (or an older mgo, or Helm) is considered abandoned and
	// recovered. Default DefaultPendingTimeout.
	PendingTimeout time.Duration
	// DiffTimeout bounds Diff (mgo diff, drift checks) and the comparison
	// of each release with the live cluster in Sync (the rollout wait has
	// its own timeout). Default DefaultDiffTimeout.
	DiffTimeout time.Duration
	// NoCache compares every object by a server-side dry-run, without the
	// watch-backed cache of live objects (kube.Cache) that decides
	// unchanged objects without a request.
	NoCache bool
	// SecretKeys decrypt SOPS-encrypted secrets files of a repository
	// loaded without keys (Sync and Diff call repo.Repo.UseKeys).
	SecretKeys secrets.Keys
}

func (c Config) withDefaults() Config {
	if c.RepoID == "" {
		c.RepoID = kube.DefaultRepoID
	}
	if c.InstanceID == "" {
		c.InstanceID = processInstance
	}
	c.InstanceID = kube.LabelValue(c.InstanceID)
	if c.StartedAt.IsZero() {
		c.StartedAt = processStart
	}
	if c.PendingTimeout <= 0 {
		c.PendingTimeout = DefaultPendingTimeout
	}
	if c.DiffTimeout <= 0 {
		c.DiffTimeout = DefaultDiffTimeout
	}
	return c
}

func (c Config) startedLabel() string { return strconv.FormatInt(c.StartedAt.Unix(), 10) }
