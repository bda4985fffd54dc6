package policy

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/gildhq/gild/spelling"
)

// condition is a compiled policy condition: a logical operator over conditions, or a leaf
// comparing a field, a value or a count with a target.
type condition interface {
	eval(ec *evalCtx) (bool, error)
}

type allOf struct {
	loc   string
	items []condition
}

type anyOf struct {
	loc   string
	items []condition
}

type notCond struct {
	loc   string
	inner condition
}

// leaf is "<operand> <operator> <target>".
type leaf struct {
	loc    string
	lhs    operand
	op     Operator
	target Expression
}

// operand is the left-hand side of a leaf.
type operand interface {
	// values returns what the operand selects: one value, or (for a [*] field) every
	// selected value, each with whether it exists; all means "true only if true for all".
	values(ec *evalCtx) (vals []any, exists []bool, all bool, err error)
	describe() string
	isLocation() bool
}

// Limits Azure sets on count.
const (
	maxValueCounts         = 10
	maxFieldCountsPerAlias = 5
	// maxValueCountIterations is how often a value count may evaluate its where, nested
	// value counts counting their parents' iterations too.
	maxValueCountIterations = 100
)

// condCompiler compiles one rule's conditions, checking names as it goes and collecting
// every error instead of stopping at the first.
type condCompiler struct {
	aliases     *AliasTable
	params      Parameters
	errs        Errors
	valueCounts int
	fieldCounts map[string]int
	countNames  []string // enclosing counts, innermost last
	// countIterations are the known iteration counts of the enclosing value counts,
	// multiplied out (1 for a field count or an array known only at evaluation).
	countIterations []int
}

// iterations is how many times the innermost enclosing count runs, as far as is known.
func (c *condCompiler) iterations() int {
	if len(c.countIterations) == 0 {
		return 1
	}
	return c.countIterations[len(c.countIterations)-1]
}

func (c *condCompiler) fail(code, loc, format string, args ...any) {
	c.errs = append(c.errs, errorf(code, loc, format, args...))
}

func (c *condCompiler) scope(loc string) CompileScope {
	s := CompileScope{Location: loc, CountNames: append([]string(nil), c.countNames...)}
	if c.params != nil {
		ps := c.params
		s.Parameters = func(name string) bool { _, ok := ps.Lookup(name); return ok }
	} else {
		s.Parameters = func(string) bool { return false }
	}
	return s
}

func (c *condCompiler) expr(v any, loc string) Expression {
	e, err := CompileValue(v, c.scope(loc))
	if err != nil {
		c.addErr(err, loc)
		return nil
	}
	return e
}

// addErr records an error from another part of the package, keeping its code.
func (c *condCompiler) addErr(err error, loc string) {
	switch e := err.(type) {
	case *Error:
		if e.Location == "" {
			e.Location = loc
		}
		c.errs = append(c.errs, e)
	case Errors:
		c.errs = append(c.errs, e...)
	default:
		c.fail(CodeInvalid, loc, "%v", err)
	}
}

var logicalKeys = []string{"allOf", "anyOf", "not"}

// compile compiles the condition at loc.
func (c *condCompiler) compile(v any, loc string) condition {
	m, ok := v.(map[string]any)
	if !ok {
		c.fail(CodeInvalid, loc, "a condition is a JSON object, not %s", TypeName(v))
		return nil
	}
	if len(m) == 0 {
		c.fail(CodeInvalid, loc, "a condition cannot be empty")
		return nil
	}
	for _, k := range logicalKeys {
		raw, ok := lookupKeyOK(m, k)
		if !ok {
			continue
		}
		if len(m) != 1 {
			c.fail(CodeInvalid, loc, "%s must stand alone in its object; found also %s", k, strings.Join(otherKeys(m, k), ", "))
			return nil
		}
		sub := loc + "." + k
		switch k {
		case "not":
			inner := c.compile(raw, sub)
			if inner == nil {
				return nil
			}
			return &notCond{loc: loc, inner: inner}
		default:
			arr, ok := raw.([]any)
			if !ok {
				c.fail(CodeInvalid, sub, "%s takes an array of conditions", k)
				return nil
			}
			items := make([]condition, 0, len(arr))
			for i, item := range arr {
				if ci := c.compile(item, fmt.Sprintf("%s[%d]", sub, i)); ci != nil {
					items = append(items, ci)
				}
			}
			if k == "allOf" {
				return &allOf{loc: loc, items: items}
			}
			return &anyOf{loc: loc, items: items}
		}
	}
	return c.compileLeaf(m, loc)
}

