package policy

// This file holds the condition operators of the Azure Policy language (equals, like, in,
// exists, ...) and the comparisons behind them. Sources, all from MicrosoftDocs/azure-docs,
// articles/governance/policy/:
//
//   - concepts/definition-structure-policy-rule.md, "Conditions" and "Fields": the operator
//     list, case rules, like/match syntax, location normalisation, the type error of
//     less/greater, and "a failed evaluation is an implicit deny".
//   - how-to/author-policies-for-arrays.md, "Array conditions": in/notIn expect an array, equals
//     expects a string and fails with "Evaluation result of language expression ... is type
//     'Array', expected type is 'String'"; a missing non-array field selects null.
//   - how-to/determine-non-compliance.md, "Compliance reasons": the reason phrase per operator.
//
// Where the documentation is silent the choice made is written next to the code as
// "Choice:", with the reason.
//
// These functions run for every condition of every resource in a scan, so the common paths
// (string equality, like with a constant pattern, in over a short list, locations already in
// canonical form) do not allocate: case-insensitive comparison folds rune by rune instead of
// lower-casing copies.

import (
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Operator is a condition operator: the key that sits next to "field", "value" or "count"
// in a condition, such as "equals" or "notIn".
type Operator uint8

// The operators, in the order the Azure documentation lists them. The zero Operator is not
// a valid operator, so that a forgotten assignment does not silently mean "equals".
const (
	OpEquals Operator = iota + 1
	OpNotEquals
	OpLike
	OpNotLike
	OpMatch
	OpMatchInsensitively
	OpNotMatch
	OpNotMatchInsensitively
	OpContains
	OpNotContains
	OpIn
	OpNotIn
	OpContainsKey
	OpNotContainsKey
	OpLess
	OpLessOrEquals
	OpGreater
	OpGreaterOrEquals
	OpExists
	opCount // number of operators + 1; keep last
)

// opKeys are the canonical JSON keys, indexed by Operator.
var opKeys = [opCount]string{
	OpEquals:                "equals",
	OpNotEquals:             "notEquals",
	OpLike:                  "like",
	OpNotLike:               "notLike",
	OpMatch:                 "match",
	OpMatchInsensitively:    "matchInsensitively",
	OpNotMatch:              "notMatch",
	OpNotMatchInsensitively: "notMatchInsensitively",
	OpContains:              "contains",
	OpNotContains:           "notContains",
	OpIn:                    "in",
	OpNotIn:                 "notIn",
	OpContainsKey:           "containsKey",
	OpNotContainsKey:        "notContainsKey",
	OpLess:                  "less",
	OpLessOrEquals:          "lessOrEquals",
	OpGreater:               "greater",
	OpGreaterOrEquals:       "greaterOrEquals",
	OpExists:                "exists",
}

// opReasons are Azure's compliance reason phrases (determine-non-compliance.md, "Compliance
// reasons"): what the resource would have needed for the condition to hold.
var opReasons = [opCount]string{
	OpEquals:                "Current value must be equal to the target value.",
	OpNotEquals:             "Current value must not be equal to the target value.",
	OpLike:                  "Current value must be like the target value.",
	OpNotLike:               "Current value must not be like the target value.",
	OpMatch:                 "Current value must case-sensitive match the target value.",
	OpMatchInsensitively:    "Current value must case-insensitive match the target value.",
	OpNotMatch:              "Current value must not case-sensitive match the target value.",
	OpNotMatchInsensitively: "Current value must not case-insensitive match the target value.",
	OpContains:              "Current value must contain the target value.",
	OpNotContains:           "Current value must not contain the target value.",
	OpIn:                    "Current value must be in the target value.",
	OpNotIn:                 "Current value must not be in the target value.",
	OpContainsKey:           "Current value must contain the target value as a key.",
	OpNotContainsKey:        "Current value must not contain the target value as a key.",
	OpLess:                  "Current value must be less than the target value.",
	OpLessOrEquals:          "Current value must be less than or equal to the target value.",
	OpGreater:               "Current value must be greater than the target value.",
	OpGreaterOrEquals:       "Current value must be greater than or equal to the target value.",
	OpExists:                "Current value must exist.",
}

// opReasonNotExists is the phrase for "not exists" and for "exists": false.
const opReasonNotExists = "Current value must not exist."

// opNegations pairs each operator with the one whose reason Azure gives when the operator
// sits under "not" (the same table: "less or not greaterOrEquals", ...). exists has none:
// its negation is exists with the opposite target.
var opNegations = [opCount]Operator{
	OpEquals:                OpNotEquals,
	OpNotEquals:             OpEquals,
	OpLike:                  OpNotLike,
	OpNotLike:               OpLike,
	OpMatch:                 OpNotMatch,
	OpNotMatch:              OpMatch,
	OpMatchInsensitively:    OpNotMatchInsensitively,
	OpNotMatchInsensitively: OpMatchInsensitively,
	OpContains:              OpNotContains,
	OpNotContains:           OpContains,
	OpIn:                    OpNotIn,
	OpNotIn:                 OpIn,
	OpContainsKey:           OpNotContainsKey,
	OpNotContainsKey:        OpContainsKey,
	OpLess:                  OpGreaterOrEquals,
	OpGreaterOrEquals:       OpLess,
	OpGreater:               OpLessOrEquals,
	OpLessOrEquals:          OpGreater,
}

// ParseOperator finds an operator by its JSON key. The match ignores case because Azure
// does: its own documentation writes "Equals" in the examples of author-policies-for-arrays.md
// ("Evaluating the [*] alias"), and its JSON reader matches property names that way.
func ParseOperator(key string) (Operator, bool) {
	for o := OpEquals; o < opCount; o++ {
		if strings.EqualFold(opKeys[o], key) {
			return o, true
		}
	}
	return 0, false
}

// String returns the operator's canonical JSON key, e.g. "notEquals".
func (o Operator) String() string {
	if o.Valid() {
		return opKeys[o]
	}
	return "Operator(" + strconv.Itoa(int(o)) + ")"
}

// Valid reports whether o is one of the operators.
func (o Operator) Valid() bool { return o >= OpEquals && o < opCount }

// Operators returns every operator key in documentation order, for "did you mean"
// suggestions. The slice is the caller's own.
func Operators() []string {
	out := make([]string, 0, opCount-1)
	for o := OpEquals; o < opCount; o++ {
		out = append(out, opKeys[o])
	}
	return out
}

// Reason is Azure's compliance reason phrase for a condition with this operator that was
// not met, e.g. "Current value must be equal to the target value.". For exists it is the
// phrase of "exists": true; ReasonFor covers "exists": false and conditions under "not".
func (o Operator) Reason() string {
	if o.Valid() {
		return opReasons[o]
	}
	return ""
}

// ReasonFor is the reason phrase for a condition that was not met, knowing its target and
// whether it stood under "not" (an odd number of them). Azure words a negated condition as
// its opposite operator ("not less" reads "must be greater than or equal to"), and exists
// by the boolean it expected.
func (o Operator) ReasonFor(target any, negated bool) string {
	if o == OpExists {
		want, err := opExistsTarget(target)
		if err != nil {
			want = true
		}
		if want != negated {
			return opReasons[OpExists]
		}
		return opReasonNotExists
	}
	if negated && o.Valid() {
		return opReasons[opNegations[o]]
	}
	return o.Reason()
}

// CheckTarget validates a constant target when the definition is compiled, so that an
// author learns of a wrong target at once instead of from a failed evaluation. Call it only
// for constant targets: a template expression ("[parameters('x')]") is checked by Apply
// once it has a value. Errors have code CodeInvalid.
func (o Operator) CheckTarget(target any) error {
	if msg := o.targetProblem(target); msg != "" {
		return errorf(CodeInvalid, "", "%s", msg)
	}
	return nil
}

// targetProblem says what is wrong with a target for this operator, or "" when it fits.
// Compile time (CheckTarget) and evaluation time (Apply) share it so that they agree.
func (o Operator) targetProblem(target any) string {
	switch o {
	case OpEquals, OpNotEquals:
		// author-policies-for-arrays.md: an array target for equals is an error ("is type
		// 'Array', expected type is 'String'"). Scalars convert to a string; null is the
		// null() function's result and compares as documented in ValuesEqual.
		switch target.(type) {
		case []any, map[string]any:
			return o.String() + " needs a string, number or boolean target, not " + opArticle(target)
		}
	case OpLike, OpNotLike, OpMatch, OpNotMatch, OpMatchInsensitively, OpNotMatchInsensitively,
		OpContains, OpNotContains, OpContainsKey, OpNotContainsKey:
		// The docs give these a "stringValue" target. Choice: a number or boolean is
		// accepted and read as its JSON text, as Azure converts scalars to the expected
		// string type; an array, object or null has no string form and is refused.
		if !opIsScalar(target) {
			return o.String() + " needs a string target, not " + opArticle(target)
		}
	case OpIn, OpNotIn:
		// author-policies-for-arrays.md: "the policy engine expects the type array" for in
		// and notIn; a string target fails with "is type 'String', expected type is 'Array'".
		if _, ok := target.([]any); !ok {
			return o.String() + " needs an array target, not " + opArticle(target)
		}
	case OpLess, OpLessOrEquals, OpGreater, OpGreaterOrEquals:
		// The docs list "dateValue", "stringValue" and intValue targets.
		switch target.(type) {
		case string, int64, float64:
		default:
			return o.String() + " needs a number, string or date target, not " + opArticle(target)
		}
	case OpExists:
		if _, err := opExistsTarget(target); err != nil {
			return err.Error()
		}
	default:
		return "unknown operator " + o.String()
	}
	return ""
}

// opExistsTarget reads the target of exists: a boolean, or the strings "true" and "false"
// in any case. The docs write it as `"exists": "bool"` and built-in definitions use
// "true", "false", "True" and "False" as well as true and false.
func opExistsTarget(target any) (bool, error) {
	switch t := target.(type) {
	case bool:
		return t, nil
	case string:
		if strings.EqualFold(t, "true") {
			return true, nil
		}
		if strings.EqualFold(t, "false") {
			return false, nil
		}
	}
	return false, errorf(CodeInvalid, "", "exists needs true or false (or the strings \"true\" and \"false\"), not %s", opArticle(target))
}

// Apply evaluates `value <o> target`. value is the field's (or value expression's, or
// count's) value and exists whether the field is present at all; target is the evaluated
// right-hand side. location says the field is a resource location, so strings on both sides
// are compared in normalised form (NormalizeLocation).
//
// A target of the wrong type (except an array or object for equals and notEquals, which is
// compared), and less/greater between values that cannot be compared, give an error with
// code CodeEval; Azure counts a failed evaluation as an implicit deny
// (definition-structure-policy-rule.md, "Value" warning). Everything else gives a boolean:
//
//   - A missing field (exists false) has no value. equals and in only hold against a null
//     target or element; like, match, contains and containsKey do not hold; their "not"
//     forms hold; less/greater do not hold (no error, see below); exists checks presence.
//   - A field whose value is null counts as not existing for exists, and compares equal to
//     null and to "" for equals and in (see ValuesEqual); otherwise it behaves like a
//     missing field.
//   - Each "not" operator is exactly the negation of its positive form.
func (o Operator) Apply(value any, exists bool, target any, location bool) (bool, error) {
	// The target is checked first, whatever the value: a wrong target is the definition's
	// fault and fails for every resource, as in Azure, where it is a type error of the
	// expression.
	switch o {
	case OpEquals, OpNotEquals:
		// An array or object target that only evaluation produces is compared, not an
		// error: author-policies-for-arrays.md ("The field() function inside where
		// conditions") shows a string equals [field('...[*]')] (a one-member array)
		// evaluating to false. A constant or parameter target of that type is refused
		// when the definition is compiled (CheckTarget), as Azure refuses the definition.
		eq := opConditionEqual(value, exists, target, location)
		return eq == (o == OpEquals), nil

	case OpIn, OpNotIn:
		list, ok := target.([]any)
		if !ok {
			return false, o.evalTargetError(target)
		}
		found := false
		for _, e := range list {
			if opConditionEqual(value, exists, e, location) {
				found = true
				break
			}
		}
		return found == (o == OpIn), nil

	case OpLike, OpNotLike:
		pattern, ok := opScalarText(target)
		if !ok {
			return false, o.evalTargetError(target)
		}
		s, ok := opValueText(value, exists)
		m := false
		if ok {
			if location {
				s, pattern = NormalizeLocation(s), NormalizeLocation(pattern)
			}
			m = LikeMatch(pattern, s)
		}
		return m == (o == OpLike), nil

	case OpMatch, OpNotMatch, OpMatchInsensitively, OpNotMatchInsensitively:
		pattern, ok := opScalarText(target)
		if !ok {
			return false, o.evalTargetError(target)
		}
		s, ok := opValueText(value, exists)
		m := false
		if ok {
			if location {
				s, pattern = NormalizeLocation(s), NormalizeLocation(pattern)
			}
			m = PatternMatch(pattern, s, o == OpMatchInsensitively || o == OpNotMatchInsensitively)
		}
		return m == (o == OpMatch || o == OpMatchInsensitively), nil

	case OpContains, OpNotContains:
		if !opIsScalar(target) {
			return false, o.evalTargetError(target)
		}
		return opContains(value, exists, target, location) == (o == OpContains), nil

	case OpContainsKey, OpNotContainsKey:
		key, ok := opScalarText(target)
		if !ok {
			return false, o.evalTargetError(target)
		}
		has := false
		if obj, isObj := value.(map[string]any); isObj && exists {
			has = opHasKeyFold(obj, key)
		}
		return has == (o == OpContainsKey), nil

	case OpLess, OpLessOrEquals, OpGreater, OpGreaterOrEquals:
		switch target.(type) {
		case string, int64, float64:
		default:
			return false, o.evalTargetError(target)
		}
		// Choice: a missing or null value makes every ordering condition false, without an
		// error. The docs' "if the property type doesn't match the condition type, an error
		// is thrown" speaks of a property that has a type; treating absence as an error would
		// turn every resource lacking an optional property into an implicit deny.
		if !exists || value == nil {
			return false, nil
		}
		if location {
			value, target = opNormalizeLocationValue(value), opNormalizeLocationValue(target)
		}
		c, err := CompareValues(value, target)
		if err != nil {
			return false, errorf(CodeEval, "", "%s: %s", o.String(), err.(*Error).Message)
		}
		switch o {
		case OpLess:
			return c < 0, nil
		case OpLessOrEquals:
			return c <= 0, nil
		case OpGreater:
			return c > 0, nil
		default:
			return c >= 0, nil
		}

	case OpExists:
		want, err := opExistsTarget(target)
		if err != nil {
			return false, errorf(CodeEval, "", "%s", err.(*Error).Message)
		}
		// Choice: a property whose value is JSON null does not exist. Azure resources
		// report unset optional properties as null, and "exists": "false" is how built-in
		// definitions test that a property is unset.
		return (exists && value != nil) == want, nil
	}
	return false, errorf(CodeEval, "", "unknown operator %s", o.String())
}

// evalTargetError is the evaluation-time form of targetProblem.
func (o Operator) evalTargetError(target any) error {
	return errorf(CodeEval, "", "%s", o.targetProblem(target))
}

// opConditionEqual is equality as equals and in use it: a missing field equals only null
// (it has no value, so it cannot equal ""; Choice, see Apply), and location strings compare
// normalised.
func opConditionEqual(value any, exists bool, target any, location bool) bool {
	if !exists {
		return target == nil
	}
	if location {
		if a, ok := value.(string); ok {
			if b, ok := target.(string); ok {
				return opLocationEqual(a, b)
			}
		}
	}
	return ValuesEqual(value, target)
}

// opContains is the positive contains: a substring of a string (ignoring case), or an
// element of an array (by ValuesEqual).
func opContains(value any, exists bool, target any, location bool) bool {
	if !exists {
		return false
	}
	switch v := value.(type) {
	case []any:
		for _, e := range v {
			if opConditionEqual(e, true, target, location) {
				return true
			}
		}
		return false
	case map[string]any, nil:
		// Choice: an object contains nothing (containsKey is the operator for keys), and
		// null has no text.
		return false
	}
	s, _ := opScalarText(value)
	sub, _ := opScalarText(target)
	if location {
		s, sub = NormalizeLocation(s), NormalizeLocation(sub)
	}
	// The docs: "the wildcard character (*) cannot be provided in the value" of contains.
	// Choice: a '*' is therefore an ordinary character here, not an error, so that no
	// definition Azure accepts is refused.
	_, ok := opIndexFold(s, sub)
	return ok
}

// opValueText is the text that like and match look at: strings as they are, numbers and
// booleans as their JSON text (Choice: Azure converts them to the operator's string type; a
// count compared with like is a number). Missing, null, arrays and objects have none, so the
// positive operator does not hold.
func opValueText(value any, exists bool) (string, bool) {
	if !exists {
		return "", false
	}
	return opScalarText(value)
}

// opScalarText gives the JSON text of a string, number or boolean. Choice: a float is
// written in plain decimal notation, the shortest that reads back the same ("0.5", not
// "5e-01").
func opScalarText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case int64:
		return strconv.FormatInt(x, 10), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	}
	return "", false
}

