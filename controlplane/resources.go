package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/gildhq/gild/access"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// Get returns the resource with id if c may read it.
func (s *Service) Get(ctx context.Context, c Caller, id resource.ID) (*resource.Resource, error) {
	if err := s.authorize(c, access.VerbRead, id); err != nil {
		return nil, err
	}
	if id.IsRoot() {
		return nil, resource.Errorf(resource.CodeInvalidResourceID, "/", "the root scope is not a resource; list what lies under it")
	}
	r, err := s.store.Get(ctx, id)
	return r, storeErr(id, err)
}

// ListRequest selects what List returns.
type ListRequest struct {
	Scope resource.ID
	// Type is a resource type, or resource.AllTypes for every type in the scope.
	Type  string
	Limit int
	After string
}

// List returns the resources of a type inside a scope that c may read. Management groups
// include everything under them. A scope c can see nothing of is reported as not found.
func (s *Service) List(ctx context.Context, c Caller, req ListRequest) (store.Page, error) {
	scope := req.Scope
	typ := req.Type
	if typ == resource.AllTypes {
		typ = ""
	} else if _, ok := resource.LookupType(typ); !ok {
		// Let the placement check word the error (with its suggestion), about the list.
		err := resource.CheckPlacement(scope.Child(typ, "x"))
		var re *resource.Error
		if errors.As(err, &re) {
			re.Target = scope.String() + "/providers/" + typ
			return store.Page{}, re
		}
		return store.Page{}, resource.Errorf(resource.CodeInvalidResourceType, typ, "resource type %q is not one gild models", typ)
	}
	snap := s.snap.Load()
	var scopes []resource.ID
	if c.System {
		scopes = snap.tree.Expand(scope)
	} else {
		if !snap.grants.ListableScope(c.PrincipalID, scope) {
			return store.Page{}, notFound(scope)
		}
		scopes = snap.grants.ReadScopes(c.PrincipalID, typ, scope)
		if scopes == nil {
			scopes = []resource.ID{}
		}
	}
	if !scope.IsRoot() {
		if _, err := s.store.Get(ctx, scope); err != nil {
			return store.Page{}, storeErr(scope, err)
		}
	}
	if len(scopes) == 1 && scopes[0].IsRoot() {
		scopes = nil
	}
	page, err := s.store.List(ctx, store.ListQuery{Scopes: scopes, Type: typ, Limit: req.Limit, After: req.After})
	if err != nil {
		return store.Page{}, fmt.Errorf("list %s: %w", scope, err)
	}
	// A role that reads only some types (none of the built-ins today, custom roles later)
	// must not see the rest of an all-types listing.
	if typ == "" && !c.System {
		kept := page.Items[:0]
		for _, r := range page.Items {
			id, err := resource.Parse(r.ID)
			if err == nil && snap.grants.Allowed(c.PrincipalID, access.Action(id.Type(), access.VerbRead), id) {
				kept = append(kept, r)
			}
		}
		page.Items = kept
	}
	// The scope is not part of its own listing of everything in it.
	if typ == "" && !scope.IsRoot() {
		kept := page.Items[:0]
		for _, r := range page.Items {
			if !strings.EqualFold(r.ID, scope.String()) {
				kept = append(kept, r)
			}
		}
		page.Items = kept
	}
	return page, nil
}

// Put creates or replaces r, whose ID says which resource it is. It returns the stored
// resource and whether it was created.
func (s *Service) Put(ctx context.Context, c Caller, r *resource.Resource, pre store.Precondition) (*resource.Resource, bool, error) {
	id, err := resource.Parse(r.ID)
	if err != nil {
		return nil, false, err
	}
	if err := resource.CheckPlacement(id); err != nil {
		return nil, false, err
	}
	if err := s.authorize(c, access.VerbWrite, id); err != nil {
		return nil, false, err
	}
	if err := checkEnvelope(id, r); err != nil {
		return nil, false, err
	}
	var stored *resource.Resource
	var created bool
	err = s.store.Update(ctx, func(tx store.Tx) error {
		old, err := tx.Get(ctx, id)
		if err != nil && !store.IsNotFound(err) {
			return err
		}
		if store.IsNotFound(err) {
			old = nil
		}
		stored, created, err = s.write(ctx, tx, c, id, old, r, pre, "PUT")
		return err
	})
	if err != nil {
		return nil, false, storeErr(id, err)
	}
	s.afterWrite(ctx, id)
	return stored, created, nil
}

