// Command devcluster runs the local Kubernetes control plane of the tests
// (etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok with
// fake nodes) in the foreground, for people: try mgo against it with kubectl.
//
//	make devcluster            # or: go run ./hack/devcluster [flags]
//
// It writes a kubeconfig, prints how to use it and runs until interrupted.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mygitops/mgo/internal/testenv"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "devcluster:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("devcluster", flag.ContinueOnError)
	var (
		ctxName    = fs.String("context", "mgo-dev", "kubeconfig context (mgo's cluster name)")
		nodes      = fs.Int("nodes", 2, "number of fake kwok nodes")
		dir        = fs.String("dir", "", "working directory; state (etcd data) is kept between runs when set (default: a new temporary directory)")
		kubeconfig = fs.String("kubeconfig", filepath.Join(".devcluster", "kubeconfig"), "where to write the kubeconfig")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	start := time.Now()
	env, err := testenv.Start(ctx, testenv.Options{Context: *ctxName, Nodes: *nodes, Dir: *dir})
	if err != nil {
		return err
	}
	defer env.Stop()

	kc, err := os.ReadFile(env.Kubeconfig)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*kubeconfig), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(*kubeconfig, kc, 0o600); err != nil {
		return err
	}
	abs, _ := filepath.Abs(*kubeconfig)
	cache, _ := testenv.CacheDir()

	fmt.Fprintf(out, `Kubernetes %s is up in %s: %s, context %q, %d kwok node(s).

  export KUBECONFIG=%s
  export PATH=%s:$PATH    # kubectl %s
  kubectl get nodes

Logs of each component are in %s.
Press Ctrl-C to stop.
`, testenv.KubeVersion, time.Since(start).Round(time.Millisecond), env.Config.Host, env.Context, *nodes,
		abs, filepath.Join(cache, "bin"), testenv.KubeVersion, env.LogDir())

	<-ctx.Done()
	fmt.Fprintln(out, "\nstopping the control plane")
	return nil
}
