package vm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gildhq/gild/atomicfile"
	"github.com/gildhq/gild/builder"
	"github.com/gildhq/gild/builder/qemu"
)

// The power states a VM reports.
const (
	PowerRunning  = "running"
	PowerStopped  = "stopped"
	PowerStarting = "starting"
	PowerStopping = "stopping"
)

// State is a VM's state.json: what this server decided about the VM and must remember
// across its own restarts.
type State struct {
	ID   string `json:"id"` // the VM's resource ID
	Name string `json:"name"`
	// VMID is the resource's properties.vmId: a VM deleted and created again under the same
	// ID is another VM, whose files must not be the old one's.
	VMID string `json:"vmId"`
	// InstanceID is the first-boot data's: the guest provisions itself once per instance,
	// so it is kept across stops, restarts and a server's restart.
	InstanceID string `json:"instanceId"`
	// Desired is the power state the VM should be in: "running" or "stopped". A VM that
	// should run and does not is started again when the server starts.
	Desired string `json:"desiredPowerState"`
	SSHPort int    `json:"sshPort,omitempty"`
	// Accel is the accelerator the VM last started with, and why; a VM that fell back from
	// KVM to TCG stays on TCG.
	Accel       string `json:"accel,omitempty"`
	AccelReason string `json:"accelReason,omitempty"`
	Size        string `json:"vmSize"`
	CPUs        int    `json:"cpus"`
	MemoryMiB   int    `json:"memoryMiB"`
	// Image is the cached image the disk is an overlay on; ImageVersion the gallery
	// version it came from.
	Image        string    `json:"image,omitempty"`
	ImageFormat  string    `json:"imageFormat,omitempty"`
	ImageVersion string    `json:"imageVersion,omitempty"`
	StartedAt    time.Time `json:"startedAt,omitzero"`
}

// machine is one VM's files.
type machine struct {
	key string
	dir string // DATA/vms/KEY
	run string // the runtime directory, for the sockets
}

// Key is the name of a VM's directory: the first 16 hex digits of the SHA-256 of its
// lower-cased resource ID (resource IDs are case-insensitive).
func Key(vmID string) string {
	h := sha256.Sum256([]byte(strings.ToLower(vmID)))
	return hex.EncodeToString(h[:8])
}

func (m *machine) disk() string        { return filepath.Join(m.dir, "disk.qcow2") }
func (m *machine) vars() string        { return filepath.Join(m.dir, "OVMF_VARS.fd") }
func (m *machine) firstBoot() string   { return filepath.Join(m.dir, "firstboot.json") }
func (m *machine) statePath() string   { return filepath.Join(m.dir, "state.json") }
func (m *machine) consoleLog() string  { return filepath.Join(m.dir, "console.log") }
func (m *machine) pidFile() string     { return filepath.Join(m.dir, "qemu.pid") }
func (m *machine) qmpSocket() string   { return filepath.Join(m.run, "qmp.sock") }
func (m *machine) consoleSock() string { return filepath.Join(m.run, "console.sock") }

func (m *machine) exists() bool {
	_, err := os.Stat(m.dir)
	return err == nil
}

// loadState reads state.json; nil without error when there is none.
func (m *machine) loadState() (*State, error) {
	b, err := os.ReadFile(m.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read VM state: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("read VM state %s: %w", m.statePath(), err)
	}
	return &st, nil
}

func (m *machine) saveState(st *State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(m.statePath(), append(b, '\n'), 0o600)
}

// pid returns the PID of this VM's QEMU, and whether it runs. The pidfile alone is not
// enough: after a SIGKILL or a host crash it stays, and its PID may be another process's
// by now. That process's command line would not name this VM's directory.
func (m *machine) pid() (int, bool) {
	b, err := os.ReadFile(m.pidFile())
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	// A zombie (killed, not yet reaped by init) has an empty command line: not running.
	if err != nil || !bytes.Contains(cmdline, []byte(m.dir+string(filepath.Separator))) {
		return pid, false
	}
	return pid, true
}

// guestPoweredOff reports whether the console's last line is the kernel's last words at a
// power-off: the guest shut itself down (someone ran poweroff in it), which is not a
// crash to recover from.
func (m *machine) guestPoweredOff() bool {
	lines := strings.Split(strings.TrimSpace(consoleTail(m.consoleLog())), "\n")
	return strings.Contains(lines[len(lines)-1], "reboot: Power down")
}

// ensureRunDir makes the runtime directory, mode 0700, and refuses one that is not this
// user's own private directory: it sits in a shared temporary directory, where someone
// else could have made it first to catch the sockets.
func ensureRunDir(dir string) error {
	err := os.Mkdir(dir, 0o700)
	if err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create runtime directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("create runtime directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || fi.Mode().Perm() != 0o700 || !ok || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("runtime directory %s is not a directory of mode 0700 owned by this user; remove it", dir)
	}
	return nil
}

