package policy

import (
	"fmt"
	"strings"
)

// effectDetails is a compiled then.details. Which parts are present depends on the
// effects the rule may resolve to: an array is append's, operations are modify's, a type
// is auditIfNotExists's or deployIfNotExists's.
type effectDetails struct {
	appends []appendOp

	operations        []modifyOp
	conflictEffect    string
	roleDefinitionIDs []string

	existence *existence

	deployment Expression // deployIfNotExists: the deployment with its parameter values compiled

	defaultState string // manual: Unknown, Compliant or NonCompliant
	raw          any
}

type appendOp struct {
	field *fieldRef
	value Expression
}

type modifyOp struct {
	operation string // addOrReplace, add, remove
	field     *fieldRef
	value     Expression
	condition Expression
}

type existence struct {
	typ               Expression
	name              Expression
	resourceGroupName Expression
	scope             string // resourceGroup or subscription
	condition         condition
	evaluationDelay   string
}

func (c *condCompiler) compileDetails(v any, loc string) *effectDetails {
	d := &effectDetails{raw: v}
	switch x := v.(type) {
	case []any:
		for i, item := range x {
			iloc := fmt.Sprintf("%s[%d]", loc, i)
			m, ok := item.(map[string]any)
			if !ok {
				c.fail(CodeInvalid, iloc, "an append detail is {\"field\": ..., \"value\": ...}")
				continue
			}
			f := c.compileFieldRef(lookupKey(m, "field"), iloc+".field")
			val := c.expr(lookupKey(m, "value"), iloc+".value")
			if f != nil && val != nil {
				d.appends = append(d.appends, appendOp{field: f, value: val})
			}
		}
	case map[string]any:
		c.compileDetailsObject(d, x, loc)
	default:
		c.fail(CodeInvalid, loc, "details must be an object (or an array, for append)")
	}
	return d
}

func (c *condCompiler) compileDetailsObject(d *effectDetails, m map[string]any, loc string) {
	if ids, ok := lookupKey(m, "roleDefinitionIds").([]any); ok {
		for _, id := range ids {
			if s, ok := id.(string); ok {
				d.roleDefinitionIDs = append(d.roleDefinitionIDs, s)
			}
		}
	}
	if ops, ok := lookupKeyOK(m, "operations"); ok {
		arr, isArr := ops.([]any)
		if !isArr {
			c.fail(CodeInvalid, loc+".operations", "operations must be an array")
		}
		for i, item := range arr {
			iloc := fmt.Sprintf("%s.operations[%d]", loc, i)
			om, ok := item.(map[string]any)
			if !ok {
				c.fail(CodeInvalid, iloc, "an operation is an object with operation, field and value")
				continue
			}
			op := modifyOp{operation: stringKey(om, "operation")}
			switch strings.ToLower(op.operation) {
			case "addorreplace":
				op.operation = "addOrReplace"
			case "add":
				op.operation = "add"
			case "remove":
				op.operation = "remove"
			default:
				c.fail(CodeInvalid, iloc+".operation", "operation %q is not addOrReplace, add or remove", op.operation)
			}
			op.field = c.compileFieldRef(lookupKey(om, "field"), iloc+".field")
			if v, ok := lookupKeyOK(om, "value"); ok {
				op.value = c.expr(v, iloc+".value")
			} else if op.operation != "remove" {
				c.fail(CodeInvalid, iloc+".value", "%s needs a value", op.operation)
			}
			if cond, ok := lookupKeyOK(om, "condition"); ok {
				op.condition = c.expr(cond, iloc+".condition")
			}
			d.operations = append(d.operations, op)
		}
		if len(d.roleDefinitionIDs) == 0 {
			c.fail(CodeInvalid, loc+".roleDefinitionIds", "modify needs roleDefinitionIds, the roles its remediation acts with")
		}
		if ce := stringKey(m, "conflictEffect"); ce != "" {
			if e := canonicalEffect(ce); e != "audit" && e != "deny" && e != "disabled" {
				c.fail(CodeInvalid, loc+".conflictEffect", "conflictEffect is audit, deny or disabled, not %q", ce)
			}
			d.conflictEffect = strings.ToLower(ce)
		}
	}
	if ds, ok := lookupKeyOK(m, "defaultState"); ok {
		// effect-manual.md: defaultState is Unknown (the default), Compliant or
		// Non-compliant.
		s, _ := ds.(string)
		switch strings.ToLower(s) {
		case "unknown":
			d.defaultState = "Unknown"
		case "compliant":
			d.defaultState = "Compliant"
		case "non-compliant", "noncompliant":
			d.defaultState = "NonCompliant"
		default:
			c.fail(CodeInvalid, loc+".defaultState", "defaultState is Unknown, Compliant or Non-compliant, not %s", describeValue(ds))
		}
	}
	if typ, ok := lookupKeyOK(m, "type"); ok {
		ex := &existence{scope: "resourcegroup"}
		ex.typ = c.expr(typ, loc+".type")
		if n, ok := lookupKeyOK(m, "name"); ok {
			ex.name = c.expr(n, loc+".name")
		}
		if n, ok := lookupKeyOK(m, "resourceGroupName"); ok {
			ex.resourceGroupName = c.expr(n, loc+".resourceGroupName")
		}
		if s := stringKey(m, "existenceScope"); s != "" {
			switch strings.ToLower(s) {
			case "resourcegroup", "subscription":
				ex.scope = strings.ToLower(s)
			default:
				c.fail(CodeInvalid, loc+".existenceScope", "existenceScope is resourceGroup or subscription, not %q", s)
			}
		}
		ex.evaluationDelay = stringKey(m, "evaluationDelay")
		if cond, ok := lookupKeyOK(m, "existenceCondition"); ok {
			ex.condition = c.compile(cond, loc+".existenceCondition")
		}
		d.existence = ex
		if dep, ok := lookupKeyOK(m, "deployment"); ok {
			d.deployment = c.compileDeployment(dep, loc+".deployment")
		}
	}
}

