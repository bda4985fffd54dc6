// Package qemu drives qemu-img and qemu-system-x86_64: converting an assembled raw disk
// into the compressed qcow2 that is published, and booting a throwaway copy of it to
// validate it.
//
// A validation boot never writes the image: the VM runs on a qcow2 overlay backed by it,
// removed afterwards. The VM boots through OVMF (UEFI), writes its console to a file, and
// reports on a virtio-serial port named org.gild.results that the host reads over a unix
// socket: a ready line, which ends the boot-time measurement (from QEMU's start), then
// JSON lines, then a done line, after which the host powers it off through QMP. Whatever
// happens, a VM that outlives its time is killed by PID: after a KVM failure QEMU pauses
// instead of exiting, holding the disk's lock.
//
// In the guest the port is /dev/virtio-ports/org.gild.results once udev has run, or the
// /dev/vport* whose /sys/class/virtio-ports/*/name says org.gild.results. Debian's cloud
// kernel builds virtio_console as a module that udev loads: a unit that reports early
// runs modprobe virtio_console first, or waits for the port.
//
// KVM is used where it works and TCG (software emulation) elsewhere; the choice and its
// reason go to the run log, and a boot that fails under KVM is retried once under TCG.
package qemu
