// Package builder holds what every image-builder driver shares: a Runner that runs an
// external tool under a context, streams each line it prints into the pipeline's run log
// with a timestamp, and turns a failure into an error naming the command, its exit status
// and its last lines of stderr; and a Cleanup stack whose undo steps run in reverse, also
// on failure.
//
// The drivers themselves live below it: builder/debian (mmdebstrap and the apt mirror),
// builder/disk (partitioned UEFI disks, the chroot for offline customization) and
// builder/qemu (qemu-img and qemu-system-x86_64). Each keeps the command lines it builds
// in pure functions so they can be table-tested without the tools.
package builder
