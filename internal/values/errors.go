package values

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/mygitops/mgo/internal/repo"
)

// Sentinel errors, for errors.Is at the edges (HTTP status codes, exit codes).
var (
	// ErrInvalidImage: the requested image is not a valid reference (400).
	ErrInvalidImage = errors.New("invalid image")
	// ErrInvalidYAML: the values file does not parse.
	ErrInvalidYAML = errors.New("invalid YAML")
	// ErrNoHeader: the values file has no __mygitops header.
	ErrNoHeader = errors.New("no " + repo.HeaderKey + " header")
	// ErrNotListed: the header does not list the trigger repo under images.
	// It wraps repo.ErrTriggerRepoNotListed.
	ErrNotListed = fmt.Errorf("%w in the header's images", repo.ErrTriggerRepoNotListed)
	// ErrCannotEdit: the file lists the trigger repo, but in a way that
	// cannot be edited safely (aliases, merge keys, block scalars, explicit
	// non-string tags); the message says what to change.
	ErrCannotEdit = errors.New("cannot edit the image safely")
)

// Error is a failed edit of a values file, at a line.
type Error struct {
	File string // relative to the repository root; set by EditCluster
	Line int    // 1-based; 0 when it concerns the whole file
	Msg  string
	Err  error // one of the sentinel errors
}

func (e *Error) Error() string {
	switch {
	case e.File != "" && e.Line > 0:
		return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
	case e.File != "":
		return e.File + ": " + e.Msg
	case e.Line > 0:
		return "line " + strconv.Itoa(e.Line) + ": " + e.Msg
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

func errorf(sentinel error, line int, format string, args ...any) *Error {
	return &Error{Line: line, Msg: fmt.Sprintf(format, args...), Err: sentinel}
}
