package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Options configure a control plane. The zero value is usable.
type Options struct {
	// Context is the kubeconfig context (and cluster) name. mgo names
	// clusters by kubeconfig context, so tests choose it. Default "testenv".
	Context string
	// Nodes is the number of fake kwok nodes. Default 1.
	Nodes int
	// Dir is the working directory (etcd data, certificates, logs,
	// kubeconfig). Default: a new temporary directory, removed by Stop.
	Dir string
	// CacheDir holds the binaries built by hack/build-testenv.sh.
	// Default: CacheDir().
	CacheDir string
	// Users are extra API identities, each with its own bearer token (see
	// Env.UserConfig). They are subject to RBAC unless a group grants more.
	Users []User
	// StartTimeout bounds Start. Default 90s.
	StartTimeout time.Duration
	// AuditLog makes the API server write an audit log of every request
	// (see Env.AuditLogPath).
	AuditLog bool
}

// User is an API identity authenticated by a static bearer token.
type User struct {
	Name   string
	Groups []string
}

// Env is a running control plane.
type Env struct {
	// Config authenticates as the cluster administrator (system:masters).
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig file whose current context,
	// named Context, is the administrator on this cluster.
	Kubeconfig string
	// Context is the kubeconfig context name.
	Context string
	// Dir is the working directory.
	Dir string
	// Ports are the loopback ports in use: etcd client, etcd peer, apiserver.
	Ports []int
	// Client is a clientset for Config.
	Client kubernetes.Interface

	procsMu   sync.Mutex
	procs     []*process
	apiArgs   []string // kube-apiserver's binary and arguments, for StartAPIServer
	reserved  []reservedPort
	tokens    map[string]string
	pki       *pki
	removeDir bool
	stopOnce  sync.Once
	auditLog  bool // Options.AuditLog
}

const (
	adminUser      = "admin"
	kwokAnnotation = "kwok.x-k8s.io/node"
	storageClass   = "kwok-volume"
)

