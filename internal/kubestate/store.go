// Package kubestate keeps deployment records as DeployRecord custom
// resources in mgo's namespace, so several mgo replicas share them: the
// deploy.Store of `mgo serve --state kubernetes`.
//
// An idempotency key is the object's name (k-<hash of client and key>-<n>,
// n counting retries after failures), so two replicas that receive the same
// key at once create one record: the API server refuses the second create.
// Updates carry the resourceVersion they read (optimistic concurrency); a
// finished record is never replaced. Reads come from a watch-fed cache, so a
// deploy costs only its writes; Watch tells the service of records other
// replicas changed.
package kubestate

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/yaml"

	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/kube"
)

// CRD is the CustomResourceDefinition of DeployRecord (also in
// charts/mgo/crds/).
//
//go:embed crd.yaml
var CRD []byte

// Resource is the DeployRecord resource.
var Resource = schema.GroupVersionResource{Group: "mgo.io", Version: "v1alpha1", Resource: "deployrecords"}

const (
	kind         = "DeployRecord"
	labelID      = "mgo.io/deployment-id"
	labelKey     = "mgo.io/idempotency-key"
	labelReplica = "mgo.io/replica"
	labelCluster = "mgo.io/cluster"
	// maxAttempts bounds the create and update loops that lost a race.
	maxAttempts = 10
)

// Options configure a Store.
type Options struct {
	// Namespace holds the records (mgo's own namespace).
	Namespace string
	// Replica names this mgo process; the records it creates carry it.
	Replica string
	// Live reports whether the replica of that name still runs (its
	// heartbeat Lease is fresh). Interrupted fails the queued records of
	// replicas that do not. Nil: only this replica runs.
	Live func(replica string) bool
	Log  *slog.Logger
}

// Store is a deploy.Store and deploy.Watcher on the Kubernetes API.
type Store struct {
	opts     Options
	client   dynamic.ResourceInterface
	requests *kube.RequestCounter
	stop     context.CancelFunc
	done     chan struct{}

	mu       sync.Mutex
	records  map[string]*record // by object name
	byID     map[string]string  // deployment id -> object name
	watchers []func(*deploy.Deployment)
}

// record is a cached object.
type record struct {
	name    string
	rv      string
	key     string // hash label, "" without an idempotency key
	attempt int
	replica string // the replica that created it
	d       *deploy.Deployment
}

var _ deploy.Store = (*Store)(nil)
var _ deploy.Watcher = (*Store)(nil)

// Open connects to the API server of cfg, lists the records of the
// namespace and keeps watching them. The CRD must be installed.
func Open(ctx context.Context, cfg *rest.Config, opts Options) (*Store, error) {
	if opts.Namespace == "" {
		return nil, errors.New("kubernetes state: a namespace is required (--namespace or $POD_NAMESPACE)")
	}
	if opts.Replica == "" {
		return nil, errors.New("kubernetes state: a replica name is required")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	reqs := &kube.RequestCounter{}
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(reqs.Wrap)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes state: %w", err)
	}
	s := &Store{opts: opts, client: dc.Resource(Resource).Namespace(opts.Namespace), requests: reqs,
		records: map[string]*record{}, byID: map[string]string{}, done: make(chan struct{})}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return s.client.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return s.client.Watch(ctx, o)
		},
	}
	inf := cache.NewSharedIndexInformer(lw, &unstructured.Unstructured{}, 0, cache.Indexers{})
	// The informer's copy of each object is only a resync source here (the
	// records live decoded in s.records): keep it small.
	if err := inf.SetTransform(slim); err != nil {
		return nil, err
	}
	_, err = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.observe(obj) },
		UpdateFunc: func(_, obj any) { s.observe(obj) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if u, ok := obj.(*unstructured.Unstructured); ok {
				s.forget(u.GetName())
			}
		},
	})
	if err != nil {
		return nil, err
	}
	ictx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go func() { inf.RunWithContext(ictx); close(s.done) }()
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	if !cache.WaitForCacheSync(wctx.Done(), inf.HasSynced) {
		cancel()
		<-s.done
		// Say why: one direct list shows a missing CRD or missing rights.
		if _, err := s.client.List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
			return nil, fmt.Errorf("kubernetes state in namespace %s: %w (is the DeployRecord CRD of charts/mgo/crds installed?)", opts.Namespace, err)
		}
		return nil, fmt.Errorf("kubernetes state in namespace %s: the record cache did not sync", opts.Namespace)
	}
	return s, nil
}

