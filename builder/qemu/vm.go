package qemu

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/gildhq/gild/builder"
)

// BootSpec is one validation boot.
type BootSpec struct {
	Name  string // names the VM in the run log and QEMU's process title
	Image string // the qcow2 to validate; only ever a backing file
	// WorkDir receives the overlay, the firmware variables, the sockets and console.log;
	// the first three are removed afterwards. A temporary directory, removed with all of it,
	// when empty.
	WorkDir string
	// Accel is "kvm" or "tcg" to force one; "" chooses from the host (ChooseAccel).
	Accel     string
	MemoryMiB int // 1024 when zero
	CPUs      int // 2 when zero: under TCG, two boot a Debian in 19 s against 31 s for one
	Network   bool
	DataDisks []string
	// ReadyLine is the text whose first appearance, on the results port or the console,
	// ends the boot-time measurement; DefaultReadyLine when empty.
	ReadyLine string
	// DoneLine, on the results port or the console, says the guest has reported
	// everything; the VM is then powered off. DefaultDoneLine when empty.
	DoneLine string
	// Timeout bounds a run, boot to power-off (each, when KVM falls back to TCG); 5 minutes
	// when zero. KVMTimeout is
	// how long KVM gets to reach the ready line before the run falls back to TCG; 60 s when
	// zero. PowerOffTimeout is how long the guest gets to shut down after the done line
	// before it is killed; 60 s when zero.
	Timeout, KVMTimeout, PowerOffTimeout time.Duration
}

// The lines a guest writes on the results port to say it is up, and that it has said
// everything.
const (
	DefaultReadyLine = "GILD-READY"
	DefaultDoneLine  = "GILD-DONE"
)

func (s BootSpec) withDefaults() BootSpec {
	if s.Name == "" {
		s.Name = "validate"
	}
	if s.MemoryMiB == 0 {
		s.MemoryMiB = 1024
	}
	if s.CPUs == 0 {
		s.CPUs = 2
	}
	if s.ReadyLine == "" {
		s.ReadyLine = DefaultReadyLine
	}
	if s.DoneLine == "" {
		s.DoneLine = DefaultDoneLine
	}
	if s.Timeout == 0 {
		s.Timeout = 5 * time.Minute
	}
	if s.KVMTimeout == 0 {
		s.KVMTimeout = time.Minute
	}
	if s.PowerOffTimeout == 0 {
		s.PowerOffTimeout = time.Minute
	}
	return s
}

// BootResult is what a validation boot observed.
type BootResult struct {
	Accel Accel
	// BootTime runs from QEMU's start to the ready line.
	BootTime    time.Duration
	ReadySource string // "results" or "console"
	// Results are the lines the guest wrote on the results port, without the ready and
	// done lines: JSON lines, by convention.
	Results []string
	// KernelStart runs from QEMU's start to the kernel's first console line ("Linux
	// version"): the firmware's and the boot loader's share of BootTime.
	KernelStart time.Duration
	// Console is the serial console, line by line, without terminal escapes.
	Console []string
	// ConsoleLog is the console's file, kept in WorkDir; "" with a temporary WorkDir.
	ConsoleLog string
	// Runtime runs from QEMU's start to its exit.
	Runtime time.Duration
	// PoweredOff says the guest shut down when asked, rather than being killed.
	PoweredOff bool
}

// VM boots images for validation.
type VM interface {
	Boot(ctx context.Context, spec BootSpec) (*BootResult, error)
}

// System runs qemu-system-x86_64.
type System struct {
	Runner *builder.Runner
	Img    Img    // for the overlay; qemu-img through Runner when nil
	Path   string // "qemu-system-x86_64" when empty
	// Firmware is OVMF; FindFirmware(FirmwareCandidates) when nil.
	Firmware *Firmware
	// Host reports the host's facts for the accelerator choice; ProbeHost when nil.
	Host func() HostFacts
}

var _ VM = (*System)(nil)

