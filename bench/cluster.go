package main

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/mygitops/mgo/internal/testenv"
)

// cluster is a fresh control plane for one contender, with an audit log and
// an identity of the contender's own, so that its requests are told apart
// from the controllers' and the benchmark's.
type cluster struct {
	Env        *testenv.Env
	User       string // the contender's identity
	Kubeconfig string // authenticates as User, current context = Env.Context
	// Extra are further identities of the contender (one per process of a
	// contender made of several controllers), each with a kubeconfig of its
	// own; their requests count as the contender's.
	Extra map[string]string // identity -> kubeconfig
	// LastByUser is the split by identity of the last Requests.
	LastByUser map[string]Requests
	audit      auditTail
}

// startCluster starts a control plane whose context is name, with user as an extra
// identity (cluster administrator, as the tools usually are).
func startCluster(ctx context.Context, name, user, dir string, extra ...string) (*cluster, error) {
	users := []testenv.User{{Name: user, Groups: []string{"system:masters"}}}
	for _, u := range extra {
		users = append(users, testenv.User{Name: u, Groups: []string{"system:masters"}})
	}
	env, err := testenv.Start(ctx, testenv.Options{
		Context:      name,
		Nodes:        2,
		AuditLog:     true,
		Users:        users,
		StartTimeout: 3 * time.Minute,
	})
	if err != nil {
		return nil, err
	}
	c := &cluster{Env: env, User: user, Kubeconfig: filepath.Join(dir, user+".kubeconfig")}
	if c.audit.path = env.AuditLogPath(); c.audit.path == "" {
		env.Stop()
		return nil, fmt.Errorf("the control plane has no audit log")
	}
	if err := writeUserKubeconfig(env, user, c.Kubeconfig); err != nil {
		env.Stop()
		return nil, err
	}
	for _, u := range extra {
		if c.Extra == nil {
			c.Extra = map[string]string{}
		}
		c.Extra[u] = filepath.Join(dir, u+".kubeconfig")
		if err := writeUserKubeconfig(env, u, c.Extra[u]); err != nil {
			env.Stop()
			return nil, err
		}
	}
	return c, nil
}

// writeUserKubeconfig writes a kubeconfig that authenticates as user, its
// current context the cluster's.
func writeUserKubeconfig(env *testenv.Env, user, path string) error {
	cfg, err := env.UserConfig(user)
	if err != nil {
		return err
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters[env.Context] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts[env.Context] = &clientcmdapi.Context{Cluster: env.Context, AuthInfo: user}
	kc.CurrentContext = env.Context
	return clientcmd.WriteToFile(*kc, path)
}

// Requests returns the requests of the contender's identity since the last
// call.
func (c *cluster) Requests() (Requests, error) {
	// The log is written before a request is served (blocking mode); the
	// short pause lets the last lines of a process that just exited land.
	time.Sleep(200 * time.Millisecond)
	counts, err := c.audit.Next()
	if err != nil {
		return nil, err
	}
	sum := Requests{}
	c.LastByUser = map[string]Requests{}
	for _, u := range append([]string{c.User}, slices.Sorted(maps.Keys(c.Extra))...) {
		r := counts[u]
		if r == nil {
			r = Requests{}
		}
		c.LastByUser[u] = r
		for verb, n := range r {
			sum[verb] += n
		}
	}
	return sum, nil
}

// CreateNamespaces creates the release namespaces (as the administrator, not
// counted) and waits for their default service accounts.
func (c *cluster) CreateNamespaces(ctx context.Context, names []string) error {
	for _, ns := range names {
		_, err := c.Env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
	}
	for _, ns := range names {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			_, err := c.Env.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
			return err == nil, nil
		})
		if err != nil {
			return fmt.Errorf("namespace %s: default service account: %w", ns, err)
		}
	}
	return nil
}

// Revisions returns the latest Helm revision of every release, from the
// release Secrets (label owner=helm) Helm keeps in the release namespace.
func (c *cluster) Revisions(ctx context.Context) (map[string]int, error) {
	list, err := c.Env.Client.CoreV1().Secrets("").List(ctx, metav1.ListOptions{LabelSelector: "owner=helm"})
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, s := range list.Items {
		v, err := strconv.Atoi(s.Labels["version"])
		if err != nil {
			continue
		}
		key := s.Namespace + "/" + s.Labels["name"]
		out[key] = max(out[key], v)
	}
	return out, nil
}

// newRevisions counts the Helm revisions created between two Revisions
// snapshots (robust to history pruning: it compares the latest numbers).
func newRevisions(before, after map[string]int) int {
	n := 0
	for k, v := range after {
		n += max(0, v-before[k])
	}
	return n
}

// Verify checks that every release of g runs in the cluster as the repo
// says: its Deployment is rolled out (all replicas updated and available)
// with the image tag of the repo. It waits up to timeout and returns how long
// it had to wait: zero when the contender had left the cluster ready.
func (c *cluster) Verify(ctx context.Context, g *gitops, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	var last string
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		last = ""
		for _, ns := range g.Namespaces() {
			list, err := c.Env.Client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				last = err.Error()
				return false, nil
			}
			byName := map[string]int{}
			for i, d := range list.Items {
				byName[d.Name] = i
			}
			for _, r := range g.Releases {
				if r.Namespace != ns {
					continue
				}
				name := r.Name + "-" + chartName
				i, ok := byName[name]
				if !ok {
					last = fmt.Sprintf("deployment %s/%s missing", ns, name)
					return false, nil
				}
				d := list.Items[i]
				want := ImageRepo(r) + ":" + r.Tag
				if img := d.Spec.Template.Spec.Containers[0].Image; img != want {
					last = fmt.Sprintf("deployment %s/%s runs %s, want %s", ns, name, img, want)
					return false, nil
				}
				st := d.Status
				if st.ObservedGeneration < d.Generation || st.UpdatedReplicas != replicas || st.AvailableReplicas != replicas || st.Replicas != replicas {
					last = fmt.Sprintf("deployment %s/%s not rolled out (generation %d observed %d, replicas %d updated %d available %d)",
						ns, name, d.Generation, st.ObservedGeneration, st.Replicas, st.UpdatedReplicas, st.AvailableReplicas)
					return false, nil
				}
			}
		}
		return true, nil
	})
	waited := time.Since(start)
	if waited < 300*time.Millisecond {
		waited = 0 // ready at the first look
	}
	if err != nil {
		return waited, fmt.Errorf("cluster does not match the repo after %s: %s", timeout, strings.TrimSpace(last))
	}
	return waited, nil
}
