package policy

// This file is the template expression language: the ARM-template-style expressions that
// Azure Policy evaluates inside strings written as "[...]". An expression is parsed once
// into an immutable tree, checked against the compile scope (function names and arities,
// declared parameters, count names), folded where it depends on nothing but constants, and
// then evaluated many times against an Env. The functions themselves live in expr_funcs.go.

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Expression is a compiled value: a constant or a template expression. It is immutable and
// safe for concurrent use. The values Eval returns may be shared with the expression (a
// constant's value, a parameter's value) and must be treated as read-only.
type Expression interface {
	Eval(env Env) (any, error)
}

// Azure's authoring limits for policy functions (definition-structure-policy-rule.md,
// "Policy rule limits"). Keeping them also bounds the parser's recursion and the work that
// constant folding can do at compile time.
const (
	exprMaxSource = 81920 // characters of one "[...]" string
	exprMaxDepth  = 64    // nested function calls
	exprMaxArgs   = 128   // arguments of one function call
)

// CompileExpression compiles one string: "[...]" (the whole string) is an expression; a
// string that starts with "[[" and ends with "]" is the literal string without its first
// '['; anything else is a literal. Errors are *Error with CodeParse, CodeUnknownFunction,
// CodeUnknownParameter or CodeInvalid and the scope's Location.
func CompileExpression(s string, scope CompileScope) (Expression, error) {
	if !exprIsTemplate(s) {
		return exprLiteral(s), nil
	}
	if len(s) > exprMaxSource {
		return nil, errorf(CodeInvalid, scope.Location,
			"expression is %d characters long; Azure Policy allows at most %d", len(s), exprMaxSource)
	}
	p := &exprParser{src: s, end: len(s) - 1, pos: 1, scope: scope}
	root, err := p.parse()
	if err != nil {
		return nil, err
	}
	if c, ok := root.(*exprConst); ok {
		return c, nil
	}
	return &exprCompiled{root: root, src: s, loc: scope.Location, params: exprSortedNames(p.params)}, nil
}

// CompileValue compiles a JSON value in the value model: every string inside arrays and
// objects may be an expression; a value with no expressions compiles to a constant. Object
// keys are never expressions. All errors found are returned together (Errors), each with
// the location of the string it concerns.
func CompileValue(v any, scope CompileScope) (Expression, error) {
	var errs Errors
	e := exprCompileValue(v, scope, &errs)
	if len(errs) > 0 {
		return nil, errs
	}
	return e, nil
}

// IsConstant reports whether e needs no environment: its value is fixed at compile time.
func IsConstant(e Expression) bool {
	_, ok := e.(*exprConst)
	return ok
}

// ConstantValue returns the value of a constant expression, or nil when e is not constant.
func ConstantValue(e Expression) any {
	if c, ok := e.(*exprConst); ok {
		return c.v
	}
	return nil
}

// ReferencedParameters lists, sorted and without duplicates, the parameter names that e
// reads through parameters('literal name'). A parameters() call whose name is computed at
// evaluation time cannot be listed.
func ReferencedParameters(e Expression) []string {
	switch t := e.(type) {
	case *exprCompiled:
		return append([]string(nil), t.params...)
	case *exprArrayValue:
		return append([]string(nil), t.params...)
	case *exprObjectValue:
		return append([]string(nil), t.params...)
	}
	return nil
}

// exprIsTemplate tells an expression from a literal as ARM does: it starts with '[' and ends
// with ']', and does not start with the "[[" escape.
func exprIsTemplate(s string) bool {
	return len(s) >= 2 && s[0] == '[' && s[len(s)-1] == ']' && s[1] != '['
}

// exprLiteral compiles a string that is not an expression. ARM removes the escape bracket
// only where the string would otherwise have been an expression ("[[x]" is "[x]"); a string
// that does not end with ']' is taken as written (template-expressions.md, "Escape characters").
func exprLiteral(s string) *exprConst {
	if len(s) >= 3 && s[0] == '[' && s[1] == '[' && s[len(s)-1] == ']' {
		return &exprConst{v: s[1:]}
	}
	return &exprConst{v: s}
}

