package policy

// The template functions an Azure Policy rule may call, with the semantics of ARM's
// template functions (azure-resource-manager/templates/template-functions-*.md) and the
// policy-only functions of definition-structure-policy-rule.md ("Policy functions").
//
// Strings are measured and indexed in UTF-16 code units, as .NET (which Azure runs on)
// measures them, so length('😀') is 2 here as it is in Azure. ASCII strings take fast paths.

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/gildhq/gild/spelling"
)

// fnSpec describes one function: its documented name, arity, purity (a pure function's
// result depends on its arguments alone, so calls on constants fold at compile time), and
// its implementation, eager (arguments evaluated first) or lazy (it evaluates them itself).
type fnSpec struct {
	name      string
	min, max  int // max < 0: any number
	pure      bool
	eager     func(env Env, args []any) (any, error)
	lazy      func(env Env, args []exprNode) (any, error)
	check     func(p *exprParser, args []exprNode) (code, msg string)
	arityHint string // replaces the generic arity message where Azure's rule needs saying
}

// Azure's evaluation-time limits (definition-structure-policy-rule.md, "Limits enforced
// during evaluation"). Exceeding them fails the evaluation, as it does in Azure.
const (
	fnMaxString = 131072 // UTF-16 units in a string a function returns
	fnMaxNodes  = 32768  // elements of an array a function returns (top level)
	fnMaxRange  = 10000  // range(): count, ARM's limit
)

// fnTable maps lower-case names to functions; init fills it so that the functions may
// themselves refer to the table (fnSuggest) without an initialization cycle.
var fnTable map[string]*fnSpec

func init() {
	specs := []*fnSpec{
		// Policy functions and the scope objects.
		{name: "parameters", min: 1, max: 1, eager: fnParameters, check: fnCheckParameters},
		{name: "field", min: 1, max: 1, eager: fnField},
		{name: "current", min: 0, max: 1, eager: fnCurrent, check: fnCheckCurrent},
		{name: "policy", min: 0, max: 0, eager: func(env Env, _ []any) (any, error) { return env.Policy(), nil }},
		{name: "requestContext", min: 0, max: 0, eager: func(env Env, _ []any) (any, error) { return env.RequestContext(), nil }},
		{name: "resourceGroup", min: 0, max: 0, eager: func(env Env, _ []any) (any, error) { return env.ResourceGroup(), nil }},
		{name: "subscription", min: 0, max: 0, eager: func(env Env, _ []any) (any, error) { return env.Subscription(), nil }},
		{name: "utcNow", min: 0, max: 0, eager: fnUtcNow,
			arityHint: "utcNow takes no arguments in policy rules: Azure Policy does not support utcNow(format)"},
		{name: "addDays", min: 2, max: 2, pure: true, eager: fnAddDays},
		{name: "ipRangeContains", min: 2, max: 2, pure: true, eager: fnIPRangeContains},

		// Logical.
		{name: "and", min: 2, max: -1, pure: true, lazy: fnAnd},
		{name: "or", min: 2, max: -1, pure: true, lazy: fnOr},
		{name: "not", min: 1, max: 1, pure: true, eager: fnNot},
		{name: "if", min: 3, max: 3, pure: true, lazy: fnIf},
		{name: "bool", min: 1, max: 1, pure: true, eager: fnBoolConv},
		{name: "true", min: 0, max: 0, pure: true, eager: func(Env, []any) (any, error) { return true, nil }},
		{name: "false", min: 0, max: 0, pure: true, eager: func(Env, []any) (any, error) { return false, nil }},

		// Comparison.
		{name: "coalesce", min: 1, max: -1, pure: true, lazy: fnCoalesce},
		{name: "equals", min: 2, max: 2, pure: true, eager: func(_ Env, a []any) (any, error) { return fnDeepEqual(a[0], a[1]), nil }},
		{name: "less", min: 2, max: 2, pure: true, eager: fnComparer("less", func(c int) bool { return c < 0 })},
		{name: "lessOrEquals", min: 2, max: 2, pure: true, eager: fnComparer("lessOrEquals", func(c int) bool { return c <= 0 })},
		{name: "greater", min: 2, max: 2, pure: true, eager: fnComparer("greater", func(c int) bool { return c > 0 })},
		{name: "greaterOrEquals", min: 2, max: 2, pure: true, eager: fnComparer("greaterOrEquals", func(c int) bool { return c >= 0 })},

		// Numeric.
		{name: "add", min: 2, max: 2, pure: true, eager: fnArith("add")},
		{name: "sub", min: 2, max: 2, pure: true, eager: fnArith("sub")},
		{name: "mul", min: 2, max: 2, pure: true, eager: fnArith("mul")},
		{name: "div", min: 2, max: 2, pure: true, eager: fnArith("div")},
		{name: "mod", min: 2, max: 2, pure: true, eager: fnArith("mod")},
		{name: "int", min: 1, max: 1, pure: true, eager: fnIntConv},
		{name: "float", min: 1, max: 1, pure: true, eager: fnFloatConv},
		{name: "min", min: 1, max: -1, pure: true, eager: fnMinMax("min")},
		{name: "max", min: 1, max: -1, pure: true, eager: fnMinMax("max")},
		{name: "range", min: 2, max: 2, pure: true, eager: fnRange},

		// Arrays and objects.
		{name: "array", min: 1, max: 1, pure: true, eager: fnArrayConv},
		{name: "createArray", min: 0, max: -1, pure: true, eager: fnCreateArray},
		{name: "createObject", min: 0, max: -1, pure: true, eager: fnCreateObject, check: fnCheckCreateObject},
		{name: "concat", min: 1, max: -1, pure: true, eager: fnConcat},
		{name: "contains", min: 2, max: 2, pure: true, eager: fnContains},
		{name: "empty", min: 1, max: 1, pure: true, eager: fnEmpty},
		{name: "length", min: 1, max: 1, pure: true, eager: fnLength},
		{name: "first", min: 1, max: 1, pure: true, eager: fnFirstLast("first")},
		{name: "last", min: 1, max: 1, pure: true, eager: fnFirstLast("last")},
		{name: "take", min: 2, max: 2, pure: true, eager: fnTakeSkip("take")},
		{name: "skip", min: 2, max: 2, pure: true, eager: fnTakeSkip("skip")},
		{name: "indexOf", min: 2, max: 2, pure: true, eager: fnIndexOf("indexOf")},
		{name: "lastIndexOf", min: 2, max: 2, pure: true, eager: fnIndexOf("lastIndexOf")},
		{name: "union", min: 2, max: -1, pure: true, eager: fnUnion},
		{name: "intersection", min: 2, max: -1, pure: true, eager: fnIntersection},
		{name: "items", min: 1, max: 1, pure: true, eager: fnItems},
		{name: "objectKeys", min: 1, max: 1, pure: true, eager: fnObjectKeys},
		{name: "shallowMerge", min: 1, max: 1, pure: true, eager: fnShallowMerge},
		{name: "flatten", min: 1, max: 1, pure: true, eager: fnFlatten},
		{name: "tryGet", min: 2, max: -1, pure: true, eager: fnTryGet},
		{name: "json", min: 1, max: 1, pure: true, eager: fnJSONConv},
		{name: "null", min: 0, max: 0, pure: true, eager: func(Env, []any) (any, error) { return nil, nil }},

		// Strings.
		{name: "string", min: 1, max: 1, pure: true, eager: func(_ Env, a []any) (any, error) { return fnToString(a[0]), nil }},
		{name: "toLower", min: 1, max: 1, pure: true, eager: fnStringMap("toLower", strings.ToLower)},
		{name: "toUpper", min: 1, max: 1, pure: true, eager: fnStringMap("toUpper", strings.ToUpper)},
		{name: "trim", min: 1, max: 1, pure: true, eager: fnStringMap("trim", strings.TrimSpace)},
		{name: "split", min: 2, max: 2, pure: true, eager: fnSplit},
		{name: "join", min: 2, max: 2, pure: true, eager: fnJoin},
		{name: "replace", min: 3, max: 3, pure: true, eager: fnReplace},
		{name: "substring", min: 1, max: 3, pure: true, eager: fnSubstring},
		{name: "startsWith", min: 2, max: 2, pure: true, eager: fnAffix("startsWith")},
		{name: "endsWith", min: 2, max: 2, pure: true, eager: fnAffix("endsWith")},
		{name: "padLeft", min: 2, max: 3, pure: true, eager: fnPadLeft},
		{name: "format", min: 1, max: -1, pure: true, eager: fnFormat},
		{name: "base64", min: 1, max: 1, pure: true, eager: fnBase64},
		{name: "base64ToString", min: 1, max: 1, pure: true, eager: fnBase64ToString},
		{name: "base64ToJson", min: 1, max: 1, pure: true, eager: fnBase64ToJSON},
		{name: "dataUri", min: 1, max: 1, pure: true, eager: fnDataURI},
		{name: "dataUriToString", min: 1, max: 1, pure: true, eager: fnDataURIToString},
		{name: "uri", min: 2, max: 2, pure: true, eager: fnURI},
		{name: "uriComponent", min: 1, max: 1, pure: true, eager: fnURIComponent},
		{name: "uriComponentToString", min: 1, max: 1, pure: true, eager: fnURIComponentToString},
		{name: "guid", min: 1, max: -1, pure: true, eager: fnGUID},
		{name: "uniqueString", min: 1, max: -1, pure: true, eager: fnUniqueString},
	}
	fnTable = make(map[string]*fnSpec, len(specs))
	for _, s := range specs {
		fnTable[strings.ToLower(s.name)] = s
	}
}

