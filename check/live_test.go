package check

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The tests in this file run checks against the machine running them: the kinds that read
// /proc, run programs or ask dpkg and systemd. Each skips only what this machine cannot do,
// and says why.

func evalLive(t *testing.T, js string) Result {
	t.Helper()
	c := mustParse(t, strings.Replace(js, "{", `{"name":"live",`, 1))
	return c.Evaluate(context.Background(), LiveEnv())
}

func wantStatus(t *testing.T, res Result, status Status, codes_ ...string) {
	t.Helper()
	if res.Status != status || !slices.Equal(codes(res.Reasons), append([]string{}, codes_...)) {
		t.Fatalf("got %s %v, want %s %v\nreasons: %+v\nexpected: %s\nactual:   %s", res.Status, codes(res.Reasons), status, codes_, res.Reasons, res.Expected, res.Actual)
	}
}

func TestLivePackage(t *testing.T) {
	if _, err := os.Stat(dpkgStatusPath); err != nil {
		t.Skipf("no dpkg database on this machine: %v", err)
	}
	out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "dpkg").Output()
	if err != nil {
		t.Skipf("dpkg-query cannot say dpkg's version: %v", err)
	}
	version := string(out)
	wantStatus(t, evalLive(t, fmt.Sprintf(`{"kind":"package","package":"dpkg","version":%q}`, version)), StatusCompliant)
	wantStatus(t, evalLive(t, fmt.Sprintf(`{"kind":"package","package":"dpkg","minVersion":"%s.1"}`, version)), StatusNonCompliant, CodePackageVersionTooOld)
	wantStatus(t, evalLive(t, `{"kind":"package","package":"gild-no-such-package","installed":false}`), StatusCompliant)
}

func TestLiveSysctl(t *testing.T) {
	if _, err := os.Stat("/proc/sys/kernel/ostype"); err != nil {
		t.Skipf("no /proc/sys here: %v", err)
	}
	wantStatus(t, evalLive(t, `{"kind":"sysctl","key":"kernel.ostype","value":"Linux"}`), StatusCompliant)
	wantStatus(t, evalLive(t, `{"kind":"sysctl","key":"kernel.ostype","value":"Plan9"}`), StatusNonCompliant, CodeSysctlValueMismatch)
}

func TestLivePort(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skipf("no /proc/net here: %v", err)
	}
	tcp, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := tcp.Addr().(*net.TCPAddr).Port
	wantStatus(t, evalLive(t, fmt.Sprintf(`{"kind":"port","port":%d,"address":"127.0.0.1"}`, port)), StatusCompliant)
	wantStatus(t, evalLive(t, fmt.Sprintf(`{"kind":"port","port":%d,"address":"0.0.0.0"}`, port)), StatusNonCompliant, CodePortNotListening)
	tcp.Close()
	wantStatus(t, evalLive(t, fmt.Sprintf(`{"kind":"port","port":%d,"listening":false}`, port)), StatusCompliant)

	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	uport := udp.LocalAddr().(*net.UDPAddr).Port
	wantStatus(t, evalLive(t, fmt.Sprintf(`{"kind":"port","port":%d,"protocol":"udp"}`, uport)), StatusCompliant)

	tcp6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Logf("no IPv6 loopback here (%v); the IPv6 parsing is covered by TestKinds", err)
		return
	}
	defer tcp6.Close()
	port6 := tcp6.Addr().(*net.TCPAddr).Port
	wantStatus(t, evalLive(t, fmt.Sprintf(`{"kind":"port","port":%d,"address":"::1"}`, port6)), StatusCompliant)
}

func TestLiveAccountsAndFiles(t *testing.T) {
	wantStatus(t, evalLive(t, `{"kind":"user","user":"root","uid":0}`), StatusCompliant)
	wantStatus(t, evalLive(t, `{"kind":"group","group":"root","gid":0}`), StatusCompliant)
	wantStatus(t, evalLive(t, `{"kind":"file","path":"/etc/passwd","owner":"root","group":"root","contains":"root:x:0:0:"}`), StatusCompliant)
}

func TestLiveCommand(t *testing.T) {
	requireShell(t)
	wantStatus(t, evalLive(t, `{"kind":"command","command":"echo hello; echo warn >&2","stdoutContains":"hello","stdoutMatches":"^hel+o$"}`), StatusCompliant)
	res := evalLive(t, `{"kind":"command","inline":["true","echo failing >&2; false","echo not reached"]}`)
	wantStatus(t, res, StatusNonCompliant, CodeCommandExitStatus)
	if !strings.Contains(res.Reasons[0].Phrase, `"failing"`) {
		t.Errorf("the phrase does not quote the script's stderr: %s", res.Reasons[0].Phrase)
	}
	wantStatus(t, evalLive(t, `{"kind":"command","command":"exit 3","exitStatus":3}`), StatusCompliant)
	wantStatus(t, evalLive(t, `{"kind":"command","command":"sleep 10","timeout":"200ms"}`), StatusError, CodeCommandTimeout)
}

// TestLiveService judges the enablement of every unit of this machine from files, and
// compares with what systemctl is-enabled says (it works without a running systemd).
func TestLiveService(t *testing.T) {
	systemctl, err := exec.LookPath("systemctl")
	if err != nil {
		t.Skip("no systemctl on this machine")
	}
	units, _ := filepath.Glob("/lib/systemd/system/*.service")
	timers, _ := filepath.Glob("/lib/systemd/system/*.timer")
	units = append(units, timers...)
	if len(units) == 0 {
		t.Skip("no unit files in /lib/systemd/system")
	}
	compared := 0
	for _, file := range units {
		unit := filepath.Base(file)
		if strings.Contains(unit, "@") {
			continue // templates have no enablement of their own
		}
		out, _ := exec.Command(systemctl, "is-enabled", unit).Output()
		want := strings.TrimSpace(string(out))
		switch want {
		case unitEnabled, unitDisabled, unitStatic, unitMasked:
		default:
			continue // alias, indirect, generated...: states gild does not judge
		}
		got, err := LiveEnv().unitState(unit)
		if err != nil {
			t.Errorf("%s: %v", unit, err)
			continue
		}
		if got != want {
			t.Errorf("%s: judged %s from its files, systemctl says %s", unit, got, want)
		}
		compared++
	}
	t.Logf("%d units judged as systemctl does", compared)

	res := evalLive(t, `{"kind":"service","unit":"gild-no-such-unit","active":true}`)
	if LiveEnv().systemdRunning() {
		wantStatus(t, res, StatusNonCompliant, CodeServiceNotActive)
	} else {
		wantStatus(t, res, StatusError, CodeSystemdNotRunning)
	}
}

func TestLiveKernelModule(t *testing.T) {
	data, err := os.ReadFile("/proc/modules")
	if err != nil {
		// A kernel built without loadable modules: nothing is loaded, and gild says why.
		res := evalLive(t, `{"kind":"kernelModule","module":"ext4","loaded":false}`)
		wantStatus(t, res, StatusCompliant)
		if !strings.Contains(res.Actual, "no /proc/modules") {
			t.Errorf("actual %q does not say why nothing is loaded", res.Actual)
		}
		return
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		t.Skip("/proc/modules is empty: no loaded module to look for")
	}
	wantStatus(t, evalLive(t, fmt.Sprintf(`{"kind":"kernelModule","module":%q,"loaded":true}`, f[0])), StatusCompliant)
}
