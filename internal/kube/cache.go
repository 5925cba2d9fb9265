package kube

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
)

// Cache is a live view of the objects mgo applied in a cluster, kept by
// watches: one informer per kind, restricted by label selector to objects
// carrying the owner's cluster label (LabelCluster; release objects carry
// no repository label, so that a change of repository identity does not
// relabel them), started the first time the kind is asked for (so a kind
// whose CRD another release installed is watched from then on). Objects are
// kept with their managed fields; what mgo never reads is trimmed (see
// trim). After a disconnect a watch resumes from the last resourceVersion
// it saw (client-go's reflector); it lists again only when the API server
// no longer has that version. Every request goes through the cluster's
// budgeted clients; a cluster built WithMetrics counts every watch that
// ends by itself (mgo_kube_watch_restarts_total).
type Cache struct {
	cluster  *Cluster
	owner    Owner
	selector string
	dynamic  dynamic.Interface
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelFunc

	mu       sync.Mutex
	kinds    map[schema.GroupVersionResource]*kindInformer
	byKind   map[schema.GroupVersionKind]*kindInformer // as asked for, once mapped
	changed  chan struct{}                             // closed and replaced on every event
	handlers []func(CacheEvent)

	decided, undecided atomic.Int64 // comparisons, see Decisions
}

// kindInformer is the informer of one kind.
type kindInformer struct {
	gvr      schema.GroupVersionResource
	informer cache.SharedIndexInformer
	// failed is set when the first list did not come in time (the kind
	// cannot be listed, the API server is away): later calls do not wait
	// again until it comes.
	failed atomic.Bool
}

// CacheEventType says what happened to a cached object.
type CacheEventType string

// Event types.
const (
	CacheAdded   CacheEventType = "added"
	CacheUpdated CacheEventType = "updated"
	CacheDeleted CacheEventType = "deleted"
)

// CacheEvent is one change of a cached object seen by a watch. Object is
// the cache's own copy: never modify it.
type CacheEvent struct {
	Type   CacheEventType
	Object *unstructured.Unstructured
	// Old is the object before an update.
	Old *unstructured.Unstructured
}

// DefaultCacheSyncTimeout bounds how long Get waits for the first list of
// a kind.
const DefaultCacheSyncTimeout = 30 * time.Second

// NewCache returns an empty cache of the objects labelled with owner's
// cluster. Watches start on
// first use; Close stops them.
func (c *Cluster) NewCache(owner Owner, log *slog.Logger) (*Cache, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		return nil, fmt.Errorf("kube: cluster %s: cache: %w", c.Name, err)
	}
	sel := labels.SelectorFromSet(labels.Set{LabelCluster: owner.Cluster}).String()
	ctx, cancel := context.WithCancel(context.Background())
	ca := &Cache{cluster: c, owner: owner, selector: sel, dynamic: dyn, log: log.With("cluster", c.Name),
		ctx: ctx, cancel: cancel, kinds: map[schema.GroupVersionResource]*kindInformer{},
		byKind: map[schema.GroupVersionKind]*kindInformer{}, changed: make(chan struct{})}
	if owner.Cluster == LabelValue(c.Name) {
		c.liveCache.Store(ca) // raw manifest inventories are read from it
	}
	return ca, nil
}

// Close stops every watch of the cache.
func (ca *Cache) Close() {
	ca.cluster.liveCache.CompareAndSwap(ca, nil)
	ca.cancel()
}

// Selector is the label selector of the cached objects.
func (ca *Cache) Selector() string { return ca.selector }

// OnEvent registers a function called with every change a watch sees,
// after the initial list of its kind. It must not block.
func (ca *Cache) OnEvent(f func(CacheEvent)) {
	ca.mu.Lock()
	ca.handlers = append(ca.handlers, f)
	ca.mu.Unlock()
}

// Changed returns a channel closed at the next change of any cached
// object: a waiter reads the cache again when it is closed.
func (ca *Cache) Changed() <-chan struct{} {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return ca.changed
}

