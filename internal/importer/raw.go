package importer

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mygitops/mgo/internal/kube"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/repo"
)

// skippedKinds are made by controllers and the API server, never by hand.
var skippedKinds = map[string]bool{
	"Event": true, "Endpoints": true, "EndpointSlice": true, "Lease": true, "ControllerRevision": true,
	"ComponentStatus": true, "Binding": true, "Node": true, "CSINode": true, "APIService": true,
}

type rawExport struct {
	files   map[string][]byte
	results []RawResult
}

// exportRaw lists the objects matching selector that no Helm release owns
// and no controller made (no ownerReferences), strips the fields the
// server sets, and groups them into <namespace>-raw.yaml files
// (cluster-scoped objects in cluster-raw.yaml).
func (im *Importer) exportRaw(ctx context.Context, selector string, namespaces []string, clusterDir string) (*rawExport, []*unstructured.Unstructured, error) {
	sel, err := labels.Parse(selector)
	if err != nil {
		return nil, nil, fmt.Errorf("--raw-selector %q: %w", selector, err)
	}
	lists, err := im.cluster.Clientset.Discovery().ServerPreferredResources()
	if err != nil && len(lists) == 0 {
		return nil, nil, fmt.Errorf("discovering API resources: %w", err)
	}
	byFile := map[string][]*unstructured.Unstructured{}
	var all []*unstructured.Unstructured
	mine := im.cluster.RawLabels(kube.DefaultRawSet, "")
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || skippedKinds[r.Kind] || !slices.Contains(r.Verbs, "list") {
				continue
			}
			ul := &unstructured.UnstructuredList{}
			ul.SetGroupVersionKind(gv.WithKind(r.Kind + "List"))
			if err := im.cluster.Client.List(ctx, ul, client.MatchingLabelsSelector{Selector: sel}); err != nil {
				return nil, nil, fmt.Errorf("listing %s: %w", r.Name, err)
			}
			for i := range ul.Items {
				o := &ul.Items[i]
				if len(o.GetOwnerReferences()) > 0 || o.GetAnnotations()["meta.helm.sh/release-name"] != "" ||
					o.GetLabels()["app.kubernetes.io/managed-by"] == "Helm" {
					continue
				}
				if ns := o.GetNamespace(); len(namespaces) > 0 && ns != "" && !slices.Contains(namespaces, ns) {
					continue
				}
				o = stripServerFields(o, mine)
				file := "cluster" + repo.RawSuffix
				if ns := o.GetNamespace(); ns != "" {
					file = ns + repo.RawSuffix
				}
				file = path.Join(clusterDir, file)
				byFile[file] = append(byFile[file], o)
				all = append(all, o)
			}
		}
	}
	out := &rawExport{files: map[string][]byte{}}
	for _, f := range sortedKeys(byFile) {
		objs := byFile[f]
		slices.SortFunc(objs, func(a, b *unstructured.Unstructured) int {
			return strings.Compare(a.GetKind()+"/"+a.GetName(), b.GetKind()+"/"+b.GetName())
		})
		var b strings.Builder
		rr := RawResult{File: f}
		for i, o := range objs {
			y, err := yaml.Marshal(o.Object)
			if err != nil {
				return nil, nil, err
			}
			if i > 0 {
				b.WriteString("---\n")
			}
			b.Write(y)
			rr.Objects = append(rr.Objects, rawSubject(o))
		}
		out.files[f] = []byte(b.String())
		out.results = append(out.results, rr)
	}
	return out, all, nil
}

func rawSubject(o *unstructured.Unstructured) string {
	if o.GetNamespace() != "" {
		return o.GetKind() + "/" + o.GetNamespace() + "/" + o.GetName()
	}
	return o.GetKind() + "/" + o.GetName()
}

// stripServerFields returns o without what the API server sets (and
// without mgo's own owner labels, which a sync sets again).
func stripServerFields(o *unstructured.Unstructured, ownerLabels map[string]string) *unstructured.Unstructured {
	o = o.DeepCopy()
	for _, f := range []string{"managedFields", "resourceVersion", "uid", "creationTimestamp", "generation",
		"selfLink", "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences"} {
		unstructured.RemoveNestedField(o.Object, "metadata", f)
	}
	unstructured.RemoveNestedField(o.Object, "status")
	if a := o.GetAnnotations(); a != nil {
		delete(a, "kubectl.kubernetes.io/last-applied-configuration")
		delete(a, "deployment.kubernetes.io/revision")
		if len(a) == 0 {
			unstructured.RemoveNestedField(o.Object, "metadata", "annotations")
		} else {
			o.SetAnnotations(a)
		}
	}
	if l := o.GetLabels(); l != nil {
		for k := range ownerLabels {
			delete(l, k)
		}
		if len(l) == 0 {
			unstructured.RemoveNestedField(o.Object, "metadata", "labels")
		} else {
			o.SetLabels(l)
		}
	}
	if o.GetKind() == "Service" && o.GetAPIVersion() == "v1" {
		for _, f := range []string{"clusterIP", "clusterIPs"} {
			unstructured.RemoveNestedField(o.Object, "spec", f)
		}
	}
	return o
}

// rawDifferences keeps the raw diffs that change more than mgo's owner
// labels (which every raw object gets at its first sync).
func (im *Importer) rawDifferences(diffs []reconcile.ObjectDiff) []reconcile.ObjectDiff {
	owner := im.cluster.RawLabels(kube.DefaultRawSet, "")
	var out []reconcile.ObjectDiff
	for _, d := range diffs {
		if d.Action == reconcile.ObjectUnchanged || onlyLabels(d.Diff, owner) {
			continue
		}
		out = append(out, d)
	}
	return out
}

// onlyLabels reports whether every changed line of a unified diff is one
// of the labels keys (or the labels: line that holds them).
func onlyLabels(diff string, keys map[string]string) bool {
	if diff == "" {
		return false
	}
	for _, line := range strings.Split(diff, "\n") {
		if strings.HasPrefix(line, "+++") || strings.HasPrefix(line, "---") || !(strings.HasPrefix(line, "+") || strings.HasPrefix(line, "-")) {
			continue
		}
		t := strings.TrimSpace(line[1:])
		if t == "labels:" {
			continue
		}
		k, _, _ := strings.Cut(t, ":")
		if _, ok := keys[strings.Trim(k, `"'`)]; !ok {
			return false
		}
	}
	return true
}