// Start runs a control plane and waits until it is ready: the API server
// answers /readyz, every fake node is Ready and schedulable, and the
// controller manager has created the default service account. On error
// everything started is stopped again.
func Start(ctx context.Context, opts Options) (_ *Env, err error) {
	if opts.Context == "" {
		opts.Context = "testenv"
	}
	if opts.Nodes <= 0 {
		opts.Nodes = 1
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 90 * time.Second
	}
	if opts.CacheDir == "" {
		if opts.CacheDir, err = CacheDir(); err != nil {
			return nil, err
		}
	}
	if err := checkInstall(opts.CacheDir); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()

	removeStaleDirs()
	e := &Env{Context: opts.Context, tokens: map[string]string{}, auditLog: opts.AuditLog}
	if opts.Dir == "" {
		if e.Dir, err = os.MkdirTemp("", "mgo-testenv-"); err != nil {
			return nil, err
		}
		e.removeDir = true
	} else {
		e.Dir = opts.Dir
		if err := os.MkdirAll(e.Dir, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(e.Dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			e.Stop()
		}
	}()
	if err := e.start(ctx, opts); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *Env) start(ctx context.Context, opts Options) error {
	for range 3 {
		p, err := reservePort()
		if err != nil {
			return err
		}
		e.reserved = append(e.reserved, p)
		e.Ports = append(e.Ports, p.Port)
	}
	etcdPort, peerPort, apiPort := e.Ports[0], e.Ports[1], e.Ports[2]
	bin := func(name string) string { return filepath.Join(opts.CacheDir, "bin", name) }
	logs := filepath.Join(e.Dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}

	var err error
	if e.pki, err = writePKI(filepath.Join(e.Dir, "pki")); err != nil {
		return err
	}
	users := []User{
		{Name: adminUser, Groups: []string{"system:masters"}},
		// The components get their own identities, so that audit logs and
		// request metrics tell their traffic apart from a test's.
		{Name: "system:kube-controller-manager", Groups: []string{"system:masters"}},
		{Name: "system:kube-scheduler", Groups: []string{"system:masters"}},
		{Name: "kwok", Groups: []string{"system:masters"}},
	}
	users = append(users, opts.Users...)
	if err := e.writeTokens(users); err != nil {
		return err
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	e.Config = e.restConfig(server, adminUser)
	kubeconfig := func(user, name string) (string, error) {
		path := filepath.Join(e.Dir, name)
		return path, e.writeKubeconfig(path, server, user)
	}
	if e.Kubeconfig, err = kubeconfig(adminUser, "kubeconfig"); err != nil {
		return err
	}

	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	if err := e.run("etcd", bin("etcd"), nil,
		"--name=testenv",
		"--data-dir="+filepath.Join(e.Dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=testenv="+peerURL,
		"--unsafe-no-fsync=true", // test data: durability is not needed, speed is
		"--log-level=warn",
	); err != nil {
		return err
	}
	e.apiArgs = []string{bin("kube-apiserver"),
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--cert-dir=" + filepath.Join(e.Dir, "pki"),
		"--tls-cert-file=" + e.pki.ServingCert, "--tls-private-key-file=" + e.pki.ServingKey,
		"--client-ca-file=" + e.pki.CACert,
		"--token-auth-file=" + filepath.Join(e.Dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + e.pki.SAPub,
		"--service-account-signing-key-file=" + e.pki.SAKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--endpoint-reconciler-type=none", // the advertise address is loopback
		"--allow-privileged=true",
		"--profiling=false",
	}
	if err := e.run("kube-apiserver", e.apiArgs[0], nil, e.apiArgs[1:]...); err != nil {
		return err
	}
	if err := e.waitAPIServer(ctx); err != nil {
		return err
	}

	kcm, err := kubeconfig("system:kube-controller-manager", "controller-manager.kubeconfig")
	if err != nil {
		return err
	}
	if err := e.run("kube-controller-manager", bin("kube-controller-manager"), nil,
		"--kubeconfig="+kcm,
		"--secure-port=0",
		"--leader-elect=false",
		"--service-account-private-key-file="+e.pki.SAKey,
		"--root-ca-file="+e.pki.CACert,
		"--use-service-account-credentials=false",
		"--controllers=*",
		"--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
		"--concurrent-statefulset-syncs=10",
		// The client budget of a controller manager sized for clusters of
		// a thousand workloads (the default, 20 QPS, rolls out about one
		// Deployment a second, whoever applied it).
		"--kube-api-qps=100", "--kube-api-burst=200",
	); err != nil {
		return err
	}
	sched, err := kubeconfig("system:kube-scheduler", "scheduler.kubeconfig")
	if err != nil {
		return err
	}
	if err := e.run("kube-scheduler", bin("kube-scheduler"), nil,
		"--kubeconfig="+sched,
		"--secure-port=0",
		"--leader-elect=false",
	); err != nil {
		return err
	}
	kwokcfg, err := kubeconfig("kwok", "kwok.kubeconfig")
	if err != nil {
		return err
	}
	stages, err := filepath.Glob(filepath.Join(opts.CacheDir, "stages", "*.yaml"))
	if err != nil {
		return err
	}
	// kwok reads ~/.kwok/kwok.yaml when present: give it a home of its own.
	kwokHome := filepath.Join(e.Dir, "kwok")
	if err := os.MkdirAll(kwokHome, 0o755); err != nil {
		return err
	}
	if err := e.run("kwok", bin("kwok"), []string{"HOME=" + kwokHome},
		"--kubeconfig="+kwokcfg,
		"--config="+strings.Join(stages, ","),
		"--manage-nodes-with-annotation-selector="+kwokAnnotation+"=fake",
		"--cidr=10.244.0.0/16",
		"--node-ip=127.0.0.1",
		"--node-lease-duration-seconds=40",
	); err != nil {
		return err
	}

	e.Client, err = kubernetes.NewForConfig(e.Config)
	if err != nil {
		return err
	}
	if err := e.createStorageClass(ctx); err != nil {
		return err
	}
	for i := range opts.Nodes {
		if err := e.createNode(ctx, fmt.Sprintf("kwok-node-%d", i)); err != nil {
			return err
		}
	}
	for i := range opts.Nodes {
		if err := e.waitNode(ctx, fmt.Sprintf("kwok-node-%d", i)); err != nil {
			return err
		}
	}
	return e.waitServiceAccount(ctx, metav1.NamespaceDefault)
}

// run starts a binary and records it; its output goes to logs/<name>.log.
func (e *Env) run(name, bin string, env []string, args ...string) error {
	extra, err := e.extraArgs(name)
	if err != nil {
		return err
	}
	p, err := startProcess(name, bin, append(slices.Clone(args), extra...), env, filepath.Join(e.Dir, "logs", name+".log"))
	if err != nil {
		return err
	}
	e.procsMu.Lock()
	e.procs = append(e.procs, p)
	e.procsMu.Unlock()
	return nil
}

// processes returns the running control-plane processes.
func (e *Env) processes() []*process {
	e.procsMu.Lock()
	defer e.procsMu.Unlock()
	return slices.Clone(e.procs)
}

// StopAPIServer stops kube-apiserver (SIGTERM, then SIGKILL), leaving
// etcd and every other process running, as an API server outage would.
// Its port stays reserved for StartAPIServer. Clients of the API server
// (the controller manager, the scheduler, kwok) retry until it is back.
func (e *Env) StopAPIServer() {
	e.procsMu.Lock()
	var api *process
	e.procs = slices.DeleteFunc(e.procs, func(p *process) bool {
		if p.Name == "kube-apiserver" {
			api = p
			return true
		}
		return false
	})
	e.procsMu.Unlock()
	if api != nil {
		api.Stop(10 * time.Second)
	}
}

// StartAPIServer starts kube-apiserver again after StopAPIServer, on the
// same port with the same etcd, certificates and tokens, and waits until it
// answers /readyz. It does nothing when the API server is running.
func (e *Env) StartAPIServer(ctx context.Context) error {
	for _, p := range e.processes() {
		if p.Name == "kube-apiserver" {
			return nil
		}
	}
	if len(e.apiArgs) == 0 {
		return errors.New("testenv: the control plane was not started")
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	// The port was released by the stopped server; it can take a moment
	// until the kernel lets a new one bind it, so a server that exits at
	// once is started again.
	for {
		if err := e.run("kube-apiserver", e.apiArgs[0], nil, e.apiArgs[1:]...); err != nil {
			return err
		}
		err := e.waitAPIServer(ctx)
		if err == nil {
			return nil
		}
		e.StopAPIServer()
		if ctx.Err() != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkProcs returns an error if a control-plane process has exited.
func (e *Env) checkProcs() error {
	for _, p := range e.processes() {
		if exited, _ := p.Exited(); exited {
			return p.exitError()
		}
	}
	return nil
}

// poll calls cond every interval until it returns true, returns an error, a
// process dies, or ctx ends. what names the wait in the error.
func (e *Env) poll(ctx context.Context, what string, cond func() (bool, error)) error {
	var last error
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := e.checkProcs(); err != nil {
			return fmt.Errorf("testenv: waiting for %s: %w", what, err)
		}
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("testenv: waiting for %s: %w (last error: %v)", what, ctx.Err(), last)
			}
			return fmt.Errorf("testenv: waiting for %s: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
}

func (e *Env) waitAPIServer(ctx context.Context) error {
	cfg := rest.CopyConfig(e.Config)
	cfg.Timeout = 2 * time.Second
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	return e.poll(ctx, "kube-apiserver /readyz", func() (bool, error) {
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return false, fmt.Errorf("%w: %s", err, body)
		}
		return string(body) == "ok", nil
	})
}

func (e *Env) createStorageClass(ctx context.Context) error {
	mode := storagev1.VolumeBindingImmediate
	reclaim := corev1.PersistentVolumeReclaimDelete
	sc := &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        storageClass,
			Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"},
		},
		Provisioner:       "kwok.x-k8s.io/volume", // kwok's pvc-provision stage plays the provisioner
		ReclaimPolicy:     &reclaim,
		VolumeBindingMode: &mode,
	}
	_, err := e.Client.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("testenv: creating storage class: %w", err)
	}
	return nil
}

func (e *Env) createNode(ctx context.Context, name string) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{kwokAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels: map[string]string{
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"type":                   "kwok",
			},
		},
	}
	_, err := e.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("testenv: creating node %s: %w", name, err)
	}
	return nil
}

