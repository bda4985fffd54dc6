package sqldb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// Times are stored as fixed-width UTC text at microsecond precision: PostgreSQL's
// timestamptz keeps no more, SQLite compares the text in time order, and both read it back
// equal to what was written.
const timeLayout = "2006-01-02T15:04:05.000000Z"

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func formatTime(t time.Time) string { return t.UTC().Truncate(time.Microsecond).Format(timeLayout) }

// nullTime stores the zero time as NULL.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return formatTime(t)
}

// timeScanner reads a time column whichever way the driver hands it over: time.Time from
// PostgreSQL, text from SQLite, NULL as the zero time.
type timeScanner struct{ t *time.Time }

func (s timeScanner) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*s.t = time.Time{}
	case time.Time:
		*s.t = v.UTC()
	case string:
		return s.parse(v)
	case []byte:
		return s.parse(string(v))
	default:
		return fmt.Errorf("time column holds %T", src)
	}
	return nil
}

func (s timeScanner) parse(v string) error {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return fmt.Errorf("time column: %w", err)
	}
	*s.t = t.UTC()
	return nil
}

// reader answers the store.Reader queries on the read pool or in a transaction.
type reader struct {
	db *DB
	s  session
}

func (db *DB) reader() reader { return reader{db: db, s: session{db: db}} }

// Get returns the resource with id, case-insensitively.
func (db *DB) Get(ctx context.Context, id resource.ID) (*resource.Resource, error) {
	return db.reader().Get(ctx, id)
}

// List returns one page of the resources q selects.
func (db *DB) List(ctx context.Context, q store.ListQuery) (store.Page, error) {
	return db.reader().List(ctx, q)
}

func (r reader) Get(ctx context.Context, id resource.ID) (*resource.Resource, error) {
	res, err := r.get(ctx, id.Key())
	if err != nil {
		return nil, fmt.Errorf("store: get %s: %w", id, err)
	}
	if res == nil {
		return nil, fmt.Errorf("store: get %s: %w", id, notFound(id))
	}
	return res, nil
}

// get returns the resource stored under key, or nil when there is none.
func (r reader) get(ctx context.Context, key string) (*resource.Resource, error) {
	var etag string
	var body []byte
	err := r.s.queryRow(ctx, qGet, key).Scan(&etag, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, r.db.classify(err, key)
	}
	return decodeResource(body, etag)
}

func decodeResource(body []byte, etag string) (*resource.Resource, error) {
	var res resource.Resource
	if err := json.Unmarshal(body, &res); err != nil {
		return nil, fmt.Errorf("decode stored body: %w", err)
	}
	res.ETag = etag
	return &res, nil
}

func notFound(id resource.ID) error {
	return resource.Errorf(resource.CodeNotFound, id.String(), "resource %s not found", id)
}

// pageSize applies the store's default and cap to a requested page size.
func pageSize(n int) int {
	switch {
	case n <= 0:
		return store.DefaultPageSize
	case n > store.MaxPageSize:
		return store.MaxPageSize
	}
	return n
}

// scopeFilter is the WHERE condition on the key column col that selects what lies in
// scopes. A scope's subtree is a range of keys: the key itself, then everything after
// key+"/" and before key+"0" ('0' is the byte after '/'), which an index scans in order.
// An empty cond selects everything; none means nothing can match.
func scopeFilter(col string, scopes []resource.ID) (cond string, args []any, none bool) {
	if scopes == nil {
		return "", nil, false
	}
	if len(scopes) == 0 {
		return "", nil, true
	}
	seen := map[string]bool{}
	var parts []string
	for _, s := range scopes {
		if s.IsRoot() {
			return "", nil, false
		}
		k := s.Key()
		if seen[k] {
			continue
		}
		seen[k] = true
		parts = append(parts, "("+col+" = ? OR ("+col+" > ? AND "+col+" < ?))")
		args = append(args, k, k+"/", k+"0")
	}
	return "(" + strings.Join(parts, " OR ") + ")", args, false
}

func (r reader) List(ctx context.Context, q store.ListQuery) (store.Page, error) {
	limit := pageSize(q.Limit)
	scopeCond, args, none := scopeFilter("id_key", q.Scopes)
	if none {
		return store.Page{}, nil
	}
	var where []string
	if scopeCond != "" {
		where = append(where, scopeCond)
	}
	if q.Type != "" {
		where = append(where, "type_key = ?")
		args = append(args, strings.ToLower(q.Type))
	}
	if q.After != "" {
		where = append(where, "id_key > ?")
		args = append(args, q.After)
	}
	query := "SELECT id_key, etag, body FROM resources"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	// One row more than the page says whether another page follows.
	query += " ORDER BY id_key LIMIT ?"
	args = append(args, limit+1)
	rows, err := r.s.query(ctx, query, args...)
	if err != nil {
		return store.Page{}, fmt.Errorf("store: list: %w", r.db.classify(err, "resources"))
	}
	defer rows.Close()
	var page store.Page
	var lastKey string
	for rows.Next() {
		if len(page.Items) == limit {
			page.Next = lastKey
			break
		}
		var key, etag string
		var body []byte
		if err := rows.Scan(&key, &etag, &body); err != nil {
			return store.Page{}, fmt.Errorf("store: list: %w", err)
		}
		lastKey = key
		res, err := decodeResource(body, etag)
		if err != nil {
			return store.Page{}, fmt.Errorf("store: list: %w", err)
		}
		page.Items = append(page.Items, res)
	}
	if err := rows.Err(); err != nil {
		return store.Page{}, fmt.Errorf("store: list: %w", r.db.classify(err, "resources"))
	}
	return page, nil
}

