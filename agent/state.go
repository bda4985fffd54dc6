package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gildhq/gild/agentproto"
)

// DefaultStateDir is where the daemon keeps its state, unless --state-dir says otherwise.
const DefaultStateDir = "/var/lib/gild-agent"

// The files in the state directory.
const (
	stateFile = "state.json" // State, 0600: it holds the credential
	lockName  = "state.lock" // flock(2) around every read-modify-write of state.json
	spoolDir  = "spool"      // reports not yet acknowledged, one file each
)

// State is what the agent remembers between runs, in DIR/state.json.
type State struct {
	// Server is the gild server's URL, as enrollment used it.
	Server string `json:"server,omitempty"`
	// MachineID and Credential are the machine's identity, from enrollment. No Credential
	// means not enrolled.
	MachineID  string    `json:"machineId,omitempty"`
	Credential string    `json:"credential,omitempty"`
	EnrolledAt time.Time `json:"enrolledAt,omitzero"`
	// ReportIntervalSeconds is how often to report when nothing changes, as the server
	// last said; zero means the default.
	ReportIntervalSeconds int `json:"reportIntervalSeconds,omitempty"`
	// InstanceID is the first-boot instance this machine was provisioned as: provisioning
	// runs again only for a different one.
	InstanceID string `json:"instanceId,omitempty"`
	// EnrolledInstanceID is the first-boot instance whose token made this enrollment;
	// empty for "gild-agent enroll". First-boot data of another instance (the disk was
	// copied into a new VM) makes the daemon enroll again.
	EnrolledInstanceID string `json:"enrolledInstanceId,omitempty"`
	// RefusedToken is the SHA-256 (hex) of the first-boot enrollment token the server
	// refused, so that a restarted agent does not offer it again; new first-boot data
	// brings a new token.
	RefusedToken string `json:"refusedToken,omitempty"`
	// Assignments are the last assignments the server sent, with their ETag.
	Assignments *agentproto.Assignments `json:"assignments,omitempty"`
	// RunHashes are the assignment hashes run at least once (the next run is a
	// "Consistency" run); AppliedHashes those that ApplyAndMonitor applied. Both keep only
	// the hashes of the current assignments.
	RunHashes     []string `json:"runHashes,omitempty"`
	AppliedHashes []string `json:"appliedHashes,omitempty"`
	// LastApplyErrors is the last correction error of each assignment's check
	// ("assignment/check"), so that a check that keeps failing to apply is reported once,
	// not at every run.
	LastApplyErrors map[string]string `json:"lastApplyErrors,omitempty"`
	// PendingEvents wait for the next report; once it is spooled they travel with it.
	PendingEvents []agentproto.Event `json:"pendingEvents,omitempty"`
	// LastRuns is the outcome of each assignment's last run, for "gild-agent status".
	LastRuns []RunSummary `json:"lastRuns,omitempty"`
	// LastReport is when the server last acknowledged a report.
	LastReport time.Time `json:"lastReport,omitzero"`
}

// RunSummary is the outcome of an assignment's last run.
type RunSummary struct {
	Name             string    `json:"name"`
	Hash             string    `json:"hash"`
	AssignmentType   string    `json:"assignmentType"`
	ComplianceStatus string    `json:"complianceStatus"`
	Time             time.Time `json:"time"`
	NonCompliant     int       `json:"nonCompliant"` // resources not compliant
}

// Enrolled reports whether the state has a credential to report with.
func (s State) Enrolled() bool { return s.Credential != "" && s.Server != "" }

// setAssignments stores new assignments and forgets what it knew about hashes no longer
// assigned, so that the state stays as small as the assignments.
func (s *State) setAssignments(a agentproto.Assignments) {
	s.Assignments = &a
	if a.ReportIntervalSeconds > 0 {
		s.ReportIntervalSeconds = a.ReportIntervalSeconds
	}
	current := map[string]bool{}
	names := map[string]bool{}
	for _, x := range a.Assignments {
		current[x.Hash] = true
		names[x.Name] = true
	}
	keep := func(h string) bool { return !current[h] }
	s.RunHashes = slices.DeleteFunc(s.RunHashes, keep)
	s.AppliedHashes = slices.DeleteFunc(s.AppliedHashes, keep)
	s.LastRuns = slices.DeleteFunc(s.LastRuns, func(r RunSummary) bool { return !names[r.Name] })
	for k := range s.LastApplyErrors {
		if name, _, _ := cutAssignmentKey(k); !names[name] {
			delete(s.LastApplyErrors, k)
		}
	}
}

// forgetMachine drops everything that belonged to the machine identity the server revoked.
// The instance stays provisioned: its hostname and accounts are the VM's, not the
// enrollment's.
func (s *State) forgetMachine() {
	*s = State{Server: s.Server, InstanceID: s.InstanceID, RefusedToken: s.RefusedToken}
}

// etag is the ETag of the assignments held, empty before the first.
func (s State) etag() string {
	if s.Assignments == nil {
		return ""
	}
	return s.Assignments.ETag
}

func assignmentKey(assignment, check string) string { return assignment + "/" + check }

// cutAssignmentKey splits assignmentKey's result at the first slash: assignment names
// carry none (they are ARM resource names), check names may.
func cutAssignmentKey(k string) (assignment, check string, ok bool) {
	return strings.Cut(k, "/")
}

// stateStore reads and writes DIR/state.json. Every change is a read-modify-write under a
// lock, so that the daemon's goroutines and a "gild-agent enroll" run beside it never
// lose each other's changes.
type stateStore struct {
	dir string
	mu  sync.Mutex
}

// load reads the state; a missing file is the empty state of a machine never enrolled.
func (s *stateStore) load() (State, error) {
	data, err := os.ReadFile(filepath.Join(s.dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("read state: %w", err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return State{}, fmt.Errorf("read state %s: %w", filepath.Join(s.dir, stateFile), err)
	}
	return st, nil
}

// update applies fn to the current state and saves the result, unless fn fails.
func (s *stateStore) update(fn func(*State) error) (State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return State{}, fmt.Errorf("update state: %w", err)
	}
	unlock, err := lockFile(filepath.Join(s.dir, lockName))
	if err != nil {
		return State{}, fmt.Errorf("update state: %w", err)
	}
	defer unlock()
	st, err := s.load()
	if err != nil {
		return State{}, err
	}
	if err := fn(&st); err != nil {
		return st, err
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return st, fmt.Errorf("update state: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(s.dir, stateFile), append(data, '\n'), 0o600); err != nil {
		return st, fmt.Errorf("update state: %w", err)
	}
	return st, nil
}

// writeFileAtomic replaces path with data through a temporary file in the same directory,
// synced before the rename and the directory after it, so that a power cut leaves the old
// file or the new one, never half of one.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		// Best effort: some file systems cannot sync a directory, and the rename is done.
		_ = d.Sync()
		d.Close()
	}
	return nil
}
