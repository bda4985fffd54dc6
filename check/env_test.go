package check

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHostPath: links resolve as if the root were "/", and nothing resolves outside it.
func TestHostPath(t *testing.T) {
	r := newRoot(t)
	r.file("/usr/share/zoneinfo/UTC", "TZif")
	r.link("/etc/localtime", "/usr/share/zoneinfo/UTC")         // absolute
	r.link("/etc/os-release", "../usr/lib/os-release")          // relative
	r.link("/lib", "usr/lib")                                   // merged /usr
	r.link("/etc/escape", "../../../../../../../../etc/passwd") // climbs past the root
	r.link("/etc/abs-escape", "/../../etc/shadow")              // absolute and climbing
	r.link("/etc/loop", "/etc/loop")                            // to itself
	r.file("/usr/lib/os-release", "ID=debian\n")
	for _, tc := range []struct {
		path       string
		followLast bool
		want       string // relative to the root; "" for an error
	}{
		{"/etc/localtime", true, "/usr/share/zoneinfo/UTC"},
		{"/etc/localtime", false, "/etc/localtime"},
		{"/etc/os-release", true, "/usr/lib/os-release"},
		{"/lib/os-release", true, "/usr/lib/os-release"},
		{"/etc/escape", true, "/etc/passwd"},
		{"/etc/abs-escape", true, "/etc/shadow"},
		{"/../../etc/passwd", true, "/etc/passwd"},
		{"/etc/missing/deeper", true, "/etc/missing/deeper"},
		{"/etc/loop", true, ""},
		{"relative/path", true, ""},
	} {
		got, err := r.offline().hostPath(tc.path, tc.followLast)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("hostPath(%q) = %q, want an error", tc.path, got)
		case tc.want != "" && err != nil:
			t.Errorf("hostPath(%q): %v", tc.path, err)
		case tc.want != "" && got != filepath.Join(r.dir, tc.want):
			t.Errorf("hostPath(%q, %v) = %q, want %q", tc.path, tc.followLast, got, filepath.Join(r.dir, tc.want))
		}
	}
	data, err := r.offline().ReadFile("/etc/os-release")
	if err != nil || string(data) != "ID=debian\n" {
		t.Errorf("ReadFile through a relative link = %q, %v", data, err)
	}
	if got, _ := LiveEnv().hostPath("/etc/../etc/passwd", true); got != "/etc/passwd" {
		t.Errorf("on the live root hostPath = %q, want the cleaned path", got)
	}
}

func requireShell(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(shellPath); err != nil {
		t.Skipf("no %s on this machine: %v", shellPath, err)
	}
}

// TestExecRunnerTimeout: a timed-out shell is killed with its children, promptly, and the
// error says the deadline passed.
func TestExecRunnerTimeout(t *testing.T) {
	requireShell(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := ExecRunner{}.Run(ctx, shellPath, "-c", "sleep 30 & echo $! > "+pidFile+"; wait")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Run returned after %s", d)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(data))
	deadline := time.Now().Add(3 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z ") {
			break // gone, or a zombie waiting for init: killed either way
		}
		if time.Now().After(deadline) {
			exec.Command("kill", "-9", pid).Run()
			t.Fatalf("the shell's child %s outlived the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestExecRunnerOutput(t *testing.T) {
	requireShell(t)
	out, err := ExecRunner{MaxOutput: 10}.Run(context.Background(), shellPath, "-c", "printf 0123456789abcdef; printf err >&2; exit 7")
	if err != nil {
		t.Fatal(err)
	}
	if string(out.Stdout) != "0123456789\n[6 more bytes not kept]\n" || string(out.Stderr) != "err" || out.ExitStatus != 7 {
		t.Fatalf("got %+v", out)
	}
	if _, err := (ExecRunner{}).Run(context.Background(), "/nonexistent/program"); err == nil {
		t.Fatal("a program that does not exist ran")
	}
}