// fnPolicyExcluded are template functions Azure Policy does not allow in a policy rule
// (definition-structure-policy-rule.md, "Policy functions"), by the reason to give, and
// the ARM functions a rule may use that gild does not implement yet.
var fnPolicyExcluded = fnReasons(map[string][]string{
	"deployment": {"copyindex", "deployment", "environment", "extensionresourceid",
		"listaccountsas", "listkeys", "listsecrets", "managementgroup", "managementgroupresourceid",
		"newguid", "pickzones", "providers", "reference", "references", "resourceid",
		"subscriptionresourceid", "tenantresourceid", "tenant", "variables"},
	"date":   {"datetimeadd", "datetimefromepoch", "datetimetoepoch"},
	"lambda": {"lambda", "lambdavariables", "filter", "map", "reduce", "sort", "toobject", "groupby", "mapvalues"},
	"todo":   {"parsecidr", "cidrsubnet", "cidrhost", "indexfromend", "tryindexfromend"},
})

func fnReasons(byReason map[string][]string) map[string]string {
	out := map[string]string{}
	for why, names := range byReason {
		for _, n := range names {
			out[n] = why
		}
	}
	return out
}

// fnUnavailable explains why a known ARM function cannot be called here.
func fnUnavailable(lower string) (string, bool) {
	why, ok := fnPolicyExcluded[lower]
	if !ok && strings.HasPrefix(lower, "list") {
		why, ok = "deployment", true // list* functions
	}
	switch {
	case !ok:
		return "", false
	case why == "date":
		return "it is not available in policy rules (Azure Policy excludes it; addDays and utcNow are the policy date functions)", true
	case why == "lambda":
		return "it is a lambda function, not available in policy rules", true
	case why == "todo":
		return "it is an ARM template function that gild does not implement yet", true
	}
	return "it is a deployment-template function, not available in policy rules (it may appear only inside a deployIfNotExists deployment template)", true
}

// fnSuggest returns the documented name of the known function nearest to name, if any is
// near enough to be a likely misspelling.
func fnSuggest(lower string) string {
	best, bestD := "", 1<<30
	for key, fn := range fnTable {
		d := spelling.Distance(lower, key)
		if d < bestD || d == bestD && fn.name < best {
			best, bestD = fn.name, d
		}
	}
	limit := 2
	if len(lower) >= 10 {
		limit = 3
	}
	if bestD <= limit && bestD < len(lower) {
		return best
	}
	return ""
}

func fnArity(fn *fnSpec) string {
	plural := func(n int) string {
		if n == 1 {
			return "1 argument"
		}
		return strconv.Itoa(n) + " arguments"
	}
	switch {
	case fn.max < 0:
		return "at least " + plural(fn.min)
	case fn.min == fn.max:
		return plural(fn.min)
	}
	return fmt.Sprintf("%d to %d arguments", fn.min, fn.max)
}

// ---- compile-time checks ----

func fnCheckParameters(p *exprParser, args []exprNode) (string, string) {
	c, ok := args[0].(*exprConst)
	if !ok {
		return "", ""
	}
	name, ok := c.v.(string)
	if !ok {
		return CodeInvalid, "parameters: the parameter name must be a string, got " + TypeName(c.v)
	}
	if p.scope.Parameters != nil && !p.scope.Parameters(name) {
		return CodeUnknownParameter, fmt.Sprintf("parameters: parameter '%s' is not declared in the definition", name)
	}
	return "", ""
}

func fnCheckCurrent(p *exprParser, args []exprNode) (string, string) {
	names := p.scope.CountNames
	if len(names) == 0 {
		return CodeInvalid, "current() is available only inside the where condition of a count"
	}
	if len(args) == 0 {
		if len(names) > 1 {
			// Azure allows the short form only when the count is not nested in another.
			return CodeInvalid, fmt.Sprintf("current() without a name is not allowed in a nested count; name one of %s", fnQuoteList(names))
		}
		return "", ""
	}
	c, ok := args[0].(*exprConst)
	if !ok {
		return "", ""
	}
	name, ok := c.v.(string)
	if !ok {
		return CodeInvalid, "current: the count name must be a string, got " + TypeName(c.v)
	}
	if !fnCountNameKnown(names, name) {
		return CodeInvalid, fmt.Sprintf("current('%s') names no enclosing count; the counts here are %s", name, fnQuoteList(names))
	}
	return "", ""
}

// fnCountNameKnown accepts a count's name or array alias, and, for a field count, an alias
// of a property of the counted element ("a/b[*].c" inside a count of "a/b[*]").
func fnCountNameKnown(names []string, name string) bool {
	for _, n := range names {
		if strings.EqualFold(n, name) {
			return true
		}
		if strings.HasSuffix(n, "[*]") && len(name) > len(n) && strings.EqualFold(name[:len(n)], n) {
			if c := name[len(n)]; c == '.' || c == '[' {
				return true
			}
		}
	}
	return false
}

func fnQuoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "'" + n + "'"
	}
	return strings.Join(q, ", ")
}

func fnCheckCreateObject(_ *exprParser, args []exprNode) (string, string) {
	if len(args)%2 != 0 {
		return CodeInvalid, fmt.Sprintf("createObject takes key/value pairs, an even number of arguments, got %d", len(args))
	}
	return "", ""
}

// ---- errors and argument access ----

func fnErrorf(name, format string, args ...any) *Error {
	return &Error{Code: CodeEval, Message: name + ": " + fmt.Sprintf(format, args...)}
}

func fnTypeErr(name string, i int, want string, got any) *Error {
	return fnErrorf(name, "argument %d must be %s, got %s", i+1, want, TypeName(got))
}

func fnArgString(name string, args []any, i int) (string, error) {
	s, ok := args[i].(string)
	if !ok {
		return "", fnTypeErr(name, i, "a string", args[i])
	}
	return s, nil
}

// fnArgInt accepts an integer, or a float with no fractional part (float() results).
func fnArgInt(name string, args []any, i int) (int64, error) {
	switch t := args[i].(type) {
	case int64:
		return t, nil
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1<<63 {
			return int64(t), nil
		}
	}
	return 0, fnTypeErr(name, i, "an integer", args[i])
}

func fnArgBool(name string, args []any, i int) (bool, error) {
	b, ok := args[i].(bool)
	if !ok {
		return false, fnTypeErr(name, i, "a boolean", args[i])
	}
	return b, nil
}

// fnCheckResult enforces Azure's limits on what a function returns.
func fnCheckResult(name string, v any) error {
	switch t := v.(type) {
	case string:
		if len(t) > fnMaxString && fnLen16(t) > fnMaxString {
			return fnErrorf(name, "the result is longer than %d characters, Azure Policy's limit", fnMaxString)
		}
	case []any:
		if len(t) > fnMaxNodes {
			return fnErrorf(name, "the result has more than %d elements, Azure Policy's limit", fnMaxNodes)
		}
	}
	return nil
}

// ---- policy functions ----

func fnParameters(env Env, args []any) (any, error) {
	name, err := fnArgString("parameters", args, 0)
	if err != nil {
		return nil, err
	}
	if v, ok := env.Parameter(name); ok {
		return v, nil
	}
	return nil, fnErrorf("parameters", "parameter '%s' has no value", name)
}

func fnField(env Env, args []any) (any, error) {
	name, err := fnArgString("field", args, 0)
	if err != nil {
		return nil, err
	}
	return env.Field(name)
}

func fnCurrent(env Env, args []any) (any, error) {
	name := ""
	if len(args) == 1 {
		s, err := fnArgString("current", args, 0)
		if err != nil {
			return nil, err
		}
		name = s
	}
	if v, ok := env.Current(name); ok {
		return v, nil
	}
	if name == "" {
		return nil, fnErrorf("current", "there is no count element here")
	}
	return nil, fnErrorf("current", "no enclosing count is named '%s'", name)
}

// fnTimeLayout is Azure Policy's utcNow() format, "yyyy-MM-ddTHH:mm:ss.fffffffZ".
const fnTimeLayout = "2006-01-02T15:04:05.0000000Z"

func fnUtcNow(env Env, _ []any) (any, error) {
	return env.Now().UTC().Format(fnTimeLayout), nil
}