// waitNode waits until kwok has made the node Ready and the node lifecycle
// controller has lifted the not-ready taint. Should the taint outlive a Ready
// node by several seconds, it is removed here, so a slow controller does not
// leave the cluster unschedulable.
func (e *Env) waitNode(ctx context.Context, name string) error {
	var readySince time.Time
	return e.poll(ctx, "node "+name+" Ready and schedulable", func() (bool, error) {
		node, err := e.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		ready := false
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		if !ready {
			return false, errors.New("not Ready")
		}
		var keep []corev1.Taint
		for _, t := range node.Spec.Taints {
			if t.Key != corev1.TaintNodeNotReady && t.Key != corev1.TaintNodeUnreachable {
				keep = append(keep, t)
			}
		}
		if len(keep) == len(node.Spec.Taints) {
			return true, nil
		}
		if readySince.IsZero() {
			readySince = time.Now()
		}
		if time.Since(readySince) > 5*time.Second {
			node.Spec.Taints = keep
			_, err := e.Client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{})
			return err == nil, err
		}
		return false, errors.New("Ready but still tainted not-ready")
	})
}

func (e *Env) waitServiceAccount(ctx context.Context, ns string) error {
	return e.poll(ctx, "service account "+ns+"/default", func() (bool, error) {
		_, err := e.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, err
	})
}

