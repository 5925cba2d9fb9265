package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

const helperEnv = "MGO_TESTENV_HELPER"

// helperReport is what a child test binary prints once its control plane runs.
type helperReport struct {
	Pids  map[string]int
	Ports []int
	Dir   string
}

// helperMain runs in a child test binary: it starts a control plane, reports
// it on stdout, and then dies the way the mode says, without any cleanup.
func helperMain(mode string) {
	e, err := Start(context.Background(), Options{Context: "helper"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	b, _ := json.Marshal(helperReport{Pids: e.Pids(), Ports: e.Ports, Dir: e.Dir})
	fmt.Printf("REPORT %s\n", b)
	switch mode {
	case "panic":
		panic("simulated test failure with a panic")
	case "hang":
		select {} // killed by the parent, as by `go test -timeout` or a CI runner
	}
}

// A second test binary runs its own control plane beside this package's:
// their ports and directories differ. When it dies without cleaning up, by
// a panic or by SIGKILL, no process of its control plane survives it.
func TestNoProcessOutlivesTheTestBinary(t *testing.T) {
	for _, mode := range []string{"panic", "hang"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), helperEnv+"="+mode)
			cmd.Stderr = os.Stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill() })

			var rep helperReport
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if line, ok := strings.CutPrefix(sc.Text(), "REPORT "); ok {
					if err := json.Unmarshal([]byte(line), &rep); err != nil {
						t.Fatal(err)
					}
					break
				}
			}
			if rep.Dir == "" {
				_ = cmd.Wait()
				t.Fatalf("child did not report its control plane (exit: %v)", cmd.ProcessState)
			}
			t.Cleanup(func() { _ = os.RemoveAll(rep.Dir) })
			if len(rep.Pids) != len(binaries) {
				t.Fatalf("child reports %d processes, want %d: %v", len(rep.Pids), len(binaries), rep.Pids)
			}
			for _, p := range rep.Ports {
				if slices.Contains(env.Ports, p) {
					t.Errorf("child uses port %d, which this package's control plane uses too", p)
				}
			}
			if rep.Dir == env.Dir {
				t.Errorf("child shares the working directory %s", rep.Dir)
			}

			if mode == "hang" {
				_ = cmd.Process.Signal(syscall.SIGKILL)
			}
			_ = cmd.Wait()
			if cmd.ProcessState.Success() {
				t.Fatalf("child exited successfully; it should have died (%s)", mode)
			}

			deadline := time.Now().Add(10 * time.Second)
			for name, pid := range rep.Pids {
				for processAlive(pid) && !isZombie(pid) && time.Now().Before(deadline) {
					time.Sleep(50 * time.Millisecond)
				}
				if processAlive(pid) && !isZombie(pid) {
					t.Errorf("%s (pid %d) outlived its test binary", name, pid)
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		})
	}
}

// isZombie reports whether pid has exited but not been reaped yet (its
// parent, the dead child, is gone; init reaps it shortly).
func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// Format: pid (comm) state ...; comm may contain spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] == 'Z'
}

func TestPortReservationIsExclusive(t *testing.T) {
	a, err := reservePort()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	// The lock file of a reserved port cannot be locked again, neither in
	// this process nor another one (flock locks belong to the open file).
	f, err := os.OpenFile(portLockDir()+fmt.Sprintf("/%d.lock", a.Port), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		t.Fatal("a reserved port's lock was taken twice")
	}
	for range 50 {
		b, err := reservePort()
		if err != nil {
			t.Fatal(err)
		}
		b.Release()
		if b.Port == a.Port {
			t.Fatalf("port %d reserved twice", a.Port)
		}
	}
}