// fnDateLayouts are the ISO 8601 forms accepted as a dateTime. Go's parser also takes a
// fractional second after the seconds field when the layout has none.
var fnDateLayouts = []string{
	"2006-01-02T15:04:05Z07:00", "2006-01-02T15:04:05", "2006-01-02T15:04:05Z0700",
	"2006-01-02 15:04:05Z07:00", "2006-01-02 15:04:05",
	"2006-01-02T15:04Z07:00", "2006-01-02T15:04",
	"2006-01-02",
}

func fnParseDateTime(s string) (time.Time, bool) {
	for _, layout := range fnDateLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true // a time without an offset is taken as UTC
		}
	}
	return time.Time{}, false
}

// fnAddDays is addDays(dateTime, numberOfDaysToAdd); the result is in utcNow()'s format.
func fnAddDays(_ Env, args []any) (any, error) {
	s, err := fnArgString("addDays", args, 0)
	if err != nil {
		return nil, err
	}
	days, err := fnArgInt("addDays", args, 1)
	if err != nil {
		return nil, err
	}
	t, ok := fnParseDateTime(s)
	if !ok {
		return nil, fnErrorf("addDays", "argument 1 '%s' is not an ISO 8601 date and time", s)
	}
	const maxDays = 3660000 // ±10,000 years: keeps the arithmetic in range
	if days > maxDays || days < -maxDays {
		return nil, fnErrorf("addDays", "%d days is out of range", days)
	}
	t = t.AddDate(0, 0, int(days))
	if y := t.Year(); y < 1 || y > 9999 {
		return nil, fnErrorf("addDays", "the result is outside the years 1 to 9999")
	}
	return t.Format(fnTimeLayout), nil
}

// fnIPRangeContains is ipRangeContains(range, targetRange): whether every address of the
// target lies in the range. Both are an address, a CIDR prefix or "start-end", of one family.
func fnIPRangeContains(_ Env, args []any) (any, error) {
	var lo, hi [2]netip.Addr
	for i := range 2 {
		s, err := fnArgString("ipRangeContains", args, i)
		if err != nil {
			return nil, err
		}
		l, h, err := fnParseIPRange(s)
		if err != nil {
			return nil, fnErrorf("ipRangeContains", "argument %d: %v", i+1, err)
		}
		lo[i], hi[i] = l, h
	}
	if lo[0].Is4() != lo[1].Is4() {
		return nil, fnErrorf("ipRangeContains", "cannot compare an IPv4 range with an IPv6 range")
	}
	return lo[0].Compare(lo[1]) <= 0 && hi[1].Compare(hi[0]) <= 0, nil
}

func fnParseIPRange(s string) (lo, hi netip.Addr, err error) {
	switch {
	case s == "":
		return lo, hi, errors.New("the range is empty")
	case strings.Contains(s, "/"):
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Addr().Zone() != "" {
			return lo, hi, fmt.Errorf("'%s' is not a valid CIDR range", s)
		}
		p = p.Masked()
		return p.Addr(), fnLastAddr(p), nil
	case strings.Contains(s, "-"):
		a, b, _ := strings.Cut(s, "-")
		lo, err1 := netip.ParseAddr(strings.TrimSpace(a))
		hi, err2 := netip.ParseAddr(strings.TrimSpace(b))
		if err1 != nil || err2 != nil || lo.Zone() != "" || hi.Zone() != "" {
			return lo, hi, fmt.Errorf("'%s' is not a valid address range", s)
		}
		if lo.Is4() != hi.Is4() {
			return lo, hi, fmt.Errorf("'%s' mixes IPv4 and IPv6", s)
		}
		if lo.Compare(hi) > 0 {
			return lo, hi, fmt.Errorf("'%s' starts after it ends", s)
		}
		return lo, hi, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return lo, hi, fmt.Errorf("'%s' is not a valid IP address", s)
	}
	return a, a, nil
}

// fnLastAddr is the highest address of a (masked) prefix: its host bits all set.
func fnLastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	off := 0
	if p.Addr().Is4() {
		off = 12
	}
	for i := off*8 + p.Bits(); i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		return a.Unmap()
	}
	return a
}

// ---- logical ----

func fnLazyBool(name string, env Env, n exprNode, i int) (bool, error) {
	v, err := n.eval(env)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fnTypeErr(name, i, "a boolean", v)
	}
	return b, nil
}

// fnAnd and fnOr stop at the first argument that decides the result.
func fnAnd(env Env, args []exprNode) (any, error) {
	for i, a := range args {
		b, err := fnLazyBool("and", env, a, i)
		if err != nil || !b {
			return false, err
		}
	}
	return true, nil
}

func fnOr(env Env, args []exprNode) (any, error) {
	for i, a := range args {
		b, err := fnLazyBool("or", env, a, i)
		if err != nil || b {
			return b, err
		}
	}
	return false, nil
}

// fnIf evaluates only the branch it returns (template-functions-logical.md, "if").
func fnIf(env Env, args []exprNode) (any, error) {
	b, err := fnLazyBool("if", env, args[0], 0)
	if err != nil {
		return nil, err
	}
	if b {
		return args[1].eval(env)
	}
	return args[2].eval(env)
}

func fnNot(_ Env, args []any) (any, error) {
	b, err := fnArgBool("not", args, 0)
	return !b, err
}

// fnBoolConv is bool(): "true"/"false" in any case, or a number (zero is false).
func fnBoolConv(_ Env, args []any) (any, error) {
	switch t := args[0].(type) {
	case bool:
		return t, nil
	case int64:
		return t != 0, nil
	case float64:
		return t != 0, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(t)) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, fnErrorf("bool", "cannot convert '%s' to a boolean", t)
	}
	return nil, fnTypeErr("bool", 0, "a string, integer or boolean", args[0])
}

// fnCoalesce returns the first argument that is not null, evaluating no further.
func fnCoalesce(env Env, args []exprNode) (any, error) {
	for _, a := range args {
		v, err := a.eval(env)
		if err != nil || v != nil {
			return v, err
		}
	}
	return nil, nil
}

// ---- comparison ----

// fnDeepEqual is equals(): deep, and case-sensitive for strings as ARM's equals is
// (Bicep's == compiles to it, and its =~ adds toLower for a case-insensitive test).
// Integers and floats compare by value.
func fnDeepEqual(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case string:
		y, ok := b.(string)
		return ok && x == y
	case int64:
		switch y := b.(type) {
		case int64:
			return x == y
		case float64:
			return float64(x) == y
		}
		return false
	case float64:
		switch y := b.(type) {
		case int64:
			return x == float64(y)
		case float64:
			return x == y
		}
		return false
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !fnDeepEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !fnDeepEqual(v, w) {
				return false
			}
		}
		return true
	}
	return false
}

func fnComparer(name string, ok func(int) bool) func(Env, []any) (any, error) {
	return func(_ Env, args []any) (any, error) {
		c, err := fnCompare(name, args[0], args[1])
		if err != nil {
			return nil, err
		}
		return ok(c), nil
	}
}

// fnCompare orders two numbers, or two strings the way .NET's culture-aware comparison
// does in the cases that matter (ARM's greater('A', 'a') is true; see fnCompareText).
func fnCompare(name string, a, b any) (int, error) {
	if x, ok := fnNumber(a); ok {
		if y, ok := fnNumber(b); ok {
			if xi, ok := a.(int64); ok {
				if yi, ok := b.(int64); ok {
					return fnSign(xi, yi), nil
				}
			}
			return fnSign(x, y), nil
		}
	}
	if x, ok := a.(string); ok {
		if y, ok := b.(string); ok {
			return fnCompareText(x, y), nil
		}
	}
	return 0, fnErrorf(name, "cannot compare %s with %s; both must be numbers or both strings", TypeName(a), TypeName(b))
}

func fnNumber(v any) (float64, bool) {
	switch t := v.(type) {
	case int64:
		return float64(t), true
	case float64:
		return t, true
	}
	return 0, false
}

func fnSign[T int | int64 | float64 | rune](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// fnCompareText approximates .NET's invariant-culture string comparison, which ARM's
// comparison functions use (greater('A', 'a') is true in Azure): strings are ordered by
// their letters first, Latin accents and case aside; then unaccented before accented;
// then lower case before upper case. Full collation also weighs punctuation differently;
// that refinement is not reproduced.
func fnCompareText(a, b string) int {
	// Primary: base letters without case or accent; a string that is a prefix sorts first.
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		ra, na := utf8.DecodeRuneInString(a[i:])
		rb, nb := utf8.DecodeRuneInString(b[j:])
		if c := fnSign(fnBaseLetter(ra), fnBaseLetter(rb)); c != 0 {
			return c
		}
		i, j = i+na, j+nb
	}
	if c := fnSign(len(a)-i, len(b)-j); c != 0 {
		return c
	}
	// Secondary: accents. Tertiary: case, lower first.
	for pass := 0; pass < 2; pass++ {
		for i, j = 0, 0; i < len(a) && j < len(b); {
			ra, na := utf8.DecodeRuneInString(a[i:])
			rb, nb := utf8.DecodeRuneInString(b[j:])
			i, j = i+na, j+nb
			la, lb := unicode.ToLower(ra), unicode.ToLower(rb)
			if pass == 0 && la != lb {
				accentA, accentB := la != fnBaseLetter(la), lb != fnBaseLetter(lb)
				if accentA != accentB {
					if accentA {
						return 1
					}
					return -1
				}
				return fnSign(la, lb)
			}
			if pass == 1 && ra != rb {
				if ra == la {
					return -1
				}
				if rb == lb {
					return 1
				}
				return fnSign(ra, rb)
			}
		}
	}
	return 0
}

