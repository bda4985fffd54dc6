package check

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const sshdMain = "/etc/ssh/sshd_config"

// sshd writes the root's sshd_config and, from files, the other files of a configuration
// (by the root's path).
func sshd(main string, files ...string) func(r *fakeRoot) {
	return func(r *fakeRoot) {
		r.file(sshdMain, main)
		for i := 0; i+1 < len(files); i += 2 {
			r.file(files[i], files[i+1])
		}
	}
}

// TestSetting evaluates setting checks: how sshd and keyValue files are read, and the
// reasons, expected and actual values of the results.
func TestSetting(t *testing.T) {
	const prl = `{"kind":"setting","syntax":"sshd","path":"/etc/ssh/sshd_config","key":"PermitRootLogin","value":"no"`
	const dropIns = "Include /etc/ssh/sshd_config.d/*.conf\n"
	cases := []struct {
		name     string
		setup    func(r *fakeRoot)
		check    string
		status   Status
		codes    []string
		phrase   string // the first reason's whole phrase
		expected string // the whole result's expected, when given
		actual   string // the whole result's actual, when given
	}{
		// sshd: reading a line
		{name: "the value as set", setup: sshd("PermitRootLogin no\n"), check: prl + `}`, status: StatusCompliant,
			expected: "PermitRootLogin no", actual: "PermitRootLogin no"},
		{name: "mismatch", setup: sshd("Port 22\nPermitRootLogin yes\n"), check: prl + `}`, status: StatusNonCompliant, codes: []string{CodeSettingMismatch},
			phrase: `PermitRootLogin is "yes" (/etc/ssh/sshd_config line 2); expected "no".`, expected: "PermitRootLogin no", actual: "PermitRootLogin yes"},
		{name: "the first occurrence wins", setup: sshd("PermitRootLogin no\nPermitRootLogin yes\n"), check: prl + `}`, status: StatusCompliant},
		{name: "the first occurrence wins, against", setup: sshd("PermitRootLogin yes\nPermitRootLogin no\n"), check: prl + `}`, status: StatusNonCompliant, codes: []string{CodeSettingMismatch},
			phrase: `PermitRootLogin is "yes" (/etc/ssh/sshd_config line 1); expected "no".`},
		{name: "keywords in any case", setup: sshd("permitrootlogin no\n"), check: prl + `}`, status: StatusCompliant},
		{name: "yes/no words in any case", setup: sshd("PermitRootLogin No\n"), check: prl + `}`, status: StatusCompliant},
		{name: "Key=value", setup: sshd("PermitRootLogin=no\n"), check: prl + `}`, status: StatusCompliant},
		{name: "Key = value, indented", setup: sshd("\t PermitRootLogin = no\n"), check: prl + `}`, status: StatusCompliant},
		{name: "a comment after the value", setup: sshd("PermitRootLogin no # CIS 5.2.10\n"), check: prl + `}`, status: StatusCompliant},
		{name: "commented-out lines do not count", setup: sshd("#PermitRootLogin yes\n  # PermitRootLogin yes\nPermitRootLogin no\n"), check: prl + `}`, status: StatusCompliant},
		{name: "CRLF line ends", setup: sshd("PermitRootLogin no\r\n"), check: prl + `}`, status: StatusCompliant},
		{name: "a quoted value", setup: sshd("Banner \"/etc/issue.net\"\n"),
			check: `{"kind":"setting","syntax":"sshd","path":"/etc/ssh/sshd_config","key":"Banner","value":"/etc/issue.net"}`, status: StatusCompliant},

		// sshd: defaults and missing settings
		{name: "not set: the default", setup: sshd("Port 22\n"), check: prl + `,"default":"prohibit-password"}`, status: StatusNonCompliant, codes: []string{CodeSettingMismatch},
			phrase: `PermitRootLogin is not set in /etc/ssh/sshd_config, so it is "prohibit-password" (the default); expected "no".`,
			actual: "PermitRootLogin prohibit-password (not set; the default)"},
		{name: "not set: the default is what is expected", setup: sshd("Port 22\n"),
			check: `{"kind":"setting","syntax":"sshd","path":"/etc/ssh/sshd_config","key":"PermitEmptyPasswords","value":"no","default":"no"}`, status: StatusCompliant,
			actual: "PermitEmptyPasswords no (not set; the default)"},
		{name: "not set, no default", setup: sshd("Port 22\n"), check: prl + `}`, status: StatusNonCompliant, codes: []string{CodeSettingMissing},
			phrase: `PermitRootLogin is not set in /etc/ssh/sshd_config; expected "no".`, actual: "PermitRootLogin not set"},
		{name: "no file", check: prl + `}`, status: StatusNonCompliant, codes: []string{CodeFileMissing},
			phrase: `File /etc/ssh/sshd_config does not exist, so PermitRootLogin is not set there; expected "no".`, actual: "file /etc/ssh/sshd_config missing"},

		// sshd: Match blocks
		{name: "a Match block ends the global section", setup: sshd("Port 22\nMatch User backup\n  PermitRootLogin no\n"), check: prl + `}`,
			status: StatusNonCompliant, codes: []string{CodeSettingMissing},
			phrase: `PermitRootLogin is not set in /etc/ssh/sshd_config (only inside a Match block, at /etc/ssh/sshd_config line 3, which does not apply to every connection); expected "no".`},
		{name: "global before the Match block", setup: sshd("PermitRootLogin no\nMatch User backup\n  PermitRootLogin yes\n"), check: prl + `}`, status: StatusCompliant},
		{name: "a Match block in an included file ends with it", setup: sshd("Include /etc/ssh/m.conf\nPermitRootLogin no\n", "/etc/ssh/m.conf", "Match User x\nPermitRootLogin yes\n"),
			check: prl + `}`, status: StatusCompliant},
		{name: "an Include inside a Match block is not global", setup: sshd("Match all\nInclude /etc/ssh/m.conf\n", "/etc/ssh/m.conf", "PermitRootLogin no\n"),
			check: prl + `}`, status: StatusNonCompliant, codes: []string{CodeSettingMissing}},

		// sshd: Include
		{name: "included files in lexical order, where the Include stands", setup: sshd(dropIns+"PermitRootLogin no\n",
			"/etc/ssh/sshd_config.d/50-cloud-init.conf", "PermitRootLogin yes\n",
			"/etc/ssh/sshd_config.d/10-hardening.conf", "# gild\nPermitRootLogin without-password\n"),
			check: prl + `}`, status: StatusNonCompliant, codes: []string{CodeSettingMismatch},
			phrase: `PermitRootLogin is "without-password" (/etc/ssh/sshd_config.d/10-hardening.conf line 2); expected "no".`},
		{name: "a setting before the Include wins", setup: sshd("PermitRootLogin no\n"+dropIns, "/etc/ssh/sshd_config.d/50-cloud-init.conf", "PermitRootLogin yes\n"),
			check: prl + `}`, status: StatusCompliant},
		{name: "relative Include under /etc/ssh", setup: sshd("Include conf.d/*\n", "/etc/ssh/conf.d/a", "PermitRootLogin no\n"), check: prl + `}`, status: StatusCompliant},
		{name: "globs skip dot files and other names", setup: sshd(dropIns, "/etc/ssh/sshd_config.d/.old.conf", "PermitRootLogin no\n", "/etc/ssh/sshd_config.d/a.conf.bak", "PermitRootLogin no\n"),
			check: prl + `}`, status: StatusNonCompliant, codes: []string{CodeSettingMissing},
			phrase: `PermitRootLogin is not set in /etc/ssh/sshd_config; expected "no".`},
		{name: "nested includes", setup: sshd("Include /etc/ssh/a.conf\n", "/etc/ssh/a.conf", "Include b.conf\n", "/etc/ssh/b.conf", "PermitRootLogin no\n"), check: prl + `}`, status: StatusCompliant},
		{name: "an Include that matches nothing", setup: sshd(dropIns + "Include /etc/ssh/none.conf\n"), check: prl + `,"default":"no"}`, status: StatusCompliant},
		{name: "not set in a configuration with includes", setup: sshd(dropIns, "/etc/ssh/sshd_config.d/a.conf", "Port 22\n"), check: prl + `}`,
			status: StatusNonCompliant, codes: []string{CodeSettingMissing}, phrase: `PermitRootLogin is not set in /etc/ssh/sshd_config or the files it includes; expected "no".`},
		{name: "an Include loop", setup: sshd("Include /etc/ssh/loop.conf\n", "/etc/ssh/loop.conf", "Include /etc/ssh/loop.conf\n"), check: prl + `}`,
			status: StatusError, codes: []string{CodeIncludeTooDeep}, phrase: "Line 1 of /etc/ssh/loop.conf includes files nested deeper than the 16 levels sshd accepts, so sshd would not start with this configuration."},
		{name: "an included directory cannot be read", setup: func(r *fakeRoot) {
			r.file(sshdMain, "Include /etc/ssh/sshd_config.d\n")
			r.mkdir("/etc/ssh/sshd_config.d")
		}, check: prl + `}`, status: StatusError, codes: []string{CodeReadError}},

		// sshd: values
		{name: "accumulated keywords: every line counts", setup: sshd("AllowUsers alice\nAllowUsers  bob   carol\n"),
			check: `{"kind":"setting","syntax":"sshd","path":"/etc/ssh/sshd_config","key":"AllowUsers","value":"alice bob carol"}`, status: StatusCompliant},
		{name: "accumulated keywords, against", setup: sshd("Port 22\nPort 2222\n"),
			check: `{"kind":"setting","syntax":"sshd","path":"/etc/ssh/sshd_config","key":"Port","value":22}`, status: StatusNonCompliant, codes: []string{CodeSettingMismatch},
			phrase: `Port is "22 2222" (/etc/ssh/sshd_config lines 1 and 2); expected "22".`},
		{name: "user names keep their case", setup: sshd("AllowUsers Alice\n"),
			check: `{"kind":"setting","syntax":"sshd","path":"/etc/ssh/sshd_config","key":"AllowUsers","value":"alice"}`, status: StatusNonCompliant, codes: []string{CodeSettingMismatch}},
		{name: "lists ignore spaces around commas", setup: sshd("Ciphers aes128-ctr,aes192-ctr,aes256-ctr\n"),
			check: `{"kind":"setting","syntax":"sshd","path":"/etc/ssh/sshd_config","key":"Ciphers","value":"aes128-ctr, aes192-ctr ,aes256-ctr"}`, status: StatusCompliant},
		{name: "lists compare in order", setup: sshd("Ciphers aes256-ctr,aes128-ctr\n"),
			check: `{"kind":"setting","syntax":"sshd","path":"/etc/ssh/sshd_config","key":"Ciphers","value":"aes128-ctr,aes256-ctr"}`, status: StatusNonCompliant, codes: []string{CodeSettingMismatch}},
		{name: "times compare as durations", setup: sshd("LoginGraceTime 1m\nClientAliveInterval 1h\n"),
			check: `{"kind":"setting","syntax":"sshd","path":"/etc/ssh/sshd_config","key":"LoginGraceTime","value":60}`, status: StatusCompliant},
		{name: "times compare as durations, against", setup: sshd("LoginGraceTime 2m\n"),
			check: `{"kind":"setting","syntax":"sshd","path":"/etc/ssh/sshd_config","key":"LoginGraceTime","value":"60"}`, status: StatusNonCompliant, codes: []string{CodeSettingMismatch}},
		{name: "numbers are text", setup: sshd("MaxAuthTries 6\n"),
			check: `{"kind":"setting","syntax":"sshd","path":"/etc/ssh/sshd_config","key":"MaxAuthTries","value":4}`, status: StatusNonCompliant, codes: []string{CodeSettingMismatch},
			phrase: `MaxAuthTries is "6" (/etc/ssh/sshd_config line 1); expected "4".`},
		{name: "LogLevel in any case", setup: sshd("LogLevel info\n"),
			check: `{"kind":"setting","syntax":"sshd","path":"/etc/ssh/sshd_config","key":"LogLevel","value":"INFO"}`, status: StatusCompliant},

		// present: false
		{name: "must not be set, and is not", setup: sshd("Port 22\nMatch User x\nPermitRootLogin yes\n"),
			check: `{"kind":"setting","syntax":"sshd","path":"/etc/ssh/sshd_config","key":"PermitRootLogin","present":false}`, status: StatusCompliant,
			expected: "PermitRootLogin not set", actual: "PermitRootLogin not set"},
		{name: "must not be set, and is", setup: sshd("PermitRootLogin no\n"),
			check: `{"kind":"setting","syntax":"sshd","path":"/etc/ssh/sshd_config","key":"PermitRootLogin","present":false}`, status: StatusNonCompliant, codes: []string{CodeSettingPresent},
			phrase: `PermitRootLogin is set to "no" (/etc/ssh/sshd_config line 1); expected it not set.`},
		{name: "must not be set, and there is no file", check: `{"kind":"setting","syntax":"sshd","path":"/etc/ssh/sshd_config","key":"PermitRootLogin","present":false}`, status: StatusCompliant},

		// keyValue
		{name: "keyValue: the last occurrence wins", setup: func(r *fakeRoot) { r.file("/etc/login.defs", "PASS_MAX_DAYS 99999\n# later\nPASS_MAX_DAYS\t90\n") },
			check: `{"kind":"setting","path":"/etc/login.defs","key":"PASS_MAX_DAYS","value":90}`, status: StatusCompliant, actual: "PASS_MAX_DAYS 90"},
		{name: "keyValue: the last occurrence wins, against", setup: func(r *fakeRoot) { r.file("/etc/login.defs", "PASS_MAX_DAYS 90\nPASS_MAX_DAYS 99999\n") },
			check: `{"kind":"setting","syntax":"keyValue","path":"/etc/login.defs","key":"PASS_MAX_DAYS","value":"90"}`, status: StatusNonCompliant, codes: []string{CodeSettingMismatch},
			phrase: `PASS_MAX_DAYS is "99999" (/etc/login.defs line 2); expected "90".`},
		{name: "keyValue: keys are case-sensitive", setup: func(r *fakeRoot) { r.file("/etc/login.defs", "pass_max_days 90\n") },
			check: `{"kind":"setting","path":"/etc/login.defs","key":"PASS_MAX_DAYS","value":"90"}`, status: StatusNonCompliant, codes: []string{CodeSettingMissing}},
		{name: "keyValue: key = value", setup: func(r *fakeRoot) {
			r.file("/etc/sysctl.conf", "; a comment\nnet.ipv4.ip_forward = 0\nkernel.panic=10\n")
		},
			check: `{"kind":"setting","path":"/etc/sysctl.conf","key":"kernel.panic","value":10}`, status: StatusCompliant},
		{name: "keyValue: a value with an equals sign", setup: func(r *fakeRoot) { r.file("/etc/login.defs", "ENV_PATH PATH=/usr/bin:/bin\n") },
			check: `{"kind":"setting","path":"/etc/login.defs","key":"ENV_PATH","value":"PATH=/usr/bin:/bin"}`, status: StatusCompliant},
		{name: "keyValue: no includes", setup: func(r *fakeRoot) {
			r.file("/etc/x.conf", "Include /etc/y.conf\n")
			r.file("/etc/y.conf", "a 1\n")
		}, check: `{"kind":"setting","path":"/etc/x.conf","key":"a","value":"1"}`, status: StatusNonCompliant, codes: []string{CodeSettingMissing}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRoot(t)
			if tc.setup != nil {
				tc.setup(r)
			}
			c := mustParse(t, strings.Replace(tc.check, "{", `{"name":"t",`, 1))
			res := c.Evaluate(context.Background(), r.offline())
			if res.Status != tc.status || !slices.Equal(codes(res.Reasons), append([]string{}, tc.codes...)) {
				t.Fatalf("got %s %v, want %s %v\nreasons: %+v\nexpected: %s\nactual:   %s", res.Status, codes(res.Reasons), tc.status, tc.codes, res.Reasons, res.Expected, res.Actual)
			}
			if tc.phrase != "" && res.Reasons[0].Phrase != tc.phrase {
				t.Errorf("phrase:\n%s\nwant:\n%s", res.Reasons[0].Phrase, tc.phrase)
			}
			if tc.expected != "" && res.Expected != tc.expected {
				t.Errorf("expected %q, want %q", res.Expected, tc.expected)
			}
			if tc.actual != "" && res.Actual != tc.actual {
				t.Errorf("actual %q, want %q", res.Actual, tc.actual)
			}
			if res.Expected == "" || res.Actual == "" {
				t.Errorf("result without expected or actual: %+v", res)
			}
		})
	}
}

