package reconcile

import (
	"github.com/mygitops/mgo/internal/health"
	"github.com/mygitops/mgo/internal/repo"
)

// Health rules (internal/health): the status of the objects of a kind, in
// place of kstatus, by CEL expressions of the release header's health and
// its cluster's in mygitops.yaml, a release's rule for an apiVersion and
// kind replacing its cluster's. Every status the engine computes of a
// release's objects goes through them: the rollout wait (waitCurrent),
// the statuses of a result and of Live (objectStatus), a restart's wait.

// healthFor compiles the rules of a release and keeps them for Live and
// Restart, which know the release by its name only.
func (e *Engine) healthFor(r *repo.Repo, rel *repo.Release) (*health.Rules, error) {
	var rules []health.Rule
	if r != nil && r.Config != nil {
		for _, h := range r.Config.Cluster(e.cluster.Name).Health {
			rules = append(rules, h.Rule())
		}
	}
	for _, h := range rel.Header.Health {
		rules = append(rules, h.Rule())
	}
	compiled, err := health.Compile(rules)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.health[rel.Header.Namespace+"/"+rel.Header.Name] = compiled
	e.mu.Unlock()
	return compiled, nil
}

// clusterHealth compiles the cluster's rules and keeps them for the
// releases the engine has not synced yet.
func (e *Engine) clusterHealth(r *repo.Repo) {
	var rules []health.Rule
	for _, h := range r.Config.Cluster(e.cluster.Name).Health {
		rules = append(rules, h.Rule())
	}
	compiled, err := health.Compile(rules)
	if err != nil {
		return // checked when loaded: the releases are not synced
	}
	e.mu.Lock()
	e.healthOfCluster = compiled
	e.mu.Unlock()
}

// liveHealth are the rules of a release as of its last sync, or its
// cluster's as of the last sync.
func (e *Engine) liveHealth(namespace, name string) *health.Rules {
	e.mu.Lock()
	defer e.mu.Unlock()
	if h, ok := e.health[namespace+"/"+name]; ok {
		return h
	}
	return e.healthOfCluster
}