func otherKeys(m map[string]any, except string) []string {
	var out []string
	for _, k := range sortedKeys(m) {
		if !strings.EqualFold(k, except) {
			out = append(out, k)
		}
	}
	return out
}

func (c *condCompiler) compileLeaf(m map[string]any, loc string) condition {
	var lhs operand
	var opKey string
	var opVal any
	var unknown []string
	sides := 0
	for _, k := range sortedKeys(m) {
		v := m[k]
		switch strings.ToLower(k) {
		case "field":
			sides++
			lhs = c.compileFieldOperand(v, loc+".field")
		case "value":
			sides++
			if e := c.expr(v, loc+".value"); e != nil {
				lhs = &valueOperand{expr: e, text: describeValue(v)}
			}
		case "count":
			sides++
			lhs = c.compileCount(v, loc+".count")
		default:
			if _, ok := ParseOperator(k); ok {
				if opKey != "" {
					c.fail(CodeInvalid, loc, "a condition has one operator; found %s and %s", opKey, k)
					return nil
				}
				opKey, opVal = k, v
			} else {
				unknown = append(unknown, k)
			}
		}
	}
	for _, k := range unknown {
		hint := ""
		if near := nearestName(k, append(Operators(), "field", "value", "count", "allOf", "anyOf", "not")); near != "" {
			hint = fmt.Sprintf("; did you mean %q?", near)
		}
		c.fail(CodeInvalid, loc+"."+k, "%q is not an operator or a condition key%s", k, hint)
	}
	if sides != 1 {
		if sides == 0 {
			c.fail(CodeInvalid, loc, "a condition needs field, value or count (or allOf, anyOf, not)")
		} else {
			c.fail(CodeInvalid, loc, "a condition has one of field, value and count, not several")
		}
		return nil
	}
	if opKey == "" {
		c.fail(CodeInvalid, loc, "the condition has no operator (such as equals, in or exists)")
		return nil
	}
	op, _ := ParseOperator(opKey)
	target := c.expr(opVal, loc+"."+opKey)
	if lhs == nil || target == nil || len(unknown) > 0 {
		return nil
	}
	if IsConstant(target) {
		if err := op.CheckTarget(ConstantValue(target)); err != nil {
			c.addErr(err, loc+"."+opKey)
			return nil
		}
	} else if name, ok := bareParameter(opVal); ok && op != OpExists {
		// A target that is one parameter has that parameter's type: Azure refuses the
		// definition when the type does not fit the operator (author-policies-for-arrays.md,
		// "Array conditions": equals with an Array parameter fails with "is type 'Array',
		// expected type is 'String'"; in and notIn expect an array).
		if p, declared := c.params.Lookup(name); declared {
			if msg := op.targetProblem(parameterTypeSample(p.Type)); msg != "" {
				c.fail(CodeInvalid, loc+"."+opKey, "parameter %q is of type %s: %s", name, p.Type, msg)
				return nil
			}
		}
	}
	return &leaf{loc: loc, lhs: lhs, op: op, target: target}
}

// countNameRE is what a value count's name may be.
var countNameRE = regexp.MustCompile(`^[A-Za-z0-9]+$`)

// bareParameterRE is a template expression that is one parameters('name') call.
var bareParameterRE = regexp.MustCompile(`(?i)^\[\s*parameters\s*\(\s*'([^']*)'\s*\)\s*\]$`)

