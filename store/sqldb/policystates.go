package sqldb

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// Column lists of the compliance tables, in the order the statements bind them.
const (
	psColumns = `resource_key, assignment_key, reference_key, resource_id, assignment_id, definition_id, ` +
		`set_definition_id, reference_id, resource_type, resource_group, subscription, location, ` +
		`state, effect, reasons, evaluated_at, changed_at`
	psNCol = 17

	// psDiffColumns are what ReplacePolicyStates reads back to diff a scan against: the
	// key and what a scan decides that can change. Not the times (which it sets), the
	// spelled IDs (which stay as first written), nor the resource's type, group,
	// subscription and location: ARM fixes those when it creates a resource, so they
	// cannot differ between two scans of one ID, and reading four more columns of every
	// row made the diff a fifth slower.
	psDiffColumns = `resource_key, assignment_key, reference_key, state, effect, reasons, definition_id, set_definition_id`
	psNDiff       = 8

	psHistColumns = `at, resource_id, resource_key, assignment_id, definition_id, reference_id, from_state, to_state`
	psHistNCol    = 8

	// psOrder is the states' one order: the primary key's, in byte order (the key columns
	// are BINARY in SQLite and COLLATE "C" in PostgreSQL), which is also Go's string order.
	psOrder = `resource_key, assignment_key, reference_key`
)

// Batch sizes. A multi-row INSERT costs about what one single-row INSERT does in
// database/sql and driver overhead, so a first scan, which inserts every state and a
// history row for each, writes them psInsertRows and psHistoryRows at a time. Both stay
// under a thousand parameters, far below either engine's limit (SQLite 32,766, PostgreSQL
// 65,535). psLoadKeys is how many resources one diff query reads: the benchmark's batch of
// 500 in one query.
const (
	psInsertRows  = 50
	psHistoryRows = 100
	psLoadKeys    = 500
)

// Statements ReplacePolicyStates runs many times per call, prepared once on the write pool.
const (
	qPSUpdate = `UPDATE policy_states SET definition_id = ?, set_definition_id = ?, resource_type = ?, ` +
		`resource_group = ?, subscription = ?, location = ?, state = ?, effect = ?, reasons = ?, ` +
		`evaluated_at = ?, changed_at = ? WHERE resource_key = ? AND assignment_key = ? AND reference_key = ?`
	// qPSUpdateSame is qPSUpdate for a row whose state stays: changed_at keeps the time of
	// the last change of state.
	qPSUpdateSame = `UPDATE policy_states SET definition_id = ?, set_definition_id = ?, resource_type = ?, ` +
		`resource_group = ?, subscription = ?, location = ?, state = ?, effect = ?, reasons = ?, ` +
		`evaluated_at = ? WHERE resource_key = ? AND assignment_key = ? AND reference_key = ?`
	qPSDelete = `DELETE FROM policy_states WHERE resource_key = ? AND assignment_key = ? AND reference_key = ? ` +
		`RETURNING resource_id, assignment_id, definition_id, reference_id, state`
)

var (
	qPSInsertBulk  = insertValues(`INSERT INTO policy_states (`+psColumns+`)`, psNCol, psInsertRows, ``)
	qPSHistoryBulk = insertValues(`INSERT INTO policy_state_history (`+psHistColumns+`)`, psHistNCol, psHistoryRows, ` RETURNING seq`)
	qPSLoadFull    = psLoadQuery(psLoadKeys, 0)
)

// placeholders returns n comma-separated ?s.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// insertValues is head VALUES (?, ...), ... for rows rows of ncol values, then tail.
func insertValues(head string, ncol, rows int, tail string) string {
	row := "(" + placeholders(ncol) + ")"
	var b strings.Builder
	b.WriteString(head)
	b.WriteString(" VALUES ")
	for i := 0; i < rows; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	b.WriteString(tail)
	return b.String()
}

// psLoadQuery reads the diff columns of the states of nres resources, limited to nasg
// assignments unless nasg is 0, in key order.
func psLoadQuery(nres, nasg int) string {
	q := `SELECT ` + psDiffColumns + ` FROM policy_states WHERE resource_key IN (` + placeholders(nres) + `)`
	if nasg > 0 {
		q += ` AND assignment_key IN (` + placeholders(nasg) + `)`
	}
	return q + ` ORDER BY ` + psOrder
}

// rollup is the states in the order a resource's roll-up picks them: the first of these
// that any of its states has is its roll-up state (Azure's order).
var rollup = []string{
	store.StateNonCompliant, store.StateCompliant, store.StateConflicting,
	store.StateExempt, store.StateUnknown, store.StateNotStarted,
}

// rankCase is a CASE expression ranking state by rollup, from 1. Writes only store the
// known states, so ELSE never applies; it ranks as Unknown rather than vanish from counts.
var rankCase = func() string {
	var b strings.Builder
	b.WriteString("CASE state")
	unknown := 0
	for i, s := range rollup {
		fmt.Fprintf(&b, " WHEN '%s' THEN %d", s, i+1)
		if s == store.StateUnknown {
			unknown = i + 1
		}
	}
	fmt.Fprintf(&b, " ELSE %d END", unknown)
	return b.String()
}()

