package install

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/action"
	chartcommon "helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

func chartDir() string { return filepath.Join(repoRoot(), "charts", "mgo") }

// baseValues are what docs/install.md asks a user to set.
func baseValues() map[string]any {
	return map[string]any{
		"git":  map[string]any{"url": "https://git.example.com/acme/gitops.git", "existingSecret": "mgo-git", "username": "mgo"},
		"auth": map[string]any{"tokensSecret": "mgo-tokens"},
	}
}

// with returns a deep copy of base with each "a.b.c" path set.
func with(base map[string]any, kv ...any) map[string]any {
	b, _ := yaml.Marshal(base)
	out := map[string]any{}
	_ = yaml.Unmarshal(b, &out)
	for i := 0; i < len(kv); i += 2 {
		keys := strings.Split(kv[i].(string), ".")
		m := out
		for _, k := range keys[:len(keys)-1] {
			next, ok := m[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[k] = next
			}
			m = next
		}
		m[keys[len(keys)-1]] = kv[i+1]
	}
	return out
}

// The chart lints clean with the values a user sets, in both RBAC modes
// and with every optional part on; without the required values, or with a
// misspelt key, lint fails naming the value.
func TestChartLint(t *testing.T) {
	cases := map[string]map[string]any{
		"cluster-wide": baseValues(),
		"namespaced":   with(baseValues(), "rbac.clusterWide", false, "rbac.namespaces", []any{"team-a", "team-b"}),
		"everything on": with(baseValues(), "ingress.enabled", true, "persistence.enabled", true,
			"metrics.serviceMonitor.enabled", true, "metrics.serviceMonitor.tokenSecret.name", "mgo-metrics",
			"webhooks.github.existingSecret", "mgo-github", "webhooks.gitlab.existingSecret", "mgo-gitlab",
			"chartCredentials.existingSecret", "mgo-charts", "image.digest", "sha256:"+strings.Repeat("ab", 32)),
		"ssh": with(baseValues(), "git.url", "ssh://git@git.example.com/acme/gitops.git", "git.passwordKey", "",
			"git.sshKeyKey", "identity", "git.knownHostsKey", "known_hosts"),
		"replicas": with(baseValues(), "replicaCount", 3, "state.type", "kubernetes"),
	}
	for name, vals := range cases {
		t.Run(name, func(t *testing.T) {
			lint := action.NewLint()
			lint.Strict = true
			lint.Namespace = "mgo"
			res := lint.Run([]string{chartDir()}, vals)
			for _, m := range res.Messages {
				if m.Severity > support.InfoSev {
					t.Errorf("lint: %s", m)
				}
			}
			if len(res.Errors) > 0 || res.TotalChartsLinted != 1 {
				t.Errorf("lint: %d charts linted, errors %v", res.TotalChartsLinted, errors.Join(res.Errors...))
			}
		})
	}

	// The schema refuses misspelt keys and values out of range at lint.
	for _, c := range []struct {
		name string
		vals map[string]any
		want string
	}{
		{"misspelt key", with(baseValues(), "rbac.clusterwide", false), "clusterwide"},
		{"two replicas with bolt", with(baseValues(), "replicaCount", 2), "replicaCount"},
		{"unknown state", with(baseValues(), "state.type", "etcd"), "/state/type"},
		{"bad log level", with(baseValues(), "logLevel", "verbose"), "logLevel"},
		{"external URL without scheme", with(baseValues(), "externalURL", "mgo.acme.io"), "externalURL"},
	} {
		t.Run("refuses "+c.name, func(t *testing.T) {
			lint := action.NewLint()
			lint.Strict = true
			res := lint.Run([]string{chartDir()}, c.vals)
			if err := errors.Join(res.Errors...); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("lint: %v, want an error naming %q", err, c.want)
			}
		})
	}
	// Values only the templates can check fail the install (Helm's lint
	// reports a template's fail as information only).
	for _, c := range []struct {
		name string
		vals map[string]any
		want string
	}{
		{"defaults", nil, "git.url is required"},
		{"no tokens", with(baseValues(), "auth.tokensSecret", ""), "auth.tokensSecret is required"},
		{"no namespaces", with(baseValues(), "rbac.clusterWide", false), "rbac.namespaces must list"},
		{"ssh without known hosts", with(baseValues(), "git.sshKeyKey", "identity"), "git.knownHostsKey is required"},
		{"replicas on one volume", with(baseValues(), "replicaCount", 2, "state.type", "kubernetes", "persistence.enabled", true), "persistence.enabled with replicaCount > 1"},
	} {
		t.Run("refuses "+c.name, func(t *testing.T) {
			if _, err := renderChart("mgo", "mgo", c.vals); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("render: %v, want an error naming %q", err, c.want)
			}
		})
	}
}

