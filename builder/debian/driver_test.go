package debian

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gildhq/gild/builder"
)

// fakeMmdebstrap stands in for mmdebstrap: it prints a version, or writes its arguments
// into TARGET/args and counts its runs.
func fakeMmdebstrap(t *testing.T) (path, runs string) {
	dir := t.TempDir()
	path, runs = filepath.Join(dir, "mmdebstrap"), filepath.Join(dir, "runs")
	script := `#!/bin/sh
[ "$1" = --version ] && { echo "mmdebstrap 9.9"; exit 0; }
echo run >> ` + runs + `
for a; do :; done
target=
prev=
for a; do case "$a" in deb\ *) target=$prev; break;; esac; prev=$a; done
[ -n "$FAIL" ] && { echo "E: cannot do it" >&2; mkdir -p "$target/half"; exit 1; }
mkdir -p "$target/etc" && printf '%s\n' "$@" > "$target/etc/args" && chmod 0600 "$target/etc/args"
echo "I: success" >&2
`
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, runs
}

func TestBuildCachesByInputs(t *testing.T) {
	srv := mirror(t)
	tool, runs := fakeMmdebstrap(t)
	var log strings.Builder
	m := &Mmdebstrap{Runner: &builder.Runner{Sink: builder.WriterSink(&log)}, CacheDir: t.TempDir(), HTTP: srv.Client(), Mmdebstrap: tool}
	spec := Spec{Suite: "bookworm", Mirrors: Mirrors{Archive: srv.URL + "/debian", Updates: srv.URL + "/debian", Security: srv.URL + "/security"}}
	ctx := context.Background()

	first, err := m.Build(ctx, spec, filepath.Join(t.TempDir(), "a"))
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if first.Cached || first.Version != "2025.5.19" {
		t.Errorf("first build %+v", first)
	}
	second, err := m.Build(ctx, spec, filepath.Join(t.TempDir(), "b"))
	if err != nil {
		t.Fatal(err)
	}
	if !second.Cached || second.Digest != first.Digest {
		t.Errorf("second build with the same inputs should come from the cache: %+v", second)
	}
	st, err := os.Stat(filepath.Join(second.Dir, "etc/args"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("cached tree lost a file or its mode: %v %v", st, err)
	}
	spec.Packages = []string{"curl"}
	third, err := m.Build(ctx, spec, filepath.Join(t.TempDir(), "c"))
	if err != nil || third.Cached {
		t.Errorf("a changed package list must rebuild: %+v %v", third, err)
	}
	if b, _ := os.ReadFile(runs); strings.Count(string(b), "run") != 2 {
		t.Errorf("mmdebstrap ran %d times, want 2", strings.Count(string(b), "run"))
	}
	for _, want := range []string{"mmdebstrap[stderr]: I: success", "rootfs 2025.5.19 from the cache", "bookworm-security released 2025-05-18T08:00:00Z"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
}

func TestBuildFailureRemovesThePartialTree(t *testing.T) {
	srv := mirror(t)
	tool, _ := fakeMmdebstrap(t)
	t.Setenv("FAIL", "1")
	m := &Mmdebstrap{Runner: &builder.Runner{}, HTTP: srv.Client(), Mmdebstrap: tool}
	spec := Spec{Suite: "bookworm", Mirrors: Mirrors{Archive: srv.URL + "/debian", Updates: srv.URL + "/debian", Security: srv.URL + "/security"}}
	dir := filepath.Join(t.TempDir(), "rootfs")
	_, err := m.Build(context.Background(), spec, dir)
	if err == nil || !strings.Contains(err.Error(), "build rootfs:") || !strings.Contains(err.Error(), "E: cannot do it") || !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("error %v should name the step, the exit status and stderr", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("partial rootfs left behind: %v", err)
	}
	notEmpty := t.TempDir()
	os.WriteFile(filepath.Join(notEmpty, "x"), nil, 0o644)
	if _, err := m.Build(context.Background(), spec, notEmpty); err == nil || !strings.Contains(err.Error(), "is not empty") {
		t.Errorf("a non-empty target: %v", err)
	}
	if _, err := os.Stat(filepath.Join(notEmpty, "x")); err != nil {
		t.Errorf("a refused target must be left alone: %v", err)
	}
}
