package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progress shows how far a long copy (hashing, an upload, a download) has come. On a
// terminal it is one line on w, redrawn at most every redrawEvery; anywhere else (a log, a
// pipe, a test) it writes a line each time another tenth of the total is done, so that logs
// stay short. It counts bytes through Write, so it can sit in an io.MultiWriter or
// io.TeeReader. It is safe for concurrent use: an HTTP transport may still read an
// upload's body while the caller, holding the response, ends the display.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	label string
	total int64 // 0 or less: unknown
	tty   bool
	now   func() time.Time

	done      int64 // bytes so far, including start
	start     int64 // bytes already there when it began (a resumed download)
	began     time.Time
	lastDraw  time.Time
	lastTenth int64 // the last tenth reported off a terminal
	drawn     bool  // a terminal line is on screen and needs a newline at the end
	finished  bool
}

// redrawEvery bounds how often the terminal line is redrawn.
const redrawEvery = 100 * time.Millisecond

// newProgress starts a progress display of total bytes, of which start are already done.
func newProgress(w io.Writer, label string, total, start int64) *progress {
	p := &progress{w: w, label: label, total: total, tty: isTerminal(w), now: time.Now, done: start, start: start}
	p.began = p.now()
	if total > 0 {
		p.lastTenth = start * 10 / total
	}
	return p
}

// isTerminal reports whether w is a terminal (a character device, such as a tty; /dev/null
// is one too, where redrawing costs nothing).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Write counts len(b) bytes; it never fails, so that it can sit in an io.MultiWriter.
func (p *progress) Write(b []byte) (int, error) {
	p.Add(int64(len(b)))
	return len(b), nil
}

// Add counts n more bytes and redraws when it is time to.
func (p *progress) Add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.done += n
	if p.tty {
		if now := p.now(); now.Sub(p.lastDraw) >= redrawEvery {
			p.lastDraw = now
			p.draw()
		}
		return
	}
	if p.total <= 0 {
		return
	}
	tenth := min(p.done*10/p.total, 10)
	if tenth > p.lastTenth {
		p.lastTenth = tenth
		fmt.Fprintln(p.w, p.line())
	}
}

func (p *progress) draw() {
	// \r returns to the line's start, \x1b[K clears what a longer previous line left.
	fmt.Fprintf(p.w, "\r%s\x1b[K", p.line())
	p.drawn = true
}

// Done ends the display: the terminal line gets its final numbers and a newline; elsewhere
// the last line says 100% unless it was already written.
func (p *progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.finished = true
	switch {
	case p.tty:
		p.draw()
		fmt.Fprintln(p.w)
	case p.total <= 0 || p.lastTenth < 10:
		fmt.Fprintln(p.w, p.line())
	}
}

// Abort ends the display after a failure without claiming completion: a terminal line
// keeps what it showed and gets its newline.
func (p *progress) Abort() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.finished = true
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
	}
}

// line is "label  12.0 MiB / 48.0 MiB  25%  8.0 MiB/s".
func (p *progress) line() string {
	var b strings.Builder
	b.WriteString(p.label)
	b.WriteString("  ")
	b.WriteString(formatBytes(p.done))
	if p.total > 0 {
		b.WriteString(" / ")
		b.WriteString(formatBytes(p.total))
		fmt.Fprintf(&b, "  %3d%%", percent(p.done, p.total))
	}
	if secs := p.now().Sub(p.began).Seconds(); secs > 0 {
		fmt.Fprintf(&b, "  %s/s", formatBytes(int64(float64(p.done-p.start)/secs)))
	}
	return b.String()
}

// percent is done/total in whole percent, 100 only when done reaches total.
func percent(done, total int64) int {
	if total <= 0 {
		return 0
	}
	if done >= total {
		return 100
	}
	// done*100 would overflow only beyond 92 PB.
	return int(done * 100 / total)
}

// formatBytes is n in B, KiB, MiB, GiB or TiB with one decimal.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v /= unit
		if v < unit || u == "TiB" {
			return fmt.Sprintf("%.1f %s", v, u)
		}
	}
	panic("unreachable")
}