// opIsScalar reports whether v is a string, number or boolean.
func opIsScalar(v any) bool {
	switch v.(type) {
	case string, int64, float64, bool:
		return true
	}
	return false
}

// opArticle names a value's type for messages: "an array", "a string", "null".
func opArticle(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any, int64:
		return "an " + TypeName(v)
	case map[string]any:
		return "an object"
	}
	return "a " + TypeName(v)
}

// ValuesEqual is Azure Policy's equality for equals, notEquals, in and notIn:
//
//   - strings compare ignoring case ("all other conditions that evaluate a stringValue are
//     case-insensitive");
//   - numbers compare by value, across int64 and float64;
//   - a boolean equals the string "true" or "false" in any case: the docs' own example
//     compares `[less(length(field('tags')), 3)]` (a boolean) with "equals": "true";
//   - a number equals a string that reads as that number (the docs' value count example 5
//     compares integer destinationPortRange parameters with the string property of NSG
//     rules). Choice: the string may have surrounding white space and uses '.' decimals, as
//     .NET's invariant parsing allows; "0x10", "1_000", "Inf" and "NaN" are not numbers;
//   - null equals null and "" (Choice: Azure's built-in "Inherit a tag from the resource
//     group" tests `[resourceGroup().tags[name]]` notEquals "" to skip a group without the
//     tag, which only works if the missing tag's null equals "");
//   - arrays are equal element by element, objects key by key (keys ignoring case, as
//     Resource Manager property names do), with this same equality.
//
// Anything else (a boolean against a number, an array against a string) is unequal. This is
// the condition operators' equality, not the equals() template function's.
func ValuesEqual(a, b any) bool {
	switch x := a.(type) {
	case string:
		switch y := b.(type) {
		case string:
			return strings.EqualFold(x, y)
		case bool:
			return opBoolText(x, y)
		case int64, float64:
			return opNumericText(x, y)
		case nil:
			return x == ""
		}
		return false
	case int64:
		switch y := b.(type) {
		case int64:
			return x == y
		case float64:
			return opCompareNumbers(x, y) == 0
		case string:
			return opNumericText(y, x)
		}
		return false
	case float64:
		switch y := b.(type) {
		case int64, float64:
			return opCompareNumbers(x, y) == 0
		case string:
			return opNumericText(y, x)
		}
		return false
	case bool:
		switch y := b.(type) {
		case bool:
			return x == y
		case string:
			return opBoolText(y, x)
		}
		return false
	case nil:
		switch y := b.(type) {
		case nil:
			return true
		case string:
			return y == ""
		}
		return false
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !ValuesEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, found := y[k]
			if !found {
				yv, found = opLookupFold(y, k)
			}
			if !found || !ValuesEqual(xv, yv) {
				return false
			}
		}
		return true
	}
	return false
}

