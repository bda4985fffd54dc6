package builder

import (
	"bufio"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func collect() (*[]Line, Sink) {
	var lines []Line
	return &lines, func(l Line) { lines = append(lines, l) }
}

func TestRunStreamsLinesAndNamesTheFailure(t *testing.T) {
	lines, sink := collect()
	r := &Runner{Sink: sink, StderrTail: 2}
	err := r.Run(context.Background(), Command{Path: "sh", Args: []string{"-c", "echo out1; echo e1 >&2; echo e2 >&2; printf 'e3' >&2; exit 3"}})
	var ce *CommandError
	if !errors.As(err, &ce) {
		t.Fatalf("want a *CommandError, got %v", err)
	}
	if ce.ExitCode != 3 {
		t.Errorf("exit code %d, want 3", ce.ExitCode)
	}
	if got := strings.Join(ce.Stderr, "|"); got != "e2|e3" {
		t.Errorf("stderr tail %q, want the last two lines e2|e3", got)
	}
	msg := err.Error()
	for _, want := range []string{"sh -c 'echo out1;", "exit status 3", "e3"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	var got []string
	for _, l := range *lines {
		if l.Time.IsZero() || l.Source != "sh" {
			t.Errorf("line %+v: want a time and source sh", l)
		}
		got = append(got, l.Stream+":"+l.Text)
	}
	// stdout and stderr are read concurrently: check each stream's order on its own.
	joined := strings.Join(got, ",")
	if !strings.Contains(joined, "stdout:out1") || !strings.Contains(joined, "stderr:e1") || strings.Index(joined, "stderr:e1") > strings.Index(joined, "stderr:e3") {
		t.Errorf("log lines %q", joined)
	}
}

func TestOutputKeepsStdoutOutOfTheLog(t *testing.T) {
	lines, sink := collect()
	r := &Runner{Sink: sink}
	out, err := r.Output(context.Background(), Command{Path: "sh", Args: []string{"-c", "echo '{\"a\":1}'; echo note >&2"}})
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "{\"a\":1}\n" {
		t.Errorf("output %q", out)
	}
	if len(*lines) != 1 || (*lines)[0].Text != "note" {
		t.Errorf("log %+v, want only the stderr note", *lines)
	}
}

func TestCancelStopsTheWholeProcessGroup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	r := &Runner{KillGrace: time.Second}
	start := time.Now()
	// The child sleep holds stdout open: without the group kill, Wait would wait for it.
	err := r.Run(ctx, Command{Path: "sh", Args: []string{"-c", "sleep 30 & wait"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want an error wrapping context.DeadlineExceeded, got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to stop", d)
	}
}

func TestStartFailureNamesTheCommand(t *testing.T) {
	err := (&Runner{}).Run(context.Background(), Command{Path: "/nonexistent/tool", Args: []string{"a b"}})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/tool 'a b'") {
		t.Fatalf("error %v should name the command", err)
	}
}

func TestLineString(t *testing.T) {
	l := Line{Time: time.Date(2026, 11, 24, 13, 1, 2, 345e6, time.UTC), Source: "mmdebstrap", Stream: "stderr", Text: "I: done"}
	if got, want := l.String(), "2026-11-24T13:01:02.345Z mmdebstrap[stderr]: I: done"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "''",
		"--mode=root":            "--mode=root",
		"deb http://m/ bookworm": "'deb http://m/ bookworm'",
		"it's":                   `'it'\''s'`,
		"/a/b.img,format=raw":    "/a/b.img,format=raw",
		`$HOME`:                  `'$HOME'`,
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCleanupRunsInReverseCollectingErrorsAfterCancel(t *testing.T) {
	var c Cleanup
	var order []string
	for _, name := range []string{"a", "b", "c"} {
		c.Push(name, func(ctx context.Context) error {
			if ctx.Err() != nil {
				t.Errorf("step %s got a cancelled context", name)
			}
			order = append(order, name)
			if name != "c" {
				return errors.New("failed " + name)
			}
			return nil
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := c.Run(ctx)
	if got := strings.Join(order, ""); got != "cba" {
		t.Errorf("order %q, want cba", got)
	}
	if err == nil || !strings.Contains(err.Error(), "undo b: failed b") || !strings.Contains(err.Error(), "undo a: failed a") {
		t.Errorf("error %v should name both failed steps", err)
	}
	if c.Len() != 0 || c.Run(ctx) != nil {
		t.Error("a second Run should find the stack empty")
	}
}

func TestCleanupRunInto(t *testing.T) {
	f := func() (err error) {
		var c Cleanup
		defer c.RunInto(context.Background(), &err)
		c.Push("x", func(context.Context) error { return errors.New("boom") })
		return errors.New("work failed")
	}
	err := f()
	if err == nil || !strings.Contains(err.Error(), "work failed") || !strings.Contains(err.Error(), "undo x: boom") {
		t.Errorf("got %v, want both the work's and the undo's error", err)
	}
}

func TestMountsUnder(t *testing.T) {
	info := `22 1 0:21 / /proc rw - proc proc rw
30 22 0:5 / /work/root rw - ext4 /dev/vda rw
31 30 0:5 / /work/root/dev rw - devtmpfs udev rw
32 30 0:5 / /work/root\040two/proc rw - proc proc rw
33 30 0:5 / /work/rootfs rw - proc proc rw
`
	got, err := mountsUnder(bufio.NewScanner(strings.NewReader(info)), "/work/root")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "/work/root,/work/root/dev" {
		t.Errorf("got %q", got)
	}
	got, _ = mountsUnder(bufio.NewScanner(strings.NewReader(info)), "/work/root two")
	if strings.Join(got, ",") != "/work/root two/proc" {
		t.Errorf("escaped mount point: got %q", got)
	}
}

func TestRemoveTree(t *testing.T) {
	dir := t.TempDir() + "/x"
	if err := os.MkdirAll(dir+"/a/b", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := RemoveTree(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still there: %v", dir, err)
	}
}
