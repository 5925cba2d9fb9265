package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketDeployments = []byte("deployments")
	bucketIdempotency = []byte("idempotency")
)

// Store keeps deployment records in a bbolt file, so they survive a restart.
// bbolt is one file, needs no server, and its transactions make a record
// and its idempotency key appear together or not at all.
type Store struct {
	db *bolt.DB
}

// OpenStore opens (or creates) the store file at path. Only one process may
// have it open; a second one fails after a second instead of waiting.
func OpenStore(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("deployment store: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("deployment store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketDeployments, bucketIdempotency} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("deployment store %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

func idemKey(client, key string) []byte { return []byte(client + "\x00" + key) }

// Create stores a new deployment. When d.Request has an idempotency key
// already used by the same client, nothing is stored and the earlier
// deployment is returned with existing=true.
func (s *Store) Create(d *Deployment) (prev *Deployment, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		if k := d.Request.IdempotencyKey; k != "" {
			ib := tx.Bucket(bucketIdempotency)
			if id := ib.Get(idemKey(d.Request.Client, k)); id != nil {
				prev = &Deployment{}
				return json.Unmarshal(tx.Bucket(bucketDeployments).Get(id), prev)
			}
			if err := ib.Put(idemKey(d.Request.Client, k), []byte(d.ID)); err != nil {
				return err
			}
		}
		return put(tx, d)
	})
	return prev, err
}

// Put stores d, replacing the record of the same id.
func (s *Store) Put(d *Deployment) error {
	return s.db.Update(func(tx *bolt.Tx) error { return put(tx, d) })
}

func put(tx *bolt.Tx, d *Deployment) error {
	d.Seconds = d.Times.Durations()
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketDeployments).Put([]byte(d.ID), b)
}

// Get returns the deployment with id, or ErrNotFound.
func (s *Store) Get(id string) (*Deployment, error) {
	var d *Deployment
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDeployments).Get([]byte(id))
		if b == nil {
			return fmt.Errorf("%w: no deployment %q", ErrNotFound, id)
		}
		d = &Deployment{}
		return json.Unmarshal(b, d)
	})
	return d, err
}

// List returns up to limit deployments, newest first.
func (s *Store) List(limit int) ([]*Deployment, error) {
	var out []*Deployment
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDeployments).Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			d := &Deployment{}
			if err := json.Unmarshal(v, d); err != nil {
				return fmt.Errorf("record %s: %w", k, err)
			}
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

// Interrupted marks every deployment that is not finished as failed: it was
// in flight when mgo stopped. Git and the cluster say what became of it.
func (s *Store) Interrupted(now time.Time) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		var todo []*Deployment
		err := tx.Bucket(bucketDeployments).ForEach(func(_, v []byte) error {
			d := &Deployment{}
			if err := json.Unmarshal(v, d); err != nil {
				return err
			}
			if !d.Status.Terminal() {
				todo = append(todo, d)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, d := range todo {
			d.Error = fmt.Sprintf("mgo stopped before the deployment finished (it was %s; commit %q)", d.Status, d.Commit)
			d.Status, d.Times.Finished = Failed, now
			if err := put(tx, d); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}
