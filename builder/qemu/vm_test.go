package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gildhq/gild/builder"
)

// The test binary doubles as a fake qemu-system-x86_64 when GILD_FAKE_QEMU names a
// behaviour: "ok" boots, reports and powers off when asked; "hang" never gets ready;
// "kvm-pause" stops in internal-error under KVM as a nested PVM host does, and boots
// under TCG; "selfoff" reports ready and then powers itself off without a done line.
func TestMain(m *testing.M) {
	if mode := os.Getenv("GILD_FAKE_QEMU"); mode != "" {
		fakeQEMU(mode, os.Args[1:])
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func fakeQEMU(mode string, args []string) {
	var qmpPath, resPath, console, accel string
	for i := 0; i+1 < len(args); i++ {
		v := args[i+1]
		switch args[i] {
		case "-chardev":
			path := ""
			for _, kv := range strings.Split(v, ",") {
				if p, ok := strings.CutPrefix(kv, "path="); ok {
					path = p
				}
			}
			if strings.Contains(v, "id=qmp") {
				qmpPath = path
			} else if strings.Contains(v, "id=results") {
				resPath = path
			}
		case "-serial":
			console = strings.TrimPrefix(v, "file:")
		case "-accel":
			accel = v
		}
	}
	con, _ := os.Create(console)
	qmpL, err := net.Listen("unix", qmpPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	resL, err := net.Listen("unix", resPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "QEMU waiting for connection on: disconnected:unix:%s,server=on\n", resPath)
	res, _ := resL.Accept() // wait=on
	status := "running"
	if mode == "kvm-pause" && accel == "kvm" {
		status = "internal-error"
		fmt.Fprintln(os.Stderr, "KVM internal error. Suberror: 1")
	}
	powerdown := make(chan struct{})
	go func() {
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
				fmt.Fprintf(c, `{"event": "RTC_CHANGE", "data": {}}`+"\n"+`{"return": {"status": %q, "running": true}}`+"\n", status)
			case "system_powerdown":
				fmt.Fprintln(c, `{"return": {}}`)
				close(powerdown)
			default:
				fmt.Fprintln(c, `{"return": {}}`)
			}
		}
	}()
	fmt.Fprint(con, "\x1b[2J\x1b[01;01HBdsDxe: starting Boot0001\r\nWelcome to GRUB!\n")
	if status != "running" || mode == "hang" {
		select {} // paused, or stuck: only a kill ends this
	}
	time.Sleep(150 * time.Millisecond)
	fmt.Fprint(con, "[  OK  ] Reached target multi-user.target\n")
	fmt.Fprint(res, "GILD-READY\n{\"check\":\"kernel\",\"ok\":true}\n")
	if mode == "selfoff" {
		res.Close()
		os.Exit(0)
	}
	fmt.Fprint(res, "GILD-DONE\n")
	<-powerdown
	fmt.Fprint(con, "reboot: Power down")
	res.Close()
}

type fakeImg struct{ overlays []string }

func (f *fakeImg) CreateOverlay(_ context.Context, backing, overlay string) error {
	f.overlays = append(f.overlays, overlay)
	return os.WriteFile(overlay, []byte("overlay of "+backing), 0o644)
}
func (f *fakeImg) Convert(context.Context, string, string, string, bool) error { return nil }
func (f *fakeImg) Info(context.Context, string) (*ImageInfo, error)            { return nil, nil }

func fakeSystem(t *testing.T, mode string, facts HostFacts) (*System, *strings.Builder, BootSpec) {
	t.Setenv("GILD_FAKE_QEMU", mode)
	dir := t.TempDir()
	fw := Firmware{Code: filepath.Join(dir, "CODE.fd"), Vars: filepath.Join(dir, "VARS.fd")}
	os.WriteFile(fw.Code, []byte("code"), 0o644)
	os.WriteFile(fw.Vars, []byte("vars"), 0o644)
	image := filepath.Join(dir, "golden.qcow2")
	os.WriteFile(image, []byte("golden"), 0o644)
	var log strings.Builder
	exe, _ := os.Executable()
	s := &System{Runner: &builder.Runner{Sink: builder.WriterSink(&log)}, Img: &fakeImg{}, Path: exe, Firmware: &fw,
		Host: func() HostFacts { return facts }}
	work, err := os.MkdirTemp("", "gild-t-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	return s, &log, BootSpec{Image: image, WorkDir: work, Timeout: 20 * time.Second}
}

func TestBootReportsReadyResultsAndPowersOff(t *testing.T) {
	s, log, spec := fakeSystem(t, "ok", HostFacts{KVMPVM: true})
	res, err := s.Boot(context.Background(), spec)
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	if res.Accel.Name != "tcg" || res.BootTime <= 0 || res.BootTime > 10*time.Second || res.ReadySource != "results" || !res.PoweredOff {
		t.Errorf("result %+v", res)
	}
	if len(res.Results) != 1 || res.Results[0] != `{"check":"kernel","ok":true}` {
		t.Errorf("results %q", res.Results)
	}
	if len(res.Console) < 3 || res.Console[0] != "BdsDxe: starting Boot0001" || res.Console[len(res.Console)-1] != "reboot: Power down" {
		t.Errorf("console %q", res.Console)
	}
	for _, want := range []string{"accelerator tcg (kvm_pvm is loaded", "results: GILD-READY", "console: Welcome to GRUB!", "qemu: ready after", "powering it off", "qemu[stderr]: QEMU waiting"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	left, _ := os.ReadDir(spec.WorkDir)
	if len(left) != 1 || left[0].Name() != "console.log" {
		t.Errorf("work directory keeps %v; want only console.log", left)
	}
}

func TestBootKillsAVMThatNeverGetsReady(t *testing.T) {
	s, log, spec := fakeSystem(t, "hang", HostFacts{KVMPVM: true})
	spec.Timeout = time.Second
	start := time.Now()
	res, err := s.Boot(context.Background(), spec)
	if err == nil || !strings.Contains(err.Error(), "no GILD-READY within 1s") || !strings.Contains(err.Error(), "the console ends with:\n  BdsDxe: starting Boot0001\n  Welcome to GRUB!") {
		t.Fatalf("error %v should say what was missing and how the console ended", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	if res.BootTime != 0 || !strings.Contains(log.String(), "killing QEMU (pid ") {
		t.Errorf("result %+v\n%s", res, log)
	}
	assertNoProcess(t, log.String())
}

func TestBootCancelKillsByPID(t *testing.T) {
	s, log, spec := fakeSystem(t, "hang", HostFacts{KVMPVM: true})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := s.Boot(ctx, spec)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v should wrap the context's", err)
	}
	if n := strings.Count(log.String(), "killing QEMU"); n != 1 {
		t.Errorf("killed %d times, want once:\n%s", n, log)
	}
	assertNoProcess(t, log.String())
}

func TestBootFallsBackToTCGWhenKVMStops(t *testing.T) {
	s, log, spec := fakeSystem(t, "kvm-pause", HostFacts{CPUInfo: "flags : vmx\n"})
	res, err := s.Boot(context.Background(), spec)
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	if res.Accel.Name != "tcg" || !strings.Contains(res.Accel.Reason, "KVM failed: the VM stopped in state internal-error") {
		t.Errorf("accel %s", res.Accel)
	}
	for _, want := range []string{"accelerator kvm (", "falling back to TCG", "qemu[stderr]: KVM internal error"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if n := len(s.Img.(*fakeImg).overlays); n != 2 {
		t.Errorf("%d overlays; each attempt needs a fresh one", n)
	}
}

func TestBootWithoutDoneLineFails(t *testing.T) {
	s, log, spec := fakeSystem(t, "selfoff", HostFacts{KVMPVM: true})
	res, err := s.Boot(context.Background(), spec)
	if err == nil || !strings.Contains(err.Error(), "the guest stopped before GILD-DONE") {
		t.Fatalf("error %v\n%s", err, log)
	}
	if res.BootTime == 0 || len(res.Results) != 1 {
		t.Errorf("what was reported before should still be there: %+v", res)
	}
}

// assertNoProcess checks that the killed QEMU is gone, by the PID the log names.
func assertNoProcess(t *testing.T, log string) {
	t.Helper()
	i := strings.Index(log, "killing QEMU (pid ")
	if i < 0 {
		t.Fatalf("no kill in the log:\n%s", log)
	}
	var pid int
	fmt.Sscanf(log[i+len("killing QEMU (pid "):], "%d", &pid)
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("QEMU %d is still running", pid)
	}
}
