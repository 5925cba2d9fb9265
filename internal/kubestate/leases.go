package kubestate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mygitops/mgo/internal/kube"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	coordclient "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"
)

const (
	labelLease    = "mgo.io/lease" // "cluster" or "replica"
	annoCluster   = "mgo.io/cluster"
	clusterPrefix = "mgo-cluster-"
	replicaPrefix = "mgo-replica-"
)

// LeaseOptions configure Leases.
type LeaseOptions struct {
	Namespace string
	// Replica is this process's name, the holder identity of its leases.
	Replica string
	// Clusters are the clusters this replica can serve.
	Clusters []string
	// Duration is how long a lease holds without renewal (default 15s):
	// a replica that dies is replaced after about this long.
	Duration time.Duration
	// Period is how often leases are renewed and free ones taken
	// (default Duration/5).
	Period time.Duration
	// RenewDeadline is how long the holder keeps a lease it could not
	// renew (default Duration*2/3). It gives the lease up (OnLose) after
	// that, before any other replica may take it (Duration after it last
	// saw it renewed), so two replicas never sync one cluster at once.
	RenewDeadline time.Duration
	// OnAcquire is called (in its own goroutine) when this replica takes
	// the lease of a cluster; OnLose when it gives it up or loses it.
	OnAcquire, OnLose func(cluster string)
	// Busy reports a cluster whose sync runs or is queued: a lease above
	// the fair share is given back only when its cluster is idle, so two
	// replicas never sync one cluster at once.
	Busy func(cluster string) bool
	Log  *slog.Logger
}

// Leases shares the served clusters between the replicas of mgo: one
// coordination.k8s.io Lease per cluster (mgo-cluster-<name>), whose holder
// alone syncs the cluster, and one per replica (mgo-replica-<hash>) renewed
// as a heartbeat, so each replica knows how many run and takes at most its
// fair share, ceil(clusters / live replicas), of the cluster leases.
type Leases struct {
	opts   LeaseOptions
	client coordclient.LeaseInterface
	// Requests counts the API requests of the lease loop.
	Requests *kube.RequestCounter

	mu       sync.Mutex
	held     map[string]time.Time // cluster -> last successful renewal
	live     map[string]bool      // replicas with a fresh heartbeat
	listed   bool                 // live was filled at least once
	observed map[string]observation
	synced   chan struct{}
	lastOK   time.Time // last round whose list of leases succeeded
	lastErr  error
}

// observation is when this replica last saw a lease's record change; a
// lease expires Duration after that on this replica's clock, so clocks of
// the replicas need not agree (as client-go's leader election does it).
type observation struct {
	holder string
	renew  time.Time
	at     time.Time
}

