package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gildhq/gild/builder"
)

// vmDir is where a run's validation VM keeps its overlay, firmware variables and sockets:
// outside the run directory, because QEMU's socket paths must stay short, but named after
// it so that a server starting after a crash finds it.
func vmDir(runDir string) string {
	return filepath.Join(os.TempDir(), "gild-vm-"+filepath.Base(runDir))
}

// vmName is the name a run's validation VM carries (QEMU's -name gild-<vmName>), so that
// a server starting after a crash can find the VMs its dead runs left running.
func vmName(runDir string) string { return "validate-" + filepath.Base(runDir) }

// clearLeftovers undoes what a run killed with its server left behind: the validation VM
// still running, and the chroot's mounts under the run's directory.
func clearLeftovers(ctx context.Context, runDir string) []string {
	var done []string
	want := []byte("gild-" + vmName(runDir))
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(cmdline, append(append([]byte{0}, want...), 0)) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			done = append(done, fmt.Sprintf("killed the validation VM left running (pid %d)", pid))
		}
	}
	// Commands a customizer started in the chroot outlive the server that started them,
	// and may start more while they are being killed (apt's methods): kill each one's
	// whole process group, and look again until none is left.
	for range 20 {
		found := false
		procs, _ := filepath.Glob("/proc/[0-9]*/root")
		for _, p := range procs {
			root, err := os.Readlink(p)
			if err != nil || (root != runDir && !strings.HasPrefix(root, runDir+"/")) {
				continue
			}
			pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			if err != nil || pid == os.Getpid() {
				continue
			}
			found = true
			if pgid, err := syscall.Getpgid(pid); err == nil && pgid != syscall.Getpgrp() {
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
			}
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				done = append(done, fmt.Sprintf("killed a process left in the run's chroot (pid %d)", pid))
			}
		}
		if !found {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	mounts, _ := builder.MountsUnder(runDir)
	for i := len(mounts) - 1; i >= 0; i-- {
		// Lazily: a process of the dead run may still hold it.
		if out, err := exec.CommandContext(ctx, "umount", "-l", mounts[i]).CombinedOutput(); err != nil {
			done = append(done, fmt.Sprintf("could not unmount %s: %v: %s", mounts[i], err, bytes.TrimSpace(out)))
			continue
		}
		done = append(done, "unmounted "+mounts[i])
	}
	// The work files go; the logs stay for whoever looks into the failure.
	if err := os.RemoveAll(vmDir(runDir)); err != nil {
		done = append(done, fmt.Sprintf("could not remove %s: %v", vmDir(runDir), err))
	}
	entries, _ := os.ReadDir(runDir)
	for _, e := range entries {
		if n := e.Name(); n == "run.log" || n == "console.log" || n == "results.json" || n == "junit.xml" {
			continue
		}
		if err := builder.RemoveTree(filepath.Join(runDir, e.Name())); err != nil {
			done = append(done, fmt.Sprintf("could not remove %s: %v", e.Name(), err))
			continue
		}
		done = append(done, "removed "+e.Name())
	}
	return done
}
