// Package sqldb is the one implementation of store.Store on database/sql that the SQLite and
// PostgreSQL backends share. A backend contributes only a Dialect: how placeholders are
// spelt, how a writer takes the write lock, its schema migrations and how its driver's errors
// are classified. Every query lives here, so the backends cannot drift apart.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// ErrorClass is what a backend error means to the store.
type ErrorClass int

const (
	// ClassOther is any error the store passes on as it is.
	ClassOther ErrorClass = iota
	// ClassConflict is a unique-key violation: the row already exists.
	ClassConflict
	// ClassUnavailable is a transient condition (a lock wait that timed out, a lost
	// connection, a server shutting down): the caller may retry later.
	ClassUnavailable
)

// Dialect is what differs between database engines.
type Dialect struct {
	// Name names the backend in messages.
	Name string
	// Numbered makes placeholders $1, $2, ... instead of ?. Queries are written with ?.
	Numbered bool
	// LockWrite is the first statement of every write transaction, taking the lock that
	// serialises writers; empty when beginning the transaction already takes it (SQLite's
	// BEGIN IMMEDIATE).
	LockWrite string
	// LockMigrate is the first statement of the migration transaction, so concurrent
	// openers apply migrations once; empty when beginning the transaction already
	// serialises them.
	LockMigrate string
	// Migrations holds the schema as NNNN_name.sql files, applied in name order.
	Migrations fs.FS
	// Classify says what a driver error means.
	Classify func(error) ErrorClass
}

// DB is a store.Store on one or two database/sql pools.
type DB struct {
	d     Dialect
	read  *sql.DB
	write *sql.DB

	readStmts  map[string]*sql.Stmt // prepared on read
	writeStmts map[string]*sql.Stmt // prepared on write, adopted by each transaction

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*DB)(nil)

// New migrates the database and returns a store on it. Reads go to read and writes to
// write, which may be the same pool; SQLite gives writes a pool of one connection so that
// they queue in the process instead of contending for the file lock. The store owns the
// pools and closes them on Close, also when New fails.
func New(ctx context.Context, d Dialect, read, write *sql.DB) (*DB, error) {
	if d.Classify == nil {
		d.Classify = func(error) ErrorClass { return ClassOther }
	}
	db := &DB{d: d, read: read, write: write}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.prepareAll(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// bind rewrites a query's ? placeholders for the dialect.
func (db *DB) bind(q string) string {
	if !db.d.Numbered {
		return q
	}
	return rebind(q)
}

// rebind turns each ? into $1, $2, .... The store's SQL has no ? inside literals.
func rebind(q string) string {
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// classify turns a driver error into one that callers can test with errors.Is and that the
// API maps to a status, keeping the driver error reachable.
func (db *DB) classify(err error, target string) error {
	if err == nil {
		return nil
	}
	var re *resource.Error
	if errors.As(err, &re) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	switch db.d.Classify(err) {
	case ClassConflict:
		return resource.Errorf(resource.CodeConflict, target, "%s already exists: %w", target, err)
	case ClassUnavailable:
		return resource.Errorf(resource.CodeStoreUnavailable, target, "%s database unavailable: %w", db.d.Name, err)
	}
	return err
}

// migrate applies the migrations not yet recorded in schema_migrations, all in one
// transaction: either the schema moves to the newest version or it stays as it was.
func (db *DB) migrate(ctx context.Context) error {
	names, err := fs.Glob(db.d.Migrations, "*.sql")
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	sort.Strings(names)
	// Several processes opening a new database at once race to set it up: SQLite answers
	// "busy" while another connection switches the file to WAL, without waiting on the busy
	// timeout. Such a start is retried for a while; the migrations themselves are then
	// serialised by the write lock.
	var tx *sql.Tx
	for attempt := 0; ; attempt++ {
		tx, err = db.write.BeginTx(ctx, nil)
		if err == nil {
			break
		}
		cerr := db.classify(err, "schema")
		var re *resource.Error
		if attempt >= 100 || !errors.As(cerr, &re) || re.Code != resource.CodeStoreUnavailable || ctx.Err() != nil {
			return fmt.Errorf("store: migrate: begin: %w", cerr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer tx.Rollback()
	if db.d.LockMigrate != "" {
		if _, err := tx.ExecContext(ctx, db.d.LockMigrate); err != nil {
			return fmt.Errorf("store: migrate: lock: %w", db.classify(err, "schema"))
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("store: migrate: create schema_migrations: %w", db.classify(err, "schema"))
	}
	applied := map[string]bool{}
	rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("store: migrate: read schema_migrations: %w", db.classify(err, "schema"))
	}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("store: migrate: read schema_migrations: %w", err)
		}
		applied[v] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: migrate: read schema_migrations: %w", err)
	}
	for _, name := range names {
		version := strings.TrimSuffix(path.Base(name), ".sql")
		if applied[version] {
			continue
		}
		script, err := fs.ReadFile(db.d.Migrations, name)
		if err != nil {
			return fmt.Errorf("store: migrate %s: %w", version, err)
		}
		if _, err := tx.ExecContext(ctx, string(script)); err != nil {
			return fmt.Errorf("store: migrate %s: %w", version, db.classify(err, "schema"))
		}
		if _, err := tx.ExecContext(ctx, db.bind(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`), version, formatTime(now())); err != nil {
			return fmt.Errorf("store: migrate %s: record: %w", version, db.classify(err, "schema"))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: migrate: commit: %w", db.classify(err, "schema"))
	}
	return nil
}

// Update runs fn in a write transaction. The write lock is the transaction's first act, so
// fn sees the latest committed state and nothing interleaves with it; the seqs it takes
// from the counter are therefore committed in order, and a rollback returns them. fn must
// not call Update itself: the inner call would wait for the lock the outer one holds.
func (db *DB) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	sqlTx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: update: begin: %w", db.classify(err, "store"))
	}
	t := &txn{db: db, s: session{db: db, tx: sqlTx}}
	defer func() {
		t.done = true
		// After a commit this is a no-op; after an error or a panic in fn it keeps nothing.
		_ = sqlTx.Rollback()
	}()
	if db.d.LockWrite != "" {
		var seq int64
		if err := sqlTx.QueryRowContext(ctx, db.d.LockWrite).Scan(&seq); err != nil {
			return fmt.Errorf("store: update: take write lock: %w", db.classify(err, "store"))
		}
	}
	if err := fn(t); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("store: update: commit: %w", db.classify(err, "store"))
	}
	return nil
}

// Ping checks that both pools reach the database.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.read.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", db.classify(err, "store"))
	}
	if db.write != db.read {
		if err := db.write.PingContext(ctx); err != nil {
			return fmt.Errorf("store: ping: %w", db.classify(err, "store"))
		}
	}
	return nil
}

// Close closes the pools; later calls return the first call's result.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.closeStatements()
		err := db.read.Close()
		if db.write != db.read {
			if werr := db.write.Close(); err == nil {
				err = werr
			}
		}
		if err != nil {
			db.closeErr = fmt.Errorf("store: close: %w", err)
		}
	})
	return db.closeErr
}

// Read is the pool reads outside transactions use, for backend-specific checks.
func (db *DB) Read() *sql.DB { return db.read }

// Write is the pool writes use. Background jobs share it, so that on SQLite they queue
// behind the store's writes in this process instead of contending for the file lock.
func (db *DB) Write() *sql.DB { return db.write }

// DialectName names the backend: "sqlite" or "postgres".
func (db *DB) DialectName() string { return db.d.Name }
