// Package controlplane is gild's resource manager: every read and write of a resource goes
// through it, whoever asks (the HTTP API, background jobs), so that access control, ARM's
// rules (parents exist, scopes nest, deletes cascade or refuse), system data and the audit
// log are applied in one place and cannot be bypassed. It keeps the management-group tree
// and the role assignments in memory, rebuilt from the store's change sequence.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gildhq/gild/access"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// SystemPrincipal is the principal of gild's own background work.
const SystemPrincipal = "system"

// Caller is who asks: a principal and where the request came from.
type Caller struct {
	PrincipalID string
	// TokenID is the token the caller authenticated with, if any.
	TokenID string
	// System callers are gild itself; they pass every access check.
	System bool
	// Detail is kept in the audit log with each write (the client's address, say).
	Detail string
}

// System is the caller for gild's own work.
var System = Caller{PrincipalID: SystemPrincipal, System: true}

// Options configure a Service.
type Options struct {
	// Now is the clock; nil means time.Now. Tests pass a fixed one.
	Now func() time.Time
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
	// RefreshInterval is how often changes written by other servers are picked up (the
	// tree and the role assignments); 0 means one second.
	RefreshInterval time.Duration
	// Hooks take part in every write; nil means none.
	Hooks Hooks
}

// Hooks let another part of gild take part in writes, inside their transactions, so that
// what it decides lands atomically with the write (the policy engine's admission and
// compliance states). The tree is the management-group tree as the write sees it.
type Hooks interface {
	// BeforeWrite checks, and may change, a resource about to be stored (old is nil for a
	// new one); an error refuses the write.
	BeforeWrite(ctx context.Context, tx store.Tx, tree *resource.Hierarchy, old, next *resource.Resource) (*resource.Resource, error)
	// AfterWrite sees the stored resource before the transaction commits.
	AfterWrite(ctx context.Context, tx store.Tx, tree *resource.Hierarchy, stored *resource.Resource) error
	// BeforeDelete may refuse to delete a resource.
	BeforeDelete(ctx context.Context, tx store.Tx, tree *resource.Hierarchy, victim *resource.Resource) error
	// AfterDelete sees each deleted resource before the transaction commits.
	AfterDelete(ctx context.Context, tx store.Tx, tree *resource.Hierarchy, deleted *resource.Resource) error
	// Committed is told, after the commit, which resources a write changed.
	Committed(ctx context.Context, ids []resource.ID)
}

// Service is the resource manager over one store.
type Service struct {
	store    store.Store
	hooks    Hooks
	now      func() time.Time
	log      *slog.Logger
	interval time.Duration

	snap      atomic.Pointer[snapshot]
	refreshMu sync.Mutex

	tokens tokenCache
}

// snapshot is the derived state requests read without locks.
type snapshot struct {
	seq    int64
	tree   *resource.Hierarchy
	grants *access.Grants
}

// New returns a Service over st, with the tree and assignments loaded.
func New(ctx context.Context, st store.Store, opts Options) (*Service, error) {
	s := &Service{store: st, hooks: opts.Hooks, now: opts.Now, log: opts.Logger, interval: opts.RefreshInterval}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.interval <= 0 {
		s.interval = time.Second
	}
	s.tokens.entries = map[string]tokenEntry{}
	s.snap.Store(&snapshot{tree: resource.NewHierarchy(), grants: access.NewGrants(resource.NewHierarchy(), nil)})
	if err := s.reload(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// SetHooks sets the hooks after construction, for hooks that need the Service themselves
// (the compliance engine reads the tree through it). Call it before serving.
func (s *Service) SetHooks(h Hooks) { s.hooks = h }

// Store is the store the Service writes to.
func (s *Service) Store() store.Store { return s.store }

// Tree is the current management-group tree.
func (s *Service) Tree() *resource.Hierarchy { return s.snap.Load().tree }

// Run follows the change sequence until ctx ends, so that writes made by other servers on
// the same store reach this one's tree and role assignments within RefreshInterval.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.refresh(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("follow changes", "err", err)
			}
		}
	}
}