// freePort asks the kernel for a free TCP port on the loopback.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// portFree reports whether port can be listened on at 127.0.0.1.
func portFree(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// runtime starts and stops QEMU processes.
type runtime struct {
	qemu, qemuImg string
	firmware      func() (qemu.Firmware, error)
	accel         string // forced, or "" to choose
	host          func() qemu.HostFacts
	kvmTimeout    time.Duration
	runner        func(vmID string) *builder.Runner
	logf          func(vmID, format string, args ...any)
	now           func() time.Time
}

// prepare makes what a start needs and does not have yet: the directories, the overlay on
// the image, the firmware variables. Each appears only complete (written aside, then
// renamed), so a start interrupted at any point is finished by the next.
func (rt *runtime) prepare(ctx context.Context, m *machine, st *State) error {
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return fmt.Errorf("create VM directory: %w", err)
	}
	if err := ensureRunDir(m.run); err != nil {
		return err
	}
	if _, err := os.Stat(m.disk()); errors.Is(err, os.ErrNotExist) {
		if st.Image == "" {
			return errors.New("create the disk: no image")
		}
		tmp := m.disk() + ".partial"
		os.Remove(tmp)
		cmd := builder.Command{Path: or(rt.qemuImg, "qemu-img"), Args: qemu.OverlayArgs(st.Image, st.ImageFormat, tmp)}
		if err := rt.runner(st.ID).Run(ctx, cmd); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("create the disk: %w", err)
		}
		if err := os.Rename(tmp, m.disk()); err != nil {
			return fmt.Errorf("create the disk: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("VM disk: %w", err)
	}
	if _, err := os.Stat(m.vars()); errors.Is(err, os.ErrNotExist) {
		fw, err := rt.firmware()
		if err != nil {
			return err
		}
		if err := copyFile(fw.Vars, m.vars()); err != nil {
			return fmt.Errorf("copy the firmware variables: %w", err)
		}
	}
	if _, err := os.Stat(m.firstBoot()); err != nil {
		return fmt.Errorf("first-boot data: %w", err)
	}
	return nil
}

// start starts the VM's QEMU unless it runs already, and records how in st (saved).
func (rt *runtime) start(ctx context.Context, m *machine, st *State) error {
	if pid, alive := m.pid(); alive {
		rt.logf(st.ID, "QEMU already runs (pid %d)", pid)
		return nil
	}
	if err := rt.prepare(ctx, m, st); err != nil {
		return err
	}
	fw, err := rt.firmware()
	if err != nil {
		return err
	}
	// The SSH port stays the VM's across starts, so that people's ssh configs keep
	// working, unless something else took it while the VM was stopped.
	if st.SSHPort == 0 || !portFree(st.SSHPort) {
		was := st.SSHPort
		if st.SSHPort, err = freePort(); err != nil {
			return err
		}
		if was != 0 {
			rt.logf(st.ID, "SSH port %d is taken; the VM's SSH port is now %d", was, st.SSHPort)
		}
	}
	accel := qemu.Accel{Name: st.Accel, Reason: st.AccelReason}
	switch {
	case rt.accel != "":
		accel = qemu.Accel{Name: rt.accel, Reason: "asked for"}
	case st.Accel == "tcg" && strings.HasPrefix(st.AccelReason, "KVM failed"):
		// It failed before on this host; it would again.
	default:
		accel = qemu.ChooseAccel(rt.host())
	}
	cfg := qemu.MachineConfig{
		Name: st.Name, Accel: accel.Name, CPUs: st.CPUs, MemoryMiB: st.MemoryMiB,
		Firmware: qemu.Firmware{Code: fw.Code, Vars: m.vars()}, Disk: m.disk(), FirstBoot: m.firstBoot(),
		UUID: st.VMID, SSHPort: st.SSHPort, ConsoleSocket: m.consoleSock(), ConsoleLog: m.consoleLog(),
		QMPSocket: m.qmpSocket(), PIDFile: m.pidFile(),
	}
	if err := rt.launch(ctx, m, st.ID, cfg); err != nil {
		return err
	}
	if accel.Name == "kvm" {
		if err := rt.watchKVM(ctx, m); err != nil {
			// A nested PVM host's KVM pauses QEMU or stops it with an emulation failure
			// (vm-lab.md); TCG runs the same disk, slower.
			rt.logf(st.ID, "KVM failed before the guest wrote to its console, falling back to TCG: %v", err)
			rt.kill(m)
			accel = qemu.Accel{Name: "tcg", Reason: "KVM failed: " + firstLine(err.Error())}
			cfg.Accel = "tcg"
			if err := rt.launch(ctx, m, st.ID, cfg); err != nil {
				return err
			}
		}
	}
	st.Accel, st.AccelReason = accel.Name, accel.Reason
	st.StartedAt = rt.now().UTC()
	pid, _ := m.pid()
	rt.logf(st.ID, "QEMU started (pid %d, %s, SSH on 127.0.0.1:%d)", pid, accel, st.SSHPort)
	return m.saveState(st)
}

// launch runs QEMU, which detaches once the VM runs, and checks that it does.
func (rt *runtime) launch(ctx context.Context, m *machine, vmID string, cfg qemu.MachineConfig) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("start QEMU: %w", err)
	}
	// Sockets left by a QEMU that was killed would be in the way.
	os.Remove(cfg.QMPSocket)
	os.Remove(cfg.ConsoleSocket)
	os.Remove(cfg.PIDFile)
	lctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	err := rt.runner(vmID).Run(lctx, builder.Command{Path: or(rt.qemu, "qemu-system-x86_64"), Args: qemu.MachineArgs(cfg), Tag: "qemu"})
	if err != nil {
		// Stopped halfway, QEMU's detached child may run on without its parent.
		rt.kill(m)
		return fmt.Errorf("start QEMU: %w", err)
	}
	if _, alive := m.pid(); !alive {
		return fmt.Errorf("start QEMU: it exited as soon as it started%s", consoleTail(m.consoleLog()))
	}
	return nil
}