// Requests counts the API requests of the store.
func (s *Store) Requests() *kube.RequestCounter { return s.requests }

// Close stops the watch.
func (s *Store) Close() error {
	s.stop()
	<-s.done
	return nil
}

// Recovered is always nil: the API server keeps the records.
func (s *Store) Recovered() *deploy.Recovery { return nil }

// Watch calls fn with every record created or changed, until ctx ends.
func (s *Store) Watch(ctx context.Context, fn func(*deploy.Deployment)) {
	s.mu.Lock()
	i := len(s.watchers)
	s.watchers = append(s.watchers, fn)
	s.mu.Unlock()
	go func() {
		<-ctx.Done()
		s.mu.Lock()
		s.watchers[i] = nil
		s.mu.Unlock()
	}()
}

// observe takes an object from the watch (or a write) into the cache,
// unless the cache already holds a newer version of it.
func (s *Store) observe(obj any) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	r, err := decode(u)
	if err != nil {
		s.opts.Log.Warn("kubernetes state: a DeployRecord that is not a deployment record is left out", "name", u.GetName(), "error", err)
		return
	}
	s.mu.Lock()
	if old := s.records[r.name]; old != nil && newer(old.rv, r.rv) {
		s.mu.Unlock()
		return
	}
	s.records[r.name] = r
	s.byID[r.d.ID] = r.name
	var fns []func(*deploy.Deployment)
	for _, fn := range s.watchers {
		if fn != nil {
			fns = append(fns, fn)
		}
	}
	s.mu.Unlock()
	for _, fn := range fns {
		fn(copyOf(r.d))
	}
}

func (s *Store) forget(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.records[name]; r != nil {
		delete(s.byID, r.d.ID)
		delete(s.records, name)
	}
}

// newer reports whether resourceVersion a is newer than b. They are
// etcd revisions; other forms are taken as not newer.
func newer(a, b string) bool {
	x, err1 := strconv.ParseUint(a, 10, 64)
	y, err2 := strconv.ParseUint(b, 10, 64)
	return err1 == nil && err2 == nil && x > y
}

// slimSpec holds the spec as compact JSON in an object the informer keeps.
const slimSpec = "mgo.io/spec-json"

// slim drops the managed fields and stores the spec as one JSON string:
// nested maps of interfaces cost ten times their JSON in memory.
func slim(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	if spec, ok := u.Object["spec"]; ok {
		b, err := json.Marshal(spec)
		if err != nil {
			return nil, err
		}
		delete(u.Object, "spec")
		u.Object[slimSpec] = string(b)
	}
	u.SetManagedFields(nil)
	return u, nil
}

func decode(u *unstructured.Unstructured) (*record, error) {
	var b []byte
	if s, ok := u.Object[slimSpec].(string); ok {
		b = []byte(s)
	} else if spec, ok := u.Object["spec"]; ok {
		var err error
		if b, err = json.Marshal(spec); err != nil {
			return nil, err
		}
	} else {
		return nil, errors.New("no spec")
	}
	d := &deploy.Deployment{}
	if err := json.Unmarshal(b, d); err != nil {
		return nil, err
	}
	if d.ID == "" {
		return nil, errors.New("spec.id is empty")
	}
	r := &record{name: u.GetName(), rv: u.GetResourceVersion(), key: u.GetLabels()[labelKey],
		replica: u.GetLabels()[labelReplica], d: d}
	if r.key != "" {
		r.attempt, _ = strconv.Atoi(r.name[strings.LastIndex(r.name, "-")+1:])
	}
	return r, nil
}

