package qemu

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func baseConfig() VMConfig {
	return VMConfig{
		Name: "t", Accel: "tcg", MemoryMiB: 1024, CPUs: 2,
		Firmware: Firmware{Code: "/usr/share/OVMF/OVMF_CODE_4M.fd", Vars: "/w/OVMF_VARS.fd"},
		Disk:     "/w/overlay.qcow2", DiskCache: "unsafe", ConsoleLog: "/w/console.log",
		ResultsSocket: "/w/results.sock", QMPSocket: "/w/qmp.sock",
	}
}

func TestSystemArgs(t *testing.T) {
	common := func(accel []string, disk []string, tail []string) []string {
		a := append([]string{"-name", "gild-t", "-machine", "q35"}, accel...)
		a = append(a, "-smp", "2", "-m", "1024",
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
			"-drive", "if=pflash,format=raw,unit=1,file=/w/OVMF_VARS.fd")
		a = append(a, disk...)
		a = append(a, "-chardev", "socket,id=qmp,path=/w/qmp.sock,server=on,wait=off",
			"-mon", "chardev=qmp,mode=control",
			"-device", "virtio-serial-pci,id=vser0",
			"-chardev", "socket,id=results,path=/w/results.sock,server=on,wait=on",
			"-device", "virtserialport,bus=vser0.0,chardev=results,name=org.gild.results",
			"-serial", "file:/w/console.log",
			"-device", "virtio-rng-pci")
		a = append(a, tail...)
		return append(a, "-nographic", "-monitor", "none", "-parallel", "none", "-no-reboot")
	}
	overlay := []string{"-drive", "if=none,id=disk0,format=qcow2,cache=unsafe,discard=unmap,file=/w/overlay.qcow2", "-device", "virtio-blk-pci,drive=disk0,bootindex=1"}
	tests := []struct {
		name string
		edit func(*VMConfig)
		want []string
	}{
		{"tcg without network", func(*VMConfig) {}, common([]string{"-accel", "tcg"}, overlay, []string{"-nic", "none"})},
		{"kvm takes the host CPU", func(c *VMConfig) { c.Accel = "kvm" }, common([]string{"-accel", "kvm", "-cpu", "host"}, overlay, []string{"-nic", "none"})},
		{"network without an option ROM", func(c *VMConfig) { c.Network = true }, common([]string{"-accel", "tcg"}, overlay,
			[]string{"-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0,romfile="})},
		{"read-only data disk; commas doubled", func(c *VMConfig) {
			c.Disk = "/w/a,b.qcow2"
			c.DataDisks = []string{"/w/tests.ext4"}
		}, common([]string{"-accel", "tcg"}, []string{
			"-drive", "if=none,id=disk0,format=qcow2,cache=unsafe,discard=unmap,file=/w/a,,b.qcow2", "-device", "virtio-blk-pci,drive=disk0,bootindex=1",
			"-drive", "if=none,id=data0,format=raw,readonly=on,file=/w/tests.ext4", "-device", "virtio-blk-pci,drive=data0",
		}, []string{"-nic", "none"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := baseConfig()
			tt.edit(&c)
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := SystemArgs(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestVMConfigValidateReportsEveryProblem(t *testing.T) {
	c := VMConfig{Accel: "hvf", MemoryMiB: 64, ConsoleLog: "/w/a,b.log", ResultsSocket: "/" + strings.Repeat("x", 120)}
	err := c.Validate()
	for _, want := range []string{`accelerator "hvf"`, "memory 64 MiB", "0 CPUs", "no firmware code", "no disk", "has a comma", "results socket path", "no QMP socket"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestImgArgs(t *testing.T) {
	tests := []struct {
		got, want []string
	}{
		{CreateOverlayArgs("/img/golden.qcow2", "/w/overlay.qcow2"), []string{"create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "/img/golden.qcow2", "/w/overlay.qcow2"}},
		{ConvertArgs("/w/disk.raw", "raw", "/img/golden.qcow2", true), []string{"convert", "-f", "raw", "-O", "qcow2", "-W", "-c", "-o", "compression_type=zstd", "/w/disk.raw", "/img/golden.qcow2"}},
		{ConvertArgs("/w/disk.raw", "raw", "/img/plain.qcow2", false), []string{"convert", "-f", "raw", "-O", "qcow2", "-W", "/w/disk.raw", "/img/plain.qcow2"}},
		{InfoArgs("/img/golden.qcow2"), []string{"info", "--output=json", "-U", "/img/golden.qcow2"}},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestParseInfo(t *testing.T) {
	i, err := ParseInfo([]byte(`{"virtual-size": 4294967296, "filename": "g.qcow2", "format": "qcow2", "actual-size": 140431360,
		"backing-filename": "/img/base.qcow2",
		"format-specific": {"type": "qcow2", "data": {"compat": "1.1", "compression-type": "zstd"}}, "dirty-flag": false}`))
	if err != nil {
		t.Fatal(err)
	}
	if i.Format != "qcow2" || i.VirtualSize != 4<<30 || i.ActualSize != 140431360 || i.CompressionType() != "zstd" || i.BackingFilename != "/img/base.qcow2" {
		t.Errorf("got %+v", i)
	}
	if _, err := ParseInfo([]byte(`{}`)); err == nil {
		t.Error("no format should be an error")
	}
}

func TestChooseAccel(t *testing.T) {
	vmx := "processor\t: 0\nflags\t\t: fpu vme vmx sse\n"
	tests := []struct {
		name   string
		facts  HostFacts
		want   string
		reason string
	}{
		{"nested PVM", HostFacts{KVMPVM: true, CPUInfo: vmx}, "tcg", "kvm_pvm is loaded"},
		{"no /dev/kvm", HostFacts{DevKVM: os.ErrPermission, CPUInfo: vmx}, "tcg", "/dev/kvm is not usable"},
		{"no vmx or svm", HostFacts{CPUInfo: "flags\t\t: fpu vme sse vmxx\n"}, "tcg", "no vmx or svm"},
		{"AMD", HostFacts{CPUInfo: "flags\t\t: fpu svm\n"}, "kvm", "usable"},
		{"Intel", HostFacts{CPUInfo: vmx}, "kvm", "usable"},
	}
	for _, tt := range tests {
		got := ChooseAccel(tt.facts)
		if got.Name != tt.want || !strings.Contains(got.Reason, tt.reason) {
			t.Errorf("%s: got %s, want %s because %q", tt.name, got, tt.want, tt.reason)
		}
	}
}

// TestThisHostsAccel logs what this machine would use, which the run log also says.
func TestThisHostsAccel(t *testing.T) {
	t.Logf("this host: %s", ChooseAccel(ProbeHost()))
}

func TestCleanConsoleLine(t *testing.T) {
	for in, want := range map[string]string{
		"\x1b[2J\x1b[01;01H\x1b[=3hBdsDxe: loading Boot0001": "BdsDxe: loading Boot0001",
		"[\x1b[0;32m  OK  \x1b[0m] Reached target":           "[  OK  ] Reached target",
		"login: \r":   "login: ",
		"tab\there":   "tab\there",
		"\x1b(Bplain": "plain",
	} {
		if got := CleanConsoleLine(in); got != want {
			t.Errorf("CleanConsoleLine(%q) = %q, want %q", in, got, want)
		}
	}
}