// fnLatinBase holds the base letter of U+00C0 to U+017F ('.' where there is none), so that
// "Ä" sorts with "a" as it does in .NET's culture-aware order.
const fnLatinBase = "aaaaaaaceeeeiiiidnooooo.ouuuuytsaaaaaaaceeeeiiiidnooooo.ouuuuyty" +
	"aaaaaaccccccccddddeeeeeeeeeegggggggghhhhiiiiiiiiiiiijjkkkllllllllllnnnnnnnnnoooooooorrrrrrssssssssttttttuuuuuuuuuuuuwwyyyzzzzzzs"

// fnBaseLetter is a rune's primary sort key: lower case, Latin accents removed.
func fnBaseLetter(r rune) rune {
	if r >= 0xC0 && r < 0x180 {
		if c := fnLatinBase[r-0xC0]; c != '.' {
			return rune(c)
		}
	}
	return unicode.ToLower(r)
}

// ---- numeric ----

// fnArith is ARM's integer arithmetic; overflow and division by zero fail rather than
// wrap, since a wrapped number would silently decide a policy.
func fnArith(name string) func(Env, []any) (any, error) {
	return func(_ Env, args []any) (any, error) {
		a, err := fnArgInt(name, args, 0)
		if err != nil {
			return nil, err
		}
		b, err := fnArgInt(name, args, 1)
		if err != nil {
			return nil, err
		}
		var r int64
		overflow := false
		switch name {
		case "add":
			r = a + b
			overflow = (a >= 0) == (b >= 0) && (r >= 0) != (a >= 0)
		case "sub":
			r = a - b
			overflow = (a >= 0) != (b >= 0) && (r >= 0) != (a >= 0)
		case "mul":
			r = a * b
			overflow = a != 0 && (r/a != b || a == -1 && b == math.MinInt64 || b == -1 && a == math.MinInt64)
		case "div", "mod":
			if b == 0 {
				return nil, fnErrorf(name, "division by zero")
			}
			if a == math.MinInt64 && b == -1 {
				if name == "mod" {
					return int64(0), nil
				}
				overflow = true
				break
			}
			if name == "div" {
				r = a / b // truncates toward zero, as .NET does
			} else {
				r = a % b // takes the sign of the dividend, as .NET does
			}
		}
		if overflow {
			return nil, fnErrorf(name, "the result of %d and %d overflows a 64-bit integer", a, b)
		}
		return r, nil
	}
}

func fnAbs(a int64) int64 {
	if a < 0 {
		return -a
	}
	return a
}

// fnIntConv is int(): from an integer, a float (truncated) or a string of digits.
func fnIntConv(_ Env, args []any) (any, error) {
	switch t := args[0].(type) {
	case int64:
		return t, nil
	case float64:
		if math.IsNaN(t) || t >= 1<<63 || t < -(1<<63) {
			return nil, fnErrorf("int", "%v is out of the integer range", t)
		}
		return int64(t), nil
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
		if err != nil {
			return nil, fnErrorf("int", "cannot convert '%s' to an integer", t)
		}
		return i, nil
	}
	return nil, fnTypeErr("int", 0, "a string or integer", args[0])
}

// fnFloatConv is float(): from a number or a decimal string.
func fnFloatConv(_ Env, args []any) (any, error) {
	switch t := args[0].(type) {
	case int64:
		return float64(t), nil
	case float64:
		return t, nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fnErrorf("float", "cannot convert '%s' to a float", t)
		}
		return f, nil
	}
	return nil, fnTypeErr("float", 0, "a string or number", args[0])
}

// fnMinMax takes numbers, arrays of numbers, or both; integers stay integers.
func fnMinMax(name string) func(Env, []any) (any, error) {
	return func(_ Env, args []any) (any, error) {
		var best any
		var bestF float64
		consider := func(v any, i int) error {
			f, ok := fnNumber(v)
			if !ok {
				return fnErrorf(name, "argument %d must be a number or an array of numbers, got %s", i+1, TypeName(v))
			}
			if best == nil || name == "min" && f < bestF || name == "max" && f > bestF {
				best, bestF = v, f
			}
			return nil
		}
		for i, a := range args {
			if arr, ok := a.([]any); ok {
				for _, v := range arr {
					if err := consider(v, i); err != nil {
						return nil, err
					}
				}
				continue
			}
			if err := consider(a, i); err != nil {
				return nil, err
			}
		}
		if best == nil {
			return nil, fnErrorf(name, "there are no values to choose from")
		}
		return best, nil
	}
}

// fnRange is range(startIndex, count), within ARM's limits.
func fnRange(_ Env, args []any) (any, error) {
	start, err := fnArgInt("range", args, 0)
	if err != nil {
		return nil, err
	}
	count, err := fnArgInt("range", args, 1)
	if err != nil {
		return nil, err
	}
	if count < 0 || count > fnMaxRange {
		return nil, fnErrorf("range", "count must be between 0 and %d, got %d", fnMaxRange, count)
	}
	if start < math.MinInt32 {
		return nil, fnErrorf("range", "startIndex must be at least %d, got %d", math.MinInt32, start)
	}
	if start > math.MaxInt32-count {
		return nil, fnErrorf("range", "startIndex plus count must not exceed %d", math.MaxInt32)
	}
	out := make([]any, count)
	for i := range out {
		out[i] = start + int64(i)
	}
	return out, nil
}

// ---- arrays and objects ----

func fnArrayConv(_ Env, args []any) (any, error) {
	if a, ok := args[0].([]any); ok {
		return a, nil
	}
	return []any{args[0]}, nil
}

func fnCreateArray(_ Env, args []any) (any, error) {
	if args == nil {
		return []any{}, nil
	}
	return args, nil // the call's argument slice is fresh on every evaluation
}

func fnCreateObject(_ Env, args []any) (any, error) {
	if len(args)%2 != 0 {
		return nil, fnErrorf("createObject", "takes key/value pairs, got %d arguments", len(args))
	}
	out := make(map[string]any, len(args)/2)
	for i := 0; i < len(args); i += 2 {
		k, err := fnArgString("createObject", args, i)
		if err != nil {
			return nil, err
		}
		out[k] = args[i+1]
	}
	return out, nil
}

// fnConcat joins strings (numbers and booleans are written as strings, as ARM does for
// concat('vm', copyIndex())) or arrays; the first argument decides which.
func fnConcat(_ Env, args []any) (any, error) {
	if _, ok := args[0].([]any); ok {
		n := 0
		for i, a := range args {
			switch t := a.(type) {
			case []any:
				n += len(t)
			case nil:
			default:
				return nil, fnTypeErr("concat", i, "an array like the first", a)
			}
		}
		out := make([]any, 0, n)
		for _, a := range args {
			if t, ok := a.([]any); ok {
				out = append(out, t...)
			}
		}
		return out, nil
	}
	var b strings.Builder
	for i, a := range args {
		switch a.(type) {
		case []any, map[string]any:
			return nil, fnTypeErr("concat", i, "a string like the first", a)
		}
		b.WriteString(fnToString(a))
		if b.Len() > 4*fnMaxString {
			return nil, fnErrorf("concat", "the result is longer than %d characters, Azure Policy's limit", fnMaxString)
		}
	}
	return b.String(), nil
}

// fnContains: a substring (case-sensitive), an array element (deep equality) or an object
// key (case-insensitive), as template-functions-object.md ("contains") says. A null
// container contains nothing, so a guard such as contains(requestContext().identity, 'x')
// does not fail when there is no identity.
func fnContains(_ Env, args []any) (any, error) {
	item := args[1]
	switch t := args[0].(type) {
	case nil:
		return false, nil
	case string:
		s, ok := fnScalarText(item)
		if !ok {
			return nil, fnTypeErr("contains", 1, "a string or number when searching a string", item)
		}
		return strings.Contains(t, s), nil
	case []any:
		for _, e := range t {
			if fnDeepEqual(e, item) {
				return true, nil
			}
		}
		return false, nil
	case map[string]any:
		k, ok := fnScalarText(item)
		if !ok {
			return nil, fnTypeErr("contains", 1, "a string when searching an object's keys", item)
		}
		_, found := fnLookup(t, k)
		return found, nil
	}
	return nil, fnTypeErr("contains", 0, "an array, object or string", args[0])
}

// fnEmpty: null and empty strings, arrays and objects are empty.
func fnEmpty(_ Env, args []any) (any, error) {
	switch t := args[0].(type) {
	case nil:
		return true, nil
	case string:
		return t == "", nil
	case []any:
		return len(t) == 0, nil
	case map[string]any:
		return len(t) == 0, nil
	}
	return nil, fnTypeErr("empty", 0, "an array, object or string", args[0])
}