// Kinds lists the resources watched.
func (ca *Cache) Kinds() []schema.GroupVersionResource {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	out := make([]schema.GroupVersionResource, 0, len(ca.kinds))
	for gvr := range ca.kinds {
		out = append(out, gvr)
	}
	return out
}

// Get returns the cached object of a kind, namespace and name, or nil when
// no object of the owner has that name. The first Get of a kind starts its
// watch and waits until its first list is in (up to ctx's deadline or
// DefaultCacheSyncTimeout); the error says the kind cannot be watched (its
// CRD is not installed, the API server does not answer).
func (ca *Cache) Get(ctx context.Context, gvk schema.GroupVersionKind, namespace, name string) (*unstructured.Unstructured, error) {
	ki, err := ca.watch(ctx, gvk)
	if err != nil {
		return nil, err
	}
	key := name
	if namespace != "" {
		key = namespace + "/" + name
	}
	item, ok, err := ki.informer.GetIndexer().GetByKey(key)
	if err != nil || !ok {
		return nil, err
	}
	u, ok := item.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("cache of %s holds %T", ki.gvr, item)
	}
	return u, nil
}

// List returns the cached objects of a kind in a namespace ("" for
// cluster-scoped ones) whose labels match selector, starting the watch of
// the kind as Get does.
func (ca *Cache) List(ctx context.Context, gvk schema.GroupVersionKind, namespace string, selector labels.Selector) ([]*unstructured.Unstructured, error) {
	ki, err := ca.watch(ctx, gvk)
	if err != nil {
		return nil, err
	}
	items, err := ki.informer.GetIndexer().ByIndex(cache.NamespaceIndex, namespace)
	if err != nil {
		return nil, err
	}
	var out []*unstructured.Unstructured
	for _, item := range items {
		if u, ok := item.(*unstructured.Unstructured); ok && selector.Matches(labels.Set(u.GetLabels())) {
			out = append(out, u)
		}
	}
	return out, nil
}

// ListEverywhere returns the cached objects of a kind in every namespace
// that match selector.
func (ca *Cache) ListEverywhere(ctx context.Context, gvk schema.GroupVersionKind, selector labels.Selector) ([]*unstructured.Unstructured, error) {
	ki, err := ca.watch(ctx, gvk)
	if err != nil {
		return nil, err
	}
	var out []*unstructured.Unstructured
	for _, item := range ki.informer.GetIndexer().List() {
		if u, ok := item.(*unstructured.Unstructured); ok && selector.Matches(labels.Set(u.GetLabels())) {
			out = append(out, u)
		}
	}
	return out, nil
}

// Watch starts the watch of a kind if it is not watched yet, and waits
// until its first list is in.
func (ca *Cache) Watch(ctx context.Context, gvk schema.GroupVersionKind) error {
	_, err := ca.watch(ctx, gvk)
	return err
}

func (ca *Cache) watch(ctx context.Context, gvk schema.GroupVersionKind) (*kindInformer, error) {
	if ca.ctx.Err() != nil {
		return nil, fmt.Errorf("cache of cluster %s is closed", ca.cluster.Name)
	}
	ca.mu.Lock()
	ki, ok := ca.byKind[gvk]
	ca.mu.Unlock()
	if ok && ki.informer.HasSynced() {
		// Watched already: no REST mapping (the rollout wait asks for
		// every object at every watch event).
		return ki, nil
	}
	m, err := ca.cluster.Client.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, err
	}
	gvr := m.Resource
	ca.mu.Lock()
	ki, ok = ca.kinds[gvr]
	if !ok {
		ki = &kindInformer{gvr: gvr}
		ki.informer = ca.informer(gvr)
		_ = ki.informer.SetTransform(trim)
		_, _ = ki.informer.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
			AddFunc: func(obj any, initial bool) {
				if !initial {
					ca.notify(CacheAdded, nil, obj)
				}
			},
			UpdateFunc: func(old, obj any) { ca.notify(CacheUpdated, old, obj) },
			DeleteFunc: func(obj any) { ca.notify(CacheDeleted, nil, obj) },
		})
		_ = ki.informer.SetWatchErrorHandlerWithContext(func(_ context.Context, r *cache.Reflector, err error) {
			ca.log.Debug("watch interrupted", "resource", gvr.String(), "error", err)
			if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
				// mgo may not list the kind cluster-wide (its role is
				// namespaced): no caller waits for a list that cannot come.
				ki.failed.Store(true)
			}
		})
		ca.kinds[gvr] = ki
		go ki.informer.RunWithContext(ca.ctx)
		ca.log.Debug("watching", "resource", gvr.String(), "selector", ca.selector)
	}
	ca.byKind[gvk] = ki
	ca.mu.Unlock()
	if ki.informer.HasSynced() {
		return ki, nil
	}
	if ki.failed.Load() {
		return nil, fmt.Errorf("cache of %s not filled yet", gvr)
	}
	sctx, cancel := context.WithTimeout(ctx, DefaultCacheSyncTimeout)
	defer cancel()
	cache.WaitForCacheSync(sctx.Done(), func() bool { return ki.informer.HasSynced() || ki.failed.Load() })
	if !ki.informer.HasSynced() {
		if ki.failed.Swap(true) && sctx.Err() == nil {
			return nil, fmt.Errorf("cache of %s not filled: its watch is refused", gvr)
		}
		return nil, fmt.Errorf("cache of %s not filled: %w", gvr, context.Cause(sctx))
	}
	return ki, nil
}