// opBoolText reports whether s is b written as text, in any case.
func opBoolText(s string, b bool) bool {
	if b {
		return strings.EqualFold(s, "true")
	}
	return strings.EqualFold(s, "false")
}

// opNumericText reports whether the string s reads as the number n (int64 or float64).
func opNumericText(s string, n any) bool {
	v, ok := opParseNumber(s)
	if !ok {
		return false
	}
	m, _ := opNumOf(n)
	return v.compare(m) == 0
}

// opNum is a number of either kind, held without boxing it in an interface (which would
// allocate for most int64 values).
type opNum struct {
	i     int64
	f     float64
	isInt bool
}

// opNumOf reads an int64 or float64 value.
func opNumOf(v any) (opNum, bool) {
	switch x := v.(type) {
	case int64:
		return opNum{i: x, isInt: true}, true
	case float64:
		return opNum{f: x}, true
	}
	return opNum{}, false
}

// compare orders two numbers by value. An int64 beyond 2^53 is compared exactly with a
// float64, not rounded.
func (a opNum) compare(b opNum) int {
	switch {
	case a.isInt && b.isInt:
		return opCmp(a.i, b.i)
	case a.isInt:
		return -opCompareFloatInt(b.f, a.i)
	case b.isInt:
		return opCompareFloatInt(a.f, b.i)
	}
	return opCmp(a.f, b.f)
}

