package reconcile

import (
	"github.com/fluxcd/pkg/ssa"
	helmkube "helm.sh/helm/v4/pkg/kube"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/resource"
)

// skipUnchanged is Helm's Kubernetes client with an Update that leaves out
// the objects the plan found unchanged: Helm reads and applies every object
// of a release on an upgrade (a GET and a server-side apply each), although
// an apply of an object mgo's field manager already applied as it is
// changes nothing. An upgrade that changes one image then sends the two
// requests of the Deployment only. Objects left out of both lists are
// neither applied nor deleted.
type skipUnchanged struct {
	*helmkube.Client
	unchanged map[string]bool // objectKey of the unchanged objects
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

func (s *skipUnchanged) Update(original, target helmkube.ResourceList, options ...helmkube.ClientUpdateOption) (*helmkube.Result, error) {
	keep := func(i *resource.Info) bool { return i.Mapping == nil || !s.unchanged[infoKey(i)] }
	return s.Client.Update(original.Filter(keep), target.Filter(keep), options...)
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
