package check

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestApply corrects each remediable kind on a fake root, and checks three things: the
// changes it reports, that the check then holds, and that applying again changes nothing.
func TestApply(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(r *fakeRoot)
		check   string
		live    bool
		changes []Change // Check is filled in; Target paths are the root's
		notFix  bool     // Apply returns ErrNotRemediable, and the check still fails
		after   func(t *testing.T, r *fakeRoot)
	}{
		{name: "compliant file changes nothing", setup: func(r *fakeRoot) { r.fileMode("/etc/issue", "x", 0o600) }, check: `{"kind":"file","path":"/etc/issue","mode":"0600"}`},
		{name: "mode", setup: func(r *fakeRoot) { r.fileMode("/etc/issue", "x", 0o666) }, check: `{"kind":"file","path":"/etc/issue","mode":"0600"}`,
			changes: []Change{{Target: "/etc/issue mode", Before: "0666", After: "0600"}}},
		{name: "maxMode keeps the bits it allows", setup: func(r *fakeRoot) { r.fileMode("/etc/issue", "x", 0o4775) }, check: `{"kind":"file","path":"/etc/issue","maxMode":"0755"}`,
			changes: []Change{{Target: "/etc/issue mode", Before: "4775", After: "0755"}}},
		{name: "contents, keeping the mode", setup: func(r *fakeRoot) { r.fileMode("/etc/issue", "Debian\n", 0o640) }, check: `{"kind":"file","path":"/etc/issue","contents":"Authorized use only\n"}`,
			changes: []Change{{Target: "/etc/issue contents", Before: `"Debian\n"`, After: `"Authorized use only\n"`}},
			after: func(t *testing.T, r *fakeRoot) {
				if fi, err := os.Stat(filepath.Join(r.dir, "/etc/issue")); err != nil || fi.Mode().Perm() != 0o640 {
					t.Errorf("mode after the rewrite: %v, %v", fi.Mode(), err)
				}
			}},
		{name: "contents through an absolute link", setup: func(r *fakeRoot) {
			r.file("/usr/share/issue", "old")
			r.link("/etc/issue", "/usr/share/issue")
		}, check: `{"kind":"file","path":"/etc/issue","contents":"new"}`,
			changes: []Change{{Target: "/etc/issue contents", Before: `"old"`, After: `"new"`}},
			after: func(t *testing.T, r *fakeRoot) {
				if got := r.read("/usr/share/issue"); got != "new" {
					t.Errorf("the link's target has %q", got)
				}
			}},
		{name: "missing file created", check: `{"kind":"file","path":"/etc/issue.net","contents":"Authorized use only\n","mode":"0600"}`,
			changes: []Change{{Target: "/etc/issue.net", Before: "absent", After: `created with contents "Authorized use only\n", mode 0600`}}},
		{name: "missing file without contents", check: `{"kind":"file","path":"/etc/issue.net","mode":"0600"}`, notFix: true},
		{name: "file removed", setup: func(r *fakeRoot) { r.file("/etc/hosts.equiv", "+") }, check: `{"kind":"file","path":"/etc/hosts.equiv","exists":false}`,
			changes: []Change{{Target: "/etc/hosts.equiv", Before: "exists", After: "absent"}}},
		{name: "directory not removed", setup: func(r *fakeRoot) { r.mkdir("/etc/cron.d") }, check: `{"kind":"file","path":"/etc/cron.d","exists":false}`, notFix: true},
		{name: "contains cannot be fixed, mode can", setup: func(r *fakeRoot) { r.fileMode("/etc/login.defs", "UMASK 022\n", 0o666) }, check: `{"kind":"file","path":"/etc/login.defs","contains":"UMASK 027","mode":"0644"}`,
			changes: []Change{{Target: "/etc/login.defs mode", Before: "0666", After: "0644"}}, notFix: true},

		{name: "line appended", setup: func(r *fakeRoot) { r.file("/etc/ssh/sshd_config", "Port 22") }, check: `{"kind":"lineInFile","path":"/etc/ssh/sshd_config","line":"MaxAuthTries 4"}`,
			changes: []Change{{Target: "/etc/ssh/sshd_config line 2", Before: "(none)", After: `"MaxAuthTries 4"`}},
			after: func(t *testing.T, r *fakeRoot) {
				if got := r.read("/etc/ssh/sshd_config"); got != "Port 22\nMaxAuthTries 4\n" {
					t.Errorf("file is %q", got)
				}
			}},
		{name: "line replaced, repeats removed", setup: func(r *fakeRoot) {
			r.fileMode("/etc/ssh/sshd_config", "Port 22\nPermitRootLogin yes\nX11Forwarding no\n  PermitRootLogin prohibit-password\n", 0o600)
		}, check: `{"kind":"lineInFile","path":"/etc/ssh/sshd_config","line":"PermitRootLogin no","matches":"^\\s*PermitRootLogin\\b"}`,
			changes: []Change{
				{Target: "/etc/ssh/sshd_config line 2", Before: `"PermitRootLogin yes"`, After: `"PermitRootLogin no"`},
				{Target: "/etc/ssh/sshd_config line 4", Before: `"  PermitRootLogin prohibit-password"`, After: "(removed)"},
			},
			after: func(t *testing.T, r *fakeRoot) {
				if got := r.read("/etc/ssh/sshd_config"); got != "Port 22\nPermitRootLogin no\nX11Forwarding no\n" {
					t.Errorf("file is %q", got)
				}
				if fi, _ := os.Stat(filepath.Join(r.dir, "/etc/ssh/sshd_config")); fi.Mode().Perm() != 0o600 {
					t.Errorf("mode changed to %v", fi.Mode())
				}
			}},
		{name: "line appended when nothing matches", setup: func(r *fakeRoot) { r.file("/etc/ssh/sshd_config", "Port 22\n") },
			check:   `{"kind":"lineInFile","path":"/etc/ssh/sshd_config","line":"PermitRootLogin no","matches":"^\\s*PermitRootLogin\\b"}`,
			changes: []Change{{Target: "/etc/ssh/sshd_config line 2", Before: "(none)", After: `"PermitRootLogin no"`}}},
		{name: "line removed", setup: func(r *fakeRoot) { r.file("/etc/securetty", "console\ntty1\nconsole\n") }, check: `{"kind":"lineInFile","path":"/etc/securetty","line":"console","present":false}`,
			changes: []Change{
				{Target: "/etc/securetty line 1", Before: `"console"`, After: "(removed)"},
				{Target: "/etc/securetty line 3", Before: `"console"`, After: "(removed)"},
			}},
		{name: "lines removed by pattern", setup: func(r *fakeRoot) { r.file("/etc/hosts.allow", "ALL: ALL\nsshd: 10.0.0.0/8\n") }, check: `{"kind":"lineInFile","path":"/etc/hosts.allow","matches":"^ALL\\s*:","present":false}`,
			changes: []Change{{Target: "/etc/hosts.allow line 1", Before: `"ALL: ALL"`, After: "(removed)"}},
			after: func(t *testing.T, r *fakeRoot) {
				if got := r.read("/etc/hosts.allow"); got != "sshd: 10.0.0.0/8\n" {
					t.Errorf("file is %q", got)
				}
			}},
		{name: "file created for its line", setup: func(r *fakeRoot) { r.mkdir("/etc/modprobe.d") }, check: `{"kind":"lineInFile","path":"/etc/modprobe.d/gild.conf","line":"blacklist cramfs"}`,
			changes: []Change{{Target: "/etc/modprobe.d/gild.conf line 1", Before: "(none)", After: `"blacklist cramfs"`}}},
		{name: "pattern alone cannot be fixed", setup: func(r *fakeRoot) { r.file("/etc/x", "") }, check: `{"kind":"lineInFile","path":"/etc/x","matches":"^a"}`, notFix: true},

		{name: "sysctl set and persisted", check: `{"kind":"sysctl","key":"net.ipv4.ip_forward","value":1}`, live: true,
			changes: []Change{
				{Target: "sysctl net.ipv4.ip_forward", Before: "0", After: "1"},
				{Target: "/etc/sysctl.d/99-gild.conf", Before: "(none)", After: "net.ipv4.ip_forward = 1"},
			},
			after: func(t *testing.T, r *fakeRoot) {
				if got := r.read("/etc/sysctl.d/99-gild.conf"); !strings.HasPrefix(got, "# Written by gild") || !strings.HasSuffix(got, "\nnet.ipv4.ip_forward = 1\n") {
					t.Errorf("99-gild.conf is %q", got)
				}
			}},
		{name: "sysctl persisted line replaced", setup: func(r *fakeRoot) {
			r.file("/etc/sysctl.d/99-gild.conf", "# mine\nkernel.panic = 10\nnet/ipv4/ip_forward=0\n")
		}, check: `{"kind":"sysctl","key":"net.ipv4.ip_forward","value":1}`, live: true,
			changes: []Change{
				{Target: "sysctl net.ipv4.ip_forward", Before: "0", After: "1"},
				{Target: "/etc/sysctl.d/99-gild.conf", Before: "net/ipv4/ip_forward=0", After: "net.ipv4.ip_forward = 1"},
			},
			after: func(t *testing.T, r *fakeRoot) {
				if got := r.read("/etc/sysctl.d/99-gild.conf"); got != "# mine\nkernel.panic = 10\nnet.ipv4.ip_forward = 1\n" {
					t.Errorf("99-gild.conf is %q", got)
				}
			}},

		{name: "package is not remediable", check: `{"kind":"package","package":"auditd"}`, notFix: true},
		{name: "static unit cannot be disabled", check: `{"kind":"service","unit":"systemd-journald","enabled":false}`, notFix: true},
		{name: "unit without a file cannot be enabled", check: `{"kind":"service","unit":"nginx","enabled":true}`, notFix: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRoot(t).standard()
			if tc.setup != nil {
				tc.setup(r)
			}
			env := r.offline()
			if tc.live {
				env = r.live(nil)
			}
			c := mustParse(t, strings.Replace(tc.check, "{", `{"name":"t",`, 1))
			changes, err := c.Apply(context.Background(), env)
			if tc.notFix != errors.Is(err, ErrNotRemediable) || (!tc.notFix && err != nil) {
				t.Fatalf("Apply error = %v, want not remediable: %v", err, tc.notFix)
			}
			for i := range tc.changes {
				tc.changes[i].Check = "t"
			}
			if !slices.Equal(changes, tc.changes) {
				t.Fatalf("changes:\n%+v\nwant:\n%+v", changes, tc.changes)
			}
			res := c.Evaluate(context.Background(), env)
			if tc.notFix {
				if res.Status == StatusCompliant {
					t.Fatalf("Apply said it could not correct the check, but it holds: %+v", res)
				}
				return
			}
			if res.Status != StatusCompliant {
				t.Fatalf("after Apply: %+v", res)
			}
			if tc.after != nil {
				tc.after(t, r)
			}
			again, err := c.Apply(context.Background(), env)
			if err != nil || len(again) != 0 {
				t.Fatalf("applying again changed %+v, %v", again, err)
			}
		})
	}
}

