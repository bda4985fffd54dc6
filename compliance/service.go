package compliance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gildhq/gild/policy"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// Service runs the engine against a store: it takes part in every write (checking policy
// resources, admitting others, recording their states in the same transaction) and scans
// scopes when policies change, on a period, and when an exemption expires.
type Service struct {
	Engine *Engine
	store  store.Store
	tree   func() *resource.Hierarchy
	log    logger

	// Interval is how often every assignment's scope is scanned again; 0 means hourly,
	// negative never (a durable job calls ScanAll instead).
	Interval time.Duration

	mu      sync.Mutex
	pending map[string]resource.ID // scopes waiting for a background scan
	kick    chan struct{}
	running map[string]bool // remediation tasks under way

	writer Writer

	// seq is the last change this server has seen; policies written through other servers
	// on the same store reach this one's catalog by following the change sequence.
	seq int64
	// guests creates the guest assignments auditIfNotExists guest policies expect.
	guests *guestCreator
}

type logger interface {
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
}

// NewService returns a service over st. tree gives the current management-group tree.
func NewService(ctx context.Context, e *Engine, st store.Store, tree func() *resource.Hierarchy) (*Service, error) {
	s := &Service{Engine: e, store: st, tree: tree, log: e.log, pending: map[string]resource.ID{}, kick: make(chan struct{}, 1), guests: newGuestCreator()}
	e.onGuest = s.guests.add
	seq, err := st.LastSeq(ctx)
	if err != nil {
		return nil, fmt.Errorf("compliance: %w", err)
	}
	s.seq = seq
	if err := e.Load(ctx, st); err != nil {
		return nil, err
	}
	return s, nil
}

// BeforeWrite checks a policy resource before it is stored, or admits any other resource:
// deny assignments refuse it, modify and append change it.
func (s *Service) BeforeWrite(ctx context.Context, tx store.Tx, tree *resource.Hierarchy, old, next *resource.Resource) (*resource.Resource, error) {
	id, err := resource.Parse(next.ID)
	if err != nil {
		return nil, err
	}
	switch typ := id.Type(); {
	case strings.EqualFold(typ, TypeDefinition):
		if d := s.Engine.compileDefinition(next); d.err != nil {
			return nil, policyError(CodeInvalidPolicy, "the policy definition does not compile", d.err)
		}
	case strings.EqualFold(typ, TypeSetDefinition):
		return next, s.checkInitiative(ctx, tx, next)
	case strings.EqualFold(typ, TypeAssignment):
		return next, s.checkAssignment(ctx, tx, tree, id, next)
	case strings.EqualFold(typ, TypeExemption):
		return next, s.checkExemption(ctx, tx, tree, id, next)
	case strings.EqualFold(typ, TypeRemediation):
		return s.checkRemediation(next, old)
	default:
		return s.Engine.admit(ctx, tx, tree, next)
	}
	return next, nil
}

// AfterWrite records the compliance states of a stored resource in the write's transaction,
// so that they are right when the write returns.
func (s *Service) AfterWrite(ctx context.Context, tx store.Tx, tree *resource.Hierarchy, stored *resource.Resource) error {
	id, err := resource.Parse(stored.ID)
	if err != nil || !Evaluable(id.Type()) {
		return nil
	}
	if err := s.reevaluate(ctx, tx, tree, stored); err != nil {
		return err
	}
	return s.reevaluateParent(ctx, tx, tree, id)
}

// reevaluate records the states of one resource.
func (s *Service) reevaluate(ctx context.Context, tx store.Tx, tree *resource.Hierarchy, r *resource.Resource) error {
	states, err := s.Engine.Evaluate(ctx, tx, tree, r)
	if err != nil {
		return fmt.Errorf("evaluate %s: %w", r.ID, err)
	}
	if _, err := tx.ReplacePolicyStates(ctx, []string{r.ID}, nil, states); err != nil {
		return fmt.Errorf("record states of %s: %w", r.ID, err)
	}
	return nil
}

