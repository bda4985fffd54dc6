package disk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gildhq/gild/builder"
)

// Options shape an assembled disk.
type Options struct {
	Size    int64 // whole disk in bytes; 4 GiB when zero. Sparse: unused space costs nothing.
	ESPSize int64 // EFI system partition; 128 MiB when zero
	// Seed derives the disk's identifiers, so the same seed gives the same UUIDs; random
	// when empty. A pipeline passes the build's digest.
	Seed string
	// Kernel and Initrd are paths in the root filesystem; /vmlinuz and /initrd.img, the
	// links Debian's kernel packages keep on the newest kernel, when empty.
	Kernel, Initrd string
	// KernelArgs follow root=UUID=... ro; DefaultKernelArgs when nil.
	KernelArgs []string
}

// DefaultKernelArgs send the console to the first serial port (last console= wins
// /dev/console) as well as the screen.
var DefaultKernelArgs = []string{"console=tty0", "console=ttyS0,115200"}

func (o Options) withDefaults() Options {
	if o.Size == 0 {
		o.Size = 4 << 30
	}
	if o.ESPSize == 0 {
		o.ESPSize = 128 * mib
	}
	if o.Kernel == "" {
		o.Kernel = "/vmlinuz"
	}
	if o.Initrd == "" {
		o.Initrd = "/initrd.img"
	}
	if o.KernelArgs == nil {
		o.KernelArgs = DefaultKernelArgs
	}
	return o
}

// Disk is an assembled raw disk.
type Disk struct {
	Path   string
	Layout Layout
	Boot   Boot
}

// Driver assembles disks.
type Driver interface {
	// Assemble writes /etc/fstab into rootfs and makes a raw UEFI-bootable disk of it at
	// output. On failure output is removed.
	Assemble(ctx context.Context, rootfs, output string, opts Options) (*Disk, error)
}

// Tools assembles disks with mkfs.ext4, mkfs.vfat, mtools, grub-mkimage and sfdisk, each
// found in PATH unless named here.
type Tools struct {
	Runner                                              *builder.Runner
	MkfsExt4, MkfsVfat, Mmd, Mcopy, GrubMkimage, Sfdisk string
	// GrubModuleDir holds GRUB's x86_64-efi modules; grub-mkimage's default when empty.
	GrubModuleDir string
}

var _ Driver = (*Tools)(nil)

func or(p, def string) string {
	if p == "" {
		return def
	}
	return p
}

// Assemble implements Driver.
func (t *Tools) Assemble(ctx context.Context, rootfs, output string, opts Options) (_ *Disk, err error) {
	start := time.Now()
	o := opts.withDefaults()
	l := NewLayout(o.Size, o.ESPSize, o.Seed)
	boot := Boot{Kernel: o.Kernel, Initrd: o.Initrd, Args: o.KernelArgs}
	if err := t.check(rootfs, l, boot); err != nil {
		return nil, fmt.Errorf("assemble disk: %w", err)
	}
	r := t.Runner

	var undo builder.Cleanup
	defer undo.RunInto(ctx, &err)
	work, err := os.MkdirTemp(filepath.Dir(output), ".disk-*")
	if err != nil {
		return nil, fmt.Errorf("assemble disk: %w", err)
	}
	undo.Push("remove "+work, func(context.Context) error { return os.RemoveAll(work) })

	// fstab and the ESP's mount point go into the tree before mkfs.ext4 copies it.
	if err := os.MkdirAll(filepath.Join(rootfs, "boot/efi"), 0o755); err != nil {
		return nil, fmt.Errorf("assemble disk: %w", err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "etc/fstab"), []byte(Fstab(l)), 0o644); err != nil {
		return nil, fmt.Errorf("assemble disk: write fstab: %w", err)
	}

	rootImg := filepath.Join(work, "root.img")
	if err := r.Run(ctx, builder.Command{Path: or(t.MkfsExt4, "mkfs.ext4"), Args: MkfsExt4Args(rootImg, rootfs, l)}); err != nil {
		return nil, fmt.Errorf("assemble disk: root filesystem: %w", err)
	}
	espImg, err := t.esp(ctx, work, l, boot)
	if err != nil {
		return nil, fmt.Errorf("assemble disk: EFI system partition: %w", err)
	}

	// The disk: a sparse file of the full size, the partition table, then each image at
	// its partition's offset.
	f, err := os.OpenFile(output, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("assemble disk: %w", err)
	}
	undo.Push("close "+output, func(context.Context) error { return f.Close() })
	defer func() {
		if err != nil {
			os.Remove(output)
		}
	}()
	if err := f.Truncate(l.DiskSize); err != nil {
		return nil, fmt.Errorf("assemble disk: %w", err)
	}
	if err := r.Run(ctx, builder.Command{Path: or(t.Sfdisk, "sfdisk"), Args: []string{"--quiet", "--no-reread", "--no-tell-kernel", "--wipe=never", output},
		Stdin: strings.NewReader(SfdiskScript(l))}); err != nil {
		return nil, fmt.Errorf("assemble disk: partition table: %w", err)
	}
	for _, p := range []struct {
		img  string
		off  int64
		size int64
	}{{espImg, l.ESPOffset(), l.ESPSize}, {rootImg, l.RootOffset(), l.RootSize()}} {
		if err := copySparse(f, p.img, p.off, p.size); err != nil {
			return nil, fmt.Errorf("assemble disk: %w", err)
		}
	}
	r.Logf("disk", "assembled %s in %s: %d MiB, EFI %d MiB at %d MiB, root %d MiB at %d MiB (UUID %s)", output,
		time.Since(start).Round(time.Millisecond), l.DiskSize/mib, l.ESPSize/mib, l.ESPOffset()/mib, l.RootSize()/mib, l.RootOffset()/mib, l.RootFSUUID)
	return &Disk{Path: output, Layout: l, Boot: boot}, nil
}

