package fleet

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/gildhq/gild/agentproto"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// The resource types fleet deals with.
const (
	TypeVM         = "Microsoft.Compute/virtualMachines"
	TypeHybrid     = "Microsoft.HybridCompute/machines"
	TypeAssignment = "Microsoft.GuestConfiguration/guestConfigurationAssignments"
)

// IsMachineType reports whether typ is a type an agent can enroll as.
func IsMachineType(typ string) bool {
	return strings.EqualFold(typ, TypeVM) || strings.EqualFold(typ, TypeHybrid)
}

// DefaultReportInterval is how often agents report when nothing changes, as Azure's
// machine configuration re-checks every configuration.
const DefaultReportInterval = 15 * time.Minute

// Writer writes resources as the system: controlplane.SystemWriter.
type Writer interface {
	Update(ctx context.Context, id resource.ID, mutate func(r *resource.Resource) (bool, error)) error
	Put(ctx context.Context, r *resource.Resource) error
}

// Configurations turn a guestConfigurationAssignment's properties into what an agent runs
// (package guestconfig; a function so fleet does not fix how configurations are found).
type Configurations interface {
	// Normalize validates properties as a client sent them and returns them with the
	// fields the server derives (parameterHash, assignmentHash) filled in.
	Normalize(props json.RawMessage) (json.RawMessage, error)
	// Agent is the assignment named name as the agent runs it.
	Agent(name string, props json.RawMessage) (agentproto.Assignment, error)
}

// Options configure a Service.
type Options struct {
	Logger *slog.Logger
	// ReportInterval is what agents are told; DefaultReportInterval when zero.
	ReportInterval time.Duration
	// Configurations validates and renders assignments; required.
	Configurations Configurations
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// BatchWindow is how long the first report of a batch waits for others to share its
	// transaction; 2 ms when zero.
	BatchWindow time.Duration
	// MaxBatch caps the reports written in one transaction; 500 when zero.
	MaxBatch int
}

// Service is the fleet of enrolled machines.
type Service struct {
	store  store.Store
	writer Writer
	opts   Options
	log    *slog.Logger

	mu       sync.Mutex
	machines map[string]*machine // by lower-case resource ID
	byCred   map[string]string   // credential hash → machine key
	etags    map[string]string   // machine key → current assignments ETag (cache)
	waiters  map[string]chan struct{}
	deleted  map[string]bool // machines deleted in transactions not yet committed

	reevaluate func(scope resource.ID)
	stopping   chan struct{} // closed by Shutdown: held requests answer at once
	stopOnce   sync.Once
	batch      chan *ingest
	followups  chan followup
}

// machine is what the index keeps of one machine: enough to enrich its documents and to
// tell a report that changes something from one that does not.
type machine struct {
	id           string
	credHash     string
	enrolledAt   time.Time
	lastSeen     time.Time
	lastReportID string
	lastReportAt time.Time
	facts        agentproto.Facts
	tattoo       map[string]any
	tattooDigest string
	assignments  map[string]string // assignment name (lower case) → digest of its last result
}

