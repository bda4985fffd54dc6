package agent

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gildhq/gild/agentproto"
	"github.com/gildhq/gild/check"
)

// writeRoot writes files (root path → contents) under a new temporary root.
func writeRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, contents := range files {
		hp := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(hp), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(hp, []byte(contents), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// guestFiles is a small guest: its identity, a setting, and a file the checks look at.
var guestFiles = map[string]string{
	"/etc/os-release":               "# comment\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
	"/proc/uptime":                  "12.52 20.01\n",
	"/proc/sys/kernel/hostname":     "validate-1\n",
	"/proc/sys/kernel/osrelease":    "6.1.0-27-cloud-amd64\n",
	"/proc/sys/net/ipv4/ip_forward": "1\n",
	"/etc/issue":                    "Authorized use only\n",
}

const guestChecks = `[
	{"name":"issue","kind":"file","path":"/etc/issue","contains":"Authorized"},
	{"name":"forwarding","kind":"sysctl","key":"net.ipv4.ip_forward","value":0},
	{"name":"motd","kind":"file","path":"/etc/motd"}
]`

func mustParse(t *testing.T, js string) check.Set {
	t.Helper()
	set, err := check.Parse([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestValidate runs checks on a guest and reads the stream back as the host does.
func TestValidate(t *testing.T) {
	env := check.Env{Root: writeRoot(t, guestFiles), Live: true}
	var out bytes.Buffer
	summary, err := Validate(context.Background(), mustParse(t, guestChecks), env, &out)
	if err != nil {
		t.Fatal(err)
	}
	want := check.Counts{Total: 3, Compliant: 1, NonCompliant: 2}
	if summary.Counts != want || len(summary.Results) != 3 {
		t.Fatalf("summary %+v", summary)
	}
	run, err := agentproto.ReadRun(&out)
	if err != nil {
		t.Fatalf("the host cannot read the run: %v", err)
	}
	r := run.Ready
	if r.Checks != 3 || r.UptimeSeconds != 12.52 || r.Hostname != "validate-1" || r.Kernel != "6.1.0-27-cloud-amd64" || r.Time.IsZero() || !strings.HasPrefix(r.Agent, "gild-agent") {
		t.Errorf("ready %+v", r)
	}
	if wantOS := map[string]string{"PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)", "ID": "debian", "VERSION_ID": "12"}; !reflect.DeepEqual(r.OSRelease, wantOS) {
		t.Errorf("osRelease %v, want %v", r.OSRelease, wantOS)
	}
	for i, wr := range run.Results {
		if got := ResultFromWire(wr); !reflect.DeepEqual(got, summary.Results[i]) {
			t.Errorf("result %d on the wire %+v, in the summary %+v", i, got, summary.Results[i])
		}
	}
	if run.Done.Total != 3 || run.Done.NonCompliant != 2 || run.Done.Passed() {
		t.Errorf("done %+v", run.Done)
	}
}

// TestValidateCanceled: a canceled run still ends with done, which says why it stopped.
func TestValidateCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	_, err := Validate(ctx, mustParse(t, guestChecks), check.OfflineEnv(writeRoot(t, guestFiles)), &out)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	run, err := agentproto.ReadRun(&out)
	if err != nil {
		t.Fatalf("the host cannot read the aborted run: %v", err)
	}
	if run.Done.Aborted != "stopped after 0 of 3 checks: context canceled" || run.Done.Passed() {
		t.Errorf("done %+v", run.Done)
	}
}

type failingWriter struct{ after int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.after == 0 {
		return 0, errors.New("port closed")
	}
	w.after--
	return len(p), nil
}

func TestValidateWriteError(t *testing.T) {
	for after := range 3 {
		_, err := Validate(context.Background(), mustParse(t, guestChecks), check.OfflineEnv(writeRoot(t, guestFiles)), &failingWriter{after: after})
		if err == nil || !strings.Contains(err.Error(), "port closed") {
			t.Errorf("failing after %d writes: err = %v", after, err)
		}
	}
}

func TestParseOSRelease(t *testing.T) {
	got := parseOSRelease([]byte("NAME='Debian GNU/Linux'\nVERSION=\"12 (\\\"bookworm\\\")\"\n  # comment\nID=debian\nbroken line\nHOME_URL=\"https://www.debian.org/\"\n=empty\n"))
	want := map[string]string{"NAME": "Debian GNU/Linux", "VERSION": `12 ("bookworm")`, "ID": "debian", "HOME_URL": "https://www.debian.org/"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
