package resource_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gildhq/gild/resource"
)

// TestDecodeBodyValid checks that a good body decodes, with id, name and type taken from
// the path in its spelling.
func TestDecodeBodyValid(t *testing.T) {
	vm := resource.MustParse(idVM)
	version := resource.MustParse(idVersion)
	tests := []struct {
		name string
		id   resource.ID
		body string
		want resource.Resource
	}{
		{
			name: "full",
			id:   vm,
			body: `{
				"id": "` + strings.ToUpper(idVM) + `",
				"name": "API-1",
				"type": "microsoft.compute/virtualmachines",
				"kind": "k", "location": "local", "managedBy": "gild", "etag": "\"1\"",
				"tags": {"serviceModel": "cattle", "team": null},
				"sku": {"name": "small"}, "plan": null, "identity": {"type": "None"},
				"zones": ["1", "2"],
				"properties": {"image": {"id": "x"}},
				"systemData": {"createdBy": "me", "createdAt": "2025-01-02T03:04:05Z", "lastModifiedAt": "2025-01-02T03:04:05Z"}
			}`,
			want: resource.Resource{
				ID: idVM, Name: "api-1", Type: "Microsoft.Compute/virtualMachines",
				Kind: "k", Location: "local", ManagedBy: "gild", ETag: `"1"`,
				Tags:       map[string]string{"serviceModel": "cattle", "team": ""},
				SKU:        json.RawMessage(`{"name": "small"}`),
				Plan:       json.RawMessage(`null`),
				Identity:   json.RawMessage(`{"type": "None"}`),
				Zones:      []string{"1", "2"},
				Properties: json.RawMessage(`{"image": {"id": "x"}}`),
				SystemData: &resource.SystemData{
					CreatedBy: "me", CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
					LastModifiedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
				},
			},
		},
		{
			name: "minimal object",
			id:   vm,
			body: `{}`,
			want: resource.Resource{ID: idVM, Name: "api-1", Type: "Microsoft.Compute/virtualMachines"},
		},
		{
			// A child resource may give its full name, as Azure Policy's fullName does.
			name: "full name of a child",
			id:   version,
			body: `{"name": "g/i/1.0.0", "location": "local"} ` + "\n",
			want: resource.Resource{ID: idVersion, Name: "1.0.0", Type: "Microsoft.Compute/galleries/images/versions", Location: "local"},
		},
		{
			// encoding/json matches field names case-insensitively; so do we.
			name: "field names in another case",
			id:   vm,
			body: `{"Location": "local", "TAGS": {"a": "b"}}`,
			want: resource.Resource{ID: idVM, Name: "api-1", Type: "Microsoft.Compute/virtualMachines", Location: "local", Tags: map[string]string{"a": "b"}},
		},
		{
			name: "null properties",
			id:   vm,
			body: `{"properties": null, "tags": null, "zones": null, "systemData": null}`,
			want: resource.Resource{ID: idVM, Name: "api-1", Type: "Microsoft.Compute/virtualMachines", Properties: json.RawMessage(`null`)},
		},
		{
			name: "exactly MaxTags tags",
			id:   vm,
			body: tagsBody(resource.MaxTags),
			want: resource.Resource{ID: idVM, Name: "api-1", Type: "Microsoft.Compute/virtualMachines", Tags: tagsMap(resource.MaxTags)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resource.DecodeBody(tt.id, []byte(tt.body))
			if err != nil {
				t.Fatalf("DecodeBody: %v", err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("DecodeBody =\n%+v\nwant\n%+v", *got, tt.want)
			}
		})
	}
}

// TestDecodeBodyRejects checks each kind of bad body: the code, the field named as target
// and what the message says. A body with several problems reports them all as details.
func TestDecodeBodyRejects(t *testing.T) {
	vm := resource.MustParse(idVM)
	type problem struct {
		target  string
		mention string
	}
	tests := []struct {
		name string
		body string
		want []problem // one problem: the error itself; several: its details, in order
	}{
		{"empty", ``, []problem{{"", "empty"}}},
		{"only spaces", " \n\t", []problem{{"", "empty"}}},
		{"syntax error with position", "{\n  \"location\": \"local\",,\n}", []problem{{"", "invalid character ',' looking for beginning of object key string (line 2, column 23)"}}},
		{"syntax error on the first line", `{"a" 1}`, []problem{{"", "(line 1, column 6)"}}},
		{"truncated", "{\n\"location\": \"lo", []problem{{"", "ends too early (line 2, column 16)"}}},
		{"trailing data", `{} {}`, []problem{{"", "data after its JSON object"}}},
		{"trailing garbage", `{}x`, []problem{{"", "data after its JSON object"}}},
		{"null body", `null`, []problem{{"", "must be a JSON object, not JSON null"}}},
		{"array body", `[]`, []problem{{"", "must be a JSON object, not a JSON array"}}},
		{"string body", `"vm"`, []problem{{"", "must be a JSON object, not a JSON string"}}},
		{"wrong type: location", `{"location": 5}`, []problem{{"location", "field location must be a string, not a JSON number"}}},
		{"wrong type: id", `{"id": {}}`, []problem{{"id", "field id must be a string, not a JSON object"}}},
		{"wrong type: tags", `{"tags": ["a"]}`, []problem{{"tags", "tags must be a JSON object"}}},
		{"wrong type: tag value", `{"tags": {"env": 1}}`, []problem{{"tags['env']", `tag "env" must have a string value, not a JSON number`}}},
		{"wrong type: zones", `{"zones": "1"}`, []problem{{"zones", "zones must be a JSON array of strings, not a JSON string"}}},
		{"wrong type: zone", `{"zones": ["1", 2]}`, []problem{{"zones[1]", "zone 1 must be a string, not a JSON number"}}},
		{"wrong type: sku", `{"sku": "small"}`, []problem{{"sku", "sku must be a JSON object, not a JSON string"}}},
		{"wrong type: properties", `{"properties": [1]}`, []problem{{"properties", "properties must be a JSON object, not a JSON array"}}},
		{"wrong type: properties string", `{"properties": "x"}`, []problem{{"properties", "properties must be a JSON object"}}},
		{"wrong type: systemData", `{"systemData": true}`, []problem{{"systemData", "systemData must be a JSON object, not a JSON boolean"}}},
		{"wrong type: systemData field", `{"systemData": {"createdBy": 1}}`, []problem{{"systemData.createdBy", "must be a string"}}},
		{"bad time in systemData", `{"systemData": {"createdAt": "yesterday"}}`, []problem{{"systemData", "systemData is invalid"}}},
		{"unknown field", `{"location": "local", "propertes": {}}`, []problem{{"propertes", `unknown field "propertes" at the top level`}}},
		// A field unknown inside systemData is not one at the top level.
		{"unknown nested field", `{"systemData": {"creator": "me"}}`, []problem{{"systemData.creator", `unknown field "creator" in systemData`}}},
		{"field given twice in two cases", `{"location": "a", "Location": "b"}`, []problem{{"location", `given 2 times (as "Location", "location")`}}},
		{"id mismatch", `{"id": "/subscriptions/payments/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/api-2"}`, []problem{{"id", "does not match the request path"}}},
		{"id invalid", `{"id": "subscriptions/x"}`, []problem{{"id", "is not a valid resource ID: resource ID \"subscriptions/x\" is invalid: it must start with '/'"}}},
		{"name mismatch", `{"name": "api-2"}`, []problem{{"name", `name "api-2" in the body does not match the request path's name "api-1"`}}},
		{"type mismatch", `{"type": "Microsoft.Compute/disks"}`, []problem{{"type", `type "Microsoft.Compute/disks" in the body does not match the request path's type "Microsoft.Compute/virtualMachines"`}}},
		{"too many tags", tagsBody(resource.MaxTags + 1), []problem{{"tags", "at most 50 tags; this one has 51"}}},
		{"empty tag name", `{"tags": {"": "x"}}`, []problem{{"tags", "a tag name is empty"}}},
		{"tag name with slash", `{"tags": {"a/b": "x"}}`, []problem{{"tags['a/b']", `tag name "a/b" has one of`}}},
		{"tag name with percent", `{"tags": {"100%": "x"}}`, []problem{{"tags['100%']", "which tag names may not contain"}}},
		{"tag name too long", `{"tags": {"` + strings.Repeat("n", resource.MaxTagNameLength+1) + `": "x"}}`, []problem{{"tags['" + strings.Repeat("n", resource.MaxTagNameLength+1) + "']", "tag name is longer than 512 characters"}}},
		{"tag value too long", `{"tags": {"a": "` + strings.Repeat("v", resource.MaxTagValueLength+1) + `"}}`, []problem{{"tags['a']", "tag value is longer than 256 characters"}}},
		{
			// Every problem at once, in a fixed order: fields in envelope order, unknown
			// fields, then the cross-checks; tags sorted by name.
			"several problems",
			`{"zzz": 1, "aaa": 2, "name": "other", "type": "A.B/c", "location": 7, "properties": 1, "tags": {"b/": "x", "a?": "y"}}`,
			[]problem{
				{"location", "field location must be a string"},
				{"properties", "properties must be a JSON object"},
				{"aaa", `unknown field "aaa"`},
				{"zzz", `unknown field "zzz"`},
				{"name", `name "other" in the body does not match`},
				{"type", `type "A.B/c" in the body does not match`},
				{"tags['a?']", `tag name "a?"`},
				{"tags['b/']", `tag name "b/"`},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := resource.DecodeBody(vm, []byte(tt.body))
			if err == nil {
				t.Fatalf("DecodeBody = %+v, want an error", r)
			}
			if r != nil {
				t.Errorf("DecodeBody returned a resource with its error")
			}
			var e *resource.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not a *resource.Error", err)
			}
			if e.Code != resource.CodeInvalidRequestContent {
				t.Errorf("code = %q, want %q", e.Code, resource.CodeInvalidRequestContent)
			}
			got := []*resource.Error{e}
			if len(tt.want) > 1 {
				if !strings.Contains(e.Message, fmt.Sprintf("(%d problems; see details)", len(tt.want))) {
					t.Errorf("message %q does not count %d problems", e.Message, len(tt.want))
				}
				got = e.Details
			}
			if len(got) != len(tt.want) {
				t.Fatalf("%d problems reported, want %d: %v", len(got), len(tt.want), got)
			}
			for i, w := range tt.want {
				if got[i].Target != w.target {
					t.Errorf("problem %d: target %q, want %q", i, got[i].Target, w.target)
				}
				if !strings.Contains(got[i].Message, w.mention) {
					t.Errorf("problem %d: message %q does not mention %q", i, got[i].Message, w.mention)
				}
				if got[i].Code != resource.CodeInvalidRequestContent {
					t.Errorf("problem %d: code %q", i, got[i].Code)
				}
			}
		})
	}
}

