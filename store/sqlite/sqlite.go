// Package sqlite is gild's embedded store: store/sqldb on a SQLite file through
// modernc.org/sqlite (pure Go, so gild builds without cgo). It registers the "sqlite" URL
// scheme: sqlite:///abs/path/gild.db or sqlite:relative/gild.db.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/gildhq/gild/store"
	"github.com/gildhq/gild/store/sqldb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// defaultSynchronous is PRAGMA synchronous for the write connection. In WAL mode both FULL
// and NORMAL survive the process being killed at any point (storetest.RunCrash checks it):
// a commit is in the WAL file, in the OS page cache, before Update returns. They differ on
// a power cut or kernel crash: FULL fsyncs the WAL on every commit and loses nothing;
// NORMAL fsyncs only at checkpoints and may lose the last commits before the crash, though
// never the file's integrity. FULL was to be kept if Put still managed about 5,000/s with
// it; on the project's 2-core VM (ext4, an fsync costs ~0.23 ms) BenchmarkPut measured
// FULL at 2,000-2,800 puts/s and NORMAL at 5,100-9,000 (mostly 7,000-8,500) over several
// runs, so NORMAL it is. An operator who wants FULL's guarantee writes ?synchronous=full
// in the store URL.
const defaultSynchronous = "NORMAL"

// writeCacheKB is the write connection's page cache, in KiB.
const writeCacheKB = 64 << 10

// busyTimeoutMS is how long a connection waits for another process's lock before giving
// up: in-process writers queue on the one write connection instead, so only a second
// process (a backup, a CLI on the same file) ever waits here.
const busyTimeoutMS = 10000

// Store is a store.Store on a SQLite file.
type Store struct {
	*sqldb.DB
	path string
}

var _ store.Store = (*Store)(nil)

func init() {
	store.Register("sqlite", func(ctx context.Context, u *url.URL) (store.Store, error) {
		return openURL(ctx, u)
	})
}

// URL returns the store URL of the SQLite file at path, made absolute so that it means the
// same file whatever the working directory of whoever opens it.
func URL(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return (&url.URL{Scheme: "sqlite", Path: filepath.ToSlash(path)}).String()
}

// Options tune Open.
type Options struct {
	// Synchronous is PRAGMA synchronous: "FULL" or "NORMAL"; empty means the default.
	Synchronous string
}

func openURL(ctx context.Context, u *url.URL) (*Store, error) {
	var path string
	switch {
	case u.Opaque != "":
		p, err := url.PathUnescape(u.Opaque)
		if err != nil {
			return nil, fmt.Errorf("sqlite: path %q: %w", u.Opaque, err)
		}
		path = p
	case u.Host != "" && u.Host != "localhost":
		return nil, fmt.Errorf("sqlite: URL %q has host %q; write sqlite:///absolute/path.db (three slashes) or sqlite:relative/path.db", u.String(), u.Host)
	default:
		path = u.Path
	}
	if path == "" {
		return nil, fmt.Errorf("sqlite: URL %q names no file", u.String())
	}
	var opts Options
	for k, v := range u.Query() {
		switch k {
		case "synchronous":
			opts.Synchronous = v[len(v)-1]
		default:
			return nil, fmt.Errorf("sqlite: unknown URL parameter %q (known: synchronous)", k)
		}
	}
	return Open(ctx, path, opts)
}

// Open opens (creating if need be) the store in the SQLite file at path.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	syncMode := strings.ToUpper(opts.Synchronous)
	switch syncMode {
	case "":
		syncMode = defaultSynchronous
	case "FULL", "NORMAL":
	default:
		return nil, fmt.Errorf("sqlite: synchronous %q: want FULL or NORMAL", opts.Synchronous)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: path %s: %w", path, err)
	}
	if fi, err := os.Stat(filepath.Dir(abs)); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("sqlite: directory of %s does not exist; create it first", abs)
	}
	// The database holds token hashes and the audit log: create it readable by its owner
	// only. SQLite gives its -wal and -shm files the database file's permissions.
	if f, err := os.OpenFile(abs, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("sqlite: create %s: %w", abs, err)
	}
	common := url.Values{}
	common.Set("_busy_timeout", fmt.Sprint(busyTimeoutMS))
	common.Set("_foreign_keys", "1")

	// One write connection: writers queue in database/sql rather than spin on the file
	// lock, and BEGIN IMMEDIATE takes the lock at the start so a transaction that reads
	// first never has to be retried when it comes to write.
	wq := cloneValues(common)
	wq.Set("_journal_mode", "WAL")
	wq.Set("_synchronous", syncMode)
	wq.Set("_txlock", "immediate")
	// A compliance scan's Update writes 10,000 states and their history at a time. With
	// SQLite's default 2 MB page cache such a transaction spills dirty pages to the WAL
	// before it commits and reads back pages it just evicted; 64 MB holds a batch. Multi-
	// row INSERTs keep a statement journal in case they fail halfway, in a temporary file
	// unless temp_store is memory. Together they took a first scan of 20,000 x 20 states
	// from 20 s to 15 s.
	wq.Add("_pragma", fmt.Sprintf("cache_size(-%d)", writeCacheKB))
	wq.Add("_pragma", "temp_store(memory)")
	write, err := sql.Open("sqlite", dsn(abs, wq))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)

	// Readers never write, and in WAL mode they read a snapshot without waiting for the
	// writer, so several run side by side.
	rq := cloneValues(common)
	rq.Set("_query_only", "1")
	read, err := sql.Open("sqlite", dsn(abs, rq))
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)

	db, err := sqldb.New(ctx, sqldb.Dialect{
		Name:       "sqlite",
		Migrations: mustSub(migrations, "migrations"),
		Classify:   classify,
	}, read, write)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	return &Store{DB: db, path: abs}, nil
}

// dsn builds a file: URI so that any character in the path survives (a plain path would be
// cut at a '?'); SQLite ignores the driver's own parameters.
func dsn(path string, q url.Values) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}).String()
}

func cloneValues(v url.Values) url.Values {
	c := url.Values{}
	for k, vs := range v {
		c[k] = append([]string(nil), vs...)
	}
	return c
}

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

func classify(err error) sqldb.ErrorClass {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return sqldb.ClassOther
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return sqldb.ClassConflict
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return sqldb.ClassUnavailable
	}
	return sqldb.ClassOther
}

// Path is the absolute path of the database file.
func (s *Store) Path() string { return s.path }

// IntegrityCheck runs PRAGMA integrity_check and returns an error listing what it found
// unless the file is sound.
func (s *Store) IntegrityCheck(ctx context.Context) error {
	rows, err := s.Read().QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return fmt.Errorf("sqlite: integrity check %s: %w", s.path, err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return fmt.Errorf("sqlite: integrity check %s: %w", s.path, err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: integrity check %s: %w", s.path, err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("sqlite: integrity check %s: %s", s.path, strings.Join(problems, "; "))
	}
	return nil
}