// reevaluateParent re-evaluates the resource a child or extension resource belongs to:
// its auditIfNotExists and deployIfNotExists checks look at exactly such resources (a
// guest-configuration assignment and its VM), so the parent's state follows at once.
func (s *Service) reevaluateParent(ctx context.Context, tx store.Tx, tree *resource.Hierarchy, id resource.ID) error {
	parent := id.Parent()
	if id.Kind() != resource.KindResource || parent.Kind() != resource.KindResource || !Evaluable(parent.Type()) {
		return nil
	}
	pr, err := tx.Get(ctx, parent)
	if err != nil {
		if store.IsNotFound(err) {
			return nil
		}
		return err
	}
	return s.reevaluate(ctx, tx, tree, pr)
}

// BeforeDelete refuses to delete a definition or initiative that assignments still use.
func (s *Service) BeforeDelete(ctx context.Context, tx store.Tx, tree *resource.Hierarchy, victim *resource.Resource) error {
	id, err := resource.Parse(victim.ID)
	if err != nil {
		return nil
	}
	if !strings.EqualFold(id.Type(), TypeDefinition) && !strings.EqualFold(id.Type(), TypeSetDefinition) {
		return nil
	}
	var users []string
	for _, a := range s.Engine.cat.Load().assignments {
		if strings.EqualFold(a.definitionID, victim.ID) || strings.EqualFold(a.setDefinitionID, victim.ID) {
			users = append(users, a.id.String())
		}
	}
	for _, in := range s.Engine.cat.Load().initiatives {
		if in.set == nil {
			continue
		}
		for _, m := range in.set.Members {
			if strings.EqualFold(m.DefinitionID, victim.ID) {
				users = append(users, in.id)
				break
			}
		}
	}
	if len(users) > 0 {
		return resource.Errorf(resource.CodeConflict, victim.ID, "%s is still used by %s; delete or change those first", victim.ID, strings.Join(users, ", "))
	}
	return nil
}

// AfterDelete removes the states of a deleted resource, or of a deleted assignment.
func (s *Service) AfterDelete(ctx context.Context, tx store.Tx, tree *resource.Hierarchy, deleted *resource.Resource) error {
	id, err := resource.Parse(deleted.ID)
	if err != nil {
		return nil
	}
	switch {
	case strings.EqualFold(id.Type(), TypeAssignment):
		_, err = tx.DeleteAssignmentStates(ctx, deleted.ID)
	case Evaluable(id.Type()):
		_, err = tx.DeletePolicyStates(ctx, []string{deleted.ID})
	}
	if err != nil {
		return fmt.Errorf("remove states of %s: %w", deleted.ID, err)
	}
	return s.reevaluateParent(ctx, tx, tree, id)
}

// Committed reloads the catalog after policy resources changed, and queues scans of the
// scopes the change reaches.
func (s *Service) Committed(ctx context.Context, ids []resource.ID) {
	s.startRemediations(ctx, ids)
	var scopes []resource.ID
	reload := false
	for _, id := range ids {
		if IsPolicyType(id.Type()) {
			reload = true
		}
	}
	if !reload {
		return
	}
	before := s.Engine.cat.Load()
	if err := s.Engine.Load(ctx, s.store); err != nil {
		s.log.Warn("reload policies", "err", err)
		return
	}
	after := s.Engine.cat.Load()
	for _, id := range ids {
		switch typ := id.Type(); {
		case strings.EqualFold(typ, TypeAssignment), strings.EqualFold(typ, TypeExemption):
			scopes = append(scopes, id.Parent())
		case strings.EqualFold(typ, TypeDefinition), strings.EqualFold(typ, TypeSetDefinition):
			for _, cat := range []*catalog{before, after} {
				for _, a := range cat.assignments {
					if strings.EqualFold(a.definitionID, id.String()) || strings.EqualFold(a.setDefinitionID, id.String()) || usesMember(cat, a, id) {
						scopes = append(scopes, a.scope)
					}
				}
			}
		}
	}
	for _, sc := range scopes {
		s.Enqueue(sc)
	}
}

