package policy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// FuzzCompileExpression compiles arbitrary strings: compiling never panics, compiling twice
// gives the same result, every failure is an *Error of a known code at the scope's
// location, evaluation never panics and is repeatable, and the canonical form of a
// compiled expression compiles back to itself.
func FuzzCompileExpression(f *testing.F) {
	for _, s := range []string{
		"plain", "[[escaped]", "[]", "[concat('a', 'b')]", "[parameters('loc')]",
		"[field('tags')['env']]", "[resourceGroup().tags[parameters('tagName')]]",
		"[if(equals(toLower(field('name')), 'x'), 'a', 'b')]", "[split(field('name'), '-')[0]]",
		"[substring(field('name'), 0, 3)]", "[ipRangeContains('10.0.0.0/24', current())]",
		"[addDays(utcNow(), -30)]", "[format('{0:N2}|{1,-4}', 1234.5, 'x')]",
		"[uniqueString(subscription().id, 'x')]", "[guid('a')]", "[json('{\"a\":[1,2.5]}').a[1]]",
		"[union(createObject('a', 1), json('{\"b\":{\"c\":null}}'))]", "[createArray(1, -2, 3.5)[0]]",
		"[tryGet(requestContext().identity, 'idtyp')]", "[current('n')]", "[tolowr('x')]",
		"[resourceId('a', 'b')]", "['it''s']", "[concat('a'", "[true]", "[padLeft('', 5, '0')]",
		"[range(0, 3)]", "[items(field('tags'))]", "[base64ToJson(base64('[1]'))]",
		"[string(createArray(true(), null()))]", "[less('A', 'a')]", "[mod(-7, 3)]",
		"[dataUriToString(dataUri('x'))]", "[uri('http://a/b/c', '../d')]", "[coalesce(null(), 1)]",
		`[json('""')[0]]`, "[json('5').x]", // found by fuzzing: folded failures print back as calls
	} {
		f.Add(s)
	}
	codes := map[string]bool{CodeParse: true, CodeUnknownFunction: true, CodeUnknownParameter: true, CodeInvalid: true}
	scope := CompileScope{
		Location:   "fuzz",
		CountNames: []string{"n"},
		Parameters: func(name string) bool { return name != "undeclared" },
	}
	f.Fuzz(func(t *testing.T, s string) {
		e1, err1 := CompileExpression(s, scope)
		e2, err2 := CompileExpression(s, scope)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("compiling %q twice: %v, then %v", s, err1, err2)
		}
		if err1 != nil {
			if err1.Error() != err2.Error() {
				t.Fatalf("compiling %q twice gave different errors: %v / %v", s, err1, err2)
			}
			var pe *Error
			if !errors.As(err1, &pe) || !codes[pe.Code] || pe.Location != "fuzz" {
				t.Fatalf("compiling %q: unexpected error %#v", s, err1)
			}
			return
		}
		form := fmt.Sprint(e1)
		if form != fmt.Sprint(e2) {
			t.Fatalf("compiling %q twice gave %s and %s", s, form, fmt.Sprint(e2))
		}
		env := newExprTestEnv()
		v1, eerr1 := e1.Eval(env)
		v2, eerr2 := e2.Eval(env)
		if (eerr1 == nil) != (eerr2 == nil) || eerr1 != nil && eerr1.Error() != eerr2.Error() || !fnDeepEqual(v1, v2) {
			t.Fatalf("evaluating %q twice: %v %v / %v %v", s, v1, eerr1, v2, eerr2)
		}
		if eerr1 != nil {
			var pe *Error
			if !errors.As(eerr1, &pe) || pe.Location != "fuzz" {
				t.Fatalf("evaluating %q: unexpected error %#v", s, eerr1)
			}
		}
		// The canonical form reads back as the same compiled expression.
		src := form
		if !strings.HasPrefix(src, "[") {
			src = "[" + src + "]"
		}
		if len(src) > exprMaxSource {
			return
		}
		e3, err := CompileExpression(src, scope)
		if err != nil {
			if CodeOf(err) == CodeInvalid { // a canonical form may nest or list beyond the limits
				return
			}
			t.Fatalf("canonical form %s of %q does not compile: %v", src, s, err)
		}
		if got := fmt.Sprint(e3); got != form {
			t.Fatalf("canonical form of %q: %s recompiles to %s", s, form, got)
		}
	})
}
