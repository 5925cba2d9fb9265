package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketDeployments = []byte("deployments")
	bucketIdempotency = []byte("idempotency")
)

// BoltStore keeps deployment records in a bbolt file, so they survive a
// restart. bbolt is one file, needs no server, and its transactions make a
// record and its idempotency key appear together or not at all. It is the
// Store of one mgo: only one process may open the file.
type BoltStore struct {
	db *bolt.DB
	// recovered is set when the file was corrupt and moved aside.
	recovered *Recovery
}

// Recovery says that the store file was corrupt, where it was moved and
// why; the store then started empty.
type Recovery struct {
	MovedTo string
	Cause   error
}

// OpenStore opens (or creates) the store file at path. Only one process may
// have it open; a second one fails after a second instead of waiting.
//
// A corrupt file (bbolt refuses it, panics on it, or its pages or records
// do not check out) is renamed to <path>.corrupt-<UTC time> and an empty
// store is started in its place: the git history (Deployment-Id trailers)
// still says what was deployed. Recovered reports it, for the log.
func OpenStore(path string) (*BoltStore, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("deployment store: %w", err)
	}
	db, err := openChecked(path)
	if err == nil {
		return &BoltStore{db: db}, nil
	}
	var ce *corruptError
	if !errors.As(err, &ce) {
		return nil, fmt.Errorf("deployment store %s: %w", path, err)
	}
	aside := fmt.Sprintf("%s.corrupt-%s", path, time.Now().UTC().Format("20060102T150405.000000000Z"))
	if err := os.Rename(path, aside); err != nil {
		return nil, fmt.Errorf("deployment store %s is corrupt (%v) and cannot be moved aside: %w", path, ce.cause, err)
	}
	db, err = openChecked(path)
	if err != nil {
		return nil, fmt.Errorf("deployment store %s (new, after moving a corrupt one to %s): %w", path, aside, err)
	}
	return &BoltStore{db: db, recovered: &Recovery{MovedTo: aside, Cause: ce.cause}}, nil
}

// Recovered returns what OpenStore did with a corrupt file, or nil.
func (s *BoltStore) Recovered() *Recovery { return s.recovered }

// corruptError is a store file that cannot be used.
type corruptError struct{ cause error }

func (e *corruptError) Error() string { return "corrupt: " + e.cause.Error() }

// openChecked opens the file, creates the buckets and checks every page
// and record. bbolt panics on some corrupt pages instead of returning an
// error; those panics are recovered and reported as corruption.
func openChecked(path string) (db *bolt.DB, err error) {
	// bbolt reads the file through mmap: a corrupt page can send it to an
	// address outside the mapping, a memory fault that would kill the
	// process. In this goroutine it becomes a panic, recovered below.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			// A panic inside bolt.Open leaves its file handle open; the file
			// is moved aside and a new one created, so it does no harm.
			if db != nil {
				_ = db.Close()
			}
			db, err = nil, &corruptError{fmt.Errorf("bbolt panicked: %v", r)}
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrInvalid) || errors.Is(err, bolt.ErrChecksum) || errors.Is(err, bolt.ErrVersionMismatch) ||
			errors.Is(err, bolt.ErrInvalidMapping) || isTruncated(path) {
			return nil, &corruptError{err}
		}
		return nil, err
	}
	if err := check(db); err != nil {
		db.Close()
		db = nil
		return nil, &corruptError{err}
	}
	return db, nil
}

func createBuckets(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketDeployments, bucketIdempotency} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
}

// isTruncated reports a file shorter than bbolt's two meta pages.
func isTruncated(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Size() < 2*int64(os.Getpagesize())
}

