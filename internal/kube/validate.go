package kube

import (
	"sync"

	helmkube "helm.sh/helm/v4/pkg/kube"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/resource"
	"k8s.io/client-go/dynamic"
	"k8s.io/kubectl/pkg/util/openapi"
	"k8s.io/kubectl/pkg/validation"
)

// fieldValidation is Helm's factory with a Validator that asks once per
// kind, for the whole cluster, whether the API server validates fields
// itself (it then does, and the client validates nothing). kubectl's own
// Validator, which Helm calls for every manifest it builds, answers that
// question anew each time by parsing the OpenAPI document of the kind's
// group: two thirds of the CPU time of a sync.
type fieldValidation struct {
	helmkube.Factory
	verifier resource.Verifier
}

func (f fieldValidation) Validator(directive string) (validation.Schema, error) {
	getter, ok := f.Factory.(openapi.OpenAPIResourcesGetter)
	if directive == metav1.FieldValidationIgnore || !ok || f.verifier == nil {
		return f.Factory.Validator(directive)
	}
	schema := validation.ConjunctiveSchema{validation.NewSchemaValidation(getter), validation.NoDoubleKeySchema{}}
	return validation.NewParamVerifyingSchema(schema, f.verifier, directive), nil
}

// supportCache remembers the kinds the API server validates fields of.
// Only support is remembered: an error (a kind not served yet) is asked
// again.
type supportCache struct {
	next resource.Verifier
	mu   sync.Mutex
	ok   map[schema.GroupVersionKind]bool
}

// HasSupport asks one kind at a time: releases synced at once would
// otherwise each parse the same OpenAPI document the first time.
func (v *supportCache) HasSupport(gvk schema.GroupVersionKind) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ok[gvk] {
		return nil
	}
	if err := v.next.HasSupport(gvk); err != nil {
		return err
	}
	v.ok[gvk] = true
	return nil
}

// fieldValidationVerifier is the cluster's one supportCache, over the
// OpenAPI documents of its shared discovery cache; nil when it cannot be
// built (Helm then validates as kubectl does).
func (c *Cluster) fieldValidationVerifier() resource.Verifier {
	c.verifierOnce.Do(func() {
		dc, err := c.helmDiscovery()
		if err != nil {
			return
		}
		dyn, err := dynamic.NewForConfig(c.Config)
		if err != nil {
			return
		}
		c.verifier = &supportCache{
			next: resource.NewQueryParamVerifierV3(dyn, dc.OpenAPIV3(), resource.QueryParamFieldValidation),
			ok:   map[schema.GroupVersionKind]bool{},
		}
	})
	return c.verifier
}
