// Package compliance applies policy to resources: it keeps the policy definitions,
// initiatives, assignments and exemptions compiled in memory, checks them when they are
// written, evaluates resources against every assignment that reaches them (scopes,
// notScopes, modes, exemptions), decides admission (deny, modify, append) before a write
// is stored, and turns decisions into compliance states with reasons, kept with history
// by the store.
package compliance

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gildhq/gild/policy"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// Resource types of the policy model.
const (
	TypeDefinition    = "Microsoft.Authorization/policyDefinitions"
	TypeSetDefinition = "Microsoft.Authorization/policySetDefinitions"
	TypeAssignment    = "Microsoft.Authorization/policyAssignments"
	TypeExemption     = "Microsoft.Authorization/policyExemptions"
)

// Error codes the engine adds, in ARM's spelling.
const (
	CodeInvalidPolicy      = "InvalidPolicyDefinition"
	CodePolicyNotFound     = "PolicyDefinitionNotFound"
	CodeInvalidAssignment  = "InvalidPolicyAssignment"
	CodeDisallowedByPolicy = "RequestDisallowedByPolicy"
)

// IsPolicyType reports whether typ is one of the policy model's types.
func IsPolicyType(typ string) bool {
	for _, t := range []string{TypeDefinition, TypeSetDefinition, TypeAssignment, TypeExemption} {
		if strings.EqualFold(t, typ) {
			return true
		}
	}
	return false
}

// Options configure an Engine.
type Options struct {
	// Aliases resolve field names; nil means policy.DefaultAliases().
	Aliases *policy.AliasTable
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// Enrichers add derived fields to resources before evaluation, after gild's own.
	Enrichers []Enricher
}

// Engine is the compliance engine over one store.
type Engine struct {
	aliases   *policy.AliasTable
	now       func() time.Time
	log       *slog.Logger
	enrichers []Enricher
	// onGuest receives the guest assignments evaluations find missing (Service sets it).
	onGuest func(GuestAssignment)

	cat      atomic.Pointer[catalog]
	reloadMu sync.Mutex
}

