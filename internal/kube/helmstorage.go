package kube

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	helmkube "helm.sh/helm/v4/pkg/kube"
	"helm.sh/helm/v4/pkg/storage"
	"helm.sh/helm/v4/pkg/storage/driver"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	applycorev1 "k8s.io/client-go/applyconfigurations/core/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
)

// HelmForRelease is HelmWith for the actions of one release sync, one
// after the other: its release storage lists the release's Secrets once
// and answers the next lists from that answer until it writes. Helm's
// install reads the release's history three times before it stores the
// new revision (the caller's read of the last revision, the name check
// and the replace check), its upgrade twice; each list is a request on
// the critical path of the release. A write (a new revision, a status
// change, a deletion) forgets every answer, so Helm reads what it wrote.
// The configuration must not outlive the sync: another writer's revisions
// are seen only by a new one.
func (c *Cluster) HelmForRelease(namespace string, log *slog.Logger, caps *common.Capabilities) (*action.Configuration, error) {
	cfg, err := c.HelmWith(namespace, log, caps)
	if err != nil {
		return nil, err
	}
	kc, ok := cfg.KubeClient.(*helmkube.Client)
	if !ok {
		return cfg, nil
	}
	cs, err := kc.Factory.KubernetesClientSet()
	if err != nil {
		return nil, fmt.Errorf("cluster %s: helm in namespace %s: %w", c.Name, namespace, err)
	}
	d := driver.NewSecrets(&listOnce{SecretInterface: cs.CoreV1().Secrets(namespace)})
	if log != nil {
		d.SetLogger(log.Handler())
	} else {
		d.SetLogger(slog.DiscardHandler)
	}
	releases := storage.Init(faultDriver{d})
	releases.MaxHistory = cfg.Releases.MaxHistory
	cfg.Releases = releases
	return cfg, nil
}

// listOnce is a Secrets client whose lists by label are answered from an
// earlier list whose selector they include (name and owner, then name,
// owner and status), until the next write.
type listOnce struct {
	typedcorev1.SecretInterface
	mu    sync.Mutex
	lists []listed
}

type listed struct {
	selector labels.Set
	list     *corev1.SecretList
}

func (l *listOnce) List(ctx context.Context, opts metav1.ListOptions) (*corev1.SecretList, error) {
	want, err := labels.ConvertSelectorToLabelsMap(opts.LabelSelector)
	simple := err == nil && opts.FieldSelector == "" && opts.ResourceVersion == "" && opts.Limit == 0 && opts.Continue == ""
	if simple {
		l.mu.Lock()
		for _, e := range l.lists {
			if !includes(want, e.selector) {
				continue
			}
			out := &corev1.SecretList{TypeMeta: e.list.TypeMeta, ListMeta: e.list.ListMeta}
			match := labels.SelectorFromSet(want)
			for i := range e.list.Items {
				if match.Matches(labels.Set(e.list.Items[i].Labels)) {
					out.Items = append(out.Items, *e.list.Items[i].DeepCopy())
				}
			}
			l.mu.Unlock()
			return out, nil
		}
		l.mu.Unlock()
	}
	list, err := l.SecretInterface.List(ctx, opts)
	if err != nil || !simple {
		return list, err
	}
	l.mu.Lock()
	l.lists = append(l.lists, listed{selector: want, list: list.DeepCopy()})
	l.mu.Unlock()
	return list, nil
}

// includes reports whether every label of sub is in set with its value.
func includes(set, sub labels.Set) bool {
	for k, v := range sub {
		if w, ok := set[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func (l *listOnce) forget() {
	l.mu.Lock()
	l.lists = nil
	l.mu.Unlock()
}

func (l *listOnce) Create(ctx context.Context, s *corev1.Secret, opts metav1.CreateOptions) (*corev1.Secret, error) {
	l.forget()
	return l.SecretInterface.Create(ctx, s, opts)
}

func (l *listOnce) Update(ctx context.Context, s *corev1.Secret, opts metav1.UpdateOptions) (*corev1.Secret, error) {
	l.forget()
	return l.SecretInterface.Update(ctx, s, opts)
}

func (l *listOnce) Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	l.forget()
	return l.SecretInterface.Delete(ctx, name, opts)
}

func (l *listOnce) DeleteCollection(ctx context.Context, opts metav1.DeleteOptions, listOpts metav1.ListOptions) error {
	l.forget()
	return l.SecretInterface.DeleteCollection(ctx, opts, listOpts)
}

func (l *listOnce) Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (*corev1.Secret, error) {
	l.forget()
	return l.SecretInterface.Patch(ctx, name, pt, data, opts, subresources...)
}

func (l *listOnce) Apply(ctx context.Context, s *applycorev1.SecretApplyConfiguration, opts metav1.ApplyOptions) (*corev1.Secret, error) {
	l.forget()
	return l.SecretInterface.Apply(ctx, s, opts)
}