// Patch applies a JSON merge patch (RFC 7386) to the resource with id: fields given replace
// those stored, null removes them, objects (tags, properties) merge.
func (s *Service) Patch(ctx context.Context, c Caller, id resource.ID, patch []byte, pre store.Precondition) (*resource.Resource, error) {
	if err := resource.CheckPlacement(id); err != nil {
		return nil, err
	}
	if err := s.authorize(c, access.VerbWrite, id); err != nil {
		return nil, err
	}
	var p map[string]any
	if err := json.Unmarshal(patch, &p); err != nil || p == nil {
		// Reuse the strict decoder's wording for what is wrong with the JSON.
		if _, derr := resource.DecodeBody(id, patch); derr != nil {
			return nil, derr
		}
		return nil, resource.Errorf(resource.CodeInvalidRequestContent, "", "a PATCH body must be a JSON object")
	}
	var stored *resource.Resource
	err := s.store.Update(ctx, func(tx store.Tx) error {
		old, err := tx.Get(ctx, id)
		if err != nil {
			return err
		}
		merged, err := mergeEnvelope(old, p)
		if err != nil {
			return err
		}
		next, err := resource.DecodeBody(id, merged)
		if err != nil {
			return err
		}
		if err := checkEnvelope(id, next); err != nil {
			return err
		}
		stored, _, err = s.write(ctx, tx, c, id, old, next, pre, "PATCH")
		return err
	})
	if err != nil {
		return nil, storeErr(id, err)
	}
	s.afterWrite(ctx, id)
	return stored, nil
}

// write stores next in place of old (nil when new) inside tx, after the checks that need the
// store: the parent exists, the tree stays a tree, type rules hold. It records the audit entry.
func (s *Service) write(ctx context.Context, tx store.Tx, c Caller, id resource.ID, old, next *resource.Resource, pre store.Precondition, action string) (*resource.Resource, bool, error) {
	if err := s.checkParent(ctx, tx, id); err != nil {
		return nil, false, err
	}
	if err := s.checkType(ctx, tx, c, id, old, next); err != nil {
		return nil, false, err
	}
	if old != nil && strings.TrimSpace(pre.IfNoneMatch) == "*" {
		// Create-only: say so before the hooks judge the body as a change to what exists.
		return nil, false, resource.Errorf(resource.CodePreconditionFailed, id.String(), "%s already exists (If-None-Match: *)", id)
	}
	tree := s.snap.Load().tree
	if next.Type == "" || next.Name == "" {
		// The hooks judge a resource by its type: give them the one its ID names, as the
		// store will record it, however the writer filled in the body.
		next = next.Clone()
		if next.Type == "" {
			next.Type = id.Type()
			if info, ok := resource.LookupType(next.Type); ok {
				next.Type = info.Name
			}
		}
		if next.Name == "" {
			next.Name = id.Name()
		}
	}
	if s.hooks != nil {
		admitted, err := s.hooks.BeforeWrite(ctx, tx, tree, old, next)
		if err != nil {
			return nil, false, err
		}
		next = admitted
	}
	now := s.now().UTC()
	sd := &resource.SystemData{CreatedBy: c.PrincipalID, CreatedAt: now, LastModifiedBy: c.PrincipalID, LastModifiedAt: now}
	if old != nil && old.SystemData != nil {
		sd.CreatedBy, sd.CreatedAt = old.SystemData.CreatedBy, old.SystemData.CreatedAt
	}
	next = next.Clone()
	next.SystemData = sd
	next.ETag = ""
	stored, created, err := tx.Put(ctx, next, pre)
	if err != nil {
		return nil, false, err
	}
	if s.hooks != nil {
		if err := s.hooks.AfterWrite(ctx, tx, tree, stored); err != nil {
			return nil, false, err
		}
	}
	before := ""
	if old != nil {
		before = old.ETag
	}
	err = tx.Audit(ctx, store.AuditEntry{At: now, Principal: c.PrincipalID, Action: action, ResourceID: stored.ID,
		Type: stored.Type, BeforeETag: before, AfterETag: stored.ETag, Detail: c.Detail})
	return stored, created, err
}

