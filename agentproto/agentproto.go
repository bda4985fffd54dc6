// Package agentproto is the wire protocol between gild's agent in a guest and gild on the
// host. Every message is one line of JSON carrying the protocol Version and its Type, so
// that either side can tell a message it understands from one it does not, and a stream
// read from a serial console can be told apart from the noise around it. The wire types
// are defined here, not borrowed from the packages that produce them, so that the format
// changes only when this package does; it uses only the standard library.
//
// The validation channel: when a test VM has booted, the agent writes to the virtio-serial
// port named ResultsPortName (or a serial port) a "ready" message (boot finished; the host
// measures boot time to it), one "result" message per check, and a "done" message with the
// counts:
//
//	{"version":1,"type":"ready","ready":{"time":"2026-11-24T12:00:00Z","uptimeSeconds":12.5,"hostname":"validate-1","kernel":"6.1.0-27-cloud-amd64","osRelease":{"ID":"debian","VERSION_ID":"12"},"agent":"gild-agent (devel)","checks":2}}
//	{"version":1,"type":"result","result":{"name":"sshd config","kind":"file","status":"Compliant","reasons":[],"expected":"exists; mode 0600","actual":"exists; mode 0600","durationMs":1}}
//	{"version":1,"type":"result","result":{"name":"forwarding","kind":"sysctl","status":"NonCompliant","reasons":[{"code":"SysctlValueMismatch","phrase":"Sysctl net.ipv4.ip_forward is \"1\"; expected \"0\"."}],"expected":"net.ipv4.ip_forward = 0","actual":"net.ipv4.ip_forward = 1","durationMs":0}}
//	{"version":1,"type":"done","done":{"total":2,"compliant":1,"nonCompliant":1,"error":0,"durationMs":3}}
//
// A receiver ignores fields it does not know, so adding a field does not change Version;
// renaming, removing or changing the meaning of one does.
package agentproto

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Version is the protocol version every message carries.
const Version = 1

// ResultsPortName is the name of the virtio-serial port the validation channel uses:
// /dev/virtio-ports/org.gild.results in the guest.
const ResultsPortName = "org.gild.results"

// Type says what a message is, and so which of its payload fields is set.
type Type string

// The message types of the validation channel.
const (
	TypeReady  Type = "ready"
	TypeResult Type = "result"
	TypeDone   Type = "done"
)

// Message is one line of the protocol: the envelope and the one payload its Type names.
type Message struct {
	Version int     `json:"version"`
	Type    Type    `json:"type"`
	Ready   *Ready  `json:"ready,omitempty"`
	Result  *Result `json:"result,omitempty"`
	Done    *Done   `json:"done,omitempty"`
}

// Ready says that the guest finished booting and is about to run its checks.
type Ready struct {
	Time          time.Time         `json:"time"`          // the guest's clock
	UptimeSeconds float64           `json:"uptimeSeconds"` // since the guest's kernel started
	Hostname      string            `json:"hostname,omitempty"`
	Kernel        string            `json:"kernel,omitempty"`    // the running kernel's release
	OSRelease     map[string]string `json:"osRelease,omitempty"` // os-release(5) as written: ID, VERSION_ID, PRETTY_NAME...
	Agent         string            `json:"agent,omitempty"`     // the agent's version
	Checks        int               `json:"checks"`              // how many result messages follow
}

// Result is the outcome of one check, in the shape of gild's check results and Azure
// guest configuration's reasons.
type Result struct {
	Name       string   `json:"name"`
	Kind       string   `json:"kind"`
	Status     string   `json:"status"` // StatusCompliant, StatusNonCompliant or StatusError
	Reasons    []Reason `json:"reasons"`
	Expected   string   `json:"expected,omitempty"`
	Actual     string   `json:"actual,omitempty"`
	DurationMs int64    `json:"durationMs"`
}

// Reason explains a result: a stable code and a sentence for people.
type Reason struct {
	Code   string `json:"code"`
	Phrase string `json:"phrase"`
}

// The statuses a Result may have.
const (
	StatusCompliant    = "Compliant"
	StatusNonCompliant = "NonCompliant"
	StatusError        = "Error"
)