// TestDecodeBodyDeterministic decodes a body with many problems several times: map
// iteration order must not leak into the order of the details an API client sees.
func TestDecodeBodyDeterministic(t *testing.T) {
	var tags []string
	for i := range 20 {
		tags = append(tags, fmt.Sprintf(`"t%02d/": "x"`, i))
	}
	// No unknown or mistyped fields: those must not hide the tag problems either.
	body := []byte(`{"name": "other", "tags": {` + strings.Join(tags, ",") + `}}`)
	first := ""
	for range 20 {
		_, err := resource.DecodeBody(resource.MustParse(idVM), body)
		if e, ok := err.(*resource.Error); !ok || len(e.Details) != 21 {
			t.Fatalf("DecodeBody = %v, want 21 problems", err)
		}
		b, _ := json.Marshal(err)
		if first == "" {
			first = string(b)
		} else if string(b) != first {
			t.Fatalf("details change from run to run:\n%s\n%s", first, b)
		}
	}
}

// TestDecodeBodyDoesNotAliasInput: the decoded raw fields must not share memory with the
// request buffer, which a server may reuse.
func TestDecodeBodyDoesNotAliasInput(t *testing.T) {
	body := []byte(`{"properties": {"a": "b"}}`)
	r, err := resource.DecodeBody(resource.MustParse(idVM), body)
	if err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = ' '
	}
	if string(r.Properties) != `{"a": "b"}` {
		t.Errorf("properties changed with the input buffer: %q", r.Properties)
	}
}

