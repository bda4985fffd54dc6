package resource

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// Resource is the envelope every gild object shares, in ARM's JSON shape. Properties are
// kept as raw JSON: each type's service validates its own.
type Resource struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Kind       string            `json:"kind,omitempty"`
	Location   string            `json:"location,omitempty"`
	ManagedBy  string            `json:"managedBy,omitempty"`
	Tags       map[string]string `json:"tags,omitempty"`
	SKU        json.RawMessage   `json:"sku,omitempty"`
	Plan       json.RawMessage   `json:"plan,omitempty"`
	Identity   json.RawMessage   `json:"identity,omitempty"`
	Zones      []string          `json:"zones,omitempty"`
	Properties json.RawMessage   `json:"properties,omitempty"`
	ETag       string            `json:"etag,omitempty"`
	SystemData *SystemData       `json:"systemData,omitempty"`
}

// SystemData records who created and last changed a resource, and when.
type SystemData struct {
	CreatedBy      string    `json:"createdBy,omitempty"`
	CreatedAt      time.Time `json:"createdAt"`
	LastModifiedBy string    `json:"lastModifiedBy,omitempty"`
	LastModifiedAt time.Time `json:"lastModifiedAt"`
}

// Limits ARM applies to tags.
const (
	MaxTags           = 50
	MaxTagNameLength  = 512
	MaxTagValueLength = 256
)

// DecodeBody reads a request body for the resource at id: strict JSON (unknown top-level
// fields and trailing data are errors), with id, name and type filled in from id and
// checked against the body when the body gives them. Every problem found is reported at
// once, each naming its field.
func DecodeBody(id ID, body []byte) (*Resource, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, jsonError(body, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, Errorf(CodeInvalidRequestContent, "", "the request body has data after its JSON object")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil || top == nil {
		return nil, Errorf(CodeInvalidRequestContent, "", "the request body must be a JSON object, not %s", jsonValueKind(raw))
	}

	var r Resource
	var errs []*Error
	// Fields in a fixed order, so that the details come out the same every time.
	known := make([]string, 0, len(bodyFields))
	matched := map[string]bool{}
	for _, f := range bodyFields {
		known = append(known, f.name)
		var keys []string
		for k := range top {
			if k == f.name || strings.EqualFold(k, f.name) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			matched[k] = true
		}
		switch len(keys) {
		case 0:
			continue
		case 1:
		default:
			// encoding/json would keep one of them silently, depending on their order.
			errs = append(errs, Errorf(CodeInvalidRequestContent, f.name, "field %s is given %d times (as %s)", f.name, len(keys), strings.Join(quoteAll(keys), ", ")))
			continue
		}
		errs = append(errs, f.decode(&r, f.name, top[keys[0]])...)
	}
	var unknown []string
	for k := range top {
		if !matched[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		errs = append(errs, Errorf(CodeInvalidRequestContent, k, "unknown field %q at the top level of the resource; known are %s", k, strings.Join(known, ", ")))
	}

	if r.ID != "" {
		if bid, err := Parse(r.ID); err != nil {
			errs = append(errs, Errorf(CodeInvalidRequestContent, "id", "id %q in the body is not a valid resource ID: %s", r.ID, messageOf(err)))
		} else if !bid.Equal(id) {
			errs = append(errs, Errorf(CodeInvalidRequestContent, "id", "id %q in the body does not match the request path %q", r.ID, id))
		}
	}
	if r.Name != "" && !strings.EqualFold(r.Name, id.Name()) && !strings.EqualFold(r.Name, id.FullName()) {
		errs = append(errs, Errorf(CodeInvalidRequestContent, "name", "name %q in the body does not match the request path's name %q", r.Name, id.Name()))
	}
	if r.Type != "" && !strings.EqualFold(r.Type, id.Type()) {
		errs = append(errs, Errorf(CodeInvalidRequestContent, "type", "type %q in the body does not match the request path's type %q", r.Type, id.Type()))
	}
	errs = append(errs, checkTags(r.Tags)...)
	if err := Join(CodeInvalidRequestContent, "the request body is invalid", errs); err != nil {
		return nil, err
	}
	r.ID = id.String()
	r.Name = id.Name()
	r.Type = id.Type()
	return &r, nil
}

// bodyField is one top-level field of the envelope and how to decode it.
type bodyField struct {
	name   string
	decode func(r *Resource, name string, raw json.RawMessage) []*Error
}

var bodyFields = []bodyField{
	{"id", stringField(func(r *Resource) *string { return &r.ID })},
	{"name", stringField(func(r *Resource) *string { return &r.Name })},
	{"type", stringField(func(r *Resource) *string { return &r.Type })},
	{"kind", stringField(func(r *Resource) *string { return &r.Kind })},
	{"location", stringField(func(r *Resource) *string { return &r.Location })},
	{"managedBy", stringField(func(r *Resource) *string { return &r.ManagedBy })},
	{"tags", decodeTags},
	{"sku", objectField(func(r *Resource) *json.RawMessage { return &r.SKU })},
	{"plan", objectField(func(r *Resource) *json.RawMessage { return &r.Plan })},
	{"identity", objectField(func(r *Resource) *json.RawMessage { return &r.Identity })},
	{"zones", decodeZones},
	{"properties", objectField(func(r *Resource) *json.RawMessage { return &r.Properties })},
	{"etag", stringField(func(r *Resource) *string { return &r.ETag })},
	{"systemData", decodeSystemData},
}

func stringField(field func(*Resource) *string) func(*Resource, string, json.RawMessage) []*Error {
	return func(r *Resource, name string, raw json.RawMessage) []*Error {
		if err := decodeString(raw, field(r)); err != nil {
			return []*Error{Errorf(CodeInvalidRequestContent, name, "field %s must be a string, not %s", name, jsonValueKind(raw))}
		}
		return nil
	}
}

// objectField keeps a JSON object (or null) as it is; its type's service validates it.
func objectField(field func(*Resource) *json.RawMessage) func(*Resource, string, json.RawMessage) []*Error {
	return func(r *Resource, name string, raw json.RawMessage) []*Error {
		if !isJSONObjectOrNull(raw) {
			return []*Error{Errorf(CodeInvalidRequestContent, name, "%s must be a JSON object, not %s", name, jsonValueKind(raw))}
		}
		*field(r) = append(json.RawMessage(nil), raw...)
		return nil
	}
}

func decodeTags(r *Resource, name string, raw json.RawMessage) []*Error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return []*Error{Errorf(CodeInvalidRequestContent, name, "tags must be a JSON object of names to string values, not %s", jsonValueKind(raw))}
	}
	if m == nil {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []*Error
	tags := make(map[string]string, len(m))
	for _, k := range keys {
		var v string
		if err := decodeString(m[k], &v); err != nil {
			errs = append(errs, Errorf(CodeInvalidRequestContent, tagTarget(k), "tag %q must have a string value, not %s", k, jsonValueKind(m[k])))
			continue
		}
		tags[k] = v
	}
	r.Tags = tags
	return errs
}

func decodeZones(r *Resource, name string, raw json.RawMessage) []*Error {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return []*Error{Errorf(CodeInvalidRequestContent, name, "zones must be a JSON array of strings, not %s", jsonValueKind(raw))}
	}
	if items == nil {
		return nil
	}
	var errs []*Error
	zones := make([]string, len(items))
	for i, item := range items {
		if err := decodeString(item, &zones[i]); err != nil {
			errs = append(errs, Errorf(CodeInvalidRequestContent, fmt.Sprintf("zones[%d]", i), "zone %d must be a string, not %s", i, jsonValueKind(item)))
		}
	}
	r.Zones = zones
	return errs
}

