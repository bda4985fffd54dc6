package check

import (
	"bytes"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ with what the code writes now")

// sampleResults has one result of each status, with text that needs escaping in XML.
var sampleResults = []Result{
	{Name: "sshd config mode", Kind: KindFile, Status: StatusCompliant, Reasons: []Reason{}, Expected: "exists; mode 0600", Actual: "exists; mode 0600", DurationMs: 1},
	{Name: "root login", Kind: KindLineInFile, Status: StatusNonCompliant,
		Reasons: []Reason{
			{Code: CodeLineMismatch, Phrase: `Line 3 of /etc/ssh/sshd_config is "PermitRootLogin yes"; expected "PermitRootLogin no".`},
			{Code: CodeLineMismatch, Phrase: `Line 9 of /etc/ssh/sshd_config is "PermitRootLogin <maybe> & more"; expected "PermitRootLogin no".`},
		},
		Expected: `line "PermitRootLogin no" (every line matching /^\s*PermitRootLogin\b/ equal to it)`, Actual: `line 3: "PermitRootLogin yes", line 9: "PermitRootLogin <maybe> & more"`, DurationMs: 2},
	{Name: "forwarding", Kind: KindSysctl, Status: StatusError,
		Reasons:  []Reason{{Code: CodeNotLive, Phrase: "Reading sysctl net.ipv4.ip_forward needs the running system; the offline root /mnt/image is offline."}},
		Expected: "net.ipv4.ip_forward = 0", Actual: "unknown", DurationMs: 0},
	{Name: "hello", Kind: KindCommand, Status: StatusNonCompliant,
		Reasons:  []Reason{{Code: CodeCommandExitStatus, Phrase: "Command \"hello\" exited with status 127; expected exit status 0. Its stderr ends: \"sh: 1: hello: not found\x1b[0m\""}},
		Expected: "exit status 0", Actual: "exit status 127", DurationMs: 1234},
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./check -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from what the code writes (go test ./check -run %s -update rewrites it):\n%s", path, t.Name(), got)
	}
}

func TestWriteJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, sampleResults); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.json", buf.Bytes())

	buf.Reset()
	if err := WriteJSON(&buf, nil); err != nil || buf.String() != "[]\n" {
		t.Errorf("no results: %q, %v", buf.String(), err)
	}
}

func TestWriteJUnit(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJUnit(&buf, "debian-hardened 1.4.0", sampleResults); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.junit.xml", buf.Bytes())

	// What CI systems read back: the counts and one case per check.
	var suite junitSuite
	if err := xml.Unmarshal(buf.Bytes(), &suite); err != nil {
		t.Fatalf("the report is not well-formed XML: %v", err)
	}
	if suite.Tests != 4 || suite.Failures != 2 || suite.Errors != 1 || len(suite.Cases) != 4 || suite.Time != "1.237" {
		t.Errorf("suite counts: %+v", suite)
	}
	if suite.Cases[1].Failure == nil || suite.Cases[1].Failure.Type != "LineMismatch,LineMismatch" || suite.Cases[2].Error == nil || suite.Cases[0].Failure != nil {
		t.Errorf("cases: %+v", suite.Cases)
	}
}