// canonState returns Azure's spelling of a state named in any letter case.
func canonState(s string) (string, bool) {
	for _, k := range rollup {
		if s == k {
			return k, true
		}
	}
	for _, k := range rollup {
		if strings.EqualFold(s, k) {
			return k, true
		}
	}
	return "", false
}

func invalid(target, format string, args ...any) error {
	return resource.Errorf(resource.CodeInvalidParameter, target, format, args...)
}

// spelledID is a parsed ID's key and its canonical spelling (the writer's letter case,
// without a trailing slash).
type spelledID struct{ key, id string }

func parseSpelled(raw string) (spelledID, error) {
	id, err := resource.Parse(raw)
	if err != nil {
		return spelledID{}, err
	}
	s := id.String()
	return spelledID{key: strings.ToLower(s), id: s}, nil
}

// idKey is the key of a resource or assignment ID a query names.
func idKey(raw string) (string, error) {
	sp, err := parseSpelled(raw)
	return sp.key, err
}

// isNullJSON reports whether reasons say there are none: absent, or JSON null.
func isNullJSON(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) == 0 || string(b) == "null"
}

// psEntry is one state a ReplacePolicyStates call writes, with its keys worked out.
type psEntry struct {
	rank             int // of the resource in key order
	compacted        bool
	asg              *psAssignment
	rkey, akey, fkey string
	resourceID       string // canonical spelling of the IDs
	assignmentID     string
	s                *store.PolicyState // the caller's, read only
	state, effect    string             // canonical state, lower-cased effect
	reasons          []byte             // as given; nil when there are none
	compact          []byte             // reasons compacted, once needed
}

// evaluated is when e was evaluated: its EvaluatedAt, or at (the call's now) when zero.
func (e *psEntry) evaluated(at time.Time) time.Time {
	if e.s.EvaluatedAt.IsZero() {
		return at
	}
	return e.s.EvaluatedAt
}

// compactReasons returns e's reasons as stored: compact JSON, or nil for none.
func (e *psEntry) compactReasons() ([]byte, error) {
	if e.compacted {
		return e.compact, nil
	}
	if e.reasons != nil {
		var buf bytes.Buffer
		buf.Grow(len(e.reasons))
		if err := json.Compact(&buf, e.reasons); err != nil {
			return nil, invalid(e.resourceID, "reasons of %s for assignment %s are not JSON: %w", e.resourceID, e.assignmentID, err)
		}
		e.compact = buf.Bytes()
		if string(e.compact) == "null" {
			e.compact = nil
		}
	}
	e.compacted = true
	return e.compact, nil
}

// reasonsArg is the reasons column value: NULL or the compact JSON text.
func (e *psEntry) reasonsArg() (any, error) {
	c, err := e.compactReasons()
	if err != nil || c == nil {
		return nil, err
	}
	return string(c), nil
}

// cmpKey orders an entry against a stored row's key. It compares with == and <, which
// the compiler does without copying the bytes into a string.
func cmpKey(e *psEntry, r, a, f []byte) int {
	switch {
	case e.rkey != string(r):
		return cmpLess(e.rkey < string(r))
	case e.akey != string(a):
		return cmpLess(e.akey < string(a))
	case e.fkey != string(f):
		return cmpLess(e.fkey < string(f))
	}
	return 0
}

func cmpLess(less bool) int {
	if less {
		return -1
	}
	return 1
}

// sameAsStored reports whether the stored row c (in psDiffColumns order) already holds
// what e would write.
func (e *psEntry) sameAsStored(c *[psNDiff]sql.RawBytes) (bool, error) {
	if e.state != string(c[3]) || e.effect != string(c[4]) ||
		!sameID(e.s.DefinitionID, c[6]) || !sameID(e.s.SetDefinitionID, c[7]) {
		return false, nil
	}
	stored := c[5] // nil when NULL
	switch {
	case e.reasons == nil:
		return stored == nil, nil
	case stored != nil && bytes.Equal(stored, e.reasons):
		// What is stored is compact, so reasons equal to it are too: no need to compact.
		return true, nil
	}
	compact, err := e.compactReasons()
	if err != nil {
		return false, err
	}
	return bytes.Equal(compact, stored) && (compact == nil) == (stored == nil), nil
}

// sameID compares IDs case-insensitively, without a string copy of stored when they are
// spelt alike, as they nearly always are.
func sameID(id string, stored []byte) bool {
	return id == string(stored) || strings.EqualFold(id, string(stored))
}

// psOp is one write the diff decided on.
type psOp struct {
	kind byte      // 'i'nsert, 'u'pdate, 'd'elete
	e    *psEntry  // insert, update
	from string    // update: the stored state, when it changes
	key  [3]string // delete: the stored row's key
}

// rkey is the key of the resource op writes.
func (op *psOp) rkey() string {
	if op.e != nil {
		return op.e.rkey
	}
	return op.key[0]
}

// ReplacePolicyStates writes only the difference between states and what is stored. For a
// replacement of every assignment it first compares each resource's digest with the
// stored one (psdigest.go) and skips the resources that match; the others' stored rows it
// reads (a query per psLoadKeys resources, in key order), merges with states sorted the
// same way, and diffs row by row. A row is rewritten when its state, effect or reasons
// differ, and also when its definitions do (an assignment edited to another policy): a
// stale definition would misfile the state in summaries.
func (t *txn) ReplacePolicyStates(ctx context.Context, resources []string, assignments []string, states []store.PolicyState) ([]store.StateTransition, error) {
	if err := t.live("replace policy states"); err != nil {
		return nil, err
	}
	out, err := t.replacePolicyStates(ctx, resources, assignments, states)
	if err != nil {
		return nil, fmt.Errorf("store: replace policy states of %d resources: %w", len(resources), err)
	}
	return out, nil
}

