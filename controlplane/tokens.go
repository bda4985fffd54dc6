package controlplane

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gildhq/gild/access"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// TokenPrefix starts every gild API token, so that secret scanners can recognise one.
const TokenPrefix = "gild_"

// tokenCacheTTL bounds how long a token revoked on another server still works here.
const tokenCacheTTL = 5 * time.Second

type tokenEntry struct {
	token  store.Token
	loaded time.Time
}

// tokenCache spares the store a lookup per request; hashing is what makes a lookup safe to
// cache by key, since the map never holds a secret.
type tokenCache struct {
	mu      sync.Mutex
	entries map[string]tokenEntry
}

// HashToken is the hex SHA-256 of a secret. Tokens carry 256 random bits, so a plain hash
// is enough: there is nothing to guess that a slow hash would protect.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Authenticate returns the caller a bearer token belongs to.
func (s *Service) Authenticate(ctx context.Context, secret string) (Caller, error) {
	fail := resource.Errorf(resource.CodeAuthenticationFailed, "", "the bearer token is not valid, has expired or was revoked")
	if !strings.HasPrefix(secret, TokenPrefix) || len(secret) > 200 {
		return Caller{}, fail
	}
	hash := HashToken(secret)
	now := s.now()
	s.tokens.mu.Lock()
	e, ok := s.tokens.entries[hash]
	s.tokens.mu.Unlock()
	if !ok || now.Sub(e.loaded) > tokenCacheTTL {
		t, err := s.store.TokenByHash(ctx, hash)
		if err != nil {
			if store.IsNotFound(err) {
				return Caller{}, fail
			}
			return Caller{}, fmt.Errorf("authenticate: %w", err)
		}
		e = tokenEntry{token: t, loaded: now}
		s.tokens.mu.Lock()
		if len(s.tokens.entries) > 10000 {
			s.tokens.entries = map[string]tokenEntry{}
		}
		s.tokens.entries[hash] = e
		s.tokens.mu.Unlock()
	}
	if !e.token.Active(now) {
		return Caller{}, fail
	}
	return Caller{PrincipalID: e.token.PrincipalID, TokenID: e.token.ID}, nil
}

// TokenRequest asks for a new token.
type TokenRequest struct {
	// PrincipalID names who the token acts for; empty makes a new principal. Only owners of
	// the root may mint tokens for an existing principal, since that principal may hold
	// roles anywhere.
	PrincipalID string `json:"principalId,omitempty"`
	Description string `json:"description,omitempty"`
	// ExpiresInDays is the token's lifetime; 0 means it does not expire.
	ExpiresInDays int `json:"expiresInDays,omitempty"`
	// Role and Scope, when given, also assign that role to the principal at that scope.
	Role  string `json:"role,omitempty"`
	Scope string `json:"scope,omitempty"`
}

// TokenInfo is a token as shown to people: never its hash.
type TokenInfo struct {
	ID          string     `json:"id"`
	PrincipalID string     `json:"principalId"`
	Description string     `json:"description,omitempty"`
	CreatedBy   string     `json:"createdBy,omitempty"`
	CreatedAt   time.Time  `json:"createdAt"`
	ExpiresAt   *time.Time `json:"expiresAt,omitempty"`
	RevokedAt   *time.Time `json:"revokedAt,omitempty"`
	// RoleAssignment is the assignment made with the token, if any.
	RoleAssignment string `json:"roleAssignmentId,omitempty"`
}

// NewToken is a created token with its secret, which is never shown again.
type NewToken struct {
	TokenInfo
	Secret string `json:"token"`
}

