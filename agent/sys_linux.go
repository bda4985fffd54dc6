//go:build linux

package agent

import (
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive lock on path (created when missing) and returns its
// release: the daemon and "gild-agent enroll" may write the state at the same time.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// sethostname sets the running kernel's hostname.
func sethostname(name string) error {
	if err := syscall.Sethostname([]byte(name)); err != nil {
		return fmt.Errorf("sethostname %s: %w", name, err)
	}
	return nil
}
