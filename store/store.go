// Package store is where gild keeps its resources: the Store interface, its domain types
// (changes, audit entries, tokens, compliance states) and the registry of backends by URL
// scheme. Backends live in subpackages (store/sqlite, store/postgres) and all pass
// store/storetest.
package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gildhq/gild/resource"
)

// Errors every backend returns, wrapped with the operation and ID. Callers test them with
// errors.Is.
var (
	ErrNotFound = &resource.Error{Code: resource.CodeNotFound}
	// ErrPrecondition is an If-Match or If-None-Match that does not hold: the resource
	// changed (or appeared, or went) since the caller read it.
	ErrPrecondition = &resource.Error{Code: resource.CodePreconditionFailed}
)

// Precondition guards a write with the ETag the caller last saw, as HTTP's If-Match and
// If-None-Match do. The zero value writes unconditionally.
type Precondition struct {
	IfMatch     string // "*": the resource must exist; an ETag: it must still have it
	IfNoneMatch string // "*": the resource must not exist
}

// Op is the kind of a change.
type Op string

const (
	OpPut    Op = "put"
	OpDelete Op = "delete"
)

// Change is one entry of the change sequence: every write of a resource gets the next
// number, numbers become visible in order and without gaps, so a follower that remembers
// the last Seq it handled misses nothing.
type Change struct {
	Seq  int64
	ID   string // as spelt by the writer
	Type string
	Op   Op
	ETag string // the new ETag; empty for a delete
	At   time.Time
}

// ListQuery selects resources.
type ListQuery struct {
	// Scopes limits the result to resources whose ID is one of these or lies under one of
	// them by ID (management groups must be expanded by the caller; see
	// resource.Hierarchy.Expand). Nil means everywhere; an empty non-nil slice means nowhere.
	Scopes []resource.ID
	// Type limits the result to one resource type, case-insensitively; empty means any.
	Type string
	// Limit is the page size; 0 means DefaultPageSize, and it is capped at MaxPageSize.
	Limit int
	// After is the cursor from the previous page's Next.
	After string
}

// Page sizes for List.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Page is one page of a List, in ID order (case-insensitive).
type Page struct {
	Items []*resource.Resource
	// Next is the cursor for the following page; empty on the last page.
	Next string
}

// AuditEntry records one write: who did what to which resource, when, and the ETags it
// had before and after.
type AuditEntry struct {
	Seq        int64 // assigned by the store
	At         time.Time
	Principal  string
	Action     string // PUT, PATCH, DELETE, or a named action such as token/create
	ResourceID string
	Type       string
	BeforeETag string
	AfterETag  string
	Detail     string // free text, such as a client address
}

// AuditQuery selects audit entries.
type AuditQuery struct {
	Scopes []resource.ID // as in ListQuery
	Since  time.Time
	After  int64 // entries with Seq greater than this
	Before int64 // entries with Seq less than this; 0 means no bound
	// Newest returns the newest entries first, so that a page of Limit is the latest
	// activity; page on with Before set to the last Seq returned.
	Newest bool
	Limit  int
}

// Token is an API bearer token. Only its SHA-256 hash is kept; the secret is shown once.
type Token struct {
	ID          string
	PrincipalID string
	Hash        string // hex SHA-256 of the secret
	Description string
	CreatedBy   string
	CreatedAt   time.Time
	ExpiresAt   time.Time // zero: never
	RevokedAt   time.Time // zero: not revoked
}

// Active reports whether t can be used at time now.
func (t Token) Active(now time.Time) bool {
	return t.RevokedAt.IsZero() && (t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt))
}

// Reader is what may be read, inside a transaction or outside.
type Reader interface {
	// Get returns the resource with id (case-insensitive), or ErrNotFound.
	Get(ctx context.Context, id resource.ID) (*resource.Resource, error)
	// List returns one page of the resources the query selects.
	List(ctx context.Context, q ListQuery) (Page, error)
}

