package guestconfig

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gildhq/gild/check"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from what was rendered (run with -update to accept):\n%s", path, got)
	}
}

// TestRenderDefaults: the SSH baseline with its defaults, kept as golden data so that a
// change to the built-in shows in review as the checks it makes.
func TestRenderDefaults(t *testing.T) {
	c, _ := Lookup("LinuxSshServerSecurityBaseline")
	out := mustRender(t, c, nil)
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, out, "", "  "); err != nil {
		t.Fatal(err)
	}
	pretty.WriteByte('\n')
	golden(t, "LinuxSshServerSecurityBaseline.defaults.json", pretty.Bytes())
}

// checkByName finds a rendered check.
func checkByName(t *testing.T, out json.RawMessage, name string) check.Check {
	t.Helper()
	set, err := check.Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range set.Checks() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %q in %s", name, out)
	return check.Check{}
}

func TestRenderValues(t *testing.T) {
	c, _ := Lookup("SetLinuxSshServerSecurityBaseline")
	const prl = "Ensure that the SSH PermitRootLogin is configured"
	const banner = "Ensure that the SSH warning banner is configured (banner file)"
	tricky := "He said \"no\" \\ then\n${port} </script> ünïcode\t\x01"
	for _, tc := range []struct {
		name   string
		params []NameValue
		check  string
		field  func(check.Check) string
		want   string
	}{
		{"by the full name", []NameValue{{prl + ";DesiredObjectValue", "without-password"}}, prl, func(c check.Check) string { return string(c.Value) }, "without-password"},
		{"by the short name, in any case", []NameValue{{"PERMITROOTLOGIN", "forced-commands-only"}}, prl, func(c check.Check) string { return string(c.Value) }, "forced-commands-only"},
		{"a default", []NameValue{{"port", "2222"}}, prl, func(c check.Check) string { return string(c.Value) }, "no"},
		{"another check's parameter", []NameValue{{"port", "2222"}}, "Ensure that the SSH port is configured", func(c check.Check) string { return string(c.Value) }, "2222"},
		{"the banner's line breaks", nil, banner, func(c check.Check) string { return *c.Contents }, "#######################################################################\n\nAuthorized access only!\n\nIf you are not authorized to access or use this system, disconnect now!\n\n#######################################################################\n"},
		{"quotes, backslashes, line breaks and placeholders are text", []NameValue{{"banner", tricky}}, banner, func(c check.Check) string { return *c.Contents }, tricky},
		{"an empty value", []NameValue{{"banner", ""}}, banner, func(c check.Check) string { return *c.Contents }, ""},
		{"the mode", []NameValue{{"accessPermissionsForSshdConfig", "0644"}}, "Ensure that permissions on /etc/ssh/sshd_config are configured", func(c check.Check) string { return c.MaxMode }, "0644"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.field(checkByName(t, mustRender(t, c, tc.params), tc.check))
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestRenderIsCanonical: the same values give the same bytes, however they were named,
// so hashes over rendered checks are stable.
func TestRenderIsCanonical(t *testing.T) {
	c, _ := Lookup("LinuxSshServerSecurityBaseline")
	a := mustRender(t, c, []NameValue{{"port", "22"}, {"Ensure that the SSH LogLevel is configured;DesiredObjectValue", "VERBOSE"}})
	b := mustRender(t, c, []NameValue{{"logLevel", "VERBOSE"}})
	if !bytes.Equal(a, b) {
		t.Errorf("the same values render differently:\n%s\n%s", a, b)
	}
	if d := mustRender(t, c, nil); bytes.Equal(a, d) {
		t.Error("a changed value renders as the defaults do")
	}
}

func TestRenderProblems(t *testing.T) {
	ssh, _ := Lookup("LinuxSshServerSecurityBaseline")
	pw, _ := Lookup("PasswordPolicy_msid232")
	img, _ := Lookup("gild-image-baseline")
	for _, tc := range []struct {
		name   string
		c      *Configuration
		params []NameValue
		want   []string
	}{
		{"unknown, misspelt and repeated names, all at once", ssh, []NameValue{
			{"permitRootLogin", "no"},
			{"Ensure that the SSH PermitRootLogin is configured;DesiredObjectValue", "no"},
			{"premitRootLogin", "no"},
			{"colour", "red"},
		}, []string{
			`configurationParameter[1].name: "Ensure that the SSH PermitRootLogin is configured;DesiredObjectValue" is parameter permitRootLogin, already given at configurationParameter[0]`,
			`configurationParameter[2].name: "premitRootLogin" is not a parameter of configuration LinuxSshServerSecurityBaseline; did you mean "permitRootLogin"?`,
			`configurationParameter[3].name: "colour" is not a parameter of configuration LinuxSshServerSecurityBaseline`,
		}},
		{"values that make invalid checks", ssh, []NameValue{
			{"port", "22"},
			{"accessPermissionsForSshdConfig", "rw-------"},
			{"permitRootLogin", "no\nPermitRootLogin yes"},
			{"logLevel", " "},
		}, []string{
			`configurationParameter[1].value: "rw-------" makes checks[0].maxMode invalid: "rw-------" is not an octal mode such as "0644"`,
			`configurationParameter[3].value: " " makes checks[2].value invalid: required (or present: false for a setting that must not be set)`,
			`configurationParameter[2].value: "no\nPermitRootLogin yes" makes checks[9].value invalid: a setting's value is on one line`,
		}},
		{"a configuration without parameters", pw, []NameValue{{"x", "1"}}, []string{
			`configurationParameter[0].name: "x" is not a parameter of configuration PasswordPolicy_msid232, which has none`,
		}},
		{"the image baseline", img, []NameValue{{"x", "1"}}, []string{
			`configurationParameter[0].name: configuration gild-image-baseline runs the image's own checks and has no parameters`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Render(tc.c, tc.params)
			var ie *InvalidError
			if !errors.As(err, &ie) || out != nil {
				t.Fatalf("Render = %s, %v; want an *InvalidError", out, err)
			}
			if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, tc.want) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestParameterHash(t *testing.T) {
	for _, tc := range []struct {
		params []NameValue
		want   string
	}{
		{nil, ""},
		{[]NameValue{{"a", "1"}}, "YT0x"}, // "a=1"
		{[]NameValue{{"a", "1"}, {"b", "2"}}, "YT0xLGI9Mg=="},        // "a=1,b=2"
		{[]NameValue{{"b", "2"}, {"a", "1"}}, "Yj0yLGE9MQ=="},        // the order given counts
		{[]NameValue{{"x", ""}, {"é", "a=b,c"}}, "eD0sw6k9YT1iLGM="}, // "x=,é=a=b,c": no escaping, as Azure's concat
	} {
		if got := ParameterHash(tc.params); got != tc.want {
			t.Errorf("ParameterHash(%v) = %q, want %q", tc.params, got, tc.want)
		}
	}
}

// TestSshBaselineOnADebianConfig runs the SSH baseline, defaults in place, against the
// sshd_config Debian ships plus a cloud image's drop-in, corrects it as
// ApplyAndAutoCorrect would, and finds it compliant, with Debian's file kept apart from
// the lines gild set.
func TestSshBaselineOnADebianConfig(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string, mode os.FileMode) {
		hp := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(hp), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(hp, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(hp, mode); err != nil {
			t.Fatal(err)
		}
	}
	debian := "# See the sshd_config(5) manpage for details\n\nInclude /etc/ssh/sshd_config.d/*.conf\n\n#Port 22\n#PermitRootLogin prohibit-password\nKbdInteractiveAuthentication no\nUsePAM yes\nX11Forwarding yes\nPrintMotd no\nAcceptEnv LANG LC_*\nSubsystem\tsftp\t/usr/lib/openssh/sftp-server\n"
	write("/etc/ssh/sshd_config", debian, 0o644)
	write("/etc/ssh/sshd_config.d/50-cloud-init.conf", "PasswordAuthentication no\nPermitRootLogin yes\n", 0o600)

	c, _ := Lookup("LinuxSshServerSecurityBaseline")
	set, err := check.Parse(mustRender(t, c, nil))
	if err != nil {
		t.Fatal(err)
	}
	env := check.OfflineEnv(root)
	ctx := context.Background()
	var failing []string
	for _, r := range set.Evaluate(ctx, env) {
		if r.Status != check.StatusCompliant {
			failing = append(failing, r.Name)
		}
	}
	// What a stock Debian sshd already does as the baseline wants: the rest fails.
	wantFailing := []string{
		"Ensure that permissions on /etc/ssh/sshd_config are configured",
		"Ensure that the denied users for SSH are configured",
		"Ensure that the denied groups for SSH are configured",
		"Ensure that the SSH PermitRootLogin is configured",
		"Ensure that the SSH ClientAliveCountMax is configured",
		"Ensure that the SSH ClientAliveInterval is configured",
		"Ensure that the SSH LoginGraceTime is configured",
		"Ensure that only approved MAC algorithms are used",
		"Ensure that the SSH warning banner is configured",
		"Ensure that the SSH warning banner is configured (banner file)",
		"Ensure that appropriate ciphers are used for SSH",
	}
	if !slices.Equal(failing, wantFailing) {
		t.Errorf("failing before correction:\n%s\nwant:\n%s", strings.Join(failing, "\n"), strings.Join(wantFailing, "\n"))
	}
	checks := set.Checks()
	for i := range checks {
		if _, err := checks[i].Apply(ctx, env); err != nil {
			t.Errorf("apply %s: %v", checks[i].Name, err)
		}
	}
	for _, r := range set.Evaluate(ctx, env) {
		if r.Status != check.StatusCompliant {
			t.Errorf("after correction: %+v", r)
		}
	}
	data, err := os.ReadFile(filepath.Join(root, "/etc/ssh/sshd_config"))
	if err != nil {
		t.Fatal(err)
	}
	// Debian's text is all there, in order, after the header comment and the lines gild
	// put before the Include.
	header := "# See the sshd_config(5) manpage for details\n\n"
	if !strings.HasPrefix(string(data), header) || !strings.HasSuffix(string(data), strings.TrimPrefix(debian, header)) {
		t.Errorf("sshd_config after correction:\n%s", data)
	}
	dropIn, _ := os.ReadFile(filepath.Join(root, "/etc/ssh/sshd_config.d/50-cloud-init.conf"))
	if string(dropIn) != "PasswordAuthentication no\nPermitRootLogin no\n" {
		t.Errorf("the drop-in that set PermitRootLogin was not corrected in place: %q", dropIn)
	}
}