// TestApplyOwnership needs to give files away, which only root may.
func TestApplyOwnership(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner needs root; run the tests as root to cover it")
	}
	r := newRoot(t).standard()
	r.fileMode("/usr/bin/newgrp", "x", 0o4755)
	c := mustParse(t, `{"name":"t","kind":"file","path":"/usr/bin/newgrp","owner":"daemon","group":"adm","mode":"4755"}`)
	changes, err := c.Apply(context.Background(), r.offline())
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{
		{Check: "t", Target: "/usr/bin/newgrp owner", Before: "root", After: "daemon"},
		{Check: "t", Target: "/usr/bin/newgrp group", Before: "root", After: "adm"},
	}
	// chown cleared the setuid bit; Apply set it back, after.
	if len(changes) == 3 && changes[2].Target == "/usr/bin/newgrp mode" {
		want = append(want, Change{Check: "t", Target: "/usr/bin/newgrp mode", Before: "0755", After: "4755"})
	}
	if !slices.Equal(changes, want) {
		t.Fatalf("changes:\n%+v\nwant:\n%+v", changes, want)
	}
	if res := c.Evaluate(context.Background(), r.offline()); res.Status != StatusCompliant {
		t.Fatalf("after Apply: %+v", res)
	}
}

func TestApplyErrors(t *testing.T) {
	r := newRoot(t).standard()
	sysctl := mustParse(t, `{"name":"t","kind":"sysctl","key":"net.ipv4.ip_forward","value":1}`)
	if _, err := sysctl.Apply(context.Background(), r.offline()); err == nil || !strings.Contains(err.Error(), "cannot evaluate it") {
		t.Errorf("sysctl on an offline root: %v", err)
	}
	user := mustParse(t, `{"name":"t","kind":"user","user":"root"}`)
	if !sysctl.Remediable() || user.Remediable() {
		t.Error("Remediable does not follow the kind")
	}
}

