package gitrepo

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
)

// fetchLocked asks the server where the branch is and, when that is a
// commit mgo does not have, fetches the objects it lacks into memory (see
// objects; persist writes them). It returns the remote head and records it
// in r.remoteHead. The work tree is left alone.
//
// This is mgo's own upload-pack exchange rather than go-git's Fetch, which
// writes a packfile and its index for every fetch (a repository that
// fetches before every change would pile up thousands of them, and every
// object lookup goes through all of them) and walks local history for
// what to offer as "have"s: here the one have is the last known remote
// head.
func (r *Repo) fetchLocked(ctx context.Context) (plumbing.Hash, error) {
	head, err := r.fetchRef(ctx, r.branch)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	r.remoteHead = head
	return head, nil
}

// fetchRef is fetchLocked for any branch ref of the remote, recording
// nothing but the objects.
func (r *Repo) fetchRef(ctx context.Context, name plumbing.ReferenceName) (head plumbing.Hash, err error) {
	start := time.Now()
	caller := ctx
	defer func() {
		r.noteNet(caller, err)
		if err == nil {
			log := r.log
			if name != r.branch {
				log = log.With("ref", name.String())
			}
			log.Debug("fetched", "head", head.String(), "duration", time.Since(start))
		}
	}()
	auth, err := r.opts.Auth.method(r.ep)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("fetch: %w", err)
	}
	ca, err := r.caBundle()
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("fetch: %w", err)
	}
	ctx, cancel := r.netContext(ctx, r.opts.Timeout)
	defer cancel()
	ep := *r.ep
	ep.CaBundle = ca
	cl, err := client.NewClient(&ep)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("fetch: %w", err)
	}
	sess, err := newSession(ctx, func() (transport.UploadPackSession, error) { return cl.NewUploadPackSession(&ep, auth) })
	if err != nil {
		return plumbing.ZeroHash, r.netErr(ctx, "fetch", err)
	}
	defer sess.Close()
	adv, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return plumbing.ZeroHash, r.netErr(ctx, "fetch", err)
	}
	refs, err := adv.AllReferences()
	if err != nil {
		return plumbing.ZeroHash, r.netErr(ctx, "fetch", err)
	}
	ref, err := refs.Reference(name)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("fetch %s: the remote has no branch %s: %w", r.opts.URL, name.Short(), err)
	}
	head = ref.Hash()
	if r.objs.HasEncodedObject(head) != nil {
		if err := r.fetchPack(ctx, sess, adv, head); err != nil {
			return plumbing.ZeroHash, err
		}
	}
	if _, err := object.GetCommit(r.objs, head); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("fetch %s: branch %s is at %s: %w", r.opts.URL, name.Short(), head, err)
	}
	return head, nil
}

// fetchPack asks for want, offering the last known remote head, and keeps
// the objects received in memory.
func (r *Repo) fetchPack(ctx context.Context, sess transport.UploadPackSession, adv *packp.AdvRefs, want plumbing.Hash) (err error) {
	req := packp.NewUploadPackRequestFromCapabilities(adv.Capabilities)
	// A self-contained pack: no deltas against objects mgo has.
	req.Capabilities.Delete(capability.ThinPack)
	if adv.Capabilities.Supports(capability.NoProgress) {
		_ = req.Capabilities.Set(capability.NoProgress)
	}
	req.Wants = []plumbing.Hash{want}
	if have := r.knownRemoteHead(); !have.IsZero() {
		req.Haves = []plumbing.Hash{have}
	}
	resp, err := sess.UploadPack(ctx, req)
	if err != nil {
		return r.netErr(ctx, "fetch", err)
	}
	defer func() {
		if cerr := resp.Close(); err == nil && cerr != nil {
			err = r.netErr(ctx, "fetch", cerr)
		}
	}()
	var pack io.Reader = resp
	switch {
	case req.Capabilities.Supports(capability.Sideband64k):
		pack = sideband.NewDemuxer(sideband.Sideband64k, resp)
	case req.Capabilities.Supports(capability.Sideband):
		pack = sideband.NewDemuxer(sideband.Sideband, resp)
	}
	r.objs.fetching = true
	defer func() { r.objs.fetching = false }()
	p, err := packfile.NewParserWithStorage(packfile.NewScanner(pack), r.objs)
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	if _, err := p.Parse(); err != nil {
		if ctx.Err() != nil {
			return r.netErr(ctx, "fetch", err)
		}
		return fmt.Errorf("fetch %s: reading the pack: %w", r.opts.URL, err)
	}
	return nil
}

// knownRemoteHead is the last remote head mgo knows, in memory or as the
// remote-tracking ref (zero when neither is set).
func (r *Repo) knownRemoteHead() plumbing.Hash {
	if !r.remoteHead.IsZero() {
		return r.remoteHead
	}
	h, err := r.trackingHead()
	if err != nil {
		return plumbing.ZeroHash
	}
	return h
}

// persist writes the objects still in memory to the repository and moves
// the remote-tracking ref to the remote head (and the local branch there
// too when it is checked out). Called when nothing of mgo's own is pending
// any more: after a push landed, or when there was nothing to push.
func (r *Repo) persist() error {
	n, err := r.objs.flush()
	if err != nil {
		return err
	}
	if r.loose += n; r.loose >= r.packLooseMin {
		r.packLoose()
	}
	if r.remoteHead.IsZero() {
		return nil
	}
	if cur, err := r.trackingHead(); err != nil || cur != r.remoteHead {
		if err := r.repo.Storer.SetReference(plumbing.NewHashReference(r.remote, r.remoteHead)); err != nil {
			return fmt.Errorf("update %s: %w", r.remote, err)
		}
	}
	if r.head == r.remoteHead {
		return r.setBranch(r.head)
	}
	return nil
}

// packLoose packs the repository's loose objects (those of commits pushed
// or fetched since the clone) into one packfile and removes them, as git gc
// would. A failure is logged and leaves them loose.
func (r *Repo) packLoose() {
	los, ok := r.repo.Storer.(storer.LooseObjectStorer)
	pw, ok2 := r.repo.Storer.(storer.PackfileWriter)
	if !ok || !ok2 {
		return
	}
	start := time.Now()
	var hs []plumbing.Hash
	err := los.ForEachObjectHash(func(h plumbing.Hash) error {
		hs = append(hs, h)
		return nil
	})
	if err == nil && len(hs) > 0 {
		err = writePack(pw, r.repo.Storer, hs)
	}
	if err != nil {
		r.log.Warn("packing loose objects", "objects", len(hs), "error", err.Error())
		return
	}
	for _, h := range hs {
		if err := los.DeleteLooseObject(h); err != nil {
			r.log.Warn("removing a packed loose object", "object", h.String(), "error", err.Error())
			return
		}
	}
	r.loose = 0
	r.log.Info("packed loose objects", "objects", len(hs), "duration", time.Since(start).Round(time.Millisecond))
}