// bareParameter returns the parameter name when v is exactly "[parameters('name')]".
func bareParameter(v any) (string, bool) {
	s, ok := v.(string)
	if !ok {
		return "", false
	}
	m := bareParameterRE.FindStringSubmatch(s)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// parameterTypeSample is a value of a parameter type, to check it against an operator.
func parameterTypeSample(typ string) any {
	switch typ {
	case "Array":
		return []any{}
	case "Object":
		return map[string]any{}
	case "Boolean":
		return false
	case "Integer":
		return int64(0)
	case "Float":
		return 0.5
	}
	return "" // String, DateTime
}

// fieldRef is a compiled field reference: a built-in field or an alias, or an expression
// that names one at evaluation time.
type fieldRef struct {
	name     string
	builtin  bool
	fullName bool
	path     FieldPath // for built-ins
	alias    *Alias
	dynamic  Expression
	location bool
}

func (c *condCompiler) compileFieldOperand(v any, loc string) operand {
	f := c.compileFieldRef(v, loc)
	if f == nil {
		return nil
	}
	return &fieldOperand{ref: f}
}

func (c *condCompiler) compileFieldRef(v any, loc string) *fieldRef {
	s, ok := v.(string)
	if !ok || s == "" {
		c.fail(CodeInvalid, loc, "field must name a field or an alias")
		return nil
	}
	if isExpressionString(s) {
		e := c.expr(s, loc)
		if e == nil {
			return nil
		}
		if !IsConstant(e) {
			return &fieldRef{name: s, dynamic: e}
		}
		s, ok = ConstantValue(e).(string)
		if !ok {
			c.fail(CodeInvalid, loc, "field must evaluate to a string")
			return nil
		}
	} else if strings.HasPrefix(s, "[[") {
		s = s[1:]
	}
	f, err := resolveFieldName(c.aliases, s)
	if err != nil {
		c.addErr(err, loc)
		return nil
	}
	return f
}

// resolveFieldName resolves a field name to a built-in field or an alias.
func resolveFieldName(aliases *AliasTable, s string) (*fieldRef, error) {
	if strings.EqualFold(s, "fullName") {
		return &fieldRef{name: s, builtin: true, fullName: true}, nil
	}
	if p, ok := BuiltinField(s); ok {
		return &fieldRef{name: s, builtin: true, path: p, location: strings.EqualFold(s, "location")}, nil
	}
	if a, ok := aliases.Lookup(s); ok {
		return &fieldRef{name: s, alias: a}, nil
	}
	hint := ""
	if near := aliases.Suggest(s); near != "" {
		hint = fmt.Sprintf("; did you mean %q?", near)
	}
	return nil, errorf(CodeUnknownAlias, "", "unknown alias %q%s (load a full alias catalogue with --aliases, or check the spelling)", s, hint)
}

// compileCount compiles {"field": "<[*] alias>" | "value": <array>, "name", "where"}.
func (c *condCompiler) compileCount(v any, loc string) operand {
	m, ok := v.(map[string]any)
	if !ok {
		c.fail(CodeInvalid, loc, "count takes an object with field or value, and optionally where")
		return nil
	}
	co := &countOperand{}
	fieldRaw, hasField := lookupKeyOK(m, "field")
	valueRaw, hasValue := lookupKeyOK(m, "value")
	for _, k := range sortedKeys(m) {
		switch strings.ToLower(k) {
		case "field", "value", "where", "name":
		default:
			c.fail(CodeInvalid, loc+"."+k, "count takes field or value, name and where; not %q", k)
		}
	}
	switch {
	case hasField == hasValue:
		c.fail(CodeInvalid, loc, "count takes exactly one of field and value")
		return nil
	case hasField:
		s, _ := fieldRaw.(string)
		if !strings.Contains(s, "[*]") {
			c.fail(CodeInvalid, loc+".field", "a field count needs a [*] alias, not %q", s)
			return nil
		}
		if lookupKey(m, "name") != nil {
			c.fail(CodeInvalid, loc+".name", "name is for value counts; a field count is named by its alias")
		}
		co.field = c.compileFieldRef(fieldRaw, loc+".field")
		if co.field == nil {
			return nil
		}
		key := strings.ToLower(s)
		if c.fieldCounts == nil {
			c.fieldCounts = map[string]int{}
		}
		c.fieldCounts[key]++
		if c.fieldCounts[key] > maxFieldCountsPerAlias {
			c.fail(CodeInvalid, loc, "at most %d field counts may use one array alias; %q is counted %d times", maxFieldCountsPerAlias, s, c.fieldCounts[key])
		}
		co.name = s
	default:
		c.valueCounts++
		if c.valueCounts == maxValueCounts+1 {
			c.fail(CodeInvalid, loc, "a rule may hold at most %d value counts", maxValueCounts)
		}
		co.value = c.expr(valueRaw, loc+".value")
		// definition-structure-policy-rule.md, "Value count": count.name is composed of
		// English letters and digits, and is optional only when the count is not inside
		// another count.
		if nm, ok := lookupKeyOK(m, "name"); ok {
			s, isStr := nm.(string)
			if !isStr || !countNameRE.MatchString(s) {
				c.fail(CodeInvalid, loc+".name", "name must be English letters and digits, not %s", describeValue(nm))
			}
			co.name = s
		} else if len(c.countNames) > 0 {
			c.fail(CodeInvalid, loc+".name", "a value count inside another count needs a name")
		}
	}
	iterations := c.iterations()
	if co.value != nil && IsConstant(co.value) {
		// definition-structure-policy-rule.md, "Policy rule limits": a value count
		// iterates at most 100 times, nested counts including their parents' iterations.
		if arr, ok := ConstantValue(co.value).([]any); ok {
			iterations *= len(arr)
			if iterations > maxValueCountIterations {
				c.fail(CodeInvalid, loc+".value", "a value count may iterate at most %d times (nested counts multiply); this one iterates %d times", maxValueCountIterations, iterations)
			}
		}
	}
	if where, ok := lookupKeyOK(m, "where"); ok {
		c.countNames = append(c.countNames, co.name)
		c.countIterations = append(c.countIterations, iterations)
		co.where = c.compile(where, loc+".where")
		c.countNames = c.countNames[:len(c.countNames)-1]
		c.countIterations = c.countIterations[:len(c.countIterations)-1]
		if co.where == nil {
			return nil
		}
	}
	co.text = "count of " + co.name
	return co
}

// fieldOperand is "field": a built-in field or alias.
type fieldOperand struct{ ref *fieldRef }

func (f *fieldOperand) describe() string { return f.ref.name }
func (f *fieldOperand) isLocation() bool { return f.ref.location }

func (f *fieldOperand) values(ec *evalCtx) ([]any, []bool, bool, error) {
	return ec.resolveField(f.ref)
}

// valueOperand is "value": any expression.
type valueOperand struct {
	expr Expression
	text string
}

func (v *valueOperand) describe() string { return v.text }
func (v *valueOperand) isLocation() bool { return false }

func (v *valueOperand) values(ec *evalCtx) ([]any, []bool, bool, error) {
	val, err := v.expr.Eval(ec)
	if err != nil {
		return nil, nil, false, err
	}
	// A value always has a value, null included, so that null compares equal to "" as
	// ValuesEqual says: field() of a missing property is "" (author-policies-for-arrays.md,
	// "Referencing array fields"), and Azure's built-in "Inherit a tag from the resource
	// group" relies on [resourceGroup().tags[name]] notEquals "" being false when the
	// group lacks the tag.
	return []any{val}, []bool{true}, false, nil
}

// countOperand is "count": how many array members (satisfy where).
type countOperand struct {
	field *fieldRef
	value Expression
	name  string
	where condition
	text  string
}

func (c *countOperand) describe() string { return c.text }
func (c *countOperand) isLocation() bool { return false }

func (c *countOperand) values(ec *evalCtx) ([]any, []bool, bool, error) {
	var members []any
	var frame countFrame
	if c.field != nil {
		path, ok, err := ec.fieldPath(c.field)
		if err != nil {
			return nil, nil, false, err
		}
		if ok {
			vals, exists, _, err := ec.resolvePath(path, c.field)
			if err != nil {
				return nil, nil, false, err
			}
			for i, v := range vals {
				if exists[i] {
					members = append(members, v)
				} else {
					// A member without the property still counts as a member.
					members = append(members, nil)
				}
			}
			frame.path, frame.hasPath = path, true
		}
	} else {
		v, err := c.value.Eval(ec)
		if err != nil {
			return nil, nil, false, err
		}
		arr, ok := v.([]any)
		if !ok {
			return nil, nil, false, errorf(CodeEval, "", "count value must be an array, not %s", TypeName(v))
		}
		members = arr
	}
	frame.name = c.name
	n := int64(0)
	if c.where == nil {
		n = int64(len(members))
	} else {
		for _, m := range members {
			frame.element = m
			ec.frames = append(ec.frames, frame)
			ok, err := c.where.eval(ec)
			ec.frames = ec.frames[:len(ec.frames)-1]
			if err != nil {
				return nil, nil, false, err
			}
			if ok {
				n++
			}
		}
	}
	return []any{n}, []bool{true}, false, nil
}

// countFrame is a count being evaluated: the member under consideration.
type countFrame struct {
	name    string
	path    FieldPath // the counted [*] path, for field counts
	hasPath bool
	element any
}

func (a *allOf) eval(ec *evalCtx) (bool, error) {
	for _, c := range a.items {
		ok, err := c.eval(ec)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func (a *anyOf) eval(ec *evalCtx) (bool, error) {
	for _, c := range a.items {
		ok, err := c.eval(ec)
		if err != nil {
			return false, err
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

func (n *notCond) eval(ec *evalCtx) (bool, error) {
	ec.negated = !ec.negated
	ok, err := n.inner.eval(ec)
	ec.negated = !ec.negated
	return !ok && err == nil, err
}

func (l *leaf) eval(ec *evalCtx) (bool, error) {
	vals, exists, all, err := l.lhs.values(ec)
	if err != nil {
		return false, wrapEval(err, l.loc)
	}
	target, err := l.target.Eval(ec)
	if err != nil {
		return false, wrapEval(err, l.loc)
	}
	result := true
	var actual any
	for i, v := range vals {
		ok, err := l.op.Apply(v, exists[i], target, l.lhs.isLocation())
		if err != nil {
			return false, wrapEval(err, l.loc)
		}
		if !ok {
			result, actual = false, v
			break
		}
		actual = v
	}
	if !all && len(vals) == 0 {
		// A plain operand always has one value; this guards a future operand that has none.
		result = false
	}
	if ec.explain != nil && result != ec.negated {
		// This leaf decided the outcome the way the rule matched: it is a reason.
		if all {
			actual = vals
		}
		*ec.explain = append(*ec.explain, Reason{Location: l.loc, Subject: l.lhs.describe(), Operator: l.op.String(),
			Negated: ec.negated, Expected: target, Actual: actual, Phrase: l.op.ReasonFor(target, ec.negated)})
	}
	return result, nil
}

func wrapEval(err error, loc string) error {
	if e, ok := err.(*Error); ok {
		if e.Location == "" {
			return &Error{Code: e.Code, Location: loc, Message: e.Message}
		}
		return e
	}
	return errorf(CodeEval, loc, "%v", err)
}

// nearestName is the candidate closest to s by edit distance, when close enough to be a
// plausible misspelling.
func nearestName(s string, candidates []string) string {
	best, bestD := "", 3+len(s)/10
	ls := strings.ToLower(s)
	sort.Strings(candidates)
	for _, c := range candidates {
		if d := spelling.Distance(ls, strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}