// encode is the object of d under name.
func (s *Store) encode(d *deploy.Deployment, name, key, replica, rv string) (*unstructured.Unstructured, error) {
	d.Seconds = d.Times.Durations()
	b, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	var spec map[string]any
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetAPIVersion(Resource.GroupVersion().String())
	u.SetKind(kind)
	u.SetName(name)
	u.SetNamespace(s.opts.Namespace)
	u.SetResourceVersion(rv)
	labels := map[string]string{labelID: d.ID, labelReplica: replica}
	if c := labelValue(d.Request.Cluster); c == d.Request.Cluster {
		labels[labelCluster] = c
	}
	if key != "" {
		labels[labelKey] = key
	}
	u.SetLabels(labels)
	return u, nil
}

// replica is this replica's name as a label value.
func (s *Store) replica() string { return labelValue(s.opts.Replica) }

// labelValue cuts v to a valid label value (63 characters).
func labelValue(v string) string {
	if len(v) > 63 {
		v = strings.TrimRight(v[:63], "-_.")
	}
	return v
}

// keyHash names an idempotency key of a client: 20 hex digits of its
// SHA-256, a valid object name part and label value.
func keyHash(client, key string) string {
	sum := sha256.Sum256([]byte(client + "\x00" + key))
	return hex.EncodeToString(sum[:10])
}

func keyName(hash string, attempt int) string { return fmt.Sprintf("k-%s-%d", hash, attempt) }

// idName is the object name of a deployment without an idempotency key.
func idName(id string) string { return "d-" + strings.ToLower(id) }

// latest returns the newest attempt cached under a key hash.
func (s *Store) latest(hash string) *record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *record
	for _, r := range s.records {
		if r.key == hash && (best == nil || r.attempt > best.attempt) {
			best = r
		}
	}
	return best
}

// Lookup returns the deployment the key points at, or nil.
func (s *Store) Lookup(client, key string) (*deploy.Deployment, error) {
	hash := keyHash(client, key)
	if r := s.latest(hash); r != nil {
		return copyOf(r.d), nil
	}
	// Not cached (yet): ask the API server, another replica may have
	// created it a moment ago.
	list, err := s.client.List(context.Background(), metav1.ListOptions{LabelSelector: labelKey + "=" + hash})
	if err != nil {
		return nil, fmt.Errorf("kubernetes state: %w", err)
	}
	for i := range list.Items {
		s.observe(&list.Items[i])
	}
	if r := s.latest(hash); r != nil {
		return copyOf(r.d), nil
	}
	return nil, nil
}

// Create stores d. With an idempotency key, the API server's refusal to
// create an object name twice decides which of two concurrent creates
// stores its record.
func (s *Store) Create(d *deploy.Deployment) (*deploy.Deployment, error) {
	ctx := context.Background()
	k := d.Request.IdempotencyKey
	if k == "" {
		u, err := s.encode(d, idName(d.ID), "", s.replica(), "")
		if err != nil {
			return nil, err
		}
		return nil, s.create(ctx, u)
	}
	hash := keyHash(d.Request.Client, k)
	for range maxAttempts {
		attempt := 1
		if cur := s.latest(hash); cur != nil {
			if cur.d.Status != deploy.Failed || !deploy.SameRequest(cur.d.Request, d.Request) {
				return copyOf(cur.d), nil
			}
			attempt = cur.attempt + 1
		}
		name := keyName(hash, attempt)
		u, err := s.encode(d, name, hash, s.replica(), "")
		if err != nil {
			return nil, err
		}
		err = s.create(ctx, u)
		if !apierrors.IsAlreadyExists(err) {
			return nil, err
		}
		// Another replica created it first: read it and decide again.
		got, err := s.client.Get(ctx, name, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("kubernetes state: %w", err)
		}
		if err == nil {
			s.observe(got)
		}
	}
	return nil, fmt.Errorf("kubernetes state: idempotency key %q: gave up after %d races with other replicas", k, maxAttempts)
}

