package deploy

// syncQueue is the coalescing queue of one cluster's syncs: the pushed
// jobs and the sync requests made since the last sync began. The next
// sync takes them all at once (take), so however many ask while a sync
// runs, one more sync serves them. It is plain data: its scheduler holds
// the lock.
type syncQueue struct {
	jobs    []*job
	waiters []chan syncOutcome
	// full asks for a comparison of every release with the live cluster;
	// force for a sync of a cluster whose sync policy is manual (an
	// explicit sync request); foreground is set by a request somebody
	// waits for.
	full, force, foreground bool
}

// syncBatch is what one sync serves, taken from the queue.
type syncBatch struct {
	jobs        []*job
	waiters     []chan syncOutcome
	full, force bool
	// background: no job and no waiting request is served, so the sync
	// (a start-up comparison, a drift check) gives way to deploys
	// (reconcile.Options.Background).
	background bool
}

// addJob queues a pushed job for the next sync.
func (q *syncQueue) addJob(j *job) { q.jobs = append(q.jobs, j) }

// addRequest queues a sync request whose outcome goes to ch.
func (q *syncQueue) addRequest(ch chan syncOutcome, full, force, background bool) {
	q.waiters = append(q.waiters, ch)
	q.full = q.full || full
	q.force = q.force || force
	q.foreground = q.foreground || !background
}

// empty reports whether nothing waits for a sync.
func (q *syncQueue) empty() bool { return len(q.jobs) == 0 && len(q.waiters) == 0 }

// take empties the queue into the batch of the next sync; false when
// nothing waits.
func (q *syncQueue) take() (syncBatch, bool) {
	if q.empty() {
		return syncBatch{}, false
	}
	b := syncBatch{jobs: q.jobs, waiters: q.waiters, full: q.full, force: q.force,
		background: len(q.jobs) == 0 && !q.foreground}
	*q = syncQueue{}
	return b, true
}

// covers reports whether a queued job changed file.
func (q *syncQueue) covers(file string) bool { return changes(q.jobs, file) }
