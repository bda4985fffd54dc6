package resource

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	var r Resource
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, jsonError(body, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, Errorf(CodeInvalidRequestContent, "", "the request body has data after its JSON object")
	}
	var errs []*Error
	if r.ID != "" {
		if bid, err := Parse(r.ID); err != nil || !bid.Equal(id) {
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
	if len(r.Properties) > 0 && !isJSONObjectOrNull(r.Properties) {
		errs = append(errs, Errorf(CodeInvalidRequestContent, "properties", "properties must be a JSON object"))
	}
	if err := Join(CodeInvalidRequestContent, "the request body is invalid", errs); err != nil {
		return nil, err
	}
	r.ID = id.String()
	r.Name = id.Name()
	r.Type = id.Type()
	return &r, nil
}

func checkTags(tags map[string]string) []*Error {
	var errs []*Error
	if len(tags) > MaxTags {
		errs = append(errs, Errorf(CodeInvalidRequestContent, "tags", "a resource has at most %d tags; this one has %d", MaxTags, len(tags)))
	}
	for k, v := range tags {
		target := "tags['" + k + "']"
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

// jsonError turns a decoding error into one that says where the body went wrong.
func jsonError(body []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line, col := position(body, syn.Offset)
		return Errorf(CodeInvalidRequestContent, "", "the request body is not valid JSON: %v (line %d, column %d)", syn, line, col)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "(body)"
		}
		return Errorf(CodeInvalidRequestContent, field, "field %s must be %s, not a JSON %s", field, jsonKind(typ.Type.Kind().String()), typ.Value)
	case errors.Is(err, io.EOF):
		return Errorf(CodeInvalidRequestContent, "", "the request body is empty; a JSON object is needed")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Errorf(CodeInvalidRequestContent, "", "the request body is not valid JSON: it ends too early")
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		return Errorf(CodeInvalidRequestContent, f, "unknown field %q at the top level of the resource; known are id, name, type, kind, location, managedBy, tags, sku, plan, identity, zones, properties, etag", f)
	}
	return Errorf(CodeInvalidRequestContent, "", "the request body is not valid: %s", strings.TrimPrefix(msg, "json: "))
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

func position(body []byte, offset int64) (line, col int) {
	if offset > int64(len(body)) {
		offset = int64(len(body))
	}
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
	c.Zones = append([]string(nil), r.Zones...)
	if r.SystemData != nil {
		sd := *r.SystemData
		c.SystemData = &sd
	}
	return &c
}

func cloneRaw(b json.RawMessage) json.RawMessage {
	if b == nil {
		return nil
	}
	return append(json.RawMessage(nil), b...)
}

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
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}
