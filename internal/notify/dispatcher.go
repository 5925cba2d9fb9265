package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/mygitops/mgo/internal/outbound"
	"github.com/mygitops/mgo/internal/repo"
)

// Options configure a Dispatcher. The zero values are replaced by the
// defaults New documents.
type Options struct {
	// Config returns the current receivers and routes (mygitops.yaml at the
	// head of the gitops repo). Required.
	Config func(ctx context.Context) (repo.Notifications, error)
	// Credentials is what secret references may name (default:
	// repo.DefaultCredentialPolicy).
	Credentials *repo.CredentialPolicy
	// ExternalURL is the base URL of mgo's API, for links in messages
	// (none when empty).
	ExternalURL string
	// Client sends the requests (default: a client with AttemptTimeout,
	// bounded by Outbound if set).
	Client *http.Client
	// Outbound, if set, bounds the addresses receivers are reached at:
	// every connection, those of redirects included, is checked after DNS
	// resolution, and a refusal drops the delivery without retries. Chat
	// (shoutrrr) receivers dial through their own clients, which the check
	// cannot see: with Outbound set they are refused.
	Outbound *outbound.Policy
	// QueueSize bounds the events and the deliveries waiting (default 256
	// each); beyond it, new ones are dropped.
	QueueSize int
	// Workers send in parallel (default 4).
	Workers int
	// Attempts per delivery (default 5), the first retry after Backoff
	// (default 2s), doubling up to a minute.
	Attempts int
	Backoff  time.Duration
	// AttemptTimeout bounds one attempt (default 10s).
	AttemptTimeout time.Duration
	Log            *slog.Logger
	Metrics        *Metrics
}

// Dispatcher routes events to receivers and delivers them in the
// background. Start it with Run; Notify never blocks.
type Dispatcher struct {
	opts       Options
	log        *slog.Logger
	events     chan Event
	deliveries chan *delivery

	mu sync.Mutex
	// starting counts the deploy.started deliveries not yet sent or
	// dropped, by receiver and deployment: the outcome of that deployment
	// waits for them, so a forge never shows "pending" after the result.
	starting map[string]int
	// inFlight counts the events queued and the deliveries not yet sent or
	// dropped; idle is closed when it drops to 0 (Flush waits for it).
	inFlight int
	idle     chan struct{}
}

// delivery is one event on its way to one receiver.
type delivery struct {
	receiver, kind string
	sender         sender
	ev             Event
	id             string // the same for every attempt
	attempt        int
	// memo keeps what an attempt learned that the next one needs (the
	// GitHub deployment already created).
	memo map[string]string
}

// sender is one receiver type's client.
type sender interface {
	send(ctx context.Context, d *delivery) error
}

// permanentError is a failure a retry cannot fix (the receiver refused
// the request: 4xx other than 408 and 429).
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// New checks opts and returns a Dispatcher.
func New(opts Options) (*Dispatcher, error) {
	if opts.Config == nil {
		return nil, errors.New("notify: a configuration source is required")
	}
	if opts.Credentials == nil {
		p := repo.DefaultCredentialPolicy()
		opts.Credentials = &p
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 256
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 2 * time.Second
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 10 * time.Second
	}
	if opts.Client == nil && opts.Outbound != nil {
		opts.Client = opts.Outbound.Client(opts.AttemptTimeout)
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: opts.AttemptTimeout}
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	opts.ExternalURL = strings.TrimRight(opts.ExternalURL, "/")
	return &Dispatcher{
		opts:       opts,
		log:        opts.Log,
		events:     make(chan Event, opts.QueueSize),
		deliveries: make(chan *delivery, opts.QueueSize),
		starting:   map[string]int{},
	}, nil
}

// Notify queues an event and returns at once; a full queue drops it.
func (d *Dispatcher) Notify(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	if ev.URL == "" && d.opts.ExternalURL != "" {
		switch {
		case ev.DeploymentID != "":
			ev.URL = d.opts.ExternalURL + "/ui/#/deployments/" + url.PathEscape(ev.DeploymentID)
		case ev.Cluster != "":
			ev.URL = d.opts.ExternalURL + "/ui/#/clusters/" + url.PathEscape(ev.Cluster)
		}
	}
	d.track(1)
	select {
	case d.events <- ev:
		d.opts.Metrics.QueueDepth.Inc()
	default:
		d.track(-1)
		d.opts.Metrics.Notifications.WithLabelValues("", "dropped").Inc()
		d.log.Warn("notification dropped: the queue is full", "event", ev.Type, "cluster", ev.Cluster, "deployment", ev.DeploymentID)
	}
}