// check reports every problem with the inputs before any tool runs.
func (t *Tools) check(rootfs string, l Layout, b Boot) error {
	errs := []error{l.Validate()}
	if st, err := os.Stat(rootfs); err != nil || !st.IsDir() {
		errs = append(errs, fmt.Errorf("root filesystem %q is not a directory", rootfs))
		return errors.Join(errs...)
	}
	for _, p := range []struct{ what, path string }{{"kernel", b.Kernel}, {"initrd", b.Initrd}} {
		if !path.IsAbs(p.path) {
			errs = append(errs, fmt.Errorf("%s path %q is not absolute", p.what, p.path))
		} else if _, err := statIn(rootfs, p.path); err != nil {
			errs = append(errs, fmt.Errorf("no %s in the root filesystem: %w", p.what, err))
		}
	}
	for _, a := range b.Args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"") {
			errs = append(errs, fmt.Errorf("kernel argument %q is empty or has a space or quote", a))
		}
	}
	if used, err := treeSize(rootfs); err != nil {
		errs = append(errs, err)
	} else if room := l.RootSize() * 9 / 10; used > room {
		errs = append(errs, fmt.Errorf("the root filesystem holds %d MiB; a %d MiB disk has room for %d MiB", used/mib, l.DiskSize/mib, room/mib))
	}
	return errors.Join(errs...)
}

// statIn stats name inside root, following symbolic links as the booted system would:
// absolute link targets resolve inside root, not on the host.
func statIn(root, name string) (fs.FileInfo, error) {
	p := name
	for range 40 {
		full := filepath.Join(root, p)
		st, err := os.Lstat(full)
		if err != nil {
			return nil, err
		}
		if st.Mode()&fs.ModeSymlink == 0 {
			return st, nil
		}
		target, err := os.Readlink(full)
		if err != nil {
			return nil, err
		}
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(p), target)
		}
		p = path.Clean(target)
	}
	return nil, fmt.Errorf("%s: too many levels of symbolic links", name)
}

// treeSize adds up the blocks the files under dir use.
func treeSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += (info.Size() + 4095) &^ 4095
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measure the root filesystem: %w", err)
	}
	return n, nil
}

// esp builds the EFI system partition image: GRUB and its grub.cfg in EFI/BOOT.
func (t *Tools) esp(ctx context.Context, work string, l Layout, b Boot) (string, error) {
	r := t.Runner
	grub := filepath.Join(work, "BOOTX64.EFI")
	args := GrubMkimageArgs(grub, GrubModules)
	if t.GrubModuleDir != "" {
		args = append([]string{"--directory=" + t.GrubModuleDir}, args...)
	}
	if err := r.Run(ctx, builder.Command{Path: or(t.GrubMkimage, "grub-mkimage"), Args: args}); err != nil {
		return "", err
	}
	cfg := filepath.Join(work, "grub.cfg")
	if err := os.WriteFile(cfg, []byte(GrubConfig(l, b)), 0o644); err != nil {
		return "", err
	}
	img := filepath.Join(work, "esp.img")
	if err := r.Run(ctx, builder.Command{Path: or(t.MkfsVfat, "mkfs.vfat"), Args: MkfsVfatArgs(img, l)}); err != nil {
		return "", err
	}
	// mtools checks a FAT's geometry against a floppy's unless told not to.
	env := append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if err := r.Run(ctx, builder.Command{Path: or(t.Mmd, "mmd"), Args: []string{"-i", img, "::/EFI", "::/EFI/BOOT"}, Env: env}); err != nil {
		return "", err
	}
	if err := r.Run(ctx, builder.Command{Path: or(t.Mcopy, "mcopy"), Args: []string{"-i", img, grub, cfg, "::/EFI/BOOT/"}, Env: env}); err != nil {
		return "", err
	}
	return img, nil
}

// copySparse copies the image file into dst at off, only its data: the holes of the
// sparse image stay holes in the new, sparse disk, where they read as zeros already.
// Within the data the kernel copies (copy_file_range), so nothing passes through here.
func copySparse(dst *os.File, image string, off, max int64) error {
	src, err := os.Open(image)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	if size > max {
		return fmt.Errorf("%s is %d bytes, larger than its %d-byte partition", image, size, max)
	}
	for pos := int64(0); pos < size; {
		data, err := src.Seek(pos, seekData)
		if errors.Is(err, syscall.ENXIO) {
			return nil // only a hole is left
		}
		if err != nil {
			return fmt.Errorf("copy %s into the disk: %w", image, err)
		}
		hole, err := src.Seek(data, seekHole)
		if err != nil {
			return fmt.Errorf("copy %s into the disk: %w", image, err)
		}
		if _, err := src.Seek(data, io.SeekStart); err != nil {
			return fmt.Errorf("copy %s into the disk: %w", image, err)
		}
		if _, err := dst.Seek(off+data, io.SeekStart); err != nil {
			return fmt.Errorf("copy %s into the disk: %w", image, err)
		}
		if _, err := io.CopyN(dst, src, hole-data); err != nil {
			return fmt.Errorf("copy %s into the disk: %w", image, err)
		}
		pos = hole
	}
	return nil
}

// lseek(2) whence values for sparse files (Linux, and most filesystems since).
const (
	seekData = 3
	seekHole = 4
)
