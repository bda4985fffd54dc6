package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Line is one line of output, as the run log receives it.
type Line struct {
	Time   time.Time
	Source string // the command's short name ("mmdebstrap") or a driver's tag ("console")
	Stream string // "stdout" or "stderr" for a command's output; "" for a driver's own note
	Text   string
}

// String formats a line for a plain-text run log.
func (l Line) String() string {
	src := l.Source
	if l.Stream != "" {
		src += "[" + l.Stream + "]"
	}
	return l.Time.UTC().Format("2006-01-02T15:04:05.000Z") + " " + src + ": " + l.Text
}

// Sink receives the lines of a run log. The Runner calls it from one goroutine at a time,
// so a Sink needs no locking of its own.
type Sink func(Line)

// WriterSink writes each line, formatted by Line.String, to w: the pipeline's log file,
// or os.Stderr in a test.
func WriterSink(w io.Writer) Sink {
	return func(l Line) { fmt.Fprintln(w, l.String()) }
}

// Runner runs external tools. The zero value works and drops output lines (errors still
// carry the last lines of stderr).
type Runner struct {
	Sink Sink
	// Now stamps lines; time.Now when nil. Tests set it.
	Now func() time.Time
	// StderrTail is how many of the last stderr lines an error keeps; 20 when zero.
	StderrTail int
	// KillGrace is how long a cancelled command's process group has between SIGTERM and
	// SIGKILL; 10 s when zero. Tools such as mmdebstrap unmount what they mounted on
	// SIGTERM, which a SIGKILL would leave behind.
	KillGrace time.Duration

	mu sync.Mutex // serializes Sink calls: stdout and stderr are read concurrently
}

// Command is one invocation of an external tool.
type Command struct {
	Path string // program name (looked up in PATH) or path
	Args []string
	Dir  string
	Env  []string // nil inherits the environment, as in exec.Cmd
	// Stdin is the command's standard input; nil is /dev/null.
	Stdin io.Reader
	// Stdout, when set, receives standard output instead of the log: for machine-readable
	// output such as qemu-img's JSON.
	Stdout io.Writer
	// Tag names the command in log lines; the base name of Path when empty.
	Tag string
}

func (c Command) tag() string {
	if c.Tag != "" {
		return c.Tag
	}
	return filepath.Base(c.Path)
}

// String is the command line, with arguments quoted where the shell would need it, so an
// error message can be pasted into a shell.
func (c Command) String() string {
	parts := make([]string, 0, 1+len(c.Args))
	for _, a := range append([]string{c.Path}, c.Args...) {
		parts = append(parts, shellQuote(a))
	}
	return strings.Join(parts, " ")
}

func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	if strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// CommandError is a command that could not start, failed, or was stopped.
type CommandError struct {
	Command  string   // the command line
	ExitCode int      // -1 when it did not start or died of a signal
	Stderr   []string // its last lines of stderr
	Err      error    // from exec (exit status, not found) and the context, if it was stopped
}

func (e *CommandError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %v", e.Command, e.Err)
	if len(e.Stderr) > 0 {
		b.WriteString("; stderr ends with:\n  ")
		b.WriteString(strings.Join(e.Stderr, "\n  "))
	}
	return b.String()
}

func (e *CommandError) Unwrap() error { return e.Err }

// Logf writes a driver's own note to the run log: what it chose and why.
func (r *Runner) Logf(source, format string, args ...any) {
	r.emit(Line{Source: source, Text: fmt.Sprintf(format, args...)})
}

// Log writes one line that a driver read from elsewhere (a VM's console, its results
// channel) to the run log, stamped now.
func (r *Runner) Log(source, text string) {
	r.emit(Line{Source: source, Text: text})
}

