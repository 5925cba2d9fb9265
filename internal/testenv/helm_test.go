package testenv

import (
	"context"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"

	"github.com/mygitops/mgo/internal/charttest"
	"helm.sh/helm/v4/pkg/chart/loader"
	"helm.sh/helm/v4/pkg/kube"
	"helm.sh/helm/v4/pkg/release"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/utils/ptr"
)

// A chart installed through the Helm v4 SDK with server-side apply becomes
// ready and is a real Helm release.
func TestHelmChartInstall(t *testing.T) {
	ns := env.Namespace(t)
	getter := &genericclioptions.ConfigFlags{
		KubeConfig: ptr.To(env.Kubeconfig),
		Context:    ptr.To(env.Context),
		Namespace:  ptr.To(ns),
	}
	cfg := action.NewConfiguration()
	if err := cfg.Init(getter, ns, "secret"); err != nil {
		t.Fatal(err)
	}
	chrt, err := loader.LoadDir(charttest.ChartDir("hello"))
	if err != nil {
		t.Fatal(err)
	}
	install := action.NewInstall(cfg)
	install.ReleaseName = "greeter"
	install.Namespace = ns
	install.ServerSideApply = true
	install.WaitStrategy = kube.StatusWatcherStrategy
	install.Timeout = 2 * time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rel, err := install.RunWithContext(ctx, chrt, map[string]any{
		"image": map[string]any{"tag": "1.2.3"},
	})
	if err != nil {
		t.Fatalf("helm install: %v", err)
	}
	acc, err := release.NewAccessor(rel)
	if err != nil {
		t.Fatal(err)
	}
	if acc.Status() != "deployed" || acc.Version() != 1 {
		t.Fatalf("release %s: status %s revision %d, want deployed 1", acc.Name(), acc.Status(), acc.Version())
	}
	if acc.ApplyMethod() != "ssa" {
		t.Errorf("apply method %q, want ssa (server-side apply)", acc.ApplyMethod())
	}

	// The release is listed as `helm ls` would, and the workload is ready.
	list := action.NewList(cfg)
	rels, err := list.Run()
	if err != nil {
		t.Fatal(err)
	}
	if len(rels) != 1 {
		t.Fatalf("helm ls: %d releases, want 1", len(rels))
	}
	waitDeploymentRolledOut(t, ns, "greeter-hello")
	d, err := env.Client.AppsV1().Deployments(ns).Get(ctx, "greeter-hello", metav1GetOptions)
	if err != nil {
		t.Fatal(err)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "registry.example.com/hello:1.2.3" {
		t.Errorf("image %s, want the value override", img)
	}
}