// watchKVM waits for the guest's first console output under KVM. QEMU exiting, or
// stopping in an error state first, is a KVM failure; so is silence for kvmTimeout.
func (rt *runtime) watchKVM(ctx context.Context, m *machine) error {
	deadline := time.Now().Add(rt.kvmTimeout)
	var size0 int64
	if fi, err := os.Stat(m.consoleLog()); err == nil {
		size0 = fi.Size()
	}
	for {
		if _, alive := m.pid(); !alive {
			return fmt.Errorf("QEMU exited%s", consoleTail(m.consoleLog()))
		}
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		status, err := qemu.QMPStatus(qctx, m.qmpSocket())
		cancel()
		if err == nil && (status == "internal-error" || status == "guest-panicked" || status == "paused" || status == "shutdown") {
			return fmt.Errorf("the VM stopped in state %s", status)
		}
		if fi, err := os.Stat(m.consoleLog()); err == nil && fi.Size() > size0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no console output within %s", rt.kvmTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// stop asks the guest to power off and kills QEMU if it has not within grace.
func (rt *runtime) stop(ctx context.Context, m *machine, vmID string, grace time.Duration) error {
	pid, alive := m.pid()
	if !alive {
		return nil
	}
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := qemu.QMPPowerdown(qctx, m.qmpSocket())
	cancel()
	if err != nil {
		rt.logf(vmID, "cannot ask the guest to power off, killing QEMU (pid %d): %v", pid, err)
		return rt.kill(m)
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if _, alive := m.pid(); !alive {
			rt.logf(vmID, "the guest powered off")
			rt.cleanRun(m)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stop: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	rt.logf(vmID, "the guest did not power off within %s, killing QEMU (pid %d)", grace, pid)
	return rt.kill(m)
}

// kill sends SIGKILL to the VM's QEMU, if it runs, and waits for it to be gone.
func (rt *runtime) kill(m *machine) error {
	pid, alive := m.pid()
	if alive {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill QEMU (pid %d): %w", pid, err)
		}
		for range 100 {
			if _, alive = m.pid(); !alive {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if alive {
			return fmt.Errorf("kill QEMU (pid %d): it is still there after 5 s", pid)
		}
	}
	rt.cleanRun(m)
	return nil
}

// cleanRun removes what a QEMU that is gone leaves: its pidfile and sockets.
func (rt *runtime) cleanRun(m *machine) {
	os.Remove(m.pidFile())
	os.Remove(m.qmpSocket())
	os.Remove(m.consoleSock())
}

// destroy kills the VM and removes its files. The cached image stays: other VMs may use it.
func (rt *runtime) destroy(m *machine) error {
	if err := rt.kill(m); err != nil {
		return err
	}
	var errs []error
	for _, d := range []string{m.dir, m.run} {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// consoleTail is the end of a console log, for an error that has to say why a VM did not
// start.
func consoleTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 4096
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		f.Seek(fi.Size()-max, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(qemu.CleanConsoleLine(l)); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return "; the console is empty"
	}
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return "; the console ends with:\n  " + strings.Join(lines, "\n  ")
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".partial"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}