func (r *Runner) emit(l Line) {
	if r == nil || r.Sink == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if l.Time.IsZero() {
		l.Time = r.now()
	}
	r.Sink(l)
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Run runs c to completion.
func (r *Runner) Run(ctx context.Context, c Command) error {
	p, err := r.Start(ctx, c)
	if err != nil {
		return err
	}
	return p.Wait()
}

// Output runs c and returns its standard output, which is not logged.
func (r *Runner) Output(ctx context.Context, c Command) ([]byte, error) {
	var out bytes.Buffer
	c.Stdout = &out
	err := r.Run(ctx, c)
	return out.Bytes(), err
}

// Process is a started command.
type Process struct {
	Pid     int
	Started time.Time

	cmd    *exec.Cmd
	ctx    context.Context
	stdout *lineWriter
	stderr *lineWriter
	tail   *tail
	line   string
	done   chan struct{}
	err    error
	killT  *time.Timer
	killMu sync.Mutex
}

// Start starts c in its own process group, so that stopping it (cancelling ctx, or Kill)
// reaches the children it started too: apt under mmdebstrap, a shell under chroot.
// Cancelling ctx sends SIGTERM to the group and SIGKILL after KillGrace.
func (r *Runner) Start(ctx context.Context, c Command) (*Process, error) {
	if r == nil {
		r = &Runner{}
	}
	tailN := r.StderrTail
	if tailN <= 0 {
		tailN = 20
	}
	grace := r.KillGrace
	if grace <= 0 {
		grace = 10 * time.Second
	}
	p := &Process{ctx: ctx, line: c.String(), done: make(chan struct{}), tail: &tail{max: tailN}}
	tag := c.tag()
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	cmd.Dir = c.Dir
	cmd.Env = c.Env
	cmd.Stdin = c.Stdin
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.stderr = &lineWriter{emit: func(s string) {
		p.tail.add(s)
		r.emit(Line{Source: tag, Stream: "stderr", Text: s})
	}}
	cmd.Stderr = p.stderr
	if c.Stdout != nil {
		cmd.Stdout = c.Stdout
	} else {
		p.stdout = &lineWriter{emit: func(s string) {
			r.emit(Line{Source: tag, Stream: "stdout", Text: s})
		}}
		cmd.Stdout = p.stdout
	}
	cmd.Cancel = func() error {
		p.signalGroup(syscall.SIGTERM)
		p.killMu.Lock()
		p.killT = time.AfterFunc(grace, func() { p.signalGroup(syscall.SIGKILL) })
		p.killMu.Unlock()
		return nil
	}
	// Pipes stay open while any child holds them; do not wait for those forever.
	cmd.WaitDelay = grace + 5*time.Second
	p.cmd = cmd
	if err := cmd.Start(); err != nil {
		return nil, &CommandError{Command: p.line, ExitCode: -1, Err: err}
	}
	p.Pid = cmd.Process.Pid
	p.Started = r.now()
	go p.wait()
	return p, nil
}

func (p *Process) signalGroup(sig syscall.Signal) {
	// The negative PID addresses the process group Start created. cmd.Process is set
	// before exec watches the context, so this is safe from its goroutine.
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
}

func (p *Process) wait() {
	err := p.cmd.Wait()
	p.killMu.Lock()
	if p.killT != nil {
		p.killT.Stop()
	}
	p.killMu.Unlock()
	if p.stdout != nil {
		p.stdout.flush()
	}
	p.stderr.flush()
	if err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		if ctxErr := p.ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("stopped (%w): %v", ctxErr, err)
		}
		p.err = &CommandError{Command: p.line, ExitCode: code, Stderr: p.tail.lines(), Err: err}
	}
	close(p.done)
}

// Wait waits for the command to exit and returns its error, a *CommandError.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Done is closed when the command has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Kill sends SIGKILL to the command's process group, by its PID: for a process that no
// longer answers, such as a QEMU paused after a KVM error.
func (p *Process) Kill() {
	select {
	case <-p.done:
	default:
		p.signalGroup(syscall.SIGKILL)
	}
}

// Signal sends sig to the command's process group.
func (p *Process) Signal(sig syscall.Signal) {
	select {
	case <-p.done:
	default:
		p.signalGroup(sig)
	}
}

// lineWriter splits what a command writes into lines.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	emit func(string)
}

// maxLine bounds a line kept in memory; longer ones are emitted in pieces.
const maxLine = 64 << 10

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(strings.TrimRight(string(w.buf[:i]), "\r"))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) >= maxLine {
		w.emit(string(w.buf))
		w.buf = w.buf[:0]
	}
	return len(b), nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(strings.TrimRight(string(w.buf), "\r"))
		w.buf = nil
	}
}

// tail keeps the last max lines.
type tail struct {
	mu  sync.Mutex
	max int
	buf []string
}

func (t *tail) add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, s)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
}

func (t *tail) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.buf...)
}
