package check

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// Parse reads a check set written in JSON, as an array of checks or as {"checks": [...]},
// and validates it as NewSet does. It is strict: unknown and repeated fields, values of
// the wrong type and checks that break a rule are all refused, and the error (a Problems)
// lists every problem at once with its path, such as "checks[3].path".
func Parse(data []byte) (Set, error) {
	elems, problems := splitChecks(data)
	if elems == nil {
		return Set{}, problems
	}
	checks := make([]Check, len(elems))
	for i, raw := range elems {
		problems = append(problems, decodeCheck(raw, &checks[i], fmt.Sprintf("checks[%d]", i))...)
	}
	return newSet(checks, problems)
}

// splitChecks finds the checks' raw JSON objects. A nil slice means the document itself is
// wrong and there is nothing more to look at.
func splitChecks(data []byte) ([]json.RawMessage, Problems) {
	var ps Problems
	trimmed := bytes.TrimSpace(data)
	if !json.Valid(trimmed) {
		var v any
		err := json.Unmarshal(trimmed, &v)
		ps.add("", "not valid JSON: %s", describeSyntaxError(trimmed, err))
		return nil, ps
	}
	var list json.RawMessage
	switch {
	case len(trimmed) > 0 && trimmed[0] == '[':
		list = trimmed
	case len(trimmed) > 0 && trimmed[0] == '{':
		fields, dups := objectFields(trimmed)
		for _, d := range dups {
			ps.add(d, "repeated field")
		}
		for name := range fields {
			if name != "checks" {
				msg := "unknown field; a check set is {\"checks\": [...]}"
				if suggest(name, []string{"checks"}) != "" {
					msg += "; did you mean \"checks\"?"
				}
				ps.add(name, "%s", msg)
			}
		}
		raw, ok := fields["checks"]
		if !ok {
			ps.add("checks", "required")
			return nil, ps
		}
		list = bytes.TrimSpace(raw)
		if len(list) == 0 || list[0] != '[' {
			ps.add("checks", "want an array of checks, got %s", jsonKind(list))
			return nil, ps
		}
	default:
		ps.add("", "a check set is a JSON array of checks or an object {\"checks\": [...]}, not %s", jsonKind(trimmed))
		return nil, ps
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(list, &elems); err != nil {
		ps.add("checks", "%v", err)
		return nil, ps
	}
	if elems == nil {
		elems = []json.RawMessage{}
	}
	return elems, ps
}

// describeSyntaxError says where a JSON syntax error is, as a line and column.
func describeSyntaxError(data []byte, err error) string {
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		if err == nil {
			return "unexpected data"
		}
		return err.Error()
	}
	// Offset counts the bytes read, the offending one included.
	off := int(max(min(se.Offset-1, int64(len(data))), 0))
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := off - bytes.LastIndexByte(data[:off], '\n')
	return fmt.Sprintf("line %d, column %d: %v", line, col, se)
}

// objectFields reads a JSON object's fields in order, reporting repeated names (which
// encoding/json would silently resolve to the last one). data must be a valid object.
func objectFields(data []byte) (map[string]json.RawMessage, []string) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	fields := map[string]json.RawMessage{}
	var dups []string
	if _, err := dec.Token(); err != nil { // {
		return fields, nil
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			break
		}
		if _, dup := fields[name]; dup {
			dups = append(dups, name)
		}
		fields[name] = raw
	}
	return fields, dups
}

// decodeCheck decodes one check field by field, so that every field's problem is reported
// with its path instead of the first one ending the decoding.
func decodeCheck(raw json.RawMessage, c *Check, at string) Problems {
	var ps Problems
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		ps.add(at, "want a check object, got %s", jsonKind(raw))
		return ps
	}
	fields, dups := objectFields(raw)
	for _, d := range dups {
		ps.add(at+"."+d, "repeated field")
	}
	v := reflect.ValueOf(c).Elem()
	names := make([]string, 0, len(checkFields))
	for _, f := range checkFields {
		names = append(names, f.name)
	}
	for name, value := range fields {
		idx, ok := fieldByName[name]
		if !ok {
			msg := "unknown field"
			if s := suggest(name, names); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			ps.add(at+"."+name, "%s", msg)
			continue
		}
		field := v.Field(idx)
		if err := json.Unmarshal(value, field.Addr().Interface()); err != nil {
			ps.add(at+"."+name, "%s", describeDecodeError(err, field.Type(), value))
		}
	}
	return ps
}

// describeDecodeError says what a field wanted and what it got, in the author's terms
// rather than Go's.
func describeDecodeError(err error, t reflect.Type, value json.RawMessage) string {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return err.Error()
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	want := "a " + t.Kind().String()
	switch t.Kind() {
	case reflect.Bool:
		want = "true or false"
	case reflect.Int:
		want = "an integer"
	case reflect.String:
		want = "a string"
	case reflect.Slice:
		want = "an array of strings"
	}
	if t.Kind() == reflect.Slice && strings.HasPrefix(strings.TrimSpace(string(value)), "[") {
		return fmt.Sprintf("want %s, got %s in it", want, te.Value)
	}
	return fmt.Sprintf("want %s, got %s", want, jsonKind(value))
}
