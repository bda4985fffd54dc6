package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/gildhq/gild/resource"
)

// Compliance states, as Azure Policy names them.
const (
	StateCompliant    = "Compliant"
	StateNonCompliant = "NonCompliant"
	StateExempt       = "Exempt"
	StateConflicting  = "Conflicting"
	StateUnknown      = "Unknown"
	StateNotStarted   = "NotStarted"
)

// PolicyState is the compliance of one resource with one policy of one assignment: the
// assignment's definition, or one member of its initiative (ReferenceID).
type PolicyState struct {
	ResourceID      string
	ResourceType    string
	ResourceGroup   string // resource group name, "" outside one
	Subscription    string // subscription name, "" outside one
	Location        string
	AssignmentID    string
	DefinitionID    string
	SetDefinitionID string // the initiative, when the assignment has one
	ReferenceID     string // the member's reference id in the initiative; "" otherwise
	State           string
	Effect          string          // the effect that decided it, lower-cased
	Reasons         json.RawMessage // JSON array of reasons; null when compliant
	EvaluatedAt     time.Time
	// ChangedAt is when State last changed: the store keeps it across writes that do not
	// change the state.
	ChangedAt time.Time
}

// PolicyStateKey identifies a state: one resource, assignment and member.
type PolicyStateKey struct {
	ResourceID   string
	AssignmentID string
	ReferenceID  string
}

// Key returns s's key.
func (s PolicyState) Key() PolicyStateKey {
	return PolicyStateKey{ResourceID: s.ResourceID, AssignmentID: s.AssignmentID, ReferenceID: s.ReferenceID}
}

// StateTransition is an entry of the compliance history: a state that changed (or
// appeared, or went away when From/To is "").
type StateTransition struct {
	Seq          int64
	At           time.Time
	ResourceID   string
	AssignmentID string
	DefinitionID string
	ReferenceID  string
	From         string // "" when the state is new
	To           string // "" when the state was removed
}

// PolicyStateQuery selects states or history.
type PolicyStateQuery struct {
	Scopes       []resource.ID // as in ListQuery: nil everywhere, empty nowhere
	ResourceID   string        // one resource (case-insensitive)
	AssignmentID string        // one assignment (case-insensitive)
	DefinitionID string
	ReferenceID  string
	State        string    // one state; in the history, transitions into it
	Since, Until time.Time // history only: transitions in [Since, Until)
	Limit        int
	After        string // cursor from the previous page
}

// StateCount is a number of states in one group of a summary.
type StateCount struct {
	AssignmentID string
	DefinitionID string
	ReferenceID  string
	State        string
	Count        int64
}

// ResourceStateCount is a number of resources whose roll-up state is State: a resource is
// NonCompliant if any of its states is, else Compliant if any is, then Conflicting, Exempt,
// Unknown (Azure's order).
type ResourceStateCount struct {
	State string
	Count int64
}

// PolicyStateStore keeps compliance states and their history. Writes happen inside an
// Update, so that evaluation results land with the change that caused them.
type PolicyStateStore interface {
	// PolicyStates returns one page of states, ordered by resource, assignment, reference.
	PolicyStates(ctx context.Context, q PolicyStateQuery) (states []PolicyState, next string, err error)
	// PolicyStateHistory returns transitions in Seq order.
	PolicyStateHistory(ctx context.Context, q PolicyStateQuery) (transitions []StateTransition, next string, err error)
	// SummarizePolicyStates counts states per assignment, definition, reference and state.
	SummarizePolicyStates(ctx context.Context, q PolicyStateQuery) ([]StateCount, error)
	// SummarizeResources counts resources by their roll-up state.
	SummarizeResources(ctx context.Context, q PolicyStateQuery) ([]ResourceStateCount, error)
}

// PolicyStateWriter writes states inside a transaction.
type PolicyStateWriter interface {
	// ReplacePolicyStates sets the states of some resources: afterwards the stored states of
	// each resource in resources, for the assignments in assignments (nil: every
	// assignment), are exactly those in states (all of which must be of those resources
	// and assignments, one per key, in a known state). A row whose State, Effect, Reasons
	// (compared as compact JSON) and definitions (case-insensitively) are unchanged is not
	// rewritten, so a scan that changes nothing writes nothing; new, changed and removed
	// rows are written, and each change of State is recorded as a transition, which it
	// returns with its Seq. The resource's type, group, subscription and location are not
	// compared: ARM fixes them for an ID, so they are written with the row. A rewritten
	// row takes the new EvaluatedAt (now when zero); ChangedAt is set to it only when
	// State changes. IDs compare case-insensitively, and a row keeps the spelling of its
	// IDs it was first written with.
	ReplacePolicyStates(ctx context.Context, resources []string, assignments []string, states []PolicyState) ([]StateTransition, error)
	// DeletePolicyStates removes every state of the resources (with transitions to "").
	DeletePolicyStates(ctx context.Context, resources []string) ([]StateTransition, error)
	// DeleteAssignmentStates removes every state of an assignment (with transitions to "").
	DeleteAssignmentStates(ctx context.Context, assignmentID string) ([]StateTransition, error)
}
