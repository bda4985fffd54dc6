// Package policy is the Azure Policy language in gild: it parses policy definitions and
// initiatives in the shapes Azure publishes them, compiles each once (aliases resolved,
// template expressions parsed, parameters checked) and evaluates the compiled policy against
// many resources, with the time and the assignment's parameters passed in. It uses only the
// standard library, because it parses untrusted input and the agent may one day link it.
//
// Values are JSON's, held as Go values of these types only: nil, bool, string, int64,
// float64, []any and map[string]any. Normalize turns anything encoding/json produces into
// that form.
package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
)

// Stable error codes, in the manner of OPA's: callers and tests match on them.
const (
	CodeParse            = "policy_parse_error"        // the JSON or an expression does not parse
	CodeUnknownAlias     = "policy_unknown_alias"      // a field names no known alias
	CodeUnknownFunction  = "policy_unknown_function"   // an expression calls no known function
	CodeUnknownParameter = "policy_unknown_parameter"  // parameters('x') names an undeclared parameter
	CodeInvalid          = "policy_invalid_definition" // the definition breaks a rule of the language
	CodeEval             = "policy_eval_error"         // evaluation failed (Azure counts this as deny)
	CodeParameterValue   = "policy_parameter_value"    // an assignment's parameter value is missing or wrong
)

// Error is a policy error with a stable code and the JSON location it concerns, such as
// "policyRule.if.allOf[1].field".
type Error struct {
	Code     string `json:"code"`
	Location string `json:"location,omitempty"`
	Message  string `json:"message"`
}

func (e *Error) Error() string {
	if e.Location != "" {
		return e.Location + ": " + e.Message
	}
	return e.Message
}

// Is makes errors.Is(err, &Error{Code: c}) match any Error with code c.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Message == "" && t.Location == ""
}

func errorf(code, location, format string, args ...any) *Error {
	return &Error{Code: code, Location: location, Message: fmt.Sprintf(format, args...)}
}

// Errors is every error a compilation found, so that an author fixes them in one round.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// err returns es as an error, or nil when it is empty.
func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// CodeOf returns the code of the first *Error in err (also inside Errors), or "".
func CodeOf(err error) string {
	var es Errors
	if errors.As(err, &es) && len(es) > 0 {
		return es[0].Code
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Normalize converts a value decoded by encoding/json (float64 or json.Number numbers,
// typed slices and maps) into the package's value model: whole numbers become int64.
func Normalize(v any) any {
	switch x := v.(type) {
	case nil, bool, string, int64:
		return x
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x)
		}
		return x
	case int:
		return int64(x)
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = Normalize(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = Normalize(e)
		}
		return out
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out
	case map[string]string:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = e
		}
		return out
	}
	return v
}

// DecodeJSON decodes JSON into the value model.
func DecodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return Normalize(v), nil
}

// TypeName names a value's JSON type for messages: "string", "integer", "float",
// "boolean", "array", "object" or "null".
func TypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "float"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}