// Boot implements VM.
func (s *System) Boot(ctx context.Context, spec BootSpec) (_ *BootResult, err error) {
	spec = spec.withDefaults()
	var errs []error
	if _, statErr := os.Stat(spec.Image); statErr != nil {
		errs = append(errs, fmt.Errorf("image: %w", statErr))
	}
	if spec.Accel != "" && spec.Accel != "kvm" && spec.Accel != "tcg" {
		errs = append(errs, fmt.Errorf("accelerator %q is neither kvm nor tcg", spec.Accel))
	}
	fw := s.Firmware
	if fw == nil {
		f, fwErr := FindFirmware(FirmwareCandidates)
		errs = append(errs, fwErr)
		fw = &f
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("boot %s: %w", spec.Image, err)
	}

	accel := Accel{spec.Accel, "asked for"}
	if spec.Accel == "" {
		host := s.Host
		if host == nil {
			host = ProbeHost
		}
		accel = ChooseAccel(host())
	}
	s.Runner.Logf("qemu", "accelerator %s", accel)

	dir := spec.WorkDir
	if dir == "" {
		// Short: the sockets' paths must fit in a sockaddr_un.
		if dir, err = os.MkdirTemp("", "gild-vm-"); err != nil {
			return nil, fmt.Errorf("boot %s: %w", spec.Image, err)
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("boot %s: %w", spec.Image, err)
	}

	res, err := s.attempt(ctx, spec, *fw, accel, dir)
	if err != nil && accel.Name == "kvm" && res.BootTime == 0 && ctx.Err() == nil {
		s.Runner.Logf("qemu", "KVM failed before the guest was ready, falling back to TCG: %v", err)
		accel = Accel{"tcg", "KVM failed: " + firstLine(err.Error())}
		res, err = s.attempt(ctx, spec, *fw, accel, dir)
	}
	if spec.WorkDir == "" {
		res.ConsoleLog = ""
	}
	if err != nil {
		return res, fmt.Errorf("boot %s: %w", spec.Image, err)
	}
	return res, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// event is a line read from the guest, or the end of the results stream.
type event struct {
	source string // "results" or "console"
	text   string
	at     time.Time
	eof    bool
}

// attempt boots once with accel. It always returns a result, filled as far as it got.
func (s *System) attempt(ctx context.Context, spec BootSpec, fw Firmware, accel Accel, dir string) (res *BootResult, err error) {
	res = &BootResult{Accel: accel, ConsoleLog: filepath.Join(dir, "console.log")}
	var undo builder.Cleanup
	defer undo.RunInto(ctx, &err)

	img := s.Img
	if img == nil {
		img = &QemuImg{Runner: s.Runner}
	}
	overlay := filepath.Join(dir, "overlay.qcow2")
	os.Remove(overlay)
	if err := img.CreateOverlay(ctx, spec.Image, overlay); err != nil {
		return res, err
	}
	undo.Push("remove the overlay", func(context.Context) error { return os.Remove(overlay) })
	vars := filepath.Join(dir, "OVMF_VARS.fd")
	if err := copyFile(fw.Vars, vars); err != nil {
		return res, fmt.Errorf("copy the firmware variables: %w", err)
	}
	undo.Push("remove the firmware variables", func(context.Context) error { return os.Remove(vars) })
	cfg := VMConfig{
		Name: spec.Name, Accel: accel.Name, MemoryMiB: spec.MemoryMiB, CPUs: spec.CPUs,
		Firmware: Firmware{Code: fw.Code, Vars: vars}, Disk: overlay, DiskCache: "unsafe", DataDisks: spec.DataDisks,
		ConsoleLog: res.ConsoleLog, ResultsSocket: filepath.Join(dir, "results.sock"), QMPSocket: filepath.Join(dir, "qmp.sock"),
		Network: spec.Network,
	}
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	for _, sock := range []string{cfg.ResultsSocket, cfg.QMPSocket} {
		os.Remove(sock)
		undo.Push("remove "+sock, func(context.Context) error {
			if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			return nil
		})
	}

	// QEMU does not get ctx: a cancelled run kills it by PID below, at once, rather than
	// asking it to quit.
	p, err := s.Runner.Start(context.WithoutCancel(ctx), builder.Command{Path: or(s.Path, "qemu-system-x86_64"), Args: SystemArgs(cfg), Tag: "qemu"})
	if err != nil {
		return res, err
	}
	undo.Push("stop QEMU", func(context.Context) error {
		p.Kill()
		p.Wait()
		return nil
	})
	start := p.Started

	// The readers stop sending once quit is closed, so none is left blocked on events.
	events := make(chan event, 256)
	quit := make(chan struct{})
	defer close(quit)
	connected := make(chan struct{})
	stopTail := make(chan struct{})
	tailDone := make(chan struct{})
	go readResults(cfg.ResultsSocket, p.Done(), connected, events, quit)
	go func() {
		defer close(tailDone)
		tailConsole(cfg.ConsoleLog, stopTail, events, quit)
	}()

	timeout := time.NewTimer(spec.Timeout)
	defer timeout.Stop()
	var kvmTimeout <-chan time.Time
	if accel.Name == "kvm" {
		t := time.NewTimer(spec.KVMTimeout)
		defer t.Stop()
		kvmTimeout = t.C
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()

	var (
		q          *qmp
		done       bool
		stopping   <-chan time.Time
		resultsEOF bool
		failure    error
	)
	defer func() { q.Close() }()

	kill := func(why error) {
		if failure == nil {
			failure = why
		}
		s.Runner.Logf("qemu", "killing QEMU (pid %d): %v", p.Pid, why)
		p.Kill()
	}
	handle := func(ev event) {
		if ev.eof {
			resultsEOF = true
			return
		}
		if ev.source == "console" {
			if len(res.Console) < 100000 {
				res.Console = append(res.Console, ev.text)
			}
			if res.KernelStart == 0 && strings.Contains(ev.text, "Linux version") {
				res.KernelStart = ev.at.Sub(start)
			}
		} else if len(res.Results) >= 100000 {
			return
		}
		s.Runner.Log(ev.source, ev.text)
		isReady := strings.Contains(ev.text, spec.ReadyLine)
		if isReady && res.BootTime == 0 {
			res.BootTime = ev.at.Sub(start)
			res.ReadySource = ev.source
			s.Runner.Logf("qemu", "ready after %s (%s, %s; kernel started after %s)", res.BootTime.Round(time.Millisecond), ev.source, accel.Name, res.KernelStart.Round(time.Millisecond))
		}
		switch {
		case strings.Contains(ev.text, spec.DoneLine):
			// From the console too, for a guest that has no results port.
			if !done {
				done = true
				s.Runner.Logf("qemu", "the guest is done; powering it off")
				if q == nil {
					kill(errors.New("no QMP to power the guest off"))
				} else if err := q.powerdown(); err != nil {
					kill(err)
				} else {
					stopping = time.After(spec.PowerOffTimeout)
				}
			}
		case !isReady && ev.source == "results":
			res.Results = append(res.Results, ev.text)
		}
	}

	// Nil once the VM is killed for it: a closed channel would fire on every turn.
	cancelled := ctx.Done()
loop:
	for {
		select {
		case ev := <-events:
			handle(ev)
		case <-connected:
			connected = nil
			// The results socket is read, so QEMU runs its main loop and QMP answers.
			qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			var qerr error
			q, qerr = dialQMP(qctx, cfg.QMPSocket)
			cancel()
			if qerr != nil {
				s.Runner.Logf("qemu", "no QMP, so no clean power-off: %v", qerr)
			}
		case <-tick.C:
			if q == nil || done {
				continue
			}
			if st, err := q.status(); err == nil && (st == "internal-error" || st == "guest-panicked" || st == "io-error") {
				kill(fmt.Errorf("the VM stopped in state %s", st))
			}
		case <-kvmTimeout:
			if res.BootTime == 0 {
				kill(fmt.Errorf("no %s under KVM after %s", spec.ReadyLine, spec.KVMTimeout))
			}
		case <-stopping:
			kill(fmt.Errorf("the guest did not power off within %s", spec.PowerOffTimeout))
		case <-timeout.C:
			if done {
				kill(fmt.Errorf("the guest did not power off within %s", spec.Timeout))
			} else if res.BootTime == 0 {
				kill(fmt.Errorf("no %s within %s", spec.ReadyLine, spec.Timeout))
			} else {
				kill(fmt.Errorf("no %s within %s", spec.DoneLine, spec.Timeout))
			}
		case <-cancelled:
			cancelled = nil
			kill(ctx.Err())
		case <-p.Done():
			break loop
		}
	}
	waitErr := p.Wait()
	res.Runtime = time.Since(start)
	// Lines the guest wrote just before QEMU exited are still in flight.
	for drain := time.After(2 * time.Second); !resultsEOF; {
		select {
		case ev := <-events:
			handle(ev)
		case <-drain:
			resultsEOF = true
		}
	}
	// The console's last lines, read after QEMU exited.
	close(stopTail)
	for tailing := true; tailing; {
		select {
		case ev := <-events:
			handle(ev)
		case <-tailDone:
			tailing = false
		}
	}
	for len(events) > 0 {
		handle(<-events)
	}
	res.PoweredOff = done && failure == nil && waitErr == nil

	switch {
	case failure != nil && done:
		// Everything was reported; only the power-off went wrong. The run stands.
		s.Runner.Logf("qemu", "%v", failure)
		return res, nil
	case failure != nil:
		return res, fmt.Errorf("%w%s", failure, consoleTail(res.Console))
	case res.BootTime == 0:
		return res, fmt.Errorf("QEMU exited before %s: %v%s", spec.ReadyLine, waitErr, consoleTail(res.Console))
	case !done:
		return res, fmt.Errorf("the guest stopped before %s: %v%s", spec.DoneLine, waitErr, consoleTail(res.Console))
	}
	s.Runner.Logf("qemu", "powered off after %s", res.Runtime.Round(time.Millisecond))
	return res, nil
}

// consoleTail is the end of the console, for an error that has to say why a boot failed.
func consoleTail(lines []string) string {
	var tail []string
	for i := len(lines) - 1; i >= 0 && len(tail) < 15; i-- {
		if strings.TrimSpace(lines[i]) != "" {
			tail = append([]string{lines[i]}, tail...)
		}
	}
	if len(tail) == 0 {
		return "; the console is empty"
	}
	return "; the console ends with:\n  " + strings.Join(tail, "\n  ")
}

// readResults connects to the results socket as soon as QEMU listens on it, and sends
// every line it reads. It gives up when QEMU exits first.
func readResults(path string, exited <-chan struct{}, connected chan<- struct{}, events chan<- event, quit <-chan struct{}) {
	send := func(ev event) bool {
		select {
		case events <- ev:
			return true
		case <-quit:
			return false
		}
	}
	var conn net.Conn
	for {
		var err error
		if conn, err = net.Dial("unix", path); err == nil {
			break
		}
		select {
		case <-exited:
			send(event{source: "results", eof: true})
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	defer conn.Close()
	close(connected)
	// Lines are bounded: a guest is not trusted to end them.
	r := bufio.NewReaderSize(conn, maxLine)
	for {
		b, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			err = nil
		}
		if line := strings.TrimRight(string(b), "\r\n"); line != "" {
			if !send(event{source: "results", text: line, at: time.Now()}) {
				return
			}
		}
		if err != nil {
			// EOF when QEMU exits.
			send(event{source: "results", eof: true})
			return
		}
	}
}

// maxLine bounds a line read from the guest; longer ones arrive in pieces.
const maxLine = 64 << 10

// tailConsole follows the console file QEMU writes, and sends its lines without terminal
// escapes until stop is closed, then reads what is left.
func tailConsole(path string, stop <-chan struct{}, events chan<- event, quit <-chan struct{}) {
	var (
		f       *os.File
		partial []byte
		buf     = make([]byte, 64<<10)
	)
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	read := func(final bool) {
		if f == nil {
			var err error
			if f, err = os.Open(path); err != nil {
				return
			}
		}
		for {
			n, err := f.Read(buf)
			partial = append(partial, buf[:n]...)
			if n == 0 || err != nil {
				break
			}
		}
		now := time.Now()
		for {
			i := bytes.IndexByte(partial, '\n')
			if i < 0 {
				break
			}
			select {
			case events <- event{source: "console", text: CleanConsoleLine(string(partial[:i])), at: now}:
			case <-quit:
				return
			}
			partial = partial[i+1:]
		}
		if len(partial) >= maxLine {
			final = true // a line that never ends goes out in pieces
		}
		if final && len(partial) > 0 {
			select {
			case events <- event{source: "console", text: CleanConsoleLine(string(partial)), at: now}:
			case <-quit:
			}
			partial = nil
		}
	}
	for {
		select {
		case <-stop:
			read(true)
			return
		case <-time.After(100 * time.Millisecond):
			read(false)
		}
	}
}

var escapes = regexp.MustCompile(`\x1b(\[[0-9;?=]*[ -/]*[@-~]|[()][A-Za-z0-9]|[=>c78])`)

// CleanConsoleLine removes terminal escapes and control characters (the firmware clears
// the screen and colours systemd's status) so the run log reads as text.
func CleanConsoleLine(s string) string {
	s = escapes.ReplaceAllString(s, "")
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