// rendered is the chart rendered as an install would, object by object.
type rendered struct {
	objs  []*unstructured.Unstructured
	notes string
}

func render(t *testing.T, releaseName, ns string, vals map[string]any) rendered {
	t.Helper()
	files, err := renderChart(releaseName, ns, vals)
	if err != nil {
		t.Fatal(err)
	}
	var r rendered
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range files {
			if !yield(n) {
				return
			}
		}
	}) {
		if strings.HasSuffix(name, "NOTES.txt") {
			r.notes = files[name]
			continue
		}
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader([]byte(files[name])), 4096)
		for {
			var o map[string]any
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v\n%s", name, err, files[name])
			}
			if len(o) == 0 {
				continue
			}
			r.objs = append(r.objs, &unstructured.Unstructured{Object: o})
		}
	}
	return r
}

// renderChart renders the chart as `helm install` would (schema checked).
func renderChart(releaseName, ns string, vals map[string]any) (map[string]string, error) {
	ch, err := loader.LoadDir(chartDir())
	if err != nil {
		return nil, err
	}
	rv, err := chartutil.ToRenderValuesWithSchemaValidation(ch, vals,
		chartcommon.ReleaseOptions{Name: releaseName, Namespace: ns, IsInstall: true, Revision: 1}, chartcommon.DefaultCapabilities.Copy(), false)
	if err != nil {
		return nil, err
	}
	return engine.Render(ch, rv)
}

func (r rendered) find(kind, ns, name string) *unstructured.Unstructured {
	for _, o := range r.objs {
		if o.GetKind() == kind && o.GetNamespace() == ns && o.GetName() == name {
			return o
		}
	}
	return nil
}

func (r rendered) kinds() []string {
	var out []string
	for _, o := range r.objs {
		out = append(out, o.GetKind()+" "+o.GetNamespace()+"/"+o.GetName())
	}
	slices.Sort(out)
	return out
}

func convert[T any](t *testing.T, o *unstructured.Unstructured) *T {
	t.Helper()
	if o == nil {
		t.Fatal("object not rendered")
	}
	var out T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, &out, true); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
	return &out
}