// New returns an engine with nothing loaded; call Load.
func New(opts Options) *Engine {
	e := &Engine{aliases: opts.Aliases, now: opts.Now, log: opts.Logger,
		enrichers: append([]Enricher{enrichServiceModel}, opts.Enrichers...)}
	if e.aliases == nil {
		e.aliases = policy.DefaultAliases()
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.cat.Store(&catalog{definitions: map[string]*definition{}, initiatives: map[string]*initiative{}})
	return e
}

// Aliases is the alias table the engine compiles with.
func (e *Engine) Aliases() *policy.AliasTable { return e.aliases }

// catalog is everything the engine evaluates with, rebuilt whole when a policy resource
// changes and swapped in atomically, so evaluations never lock.
type catalog struct {
	definitions map[string]*definition // by ID key
	initiatives map[string]*initiative
	assignments []*assignment
	exemptions  []*exemption
}

type definition struct {
	id       string
	compiled *policy.Policy
	err      error
	guest    *guestSpec // metadata.guestConfiguration, for auditIfNotExists guest policies
}

type initiative struct {
	id  string
	set *policy.SetDefinition
	err error
}

type assignment struct {
	id              resource.ID
	idStr           string // id.String() and id.Key(), computed once: scans use them per resource
	key             string
	scope           resource.ID
	scopeKey        string
	notScopes       []resource.ID
	notScopeKeys    []string
	enforce         bool
	definitionID    string
	setDefinitionID string
	messages        map[string]string // reference id (lower-cased, "" for all) → message
	members         []member
	err             error // why it cannot be evaluated; its states are then Unknown
}

type member struct {
	referenceID  string
	definitionID string
	prepared     *policy.Prepared
	// policyInfo is what policy() returns for this member; read-only, shared by evaluations.
	policyInfo map[string]any
	indexed    bool
	guest      *guestSpec
}

type exemption struct {
	id         resource.ID
	scope      resource.ID
	scopeKey   string
	assignment string // ID key
	references map[string]bool
	expiresOn  time.Time
	category   string
}

// Load rebuilds the catalog from the store, compiling every definition and preparing every
// assignment; broken ones are kept with their error rather than failing the load.
func (e *Engine) Load(ctx context.Context, r store.Reader) error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	cat := &catalog{definitions: map[string]*definition{}, initiatives: map[string]*initiative{}}
	for _, b := range builtinDefinitions() {
		cat.definitions[strings.ToLower(b.ID)] = e.compileDefinition(b)
	}
	defs, err := listAll(ctx, r, TypeDefinition)
	if err != nil {
		return fmt.Errorf("load policy definitions: %w", err)
	}
	for _, res := range defs {
		cat.definitions[keyOf(res.ID)] = e.compileDefinition(res)
	}
	sets, err := listAll(ctx, r, TypeSetDefinition)
	if err != nil {
		return fmt.Errorf("load initiatives: %w", err)
	}
	for _, res := range sets {
		cat.initiatives[keyOf(res.ID)] = parseInitiative(res)
	}
	assigns, err := listAll(ctx, r, TypeAssignment)
	if err != nil {
		return fmt.Errorf("load policy assignments: %w", err)
	}
	for _, res := range assigns {
		a := e.prepareAssignment(cat, res)
		if a.err != nil {
			e.log.Warn("policy assignment cannot be evaluated", "id", res.ID, "err", a.err)
		}
		cat.assignments = append(cat.assignments, a)
	}
	exs, err := listAll(ctx, r, TypeExemption)
	if err != nil {
		return fmt.Errorf("load policy exemptions: %w", err)
	}
	for _, res := range exs {
		if x, err := parseExemption(res); err == nil {
			cat.exemptions = append(cat.exemptions, x)
		}
	}
	e.cat.Store(cat)
	return nil
}

func listAll(ctx context.Context, r store.Reader, typ string) ([]*resource.Resource, error) {
	return store.ListAll(ctx, r, store.ListQuery{Type: typ})
}

func keyOf(id string) string { return strings.ToLower(id) }

// definitionJSON is a definition resource as the policy parser reads it.
func definitionJSON(r *resource.Resource) []byte {
	b, _ := json.Marshal(map[string]any{"id": r.ID, "name": r.Name, "type": r.Type, "properties": json.RawMessage(orEmpty(r.Properties))})
	return b
}

func orEmpty(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("{}")
	}
	return b
}

func (e *Engine) compileDefinition(r *resource.Resource) *definition {
	d := &definition{id: r.ID}
	def, err := policy.ParseDefinition(definitionJSON(r))
	if err != nil {
		d.err = err
		return d
	}
	d.compiled, d.err = policy.Compile(def, policy.CompileOptions{Aliases: e.aliases})
	d.guest = parseGuestSpec(definitionJSON(r))
	return d
}

func parseInitiative(r *resource.Resource) *initiative {
	in := &initiative{id: r.ID}
	in.set, in.err = policy.ParseSetDefinition(definitionJSON(r))
	return in
}

// assignmentProps is a policyAssignments resource's properties.
type assignmentProps struct {
	PolicyDefinitionID    string                     `json:"policyDefinitionId"`
	Parameters            map[string]json.RawMessage `json:"parameters,omitempty"`
	NotScopes             []string                   `json:"notScopes,omitempty"`
	EnforcementMode       string                     `json:"enforcementMode,omitempty"`
	NonComplianceMessages []struct {
		Message     string `json:"message"`
		ReferenceID string `json:"policyDefinitionReferenceId,omitempty"`
	} `json:"nonComplianceMessages,omitempty"`
	DisplayName string `json:"displayName,omitempty"`
	Description string `json:"description,omitempty"`
	Scope       string `json:"scope,omitempty"`
}