// fnLength counts characters (UTF-16 units), elements or root-level properties. Null has
// length 0, so that length(field('tags')) on a resource without tags does not fail.
func fnLength(_ Env, args []any) (any, error) {
	switch t := args[0].(type) {
	case nil:
		return int64(0), nil
	case string:
		return int64(fnLen16(t)), nil
	case []any:
		return int64(len(t)), nil
	case map[string]any:
		return int64(len(t)), nil
	}
	return nil, fnTypeErr("length", 0, "an array, object or string", args[0])
}

// fnFirstLast returns an end element of an array (null when empty) or an end character.
func fnFirstLast(name string) func(Env, []any) (any, error) {
	return func(_ Env, args []any) (any, error) {
		switch t := args[0].(type) {
		case nil:
			return nil, nil
		case []any:
			if len(t) == 0 {
				return nil, nil
			}
			if name == "first" {
				return t[0], nil
			}
			return t[len(t)-1], nil
		case string:
			n := fnLen16(t)
			if n == 0 {
				return "", nil
			}
			if name == "first" {
				return fnSub16(t, 0, 1), nil
			}
			return fnSub16(t, n-1, 1), nil
		}
		return nil, fnTypeErr(name, 0, "an array or string", args[0])
	}
}

// fnTakeSkip clamps the count to the value's length, as the documentation specifies.
func fnTakeSkip(name string) func(Env, []any) (any, error) {
	return func(_ Env, args []any) (any, error) {
		n, err := fnArgInt(name, args, 1)
		if err != nil {
			return nil, err
		}
		clamp := func(length int) int {
			return int(max(0, min(n, int64(length))))
		}
		switch t := args[0].(type) {
		case []any:
			k := clamp(len(t))
			if name == "take" {
				return t[:k:k], nil
			}
			return t[k:], nil
		case string:
			length := fnLen16(t)
			k := clamp(length)
			if name == "take" {
				return fnSub16(t, 0, k), nil
			}
			return fnSub16(t, k, length-k), nil
		}
		return nil, fnTypeErr(name, 0, "an array or string", args[0])
	}
}

// fnIndexOf finds a substring without regard to case (the documented behaviour) or an
// array element by deep equality; -1 when absent.
func fnIndexOf(name string) func(Env, []any) (any, error) {
	last := name == "lastIndexOf"
	return func(_ Env, args []any) (any, error) {
		switch t := args[0].(type) {
		case string:
			sub, err := fnArgString(name, args, 1)
			if err != nil {
				return nil, err
			}
			return int64(fnIndexFold(t, sub, last)), nil
		case []any:
			for k := range t {
				i := k
				if last {
					i = len(t) - 1 - k
				}
				if fnDeepEqual(t[i], args[1]) {
					return int64(i), nil
				}
			}
			return int64(-1), nil
		}
		return nil, fnTypeErr(name, 0, "a string or array", args[0])
	}
}

// fnUnion merges arrays (each distinct value once, in order of appearance) or objects
// (later values win; nested objects merge recursively, nested arrays are replaced), as
// template-functions-object.md ("union") describes.
func fnUnion(_ Env, args []any) (any, error) {
	switch args[0].(type) {
	case []any:
		var out []any
		for i, a := range args {
			arr, ok := a.([]any)
			if !ok {
				return nil, fnTypeErr("union", i, "an array like the first", a)
			}
			for _, v := range arr {
				if !fnContainsValue(out, v) {
					out = append(out, v)
				}
			}
		}
		if out == nil {
			out = []any{}
		}
		return out, nil
	case map[string]any:
		out := map[string]any{}
		for i, a := range args {
			obj, ok := a.(map[string]any)
			if !ok {
				return nil, fnTypeErr("union", i, "an object like the first", a)
			}
			out = fnMergeDeep(out, obj)
		}
		return out, nil
	}
	return nil, fnTypeErr("union", 0, "an array or object", args[0])
}

// fnMergeDeep returns a new object: dst with src laid over it.
func fnMergeDeep(dst, src map[string]any) map[string]any {
	out := make(map[string]any, len(dst)+len(src))
	for k, v := range dst {
		out[k] = v
	}
	for k, v := range src {
		if sub, ok := v.(map[string]any); ok {
			if prev, ok := out[k].(map[string]any); ok {
				out[k] = fnMergeDeep(prev, sub)
				continue
			}
		}
		out[k] = v
	}
	return out
}

func fnContainsValue(list []any, v any) bool {
	for _, e := range list {
		if fnDeepEqual(e, v) {
			return true
		}
	}
	return false
}

// fnIntersection keeps the distinct elements of the first array found in every other, or
// the properties whose name and value all objects share.
func fnIntersection(_ Env, args []any) (any, error) {
	switch first := args[0].(type) {
	case []any:
		rest := make([][]any, len(args)-1)
		for i, a := range args[1:] {
			arr, ok := a.([]any)
			if !ok {
				return nil, fnTypeErr("intersection", i+1, "an array like the first", a)
			}
			rest[i] = arr
		}
		out := []any{}
	next:
		for _, v := range first {
			if fnContainsValue(out, v) {
				continue
			}
			for _, arr := range rest {
				if !fnContainsValue(arr, v) {
					continue next
				}
			}
			out = append(out, v)
		}
		return out, nil
	case map[string]any:
		rest := make([]map[string]any, len(args)-1)
		for i, a := range args[1:] {
			obj, ok := a.(map[string]any)
			if !ok {
				return nil, fnTypeErr("intersection", i+1, "an object like the first", a)
			}
			rest[i] = obj
		}
		out := map[string]any{}
	nextKey:
		for k, v := range first {
			for _, obj := range rest {
				w, ok := obj[k]
				if !ok || !fnDeepEqual(v, w) {
					continue nextKey
				}
			}
			out[k] = v
		}
		return out, nil
	}
	return nil, fnTypeErr("intersection", 0, "an array or object", args[0])
}

func fnArgObject(name string, args []any, i int) (map[string]any, error) {
	m, ok := args[i].(map[string]any)
	if !ok {
		return nil, fnTypeErr(name, i, "an object", args[i])
	}
	return m, nil
}

func fnSortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// fnItems turns an object into [{key, value}], sorted by key as ARM sorts them.
func fnItems(_ Env, args []any) (any, error) {
	m, err := fnArgObject("items", args, 0)
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, len(m))
	for _, k := range fnSortedKeys(m) {
		out = append(out, map[string]any{"key": k, "value": m[k]})
	}
	return out, nil
}

func fnObjectKeys(_ Env, args []any) (any, error) {
	m, err := fnArgObject("objectKeys", args, 0)
	if err != nil {
		return nil, err
	}
	keys := fnSortedKeys(m)
	out := make([]any, len(keys))
	for i, k := range keys {
		out[i] = k
	}
	return out, nil
}

// fnShallowMerge merges an array of objects at the top level only, later objects winning.
func fnShallowMerge(_ Env, args []any) (any, error) {
	arr, ok := args[0].([]any)
	if !ok {
		return nil, fnTypeErr("shallowMerge", 0, "an array of objects", args[0])
	}
	out := map[string]any{}
	for _, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fnErrorf("shallowMerge", "every element must be an object, got %s", TypeName(e))
		}
		for k, v := range m {
			out[k] = v
		}
	}
	return out, nil
}

// fnFlatten joins an array of arrays into one array.
func fnFlatten(_ Env, args []any) (any, error) {
	arr, ok := args[0].([]any)
	if !ok {
		return nil, fnTypeErr("flatten", 0, "an array of arrays", args[0])
	}
	out := []any{}
	for _, e := range arr {
		sub, ok := e.([]any)
		if !ok {
			return nil, fnErrorf("flatten", "every element must be an array, got %s", TypeName(e))
		}
		out = append(out, sub...)
	}
	return out, nil
}

// fnTryGet is tryGet(value, keyOrIndex, ...): each key or index looked up in turn, null as
// soon as one is absent, instead of the failure that plain property access can give.
func fnTryGet(_ Env, args []any) (any, error) {
	v := args[0]
	for i, k := range args[1:] {
		switch t := v.(type) {
		case nil:
			return nil, nil
		case map[string]any:
			key, ok := k.(string)
			if !ok {
				return nil, fnTypeErr("tryGet", i+1, "a string key for an object", k)
			}
			v, _ = fnLookup(t, key)
		case []any:
			idx, ok := k.(int64)
			if !ok {
				return nil, fnTypeErr("tryGet", i+1, "an integer index for an array", k)
			}
			if idx < 0 || idx >= int64(len(t)) {
				return nil, nil
			}
			v = t[idx]
		default:
			return nil, fnErrorf("tryGet", "cannot look up a key in %s", TypeName(v))
		}
	}
	return v, nil
}

// fnJSONConv is json(): parse a JSON text; json('null') is null.
func fnJSONConv(_ Env, args []any) (any, error) {
	s, err := fnArgString("json", args, 0)
	if err != nil {
		return nil, err
	}
	v, err := fnDecodeJSON(s)
	if err != nil {
		return nil, fnErrorf("json", "argument 1 is not valid JSON: %v", err)
	}
	return v, nil
}

