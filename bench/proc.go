package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Usage is what the contender's processes cost: the peak resident set of the
// largest one and the CPU time of all of them (children they waited for
// included, as wait4 reports them).
type Usage struct {
	Processes  int           `json:"processes"`
	MaxRSSKiB  int64         `json:"maxRSSKiB"`
	CPU        time.Duration `json:"cpuNanos"`
	FailedRuns int           `json:"failedRuns,omitempty"`
}

// Add merges the usage of another process.
func (u *Usage) Add(o Usage) {
	u.Processes += o.Processes
	u.MaxRSSKiB = max(u.MaxRSSKiB, o.MaxRSSKiB)
	u.CPU += o.CPU
	u.FailedRuns += o.FailedRuns
}

// command is one contender process to run.
type command struct {
	Path string
	Args []string
	Env  []string // the whole environment
	Dir  string
	Log  io.Writer // stdout and stderr
}

// run starts c, waits for it and returns its rusage. The process runs in its
// own process group, killed whole when ctx ends.
func run(ctx context.Context, c command) (Usage, error) {
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	cmd.Env = c.Env
	cmd.Dir = c.Dir
	cmd.Stdout = c.Log
	cmd.Stderr = c.Log
	cmd.Stdin = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	u := rusageOf(cmd.ProcessState)
	if err != nil {
		u.FailedRuns = 1
		return u, fmt.Errorf("%s %v: %w", c.Path, c.Args, err)
	}
	return u, nil
}

// rusageOf reads wait4's rusage of an ended process. ru_maxrss is in KiB on
// Linux; for a process that waited for its children it is the largest of them
// and itself, and the CPU times include theirs.
func rusageOf(ps *os.ProcessState) Usage {
	u := Usage{Processes: 1}
	if ps == nil {
		return u
	}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		u.MaxRSSKiB = ru.Maxrss
		u.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return u
}