func (s *Store) create(ctx context.Context, u *unstructured.Unstructured) error {
	got, err := s.client.Create(ctx, u, metav1.CreateOptions{})
	if err != nil {
		if apierrors.IsAlreadyExists(err) {
			return err
		}
		return fmt.Errorf("kubernetes state: creating %s: %w", u.GetName(), err)
	}
	s.observe(got)
	return nil
}

// Put replaces the record of d.ID with d, unless it is finished
// (deploy.ErrFinished). The update names the resourceVersion it read: a
// record another replica changed meanwhile is read again and checked again.
func (s *Store) Put(d *deploy.Deployment) error {
	ctx := context.Background()
	r, err := s.find(ctx, d.ID)
	if err != nil {
		return err
	}
	for range maxAttempts {
		if r.d.Status.Terminal() {
			return fmt.Errorf("%w: deployment %s is %s", deploy.ErrFinished, d.ID, r.d.Status)
		}
		u, err := s.encode(copyOf(d), r.name, r.key, r.replica, r.rv)
		if err != nil {
			return err
		}
		got, err := s.client.Update(ctx, u, metav1.UpdateOptions{})
		if err == nil {
			s.observe(got)
			d.Seconds = d.Times.Durations()
			return nil
		}
		if !apierrors.IsConflict(err) {
			return fmt.Errorf("kubernetes state: updating %s: %w", r.name, err)
		}
		fresh, err := s.client.Get(ctx, r.name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("kubernetes state: %w", err)
		}
		s.observe(fresh)
		if r, err = decode(fresh); err != nil {
			return fmt.Errorf("kubernetes state: %s: %w", r.name, err)
		}
	}
	return fmt.Errorf("kubernetes state: deployment %s: gave up after %d conflicting updates", d.ID, maxAttempts)
}

// find returns the cached record of a deployment id, asking the API server
// when it is not cached (yet).
func (s *Store) find(ctx context.Context, id string) (*record, error) {
	s.mu.Lock()
	name, ok := s.byID[id]
	r := s.records[name]
	s.mu.Unlock()
	if ok && r != nil {
		return r, nil
	}
	list, err := s.client.List(ctx, metav1.ListOptions{LabelSelector: labelID + "=" + labelValue(id)})
	if err != nil {
		return nil, fmt.Errorf("kubernetes state: %w", err)
	}
	for i := range list.Items {
		s.observe(&list.Items[i])
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.records[s.byID[id]]; r != nil {
		return r, nil
	}
	return nil, fmt.Errorf("%w: no deployment %q", deploy.ErrNotFound, id)
}

// Get returns the deployment with id, or deploy.ErrNotFound.
func (s *Store) Get(id string) (*deploy.Deployment, error) {
	r, err := s.find(context.Background(), id)
	if err != nil {
		return nil, err
	}
	return copyOf(r.d), nil
}

// snapshot returns the cached deployments, newest first.
func (s *Store) snapshot() []*record {
	s.mu.Lock()
	out := make([]*record, 0, len(s.records))
	for _, r := range s.records {
		out = append(out, r)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b *record) int { return strings.Compare(b.d.ID, a.d.ID) })
	return out
}

// List returns up to limit deployments for which keep is true, newest
// first, from the cache.
func (s *Store) List(limit int, keep func(*deploy.Deployment) bool) ([]*deploy.Deployment, error) {
	var out []*deploy.Deployment
	for _, r := range s.snapshot() {
		if len(out) >= limit {
			break
		}
		if keep == nil || keep(r.d) {
			out = append(out, copyOf(r.d))
		}
	}
	return out, nil
}

