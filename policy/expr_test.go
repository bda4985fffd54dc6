package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// exprTestEnv is a fake Env: the edge the expressions are evaluated against, not the
// thing under test.
type exprTestEnv struct {
	params  map[string]any
	fields  map[string]any
	current map[string]any // "" is the innermost count's element
	now     time.Time
}

func (e *exprTestEnv) Parameter(name string) (any, bool) { v, ok := e.params[name]; return v, ok }
func (e *exprTestEnv) Field(name string) (any, error) {
	if name == "boom" {
		return nil, &Error{Code: CodeUnknownAlias, Message: "no alias 'boom'"}
	}
	if name == "plainerr" {
		return nil, errors.New("backend down")
	}
	if name == "wrapped" {
		return nil, fmt.Errorf("resolving: %w", &Error{Code: CodeUnknownAlias, Message: "no alias 'wrapped'"})
	}
	return e.fields[name], nil
}
func (e *exprTestEnv) Current(name string) (any, bool) { v, ok := e.current[name]; return v, ok }
func (e *exprTestEnv) Now() time.Time                  { return e.now }
func (e *exprTestEnv) ResourceGroup() map[string]any {
	return map[string]any{"name": "rg-netrg", "location": "westeurope",
		"id": "/subscriptions/sub1/resourceGroups/rg-netrg", "tags": map[string]any{"env": "prod"}}
}
func (e *exprTestEnv) Subscription() map[string]any {
	return map[string]any{"subscriptionId": "sub1", "id": "/subscriptions/sub1", "displayName": "Payments"}
}
func (e *exprTestEnv) Policy() map[string]any {
	return map[string]any{"assignmentId": "/subscriptions/sub1/providers/Microsoft.Authorization/policyAssignments/a1",
		"definitionReferenceId": "ref1"}
}
func (e *exprTestEnv) RequestContext() map[string]any {
	return map[string]any{"apiVersion": "2024-03-01", "identity": map[string]any{"idtyp": "user", "acrs": "p1,c1"}}
}

func newExprTestEnv() *exprTestEnv {
	return &exprTestEnv{
		params: map[string]any{
			"loc":      "eastus",
			"obj":      map[string]any{"a": []any{int64(1), int64(2)}, "name": "x"},
			"arr":      []any{"a", "b", "c"},
			"idx":      int64(2),
			"nullp":    nil,
			"tagName":  "env",
			"patterns": []any{"web-*", "api-*"},
		},
		fields: map[string]any{
			"location": "westeurope",
			"name":     "web-01",
			"num":      int64(7),
			"tags":     map[string]any{"env": "prod", "Owner": "ops"},
			"Microsoft.Network/virtualNetworks/addressSpace.addressPrefixes[*]": []any{"10.0.0.0/24", "10.1.0.0/16"},
		},
		current: map[string]any{"": "10.0.0.0/24", "pattern": "web-*"},
		now:     time.Date(2024, 2, 29, 13, 45, 30, 123456700, time.UTC),
	}
}

// jv decodes JSON into the value model, for expected values.
func jv(s string) any {
	v, err := DecodeJSON([]byte(s))
	if err != nil {
		panic(err)
	}
	return v
}

type exprCase struct {
	expr   string
	want   any
	errHas string   // evaluation (or compile) error containing this
	counts []string // CompileScope.CountNames
}

func runExprCases(t *testing.T, cases []exprCase) {
	t.Helper()
	env := newExprTestEnv()
	for _, c := range cases {
		scope := CompileScope{Location: "policyRule.if.value", CountNames: c.counts}
		e, err := CompileExpression(c.expr, scope)
		if err == nil {
			var v any
			v, err = e.Eval(env)
			if err == nil {
				if c.errHas != "" {
					t.Errorf("%s = %#v, want an error containing %q", c.expr, v, c.errHas)
				} else if !fnDeepEqual(v, c.want) || TypeName(v) != TypeName(c.want) {
					t.Errorf("%s = %#v (%s), want %#v (%s)", c.expr, v, TypeName(v), c.want, TypeName(c.want))
				}
				continue
			}
		}
		if c.errHas == "" {
			t.Errorf("%s: unexpected error: %v", c.expr, err)
		} else if !strings.Contains(err.Error(), c.errHas) {
			t.Errorf("%s: error %q does not contain %q", c.expr, err, c.errHas)
		}
	}
}

func TestExprSyntax(t *testing.T) {
	runExprCases(t, []exprCase{
		// Literals and what is not an expression.
		{expr: "plain", want: "plain"},
		{expr: "", want: ""},
		{expr: "[test] value", want: "[test] value"},
		{expr: "[[not an expression]", want: "[not an expression]"},
		{expr: "[[abc", want: "[[abc"},
		{expr: "[[", want: "[["},
		{expr: "]", want: "]"},
		{expr: " [concat('a')]", want: " [concat('a')]"},
		{expr: "['it''s']", want: "it's"},
		{expr: "['''']", want: "'"},
		{expr: "['']", want: ""},
		{expr: "[42]", want: int64(42)},
		{expr: "[-5]", want: int64(-5)},
		{expr: "[1.5]", want: 1.5},
		{expr: "[-0.25]", want: -0.25},
		// Calls, names in any case, whitespace anywhere between tokens.
		{expr: "[concat('a', 'b')]", want: "ab"},
		{expr: "[CONCAT('a','b')]", want: "ab"},
		{expr: "[ concat ( 'a' ,\t'b' )\n]", want: "ab"},
		{expr: "[add(-1, 3)]", want: int64(2)},
		{expr: "[concat('[', ']')]", want: "[]"},
		{expr: "[concat('it''s', ' ', 'fine')]", want: "it's fine"},
		{expr: "[toLower(toUpper(concat('a', toUpper('b'))))]", want: "ab"},
		// Property access and indexing after any call.
		{expr: "[parameters('obj').a[0]]", want: int64(1)},
		{expr: "[parameters('obj') . name]", want: "x"},
		{expr: "[resourceGroup().tags['env']]", want: "prod"},
		{expr: "[resourceGroup().tags[parameters('tagName')]]", want: "prod"},
		{expr: "[split('a/b/c', '/')[2]]", want: "c"},
		{expr: "[split(field('name'), '-')[0]]", want: "web"},
		{expr: "[requestContext().apiVersion]", want: "2024-03-01"},
		{expr: "[requestContext().identity.idtyp]", want: "user"},
		{expr: "[json('[[1,2],[3]]')[1][0]]", want: int64(3)},
		{expr: "[createObject('k', createArray(1, 2)).k[1]]", want: int64(2)},
		{expr: "[parameters('arr')[parameters('idx')]]", want: "c"},
		{expr: "[parameters('arr')[ add(0, 1) ]]", want: "b"},
		{expr: "[createArray(1,2)[float('1')]]", want: int64(2)},
		// Property names ignore case when no exact match exists; the exact one wins.
		{expr: `[json('{"a":{"B":1}}').A.b]`, want: int64(1)},
		{expr: `[json('{"ab":1,"AB":2}').AB]`, want: int64(2)},
		{expr: `[json('{"ab":1,"AB":2}').ab]`, want: int64(1)},
		{expr: `[json('{"ab":1,"AB":2}').aB]`, want: int64(2)},
		{expr: `[json('{"$schema":"s","a-b":1}').$schema]`, want: "s"},
		{expr: `[json('{"a-b":1}').a-b]`, want: int64(1)},
		// Missing properties read as null; so does anything read from null.
		{expr: "[resourceGroup().tags.missing]", want: nil},
		{expr: "[resourceGroup().tags['missing']]", want: nil},
		{expr: "[field('tags').nope.deeper]", want: nil},
		{expr: "[null().a[0]]", want: nil},
		// Failures of access.
		{expr: "[createArray(1,2)[5]]", errHas: "array index 5 is out of bounds for an array of 2 elements"},
		{expr: "[createArray(1,2)[-1]]", errHas: "out of bounds"},
		{expr: "[createArray(1)['a']]", errHas: "an array index must be an integer, got string"},
		{expr: "[createArray(1)[float('0.5')]]", errHas: "not an integer"},
		{expr: `[json('{"a":1}')[0]]`, errHas: "property name must be a string, got integer"},
		{expr: "[string(1).x]", errHas: "cannot read property 'x' of a string"},
		{expr: "[field('num')[0]]", errHas: "cannot index an integer"},
	})
}

