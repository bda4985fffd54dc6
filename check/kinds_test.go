package check

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestKinds evaluates every kind against a fake root: each case is a check, the state it
// meets and the status and reason codes it must give.
func TestKinds(t *testing.T) {
	isActive := &fakeRunner{answers: map[string]Output{
		"systemctl is-active ssh.service":    {Stdout: []byte("active\n")},
		"systemctl is-active cron.service":   {Stdout: []byte("inactive\n"), ExitStatus: 3},
		"systemctl is-active telnet.service": {Stdout: []byte("failed\n"), ExitStatus: 3},
	}}
	cases := []struct {
		name   string
		setup  func(r *fakeRoot)
		check  string
		live   bool
		runner Runner
		status Status
		codes  []string
		phrase string // a substring of the first reason's phrase
		actual string // a substring of the result's actual
	}{
		// file
		{name: "file exists", check: `{"kind":"file","path":"/etc/passwd"}`, status: StatusCompliant},
		{name: "file missing", check: `{"kind":"file","path":"/etc/motd"}`, status: StatusNonCompliant, codes: []string{CodeFileMissing}, phrase: "/etc/motd does not exist"},
		{name: "file absent as expected", check: `{"kind":"file","path":"/etc/hosts.equiv","exists":false}`, status: StatusCompliant},
		{name: "file present but must not be", check: `{"kind":"file","path":"/etc/passwd","exists":false}`, status: StatusNonCompliant, codes: []string{CodeFilePresent}},
		{name: "mode exact", setup: func(r *fakeRoot) { r.fileMode("/etc/issue", "hi", 0o640) }, check: `{"kind":"file","path":"/etc/issue","mode":"0640"}`, status: StatusCompliant},
		{name: "mode mismatch", setup: func(r *fakeRoot) { r.fileMode("/etc/issue", "hi", 0o666) }, check: `{"kind":"file","path":"/etc/issue","mode":"0644"}`,
			status: StatusNonCompliant, codes: []string{CodeFileModeMismatch}, phrase: "has mode 0666; expected 0644"},
		{name: "mode stricter than maxMode", setup: func(r *fakeRoot) { r.fileMode("/etc/issue", "hi", 0o600) }, check: `{"kind":"file","path":"/etc/issue","maxMode":"0644"}`, status: StatusCompliant},
		{name: "mode beyond maxMode", setup: func(r *fakeRoot) { r.fileMode("/etc/issue", "hi", 0o664) }, check: `{"kind":"file","path":"/etc/issue","maxMode":"0644"}`,
			status: StatusNonCompliant, codes: []string{CodeFileModeTooPermissive}, phrase: "extra bits 0020"},
		{name: "setuid counts in the mode", setup: func(r *fakeRoot) { r.fileMode("/usr/bin/su", "x", 0o4755) }, check: `{"kind":"file","path":"/usr/bin/su","maxMode":"0755"}`,
			status: StatusNonCompliant, codes: []string{CodeFileModeTooPermissive}, phrase: "has mode 4755"},
		{name: "owner and group by the root's names", setup: func(r *fakeRoot) { r.file("/etc/issue", "hi") }, check: `{"kind":"file","path":"/etc/issue","owner":"me","group":"me"}`, status: StatusCompliant},
		{name: "owner and group mismatch", setup: func(r *fakeRoot) { r.file("/etc/issue", "hi") }, check: `{"kind":"file","path":"/etc/issue","owner":"daemon","group":"adm"}`,
			status: StatusNonCompliant, codes: []string{CodeFileOwnerMismatch, CodeFileGroupMismatch}, phrase: "expected daemon"},
		{name: "owner unknown to the root", setup: func(r *fakeRoot) { r.file("/etc/issue", "hi") }, check: `{"kind":"file","path":"/etc/issue","owner":"mallory"}`,
			status: StatusError, codes: []string{CodeUnknownUser}},
		{name: "contents equal", setup: func(r *fakeRoot) { r.file("/etc/issue", "Authorized use only\n") }, check: `{"kind":"file","path":"/etc/issue","contents":"Authorized use only\n"}`, status: StatusCompliant},
		{name: "contents differ", setup: func(r *fakeRoot) { r.file("/etc/issue", "Debian\nWelcome\n") }, check: `{"kind":"file","path":"/etc/issue","contents":"Debian\nAuthorized use only\n"}`,
			status: StatusNonCompliant, codes: []string{CodeFileContentsMismatch}, phrase: `line 2 is "Welcome\n", expected "Authorized use only\n"`},
		{name: "empty contents expected", setup: func(r *fakeRoot) { r.file("/etc/securetty", "tty1\n") }, check: `{"kind":"file","path":"/etc/securetty","contents":""}`,
			status: StatusNonCompliant, codes: []string{CodeFileContentsMismatch}},
		{name: "contains and matches", setup: func(r *fakeRoot) { r.file("/etc/login.defs", "PASS_MAX_DAYS 90\nUMASK 027\n") },
			check: `{"kind":"file","path":"/etc/login.defs","contains":"UMASK 027","matches":"(?m)^PASS_MAX_DAYS\\s+([1-8]?[0-9]|90)$"}`, status: StatusCompliant},
		{name: "contains and matches fail", setup: func(r *fakeRoot) { r.file("/etc/login.defs", "PASS_MAX_DAYS 99999\n") },
			check:  `{"kind":"file","path":"/etc/login.defs","contains":"UMASK 027","matches":"(?m)^PASS_MAX_DAYS\\s+([1-8]?[0-9]|90)$"}`,
			status: StatusNonCompliant, codes: []string{CodeFileContentsMissingText, CodeFileContentsNoMatch}},
		{name: "contents of a directory", check: `{"kind":"file","path":"/etc","contains":"x"}`, status: StatusNonCompliant, codes: []string{CodeFileNotRegular}},
		{name: "absolute symlink resolved inside the root", setup: func(r *fakeRoot) {
			r.file("/usr/share/zoneinfo/UTC", "TZif")
			r.link("/etc/localtime", "/usr/share/zoneinfo/UTC")
		}, check: `{"kind":"file","path":"/etc/localtime","contents":"TZif"}`, status: StatusCompliant},
		{name: "unreadable file is an error", setup: func(r *fakeRoot) { r.link("/etc/loop", "/etc/loop") }, check: `{"kind":"file","path":"/etc/loop"}`,
			status: StatusError, codes: []string{CodeReadError}},

		// lineInFile
		{name: "line present", setup: sshdConfig, check: `{"kind":"lineInFile","path":"/etc/ssh/sshd_config","line":"X11Forwarding no"}`, status: StatusCompliant},
		{name: "line missing", setup: sshdConfig, check: `{"kind":"lineInFile","path":"/etc/ssh/sshd_config","line":"MaxAuthTries 4"}`,
			status: StatusNonCompliant, codes: []string{CodeLineMissing}},
		{name: "line with a conflicting match", setup: sshdConfig, check: `{"kind":"lineInFile","path":"/etc/ssh/sshd_config","line":"PermitRootLogin no","matches":"^\\s*PermitRootLogin\\b"}`,
			status: StatusNonCompliant, codes: []string{CodeLineMismatch}, phrase: `Line 3 of /etc/ssh/sshd_config is "PermitRootLogin yes"`},
		{name: "pattern matched", setup: sshdConfig, check: `{"kind":"lineInFile","path":"/etc/ssh/sshd_config","matches":"^Protocol [0-9]"}`, status: StatusCompliant},
		{name: "line absent as expected", setup: sshdConfig, check: `{"kind":"lineInFile","path":"/etc/ssh/sshd_config","line":"PermitEmptyPasswords yes","present":false}`, status: StatusCompliant},
		{name: "line present but must not be", setup: sshdConfig, check: `{"kind":"lineInFile","path":"/etc/ssh/sshd_config","matches":"^PermitRootLogin yes","present":false}`,
			status: StatusNonCompliant, codes: []string{CodeLinePresent}},
		{name: "line in a missing file", check: `{"kind":"lineInFile","path":"/etc/ssh/sshd_config","line":"X11Forwarding no"}`,
			status: StatusNonCompliant, codes: []string{CodeFileMissing}},
		{name: "no line in a missing file", check: `{"kind":"lineInFile","path":"/etc/ssh/sshd_config","line":"X11Forwarding yes","present":false}`, status: StatusCompliant},

		// package
		{name: "package installed", check: `{"kind":"package","package":"openssh-server"}`, status: StatusCompliant, actual: "1:9.2p1-2+deb12u3"},
		{name: "package at least", check: `{"kind":"package","package":"openssh-server","minVersion":"1:9.2p1-2"}`, status: StatusCompliant},
		{name: "package too old", check: `{"kind":"package","package":"openssh-server","minVersion":"1:9.2p1-2+deb12u10"}`,
			status: StatusNonCompliant, codes: []string{CodePackageVersionTooOld}, phrase: "older than the minimum 1:9.2p1-2+deb12u10"},
		{name: "package exact version", check: `{"kind":"package","package":"openssh-server","version":"1:9.2p1-2+deb12u3"}`, status: StatusCompliant},
		{name: "package other version", check: `{"kind":"package","package":"openssh-server","version":"9.2p1-2+deb12u3"}`,
			status: StatusNonCompliant, codes: []string{CodePackageVersionMismatch}},
		{name: "package with config files only", check: `{"kind":"package","package":"telnet"}`,
			status: StatusNonCompliant, codes: []string{CodePackageNotInstalled}, phrase: "(config-files)"},
		{name: "package unknown", check: `{"kind":"package","package":"nginx"}`, status: StatusNonCompliant, codes: []string{CodePackageNotInstalled}},
		{name: "package absent as expected", check: `{"kind":"package","package":"telnet","installed":false}`, status: StatusCompliant},
		{name: "package installed but must not be", check: `{"kind":"package","package":"openssh-server","installed":false}`,
			status: StatusNonCompliant, codes: []string{CodePackageInstalled}},
		{name: "package of two architectures", check: `{"kind":"package","package":"libc6","minVersion":"2.36"}`, status: StatusCompliant},
		{name: "no dpkg database", setup: func(r *fakeRoot) { r.file("/var/lib/dpkg/status", "") }, check: `{"kind":"package","package":"openssh-server"}`,
			status: StatusNonCompliant, codes: []string{CodePackageNotInstalled}},

		// service enablement, offline
		{name: "service enabled", check: `{"kind":"service","unit":"ssh","enabled":true}`, status: StatusCompliant},
		{name: "service disabled", check: `{"kind":"service","unit":"cron.service","enabled":true}`, status: StatusNonCompliant, codes: []string{CodeServiceNotEnabled}},
		{name: "service not enabled as expected", check: `{"kind":"service","unit":"cron","enabled":false}`, status: StatusCompliant},
		{name: "service enabled but must not be", check: `{"kind":"service","unit":"ssh","enabled":false}`, status: StatusNonCompliant, codes: []string{CodeServiceEnabled}},
		{name: "service masked", check: `{"kind":"service","unit":"telnet","masked":true,"enabled":false}`, status: StatusCompliant},
		{name: "masked service is not enabled", check: `{"kind":"service","unit":"telnet","enabled":true}`, status: StatusNonCompliant, codes: []string{CodeServiceMasked}},
		{name: "service not masked", check: `{"kind":"service","unit":"cron","masked":true}`, status: StatusNonCompliant, codes: []string{CodeServiceNotMasked}},
		{name: "static service counts as enabled", check: `{"kind":"service","unit":"systemd-journald","enabled":true}`, status: StatusCompliant},
		{name: "static service cannot be disabled", check: `{"kind":"service","unit":"systemd-journald","enabled":false}`, status: StatusNonCompliant, codes: []string{CodeServiceStatic}},
		{name: "template instance enabled", check: `{"kind":"service","unit":"getty@tty1.service","enabled":true}`, status: StatusCompliant},
		{name: "template instance not enabled", check: `{"kind":"service","unit":"getty@tty2.service","enabled":true}`, status: StatusNonCompliant, codes: []string{CodeServiceNotEnabled}},
		{name: "unit without a file", check: `{"kind":"service","unit":"nginx","enabled":true}`, status: StatusNonCompliant, codes: []string{CodeServiceNotFound}},
		{name: "unit without a file is not enabled", check: `{"kind":"service","unit":"nginx","enabled":false}`, status: StatusCompliant},
		{name: "active on an offline root", check: `{"kind":"service","unit":"ssh","active":true}`, status: StatusError, codes: []string{CodeNotLive}, phrase: "is offline"},

		// service activity, live, with systemd answering through the runner
		{name: "service active", check: `{"kind":"service","unit":"ssh","enabled":true,"active":true}`, live: true, runner: isActive, status: StatusCompliant},
		{name: "service inactive", check: `{"kind":"service","unit":"cron","active":true}`, live: true, runner: isActive,
			status: StatusNonCompliant, codes: []string{CodeServiceNotActive}, phrase: "cron.service is inactive"},
		{name: "failed service is not active", check: `{"kind":"service","unit":"telnet","active":false}`, live: true, runner: isActive, status: StatusCompliant},
		{name: "service active but must not be", check: `{"kind":"service","unit":"ssh","active":false}`, live: true, runner: isActive, status: StatusNonCompliant, codes: []string{CodeServiceActive}},
		{name: "systemd not running", setup: func(r *fakeRoot) { removeAll(r, "/run/systemd") }, check: `{"kind":"service","unit":"ssh","active":true}`, live: true, runner: isActive,
			status: StatusError, codes: []string{CodeSystemdNotRunning}},
		{name: "systemctl fails", check: `{"kind":"service","unit":"dbus","active":true}`, live: true, runner: isActive, status: StatusError, codes: []string{CodeServiceQueryFailed}},

		// sysctl
		{name: "sysctl equal", check: `{"kind":"sysctl","key":"net.ipv4.ip_forward","value":0}`, live: true, status: StatusCompliant},
		{name: "sysctl differs", check: `{"kind":"sysctl","key":"net.ipv4.ip_forward","value":"1"}`, live: true,
			status: StatusNonCompliant, codes: []string{CodeSysctlValueMismatch}, phrase: `is "0"; expected "1"`},
		{name: "sysctl whitespace normalised", check: `{"kind":"sysctl","key":"net.ipv4.tcp_rmem","value":"4096  131072 6291456"}`, live: true, status: StatusCompliant},
		{name: "sysctl key with slashes", check: `{"kind":"sysctl","key":"net/ipv4/conf/eth0.100/forwarding","value":1}`, live: true, status: StatusCompliant},
		{name: "sysctl the kernel lacks", check: `{"kind":"sysctl","key":"net.ipv4.nonesuch","value":1}`, live: true, status: StatusNonCompliant, codes: []string{CodeSysctlNotFound}},
		{name: "sysctl on an offline root", check: `{"kind":"sysctl","key":"net.ipv4.ip_forward","value":0}`, status: StatusError, codes: []string{CodeNotLive}},

		// user
		{name: "user exists", check: `{"kind":"user","user":"alice","uid":1000,"shell":"/bin/bash","home":"/home/alice"}`, status: StatusCompliant},
		{name: "user differs", check: `{"kind":"user","user":"alice","uid":1001,"shell":"/usr/sbin/nologin","home":"/srv/alice"}`,
			status: StatusNonCompliant, codes: []string{CodeUserUidMismatch, CodeUserShellMismatch, CodeUserHomeMismatch}},
		{name: "user missing", check: `{"kind":"user","user":"zoe"}`, status: StatusNonCompliant, codes: []string{CodeUserMissing}},
		{name: "user absent as expected", check: `{"kind":"user","user":"games","exists":false}`, status: StatusCompliant},
		{name: "user present but must not be", check: `{"kind":"user","user":"bob","exists":false}`, status: StatusNonCompliant, codes: []string{CodeUserPresent}},
		{name: "password locked", check: `{"kind":"user","user":"root","passwordLocked":true}`, status: StatusCompliant},
		{name: "star in shadow is locked", check: `{"kind":"user","user":"daemon","passwordLocked":true}`, status: StatusCompliant},
		{name: "password not locked", check: `{"kind":"user","user":"alice","passwordLocked":true}`, status: StatusNonCompliant, codes: []string{CodePasswordNotLocked}},
		{name: "password locked but must not be", check: `{"kind":"user","user":"root","passwordLocked":false}`, status: StatusNonCompliant, codes: []string{CodePasswordLocked}},
		{name: "empty password in shadow", check: `{"kind":"user","user":"bob","passwordEmpty":false}`, status: StatusNonCompliant, codes: []string{CodePasswordEmpty}},
		{name: "empty password in passwd", check: `{"kind":"user","user":"carol","passwordEmpty":false}`, status: StatusNonCompliant, codes: []string{CodePasswordEmpty}},
		{name: "password not empty", check: `{"kind":"user","user":"alice","passwordEmpty":false}`, status: StatusCompliant},
		{name: "no shadow line", check: `{"kind":"user","user":"dave","passwordLocked":true}`, status: StatusError, codes: []string{CodeShadowEntryMissing}},
		{name: "every account has a password", check: `{"kind":"user","user":"*","passwordEmpty":false}`,
			status: StatusNonCompliant, codes: []string{CodePasswordEmpty, CodePasswordEmpty}, actual: "empty: bob, carol"},
		{name: "no /etc/passwd", setup: func(r *fakeRoot) { removeAll(r, "/etc/passwd") }, check: `{"kind":"user","user":"root"}`, status: StatusError, codes: []string{CodeReadError}},

		// group
		{name: "group with members", check: `{"kind":"group","group":"sudo","gid":27,"members":["bob","alice"]}`, status: StatusCompliant},
		{name: "group members differ", check: `{"kind":"group","group":"sudo","members":["alice"]}`, status: StatusNonCompliant, codes: []string{CodeGroupMembersMismatch}, phrase: "has members alice, bob; expected exactly alice"},
		{name: "group with no members", check: `{"kind":"group","group":"adm","members":[]}`, status: StatusCompliant},
		{name: "group members to include and exclude", check: `{"kind":"group","group":"sudo","membersToInclude":["alice","dave"],"membersToExclude":["bob","carol"]}`,
			status: StatusNonCompliant, codes: []string{CodeGroupMemberMissing, CodeGroupMemberUnexpected}},
		{name: "group gid differs", check: `{"kind":"group","group":"sudo","gid":28}`, status: StatusNonCompliant, codes: []string{CodeGroupGidMismatch}},
		{name: "group missing", check: `{"kind":"group","group":"wheel"}`, status: StatusNonCompliant, codes: []string{CodeGroupMissing}},
		{name: "group present but must not be", check: `{"kind":"group","group":"adm","exists":false}`, status: StatusNonCompliant, codes: []string{CodeGroupPresent}},

		// port
		{name: "tcp port on the IPv4 wildcard", check: `{"kind":"port","port":22}`, live: true, status: StatusCompliant, actual: "0.0.0.0:22"},
		{name: "tcp port on an address", check: `{"kind":"port","port":5432,"address":"127.0.0.1"}`, live: true, status: StatusCompliant},
		{name: "tcp port on another address", check: `{"kind":"port","port":5432,"address":"0.0.0.0"}`, live: true, status: StatusNonCompliant, codes: []string{CodePortNotListening}},
		{name: "tcp port on the IPv6 wildcard", check: `{"kind":"port","port":80,"address":"::"}`, live: true, status: StatusCompliant},
		{name: "IPv4-mapped address", check: `{"kind":"port","port":8080,"address":"127.0.0.1"}`, live: true, status: StatusCompliant},
		{name: "an established connection is not listening", check: `{"kind":"port","port":40000}`, live: true, status: StatusNonCompliant, codes: []string{CodePortNotListening}},
		{name: "port not listening as expected", check: `{"kind":"port","port":23,"listening":false}`, live: true, status: StatusCompliant},
		{name: "port listening but must not be", check: `{"kind":"port","port":22,"listening":false}`, live: true, status: StatusNonCompliant, codes: []string{CodePortListening}},
		{name: "udp port", check: `{"kind":"port","port":68,"protocol":"udp"}`, live: true, status: StatusCompliant},
		{name: "connected udp socket", check: `{"kind":"port","port":40960,"protocol":"udp"}`, live: true, status: StatusNonCompliant, codes: []string{CodePortNotListening}},
		{name: "no IPv6 sockets file", setup: func(r *fakeRoot) { removeAll(r, "/proc/net/tcp6") }, check: `{"kind":"port","port":22}`, live: true, status: StatusCompliant},
		{name: "no sockets files", setup: func(r *fakeRoot) { removeAll(r, "/proc/net") }, check: `{"kind":"port","port":22}`, live: true, status: StatusError, codes: []string{CodeReadError}},
		{name: "port on an offline root", check: `{"kind":"port","port":22}`, status: StatusError, codes: []string{CodeNotLive}},

		// kernelModule
		{name: "module loaded", check: `{"kind":"kernelModule","module":"ext4","loaded":true}`, live: true, status: StatusCompliant},
		{name: "module not loaded", check: `{"kind":"kernelModule","module":"cramfs","loaded":true}`, live: true, status: StatusNonCompliant, codes: []string{CodeModuleNotLoaded}},
		{name: "module loaded but must not be", check: `{"kind":"kernelModule","module":"vfat","loaded":false}`, live: true, status: StatusNonCompliant, codes: []string{CodeModuleLoaded}},
		{name: "kernel without modules", setup: func(r *fakeRoot) { removeAll(r, "/proc/modules") }, check: `{"kind":"kernelModule","module":"vfat","loaded":false}`, live: true,
			status: StatusCompliant, actual: "no /proc/modules"},
		{name: "module blacklisted, offline", check: `{"kind":"kernelModule","module":"cramfs","blacklisted":true}`, status: StatusCompliant, actual: `"install cramfs /bin/false" in /etc/modprobe.d/cis.conf`},
		{name: "module disabled by a continued install line", check: `{"kind":"kernelModule","module":"udf","blacklisted":true}`, status: StatusCompliant},
		{name: "module name with a hyphen", check: `{"kind":"kernelModule","module":"usb_storage","blacklisted":true}`, status: StatusCompliant},
		{name: "module blacklist hidden by /etc", check: `{"kind":"kernelModule","module":"floppy","blacklisted":true}`, status: StatusNonCompliant, codes: []string{CodeModuleNotBlacklisted}},
		{name: "only .conf files count", check: `{"kind":"kernelModule","module":"dccp","blacklisted":true}`, status: StatusNonCompliant, codes: []string{CodeModuleNotBlacklisted}},
		{name: "module blacklisted but must not be", check: `{"kind":"kernelModule","module":"cramfs","blacklisted":false}`, status: StatusNonCompliant, codes: []string{CodeModuleBlacklisted}},
		{name: "module loaded on an offline root", check: `{"kind":"kernelModule","module":"ext4","loaded":true}`, status: StatusError, codes: []string{CodeNotLive}},

		// command (through the runner; real commands are in TestLive)
		{name: "command on an offline root", check: `{"kind":"command","command":"true"}`, status: StatusError, codes: []string{CodeNotLive}},
		{name: "command succeeds", check: `{"kind":"command","command":"check-it","stdoutContains":"ok","stdoutMatches":"^o"}`, live: true,
			runner: &fakeRunner{answers: map[string]Output{"/bin/sh -c check-it": {Stdout: []byte("ok\n")}}}, status: StatusCompliant},
		{name: "command fails", check: `{"kind":"command","command":"check-it","stdoutContains":"ok","stdoutMatches":"^o"}`, live: true,
			runner: &fakeRunner{answers: map[string]Output{"/bin/sh -c check-it": {Stdout: []byte("no\n"), Stderr: []byte("it broke"), ExitStatus: 2}}},
			status: StatusNonCompliant, codes: []string{CodeCommandExitStatus, CodeCommandStdoutMissingText, CodeCommandStdoutNoMatch}, phrase: `exited with status 2; expected exit status 0. Its stderr ends: "it broke"`},
		{name: "command with an expected exit status", check: `{"kind":"command","command":"check-it","exitStatus":2}`, live: true,
			runner: &fakeRunner{answers: map[string]Output{"/bin/sh -c check-it": {ExitStatus: 2}}}, status: StatusCompliant},
		{name: "inline lines run as one script with -e", check: `{"kind":"command","inline":["a","b"]}`, live: true,
			runner: &fakeRunner{answers: map[string]Output{"/bin/sh -e -c a\nb": {}}}, status: StatusCompliant},
		{name: "command cannot start", check: `{"kind":"command","command":"check-it"}`, live: true, runner: &fakeRunner{}, status: StatusError, codes: []string{CodeCommandFailedToStart}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRoot(t).standard()
			if tc.setup != nil {
				tc.setup(r)
			}
			env := r.offline()
			if tc.live {
				env = r.live(tc.runner)
			}
			c := mustParse(t, strings.Replace(tc.check, "{", `{"name":"t",`, 1))
			res := c.Evaluate(context.Background(), env)
			if res.Status != tc.status || !slices.Equal(codes(res.Reasons), append([]string{}, tc.codes...)) {
				t.Fatalf("got %s %v, want %s %v\nreasons: %+v\nexpected: %s\nactual:   %s", res.Status, codes(res.Reasons), tc.status, tc.codes, res.Reasons, res.Expected, res.Actual)
			}
			if tc.phrase != "" && !strings.Contains(res.Reasons[0].Phrase, tc.phrase) {
				t.Errorf("phrase %q does not contain %q", res.Reasons[0].Phrase, tc.phrase)
			}
			if tc.actual != "" && !strings.Contains(res.Actual, tc.actual) {
				t.Errorf("actual %q does not contain %q", res.Actual, tc.actual)
			}
			if res.Name != "t" || res.Kind != c.Kind || res.Expected == "" || res.Actual == "" {
				t.Errorf("result lacks its identity or values: %+v", res)
			}
			if len(strings.Split(res.Expected, "; ")) != len(strings.Split(res.Actual, "; ")) {
				t.Errorf("expected and actual do not pair up:\nexpected: %s\nactual:   %s", res.Expected, res.Actual)
			}
		})
	}
}