func exprCompileValue(v any, scope CompileScope, errs *Errors) Expression {
	switch t := v.(type) {
	case string:
		e, err := CompileExpression(t, scope)
		if err != nil {
			*errs = append(*errs, exprAsError(err, scope.Location))
			return &exprConst{v: nil}
		}
		return e
	case []any:
		elems := make([]Expression, len(t))
		constant := true
		for i, x := range t {
			sub := scope
			sub.Location = scope.Location + "[" + strconv.Itoa(i) + "]"
			elems[i] = exprCompileValue(x, sub, errs)
			constant = constant && IsConstant(elems[i])
		}
		if constant {
			out := make([]any, len(elems))
			for i, e := range elems {
				out[i] = ConstantValue(e)
			}
			return &exprConst{v: out}
		}
		a := &exprArrayValue{elems: elems}
		a.params = exprMergeParams(elems)
		return a
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys) // deterministic error order
		vals := make([]Expression, len(keys))
		constant := true
		for i, k := range keys {
			sub := scope
			sub.Location = exprJoinLocation(scope.Location, k)
			vals[i] = exprCompileValue(t[k], sub, errs)
			constant = constant && IsConstant(vals[i])
		}
		if constant {
			out := make(map[string]any, len(keys))
			for i, k := range keys {
				out[k] = ConstantValue(vals[i])
			}
			return &exprConst{v: out}
		}
		o := &exprObjectValue{keys: keys, vals: vals}
		o.params = exprMergeParams(vals)
		return o
	}
	return &exprConst{v: v}
}

// exprJoinLocation appends an object key to a JSON location, bracketing keys that would not
// read as a path segment.
func exprJoinLocation(loc, key string) string {
	plain := key != ""
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			plain = false
			break
		}
	}
	switch {
	case !plain:
		return loc + "['" + strings.ReplaceAll(key, "'", "''") + "']"
	case loc == "":
		return key
	}
	return loc + "." + key
}

func exprMergeParams(es []Expression) []string {
	var names []string
	for _, e := range es {
		names = append(names, ReferencedParameters(e)...)
	}
	return exprSortedNames(names)
}

func exprSortedNames(names []string) []string {
	if len(names) == 0 {
		return nil
	}
	out := append([]string(nil), names...)
	sort.Strings(out)
	n := 0
	for i, s := range out {
		if i == 0 || s != out[n-1] {
			out[n] = s
			n++
		}
	}
	return out[:n]
}

// exprAsError gives any error the shape the package promises: an *Error with a location.
// An *Error wrapped by the environment keeps its code (an unknown alias stays one).
func exprAsError(err error, loc string) *Error {
	if e, ok := err.(*Error); ok {
		if e.Location == "" && loc != "" {
			c := *e
			c.Location = loc
			return &c
		}
		return e
	}
	code := CodeEval
	var inner *Error
	if errors.As(err, &inner) {
		code = inner.Code
	}
	return &Error{Code: code, Location: loc, Message: err.Error()}
}

// ---- compiled forms ----

// exprNode is one node of a compiled expression tree.
type exprNode interface {
	eval(env Env) (any, error)
	// format writes the node in canonical source form (function names as documented),
	// which tests and the fuzzer use to compare compilations.
	format(b *strings.Builder)
}

// exprConst is a value known at compile time: a literal, or a folded pure call.
type exprConst struct{ v any }

func (c *exprConst) Eval(Env) (any, error)     { return c.v, nil }
func (c *exprConst) eval(Env) (any, error)     { return c.v, nil }
func (c *exprConst) String() string            { var b strings.Builder; c.format(&b); return b.String() }
func (c *exprConst) format(b *strings.Builder) { b.WriteString(fnLiteralText(c.v)) }

// exprCompiled is a template expression with the context its errors need.
type exprCompiled struct {
	root   exprNode
	src    string // the whole "[...]" string, for messages
	loc    string
	params []string
}

func (e *exprCompiled) Eval(env Env) (any, error) {
	v, err := e.root.eval(env)
	if err != nil {
		return nil, e.wrap(err)
	}
	return v, nil
}

// wrap adds where the failure happened; only failures pay for it.
func (e *exprCompiled) wrap(err error) error {
	out := exprAsError(err, e.loc)
	if out == err {
		c := *out
		out = &c
	}
	out.Message += " (in " + exprQuote(e.src) + ")"
	return out
}