func decodeSystemData(r *Resource, name string, raw json.RawMessage) []*Error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var sd *SystemData
	err := dec.Decode(&sd)
	var typ *json.UnmarshalTypeError
	switch {
	case err == nil:
		r.SystemData = sd
		return nil
	case errors.As(err, &typ) && typ.Field == "":
		return []*Error{Errorf(CodeInvalidRequestContent, name, "systemData must be a JSON object, not %s", jsonValueKind(raw))}
	case errors.As(err, &typ):
		return []*Error{Errorf(CodeInvalidRequestContent, name+"."+typ.Field, "field %s.%s must be %s, not a JSON %s", name, typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)}
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		return []*Error{Errorf(CodeInvalidRequestContent, name+"."+f, "unknown field %q in systemData; known are createdBy, createdAt, lastModifiedBy, lastModifiedAt", f)}
	}
	return []*Error{Errorf(CodeInvalidRequestContent, name, "systemData is invalid: %s", strings.TrimPrefix(err.Error(), "json: "))}
}

// decodeString decodes a JSON string, or null as "".
func decodeString(raw json.RawMessage, s *string) error {
	return json.Unmarshal(raw, s)
}

func tagTarget(k string) string { return "tags['" + k + "']" }

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// jsonValueKind names the kind of a JSON value for a message: "a JSON number".
func jsonValueKind(raw json.RawMessage) string {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return "nothing"
	}
	switch t[0] {
	case '{':
		return "a JSON object"
	case '[':
		return "a JSON array"
	case '"':
		return "a JSON string"
	case 't', 'f':
		return "a JSON boolean"
	case 'n':
		return "JSON null"
	}
	return "a JSON number"
}

