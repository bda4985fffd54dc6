// Package disk turns a root filesystem directory into a raw GPT disk that UEFI firmware
// boots, and gives a chroot for customizing that directory offline.
//
// The disk is assembled from files, with no loop device, mount or /dev/nbd (none of which
// a container or a nested VM reliably has): mkfs.ext4 -d builds the root filesystem image
// from the directory, mkfs.vfat -C and mtools build the EFI system partition, sfdisk
// writes the partition table into the raw file, and the two images are copied in at the
// offsets the table gives. GRUB is built on the host by grub-mkimage as a single EFI
// binary at the removable-media path EFI/BOOT/BOOTX64.EFI, so no NVRAM entry is needed;
// its grub.cfg beside it finds the root filesystem by UUID and boots the /vmlinuz and
// /initrd.img links there.
package disk
