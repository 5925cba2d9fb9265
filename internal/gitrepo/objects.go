package gitrepo

import (
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// objects is the repository's object store with objects not written to it
// yet kept in memory on top: those of fetched commits and those of commits
// mgo built and has not pushed yet. Fetches land there and commits are
// built and pushed from there; only afterwards are the objects written to
// the repository (flush). So the time between the fetch that gives a change
// its base and the push that publishes it (when another pusher can get in
// first) holds no object writes, and the objects of an attempt that lost
// the race are simply dropped.
type objects struct {
	storer.EncodedObjectStorer // the repository's

	pending  map[plumbing.Hash]pendingObject
	order    []plumbing.Hash // insertion order
	fetching bool            // objects stored now come from the remote
}

type pendingObject struct {
	obj plumbing.EncodedObject
	// fetched objects came from the remote: drop keeps them.
	fetched bool
}

// flushPackMin is the number of objects from which flush writes one
// packfile instead of loose objects.
const flushPackMin = 512

// packLooseMin is the number of loose objects in the repository from which
// they are packed into one packfile.
const packLooseMin = 4096

func newObjectStore(s storer.EncodedObjectStorer) *objects {
	return &objects{EncodedObjectStorer: s, pending: map[plumbing.Hash]pendingObject{}}
}

// NewEncodedObject returns an in-memory object.
func (o *objects) NewEncodedObject() plumbing.EncodedObject { return &plumbing.MemoryObject{} }

// SetEncodedObject keeps obj in memory until flush or drop.
func (o *objects) SetEncodedObject(obj plumbing.EncodedObject) (plumbing.Hash, error) {
	h := obj.Hash()
	p, ok := o.pending[h]
	if !ok {
		o.order = append(o.order, h)
		p.obj = obj
	}
	p.fetched = p.fetched || o.fetching
	o.pending[h] = p
	return h, nil
}

// EncodedObject looks in memory first, then in the repository.
func (o *objects) EncodedObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	if p, ok := o.pending[h]; ok {
		if t != plumbing.AnyObject && p.obj.Type() != t {
			return nil, plumbing.ErrObjectNotFound
		}
		return p.obj, nil
	}
	return o.EncodedObjectStorer.EncodedObject(t, h)
}

// HasEncodedObject looks in memory first, then in the repository.
func (o *objects) HasEncodedObject(h plumbing.Hash) error {
	if _, ok := o.pending[h]; ok {
		return nil
	}
	return o.EncodedObjectStorer.HasEncodedObject(h)
}

// EncodedObjectSize looks in memory first, then in the repository.
func (o *objects) EncodedObjectSize(h plumbing.Hash) (int64, error) {
	if p, ok := o.pending[h]; ok {
		return p.obj.Size(), nil
	}
	return o.EncodedObjectStorer.EncodedObjectSize(h)
}

// IterEncodedObjects is not needed by mgo and not supported: it would miss
// the pending objects.
func (o *objects) IterEncodedObjects(plumbing.ObjectType) (storer.EncodedObjectIter, error) {
	return nil, errors.New("iterating objects is not supported")
}

// isPending reports whether h is only in memory.
func (o *objects) isPending(h plumbing.Hash) bool {
	_, ok := o.pending[h]
	return ok
}

// flush writes the pending objects the repository lacks to it (as loose
// objects, or one packfile when there are many) and forgets them. It
// returns how many loose objects it wrote.
func (o *objects) flush() (int, error) {
	var missing []plumbing.Hash
	for _, h := range o.order {
		if o.EncodedObjectStorer.HasEncodedObject(h) != nil {
			missing = append(missing, h)
		}
	}
	if pw, ok := o.EncodedObjectStorer.(storer.PackfileWriter); ok && len(missing) >= flushPackMin {
		if err := writePack(pw, o, missing); err != nil {
			return 0, fmt.Errorf("store objects: %w", err)
		}
		o.clear()
		return 0, nil
	}
	for _, h := range missing {
		if _, err := o.EncodedObjectStorer.SetEncodedObject(o.pending[h].obj); err != nil {
			return 0, fmt.Errorf("store object %s: %w", h, err)
		}
	}
	o.clear()
	return len(missing), nil
}

// writePack writes the objects hs of s as one packfile (with deltas) into
// the repository through pw.
func writePack(pw storer.PackfileWriter, s storer.EncodedObjectStorer, hs []plumbing.Hash) error {
	w, err := pw.PackfileWriter()
	if err != nil {
		return err
	}
	_, err = packfile.NewEncoder(w, s, false).Encode(hs, 10)
	if cerr := w.Close(); err == nil {
		err = cerr // the index is built on close
	}
	return err
}

func (o *objects) clear() {
	clear(o.pending)
	o.order = o.order[:0]
}

// drop forgets the pending objects mgo built (not the fetched ones).
func (o *objects) drop() {
	kept := o.order[:0]
	for _, h := range o.order {
		if o.pending[h].fetched {
			kept = append(kept, h)
		} else {
			delete(o.pending, h)
		}
	}
	o.order = kept
}
