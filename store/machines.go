package store

import (
	"context"
	"time"
)

// Machine is what gild keeps of a machine's agent: who it is, the hash of its credential
// and its latest report. The report is kept as the agent sent it (agentproto JSON, events
// removed), so that the store need not know the wire format.
type Machine struct {
	ID             string // the VM's or hybrid machine's resource ID, as first spelled
	CredentialHash string // hex SHA-256 of the agent's credential; unique
	EnrolledAt     time.Time
	LastSeen       time.Time // when the server received the last report
	LastReportID   string
	LastReportAt   time.Time // the last report's own time, by the agent's clock
	Report         []byte    // the last report's JSON; nil before the first
}

// MachineEvent is one thing an agent did or saw, such as a correction of drift, with the
// value before and after.
type MachineEvent struct {
	Seq        int64 // assigned by the store, increasing
	MachineID  string
	EventID    string // the agent's ID; an event is kept once per machine and ID
	At         time.Time
	Kind       string
	Assignment string
	Check      string
	Target     string
	Before     string
	After      string
	Message    string
}

// MachineEventQuery selects events: of one machine (case-insensitive ID) or, when Machine
// is empty, of every machine under Scopes (none: all), newest first, Limit at most.
type MachineEventQuery struct {
	Machine string
	Scopes  []string // resource ID prefixes (scopes), case-insensitive
	Before  int64    // only events with Seq less than this; 0 means no bound
	Limit   int
}

// EnrollmentToken lets one agent enroll, once, as Target: a VM's resource ID, or a resource
// group in which the agent's machine is created as a Microsoft.HybridCompute/machines.
// Only the secret's hash is kept.
type EnrollmentToken struct {
	Hash      string
	Target    string
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // zero until used
}

// MachineReader reads machines and their events.
type MachineReader interface {
	// Machine returns the machine with this resource ID (case-insensitive), or ErrNotFound.
	Machine(ctx context.Context, id string) (Machine, error)
	// MachineByCredential returns the machine whose credential hashes to hash, or ErrNotFound.
	MachineByCredential(ctx context.Context, hash string) (Machine, error)
	// Machines returns up to limit machines whose ID key sorts after after, in ID key order.
	Machines(ctx context.Context, after string, limit int) ([]Machine, error)
	// MachineEvents returns the events q selects, newest first.
	MachineEvents(ctx context.Context, q MachineEventQuery) ([]MachineEvent, error)
}

// MachineWriter writes machines inside a transaction.
type MachineWriter interface {
	// PutMachine creates or replaces the machine with m.ID.
	PutMachine(ctx context.Context, m Machine) error
	// DeleteMachine removes a machine and its events; a machine that does not exist is no error.
	DeleteMachine(ctx context.Context, id string) error
	// AddMachineEvents appends events, skipping any whose (machine, EventID) is stored
	// already; it returns how many it added.
	AddMachineEvents(ctx context.Context, events []MachineEvent) (int, error)
	// CreateEnrollmentToken stores a new enrollment token.
	CreateEnrollmentToken(ctx context.Context, t EnrollmentToken) error
	// UseEnrollmentToken marks the token with this hash used at time at and returns it. It
	// fails with ErrNotFound when no such token exists, and with a CodeConflict error when
	// it was used already or has expired: a token enrolls one machine, once.
	UseEnrollmentToken(ctx context.Context, hash string, at time.Time) (EnrollmentToken, error)
}
