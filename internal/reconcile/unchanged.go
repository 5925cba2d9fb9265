package reconcile

// leaveAlone ends the sync of a release in sync (stateInSync) as
// Unchanged: no new revision. Outside a dry run its rendering is
// remembered, and a newest revision an older mgo installed is labelled as
// this engine's (adopt); one the cache holds as this engine's is not read
// from Helm's storage at all.
func (s *releaseSync) leaveAlone() ReleaseResult {
	s.rr.Action = Unchanged
	if s.facts.CachedInSync {
		s.rr.Revision = s.cachedAt
	} else {
		s.rr.Revision = s.lastRevision()
	}
	if s.opts.DryRun {
		return s.rr
	}
	if !s.facts.CachedInSync {
		s.e.adopt(s.cfg, s.last)
	}
	s.remember()
	return s.rr
}