// compileDeployment compiles the parameter values a deployIfNotExists hands its template;
// the template itself is ARM's to evaluate, with its own parameters, so its expressions
// are left as they are.
func (c *condCompiler) compileDeployment(v any, loc string) Expression {
	dep, ok := v.(map[string]any)
	if !ok {
		c.fail(CodeInvalid, loc, "deployment must be an object")
		return nil
	}
	props, _ := lookupKey(dep, "properties").(map[string]any)
	if props == nil {
		c.fail(CodeInvalid, loc+".properties", "deployment needs properties with a template")
		return nil
	}
	if _, ok := lookupKey(props, "template").(map[string]any); !ok {
		c.fail(CodeInvalid, loc+".properties.template", "deployment properties need a template object")
	}
	params, _ := lookupKey(props, "parameters").(map[string]any)
	compiled := map[string]Expression{}
	for _, k := range sortedKeys(params) {
		w, ok := params[k].(map[string]any)
		if !ok {
			c.fail(CodeInvalid, loc+".properties.parameters."+k, "a deployment parameter is {\"value\": ...}")
			continue
		}
		if e := c.expr(lookupKey(w, "value"), loc+".properties.parameters."+k+".value"); e != nil {
			compiled[k] = e
		}
	}
	return &deploymentExpr{raw: dep, params: compiled}
}

// deploymentExpr evaluates to the deployment with its parameter values filled in.
type deploymentExpr struct {
	raw    map[string]any
	params map[string]Expression
}

func (d *deploymentExpr) Eval(env Env) (any, error) {
	values := map[string]any{}
	for k, e := range d.params {
		v, err := e.Eval(env)
		if err != nil {
			return nil, fmt.Errorf("deployment parameter %s: %w", k, err)
		}
		values[k] = map[string]any{"value": v}
	}
	out := map[string]any{}
	for k, v := range d.raw {
		out[k] = v
	}
	props := map[string]any{}
	for k, v := range lookupKey(d.raw, "properties").(map[string]any) {
		props[k] = v
	}
	props["parameters"] = values
	out["properties"] = props
	return out, nil
}

// ExistenceCheck is what auditIfNotExists and deployIfNotExists look for: related
// resources of Type (and Name, when given) in the resource group (or subscription) of the
// evaluated resource.
type ExistenceCheck struct {
	Type              string
	Name              string // may be empty: any name
	ResourceGroupName string // the resource group to look in, when the rule names one
	Scope             string // "resourcegroup" or "subscription"
	EvaluationDelay   string
}

