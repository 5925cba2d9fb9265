package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mygitops/mgo/internal/kube"
	"github.com/mygitops/mgo/internal/repo"
)

// syncRaw applies the raw manifests of the cluster (Namespaces and CRDs
// first, pruned through an inventory: kube.ApplyRaw); a dry run only
// compares them. Raw manifests unchanged since their last apply are not
// looked at again, except by a full sync.
func (e *Engine) syncRaw(ctx context.Context, r *repo.Repo, c *repo.Cluster, opts Options, res *Result) {
	var objs []*unstructured.Unstructured
	h := sha256.New()
	for _, rf := range c.Raw {
		for _, o := range rf.Objects {
			objs = append(objs, &unstructured.Unstructured{Object: o.Object})
			b, _ := json.Marshal(o.Object)
			h.Write(b)
		}
	}
	digest := hex.EncodeToString(h.Sum(nil))
	// A document left out for its errors is missing from objs: pruning
	// would delete its live object. Apply the rest, prune nothing, and
	// report the files.
	skipped := skippedRaw(r, c)
	e.mu.Lock()
	unchanged := e.rawDone == digest
	e.mu.Unlock()
	if unchanged && skipped == nil && !opts.Full && !opts.DryRun {
		return // applied as they are at the last sync; drift checks are full syncs
	}
	if opts.DryRun {
		for _, o := range objs {
			cmp, err := e.compare(ctx, o, "", "")
			if err == nil {
				err = cmp.Immutable
			}
			if err != nil {
				res.RawError = err.Error()
				return
			}
			res.Raw = append(res.Raw, ObjectResult{Subject: cmp.Subject, Action: ObjectAction(cmp.Action)})
		}
		if skipped != nil {
			res.RawError = skipped.Error()
		}
		return
	}
	rawOpts := kube.DefaultRawOptions()
	rawOpts.Repo = e.cfg.RepoID
	if skipped != nil {
		rawOpts.Prune = false
	}
	raw, err := e.cluster.ApplyRaw(ctx, objs, rawOpts)
	if raw != nil {
		leftAlone := map[string]bool{}
		for _, s := range raw.LeftAlone {
			leftAlone[s] = true
		}
		for _, en := range raw.ChangeSet.Entries {
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
		return
	}
	if skipped != nil {
		res.RawError = skipped.Error()
		return // not done: the next sync tries again
	}
	e.mu.Lock()
	e.rawDone = digest
	e.mu.Unlock()
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
