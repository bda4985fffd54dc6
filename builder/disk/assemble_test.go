package disk

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gildhq/gild/builder"
)

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (make deps installs the image builder's tools): %v", tool, err)
		}
	}
}

// fakeRootfs is a tree with what the disk assembly looks for: kernel and initrd links as
// Debian's kernel packages leave them.
func fakeRootfs(t *testing.T) string {
	root := t.TempDir()
	for name, content := range map[string]string{
		"boot/vmlinuz-6.1.0-1-cloud-amd64":    "kernel",
		"boot/initrd.img-6.1.0-1-cloud-amd64": "initrd",
		"etc/fstab":                           "# UNCONFIGURED FSTAB FOR BASE SYSTEM\n",
	} {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("boot/vmlinuz-6.1.0-1-cloud-amd64", filepath.Join(root, "vmlinuz"))
	// An absolute link must resolve inside the tree, not on the host.
	os.Symlink("/boot/initrd.img-6.1.0-1-cloud-amd64", filepath.Join(root, "initrd.img"))
	return root
}

func TestAssembleReadsBackWithoutMounting(t *testing.T) {
	needTools(t, "mkfs.ext4", "mkfs.vfat", "mmd", "mcopy", "mtype", "grub-mkimage", "sfdisk", "debugfs")
	rootfs := fakeRootfs(t)
	var log strings.Builder
	d := &Tools{Runner: &builder.Runner{Sink: builder.WriterSink(&log)}}
	out := filepath.Join(t.TempDir(), "disk.raw")
	disk, err := d.Assemble(context.Background(), rootfs, out, Options{Size: 512 * mib, ESPSize: 64 * mib, Seed: "test"})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if disk.Layout != NewLayout(512*mib, 64*mib, "test") {
		t.Errorf("layout %+v", disk.Layout)
	}

	// The partition table, as sfdisk reads it back.
	js, err := exec.Command("sfdisk", "--json", out).Output()
	if err != nil {
		t.Fatal(err)
	}
	var pt struct {
		PartitionTable struct {
			Label      string
			Partitions []struct {
				Start, Size int64
				Type, UUID  string
			}
		}
	}
	if err := json.Unmarshal(js, &pt); err != nil {
		t.Fatal(err)
	}
	p := pt.PartitionTable.Partitions
	if pt.PartitionTable.Label != "gpt" || len(p) != 2 || p[0].Start*512 != disk.Layout.ESPOffset() || p[0].Type != TypeESP ||
		p[1].Start*512 != disk.Layout.RootOffset() || p[1].Size*512 != disk.Layout.RootSize() || p[1].Type != TypeRootX86_64 ||
		!strings.EqualFold(p[1].UUID, disk.Layout.RootPartUUID) {
		t.Errorf("partition table %s", js)
	}

	// The EFI system partition, read in place at its offset.
	esp := out + "@@" + itoa(disk.Layout.ESPOffset())
	cfg, err := exec.Command("mtype", "-i", esp, "::/EFI/BOOT/grub.cfg").CombinedOutput()
	if err != nil || !strings.Contains(string(cfg), "--fs-uuid --set=root "+disk.Layout.RootFSUUID) {
		t.Errorf("grub.cfg on the ESP: %v\n%s", err, cfg)
	}
	efi, err := exec.Command("mtype", "-i", esp, "::/EFI/BOOT/BOOTX64.EFI").Output()
	if err != nil || !strings.HasPrefix(string(efi), "MZ") {
		t.Errorf("BOOTX64.EFI is not a PE binary: %v", err)
	}

	// The root filesystem, with the fstab written into it.
	fstab, err := exec.Command("debugfs", "-R", "cat /etc/fstab", out+"?offset="+itoa(disk.Layout.RootOffset())).Output()
	if err != nil || string(fstab) != Fstab(disk.Layout) {
		t.Errorf("fstab in the root filesystem: %v\n%s", err, fstab)
	}
	st, _ := os.Stat(out)
	if st.Size() != 512*mib {
		t.Errorf("disk is %d bytes", st.Size())
	}
	if !strings.Contains(log.String(), "disk: assembled "+out) {
		t.Errorf("log lacks the assembly's summary:\n%s", log.String())
	}
	if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 1 {
		t.Errorf("work files left beside the disk: %v", entries)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestAssembleReportsEveryProblemBeforeRunningATool(t *testing.T) {
	rootfs := t.TempDir()
	d := &Tools{Runner: &builder.Runner{}, MkfsExt4: "/nonexistent"}
	out := filepath.Join(t.TempDir(), "disk.raw")
	_, err := d.Assemble(context.Background(), rootfs, out, Options{Size: 100 * mib, KernelArgs: []string{"quiet", "a b"}})
	for _, want := range []string{"no kernel in the root filesystem", "no initrd in the root filesystem", `kernel argument "a b"`, "want at least 256 MiB"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed assembly left %s", out)
	}
}

func TestAssembleFailureRemovesTheDisk(t *testing.T) {
	needTools(t, "mkfs.ext4", "mkfs.vfat", "mmd", "mcopy", "grub-mkimage")
	d := &Tools{Runner: &builder.Runner{}, Sfdisk: "false"}
	dir := t.TempDir()
	_, err := d.Assemble(context.Background(), fakeRootfs(t), filepath.Join(dir, "disk.raw"), Options{Size: 512 * mib, ESPSize: 64 * mib})
	if err == nil || !strings.Contains(err.Error(), "assemble disk: partition table: false --quiet --no-reread") {
		t.Fatalf("error %v should name the step and the command", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}