// opCompareNumbers orders two values that are each an int64 or a float64.
func opCompareNumbers(a, b any) int {
	x, _ := opNumOf(a)
	y, _ := opNumOf(b)
	return x.compare(y)
}

// opParseNumber reads a decimal number: optional sign, digits with an optional fraction and
// exponent, surrounding white space allowed. A whole number that fits is kept as an int64.
// It refuses the extra syntax strconv accepts (hexadecimal, underscores, Inf, NaN), which
// JSON and .NET's invariant parsing do not.
func opParseNumber(s string) (opNum, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return opNum{}, false
	}
	i := 0
	if s[0] == '+' || s[0] == '-' {
		i++
	}
	digits, integral := 0, true
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		digits++
	}
	if i < len(s) && s[i] == '.' {
		integral = false
		for i++; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			digits++
		}
	}
	if digits == 0 {
		return opNum{}, false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		integral = false
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		expDigits := 0
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			expDigits++
		}
		if expDigits == 0 {
			return opNum{}, false
		}
	}
	if i != len(s) {
		return opNum{}, false
	}
	if integral {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return opNum{i: n, isInt: true}, true
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		return opNum{}, false
	}
	return opNum{f: f}, true
}

// opCompareFloatInt orders a float64 against an int64 without losing precision.
func opCompareFloatInt(f float64, i int64) int {
	if math.IsNaN(f) { // not produced by JSON; unequal to everything, ordered last
		return 1
	}
	// Outside [-2^63, 2^63) the float is beyond every int64.
	if f < -9223372036854775808.0 {
		return -1
	}
	if f >= 9223372036854775808.0 {
		return 1
	}
	t := math.Trunc(f)
	if c := opCmp(int64(t), i); c != 0 {
		return c
	}
	// Same integer part: the fraction decides.
	return opCmp(f-t, 0)
}