func (t *txn) replacePolicyStates(ctx context.Context, resources []string, assignments []string, states []store.PolicyState) ([]store.StateTransition, error) {
	at := now()
	// The resources, by spelling so that most states' resource IDs resolve by one map
	// lookup instead of a parse, and by key.
	byRaw := make(map[string]*psResource, len(resources))
	byKey := make(map[string]*psResource, len(resources))
	for _, raw := range resources {
		if _, dup := byRaw[raw]; dup {
			continue
		}
		sp, err := parseSpelled(raw)
		if err != nil {
			return nil, err
		}
		r := byKey[sp.key]
		if r == nil {
			r = &psResource{spelledID: sp}
			byKey[sp.key] = r
		}
		byRaw[raw] = r
	}
	resKeys := make([]string, 0, len(byKey))
	for k := range byKey {
		resKeys = append(resKeys, k)
	}
	slices.Sort(resKeys)
	for i, k := range resKeys {
		byKey[k].rank = i
	}

	// nil assignments: every assignment; otherwise only these.
	var asgKeys []string
	var asgSet map[string]bool
	asgByRaw := map[string]*psAssignment{}
	if assignments != nil {
		asgSet = make(map[string]bool, len(assignments))
		for _, raw := range assignments {
			sp, err := parseSpelled(raw)
			if err != nil {
				return nil, err
			}
			asgByRaw[raw] = &psAssignment{spelledID: sp}
			if !asgSet[sp.key] {
				asgSet[sp.key] = true
				asgKeys = append(asgKeys, sp.key)
			}
		}
		slices.Sort(asgKeys)
	}

	// First each state's resource, counting states per resource; then the entries, each
	// put straight into its resource's place in key order (a counting sort: a scan lists a
	// resource's states together, its resources not necessarily in key order, and sorting
	// a batch by its long keys cost more than diffing it).
	owner := make([]*psResource, len(states))
	start := make([]int, len(resKeys)+1)
	for i := range states {
		s := &states[i]
		r := byRaw[s.ResourceID]
		if r == nil {
			sp, err := parseSpelled(s.ResourceID)
			if err != nil {
				return nil, err
			}
			if r = byKey[sp.key]; r == nil {
				return nil, invalid(s.ResourceID, "state of %s, which is not among the resources replaced", s.ResourceID)
			}
			// The state's own spelling is what its transitions report.
			r = &psResource{spelledID: sp, rank: r.rank}
		}
		owner[i] = r
		start[r.rank+1]++
	}
	for r := 1; r < len(start); r++ {
		start[r] += start[r-1]
	}
	next := slices.Clone(start[:len(resKeys)])
	entries := getEntries(len(states))
	defer putEntries(entries)
	for i := range states {
		s := &states[i]
		r := owner[i]
		e := &entries[next[r.rank]]
		next[r.rank]++
		as := asgByRaw[s.AssignmentID]
		if as == nil {
			sp, err := parseSpelled(s.AssignmentID)
			if err != nil {
				return nil, fmt.Errorf("assignment of %s: %w", s.ResourceID, err)
			}
			as = &psAssignment{spelledID: sp}
			asgByRaw[s.AssignmentID] = as
		}
		if asgSet != nil && !asgSet[as.key] {
			return nil, invalid(s.AssignmentID, "state of %s for assignment %s, which is not among the assignments replaced", s.ResourceID, s.AssignmentID)
		}
		state, ok := canonState(s.State)
		if !ok {
			return nil, invalid(s.ResourceID, "state %q of %s for assignment %s is not a compliance state (%s)", s.State, s.ResourceID, s.AssignmentID, strings.Join(rollup, ", "))
		}
		e.s = s
		e.rank = r.rank
		e.rkey, e.resourceID = r.key, r.id
		e.akey, e.assignmentID = as.key, as.id
		e.asg = as
		e.fkey = strings.ToLower(s.ReferenceID)
		e.state = state
		e.effect = strings.ToLower(s.Effect)
		if !isNullJSON(s.Reasons) {
			e.reasons = s.Reasons
		}
	}
	// Within a resource, by assignment and reference (usually so already).
	less := func(a, b psEntry) int { return cmpEntries(&a, &b) }
	for r := 0; r < len(resKeys); r++ {
		if group := entries[start[r]:start[r+1]]; !slices.IsSortedFunc(group, less) {
			slices.SortFunc(group, less)
		}
	}
	for i := 1; i < len(entries); i++ {
		if cmpEntries(&entries[i-1], &entries[i]) == 0 {
			e := &entries[i]
			return nil, invalid(e.resourceID, "two states of %s for assignment %s, reference %q", e.resourceID, e.assignmentID, e.s.ReferenceID)
		}
	}

	if asgSet != nil {
		// Some assignments only: diff them row by row, and forget the digests of the
		// resources that changed, which described all their assignments.
		ops, err := t.diffPolicyStates(ctx, resKeys, asgKeys, asgSet, entries)
		if err != nil || len(ops) == 0 {
			return nil, err
		}
		var touched []string
		for i := range ops {
			if k := ops[i].rkey(); len(touched) == 0 || touched[len(touched)-1] != k {
				touched = append(touched, k)
			}
		}
		if err := t.forgetDigests(ctx, touched); err != nil {
			return nil, err
		}
		return t.applyPolicyStates(ctx, ops, at)
	}

	// Every assignment: only the resources whose digest differs from the one stored can
	// have changed; a steady-state scan reads 500 digests per batch instead of 10,000 rows.
	digests := digestEntries(entries, start)
	stale, err := t.staleResources(ctx, resKeys, digests)
	if err != nil || len(stale) == 0 {
		return nil, err
	}
	staleKeys := make([]string, len(stale))
	var staleEntries []psEntry
	if len(stale) == len(resKeys) {
		copy(staleKeys, resKeys)
		staleEntries = entries
	} else {
		for i, r := range stale {
			staleKeys[i] = resKeys[r]
			staleEntries = append(staleEntries, entries[start[r]:start[r+1]]...)
		}
	}
	ops, err := t.diffPolicyStates(ctx, staleKeys, nil, nil, staleEntries)
	if err != nil {
		return nil, err
	}
	var trans []store.StateTransition
	if len(ops) > 0 {
		if trans, err = t.applyPolicyStates(ctx, ops, at); err != nil {
			return nil, err
		}
	}
	if err := t.storeDigests(ctx, staleKeys, stale, digests); err != nil {
		return nil, err
	}
	return trans, nil
}

