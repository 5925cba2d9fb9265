package gitrepo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
)

// errRemoteMoved: the remote branch is no longer at the commit ours were
// built on. Seen in the ref advertisement, before any pack is sent.
var errRemoteMoved = errors.New("the remote branch moved")

// refusal marks a push the server answered by refusing the ref update (a
// report status other than ok), as opposed to one that got no answer.
type refusal struct{ error }

func (e refusal) Unwrap() error { return e.error }

// maxPushCommits bounds the walk from head back to base.
const maxPushCommits = 10000

// push updates the remote branch from base to head, never forced. It checks
// the advertised branch is still at base, then sends a pack of exactly the
// objects the commits base..head introduce. (go-git's Remote.Push walks
// every object reachable from the remote's refs to find what to leave out,
// which costs seconds on a long history; here it is proportional to the
// change.) A ref update the server refuses (another push landed between
// its advertisement and our update, a hook, a protected branch) is an
// error carrying the server's reason and its messages.
func (r *Repo) push(ctx context.Context, base, head plumbing.Hash) error {
	return r.pushRef(ctx, r.branch, base, base, head)
}

// errRefExists: the branch a push meant to create is already on the
// remote, at commit.
type errRefExists struct {
	ref    plumbing.ReferenceName
	commit plumbing.Hash
}

func (e errRefExists) Error() string {
	return fmt.Sprintf("the remote already has %s, at %s", e.ref, e.commit)
}

// pushRef updates the remote ref from old to head, sending the objects of
// the commits base..head. A zero old creates the ref: when the remote
// already has it, the error is an errRefExists (and nothing is sent unless
// it is at head already, which is success).
func (r *Repo) pushRef(ctx context.Context, ref plumbing.ReferenceName, old, base, head plumbing.Hash) (err error) {
	caller := ctx
	defer func() {
		if _, exists := errors.AsType[errRefExists](err); exists || errors.Is(err, errRemoteMoved) {
			r.noteNet(caller, nil) // the remote answered
		} else {
			r.noteNet(caller, err)
		}
	}()
	auth, err := r.opts.Auth.method(r.ep)
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	ca, err := r.caBundle()
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	ctx, cancel := r.netContext(ctx, r.opts.Timeout)
	defer cancel()
	ep := *r.ep
	ep.CaBundle = ca
	cl, err := client.NewClient(&ep)
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	sess, err := newSession(ctx, func() (transport.ReceivePackSession, error) { return cl.NewReceivePackSession(&ep, auth) })
	if err != nil {
		return r.netErr(ctx, "push", err)
	}
	defer sess.Close()
	adv, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return r.netErr(ctx, "push", err)
	}
	refs, err := adv.AllReferences()
	if err != nil {
		return r.netErr(ctx, "push", err)
	}
	cur, err := refs.Reference(ref)
	switch {
	case old.IsZero() && err == nil && cur.Hash() == head:
		return nil
	case old.IsZero() && err == nil:
		return errRefExists{ref: ref, commit: cur.Hash()}
	case old.IsZero():
	case err != nil:
		return fmt.Errorf("push %s: the remote has no branch %s: %w", r.opts.URL, ref.Short(), err)
	case cur.Hash() != old:
		return fmt.Errorf("push %s: %w: %s is at %s, not at %s", r.opts.URL, errRemoteMoved, ref.Short(), cur.Hash(), old)
	}

	objects, err := r.newObjects(base, head)
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	req := packp.NewReferenceUpdateRequestFromCapabilities(adv.Capabilities)
	req.Commands = []*packp.Command{{Name: ref, Old: old, New: head}}
	remote := &remoteMessages{}
	for _, sb := range []capability.Capability{capability.Sideband64k, capability.Sideband} {
		if adv.Capabilities.Supports(sb) {
			_ = req.Capabilities.Set(sb)
			req.Progress = remote
			break
		}
	}
	rd, wr := io.Pipe()
	req.Packfile = rd
	encoded := make(chan error, 1)
	go func() {
		enc := packfile.NewEncoder(wr, r.objs, !adv.Capabilities.Supports(capability.OFSDelta))
		_, err := enc.Encode(objects, 10)
		encoded <- wr.CloseWithError(err)
	}()
	report, err := sess.ReceivePack(ctx, req)
	rd.Close() // unblocks the encoder if the server stopped reading
	encErr := <-encoded
	if err == nil && report != nil {
		err = report.Error()
	}
	if err != nil {
		if msg := remote.String(); msg != "" {
			err = fmt.Errorf("%w (remote: %s)", err, msg)
		}
		err = r.netErr(ctx, "push", err)
		if report != nil && report.Error() != nil {
			// The server answered and refused the update.
			err = refusal{err}
		}
		return err
	}
	if encErr != nil && !errors.Is(encErr, io.ErrClosedPipe) {
		return fmt.Errorf("push: pack: %w", encErr)
	}
	return nil
}