func opCmp[T int64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// opLookupFold finds a key ignoring case.
func opLookupFold(m map[string]any, key string) (any, bool) {
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

// opHasKeyFold reports whether m has the key, ignoring case (Choice: containsKey ignores
// case like every string condition but match; tag names and the resource ids that key
// userAssignedIdentities are case-insensitive in Azure).
func opHasKeyFold(m map[string]any, key string) bool {
	if _, ok := m[key]; ok {
		return true
	}
	_, ok := opLookupFold(m, key)
	return ok
}

// CompareValues orders a and b for less, lessOrEquals, greater and greaterOrEquals: -1, 0
// or 1. It compares
//
//   - two numbers (int64, float64) by value;
//   - two strings that both read as ISO 8601 dates or date-times ("2024-05-01",
//     "2024-05-01T10:00:00Z", "2024-05-01T10:00:00.1234567+02:00"; no zone means UTC) as
//     instants;
//   - other pairs of strings ignoring case (the docs: InvariantCultureIgnoreCase. Choice:
//     the order is that of the lower-cased code points, which agrees with the invariant
//     culture for letters and digits but may order punctuation differently);
//   - a string that reads as a number against a number numerically (Choice: as equals
//     does, and as .NET converts a numeric string to the number type the condition asks for).
//
// Any other pair is a type mismatch: "if the property type doesn't match the condition
// type, an error is thrown" (the error has code CodeEval).
func CompareValues(a, b any) (int, error) {
	switch x := a.(type) {
	case int64, float64:
		switch y := b.(type) {
		case int64, float64:
			return opCompareNumbers(x, y), nil
		case string:
			if n, ok := opParseNumber(y); ok {
				m, _ := opNumOf(x)
				return m.compare(n), nil
			}
		}
	case string:
		switch y := b.(type) {
		case string:
			if ta, ok := opParseDate(x); ok {
				if tb, ok := opParseDate(y); ok {
					return ta.Compare(tb), nil
				}
			}
			return opCompareFold(x, y), nil
		case int64, float64:
			if n, ok := opParseNumber(x); ok {
				m, _ := opNumOf(y)
				return n.compare(m), nil
			}
		}
	}
	return 0, errorf(CodeEval, "", "cannot compare %s with %s", opDescribe(a), opDescribe(b))
}

// opDescribe names a value for a type-mismatch message, with short strings quoted so the
// author sees which string did not read as a number.
func opDescribe(v any) string {
	if s, ok := v.(string); ok && len(s) <= 40 {
		return "the string " + strconv.Quote(s)
	}
	return opArticle(v)
}

// opParseDate reads an ISO 8601 date or date-time. A cheap shape check comes first so that
// ordinary strings do not pay for time.Parse and its error.
func opParseDate(s string) (time.Time, bool) {
	if len(s) < 10 || s[4] != '-' || s[7] != '-' ||
		!opDigits(s[0:4]) || !opDigits(s[5:7]) || !opDigits(s[8:10]) {
		return time.Time{}, false
	}
	if len(s) == 10 {
		t, err := time.Parse("2006-01-02", s)
		return t, err == nil
	}
	// Choice: only the ISO 8601 'T' separator makes a date-time; "2024-05-01 10:00" and
	// other shapes .NET might also read compare as strings.
	if s[10] != 'T' {
		return time.Time{}, false
	}
	// Go's parser accepts a fractional second after the seconds even when the layout has
	// none, so these cover .NET's "o" format and utcNow()'s yyyy-MM-ddTHH:mm:ss.fffffffZ.
	for _, layout := range [...]string{
		"2006-01-02T15:04:05Z07:00",
		"2006-01-02T15:04:05",
		"2006-01-02T15:04Z07:00",
		"2006-01-02T15:04",
	} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func opDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// opCompareFold orders two strings ignoring case, rune by rune, without copying them.
func opCompareFold(a, b string) int {
	for a != "" && b != "" {
		ra, na := opFirstRune(a)
		rb, nb := opFirstRune(b)
		if ra != rb {
			la, lb := opLowerRune(ra), opLowerRune(rb)
			if la != lb {
				return opCmp(int64(la), int64(lb))
			}
		}
		a, b = a[na:], b[nb:]
	}
	switch {
	case a == "" && b == "":
		return 0
	case a == "":
		return -1
	}
	return 1
}

func opLowerRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}
	return unicode.ToLower(r)
}

// opFirstRune decodes the first rune of a non-empty string, with an ASCII fast path.
func opFirstRune(s string) (rune, int) {
	if c := s[0]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s)
}