// Changes returns up to limit changes after seq after, in order; limit works as
// ListQuery.Limit, so a follower catching up loops until it gets none.
func (db *DB) Changes(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	rows, err := db.reader().s.query(ctx, qChanges, after, pageSize(limit))
	if err != nil {
		return nil, fmt.Errorf("store: changes after %d: %w", after, db.classify(err, "changes"))
	}
	defer rows.Close()
	var out []store.Change
	for rows.Next() {
		var c store.Change
		var op string
		if err := rows.Scan(&c.Seq, &c.ID, &c.Type, &op, &c.ETag, timeScanner{&c.At}); err != nil {
			return nil, fmt.Errorf("store: changes after %d: %w", after, err)
		}
		c.Op = store.Op(op)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: changes after %d: %w", after, db.classify(err, "changes"))
	}
	return out, nil
}

// LastSeq reads the counter rather than the change log: the counter moves only with a
// committed change, so it is the newest seq without scanning.
func (db *DB) LastSeq(ctx context.Context) (int64, error) {
	var seq int64
	if err := db.reader().s.queryRow(ctx, qLastSeq).Scan(&seq); err != nil {
		return 0, fmt.Errorf("store: last seq: %w", db.classify(err, "counters"))
	}
	return seq, nil
}

// AuditLog returns the entries q selects in seq order; q.Limit works as ListQuery.Limit.
func (db *DB) AuditLog(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error) {
	scopeCond, scopeArgs, none := scopeFilter("id_key", q.Scopes)
	if none {
		return nil, nil
	}
	where := []string{"seq > ?"}
	args := []any{q.After}
	if q.Before > 0 {
		where = append(where, "seq < ?")
		args = append(args, q.Before)
	}
	if !q.Since.IsZero() {
		where = append(where, "at >= ?")
		args = append(args, formatTime(q.Since))
	}
	order := "seq"
	if q.Newest {
		order = "seq DESC"
	}
	if scopeCond != "" {
		where = append(where, scopeCond)
		args = append(args, scopeArgs...)
	}
	query := "SELECT seq, at, principal, action, resource_id, type, before_etag, after_etag, detail FROM audit WHERE " +
		strings.Join(where, " AND ") + " ORDER BY " + order + " LIMIT ?"
	args = append(args, pageSize(q.Limit))
	rows, err := db.reader().s.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: audit log: %w", db.classify(err, "audit"))
	}
	defer rows.Close()
	var out []store.AuditEntry
	for rows.Next() {
		var e store.AuditEntry
		if err := rows.Scan(&e.Seq, timeScanner{&e.At}, &e.Principal, &e.Action, &e.ResourceID, &e.Type, &e.BeforeETag, &e.AfterETag, &e.Detail); err != nil {
			return nil, fmt.Errorf("store: audit log: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: audit log: %w", db.classify(err, "audit"))
	}
	return out, nil
}

func scanToken(row interface{ Scan(...any) error }) (store.Token, error) {
	var t store.Token
	err := row.Scan(&t.ID, &t.PrincipalID, &t.Hash, &t.Description, &t.CreatedBy,
		timeScanner{&t.CreatedAt}, timeScanner{&t.ExpiresAt}, timeScanner{&t.RevokedAt})
	return t, err
}

// TokenByHash returns the token whose secret hashes to hash.
func (db *DB) TokenByHash(ctx context.Context, hash string) (store.Token, error) {
	t, err := scanToken(db.reader().s.queryRow(ctx, qTokenByHash, hash))
	if errors.Is(err, sql.ErrNoRows) {
		// The hash stands in for a secret, so the message does not repeat it.
		return store.Token{}, fmt.Errorf("store: token by hash: %w", resource.Errorf(resource.CodeNotFound, "token", "no token has that secret"))
	}
	if err != nil {
		return store.Token{}, fmt.Errorf("store: token by hash: %w", db.classify(err, "token"))
	}
	return t, nil
}

// Tokens lists the tokens of principal (all when empty), oldest first.
func (db *DB) Tokens(ctx context.Context, principal string) ([]store.Token, error) {
	query, args := qTokens, []any(nil)
	if principal != "" {
		query, args = qTokensOf, []any{principal}
	}
	rows, err := db.reader().s.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: tokens of %q: %w", principal, db.classify(err, "tokens"))
	}
	defer rows.Close()
	var out []store.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("store: tokens of %q: %w", principal, err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: tokens of %q: %w", principal, db.classify(err, "tokens"))
	}
	return out, nil
}
