package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/ssa"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The inventory of raw manifests lives in the cluster it describes, in a
// ConfigMap mgo-inventory-<set>-<owner hash> of SystemNamespace, one per
// cluster name and repository identity. Every object applied as part of a
// set carries the owner labels mgo.io/name=<set>, mgo.io/namespace=<cluster>,
// mgo.io/cluster=<cluster> and mgo.io/repo=<repo id>; prune deletes nothing
// without all four. Older mgo versions kept one inventory
// mgo-inventory-<set> per physical cluster and labelled objects with the
// first two only: such objects that the repository still defines are
// adopted (relabelled by their next apply), the others are left alone and
// reported.
const (
	SystemNamespace = "mgo-system"
	// DefaultRawSet is the one set of a cluster's raw manifests.
	DefaultRawSet   = "raw"
	rawInventoryKey = "inventory.json"
)

func legacyInventoryName(set string) string { return "mgo-inventory-" + set }

func inventoryName(set string, o Owner) string {
	sum := sha256.Sum256([]byte(o.Cluster + "\x00" + o.Repo))
	return "mgo-inventory-" + set + "-" + hex.EncodeToString(sum[:5])
}

// RawOptions control ApplyRaw.
type RawOptions struct {
	// Set names the inventory (default DefaultRawSet): objects are pruned
	// only against earlier applies of the same set.
	Set string
	// Prune deletes objects applied by an earlier sync that are gone from
	// the repository. Default true (DefaultRawOptions).
	Prune bool
	// WaitTimeout bounds the wait for Namespaces and CRDs to be ready
	// before the objects that need them are applied.
	WaitTimeout time.Duration
	// Repo is the identity of the gitops repository (a label value or any
	// string, see LabelValue); default DefaultRepoID. Objects are labelled
	// with it and only objects labelled with it are pruned.
	Repo string
}

// DefaultRawOptions prune and wait up to a minute for definitions.
func DefaultRawOptions() RawOptions {
	return RawOptions{Set: DefaultRawSet, Prune: true, WaitTimeout: time.Minute}
}

// RawResult is what ApplyRaw did, per object.
type RawResult struct {
	ChangeSet *ssa.ChangeSet
	// InventoryWritten is true when the stored inventory changed.
	InventoryWritten bool
	// LeftAlone lists objects an older mgo applied (without cluster and
	// repository labels) that the repository no longer defines: they are
	// never pruned (they may be another instance's); delete them by hand.
	LeftAlone []string
}

// ApplyRaw makes the cluster's raw objects equal to objects: Namespaces and
// CRDs first, then everything else, each applied only if the server-side
// dry-run shows it drifted; then objects of the previous inventory that are
// gone are deleted, but only those labelled as mgo's; then the inventory is
// stored, when it changed. A sync with nothing to change makes no write.
func (c *Cluster) ApplyRaw(ctx context.Context, objects []*unstructured.Unstructured, opts RawOptions) (*RawResult, error) {
	res := &RawResult{ChangeSet: ssa.NewChangeSet()}
	if opts.Set == "" {
		opts.Set = DefaultRawSet
	}
	set := opts.Set
	owner := c.OwnerFor(opts.Repo)
	objects = slices.Clone(objects)
	for i, o := range objects {
		o = o.DeepCopy()
		if err := c.defaultNamespace(o); err != nil {
			return res, err
		}
		objects[i] = o
	}
	c.SetRawLabels(objects, set, opts.Repo)

	previous, err := c.loadInventory(ctx, inventoryName(set, owner), true)
	if err != nil {
		return res, err
	}
	// Objects an older mgo applied (one inventory per physical cluster, no
	// cluster or repository label) are never pruned: those still in the
	// repository are adopted by this apply, the others are reported.
	legacy, err := c.loadInventory(ctx, legacyInventoryName(set), false)
	if err != nil {
		return res, err
	}

	applyOpts := ssa.DefaultApplyOptions()
	applyOpts.WaitTimeout = opts.WaitTimeout
	cs, err := c.Resources.ApplyAllStaged(ctx, objects, applyOpts)
	if cs != nil {
		res.ChangeSet.Append(cs.Entries)
	}
	if err != nil {
		// Record what was applied before the failure, so a later prune
		// knows about it; nothing is pruned after a failed apply.
		if _, ierr := c.storeInventory(ctx, set, owner, union(previous, inventoryOf(objects, res.ChangeSet))); ierr != nil {
			err = errors.Join(err, ierr)
		}
		return res, fmt.Errorf("applying raw manifests: %w", err)
	}

	current := inventoryOf(objects, nil)
	for _, id := range legacy.Diff(current).Diff(previous) {
		res.ChangeSet.Add(ssa.ChangeSetEntry{ObjMetadata: id, Subject: fmtID(id), Action: ssa.SkippedAction})
		res.LeftAlone = append(res.LeftAlone, fmtID(id))
	}
	if opts.Prune {
		stale := previous.Diff(current)
		if len(stale) > 0 {
			var del []*unstructured.Unstructured
			for _, id := range stale {
				u := &unstructured.Unstructured{}
				u.SetGroupVersionKind(id.GroupKind.WithVersion(""))
				u.SetNamespace(id.Namespace)
				u.SetName(id.Name)
				if err := c.setPreferredVersion(u); err != nil {
					res.ChangeSet.Add(ssa.ChangeSetEntry{ObjMetadata: id, Subject: fmtID(id), Action: ssa.SkippedAction})
					continue // the kind is gone from the cluster (e.g. its CRD was removed)
				}
				del = append(del, u)
			}
			delOpts := ssa.DefaultDeleteOptions()
			delOpts.Inclusions = c.RawLabels(set, opts.Repo)
			dcs, err := c.Resources.DeleteAll(ctx, del, delOpts)
			if dcs != nil {
				res.ChangeSet.Append(dcs.Entries)
			}
			if err != nil {
				if _, ierr := c.storeInventory(ctx, set, owner, union(previous, current)); ierr != nil {
					err = errors.Join(err, ierr)
				}
				return res, fmt.Errorf("pruning raw manifests: %w", err)
			}
		}
	} else {
		current = union(previous, current)
	}

	if res.InventoryWritten, err = c.storeInventory(ctx, set, owner, current); err != nil {
		return res, err
	}
	return res, nil
}

