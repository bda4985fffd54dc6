package agent

import (
	"bytes"
	"context"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gildhq/gild/agentproto"
)

func writeFile(t *testing.T, dir, name, contents string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(contents), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMainCommands runs the command line against an offline root: exit statuses and what each
// output form says.
func TestMainCommands(t *testing.T) {
	dir := t.TempDir()
	root := writeRoot(t, guestFiles)
	compliant := writeFile(t, dir, "ok.json", `{"checks":[{"name":"issue","kind":"file","path":"/etc/issue","contains":"Authorized"}]}`)
	failing := writeFile(t, dir, "failing.json", `[{"name":"issue","kind":"file","path":"/etc/issue","contains":"Authorized"},{"name":"motd","kind":"file","path":"/etc/motd"}]`)
	erroring := writeFile(t, dir, "erroring.json", `[{"name":"motd","kind":"file","path":"/etc/motd"},{"name":"forwarding","kind":"sysctl","key":"net.ipv4.ip_forward","value":0}]`)
	invalid := writeFile(t, dir, "invalid.json", `[{"name":"a","kind":"file"},{"name":"b","kind":"nope"}]`)
	for _, tc := range []struct {
		name   string
		args   []string
		status int
		stdout []string
		stderr []string
	}{
		{"no command", nil, ExitError, nil, []string{"Usage:"}},
		{"unknown command", []string{"frobnicate"}, ExitError, nil, []string{`unknown command "frobnicate"`}},
		{"help", []string{"help"}, ExitOK, []string{"gild-agent validate --checks FILE"}, nil},
		{"flag help", []string{"check", "-h"}, ExitOK, []string{"Usage:"}, nil},
		{"version", []string{"version"}, ExitOK, []string{"gild-agent", "agentproto version 1"}, nil},
		{"unknown flag", []string{"check", "--colour"}, ExitError, nil, []string{"flag provided but not defined: -colour"}},
		{"missing --checks", []string{"check", "--root", root}, ExitError, nil, []string{"--checks FILE is required"}},
		{"extra argument", []string{"check", "--checks", compliant, "extra"}, ExitError, nil, []string{`unexpected argument "extra"`}},
		{"both formats", []string{"check", "--checks", compliant, "--json", "--junit"}, ExitError, nil, []string{"--json or --junit, not both"}},
		{"no such root", []string{"check", "--checks", compliant, "--root", filepath.Join(dir, "nope")}, ExitError, nil, []string{"is not a directory"}},
		{"no such file", []string{"check", "--checks", filepath.Join(dir, "nope.json")}, ExitError, nil, []string{"read checks:", "no such file"}},
		{"invalid checks, every problem", []string{"check", "--checks", invalid}, ExitError, nil, []string{
			"invalid.json is not a valid check set:", "  checks[0].path: required", `  checks[1].kind: unknown kind "nope"`}},
		{"compliant", []string{"check", "--checks", compliant, "--root", root}, ExitOK, []string{"STATUS", "Compliant  issue  file\n", "1 checks: 1 compliant, 0 non-compliant, 0 error"}, nil},
		{"non-compliant", []string{"check", "--checks", failing, "--root", root}, ExitNonCompliant, []string{"NonCompliant  motd   file  FileMissing: File /etc/motd does not exist"}, nil},
		{"an error outranks non-compliance", []string{"check", "--checks", erroring, "--root", root}, ExitError, []string{"Error         forwarding  sysctl  NotLive:"}, nil},
		{"json", []string{"check", "--checks", failing, "--root", root, "--json"}, ExitNonCompliant, []string{`"code": "FileMissing"`, `"status": "Compliant"`}, nil},
		{"junit", []string{"check", "--checks", failing, "--root", root, "--junit"}, ExitNonCompliant, []string{`<testsuite name="failing.json" tests="2" failures="1" errors="0"`}, nil},
		{"validate without --checks", []string{"validate"}, ExitError, nil, []string{"--checks FILE is required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			status := Main(context.Background(), tc.args, &stdout, &stderr)
			if status != tc.status {
				t.Errorf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", status, tc.status, stdout.String(), stderr.String())
			}
			for _, want := range tc.stdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
				}
			}
			for _, want := range tc.stderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
		})
	}
}

