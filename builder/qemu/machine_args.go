package qemu

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/gildhq/gild/agentproto"
)

// MachineConfig is one run of a long-lived VM, as package vm runs the VMs teams create:
// unlike a validation boot (VMConfig) its disk persists, it outlives the process that
// started it, a guest reboot reboots it, and its console can be attached to as well as
// read from a file.
type MachineConfig struct {
	Name      string // the VM's name; QEMU's process title is gild-vm-NAME
	Accel     string // "kvm" or "tcg"
	CPUs      int
	MemoryMiB int
	Firmware  Firmware // Vars is this VM's own copy, kept across restarts (its boot entries)
	// Disk is the VM's persistent overlay on its image; DiskFormat is "qcow2" when empty.
	Disk       string
	DiskFormat string
	// FirstBoot is the file the guest reads through fw_cfg as agentproto.FirstBootFwCfgName.
	FirstBoot string
	// UUID is the SMBIOS system UUID the guest sees (/sys/class/dmi/id/product_uuid): the
	// VM's vmId, as on Azure. None when empty.
	UUID string
	// SSHPort is the host port on 127.0.0.1 forwarded to the guest's port 22.
	SSHPort int
	// ConsoleSocket is where a client attaches to the serial console; everything the guest
	// writes to it is also appended to ConsoleLog, attached or not.
	ConsoleSocket string
	ConsoleLog    string
	QMPSocket     string
	// PIDFile receives QEMU's PID once it runs detached.
	PIDFile string
}

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Validate reports every problem with c at once, naming each field.
func (c MachineConfig) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name: empty"))
	}
	if c.Accel != "kvm" && c.Accel != "tcg" {
		errs = append(errs, fmt.Errorf("accel: %q is neither kvm nor tcg", c.Accel))
	}
	if c.CPUs < 1 {
		errs = append(errs, fmt.Errorf("cpus: %d, at least 1", c.CPUs))
	}
	if c.MemoryMiB < 256 {
		errs = append(errs, fmt.Errorf("memoryMiB: %d, at least 256", c.MemoryMiB))
	}
	if c.DiskFormat != "" && c.DiskFormat != "qcow2" && c.DiskFormat != "raw" {
		errs = append(errs, fmt.Errorf("diskFormat: %q is neither qcow2 nor raw", c.DiskFormat))
	}
	if c.UUID != "" && !uuidPattern.MatchString(c.UUID) {
		errs = append(errs, fmt.Errorf("uuid: %q is not a UUID", c.UUID))
	}
	if c.SSHPort < 1 || c.SSHPort > 65535 {
		errs = append(errs, fmt.Errorf("sshPort: %d is not a TCP port", c.SSHPort))
	}
	// Relative paths would be read from QEMU's working directory, which is not the VM's.
	for _, f := range []struct{ field, path string }{
		{"firmware.code", c.Firmware.Code}, {"firmware.vars", c.Firmware.Vars}, {"disk", c.Disk}, {"firstBoot", c.FirstBoot},
		{"consoleLog", c.ConsoleLog}, {"pidFile", c.PIDFile}, {"consoleSocket", c.ConsoleSocket}, {"qmpSocket", c.QMPSocket},
	} {
		switch {
		case f.path == "":
			errs = append(errs, fmt.Errorf("%s: empty", f.field))
		case !filepath.IsAbs(f.path):
			errs = append(errs, fmt.Errorf("%s: %s is not an absolute path", f.field, f.path))
		}
	}
	for _, s := range []struct{ field, path string }{{"consoleSocket", c.ConsoleSocket}, {"qmpSocket", c.QMPSocket}} {
		if len(s.path) > maxSocketPath {
			errs = append(errs, fmt.Errorf("%s: %s is %d bytes; unix sockets take at most %d", s.field, s.path, len(s.path), maxSocketPath))
		}
	}
	return errors.Join(errs...)
}

// MachineArgs are qemu-system-x86_64's arguments for c.
//
// The machine matches a validation boot's (q35, OVMF in two pflash chips, virtio disk and
// RNG) so that an image behaves as it did when it was tested. What differs is what a VM
// that people use needs:
//   - -daemonize with -pidfile: QEMU outlives the gild server that starts it (VMs keep
//     running across a server restart), and the starting command still fails, with QEMU's
//     own message, when QEMU cannot start (a port in use, a missing disk), because the
//     parent exits only once the VM runs;
//   - no -no-reboot: a guest that reboots must come back;
//   - the disk with cache=writeback: it persists, so flushes matter;
//   - the first-boot data through fw_cfg, which needs no network or disk of its own;
//   - user-mode networking with the guest's SSH port forwarded from the host's loopback
//     only; the guest reaches the host's 127.0.0.1:PORT (the gild server) at 10.0.2.2:PORT;
//   - the serial console on a socket chardev with a log file, so that it is both recorded
//     and attachable;
//   - -display none rather than -nographic, which QEMU refuses with -daemonize.
func MachineArgs(c MachineConfig) []string {
	args := []string{
		"-name", "gild-vm-" + esc(c.Name),
		"-machine", "q35",
		"-accel", c.Accel,
	}
	if c.Accel == "kvm" {
		args = append(args, "-cpu", "host")
	}
	args = append(args,
		"-smp", strconv.Itoa(c.CPUs),
		"-m", strconv.Itoa(c.MemoryMiB),
	)
	if c.UUID != "" {
		args = append(args, "-uuid", strings.ToLower(c.UUID))
	}
	args = append(args,
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+esc(c.Firmware.Code),
		"-drive", "if=pflash,format=raw,unit=1,file="+esc(c.Firmware.Vars),
		"-drive", fmt.Sprintf("if=none,id=disk0,format=%s,cache=writeback,discard=unmap,file=%s", or(c.DiskFormat, "qcow2"), esc(c.Disk)),
		"-device", "virtio-blk-pci,drive=disk0,bootindex=1",
		"-fw_cfg", "name="+agentproto.FirstBootFwCfgName+",file="+esc(c.FirstBoot),
		// romfile= leaves out the iPXE option ROM: the VM boots from disk, and under TCG
		// loading the ROM costs time.
		"-netdev", fmt.Sprintf("user,id=net0,hostfwd=tcp:127.0.0.1:%d-:22", c.SSHPort),
		"-device", "virtio-net-pci,netdev=net0,romfile=",
		"-chardev", "socket,id=console,path="+esc(c.ConsoleSocket)+",server=on,wait=off,logfile="+esc(c.ConsoleLog)+",logappend=on",
		"-serial", "chardev:console",
		"-chardev", "socket,id=qmp,path="+esc(c.QMPSocket)+",server=on,wait=off",
		"-mon", "chardev=qmp,mode=control",
		"-device", "virtio-rng-pci",
		"-display", "none", "-monitor", "none", "-parallel", "none",
		// -pidfile takes a plain path, not QEMU's option syntax: no comma doubling.
		"-pidfile", c.PIDFile,
		"-daemonize",
	)
	return args
}

// OverlayArgs are qemu-img's arguments for a qcow2 overlay on backing, an image of format
// backingFormat ("qcow2" or "raw"). The backing path must be absolute: a relative one
// would be read relative to the overlay.
func OverlayArgs(backing, backingFormat, overlay string) []string {
	return []string{"create", "-q", "-f", "qcow2", "-F", or(backingFormat, "qcow2"), "-b", backing, overlay}
}