// afterWrite brings the snapshot up to date at once when a write changed the tree or the
// grants, so the writer's next request already sees its effect, and tells the hooks.
func (s *Service) afterWrite(ctx context.Context, ids ...resource.ID) {
	for _, id := range ids {
		if affectsSnapshot(id.Type()) || id.Kind() == resource.KindResourceGroup {
			if err := s.refresh(ctx); err != nil {
				s.log.Warn("refresh after write", "id", id.String(), "err", err)
			}
			break
		}
	}
	if s.hooks != nil {
		s.hooks.Committed(ctx, ids)
	}
}

// checkEnvelope applies the rules of the envelope that need no store.
func checkEnvelope(id resource.ID, r *resource.Resource) error {
	info, _ := resource.LookupType(id.Type())
	var errs []*resource.Error
	switch {
	case id.Kind() == resource.KindManagementGroup || id.Kind() == resource.KindSubscription:
		if r.Location != "" {
			errs = append(errs, resource.Errorf(resource.CodeInvalidRequestContent, "location", "a %s has no location; remove the field", typeNoun(id)))
		}
	case info.Location == resource.LocationRequired && strings.TrimSpace(r.Location) == "":
		errs = append(errs, resource.Errorf(resource.CodeInvalidRequestContent, "location", "location is required for a %s", info.Name))
	}
	if r.Location != "" && !validLocation(r.Location) {
		errs = append(errs, resource.Errorf(resource.CodeInvalidRequestContent, "location", "location %q may hold only letters, digits, spaces and '-'", r.Location))
	}
	if !info.Tracked && len(r.Tags) > 0 {
		errs = append(errs, resource.Errorf(resource.CodeInvalidRequestContent, "tags", "a %s does not take tags", info.Name))
	}
	return resource.Join(resource.CodeInvalidRequestContent, "the resource is invalid", errs)
}