// informer returns the informer of a kind (what dynamicinformer builds,
// restricted to the cache's selector), whose watches count their restarts
// in the cluster's metrics.
func (ca *Cache) informer(gvr schema.GroupVersionResource) cache.SharedIndexInformer {
	client := ca.dynamic.Resource(gvr)
	metrics := ca.cluster.metrics
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = ca.selector
			return client.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = ca.selector
			start := time.Now()
			w, err := client.Watch(ctx, o)
			if metrics == nil {
				return w, err
			}
			if err != nil {
				if ctx.Err() == nil {
					reason := WatchError
					if isExpired(err) {
						reason = WatchExpired
					}
					metrics.watchRestarted(reason)
				}
				return w, err
			}
			var timeout time.Duration
			if o.TimeoutSeconds != nil {
				timeout = time.Duration(*o.TimeoutSeconds) * time.Second
			}
			return countWatch(w, start, timeout, metrics.watchRestarted), nil
		},
	}
	return cache.NewSharedIndexInformerWithOptions(cache.ToListWatcherWithWatchListSemantics(lw, ca.dynamic),
		&unstructured.Unstructured{}, cache.SharedIndexInformerOptions{
			Indexers:          cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc},
			ObjectDescription: gvr.String(),
		})
}

func (ca *Cache) notify(t CacheEventType, old, obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	o, _ := old.(*unstructured.Unstructured)
	ca.mu.Lock()
	close(ca.changed)
	ca.changed = make(chan struct{})
	handlers := ca.handlers
	ca.mu.Unlock()
	for _, h := range handlers {
		h(CacheEvent{Type: t, Object: u, Old: o})
	}
}

// trim drops from a cached object what mgo never reads, so the cache stays
// small: the last-applied annotation of kubectl, the managed fields of
// status writers, and the payload of Helm's release Secrets (mgo reads
// releases through Helm's storage, not through the cache). Managed fields
// of spec writers are kept: the local comparison reads mgo's.
func trim(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	if a := u.GetAnnotations(); a != nil {
		if _, ok := a["kubectl.kubernetes.io/last-applied-configuration"]; ok {
			delete(a, "kubectl.kubernetes.io/last-applied-configuration")
			u.SetAnnotations(a)
		}
	}
	if mf := u.GetManagedFields(); len(mf) > 0 {
		kept := mf[:0]
		for _, f := range mf {
			if f.Subresource != "status" {
				kept = append(kept, f)
			}
		}
		if len(kept) != len(mf) {
			u.SetManagedFields(kept)
		}
	}
	if u.GetKind() == "Secret" && u.GetAPIVersion() == "v1" {
		if t, _, _ := unstructured.NestedString(u.Object, "type"); t == "helm.sh/release.v1" {
			unstructured.RemoveNestedField(u.Object, "data")
		}
	}
	return u, nil
}