// RawInventory returns the objects the last apply of a set for the default
// repository identity left in the cluster, as stored in its inventory.
func (c *Cluster) RawInventory(ctx context.Context, set string) (object.ObjMetadataSet, error) {
	return c.RawInventoryFor(ctx, set, "")
}

// RawInventoryFor returns the objects the last apply of a set for a
// repository identity left in the cluster, as stored in its inventory.
func (c *Cluster) RawInventoryFor(ctx context.Context, set, repoID string) (object.ObjMetadataSet, error) {
	return c.loadInventory(ctx, inventoryName(set, c.OwnerFor(repoID)), true)
}

// RawLabels are the labels of every raw object of a set applied for a
// repository identity: the owner labels and the ownership labels.
func (c *Cluster) RawLabels(set, repoID string) map[string]string {
	labels := c.Resources.GetOwnerLabels(set, LabelValue(c.Name))
	maps.Copy(labels, c.OwnerFor(repoID).Labels())
	return labels
}

// SetRawLabels sets RawLabels on objects.
func (c *Cluster) SetRawLabels(objects []*unstructured.Unstructured, set, repoID string) {
	want := c.RawLabels(set, repoID)
	for _, o := range objects {
		labels := o.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		maps.Copy(labels, want)
		o.SetLabels(labels)
	}
}

// defaultNamespace gives a namespaced object without a namespace the
// "default" namespace, as kubectl apply does, and refuses a namespace on a
// cluster-scoped object.
func (c *Cluster) defaultNamespace(o *unstructured.Unstructured) error {
	namespaced, err := c.Client.IsObjectNamespaced(o)
	if err != nil {
		// Unknown kind: a CRD applied in the same sync may define it; the
		// API server decides at apply time.
		return nil
	}
	switch {
	case namespaced && o.GetNamespace() == "":
		o.SetNamespace(metav1.NamespaceDefault)
	case !namespaced && o.GetNamespace() != "":
		return fmt.Errorf("%s: %s is cluster-scoped and takes no namespace", fmtObj(o), o.GetKind())
	}
	return nil
}

func (c *Cluster) setPreferredVersion(u *unstructured.Unstructured) error {
	m, err := c.Client.RESTMapper().RESTMapping(u.GroupVersionKind().GroupKind())
	if err != nil {
		return err
	}
	u.SetGroupVersionKind(m.GroupVersionKind)
	return nil
}

// inventoryOf lists objects; with a change set, only those it applied.
func inventoryOf(objects []*unstructured.Unstructured, applied *ssa.ChangeSet) object.ObjMetadataSet {
	var ids object.ObjMetadataSet
	for _, o := range objects {
		id := object.UnstructuredToObjMetadata(o)
		if applied != nil && !slices.ContainsFunc(applied.Entries, func(e ssa.ChangeSetEntry) bool { return e.ObjMetadata == id }) {
			continue
		}
		ids = append(ids, id)
	}
	return ids
}

func union(a, b object.ObjMetadataSet) object.ObjMetadataSet { return a.Union(b) }

func fmtID(id object.ObjMetadata) string {
	if id.Namespace != "" {
		return fmt.Sprintf("%s/%s/%s", id.GroupKind.Kind, id.Namespace, id.Name)
	}
	return fmt.Sprintf("%s/%s", id.GroupKind.Kind, id.Name)
}