func usesMember(cat *catalog, a *assignment, def resource.ID) bool {
	for _, m := range a.members {
		if strings.EqualFold(m.definitionID, def.String()) {
			return true
		}
	}
	return false
}

// followChanges reloads the catalog when another server changed a policy resource.
func (s *Service) followChanges(ctx context.Context) {
	reload := false
	for {
		changes, err := s.store.Changes(ctx, s.seq, 1000)
		if err != nil {
			s.log.Warn("follow changes", "err", err)
			return
		}
		for _, c := range changes {
			reload = reload || IsPolicyType(c.Type)
			s.seq = c.Seq
		}
		if len(changes) < 1000 {
			break
		}
	}
	if reload {
		if err := s.Engine.Load(ctx, s.store); err != nil {
			s.log.Warn("reload policies", "err", err)
		}
	}
}

// checkInitiative requires an initiative's members to exist and its parameter wiring to fit
// them.
func (s *Service) checkInitiative(ctx context.Context, tx store.Tx, next *resource.Resource) error {
	in := parseInitiative(next)
	if in.err != nil {
		return policyError(CodeInvalidPolicy, "the initiative is invalid", in.err)
	}
	var errs []*resource.Error
	for i, m := range in.set.Members {
		target := fmt.Sprintf("properties.policyDefinitions[%d]", i)
		d, err := s.definition(ctx, tx, m.DefinitionID)
		if err != nil {
			errs = append(errs, resource.Errorf(CodePolicyNotFound, target+".policyDefinitionId", "%v", err))
			continue
		}
		for name := range m.Parameters {
			if _, ok := d.compiled.Definition().Parameters.Lookup(name); !ok {
				errs = append(errs, resource.Errorf(CodeInvalidPolicy, target+".parameters."+name, "definition %s declares no parameter %q", m.DefinitionID, name))
			}
		}
		scope := policy.CompileScope{Parameters: func(n string) bool { _, ok := in.set.Parameters.Lookup(n); return ok }}
		for name, v := range m.Parameters {
			scope.Location = target + ".parameters." + name + ".value"
			if _, err := policy.CompileValue(v, scope); err != nil {
				errs = append(errs, resource.Errorf(CodeInvalidPolicy, scope.Location, "%v", err))
			}
		}
	}
	return resource.Join(CodeInvalidPolicy, "the initiative is invalid", errs)
}

// definition finds a definition by ID: gild's built-ins, what the catalog holds, or (for one
// written by another server a moment ago) the store.
func (s *Service) definition(ctx context.Context, r store.Reader, ref string) (*definition, error) {
	if d, ok := s.Engine.cat.Load().definitions[keyOf(ref)]; ok && d.err == nil {
		return d, nil
	}
	id, err := resource.Parse(ref)
	if err != nil || !strings.EqualFold(id.Type(), TypeDefinition) {
		return nil, fmt.Errorf("%q is not a policy definition ID", ref)
	}
	res, err := r.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("policy definition %s does not exist", ref)
	}
	d := s.Engine.compileDefinition(res)
	if d.err != nil {
		return nil, fmt.Errorf("policy definition %s does not compile: %v", ref, d.err)
	}
	return d, nil
}

