package sqldb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// txn is the store.Tx of one Update.
type txn struct {
	db   *DB
	s    session
	done bool // set when Update returns: a Tx kept past it must not write
}

var _ store.Tx = (*txn)(nil)

func (t *txn) live(op string) error {
	if t.done {
		return fmt.Errorf("store: %s: the transaction has ended (a Tx is only valid inside its Update)", op)
	}
	return nil
}

func (t *txn) reader() reader { return reader{db: t.db, s: t.s} }

func (t *txn) Get(ctx context.Context, id resource.ID) (*resource.Resource, error) {
	if err := t.live("get"); err != nil {
		return nil, err
	}
	return t.reader().Get(ctx, id)
}

func (t *txn) List(ctx context.Context, q store.ListQuery) (store.Page, error) {
	if err := t.live("list"); err != nil {
		return store.Page{}, err
	}
	return t.reader().List(ctx, q)
}

// current is the stored row a write replaces.
type current struct {
	id   string
	etag string
	res  *resource.Resource
}

func (t *txn) current(ctx context.Context, key string) (*current, error) {
	var c current
	var body []byte
	err := t.s.queryRow(ctx, qCurrent, key).Scan(&c.id, &c.etag, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, t.db.classify(err, key)
	}
	if c.res, err = decodeResource(body, c.etag); err != nil {
		return nil, err
	}
	return &c, nil
}

// nextSeq takes the next change seq. The writer holds the write lock, so seqs are handed
// out and committed in the same order, and a rollback gives this one back.
func (t *txn) nextSeq(ctx context.Context) (int64, error) {
	var seq int64
	err := t.s.queryRow(ctx, qNextSeq).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("next seq: %w", t.db.classify(err, "counters"))
	}
	return seq, nil
}

func (t *txn) recordChange(ctx context.Context, seq int64, id, typ string, op store.Op, etag, at string) error {
	_, err := t.s.exec(ctx, qChange,
		seq, id, typ, string(op), etag, at)
	if err != nil {
		return fmt.Errorf("record change %d: %w", seq, t.db.classify(err, "changes"))
	}
	return nil
}

func (t *txn) Put(ctx context.Context, r *resource.Resource, pre store.Precondition) (*resource.Resource, bool, error) {
	if err := t.live("put"); err != nil {
		return nil, false, err
	}
	if r == nil {
		return nil, false, errors.New("store: put: nil resource")
	}
	id, err := resource.Parse(r.ID)
	if err != nil {
		return nil, false, fmt.Errorf("store: put %q: %w", r.ID, err)
	}
	stored, created, err := t.put(ctx, id, r, pre)
	if err != nil {
		return nil, false, fmt.Errorf("store: put %s: %w", id, err)
	}
	return stored, created, nil
}

func (t *txn) put(ctx context.Context, id resource.ID, r *resource.Resource, pre store.Precondition) (*resource.Resource, bool, error) {
	key := id.Key()
	cur, err := t.current(ctx, key)
	if err != nil {
		return nil, false, err
	}
	if err := checkPrecondition(id, pre, cur); err != nil {
		return nil, false, err
	}
	stored := r.Clone()
	stored.ETag = "" // the etag column is the truth; a copy in the body would go stale
	if cur != nil {
		// The first creation's spelling stays, so a write in other letter case does not
		// rename the resource.
		stored.ID = cur.id
		if strings.EqualFold(stored.Name, cur.res.Name) {
			stored.Name = cur.res.Name
		}
		if strings.EqualFold(stored.Type, cur.res.Type) {
			stored.Type = cur.res.Type
		}
	} else {
		stored.ID = id.String()
	}
	if stored.Name == "" {
		stored.Name = id.Name()
	}
	if stored.Type == "" {
		stored.Type = id.Type()
	}
	body, err := json.Marshal(stored)
	if err != nil {
		return nil, false, fmt.Errorf("encode body: %w", err)
	}
	seq, err := t.nextSeq(ctx)
	if err != nil {
		return nil, false, err
	}
	etag := strconv.FormatInt(seq, 10)
	at := formatTime(now())
	if cur != nil {
		_, err = t.s.exec(ctx, qReplace,
			etag, seq, string(body), at, key)
	} else {
		_, err = t.s.exec(ctx, qCreate,
			key, stored.ID, strings.ToLower(id.Type()), etag, seq, string(body), at, at)
	}
	if err != nil {
		return nil, false, t.db.classify(err, id.String())
	}
	if err := t.recordChange(ctx, seq, id.String(), stored.Type, store.OpPut, etag, at); err != nil {
		return nil, false, err
	}
	stored.ETag = etag
	return stored, cur == nil, nil
}

func (t *txn) Delete(ctx context.Context, id resource.ID, pre store.Precondition) (*resource.Resource, error) {
	if err := t.live("delete"); err != nil {
		return nil, err
	}
	deleted, err := t.delete(ctx, id, pre)
	if err != nil {
		return nil, fmt.Errorf("store: delete %s: %w", id, err)
	}
	return deleted, nil
}