// NewLeases returns the lease loop of a replica; start it with Run.
func NewLeases(cfg *rest.Config, opts LeaseOptions) (*Leases, error) {
	if opts.Namespace == "" || opts.Replica == "" {
		return nil, errors.New("leases: a namespace and a replica name are required")
	}
	if opts.Duration <= 0 {
		opts.Duration = 15 * time.Second
	}
	if opts.Period <= 0 {
		opts.Period = opts.Duration / 5
	}
	if opts.RenewDeadline <= 0 || opts.RenewDeadline >= opts.Duration {
		opts.RenewDeadline = opts.Duration * 2 / 3
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	opts.Replica = labelValue(opts.Replica)
	reqs := &kube.RequestCounter{}
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(reqs.Wrap)
	// The loop's own budget, not client-go's default of 5 per second: a
	// round sends two requests for the heartbeat, a list and one per held
	// lease, and a renewal that waits for a token is a renewal missed. A
	// request that hangs must not hold the round past the renew deadline.
	cfg.QPS, cfg.Burst = 50, 100
	cfg.RateLimiter = nil
	cfg.Timeout = opts.RenewDeadline
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Leases{opts: opts, client: cs.CoordinationV1().Leases(opts.Namespace), Requests: reqs,
		held: map[string]time.Time{}, live: map[string]bool{}, observed: map[string]observation{}, synced: make(chan struct{}),
		lastOK: time.Now()}, nil
}

// Holds reports whether this replica holds the lease of cluster.
func (l *Leases) Holds(cluster string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.held[cluster]
	return ok
}

// Held returns the clusters whose lease this replica holds, sorted.
func (l *Leases) Held() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for c := range l.held {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// Live reports whether a replica's heartbeat is fresh. Before the first
// look at the heartbeats every replica is taken as live, so that nothing
// of a running replica is taken for abandoned.
func (l *Leases) Live(replica string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.listed || l.live[replica] || replica == l.opts.Replica
}

// Synced is closed after the first round of the loop.
func (l *Leases) Synced() <-chan struct{} { return l.synced }

// LeaseName is the Lease of a cluster: mgo-cluster-<name>, the name made a
// valid object name (with a hash when that changed it).
func LeaseName(cluster string) string {
	n := strings.Trim(invalidName.ReplaceAllString(strings.ToLower(cluster), "-"), "-.")
	if n != cluster || len(clusterPrefix+n) > 253 {
		sum := sha256.Sum256([]byte(cluster))
		if len(n) > 200 {
			n = n[:200]
		}
		n += "-" + hex.EncodeToString(sum[:4])
	}
	return clusterPrefix + n
}

var invalidName = regexp.MustCompile(`[^a-z0-9.-]+`)

func replicaLease(replica string) string {
	sum := sha256.Sum256([]byte(replica))
	return replicaPrefix + hex.EncodeToString(sum[:8])
}

// Run renews and takes leases every Period until ctx ends, then releases
// what it holds, so another replica takes over at once.
func (l *Leases) Run(ctx context.Context) {
	t := time.NewTicker(l.opts.Period)
	defer t.Stop()
	// The renew deadline is kept by its own clock: a round that waits on
	// the API server does not delay giving up a lease.
	watch, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go l.keepDeadline(watch)
	first := true
	for {
		l.round(ctx)
		if first {
			close(l.synced)
			first = false
		}
		select {
		case <-ctx.Done():
			l.releaseAll()
			return
		case <-t.C:
		}
	}
}

func (l *Leases) round(ctx context.Context) {
	now := time.Now()
	if err := l.heartbeat(ctx, now); err != nil {
		l.opts.Log.Warn("leases: heartbeat failed", "error", err)
	}
	list, err := l.client.List(ctx, metav1.ListOptions{LabelSelector: labelLease})
	if err != nil {
		l.opts.Log.Warn("leases: listing failed", "error", err)
		l.mu.Lock()
		l.lastErr = err
		l.mu.Unlock()
		l.expireOwn(now)
		return
	}
	l.mu.Lock()
	l.lastOK, l.lastErr = now, nil
	l.mu.Unlock()
	byName := map[string]*coordinationv1.Lease{}
	live := map[string]bool{}
	for i := range list.Items {
		le := &list.Items[i]
		byName[le.Name] = le
		expired := l.expired(le, now) // observes every lease each round
		if le.Labels[labelLease] == "replica" && le.Spec.HolderIdentity != nil {
			if expired {
				if now.Sub(renewTime(le)) > 10*l.opts.Duration {
					// Heartbeat of a replica long gone: tidy up.
					_ = l.client.Delete(ctx, le.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &le.ResourceVersion}})
				}
				continue
			}
			live[*le.Spec.HolderIdentity] = true
		}
	}
	live[l.opts.Replica] = true
	l.mu.Lock()
	l.live, l.listed = live, true
	l.mu.Unlock()
	share := int(math.Ceil(float64(len(l.opts.Clusters)) / float64(len(live))))

	// Renew what is held first, then give up the excess, then take free ones.
	clusters := slices.Clone(l.opts.Clusters)
	slices.Sort(clusters)
	held := 0
	for _, c := range clusters {
		if !l.Holds(c) {
			continue
		}
		le := byName[LeaseName(c)]
		if le == nil || le.Spec.HolderIdentity == nil || *le.Spec.HolderIdentity != l.opts.Replica {
			l.lost(c, "another replica took it")
			continue
		}
		if held >= share && (l.opts.Busy == nil || !l.opts.Busy(c)) {
			l.release(ctx, c, le)
			continue
		}
		if err := l.renew(ctx, le, now); err != nil {
			l.opts.Log.Warn("leases: renewal failed", "cluster", c, "error", err)
			if apierrors.IsConflict(err) {
				l.lost(c, "another replica took it")
				continue
			}
		} else {
			l.mu.Lock()
			if _, ok := l.held[c]; ok {
				l.held[c] = now
			}
			l.mu.Unlock()
		}
		held++
	}
	l.expireOwn(now)
	for _, c := range clusters {
		if held >= share {
			break
		}
		if l.Holds(c) {
			continue
		}
		le := byName[LeaseName(c)]
		// A lease this replica gave up after its renew deadline, whose
		// record still names it, is taken again like a free one: its
		// syncs were stopped and start again from OnAcquire.
		if le != nil && le.Spec.HolderIdentity != nil && *le.Spec.HolderIdentity != "" &&
			*le.Spec.HolderIdentity != l.opts.Replica && !l.expired(le, now) {
			continue
		}
		if err := l.take(ctx, c, le, now); err != nil {
			if !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) {
				l.opts.Log.Warn("leases: taking a lease failed", "cluster", c, "error", err)
			}
			continue
		}
		held++
		prev := ""
		if le != nil && le.Spec.HolderIdentity != nil {
			prev = *le.Spec.HolderIdentity
		}
		l.opts.Log.Info("leases: took the lease of a cluster: this replica syncs it", "cluster", c, "lease", LeaseName(c), "previousHolder", prev, "share", share, "replicas", len(live))
		l.mu.Lock()
		l.held[c] = now
		l.mu.Unlock()
		if l.opts.OnAcquire != nil {
			go l.opts.OnAcquire(c)
		}
	}
}

