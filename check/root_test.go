package check

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeRoot is a system's files under a temporary directory.
type fakeRoot struct {
	t   testing.TB
	dir string
}

func newRoot(t testing.TB) *fakeRoot {
	t.Helper()
	return &fakeRoot{t: t, dir: t.TempDir()}
}

// file writes the root's file p with mode 0644.
func (r *fakeRoot) file(p, contents string) { r.fileMode(p, contents, 0o644) }

func (r *fakeRoot) fileMode(p, contents string, mode fs.FileMode) {
	r.t.Helper()
	hp := filepath.Join(r.dir, p)
	if err := os.MkdirAll(filepath.Dir(hp), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(hp, []byte(contents), mode); err != nil {
		r.t.Fatal(err)
	}
	// WriteFile's mode is filtered by the umask, and Go spells setuid differently.
	if err := os.Chmod(hp, fileMode(uint32(mode))); err != nil {
		r.t.Fatal(err)
	}
}

func (r *fakeRoot) mkdir(p string) {
	r.t.Helper()
	if err := os.MkdirAll(filepath.Join(r.dir, p), 0o755); err != nil {
		r.t.Fatal(err)
	}
}

// link makes the root's p a symbolic link to target, written as given (absolute targets
// mean the root's paths).
func (r *fakeRoot) link(p, target string) {
	r.t.Helper()
	hp := filepath.Join(r.dir, p)
	if err := os.MkdirAll(filepath.Dir(hp), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Symlink(target, hp); err != nil {
		r.t.Fatal(err)
	}
}

func (r *fakeRoot) read(p string) string {
	r.t.Helper()
	data, err := os.ReadFile(filepath.Join(r.dir, p))
	if err != nil {
		r.t.Fatal(err)
	}
	return string(data)
}

func (r *fakeRoot) offline() Env { return OfflineEnv(r.dir) }

// live claims the fake root is a running system, its /proc files standing for the
// kernel's, with runner answering for programs.
func (r *fakeRoot) live(runner Runner) Env { return Env{Root: r.dir, Live: true, Runner: runner} }

// meName is the name the fake /etc/passwd gives the user running the tests, so that files
// the test creates have a known owner whatever user runs them.
const meName = "me"

// standard fills a root with what most kind tests need: accounts, a dpkg database, units,
// /proc files and modprobe configuration.
func (r *fakeRoot) standard() *fakeRoot {
	uid, gid := os.Getuid(), os.Getgid()
	r.file("/etc/passwd", strings.Join([]string{
		"root:x:0:0:root:/root:/bin/bash",
		"daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin",
		"alice:x:1000:1000:Alice:/home/alice:/bin/bash",
		"bob:x:1001:1001::/home/bob:/bin/sh",
		"carol::1002:1002::/home/carol:/bin/sh",
		"dave:x:1003:1003::/home/dave:/bin/sh",
		fmt.Sprintf("%s:x:%d:%d::/home/me:/bin/sh", meName, uid, gid),
		"+nisuser::::::",
		"",
	}, "\n"))
	r.fileMode("/etc/shadow", strings.Join([]string{
		"root:!:19000:0:99999:7:::",
		"daemon:*:19000:0:99999:7:::",
		"alice:$6$salt$hash:19000:0:99999:7:::",
		"bob::19000:0:99999:7:::",
		"me:!:19000:0:99999:7:::",
		"",
	}, "\n"), 0o640)
	r.file("/etc/group", strings.Join([]string{
		"root:x:0:",
		"daemon:x:1:",
		"sudo:x:27:alice,bob",
		"adm:x:4:",
		fmt.Sprintf("%s:x:%d:", meName, gid),
		"",
	}, "\n"))
	r.file("/var/lib/dpkg/status", strings.Join([]string{
		"Package: openssh-server",
		"Status: install ok installed",
		"Architecture: amd64",
		"Version: 1:9.2p1-2+deb12u3",
		"Description: secure shell (SSH) server",
		" continuation: not a field",
		"",
		"Package: telnet",
		"Status: deinstall ok config-files",
		"Architecture: amd64",
		"Version: 0.17+2.4-2",
		"",
		"Package: libc6",
		"Status: install ok not-installed",
		"Architecture: i386",
		"",
		"Package: libc6",
		"Status: install ok installed",
		"Architecture: amd64",
		"Version: 2.36-9+deb12u4",
		"",
	}, "\n"))
	unit := "[Unit]\nDescription=%s\n\n[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n"
	r.file("/lib/systemd/system/ssh.service", fmt.Sprintf(unit, "ssh"))
	r.link("/etc/systemd/system/multi-user.target.wants/ssh.service", "/lib/systemd/system/ssh.service")
	r.file("/lib/systemd/system/cron.service", fmt.Sprintf(unit, "cron"))
	r.file("/lib/systemd/system/systemd-journald.service", "[Unit]\nDescription=Journal\n[Service]\nExecStart=/lib/systemd/systemd-journald\n")
	r.file("/lib/systemd/system/telnet.service", fmt.Sprintf(unit, "telnet"))
	r.link("/etc/systemd/system/telnet.service", "/dev/null")
	r.file("/lib/systemd/system/getty@.service", "[Service]\nExecStart=/sbin/agetty %I\n[Install]\nWantedBy=getty.target\n")
	r.link("/etc/systemd/system/getty.target.wants/getty@tty1.service", "/lib/systemd/system/getty@.service")
	r.mkdir("/run/systemd/system")
	r.file("/proc/sys/net/ipv4/ip_forward", "0\n")
	r.file("/proc/sys/net/ipv4/tcp_rmem", "4096\t131072\t6291456\n")
	r.file("/proc/sys/net/ipv4/conf/eth0.100/forwarding", "1\n")
	r.file("/proc/modules", "ext4 1036288 1 - Live 0x0000000000000000\nvfat 24576 0 - Live 0x0000000000000000\n")
	header := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	r.file("/proc/net/tcp", header+
		"   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n"+
		"   1: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0\n"+
		"   2: 0500000A:9C40 0600000A:0016 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0\n")
	r.file("/proc/net/tcp6", header+
		"   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1 0 100 0 0 10 0\n"+
		"   1: 0000000000000000FFFF00000100007F:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5 1 0 100 0 0 10 0\n")
	r.file("/proc/net/udp", header+
		"   0: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 6 2 0\n"+
		"   1: 0500000A:A000 0800080A:0035 01 00000000:00000000 00:00000000 00000000     0        0 7 2 0\n")
	r.file("/etc/modprobe.d/cis.conf", "# CIS 1.1.1.1\ninstall cramfs /bin/false\nblacklist cramfs\ninstall udf \\\n  /bin/true\n")
	r.file("/lib/modprobe.d/usb.conf", "blacklist usb-storage\n")
	r.file("/lib/modprobe.d/floppy.conf", "blacklist floppy\n")
	r.file("/etc/modprobe.d/floppy.conf", "# the administrator allows floppies\n")
	r.file("/etc/modprobe.d/notes.txt", "blacklist dccp\n")
	return r
}

// fakeRunner answers for programs from a table keyed by the command line, and records
// what ran.
type fakeRunner struct {
	mu      sync.Mutex
	answers map[string]Output
	calls   []string
	// onRun, when set, is called for every run before the answer is looked up, so a test
	// can make a command change the fake system.
	onRun func(cmdline string)
}

func (f *fakeRunner) Run(_ context.Context, name string, args ...string) (Output, error) {
	cmdline := strings.Join(append([]string{name}, args...), " ")
	f.mu.Lock()
	f.calls = append(f.calls, cmdline)
	onRun := f.onRun
	f.mu.Unlock()
	if onRun != nil {
		onRun(cmdline)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out, ok := f.answers[cmdline]
	if !ok {
		return Output{}, fmt.Errorf("fake runner: no answer for %q", cmdline)
	}
	return out, nil
}

// mustParse parses one check written as JSON.
func mustParse(t *testing.T, js string) Check {
	t.Helper()
	set, err := Parse([]byte("[" + js + "]"))
	if err != nil {
		t.Fatalf("parse %s:\n%v", js, err)
	}
	return set.Checks()[0]
}

func codes(rs []Reason) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.Code)
	}
	return out
}