// Tx is a write transaction. Write transactions are serialised: nothing another writer
// does interleaves with one, so a Get followed by a Put in one Tx is race-free.
type Tx interface {
	Reader
	// Put creates or replaces r (its ID says which), stamping a fresh ETag and the next
	// change Seq; it returns the stored resource and whether it was created.
	Put(ctx context.Context, r *resource.Resource, pre Precondition) (stored *resource.Resource, created bool, err error)
	// Delete removes the resource with id, or returns ErrNotFound.
	Delete(ctx context.Context, id resource.ID, pre Precondition) (deleted *resource.Resource, err error)
	// Audit appends an entry to the audit log; it becomes visible when the Tx commits.
	Audit(ctx context.Context, e AuditEntry) error
	// CreateToken stores a new token.
	CreateToken(ctx context.Context, t Token) error
	// RevokeToken marks a token revoked at time at, or returns ErrNotFound.
	RevokeToken(ctx context.Context, id string, at time.Time) error
	// Compliance states are written in the Update that evaluated them.
	PolicyStateWriter
	// Machines' agents, their reports and events, and enrollment tokens.
	MachineWriter
}

// Store keeps resources, the change sequence, the audit log, API tokens and compliance
// states.
type Store interface {
	Reader
	PolicyStateStore
	MachineReader
	// Update runs fn in a write transaction and commits it if fn returns nil; otherwise
	// nothing fn did is kept.
	Update(ctx context.Context, fn func(tx Tx) error) error
	// Changes returns up to limit changes with Seq greater than after, in order.
	Changes(ctx context.Context, after int64, limit int) ([]Change, error)
	// LastSeq is the Seq of the newest change, 0 when there is none.
	LastSeq(ctx context.Context) (int64, error)
	// AuditLog returns audit entries in Seq order (descending when q.Newest).
	AuditLog(ctx context.Context, q AuditQuery) ([]AuditEntry, error)
	// TokenByHash returns the token whose secret hashes to hash, or ErrNotFound.
	TokenByHash(ctx context.Context, hash string) (Token, error)
	// Tokens lists the tokens of a principal, or all when principal is empty.
	Tokens(ctx context.Context, principal string) ([]Token, error)
	// Ping checks that the store is reachable.
	Ping(ctx context.Context) error
	// Close releases the store.
	Close() error
}

// Opener opens a store from a URL of its backend's scheme.
type Opener func(ctx context.Context, u *url.URL) (Store, error)

var (
	mu      sync.RWMutex
	openers = map[string]Opener{}
)

// Register makes a backend available under a URL scheme. Backends call it from init.
func Register(scheme string, open Opener) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := openers[scheme]; dup {
		panic("store: backend registered twice for scheme " + scheme)
	}
	openers[scheme] = open
}

// Schemes lists the registered URL schemes.
func Schemes() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(openers))
	for s := range openers {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Open opens the store at rawURL with the backend registered for its scheme
// ("sqlite:///var/lib/gild/gild.db", "postgres://user@host/db").
func Open(ctx context.Context, rawURL string) (Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("open store: parse URL: %w", err)
	}
	scheme := strings.ToLower(u.Scheme)
	mu.RLock()
	open, ok := openers[scheme]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("open store: no backend for scheme %q (known: %s)", u.Scheme, strings.Join(Schemes(), ", "))
	}
	s, err := open(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", redact(u), err)
	}
	return s, nil
}

// redact hides a URL's password for messages.
func redact(u *url.URL) string { return u.Redacted() }

// IsNotFound reports whether err is, or wraps, ErrNotFound.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// ListAll pages through q to the end and returns every resource it selects.
func ListAll(ctx context.Context, r Reader, q ListQuery) ([]*resource.Resource, error) {
	var out []*resource.Resource
	q.Limit = MaxPageSize
	for {
		p, err := r.List(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Items...)
		if p.Next == "" {
			return out, nil
		}
		q.After = p.Next
	}
}