// The chart renders each RBAC mode: cluster-wide, one ClusterRole bound to
// the service account; namespaced, a Role in each listed namespace and
// nothing cluster-wide but reading and applying those namespaces by name.
// The Deployment is restricted, probed, and references secrets by name;
// the chart renders no Secret.
func TestChartRender(t *testing.T) {
	const ns, rel = "mgo", "mgo"
	t.Run("cluster-wide", func(t *testing.T) {
		r := render(t, rel, ns, baseValues())
		want := []string{"ClusterRole /mgo", "ClusterRoleBinding /mgo", "Deployment mgo/mgo", "NetworkPolicy mgo/mgo",
			"Service mgo/mgo", "ServiceAccount mgo/mgo"}
		if got := r.kinds(); !slices.Equal(got, want) {
			t.Fatalf("objects %v\nwant %v", got, want)
		}
		cr := convert[rbacv1.ClusterRole](t, r.find("ClusterRole", "", "mgo"))
		if len(cr.Rules) != 1 || !slices.Equal(cr.Rules[0].Verbs, []string{"*"}) || !slices.Equal(cr.Rules[0].Resources, []string{"*"}) {
			t.Errorf("cluster-wide rules %+v", cr.Rules)
		}
		crb := convert[rbacv1.ClusterRoleBinding](t, r.find("ClusterRoleBinding", "", "mgo"))
		if crb.RoleRef.Name != "mgo" || len(crb.Subjects) != 1 || crb.Subjects[0].Kind != "ServiceAccount" ||
			crb.Subjects[0].Name != "mgo" || crb.Subjects[0].Namespace != ns {
			t.Errorf("binding %+v", crb)
		}
		checkDeployment(t, r, ns)
		if !strings.Contains(r.notes, "mgo token new") || !strings.Contains(r.notes, "Authorization: Bearer") {
			t.Errorf("NOTES.txt does not say how to get a token and call the API:\n%s", r.notes)
		}
	})
	t.Run("namespaced", func(t *testing.T) {
		r := render(t, rel, ns, with(baseValues(), "rbac.clusterWide", false, "rbac.namespaces", []any{"team-a", "team-b"}))
		want := []string{"ClusterRole /mgo-namespaces", "ClusterRoleBinding /mgo-namespaces", "Deployment mgo/mgo",
			"NetworkPolicy mgo/mgo", "Role team-a/mgo", "Role team-b/mgo", "RoleBinding team-a/mgo", "RoleBinding team-b/mgo",
			"Service mgo/mgo", "ServiceAccount mgo/mgo"}
		if got := r.kinds(); !slices.Equal(got, want) {
			t.Fatalf("objects %v\nwant %v", got, want)
		}
		for _, team := range []string{"team-a", "team-b"} {
			rb := convert[rbacv1.RoleBinding](t, r.find("RoleBinding", team, "mgo"))
			if rb.RoleRef.Kind != "Role" || rb.Subjects[0].Name != "mgo" || rb.Subjects[0].Namespace != ns {
				t.Errorf("%s binding %+v", team, rb)
			}
		}
		cr := convert[rbacv1.ClusterRole](t, r.find("ClusterRole", "", "mgo-namespaces"))
		if len(cr.Rules) != 1 || !slices.Equal(cr.Rules[0].Resources, []string{"namespaces"}) ||
			!slices.Equal(cr.Rules[0].ResourceNames, []string{"team-a", "team-b"}) || slices.Contains(cr.Rules[0].Verbs, "*") {
			t.Errorf("cluster-scoped rules of namespaced mode: %+v", cr.Rules)
		}
		if !strings.Contains(r.notes, "namespaces team-a, team-b only") {
			t.Errorf("NOTES.txt:\n%s", r.notes)
		}
	})
	t.Run("external URL", func(t *testing.T) {
		base := convert[appsv1.Deployment](t, render(t, rel, ns, baseValues()).find("Deployment", ns, "mgo"))
		for _, a := range base.Spec.Template.Spec.Containers[0].Args {
			if strings.HasPrefix(a, "--external-url") {
				t.Errorf("no Ingress and no externalURL, yet %s", a)
			}
		}
		d := convert[appsv1.Deployment](t, render(t, rel, ns, with(baseValues(), "externalURL", "https://mgo.acme.io/", "ingress.enabled", true)).
			find("Deployment", ns, "mgo"))
		if args := d.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--external-url=https://mgo.acme.io") {
			t.Errorf("args %v", args)
		}
	})
	t.Run("replicas", func(t *testing.T) {
		r := render(t, rel, ns, with(baseValues(), "replicaCount", 3, "state.type", "kubernetes", "state.leaseDuration", "20s"))
		want := []string{"ClusterRole /mgo", "ClusterRoleBinding /mgo", "Deployment mgo/mgo", "NetworkPolicy mgo/mgo",
			"Role mgo/mgo-state", "RoleBinding mgo/mgo-state", "Service mgo/mgo", "ServiceAccount mgo/mgo"}
		if got := r.kinds(); !slices.Equal(got, want) {
			t.Fatalf("objects %v\nwant %v", got, want)
		}
		role := convert[rbacv1.Role](t, r.find("Role", ns, "mgo-state"))
		var granted []string
		for _, rule := range role.Rules {
			if slices.Contains(rule.Verbs, "*") || slices.Contains(rule.Resources, "*") {
				t.Errorf("state role grants a wildcard: %+v", rule)
			}
			for _, res := range rule.Resources {
				granted = append(granted, rule.APIGroups[0]+"/"+res)
			}
		}
		if !slices.Equal(granted, []string{"mgo.io/deployrecords", "coordination.k8s.io/leases"}) {
			t.Errorf("state role grants %v", granted)
		}
		rb := convert[rbacv1.RoleBinding](t, r.find("RoleBinding", ns, "mgo-state"))
		if rb.RoleRef.Name != "mgo-state" || rb.Subjects[0].Name != "mgo" || rb.Subjects[0].Namespace != ns {
			t.Errorf("state binding %+v", rb)
		}
		d := convert[appsv1.Deployment](t, r.find("Deployment", ns, "mgo"))
		if *d.Spec.Replicas != 3 || d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
			t.Errorf("replicas %d strategy %s", *d.Spec.Replicas, d.Spec.Strategy.Type)
		}
		args := strings.Join(d.Spec.Template.Spec.Containers[0].Args, " ")
		for _, a := range []string{"--state=kubernetes", "--namespace=mgo", "--lease-duration=20s", "--record-max-count=10000"} {
			if !strings.Contains(args, a) {
				t.Errorf("args %s: no %s", args, a)
			}
		}
		var podName bool
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			podName = podName || (e.Name == "POD_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name")
		}
		if !podName {
			t.Errorf("no POD_NAME from the downward API: %+v", d.Spec.Template.Spec.Containers[0].Env)
		}
	})
	t.Run("optional parts", func(t *testing.T) {
		r := render(t, "edge", ns, with(baseValues(), "ingress.enabled", true, "persistence.enabled", true,
			"metrics.serviceMonitor.enabled", true, "metrics.serviceMonitor.tokenSecret.name", "mgo-metrics",
			"networkPolicy.enabled", false, "rbac.create", false, "serviceAccount.create", false, "serviceAccount.name", "ops"))
		want := []string{"Deployment mgo/edge-mgo", "Ingress mgo/edge-mgo", "PersistentVolumeClaim mgo/edge-mgo-data",
			"Service mgo/edge-mgo", "ServiceMonitor mgo/edge-mgo"}
		if got := r.kinds(); !slices.Equal(got, want) {
			t.Fatalf("objects %v\nwant %v", got, want)
		}
		d := convert[appsv1.Deployment](t, r.find("Deployment", ns, "edge-mgo"))
		if d.Spec.Template.Spec.ServiceAccountName != "ops" {
			t.Errorf("service account %s", d.Spec.Template.Spec.ServiceAccountName)
		}
		if v := volume(d, "data"); v == nil || v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "edge-mgo-data" {
			t.Errorf("data volume %+v", v)
		}
		// Links in notifications go to the Ingress host unless externalURL says otherwise.
		if args := d.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--external-url=http://mgo.example.com") {
			t.Errorf("args %v: no --external-url from the Ingress host", args)
		}
		sm := r.find("ServiceMonitor", ns, "edge-mgo")
		eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		if len(eps) != 1 || !strings.Contains(toYAML(eps), "mgo-metrics") || !strings.Contains(toYAML(eps), "/metrics") {
			t.Errorf("ServiceMonitor endpoints %s", toYAML(eps))
		}
	})
}

