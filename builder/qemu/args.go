package qemu

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ResultsPort is the virtio-serial port name the guest writes results to; in the guest it
// is /dev/virtio-ports/org.gild.results.
const ResultsPort = "org.gild.results"

// VMConfig is one run of qemu-system-x86_64.
type VMConfig struct {
	Name      string
	Accel     string // "kvm" or "tcg"
	MemoryMiB int
	CPUs      int
	Firmware  Firmware // Vars is this VM's own copy
	// Disk is the VM's writable disk. For validation it is always an overlay on the image,
	// never the image.
	Disk       string
	DiskFormat string // "qcow2" when empty
	// DiskCache is QEMU's cache mode; "writeback" when empty. A throwaway overlay takes
	// "unsafe": nothing flushes to a disk that is deleted afterwards.
	DiskCache string
	// DataDisks are attached read-only as raw virtio disks: test inputs, for instance.
	DataDisks     []string
	ConsoleLog    string // the first serial port goes to this file
	ResultsSocket string // unix socket of the results port; QEMU waits for a reader
	QMPSocket     string // unix socket of the QMP monitor
	// Network gives the guest user-mode networking (NAT, no inbound).
	Network bool
}

// maxSocketPath is the room in sockaddr_un for a path and its terminating zero.
const maxSocketPath = 107

// Validate reports every problem with c at once.
func (c VMConfig) Validate() error {
	var errs []error
	if c.Accel != "kvm" && c.Accel != "tcg" {
		errs = append(errs, fmt.Errorf("accelerator %q is neither kvm nor tcg", c.Accel))
	}
	if c.MemoryMiB < 256 {
		errs = append(errs, fmt.Errorf("memory %d MiB is below 256 MiB", c.MemoryMiB))
	}
	if c.CPUs < 1 {
		errs = append(errs, fmt.Errorf("%d CPUs", c.CPUs))
	}
	for _, f := range []struct{ what, path string }{{"firmware code", c.Firmware.Code}, {"firmware variables", c.Firmware.Vars}, {"disk", c.Disk}, {"console log", c.ConsoleLog}} {
		if f.path == "" {
			errs = append(errs, fmt.Errorf("no %s", f.what))
		}
	}
	if strings.Contains(c.ConsoleLog, ",") {
		errs = append(errs, fmt.Errorf("console log path %s has a comma, which -serial file: cannot take", c.ConsoleLog))
	}
	for _, s := range []struct{ what, path string }{{"results socket", c.ResultsSocket}, {"QMP socket", c.QMPSocket}} {
		switch {
		case s.path == "":
			errs = append(errs, fmt.Errorf("no %s", s.what))
		case len(s.path) > maxSocketPath:
			errs = append(errs, fmt.Errorf("%s path %s is %d bytes; unix sockets take at most %d (use a shorter work directory)", s.what, s.path, len(s.path), maxSocketPath))
		}
	}
	return errors.Join(errs...)
}

// esc doubles commas, which QEMU's option syntax would otherwise read as separators.
func esc(path string) string { return strings.ReplaceAll(path, ",", ",,") }

// SystemArgs are qemu-system-x86_64's arguments for c.
//
// q35 with OVMF in two pflash chips: the code read-only, the variables this VM's copy.
// The QMP socket is defined before the results socket: QEMU stops at the results socket
// (wait=on) until the host connects, so that nothing the guest reports is lost, and QMP
// must already listen by then. No display, no monitor on stdio, no reboot: a guest that
// reboots or panics ends the run instead of looping.
func SystemArgs(c VMConfig) []string {
	args := []string{
		"-name", "gild-" + c.Name,
		"-machine", "q35",
		"-accel", c.Accel,
	}
	if c.Accel == "kvm" {
		args = append(args, "-cpu", "host")
	}
	args = append(args,
		"-smp", strconv.Itoa(c.CPUs),
		"-m", strconv.Itoa(c.MemoryMiB),
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+esc(c.Firmware.Code),
		"-drive", "if=pflash,format=raw,unit=1,file="+esc(c.Firmware.Vars),
		"-drive", fmt.Sprintf("if=none,id=disk0,format=%s,cache=%s,discard=unmap,file=%s", or(c.DiskFormat, "qcow2"), or(c.DiskCache, "writeback"), esc(c.Disk)),
		"-device", "virtio-blk-pci,drive=disk0,bootindex=1",
	)
	for i, d := range c.DataDisks {
		args = append(args,
			"-drive", fmt.Sprintf("if=none,id=data%d,format=raw,readonly=on,file=%s", i, esc(d)),
			"-device", fmt.Sprintf("virtio-blk-pci,drive=data%d", i))
	}
	args = append(args,
		"-chardev", "socket,id=qmp,path="+esc(c.QMPSocket)+",server=on,wait=off",
		"-mon", "chardev=qmp,mode=control",
		"-device", "virtio-serial-pci,id=vser0",
		"-chardev", "socket,id=results,path="+esc(c.ResultsSocket)+",server=on,wait=on",
		"-device", "virtserialport,bus=vser0.0,chardev=results,name="+ResultsPort,
		"-serial", "file:"+c.ConsoleLog,
		"-device", "virtio-rng-pci",
	)
	if c.Network {
		// romfile= leaves out the iPXE option ROM: the VM boots from disk, and under TCG
		// loading the ROM costs time.
		args = append(args, "-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0,romfile=")
	} else {
		args = append(args, "-nic", "none")
	}
	return append(args, "-nographic", "-monitor", "none", "-parallel", "none", "-no-reboot")
}
