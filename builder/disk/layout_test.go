package disk

import (
	"reflect"
	"strings"
	"testing"
)

var testLayout = Layout{
	DiskSize: 4 << 30, ESPSize: 128 * mib,
	DiskGUID: "11111111-2222-4333-8444-555555555555", ESPPartUUID: "aaaaaaaa-0000-4000-8000-000000000001",
	RootPartUUID: "aaaaaaaa-0000-4000-8000-000000000002", RootFSUUID: "0f7a2b9c-1d2e-4f30-8a1b-2c3d4e5f6a7b",
	ESPVolumeID: "ABCD-1234",
}

func TestSfdiskScript(t *testing.T) {
	want := `label: gpt
label-id: 11111111-2222-4333-8444-555555555555
unit: sectors
first-lba: 2048
sector-size: 512

start=2048, size=262144, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=AAAAAAAA-0000-4000-8000-000000000001, name="EFI system partition"
start=264192, size=8122368, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=AAAAAAAA-0000-4000-8000-000000000002, name="root"
`
	if got := SfdiskScript(testLayout); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// The root partition ends 1 MiB before the disk does: room for the backup GPT.
	if end := testLayout.RootOffset() + testLayout.RootSize(); end != testLayout.DiskSize-mib {
		t.Errorf("root ends at %d", end)
	}
}

func TestFstabAndGrubConfigShareTheLayoutsIdentifiers(t *testing.T) {
	fstab := Fstab(testLayout)
	for _, want := range []string{"UUID=0f7a2b9c-1d2e-4f30-8a1b-2c3d4e5f6a7b / ext4 errors=remount-ro 0 1", "UUID=ABCD-1234 /boot/efi vfat umask=0077,nofail 0 2"} {
		if !strings.Contains(fstab, want+"\n") {
			t.Errorf("fstab lacks %q:\n%s", want, fstab)
		}
	}
	cfg := GrubConfig(testLayout, Boot{Kernel: "/vmlinuz", Initrd: "/initrd.img", Args: DefaultKernelArgs})
	for _, want := range []string{
		"set timeout=0\n",
		"search --no-floppy --fs-uuid --set=root 0f7a2b9c-1d2e-4f30-8a1b-2c3d4e5f6a7b\n",
		"\tlinux /vmlinuz root=UUID=0f7a2b9c-1d2e-4f30-8a1b-2c3d4e5f6a7b ro console=tty0 console=ttyS0,115200\n",
		"\tinitrd /initrd.img\n",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, cfg)
		}
	}
}

func TestToolArgs(t *testing.T) {
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"mkfs.ext4", MkfsExt4Args("/w/root.img", "/w/rootfs", testLayout),
			[]string{"-q", "-F", "-t", "ext4", "-L", "root", "-U", "0f7a2b9c-1d2e-4f30-8a1b-2c3d4e5f6a7b", "-E", "assume_storage_prezeroed=1", "-d", "/w/rootfs", "/w/root.img", "4061184k"}},
		{"mkfs.vfat", MkfsVfatArgs("/w/esp.img", testLayout),
			[]string{"-C", "-F", "32", "-n", "EFI", "-i", "ABCD1234", "/w/esp.img", "131072"}},
		{"grub-mkimage", GrubMkimageArgs("/w/BOOTX64.EFI", []string{"part_gpt", "ext2"}),
			[]string{"--format=x86_64-efi", "--prefix=/EFI/BOOT", "--output=/w/BOOTX64.EFI", "part_gpt", "ext2"}},
		{"mount bind", MountArgs(Mount{Source: "/dev", Target: "/r/dev", Options: []string{"bind", "private"}}),
			[]string{"-o", "bind,private", "/dev", "/r/dev"}},
		{"mount proc", MountArgs(Mount{Source: "proc", Target: "/r/proc", FSType: "proc"}),
			[]string{"-t", "proc", "proc", "/r/proc"}},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestNewLayout(t *testing.T) {
	a, b := NewLayout(4<<30, 128*mib, "digest-1"), NewLayout(4<<30, 128*mib, "digest-1")
	if a != b {
		t.Errorf("the same seed gave two layouts:\n%+v\n%+v", a, b)
	}
	if err := a.Validate(); err != nil {
		t.Error(err)
	}
	c := NewLayout(4<<30, 128*mib, "digest-2")
	if c.RootFSUUID == a.RootFSUUID || c.ESPVolumeID == a.ESPVolumeID {
		t.Error("another seed gave the same identifiers")
	}
	r1, r2 := NewLayout(4<<30, 128*mib, ""), NewLayout(4<<30, 128*mib, "")
	if r1.DiskGUID == r2.DiskGUID {
		t.Error("no seed should give random identifiers")
	}
	if ids := []string{a.DiskGUID, a.ESPPartUUID, a.RootPartUUID, a.RootFSUUID}; len(map[string]bool{ids[0]: true, ids[1]: true, ids[2]: true, ids[3]: true}) != 4 {
		t.Errorf("identifiers repeat: %q", ids)
	}
}

func TestLayoutValidateReportsEveryProblem(t *testing.T) {
	err := Layout{DiskSize: 200*mib + 1, ESPSize: 32 * mib, DiskGUID: "nope", ESPVolumeID: "abcd-1234"}.Validate()
	for _, want := range []string{"EFI system partition size", "disk size 209715201 is not a whole number", "root partition; want at least 256 MiB",
		`disk GUID "nope"`, `EFI partition UUID ""`, `root filesystem UUID ""`, `EFI volume ID "abcd-1234"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}