// Since returns up to limit deployments asked for at or after t, oldest
// first, from the cache.
func (s *Store) Since(t time.Time, limit int) ([]*deploy.Deployment, error) {
	from := t.UTC().Format(deploy.IDTimeLayout)
	recs := s.snapshot() // newest first
	var out []*deploy.Deployment
	for i := len(recs) - 1; i >= 0 && len(out) < limit; i-- {
		if recs[i].d.ID >= from {
			out = append(out, copyOf(recs[i].d))
		}
	}
	return out, nil
}

// Interrupted fails the queued deployments of replicas that no longer
// run: nobody will push them. Pushed ones are left to the holder of their
// cluster's lease, which syncs them. Reverting ones (a failed deploy
// whose revert the replica waited for) are failed too: their revert is a
// deployment of its own.
func (s *Store) Interrupted(now time.Time) (int, error) {
	n := 0
	var errs []error
	for _, r := range s.snapshot() {
		if r.d.Status != deploy.Queued && r.d.Status != deploy.Reverting {
			continue
		}
		owner := r.replica
		if owner == s.replica() || (s.opts.Live != nil && s.opts.Live(owner)) {
			continue
		}
		d := copyOf(r.d)
		if d.Status == deploy.Reverting {
			d.RevertError = fmt.Sprintf("the mgo replica %s stopped while it reverted the deployment: deployment %s says how the revert ended", owner, d.RevertedBy)
			d.Status, d.Times.Finished = deploy.Failed, now
		} else {
			d.Error = fmt.Sprintf("the mgo replica %s stopped before the deployment was pushed (it was %s)", owner, d.Status)
			d.Status, d.Stage, d.Times.Finished = deploy.Failed, deploy.StageCommit, now
		}
		err := s.Put(d)
		switch {
		case err == nil:
			n++
		case errors.Is(err, deploy.ErrFinished), errors.Is(err, deploy.ErrNotFound):
		default:
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// Collect deletes finished records older than maxAge and beyond the
// newest keep.
func (s *Store) Collect(now time.Time, maxAge time.Duration, keep int) (int, error) {
	ctx := context.Background()
	kept, n := 0, 0
	var errs []error
	for _, r := range s.snapshot() {
		if !r.d.Status.Terminal() {
			continue
		}
		if !deploy.Expired(r.d, now, maxAge) && (keep <= 0 || kept < keep) {
			kept++
			continue
		}
		err := s.client.Delete(ctx, r.name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &r.rv}})
		switch {
		case err == nil || apierrors.IsNotFound(err):
			s.forget(r.name)
			n++
		case apierrors.IsConflict(err):
			// Changed meanwhile: the next collection sees it again.
		default:
			errs = append(errs, fmt.Errorf("kubernetes state: deleting %s: %w", r.name, err))
		}
	}
	return n, errors.Join(errs...)
}

func copyOf(d *deploy.Deployment) *deploy.Deployment {
	b, _ := json.Marshal(d)
	c := &deploy.Deployment{}
	_ = json.Unmarshal(b, c)
	return c
}

// InstallCRD creates (or updates) the DeployRecord CRD and waits until it
// is established. The chart installs it in production; tests and the
// development cluster use this.
func InstallCRD(ctx context.Context, cfg *rest.Config) error {
	var obj map[string]any
	if err := yaml.Unmarshal(CRD, &obj); err != nil {
		return err
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	crds := dc.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	u := &unstructured.Unstructured{Object: obj}
	if _, err := crds.Create(ctx, u, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		cur, err := crds.Get(ctx, u.GetName(), metav1.GetOptions{})
		if err != nil {
			return err
		}
		u.SetResourceVersion(cur.GetResourceVersion())
		if _, err := crds.Update(ctx, u, metav1.UpdateOptions{}); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	for {
		cur, err := crds.Get(ctx, u.GetName(), metav1.GetOptions{})
		if err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(cur.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the DeployRecord CRD is not established: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
