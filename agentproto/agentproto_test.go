package agentproto

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	readyLine  = `{"version":1,"type":"ready","ready":{"time":"2026-11-24T12:00:00Z","uptimeSeconds":12.5,"hostname":"validate-1","osRelease":{"ID":"debian"},"checks":2}}`
	result1    = `{"version":1,"type":"result","result":{"name":"a","kind":"file","status":"Compliant","reasons":[],"durationMs":1}}`
	result2    = `{"version":1,"type":"result","result":{"name":"b","kind":"sysctl","status":"NonCompliant","reasons":[{"code":"SysctlValueMismatch","phrase":"no"}],"durationMs":0}}`
	doneLine   = `{"version":1,"type":"done","done":{"total":2,"compliant":1,"nonCompliant":1,"error":0,"durationMs":3}}`
	serialBoot = "\x1b[2J\x1b[01;01H\r\nSeaBIOS (version 1.16.2-debian-1.16.2-1)\r\n" +
		"Booting from Hard Disk...\r\n" +
		"[    0.000000] Linux version 6.1.0-27-cloud-amd64 {not json\r\n" +
		"{\"level\":\"info\",\"msg\":\"some other JSON logger\"}\r\n" +
		"\xff\xfe binary \x00 noise\r\n" +
		"\r\n"
)

// TestDecoderSkipsNoiseBeforeTheFirstMessage reads what a serial console looks like:
// firmware and kernel output, then the agent's lines with CRLF endings.
func TestDecoderSkipsNoiseBeforeTheFirstMessage(t *testing.T) {
	stream := serialBoot + strings.Repeat("x", MaxLineBytes+10) + "\r\n" +
		readyLine + "\r\n" + result1 + "\r\n\r\n" + result2 + "\r\n" + doneLine // no final line break
	d := NewDecoder(strings.NewReader(stream))
	var types []Type
	for {
		m, err := d.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, m.Type)
	}
	if want := []Type{TypeReady, TypeResult, TypeResult, TypeDone}; !reflect.DeepEqual(types, want) {
		t.Fatalf("types %v, want %v", types, want)
	}
	if d.Skipped() != 7 {
		t.Errorf("skipped %d noise lines, want 7", d.Skipped())
	}
}

// TestDecoderErrors: after the first message nothing is noise; a line that claims to be a
// message is never noise; and the decoder goes on after an error.
func TestDecoderErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream string
		want   error
		line   int
	}{
		{"garbage after the first message", readyLine + "\n[ 12.3] kernel: oops\n" + result1, ErrMalformed, 2},
		{"long line after the first message", readyLine + "\n" + strings.Repeat("{", MaxLineBytes+1) + "\n" + result1, ErrMalformed, 2},
		{"another version", "noise\n" + strings.Replace(readyLine, `"version":1`, `"version":2`, 1) + "\n" + readyLine, ErrVersion, 2},
		{"a message without its payload", `{"version":1,"type":"result","ready":{}}` + "\n" + readyLine, ErrMalformed, 1},
		{"an unknown type", `{"version":1,"type":"hello"}` + "\n" + readyLine, ErrMalformed, 1},
		{"two payloads", `{"version":1,"type":"done","done":{},"ready":{}}` + "\n" + readyLine, ErrMalformed, 1},
		{"a result without a name", strings.Replace(result1, `"name":"a"`, `"name":""`, 1) + "\n" + readyLine, ErrMalformed, 1},
		{"a result with another status", strings.Replace(result1, `"Compliant"`, `"Pending"`, 1) + "\n" + readyLine, ErrMalformed, 1},
		{"done that does not add up", strings.Replace(doneLine, `"total":2`, `"total":3`, 1) + "\n" + readyLine, ErrMalformed, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(strings.NewReader(tc.stream))
			var err error
			for err == nil {
				_, err = d.Next()
			}
			var le *LineError
			if !errors.Is(err, tc.want) || !errors.As(err, &le) || le.Line != tc.line {
				t.Fatalf("got %v, want %v at line %d", err, tc.want, tc.line)
			}
			// The decoder goes on: the last line of each stream is a good message.
			if m, err := d.Next(); err != nil || m.Version != Version {
				t.Fatalf("after the error: %+v, %v", m, err)
			}
		})
	}
}

func TestEncoderRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	e := NewEncoder(&buf)
	ready := Ready{Time: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC), UptimeSeconds: 12.5, Hostname: "h", Kernel: "6.1.0", OSRelease: map[string]string{"ID": "debian", "VERSION_ID": "12"}, Agent: "test", Checks: 1}
	result := Result{Name: "a", Kind: "file", Status: StatusError, Reasons: []Reason{{Code: "ReadError", Phrase: "Cannot read /x: permission denied."}}, Expected: "exists", Actual: "unknown", DurationMs: 4}
	done := Done{Total: 1, Error: 1, DurationMs: 5}
	for _, err := range []error{e.Ready(ready), e.Result(result), e.Done(done)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(buf.String(), "\n"); n != 3 {
		t.Fatalf("%d lines, want 3:\n%s", n, buf.String())
	}
	run, err := ReadRun(&buf)
	if err != nil {
		t.Fatal(err)
	}
	want := Run{Ready: ready, Results: []Result{result}, Done: done}
	if !reflect.DeepEqual(run, want) {
		t.Fatalf("read back\n%+v\nwant\n%+v", run, want)
	}
	if run.Done.Passed() {
		t.Error("a run with an error passed")
	}

	buf.Reset()
	if err := e.Result(Result{Name: "no reasons", Status: StatusCompliant}); err != nil || !strings.Contains(buf.String(), `"reasons":[]`) {
		t.Errorf("nil reasons written as %s (%v)", buf.String(), err)
	}
	if err := e.Result(Result{Name: "x", Status: "Maybe"}); !errors.Is(err, ErrMalformed) {
		t.Errorf("an invalid result was written: %v", err)
	}
}

func TestReadRun(t *testing.T) {
	lines := func(ls ...string) string { return strings.Join(ls, "\n") + "\n" }
	good := lines(readyLine, result1, result2, doneLine)
	run, err := ReadRun(strings.NewReader(serialBoot + good + "anything after done is not read {"))
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Results) != 2 || run.Ready.Hostname != "validate-1" || run.Done.Total != 2 || run.Skipped != 6 {
		t.Fatalf("run %+v", run)
	}
	aborted := strings.Replace(doneLine, `"total":2,"compliant":1`, `"total":1,"compliant":0`, 1)
	aborted = strings.Replace(aborted, `"durationMs":3`, `"durationMs":3,"aborted":"canceled"`, 1)
	if _, err := ReadRun(strings.NewReader(lines(readyLine, result2, aborted))); err != nil {
		t.Errorf("an aborted run with fewer results than announced: %v", err)
	}
	for _, tc := range []struct {
		name   string
		stream string
		want   error
		text   string
	}{
		{"empty", "", ErrIncomplete, "before the ready message"},
		{"noise only", serialBoot, ErrIncomplete, "before the ready message"},
		{"no done", lines(readyLine, result1), ErrIncomplete, "after 1 of 2 results, without done"},
		{"result first", lines(result1, readyLine), ErrProtocol, "line 1: protocol violation: a result message before ready"},
		{"two readies", lines(readyLine, readyLine), ErrProtocol, "a second ready message"},
		{"same check twice", lines(readyLine, result1, result1), ErrProtocol, `a second result for check "a"`},
		{"done miscounts", lines(readyLine, result1, strings.Replace(result1, `"name":"a"`, `"name":"c"`, 1), doneLine), ErrProtocol, "done counts 2 (1 compliant, 1 non-compliant, 0 error) but 2 results arrived (2, 0, 0)"},
		{"fewer than announced", lines(readyLine, result1, `{"version":1,"type":"done","done":{"total":1,"compliant":1,"nonCompliant":0,"error":0,"durationMs":3}}`), ErrProtocol, "ready announced 2 checks but 1 results arrived"},
		{"bad line", lines(readyLine, "oops"), ErrMalformed, "line 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadRun(strings.NewReader(tc.stream))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("got %v, want %v containing %q", err, tc.want, tc.text)
			}
		})
	}
}
