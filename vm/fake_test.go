package vm

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as qemu-system-x86_64 and qemu-img when GILD_VM_FAKE is set, so
// that the service's process handling (a QEMU that detaches, its pidfile, its QMP socket,
// its SSH port, its console log) is tested without QEMU. GILD_VM_FAKE_MODE adds faults:
//
//	fail               QEMU refuses to start, as when its SSH port is taken
//	kvm-pause          under -accel kvm the VM stops in internal-error before any console output
//	ignore-powerdown   the guest ignores the ACPI power button (an idle UEFI shell does)
func TestMain(m *testing.M) {
	if os.Getenv("GILD_VM_FAKE") != "" {
		args := os.Args[1:]
		if len(args) > 0 && args[0] == "create" {
			fakeImg(args)
		} else {
			fakeQEMU(args)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "qemu-system-x86_64: "+format+"\n", args...)
	os.Exit(1)
}

// fakeImg is qemu-img create -q -f qcow2 -F FORMAT -b BACKING OVERLAY.
func fakeImg(args []string) {
	var backing string
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-b" {
			backing = args[i+1]
		}
	}
	if _, err := os.Stat(backing); err != nil {
		fmt.Fprintf(os.Stderr, "qemu-img: %s: Could not open backing file: %v\n", args[len(args)-1], err)
		os.Exit(1)
	}
	if err := os.WriteFile(args[len(args)-1], []byte("qcow2 overlay of "+backing+"\n"), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "qemu-img:", err)
		os.Exit(1)
	}
}

func chardevOpt(v, key string) string {
	for _, kv := range strings.Split(v, ",") {
		if p, ok := strings.CutPrefix(kv, key+"="); ok {
			return p
		}
	}
	return ""
}

var hostfwd = regexp.MustCompile(`hostfwd=tcp:127\.0\.0\.1:(\d+)-:22`)

func fakeQEMU(args []string) {
	mode := os.Getenv("GILD_VM_FAKE_MODE")
	var pidfile, qmpPath, conPath, conLog, accel, fwcfg, disk string
	var port int
	daemonize := false
	for i := 0; i < len(args); i++ {
		next := ""
		if i+1 < len(args) {
			next = args[i+1]
		}
		switch args[i] {
		case "-daemonize":
			daemonize = true
		case "-pidfile":
			pidfile = next
		case "-accel":
			accel = next
		case "-fw_cfg":
			fwcfg = chardevOpt(next, "file")
		case "-drive":
			if strings.Contains(next, "id=disk0") {
				disk = chardevOpt(next, "file")
			}
		case "-netdev":
			if m := hostfwd.FindStringSubmatch(next); m != nil {
				port, _ = strconv.Atoi(m[1])
			}
		case "-chardev":
			switch {
			case strings.Contains(next, "id=qmp"):
				qmpPath = chardevOpt(next, "path")
			case strings.Contains(next, "id=console"):
				conPath, conLog = chardevOpt(next, "path"), chardevOpt(next, "logfile")
			}
		}
	}
	if !daemonize || pidfile == "" || qmpPath == "" || conPath == "" || conLog == "" || port == 0 {
		die("the fake wants -daemonize, -pidfile, the qmp and console chardevs and a hostfwd; got %q", args)
	}
	if os.Getenv("GILD_VM_FAKE_CHILD") == "" {
		// The parent: start the VM in a new session and exit once it runs, or fail with its
		// error, as QEMU's -daemonize does.
		r, w, _ := os.Pipe()
		exe, _ := os.Executable()
		cmd := exec.Command(exe, args...)
		cmd.Env = append(os.Environ(), "GILD_VM_FAKE_CHILD=1")
		cmd.Stderr = os.Stderr
		cmd.ExtraFiles = []*os.File{w}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			die("%v", err)
		}
		w.Close()
		line, _ := bufio.NewReader(r).ReadString('\n')
		if line != "ok\n" {
			os.Exit(1)
		}
		os.Exit(0)
	}
	ready := os.NewFile(3, "ready")
	if strings.Contains(mode, "fail") {
		die("-netdev user,id=net0,hostfwd=tcp:127.0.0.1:%d-:22: Could not set up host forwarding rule 'tcp:127.0.0.1:%d-:22'", port, port)
	}
	for _, f := range []string{fwcfg, disk} {
		if _, err := os.ReadFile(f); err != nil {
			die("%v", err)
		}
	}
	ssh, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		die("-netdev user,id=net0,hostfwd=tcp:127.0.0.1:%d-:22: Could not set up host forwarding rule 'tcp:127.0.0.1:%d-:22'", port, port)
	}
	defer ssh.Close()
	qmpL, err := net.Listen("unix", qmpPath)
	if err != nil {
		die("-chardev %s: %v", qmpPath, err)
	}
	conL, err := net.Listen("unix", conPath)
	if err != nil {
		die("-chardev %s: %v", conPath, err)
	}
	defer conL.Close()
	con, err := os.OpenFile(conLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		die("%v", err)
	}
	if err := os.WriteFile(pidfile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		die("%v", err)
	}
	// Running: tell the parent, and let go of its stdio (a reader of the parent's stderr
	// waits for every writer to close it).
	fmt.Fprintln(ready, "ok")
	ready.Close()
	null, _ := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	for fd := 0; fd <= 2; fd++ {
		syscall.Dup2(int(null.Fd()), fd)
	}

	status := "running"
	if strings.Contains(mode, "kvm-pause") && accel == "kvm" {
		status = "internal-error"
	} else {
		fmt.Fprintf(con, "\x1b[2J\x1b[01;01HBdsDxe: starting Boot0001 (accel %s)\r\n[    0.000000] Linux version 6.1.0-fake\r\n", accel)
		// The first-boot data, as the guest's agent would read it over fw_cfg.
		fb, _ := os.ReadFile(fwcfg)
		var v struct{ InstanceID string }
		json.Unmarshal(fb, &v)
		fmt.Fprintf(con, "gild-agent: instance %s\r\nlogin: \r\n", v.InstanceID)
	}
	off := make(chan struct{})
	go func() {
		for {
			c, err := qmpL.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, `{"QMP": {"version": {}, "capabilities": []}}`)
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				var cmd struct{ Execute string }
				json.Unmarshal(sc.Bytes(), &cmd)
				switch cmd.Execute {
				case "query-status":
					fmt.Fprintf(c, `{"return": {"status": %q, "running": true}}`+"\n", status)
				case "system_powerdown":
					fmt.Fprintln(c, `{"timestamp": {}, "event": "POWERDOWN"}`)
					fmt.Fprintln(c, `{"return": {}}`)
					if !strings.Contains(mode, "ignore-powerdown") {
						go func() {
							time.Sleep(100 * time.Millisecond)
							close(off)
						}()
					}
				default:
					fmt.Fprintln(c, `{"return": {}}`)
				}
			}
			c.Close()
		}
	}()
	<-off
	fmt.Fprint(con, "reboot: Power down\r\n")
	// As QEMU does on a clean exit.
	os.Remove(pidfile)
	os.Remove(qmpPath)
	os.Remove(conPath)
}

// fakeFirmware writes stand-in OVMF files.
func fakeFirmware(t *testing.T) (code, vars string) {
	dir := t.TempDir()
	code, vars = filepath.Join(dir, "OVMF_CODE.fd"), filepath.Join(dir, "OVMF_VARS.fd")
	os.WriteFile(code, []byte("code"), 0o644)
	os.WriteFile(vars, []byte("vars"), 0o644)
	return code, vars
}