// opFoldEq reports whether two runes are equal under Unicode simple case folding, as
// strings.EqualFold compares them.
func opFoldEq(a, b rune) bool {
	if a == b {
		return true
	}
	if a < utf8.RuneSelf && b < utf8.RuneSelf {
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		return a == b
	}
	for r := unicode.SimpleFold(a); r != a; r = unicode.SimpleFold(r) {
		if r == b {
			return true
		}
	}
	return false
}

// opCutPrefixFold removes prefix p from s, ignoring case, and returns the rest.
func opCutPrefixFold(s, p string) (string, bool) {
	// ASCII fast path: byte by byte while both sides are ASCII.
	i := 0
	for ; i < len(p) && i < len(s); i++ {
		a, b := p[i], s[i]
		if a|b >= utf8.RuneSelf {
			break
		}
		if a != b && opLowerASCII(a) != opLowerASCII(b) {
			return "", false
		}
	}
	p, s = p[i:], s[i:]
	for p != "" {
		if s == "" {
			return "", false
		}
		rp, np := opFirstRune(p)
		rs, ns := opFirstRune(s)
		if !opFoldEq(rp, rs) {
			return "", false
		}
		p, s = p[np:], s[ns:]
	}
	return s, true
}

// opCutSuffixFold removes suffix p from s, ignoring case, and returns what precedes it.
func opCutSuffixFold(s, p string) (string, bool) {
	// ASCII fast path from the end, while both sides are ASCII.
	for p != "" && s != "" {
		a, b := p[len(p)-1], s[len(s)-1]
		if a|b >= utf8.RuneSelf {
			break
		}
		if a != b && opLowerASCII(a) != opLowerASCII(b) {
			return "", false
		}
		p, s = p[:len(p)-1], s[:len(s)-1]
	}
	for p != "" {
		if s == "" {
			return "", false
		}
		rp, np := utf8.DecodeLastRuneInString(p)
		rs, ns := utf8.DecodeLastRuneInString(s)
		if !opFoldEq(rp, rs) {
			return "", false
		}
		p, s = p[:len(p)-np], s[:len(s)-ns]
	}
	return s, true
}