// checkAssignment binds an assignment as evaluation would, so that a broken one is refused
// with the field it concerns: the definition exists, is visible from the assignment's
// scope, and the parameter values fit it.
func (s *Service) checkAssignment(ctx context.Context, tx store.Tx, tree *resource.Hierarchy, id resource.ID, next *resource.Resource) error {
	cur := s.Engine.cat.Load()
	cat := &catalog{definitions: map[string]*definition{}, initiatives: map[string]*initiative{}}
	for k, v := range cur.definitions {
		cat.definitions[k] = v
	}
	for k, v := range cur.initiatives {
		cat.initiatives[k] = v
	}
	ref := next.StringProperty("policyDefinitionId")
	if ref != "" {
		rid, err := resource.Parse(ref)
		if err != nil {
			return resource.Errorf(CodeInvalidAssignment, "properties.policyDefinitionId", "%q is not a resource ID", ref)
		}
		if _, ok := cat.definitions[keyOf(ref)]; !ok {
			if _, ok := cat.initiatives[keyOf(ref)]; !ok {
				res, err := tx.Get(ctx, rid)
				switch {
				case err != nil:
				case strings.EqualFold(rid.Type(), TypeDefinition):
					cat.definitions[keyOf(ref)] = s.Engine.compileDefinition(res)
				case strings.EqualFold(rid.Type(), TypeSetDefinition):
					cat.initiatives[keyOf(ref)] = parseInitiative(res)
				}
			}
		}
		// A definition saved at a management group or subscription can be assigned only
		// at or below it.
		if defScope := rid.Parent(); !defScope.IsRoot() && !tree.Contains(defScope, id.Parent()) {
			return resource.Errorf(CodeInvalidAssignment, "properties.policyDefinitionId", "%s is defined at %s, which does not contain the assignment's scope %s", ref, defScope, id.Parent())
		}
	}
	a := s.Engine.prepareAssignment(cat, next)
	if sc := next.StringProperty("scope"); sc != "" {
		if sid, err := resource.Parse(sc); err != nil || !sid.Equal(a.scope) {
			return resource.Errorf(CodeInvalidAssignment, "properties.scope", "scope %q must be where the assignment is stored, %q", sc, a.scope)
		}
	}
	return a.err
}

// checkExemption requires an exemption's assignment to exist and to reach the exemption's
// scope, and its reference ids to name members of the assignment's initiative.
func (s *Service) checkExemption(ctx context.Context, tx store.Tx, tree *resource.Hierarchy, id resource.ID, next *resource.Resource) error {
	x, err := parseExemption(next)
	if err != nil {
		return err
	}
	ref := next.StringProperty("policyAssignmentId")
	aid, err := resource.Parse(ref)
	if err != nil || !strings.EqualFold(aid.Type(), TypeAssignment) {
		return resource.Errorf(resource.CodeInvalidRequestContent, "properties.policyAssignmentId", "%q is not a policy assignment ID", ref)
	}
	ares, err := tx.Get(ctx, aid)
	if err != nil {
		return resource.Errorf(resource.CodeInvalidRequestContent, "properties.policyAssignmentId", "policy assignment %s does not exist", ref)
	}
	if !tree.Contains(aid.Parent(), x.scope) && !tree.Contains(x.scope, aid.Parent()) {
		return resource.Errorf(resource.CodeInvalidRequestContent, "properties.policyAssignmentId", "assignment %s does not reach the exemption's scope %s", ref, x.scope)
	}
	if len(x.references) > 0 {
		a := s.Engine.prepareAssignment(s.Engine.cat.Load(), ares)
		known := map[string]bool{}
		for _, m := range a.members {
			known[strings.ToLower(m.referenceID)] = true
		}
		for r := range x.references {
			if !known[r] {
				return resource.Errorf(resource.CodeInvalidRequestContent, "properties.policyDefinitionReferenceIds", "assignment %s has no policy with reference id %q", ref, r)
			}
		}
	}
	return nil
}

// policyError turns the policy package's errors into an API error listing each problem at
// its field.
func policyError(code, summary string, err error) error {
	var pes policy.Errors
	var pe *policy.Error
	switch {
	case errors.As(err, &pes):
	case errors.As(err, &pe):
		pes = policy.Errors{pe}
	default:
		return resource.Errorf(code, "properties", "%s: %v", summary, err)
	}
	details := make([]*resource.Error, len(pes))
	for i, e := range pes {
		target := e.Location
		if target != "" && !strings.HasPrefix(target, "properties") && !strings.HasPrefix(target, "line ") {
			target = "properties." + target
		}
		details[i] = &resource.Error{Code: code, Target: target, Message: e.Message}
	}
	if len(details) == 1 {
		return details[0]
	}
	return &resource.Error{Code: code, Message: fmt.Sprintf("%s (%d problems; see details)", summary, len(details)), Details: details}
}
