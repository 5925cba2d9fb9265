package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/ssa"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The inventory of raw manifests lives in the cluster it describes, in a
// ConfigMap mgo-inventory-<set> of SystemNamespace. Every object applied as
// part of a set carries the owner labels mgo.io/name=<set> and
// mgo.io/namespace=<cluster>; prune deletes nothing without them.
const (
	SystemNamespace = "mgo-system"
	// DefaultRawSet is the one set of a cluster's raw manifests.
	DefaultRawSet   = "raw"
	rawInventoryKey = "inventory.json"
)

func inventoryName(set string) string { return "mgo-inventory-" + set }

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
	objects = slices.Clone(objects)
	for i, o := range objects {
		o = o.DeepCopy()
		if err := c.defaultNamespace(o); err != nil {
			return res, err
		}
		objects[i] = o
	}
	c.Resources.SetOwnerLabels(objects, set, c.Name)

	previous, err := c.loadInventory(ctx, set)
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
		if _, ierr := c.storeInventory(ctx, set, union(previous, inventoryOf(objects, res.ChangeSet))); ierr != nil {
			err = errors.Join(err, ierr)
		}
		return res, fmt.Errorf("applying raw manifests: %w", err)
	}

	current := inventoryOf(objects, nil)
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
			delOpts.Inclusions = c.Resources.GetOwnerLabels(set, c.Name)
			dcs, err := c.Resources.DeleteAll(ctx, del, delOpts)
			if dcs != nil {
				res.ChangeSet.Append(dcs.Entries)
			}
			if err != nil {
				if _, ierr := c.storeInventory(ctx, set, union(previous, current)); ierr != nil {
					err = errors.Join(err, ierr)
				}
				return res, fmt.Errorf("pruning raw manifests: %w", err)
			}
		}
	} else {
		current = union(previous, current)
	}

	if res.InventoryWritten, err = c.storeInventory(ctx, set, current); err != nil {
		return res, err
	}
	return res, nil
}

// RawInventory returns the objects the last apply of a set left in the
// cluster, as stored in its inventory.
func (c *Cluster) RawInventory(ctx context.Context, set string) (object.ObjMetadataSet, error) {
	return c.loadInventory(ctx, set)
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

func (c *Cluster) loadInventory(ctx context.Context, set string) (object.ObjMetadataSet, error) {
	cm, err := c.Clientset.CoreV1().ConfigMaps(SystemNamespace).Get(ctx, inventoryName(set), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the raw manifest inventory %s/%s: %w", SystemNamespace, inventoryName(set), err)
	}
	var entries []inventoryEntry
	if err := json.Unmarshal([]byte(cm.Data[rawInventoryKey]), &entries); err != nil {
		return nil, fmt.Errorf("raw manifest inventory %s/%s is corrupt: %w", SystemNamespace, inventoryName(set), err)
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
func (c *Cluster) storeInventory(ctx context.Context, set string, ids object.ObjMetadataSet) (bool, error) {
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
	cms := c.Clientset.CoreV1().ConfigMaps(SystemNamespace)
	cm, err := cms.Get(ctx, inventoryName(set), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if len(entries) == 0 {
			return false, nil
		}
		if err := c.ensureSystemNamespace(ctx); err != nil {
			return false, err
		}
		cm = &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: inventoryName(set), Namespace: SystemNamespace,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "mgo"}},
			Data: map[string]string{rawInventoryKey: string(data)},
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