// opIndexFold finds the first occurrence of sub in s, ignoring case, and returns the index
// just past it.
func opIndexFold(s, sub string) (int, bool) {
	if sub == "" {
		return 0, true
	}
	// Candidate starts must match sub's first byte; for ASCII letters that is one of two
	// bytes, which skips most positions without decoding.
	c0 := sub[0]
	var lo, up byte = c0, c0
	if c0 < utf8.RuneSelf {
		if 'a' <= c0 && c0 <= 'z' {
			up = c0 - ('a' - 'A')
		} else if 'A' <= c0 && c0 <= 'Z' {
			lo = c0 + ('a' - 'A')
		}
	}
	// Kelvin sign and long s fold to ASCII 'k' and 's'; only then must non-ASCII starts be
	// tried as well.
	anyStart := c0 >= utf8.RuneSelf || lo == 'k' || lo == 's'
	for i := 0; i < len(s); {
		c := s[i]
		if anyStart || c == lo || c == up {
			if rest, ok := opCutPrefixFold(s[i:], sub); ok {
				return len(s) - len(rest), true
			}
		}
		if c < utf8.RuneSelf {
			i++
		} else {
			_, n := utf8.DecodeRuneInString(s[i:])
			i += n
		}
	}
	return 0, false
}

// LikeMatch reports whether s matches a like pattern: '*' stands for any run of characters
// (possibly empty), every other character stands for itself, and case is ignored. The docs
// say a like value "shouldn't have more than one wildcard character". Choice: more than one
// is matched the obvious way rather than refused, so that no definition Azure accepts is
// refused; '?' has no special meaning. It does not allocate.
func LikeMatch(pattern, s string) bool {
	star := strings.IndexByte(pattern, '*')
	if star < 0 {
		return strings.EqualFold(pattern, s)
	}
	last := strings.LastIndexByte(pattern, '*')
	rest, ok := opCutPrefixFold(s, pattern[:star])
	if !ok {
		return false
	}
	if rest, ok = opCutSuffixFold(rest, pattern[last+1:]); !ok {
		return false
	}
	mid := ""
	if last > star {
		mid = pattern[star+1 : last]
	}
	for mid != "" {
		part := mid
		if i := strings.IndexByte(mid, '*'); i >= 0 {
			part, mid = mid[:i], mid[i+1:]
		} else {
			mid = ""
		}
		end, ok := opIndexFold(rest, part)
		if !ok {
			return false
		}
		rest = rest[end:]
	}
	return true
}

// LikePattern is a like pattern split at its wildcards once. A condition whose like target
// is a constant compiles it with CompileLike and calls Match per resource, which saves
// rescanning the pattern; the result is always that of LikeMatch. For a location field,
// compile the normalised pattern (NormalizeLocation) and match normalised values.
type LikePattern struct {
	exact  bool     // no wildcard: the whole string must equal prefix
	prefix string   // text before the first '*'
	suffix string   // text after the last '*'
	middle []string // texts between wildcards, in order, non-empty
}