func (e *exprCompiled) String() string {
	var b strings.Builder
	b.WriteByte('[')
	e.root.format(&b)
	b.WriteByte(']')
	return b.String()
}

// exprArrayValue and exprObjectValue are JSON containers holding expressions.
type exprArrayValue struct {
	elems  []Expression
	params []string
}

func (a *exprArrayValue) Eval(env Env) (any, error) {
	out := make([]any, len(a.elems))
	for i, e := range a.elems {
		v, err := e.Eval(env)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func (a *exprArrayValue) String() string {
	parts := make([]string, len(a.elems))
	for i, e := range a.elems {
		parts[i] = fmt.Sprint(e)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

type exprObjectValue struct {
	keys   []string
	vals   []Expression
	params []string
}

func (o *exprObjectValue) Eval(env Env) (any, error) {
	out := make(map[string]any, len(o.keys))
	for i, e := range o.vals {
		v, err := e.Eval(env)
		if err != nil {
			return nil, err
		}
		out[o.keys[i]] = v
	}
	return out, nil
}

func (o *exprObjectValue) String() string {
	parts := make([]string, len(o.keys))
	for i, k := range o.keys {
		parts[i] = strconv.Quote(k) + ": " + fmt.Sprint(o.vals[i])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// exprFailed is a pure call on constants that fails: evaluation reports the failure, as
// Azure would at evaluation time, rather than refusing a definition Azure accepts.
type exprFailed struct {
	err  *Error
	node exprNode // the call as written, for format
}

func (f *exprFailed) eval(Env) (any, error)     { return nil, f.err }
func (f *exprFailed) format(b *strings.Builder) { f.node.format(b) }

// exprParam is parameters('name') with a literal name: the hot path of most definitions.
type exprParam struct{ name string }

func (p *exprParam) eval(env Env) (any, error) {
	if v, ok := env.Parameter(p.name); ok {
		return v, nil
	}
	return nil, errorf(CodeEval, "", "parameters: parameter '%s' has no value", p.name)
}

func (p *exprParam) format(b *strings.Builder) {
	b.WriteString("parameters(")
	b.WriteString(fnLiteralText(p.name))
	b.WriteByte(')')
}

// exprField is field('name') with a literal name.
type exprField struct{ name string }

func (f *exprField) eval(env Env) (any, error) { return env.Field(f.name) }

func (f *exprField) format(b *strings.Builder) {
	b.WriteString("field(")
	b.WriteString(fnLiteralText(f.name))
	b.WriteByte(')')
}

// exprCall is a call whose arguments are all evaluated first.
type exprCall struct {
	fn   *fnSpec
	args []exprNode
}

func (c *exprCall) eval(env Env) (any, error) {
	var vals []any
	if len(c.args) > 0 {
		vals = make([]any, len(c.args))
		for i, a := range c.args {
			v, err := a.eval(env)
			if err != nil {
				return nil, err
			}
			vals[i] = v
		}
	}
	v, err := c.fn.eager(env, vals)
	if err != nil || !c.fn.pure {
		return v, err
	}
	// Azure's size limits apply to what functions compute, not to the resource and
	// parameter values that field() and parameters() pass through.
	return v, fnCheckResult(c.fn.name, v)
}

func (c *exprCall) format(b *strings.Builder) { exprFormatCall(b, c.fn.name, c.args) }

// exprLazyCall is a call that decides which arguments to evaluate (if, and, or, coalesce).
type exprLazyCall struct {
	fn   *fnSpec
	args []exprNode
}

func (c *exprLazyCall) eval(env Env) (any, error) { return c.fn.lazy(env, c.args) }
func (c *exprLazyCall) format(b *strings.Builder) { exprFormatCall(b, c.fn.name, c.args) }

func exprFormatCall(b *strings.Builder, name string, args []exprNode) {
	b.WriteString(name)
	b.WriteByte('(')
	for i, a := range args {
		if i > 0 {
			b.WriteString(", ")
		}
		a.format(b)
	}
	b.WriteByte(')')
}

// exprProperty is x.name; exprIndex is x[expr].
type exprProperty struct {
	target exprNode
	name   string
}

func (p *exprProperty) eval(env Env) (any, error) {
	v, err := p.target.eval(env)
	if err != nil {
		return nil, err
	}
	return fnProperty(v, p.name)
}

func (p *exprProperty) format(b *strings.Builder) {
	exprFormatTarget(b, p.target)
	b.WriteByte('.')
	b.WriteString(p.name)
}

type exprIndex struct {
	target, index exprNode
}

func (x *exprIndex) eval(env Env) (any, error) {
	v, err := x.target.eval(env)
	if err != nil {
		return nil, err
	}
	i, err := x.index.eval(env)
	if err != nil {
		return nil, err
	}
	return fnIndex(v, i)
}

func (x *exprIndex) format(b *strings.Builder) {
	exprFormatTarget(b, x.target)
	b.WriteByte('[')
	x.index.format(b)
	b.WriteByte(']')
}

// exprFormatTarget writes the target of '.' or '[': the grammar allows those only after a
// call, so a string or integer constant (a folded failure such as json('""')[0]) is
// written as the json() call that yields it.
func exprFormatTarget(b *strings.Builder, n exprNode) {
	if c, ok := n.(*exprConst); ok {
		switch c.v.(type) {
		case string, int64:
			var j strings.Builder
			fnWriteJSON(&j, c.v)
			b.WriteString("json(" + fnLiteralText(j.String()) + ")")
			return
		}
	}
	n.format(b)
}

// ---- parser ----

// exprParser is a recursive-descent parser over one "[...]" string. Positions are byte
// offsets into the whole string; the columns in messages count characters from the
// opening bracket, as an author counting characters in the JSON value would.
type exprParser struct {
	src    string
	pos    int
	end    int // offset of the closing ']'
	depth  int
	scope  CompileScope
	params []string
}

func (p *exprParser) parse() (exprNode, error) {
	p.skipSpace()
	if p.pos >= p.end {
		return nil, p.errAt(CodeParse, p.pos, "empty expression")
	}
	n, err := p.expr()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos < p.end {
		return nil, p.errAt(CodeParse, p.pos, "unexpected %s after the expression", p.describe(p.pos))
	}
	return n, nil
}

func (p *exprParser) errAt(code string, pos int, format string, args ...any) *Error {
	return p.errHint(code, pos, "", format, args...)
}

// errHint is errAt with a sentence after the position, such as a suggested spelling.
func (p *exprParser) errHint(code string, pos int, hint, format string, args ...any) *Error {
	col := utf8.RuneCountInString(p.src[:pos]) + 1 // columns count characters, not bytes
	msg := fmt.Sprintf("%s at column %d in %s", fmt.Sprintf(format, args...), col, exprQuote(p.src))
	if hint != "" {
		msg += "; " + hint
	}
	return &Error{Code: code, Location: p.scope.Location, Message: msg}
}

// describe names what stands at pos for an error message.
func (p *exprParser) describe(pos int) string {
	if pos >= p.end {
		return "end of expression"
	}
	r := []rune(p.src[pos:p.end])[0]
	return "'" + string(r) + "'"
}

func (p *exprParser) skipSpace() {
	for p.pos < p.end {
		switch p.src[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *exprParser) expect(c byte, what string) error {
	p.skipSpace()
	if p.pos < p.end && p.src[p.pos] == c {
		p.pos++
		return nil
	}
	return p.errAt(CodeParse, p.pos, "expected %s but found %s", what, p.describe(p.pos))
}

// expr := primary { '.' name | '[' expr ']' }, the postfix forms only after a call.
func (p *exprParser) expr() (exprNode, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > exprMaxDepth {
		return nil, p.errAt(CodeInvalid, p.pos, "expression nests deeper than %d levels, Azure Policy's limit", exprMaxDepth)
	}
	p.skipSpace()
	if p.pos >= p.end {
		return nil, p.errAt(CodeParse, p.pos, "expected a value but found end of expression")
	}
	c := p.src[p.pos]
	switch {
	case c == '\'':
		return p.stringLiteral()
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case exprIdentStart(c):
	default:
		return nil, p.errAt(CodeParse, p.pos, "expected a function call, string or number but found %s", p.describe(p.pos))
	}
	n, err := p.call()
	if err != nil {
		return nil, err
	}
	for {
		p.skipSpace()
		if p.pos >= p.end {
			return n, nil
		}
		switch p.src[p.pos] {
		case '.':
			p.pos++
			p.skipSpace()
			start := p.pos
			for p.pos < p.end && exprPropertyChar(p.src[p.pos]) {
				p.pos++
			}
			if p.pos == start {
				return nil, p.errAt(CodeParse, p.pos, "expected a property name after '.' but found %s", p.describe(p.pos))
			}
			n = exprFoldProperty(&exprProperty{target: n, name: p.src[start:p.pos]})
		case '[':
			open := p.pos
			p.pos++
			idx, err := p.expr()
			if err != nil {
				return nil, err
			}
			if err := p.expect(']', "']' to close the '[' at column "+strconv.Itoa(open+1)); err != nil {
				return nil, err
			}
			n = exprFoldIndex(&exprIndex{target: n, index: idx})
		default:
			return n, nil
		}
	}
}

func exprIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func exprIdentChar(c byte) bool { return exprIdentStart(c) || c >= '0' && c <= '9' }

// exprPropertyChar admits the property names that occur in resources after a dot,
// including '$' ($schema) and '-' (ARM has no minus operator to confuse it with).
func exprPropertyChar(c byte) bool { return exprIdentChar(c) || c == '$' || c == '-' || c == '@' }

// stringLiteral reads a quoted string, in which a doubled quote stands for one quote.
func (p *exprParser) stringLiteral() (exprNode, error) {
	start := p.pos
	p.pos++
	var b strings.Builder
	for {
		i := strings.IndexByte(p.src[p.pos:p.end], '\'')
		if i < 0 {
			return nil, p.errAt(CodeParse, start, "unterminated string literal")
		}
		b.WriteString(p.src[p.pos : p.pos+i])
		p.pos += i + 1
		if p.pos < p.end && p.src[p.pos] == '\'' {
			b.WriteByte('\'')
			p.pos++
			continue
		}
		return &exprConst{v: b.String()}, nil
	}
}

// number reads an integer (int64) or a decimal (float64), either possibly negative.
func (p *exprParser) number() (exprNode, error) {
	start := p.pos
	if p.src[p.pos] == '-' {
		p.pos++
	}
	digits := p.pos
	for p.pos < p.end && p.src[p.pos] >= '0' && p.src[p.pos] <= '9' {
		p.pos++
	}
	if p.pos == digits {
		return nil, p.errAt(CodeParse, start, "expected digits after '-'")
	}
	decimal := false
	if p.pos+1 < p.end && p.src[p.pos] == '.' && p.src[p.pos+1] >= '0' && p.src[p.pos+1] <= '9' {
		decimal = true
		p.pos++
		for p.pos < p.end && p.src[p.pos] >= '0' && p.src[p.pos] <= '9' {
			p.pos++
		}
	}
	text := p.src[start:p.pos]
	if p.pos < p.end && (exprIdentChar(p.src[p.pos]) || p.src[p.pos] == '.') {
		return nil, p.errAt(CodeParse, p.pos, "unexpected %s in number %s", p.describe(p.pos), text)
	}
	if decimal {
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, p.errAt(CodeParse, start, "number %s is out of range", text)
		}
		return &exprConst{v: f}, nil
	}
	i, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return nil, p.errAt(CodeParse, start, "integer %s is out of range", text)
	}
	return &exprConst{v: i}, nil
}

// call reads name(args) and resolves the function at compile time.
func (p *exprParser) call() (exprNode, error) {
	start := p.pos
	for p.pos < p.end && exprIdentChar(p.src[p.pos]) {
		p.pos++
	}
	name := p.src[start:p.pos]
	p.skipSpace()
	if p.pos >= p.end || p.src[p.pos] != '(' {
		switch strings.ToLower(name) {
		case "true", "false", "null":
			return nil, p.errAt(CodeParse, start,
				"'%s' is not a literal in template expressions; call %s() instead", name, strings.ToLower(name))
		}
		return nil, p.errAt(CodeParse, p.pos, "expected '(' after function name '%s' but found %s", name, p.describe(p.pos))
	}
	fn, err := p.resolve(name, start)
	if err != nil {
		return nil, err
	}
	p.pos++ // '('
	var args []exprNode
	p.skipSpace()
	if p.pos < p.end && p.src[p.pos] == ')' {
		p.pos++
	} else {
		for {
			a, err := p.expr()
			if err != nil {
				return nil, err
			}
			args = append(args, a)
			if len(args) > exprMaxArgs {
				return nil, p.errAt(CodeInvalid, p.pos, "%s has more than %d arguments, Azure Policy's limit", fn.name, exprMaxArgs)
			}
			p.skipSpace()
			if p.pos < p.end && p.src[p.pos] == ',' {
				p.pos++
				continue
			}
			if err := p.expect(')', "',' or ')' in the arguments of "+fn.name); err != nil {
				return nil, err
			}
			break
		}
	}
	return p.build(fn, args, start)
}

// resolve finds a function by its case-insensitive name, or says why there is none.
func (p *exprParser) resolve(name string, pos int) (*fnSpec, error) {
	lower := strings.ToLower(name)
	if fn, ok := fnTable[lower]; ok {
		return fn, nil
	}
	if why, ok := fnUnavailable(lower); ok {
		return nil, p.errHint(CodeUnknownFunction, pos, why, "function '%s'", name)
	}
	hint := ""
	if s := fnSuggest(lower); s != "" {
		hint = "did you mean '" + s + "'?"
	}
	return nil, p.errHint(CodeUnknownFunction, pos, hint, "unknown function '%s'", name)
}

// build checks a call against what is known at compile time and folds it when it can.
func (p *exprParser) build(fn *fnSpec, args []exprNode, pos int) (exprNode, error) {
	if len(args) < fn.min || fn.max >= 0 && len(args) > fn.max {
		if fn.arityHint != "" {
			return nil, p.errAt(CodeInvalid, pos, "%s", fn.arityHint)
		}
		return nil, p.errAt(CodeInvalid, pos, "%s takes %s, got %d", fn.name, fnArity(fn), len(args))
	}
	if fn.check != nil {
		if code, msg := fn.check(p, args); msg != "" {
			return nil, p.errAt(code, pos, "%s", msg)
		}
	}
	// parameters and field with a literal name get nodes of their own: they are the most
	// evaluated calls of all, and a dedicated node needs no argument slice.
	if name, ok := exprConstString(args); ok {
		switch fn.name {
		case "parameters":
			p.params = append(p.params, name)
			return &exprParam{name: name}, nil
		case "field":
			return &exprField{name: name}, nil
		}
	}
	allConst := true
	for _, a := range args {
		if _, ok := a.(*exprConst); !ok {
			allConst = false
			break
		}
	}
	if fn.lazy != nil {
		call := &exprLazyCall{fn: fn, args: args}
		if fn.pure && allConst {
			return exprFold(call), nil
		}
		if fn.name == "if" {
			// if(constant, a, b) is a or b: only the chosen branch would ever run.
			if c, ok := args[0].(*exprConst); ok {
				if b, ok := c.v.(bool); ok {
					if b {
						return args[1], nil
					}
					return args[2], nil
				}
			}
		}
		return call, nil
	}
	call := &exprCall{fn: fn, args: args}
	if fn.pure && allConst {
		return exprFold(call), nil
	}
	return call, nil
}

// exprConstString returns the argument of a one-argument call when it is a literal string.
func exprConstString(args []exprNode) (string, bool) {
	if len(args) != 1 {
		return "", false
	}
	c, ok := args[0].(*exprConst)
	if !ok {
		return "", false
	}
	s, ok := c.v.(string)
	return s, ok
}

// exprFold evaluates a pure node whose inputs are constants. A failure is kept for
// evaluation time, where Azure would report it.
func exprFold(n exprNode) exprNode {
	v, err := n.eval(nil)
	if err != nil {
		return &exprFailed{err: exprAsError(err, ""), node: n}
	}
	return &exprConst{v: v}
}

func exprFoldProperty(p *exprProperty) exprNode {
	if _, ok := p.target.(*exprConst); ok {
		return exprFold(p)
	}
	return p
}

func exprFoldIndex(x *exprIndex) exprNode {
	_, ok1 := x.target.(*exprConst)
	_, ok2 := x.index.(*exprConst)
	if ok1 && ok2 {
		return exprFold(x)
	}
	return x
}

// exprQuote shows an expression in a message, shortened when it is long.
func exprQuote(s string) string {
	const max = 160
	if len(s) > max {
		cut := max
		for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
			cut--
		}
		s = s[:cut] + "…"
	}
	return strconv.Quote(s)
}