// newObjects lists the objects that the commits base..head (a chain of
// single-parent commits) add to what base already has: the commits, and
// the trees and blobs that differ from their parent's.
func (r *Repo) newObjects(base, head plumbing.Hash) ([]plumbing.Hash, error) {
	seen := map[plumbing.Hash]bool{}
	var out []plumbing.Hash
	add := func(h plumbing.Hash) {
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	c, err := object.GetCommit(r.objs, head)
	for i := 0; err == nil && c.Hash != base; i++ {
		if i == maxPushCommits || c.NumParents() != 1 {
			return nil, fmt.Errorf("%s does not lead back to %s through single-parent commits", head, base)
		}
		add(c.Hash)
		var parent *object.Commit
		var tree, parentTree *object.Tree
		if parent, err = c.Parent(0); err != nil {
			break
		}
		if tree, err = c.Tree(); err != nil {
			break
		}
		if parentTree, err = parent.Tree(); err != nil {
			break
		}
		if err = r.treeDelta(tree, parentTree, add); err != nil {
			break
		}
		c = parent
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// treeDelta adds t and everything under it that old (the same directory in
// the parent commit, or nil) does not hold at the same name.
func (r *Repo) treeDelta(t, old *object.Tree, add func(plumbing.Hash)) error {
	if old != nil && t.Hash == old.Hash {
		return nil
	}
	add(t.Hash)
	before := map[string]object.TreeEntry{}
	if old != nil {
		for _, e := range old.Entries {
			before[e.Name] = e
		}
	}
	for _, e := range t.Entries {
		prev, had := before[e.Name]
		if had && prev.Hash == e.Hash {
			continue
		}
		switch e.Mode {
		case filemode.Submodule:
			// A commit of another repository.
		case filemode.Dir:
			sub, err := object.GetTree(r.objs, e.Hash)
			if err != nil {
				return err
			}
			var prevSub *object.Tree
			if had && prev.Mode == filemode.Dir {
				if prevSub, err = object.GetTree(r.objs, prev.Hash); err != nil {
					return err
				}
			}
			if err := r.treeDelta(sub, prevSub, add); err != nil {
				return err
			}
		default:
			add(e.Hash)
		}
	}
	return nil
}

// remoteMessages keeps the server's sideband messages (hook output, the
// reason for a refusal), at most 4 KiB.
type remoteMessages struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (m *remoteMessages) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if room := 4096 - m.buf.Len(); room > 0 {
		m.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// String returns the messages on one line, progress meters left out.
func (m *remoteMessages) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var lines []string
	for _, l := range strings.FieldsFunc(m.buf.String(), func(r rune) bool { return r == '\n' || r == '\r' }) {
		l = strings.TrimSpace(l)
		if l == "" || strings.Contains(l, "%") && (strings.HasPrefix(l, "Resolving") || strings.HasPrefix(l, "Counting") ||
			strings.HasPrefix(l, "Compressing") || strings.HasPrefix(l, "Writing") || strings.HasPrefix(l, "Unpacking")) {
			continue
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "; ")
}