// TestClone checks that a clone shares nothing mutable with the original.
func TestClone(t *testing.T) {
	orig := &resource.Resource{
		ID: idVM, Name: "api-1", Type: "Microsoft.Compute/virtualMachines",
		Tags:       map[string]string{"a": "1"},
		SKU:        json.RawMessage(`{"s":1}`),
		Plan:       json.RawMessage(`{"p":1}`),
		Identity:   json.RawMessage(`{"i":1}`),
		Zones:      []string{"1"},
		Properties: json.RawMessage(`{"x":1}`),
		SystemData: &resource.SystemData{CreatedBy: "me"},
	}
	c := orig.Clone()
	if !reflect.DeepEqual(c, orig) {
		t.Fatalf("Clone = %+v, want %+v", c, orig)
	}
	c.Tags["a"] = "2"
	c.SKU[2] = 'X'
	c.Plan[2] = 'X'
	c.Identity[2] = 'X'
	c.Zones[0] = "2"
	c.Properties[2] = 'X'
	c.SystemData.CreatedBy = "you"
	if orig.Tags["a"] != "1" || string(orig.SKU) != `{"s":1}` || string(orig.Plan) != `{"p":1}` ||
		string(orig.Identity) != `{"i":1}` || orig.Zones[0] != "1" || string(orig.Properties) != `{"x":1}` ||
		orig.SystemData.CreatedBy != "me" {
		t.Errorf("changing the clone changed the original: %+v", orig)
	}
	// Nil stays nil, and empty stays empty: a clone is DeepEqual to its original.
	for _, r := range []*resource.Resource{
		{ID: "/"},
		{ID: "/", Tags: map[string]string{}, Zones: []string{}, Properties: json.RawMessage{}},
	} {
		if c := r.Clone(); !reflect.DeepEqual(c, r) {
			t.Errorf("Clone = %#v, want %#v", c, r)
		}
	}
}