// affectsSnapshot reports whether writes of type typ change the tree or the grants.
func affectsSnapshot(typ string) bool {
	return equalFold(typ, resource.TypeManagementGroup) || equalFold(typ, resource.TypeSubscription) ||
		equalFold(typ, resource.TypeRoleAssignment)
}

// refresh reads the changes since the snapshot and rebuilds it if any concerns the tree or
// role assignments.
func (s *Service) refresh(ctx context.Context) error {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	cur := s.snap.Load()
	seq, reload := cur.seq, false
	for {
		changes, err := s.store.Changes(ctx, seq, 1000)
		if err != nil {
			return fmt.Errorf("refresh: %w", err)
		}
		for _, c := range changes {
			reload = reload || affectsSnapshot(c.Type)
			seq = c.Seq
		}
		if len(changes) < 1000 {
			break
		}
	}
	if !reload {
		if seq != cur.seq {
			s.snap.Store(&snapshot{seq: seq, tree: cur.tree, grants: cur.grants})
		}
		return nil
	}
	return s.reloadLocked(ctx, seq)
}

func (s *Service) reload(ctx context.Context) error {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	seq, err := s.store.LastSeq(ctx)
	if err != nil {
		return fmt.Errorf("load tree: %w", err)
	}
	return s.reloadLocked(ctx, seq)
}

// reloadLocked rebuilds the snapshot from the store; seq is the change it reflects at least.
func (s *Service) reloadLocked(ctx context.Context, seq int64) error {
	tree := resource.NewHierarchy()
	groups, err := store.ListAll(ctx, s.store, store.ListQuery{Type: resource.TypeManagementGroup})
	if err != nil {
		return fmt.Errorf("load management groups: %w", err)
	}
	// Place parents before children so depth checks see the real tree; a stored tree is
	// valid, so an error here means the store was edited behind gild's back.
	placed := map[string]bool{}
	for progress := true; progress; {
		progress = false
		for _, g := range groups {
			id, _ := resource.Parse(g.ID)
			if placed[id.Key()] {
				continue
			}
			parent, _ := resource.ParentGroupOf(g)
			if !parent.IsRoot() && !placed[parent.Key()] {
				continue
			}
			if err := tree.SetGroup(id.ManagementGroup, parent); err != nil {
				s.log.Warn("stored management group does not fit the tree", "id", g.ID, "err", err)
			}
			placed[id.Key()] = true
			progress = true
		}
	}
	subs, err := store.ListAll(ctx, s.store, store.ListQuery{Type: resource.TypeSubscription})
	if err != nil {
		return fmt.Errorf("load subscriptions: %w", err)
	}
	for _, sub := range subs {
		id, _ := resource.Parse(sub.ID)
		g, _ := resource.GroupOfSubscription(sub)
		tree.SetSubscription(id.Subscription, g)
	}
	ras, err := store.ListAll(ctx, s.store, store.ListQuery{Type: resource.TypeRoleAssignment})
	if err != nil {
		return fmt.Errorf("load role assignments: %w", err)
	}
	var assignments []access.Assignment
	for _, r := range ras {
		a, err := access.AssignmentFromResource(r)
		if err != nil {
			s.log.Warn("stored role assignment is invalid; it grants nothing", "id", r.ID, "err", err)
			continue
		}
		assignments = append(assignments, a)
	}
	s.snap.Store(&snapshot{seq: seq, tree: tree, grants: access.NewGrants(tree, assignments)})
	return nil
}

// authorize decides whether c may perform verb on id. A caller that may not even read id is
// told it does not exist, so that a team cannot learn what lies outside its scopes.
func (s *Service) authorize(c Caller, verb string, id resource.ID) error {
	if c.System {
		return nil
	}
	g := s.snap.Load().grants
	if !g.Allowed(c.PrincipalID, access.Action(id.Type(), access.VerbRead), id) {
		return notFound(id)
	}
	if verb == access.VerbRead {
		return nil
	}
	action := access.Action(id.Type(), verb)
	if !g.Allowed(c.PrincipalID, action, id) {
		return resource.Errorf(resource.CodeAuthorizationFailed, id.String(),
			"principal %q does not have authorization to perform action %q over scope %q", c.PrincipalID, action, id)
	}
	return nil
}