// Run routes and delivers events until ctx ends; what is still queued
// then is not sent (Flush first waits for it).
func (d *Dispatcher) Run(ctx context.Context) {
	for range d.opts.Workers {
		go d.worker(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-d.events:
			d.opts.Metrics.QueueDepth.Dec()
			d.route(ctx, ev)
			d.track(-1)
		}
	}
}

// route queues a delivery of ev for each receiver its routes name.
func (d *Dispatcher) route(ctx context.Context, ev Event) {
	cctx, cancel := context.WithTimeout(ctx, d.opts.AttemptTimeout)
	cfg, err := d.opts.Config(cctx)
	cancel()
	if err != nil {
		d.opts.Metrics.Notifications.WithLabelValues("", "dropped").Inc()
		d.log.Error("notification dropped: reading the notification settings failed", "event", ev.Type, "cluster", ev.Cluster, "error", err)
		return
	}
	for _, r := range d.receivers(cfg, ev) {
		log := d.log.With("receiver", r.Name, "event", ev.Type, "cluster", ev.Cluster)
		sec, err := r.Secrets(*d.opts.Credentials)
		if err != nil {
			d.opts.Metrics.Notifications.WithLabelValues(r.Name, "dropped").Inc()
			log.Error("notification dropped: the receiver cannot be used", "error", err)
			continue
		}
		s := newSender(r.Type, sec, d.opts.Client)
		if s == nil {
			continue
		}
		dl := &delivery{receiver: r.Name, kind: r.Type, sender: s, ev: ev, id: randomID(), memo: map[string]string{}}
		d.mu.Lock()
		if ev.Type == DeployStarted {
			d.starting[dl.key()]++
		}
		d.mu.Unlock()
		d.track(1)
		d.enqueue(dl)
	}
}

// key names the deployment at the receiver.
func (dl *delivery) key() string { return dl.receiver + "\x00" + dl.ev.DeploymentID }

// done is called once per delivery, when it was sent, dropped or given
// up at shutdown.
func (d *Dispatcher) done(dl *delivery) {
	d.mu.Lock()
	if dl.ev.Type == DeployStarted {
		if d.starting[dl.key()]--; d.starting[dl.key()] <= 0 {
			delete(d.starting, dl.key())
		}
	}
	d.mu.Unlock()
	d.track(-1)
}

// track adds n to the work in flight.
func (d *Dispatcher) track(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.inFlight += n
	if d.inFlight == 0 && d.idle != nil {
		close(d.idle)
		d.idle = nil
	}
}

// Flush waits until every event notified so far was delivered or dropped,
// or ctx ends; mgo serve calls it at shutdown, after the last deployment
// finished, so the outcome of a deploy is not lost with the process.
// Run must still be running.
func (d *Dispatcher) Flush(ctx context.Context) error {
	d.mu.Lock()
	if d.inFlight == 0 {
		d.mu.Unlock()
		return nil
	}
	if d.idle == nil {
		d.idle = make(chan struct{})
	}
	idle := d.idle
	n := d.inFlight
	d.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("notifications: %d still being delivered at shutdown: %w", n, ctx.Err())
	}
}

