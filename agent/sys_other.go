//go:build !linux

package agent

import (
	"errors"
	"sync"
)

// lockFile serialises state writers within this process only: the agent runs on Linux,
// and other systems build it for its command-line checks alone.
func lockFile(string) (func(), error) {
	otherLock.Lock()
	return otherLock.Unlock, nil
}

var otherLock sync.Mutex

// sethostname is Linux's; elsewhere provisioning cannot set the running hostname.
func sethostname(string) error {
	return errors.New("sethostname: only on Linux")
}