func fmtObj(o *unstructured.Unstructured) string {
	return fmtID(object.UnstructuredToObjMetadata(o))
}

// inventoryEntry is how an object id is stored: group, kind, namespace, name.
type inventoryEntry struct {
	Group     string `json:"group,omitempty"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// loadInventory reads an inventory: from the live-state cache when one is
// registered and the inventory is one mgo labels with the cluster (owned),
// so that a sync or drift check of unchanged raw manifests sends no
// request; otherwise from the API server. The legacy inventory of an older
// mgo, which has no labels, is read once per process while it is absent.
func (c *Cluster) loadInventory(ctx context.Context, name string, owned bool) (object.ObjMetadataSet, error) {
	var data string
	if cached, found, ok := c.cachedInventory(ctx, name, owned); ok {
		if !found {
			return nil, nil
		}
		data = cached
	} else {
		if !owned {
			if _, absent := c.legacyAbsent.Load(name); absent {
				return nil, nil
			}
		}
		cm, err := c.Clientset.CoreV1().ConfigMaps(SystemNamespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			if !owned {
				c.legacyAbsent.Store(name, true)
			}
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading the raw manifest inventory %s/%s: %w", SystemNamespace, name, err)
		}
		data = cm.Data[rawInventoryKey]
	}
	var entries []inventoryEntry
	if err := json.Unmarshal([]byte(data), &entries); err != nil {
		return nil, fmt.Errorf("raw manifest inventory %s/%s is corrupt: %w", SystemNamespace, name, err)
	}
	var ids object.ObjMetadataSet
	for _, e := range entries {
		ids = append(ids, object.ObjMetadata{Namespace: e.Namespace, Name: e.Name})
		ids[len(ids)-1].GroupKind.Group = e.Group
		ids[len(ids)-1].GroupKind.Kind = e.Kind
	}
	return ids, nil
}

// storeInventory writes the inventory when it differs from the stored one.
func (c *Cluster) storeInventory(ctx context.Context, set string, owner Owner, ids object.ObjMetadataSet) (bool, error) {
	name := inventoryName(set, owner)
	entries := make([]inventoryEntry, 0, len(ids))
	for _, id := range ids {
		entries = append(entries, inventoryEntry{Group: id.GroupKind.Group, Kind: id.GroupKind.Kind, Namespace: id.Namespace, Name: id.Name})
	}
	slices.SortFunc(entries, func(a, b inventoryEntry) int {
		return strings.Compare(a.Group+"|"+a.Kind+"|"+a.Namespace+"|"+a.Name, b.Group+"|"+b.Kind+"|"+b.Namespace+"|"+b.Name)
	})
	data, err := json.Marshal(entries)
	if err != nil {
		return false, err
	}
	if cached, found, ok := c.cachedInventory(ctx, name, true); ok && (found && cached == string(data) || !found && len(entries) == 0) {
		return false, nil // stored as it is
	}
	cms := c.Clientset.CoreV1().ConfigMaps(SystemNamespace)
	cm, err := cms.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if len(entries) == 0 {
			return false, nil
		}
		if err := c.ensureSystemNamespace(ctx); err != nil {
			return false, err
		}
		labels := owner.Labels()
		labels["app.kubernetes.io/managed-by"] = "mgo"
		cm = &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: SystemNamespace, Labels: labels},
			Data:       map[string]string{rawInventoryKey: string(data)},
		}
		if _, err := cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: FieldManager}); err != nil {
			return false, fmt.Errorf("storing the raw manifest inventory: %w", err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("reading the raw manifest inventory: %w", err)
	case cm.Data[rawInventoryKey] == string(data):
		return false, nil
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[rawInventoryKey] = string(data)
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
		return false, fmt.Errorf("storing the raw manifest inventory: %w", err)
	}
	return true, nil
}

func (c *Cluster) ensureSystemNamespace(ctx context.Context) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: SystemNamespace,
		Labels: map[string]string{"app.kubernetes.io/managed-by": "mgo"}}}
	_, err := c.Clientset.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{FieldManager: FieldManager})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", SystemNamespace, err)
	}
	return nil
}

// cachedInventory returns an owned inventory's data as the registered
// live-state cache holds it; found is false when the cache has no such
// ConfigMap (mgo labels every inventory it writes, so the cache would hold
// it); ok is false when there is no cache to ask.
func (c *Cluster) cachedInventory(ctx context.Context, name string, owned bool) (data string, found, ok bool) {
	ca := c.liveCache.Load()
	if ca == nil || !owned {
		return "", false, false
	}
	u, err := ca.Get(ctx, schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, SystemNamespace, name)
	if err != nil {
		return "", false, false
	}
	if u == nil {
		return "", false, true
	}
	data, _, _ = unstructured.NestedString(u.Object, "data", rawInventoryKey)
	return data, true, true
}
