package agentproto

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxLineBytes bounds a message line. A longer line is noise before the first message and
// an error after it.
const MaxLineBytes = 1 << 20

// LineError is a problem with one line of a stream.
type LineError struct {
	Line int // 1-based
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// Decoder reads messages from a stream of lines. Until the first valid message it skips
// lines that are not messages, because a serial console prints firmware and kernel
// output before the agent speaks; a line that claims to be a message (a JSON object with
// "version" and "type") is never skipped. After the first message every non-blank line
// must be a message: Next returns a *LineError for one that is not, and may be called
// again to go on.
type Decoder struct {
	r       *bufio.Reader
	line    int
	synced  bool
	skipped int
}

// NewDecoder reads from r.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{r: bufio.NewReaderSize(r, 64<<10)}
}

// Skipped is how many noise lines were skipped before the first message.
func (d *Decoder) Skipped() int { return d.skipped }

// Line is the number of the last line read.
func (d *Decoder) Line() int { return d.line }

// Next returns the next message, or io.EOF at the end of the stream.
func (d *Decoder) Next() (Message, error) {
	for {
		raw, tooLong, err := d.readLine()
		if err != nil {
			return Message{}, err
		}
		d.line++
		if tooLong {
			if !d.synced {
				d.skipped++
				continue
			}
			return Message{}, &LineError{Line: d.line, Err: fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxLineBytes)}
		}
		text := bytes.TrimSpace(raw) // also the \r of a serial line's CRLF
		if len(text) == 0 {
			continue
		}
		m, err := parseMessage(text)
		if err == nil {
			d.synced = true
			return m, nil
		}
		if !d.synced && !claimsToBeMessage(text) {
			d.skipped++
			continue
		}
		return Message{}, &LineError{Line: d.line, Err: err}
	}
}

// readLine reads up to the next line break, keeping at most MaxLineBytes of it. The last
// line of a stream needs no line break.
func (d *Decoder) readLine() (line []byte, tooLong bool, err error) {
	for {
		chunk, isPrefix, err := d.r.ReadLine()
		if err != nil {
			if err == io.EOF && (len(line) > 0 || tooLong) {
				return line, tooLong, nil
			}
			return nil, false, err
		}
		if !tooLong {
			if len(line)+len(chunk) > MaxLineBytes {
				tooLong, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		if !isPrefix {
			return line, tooLong, nil
		}
	}
}

// parseMessage decodes and checks one line.
func parseMessage(text []byte) (Message, error) {
	var m Message
	if err := json.Unmarshal(text, &m); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := m.validate(); err != nil {
		return Message{}, err
	}
	return m, nil
}

// claimsToBeMessage reports whether a line is a JSON object with "version" and "type":
// a message of this protocol, perhaps of another version, never noise.
func claimsToBeMessage(text []byte) bool {
	var envelope map[string]json.RawMessage
	if json.Unmarshal(text, &envelope) != nil {
		return false
	}
	_, v := envelope["version"]
	_, t := envelope["type"]
	return v && t
}

// Run is a whole validation run as the host read it.
type Run struct {
	Ready   Ready
	Results []Result
	Done    Done
	Skipped int // noise lines before the ready message
}

// ReadRun reads a validation run: ready, a result per check, done. It returns at done
// without reading further, so the stream may stay open. It fails when the stream breaks
// the order, ends before done (ErrIncomplete, with what arrived), or when done's counts
// or ready's announced number of checks disagree with the results.
func ReadRun(r io.Reader) (Run, error) {
	var run Run
	d := NewDecoder(r)
	sawReady := false
	names := map[string]bool{}
	for {
		m, err := d.Next()
		run.Skipped = d.Skipped()
		if errors.Is(err, io.EOF) {
			if !sawReady {
				return run, fmt.Errorf("read validation run: %w: the stream ended before the ready message", ErrIncomplete)
			}
			return run, fmt.Errorf("read validation run: %w: the stream ended after %d of %d results, without done", ErrIncomplete, len(run.Results), run.Ready.Checks)
		}
		if err != nil {
			return run, fmt.Errorf("read validation run: %w", err)
		}
		violation := func(format string, args ...any) error {
			return fmt.Errorf("read validation run: %w", &LineError{Line: d.Line(), Err: fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)})
		}
		switch {
		case m.Type == TypeReady && sawReady:
			return run, violation("a second ready message")
		case m.Type == TypeReady:
			sawReady, run.Ready = true, *m.Ready
		case !sawReady:
			return run, violation("a %s message before ready", m.Type)
		case m.Type == TypeResult:
			if names[m.Result.Name] {
				return run, violation("a second result for check %q", m.Result.Name)
			}
			names[m.Result.Name] = true
			run.Results = append(run.Results, *m.Result)
		case m.Type == TypeDone:
			run.Done = *m.Done
			return run, run.checkDone(violation)
		}
	}
}

// checkDone compares done's counts, and ready's announcement, with the results received.
func (run Run) checkDone(violation func(string, ...any) error) error {
	var c, nc, e int
	for _, r := range run.Results {
		switch r.Status {
		case StatusCompliant:
			c++
		case StatusNonCompliant:
			nc++
		default:
			e++
		}
	}
	d := run.Done
	if d.Total != len(run.Results) || d.Compliant != c || d.NonCompliant != nc || d.Error != e {
		return violation("done counts %d (%d compliant, %d non-compliant, %d error) but %d results arrived (%d, %d, %d)",
			d.Total, d.Compliant, d.NonCompliant, d.Error, len(run.Results), c, nc, e)
	}
	if d.Aborted == "" && len(run.Results) != run.Ready.Checks {
		return violation("ready announced %d checks but %d results arrived", run.Ready.Checks, len(run.Results))
	}
	return nil
}