func validLocation(l string) bool {
	for _, r := range l {
		if !(r == ' ' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return len(l) <= 64
}

// checkParent requires the resource's container to exist: a resource group's subscription,
// a resource's resource group, a child's parent, an extension's target.
func (s *Service) checkParent(ctx context.Context, tx store.Tx, id resource.ID) error {
	switch id.Kind() {
	case resource.KindManagementGroup, resource.KindSubscription, resource.KindRoot:
		return nil
	}
	parent := id.Parent()
	if parent.IsRoot() {
		return nil
	}
	if _, err := tx.Get(ctx, parent); err != nil {
		if store.IsNotFound(err) {
			return resource.Errorf(resource.CodeParentNotFound, parent.String(), "cannot create %q: its %s %q does not exist", id, typeNoun(parent), parent)
		}
		return err
	}
	return nil
}

// checkType applies the rules of the types the control plane itself owns.
func (s *Service) checkType(ctx context.Context, tx store.Tx, c Caller, id resource.ID, old, next *resource.Resource) error {
	switch {
	case equalFold(id.Type(), resource.TypeManagementGroup):
		parent, err := resource.ParentGroupOf(next)
		if err != nil {
			return err
		}
		if parent.Equal(id) {
			return resource.Errorf(resource.CodeInvalidRequestContent, "properties.details.parent.id", "a management group cannot be its own parent")
		}
		if err := s.checkGroupRef(ctx, tx, c, parent, old, next, resource.ParentGroupOf, "properties.details.parent.id"); err != nil {
			return err
		}
		return s.snap.Load().tree.Clone().SetGroup(id.ManagementGroup, parent)
	case equalFold(id.Type(), resource.TypeSubscription):
		group, err := resource.GroupOfSubscription(next)
		if err != nil {
			return err
		}
		return s.checkGroupRef(ctx, tx, c, group, old, next, resource.GroupOfSubscription, "properties.managementGroupId")
	case equalFold(id.Type(), resource.TypeRoleAssignment):
		a, err := access.AssignmentFromResource(next)
		if err != nil {
			return err
		}
		if sc := next.StringProperty("scope"); sc != "" {
			if sid, err := resource.Parse(sc); err != nil || !sid.Equal(a.Scope) {
				return resource.Errorf(resource.CodeInvalidRequestContent, "properties.scope", "scope %q must be where the assignment is stored, %q", sc, a.Scope)
			}
		}
	}
	return nil
}

// checkGroupRef requires a referenced management group to exist and, when the reference
// moves something into it, that c may write there: moving a subscription under a group
// brings that group's policies and roles to bear on it.
func (s *Service) checkGroupRef(ctx context.Context, tx store.Tx, c Caller, group resource.ID, old, next *resource.Resource,
	ref func(*resource.Resource) (resource.ID, error), field string) error {
	if !group.IsRoot() {
		if _, err := tx.Get(ctx, group); err != nil {
			if store.IsNotFound(err) {
				return resource.Errorf(resource.CodeInvalidRequestContent, field, "management group %q does not exist", group)
			}
			return err
		}
	}
	if old != nil {
		if prev, err := ref(old); err == nil && prev.Equal(group) {
			return nil
		}
	}
	if err := s.authorize(c, access.VerbWrite, group); err != nil && !group.IsRoot() {
		return resource.Errorf(resource.CodeAuthorizationFailed, field, "placing %q under %q needs write access to %q", next.ID, group, group)
	}
	if group.IsRoot() && old != nil {
		return s.authorizeAction(c, access.Action(resource.TypeManagementGroup, access.VerbWrite), resource.Root)
	}
	return nil
}

// mergeEnvelope applies a merge patch to the stored resource's client-settable fields.
func mergeEnvelope(old *resource.Resource, patch map[string]any) ([]byte, error) {
	base := old.Clone()
	base.ETag, base.SystemData = "", nil
	raw, err := json.Marshal(base)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	for _, k := range []string{"etag", "systemData"} {
		delete(patch, k)
	}
	merged := mergePatch(doc, patch)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(merged); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// mergePatch is RFC 7386's algorithm.
func mergePatch(target any, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
			continue
		}
		t[k] = mergePatch(t[k], v)
	}
	return t
}

// Delete removes the resource with id. A resource group takes everything in it along; a
// resource takes its extension resources (assignments on it) along; anything else that
// still contains something is refused, naming what it contains. It reports whether
// anything was deleted.
func (s *Service) Delete(ctx context.Context, c Caller, id resource.ID, pre store.Precondition) (bool, error) {
	if id.IsRoot() {
		return false, resource.Errorf(resource.CodeInvalidResourceID, "/", "the root scope cannot be deleted")
	}
	if err := resource.CheckPlacement(id); err != nil {
		return false, err
	}
	if err := s.authorize(c, access.VerbDelete, id); err != nil {
		return false, err
	}
	deleted := false
	var deletedIDs []resource.ID
	err := s.store.Update(ctx, func(tx store.Tx) error {
		deletedIDs = deletedIDs[:0]
		top, err := tx.Get(ctx, id)
		if err != nil {
			if store.IsNotFound(err) && pre.IfMatch == "" {
				return nil // ARM answers 204 for a resource that is not there
			}
			return err
		}
		victims, err := s.descendants(ctx, tx, c, id)
		if err != nil {
			return err
		}
		tree := s.snap.Load().tree
		now := s.now().UTC()
		if s.hooks != nil {
			for _, v := range append(victims, top) {
				if err := s.hooks.BeforeDelete(ctx, tx, tree, v); err != nil {
					return err
				}
			}
		}
		for _, v := range victims {
			vid, _ := resource.Parse(v.ID)
			if _, err := tx.Delete(ctx, vid, store.Precondition{}); err != nil {
				return err
			}
			deletedIDs = append(deletedIDs, vid)
			if s.hooks != nil {
				if err := s.hooks.AfterDelete(ctx, tx, tree, v); err != nil {
					return err
				}
			}
			if err := tx.Audit(ctx, store.AuditEntry{At: now, Principal: c.PrincipalID, Action: "DELETE", ResourceID: v.ID, Type: v.Type,
				BeforeETag: v.ETag, Detail: strings.TrimSpace(c.Detail + " (with " + id.String() + ")")}); err != nil {
				return err
			}
		}
		old, err := tx.Delete(ctx, id, pre)
		if err != nil {
			return err
		}
		deleted = true
		deletedIDs = append(deletedIDs, id)
		if s.hooks != nil {
			if err := s.hooks.AfterDelete(ctx, tx, tree, old); err != nil {
				return err
			}
		}
		return tx.Audit(ctx, store.AuditEntry{At: now, Principal: c.PrincipalID, Action: "DELETE", ResourceID: old.ID, Type: old.Type,
			BeforeETag: old.ETag, Detail: c.Detail})
	})
	if err != nil {
		return false, storeErr(id, err)
	}
	// A cascade may have removed role assignments: afterWrite refreshes for a resource
	// group's delete too.
	if deleted {
		s.afterWrite(ctx, deletedIDs...)
	}
	return deleted, nil
}

// descendants returns what deleting id takes along, deepest first, or an error naming what
// stands in the way.
func (s *Service) descendants(ctx context.Context, tx store.Tx, c Caller, id resource.ID) ([]*resource.Resource, error) {
	under, err := store.ListAll(ctx, tx, store.ListQuery{Scopes: []resource.ID{id}})
	if err != nil {
		return nil, err
	}
	var inside []*resource.Resource
	for _, r := range under {
		if !strings.EqualFold(r.ID, id.String()) {
			inside = append(inside, r)
		}
	}
	if id.Kind() == resource.KindManagementGroup {
		groups, subs := s.snap.Load().tree.Children(id)
		var names []string
		for _, g := range groups {
			names = append(names, resource.ManagementGroupID(g).String())
		}
		for _, sub := range subs {
			names = append(names, resource.SubscriptionID(sub).String())
		}
		for _, r := range inside {
			names = append(names, r.ID)
		}
		if len(names) > 0 {
			return nil, hasDescendants(id, names)
		}
		return nil, nil
	}
	var blocking []string
	if id.Kind() != resource.KindResourceGroup {
		for _, r := range inside {
			rid, _ := resource.Parse(r.ID)
			if len(rid.Providers) == len(id.Providers) || id.Kind() == resource.KindSubscription {
				blocking = append(blocking, r.ID)
			}
		}
	}
	if len(blocking) > 0 {
		return nil, hasDescendants(id, blocking)
	}
	for _, r := range inside {
		rid, _ := resource.Parse(r.ID)
		if err := s.authorize(c, access.VerbDelete, rid); err != nil {
			return nil, resource.Errorf(resource.CodeAuthorizationFailed, r.ID, "deleting %q would delete %q, which principal %q may not delete", id, r.ID, c.PrincipalID)
		}
	}
	// Longer IDs lie deeper: delete children before their parents.
	sort.SliceStable(inside, func(i, j int) bool { return len(inside[i].ID) > len(inside[j].ID) })
	return inside, nil
}

func hasDescendants(id resource.ID, names []string) error {
	shown := names
	if len(shown) > 5 {
		shown = shown[:5]
	}
	more := ""
	if len(names) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(names)-len(shown))
	}
	return resource.Errorf(resource.CodeResourceHasDescendants, id.String(), "%q still contains %s%s; delete them first", id, strings.Join(shown, ", "), more)
}

func equalFold(a, b string) bool { return strings.EqualFold(a, b) }