func tokenInfo(t store.Token) TokenInfo {
	ti := TokenInfo{ID: t.ID, PrincipalID: t.PrincipalID, Description: t.Description, CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt}
	if !t.ExpiresAt.IsZero() {
		e := t.ExpiresAt
		ti.ExpiresAt = &e
	}
	if !t.RevokedAt.IsZero() {
		r := t.RevokedAt
		ti.RevokedAt = &r
	}
	return ti
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// CreateToken makes a token and, if asked, a role assignment for its principal, in one
// transaction. Granting a role needs the right to write role assignments at its scope.
func (s *Service) CreateToken(ctx context.Context, c Caller, req TokenRequest) (NewToken, error) {
	return s.createToken(ctx, c, req, nil)
}

// createToken is CreateToken with a hook that runs inside the transaction, after
// everything else: if it fails, nothing is kept.
func (s *Service) createToken(ctx context.Context, c Caller, req TokenRequest, beforeCommit func(NewToken) error) (NewToken, error) {
	var errs []*resource.Error
	if req.ExpiresInDays < 0 || req.ExpiresInDays > 3650 {
		errs = append(errs, resource.Errorf(resource.CodeInvalidParameter, "expiresInDays", "expiresInDays must be between 0 (never) and 3650"))
	}
	if len(req.Description) > 512 {
		errs = append(errs, resource.Errorf(resource.CodeInvalidParameter, "description", "description is longer than 512 characters"))
	}
	if req.PrincipalID != "" && !validPrincipal(req.PrincipalID) {
		errs = append(errs, resource.Errorf(resource.CodeInvalidParameter, "principalId", "principalId %q may hold only letters, digits, '-', '_', '.' and '@' (1 to 128)", req.PrincipalID))
	}
	var role *access.Role
	var scope resource.ID
	if (req.Role == "") != (req.Scope == "") {
		errs = append(errs, resource.Errorf(resource.CodeInvalidParameter, "role", "role and scope go together: give both or neither"))
	} else if req.Role != "" {
		var err error
		if role, err = access.LookupRole(req.Role); err != nil {
			errs = append(errs, resource.Errorf(resource.CodeInvalidParameter, "role", "%s", strings.TrimPrefix(err.Error(), resource.CodeInvalidParameter+": roleDefinitionId: ")))
		}
		if scope, err = resource.Parse(req.Scope); err != nil {
			errs = append(errs, resource.Errorf(resource.CodeInvalidParameter, "scope", "%s", err.(*resource.Error).Message))
		} else if !scope.IsScope() && resource.CheckPlacement(scope) != nil {
			errs = append(errs, resource.Errorf(resource.CodeInvalidParameter, "scope", "scope %q is not a resource gild models", scope))
		}
	}
	if err := resource.Join(resource.CodeInvalidParameter, "the token request is invalid", errs); err != nil {
		return NewToken{}, err
	}
	if req.PrincipalID != "" {
		if err := s.authorizeAction(c, access.ActionTokenWrite, resource.Root); err != nil {
			return NewToken{}, resource.Errorf(resource.CodeAuthorizationFailed, "principalId", "only owners of the root may create tokens for a named principal; leave principalId empty for a new one")
		}
	} else {
		req.PrincipalID = "p-" + randomHex(6)
	}
	if role != nil {
		if err := s.authorize(c, access.VerbWrite, scope.Child(resource.TypeRoleAssignment, "x")); err != nil {
			return NewToken{}, err
		}
	} else if err := s.authorizeAnyOwner(c); err != nil {
		return NewToken{}, err
	}

	now := s.now().UTC()
	secretBytes := make([]byte, 32)
	if _, err := rand.Read(secretBytes); err != nil {
		return NewToken{}, fmt.Errorf("create token: %w", err)
	}
	secret := TokenPrefix + base64.RawURLEncoding.EncodeToString(secretBytes)
	t := store.Token{ID: "tok-" + randomHex(8), PrincipalID: req.PrincipalID, Hash: HashToken(secret),
		Description: req.Description, CreatedBy: c.PrincipalID, CreatedAt: now}
	if req.ExpiresInDays > 0 {
		t.ExpiresAt = now.AddDate(0, 0, req.ExpiresInDays)
	}
	out := NewToken{TokenInfo: tokenInfo(t), Secret: secret}
	err := s.store.Update(ctx, func(tx store.Tx) error {
		if err := tx.CreateToken(ctx, t); err != nil {
			return err
		}
		if err := tx.Audit(ctx, store.AuditEntry{At: now, Principal: c.PrincipalID, Action: "token/create", ResourceID: "/providers/Gild.Identity/tokens/" + t.ID,
			Type: "Gild.Identity/tokens", Detail: strings.TrimSpace(c.Detail + " principal " + t.PrincipalID)}); err != nil {
			return err
		}
		if role != nil {
			raID := scope.Child(resource.TypeRoleAssignment, t.ID)
			props, _ := json.Marshal(access.AssignmentProperties{RoleDefinitionID: role.ID, PrincipalID: t.PrincipalID, PrincipalType: "Token",
				Description: "created with token " + t.ID})
			ra := &resource.Resource{ID: raID.String(), Name: raID.Name(), Type: raID.Type(), Properties: props}
			stored, _, err := s.write(ctx, tx, c, raID, nil, ra, store.Precondition{IfNoneMatch: "*"}, "PUT")
			if err != nil {
				return err
			}
			out.RoleAssignment = stored.ID
		}
		if beforeCommit != nil {
			return beforeCommit(out)
		}
		return nil
	})
	if err != nil {
		return NewToken{}, storeErr(scope, err)
	}
	if role != nil {
		s.afterWrite(ctx, scope.Child(resource.TypeRoleAssignment, t.ID))
	}
	return out, nil
}

// authorizeAnyOwner requires c to own something: a token without a role is only useful to
// someone who can grant it one.
func (s *Service) authorizeAnyOwner(c Caller) error {
	if c.System {
		return nil
	}
	for _, a := range s.snap.Load().grants.Of(c.PrincipalID) {
		if a.Role.Permits(access.Action(resource.TypeRoleAssignment, access.VerbWrite)) {
			return nil
		}
	}
	return resource.Errorf(resource.CodeAuthorizationFailed, "", "principal %q may not create tokens: that needs the Owner role somewhere", c.PrincipalID)
}

func validPrincipal(p string) bool {
	if len(p) == 0 || len(p) > 128 {
		return false
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.@", r)) {
			return false
		}
	}
	return true
}