func TestMainJUnitIsXML(t *testing.T) {
	dir := t.TempDir()
	checks := writeFile(t, dir, "c.json", `[{"name":"motd","kind":"file","path":"/etc/motd"}]`)
	var stdout bytes.Buffer
	Main(context.Background(), []string{"check", "--checks", checks, "--root", writeRoot(t, guestFiles), "--junit"}, &stdout, &bytes.Buffer{})
	var suite struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
	}
	if err := xml.Unmarshal(stdout.Bytes(), &suite); err != nil || suite.Tests != 1 || suite.Failures != 1 {
		t.Fatalf("%+v, %v:\n%s", suite, err, stdout.String())
	}
}

// TestFindResultsPort finds the port by its udev link, or by its name in /sys without udev.
func TestFindResultsPort(t *testing.T) {
	withLink := writeRoot(t, map[string]string{"/dev/virtio-ports/org.gild.results": ""})
	withSys := writeRoot(t, map[string]string{
		"/sys/class/virtio-ports/vport1p1/name": "org.qemu.guest_agent.0\n",
		"/sys/class/virtio-ports/vport1p2/name": "org.gild.results\n",
		"/dev/vport1p1":                         "",
		"/dev/vport1p2":                         "",
	})
	sysWithoutDevice := writeRoot(t, map[string]string{"/sys/class/virtio-ports/vport1p2/name": "org.gild.results\n"})
	for _, tc := range []struct {
		name, root, want string
	}{
		{"udev link", withLink, filepath.Join(withLink, "dev/virtio-ports/org.gild.results")},
		{"sysfs name", withSys, filepath.Join(withSys, "dev/vport1p2")},
		{"named but no device", sysWithoutDevice, ""},
		{"no port", t.TempDir(), ""},
	} {
		got, found := findResultsPort(tc.root)
		if got != tc.want || found != (tc.want != "") {
			t.Errorf("%s: findResultsPort = %q, %v; want %q", tc.name, got, found, tc.want)
		}
	}
}

// TestValidateCommand writes to the port it finds (a file stands in for the device),
// and shows the table on standard output for the console's log.
func TestValidateCommand(t *testing.T) {
	sysRoot := writeRoot(t, map[string]string{"/sys/class/virtio-ports/vport2p1/name": agentproto.ResultsPortName + "\n", "/dev/vport2p1": ""})
	checks := writeFile(t, t.TempDir(), "c.json", `[{"name":"root","kind":"user","user":"root","uid":0},{"name":"gone","kind":"file","path":"/nonexistent/gild-test","exists":false}]`)
	var stdout, stderr bytes.Buffer
	status := runValidate(context.Background(), []string{"--checks", checks}, &stdout, &stderr, sysRoot)
	if status != ExitOK {
		t.Fatalf("status %d\nstdout:\n%s\nstderr:\n%s", status, stdout.String(), stderr.String())
	}
	port := filepath.Join(sysRoot, "dev/vport2p1")
	f, err := os.Open(port)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	run, err := agentproto.ReadRun(f)
	if err != nil || len(run.Results) != 2 || !run.Done.Passed() {
		t.Fatalf("run on the port: %+v, %v", run, err)
	}
	if !strings.Contains(stdout.String(), "2 checks: 2 compliant") || !strings.Contains(stderr.String(), "results written to "+port) {
		t.Errorf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}

	// --out wins over the port; with neither, the lines go to standard output.
	out := filepath.Join(t.TempDir(), "results.jsonl")
	if status := runValidate(context.Background(), []string{"--checks", checks, "--out", out}, &bytes.Buffer{}, &bytes.Buffer{}, sysRoot); status != ExitOK {
		t.Fatalf("--out: status %d", status)
	}
	if data, err := os.ReadFile(out); err != nil || !bytes.HasPrefix(data, []byte(`{"version":1,"type":"ready"`)) {
		t.Errorf("--out file: %.80q, %v", data, err)
	}
	stdout.Reset()
	if status := runValidate(context.Background(), []string{"--checks", checks}, &stdout, &bytes.Buffer{}, t.TempDir()); status != ExitOK {
		t.Fatalf("stdout: status %d", status)
	}
	if _, err := agentproto.ReadRun(&stdout); err != nil {
		t.Errorf("standard output is not a run: %v", err)
	}
}