func sshdConfig(r *fakeRoot) {
	r.file("/etc/ssh/sshd_config", "# managed\nProtocol 2\nPermitRootLogin yes\nX11Forwarding no\n")
}

func removeAll(r *fakeRoot, p string) {
	r.t.Helper()
	if err := os.RemoveAll(filepath.Join(r.dir, p)); err != nil {
		r.t.Fatal(err)
	}
}

// TestEvaluateCanceled: a check that starts after its context ended says so.
func TestEvaluateCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c := mustParse(t, `{"name":"t","kind":"file","path":"/etc/passwd"}`)
	res := c.Evaluate(ctx, newRoot(t).standard().offline())
	if res.Status != StatusError || !slices.Equal(codes(res.Reasons), []string{CodeCanceled}) {
		t.Fatalf("got %+v", res)
	}
}

// TestEvaluateUnvalidated: a Check built by hand is validated on first use, and an invalid
// one reports why instead of panicking.
func TestEvaluateUnvalidated(t *testing.T) {
	env := newRoot(t).standard().offline()
	good := Check{Name: "t", Kind: KindFile, Path: "/etc/passwd"}
	if res := good.Evaluate(context.Background(), env); res.Status != StatusCompliant {
		t.Errorf("valid hand-built check: %+v", res)
	}
	bad := Check{Name: "t", Kind: KindFile, Path: "etc/passwd", Mode: "rw"}
	res := bad.Evaluate(context.Background(), env)
	if res.Status != StatusError || !slices.Equal(codes(res.Reasons), []string{CodeInvalidCheck}) || !strings.Contains(res.Reasons[0].Phrase, "check.mode") {
		t.Errorf("invalid hand-built check: %+v", res)
	}
}
