package disk

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

const (
	sectorSize = 512
	mib        = 1 << 20
	// alignment of partitions, and the room left after the last one for the backup GPT.
	alignment = mib
)

// GPT partition types: the EFI system partition, and the discoverable-partitions type of
// an x86-64 root, so systemd-gpt-auto and tools that follow the specification recognise it.
const (
	TypeESP        = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	TypeRootX86_64 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
)

// Layout places the EFI system partition and the root partition on a disk, and names the
// identifiers that the partition table, the filesystems, /etc/fstab and grub.cfg share.
type Layout struct {
	DiskSize int64 // bytes, a multiple of 1 MiB
	ESPSize  int64 // bytes, a multiple of 1 MiB

	DiskGUID     string // GPT disk GUID
	ESPPartUUID  string // GPT partition GUIDs
	RootPartUUID string
	RootFSUUID   string // ext4 filesystem UUID: root= and grub.cfg's search
	ESPVolumeID  string // FAT volume serial, as XXXX-XXXX
}

// ESPOffset is where the EFI system partition starts, in bytes: 1 MiB, after the GPT.
func (l Layout) ESPOffset() int64 { return alignment }

// RootOffset is where the root partition starts, in bytes.
func (l Layout) RootOffset() int64 { return l.ESPOffset() + l.ESPSize }

// RootSize is the root partition's size: the rest of the disk but the last MiB, which
// holds the backup GPT.
func (l Layout) RootSize() int64 { return l.DiskSize - l.RootOffset() - alignment }

var (
	guidRe  = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)
	volIDRe = regexp.MustCompile(`^[0-9A-F]{4}-[0-9A-F]{4}$`)
)

// Validate reports every problem with l at once.
func (l Layout) Validate() error {
	var errs []error
	if l.ESPSize < 64*mib || l.ESPSize%mib != 0 {
		errs = append(errs, fmt.Errorf("EFI system partition size %d is not a whole number of MiB of at least 64 MiB (FAT32's minimum, with room)", l.ESPSize))
	}
	if l.DiskSize%mib != 0 {
		errs = append(errs, fmt.Errorf("disk size %d is not a whole number of MiB", l.DiskSize))
	}
	if l.RootSize() < 256*mib {
		errs = append(errs, fmt.Errorf("disk size %d MiB leaves %d MiB for the root partition; want at least 256 MiB", l.DiskSize/mib, l.RootSize()/mib))
	}
	for _, g := range []struct{ name, v string }{{"disk GUID", l.DiskGUID}, {"EFI partition UUID", l.ESPPartUUID}, {"root partition UUID", l.RootPartUUID}, {"root filesystem UUID", l.RootFSUUID}} {
		if !guidRe.MatchString(g.v) {
			errs = append(errs, fmt.Errorf("%s %q is not a GUID", g.name, g.v))
		}
	}
	if !volIDRe.MatchString(l.ESPVolumeID) {
		errs = append(errs, fmt.Errorf("EFI volume ID %q is not XXXX-XXXX in upper-case hex", l.ESPVolumeID))
	}
	return errors.Join(errs...)
}

// NewLayout lays out a disk of diskSize with an EFI system partition of espSize. With a
// seed the identifiers derive from it, so one input always gives one disk; without, they
// are random.
func NewLayout(diskSize, espSize int64, seed string) Layout {
	id := func(purpose string) [16]byte {
		var b [16]byte
		if seed == "" {
			rand.Read(b[:])
		} else {
			s := sha256.Sum256([]byte("gild disk " + purpose + "\x00" + seed))
			copy(b[:], s[:])
		}
		return b
	}
	l := Layout{
		DiskSize: diskSize, ESPSize: espSize,
		DiskGUID: uuid(id("disk")), ESPPartUUID: uuid(id("esp part")), RootPartUUID: uuid(id("root part")),
		RootFSUUID: uuid(id("root fs")),
	}
	v := id("esp vol")
	l.ESPVolumeID = fmt.Sprintf("%02X%02X-%02X%02X", v[0], v[1], v[2], v[3])
	return l
}

