package gitrepo

import (
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// objects is the repository's object store with the objects of commits not
// pushed yet kept in memory on top. Commits are built there and pushed from
// there; only once a push has landed are its objects written to the
// repository (flush). So the time between the fetch that gives a change its
// base and the push that publishes it (when another pusher can get in
// first) holds no file writes of git objects, and the objects of an attempt
// that lost the race are simply dropped.
type objects struct {
	storer.EncodedObjectStorer // the repository's

	pending map[plumbing.Hash]plumbing.EncodedObject
	order   []plumbing.Hash // insertion order, for flush
}

func newObjectStore(s storer.EncodedObjectStorer) *objects {
	return &objects{EncodedObjectStorer: s, pending: map[plumbing.Hash]plumbing.EncodedObject{}}
}

// NewEncodedObject returns an in-memory object.
func (o *objects) NewEncodedObject() plumbing.EncodedObject { return &plumbing.MemoryObject{} }

// SetEncodedObject keeps obj in memory until flush or drop.
func (o *objects) SetEncodedObject(obj plumbing.EncodedObject) (plumbing.Hash, error) {
	h := obj.Hash()
	if _, ok := o.pending[h]; !ok {
		o.pending[h] = obj
		o.order = append(o.order, h)
	}
	return h, nil
}

// EncodedObject looks in memory first, then in the repository.
func (o *objects) EncodedObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	if obj, ok := o.pending[h]; ok {
		if t != plumbing.AnyObject && obj.Type() != t {
			return nil, plumbing.ErrObjectNotFound
		}
		return obj, nil
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
	if obj, ok := o.pending[h]; ok {
		return obj.Size(), nil
	}
	return o.EncodedObjectStorer.EncodedObjectSize(h)
}

// IterEncodedObjects is not needed by mgo and not supported: it would miss
// the pending objects.
func (o *objects) IterEncodedObjects(plumbing.ObjectType) (storer.EncodedObjectIter, error) {
	return nil, errors.New("iterating objects is not supported")
}

// flush writes the pending objects the repository lacks to it and forgets
// them.
func (o *objects) flush() error {
	for _, h := range o.order {
		if o.EncodedObjectStorer.HasEncodedObject(h) == nil {
			continue
		}
		if _, err := o.EncodedObjectStorer.SetEncodedObject(o.pending[h]); err != nil {
			return fmt.Errorf("store object %s: %w", h, err)
		}
	}
	o.drop()
	return nil
}

// drop forgets the pending objects.
func (o *objects) drop() {
	clear(o.pending)
	o.order = o.order[:0]
}
