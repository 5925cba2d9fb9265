package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// portLockDir holds one lock file per reserved port, shared by every test
// binary on the machine.
func portLockDir() string { return filepath.Join(os.TempDir(), "mgo-testenv-ports") }

// reservedPort is a loopback TCP port that no other Env (in this or another
// process) will pick while the lock is held.
type reservedPort struct {
	Port int
	lock *os.File
}

// Release frees the reservation.
func (p reservedPort) Release() {
	if p.lock != nil {
		_ = p.lock.Close() // closing the descriptor drops the flock
	}
}

// reservePort asks the kernel for a free loopback port and takes an exclusive
// flock on its lock file. The kernel never hands out a port that is bound at
// the time, and the lock keeps two Envs that start at once (in different test
// packages) from choosing the same port between its release here and the
// moment the server binds it.
func reservePort() (reservedPort, error) {
	dir := portLockDir()
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return reservedPort{}, fmt.Errorf("port lock dir: %w", err)
	}
	for range 200 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return reservedPort{}, fmt.Errorf("finding a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)+".lock"), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			return reservedPort{}, fmt.Errorf("port lock: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			_ = f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				continue // another Env holds this port
			}
			return reservedPort{}, fmt.Errorf("port lock: %w", err)
		}
		return reservedPort{Port: port, lock: f}, nil
	}
	return reservedPort{}, errors.New("no free loopback port after 200 tries")
}