// entryPool recycles the entries of ReplacePolicyStates: a scan calls it for every batch
// with thousands of states, and allocating them anew each time was a third of an
// unchanged scan's cost in garbage collection.
var entryPool sync.Pool

func getEntries(n int) []psEntry {
	if p, ok := entryPool.Get().(*[]psEntry); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]psEntry, n)
}

// putEntries returns entries to the pool, cleared so that it keeps none of the caller's
// states alive.
func putEntries(entries []psEntry) {
	clear(entries[:cap(entries)])
	entries = entries[:0]
	entryPool.Put(&entries)
}

// psAssignment is an assignment of a ReplacePolicyStates call, by one spelling, with what
// digestEntries remembers of it.
type psAssignment struct {
	spelledID
	digest psIDHashes
}

// psResource is a resource of a ReplacePolicyStates call and its place in key order.
type psResource struct {
	spelledID
	rank int
}

func cmpEntries(a, b *psEntry) int {
	if a.rank != b.rank {
		return a.rank - b.rank
	}
	if c := strings.Compare(a.akey, b.akey); c != 0 {
		return c
	}
	return strings.Compare(a.fkey, b.fkey)
}

// diffPolicyStates merges the stored states of resKeys (sorted) with entries (sorted) and
// returns the writes that make them equal, in key order. A full scan calls it with
// thousands of unchanged rows for each changed one, so the loop over stored rows scans
// into reused RawBytes and allocates only for a row that changes.
func (t *txn) diffPolicyStates(ctx context.Context, resKeys, asgKeys []string, asgSet map[string]bool, entries []psEntry) ([]psOp, error) {
	var ops []psOp
	if asgSet != nil && len(asgKeys) == 0 {
		// No assignments: nothing stored is in play, and entries is empty (checked).
		return nil, nil
	}
	// Filter by assignment in SQL while the list is short; a long one is cheaper to test
	// per row in Go than to send with every query.
	sqlAsg := len(asgKeys) > 0 && len(asgKeys) <= 100
	var c [psNDiff]sql.RawBytes
	dest := make([]any, psNDiff)
	for i := range c {
		dest[i] = &c[i]
	}
	args := make([]any, 0, psLoadKeys+len(asgKeys))
	ei := 0
	for start := 0; start < len(resKeys); start += psLoadKeys {
		chunk := resKeys[start:min(start+psLoadKeys, len(resKeys))]
		args = args[:0]
		for _, k := range chunk {
			args = append(args, k)
		}
		query := qPSLoadFull
		if sqlAsg || len(chunk) != psLoadKeys {
			n := 0
			if sqlAsg {
				n = len(asgKeys)
				for _, k := range asgKeys {
					args = append(args, k)
				}
			}
			query = psLoadQuery(len(chunk), n)
		}
		rows, err := t.s.query(ctx, query, args...)
		if err != nil {
			return nil, fmt.Errorf("read stored states: %w", t.db.classify(err, "policy states"))
		}
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read stored states: %w", err)
			}
			if asgSet != nil && !asgSet[string(c[1])] {
				continue
			}
			// Entries before this row are new.
			for ei < len(entries) && cmpKey(&entries[ei], c[0], c[1], c[2]) < 0 {
				ops = append(ops, psOp{kind: 'i', e: &entries[ei]})
				ei++
			}
			if ei < len(entries) && cmpKey(&entries[ei], c[0], c[1], c[2]) == 0 {
				e := &entries[ei]
				ei++
				same, err := e.sameAsStored(&c)
				if err != nil {
					rows.Close()
					return nil, err
				}
				if !same {
					op := psOp{kind: 'u', e: e}
					if e.state != string(c[3]) {
						op.from = string(c[3])
					}
					ops = append(ops, op)
				}
				continue
			}
			// A stored row the scan no longer has.
			ops = append(ops, psOp{kind: 'd', key: [3]string{string(c[0]), string(c[1]), string(c[2])}})
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("read stored states: %w", t.db.classify(err, "policy states"))
		}
	}
	for ; ei < len(entries); ei++ {
		ops = append(ops, psOp{kind: 'i', e: &entries[ei]})
	}
	return ops, nil
}

