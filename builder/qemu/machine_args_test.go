package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func baseMachine() MachineConfig {
	return MachineConfig{
		Name: "api-1", Accel: "tcg", CPUs: 2, MemoryMiB: 1024,
		Firmware:      Firmware{Code: "/usr/share/OVMF/OVMF_CODE_4M.fd", Vars: "/d/vms/k/OVMF_VARS.fd"},
		Disk:          "/d/vms/k/disk.qcow2",
		FirstBoot:     "/d/vms/k/firstboot.json",
		SSHPort:       2222,
		ConsoleSocket: "/tmp/gild-vm-k/console.sock", ConsoleLog: "/d/vms/k/console.log",
		QMPSocket: "/tmp/gild-vm-k/qmp.sock", PIDFile: "/d/vms/k/qemu.pid",
	}
}

func TestMachineArgs(t *testing.T) {
	want := func(accel, head, disk []string, fwcfg string) []string {
		a := append([]string{"-name", "gild-vm-api-1", "-machine", "q35"}, accel...)
		a = append(a, "-smp", "2", "-m", "1024")
		a = append(a, head...)
		a = append(a,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
			"-drive", "if=pflash,format=raw,unit=1,file=/d/vms/k/OVMF_VARS.fd")
		a = append(a, disk...)
		return append(a,
			"-device", "virtio-blk-pci,drive=disk0,bootindex=1",
			"-fw_cfg", fwcfg,
			"-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22",
			"-device", "virtio-net-pci,netdev=net0,romfile=",
			"-chardev", "socket,id=console,path=/tmp/gild-vm-k/console.sock,server=on,wait=off,logfile=/d/vms/k/console.log,logappend=on",
			"-serial", "chardev:console",
			"-chardev", "socket,id=qmp,path=/tmp/gild-vm-k/qmp.sock,server=on,wait=off",
			"-mon", "chardev=qmp,mode=control",
			"-device", "virtio-rng-pci",
			"-display", "none", "-monitor", "none", "-parallel", "none",
			"-pidfile", "/d/vms/k/qemu.pid",
			"-daemonize")
	}
	tcg := []string{"-accel", "tcg"}
	qcow2 := []string{"-drive", "if=none,id=disk0,format=qcow2,cache=writeback,discard=unmap,file=/d/vms/k/disk.qcow2"}
	fwcfg := "name=opt/org.gild/firstboot,file=/d/vms/k/firstboot.json"
	tests := []struct {
		name string
		edit func(*MachineConfig)
		want []string
	}{
		{"tcg", func(*MachineConfig) {}, want(tcg, nil, qcow2, fwcfg)},
		{"kvm takes the host CPU", func(c *MachineConfig) { c.Accel = "kvm" }, want([]string{"-accel", "kvm", "-cpu", "host"}, nil, qcow2, fwcfg)},
		{"the vmId is the SMBIOS UUID, lower-cased", func(c *MachineConfig) { c.UUID = "0F8FAD5B-D9CB-469F-A165-70867728950E" },
			want(tcg, []string{"-uuid", "0f8fad5b-d9cb-469f-a165-70867728950e"}, qcow2, fwcfg)},
		{"commas are doubled in option values, not in the pidfile", func(c *MachineConfig) {
			c.Name = "a,b"
			c.Disk = "/d/a,b/disk.qcow2"
			c.FirstBoot = "/d/a,b/firstboot.json"
			c.ConsoleLog = "/d/a,b/console.log"
			c.PIDFile = "/d/a,b/qemu.pid"
		}, func() []string {
			w := want(tcg, nil, []string{"-drive", "if=none,id=disk0,format=qcow2,cache=writeback,discard=unmap,file=/d/a,,b/disk.qcow2"},
				"name=opt/org.gild/firstboot,file=/d/a,,b/firstboot.json")
			w[1] = "gild-vm-a,,b"
			for i, a := range w {
				switch {
				case strings.HasPrefix(a, "socket,id=console"):
					w[i] = strings.Replace(a, "/d/vms/k/console.log", "/d/a,,b/console.log", 1)
				case a == "/d/vms/k/qemu.pid":
					w[i] = "/d/a,b/qemu.pid"
				}
			}
			return w
		}()},
		{"a raw image as the disk", func(c *MachineConfig) { c.DiskFormat = "raw" },
			want(tcg, nil, []string{"-drive", "if=none,id=disk0,format=raw,cache=writeback,discard=unmap,file=/d/vms/k/disk.qcow2"}, fwcfg)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := baseMachine()
			tt.edit(&c)
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			got := MachineArgs(c)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
			for _, a := range got {
				if a == "-no-reboot" || a == "-nographic" {
					t.Errorf("%s in a long-lived VM's arguments: a guest reboot must reboot, and -nographic cannot go with -daemonize", a)
				}
			}
		})
	}
}