// Tokens lists tokens: all of them for owners of the root, otherwise those the caller
// created or holds.
func (s *Service) Tokens(ctx context.Context, c Caller) ([]TokenInfo, error) {
	all, err := s.store.Tokens(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	seeAll := s.authorizeAction(c, access.ActionTokenRead, resource.Root) == nil
	out := []TokenInfo{}
	for _, t := range all {
		if seeAll || strings.EqualFold(t.CreatedBy, c.PrincipalID) || strings.EqualFold(t.PrincipalID, c.PrincipalID) {
			out = append(out, tokenInfo(t))
		}
	}
	return out, nil
}

// RevokeToken revokes a token; owners of the root may revoke any, others those they
// created or hold.
func (s *Service) RevokeToken(ctx context.Context, c Caller, id string) error {
	all, err := s.store.Tokens(ctx, "")
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	var t *store.Token
	for i := range all {
		if all[i].ID == id {
			t = &all[i]
		}
	}
	seeAll := s.authorizeAction(c, access.ActionTokenDelete, resource.Root) == nil
	if t == nil || !(seeAll || strings.EqualFold(t.CreatedBy, c.PrincipalID) || strings.EqualFold(t.PrincipalID, c.PrincipalID)) {
		return resource.Errorf(resource.CodeNotFound, id, "token %q was not found", id)
	}
	now := s.now().UTC()
	// The role assignment made with the token goes with it: otherwise it would apply again
	// to the next token minted for the same principal.
	var granted []access.Assignment
	for _, a := range s.snap.Load().grants.Of(t.PrincipalID) {
		if strings.EqualFold(a.ID.Name(), t.ID) {
			granted = append(granted, a)
		}
	}
	err = s.store.Update(ctx, func(tx store.Tx) error {
		if err := tx.RevokeToken(ctx, id, now); err != nil {
			return err
		}
		for _, a := range granted {
			old, err := tx.Delete(ctx, a.ID, store.Precondition{})
			if store.IsNotFound(err) {
				continue
			}
			if err != nil {
				return err
			}
			if err := tx.Audit(ctx, store.AuditEntry{At: now, Principal: c.PrincipalID, Action: "DELETE", ResourceID: old.ID, Type: old.Type,
				BeforeETag: old.ETag, Detail: strings.TrimSpace(c.Detail + " (with token " + id + ")")}); err != nil {
				return err
			}
		}
		return tx.Audit(ctx, store.AuditEntry{At: now, Principal: c.PrincipalID, Action: "token/revoke",
			ResourceID: "/providers/Gild.Identity/tokens/" + id, Type: "Gild.Identity/tokens", Detail: c.Detail})
	})
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	}
	s.tokens.mu.Lock()
	s.tokens.entries = map[string]tokenEntry{}
	s.tokens.mu.Unlock()
	if len(granted) > 0 {
		if err := s.refresh(ctx); err != nil {
			s.log.Warn("refresh after revoke", "token", id, "err", err)
		}
	}
	return nil
}