// prepareAssignment binds an assignment to its definition or initiative. It never fails:
// a broken assignment carries its error.
func (e *Engine) prepareAssignment(cat *catalog, r *resource.Resource) *assignment {
	id, _ := resource.Parse(r.ID)
	a := &assignment{id: id, idStr: id.String(), key: id.Key(), scope: id.Parent(), scopeKey: id.Parent().Key(), enforce: true, messages: map[string]string{}}
	var p assignmentProps
	if err := json.Unmarshal(orEmpty(r.Properties), &p); err != nil {
		a.err = fieldError(CodeInvalidAssignment, "properties", "the assignment's properties do not decode: %v", err)
		return a
	}
	a.err = e.bindAssignment(cat, a, p)
	return a
}

// bindAssignment fills a from its properties, reporting the first problem with the field
// it concerns.
func (e *Engine) bindAssignment(cat *catalog, a *assignment, p assignmentProps) error {
	switch strings.ToLower(p.EnforcementMode) {
	case "", "default":
	case "donotenforce":
		a.enforce = false
	default:
		return fieldError(CodeInvalidAssignment, "properties.enforcementMode", "enforcementMode is Default or DoNotEnforce, not %q", p.EnforcementMode)
	}
	for i, ns := range p.NotScopes {
		id, err := resource.Parse(ns)
		if err != nil {
			return fieldError(CodeInvalidAssignment, fmt.Sprintf("properties.notScopes[%d]", i), "%q is not a resource ID", ns)
		}
		a.notScopes = append(a.notScopes, id)
		a.notScopeKeys = append(a.notScopeKeys, id.Key())
	}
	for _, m := range p.NonComplianceMessages {
		a.messages[strings.ToLower(m.ReferenceID)] = m.Message
	}
	values := map[string]any{}
	for name, raw := range p.Parameters {
		var w struct {
			Value json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(raw, &w); err != nil || w.Value == nil {
			return fieldError(CodeInvalidAssignment, "properties.parameters."+name, "a parameter value is {\"value\": ...}")
		}
		v, err := policy.DecodeJSON(w.Value)
		if err != nil {
			return fieldError(CodeInvalidAssignment, "properties.parameters."+name, "the value does not decode: %v", err)
		}
		values[name] = v
	}
	if p.PolicyDefinitionID == "" {
		return fieldError(CodeInvalidAssignment, "properties.policyDefinitionId", "policyDefinitionId is required")
	}
	ref := keyOf(p.PolicyDefinitionID)
	if d, ok := cat.definitions[ref]; ok {
		a.definitionID = d.id
		if d.err != nil {
			return fieldError(CodeInvalidAssignment, "properties.policyDefinitionId", "definition %s does not compile: %v", d.id, d.err)
		}
		q, err := d.compiled.Prepare(values)
		if err != nil {
			return assignmentParamError(err)
		}
		a.members = []member{newMember(a, "", d, q)}
		return nil
	}
	in, ok := cat.initiatives[ref]
	if !ok {
		return fieldError(CodePolicyNotFound, "properties.policyDefinitionId", "no policy definition or initiative %s", p.PolicyDefinitionID)
	}
	a.setDefinitionID = in.id
	if in.err != nil {
		return fieldError(CodeInvalidAssignment, "properties.policyDefinitionId", "initiative %s is invalid: %v", in.id, in.err)
	}
	setParams, err := bindSetParameters(in.set, values)
	if err != nil {
		return err
	}
	for i, m := range in.set.Members {
		d, ok := cat.definitions[keyOf(m.DefinitionID)]
		if !ok {
			return fieldError(CodePolicyNotFound, "properties.policyDefinitionId", "initiative %s names definition %s, which does not exist", in.id, m.DefinitionID)
		}
		if d.err != nil {
			return fieldError(CodeInvalidAssignment, "properties.policyDefinitionId", "initiative member %s does not compile: %v", m.ReferenceID, d.err)
		}
		memberValues := map[string]any{}
		for name, raw := range m.Parameters {
			v, err := evalSetValue(raw, setParams)
			if err != nil {
				return fieldError(CodeInvalidAssignment, fmt.Sprintf("policyDefinitions[%d].parameters.%s", i, name), "%v", err)
			}
			memberValues[name] = v
		}
		q, err := d.compiled.Prepare(memberValues)
		if err != nil {
			return fieldError(CodeInvalidAssignment, "properties.parameters", "initiative member %s: %v", m.ReferenceID, err)
		}
		a.members = append(a.members, newMember(a, m.ReferenceID, d, q))
	}
	return nil
}

func newMember(a *assignment, referenceID string, d *definition, q *policy.Prepared) member {
	definitionID := d.id
	return member{referenceID: referenceID, definitionID: definitionID, prepared: q, indexed: q.Policy().Mode() == "indexed", guest: d.guest,
		policyInfo: map[string]any{"assignmentId": a.idStr, "definitionId": definitionID,
			"setDefinitionId": a.setDefinitionID, "definitionReferenceId": referenceID}}
}

// bindSetParameters checks an assignment's values against an initiative's declarations.
func bindSetParameters(set *policy.SetDefinition, values map[string]any) (map[string]any, error) {
	out := map[string]any{}
	for name, v := range values {
		decl, ok := set.Parameters.Lookup(name)
		if !ok {
			return nil, fieldError(CodeInvalidAssignment, "properties.parameters."+name, "the initiative declares no parameter %q", name)
		}
		if err := decl.CheckValue(v); err != nil {
			return nil, fieldError(CodeInvalidAssignment, "properties.parameters."+name, "%v", err)
		}
		out[strings.ToLower(decl.Name)] = v
	}
	for _, name := range set.Parameters.Names() {
		decl := set.Parameters[name]
		if _, ok := out[strings.ToLower(name)]; ok {
			continue
		}
		if !decl.HasDefault {
			return nil, fieldError(CodeInvalidAssignment, "properties.parameters."+name, "parameter %q has no default value, so the assignment must give one", name)
		}
		out[strings.ToLower(name)] = decl.DefaultValue
	}
	return out, nil
}

// setEnv evaluates an initiative member's parameter expressions over the initiative's
// parameters; nothing else is in reach there.
type setEnv struct{ params map[string]any }

func (s setEnv) Parameter(name string) (any, bool) {
	v, ok := s.params[strings.ToLower(name)]
	return v, ok
}
func (setEnv) Field(string) (any, error) {
	return nil, fmt.Errorf("field() cannot be used in an initiative's parameter values")
}
func (setEnv) Current(string) (any, bool)     { return nil, false }
func (setEnv) Now() time.Time                 { return time.Now().UTC() }
func (setEnv) ResourceGroup() map[string]any  { return map[string]any{} }
func (setEnv) Subscription() map[string]any   { return map[string]any{} }
func (setEnv) Policy() map[string]any         { return map[string]any{} }
func (setEnv) RequestContext() map[string]any { return map[string]any{} }
func evalSetValue(raw any, params map[string]any) (any, error) {
	e, err := policy.CompileValue(raw, policy.CompileScope{})
	if err != nil {
		return nil, err
	}
	return e.Eval(setEnv{params: params})
}

func assignmentParamError(err error) error {
	var errs policy.Errors
	if es, ok := err.(policy.Errors); ok {
		errs = es
	}
	if len(errs) > 0 {
		details := make([]*resource.Error, len(errs))
		for i, pe := range errs {
			details[i] = &resource.Error{Code: CodeInvalidAssignment, Target: "properties." + pe.Location, Message: pe.Message}
		}
		if len(details) == 1 {
			return details[0]
		}
		return &resource.Error{Code: CodeInvalidAssignment, Message: fmt.Sprintf("the assignment's parameters are invalid (%d problems; see details)", len(details)), Details: details}
	}
	return fieldError(CodeInvalidAssignment, "properties.parameters", "%v", err)
}

func fieldError(code, target, format string, args ...any) error {
	return resource.Errorf(code, target, format, args...)
}

// exemptionProps is a policyExemptions resource's properties.
type exemptionProps struct {
	PolicyAssignmentID string   `json:"policyAssignmentId"`
	Category           string   `json:"exemptionCategory"`
	ExpiresOn          string   `json:"expiresOn,omitempty"`
	ReferenceIDs       []string `json:"policyDefinitionReferenceIds,omitempty"`
	DisplayName        string   `json:"displayName,omitempty"`
	Description        string   `json:"description,omitempty"`
}

func parseExemption(r *resource.Resource) (*exemption, error) {
	id, err := resource.Parse(r.ID)
	if err != nil {
		return nil, err
	}
	var p exemptionProps
	if err := json.Unmarshal(orEmpty(r.Properties), &p); err != nil {
		return nil, fieldError(resource.CodeInvalidRequestContent, "properties", "the exemption's properties do not decode: %v", err)
	}
	x := &exemption{id: id, scope: id.Parent(), scopeKey: id.Parent().Key(), assignment: keyOf(p.PolicyAssignmentID), references: map[string]bool{}}
	var errs []*resource.Error
	if p.PolicyAssignmentID == "" {
		errs = append(errs, resource.Errorf(resource.CodeInvalidRequestContent, "properties.policyAssignmentId", "policyAssignmentId is required"))
	}
	switch strings.ToLower(p.Category) {
	case "waiver":
		x.category = "Waiver"
	case "mitigated":
		x.category = "Mitigated"
	default:
		errs = append(errs, resource.Errorf(resource.CodeInvalidRequestContent, "properties.exemptionCategory", "exemptionCategory is Waiver or Mitigated, not %q", p.Category))
	}
	if p.ExpiresOn != "" {
		t, err := time.Parse(time.RFC3339, p.ExpiresOn)
		if err != nil {
			errs = append(errs, resource.Errorf(resource.CodeInvalidRequestContent, "properties.expiresOn", "expiresOn must be an RFC 3339 time such as 2026-12-31T00:00:00Z, not %q", p.ExpiresOn))
		}
		x.expiresOn = t
	}
	for _, ref := range p.ReferenceIDs {
		x.references[strings.ToLower(ref)] = true
	}
	if err := resource.Join(resource.CodeInvalidRequestContent, "the exemption is invalid", errs); err != nil {
		return nil, err
	}
	return x, nil
}

// applies reports whether the exemption covers a state at time now; within holds the keys
// of the target and every scope above it.
func (x *exemption) applies(assignmentKey, referenceID string, within map[string]bool, now time.Time) bool {
	if x.assignment != assignmentKey || (!x.expiresOn.IsZero() && !now.Before(x.expiresOn)) {
		return false
	}
	if len(x.references) > 0 && !x.references[strings.ToLower(referenceID)] {
		return false
	}
	return within[x.scopeKey]
}

// NextExpiry is the earliest expiresOn after now among the exemptions, so that a
// scheduler can re-evaluate the moment one stops counting.
func (e *Engine) NextExpiry(now time.Time) (time.Time, []resource.ID) {
	var next time.Time
	var scopes []resource.ID
	for _, x := range e.cat.Load().exemptions {
		if x.expiresOn.IsZero() || !x.expiresOn.After(now) {
			continue
		}
		switch {
		case next.IsZero() || x.expiresOn.Before(next):
			next, scopes = x.expiresOn, []resource.ID{x.scope}
		case x.expiresOn.Equal(next):
			scopes = append(scopes, x.scope)
		}
	}
	return next, scopes
}

// AssignmentScopes lists the scopes of every assignment, for a full scan.
func (e *Engine) AssignmentScopes() []resource.ID {
	var out []resource.ID
	for _, a := range e.cat.Load().assignments {
		out = append(out, a.scope)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}
