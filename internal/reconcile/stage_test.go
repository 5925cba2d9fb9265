package reconcile

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
)

func TestStageOf(t *testing.T) {
	base := errors.New("boom")
	for _, tc := range []struct {
		err  error
		want Stage
	}{
		{base, StageApply},
		{atStage(StageRender, base), StageRender},
		{fmt.Errorf("file: %w", atStage(StageDiff, base)), StageDiff},
		{atStage(StageWait, fmt.Errorf("file: %w", atStage(StageApply, base))), StageWait},
	} {
		if got := stageOf(tc.err); got != tc.want {
			t.Errorf("stageOf(%v) = %s, want %s", tc.err, got, tc.want)
		}
		if !errors.Is(tc.err, base) || tc.err.Error() == "" {
			t.Errorf("%v does not wrap its cause", tc.err)
		}
	}
	if atStage(StageApply, nil) != nil {
		t.Error("atStage(nil) is not nil")
	}
	if got := atStage(StageChart, base).Error(); got != "boom" {
		t.Errorf("message %q, want the cause's", got)
	}
}

func TestTimedOut(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("warning: Hook pre-upgrade x failed: %w", context.DeadlineExceeded), true},
		{errors.Join(errors.New("resource Job/ns/x not ready. status: InProgress"), context.DeadlineExceeded), true},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ETIMEDOUT)}, true},
		{context.Canceled, false},
		{errors.New("context deadline exceeded"), false}, // text is not a type
		{errors.New("admission webhook denied the request"), false},
	} {
		if got := timedOut(tc.err); got != tc.want {
			t.Errorf("timedOut(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
