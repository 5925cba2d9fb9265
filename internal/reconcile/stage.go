package reconcile

import (
	"context"
	"errors"
	"syscall"
)

// stageError is the failure of one stage of a release sync. Each step
// wraps its error in one (atStage); the result's Stage is found with
// errors.As (stageOf), never in the message, which is the wrapped error's.
type stageError struct {
	stage Stage
	err   error
}

func (e *stageError) Error() string { return e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

// atStage says err is a failure of stage (nil stays nil).
func atStage(stage Stage, err error) error {
	if err == nil {
		return nil
	}
	return &stageError{stage: stage, err: err}
}

// stageOf is the stage err is a failure of (the outermost atStage),
// StageApply when no stage was given.
func stageOf(err error) Stage {
	if se := (*stageError)(nil); errors.As(err, &se) {
		return se.stage
	}
	return StageApply
}

// timedOut reports whether the error of a Helm action is a deadline that
// ran out: its hooks' wait (Helm wraps the context's error) or a request's
// deadline, or a connection that timed out. The release then failed in
// its wait, not in its apply.
func timedOut(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ETIMEDOUT)
}