func TestExprParseErrors(t *testing.T) {
	cases := []struct {
		expr, code, msg string
	}{
		{"[]", CodeParse, "empty expression at column 2"},
		{"[   ]", CodeParse, "empty expression at column 5"},
		{"[concat('a']", CodeParse, "expected ',' or ')' in the arguments of concat but found end of expression at column 12"},
		{"[concat('a]", CodeParse, "unterminated string literal at column 9"},
		{"[concat('a') 'b']", CodeParse, "unexpected ''' after the expression at column 14"},
		{"[concat('a'))]", CodeParse, "unexpected ')' after the expression at column 13"},
		{"[true]", CodeParse, "'true' is not a literal in template expressions; call true() instead at column 2"},
		{"[NULL]", CodeParse, "call null() instead"},
		{"[equals(1, false)]", CodeParse, "'false' is not a literal"},
		{"[foo]", CodeParse, "expected '(' after function name 'foo' but found end of expression at column 5"},
		{"[concat(,)]", CodeParse, "expected a function call, string or number but found ',' at column 9"},
		{"[concat('a',)]", CodeParse, "found ')' at column 13"},
		{"[1abc]", CodeParse, "unexpected 'a' in number 1 at column 3"},
		{"[1.]", CodeParse, "unexpected '.' in number 1 at column 3"},
		{"[-]", CodeParse, "expected digits after '-' at column 2"},
		{"[- 1]", CodeParse, "expected digits after '-'"},
		{"[99999999999999999999]", CodeParse, "integer 99999999999999999999 is out of range at column 2"},
		{"[concat('a').]", CodeParse, "expected a property name after '.' but found end of expression at column 14"},
		{"[createArray(1)[0]", CodeParse, "expected ']' to close the '[' at column 16 but found end of expression at column 18"},
		{"['a'.b]", CodeParse, "unexpected '.' after the expression at column 5"},
		{"['a'[0]]", CodeParse, "unexpected '[' after the expression"},
		{"[é()]", CodeParse, "found 'é' at column 2"},
		{"[concat('é', ,)]", CodeParse, "found ',' at column 14"},
		{"[concat('a'", "", ""}, // no closing bracket: a literal, not an error
	}
	for _, c := range cases {
		e, err := CompileExpression(c.expr, CompileScope{Location: "policyRule.if.value"})
		if c.code == "" {
			if err != nil || !IsConstant(e) || ConstantValue(e) != c.expr {
				t.Errorf("%s: want the literal, got %v, %v", c.expr, e, err)
			}
			continue
		}
		var pe *Error
		if !errors.As(err, &pe) {
			t.Errorf("%s: want *Error, got %T %v", c.expr, err, err)
			continue
		}
		if pe.Code != c.code || pe.Location != "policyRule.if.value" || !strings.Contains(pe.Message, c.msg) {
			t.Errorf("%s: got %s %q at %q, want %s containing %q", c.expr, pe.Code, pe.Message, pe.Location, c.code, c.msg)
		}
	}
}

func TestExprCompileChecks(t *testing.T) {
	declared := func(n string) bool { return n == "loc" || n == "effect" }
	deep := "[" + strings.Repeat("not(", exprMaxDepth) + "true()" + strings.Repeat(")", exprMaxDepth) + "]"
	notSoDeep := "[" + strings.Repeat("not(", exprMaxDepth-1) + "true()" + strings.Repeat(")", exprMaxDepth-1) + "]"
	manyArgs := "[createArray(" + strings.TrimSuffix(strings.Repeat("1,", exprMaxArgs+1), ",") + ")]"
	long := "[concat('" + strings.Repeat("x", exprMaxSource) + "')]"
	cases := []struct {
		expr   string
		params func(string) bool
		counts []string
		code   string
		msg    string
	}{
		{expr: "[tolowr('A')]", code: CodeUnknownFunction, msg: "unknown function 'tolowr' at column 2 in \"[tolowr('A')]\"; did you mean 'toLower'?"},
		{expr: "[paramters('loc')]", code: CodeUnknownFunction, msg: "did you mean 'parameters'?"},
		{expr: "[resourcegroupp()]", code: CodeUnknownFunction, msg: "did you mean 'resourceGroup'?"},
		{expr: "[concat('a', zzzzzzzz())]", code: CodeUnknownFunction, msg: "unknown function 'zzzzzzzz' at column 14"},
		{expr: "[resourceId('Microsoft.Compute/virtualMachines', 'vm')]", code: CodeUnknownFunction, msg: "function 'resourceId' at column 2 in \"[resourceId('Microsoft.Compute/virtualMachines', 'vm')]\"; it is a deployment-template function, not available in policy rules"},
		{expr: "[listKeys('x', '2020-01-01')]", code: CodeUnknownFunction, msg: "deployment-template function"},
		{expr: "[listAnything('x')]", code: CodeUnknownFunction, msg: "deployment-template function"},
		{expr: "[variables('v')]", code: CodeUnknownFunction, msg: "deployment-template function"},
		{expr: "[reference('x').id]", code: CodeUnknownFunction, msg: "deployment-template function"},
		{expr: "[copyIndex()]", code: CodeUnknownFunction, msg: "deployment-template function"},
		{expr: "[newGuid()]", code: CodeUnknownFunction, msg: "deployment-template function"},
		{expr: "[managementGroup().id]", code: CodeUnknownFunction, msg: "deployment-template function"},
		{expr: "[tenant().tenantId]", code: CodeUnknownFunction, msg: "deployment-template function"},
		{expr: "[dateTimeAdd(utcNow(), 'P1D')]", code: CodeUnknownFunction, msg: "not available in policy rules (Azure Policy excludes it; addDays and utcNow"},
		{expr: "[dateTimeToEpoch(utcNow())]", code: CodeUnknownFunction, msg: "not available in policy rules"},
		{expr: "[filter(createArray(1), 'x')]", code: CodeUnknownFunction, msg: "lambda function"},
		{expr: "[parseCidr('10.0.0.0/8')]", code: CodeUnknownFunction, msg: "gild does not implement yet"},
		{expr: "[toLower('a', 'b')]", code: CodeInvalid, msg: "toLower takes 1 argument, got 2 at column 2"},
		{expr: "[if(true(), 1)]", code: CodeInvalid, msg: "if takes 3 arguments, got 2"},
		{expr: "[concat()]", code: CodeInvalid, msg: "concat takes at least 1 argument, got 0"},
		{expr: "[substring()]", code: CodeInvalid, msg: "substring takes 1 to 3 arguments, got 0"},
		{expr: "[and(true())]", code: CodeInvalid, msg: "and takes at least 2 arguments, got 1"},
		{expr: "[true(1)]", code: CodeInvalid, msg: "true takes 0 arguments, got 1"},
		{expr: "[utcNow('u')]", code: CodeInvalid, msg: "utcNow takes no arguments in policy rules"},
		{expr: "[createObject('a')]", code: CodeInvalid, msg: "createObject takes key/value pairs, an even number of arguments, got 1"},
		{expr: "[parameters('undeclared')]", params: declared, code: CodeUnknownParameter, msg: "parameter 'undeclared' is not declared"},
		{expr: "[concat(parameters('loc'), parameters('nope'))]", params: declared, code: CodeUnknownParameter, msg: "'nope' is not declared in the definition at column 28"},
		{expr: "[parameters('loc')]", params: declared},
		{expr: "[parameters(concat('l', 'oc'))]", params: declared}, // folded to a literal: checked
		{expr: "[parameters(field('name'))]", params: declared},     // computed: cannot be checked
		{expr: "[parameters('anything')]"}, // nil Parameters accepts any name
		{expr: "[parameters(1)]", code: CodeInvalid, msg: "parameter name must be a string, got integer"},
		{expr: "[current()]", code: CodeInvalid, msg: "current() is available only inside the where condition of a count"},
		{expr: "[current('x')]", code: CodeInvalid, msg: "only inside the where condition"},
		{expr: "[current()]", counts: []string{"pattern"}},
		{expr: "[current('PATTERN')]", counts: []string{"pattern"}},
		{expr: "[current('x')]", counts: []string{"pattern"}, code: CodeInvalid, msg: "current('x') names no enclosing count; the counts here are 'pattern'"},
		{expr: "[current()]", counts: []string{"outer", "inner"}, code: CodeInvalid, msg: "not allowed in a nested count; name one of 'outer', 'inner'"},
		{expr: "[current('inner')]", counts: []string{"outer", "inner"}},
		{expr: "[current('Microsoft.Network/nsg/securityRules[*].priority')]", counts: []string{"Microsoft.Network/nsg/securityRules[*]"}},
		{expr: "[current('Microsoft.Network/nsg/securityRules[*]x')]", counts: []string{"Microsoft.Network/nsg/securityRules[*]"}, code: CodeInvalid, msg: "names no enclosing count"},
		{expr: "[current(1)]", counts: []string{"a"}, code: CodeInvalid, msg: "count name must be a string"},
		{expr: deep, code: CodeInvalid, msg: "nests deeper than 64 levels"},
		{expr: notSoDeep},
		{expr: manyArgs, code: CodeInvalid, msg: "createArray has more than 128 arguments"},
		{expr: long, code: CodeInvalid, msg: "Azure Policy allows at most 81920"},
	}
	for _, c := range cases {
		scope := CompileScope{Parameters: c.params, CountNames: c.counts, Location: "policyRule.then.details"}
		_, err := CompileExpression(c.expr, scope)
		name := c.expr
		if len(name) > 60 {
			name = name[:60]
		}
		if c.code == "" {
			if err != nil {
				t.Errorf("%s: unexpected error %v", name, err)
			}
			continue
		}
		var pe *Error
		if !errors.As(err, &pe) {
			t.Errorf("%s: want *Error %s, got %v", name, c.code, err)
			continue
		}
		if pe.Code != c.code || pe.Location != "policyRule.then.details" || !strings.Contains(pe.Message, c.msg) {
			t.Errorf("%s: got %s %q, want %s containing %q", name, pe.Code, pe.Message, c.code, c.msg)
		}
		if CodeOf(err) != c.code {
			t.Errorf("%s: CodeOf = %s", name, CodeOf(err))
		}
	}
}