// applyPolicyStates carries out ops and records a transition for each change of state.
func (t *txn) applyPolicyStates(ctx context.Context, ops []psOp, at time.Time) ([]store.StateTransition, error) {
	var trans []store.StateTransition
	var stUpdate, stUpdateSame, stDelete *sql.Stmt
	stmt := func(p **sql.Stmt, q string) *sql.Stmt {
		if *p == nil {
			*p = t.s.stmt(ctx, q)
		}
		return *p
	}
	ins := bulkWriter{t: t, full: qPSInsertBulk, head: `INSERT INTO policy_states (` + psColumns + `)`, ncol: psNCol, rows: psInsertRows}
	for i := range ops {
		op := &ops[i]
		switch op.kind {
		case 'd':
			var tr store.StateTransition
			err := stmt(&stDelete, qPSDelete).QueryRowContext(ctx, op.key[0], op.key[1], op.key[2]).
				Scan(&tr.ResourceID, &tr.AssignmentID, &tr.DefinitionID, &tr.ReferenceID, &tr.From)
			if err != nil {
				return nil, fmt.Errorf("delete state of %s for %s: %w", op.key[0], op.key[1], t.db.classify(err, "policy states"))
			}
			tr.At = at
			trans = append(trans, tr)
		case 'u':
			e := op.e
			reasons, err := e.reasonsArg()
			if err != nil {
				return nil, err
			}
			s := e.s
			evaluated := formatTime(e.evaluated(at))
			if op.from != "" {
				_, err = stmt(&stUpdate, qPSUpdate).ExecContext(ctx,
					s.DefinitionID, s.SetDefinitionID, s.ResourceType, s.ResourceGroup, s.Subscription, s.Location,
					e.state, e.effect, reasons, evaluated, evaluated, e.rkey, e.akey, e.fkey)
			} else {
				_, err = stmt(&stUpdateSame, qPSUpdateSame).ExecContext(ctx,
					s.DefinitionID, s.SetDefinitionID, s.ResourceType, s.ResourceGroup, s.Subscription, s.Location,
					e.state, e.effect, reasons, evaluated, e.rkey, e.akey, e.fkey)
			}
			if err != nil {
				return nil, fmt.Errorf("update state of %s for %s: %w", e.resourceID, e.assignmentID, t.db.classify(err, "policy states"))
			}
			if op.from != "" {
				trans = append(trans, e.transition(op.from, e.state, at))
			}
		case 'i':
			e := op.e
			reasons, err := e.reasonsArg()
			if err != nil {
				return nil, err
			}
			s := e.s
			evaluated := formatTime(e.evaluated(at))
			if err := ins.add(ctx, e.rkey, e.akey, e.fkey, e.resourceID, e.assignmentID, s.DefinitionID,
				s.SetDefinitionID, s.ReferenceID, s.ResourceType, s.ResourceGroup, s.Subscription, s.Location,
				e.state, e.effect, reasons, evaluated, evaluated); err != nil {
				return nil, fmt.Errorf("insert states: %w", err)
			}
			trans = append(trans, e.transition("", e.state, at))
		}
	}
	if err := ins.flush(ctx); err != nil {
		return nil, fmt.Errorf("insert states: %w", err)
	}
	if err := t.recordTransitions(ctx, trans); err != nil {
		return nil, err
	}
	return trans, nil
}

// transition is e's change of state from from to to, as the writer spelt the IDs.
func (e *psEntry) transition(from, to string, at time.Time) store.StateTransition {
	return store.StateTransition{
		At:           e.evaluated(at).UTC().Truncate(time.Microsecond),
		ResourceID:   e.resourceID,
		AssignmentID: e.assignmentID,
		DefinitionID: e.s.DefinitionID,
		ReferenceID:  e.s.ReferenceID,
		From:         from,
		To:           to,
	}
}

