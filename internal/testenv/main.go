package testenv

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Main starts a control plane for a test package, stores it in *env, runs the
// tests and stops the control plane. Call it from TestMain. It does not
// return. A control plane that cannot start fails the package with exit code
// 2 and the reason; tests never skip for want of a cluster.
func Main(m *testing.M, env **Env, opts Options) {
	if !flag.Parsed() {
		flag.Parse() // testing.Verbose needs the test flags
	}
	start := time.Now()
	e, err := Start(context.Background(), opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: control plane did not start: %v\n", err)
		os.Exit(2)
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "testenv: control plane ready in %s (%s, context %q)\n", time.Since(start).Round(time.Millisecond), e.Config.Host, e.Context)
	}
	*env = e

	// An interrupt still stops the processes cleanly (Pdeathsig would kill
	// them anyway) and removes the working directory.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		e.Stop()
		fmt.Fprintf(os.Stderr, "testenv: stopped on %s\n", s)
		os.Exit(130)
	}()

	code := m.Run()
	e.Stop()
	os.Exit(code)
}

var nsUnsafe = regexp.MustCompile(`[^a-z0-9-]+`)

// Namespace creates a namespace for one test, named after it, waits until its
// default service account exists (pods need it), and deletes the namespace
// when the test ends.
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	base := strings.Trim(nsUnsafe.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(base) > 40 {
		base = strings.Trim(base[:40], "-")
	}
	name := base + "-" + randomHex(3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := e.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("deleting namespace %s: %v", name, err)
		}
	})
	if err := e.waitServiceAccount(ctx, name); err != nil {
		t.Fatalf("namespace %s: %v", name, err)
	}
	return name
}
