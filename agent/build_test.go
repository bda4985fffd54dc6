package agent

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// maxAgentBytes is the agent binary's budget: it is copied into every image.
const maxAgentBytes = 15_000_000

// TestAgentBinaryIsSmallAndStatic builds cmd/gild-agent as releases do (CGO_ENABLED=0,
// -trimpath, -ldflags=-s -w) and checks that it fits its budget, is statically linked (no
// ELF interpreter, no shared libraries: it must run on any Linux guest), and runs.
func TestAgentBinaryIsSmallAndStatic(t *testing.T) {
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		var lookErr error
		if goTool, lookErr = exec.LookPath("go"); lookErr != nil {
			t.Skip("the go tool is not installed; cannot build the agent")
		}
	}
	bin := filepath.Join(t.TempDir(), "gild-agent")
	build := exec.Command(goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "../cmd/gild-agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gild-agent is %.1f MB", float64(fi.Size())/1e6)
	if fi.Size() > maxAgentBytes {
		t.Errorf("gild-agent is %d bytes, over its budget of %d", fi.Size(), maxAgentBytes)
	}

	info, err := exec.Command(goTool, "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, info)
	}
	for _, want := range []string{"build\tCGO_ENABLED=0", "build\t-trimpath=true"} {
		if !strings.Contains(string(info), want) {
			t.Errorf("go version -m lacks %q:\n%s", want, info)
		}
	}

	if runtime.GOOS == "linux" {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("gild-agent has an ELF interpreter: it is dynamically linked")
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("gild-agent needs shared libraries %v", libs)
		}
		if ldd, err := exec.LookPath("ldd"); err == nil {
			out, _ := exec.Command(ldd, bin).CombinedOutput()
			if !strings.Contains(string(out), "not a dynamic executable") && !strings.Contains(string(out), "statically linked") {
				t.Errorf("ldd does not call gild-agent static:\n%s", out)
			}
		}
	}

	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "agentproto version 1") {
		t.Errorf("gild-agent version: %v\n%s", err, out)
	}
}