// recordTransitions appends trans to the history, filling in their Seqs.
func (t *txn) recordTransitions(ctx context.Context, trans []store.StateTransition) error {
	w := bulkWriter{t: t, full: qPSHistoryBulk, head: `INSERT INTO policy_state_history (` + psHistColumns + `)`,
		tail: ` RETURNING seq`, ncol: psHistNCol, rows: psHistoryRows}
	var seqs []int64
	w.returned = func(rows *sql.Rows) error {
		// RETURNING may hand rows back in any order, but both engines number the rows of
		// one VALUES list in order, and the writer holds the write lock, so the sorted
		// seqs belong to the rows in the order they were sent.
		first := len(seqs)
		for rows.Next() {
			var seq int64
			if err := rows.Scan(&seq); err != nil {
				return err
			}
			seqs = append(seqs, seq)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		slices.Sort(seqs[first:])
		return nil
	}
	for i := range trans {
		tr := &trans[i]
		key := strings.ToLower(tr.ResourceID)
		if err := w.add(ctx, formatTime(tr.At), tr.ResourceID, key, tr.AssignmentID, tr.DefinitionID, tr.ReferenceID, tr.From, tr.To); err != nil {
			return fmt.Errorf("record transitions: %w", err)
		}
	}
	if err := w.flush(ctx); err != nil {
		return fmt.Errorf("record transitions: %w", err)
	}
	if len(seqs) != len(trans) {
		return fmt.Errorf("record transitions: %d rows written, %d seqs returned", len(trans), len(seqs))
	}
	for i := range trans {
		trans[i].Seq = seqs[i]
	}
	return nil
}

// bulkWriter sends rows of ncol values as multi-row INSERTs: full chunks through the
// prepared statement full, the remainder through a statement built for its size.
type bulkWriter struct {
	t          *txn
	full       string // head VALUES (...) x rows, tail
	head, tail string
	ncol, rows int
	returned   func(*sql.Rows) error // reads RETURNING rows; nil when there are none
	args       []any
	st         *sql.Stmt
}

func (w *bulkWriter) add(ctx context.Context, values ...any) error {
	if w.args == nil {
		w.args = make([]any, 0, w.ncol*w.rows)
	}
	w.args = append(w.args, values...)
	if len(w.args) < w.ncol*w.rows {
		return nil
	}
	if w.st == nil {
		w.st = w.t.s.stmt(ctx, w.full)
	}
	err := w.run(ctx, w.st, "")
	w.args = w.args[:0]
	return err
}

func (w *bulkWriter) flush(ctx context.Context) error {
	if len(w.args) == 0 {
		return nil
	}
	err := w.run(ctx, nil, insertValues(w.head, w.ncol, len(w.args)/w.ncol, w.tail))
	w.args = w.args[:0]
	return err
}

func (w *bulkWriter) run(ctx context.Context, st *sql.Stmt, query string) error {
	db := w.t.db
	if w.returned == nil {
		var err error
		if st != nil {
			_, err = st.ExecContext(ctx, w.args...)
		} else {
			_, err = w.t.s.tx.ExecContext(ctx, db.bind(query), w.args...)
		}
		return db.classify(err, "policy states")
	}
	var rows *sql.Rows
	var err error
	if st != nil {
		rows, err = st.QueryContext(ctx, w.args...)
	} else {
		rows, err = w.t.s.tx.QueryContext(ctx, db.bind(query), w.args...)
	}
	if err != nil {
		return db.classify(err, "policy states")
	}
	defer rows.Close()
	return w.returned(rows)
}

// DeletePolicyStates removes every state of the resources.
func (t *txn) DeletePolicyStates(ctx context.Context, resources []string) ([]store.StateTransition, error) {
	if err := t.live("delete policy states"); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(resources))
	seen := make(map[string]bool, len(resources))
	for _, raw := range resources {
		k, err := idKey(raw)
		if err != nil {
			return nil, fmt.Errorf("store: delete policy states: %w", err)
		}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var out []store.StateTransition
	for start := 0; start < len(keys); start += psLoadKeys {
		chunk := keys[start:min(start+psLoadKeys, len(keys))]
		args := make([]any, len(chunk))
		for i, k := range chunk {
			args[i] = k
		}
		trans, err := t.deleteStatesWhere(ctx, `resource_key IN (`+placeholders(len(chunk))+`)`, args)
		if err != nil {
			return nil, fmt.Errorf("store: delete policy states of %d resources: %w", len(resources), err)
		}
		out = append(out, trans...)
	}
	return out, nil
}

// DeleteAssignmentStates removes every state of an assignment.
func (t *txn) DeleteAssignmentStates(ctx context.Context, assignmentID string) ([]store.StateTransition, error) {
	if err := t.live("delete assignment states"); err != nil {
		return nil, err
	}
	key, err := idKey(assignmentID)
	if err != nil {
		return nil, fmt.Errorf("store: delete states of assignment %q: %w", assignmentID, err)
	}
	out, err := t.deleteStatesWhere(ctx, `assignment_key = ?`, []any{key})
	if err != nil {
		return nil, fmt.Errorf("store: delete states of assignment %s: %w", assignmentID, err)
	}
	return out, nil
}

// deleteStatesWhere deletes the states cond selects in one statement, however many there
// are (deleting an assignment drops a state per resource in its scope), and records a
// transition to "" for each, in key order.
func (t *txn) deleteStatesWhere(ctx context.Context, cond string, args []any) ([]store.StateTransition, error) {
	at := now()
	if _, err := t.s.exec(ctx, `DELETE FROM policy_state_digests WHERE resource_key IN (SELECT resource_key FROM policy_states WHERE `+cond+`)`, args...); err != nil {
		return nil, fmt.Errorf("forget digests: %w", t.db.classify(err, "policy states"))
	}
	rows, err := t.s.query(ctx, `DELETE FROM policy_states WHERE `+cond+
		` RETURNING resource_key, assignment_key, reference_key, resource_id, assignment_id, definition_id, reference_id, state`, args...)
	if err != nil {
		return nil, fmt.Errorf("delete states: %w", t.db.classify(err, "policy states"))
	}
	type deleted struct {
		key [3]string
		tr  store.StateTransition
	}
	var gone []deleted
	for rows.Next() {
		var d deleted
		if err := rows.Scan(&d.key[0], &d.key[1], &d.key[2], &d.tr.ResourceID, &d.tr.AssignmentID,
			&d.tr.DefinitionID, &d.tr.ReferenceID, &d.tr.From); err != nil {
			rows.Close()
			return nil, fmt.Errorf("delete states: %w", err)
		}
		d.tr.At = at
		gone = append(gone, d)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("delete states: %w", t.db.classify(err, "policy states"))
	}
	// RETURNING comes in no promised order; the history gets the states' order.
	slices.SortFunc(gone, func(a, b deleted) int {
		return slices.Compare(a.key[:], b.key[:])
	})
	out := make([]store.StateTransition, len(gone))
	for i := range gone {
		out[i] = gone[i].tr
	}
	if err := t.recordTransitions(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// psWhere is the WHERE clause a PolicyStateQuery makes, for the states table (history
// false) or the history.
func psWhere(q store.PolicyStateQuery, history bool) (where []string, args []any, none bool, err error) {
	scopeCond, args, none := scopeFilter("resource_key", q.Scopes)
	if none {
		return nil, nil, true, nil
	}
	if scopeCond != "" {
		where = append(where, scopeCond)
	}
	if q.ResourceID != "" {
		k, err := idKey(q.ResourceID)
		if err != nil {
			return nil, nil, false, err
		}
		where = append(where, "resource_key = ?")
		args = append(args, k)
	}
	if q.AssignmentID != "" {
		k, err := idKey(q.AssignmentID)
		if err != nil {
			return nil, nil, false, err
		}
		if history {
			// The history keeps only the spelled ID; it is searched rarely enough to fold
			// case per row rather than carry a second copy of every ID.
			where = append(where, "lower(assignment_id) = ?")
		} else {
			where = append(where, "assignment_key = ?")
		}
		args = append(args, k)
	}
	if q.DefinitionID != "" {
		where = append(where, "lower(definition_id) = ?")
		args = append(args, strings.ToLower(strings.TrimSuffix(q.DefinitionID, "/")))
	}
	if q.ReferenceID != "" {
		if history {
			where = append(where, "lower(reference_id) = ?")
		} else {
			where = append(where, "reference_key = ?")
		}
		args = append(args, strings.ToLower(q.ReferenceID))
	}
	if q.State != "" {
		col := "state"
		if history {
			col = "to_state"
		}
		if c, ok := canonState(q.State); ok {
			// A literal (one of rollup's constants, never the caller's text), so that the
			// planner can match the partial state index; SQLite proves an index's WHERE
			// only from the very same term, hence the redundant one.
			where = append(where, col+" = '"+c+"'")
			if !history && c != store.StateCompliant {
				where = append(where, "state <> '"+store.StateCompliant+"'")
			}
		} else {
			where = append(where, col+" = ?")
			args = append(args, q.State)
		}
	}
	if history {
		if !q.Since.IsZero() {
			where = append(where, "at >= ?")
			args = append(args, formatTime(q.Since))
		}
		if !q.Until.IsZero() {
			where = append(where, "at < ?")
			args = append(args, formatTime(q.Until))
		}
	}
	return where, args, false, nil
}

func whereClause(where []string) string {
	if len(where) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(where, " AND ")
}

// The states cursor is the last row's key, JSON in URL-safe base64 so that it is one
// opaque token whatever the keys contain.
func encodeStateCursor(k [3]string) string {
	b, _ := json.Marshal(k)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeStateCursor(s string) ([3]string, error) {
	var k [3]string
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &k)
	}
	if err != nil {
		return k, invalid("after", "cursor %q is not one this store handed out", s)
	}
	return k, nil
}

// PolicyStates returns one page of states in key order.
func (db *DB) PolicyStates(ctx context.Context, q store.PolicyStateQuery) ([]store.PolicyState, string, error) {
	states, next, err := db.policyStates(ctx, q)
	if err != nil {
		return nil, "", fmt.Errorf("store: policy states: %w", err)
	}
	return states, next, nil
}

func (db *DB) policyStates(ctx context.Context, q store.PolicyStateQuery) ([]store.PolicyState, string, error) {
	where, args, none, err := psWhere(q, false)
	if err != nil || none {
		return nil, "", err
	}
	if q.After != "" {
		k, err := decodeStateCursor(q.After)
		if err != nil {
			return nil, "", err
		}
		// A row-value comparison, which both engines turn into one index range.
		where = append(where, "(resource_key, assignment_key, reference_key) > (?, ?, ?)")
		args = append(args, k[0], k[1], k[2])
	}
	limit := pageSize(q.Limit)
	query := `SELECT ` + psColumns + ` FROM policy_states` + whereClause(where) + ` ORDER BY ` + psOrder + ` LIMIT ?`
	args = append(args, limit+1)
	rows, err := db.reader().s.query(ctx, query, args...)
	if err != nil {
		return nil, "", db.classify(err, "policy states")
	}
	defer rows.Close()
	var out []store.PolicyState
	var key, last [3]string
	var next string
	for rows.Next() {
		if len(out) == limit {
			next = encodeStateCursor(last)
			break
		}
		var s store.PolicyState
		var reasons sql.NullString
		if err := rows.Scan(&key[0], &key[1], &key[2], &s.ResourceID, &s.AssignmentID, &s.DefinitionID,
			&s.SetDefinitionID, &s.ReferenceID, &s.ResourceType, &s.ResourceGroup, &s.Subscription, &s.Location,
			&s.State, &s.Effect, &reasons, timeScanner{&s.EvaluatedAt}, timeScanner{&s.ChangedAt}); err != nil {
			return nil, "", err
		}
		if reasons.Valid {
			s.Reasons = json.RawMessage(reasons.String)
		}
		last = key
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, "", db.classify(err, "policy states")
	}
	return out, next, nil
}

// PolicyStateHistory returns transitions in seq order; the cursor is the last seq.
func (db *DB) PolicyStateHistory(ctx context.Context, q store.PolicyStateQuery) ([]store.StateTransition, string, error) {
	out, next, err := db.policyStateHistory(ctx, q)
	if err != nil {
		return nil, "", fmt.Errorf("store: policy state history: %w", err)
	}
	return out, next, nil
}

func (db *DB) policyStateHistory(ctx context.Context, q store.PolicyStateQuery) ([]store.StateTransition, string, error) {
	where, args, none, err := psWhere(q, true)
	if err != nil || none {
		return nil, "", err
	}
	if q.After != "" {
		after, err := strconv.ParseInt(q.After, 10, 64)
		if err != nil || after < 0 {
			return nil, "", invalid("after", "cursor %q is not one this store handed out", q.After)
		}
		where = append(where, "seq > ?")
		args = append(args, after)
	}
	limit := pageSize(q.Limit)
	query := `SELECT seq, at, resource_id, assignment_id, definition_id, reference_id, from_state, to_state ` +
		`FROM policy_state_history` + whereClause(where) + ` ORDER BY seq LIMIT ?`
	args = append(args, limit+1)
	rows, err := db.reader().s.query(ctx, query, args...)
	if err != nil {
		return nil, "", db.classify(err, "policy state history")
	}
	defer rows.Close()
	var out []store.StateTransition
	var next string
	for rows.Next() {
		if len(out) == limit {
			next = strconv.FormatInt(out[len(out)-1].Seq, 10)
			break
		}
		var tr store.StateTransition
		if err := rows.Scan(&tr.Seq, timeScanner{&tr.At}, &tr.ResourceID, &tr.AssignmentID, &tr.DefinitionID,
			&tr.ReferenceID, &tr.From, &tr.To); err != nil {
			return nil, "", err
		}
		out = append(out, tr)
	}
	if err := rows.Err(); err != nil {
		return nil, "", db.classify(err, "policy state history")
	}
	return out, next, nil
}

// SummarizePolicyStates counts states per assignment, definition, reference and state in
// SQL: the table may hold millions of rows. Groups are by key; each reports one of its
// spellings.
func (db *DB) SummarizePolicyStates(ctx context.Context, q store.PolicyStateQuery) ([]store.StateCount, error) {
	where, args, none, err := psWhere(q, false)
	if err != nil {
		return nil, fmt.Errorf("store: summarize policy states: %w", err)
	}
	if none {
		return nil, nil
	}
	// The definition leads the GROUP BY so that SQLite does not pick the assignment index
	// for the grouping order: it would then look up every row in the table (2 million
	// lookups, 20 s for a 100,000 x 20 estate) where a scan and a sort take 8 s.
	// PostgreSQL hashes the groups either way.
	query := `SELECT MIN(assignment_id), MIN(definition_id), MIN(reference_id), state, COUNT(*) FROM policy_states` +
		whereClause(where) +
		` GROUP BY lower(definition_id), assignment_key, reference_key, state` +
		` ORDER BY assignment_key, lower(definition_id), reference_key, state`
	rows, err := db.reader().s.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: summarize policy states: %w", db.classify(err, "policy states"))
	}
	defer rows.Close()
	var out []store.StateCount
	for rows.Next() {
		var c store.StateCount
		if err := rows.Scan(&c.AssignmentID, &c.DefinitionID, &c.ReferenceID, &c.State, &c.Count); err != nil {
			return nil, fmt.Errorf("store: summarize policy states: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: summarize policy states: %w", db.classify(err, "policy states"))
	}
	return out, nil
}

// SummarizeResources rolls each resource's states up to one (the best-ranked by rollup,
// with MIN over a CASE) and counts resources per roll-up state, all in SQL. The counts
// come in rollup order; states no resource rolls up to are left out.
func (db *DB) SummarizeResources(ctx context.Context, q store.PolicyStateQuery) ([]store.ResourceStateCount, error) {
	where, args, none, err := psWhere(q, false)
	if err != nil {
		return nil, fmt.Errorf("store: summarize resources: %w", err)
	}
	if none {
		return nil, nil
	}
	query := `SELECT r, COUNT(*) FROM (SELECT MIN(` + rankCase + `) AS r FROM policy_states` +
		whereClause(where) + ` GROUP BY resource_key) AS ranked GROUP BY r ORDER BY r`
	rows, err := db.reader().s.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: summarize resources: %w", db.classify(err, "policy states"))
	}
	defer rows.Close()
	var out []store.ResourceStateCount
	for rows.Next() {
		var rank, n int64
		if err := rows.Scan(&rank, &n); err != nil {
			return nil, fmt.Errorf("store: summarize resources: %w", err)
		}
		if rank < 1 || int(rank) > len(rollup) {
			return nil, fmt.Errorf("store: summarize resources: rank %d out of range", rank)
		}
		out = append(out, store.ResourceStateCount{State: rollup[rank-1], Count: n})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: summarize resources: %w", db.classify(err, "policy states"))
	}
	return out, nil
}
