package reconcile

import (
	"fmt"
	"io"
	"maps"
	"sync"

	"github.com/fluxcd/pkg/ssa"
	helmkube "helm.sh/helm/v4/pkg/kube"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/resource"

	"github.com/mygitops/mgo/internal/render"
)

// helmClient is Helm's Kubernetes client as a release sync uses it:
//   - Update leaves out the objects the plan found unchanged. Helm reads
//     and applies every object of a release on an upgrade (a GET and a
//     server-side apply each), although an apply of an object mgo's field
//     manager already applied as it is changes nothing. An upgrade that
//     changes one image then sends the two requests of the Deployment
//     only. Objects left out of both lists are neither applied nor deleted.
//   - Create and Update record the version of each object the API server
//     answered the apply with, so that the rollout wait reads these objects
//     from the engine's cache once it is as new, instead of reading each
//     one again (applied).
//   - Build labels the release's objects with mgo's labels (not its hooks,
//     nor the CustomResourceDefinitions of the chart's crds directory,
//     which Helm installs as they are), as prepare does for the
//     comparison: the engine's cache watches objects by these labels.
//     Helm's manifest of the revision holds the objects as the chart
//     renders them.
//   - IsReachable answers without a request: the sync has just read the
//     release's history from the cluster, and any request that follows
//     fails as clearly when it is not reachable.
type helmClient struct {
	*helmkube.Client
	unchanged map[string]bool // objectKey of the unchanged objects
	labels    map[string]string
	labelled  map[string]bool // objectKey of the objects to label

	mu      sync.Mutex
	applied map[string]string // version by subject, as the apply answered
}

// unchangedObjects returns the keys of the objects a plan found unchanged.
func unchangedObjects(cmps []comparison) map[string]bool {
	out := map[string]bool{}
	for _, c := range cmps {
		if c.Action == ssa.UnchangedAction && c.Immutable == nil && c.Wanted != nil {
			out[wantedKey(c.Wanted)] = true
		}
	}
	return out
}

func wantedKey(u *unstructured.Unstructured) string {
	gk := u.GroupVersionKind().GroupKind()
	return gk.Group + "/" + gk.Kind + "/" + u.GetNamespace() + "/" + u.GetName()
}

func infoKey(i *resource.Info) string {
	gk := i.Mapping.GroupVersionKind.GroupKind()
	return gk.Group + "/" + gk.Kind + "/" + i.Namespace + "/" + i.Name
}

func (s *helmClient) Update(original, target helmkube.ResourceList, options ...helmkube.ClientUpdateOption) (*helmkube.Result, error) {
	keep := func(i *resource.Info) bool { return i.Mapping == nil || !s.unchanged[infoKey(i)] }
	res, err := s.Client.Update(original.Filter(keep), target.Filter(keep), options...)
	if res != nil {
		s.record(res.Created)
		s.record(res.Updated)
	}
	return res, err
}

func (s *helmClient) Create(resources helmkube.ResourceList, options ...helmkube.ClientCreateOption) (*helmkube.Result, error) {
	res, err := s.Client.Create(resources, options...)
	if res != nil {
		s.record(res.Created)
	}
	return res, err
}

func (s *helmClient) IsReachable() error { return nil }

func (s *helmClient) Build(reader io.Reader, validate bool) (helmkube.ResourceList, error) {
	list, err := s.Client.Build(reader, validate)
	if err != nil || len(s.labels) == 0 {
		return list, err
	}
	for _, i := range list {
		if i.Mapping == nil || !s.labelled[infoKey(i)] && !s.labelled[anyNamespaceKey(i)] {
			continue
		}
		obj, err := meta.Accessor(i.Object)
		if err != nil {
			return nil, fmt.Errorf("labelling %s %s: %w", i.Mapping.GroupVersionKind.Kind, i.Name, err)
		}
		l := obj.GetLabels()
		if l == nil {
			l = map[string]string{}
		}
		maps.Copy(l, s.labels)
		obj.SetLabels(l)
	}
	return list, nil
}

// labelledObjects returns the keys of the objects of a release that get
// mgo's labels: every rendered object but the chart's own
// CustomResourceDefinitions (its crds directory).
func labelledObjects(cmps []comparison, rendered *render.Rendered) map[string]bool {
	out := map[string]bool{}
	for _, c := range cmps {
		if c.Wanted == nil || rendered.FromCRDDir(c.Wanted) {
			continue
		}
		out[wantedKey(c.Wanted)] = true
		if c.Wanted.GetNamespace() == "" {
			// Whether it is namespaced was not known when it was planned
			// (a custom resource whose definition the chart installs):
			// Helm builds it in the release's namespace.
			gk := c.Wanted.GroupVersionKind().GroupKind()
			out[gk.Group+"/"+gk.Kind+"/*/"+c.Wanted.GetName()] = true
		}
	}
	return out
}

// anyNamespaceKey is the key of labelledObjects that matches an info in
// any namespace.
func anyNamespaceKey(i *resource.Info) string {
	gk := i.Mapping.GroupVersionKind.GroupKind()
	return gk.Group + "/" + gk.Kind + "/*/" + i.Name
}

// record keeps the versions the API server answered the applies of infos
// with (Helm refreshes each info with the answer).
func (s *helmClient) record(infos helmkube.ResourceList) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, i := range infos {
		if i.Mapping == nil || i.ResourceVersion == "" {
			continue
		}
		if s.applied == nil {
			s.applied = map[string]string{}
		}
		s.applied[infoSubject(i)] = i.ResourceVersion
	}
}

// appliedVersions returns the versions recorded by record, by subject.
func (s *helmClient) appliedVersions() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.applied)
}

// infoSubject is subject() of an info's object.
func infoSubject(i *resource.Info) string {
	if i.Namespace != "" {
		return i.Mapping.GroupVersionKind.Kind + "/" + i.Namespace + "/" + i.Name
	}
	return i.Mapping.GroupVersionKind.Kind + "/" + i.Name
}

// unchangedVersions are the live versions, by subject, of the objects a
// plan found unchanged, as the plan read them.
func unchangedVersions(cmps []comparison) map[string]string {
	out := map[string]string{}
	for _, c := range cmps {
		if c.Action == ssa.UnchangedAction && c.Wanted != nil && c.Live != nil && c.Live.GetResourceVersion() != "" {
			out[subject(c.Wanted)] = c.Live.GetResourceVersion()
		}
	}
	return out
}