func checkTags(tags map[string]string) []*Error {
	var errs []*Error
	if len(tags) > MaxTags {
		errs = append(errs, Errorf(CodeInvalidRequestContent, "tags", "a resource has at most %d tags; this one has %d", MaxTags, len(tags)))
	}
	// Sorted, so that the details come out in the same order every time.
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := tags[k]
		target := tagTarget(k)
		switch {
		case k == "":
			errs = append(errs, Errorf(CodeInvalidRequestContent, "tags", "a tag name is empty"))
		case utf8.RuneCountInString(k) > MaxTagNameLength:
			errs = append(errs, Errorf(CodeInvalidRequestContent, target, "tag name is longer than %d characters", MaxTagNameLength))
		case strings.ContainsAny(k, `<>%&\?/`):
			errs = append(errs, Errorf(CodeInvalidRequestContent, target, "tag name %q has one of < > %% & \\ ? /, which tag names may not contain", k))
		}
		if utf8.RuneCountInString(v) > MaxTagValueLength {
			errs = append(errs, Errorf(CodeInvalidRequestContent, target, "tag value is longer than %d characters", MaxTagValueLength))
		}
	}
	return errs
}

func isJSONObjectOrNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && (t[0] == '{' || bytes.Equal(t, []byte("null")))
}

// jsonError turns an error from reading the body's JSON value into one that says where the
// body went wrong.
func jsonError(body []byte, err error) error {
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		// Offset counts the bytes read, the offending one included.
		line, col := position(body, syn.Offset-1)
		return Errorf(CodeInvalidRequestContent, "", "the request body is not valid JSON: %v (line %d, column %d)", syn, line, col)
	case errors.Is(err, io.EOF):
		return Errorf(CodeInvalidRequestContent, "", "the request body is empty; a JSON object is needed")
	case errors.Is(err, io.ErrUnexpectedEOF):
		line, col := position(body, int64(len(body)))
		return Errorf(CodeInvalidRequestContent, "", "the request body is not valid JSON: it ends too early (line %d, column %d)", line, col)
	}
	return Errorf(CodeInvalidRequestContent, "", "the request body is not valid: %s", strings.TrimPrefix(err.Error(), "json: "))
}

func jsonKind(goKind string) string {
	switch goKind {
	case "map", "struct":
		return "an object"
	case "slice":
		return "an array"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	}
	return "a " + goKind
}

// position gives the 1-based line and column (in bytes) of body[offset].
func position(body []byte, offset int64) (line, col int) {
	offset = max(0, min(offset, int64(len(body))))
	line, col = 1, 1
	for _, c := range body[:offset] {
		if c == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

// Clone returns a deep copy of r.
func (r *Resource) Clone() *Resource {
	c := *r
	if r.Tags != nil {
		c.Tags = make(map[string]string, len(r.Tags))
		for k, v := range r.Tags {
			c.Tags[k] = v
		}
	}
	c.SKU = cloneRaw(r.SKU)
	c.Plan = cloneRaw(r.Plan)
	c.Identity = cloneRaw(r.Identity)
	c.Properties = cloneRaw(r.Properties)
	c.Zones = slices.Clone(r.Zones) // nil stays nil, empty stays empty
	if r.SystemData != nil {
		sd := *r.SystemData
		c.SystemData = &sd
	}
	return &c
}

func cloneRaw(b json.RawMessage) json.RawMessage { return slices.Clone(b) }

// PropertiesMap decodes r's properties into a map, empty when there are none.
func (r *Resource) PropertiesMap() (map[string]any, error) {
	m := map[string]any{}
	if len(r.Properties) == 0 || bytes.Equal(bytes.TrimSpace(r.Properties), []byte("null")) {
		return m, nil
	}
	if err := json.Unmarshal(r.Properties, &m); err != nil {
		return nil, fmt.Errorf("decode properties of %s: %w", r.ID, err)
	}
	return m, nil
}

// StringProperty returns the string at a dotted path inside r's properties, or "" when the
// path is absent or not a string.
func (r *Resource) StringProperty(path string) string {
	m, err := r.PropertiesMap()
	if err != nil {
		return ""
	}
	var cur any = m
	for _, part := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = lookupFold(obj, part)
	}
	s, _ := cur.(string)
	return s
}

func lookupFold(m map[string]any, key string) any {
	if v, ok := m[key]; ok {
		return v
	}
	// Several keys may match in another case ("Ab", "aB"): take the first in sorted
	// order, so that the answer does not depend on map order.
	best, found := "", false
	for k := range m {
		if strings.EqualFold(k, key) && (!found || k < best) {
			best, found = k, true
		}
	}
	return m[best]
}
