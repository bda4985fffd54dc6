// Package postgres is gild's store for scale: store/sqldb on PostgreSQL through
// github.com/jackc/pgx/v5 behind database/sql. It registers the "postgres" and
// "postgresql" URL schemes, taking pgx connection URLs as they are
// (postgres://user:pass@host:5432/gild?sslmode=require).
package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/gildhq/gild/store"
	"github.com/gildhq/gild/store/sqldb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a store.Store on a PostgreSQL database.
type Store struct {
	*sqldb.DB
}

var _ store.Store = (*Store)(nil)

func init() {
	open := func(ctx context.Context, u *url.URL) (store.Store, error) {
		return Open(ctx, u.String())
	}
	store.Register("postgres", open)
	store.Register("postgresql", open)
}

// migrateLockKey names the advisory lock that lets one of several gild servers starting
// at once apply the migrations while the others wait ("gild" in ASCII).
const migrateLockKey = 0x67696c64

// Open connects to the database at connURL and brings its schema up to date.
func Open(ctx context.Context, connURL string) (*Store, error) {
	pool, err := sql.Open("pgx", connURL)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	// Writers hold a connection for the length of their transaction while they wait for
	// the write lock, and readers should not starve behind them: enough connections for
	// both, far below a default server's max_connections of 100 so several gild servers
	// fit.
	n := max(8, 4*runtime.GOMAXPROCS(0))
	pool.SetMaxOpenConns(n)
	pool.SetMaxIdleConns(n / 2)
	pool.SetConnMaxIdleTime(5 * time.Minute)
	pool.SetConnMaxLifetime(time.Hour)

	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	db, err := sqldb.New(ctx, sqldb.Dialect{
		Name:     "postgres",
		Numbered: true,
		// Every writer locks the one counter row first: writers then run one at a time
		// under READ COMMITTED, each seeing everything committed before it, and seqs
		// commit in the order they are taken.
		LockWrite:   `SELECT value FROM counters WHERE name = 'seq' FOR UPDATE`,
		LockMigrate: fmt.Sprintf(`SELECT pg_advisory_xact_lock(%d)`, migrateLockKey),
		Migrations:  sub,
		Classify:    classify,
	}, pool, pool)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	return &Store{DB: db}, nil
}

func classify(err error) sqldb.ErrorClass {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505": // unique_violation
			return sqldb.ClassConflict
		case pe.Code == "40001", pe.Code == "40P01", // serialization failure, deadlock
			pe.Code == "55P03",                // lock_not_available
			pe.Code == "53300",                // too_many_connections
			strings.HasPrefix(pe.Code, "08"),  // connection exceptions
			strings.HasPrefix(pe.Code, "57P"): // server shutting down or starting
			return sqldb.ClassUnavailable
		}
		return sqldb.ClassOther
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || errors.Is(err, driver.ErrBadConn) || pgconn.Timeout(err) {
		return sqldb.ClassUnavailable
	}
	return sqldb.ClassOther
}