// check walks every page (tx.Check) and decodes every record, then
// creates the buckets of a new store.
func check(db *bolt.DB) error {
	err := db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			if len(errs) < 5 {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		if b := tx.Bucket(bucketDeployments); b != nil {
			err := b.ForEach(func(k, v []byte) error {
				var d Deployment
				if err := json.Unmarshal(v, &d); err != nil {
					return fmt.Errorf("record %q: %w", k, err)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return createBuckets(db)
}

// Close closes the file.
func (s *BoltStore) Close() error { return s.db.Close() }

func idemKey(client, key string) []byte { return []byte(client + "\x00" + key) }

// Lookup returns the deployment an idempotency key of a client points at,
// or nil.
func (s *BoltStore) Lookup(client, key string) (*Deployment, error) {
	var d *Deployment
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		d, err = lookup(tx, client, key)
		return err
	})
	return d, err
}

func lookup(tx *bolt.Tx, client, key string) (*Deployment, error) {
	id := tx.Bucket(bucketIdempotency).Get(idemKey(client, key))
	if id == nil {
		return nil, nil
	}
	b := tx.Bucket(bucketDeployments).Get(id)
	if b == nil {
		return nil, nil // a key whose record is gone is free again
	}
	d := &Deployment{}
	return d, json.Unmarshal(b, d)
}

// Create stores a new deployment. When d.Request has an idempotency key
// the same client already used, the earlier deployment is returned and
// nothing is stored, unless the earlier one failed and asked for the same
// thing: then d is stored and the key points at it, so a retry after a
// failure can succeed.
func (s *BoltStore) Create(d *Deployment) (prev *Deployment, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		if k := d.Request.IdempotencyKey; k != "" {
			old, err := lookup(tx, d.Request.Client, k)
			if err != nil {
				return err
			}
			if old != nil && (old.Status != Failed || !sameRequest(old.Request, d.Request)) {
				prev = old
				return nil
			}
			if err := tx.Bucket(bucketIdempotency).Put(idemKey(d.Request.Client, k), []byte(d.ID)); err != nil {
				return err
			}
		}
		return put(tx, d)
	})
	return prev, err
}

// Put stores d, replacing the record of the same id unless that one is
// finished (ErrFinished).
func (s *BoltStore) Put(d *Deployment) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketDeployments).Get([]byte(d.ID)); b != nil {
			var old Deployment
			if err := json.Unmarshal(b, &old); err != nil {
				return fmt.Errorf("record %s: %w", d.ID, err)
			}
			if old.Status.Terminal() {
				return fmt.Errorf("%w: deployment %s is %s", ErrFinished, d.ID, old.Status)
			}
		}
		return put(tx, d)
	})
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
func (s *BoltStore) Get(id string) (*Deployment, error) {
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

// List returns up to limit deployments for which keep is true (every one
// when keep is nil), newest first. The filter runs during the scan, so a
// caller who may see few deployments still gets up to limit of them.
func (s *BoltStore) List(limit int, keep func(*Deployment) bool) ([]*Deployment, error) {
	var out []*Deployment
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDeployments).Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			d := &Deployment{}
			if err := json.Unmarshal(v, d); err != nil {
				return fmt.Errorf("record %s: %w", k, err)
			}
			if keep == nil || keep(d) {
				out = append(out, d)
			}
		}
		return nil
	})
	return out, err
}

// Since returns up to limit deployments asked for at or after t, oldest
// first. Their ids start with the time they were queued, so it reads only
// those records, however many older ones the file holds.
func (s *BoltStore) Since(t time.Time, limit int) ([]*Deployment, error) {
	var out []*Deployment
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDeployments).Cursor()
		for k, v := c.Seek([]byte(t.UTC().Format(IDTimeLayout))); k != nil && len(out) < limit; k, v = c.Next() {
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
// in flight when mgo stopped (promotion candidates and held deploys
// excepted: internal/promote continues them). Git and the cluster say what became of it; a
// retry with its idempotency key starts a new deployment.
func (s *BoltStore) Interrupted(now time.Time) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		var todo []*Deployment
		err := tx.Bucket(bucketDeployments).ForEach(func(_, v []byte) error {
			d := &Deployment{}
			if err := json.Unmarshal(v, d); err != nil {
				return err
			}
			// Candidates and the deploys held behind them wait for no process:
			// the promoter takes them up again from their records.
			if !d.Status.Terminal() && d.Status != Promoting && d.Status != Held {
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

// Collect deletes finished deployments older than maxAge and beyond the
// newest keep, with the idempotency keys that point at them.
func (s *BoltStore) Collect(now time.Time, maxAge time.Duration, keep int) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDeployments)
		gone := map[string]bool{}
		kept := 0
		c := b.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			d := &Deployment{}
			if err := json.Unmarshal(v, d); err != nil {
				return fmt.Errorf("record %s: %w", k, err)
			}
			if !d.Status.Terminal() {
				continue
			}
			if expired(d, now, maxAge) || (keep > 0 && kept >= keep) {
				gone[string(k)] = true
				continue
			}
			kept++
		}
		for id := range gone {
			if err := b.Delete([]byte(id)); err != nil {
				return err
			}
		}
		keys := tx.Bucket(bucketIdempotency)
		var stale [][]byte
		err := keys.ForEach(func(k, v []byte) error {
			if gone[string(v)] {
				stale = append(stale, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := keys.Delete(k); err != nil {
				return err
			}
		}
		n = len(gone)
		return nil
	})
	return n, err
}

// expired reports a finished deployment that finished more than maxAge
// before now (never when maxAge is 0).
func expired(d *Deployment, now time.Time, maxAge time.Duration) bool {
	if maxAge <= 0 {
		return false
	}
	at := d.Times.Finished
	if at.IsZero() {
		at = d.Times.Queued
	}
	return now.Sub(at) > maxAge
}

// Expired reports whether Collect with maxAge deletes the finished
// deployment d at now; for other implementations of Store.
func Expired(d *Deployment, now time.Time, maxAge time.Duration) bool {
	return d.Status.Terminal() && expired(d, now, maxAge)
}

// Path is the store file.
func (s *BoltStore) Path() string { return s.db.Path() }