// Existence evaluates the existence check's type and names for a resource. It returns nil
// when the policy has none.
func (q *Prepared) Existence(in *Input) (*ExistenceCheck, error) {
	if q.p.details == nil || q.p.details.existence == nil {
		return nil, nil
	}
	ex := q.p.details.existence
	ec := q.newCtx(in, in.Resource)
	str := func(e Expression, what string) (string, error) {
		if e == nil {
			return "", nil
		}
		v, err := e.Eval(ec)
		if err != nil {
			return "", wrapEval(err, "policyRule.then.details."+what)
		}
		s, ok := v.(string)
		if !ok && v != nil {
			return "", errorf(CodeEval, "policyRule.then.details."+what, "%s must be a string, not %s", what, TypeName(v))
		}
		return s, nil
	}
	out := &ExistenceCheck{Scope: ex.scope, EvaluationDelay: ex.evaluationDelay}
	var err error
	if out.Type, err = str(ex.typ, "type"); err != nil {
		return nil, err
	}
	if out.Name, err = str(ex.name, "name"); err != nil {
		return nil, err
	}
	if out.ResourceGroupName, err = str(ex.resourceGroupName, "resourceGroupName"); err != nil {
		return nil, err
	}
	return out, nil
}

// ExistenceMet reports whether a related resource satisfies the existence condition (any
// related resource does, when there is none). Inside the condition, fields are the related
// resource's; the field() function still reads the evaluated resource, as in Azure.
func (q *Prepared) ExistenceMet(in *Input, related map[string]any) (bool, []Reason, error) {
	if q.p.details == nil || q.p.details.existence == nil || q.p.details.existence.condition == nil {
		return true, nil, nil
	}
	cond := q.p.details.existence.condition
	ec := q.newCtx(in, related)
	ok, err := cond.eval(ec)
	if err != nil {
		return false, nil, err
	}
	if ok {
		return true, nil, nil
	}
	// Explain why it was not met: the conditions that failed.
	var reasons []Reason
	ec = q.newCtx(in, related)
	ec.explain = &reasons
	ec.negated = true
	_, _ = cond.eval(ec)
	return false, reasons, nil
}

// Operation is one change modify or append makes to a resource, with its value evaluated.
type Operation struct {
	Operation string // addOrReplace, add, remove (append's are add)
	Field     string
	Value     any
}

// Operations evaluates the changes the prepared effect makes to a resource: modify's
// operations (those whose condition holds) or append's fields. Others have none.
func (q *Prepared) Operations(in *Input) ([]Operation, error) {
	d := q.p.details
	if d == nil {
		return nil, nil
	}
	ec := q.newCtx(in, in.Resource)
	var out []Operation
	switch q.effect {
	case "modify":
		for i, op := range d.operations {
			loc := fmt.Sprintf("policyRule.then.details.operations[%d]", i)
			if op.condition != nil {
				v, err := op.condition.Eval(ec)
				if err != nil {
					return nil, wrapEval(err, loc+".condition")
				}
				if b, ok := v.(bool); ok && !b {
					continue
				}
			}
			o := Operation{Operation: op.operation, Field: op.field.name}
			if op.value != nil {
				v, err := op.value.Eval(ec)
				if err != nil {
					return nil, wrapEval(err, loc+".value")
				}
				o.Value = v
			}
			out = append(out, o)
		}
	case "append":
		for i, a := range d.appends {
			v, err := a.value.Eval(ec)
			if err != nil {
				return nil, wrapEval(err, fmt.Sprintf("policyRule.then.details[%d].value", i))
			}
			out = append(out, Operation{Operation: "add", Field: a.field.name, Value: v})
		}
	}
	return out, nil
}

// ConflictEffect is what modify falls back to when its change cannot be made: the rule's
// conflictEffect, or "deny" when it gives none (effect-modify.md, "conflictEffect":
// "Default value is deny").
func (q *Prepared) ConflictEffect() string {
	if q.p.details == nil || q.p.details.conflictEffect == "" {
		return "deny"
	}
	return q.p.details.conflictEffect
}

// ManualDefaultState is the compliance state the manual effect gives a resource until
// someone attests otherwise: "Unknown" (when the rule gives none), "Compliant" or
// "NonCompliant" (effect-manual.md, "defaultState").
func (q *Prepared) ManualDefaultState() string {
	if q.p.details == nil || q.p.details.defaultState == "" {
		return "Unknown"
	}
	return q.p.details.defaultState
}

// Deployment evaluates a deployIfNotExists deployment for a resource: the template as
// written, with its parameter values filled in. It returns nil when there is none.
func (q *Prepared) Deployment(in *Input) (map[string]any, error) {
	if q.p.details == nil || q.p.details.deployment == nil {
		return nil, nil
	}
	v, err := q.p.details.deployment.Eval(q.newCtx(in, in.Resource))
	if err != nil {
		return nil, wrapEval(err, "policyRule.then.details.deployment")
	}
	m, _ := v.(map[string]any)
	return m, nil
}
