package policy

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Effects, in Azure's spelling; results carry them lower-cased. auditAction is not in
// Azure's effect reference yet, but its built-ins (MFA_DenyAction) use it beside denyAction.
var effectNames = []string{"append", "audit", "auditAction", "auditIfNotExists", "deny", "denyAction", "deployIfNotExists", "disabled", "manual", "modify"}

// canonicalEffect returns the lower-case effect for a name in any case, or "".
func canonicalEffect(s string) string {
	for _, e := range effectNames {
		if strings.EqualFold(e, s) {
			return strings.ToLower(e)
		}
	}
	return ""
}

// CompileOptions configure Compile.
type CompileOptions struct {
	// Aliases resolve field names; nil means DefaultAliases().
	Aliases *AliasTable
}

// Policy is a compiled definition. It is immutable and safe for concurrent use.
type Policy struct {
	def     *Definition
	aliases *AliasTable
	cond    condition
	effect  Expression
	details *effectDetails
}

// Compile compiles def, reporting every problem at once (as Errors).
func Compile(def *Definition, opts CompileOptions) (*Policy, error) {
	aliases := opts.Aliases
	if aliases == nil {
		aliases = DefaultAliases()
	}
	c := &condCompiler{aliases: aliases, params: def.Parameters}
	if c.params == nil {
		c.params = Parameters{}
	}
	p := &Policy{def: def, aliases: aliases}
	loc := "policyRule"
	if def.Rule == nil {
		return nil, Errors{errorf(CodeInvalid, loc, "the definition has no policyRule")}
	}
	if ifRaw, ok := lookupKeyOK(def.Rule, "if"); ok {
		p.cond = c.compile(ifRaw, loc+".if")
	} else {
		c.fail(CodeInvalid, loc+".if", "the rule has no if condition")
	}
	then, _ := lookupKey(def.Rule, "then").(map[string]any)
	if then == nil {
		c.fail(CodeInvalid, loc+".then", "the rule needs a then object with an effect")
		return nil, c.errs
	}
	effRaw, ok := lookupKeyOK(then, "effect")
	if !ok {
		c.fail(CodeInvalid, loc+".then.effect", "then has no effect")
	} else {
		p.effect = c.expr(effRaw, loc+".then.effect")
		c.checkEffect(p.effect, def.Parameters, loc+".then.effect")
	}
	if d, ok := lookupKeyOK(then, "details"); ok {
		p.details = c.compileDetails(d, loc+".then.details")
	}
	for _, k := range sortedKeys(then) {
		if !strings.EqualFold(k, "effect") && !strings.EqualFold(k, "details") {
			c.fail(CodeInvalid, loc+".then."+k, "then takes effect and details, not %q", k)
		}
	}
	if err := c.errs.err(); err != nil {
		return nil, err
	}
	return p, nil
}

// checkEffect makes sure every effect the rule can end up with is one Azure knows: a
// constant one, or every allowed and default value of the parameter it comes from.
func (c *condCompiler) checkEffect(e Expression, params Parameters, loc string) {
	if e == nil {
		return
	}
	check := func(v any, where string) {
		s, ok := v.(string)
		if !ok || canonicalEffect(s) == "" {
			c.fail(CodeInvalid, loc, "%s %s is not an effect; the effects are %s", where, describeValue(v), strings.Join(effectNames, ", "))
		}
	}
	if IsConstant(e) {
		check(ConstantValue(e), "effect")
		return
	}
	for _, name := range ReferencedParameters(e) {
		p, ok := params.Lookup(name)
		if !ok {
			continue
		}
		for _, av := range p.AllowedValues {
			check(av, fmt.Sprintf("allowed value of parameter %q,", name))
		}
		if p.HasDefault {
			check(p.DefaultValue, fmt.Sprintf("default value of parameter %q,", name))
		}
	}
}

// Definition returns the definition p was compiled from.
func (p *Policy) Definition() *Definition { return p.def }

// Mode is the definition's mode, "all" when it gives none.
func (p *Policy) Mode() string {
	if p.def.Mode == "" {
		return "all"
	}
	return strings.ToLower(p.def.Mode)
}

// Prepared is a policy bound to one assignment's parameter values, ready to evaluate many
// resources. It is immutable and safe for concurrent use.
type Prepared struct {
	p      *Policy
	params map[string]any // lower-cased names
	effect string
}

