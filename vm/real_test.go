package vm

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gildhq/gild/builder/qemu"
	"github.com/gildhq/gild/controlplane"
	"github.com/gildhq/gild/store"
)

const howToRunReal = "it runs real QEMU VMs (root, qemu-system-x86_64, qemu-img and OVMF: make deps): " +
	"sudo go test -v -count=1 -run Real ./vm; set GILD_VM_TEST_IMAGE=/path/to/bootable.qcow2 to boot a real image to its login prompt"

func requireReal(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped under -short: " + howToRunReal)
	}
	if os.Geteuid() != 0 {
		t.Skip("skipped when not root: " + howToRunReal)
	}
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is missing: %s", tool, howToRunReal)
		}
	}
	if _, err := qemu.FindFirmware(qemu.FirmwareCandidates); err != nil {
		t.Skipf("%v: %s", err, howToRunReal)
	}
}

// waitConsole waits until the console log holds want after its first from bytes, and
// returns how long that took.
func waitConsole(t *testing.T, path, want string, from int64, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < timeout {
		if b, _ := os.ReadFile(path); int64(len(b)) > from && bytes.Contains(b[from:], []byte(want)) {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(path)
	t.Fatalf("no %q on the console within %s; it ends with:\n%s", want, timeout, tail(string(b), 1500))
	return 0
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestRealVMLifecycle runs a VM under real QEMU through its whole life: created from a
// gallery image, detached from the test process, reattached by a new service, stopped,
// started again on the same disk, deleted. By default its image is an empty disk, on which
// OVMF boots to its UEFI shell (quick; the shell ignores the power button, so Stop kills it
// after the grace); GILD_VM_TEST_IMAGE boots a real image to its login prompt and powers it
// off cleanly.
func TestRealVMLifecycle(t *testing.T) {
	requireReal(t)
	ctx := context.Background()
	var image []byte
	ready, grace := "BdsDxe", 5*time.Second
	bootTimeout := time.Minute
	if p := os.Getenv("GILD_VM_TEST_IMAGE"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		image, ready, grace, bootTimeout = b, "login:", 2*time.Minute, 5*time.Minute
	} else {
		p := filepath.Join(t.TempDir(), "empty.qcow2")
		if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", p, "64M").CombinedOutput(); err != nil {
			t.Fatalf("qemu-img: %v %s", err, out)
		}
		image, _ = os.ReadFile(p)
	}
	h := newHarness(t, true, image, func(o *Options) { o.StopGrace = grace })

	start := time.Now()
	id := h.createVM("real-1", "local", vmProps(h.def.String()))
	provisioned := time.Since(start)
	if p := h.props(id); p["provisioningState"] != ProvisioningSucceeded {
		t.Fatalf("provisioning: %v %v", p["provisioningState"], p["provisioningError"])
	}
	iv := h.view(id)
	if iv.PowerState != PowerRunning || iv.PID == 0 {
		t.Fatalf("instance view %+v", iv)
	}
	pid := iv.PID
	t.Logf("provisioned in %s (image cached, overlay, QEMU started under %s: %s), pid %d, SSH %s",
		provisioned.Round(time.Millisecond), iv.Accel, iv.AccelReason, pid, iv.SSHAddress)

	// Detached: QEMU is not this process's child, and has a session of its own.
	stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:])); len(f) < 4 || f[1] == strconv.Itoa(os.Getpid()) || f[3] == strconv.Itoa(os.Getpid()) {
		t.Errorf("QEMU is attached to the test process: stat %q", stat)
	}
	booted := waitConsole(t, iv.ConsoleLog, ready, 0, bootTimeout)
	t.Logf("%q on the console %s after provisioning ended (%s after the create)", ready, booted.Round(time.Millisecond), (provisioned + booted).Round(time.Millisecond))
	if c, err := net.DialTimeout("tcp", iv.SSHAddress, 5*time.Second); err != nil {
		t.Errorf("the SSH port is not forwarded: %v", err)
	} else {
		c.Close()
	}

	// The console can be attached to while it is logged.
	c, err := net.Dial("unix", iv.ConsoleSocket)
	if err != nil {
		t.Fatalf("attach to the console: %v", err)
	}
	c.Write([]byte("\r"))
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	c.Close()
	if n == 0 {
		t.Errorf("nothing came back from the attached console: %v", err)
	}

	// A new service (a restarted server) finds the same QEMU.
	h.restart()
	if iv := h.view(id); iv.PID != pid || iv.PowerState != PowerRunning {
		t.Errorf("after a restart: %+v, want pid %d", iv, pid)
	}

	m := h.vms.machine(id.String())
	disk, _ := os.Stat(m.disk())
	start = time.Now()
	if err := h.vms.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	stopped := time.Since(start)
	if iv := h.view(id); iv.PowerState != PowerStopped {
		t.Fatalf("after stop: %+v", iv)
	}
	if b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); len(b) > 0 {
		t.Errorf("QEMU (pid %d) still runs after Stop", pid)
	}
	t.Logf("stopped in %s (grace %s)", stopped.Round(time.Millisecond), grace)
	// A real kernel's last words at a power-off, by which Recover tells a guest that shut
	// itself down from a crash.
	if os.Getenv("GILD_VM_TEST_IMAGE") != "" && !m.guestPoweredOff() {
		t.Errorf("the console does not end with the kernel's power-off line:\n%s", consoleTail(m.consoleLog()))
	}
	fi, _ := os.Stat(m.consoleLog())
	size := fi.Size()

	start = time.Now()
	if err := h.vms.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	started := time.Since(start)
	iv = h.view(id)
	if again, _ := os.Stat(m.disk()); iv.PowerState != PowerRunning || iv.PID == pid || !os.SameFile(disk, again) {
		t.Errorf("after start: %+v, the same disk: %v", iv, os.SameFile(disk, again))
	}
	// The log is appended to: what the first boot wrote stays.
	rebooted := waitConsole(t, iv.ConsoleLog, ready, size, bootTimeout)
	if b, _ := os.ReadFile(iv.ConsoleLog); !bytes.Contains(b[:size], []byte(ready)) {
		t.Error("the first boot's console output is gone")
	}
	t.Logf("started again in %s; %q %s later", started.Round(time.Millisecond), ready, rebooted.Round(time.Millisecond))

	pid = iv.PID
	if _, err := h.cp.Delete(ctx, controlplane.System, id, store.Precondition{}); err != nil {
		t.Fatal(err)
	}
	h.vms.Wait()
	for _, p := range []string{m.dir, m.run} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after the delete: %v", p, err)
		}
	}
	if b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); len(b) > 0 {
		t.Errorf("QEMU (pid %d) outlived the delete", pid)
	}
}