func toYAML(v any) string { b, _ := yaml.Marshal(v); return string(b) }

func volume(d *appsv1.Deployment, name string) *corev1.Volume {
	for i, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return &d.Spec.Template.Spec.Volumes[i]
		}
	}
	return nil
}

func checkDeployment(t *testing.T, r rendered, ns string) {
	t.Helper()
	d := convert[appsv1.Deployment](t, r.find("Deployment", ns, "mgo"))
	spec := d.Spec.Template.Spec
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || *d.Spec.Replicas != 1 {
		t.Errorf("strategy %s replicas %d: one writer at a time", d.Spec.Strategy.Type, *d.Spec.Replicas)
	}
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || *psc.RunAsUser != 65532 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v", psc)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers", len(spec.Containers))
	}
	c := spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil ||
		!*sc.ReadOnlyRootFilesystem || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container security context %+v", sc)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe == nil ||
		c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.StartupProbe == nil {
		t.Errorf("probes: liveness %+v readiness %+v startup %+v", c.LivenessProbe, c.ReadinessProbe, c.StartupProbe)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v", c.Resources)
	}
	if len(spec.TopologySpreadConstraints) != 2 || spec.TopologySpreadConstraints[0].LabelSelector == nil ||
		spec.TopologySpreadConstraints[0].LabelSelector.MatchLabels["app.kubernetes.io/instance"] != "mgo" {
		t.Errorf("topology spread %+v", spec.TopologySpreadConstraints)
	}
	if c.Image != "ghcr.io/mygitops/mgo:0.1.0" {
		t.Errorf("image %s, want the chart's appVersion", c.Image)
	}
	for _, a := range []string{"serve", "--in-cluster=in-cluster", "--repo-url=https://git.example.com/acme/gitops.git",
		"--git-password-file=/etc/mgo/git/password", "--tokens-file=/etc/mgo/tokens/tokens.yaml", "--data-dir=/var/lib/mgo"} {
		if !slices.Contains(c.Args, a) {
			t.Errorf("args %q lack %s", c.Args, a)
		}
	}
	if v := volume(d, "git"); v == nil || v.Secret == nil || v.Secret.SecretName != "mgo-git" {
		t.Errorf("git credentials volume %+v", v)
	}
	if v := volume(d, "tokens"); v == nil || v.Secret == nil || v.Secret.SecretName != "mgo-tokens" {
		t.Errorf("tokens volume %+v", v)
	}
	if *spec.TerminationGracePeriodSeconds != 330 {
		t.Errorf("termination grace %d, want the shutdown timeout and 30 s", *spec.TerminationGracePeriodSeconds)
	}
	for _, o := range r.objs {
		if o.GetKind() == "Secret" {
			t.Errorf("the chart renders Secret %s: secrets are referenced, never rendered from values", o.GetName())
		}
	}
}