func (e *Env) writeTokens(users []User) error {
	var b strings.Builder
	for i, u := range users {
		if _, dup := e.tokens[u.Name]; dup {
			return fmt.Errorf("testenv: user %q given twice", u.Name)
		}
		tok := randomHex(24)
		e.tokens[u.Name] = tok
		// token,user,uid,"group1,group2"
		fmt.Fprintf(&b, "%s,%s,uid-%d,%q\n", tok, u.Name, i, strings.Join(u.Groups, ","))
	}
	return os.WriteFile(filepath.Join(e.Dir, "tokens.csv"), []byte(b.String()), 0o600)
}

func (e *Env) restConfig(server, user string) *rest.Config {
	return &rest.Config{
		Host:            server,
		BearerToken:     e.tokens[user],
		TLSClientConfig: rest.TLSClientConfig{CAData: e.pki.CAData},
		QPS:             100,
		Burst:           200,
	}
}

func (e *Env) writeKubeconfig(path, server, user string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[e.Context] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: e.pki.CAData}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: e.tokens[user]}
	cfg.Contexts[e.Context] = &clientcmdapi.Context{Cluster: e.Context, AuthInfo: user}
	cfg.CurrentContext = e.Context
	return clientcmd.WriteToFile(*cfg, path)
}

// UserConfig returns a rest.Config that authenticates as one of
// Options.Users (or "admin").
func (e *Env) UserConfig(name string) (*rest.Config, error) {
	if _, ok := e.tokens[name]; !ok {
		return nil, fmt.Errorf("testenv: no user %q", name)
	}
	return e.restConfig(e.Config.Host, name), nil
}

// Pids returns the process ids of the control-plane processes.
func (e *Env) Pids() map[string]int {
	m := map[string]int{}
	for _, p := range e.processes() {
		m[p.Name] = p.Pid()
	}
	return m
}

// LogDir is where each process writes <name>.log.
func (e *Env) LogDir() string { return filepath.Join(e.Dir, "logs") }

// Stop ends every process (SIGTERM, then SIGKILL after a grace period),
// releases the ports and removes the working directory if Start created it.
// Set MGO_TESTENV_KEEP=1 to keep it for inspection. Stop is idempotent.
func (e *Env) Stop() {
	e.stopOnce.Do(func() {
		// Clients of the API server first, then the API server, then etcd:
		// an API server whose etcd is gone hangs in its graceful shutdown.
		var clients []*process
		var apiserver, etcd *process
		for _, p := range e.processes() {
			switch p.Name {
			case "etcd":
				etcd = p
			case "kube-apiserver":
				apiserver = p
			default:
				clients = append(clients, p)
			}
		}
		var wg sync.WaitGroup
		for _, p := range clients {
			wg.Go(func() { p.Stop(5 * time.Second) })
		}
		wg.Wait()
		for _, p := range []*process{apiserver, etcd} {
			if p != nil {
				p.Stop(10 * time.Second)
			}
		}
		for _, p := range e.reserved {
			p.Release()
		}
		if e.removeDir && os.Getenv("MGO_TESTENV_KEEP") == "" {
			_ = os.RemoveAll(e.Dir)
		}
	})
}

// removeStaleDirs deletes temporary directories of earlier control planes
// whose test binary is gone (killed before it could clean up).
func removeStaleDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "mgo-testenv-*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || processAlive(pid) {
			continue
		}
		_ = os.RemoveAll(d)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
