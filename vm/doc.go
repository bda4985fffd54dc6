// Package vm runs the VMs teams create from gallery images (Microsoft.Compute/virtualMachines)
// under QEMU on the gild server, and keeps them running across a restart of the server.
//
// The Service takes part in the control plane's writes as a hook: it checks and completes
// a VM's properties (size, OS profile, image) before the write, and starts nothing then,
// since a later hook (the policy engine) may still refuse the write. Once the write is
// committed it provisions the VM in the background: the image version's disk is cached
// locally once (checked against its SHA-256), the agent's first-boot data is written with
// a one-time enrollment token, a copy-on-write overlay on the cached image becomes the
// VM's disk, QEMU starts detached, and the outcome lands in properties.provisioningState
// (Succeeded, or Failed with properties.provisioningError) through the control plane.
//
// A VM whose image reference names a marketplace image (publisher, offer, sku) instead of a
// gallery image is a record of a VM that runs elsewhere, kept for its policies: it is
// neither checked nor run, and neither is a VM stored before gild ran VMs (it has no
// properties.vmId).
//
// What the Service does is decided from the store and the VM's directory, not from memory,
// so every step can be done again: a server killed halfway resumes in Recover, and a VM
// that failed to start is started again by Start with the disk it already has. On disk,
// under the data directory:
//
//	vm-images/SHA256.qcow2        an image version's disk, never written after its rename
//	vms/KEY/disk.qcow2            the VM's overlay on it, kept across stops and restarts
//	vms/KEY/OVMF_VARS.fd          its UEFI variables (boot entries)
//	vms/KEY/firstboot.json        agentproto.FirstBoot, mode 0600, given over fw_cfg
//	vms/KEY/state.json            desired power state, SSH port, accelerator, instance ID...
//	vms/KEY/console.log           the serial console, appended to across boots
//	vms/KEY/qemu.pid              QEMU's PID while it runs
//	TMP/gild-vm-RKEY/{qmp,console}.sock
//
// KEY is the first 16 hex digits of the SHA-256 of the VM's lower-cased ID. The sockets
// live in a short runtime directory of mode 0700 because a unix socket's path must fit in
// 107 bytes, which a deep data directory would overflow; RKEY also hashes the data
// directory, so two servers on one machine (tests) never share one. QEMU 7.2 takes
// abstract sockets too, but anyone on the host could connect to those and drive the VM.
//
// A QEMU process is this VM's only when its pidfile's PID is alive and its command line
// names the VM's directory: a PID reused by another process is never signalled.
package vm