// TestApplySetting corrects setting checks and compares every file of the configuration
// afterwards, byte for byte; then the check must hold and applying again change nothing.
func TestApplySetting(t *testing.T) {
	const prl = `{"kind":"setting","syntax":"sshd","path":"/etc/ssh/sshd_config","key":"PermitRootLogin","value":"no"`
	const dropIns = "Include /etc/ssh/sshd_config.d/*.conf\n"
	type file struct{ path, contents string }
	cases := []struct {
		name    string
		files   []file // before
		mode    os.FileMode
		check   string
		changes []Change
		after   []file
	}{
		{name: "a compliant check changes nothing", files: []file{{sshdMain, "PermitRootLogin NO\n"}}, check: prl + `}`,
			after: []file{{sshdMain, "PermitRootLogin NO\n"}}},
		{name: "set in place", mode: 0o600, files: []file{{sshdMain, "# header\nPort 22\n  PermitRootLogin = \"yes\"   # was\nPermitRootLogin without-password\n"}}, check: prl + `}`,
			changes: []Change{{Target: "/etc/ssh/sshd_config PermitRootLogin", Before: "yes", After: "no"}},
			after:   []file{{sshdMain, "# header\nPort 22\n  PermitRootLogin = no   # was\nPermitRootLogin without-password\n"}}},
		{name: "set in place, CRLF kept", files: []file{{sshdMain, "PermitRootLogin yes\r\nPort 22\r\n"}}, check: prl + `}`,
			changes: []Change{{Target: "/etc/ssh/sshd_config PermitRootLogin", Before: "yes", After: "no"}},
			after:   []file{{sshdMain, "PermitRootLogin no\r\nPort 22\r\n"}}},
		{name: "a line without a value", files: []file{{sshdMain, "PermitRootLogin # to do\n"}}, check: prl + `}`,
			changes: []Change{{Target: "/etc/ssh/sshd_config PermitRootLogin", Before: "(empty)", After: "no"}},
			after:   []file{{sshdMain, "PermitRootLogin no # to do\n"}}},
		{name: "set in the included file that has it", files: []file{
			{sshdMain, dropIns + "PermitRootLogin no\n"},
			{"/etc/ssh/sshd_config.d/50-cloud-init.conf", "PasswordAuthentication yes\nPermitRootLogin yes\n"},
		}, check: prl + `}`,
			changes: []Change{{Target: "/etc/ssh/sshd_config.d/50-cloud-init.conf PermitRootLogin", Before: "yes", After: "no"}},
			after: []file{
				{sshdMain, dropIns + "PermitRootLogin no\n"},
				{"/etc/ssh/sshd_config.d/50-cloud-init.conf", "PasswordAuthentication yes\nPermitRootLogin no\n"},
			}},
		{name: "not set: added before the Include", files: []file{
			{sshdMain, "# This is the sshd server system-wide configuration file.\n\n" + dropIns + "Port 22\n"},
			{"/etc/ssh/sshd_config.d/a.conf", "X11Forwarding no\n"},
		}, check: prl + `,"default":"prohibit-password"}`,
			changes: []Change{{Target: "/etc/ssh/sshd_config PermitRootLogin", Before: "(not set)", After: "no"}},
			after: []file{
				{sshdMain, "# This is the sshd server system-wide configuration file.\n\nPermitRootLogin no\n" + dropIns + "Port 22\n"},
				{"/etc/ssh/sshd_config.d/a.conf", "X11Forwarding no\n"},
			}},
		{name: "not set: added after the settings before the Include", files: []file{{sshdMain, "Port 22\n" + dropIns + "X11Forwarding no\n"}}, check: prl + `}`,
			changes: []Change{{Target: "/etc/ssh/sshd_config PermitRootLogin", Before: "(not set)", After: "no"}},
			after:   []file{{sshdMain, "Port 22\nPermitRootLogin no\n" + dropIns + "X11Forwarding no\n"}}},
		{name: "not set, no Include or Match: added at the end", files: []file{{sshdMain, "Port 22\nX11Forwarding no\n"}}, check: prl + `}`,
			changes: []Change{{Target: "/etc/ssh/sshd_config PermitRootLogin", Before: "(not set)", After: "no"}},
			after:   []file{{sshdMain, "Port 22\nX11Forwarding no\nPermitRootLogin no\n"}}},
		{name: "not set only globally: added before the Match block", files: []file{{sshdMain, "Match User x\n  PermitRootLogin no\n"}}, check: prl + `}`,
			changes: []Change{{Target: "/etc/ssh/sshd_config PermitRootLogin", Before: "(not set)", After: "no"}},
			after:   []file{{sshdMain, "PermitRootLogin no\nMatch User x\n  PermitRootLogin no\n"}}},
		{name: "not set in a file of comments without a final line break", files: []file{{sshdMain, "# nothing"}}, check: prl + `}`,
			changes: []Change{{Target: "/etc/ssh/sshd_config PermitRootLogin", Before: "(not set)", After: "no"}},
			after:   []file{{sshdMain, "# nothing\nPermitRootLogin no\n"}}},
		{name: "no file: created", check: prl + `}`,
			changes: []Change{{Target: "/etc/ssh/sshd_config PermitRootLogin", Before: "(not set)", After: "no"}},
			after:   []file{{sshdMain, "PermitRootLogin no\n"}}},
		{name: "accumulated keyword: the first set, the others commented out", files: []file{
			{sshdMain, "Port 2222\n" + dropIns},
			{"/etc/ssh/sshd_config.d/a.conf", "Port 22\n"},
		}, check: `{"kind":"setting","syntax":"sshd","path":"/etc/ssh/sshd_config","key":"Port","value":22}`,
			changes: []Change{
				{Target: "/etc/ssh/sshd_config Port", Before: "2222", After: "22"},
				{Target: "/etc/ssh/sshd_config.d/a.conf Port", Before: "22", After: "(commented out)"},
			},
			after: []file{{sshdMain, "Port 22\n" + dropIns}, {"/etc/ssh/sshd_config.d/a.conf", "#Port 22\n"}}},
		{name: "must not be set: every global occurrence commented out", files: []file{{sshdMain, "PermitRootLogin no\nPermitRootLogin yes\nMatch User x\n PermitRootLogin yes\n"}},
			check: `{"kind":"setting","syntax":"sshd","path":"/etc/ssh/sshd_config","key":"PermitRootLogin","present":false}`,
			changes: []Change{
				{Target: "/etc/ssh/sshd_config PermitRootLogin", Before: "no", After: "(commented out)"},
				{Target: "/etc/ssh/sshd_config PermitRootLogin", Before: "yes", After: "(commented out)"},
			},
			after: []file{{sshdMain, "#PermitRootLogin no\n#PermitRootLogin yes\nMatch User x\n PermitRootLogin yes\n"}}},
		{name: "keyValue: the last occurrence set", files: []file{{"/etc/login.defs", "PASS_MAX_DAYS 10\nPASS_MAX_DAYS\t99999\nUMASK 022\n"}},
			check:   `{"kind":"setting","path":"/etc/login.defs","key":"PASS_MAX_DAYS","value":90}`,
			changes: []Change{{Target: "/etc/login.defs PASS_MAX_DAYS", Before: "99999", After: "90"}},
			after:   []file{{"/etc/login.defs", "PASS_MAX_DAYS 10\nPASS_MAX_DAYS\t90\nUMASK 022\n"}}},
		{name: "keyValue: not set, appended in the file's style", files: []file{{"/etc/sysctl.d/60-net.conf", "# net\nnet.ipv4.ip_forward = 0"}},
			check:   `{"kind":"setting","path":"/etc/sysctl.d/60-net.conf","key":"net.ipv4.tcp_syncookies","value":1}`,
			changes: []Change{{Target: "/etc/sysctl.d/60-net.conf net.ipv4.tcp_syncookies", Before: "(not set)", After: "1"}},
			after:   []file{{"/etc/sysctl.d/60-net.conf", "# net\nnet.ipv4.ip_forward = 0\nnet.ipv4.tcp_syncookies = 1\n"}}},
		{name: "keyValue: not set, appended", files: []file{{"/etc/login.defs", "UMASK 022\n"}},
			check:   `{"kind":"setting","path":"/etc/login.defs","key":"PASS_MIN_DAYS","value":"1"}`,
			changes: []Change{{Target: "/etc/login.defs PASS_MIN_DAYS", Before: "(not set)", After: "1"}},
			after:   []file{{"/etc/login.defs", "UMASK 022\nPASS_MIN_DAYS 1\n"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRoot(t)
			r.mkdir("/etc/ssh")
			mode := tc.mode
			if mode == 0 {
				mode = 0o644
			}
			for _, f := range tc.files {
				r.fileMode(f.path, f.contents, mode)
			}
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
			for _, f := range tc.after {
				if got := r.read(f.path); got != f.contents {
					t.Errorf("%s is\n%q\nwant\n%q", f.path, got, f.contents)
				}
			}
			for _, f := range tc.files {
				fi, err := os.Stat(filepath.Join(r.dir, f.path))
				if err != nil || fi.Mode().Perm() != mode {
					t.Errorf("%s: mode after the rewrite %v (%v), want %v", f.path, fi.Mode(), err, mode)
				}
			}
			if res := c.Evaluate(context.Background(), r.offline()); res.Status != StatusCompliant {
				t.Fatalf("after Apply: %+v", res)
			}
			again, err := c.Apply(context.Background(), r.offline())
			if err != nil || len(again) != 0 {
				t.Fatalf("applying again changed %+v, %v", again, err)
			}
			leftovers, _ := filepath.Glob(filepath.Join(r.dir, "etc", "*", ".*gild-*"))
			if len(leftovers) > 0 {
				t.Errorf("temporary files left: %v", leftovers)
			}
		})
	}
}

func TestApplySettingErrors(t *testing.T) {
	r := newRoot(t)
	r.file(sshdMain, "Include /etc/ssh/loop.conf\n")
	r.file("/etc/ssh/loop.conf", "Include /etc/ssh/loop.conf\n")
	c := mustParse(t, `{"name":"t","kind":"setting","syntax":"sshd","path":"/etc/ssh/sshd_config","key":"PermitRootLogin","value":"no"}`)
	if !c.Remediable() {
		t.Error("setting checks are remediable")
	}
	changes, err := c.Apply(context.Background(), r.offline())
	if err == nil || len(changes) != 0 || !strings.Contains(err.Error(), "cannot evaluate it") {
		t.Errorf("Apply on a configuration sshd refuses: %v, %v", changes, err)
	}
	// The directory of a missing file is missing too: nothing to create it in.
	c = mustParse(t, `{"name":"t","kind":"setting","path":"/etc/nonesuch/x.conf","key":"a","value":"1"}`)
	if _, err := c.Apply(context.Background(), r.offline()); err == nil || errors.Is(err, ErrNotRemediable) {
		t.Errorf("Apply into a missing directory: %v", err)
	}
}

// TestParseSetting: a setting check's fields are validated, every problem at once.
func TestParseSetting(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []string
	}{
		{"valid, the syntax defaulted", `{"name":"a","kind":"setting","path":"/etc/login.defs","key":"UMASK","value":"027"}`, nil},
		{"valid, must not be set", `{"name":"a","kind":"setting","syntax":"sshd","path":"/etc/ssh/sshd_config","key":"Ciphers","present":false}`, nil},
		{"everything missing", `{"name":"a","kind":"setting"}`, []string{
			`checks[0].key: required`,
			`checks[0].path: required`,
			`checks[0].value: required (or present: false for a setting that must not be set)`,
		}},
		{"everything wrong", `{"name":"a","kind":"setting","syntax":"sshd_config","path":"etc/ssh/sshd_config","key":"Permit RootLogin","value":"a\nb","default":"x\ny","line":"x"}`, []string{
			`checks[0].default: a setting's value is on one line`,
			`checks[0].key: "Permit RootLogin" has a space or a control character; a key is one word`,
			`checks[0].line: not a field of a setting check (its fields: path, key, value, present, syntax, default)`,
			`checks[0].path: "etc/ssh/sshd_config" is not an absolute path`,
			`checks[0].syntax: unknown syntax "sshd_config"; one of sshd, keyValue (the default)`,
			`checks[0].value: a setting's value is on one line`,
		}},
		{"a misspelt syntax", `{"name":"a","kind":"setting","syntax":"keyvalue","path":"/x","key":"k","value":"v"}`, []string{
			`checks[0].syntax: unknown syntax "keyvalue"; did you mean "keyValue"?; one of sshd, keyValue (the default)`,
		}},
		{"structure is not a setting", `{"name":"a","kind":"setting","syntax":"sshd","path":"/etc/ssh/sshd_config","key":"include","value":"x"}`, []string{
			`checks[0].key: include is part of sshd_config's structure, not a setting`,
		}},
		{"keys with = or a comment", `[{"name":"a","kind":"setting","path":"/x","key":"a=b","value":"v"},{"name":"b","kind":"setting","path":"/x","key":"#a","value":"v"}]`, []string{
			`checks[0].key: "a=b" has an "=", which separates a key from its value`,
			`checks[1].key: "#a" starts a comment`,
		}},
		{"must not be set, with a value", `{"name":"a","kind":"setting","path":"/x","key":"k","value":"v","default":"d","present":false}`, []string{
			`checks[0].default: a setting that must not be set has no default to fall back on`,
			`checks[0].value: a setting that must not be set has no value`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			if !strings.HasPrefix(in, "[") {
				in = "[" + in + "]"
			}
			_, err := Parse([]byte(in))
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			got := strings.Split(err.Error(), "\n")
			if !slices.Equal(got, tc.want) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestParseSshdLine splits lines as sshd does, and finds the value's bytes for Apply.
func TestParseSshdLine(t *testing.T) {
	for _, tc := range []struct {
		line  string
		key   string
		args  []string
		value string // line[valStart:valEnd]
		ok    bool
	}{
		{"PermitRootLogin no", "PermitRootLogin", []string{"no"}, "no", true},
		{"  Port=22", "Port", []string{"22"}, "22", true},
		{"Port = 22  # comment", "Port", []string{"22"}, "22", true},
		{"AllowUsers a  b\tc", "AllowUsers", []string{"a", "b", "c"}, "a  b\tc", true},
		{`Banner "/etc/my banner"`, "Banner", []string{"/etc/my banner"}, `"/etc/my banner"`, true},
		{`ForceCommand echo\ hi 'a b' x#y`, "ForceCommand", []string{"echo hi", "a b", "x#y"}, `echo\ hi 'a b' x#y`, true},
		{"Subsystem", "Subsystem", nil, "", true},
		{"# PermitRootLogin yes", "", nil, "", false},
		{"   ", "", nil, "", false},
		{"", "", nil, "", false},
	} {
		d, ok := parseSshdLine(tc.line)
		if ok != tc.ok || d.key != tc.key || !slices.Equal(d.args, tc.args) || (ok && tc.line[d.valStart:d.valEnd] != tc.value) {
			t.Errorf("parseSshdLine(%q) = %q %q [%d:%d] %v, want %q %q %q %v", tc.line, d.key, d.args, d.valStart, d.valEnd, ok, tc.key, tc.args, tc.value, tc.ok)
		}
	}
}

func TestSshdSeconds(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"60", 60, true}, {"1m", 60, true}, {"1h30m", 5400, true}, {"2W", 1209600, true}, {"10s5", 15, true},
		{"", 0, false}, {"1x", 0, false}, {"m", 0, false}, {"-1", 0, false}, {"9999999999", 0, false},
	} {
		got, ok := sshdSeconds(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("sshdSeconds(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzSshdLine: any line splits without panicking, with the value's offsets inside the
// line, and a line that Apply rewrote with a plain value reads back as that value.
func FuzzSshdLine(f *testing.F) {
	for _, s := range []string{"PermitRootLogin no", "a=b", `x "y z" 'w' \"q`, "k # c", "\t=\t", `a "unclosed`, "Match User x", "Subsystem", "k#c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		d, ok := parseSshdLine(line)
		if !ok {
			return
		}
		if d.key == "" || d.valStart < 0 || d.valStart > d.valEnd || d.valEnd > len(line) {
			t.Fatalf("parseSshdLine(%q) = %+v", line, d)
		}
		if strings.ContainsAny(d.key, " \t=") || d.key[0] == '#' {
			t.Fatalf("key %q of %q", d.key, line)
		}
		rewritten := line[:d.valStart] + valueText([]byte(line), d.valStart, d.valEnd, "value") + line[d.valEnd:]
		again, ok := parseSshdLine(rewritten)
		if !ok || !strings.EqualFold(again.key, d.key) || len(again.args) == 0 || again.args[0] != "value" {
			t.Fatalf("%q rewritten as %q reads %+v", line, rewritten, again)
		}
	})
}