func (t *txn) delete(ctx context.Context, id resource.ID, pre store.Precondition) (*resource.Resource, error) {
	key := id.Key()
	cur, err := t.current(ctx, key)
	if err != nil {
		return nil, err
	}
	if cur == nil {
		return nil, notFound(id)
	}
	if err := checkPrecondition(id, pre, cur); err != nil {
		return nil, err
	}
	seq, err := t.nextSeq(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := t.s.exec(ctx, qDelete, key); err != nil {
		return nil, t.db.classify(err, id.String())
	}
	if err := t.recordChange(ctx, seq, id.String(), cur.res.Type, store.OpDelete, "", formatTime(now())); err != nil {
		return nil, err
	}
	return cur.res, nil
}

// checkPrecondition applies If-Match and If-None-Match as HTTP does, to the current state
// (cur is nil when the resource does not exist).
func checkPrecondition(id resource.ID, pre store.Precondition, cur *current) error {
	fail := func(format string, args ...any) error {
		return resource.Errorf(resource.CodePreconditionFailed, id.String(), format, args...)
	}
	if pre.IfMatch != "" {
		switch {
		case cur == nil && strings.TrimSpace(pre.IfMatch) == "*":
			return fail("If-Match * requires %s to exist, and it does not", id)
		case cur == nil:
			return fail("If-Match expects ETag %s, but %s does not exist", pre.IfMatch, id)
		case !etagMatches(pre.IfMatch, cur.etag):
			return fail("If-Match expects ETag %s, but the current ETag is %q", pre.IfMatch, cur.etag)
		}
	}
	if pre.IfNoneMatch != "" && cur != nil {
		if strings.TrimSpace(pre.IfNoneMatch) == "*" {
			return fail("If-None-Match * requires %s not to exist, but it exists with ETag %q", id, cur.etag)
		}
		if etagMatches(pre.IfNoneMatch, cur.etag) {
			return fail("If-None-Match %s matches the current ETag %q", pre.IfNoneMatch, cur.etag)
		}
	}
	return nil
}

// etagMatches reports whether header, an HTTP ETag list ("*", `"12"`, `W/"12", "13"`),
// names etag. Weak and strong tags compare alike: the store has one kind.
func etagMatches(header, etag string) bool {
	for _, part := range strings.Split(header, ",") {
		p := strings.TrimSpace(part)
		if p == "*" {
			return true
		}
		p = strings.TrimPrefix(p, "W/")
		p = strings.TrimSuffix(strings.TrimPrefix(p, `"`), `"`)
		if p == etag {
			return true
		}
	}
	return false
}

func (t *txn) Audit(ctx context.Context, e store.AuditEntry) error {
	if err := t.live("audit"); err != nil {
		return err
	}
	if e.At.IsZero() {
		e.At = now()
	}
	var key string
	if e.ResourceID != "" {
		if id, err := resource.Parse(e.ResourceID); err == nil {
			key = id.Key()
			if e.Type == "" {
				e.Type = id.Type()
			}
		} else {
			// Audit what happened even to a malformed ID; it only sorts less precisely.
			key = strings.ToLower(e.ResourceID)
		}
	}
	_, err := t.s.exec(ctx, qAudit,
		formatTime(e.At), e.Principal, e.Action, e.ResourceID, key, e.Type, e.BeforeETag, e.AfterETag, e.Detail)
	if err != nil {
		return fmt.Errorf("store: audit %s %s: %w", e.Action, e.ResourceID, t.db.classify(err, "audit"))
	}
	return nil
}

func (t *txn) CreateToken(ctx context.Context, tok store.Token) error {
	if err := t.live("create token"); err != nil {
		return err
	}
	if tok.ID == "" || tok.Hash == "" {
		return fmt.Errorf("store: create token: %w", resource.Errorf(resource.CodeInvalidParameter, "token", "a token needs an ID and a hash"))
	}
	if tok.CreatedAt.IsZero() {
		tok.CreatedAt = now()
	}
	_, err := t.s.exec(ctx, qCreateToken,
		tok.ID, tok.PrincipalID, tok.Hash, tok.Description, tok.CreatedBy,
		formatTime(tok.CreatedAt), nullTime(tok.ExpiresAt), nullTime(tok.RevokedAt))
	if err != nil {
		return fmt.Errorf("store: create token %s: %w", tok.ID, t.db.classify(err, "token "+tok.ID))
	}
	return nil
}

// RevokeToken keeps the first revocation time when a token is revoked twice.
func (t *txn) RevokeToken(ctx context.Context, id string, at time.Time) error {
	if err := t.live("revoke token"); err != nil {
		return err
	}
	if at.IsZero() {
		at = now()
	}
	res, err := t.s.exec(ctx, qRevokeToken, formatTime(at), id)
	if err != nil {
		return fmt.Errorf("store: revoke token %s: %w", id, t.db.classify(err, "token "+id))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: revoke token %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("store: revoke token %s: %w", id, resource.Errorf(resource.CodeNotFound, "token "+id, "token %s not found", id))
	}
	return nil
}