// behindStart reports whether dl is the outcome of a deployment whose
// start is still on its way to the same receiver.
func (d *Dispatcher) behindStart(dl *delivery) bool {
	if dl.ev.Type == DeployStarted || dl.ev.DeploymentID == "" {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.starting[dl.key()] > 0
}

// receivers are the receivers of ev: those its routes name, less the
// forges for anything but a deploy naming its source commit. A forge
// routed a deploy's outcome also hears when it starts (its commit status
// turns pending); other receivers hear of a start only when a route names
// deploy.started.
func (d *Dispatcher) receivers(cfg repo.Notifications, ev Event) []repo.Receiver {
	forge := func(r repo.Receiver) bool { return r.Type == repo.ReceiverGitLab || r.Type == repo.ReceiverGitHub }
	var out []repo.Receiver
	seen := map[string]bool{}
	add := func(rs []repo.Receiver, onlyForges bool) {
		for _, r := range rs {
			if seen[r.Name] || (forge(r) && !ev.forge()) || (onlyForges && !forge(r)) {
				continue
			}
			seen[r.Name] = true
			out = append(out, r)
		}
	}
	add(cfg.ReceiversFor(ev.Cluster, ev.Type), false)
	if ev.Type == DeployStarted {
		add(cfg.ReceiversFor(ev.Cluster, DeploySucceeded), true)
		add(cfg.ReceiversFor(ev.Cluster, DeployFailed), true)
	}
	return out
}

func (d *Dispatcher) enqueue(dl *delivery) {
	select {
	case d.deliveries <- dl:
	default:
		d.opts.Metrics.Notifications.WithLabelValues(dl.receiver, "dropped").Inc()
		d.log.Warn("notification dropped: the delivery queue is full", "receiver", dl.receiver, "event", dl.ev.Type, "cluster", dl.ev.Cluster)
		d.done(dl)
	}
}

func (d *Dispatcher) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case dl := <-d.deliveries:
			d.attempt(ctx, dl)
		}
	}
}

// attempt sends once; a failure is retried later (the worker does not
// wait for it) until the attempts are used up.
func (d *Dispatcher) attempt(ctx context.Context, dl *delivery) {
	if d.behindStart(dl) {
		d.later(ctx, startWait, dl)
		return
	}
	dl.attempt++
	actx, cancel := context.WithTimeout(ctx, d.opts.AttemptTimeout)
	var err error
	if _, isChat := dl.sender.(*chat); isChat && d.opts.Outbound != nil {
		err = &permanentError{errors.New("chat receivers cannot be bounded by the outbound notifications list; use a webhook or slack receiver")}
	} else {
		err = dl.sender.send(actx, dl)
	}
	cancel()
	m := d.opts.Metrics.Notifications
	log := d.log.With("receiver", dl.receiver, "type", dl.kind, "event", dl.ev.Type, "cluster", dl.ev.Cluster,
		"deployment", dl.ev.DeploymentID, "attempt", dl.attempt)
	if err == nil {
		m.WithLabelValues(dl.receiver, "sent").Inc()
		log.Debug("notification sent")
		d.done(dl)
		return
	}
	var perm *permanentError
	if errors.As(err, &perm) || dl.attempt >= d.opts.Attempts || ctx.Err() != nil {
		m.WithLabelValues(dl.receiver, "dropped").Inc()
		log.Warn("notification dropped", "error", err)
		d.done(dl)
		return
	}
	m.WithLabelValues(dl.receiver, "retried").Inc()
	wait := min(d.opts.Backoff<<(dl.attempt-1), time.Minute)
	log.Info("notification failed, retrying", "error", err, "in", wait)
	d.later(ctx, wait, dl)
}

// later queues dl again after wait; a delivery whose Run ended meanwhile
// is given up.
func (d *Dispatcher) later(ctx context.Context, wait time.Duration, dl *delivery) {
	time.AfterFunc(wait, func() {
		if ctx.Err() != nil {
			d.done(dl)
			return
		}
		d.enqueue(dl)
	})
}

// startWait is how long the outcome of a deployment waits, each time, for
// its start to reach the receiver first.
const startWait = 200 * time.Millisecond

func newSender(kind string, sec repo.ReceiverSecrets, c *http.Client) sender {
	switch kind {
	case repo.ReceiverSlack:
		return &slack{url: sec.URL, client: c}
	case repo.ReceiverWebhook:
		return &webhook{url: sec.URL, secret: []byte(sec.Secret), client: c}
	case repo.ReceiverGitLab:
		return &gitlab{base: strings.TrimRight(sec.URL, "/"), token: sec.Token, client: c}
	case repo.ReceiverGitHub:
		return &github{base: strings.TrimRight(sec.URL, "/"), token: sec.Token, client: c}
	case repo.ReceiverShoutrrr:
		return &chat{url: sec.URL}
	}
	return nil
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
