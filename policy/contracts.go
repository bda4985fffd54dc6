package policy

import "time"

// This file holds the seams between the parts of the package: the environment an
// expression is evaluated in, and the compile-time scope that checks an expression's names.
// Each part (expressions, aliases, operators, conditions) is written against these.

// Env is what a template expression can see while it is evaluated.
type Env interface {
	// Parameter returns the assignment's value of a declared parameter (or its default).
	Parameter(name string) (any, bool)
	// Field resolves field('name') on the resource being evaluated: a built-in field
	// (name, type, location, tags['x'], ...) or an alias. A [*] alias gives an array.
	Field(name string) (any, error)
	// Current returns the element that count is looking at: current() with name "" is the
	// innermost count's element, current('name') the count with that name or alias.
	Current(name string) (any, bool)
	// Now is the evaluation time, passed in by the caller (utcNow()).
	Now() time.Time
	// ResourceGroup, Subscription, Policy and RequestContext are the objects the functions of
	// the same names return.
	ResourceGroup() map[string]any
	Subscription() map[string]any
	Policy() map[string]any
	RequestContext() map[string]any
}

// CompileScope is what the compiler knows while it compiles an expression.
type CompileScope struct {
	// Parameters reports whether a parameter is declared; parameters('x') of an undeclared
	// one is a compile error. Nil accepts any name.
	Parameters func(name string) bool
	// CountNames are the names current('name') may use here: the names and array aliases
	// of the enclosing counts, innermost last. current() without a name needs one.
	CountNames []string
	// Location names where the expression stands, for error messages
	// ("policyRule.if.allOf[0].value").
	Location string
}
