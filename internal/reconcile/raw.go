package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mygitops/mgo/internal/kube"
	"github.com/mygitops/mgo/internal/repo"
)

// syncRaw applies the raw manifests of the cluster (Namespaces and CRDs
// first, pruned through an inventory: kube.ApplyRaw); a dry run only
// compares them. Raw manifests unchanged since their last apply are not
// looked at again, except by a full sync.
func (e *Engine) syncRaw(ctx context.Context, r *repo.Repo, c *repo.Cluster, opts Options, res *Result, phase rawPhase) (later bool) {
	var objs []*unstructured.Unstructured
	h := sha256.New()
	deferred := false
	for _, rf := range c.Raw {
		deferred = deferred || len(rf.DependsOn) > 0
		for _, d := range rf.DependsOn {
			h.Write([]byte("after " + d.Key() + "\n")) // a new dependency is a change
		}
		for _, o := range rf.Objects {
			if phase == rawAll || len(rf.DependsOn) == 0 {
				objs = append(objs, &unstructured.Unstructured{Object: o.Object})
			}
			b, _ := json.Marshal(o.Object)
			h.Write(b)
		}
	}
	digest := hex.EncodeToString(h.Sum(nil))
	first := phase == rawFirst && deferred // the files without dependsOn now, the rest after their releases
	// A document left out for its errors is missing from objs: pruning
	// would delete its live object. Apply the rest, prune nothing, and
	// report the files.
	skipped := skippedRaw(r, c)
	e.mu.Lock()
	unchanged := e.rawDone == digest
	e.mu.Unlock()
	if unchanged && skipped == nil && !opts.Full && !opts.DryRun {
		return false // applied as they are at the last sync; drift checks are full syncs
	}
	if opts.DryRun {
		compared := map[string]bool{}
		for _, o := range res.Raw {
			compared[o.Subject] = true
		}
		for _, o := range objs {
			if compared[subject(o)] {
				continue // by the first phase of this dry run
			}
			cmp, err := e.compare(ctx, o, "", "")
			if err == nil {
				err = cmp.Immutable
			}
			if err != nil {
				res.RawError = err.Error()
				return false
			}
			res.Raw = append(res.Raw, ObjectResult{Subject: cmp.Subject, Action: ObjectAction(cmp.Action)})
		}
		if skipped != nil {
			res.RawError = skipped.Error()
		}
		return first
	}
	rawOpts := kube.DefaultRawOptions()
	rawOpts.Repo = e.cfg.RepoID
	if skipped != nil || first {
		rawOpts.Prune = false // the files applied later are in no inventory yet
	}
	raw, err := e.cluster.ApplyRaw(ctx, objs, rawOpts)
	if raw != nil {
		leftAlone := map[string]bool{}
		for _, s := range raw.LeftAlone {
			leftAlone[s] = true
		}
		before := map[string]bool{}
		for _, o := range res.Raw {
			before[o.Subject] = true
		}
		for _, en := range raw.ChangeSet.Entries {
			if before[en.Subject] && ObjectAction(en.Action) == ObjectUnchanged {
				continue // applied by the first phase of this sync
			}
			or := ObjectResult{Subject: en.Subject, Action: ObjectAction(en.Action)}
			if leftAlone[en.Subject] {
				or.Message = "left alone: applied by an older mgo without cluster and repository labels and no longer in the repository; not pruned (delete it by hand if it is not another instance's)"
			}
			res.Raw = append(res.Raw, or)
		}
		if len(raw.LeftAlone) > 0 {
			e.log.Warn("raw objects of an older mgo left alone", "objects", raw.LeftAlone)
		}
	}
	if err != nil {
		res.RawError = errors.Join(skipped, err).Error()
		return false
	}
	if skipped != nil {
		res.RawError = skipped.Error()
		return first // not done: the next sync tries again
	}
	if first {
		return true
	}
	e.mu.Lock()
	e.rawDone = digest
	e.mu.Unlock()
	return false
}

// rawPhase is which raw manifest files a call of syncRaw applies.
type rawPhase int

const (
	// rawFirst: before the releases, the files without dependsOn (all of
	// them when none has dependsOn).
	rawFirst rawPhase = iota
	// rawAll: every file, with pruning, once the releases the others
	// depend on are synced.
	rawAll
)

// rawBlocked names the raw files whose dependencies failed in this sync or
// in their last one; "" when every dependency is synced.
func (e *Engine) rawBlocked(c *repo.Cluster, o *releaseOrder, results []ReleaseResult, skipped []bool) string {
	var out []string
	for _, rf := range c.Raw {
		for _, d := range rf.DependsOn {
			stage, failed := Stage(""), false
			if j, ok := o.index[d.Key()]; ok {
				failed, stage = !skipped[j] && results[j].Action == Failed, results[j].Stage
			} else {
				e.mu.Lock()
				stage, failed = e.failedAt[d.Key()]
				e.mu.Unlock()
			}
			if failed {
				out = append(out, fmt.Sprintf("%s: not applied (nor anything pruned): depends on %s, which failed at %s", rf.File, d.Key(), stage))
				break
			}
		}
	}
	return strings.Join(out, "; ")
}

// skippedRaw reports the raw files of c with documents left out for their
// errors, naming each problem; nil when there are none.
func skippedRaw(r *repo.Repo, c *repo.Cluster) error {
	var errs []error
	for _, rf := range c.Raw {
		if rf.Skipped == 0 {
			continue
		}
		errs = append(errs, fmt.Errorf("%s: %d document(s) left out and nothing pruned: %s", rf.File, rf.Skipped, problemsOf(r, rf.File)))
	}
	return errors.Join(errs...)
}
