package deploy

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/mygitops/mgo/internal/repo"
)

// Deploys held behind a soaking candidate (the starvation policy of
// promotion, internal/promote): while a candidate of a trigger repo soaks
// in a cluster (its gates on that cluster run), a later deploy of the same
// trigger repo to that cluster would replace the image being proven, and
// with CI deploying every few minutes nothing would ever finish soaking.
// So such a deploy is checked as any other, recorded held (HeldBy names
// the candidate) and answered at once; nothing is committed. When the
// candidate leaves the cluster's gates (promoted onwards or failed), the
// newest held deploy is queued and the older ones are superseded: the next
// stage receives a verified image at least once per soak and rollout.

// Holder says whether a deploy must wait behind a soaking candidate:
// the candidate's id, or "".
type Holder interface {
	HeldBy(req Request) string
}

// SetHolder installs the promotion's holder (before requests arrive).
func (s *Service) SetHolder(h Holder) {
	s.mu.Lock()
	s.holder = h
	s.mu.Unlock()
}

// hold records d held behind candidate by, when the holder says so.
func (s *Service) hold(d *Deployment) (*Deployment, bool, error) {
	s.mu.Lock()
	h := s.holder
	s.mu.Unlock()
	if h == nil || d.Kind != KindDeploy {
		return nil, false, nil
	}
	by := h.HeldBy(d.Request)
	if by == "" {
		return nil, false, nil
	}
	d.Status, d.HeldBy, d.Times.Queued = Held, by, s.cfg.Now()
	d.Message = fmt.Sprintf("held: candidate %s of %s soaks in %s; the newest held deploy goes once it leaves the cluster's gates",
		by, d.Request.TriggerRepo, d.Request.Cluster)
	prev, err := s.cfg.Store.Create(d)
	if err != nil {
		return nil, true, err
	}
	if prev != nil {
		out, err := repeated(prev, d.Request)
		return out, true, err
	}
	s.log.Info("deployment held behind a soaking candidate", "id", d.ID, "candidate", by,
		"cluster", d.Request.Cluster, "triggerRepo", d.Request.TriggerRepo, "image", d.Request.Ref())
	return clone(d), true, nil
}

// HeldDeploys returns the deploys held in cluster for triggerRepo, oldest
// first.
func (s *Service) HeldDeploys(cluster, triggerRepo string) ([]*Deployment, error) {
	held, err := s.cfg.Store.List(1000, func(d *Deployment) bool {
		return d.Status == Held && d.Request.Cluster == cluster && d.Request.TriggerRepo == triggerRepo
	})
	// Ids sort by the second they were queued: within one, by the time.
	slices.SortStableFunc(held, func(a, b *Deployment) int { return a.Times.Queued.Compare(b.Times.Queued) })
	return held, err
}

// ReleaseHeld queues the newest deploy held in cluster for triggerRepo,
// checked again at the head (a refusal fails it), and supersedes the
// older ones. It returns the queued one's id ("" when none was held).
func (s *Service) ReleaseHeld(ctx context.Context, cluster, triggerRepo string) (string, error) {
	held, err := s.HeldDeploys(cluster, triggerRepo)
	if err != nil || len(held) == 0 {
		return "", err
	}
	newest := held[len(held)-1]
	now := s.cfg.Now()
	for _, d := range held[:len(held)-1] {
		d.Status, d.Stage, d.Times.Finished = Failed, StageSuperseded, now
		d.Error = fmt.Sprintf("superseded by deployment %s (%s), held behind the same candidate: nothing was committed",
			newest.ID, newest.Request.Ref())
		if err := s.cfg.Store.Put(d); err != nil {
			s.log.Error("storing deployment", "id", d.ID, "error", err)
			continue
		}
		s.notify(deploymentEvent(d))
	}
	d := newest
	req := d.Request
	files, err := s.check(ctx, &req)
	j := &job{d: d, files: files}
	if err != nil {
		d.Status, d.Stage, d.Error, d.Times.Finished = Failed, StageValidate, "checked again once released: "+err.Error(), now
		if perr := s.cfg.Store.Put(d); perr != nil {
			s.log.Error("storing deployment", "id", d.ID, "error", perr)
		}
		s.notify(deploymentEvent(d))
		return "", nil
	}
	d.Request, d.Status, d.Message = req, Queued, ""
	if err := s.requeue(j); err != nil {
		return "", err
	}
	return d.ID, nil
}

// requeue queues the recorded deployment j.d again (a held one).
func (s *Service) requeue(j *job) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if len(s.queue) >= cap(s.queue) {
		return ErrQueueFull
	}
	if err := s.cfg.Store.Put(j.d); err != nil {
		return err
	}
	s.running.Add(1)
	s.waiters[j.d.ID] = make(chan struct{})
	s.shared.track(j.d.ID)
	s.queue <- j
	s.log.Info("held deployment queued", "id", j.d.ID, "cluster", j.d.Request.Cluster, "image", j.d.Request.Ref())
	s.notify(startedEvent(clone(j.d)))
	return nil
}

// SubmitPromote queues the deploy of a promotion (kind promote): req names
// the next cluster and the candidate's image; Client and IdempotencyKey
// are the candidate's, so that however often it is asked (a restart, two
// replicas) there is one deployment and one commit. It is never held.
func (s *Service) SubmitPromote(ctx context.Context, req Request) (*Deployment, error) {
	if err := req.Normalize(); err != nil {
		return nil, err
	}
	if req.IdempotencyKey == "" || req.Promoted == nil {
		return nil, fmt.Errorf("%w: a promote deploy needs its candidate", ErrInvalid)
	}
	if prev, err := s.cfg.Store.Lookup(req.Client, req.IdempotencyKey); err != nil || prev != nil {
		return prev, err
	}
	files, err := s.check(ctx, &req)
	if err != nil {
		return nil, err
	}
	d := &Deployment{ID: newID(s.cfg.Now()), Kind: KindPromote, Request: req, Status: Queued}
	return s.enqueue(&job{d: d, files: files})
}

// RepoConfig returns mygitops.yaml at the last fetched head, and the head.
// It is parsed again only when the head moved.
func (s *Service) RepoConfig(ctx context.Context) (*repo.Config, string, error) {
	s.mu.Lock()
	c := s.config
	s.mu.Unlock()
	var out *repo.Config
	var head string
	err := s.cfg.Git.Read(ctx, func(dir, h string) error {
		head = h
		if c.cfg != nil && c.head == h {
			out = c.cfg
			return nil
		}
		cfg, _ := repo.LoadConfig(dir)
		out = cfg
		s.mu.Lock()
		s.config = headConfig{cfg: cfg, head: h}
		s.mu.Unlock()
		return nil
	})
	return out, head, err
}

// headConfig is mygitops.yaml as parsed at a head.
type headConfig struct {
	cfg  *repo.Config
	head string
}

// Now is the service's clock.
func (s *Service) Now() time.Time { return s.cfg.Now() }