// Prepare binds parameter values (name → value, as an assignment gives them without the
// {"value": ...} wrapper). Missing values take their defaults; a parameter with neither,
// an undeclared name, or a value of the wrong type or not allowed is an error naming it.
func (p *Policy) Prepare(values map[string]any) (*Prepared, error) {
	q := &Prepared{p: p, params: map[string]any{}}
	var errs Errors
	for name := range values {
		if _, ok := p.def.Parameters.Lookup(name); !ok {
			errs = append(errs, errorf(CodeParameterValue, "parameters."+name, "the definition declares no parameter %q (it has: %s)", name, strings.Join(p.def.Parameters.Names(), ", ")))
		}
	}
	for _, name := range p.def.Parameters.Names() {
		decl := p.def.Parameters[name]
		v, ok := lookupKeyOK(values, name)
		if !ok {
			if !decl.HasDefault {
				errs = append(errs, errorf(CodeParameterValue, "parameters."+name, "parameter %q has no default value, so the assignment must give one", name))
				continue
			}
			v = decl.DefaultValue
		} else if err := decl.CheckValue(v); err != nil {
			errs = append(errs, errorf(CodeParameterValue, "parameters."+name, "%s", err.Error()))
			continue
		}
		q.params[strings.ToLower(name)] = v
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	env := &evalCtx{q: q}
	v, err := p.effect.Eval(env)
	if err != nil {
		return nil, wrapEval(err, "policyRule.then.effect")
	}
	s, _ := v.(string)
	if q.effect = canonicalEffect(s); q.effect == "" {
		return nil, errorf(CodeParameterValue, "policyRule.then.effect", "the effect resolves to %s, which is not an effect", describeValue(v))
	}
	return q, nil
}

// Effect is the resolved effect, lower-cased ("audit", "deny", "disabled", ...).
func (q *Prepared) Effect() string { return q.effect }

// Policy returns the compiled policy q was prepared from.
func (q *Prepared) Policy() *Policy { return q.p }

// Input is one resource to evaluate, with its context.
type Input struct {
	// Resource is the resource in ARM's JSON shape, in the package's value model.
	Resource map[string]any
	// Now is the evaluation time (utcNow(), addDays).
	Now time.Time
	// ResourceGroup, Subscription, Policy and RequestContext are what the functions of the
	// same names return. Nil ResourceGroup and Subscription are derived from the resource ID.
	ResourceGroup  map[string]any
	Subscription   map[string]any
	Policy         map[string]any
	RequestContext map[string]any
}

// Result is the outcome of one evaluation.
type Result struct {
	// Effect is the prepared effect, lower-cased.
	Effect string
	// Matched says the rule's if condition held: for audit and deny the resource is
	// non-compliant; for auditIfNotExists and deployIfNotExists the existence check
	// comes next.
	Matched bool
	// Reasons are the conditions that decided the match, when it matched.
	Reasons []Reason
	// Failed says evaluation failed; Azure treats that as an implicit deny (and so
	// Matched is set). The first reason says why.
	Failed bool
}

// Reason is one condition that contributed to a match: what was compared, how, against
// what, and what the resource had.
type Reason struct {
	Location string `json:"location"`
	Subject  string `json:"subject"` // the field, value or count compared
	Operator string `json:"operator"`
	Negated  bool   `json:"negated,omitempty"` // the condition stood under a not
	Expected any    `json:"expected"`
	Actual   any    `json:"actual"`
	Phrase   string `json:"phrase"`
}

func (r Reason) String() string {
	not := ""
	if r.Negated {
		not = "not "
	}
	return fmt.Sprintf("%s: %s %s%s %s (current value %s): %s", r.Location, r.Subject, not, r.Operator,
		describeValue(r.Expected), describeValue(r.Actual), r.Phrase)
}

// Eval evaluates the prepared policy's if condition against a resource.
func (q *Prepared) Eval(in *Input) (Result, error) {
	res := Result{Effect: q.effect}
	if q.effect == "disabled" {
		return res, nil
	}
	ec := q.newCtx(in, in.Resource)
	ok, err := q.p.cond.eval(ec)
	if err != nil {
		res.Matched, res.Failed = true, true
		res.Reasons = []Reason{{Location: errLocation(err), Phrase: "evaluation failed, which counts as non-compliant: " + errMessage(err)}}
		return res, nil
	}
	res.Matched = ok
	if ok {
		// The fast path collects nothing; explaining a match evaluates once more.
		var reasons []Reason
		ec = q.newCtx(in, in.Resource)
		ec.explain = &reasons
		_, _ = q.p.cond.eval(ec)
		res.Reasons = reasons
	}
	return res, nil
}

func errLocation(err error) string {
	if e, ok := err.(*Error); ok {
		return e.Location
	}
	return ""
}

func errMessage(err error) string {
	if e, ok := err.(*Error); ok {
		return e.Message
	}
	return err.Error()
}

func (q *Prepared) newCtx(in *Input, root map[string]any) *evalCtx {
	return &evalCtx{q: q, in: in, root: root, fieldRoot: in.Resource}
}

// evalCtx is the state of one evaluation. It implements Env for expressions.
type evalCtx struct {
	q         *Prepared
	in        *Input
	root      map[string]any // what field conditions look at
	fieldRoot map[string]any // what the field() function looks at (differs in existenceCondition)
	frames    []countFrame
	negated   bool
	explain   *[]Reason
}

var _ Env = (*evalCtx)(nil)

func (ec *evalCtx) Parameter(name string) (any, bool) {
	if v, ok := ec.q.params[name]; ok {
		return v, true
	}
	v, ok := ec.q.params[strings.ToLower(name)]
	return v, ok
}

func (ec *evalCtx) Field(name string) (any, error) {
	if ec.in == nil {
		return nil, errorf(CodeEval, "", "field('%s') has no resource to look at here", name)
	}
	ref, err := resolveFieldName(ec.q.p.aliases, name)
	if err != nil {
		return nil, err
	}
	saved := ec.root
	ec.root = ec.fieldRoot
	vals, exists, all, err := ec.resolveField(ref)
	ec.root = saved
	if err != nil {
		return nil, err
	}
	if all {
		out := make([]any, 0, len(vals))
		for i, v := range vals {
			if exists[i] {
				out = append(out, v)
			}
		}
		return out, nil
	}
	if len(vals) == 0 || !exists[0] {
		// author-policies-for-arrays.md, "Referencing array fields": field() of a
		// property the resource lacks returns "" (the field condition sees null).
		return "", nil
	}
	return vals[0], nil
}

func (ec *evalCtx) Current(name string) (any, bool) {
	for i := len(ec.frames) - 1; i >= 0; i-- {
		f := ec.frames[i]
		if name == "" || strings.EqualFold(f.name, name) {
			return f.element, true
		}
	}
	// current('<counted alias>[*].property') is that property of the member being looked
	// at (definition-structure-policy-rule.md, "The current function", field count usage).
	for i := len(ec.frames) - 1; i >= 0; i-- {
		f := ec.frames[i]
		if !f.hasPath || !fnCountNameKnown([]string{f.name}, name) {
			continue
		}
		ref, err := resolveFieldName(ec.q.p.aliases, name)
		if err != nil || ref.alias == nil {
			continue
		}
		path, ok, err := ec.fieldPath(ref)
		if err != nil || !ok || !path.HasPrefix(f.path) {
			continue
		}
		rest := path.TrimPrefix(f.path)
		r := rest.Resolve(f.element)
		if rest.HasWildcard() {
			out := make([]any, 0, len(r.Values))
			for j, v := range r.Values {
				if r.Exists[j] {
					out = append(out, v)
				}
			}
			return out, true
		}
		if len(r.Values) == 0 || !r.Exists[0] {
			return nil, true
		}
		return r.Values[0], true
	}
	return nil, false
}

func (ec *evalCtx) Now() time.Time {
	if ec.in == nil || ec.in.Now.IsZero() {
		return time.Now().UTC()
	}
	return ec.in.Now
}

func (ec *evalCtx) ResourceGroup() map[string]any {
	if ec.in != nil && ec.in.ResourceGroup != nil {
		return ec.in.ResourceGroup
	}
	sub, rg := idScopes(ec.resourceID())
	if rg == "" {
		return map[string]any{}
	}
	return map[string]any{"id": "/subscriptions/" + sub + "/resourceGroups/" + rg, "name": rg,
		"type": "Microsoft.Resources/resourceGroups", "location": ec.resourceString("location"), "tags": map[string]any{}, "properties": map[string]any{}}
}

func (ec *evalCtx) Subscription() map[string]any {
	if ec.in != nil && ec.in.Subscription != nil {
		return ec.in.Subscription
	}
	sub, _ := idScopes(ec.resourceID())
	if sub == "" {
		return map[string]any{}
	}
	return map[string]any{"id": "/subscriptions/" + sub, "subscriptionId": sub, "displayName": sub, "tenantId": ""}
}

func (ec *evalCtx) Policy() map[string]any {
	if ec.in != nil && ec.in.Policy != nil {
		return ec.in.Policy
	}
	return map[string]any{"assignmentId": "", "definitionId": ec.q.p.def.ID, "setDefinitionId": "", "definitionReferenceId": ""}
}

func (ec *evalCtx) RequestContext() map[string]any {
	if ec.in != nil && ec.in.RequestContext != nil {
		return ec.in.RequestContext
	}
	return map[string]any{"apiVersion": "2026-11-01"}
}

func (ec *evalCtx) resourceID() string { return ec.resourceString("id") }

func (ec *evalCtx) resourceString(key string) string {
	if ec.in == nil {
		return ""
	}
	s, _ := lookupKey(ec.in.Resource, key).(string)
	return s
}

// idScopes finds the subscription and resource group names in an ARM ID.
func idScopes(id string) (sub, rg string) {
	parts := strings.Split(strings.Trim(id, "/"), "/")
	for i := 0; i+1 < len(parts); i += 2 {
		switch {
		case strings.EqualFold(parts[i], "subscriptions") && sub == "":
			sub = parts[i+1]
		case strings.EqualFold(parts[i], "resourceGroups") && rg == "":
			rg = parts[i+1]
		case strings.EqualFold(parts[i], "providers"):
			return sub, rg
		}
	}
	return sub, rg
}

// fullNameOf is Azure's fullName: the names of a resource and its parents within its
// provider, joined by '/' ("gallery/image/1.0.0"); for other resources, the name.
func fullNameOf(res map[string]any) string {
	id, _ := lookupKey(res, "id").(string)
	i := strings.LastIndex(strings.ToLower(id), "/providers/")
	if i < 0 {
		name, _ := lookupKey(res, "name").(string)
		return name
	}
	parts := strings.Split(strings.Trim(id[i+len("/providers/"):], "/"), "/")
	var names []string
	for j := 2; j < len(parts); j += 2 {
		names = append(names, parts[j])
	}
	return strings.Join(names, "/")
}

// fieldPath finds the path of a field for the resource under evaluation; ok is false when
// an alias does not apply to the resource's type.
func (ec *evalCtx) fieldPath(ref *fieldRef) (FieldPath, bool, error) {
	if ref.dynamic != nil {
		v, err := ref.dynamic.Eval(ec)
		if err != nil {
			return FieldPath{}, false, err
		}
		s, ok := v.(string)
		if !ok {
			return FieldPath{}, false, errorf(CodeEval, "", "field expression %s gave %s, not a field name", ref.name, TypeName(v))
		}
		r, err := resolveFieldName(ec.q.p.aliases, s)
		if err != nil {
			return FieldPath{}, false, err
		}
		return ec.fieldPath(r)
	}
	if ref.builtin {
		return ref.path, true, nil
	}
	typ, _ := lookupKey(ec.root, "type").(string)
	p, ok := ref.alias.PathFor(typ, ec.root)
	return p, ok, nil
}

// resolveField returns what a field selects on the resource under evaluation: one value,
// or for a [*] path every selected value with all set, so that the condition must hold for
// each (and holds for none selected).
func (ec *evalCtx) resolveField(ref *fieldRef) ([]any, []bool, bool, error) {
	if ref.dynamic != nil {
		v, err := ref.dynamic.Eval(ec)
		if err != nil {
			return nil, nil, false, err
		}
		s, ok := v.(string)
		if !ok {
			return nil, nil, false, errorf(CodeEval, "", "field expression %s gave %s, not a field name", ref.name, TypeName(v))
		}
		r, err := resolveFieldName(ec.q.p.aliases, s)
		if err != nil {
			return nil, nil, false, err
		}
		return ec.resolveField(r)
	}
	if ref.fullName {
		return []any{fullNameOf(ec.root)}, []bool{true}, false, nil
	}
	path, ok, err := ec.fieldPath(ref)
	if err != nil {
		return nil, nil, false, err
	}
	if !ok {
		// The alias does not apply to this type: the field is absent.
		if ref.alias != nil && strings.Contains(ref.alias.Name, "[*]") {
			return nil, nil, true, nil
		}
		return []any{nil}, []bool{false}, false, nil
	}
	return ec.resolvePath(path, ref)
}

// resolvePath resolves a path, on the member a count is looking at when the path lies
// inside the counted array, else on the resource.
func (ec *evalCtx) resolvePath(path FieldPath, ref *fieldRef) ([]any, []bool, bool, error) {
	for i := len(ec.frames) - 1; i >= 0; i-- {
		f := ec.frames[i]
		if f.hasPath && path.HasPrefix(f.path) {
			r := path.TrimPrefix(f.path).Resolve(f.element)
			return ec.collect(r, true)
		}
	}
	r := path.Resolve(ec.root)
	return ec.collect(r, path.HasWildcard())
}

func (ec *evalCtx) collect(r PathResult, all bool) ([]any, []bool, bool, error) {
	if all {
		return r.Values, r.Exists, true, nil
	}
	if len(r.Values) == 0 {
		return []any{nil}, []bool{false}, false, nil
	}
	return r.Values[:1], r.Exists[:1], false, nil
}

// ParametersOf lists the names of the parameters a definition declares, sorted, for tools.
func ParametersOf(d *Definition) []string {
	names := d.Parameters.Names()
	sort.Strings(names)
	return names
}

// ParameterValue is the value of the named parameter (any case) as this assignment
// resolved it: the assignment's own or the definition's default.
func (q *Prepared) ParameterValue(name string) (any, bool) {
	v, ok := q.params[strings.ToLower(name)]
	return v, ok
}