// authorizeAction checks an action that is not a verb on a resource type, at scope.
func (s *Service) authorizeAction(c Caller, action string, scope resource.ID) error {
	if c.System || s.snap.Load().grants.Allowed(c.PrincipalID, action, scope) {
		return nil
	}
	return resource.Errorf(resource.CodeAuthorizationFailed, scope.String(),
		"principal %q does not have authorization to perform action %q over scope %q", c.PrincipalID, action, scope)
}

func notFound(id resource.ID) error {
	return resource.Errorf(resource.CodeNotFound, id.String(), "the %s %q was not found", typeNoun(id), id)
}

func typeNoun(id resource.ID) string {
	switch id.Kind() {
	case resource.KindManagementGroup:
		return "management group"
	case resource.KindSubscription:
		return "subscription"
	case resource.KindResourceGroup:
		return "resource group"
	}
	return "resource"
}

// storeErr turns a store error about id into one for the API.
func storeErr(id resource.ID, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return notFound(id)
	}
	var re *resource.Error
	if errors.As(err, &re) {
		if re.Code == resource.CodePreconditionFailed {
			// The store's own words name both ETags; the operation prefix is for logs.
			return resource.Errorf(re.Code, re.Target, "the resource changed since it was read: %s", re.Message)
		}
		return re
	}
	return fmt.Errorf("%s: %w", id, err)
}

// ReadableScopes returns the ID prefixes inside scope under which c may read, for queries
// over things that belong to resources (compliance states): nil means everywhere. A scope
// c can see nothing of is reported as not found, as List does.
func (s *Service) ReadableScopes(c Caller, scope resource.ID) ([]resource.ID, error) {
	snap := s.snap.Load()
	if c.System {
		if scope.IsRoot() {
			return nil, nil
		}
		return snap.tree.Expand(scope), nil
	}
	if !snap.grants.ListableScope(c.PrincipalID, scope) {
		return nil, notFound(scope)
	}
	scopes := snap.grants.ReadScopes(c.PrincipalID, "", scope)
	if len(scopes) == 1 && scopes[0].IsRoot() {
		return nil, nil
	}
	if scopes == nil {
		scopes = []resource.ID{}
	}
	return scopes, nil
}

// Authorize checks that c may perform an action that is not a verb on a resource type
// (such as "Microsoft.PolicyInsights/policyStates/triggerEvaluation/action") at scope.
// A caller who cannot even see the scope is told it does not exist.
func (s *Service) Authorize(c Caller, action string, scope resource.ID) error {
	if c.System {
		return nil
	}
	if !s.snap.Load().grants.ListableScope(c.PrincipalID, scope) {
		return notFound(scope)
	}
	return s.authorizeAction(c, action, scope)
}

// SystemWriter writes as gild itself, through every check and hook a write gets, for work
// such as policy remediation that changes resources on gild's own account.
type SystemWriter struct{ Service *Service }

// Put creates or replaces r.
func (w SystemWriter) Put(ctx context.Context, r *resource.Resource) error {
	_, _, err := w.Service.Put(ctx, System, r, store.Precondition{})
	return err
}

// Patch merges a JSON merge patch into the resource with id.
func (w SystemWriter) Patch(ctx context.Context, id resource.ID, patch []byte) error {
	_, err := w.Service.Patch(ctx, System, id, patch, store.Precondition{})
	return err
}

// Delete removes the resource with id and what it contains; a resource that is not there
// is no error.
func (w SystemWriter) Delete(ctx context.Context, id resource.ID) error {
	_, err := w.Service.Delete(ctx, System, id, store.Precondition{})
	return err
}