// CompileLike prepares a like pattern for repeated matching.
func CompileLike(pattern string) LikePattern {
	star := strings.IndexByte(pattern, '*')
	if star < 0 {
		return LikePattern{exact: true, prefix: pattern}
	}
	last := strings.LastIndexByte(pattern, '*')
	p := LikePattern{prefix: pattern[:star], suffix: pattern[last+1:]}
	if last > star {
		for _, part := range strings.Split(pattern[star+1:last], "*") {
			if part != "" { // "**" leaves empty parts, which match anywhere
				p.middle = append(p.middle, part)
			}
		}
	}
	return p
}

// Match reports whether s matches the compiled pattern. It does not allocate.
func (p LikePattern) Match(s string) bool {
	if p.exact {
		return strings.EqualFold(p.prefix, s)
	}
	rest, ok := opCutPrefixFold(s, p.prefix)
	if !ok {
		return false
	}
	if rest, ok = opCutSuffixFold(rest, p.suffix); !ok {
		return false
	}
	for _, part := range p.middle {
		end, ok := opIndexFold(rest, part)
		if !ok {
			return false
		}
		rest = rest[end:]
	}
	return true
}

// PatternMatch reports whether s matches a match/notMatch pattern, character for character
// over the whole string: '#' is a digit, '?' a letter, '.' any one character, and any other
// character itself (the docs, "Conditions"). With insensitive (matchInsensitively) literal
// characters compare ignoring case. Choice: "digit" and "letter" are Unicode's, as .NET's
// Char.IsDigit and Char.IsLetter are. There is nothing to compile: it is one pass over both
// strings and does not allocate.
func PatternMatch(pattern, s string, insensitive bool) bool {
	for pattern != "" {
		if s == "" {
			return false
		}
		rp, np := opFirstRune(pattern)
		rs, ns := opFirstRune(s)
		switch rp {
		case '#':
			if !('0' <= rs && rs <= '9') && (rs < utf8.RuneSelf || !unicode.IsDigit(rs)) {
				return false
			}
		case '?':
			if !('a' <= rs && rs <= 'z' || 'A' <= rs && rs <= 'Z') && (rs < utf8.RuneSelf || !unicode.IsLetter(rs)) {
				return false
			}
		case '.':
		default:
			if rp != rs && (!insensitive || !opFoldEq(rp, rs)) {
				return false
			}
		}
		pattern, s = pattern[np:], s[ns:]
	}
	return s == ""
}

// NormalizeLocation puts a location in the form Azure compares locations in: white space
// removed and lower case, so "East US 2" becomes "eastus2" (the docs, "Fields": location).
// Choice: every Unicode space is removed, not only ' '. A location already in that form is
// returned as is, without allocating.
func NormalizeLocation(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || c == ' ' || ('A' <= c && c <= 'Z') || ('\t' <= c && c <= '\r') {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if !opIsSpace(r) {
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// opNormalizeLocationValue normalises a string value and leaves other values alone.
func opNormalizeLocationValue(v any) any {
	if s, ok := v.(string); ok {
		return NormalizeLocation(s)
	}
	return v
}

// opLocationEqual compares two locations in normalised form without building it: spaces are
// skipped and case ignored.
func opLocationEqual(a, b string) bool {
	// ASCII fast path; the rune loop below takes over at the first non-ASCII byte.
	i, j := 0, 0
	for {
		for i < len(a) && opSpaceASCII(a[i]) {
			i++
		}
		for j < len(b) && opSpaceASCII(b[j]) {
			j++
		}
		if i == len(a) || j == len(b) {
			if i == len(a) && j == len(b) {
				return true
			}
			break // the rest may be non-ASCII space: let the rune loop decide
		}
		ca, cb := a[i], b[j]
		if ca|cb >= utf8.RuneSelf {
			break
		}
		if ca != cb && opLowerASCII(ca) != opLowerASCII(cb) {
			return false
		}
		i, j = i+1, j+1
	}
	a, b = a[i:], b[j:]
	for {
		a, b = opSkipSpace(a), opSkipSpace(b)
		if a == "" || b == "" {
			return a == b
		}
		ra, na := opFirstRune(a)
		rb, nb := opFirstRune(b)
		if !opFoldEq(ra, rb) {
			return false
		}
		a, b = a[na:], b[nb:]
	}
}

func opLowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func opSpaceASCII(c byte) bool { return c == ' ' || ('\t' <= c && c <= '\r') }

// opIsSpace is unicode.IsSpace with an ASCII fast path.
func opIsSpace(r rune) bool {
	if r < utf8.RuneSelf {
		return r == ' ' || ('\t' <= r && r <= '\r')
	}
	return unicode.IsSpace(r)
}

func opSkipSpace(s string) string {
	for s != "" {
		r, n := opFirstRune(s)
		if !opIsSpace(r) {
			break
		}
		s = s[n:]
	}
	return s
}
