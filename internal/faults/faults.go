// Package faults lets the fault tests kill mgo at a named point of its
// work, as a crash or `kill -9` would, to prove that nothing is lost or left
// half done. A point does nothing unless the process was started with
// MGO_FAULT_KILL_AT naming it; production never sets it.
package faults

import (
	"os"
	"sync"
	"syscall"
)

// EnvKillAt names the point at which the process kills itself.
const EnvKillAt = "MGO_FAULT_KILL_AT"

// The points, in the order a deploy reaches them.
const (
	// AfterCommit: the deploy's commit exists in the local clone, the push
	// has not started.
	AfterCommit = "after-commit"
	// AfterPush: the commit is on the remote, the cluster's sync has not
	// started.
	AfterPush = "after-push"
	// HelmUpgrade: Helm has stored the new revision as pending-upgrade and
	// has not applied its objects yet.
	HelmUpgrade = "helm-upgrade"
	// RolloutWait: the objects are applied and mgo waits for the rollout.
	RolloutWait = "rollout-wait"
)

var killAt = sync.OnceValue(func() string { return os.Getenv(EnvKillAt) })

// Point kills the process with SIGKILL when it is the point named by
// MGO_FAULT_KILL_AT.
func Point(name string) {
	if at := killAt(); at != "" && at == name {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