// Identity is who a caller is and what it holds.
type Identity struct {
	PrincipalID     string            `json:"principalId"`
	TokenID         string            `json:"tokenId,omitempty"`
	RoleAssignments []AssignmentBrief `json:"roleAssignments"`
}

// AssignmentBrief is one role assignment of a principal.
type AssignmentBrief struct {
	ID    string `json:"id"`
	Role  string `json:"role"`
	Scope string `json:"scope"`
}

// Whoami tells the caller who it is and which roles it holds where.
func (s *Service) Whoami(c Caller) Identity {
	id := Identity{PrincipalID: c.PrincipalID, TokenID: c.TokenID, RoleAssignments: []AssignmentBrief{}}
	for _, a := range s.snap.Load().grants.Of(c.PrincipalID) {
		id.RoleAssignments = append(id.RoleAssignments, AssignmentBrief{ID: a.ID.String(), Role: a.Role.Name, Scope: a.Scope.String()})
	}
	return id
}

// AdminPrincipal is the principal of the token made on first start.
const AdminPrincipal = "admin"

// Bootstrap makes the first Owner token, for the root, when the store has no token at all.
// save receives the secret before the token is committed, so a crash in between leaves
// either nothing (and the next start tries again) or a saved secret that works; it never
// leaves a token that nobody holds. Bootstrap reports whether it made a token.
func (s *Service) Bootstrap(ctx context.Context, save func(secret string) error) (bool, error) {
	existing, err := s.store.Tokens(ctx, "")
	if err != nil {
		return false, fmt.Errorf("bootstrap: %w", err)
	}
	if len(existing) > 0 {
		return false, nil
	}
	_, err = s.createToken(ctx, System, TokenRequest{PrincipalID: AdminPrincipal, Description: "created on first start", Role: "Owner", Scope: "/"},
		func(nt NewToken) error { return save(nt.Secret) })
	if err != nil {
		return false, fmt.Errorf("bootstrap: %w", err)
	}
	return true, nil
}

// AuditLog returns the audit entries for resources inside scope, for callers who may read
// the audit log there (owners).
func (s *Service) AuditLog(ctx context.Context, c Caller, scope resource.ID, q store.AuditQuery) ([]store.AuditEntry, error) {
	if err := s.authorizeAction(c, access.ActionAuditRead, scope); err != nil {
		if !c.System && !s.snap.Load().grants.Allowed(c.PrincipalID, access.Action(scope.Type(), access.VerbRead), scope) && !scope.IsRoot() {
			return nil, notFound(scope)
		}
		return nil, err
	}
	q.Scopes = s.snap.Load().tree.Expand(scope)
	if scope.IsRoot() {
		q.Scopes = nil
	}
	entries, err := s.store.AuditLog(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return entries, nil
}

// ErrUnauthenticated reports whether err is an authentication failure.
func ErrUnauthenticated(err error) bool {
	return errors.Is(err, &resource.Error{Code: resource.CodeAuthenticationFailed})
}