func TestExprConstantFolding(t *testing.T) {
	cases := []struct {
		expr     string
		constant bool
		want     any
		form     string // canonical form of what was compiled
	}{
		{"[concat('a', 'b')]", true, "ab", "'ab'"},
		{"[length(createArray(1, 2, 3))]", true, int64(3), "3"},
		{`[json('{"a":1}').a]`, true, int64(1), "1"},
		{"[createArray(1, 'a')]", true, jv(`[1,"a"]`), `json('[1,"a"]')`},
		{"[if(equals(1, 1), 'yes', 'no')]", true, "yes", "'yes'"},
		{"[and(true(), false())]", true, false, "false()"},
		{"[null()]", true, nil, "null()"},
		{"[toLower(parameters('p'))]", false, nil, "[toLower(parameters('p'))]"},
		{"[if(true(), parameters('p'), field('boom'))]", false, nil, "[parameters('p')]"},
		{"[if(false(), field('boom'), toUpper(parameters('p')))]", false, nil, "[toUpper(parameters('p'))]"},
		{"[utcNow()]", false, nil, "[utcNow()]"},
		{"[addDays(utcNow(), 1)]", false, nil, "[addDays(utcNow(), 1)]"},
		{"[field('name')]", false, nil, "[field('name')]"},
		{"[resourceGroup().name]", false, nil, "[resourceGroup().name]"},
		{"[subscription()]", false, nil, "[subscription()]"},
		{"[policy()]", false, nil, "[policy()]"},
		{"[requestContext()]", false, nil, "[requestContext()]"},
		{"[current()]", false, nil, "[current()]"},
		{"[substring('ab', 0, 5)]", false, nil, "[substring('ab', 0, 5)]"},
		{"[if(parameters('b'), 1, 2)]", false, nil, "[if(parameters('b'), 1, 2)]"},
		{"[coalesce(null(), 'x')]", true, "x", "'x'"},
		{`[json('""')[0]]`, false, nil, `[json('""')[0]]`},
		{"[json('5').x]", false, nil, "[json('5').x]"},
	}
	for _, c := range cases {
		e, err := CompileExpression(c.expr, CompileScope{CountNames: []string{"n"}})
		if err != nil {
			t.Errorf("%s: %v", c.expr, err)
			continue
		}
		if IsConstant(e) != c.constant {
			t.Errorf("%s: IsConstant = %v", c.expr, IsConstant(e))
		}
		if got := ConstantValue(e); !fnDeepEqual(got, c.want) {
			t.Errorf("%s: ConstantValue = %#v, want %#v", c.expr, got, c.want)
		}
		if got := fmt.Sprint(e); got != c.form {
			t.Errorf("%s: compiled to %s, want %s", c.expr, got, c.form)
		}
	}
	// A failing call on constants compiles (Azure fails it at evaluation) and fails there.
	e, err := CompileExpression("[substring('ab', 0, 5)]", CompileScope{Location: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Eval(newExprTestEnv()); CodeOf(err) != CodeEval || !strings.Contains(err.Error(), "x: substring: the index and length") {
		t.Errorf("substring on constants: %v", err)
	}
	if IsConstant(nil) || ConstantValue(nil) != nil {
		t.Error("nil expression is not constant")
	}
}

func TestExprReferencedParameters(t *testing.T) {
	cases := []struct {
		expr string
		want []string
	}{
		{"plain", nil},
		{"[concat(parameters('b'), parameters('a'), parameters('b'))]", []string{"a", "b"}},
		{"[if(true(), parameters('kept'), parameters('dropped'))]", []string{"dropped", "kept"}}, // as written
		{"[parameters(field('name'))]", nil},
		{"[toLower(parameters('x'))]", []string{"x"}},
	}
	for _, c := range cases {
		e, err := CompileExpression(c.expr, CompileScope{})
		if err != nil {
			t.Fatal(err)
		}
		if got := ReferencedParameters(e); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: %v, want %v", c.expr, got, c.want)
		}
	}
}

func TestExprCompileValue(t *testing.T) {
	env := newExprTestEnv()
	v := jv(`{"a": "[parameters('loc')]", "b": ["x", "[[y]", "[concat('1', '2')]"],
		"c": {"d": "[toUpper(field('name'))]", "n": 3, "t": true, "z": null}}`)
	e, err := CompileValue(v, CompileScope{Location: "details"})
	if err != nil {
		t.Fatal(err)
	}
	if IsConstant(e) {
		t.Fatal("a value with expressions is not constant")
	}
	got, err := e.Eval(env)
	want := jv(`{"a": "eastus", "b": ["x", "[y]", "12"], "c": {"d": "WEB-01", "n": 3, "t": true, "z": null}}`)
	if err != nil || !fnDeepEqual(got, want) {
		t.Errorf("Eval = %v, %v; want %v", got, err, want)
	}
	if p := ReferencedParameters(e); fmt.Sprint(p) != "[loc]" {
		t.Errorf("ReferencedParameters = %v", p)
	}
	if s := fmt.Sprint(e); !strings.Contains(s, `"a": [parameters('loc')]`) {
		t.Errorf("String = %s", s)
	}

	// Constants fold whole, escapes included.
	e, err = CompileValue(jv(`{"k": ["[[x]", "[concat('a', 'b')]", 1]}`), CompileScope{})
	if err != nil || !IsConstant(e) || !fnDeepEqual(ConstantValue(e), jv(`{"k": ["[x]", "ab", 1]}`)) {
		t.Errorf("constant value: %v %v", ConstantValue(e), err)
	}
	for _, scalar := range []any{nil, true, int64(3), 2.5, "s"} {
		e, err := CompileValue(scalar, CompileScope{})
		if err != nil || !IsConstant(e) || ConstantValue(e) != scalar {
			t.Errorf("scalar %v: %v %v", scalar, e, err)
		}
	}

	// Every error is reported, each at its own location.
	_, err = CompileValue(jv(`{"x": "[bad(]", "y": ["ok", "[tolowr('a')]"], "a b": {"c": "[parameters('nope')]"}}`),
		CompileScope{Location: "then.details", Parameters: func(string) bool { return false }})
	var es Errors
	if !errors.As(err, &es) || len(es) != 3 {
		t.Fatalf("want 3 errors, got %v", err)
	}
	wantLocs := []string{"then.details['a b'].c", "then.details.x", "then.details.y[1]"}
	wantCodes := []string{CodeUnknownParameter, CodeUnknownFunction, CodeUnknownFunction}
	for i, e := range es {
		if e.Location != wantLocs[i] || e.Code != wantCodes[i] {
			t.Errorf("error %d: %s at %s, want %s at %s", i, e.Code, e.Location, wantCodes[i], wantLocs[i])
		}
	}

	// An evaluation error inside a container names the element's location.
	e, err = CompileValue(jv(`{"ops": [{"value": "[toLower(field('num'))]"}]}`), CompileScope{Location: "details"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Eval(env)
	var pe *Error
	if !errors.As(err, &pe) || pe.Location != "details.ops[0].value" || pe.Code != CodeEval {
		t.Errorf("nested eval error: %#v", err)
	}
}

func TestExprEvalErrors(t *testing.T) {
	env := newExprTestEnv()
	cases := []struct {
		expr, code, msg string
	}{
		{"[field('boom')]", CodeUnknownAlias, "no alias 'boom' (in \"[field('boom')]\")"},
		{"[toLower(field('boom'))]", CodeUnknownAlias, "no alias 'boom'"},
		{"[field('plainerr')]", CodeEval, "backend down"},
		{"[field('wrapped')]", CodeUnknownAlias, "resolving: no alias 'wrapped'"},
		{"[parameters('missing')]", CodeEval, "parameters: parameter 'missing' has no value"},
		{"[parameters(concat('mis', field('name')))]", CodeEval, "parameter 'misweb-01' has no value"},
		{"[toLower(field('num'))]", CodeEval, "toLower: argument 1 must be a string, got integer (in \"[toLower(field('num'))]\")"},
		{"[current('other')]", CodeEval, "current: no enclosing count is named 'other'"},
		{"[field(1)]", CodeEval, "field: argument 1 must be a string, got integer"},
	}
	for _, c := range cases {
		e, err := CompileExpression(c.expr, CompileScope{Location: "policyRule.if.allOf[2].value", CountNames: []string{"other"}})
		if err != nil {
			t.Fatalf("%s: %v", c.expr, err)
		}
		_, err = e.Eval(env)
		var pe *Error
		if !errors.As(err, &pe) {
			t.Errorf("%s: want *Error, got %v", c.expr, err)
			continue
		}
		if pe.Code != c.code || pe.Location != "policyRule.if.allOf[2].value" || !strings.Contains(pe.Message, c.msg) {
			t.Errorf("%s: got %s %q at %q", c.expr, pe.Code, pe.Message, pe.Location)
		}
	}
	// Empty current(): the env has no innermost element.
	e, _ := CompileExpression("[current()]", CompileScope{CountNames: []string{"n"}})
	env.current = nil
	if _, err := e.Eval(env); err == nil || !strings.Contains(err.Error(), "no count element here") {
		t.Errorf("current() without element: %v", err)
	}
}

func TestExprConcurrentEval(t *testing.T) {
	exprs := map[string]any{
		"[concat(toUpper(parameters('loc')), '-', field('name'))]":            "EASTUS-web-01",
		"[union(parameters('arr'), createArray('d'))]":                        jv(`["a","b","c","d"]`),
		"[if(greater(length(field('tags')), 1), 'many', 'few')]":              "many",
		"[ipRangeContains('10.0.0.0/8', current())]":                          true,
		"[uniqueString(resourceGroup().id, policy().definitionReferenceId)]":  fnMustUnique("/subscriptions/sub1/resourceGroups/rg-netrg", "ref1"),
		"[format('{0}:{1:D3}', subscription().displayName, field('num'))]":    "Payments:007",
		"[items(field('tags'))[0].key]":                                       "Owner",
		"[createObject('n', field('num'), 'l', parameters('patterns')[1]).l]": "api-*",
	}
	compiled := map[Expression]any{}
	for s, want := range exprs {
		e, err := CompileExpression(s, CompileScope{CountNames: []string{"n"}})
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		compiled[e] = want
	}
	env := newExprTestEnv()
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				for e, want := range compiled {
					got, err := e.Eval(env)
					if err != nil || !fnDeepEqual(got, want) {
						t.Errorf("%v = %v, %v; want %v", e, got, err, want)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

func fnMustUnique(args ...any) string {
	v, err := fnUniqueString(nil, args)
	if err != nil {
		panic(err)
	}
	return v.(string)
}

func TestExprEvalAllocations(t *testing.T) {
	env := newExprTestEnv()
	for _, s := range []string{"[parameters('loc')]", "[field('location')]", "plain", "[concat('a','b')]"} {
		e, err := CompileExpression(s, CompileScope{})
		if err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(100, func() { _, _ = e.Eval(env) }); n != 0 {
			t.Errorf("%s: %v allocations per evaluation, want 0", s, n)
		}
	}
}

func BenchmarkExprEval(b *testing.B) {
	env := newExprTestEnv()
	for _, s := range []string{
		"[parameters('loc')]",
		"[concat(resourceGroup().name, '*')]",
		"[toLower(field('name'))]",
		"[if(greaterOrEquals(length(field('name')), 3), substring(field('name'), 0, 3), 'none')]",
		"[ipRangeContains('10.0.0.0/8', current())]",
	} {
		e, err := CompileExpression(s, CompileScope{CountNames: []string{"n"}})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(s, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Eval(env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkExprCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := CompileExpression("[if(greaterOrEquals(length(field('name')), 3), substring(field('name'), 0, 3), 'none')]", CompileScope{}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestFuncPolicy(t *testing.T) {
	runExprCases(t, []exprCase{
		{expr: "[parameters('loc')]", want: "eastus"},
		{expr: "[parameters('nullp')]", want: nil},
		{expr: "[field('location')]", want: "westeurope"},
		{expr: "[field('tags')['Owner']]", want: "ops"},
		{expr: "[field('absent')]", want: nil},
		{expr: "[field(concat('loc', 'ation'))]", want: "westeurope"},
		{expr: "[current()]", want: "10.0.0.0/24", counts: []string{"Microsoft.Network/virtualNetworks/addressSpace.addressPrefixes[*]"}},
		{expr: "[current('pattern')]", want: "web-*", counts: []string{"pattern"}},
		{expr: "[policy().assignmentId]", want: "/subscriptions/sub1/providers/Microsoft.Authorization/policyAssignments/a1"},
		{expr: "[requestContext().identity.acrs]", want: "p1,c1"},
		{expr: "[tryGet(requestContext().identity, 'idtyp')]", want: "user"},
		{expr: "[contains(requestContext().identity, 'IDTYP')]", want: true},
		{expr: "[resourceGroup().name]", want: "rg-netrg"},
		{expr: "[resourceGroup().Location]", want: "westeurope"},
		{expr: "[subscription().subscriptionId]", want: "sub1"},
		{expr: "[concat(subscription().id, '/')]", want: "/subscriptions/sub1/"},
		// utcNow() is "yyyy-MM-ddTHH:mm:ss.fffffffZ" in policy rules.
		{expr: "[utcNow()]", want: "2024-02-29T13:45:30.1234567Z"},
		{expr: "[addDays(utcNow(), 30)]", want: "2024-03-30T13:45:30.1234567Z"},
		{expr: "[addDays('2024-02-28T00:00:00Z', 1)]", want: "2024-02-29T00:00:00.0000000Z"},
		{expr: "[addDays('2023-02-28T00:00:00.5Z', 1)]", want: "2023-03-01T00:00:00.5000000Z"},
		{expr: "[addDays('2024-02-28', 2)]", want: "2024-03-01T00:00:00.0000000Z"},
		{expr: "[addDays('2024-01-01T10:00:00+02:00', -1)]", want: "2023-12-31T08:00:00.0000000Z"},
		{expr: "[addDays('2024-01-01 10:00:00Z', 0)]", want: "2024-01-01T10:00:00.0000000Z"},
		{expr: "[addDays('2024-01-01T10:00', 1)]", want: "2024-01-02T10:00:00.0000000Z"},
		{expr: "[less(addDays('2024-01-01', 10), utcNow())]", want: true},
		{expr: "[addDays('yesterday', 1)]", errHas: "addDays: argument 1 'yesterday' is not an ISO 8601 date and time"},
		{expr: "[addDays('2024-01-01', '1')]", errHas: "addDays: argument 2 must be an integer, got string"},
		{expr: "[addDays('2024-01-01', 99999999)]", errHas: "out of range"},
		{expr: "[addDays('9999-12-31', 1)]", errHas: "outside the years 1 to 9999"},
		// ipRangeContains: addresses, CIDR ranges and start-end ranges of one family.
		{expr: "[ipRangeContains('10.0.0.0/24', '10.0.0.5')]", want: true},
		{expr: "[ipRangeContains('10.0.0.0/24', '10.0.1.5')]", want: false},
		{expr: "[ipRangeContains('10.0.0.0/16', '10.0.3.0/24')]", want: true},
		{expr: "[ipRangeContains('10.0.0.0/24', '10.0.0.0/23')]", want: false},
		{expr: "[ipRangeContains('10.0.0.5/24', '10.0.0.200')]", want: true},
		{expr: "[ipRangeContains('10.0.0.1', '10.0.0.1')]", want: true},
		{expr: "[ipRangeContains('192.168.0.1-192.168.0.9', '192.168.0.5')]", want: true},
		{expr: "[ipRangeContains('192.168.0.1-192.168.0.9', '192.168.0.8-192.168.0.10')]", want: false},
		{expr: "[ipRangeContains('2001:0DB8::/110', '2001:0DB8::3:FFFE')]", want: true},
		{expr: "[ipRangeContains('2001:0DB8::/110', '2001:0DB8::4:0')]", want: false},
		{expr: "[ipRangeContains('2001:0DB8::-2001:0DB8::3:FFFF', '2001:db8::1:0/112')]", want: true},
		{expr: "[ipRangeContains('0.0.0.0/0', '255.255.255.255')]", want: true},
		{expr: "[ipRangeContains('::/0', '::1')]", want: true},
		{expr: "[ipRangeContains('10.0.0.0/24', '2001:db8::1')]", errHas: "cannot compare an IPv4 range with an IPv6 range"},
		{expr: "[ipRangeContains('', '10.0.0.1')]", errHas: "argument 1: the range is empty"},
		{expr: "[ipRangeContains('10.0.0.0/33', '10.0.0.1')]", errHas: "not a valid CIDR range"},
		{expr: "[ipRangeContains('10.0.0.9-10.0.0.1', '10.0.0.2')]", errHas: "starts after it ends"},
		{expr: "[ipRangeContains('10.0.0.1-::2', '10.0.0.2')]", errHas: "mixes IPv4 and IPv6"},
		{expr: "[ipRangeContains('10.0.0.0/8', 'host')]", errHas: "argument 2: 'host' is not a valid IP address"},
		{expr: "[ipRangeContains('10.0.0.0/8', 10)]", errHas: "argument 2 must be a string, got integer"},
	})
}

func TestFuncLogical(t *testing.T) {
	runExprCases(t, []exprCase{
		{expr: "[and(true(), false())]", want: false},
		{expr: "[and(true(), true(), true())]", want: true},
		{expr: "[or(false(), true())]", want: true},
		{expr: "[or(false(), false())]", want: false},
		{expr: "[not(true())]", want: false},
		{expr: "[not(equals(1, 2))]", want: true},
		// and/or stop at the deciding argument; if evaluates only its branch.
		{expr: "[and(false(), field('boom'))]", want: false},
		{expr: "[or(true(), field('boom'))]", want: true},
		{expr: "[if(equals(1, 1), 'yes', 'no')]", want: "yes"},
		{expr: "[if(equals(field('name'), 'x'), field('boom'), 'b')]", want: "b"},
		{expr: "[if(greaterOrEquals(length(field('name')), 3), substring(field('name'), 0, 3), 'short')]", want: "web"},
		{expr: "[if('true', 1, 2)]", errHas: "if: argument 1 must be a boolean, got string"},
		{expr: "[and(true(), 1)]", errHas: "and: argument 2 must be a boolean, got integer"},
		{expr: "[or(field('num'), true())]", errHas: "or: argument 1 must be a boolean, got integer"},
		{expr: "[not('false')]", errHas: "not: argument 1 must be a boolean, got string"},
		{expr: "[bool('true')]", want: true},
		{expr: "[bool('False')]", want: false},
		{expr: "[bool(1)]", want: true},
		{expr: "[bool(0)]", want: false},
		{expr: "[bool(true())]", want: true},
		{expr: "[bool('yes')]", errHas: "bool: cannot convert 'yes' to a boolean"},
		{expr: "[bool(createArray())]", errHas: "bool: argument 1 must be a string, integer or boolean, got array"},
		{expr: "[true()]", want: true},
		{expr: "[false()]", want: false},
	})
}

func TestFuncComparison(t *testing.T) {
	runExprCases(t, []exprCase{
		{expr: "[coalesce(null(), null(), 'a')]", want: "a"},
		{expr: "[coalesce(parameters('nullp'), field('absent'))]", want: nil},
		{expr: "[coalesce(parameters('nullp'), '', 'x')]", want: ""},
		{expr: "[coalesce('first', field('boom'))]", want: "first"},
		{expr: "[empty(coalesce(null(), null()))]", want: true},
		// equals is deep and case-sensitive.
		{expr: "[equals('a', 'a')]", want: true},
		{expr: "[equals('a', 'A')]", want: false},
		{expr: "[equals(1, 1)]", want: true},
		{expr: "[equals(1, '1')]", want: false},
		{expr: "[equals(1, float('1'))]", want: true},
		{expr: "[equals(createArray('a', 'b'), createArray('a', 'b'))]", want: true},
		{expr: "[equals(createArray('a', 'b'), createArray('b', 'a'))]", want: false},
		{expr: `[equals(json('{"a":[1,{"b":null}]}'), json('{"a":[1,{"b":null}]}'))]`, want: true},
		{expr: `[equals(json('{"a":1}'), json('{"A":1}'))]`, want: false},
		{expr: "[equals(null(), null())]", want: true},
		{expr: "[equals(true(), 'True')]", want: false},
		// Ordering: numbers, or strings compared as ARM does (greater('A', 'a') is true).
		{expr: "[less(1, 2)]", want: true},
		{expr: "[less(2, 2)]", want: false},
		{expr: "[lessOrEquals(2, 2)]", want: true},
		{expr: "[greater(1, 2)]", want: false},
		{expr: "[greaterOrEquals(2, 1)]", want: true},
		{expr: "[less(1.5, 2)]", want: true},
		{expr: "[greater(float('2.5'), 2)]", want: true},
		{expr: "[greater(9223372036854775807, 9223372036854775806)]", want: true},
		{expr: "[greater('A', 'a')]", want: true},
		{expr: "[greaterOrEquals('A', 'a')]", want: true},
		{expr: "[less('A', 'a')]", want: false},
		{expr: "[lessOrEquals('A', 'a')]", want: false},
		{expr: "[less('a', 'B')]", want: true},
		{expr: "[less('abc', 'abd')]", want: true},
		{expr: "[less('ab', 'abc')]", want: true},
		{expr: "[less('abc', 'ABC')]", want: true},
		{expr: "[lessOrEquals('abc', 'abc')]", want: true},
		{expr: "[greater('2024-02-01T00:00:00Z', '2024-01-31T23:59:59Z')]", want: true},
		{expr: "[less('b', 'Ä')]", want: false},
		{expr: "[less('é', 'f')]", want: true},
		{expr: "[less('e', 'é')]", want: true},
		{expr: "[less('é', 'E')]", want: false},
		{expr: "[less('éa', 'eb')]", want: true},
		{expr: "[less('Ab', 'aC')]", want: true},
		{expr: "[less(1, 'a')]", errHas: "less: cannot compare integer with string; both must be numbers or both strings"},
		{expr: "[greater(null(), 1)]", errHas: "greater: cannot compare null with integer"},
		{expr: "[greater(createArray(), createArray())]", errHas: "cannot compare array with array"},
	})
}

func TestFuncNumeric(t *testing.T) {
	runExprCases(t, []exprCase{
		{expr: "[add(1, 2)]", want: int64(3)},
		{expr: "[sub(1, 5)]", want: int64(-4)},
		{expr: "[mul(3, -4)]", want: int64(-12)},
		{expr: "[div(7, 2)]", want: int64(3)},
		{expr: "[div(-7, 2)]", want: int64(-3)},
		{expr: "[mod(7, 3)]", want: int64(1)},
		{expr: "[mod(-7, 3)]", want: int64(-1)},
		{expr: "[add(field('num'), float('1'))]", want: int64(8)},
		{expr: "[div(1, 0)]", errHas: "div: division by zero"},
		{expr: "[mod(1, 0)]", errHas: "mod: division by zero"},
		{expr: "[add(9223372036854775807, 1)]", errHas: "add: the result of 9223372036854775807 and 1 overflows a 64-bit integer"},
		{expr: "[sub(-9223372036854775807, 2)]", errHas: "overflows"},
		{expr: "[mul(4611686018427387904, 2)]", errHas: "overflows"},
		{expr: "[mul(-4611686018427387904, 2)]", want: int64(-9223372036854775808)},
		{expr: "[div(sub(-9223372036854775807, 1), -1)]", errHas: "overflows"},
		{expr: "[mod(sub(-9223372036854775807, 1), -1)]", want: int64(0)},
		{expr: "[add('1', 2)]", errHas: "add: argument 1 must be an integer, got string"},
		{expr: "[add(1.5, 2)]", errHas: "add: argument 1 must be an integer, got float"},
		{expr: "[int('42')]", want: int64(42)},
		{expr: "[int(' -42 ')]", want: int64(-42)},
		{expr: "[int(4.7)]", want: int64(4)},
		{expr: "[int(7)]", want: int64(7)},
		{expr: "[int('4.2')]", errHas: "int: cannot convert '4.2' to an integer"},
		{expr: "[int(true())]", errHas: "int: argument 1 must be a string or integer, got boolean"},
		{expr: "[float('1.5')]", want: 1.5},
		{expr: "[float(2)]", want: float64(2)},
		{expr: "[float('x')]", errHas: "float: cannot convert 'x' to a float"},
		{expr: "[float('NaN')]", errHas: "cannot convert"},
		{expr: "[min(3, 1, 2)]", want: int64(1)},
		{expr: "[max(createArray(1, 5), 3)]", want: int64(5)},
		{expr: "[min(createArray(0, 3), 2)]", want: int64(0)},
		{expr: "[max(1, 2.5)]", want: 2.5},
		{expr: "[min(createArray())]", errHas: "min: there are no values to choose from"},
		{expr: "[max('a')]", errHas: "max: argument 1 must be a number or an array of numbers, got string"},
		{expr: "[range(1, 3)]", want: jv(`[1,2,3]`)},
		{expr: "[range(-2, 2)]", want: jv(`[-2,-1]`)},
		{expr: "[range(0, 0)]", want: jv(`[]`)},
		{expr: "[range(0, 10001)]", errHas: "range: count must be between 0 and 10000, got 10001"},
		{expr: "[range(0, -1)]", errHas: "count must be between"},
		{expr: "[range(2147483647, 1)]", errHas: "must not exceed 2147483647"},
		{expr: "[range(-2147483649, 1)]", errHas: "startIndex must be at least -2147483648"},
	})
}

func TestFuncArraysAndObjects(t *testing.T) {
	runExprCases(t, []exprCase{
		{expr: "[array('a')]", want: jv(`["a"]`)},
		{expr: "[array(createArray(1))]", want: jv(`[1]`)},
		{expr: `[array(json('{"a":1}'))]`, want: jv(`[{"a":1}]`)},
		{expr: "[createArray()]", want: jv(`[]`)},
		{expr: "[createArray(1, 'a', true(), null(), createArray())]", want: jv(`[1,"a",true,null,[]]`)},
		{expr: "[createObject('a', 1, 'b', 'x')]", want: jv(`{"a":1,"b":"x"}`)},
		{expr: "[createObject()]", want: jv(`{}`)},
		{expr: "[createObject(1, 2)]", errHas: "createObject: argument 1 must be a string, got integer"},
		{expr: "[concat('a', 'b', 'c')]", want: "abc"},
		{expr: "[concat('vm', 1)]", want: "vm1"},
		{expr: "[concat('x', true(), null(), 1.5)]", want: "xTrue1.5"},
		{expr: "[concat(createArray(1), createArray(2, 3))]", want: jv(`[1,2,3]`)},
		{expr: "[concat(createArray(1), null(), createArray('a'))]", want: jv(`[1,"a"]`)},
		{expr: "[concat(createArray(1), 'a')]", errHas: "concat: argument 2 must be an array like the first, got string"},
		{expr: "[concat('a', createArray(1))]", errHas: "concat: argument 2 must be a string like the first, got array"},
		{expr: "[concat(createObject())]", errHas: "must be a string like the first, got object"},
		// contains: case-sensitive substrings and elements, case-insensitive keys.
		{expr: "[contains('OneTwoThree', 'Two')]", want: true},
		{expr: "[contains('OneTwoThree', 'two')]", want: false},
		{expr: "[contains('v123', 12)]", want: true},
		{expr: "[contains(createArray('a', 'b'), 'b')]", want: true},
		{expr: "[contains(createArray('a'), 'A')]", want: false},
		{expr: "[contains(createArray(1, 2), 2)]", want: true},
		{expr: "[contains(createArray(createArray(1)), createArray(1))]", want: true},
		{expr: `[contains(json('{"Key":1}'), 'key')]`, want: true},
		{expr: `[contains(json('{"Key":1}'), 'other')]`, want: false},
		{expr: "[contains(null(), 'x')]", want: false},
		{expr: "[contains(123, 'x')]", errHas: "contains: argument 1 must be an array, object or string, got integer"},
		{expr: "[contains('abc', createArray())]", errHas: "contains: argument 2 must be a string or number"},
		{expr: "[empty('')]", want: true},
		{expr: "[empty(' ')]", want: false},
		{expr: "[empty(createArray())]", want: true},
		{expr: "[empty(json('{}'))]", want: true},
		{expr: "[empty(null())]", want: true},
		{expr: "[empty(field('tags'))]", want: false},
		{expr: "[empty(1)]", errHas: "empty: argument 1 must be an array, object or string, got integer"},
		{expr: "[length('abc')]", want: int64(3)},
		{expr: "[length('')]", want: int64(0)},
		{expr: "[length('é')]", want: int64(1)},
		{expr: "[length('😀')]", want: int64(2)}, // UTF-16 units, as .NET counts
		{expr: "[length(createArray(1, 2))]", want: int64(2)},
		{expr: `[length(json('{"a":1,"b":{"c":2}}'))]`, want: int64(2)},
		{expr: "[length(null())]", want: int64(0)},
		{expr: "[length(1)]", errHas: "length: argument 1 must be an array, object or string, got integer"},
		{expr: "[first(createArray('one', 'two'))]", want: "one"},
		{expr: "[first('One')]", want: "O"},
		{expr: "[first('')]", want: ""},
		{expr: "[first(createArray())]", want: nil},
		{expr: "[last(createArray(1, 2, 3))]", want: int64(3)},
		{expr: "[last('One')]", want: "e"},
		{expr: "[last('aé')]", want: "é"},
		{expr: "[first(1)]", errHas: "first: argument 1 must be an array or string, got integer"},
		{expr: "[take(createArray(1, 2, 3), 2)]", want: jv(`[1,2]`)},
		{expr: "[take('one two', 3)]", want: "one"},
		{expr: "[take('abc', -1)]", want: ""},
		{expr: "[take('abc', 10)]", want: "abc"},
		{expr: "[take(createArray(1), 0)]", want: jv(`[]`)},
		{expr: "[skip(createArray(1, 2, 3), 2)]", want: jv(`[3]`)},
		{expr: "[skip('one two three', 4)]", want: "two three"},
		{expr: "[skip('abc', -5)]", want: "abc"},
		{expr: "[skip('abc', 9)]", want: ""},
		{expr: "[skip('😀x', 2)]", want: "x"},
		{expr: "[skip(1, 1)]", errHas: "skip: argument 1 must be an array or string, got integer"},
		{expr: "[take('abc', 'x')]", errHas: "take: argument 2 must be an integer, got string"},
		{expr: "[indexOf(createArray('a', 'b'), 'b')]", want: int64(1)},
		{expr: "[indexOf(createArray('a'), 'A')]", want: int64(-1)},
		{expr: "[lastIndexOf(createArray(1, 2, 1), 1)]", want: int64(2)},
		{expr: "[indexOf(createArray(), 1)]", want: int64(-1)},
		{expr: "[union(createArray('one', 'two', 'three'), createArray('three', 'four'))]", want: jv(`["one","two","three","four"]`)},
		{expr: "[union(createArray(1, 1), createArray())]", want: jv(`[1]`)},
		{expr: "[union(createArray(), createArray())]", want: jv(`[]`)},
		{expr: `[union(json('{"a":"1","c":{"x":1}}'), json('{"b":"2","c":{"y":2}}'))]`, want: jv(`{"a":"1","b":"2","c":{"x":1,"y":2}}`)},
		{expr: `[union(json('{"one":"a","three":"c1"}'), json('{"three":"c2","four":"d"}'))]`, want: jv(`{"one":"a","three":"c2","four":"d"}`)},
		{expr: `[union(json('{"n":[1,2]}'), json('{"n":[3,4]}'))]`, want: jv(`{"n":[3,4]}`)},
		{expr: `[union(json('[["one","two"],["three"]]'), json('[["three"],["four","two"]]'))]`, want: jv(`[["one","two"],["three"],["four","two"]]`)},
		{expr: "[union(createArray(1), 'a')]", errHas: "union: argument 2 must be an array like the first, got string"},
		{expr: "[union('a', 'b')]", errHas: "union: argument 1 must be an array or object, got string"},
		{expr: "[intersection(createArray('one', 'two', 'three'), createArray('two', 'three'))]", want: jv(`["two","three"]`)},
		{expr: "[intersection(createArray(1, 1, 2), createArray(1), createArray(1, 2))]", want: jv(`[1]`)},
		{expr: `[intersection(json('{"one":"a","two":"b","three":"c"}'), json('{"one":"a","two":"z","three":"c"}'))]`, want: jv(`{"one":"a","three":"c"}`)},
		{expr: "[intersection(createArray(1), createObject())]", errHas: "intersection: argument 2 must be an array like the first, got object"},
		{expr: `[items(json('{"b":2,"a":{"x":1}}'))]`, want: jv(`[{"key":"a","value":{"x":1}},{"key":"b","value":2}]`)},
		{expr: "[items(json('{}'))]", want: jv(`[]`)},
		{expr: "[items(createArray())]", errHas: "items: argument 1 must be an object, got array"},
		{expr: `[objectKeys(json('{"b":2,"a":1}'))]`, want: jv(`["a","b"]`)},
		{expr: `[shallowMerge(json('[{"a":1,"n":{"x":1}},{"b":2,"n":{"y":2}}]'))]`, want: jv(`{"a":1,"b":2,"n":{"y":2}}`)},
		{expr: "[shallowMerge(createArray(1))]", errHas: "shallowMerge: every element must be an object, got integer"},
		{expr: "[flatten(json('[[1,2],[],[3]]'))]", want: jv(`[1,2,3]`)},
		{expr: "[flatten(createArray(1))]", errHas: "flatten: every element must be an array, got integer"},
		{expr: `[tryGet(json('{"a":{"b":1}}'), 'a', 'b')]`, want: int64(1)},
		{expr: `[tryGet(json('{"a":{"B":1}}'), 'A', 'b')]`, want: int64(1)},
		{expr: `[tryGet(json('{"a":1}'), 'z')]`, want: nil},
		{expr: `[tryGet(json('{"a":1}'), 'z', 'deeper')]`, want: nil},
		{expr: "[tryGet(createArray(1, 2), 1)]", want: int64(2)},
		{expr: "[tryGet(createArray(1, 2), 5)]", want: nil},
		{expr: "[tryGet(createArray(1, 2), -1)]", want: nil},
		{expr: "[tryGet(null(), 'a')]", want: nil},
		{expr: "[tryGet('s', 'a')]", errHas: "tryGet: cannot look up a key in string"},
		{expr: "[tryGet(createArray(1), 'a')]", errHas: "tryGet: argument 2 must be an integer index for an array, got string"},
		{expr: `[tryGet(json('{"a":1}'), 1)]`, errHas: "tryGet: argument 2 must be a string key for an object, got integer"},
		{expr: `[json('{"a":[1,2.5,true,null,"s"]}')]`, want: jv(`{"a":[1,2.5,true,null,"s"]}`)},
		{expr: "[json('null')]", want: nil},
		{expr: "[json('1')]", want: int64(1)},
		{expr: "[json('\"text\"')]", want: "text"},
		{expr: "[json(' [ ] ')]", want: jv(`[]`)},
		{expr: "[json('{')]", errHas: "json: argument 1 is not valid JSON"},
		{expr: "[json('{} x')]", errHas: "unexpected data after the JSON value"},
		{expr: "[json(1)]", errHas: "json: argument 1 must be a string, got integer"},
		{expr: "[null()]", want: nil},
	})
}

func TestFuncStrings(t *testing.T) {
	runExprCases(t, []exprCase{
		{expr: `[string(json('{"valueA":10,"valueB":"Example Text"}'))]`, want: `{"valueA":10,"valueB":"Example Text"}`},
		{expr: "[string(createArray('a', 'b', 'c'))]", want: `["a","b","c"]`},
		{expr: "[string(5)]", want: "5"},
		{expr: "[string(-5)]", want: "-5"},
		{expr: "[string(true())]", want: "True"},
		{expr: "[string(false())]", want: "False"},
		{expr: "[string(null())]", want: ""},
		{expr: "[string(float('1.5'))]", want: "1.5"},
		{expr: "[string(float('1e20'))]", want: "1E+20"},
		{expr: "[string(float('0.000001'))]", want: "1E-06"},
		{expr: "[string('<&>')]", want: "<&>"},
		{expr: `[string(createArray('<"\', float('2'), null(), true()))]`, want: `["<\"\\",2.0,null,true]`},
		{expr: "[toLower('One Two')]", want: "one two"},
		{expr: "[toUpper('one two')]", want: "ONE TWO"},
		{expr: "[toUpper('straße')]", want: "STRAßE"}, // invariant upper case keeps ß, as .NET's ToUpperInvariant
		{expr: "[trim('  a b \t\n')]", want: "a b"},
		{expr: "[toLower(1)]", errHas: "toLower: argument 1 must be a string, got integer"},
		{expr: "[trim(null())]", errHas: "trim: argument 1 must be a string, got null"},
		{expr: "[split('one,two,three', ',')]", want: jv(`["one","two","three"]`)},
		{expr: "[split('one;two,three', createArray(',', ';'))]", want: jv(`["one","two","three"]`)},
		{expr: "[split('a,,b,', ',')]", want: jv(`["a","","b",""]`)},
		{expr: "[split('', ',')]", want: jv(`[""]`)},
		{expr: "[split('abc', '')]", want: jv(`["abc"]`)},
		{expr: "[split('a--b-c', createArray('-', '--'))]", want: jv(`["a","","b","c"]`)},
		{expr: "[split('a--b-c', createArray('--', '-'))]", want: jv(`["a","b","c"]`)},
		{expr: "[split(null(), ',')]", errHas: "split: argument 1 must be a string, got null"},
		{expr: "[split('a', 1)]", errHas: "split: argument 2 must be a string or an array of strings, got integer"},
		{expr: "[split('a', createArray(1))]", errHas: "split: every delimiter must be a string, got integer"},
		{expr: "[join(createArray('a', 'b'), '-')]", want: "a-b"},
		{expr: "[join(createArray(1, true(), null()), ',')]", want: "1,True,"},
		{expr: "[join(createArray(), ',')]", want: ""},
		{expr: "[join(createArray(createArray()), ',')]", errHas: "join: element 0 is an array, not a string"},
		{expr: "[replace('123-123-1234', '-', '')]", want: "1231231234"},
		{expr: "[replace('123-123-1234', '1234', 'xxxx')]", want: "123-123-xxxx"},
		{expr: "[replace('aA', 'a', 'b')]", want: "bA"},
		{expr: "[replace('a', '', 'x')]", errHas: "replace: the string to replace must not be empty"},
		{expr: "[replace(padLeft('', 100000, 'a'), 'a', 'aaaaaa')]", errHas: "longer than 131072 characters"},
		{expr: "[substring('one two three', 4, 3)]", want: "two"},
		{expr: "[substring('abc', 1)]", want: "bc"},
		{expr: "[substring('abc')]", want: "abc"},
		{expr: "[substring('abc', 3)]", want: ""},
		{expr: "[substring('abc', 1, 0)]", want: ""},
		{expr: "[substring('a😀b', 1, 2)]", want: "😀"},
		{expr: "[substring('1234567890', 0, 11)]", errHas: "substring: the index and length must refer to a location within the string: index 0, length 11, string length 10"},
		{expr: "[substring('abc', -1, 1)]", errHas: "substring: startIndex -1 is outside the string of length 3"},
		{expr: "[substring('abc', 4)]", errHas: "startIndex 4 is outside"},
		{expr: "[substring('abc', 0, -1)]", errHas: "substring: length -1 must not be negative"},
		{expr: "[startsWith('abcdef', 'AB')]", want: true},
		{expr: "[startsWith('abc', 'bc')]", want: false},
		{expr: "[startsWith('abc', '')]", want: true},
		{expr: "[endsWith('abcdef', 'EF')]", want: true},
		{expr: "[endsWith('a', 'abc')]", want: false},
		{expr: "[endsWith('ÉCOLE', 'olE')]", want: true},
		{expr: "[startsWith(1, 'a')]", errHas: "startsWith: argument 1 must be a string, got integer"},
		{expr: "[indexOf('test', 't')]", want: int64(0)},
		{expr: "[lastIndexOf('test', 't')]", want: int64(3)},
		{expr: "[indexOf('abcdef', 'CD')]", want: int64(2)},
		{expr: "[lastIndexOf('abcdef', 'AB')]", want: int64(0)},
		{expr: "[indexOf('abcdef', 'z')]", want: int64(-1)},
		{expr: "[indexOf('😀Ab', 'aB')]", want: int64(2)},
		{expr: "[lastIndexOf('éaÉa', 'éA')]", want: int64(2)},
		{expr: "[indexOf('abc', 1)]", errHas: "indexOf: argument 2 must be a string, got integer"},
		{expr: "[padLeft('123', 10, '0')]", want: "0000000123"},
		{expr: "[padLeft(123, 5)]", want: "  123"},
		{expr: "[padLeft('abcdef', 3, '0')]", want: "abcdef"},
		{expr: "[padLeft('a', 3, 'xy')]", errHas: "padLeft: paddingCharacter must be a single character, got 'xy'"},
		{expr: "[padLeft('a', -1)]", errHas: "padLeft: totalLength must be between 0 and 131072, got -1"},
		{expr: "[padLeft(true(), 3)]", errHas: "padLeft: argument 1 must be a string or integer, got boolean"},
		{expr: "[format('{0}, {1}. Formatted number: {2:N0}', 'Hello', 'User', 8175133)]", want: "Hello, User. Formatted number: 8,175,133"},
		{expr: "[format('{0:D5}|{1:D}', 42, -7)]", want: "00042|-7"},
		{expr: "[format('{0:X}|{0:x4}|{1:X}', 255, -1)]", want: "FF|00ff|FFFFFFFFFFFFFFFF"},
		{expr: "[format('{0:F2}', float('3.14159'))]", want: "3.14"},
		{expr: "[format('{0:F}', 3)]", want: "3.00"},
		{expr: "[format('{0:N2}', 1234.5)]", want: "1,234.50"},
		{expr: "[format('{0:N}', -1234567)]", want: "-1,234,567.00"},
		{expr: "[format('{0:P1}', float('0.125'))]", want: "12.5 %"},
		{expr: "[format('{0:E2}', 12345)]", want: "1.23E+004"},
		{expr: "[format('{0:e}', float('0.5'))]", want: "5.000000e-001"},
		{expr: "[format('{0:000}', 7)]", want: "007"},
		{expr: "[format('{0:#,##0.00}', 1234.5)]", want: "1,234.50"},
		{expr: "[format('{0:#.##}', float('0.5'))]", want: ".5"},
		{expr: "[format('{0:0.#}', -2)]", want: "-2"},
		{expr: "[format('{0:G}', 12)]", want: "12"},
		{expr: "[format('{0,5}|{1,-5}|', 'a', 'b')]", want: "    a|b    |"},
		{expr: "[format('{{{0}}}', 1)]", want: "{1}"},
		{expr: "[format('{0} {0}', true())]", want: "True True"},
		{expr: "[format('{0:N2}', 'text')]", want: "text"},
		{expr: "[format('no items')]", want: "no items"},
		{expr: "[format('{1}', 'a')]", errHas: "format: format item {1} has no argument; 1 given"},
		{expr: "[format('{0', 1)]", errHas: "format: unmatched '{' at position 0"},
		{expr: "[format('a}', 1)]", errHas: "format: unmatched '}' at position 1"},
		{expr: "[format('{x}', 1)]", errHas: "format: invalid format item '{x}'"},
		{expr: "[format('{0,x}', 1)]", errHas: "format: invalid alignment in '{0,x}'"},
		{expr: "[format('{0:Q}', 1)]", errHas: "format: format specifier 'Q' is not supported"},
		{expr: "[format('{0:D}', 1.5)]", errHas: "format: format 'D' applies to integers only"},
		{expr: "[base64('one, two, three')]", want: "b25lLCB0d28sIHRocmVl"},
		{expr: "[base64('héllo')]", want: "aMOpbGxv"},
		{expr: "[base64ToString('b25lLCB0d28sIHRocmVl')]", want: "one, two, three"},
		{expr: "[base64ToJson('eyJvbmUiOiAiYSIsICJ0d28iOiAiYiJ9')]", want: jv(`{"one":"a","two":"b"}`)},
		{expr: "[base64ToString('!!')]", errHas: "base64ToString: argument 1 is not valid base64"},
		{expr: "[base64ToJson(base64('nope'))]", errHas: "base64ToJson: the decoded text is not valid JSON"},
		{expr: "[dataUri('Hello')]", want: "data:text/plain;charset=utf8;base64,SGVsbG8="},
		{expr: "[dataUriToString('data:;base64,SGVsbG8sIFdvcmxkIQ==')]", want: "Hello, World!"},
		{expr: "[dataUriToString(dataUri('round trip'))]", want: "round trip"},
		{expr: "[dataUriToString('data:text/plain,a%20b')]", want: "a b"},
		{expr: "[dataUriToString('nope')]", errHas: "dataUriToString: 'nope' is not a data URI"},
		{expr: "[uri('http://contoso.org/firstpath', 'myscript.sh')]", want: "http://contoso.org/myscript.sh"},
		{expr: "[uri('http://contoso.org/firstpath/', 'myscript.sh')]", want: "http://contoso.org/firstpath/myscript.sh"},
		{expr: "[uri('http://contoso.org/firstpath/azuredeploy.json', 'myscript.sh')]", want: "http://contoso.org/firstpath/myscript.sh"},
		{expr: "[uri('http://contoso.org/firstpath/azuredeploy.json/', 'myscript.sh')]", want: "http://contoso.org/firstpath/azuredeploy.json/myscript.sh"},
		{expr: "[uri('http://contoso.com/resources/', 'nested/azuredeploy.json')]", want: "http://contoso.com/resources/nested/azuredeploy.json"},
		{expr: "[uri('relative/path', 'x')]", errHas: "uri: baseUri 'relative/path' is not an absolute URI"},
		{expr: "[uriComponent('http://contoso.com/resources/nested/azuredeploy.json')]", want: "http%3A%2F%2Fcontoso.com%2Fresources%2Fnested%2Fazuredeploy.json"},
		{expr: "[uriComponent('a b~é+')]", want: "a%20b~%C3%A9%2B"},
		{expr: "[uriComponentToString('http%3A%2F%2Fcontoso.com%2Fresources%2Fnested%2Fazuredeploy.json')]", want: "http://contoso.com/resources/nested/azuredeploy.json"},
		{expr: "[uriComponentToString('a+b%zz%2')]", want: "a+b%zz%2"},
		{expr: "[uriComponentToString(uriComponent('ünïcødé & co'))]", want: "ünïcødé & co"},
	})
}

// TestFuncHashes checks uniqueString against values Azure returned for the same inputs
// (recorded by third parties from real deployments) and guid against RFC 4122 version 5
// UUIDs under ARM's namespace, computed independently with Python's uuid.uuid5.
func TestFuncHashes(t *testing.T) {
	runExprCases(t, []exprCase{
		{expr: "[uniqueString('aaa')]", want: "zavj67f3en4hc"},
		{expr: "[uniqueString('bbb')]", want: "w5eragfxe33cy"},
		{expr: "[uniqueString('zzz')]", want: "cryksdzzzawae"},
		{expr: "[uniqueString('xxx', 'yyy', 'zzz')]", want: "lghi7k5js7itq"},
		{expr: "[uniqueString('test')]", want: "rbgf3xv4ufgzg"},
		{expr: "[uniqueString('hello', 'world')]", want: "a7wkljktk6wne"},
		{expr: "[uniqueString('foo', 'bar', 'baz')]", want: "xzi4ioaxtmth4"},
		{expr: "[uniqueString('/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/my-rg')]", want: "bmg7c6xu4tw46"},
		{expr: "[length(uniqueString(''))]", want: int64(13)},
		{expr: "[uniqueString(1)]", errHas: "uniqueString: argument 1 must be a string, got integer"},
		{expr: "[guid('a', 'b')]", want: "2d796349-8c7e-55ec-9624-54ece82ed031"},
		{expr: "[guid('/subscriptions/123/resourceGroups/rg-x')]", want: "05bd9d2d-c510-5a23-b3e5-0441638776bc"},
		{expr: "[guid('héllo')]", want: "344d46d5-ee69-50eb-9399-360ef14aa954"},
		{expr: "[guid('a', 1)]", errHas: "guid: argument 2 must be a string, got integer"},
	})
}

// TestFuncLimits checks Azure's evaluation limits on what functions return.
func TestFuncLimits(t *testing.T) {
	big := "[concat(padLeft('', 131072, 'x'), 'y')]"
	runExprCases(t, []exprCase{
		{expr: "[length(padLeft('', 131072, 'x'))]", want: int64(131072)},
		{expr: big, errHas: "concat: the result is longer than 131072 characters, Azure Policy's limit"},
		{expr: "[format('{0,131073}', 'a')]", errHas: "invalid alignment"},
		{expr: "[length(concat(range(0, 10000), range(0, 10000), range(0, 10000)))]", want: int64(30000)},
	})
	// The element limit applies to a function's result, so the concat above fails when
	// evaluated (it is folded into a failure, not an error at compile time).
	e, err := CompileExpression("[concat(range(0, 10000), range(0, 10000), range(0, 10000), range(0, 3000))]", CompileScope{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Eval(newExprTestEnv()); err == nil || !strings.Contains(err.Error(), "more than 32768 elements") {
		t.Errorf("element limit: %v", err)
	}
}

// TestExprAzureCorpus compiles every template expression in the policy rules of Azure's
// published definitions (../shared/azure-policy), with the parameters each declares and
// the count names around each expression. Deployment templates inside deployIfNotExists
// are skipped: deployment-template functions are allowed there.
func TestExprAzureCorpus(t *testing.T) {
	root := filepath.Join("..", "..", "shared", "azure-policy")
	if _, err := os.Stat(root); err != nil {
		t.Skip("no corpus at " + root)
	}
	files, exprs := 0, 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		doc, err := DecodeJSON(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")))
		if err != nil {
			return nil // not ours to judge here
		}
		m, _ := doc.(map[string]any)
		if p, ok := m["properties"].(map[string]any); ok {
			m = p
		}
		rule, ok := m["policyRule"]
		if !ok {
			return nil
		}
		declared := map[string]bool{}
		if ps, ok := m["parameters"].(map[string]any); ok {
			for k := range ps {
				declared[strings.ToLower(k)] = true
			}
		}
		files++
		scope := CompileScope{Parameters: func(n string) bool { return declared[strings.ToLower(n)] }}
		var walk func(v any, loc string, counts []string)
		walk = func(v any, loc string, counts []string) {
			switch x := v.(type) {
			case string:
				if !exprIsTemplate(x) {
					return
				}
				exprs++
				s := scope
				s.Location, s.CountNames = loc, counts
				if _, err := CompileExpression(x, s); err != nil {
					t.Errorf("%s: %v", path, err)
				}
			case []any:
				for i, e := range x {
					walk(e, fmt.Sprintf("%s[%d]", loc, i), counts)
				}
			case map[string]any:
				inner := counts
				if c, ok := x["count"].(map[string]any); ok {
					name, _ := c["name"].(string)
					if name == "" {
						name, _ = c["field"].(string)
					}
					if name == "" {
						name = "default"
					}
					inner = append(append([]string(nil), counts...), name)
					walk(c["field"], loc+".count.field", counts)
					walk(c["value"], loc+".count.value", counts)
					walk(c["where"], loc+".count.where", inner)
				}
				for k, e := range x {
					if k == "count" || k == "deployment" {
						continue
					}
					walk(e, loc+"."+k, counts)
				}
			}
		}
		walk(rule, "policyRule", nil)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d expressions in %d definitions compiled", exprs, files)
	if files == 0 || exprs == 0 {
		t.Error("the corpus held no definitions with expressions")
	}
}
