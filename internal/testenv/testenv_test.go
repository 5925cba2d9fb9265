package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
)

var env *Env

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		helperMain(mode) // a child started by TestNoProcessOutlivesTheTestBinary
		return
	}
	Main(m, &env, Options{Context: "testenv-self", Nodes: 2})
}

func TestKubeVersionMatchesBuildModule(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "hack", "testenv", "kube", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "require k8s.io/kubernetes " + KubeVersion + "\n"; !strings.Contains(string(b), want) {
		t.Fatalf("hack/testenv/kube/go.mod does not pin %q; KubeVersion and the build module disagree", strings.TrimSpace(want))
	}
}

func TestClusterBasics(t *testing.T) {
	ctx := context.Background()
	v, err := env.Client.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != KubeVersion {
		t.Errorf("server version %s, want %s", v.GitVersion, KubeVersion)
	}
	nodes, err := env.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != 2 {
		t.Fatalf("%d nodes, want 2", len(nodes.Items))
	}
	for _, n := range nodes.Items {
		for _, taint := range n.Spec.Taints {
			t.Errorf("node %s tainted %s:%s", n.Name, taint.Key, taint.Effect)
		}
	}
	// The kubeconfig file names the context the test chose.
	kc, err := os.ReadFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(kc), "current-context: testenv-self") {
		t.Errorf("kubeconfig lacks the chosen context:\n%s", kc)
	}
}

func TestRBACAppliesToUsers(t *testing.T) {
	// The component identities are in system:masters; an identity without
	// a binding is refused, so RBAC is really on.
	cfg := *env.Config
	cfg.BearerToken = "not-a-token"
	if _, err := newClient(&cfg).CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{}); err == nil {
		t.Fatal("an unknown token was accepted")
	}
}

func TestDeploymentRollsOut(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	deployments := env.Client.AppsV1().Deployments(ns)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "web", Image: "registry.example.com/web:1.0.0",
				}}},
			},
		},
	}
	if _, err := deployments.Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDeploymentRolledOut(t, ns, "web")

	// A new image rolls out through a new ReplicaSet.
	cur, err := deployments.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Spec.Template.Spec.Containers[0].Image = "registry.example.com/web:1.1.0"
	if _, err := deployments.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDeploymentRolledOut(t, ns, "web")

	rss, err := env.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rss.Items) != 2 {
		t.Fatalf("%d ReplicaSets, want 2 (old and new)", len(rss.Items))
	}
	for _, rs := range rss.Items {
		img := rs.Spec.Template.Spec.Containers[0].Image
		switch {
		case img == "registry.example.com/web:1.1.0" && rs.Status.ReadyReplicas == 3:
		case img == "registry.example.com/web:1.0.0" && *rs.Spec.Replicas == 0:
		default:
			t.Errorf("ReplicaSet %s: image %s, %d/%d ready", rs.Name, img, rs.Status.ReadyReplicas, *rs.Spec.Replicas)
		}
	}
	pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && p.Spec.NodeName != "" &&
			p.Spec.Containers[0].Image == "registry.example.com/web:1.1.0" {
			running++
		}
	}
	if running != 3 {
		t.Errorf("%d running pods with the new image, want 3", running)
	}
}

func TestStatefulSetWithVolumeClaimTemplate(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To[int32](2),
			ServiceName: "db",
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "db", Image: "registry.example.com/db:15",
					VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
				}}},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceStorage: resource.MustParse("1Gi"),
					}},
				},
			}},
		},
	}
	if _, err := env.Client.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var last string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		s, err := env.Client.AppsV1().StatefulSets(ns).Get(ctx, "db", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = fmt.Sprintf("ready %d/2, current revision %q, update revision %q", s.Status.ReadyReplicas, s.Status.CurrentRevision, s.Status.UpdateRevision)
		return s.Status.ObservedGeneration == s.Generation && s.Status.ReadyReplicas == 2, nil
	})
	if err != nil {
		t.Fatalf("StatefulSet not ready: %v (%s)", err, last)
	}
	pvcs, err := env.Client.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pvcs.Items) != 2 {
		t.Fatalf("%d PVCs, want 2", len(pvcs.Items))
	}
	for _, pvc := range pvcs.Items {
		if pvc.Status.Phase != corev1.ClaimBound {
			t.Errorf("PVC %s is %s, want Bound", pvc.Name, pvc.Status.Phase)
		}
	}
}

// waitDeploymentRolledOut waits as `kubectl rollout status` does: the
// controller has seen the latest spec, every replica is updated and
// available, and no old replica is left.
func waitDeploymentRolledOut(t *testing.T, ns, name string) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		d, err := env.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		s := d.Status
		last = fmt.Sprintf("generation %d/%d, updated %d, available %d, total %d", s.ObservedGeneration, d.Generation, s.UpdatedReplicas, s.AvailableReplicas, s.Replicas)
		want := *d.Spec.Replicas
		available := false
		for _, c := range s.Conditions {
			if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue {
				available = true
			}
		}
		return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want &&
			s.AvailableReplicas == want && s.Replicas == want && available, nil
	})
	if err != nil {
		t.Fatalf("deployment %s/%s did not roll out: %v (%s)", ns, name, err, last)
	}
}