// uuid formats b as a random (version 4) UUID.
func uuid(b [16]byte) string {
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// SfdiskScript is the partition table in sfdisk's script format.
func SfdiskScript(l Layout) string {
	sec := func(n int64) int64 { return n / sectorSize }
	return fmt.Sprintf(`label: gpt
label-id: %s
unit: sectors
first-lba: %d
sector-size: %d

start=%d, size=%d, type=%s, uuid=%s, name="EFI system partition"
start=%d, size=%d, type=%s, uuid=%s, name="root"
`, strings.ToUpper(l.DiskGUID), sec(l.ESPOffset()), sectorSize,
		sec(l.ESPOffset()), sec(l.ESPSize), TypeESP, strings.ToUpper(l.ESPPartUUID),
		sec(l.RootOffset()), sec(l.RootSize()), TypeRootX86_64, strings.ToUpper(l.RootPartUUID))
}

// Fstab is the image's /etc/fstab: the root by filesystem UUID, checked first; the EFI
// system partition at /boot/efi, readable by root only, and nofail so a damaged ESP does
// not keep a VM that is already running from booting.
func Fstab(l Layout) string {
	return fmt.Sprintf(`# /etc/fstab: written by gild's disk assembly.
# <file system> <mount point> <type> <options> <dump> <pass>
UUID=%s / ext4 errors=remount-ro 0 1
UUID=%s /boot/efi vfat umask=0077,nofail 0 2
`, l.RootFSUUID, l.ESPVolumeID)
}

// Boot is what GRUB boots.
type Boot struct {
	Kernel, Initrd string   // paths on the root filesystem
	Args           []string // kernel arguments after root= and ro
}

// GrubConfig is EFI/BOOT/grub.cfg: no menu delay, the root filesystem found by UUID
// (labels collide when a second disk from the same image is attached), the kernel's
// console on the first serial port, where a headless VM's log is read.
func GrubConfig(l Layout, b Boot) string {
	args := append([]string{"root=UUID=" + l.RootFSUUID, "ro"}, b.Args...)
	return fmt.Sprintf(`# EFI/BOOT/grub.cfg: written by gild's disk assembly.
set default=0
set timeout=0
search --no-floppy --fs-uuid --set=root %s
menuentry 'Debian GNU/Linux' {
	echo 'Loading %s ...'
	linux %s %s
	echo 'Loading %s ...'
	initrd %s
}
`, l.RootFSUUID, b.Kernel, b.Kernel, strings.Join(args, " "), b.Initrd, b.Initrd)
}

// GrubModules go into the EFI binary: partition table and filesystems to reach the
// kernel, the commands grub.cfg uses, and console output over EFI and serial.
var GrubModules = []string{
	"part_gpt", "fat", "ext2", "normal", "configfile", "search", "search_fs_uuid", "search_label",
	"linux", "boot", "echo", "test", "ls", "cat", "serial", "terminal", "efi_gop", "all_video",
	"gzio", "reboot", "halt",
}

// GrubMkimageArgs build the standalone x86_64-efi GRUB at output, reading its config from
// /EFI/BOOT on the partition it was loaded from.
func GrubMkimageArgs(output string, modules []string) []string {
	return append([]string{"--format=x86_64-efi", "--prefix=/EFI/BOOT", "--output=" + output}, modules...)
}

// MkfsExt4Args make the root filesystem image file from the rootfs directory. The file is
// new and sparse, so mke2fs may skip zeroing the inode tables and mark them zeroed, and the
// kernel has no lazy initialization to write into every VM's overlay at first boot.
func MkfsExt4Args(image, rootfs string, l Layout) []string {
	return []string{"-q", "-F", "-t", "ext4", "-L", "root", "-U", l.RootFSUUID,
		"-E", "assume_storage_prezeroed=1", "-d", rootfs, image, fmt.Sprintf("%dk", l.RootSize()/1024)}
}

// MkfsVfatArgs make the EFI system partition image file (-C creates it), FAT32 as the UEFI
// specification asks of a system partition.
func MkfsVfatArgs(image string, l Layout) []string {
	return []string{"-C", "-F", "32", "-n", "EFI", "-i", strings.ReplaceAll(l.ESPVolumeID, "-", ""), image, fmt.Sprint(l.ESPSize / 1024)}
}