// Done ends a validation run with the counts of the results sent.
type Done struct {
	Total        int   `json:"total"`
	Compliant    int   `json:"compliant"`
	NonCompliant int   `json:"nonCompliant"`
	Error        int   `json:"error"`
	DurationMs   int64 `json:"durationMs"`
	// Aborted says why the agent stopped before its last check; empty when it did not.
	Aborted string `json:"aborted,omitempty"`
}

// Passed reports whether every check of the run was compliant and the run was complete.
func (d Done) Passed() bool { return d.NonCompliant == 0 && d.Error == 0 && d.Aborted == "" }

// Errors a Decoder or ReadRun returns, wrapped in a *LineError that says where.
var (
	ErrVersion    = errors.New("unsupported protocol version")
	ErrMalformed  = errors.New("malformed message")
	ErrProtocol   = errors.New("protocol violation")
	ErrIncomplete = errors.New("incomplete run")
)

// validate checks a message's envelope and payload.
func (m Message) validate() error {
	if m.Version != Version {
		return fmt.Errorf("%w: version %d, this side speaks %d", ErrVersion, m.Version, Version)
	}
	set := 0
	for _, present := range []bool{m.Ready != nil, m.Result != nil, m.Done != nil} {
		if present {
			set++
		}
	}
	if set > 1 {
		return fmt.Errorf("%w: a %s message with more than one payload", ErrMalformed, m.Type)
	}
	switch m.Type {
	case TypeReady:
		if m.Ready == nil {
			return fmt.Errorf("%w: a ready message without \"ready\"", ErrMalformed)
		}
		if m.Ready.Checks < 0 {
			return fmt.Errorf("%w: ready.checks is %d", ErrMalformed, m.Ready.Checks)
		}
	case TypeResult:
		r := m.Result
		if r == nil {
			return fmt.Errorf("%w: a result message without \"result\"", ErrMalformed)
		}
		if r.Name == "" {
			return fmt.Errorf("%w: result.name is empty", ErrMalformed)
		}
		switch r.Status {
		case StatusCompliant, StatusNonCompliant, StatusError:
		default:
			return fmt.Errorf("%w: result.status %q is not Compliant, NonCompliant or Error", ErrMalformed, r.Status)
		}
	case TypeDone:
		d := m.Done
		if d == nil {
			return fmt.Errorf("%w: a done message without \"done\"", ErrMalformed)
		}
		if d.Compliant < 0 || d.NonCompliant < 0 || d.Error < 0 || d.Total != d.Compliant+d.NonCompliant+d.Error {
			return fmt.Errorf("%w: done counts %d = %d + %d + %d do not add up", ErrMalformed, d.Total, d.Compliant, d.NonCompliant, d.Error)
		}
	default:
		return fmt.Errorf("%w: unknown type %q", ErrMalformed, m.Type)
	}
	return nil
}

// Encoder writes messages as JSON lines, each in a single Write so that concurrent
// writers never interleave within a line.
type Encoder struct {
	mu sync.Mutex
	w  io.Writer
}

// NewEncoder writes to w.
func NewEncoder(w io.Writer) *Encoder { return &Encoder{w: w} }

// Encode stamps m with Version, checks it and writes it as one line.
func (e *Encoder) Encode(m Message) error {
	m.Version = Version
	if err := m.validate(); err != nil {
		return fmt.Errorf("encode %s message: %w", m.Type, err)
	}
	line, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s message: %w", m.Type, err)
	}
	line = append(line, '\n')
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.w.Write(line); err != nil {
		return fmt.Errorf("write %s message: %w", m.Type, err)
	}
	return nil
}

// Ready writes a ready message.
func (e *Encoder) Ready(r Ready) error { return e.Encode(Message{Type: TypeReady, Ready: &r}) }

// Result writes a result message. A nil Reasons is written as [], as the shape promises.
func (e *Encoder) Result(r Result) error {
	if r.Reasons == nil {
		r.Reasons = []Reason{}
	}
	return e.Encode(Message{Type: TypeResult, Result: &r})
}

// Done writes a done message.
func (e *Encoder) Done(d Done) error { return e.Encode(Message{Type: TypeDone, Done: &d}) }