// fnDecodeJSON decodes one JSON text, refusing anything after it.
func fnDecodeJSON(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the JSON value")
	}
	return Normalize(v), nil
}

// fnLookup finds a property as ARM does: by exact name, else ignoring case. Among several
// names that differ only in case, the lowest sorting one is chosen, to stay deterministic.
func fnLookup(m map[string]any, key string) (any, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	best, found := "", false
	for k := range m {
		if strings.EqualFold(k, key) && (!found || k < best) {
			best, found = k, true
		}
	}
	if found {
		return m[best], true
	}
	return nil, false
}

// fnProperty is x.name. A missing property is null rather than a failure: Azure's built-in
// "inherit a tag from the resource group" reads resourceGroup().tags[name] and treats an
// absent tag as "not set" (samples/pattern-value-operator.md). Reading from null is null.
func fnProperty(v any, name string) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		r, _ := fnLookup(t, name)
		return r, nil
	case nil:
		return nil, nil
	}
	return nil, &Error{Code: CodeEval, Message: fmt.Sprintf("cannot read property '%s' of %s", name, fnArticle(v))}
}

// fnIndex is x[i]: a property by name, or an array element by position (out of range fails,
// as it does in ARM; tryGet is the lenient form).
func fnIndex(v, i any) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		key, ok := i.(string)
		if !ok {
			return nil, &Error{Code: CodeEval, Message: "an object's property name must be a string, got " + TypeName(i)}
		}
		r, _ := fnLookup(t, key)
		return r, nil
	case []any:
		var idx int64
		switch n := i.(type) {
		case int64:
			idx = n
		case float64:
			if n != math.Trunc(n) {
				return nil, &Error{Code: CodeEval, Message: fmt.Sprintf("array index %v is not an integer", n)}
			}
			idx = int64(n)
		default:
			return nil, &Error{Code: CodeEval, Message: "an array index must be an integer, got " + TypeName(i)}
		}
		if idx < 0 || idx >= int64(len(t)) {
			return nil, &Error{Code: CodeEval, Message: fmt.Sprintf("array index %d is out of bounds for an array of %d elements", idx, len(t))}
		}
		return t[idx], nil
	case nil:
		return nil, nil
	}
	return nil, &Error{Code: CodeEval, Message: "cannot index " + fnArticle(v)}
}

func fnArticle(v any) string {
	switch v.(type) {
	case int64, float64, []any, map[string]any:
		return "an " + TypeName(v)
	}
	return "a " + TypeName(v)
}

// ---- strings ----

// fnToString is string(): booleans as .NET writes them ("True"), numbers in decimal,
// arrays and objects as compact JSON (object keys sorted: the value model keeps no order).
func fnToString(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case bool:
		if t {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(t, 10)
	case float64:
		return fnFloatText(t)
	}
	var b strings.Builder
	fnWriteJSON(&b, v)
	return b.String()
}

// fnScalarText writes a string, number or boolean as text; false for containers.
func fnScalarText(v any) (string, bool) {
	switch v.(type) {
	case string, int64, float64, bool:
		return fnToString(v), true
	}
	return "", false
}

// fnFloatText writes a float as .NET's shortest round-trip form does: plain digits between
// 1e-5 and 1e15, "1E+15" style outside.
func fnFloatText(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	if a := math.Abs(f); a == 0 || a >= 1e-5 && a < 1e15 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'E', -1, 64)
}

// fnWriteJSON writes compact JSON as Json.NET does: no HTML escaping, floats keep a ".0".
func fnWriteJSON(b *strings.Builder, v any) {
	switch t := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(t))
	case int64:
		b.WriteString(strconv.FormatInt(t, 10))
	case float64:
		s := fnFloatText(t)
		if math.IsNaN(t) || math.IsInf(t, 0) {
			s = strconv.Quote(s)
		} else if !strings.ContainsAny(s, ".E") {
			s += ".0"
		}
		b.WriteString(s)
	case string:
		fnWriteJSONString(b, t)
	case []any:
		b.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				b.WriteByte(',')
			}
			fnWriteJSON(b, e)
		}
		b.WriteByte(']')
	case map[string]any:
		b.WriteByte('{')
		for i, k := range fnSortedKeys(t) {
			if i > 0 {
				b.WriteByte(',')
			}
			fnWriteJSONString(b, k)
			b.WriteByte(':')
			fnWriteJSON(b, t[k])
		}
		b.WriteByte('}')
	default:
		fnWriteJSONString(b, fmt.Sprint(t))
	}
}

func fnWriteJSONString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if r < 0x20 {
				fmt.Fprintf(b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

// fnLiteralText writes a constant in template-expression syntax, for canonical forms.
func fnLiteralText(v any) string {
	switch t := v.(type) {
	case nil:
		return "null()"
	case bool:
		if t {
			return "true()"
		}
		return "false()"
	case string:
		return "'" + strings.ReplaceAll(t, "'", "''") + "'"
	case int64:
		return strconv.FormatInt(t, 10)
	case float64:
		return "float('" + strconv.FormatFloat(t, 'g', -1, 64) + "')"
	}
	var b strings.Builder
	fnWriteJSON(&b, v)
	return "json(" + fnLiteralText(b.String()) + ")"
}

func fnStringMap(name string, f func(string) string) func(Env, []any) (any, error) {
	return func(_ Env, args []any) (any, error) {
		s, err := fnArgString(name, args, 0)
		if err != nil {
			return nil, err
		}
		return f(s), nil
	}
}

// fnSplit splits at a delimiter or at any of several (tried in order at each position, as
// .NET's String.Split does), keeping empty parts.
func fnSplit(_ Env, args []any) (any, error) {
	s, err := fnArgString("split", args, 0)
	if err != nil {
		return nil, err
	}
	var delims []string
	switch d := args[1].(type) {
	case string:
		delims = []string{d}
	case []any:
		for _, e := range d {
			ds, ok := e.(string)
			if !ok {
				return nil, fnErrorf("split", "every delimiter must be a string, got %s", TypeName(e))
			}
			delims = append(delims, ds)
		}
	default:
		return nil, fnTypeErr("split", 1, "a string or an array of strings", args[1])
	}
	var out []any
	start := 0
	for i := 0; i < len(s); {
		matched := 0
		for _, d := range delims {
			if d != "" && strings.HasPrefix(s[i:], d) {
				matched = len(d)
				break
			}
		}
		if matched == 0 {
			i++
			continue
		}
		out = append(out, s[start:i])
		i += matched
		start = i
	}
	return append(out, s[start:]), nil
}

// fnJoin is join(array, delimiter); numbers and booleans are written as strings.
func fnJoin(_ Env, args []any) (any, error) {
	arr, ok := args[0].([]any)
	if !ok {
		return nil, fnTypeErr("join", 0, "an array", args[0])
	}
	delim, err := fnArgString("join", args, 1)
	if err != nil {
		return nil, err
	}
	parts := make([]string, len(arr))
	for i, e := range arr {
		s, ok := fnScalarText(e)
		if !ok && e != nil {
			return nil, fnErrorf("join", "element %d is %s, not a string", i, fnArticle(e))
		}
		parts[i] = s
	}
	return strings.Join(parts, delim), nil
}

// fnReplace replaces every occurrence, case-sensitively, checking the result's size first.
func fnReplace(_ Env, args []any) (any, error) {
	var s [3]string
	for i := range s {
		v, err := fnArgString("replace", args, i)
		if err != nil {
			return nil, err
		}
		s[i] = v
	}
	if s[1] == "" {
		return nil, fnErrorf("replace", "the string to replace must not be empty")
	}
	if n := strings.Count(s[0], s[1]); n > 0 && len(s[0])+n*(len(s[2])-len(s[1])) > 4*fnMaxString {
		return nil, fnErrorf("replace", "the result is longer than %d characters, Azure Policy's limit", fnMaxString)
	}
	return strings.ReplaceAll(s[0], s[1], s[2]), nil
}

// fnSubstring is substring(s, startIndex = 0, length = rest); the range must lie within
// the string (template-functions-string.md, "substring").
func fnSubstring(_ Env, args []any) (any, error) {
	s, err := fnArgString("substring", args, 0)
	if err != nil {
		return nil, err
	}
	n := int64(fnLen16(s))
	start, length := int64(0), int64(-1)
	if len(args) > 1 {
		if start, err = fnArgInt("substring", args, 1); err != nil {
			return nil, err
		}
	}
	if len(args) > 2 {
		if length, err = fnArgInt("substring", args, 2); err != nil {
			return nil, err
		}
	}
	if start < 0 || start > n {
		return nil, fnErrorf("substring", "startIndex %d is outside the string of length %d", start, n)
	}
	if length < 0 {
		if len(args) > 2 {
			return nil, fnErrorf("substring", "length %d must not be negative", length)
		}
		length = n - start
	}
	if length > n-start {
		return nil, fnErrorf("substring", "the index and length must refer to a location within the string: index %d, length %d, string length %d", start, length, n)
	}
	return fnSub16(s, int(start), int(length)), nil
}

// fnAffix is startsWith/endsWith, which ignore case.
func fnAffix(name string) func(Env, []any) (any, error) {
	return func(_ Env, args []any) (any, error) {
		s, err := fnArgString(name, args, 0)
		if err != nil {
			return nil, err
		}
		a, err := fnArgString(name, args, 1)
		if err != nil {
			return nil, err
		}
		rs, ra := []rune(s), []rune(a)
		if len(ra) > len(rs) {
			return false, nil
		}
		off := 0
		if name == "endsWith" {
			off = len(rs) - len(ra)
		}
		for i, r := range ra {
			if !fnFoldEqual(rs[off+i], r) {
				return false, nil
			}
		}
		return true, nil
	}
}

func fnFoldEqual(a, b rune) bool {
	return a == b || unicode.ToLower(a) == unicode.ToLower(b) || unicode.ToUpper(a) == unicode.ToUpper(b)
}

// fnPadLeft is padLeft(value, totalLength, paddingCharacter = ' ').
func fnPadLeft(_ Env, args []any) (any, error) {
	var s string
	switch t := args[0].(type) {
	case string:
		s = t
	case int64:
		s = strconv.FormatInt(t, 10)
	default:
		return nil, fnTypeErr("padLeft", 0, "a string or integer", args[0])
	}
	total, err := fnArgInt("padLeft", args, 1)
	if err != nil {
		return nil, err
	}
	if total < 0 || total > fnMaxString {
		return nil, fnErrorf("padLeft", "totalLength must be between 0 and %d, got %d", fnMaxString, total)
	}
	pad := " "
	if len(args) > 2 {
		if pad, err = fnArgString("padLeft", args, 2); err != nil {
			return nil, err
		}
		if fnLen16(pad) != 1 {
			return nil, fnErrorf("padLeft", "paddingCharacter must be a single character, got '%s'", pad)
		}
	}
	if n := int64(fnLen16(s)); n < total {
		s = strings.Repeat(pad, int(total-n)) + s
	}
	return s, nil
}

func fnBase64(_ Env, args []any) (any, error) {
	s, err := fnArgString("base64", args, 0)
	if err != nil {
		return nil, err
	}
	return base64.StdEncoding.EncodeToString([]byte(s)), nil
}

func fnDecodeBase64(name string, args []any) ([]byte, error) {
	s, err := fnArgString(name, args, 0)
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fnErrorf(name, "argument 1 is not valid base64")
	}
	return b, nil
}

func fnBase64ToString(_ Env, args []any) (any, error) {
	b, err := fnDecodeBase64("base64ToString", args)
	if err != nil {
		return nil, err
	}
	return strings.ToValidUTF8(string(b), "\uFFFD"), nil
}

func fnBase64ToJSON(_ Env, args []any) (any, error) {
	b, err := fnDecodeBase64("base64ToJson", args)
	if err != nil {
		return nil, err
	}
	v, err := fnDecodeJSON(string(b))
	if err != nil {
		return nil, fnErrorf("base64ToJson", "the decoded text is not valid JSON: %v", err)
	}
	return v, nil
}

// fnDataURI writes the form ARM produces: data:text/plain;charset=utf8;base64,...
func fnDataURI(_ Env, args []any) (any, error) {
	s, err := fnArgString("dataUri", args, 0)
	if err != nil {
		return nil, err
	}
	return "data:text/plain;charset=utf8;base64," + base64.StdEncoding.EncodeToString([]byte(s)), nil
}

func fnDataURIToString(_ Env, args []any) (any, error) {
	s, err := fnArgString("dataUriToString", args, 0)
	if err != nil {
		return nil, err
	}
	meta, data, ok := strings.Cut(s, ",")
	if !ok || len(meta) < 5 || !strings.EqualFold(meta[:5], "data:") {
		return nil, fnErrorf("dataUriToString", "'%s' is not a data URI", s)
	}
	if strings.HasSuffix(strings.ToLower(meta), ";base64") {
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return nil, fnErrorf("dataUriToString", "the data is not valid base64")
		}
		return strings.ToValidUTF8(string(b), "\uFFFD"), nil
	}
	return fnUnescapeURI(data), nil
}

