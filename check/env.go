package check

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Env is the system checks look at: a root directory whose files are the system's ("/" on
// the running system, or where an image is mounted) and whether that root is live.
//
// Every file a check reads goes through Env, with symbolic links resolved as if Root were
// "/": an absolute link inside a mounted image (/etc/localtime → /usr/share/zoneinfo/UTC)
// leads to the image's file, never to the host's.
type Env struct {
	// Root is the directory that stands for "/". Empty means "/".
	Root string
	// Live says that Root is the running system: its /proc describes the running kernel,
	// systemd can be asked about units, and commands can run. Checks that need these
	// report an Error with code NotLive on an offline root.
	Live bool
	// Runner runs programs: command checks, systemctl. Nil means ExecRunner{}.
	Runner Runner
}

// LiveEnv is the running system.
func LiveEnv() Env { return Env{Root: "/", Live: true} }

// OfflineEnv is a system whose files are under root and which is not running, such as a
// mounted image: file, lineInFile, package, service enablement, user, group and
// kernelModule blacklist checks work on it; the others report NotLive.
func OfflineEnv(root string) Env { return Env{Root: root} }

func (e Env) root() string {
	if e.Root == "" {
		return "/"
	}
	return filepath.Clean(e.Root)
}

func (e Env) runner() Runner {
	if e.Runner == nil {
		return ExecRunner{}
	}
	return e.Runner
}

// describe names the root for phrases.
func (e Env) describe() string {
	if e.Live {
		return "the running system (root " + e.root() + ")"
	}
	return "the offline root " + e.root()
}

// maxSymlinks bounds symbolic-link resolution, as the kernel's ELOOP does.
const maxSymlinks = 40

// hostPath returns where the root's absolute path p is on this machine. followLast says
// whether a symbolic link in the last element is followed (stat) or not (lstat,
// readlink). A missing element ends resolution: the rest is joined as written, and the
// caller's open reports that it does not exist.
func (e Env) hostPath(p string, followLast bool) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("path %q is not absolute", p)
	}
	root := e.root()
	if root == "/" {
		// The kernel resolves links against the real root already.
		return path.Clean(p), nil
	}
	parts := splitPath(p)
	cur := "/"
	links := 0
	for len(parts) > 0 {
		elem := parts[0]
		parts = parts[1:]
		if elem == ".." {
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, elem)
		if len(parts) == 0 && !followLast {
			cur = next
			break
		}
		fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(next)))
		if err != nil {
			cur = path.Join(append([]string{next}, parts...)...)
			break
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		links++
		if links > maxSymlinks {
			return "", fmt.Errorf("resolve %s under %s: too many levels of symbolic links", p, root)
		}
		target, err := os.Readlink(filepath.Join(root, filepath.FromSlash(next)))
		if err != nil {
			return "", fmt.Errorf("resolve %s under %s: %w", p, root, err)
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		parts = append(splitPath(target), parts...)
	}
	return filepath.Join(root, filepath.FromSlash(cur)), nil
}

// splitPath splits a slash path into its elements, without empty and "." elements.
func splitPath(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" && s != "." {
			out = append(out, s)
		}
	}
	return out
}

// ReadFile reads the root's file name (an absolute path such as "/etc/os-release").
func (e Env) ReadFile(name string) ([]byte, error) {
	hp, err := e.hostPath(name, true)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(hp)
}

// maxContents bounds the files whose contents a check reads, so that a check pointed at a
// disk image cannot exhaust an agent's memory.
const maxContents = 16 << 20

// readContents reads a file for a contents check, refusing files over maxContents.
func (e Env) readContents(name string) ([]byte, error) {
	hp, err := e.hostPath(name, true)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(hp)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxContents+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxContents {
		return nil, errTooLarge
	}
	return data, nil
}

var errTooLarge = fmt.Errorf("larger than %d MiB", maxContents>>20)

func (e Env) stat(name string) (fs.FileInfo, error) {
	hp, err := e.hostPath(name, true)
	if err != nil {
		return nil, err
	}
	return os.Stat(hp)
}

func (e Env) lstat(name string) (fs.FileInfo, error) {
	hp, err := e.hostPath(name, false)
	if err != nil {
		return nil, err
	}
	return os.Lstat(hp)
}

func (e Env) readlink(name string) (string, error) {
	hp, err := e.hostPath(name, false)
	if err != nil {
		return "", err
	}
	return os.Readlink(hp)
}

func (e Env) readDir(name string) ([]fs.DirEntry, error) {
	hp, err := e.hostPath(name, true)
	if err != nil {
		return nil, err
	}
	return os.ReadDir(hp)
}

// isDir reports whether the root's name is a directory (following links).
func (e Env) isDir(name string) bool {
	fi, err := e.stat(name)
	return err == nil && fi.IsDir()
}

// systemdRunning reports whether systemd manages the live system, as sd_booted(3) decides.
func (e Env) systemdRunning() bool { return e.Live && e.isDir("/run/systemd/system") }

// Runner runs a program and returns its output. An error means the program could not be
// started or did not finish (the context ended); a non-zero exit status is not an error.
type Runner interface {
	Run(ctx context.Context, name string, args ...string) (Output, error)
}

// Output is what a program printed and how it exited.
type Output struct {
	Stdout     []byte
	Stderr     []byte
	ExitStatus int // -1 when a signal ended the program
}

// ExecRunner runs programs on this machine with os/exec. On Unix each program gets its
// own process group, which is killed as a whole when the context ends, so that a timed-out
// shell does not leave its children running.
type ExecRunner struct {
	// MaxOutput bounds how much of stdout and of stderr is kept; the rest is read and
	// dropped. Zero means 1 MiB.
	MaxOutput int
}

// Run runs name with args.
func (r ExecRunner) Run(ctx context.Context, name string, args ...string) (Output, error) {
	limit := r.MaxOutput
	if limit <= 0 {
		limit = 1 << 20
	}
	cmd := exec.CommandContext(ctx, name, args...)
	stdout := &cappedBuffer{limit: limit}
	stderr := &cappedBuffer{limit: limit}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// A grandchild that keeps the output pipes open must not hold Wait forever.
	cmd.WaitDelay = 2 * time.Second
	ownProcessGroup(cmd)
	err := cmd.Run()
	out := Output{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	if cmd.ProcessState != nil {
		out.ExitStatus = cmd.ProcessState.ExitCode()
	}
	if ctx.Err() != nil {
		return out, fmt.Errorf("run %s: %w", name, ctx.Err())
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) && !errors.Is(err, exec.ErrWaitDelay) {
		return out, fmt.Errorf("run %s: %w", name, err)
	}
	return out, nil
}

// cappedBuffer keeps the first limit bytes written to it and counts the rest.
type cappedBuffer struct {
	buf     bytes.Buffer
	limit   int
	dropped int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	room := b.limit - b.buf.Len()
	if room >= len(p) {
		return b.buf.Write(p)
	}
	if room > 0 {
		b.buf.Write(p[:room])
	}
	b.dropped += len(p) - max(room, 0)
	return len(p), nil
}

func (b *cappedBuffer) Bytes() []byte {
	if b.dropped == 0 {
		return b.buf.Bytes()
	}
	return append(b.buf.Bytes(), fmt.Sprintf("\n[%d more bytes not kept]\n", b.dropped)...)
}

// isNotExist reports whether err says that a file does not exist, including "not a
// directory" for a path through a regular file.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}
