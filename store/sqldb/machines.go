package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

const (
	machineColumns = `id, credential_hash, enrolled_at, last_seen, last_report_id, last_report_at, report`
	qMachine       = `SELECT ` + machineColumns + ` FROM machines WHERE id_key = ?`
	qMachineByCred = `SELECT ` + machineColumns + ` FROM machines WHERE credential_hash = ?`
	qMachines      = `SELECT ` + machineColumns + ` FROM machines WHERE id_key > ? ORDER BY id_key LIMIT ?`
	qPutMachine    = `INSERT INTO machines (id_key, ` + machineColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id_key) DO UPDATE SET credential_hash = excluded.credential_hash, enrolled_at = excluded.enrolled_at,
last_seen = excluded.last_seen, last_report_id = excluded.last_report_id, last_report_at = excluded.last_report_at, report = excluded.report`
	qAddMachineEvent = `INSERT INTO machine_events (machine_key, machine_id, event_id, at, kind, assignment, check_name, target, before_value, after_value, message)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (machine_key, event_id) DO NOTHING`
	eventColumns         = `seq, machine_id, event_id, at, kind, assignment, check_name, target, before_value, after_value, message`
	qCreateEnrollment    = `INSERT INTO enrollment_tokens (hash, target, created_by, created_at, expires_at, used_at) VALUES (?, ?, ?, ?, ?, ?)`
	qEnrollment          = `SELECT hash, target, created_by, created_at, expires_at, used_at FROM enrollment_tokens WHERE hash = ?`
	qUseEnrollment       = `UPDATE enrollment_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL`
	qDeleteMachine       = `DELETE FROM machines WHERE id_key = ?`
	qDeleteMachineEvents = `DELETE FROM machine_events WHERE machine_key = ?`
)

func scanMachine(row interface{ Scan(...any) error }) (store.Machine, error) {
	var m store.Machine
	var report sql.NullString
	err := row.Scan(&m.ID, &m.CredentialHash, timeScanner{&m.EnrolledAt}, timeScanner{&m.LastSeen}, &m.LastReportID, timeScanner{&m.LastReportAt}, &report)
	if report.Valid {
		m.Report = []byte(report.String)
	}
	return m, err
}

func machineNotFound(what string) error {
	return resource.Errorf(resource.CodeNotFound, "machine", "no enrolled machine %s", what)
}

// Machine returns the machine with resource ID id.
func (db *DB) Machine(ctx context.Context, id string) (store.Machine, error) {
	m, err := scanMachine(db.reader().s.queryRow(ctx, qMachine, strings.ToLower(id)))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Machine{}, fmt.Errorf("store: machine %s: %w", id, machineNotFound(id))
	}
	if err != nil {
		return store.Machine{}, fmt.Errorf("store: machine %s: %w", id, db.classify(err, "machine"))
	}
	return m, nil
}

// MachineByCredential returns the machine whose credential hashes to hash.
func (db *DB) MachineByCredential(ctx context.Context, hash string) (store.Machine, error) {
	m, err := scanMachine(db.reader().s.queryRow(ctx, qMachineByCred, hash))
	if errors.Is(err, sql.ErrNoRows) {
		// The hash stands in for a secret, so the message does not repeat it.
		return store.Machine{}, fmt.Errorf("store: machine by credential: %w", machineNotFound("has that credential"))
	}
	if err != nil {
		return store.Machine{}, fmt.Errorf("store: machine by credential: %w", db.classify(err, "machine"))
	}
	return m, nil
}

// Machines returns up to limit machines after the ID key after.
func (db *DB) Machines(ctx context.Context, after string, limit int) ([]store.Machine, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := db.reader().s.query(ctx, qMachines, strings.ToLower(after), limit)
	if err != nil {
		return nil, fmt.Errorf("store: machines: %w", db.classify(err, "machines"))
	}
	defer rows.Close()
	var out []store.Machine
	for rows.Next() {
		m, err := scanMachine(rows)
		if err != nil {
			return nil, fmt.Errorf("store: machines: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: machines: %w", db.classify(err, "machines"))
	}
	return out, nil
}

// MachineEvents returns the events q selects, newest first.
func (db *DB) MachineEvents(ctx context.Context, q store.MachineEventQuery) ([]store.MachineEvent, error) {
	var where []string
	var args []any
	if q.Machine != "" {
		where = append(where, "machine_key = ?")
		args = append(args, strings.ToLower(q.Machine))
	} else if len(q.Scopes) > 0 {
		var ors []string
		for _, s := range q.Scopes {
			k := strings.TrimSuffix(strings.ToLower(s), "/")
			if k == "" {
				ors = nil
				break
			}
			// Under a scope: the scope itself or anything after "scope/" ('0' follows '/').
			ors = append(ors, "(machine_key = ? OR (machine_key > ? AND machine_key < ?))")
			args = append(args, k, k+"/", k+"0")
		}
		if len(ors) > 0 {
			where = append(where, "("+strings.Join(ors, " OR ")+")")
		} else {
			args = nil
		}
	}
	if q.Before > 0 {
		where = append(where, "seq < ?")
		args = append(args, q.Before)
	}
	limit := q.Limit
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	query := `SELECT ` + eventColumns + ` FROM machine_events` + whereClause(where) + ` ORDER BY seq DESC LIMIT ?`
	args = append(args, limit)
	rows, err := db.reader().s.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: machine events: %w", db.classify(err, "machine events"))
	}
	defer rows.Close()
	var out []store.MachineEvent
	for rows.Next() {
		var e store.MachineEvent
		if err := rows.Scan(&e.Seq, &e.MachineID, &e.EventID, timeScanner{&e.At}, &e.Kind, &e.Assignment, &e.Check, &e.Target, &e.Before, &e.After, &e.Message); err != nil {
			return nil, fmt.Errorf("store: machine events: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: machine events: %w", db.classify(err, "machine events"))
	}
	return out, nil
}

// PutMachine creates or replaces a machine.
func (t *txn) PutMachine(ctx context.Context, m store.Machine) error {
	if err := t.live("put machine"); err != nil {
		return err
	}
	if m.ID == "" || m.CredentialHash == "" {
		return fmt.Errorf("store: put machine: %w", resource.Errorf(resource.CodeInvalidParameter, "machine", "a machine needs an ID and a credential hash"))
	}
	if m.EnrolledAt.IsZero() {
		m.EnrolledAt = now()
	}
	var report any
	if m.Report != nil {
		report = string(m.Report)
	}
	if _, err := t.s.exec(ctx, qPutMachine, strings.ToLower(m.ID), m.ID, m.CredentialHash, formatTime(m.EnrolledAt),
		nullTime(m.LastSeen), m.LastReportID, nullTime(m.LastReportAt), report); err != nil {
		return fmt.Errorf("store: put machine %s: %w", m.ID, t.db.classify(err, "machine "+m.ID))
	}
	return nil
}

// DeleteMachine removes a machine and its events.
func (t *txn) DeleteMachine(ctx context.Context, id string) error {
	if err := t.live("delete machine"); err != nil {
		return err
	}
	for _, q := range []string{qDeleteMachineEvents, qDeleteMachine} {
		if _, err := t.s.exec(ctx, q, strings.ToLower(id)); err != nil {
			return fmt.Errorf("store: delete machine %s: %w", id, t.db.classify(err, "machine "+id))
		}
	}
	return nil
}

// AddMachineEvents appends the events not stored yet.
func (t *txn) AddMachineEvents(ctx context.Context, events []store.MachineEvent) (int, error) {
	if err := t.live("add machine events"); err != nil {
		return 0, err
	}
	added := 0
	for _, e := range events {
		if e.MachineID == "" || e.EventID == "" {
			return added, fmt.Errorf("store: add machine events: %w", resource.Errorf(resource.CodeInvalidParameter, "event", "an event needs a machine and an ID"))
		}
		at := e.At
		if at.IsZero() {
			at = now()
		}
		res, err := t.s.exec(ctx, qAddMachineEvent, strings.ToLower(e.MachineID), e.MachineID, e.EventID, formatTime(at),
			e.Kind, e.Assignment, e.Check, e.Target, e.Before, e.After, e.Message)
		if err != nil {
			return added, fmt.Errorf("store: add machine events: %w", t.db.classify(err, "machine "+e.MachineID))
		}
		if n, err := res.RowsAffected(); err == nil {
			added += int(n)
		}
	}
	return added, nil
}

// CreateEnrollmentToken stores a new enrollment token.
func (t *txn) CreateEnrollmentToken(ctx context.Context, tok store.EnrollmentToken) error {
	if err := t.live("create enrollment token"); err != nil {
		return err
	}
	if tok.Hash == "" || tok.Target == "" {
		return fmt.Errorf("store: create enrollment token: %w", resource.Errorf(resource.CodeInvalidParameter, "token", "an enrollment token needs a hash and a target"))
	}
	if tok.CreatedAt.IsZero() {
		tok.CreatedAt = now()
	}
	if _, err := t.s.exec(ctx, qCreateEnrollment, tok.Hash, tok.Target, tok.CreatedBy, formatTime(tok.CreatedAt), nullTime(tok.ExpiresAt), nullTime(tok.UsedAt)); err != nil {
		return fmt.Errorf("store: create enrollment token for %s: %w", tok.Target, t.db.classify(err, "enrollment token"))
	}
	return nil
}

// UseEnrollmentToken marks a token used, once.
func (t *txn) UseEnrollmentToken(ctx context.Context, hash string, at time.Time) (store.EnrollmentToken, error) {
	if err := t.live("use enrollment token"); err != nil {
		return store.EnrollmentToken{}, err
	}
	if at.IsZero() {
		at = now()
	}
	var tok store.EnrollmentToken
	err := t.s.queryRow(ctx, qEnrollment, hash).Scan(&tok.Hash, &tok.Target, &tok.CreatedBy, timeScanner{&tok.CreatedAt}, timeScanner{&tok.ExpiresAt}, timeScanner{&tok.UsedAt})
	if errors.Is(err, sql.ErrNoRows) {
		return tok, fmt.Errorf("store: use enrollment token: %w", resource.Errorf(resource.CodeNotFound, "token", "no enrollment token has that secret"))
	}
	if err != nil {
		return tok, fmt.Errorf("store: use enrollment token: %w", t.db.classify(err, "enrollment token"))
	}
	switch {
	case !tok.UsedAt.IsZero():
		return tok, fmt.Errorf("store: use enrollment token: %w", resource.Errorf(resource.CodeConflict, "token", "the enrollment token was used at %s; a token enrolls one machine once", tok.UsedAt.Format(time.RFC3339)))
	case !tok.ExpiresAt.IsZero() && !at.Before(tok.ExpiresAt):
		return tok, fmt.Errorf("store: use enrollment token: %w", resource.Errorf(resource.CodeConflict, "token", "the enrollment token expired at %s", tok.ExpiresAt.Format(time.RFC3339)))
	}
	res, err := t.s.exec(ctx, qUseEnrollment, formatTime(at), hash)
	if err != nil {
		return tok, fmt.Errorf("store: use enrollment token: %w", t.db.classify(err, "enrollment token"))
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return tok, fmt.Errorf("store: use enrollment token: %w", resource.Errorf(resource.CodeConflict, "token", "the enrollment token was used already"))
	}
	tok.UsedAt = at.UTC()
	return tok, nil
}