// expired reports a lease whose record has not changed for Duration on
// this replica's clock (or whose renewTime is older than that: a record
// first seen already stale).
func (l *Leases) expired(le *coordinationv1.Lease, now time.Time) bool {
	holder := ""
	if le.Spec.HolderIdentity != nil {
		holder = *le.Spec.HolderIdentity
	}
	d := l.opts.Duration
	if le.Spec.LeaseDurationSeconds != nil {
		d = time.Duration(*le.Spec.LeaseDurationSeconds) * time.Second
	}
	renew := renewTime(le)
	l.mu.Lock()
	o, ok := l.observed[le.Name]
	if !ok || o.holder != holder || !o.renew.Equal(renew) {
		o = observation{holder: holder, renew: renew, at: now}
		if !ok && now.Sub(renew) > d {
			o.at = renew
		}
		l.observed[le.Name] = o
	}
	l.mu.Unlock()
	return now.Sub(o.at) > d
}

func renewTime(le *coordinationv1.Lease) time.Time {
	if le.Spec.RenewTime == nil {
		return time.Time{}
	}
	return le.Spec.RenewTime.Time
}

// expireOwn gives up held leases not renewed for the renew deadline:
// another replica may take them once they are a Duration old.
func (l *Leases) expireOwn(now time.Time) {
	l.mu.Lock()
	var gone []string
	for c, at := range l.held {
		if now.Sub(at) > l.opts.RenewDeadline {
			gone = append(gone, c)
		}
	}
	l.mu.Unlock()
	for _, c := range gone {
		l.lost(c, fmt.Sprintf("not renewed for the renew deadline (%s)", l.opts.RenewDeadline))
	}
}

// keepDeadline gives up, until ctx ends, each held lease as soon as its
// renew deadline passes, whatever the round is waiting for.
func (l *Leases) keepDeadline(ctx context.Context) {
	t := time.NewTicker(max(l.opts.Period/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			l.expireOwn(now)
		}
	}
}

func (l *Leases) lost(cluster, why string) {
	l.mu.Lock()
	_, ok := l.held[cluster]
	delete(l.held, cluster)
	l.mu.Unlock()
	if !ok {
		return
	}
	l.opts.Log.Warn("leases: lost the lease of a cluster", "cluster", cluster, "reason", why)
	if l.opts.OnLose != nil {
		go l.opts.OnLose(cluster)
	}
}

func (l *Leases) seconds() *int32 {
	s := int32(math.Ceil(l.opts.Duration.Seconds()))
	return &s
}

