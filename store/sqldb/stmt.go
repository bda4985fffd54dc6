package sqldb

import (
	"context"
	"database/sql"
	"fmt"
)

// The store's fixed statements, written with ? placeholders. They are prepared once per
// connection: modernc.org/sqlite keeps no statement cache, and parsing the SQL again on
// every call cost a fifth of a Put.
const (
	qGet         = `SELECT etag, body FROM resources WHERE id_key = ?`
	qCurrent     = `SELECT id, etag, body FROM resources WHERE id_key = ?`
	qChanges     = `SELECT seq, id, type, op, etag, at FROM changes WHERE seq > ? ORDER BY seq LIMIT ?`
	qLastSeq     = `SELECT value FROM counters WHERE name = 'seq'`
	qTokenByHash = `SELECT ` + tokenColumns + ` FROM tokens WHERE hash = ?`
	qTokens      = `SELECT ` + tokenColumns + ` FROM tokens ORDER BY created_at, id`
	qTokensOf    = `SELECT ` + tokenColumns + ` FROM tokens WHERE principal_id = ? ORDER BY created_at, id`
	qNextSeq     = `UPDATE counters SET value = value + 1 WHERE name = 'seq' RETURNING value`
	qChange      = `INSERT INTO changes (seq, id, type, op, etag, at) VALUES (?, ?, ?, ?, ?, ?)`
	qReplace     = `UPDATE resources SET etag = ?, seq = ?, body = ?, updated_at = ? WHERE id_key = ?`
	qCreate      = `INSERT INTO resources (id_key, id, type_key, etag, seq, body, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	qDelete      = `DELETE FROM resources WHERE id_key = ?`
	qAudit       = `INSERT INTO audit (at, principal, action, resource_id, id_key, type, before_etag, after_etag, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qCreateToken = `INSERT INTO tokens (` + tokenColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	qRevokeToken = `UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`
	tokenColumns = `id, principal_id, hash, description, created_by, created_at, expires_at, revoked_at`
)

// readStatements run on the read pool and in write transactions; writeStatements only in
// write transactions.
var (
	readStatements  = []string{qGet, qChanges, qLastSeq, qTokenByHash, qTokens, qTokensOf, qMachine, qMachineByCred}
	writeStatements = []string{qGet, qCurrent, qNextSeq, qChange, qReplace, qCreate, qDelete, qAudit, qCreateToken, qRevokeToken,
		qPutMachine, qAddMachineEvent, qMachine,
		qPSLoadFull, qPSInsertBulk, qPSUpdate, qPSUpdateSame, qPSDelete, qPSHistoryBulk, qPSDigestsFull, qPSDigestsPut}
)

// prepareAll prepares the fixed statements on both pools. It runs before any transaction:
// SQLite's write pool has one connection, so preparing on the pool while a transaction
// holds it would wait forever; a transaction instead adopts the pool's statement with
// Tx.StmtContext, which prepares on the transaction's own connection when need be.
func (db *DB) prepareAll(ctx context.Context) error {
	db.readStmts = map[string]*sql.Stmt{}
	db.writeStmts = map[string]*sql.Stmt{}
	for _, set := range []struct {
		pool    *sql.DB
		queries []string
		into    map[string]*sql.Stmt
	}{{db.read, readStatements, db.readStmts}, {db.write, writeStatements, db.writeStmts}} {
		for _, q := range set.queries {
			st, err := set.pool.PrepareContext(ctx, db.bind(q))
			if err != nil {
				return fmt.Errorf("store: prepare %q: %w", q, db.classify(err, "store"))
			}
			set.into[q] = st
		}
	}
	return nil
}

func (db *DB) closeStatements() {
	for _, m := range []map[string]*sql.Stmt{db.readStmts, db.writeStmts} {
		for _, st := range m {
			st.Close()
		}
	}
}

// session runs queries on the read pool (tx nil) or in a write transaction, through the
// prepared statement when the query is one of the fixed ones.
type session struct {
	db *DB
	tx *sql.Tx
}

func (s session) stmt(ctx context.Context, query string) *sql.Stmt {
	if s.tx == nil {
		return s.db.readStmts[query]
	}
	if st := s.db.writeStmts[query]; st != nil {
		return s.tx.StmtContext(ctx, st)
	}
	return nil
}

// plain is where a query without a prepared statement runs.
func (s session) plain() interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
} {
	if s.tx != nil {
		return s.tx
	}
	return s.db.read
}

func (s session) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := s.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.plain().QueryRowContext(ctx, s.db.bind(query), args...)
}

func (s session) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := s.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return s.plain().QueryContext(ctx, s.db.bind(query), args...)
}

func (s session) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s.tx == nil {
		return nil, fmt.Errorf("store: %q needs a write transaction", query)
	}
	if st := s.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return s.tx.ExecContext(ctx, s.db.bind(query), args...)
}