// New returns the fleet over st. Call Load before serving and Run to process reports.
func New(st store.Store, opts Options) (*Service, error) {
	if opts.Configurations == nil {
		return nil, errors.New("fleet: Options.Configurations is required")
	}
	if opts.ReportInterval <= 0 {
		opts.ReportInterval = DefaultReportInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BatchWindow <= 0 {
		opts.BatchWindow = 2 * time.Millisecond
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 500
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{store: st, opts: opts, log: log,
		machines: map[string]*machine{}, byCred: map[string]string{}, etags: map[string]string{},
		waiters: map[string]chan struct{}{}, deleted: map[string]bool{}, stopping: make(chan struct{}),
		batch: make(chan *ingest, 4096), followups: make(chan followup, 4096)}, nil
}

// SetWriter sets how fleet writes assignment results and enrolled machines.
func (s *Service) SetWriter(w Writer) { s.writer = w }

// SetReevaluate sets what fleet calls when something a policy sees about a machine changed
// outside its resource (its tattoo): compliance.Service.Enqueue.
func (s *Service) SetReevaluate(f func(scope resource.ID)) { s.reevaluate = f }

// ReportInterval is the interval agents are told.
func (s *Service) ReportInterval() time.Duration { return s.opts.ReportInterval }

// Load reads every enrolled machine into the index.
func (s *Service) Load(ctx context.Context) error {
	after := ""
	for {
		page, err := s.store.Machines(ctx, after, 1000)
		if err != nil {
			return fmt.Errorf("fleet: load: %w", err)
		}
		if len(page) == 0 {
			return nil
		}
		s.mu.Lock()
		for _, m := range page {
			s.indexLocked(m)
		}
		s.mu.Unlock()
		after = page[len(page)-1].ID
	}
}

// indexLocked puts a stored machine into the index.
func (s *Service) indexLocked(m store.Machine) *machine {
	e := &machine{id: m.ID, credHash: m.CredentialHash, enrolledAt: m.EnrolledAt, lastSeen: m.LastSeen,
		lastReportID: m.LastReportID, lastReportAt: m.LastReportAt, assignments: map[string]string{}}
	if len(m.Report) > 0 {
		var rep agentproto.Report
		if err := json.Unmarshal(m.Report, &rep); err == nil {
			e.facts = rep.Facts
			e.tattoo, e.tattooDigest = parseTattoo(rep.Tattoo)
			for _, a := range rep.Assignments {
				e.assignments[strings.ToLower(a.Name)] = assignmentDigest(a)
			}
		}
	}
	key := strings.ToLower(m.ID)
	if old := s.machines[key]; old != nil && old.credHash != e.credHash {
		delete(s.byCred, old.credHash)
	}
	s.machines[key] = e
	s.byCred[e.credHash] = key
	return e
}

// parseTattoo decodes a tattoo and digests it; a tattoo that is not a JSON object counts as none.
func parseTattoo(raw json.RawMessage) (map[string]any, string) {
	if len(raw) == 0 {
		return nil, ""
	}
	var t map[string]any
	if err := json.Unmarshal(raw, &t); err != nil || t == nil {
		return nil, ""
	}
	canon, _ := json.Marshal(t) // map keys sorted: the same tattoo always digests the same
	sum := sha256.Sum256(canon)
	return t, hex.EncodeToString(sum[:])
}

// assignmentDigest digests what a policy can see of an assignment's result: its status
// and each check's status and reasons, not the times. It runs on every report, so it
// hashes the fields directly rather than an encoding of them; each is followed by a zero
// byte, which no field contains, so that fields cannot run into one another.
func assignmentDigest(a agentproto.AssignmentReport) string {
	h := sha256.New()
	field := func(s string) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	field(a.Hash)
	field(a.ComplianceStatus)
	for _, r := range a.Resources {
		field("\x01")
		field(r.ResourceID)
		field(r.ComplianceStatus)
		for _, why := range r.Reasons {
			field(why.Code)
			field(why.Phrase)
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// HashSecret is how credentials and enrollment tokens are kept: hex SHA-256.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// newSecret returns a random secret with a prefix saying what it is, so that one pasted in
// the wrong place is recognised.
func newSecret(prefix string) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("make a secret: %w", err)
	}
	return prefix + hex.EncodeToString(b[:]), nil
}

// Status is what fleet knows of one machine's agent, for the API and the dashboard.
type Status struct {
	MachineID    string           `json:"machineId"`
	EnrolledAt   time.Time        `json:"enrolledAt"`
	LastSeen     time.Time        `json:"lastHeartbeat,omitzero"`
	State        string           `json:"status"` // Connected, Disconnected or Pending
	Facts        agentproto.Facts `json:"facts"`
	Tattoo       map[string]any   `json:"tattoo,omitempty"`
	LastReportID string           `json:"lastReportId,omitempty"`
}

// state says whether an agent is connected: it reported within three intervals.
func (s *Service) state(m *machine, now time.Time) string {
	switch {
	case m.lastSeen.IsZero():
		return "Pending"
	case now.Sub(m.lastSeen) <= 3*s.opts.ReportInterval+time.Minute:
		return "Connected"
	default:
		return "Disconnected"
	}
}

// Status returns the agent status of the machine with id, or ErrNotFound when no agent
// enrolled as it.
func (s *Service) Status(id resource.ID) (Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.machines[id.Key()]
	if m == nil {
		return Status{}, fmt.Errorf("fleet: status: %w", resource.Errorf(resource.CodeNotFound, id.String(), "no agent has enrolled as %s yet", id))
	}
	return Status{MachineID: m.id, EnrolledAt: m.enrolledAt, LastSeen: m.lastSeen, State: s.state(m, s.opts.Now()),
		Facts: m.facts, Tattoo: m.tattoo, LastReportID: m.lastReportID}, nil
}

// factsOrZero returns m's facts, or none for a nil m.
func (m *machine) factsOrZero() agentproto.Facts {
	if m == nil {
		return agentproto.Facts{}
	}
	return m.facts
}

// Shutdown ends the assignment requests agents hold open, so that a server stopping need
// not wait out their long polls; each answers unchanged and the agent asks again.
func (s *Service) Shutdown() { s.stopOnce.Do(func() { close(s.stopping) }) }