// fnURI resolves relativeUri against baseUri by RFC 3986 section 5, as the docs specify.
func fnURI(_ Env, args []any) (any, error) {
	base, err := fnArgString("uri", args, 0)
	if err != nil {
		return nil, err
	}
	rel, err := fnArgString("uri", args, 1)
	if err != nil {
		return nil, err
	}
	b, err := url.Parse(base)
	if err != nil || !b.IsAbs() {
		return nil, fnErrorf("uri", "baseUri '%s' is not an absolute URI", base)
	}
	r, err := url.Parse(rel)
	if err != nil {
		return nil, fnErrorf("uri", "relativeUri '%s' is not a valid URI", rel)
	}
	return b.ResolveReference(r).String(), nil
}

// fnURIComponent escapes everything but RFC 3986's unreserved characters, as .NET's
// Uri.EscapeDataString does.
func fnURIComponent(_ Env, args []any) (any, error) {
	s, err := fnArgString("uriComponent", args, 0)
	if err != nil {
		return nil, err
	}
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String(), nil
}

func fnURIComponentToString(_ Env, args []any) (any, error) {
	s, err := fnArgString("uriComponentToString", args, 0)
	if err != nil {
		return nil, err
	}
	return fnUnescapeURI(s), nil
}

// fnUnescapeURI decodes %XX sequences and leaves malformed ones as written.
func fnUnescapeURI(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := hex.DecodeString(s[i+1 : i+3]); err == nil {
				b = append(b, v[0])
				i += 2
				continue
			}
		}
		b = append(b, s[i])
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// fnStringArgs requires every argument to be a string (guid, uniqueString).
func fnStringArgs(name string, args []any) ([]string, error) {
	out := make([]string, len(args))
	for i := range args {
		s, err := fnArgString(name, args, i)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// fnGUIDNamespace is the namespace ARM's guid() hashes under.
var fnGUIDNamespace = [16]byte{0x11, 0xfb, 0x06, 0xfb, 0x71, 0x2d, 0x4d, 0xdd, 0x98, 0xc7, 0xe7, 0x1b, 0xbd, 0x58, 0x88, 0x30}

// fnGUID is guid(): a name-based version 5 UUID (RFC 4122 section 4.3, SHA-1) of the
// arguments joined with '-', under ARM's namespace 11fb06fb-712d-4ddd-98c7-e71bbd588830.
func fnGUID(_ Env, args []any) (any, error) {
	parts, err := fnStringArgs("guid", args)
	if err != nil {
		return nil, err
	}
	h := sha1.New()
	h.Write(fnGUIDNamespace[:])
	io.WriteString(h, strings.Join(parts, "-"))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	x := hex.EncodeToString(u[:])
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:], nil
}

// fnUniqueString is uniqueString(): ARM's 64-bit MurmurHash variant of the arguments
// joined with '-', written as 13 characters of lower-case base32.
func fnUniqueString(_ Env, args []any) (any, error) {
	parts, err := fnStringArgs("uniqueString", args)
	if err != nil {
		return nil, err
	}
	h := fnMurmur64([]byte(strings.Join(parts, "-")))
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	out := make([]byte, 13)
	for i := range out {
		out[i] = alphabet[h>>59]
		h <<= 5
	}
	return string(out), nil
}

// fnMurmur64 is the two-lane 32-bit MurmurHash3 variant with a 64-bit result that ARM's
// uniqueString uses (seed 0, 8-byte blocks, little-endian).
func fnMurmur64(data []byte) uint64 {
	const (
		c1 = 0xab0e9789
		c2 = 0x239b961b
	)
	var h1, h2 uint32
	n := len(data)
	i := 0
	for ; i+8 <= n; i += 8 {
		k1 := binary.LittleEndian.Uint32(data[i:])
		k2 := binary.LittleEndian.Uint32(data[i+4:])
		k1 = bits.RotateLeft32(k1*c2, 15) * c1
		h1 ^= k1
		h1 = bits.RotateLeft32(h1, 19) + h2
		h1 = h1*5 + 0x561ccd1b
		k2 = bits.RotateLeft32(k2*c1, 17) * c2
		h2 ^= k2
		h2 = bits.RotateLeft32(h2, 13) + h1
		h2 = h2*5 + 0x0bcaa747
	}
	if rem := n - i; rem > 0 {
		var k1 uint32
		for j := min(rem, 4) - 1; j >= 0; j-- {
			k1 = k1<<8 | uint32(data[i+j])
		}
		h1 ^= bits.RotateLeft32(k1*c2, 15) * c1
		if rem > 4 {
			var k2 uint32
			for j := rem - 5; j >= 0; j-- {
				k2 = k2<<8 | uint32(data[i+4+j])
			}
			h2 ^= bits.RotateLeft32(k2*c1, 17) * c2
		}
	}
	h2 ^= uint32(n)
	h1 ^= uint32(n)
	h1 += h2
	h2 += h1
	h1 = fnFmix32(h1)
	h2 = fnFmix32(h2)
	h1 += h2
	h2 += h1
	return uint64(h2)<<32 | uint64(h1)
}

func fnFmix32(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// ---- format ----

// fnFormat is format(formatString, args...) with .NET's composite formatting:
// {index[,alignment][:formatString]}, "{{" and "}}" for braces.
func fnFormat(_ Env, args []any) (any, error) {
	f, err := fnArgString("format", args, 0)
	if err != nil {
		return nil, err
	}
	vals := args[1:]
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		c := f[i]
		switch {
		case c == '{' && i+1 < len(f) && f[i+1] == '{', c == '}' && i+1 < len(f) && f[i+1] == '}':
			b.WriteByte(c)
			i++
		case c == '}':
			return nil, fnErrorf("format", "unmatched '}' at position %d of the format string", i)
		case c == '{':
			end := strings.IndexByte(f[i:], '}')
			if end < 0 {
				return nil, fnErrorf("format", "unmatched '{' at position %d of the format string", i)
			}
			item := f[i+1 : i+end]
			spec := ""
			if k := strings.IndexByte(item, ':'); k >= 0 {
				item, spec = item[:k], item[k+1:]
			}
			align := int64(0)
			if k := strings.IndexByte(item, ','); k >= 0 {
				a, err := strconv.ParseInt(strings.TrimSpace(item[k+1:]), 10, 64)
				if err != nil || a > fnMaxString || a < -fnMaxString {
					return nil, fnErrorf("format", "invalid alignment in '{%s}'", f[i+1:i+end])
				}
				item, align = item[:k], a
			}
			idx, err := strconv.Atoi(strings.TrimSpace(item))
			if err != nil || idx < 0 {
				return nil, fnErrorf("format", "invalid format item '{%s}'", f[i+1:i+end])
			}
			if idx >= len(vals) {
				return nil, fnErrorf("format", "format item {%d} has no argument; %d given", idx, len(vals))
			}
			s, err := fnFormatValue(vals[idx], spec)
			if err != nil {
				return nil, err
			}
			if pad := int(fnAbs(align)) - fnLen16(s); pad > 0 {
				if align > 0 {
					s = strings.Repeat(" ", pad) + s
				} else {
					s += strings.Repeat(" ", pad)
				}
			}
			b.WriteString(s)
			if b.Len() > 4*fnMaxString {
				return nil, fnErrorf("format", "the result is longer than %d characters, Azure Policy's limit", fnMaxString)
			}
			i += end
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// fnFormatValue applies a .NET numeric format string: the standard ones (G, D, N, F, E,
// P, X and their precisions) and custom patterns of 0 # , and '.'. Strings and booleans
// ignore the format, as in .NET.
func fnFormatValue(v any, spec string) (string, error) {
	var f float64
	isInt := false
	var i int64
	switch t := v.(type) {
	case int64:
		i, f, isInt = t, float64(t), true
	case float64:
		f = t
	default:
		return fnToString(v), nil
	}
	if spec == "" {
		return fnToString(v), nil
	}
	letter := spec[0]
	prec := -1
	if len(spec) > 1 {
		p, err := strconv.Atoi(spec[1:])
		if err != nil || p < 0 || p > 99 {
			return fnFormatCustom(f, spec)
		}
		prec = p
	}
	if !(letter >= 'a' && letter <= 'z' || letter >= 'A' && letter <= 'Z') {
		return fnFormatCustom(f, spec)
	}
	def := func(d int) int {
		if prec < 0 {
			return d
		}
		return prec
	}
	switch letter {
	case 'R', 'r':
		return fnToString(v), nil
	case 'G', 'g':
		if isInt || prec <= 0 {
			return fnToString(v), nil
		}
		return strconv.FormatFloat(f, letter, prec, 64), nil
	case 'D', 'd':
		if !isInt {
			return "", fnErrorf("format", "format '%s' applies to integers only", spec)
		}
		digits := strconv.FormatUint(uint64(fnAbs(i)), 10)
		if i == math.MinInt64 {
			digits = "9223372036854775808"
		}
		if n := def(0) - len(digits); n > 0 {
			digits = strings.Repeat("0", n) + digits
		}
		if i < 0 {
			digits = "-" + digits
		}
		return digits, nil
	case 'X', 'x':
		if !isInt {
			return "", fnErrorf("format", "format '%s' applies to integers only", spec)
		}
		h := strconv.FormatUint(uint64(i), 16) // two's complement for negatives, as .NET
		if letter == 'X' {
			h = strings.ToUpper(h)
		}
		if n := def(0) - len(h); n > 0 {
			h = strings.Repeat("0", n) + h
		}
		return h, nil
	case 'F', 'f':
		return strconv.FormatFloat(f, 'f', def(2), 64), nil
	case 'N', 'n':
		return fnGroupDigits(strconv.FormatFloat(f, 'f', def(2), 64)), nil
	case 'P', 'p':
		return fnGroupDigits(strconv.FormatFloat(f*100, 'f', def(2), 64)) + " %", nil
	case 'E', 'e':
		s := strconv.FormatFloat(f, 'e', def(6), 64)
		mant, exp, _ := strings.Cut(s, "e")
		sign := exp[:1]
		exp = strings.TrimLeft(exp[1:], "0")
		for len(exp) < 3 { // .NET writes at least three exponent digits
			exp = "0" + exp
		}
		e := "e"
		if letter == 'E' {
			e = "E"
		}
		return mant + e + sign + exp, nil
	}
	return "", fnErrorf("format", "format specifier '%s' is not supported", spec)
}

// fnGroupDigits inserts thousands separators into a plain decimal number.
func fnGroupDigits(s string) string {
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	intPart, frac, hasFrac := strings.Cut(s, ".")
	var b strings.Builder
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if hasFrac {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return sign + b.String()
}

// fnFormatCustom handles custom numeric patterns made of 0, #, ',' and one '.'.
func fnFormatCustom(f float64, spec string) (string, error) {
	if strings.Trim(spec, "0#,.") != "" || strings.Count(spec, ".") > 1 {
		return "", fnErrorf("format", "format specifier '%s' is not supported", spec)
	}
	intPat, fracPat, _ := strings.Cut(spec, ".")
	group := strings.Contains(intPat, ",")
	intPat = strings.ReplaceAll(intPat, ",", "")
	fracPat = strings.ReplaceAll(fracPat, ",", "")
	minInt := strings.Count(intPat, "0")
	minFrac := strings.Count(fracPat, "0")
	s := strconv.FormatFloat(math.Abs(f), 'f', len(fracPat), 64)
	intPart, frac, _ := strings.Cut(s, ".")
	for len(frac) > minFrac && strings.HasSuffix(frac, "0") {
		frac = frac[:len(frac)-1]
	}
	intPart = strings.TrimLeft(intPart, "0")
	if len(intPart) < minInt {
		intPart = strings.Repeat("0", minInt-len(intPart)) + intPart
	}
	if group {
		intPart = fnGroupDigits(intPart)
	}
	out := intPart
	if frac != "" {
		out += "." + frac
	}
	if out == "" {
		out = "0"
	}
	if f < 0 && strings.Trim(out, "0.,") != "" {
		out = "-" + out
	}
	return out, nil
}

// ---- UTF-16 view of strings ----

func fnIsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// fnLen16 is a string's length in UTF-16 code units, .NET's String.Length.
func fnLen16(s string) int {
	n := 0
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			n++
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:]) // invalid UTF-8 decodes as U+FFFD, one unit
		n += utf16.RuneLen(r)
		i += size
	}
	return n
}

// fnSub16 is s.Substring(start, n) in UTF-16 units. Cutting a surrogate pair leaves U+FFFD.
func fnSub16(s string, start, n int) string {
	if fnIsASCII(s) {
		return s[start : start+n]
	}
	u := utf16.Encode([]rune(s))
	return string(utf16.Decode(u[start : start+n]))
}

// fnIndexFold finds sub in s ignoring case and returns the UTF-16 index, or -1.
func fnIndexFold(s, sub string, last bool) int {
	if fnIsASCII(s) && fnIsASCII(sub) {
		ls, lsub := strings.ToLower(s), strings.ToLower(sub)
		if last {
			return strings.LastIndex(ls, lsub)
		}
		return strings.Index(ls, lsub)
	}
	rs, rsub := []rune(s), []rune(sub)
	match := func(at int) bool {
		for j, r := range rsub {
			if !fnFoldEqual(rs[at+j], r) {
				return false
			}
		}
		return true
	}
	found := -1
	for k := 0; k+len(rsub) <= len(rs); k++ {
		at := k
		if last {
			at = len(rs) - len(rsub) - k
		}
		if match(at) {
			found = at
			break
		}
	}
	if found < 0 {
		return -1
	}
	return fnLen16(string(rs[:found]))
}