// TestApplyServiceWithSystemctl enables, disables and masks units of an offline root with
// the real systemctl --root, and judges the result from the files it wrote.
func TestApplyServiceWithSystemctl(t *testing.T) {
	if _, err := exec.LookPath("systemctl"); err != nil {
		t.Skip("no systemctl on this machine; TestApplyServiceActive covers the commands through a fake")
	}
	for _, tc := range []struct {
		check   string
		changes []Change
	}{
		{`{"kind":"service","unit":"cron","enabled":true}`, []Change{{Target: "cron.service enabled", Before: "disabled", After: "enabled"}}},
		{`{"kind":"service","unit":"ssh","enabled":false}`, []Change{{Target: "ssh.service enabled", Before: "enabled", After: "disabled"}}},
		{`{"kind":"service","unit":"cron","masked":true}`, []Change{{Target: "cron.service masked", Before: "disabled", After: "masked"}}},
		{`{"kind":"service","unit":"telnet","enabled":true}`, []Change{
			{Target: "telnet.service masked", Before: "masked", After: "disabled"},
			{Target: "telnet.service enabled", Before: "disabled", After: "enabled"},
		}},
	} {
		t.Run(tc.check, func(t *testing.T) {
			r := newRoot(t).standard()
			c := mustParse(t, strings.Replace(tc.check, "{", `{"name":"t",`, 1))
			changes, err := c.Apply(context.Background(), r.offline())
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.changes {
				tc.changes[i].Check = "t"
			}
			if !slices.Equal(changes, tc.changes) {
				t.Fatalf("changes:\n%+v\nwant:\n%+v", changes, tc.changes)
			}
			if res := c.Evaluate(context.Background(), r.offline()); res.Status != StatusCompliant {
				t.Fatalf("after Apply: %+v", res)
			}
		})
	}
}

// TestApplyServiceActive starts a unit on a live system, systemd played by a fake runner.
func TestApplyServiceActive(t *testing.T) {
	r := newRoot(t).standard()
	state := "inactive"
	runner := &fakeRunner{answers: map[string]Output{"systemctl start cron.service": {}}}
	runner.onRun = func(cmdline string) {
		runner.mu.Lock()
		defer runner.mu.Unlock()
		if cmdline == "systemctl start cron.service" {
			state = "active"
		}
		runner.answers["systemctl is-active cron.service"] = Output{Stdout: []byte(state + "\n")}
	}
	c := mustParse(t, `{"name":"t","kind":"service","unit":"cron","active":true}`)
	changes, err := c.Apply(context.Background(), r.live(runner))
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{{Check: "t", Target: "cron.service active", Before: "inactive", After: "active"}}
	if !slices.Equal(changes, want) {
		t.Fatalf("changes %+v, want %+v", changes, want)
	}
	wantCalls := []string{"systemctl is-active cron.service", "systemctl is-active cron.service", "systemctl start cron.service", "systemctl is-active cron.service"}
	if !slices.Equal(runner.calls, wantCalls) {
		t.Fatalf("ran %q, want %q", runner.calls, wantCalls)
	}
}