func (l *Leases) heartbeat(ctx context.Context, now time.Time) error {
	name := replicaLease(l.opts.Replica)
	holder := l.opts.Replica
	le, err := l.client.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		le = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{labelLease: "replica"}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: l.seconds(),
				AcquireTime: &metav1.MicroTime{Time: now}, RenewTime: &metav1.MicroTime{Time: now}}}
		_, err = l.client.Create(ctx, le, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	le.Spec.RenewTime = &metav1.MicroTime{Time: now}
	_, err = l.client.Update(ctx, le, metav1.UpdateOptions{})
	return err
}

func (l *Leases) renew(ctx context.Context, le *coordinationv1.Lease, now time.Time) error {
	le = le.DeepCopy()
	le.Spec.RenewTime = &metav1.MicroTime{Time: now}
	le.Spec.LeaseDurationSeconds = l.seconds()
	_, err := l.client.Update(ctx, le, metav1.UpdateOptions{})
	return err
}

// take creates the lease of cluster, or takes over an expired or released
// one; the update names the resourceVersion read, so of two replicas only
// one takes it.
func (l *Leases) take(ctx context.Context, cluster string, le *coordinationv1.Lease, now time.Time) error {
	me := l.opts.Replica
	if le == nil {
		le = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: LeaseName(cluster),
			Labels: map[string]string{labelLease: "cluster"}, Annotations: map[string]string{annoCluster: cluster}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &me, LeaseDurationSeconds: l.seconds(),
				AcquireTime: &metav1.MicroTime{Time: now}, RenewTime: &metav1.MicroTime{Time: now}}}
		_, err := l.client.Create(ctx, le, metav1.CreateOptions{})
		return err
	}
	le = le.DeepCopy()
	transitions := int32(0)
	if le.Spec.LeaseTransitions != nil {
		transitions = *le.Spec.LeaseTransitions
	}
	transitions++
	le.Spec.HolderIdentity, le.Spec.LeaseDurationSeconds = &me, l.seconds()
	le.Spec.AcquireTime, le.Spec.RenewTime = &metav1.MicroTime{Time: now}, &metav1.MicroTime{Time: now}
	le.Spec.LeaseTransitions = &transitions
	_, err := l.client.Update(ctx, le, metav1.UpdateOptions{})
	return err
}

// release gives up a held lease (holder emptied), so another replica
// takes it at its next round.
func (l *Leases) release(ctx context.Context, cluster string, le *coordinationv1.Lease) {
	le = le.DeepCopy()
	empty := ""
	le.Spec.HolderIdentity = &empty
	if _, err := l.client.Update(ctx, le, metav1.UpdateOptions{}); err != nil {
		l.opts.Log.Warn("leases: releasing failed", "cluster", cluster, "error", err)
	}
	l.lost(cluster, "released: more than this replica's share")
}

// releaseAll gives up every held lease as the replica stops.
func (l *Leases) releaseAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, c := range l.Held() {
		le, err := l.client.Get(ctx, LeaseName(c), metav1.GetOptions{})
		if err == nil && le.Spec.HolderIdentity != nil && *le.Spec.HolderIdentity == l.opts.Replica {
			l.release(ctx, c, le)
		}
	}
	_ = l.client.Delete(ctx, replicaLease(l.opts.Replica), metav1.DeleteOptions{})
}

// String describes the leases held, for logs.
func (l *Leases) String() string { return fmt.Sprintf("%s holds %v", l.opts.Replica, l.Held()) }

// OnAcquire sets the function called when this replica takes a cluster's
// lease; call it before Run.
func (l *Leases) OnAcquire(fn func(cluster string)) { l.opts.OnAcquire = fn }

// OnLose sets the function called when this replica gives up or loses a
// cluster's lease; call it before Run.
func (l *Leases) OnLose(fn func(cluster string)) { l.opts.OnLose = fn }

// SetBusy sets LeaseOptions.Busy; call it before Run.
func (l *Leases) SetBusy(fn func(cluster string) bool) { l.opts.Busy = fn }

// Healthy is nil while the home cluster's API server answers the lease
// loop; an error once it has not for two lease durations: the records
// cannot be written either. It does no I/O.
func (l *Leases) Healthy() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if since := time.Since(l.lastOK); since > 2*l.opts.Duration && l.lastErr != nil {
		return fmt.Errorf("the home cluster's API server has not answered for %s: %w", since.Round(time.Second), l.lastErr)
	}
	return nil
}