// TestStringProperty checks dotted lookups, case-insensitive keys and non-string values.
func TestStringProperty(t *testing.T) {
	r := &resource.Resource{Properties: json.RawMessage(`{
		"details": {"parent": {"id": "/providers/Microsoft.Management/managementGroups/top"}},
		"Image": {"Version": "1.4.0", "count": 3, "list": ["a"]},
		"name": "x"
	}`)}
	tests := []struct {
		path, want string
	}{
		{"details.parent.id", "/providers/Microsoft.Management/managementGroups/top"},
		{"image.version", "1.4.0"}, // keys compare case-insensitively
		{"IMAGE.VERSION", "1.4.0"},
		{"name", "x"},
		{"image.count", ""}, // not a string
		{"image.list", ""},
		{"image", ""}, // an object
		{"name.deeper", ""},
		{"missing", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := r.StringProperty(tt.path); got != tt.want {
			t.Errorf("StringProperty(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
	// Keys that differ only in case: an exact match wins, else the first in sorted order,
	// whatever the map order (tried many times, as map order is random).
	ambiguous := &resource.Resource{Properties: json.RawMessage(`{"aB": "1", "Ab": "2", "ab": "3", "x": {"Yz": "a", "yZ": "b"}}`)}
	for range 50 {
		if got := ambiguous.StringProperty("ab"); got != "3" {
			t.Fatalf("StringProperty(ab) = %q, want the exact match", got)
		}
		if got := ambiguous.StringProperty("AB"); got != "2" {
			t.Fatalf("StringProperty(AB) = %q, want the first of Ab, aB", got)
		}
		if got := ambiguous.StringProperty("x.yz"); got != "a" {
			t.Fatalf("StringProperty(x.yz) = %q, want the first of Yz, yZ", got)
		}
	}
	for _, props := range []string{"", "null", "[1]", `"s"`, "{bad"} {
		r := &resource.Resource{Properties: json.RawMessage(props)}
		if got := r.StringProperty("a"); got != "" {
			t.Errorf("StringProperty on properties %q = %q", props, got)
		}
	}
}

func TestPropertiesMap(t *testing.T) {
	tests := []struct {
		props   string
		want    map[string]any
		wantErr bool
	}{
		{"", map[string]any{}, false},
		{" null ", map[string]any{}, false},
		{`{"a": "b"}`, map[string]any{"a": "b"}, false},
		{`[1]`, nil, true},
	}
	for _, tt := range tests {
		r := &resource.Resource{ID: idVM, Properties: json.RawMessage(tt.props)}
		got, err := r.PropertiesMap()
		if (err != nil) != tt.wantErr || (!tt.wantErr && !reflect.DeepEqual(got, tt.want)) {
			t.Errorf("PropertiesMap(%q) = %v, %v", tt.props, got, err)
		}
		if err != nil && !strings.Contains(err.Error(), idVM) {
			t.Errorf("error %q does not name the resource", err)
		}
	}
}

func tagsMap(n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprintf("t%d", i)] = "v"
	}
	return m
}

func tagsBody(n int) string {
	b, _ := json.Marshal(map[string]any{"tags": tagsMap(n)})
	return string(b)
}