func TestMachineConfigValidateNamesEveryField(t *testing.T) {
	c := MachineConfig{Accel: "hvf", MemoryMiB: 64, DiskFormat: "vmdk", UUID: "nope", SSHPort: 70000,
		Disk: "disk.qcow2", QMPSocket: "/" + strings.Repeat("q", 120)}
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"name: empty", `accel: "hvf"`, "cpus: 0", "memoryMiB: 64", `diskFormat: "vmdk"`, `uuid: "nope"`,
		"sshPort: 70000", "firmware.code: empty", "firmware.vars: empty", "disk: disk.qcow2 is not an absolute path", "firstBoot: empty",
		"consoleLog: empty", "pidFile: empty", "consoleSocket: empty", "qmpSocket: /qqq", "at most 107"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if err := baseMachine().Validate(); err != nil {
		t.Errorf("a complete config: %v", err)
	}
}

func TestOverlayArgs(t *testing.T) {
	for _, tt := range []struct {
		format string
		want   []string
	}{
		{"", []string{"create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "/d/vm-images/x.qcow2", "/d/vms/k/disk.qcow2"}},
		{"raw", []string{"create", "-q", "-f", "qcow2", "-F", "raw", "-b", "/d/vm-images/x.qcow2", "/d/vms/k/disk.qcow2"}},
	} {
		if got := OverlayArgs("/d/vm-images/x.qcow2", tt.format, "/d/vms/k/disk.qcow2"); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("format %q: got %q, want %q", tt.format, got, tt.want)
		}
	}
}

// TestQMPOneCommandPerConnection checks the helpers against a QMP server that, like
// QEMU's, serves one client at a time: each call connects, negotiates, asks, and leaves, so
// the next caller gets in.
func TestQMPOneCommandPerConnection(t *testing.T) {
	dir, err := os.MkdirTemp("", "gild-qmp-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "qmp.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan string, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, `{"QMP": {"version": {}, "capabilities": []}}`)
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				var cmd struct{ Execute string }
				json.Unmarshal(sc.Bytes(), &cmd)
				got <- cmd.Execute
				switch cmd.Execute {
				case "query-status":
					fmt.Fprintln(c, `{"timestamp": {}, "event": "POWERDOWN"}`)
					fmt.Fprintln(c, `{"return": {"status": "paused", "running": false}}`)
				case "system_powerdown":
					fmt.Fprintln(c, `{"error": {"class": "GenericError", "desc": "no ACPI"}}`)
				default:
					fmt.Fprintln(c, `{"return": {}}`)
				}
			}
			c.Close() // one client at a time: the next is accepted only now
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 2 {
		if st, err := QMPStatus(ctx, path); err != nil || st != "paused" {
			t.Fatalf("status %q, %v; want paused", st, err)
		}
	}
	if err := QMPPowerdown(ctx, path); err == nil || !strings.Contains(err.Error(), "no ACPI") {
		t.Errorf("powerdown: %v, want QEMU's error", err)
	}
	var cmds []string
	for len(got) > 0 {
		cmds = append(cmds, <-got)
	}
	want := []string{"qmp_capabilities", "query-status", "qmp_capabilities", "query-status", "qmp_capabilities", "system_powerdown"}
	if !reflect.DeepEqual(cmds, want) {
		t.Errorf("commands %q, want %q", cmds, want)
	}
	if _, err := QMPStatus(ctx, filepath.Join(dir, "none.sock")); err == nil {
		t.Error("no error from a socket nobody listens on")
	}
}
