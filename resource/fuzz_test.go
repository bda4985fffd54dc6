package resource_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/gildhq/gild/resource"
)

// pathSeeds are the IDs and paths the unit tests use, good and bad.
var pathSeeds = []string{
	"/", "//", "", "subscriptions/s", "/subscriptions", "/subscriptions/", "/resources",
	idMG, idSub, idRG, idVM, idGallery, idImage, idVersion, idGuestVM, idGuestConf,
	idMGPolicy, idTenantPol, idSubPolicy,
	"/SUBSCRIPTIONS/x/RESOURCEGROUPS/y", "/subscriptions/s/",
	"/PROVIDERS/microsoft.management/MANAGEMENTGROUPS/Root-Group",
	"/subscriptions/s/resourceGroups", "/providers/Microsoft.Management/managementGroups",
	"/subscriptions/s/providers/Microsoft.Compute/virtualMachines",
	idGallery + "/images", idImage + "/versions",
	idGuestVM + "/providers/Microsoft.GuestConfiguration/guestConfigurationAssignments",
	"/subscriptions/s/resourceGroups/rg/resources",
	"/subscriptions/x/foo", "/subscriptions//resourceGroups/rg",
	"/subscriptions/s/providers/Compute/virtualMachines/vm",
	"/subscriptions/s/providers/Microsoft.Compute/virtual-machines/vm",
	"/subscriptions/s/providers/Microsoft.Compute/virtualMachines/a:b",
	"/subscriptions/s/providers/Microsoft.Compute/virtualMachines/..",
	"/subscriptions/s/providers/Microsoft.Compute/virtualMachines/\xff",
	"/subscriptions/s/providers/Microsoft.Compute/virtualMachines/\u212a",
	"/ſubscriptions/s",
	"/providers/Microsoft.Management/managementGroups/mg/subscriptions/s",
	"/providers/Microsoft.Resources/subscriptions/s",
	"/subscriptions/s/resourceGroups/prod.",
	"/subscriptions/resources", "/subscriptions/providers/providers/A.B/providers/providers",
}

// FuzzParsePath: ParsePath never panics, fails only with InvalidResourceId, and what it
// accepts prints back to an ID that parses to the same structure.
func FuzzParsePath(f *testing.F) {
	for _, s := range pathSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := resource.ParsePath(s)
		if err != nil {
			var e *resource.Error
			if !errors.As(err, &e) || e.Code != resource.CodeInvalidResourceID {
				t.Fatalf("ParsePath(%q) error %v is not InvalidResourceId", s, err)
			}
			return
		}
		id := p.ID
		str := id.String()
		// Equal and Key agree, here on a variant in another letter case (which may or may
		// not name the same thing: 'ſ' upper-cases to 'S').
		if upper, err := resource.ParsePath(strings.ToUpper(s)); err == nil && upper.Collection == "" && p.Collection == "" {
			if upper.ID.Equal(id) != (upper.ID.Key() == id.Key()) {
				t.Fatalf("%q and %q: Equal says %v, keys %q and %q", s, strings.ToUpper(s), upper.ID.Equal(id), id.Key(), upper.ID.Key())
			}
		}
		if p.Collection != "" {
			// The collection's ID is itself a good ID.
			if _, err := resource.Parse(str); err != nil {
				t.Fatalf("ParsePath(%q) gave collection ID %q, which does not parse: %v", s, str, err)
			}
			if _, err := resource.Parse(s); err == nil {
				t.Fatalf("Parse(%q) accepted a collection path", s)
			}
			// A name after a collection path names one of its members: a resource of the
			// collection's type whose parent is the collection's ID.
			member := strings.TrimSuffix(s, "/") + "/x"
			if p.Collection == resource.AllTypes || len(member) > resource.MaxIDLength {
				return
			}
			m, err := resource.Parse(member)
			if err != nil {
				t.Fatalf("collection %q: member %q does not parse: %v", s, member, err)
			}
			if !strings.EqualFold(m.Type(), p.Collection) || !m.Parent().Equal(id) {
				t.Fatalf("collection %q of %s under %s: member %s is a %s under %s", s, p.Collection, id, m, m.Type(), m.Parent())
			}
			return
		}
		again, err := resource.Parse(str)
		if err != nil {
			t.Fatalf("Parse(%q) = %v; its String() %q does not parse: %v", s, id, str, err)
		}
		if again.Key() != id.Key() || !again.Equal(id) {
			t.Fatalf("round trip of %q: key %q, then %q", s, id.Key(), again.Key())
		}
		if !reflect.DeepEqual(again, id) {
			t.Fatalf("round trip of %q: %#v, then %#v", s, id, again)
		}
		if !strings.EqualFold(strings.TrimSuffix(s, "/"), str) && s != "/" {
			// Only keyword spelling may change, which keeps the length.
			if len(strings.TrimSuffix(s, "/")) != len(str) {
				t.Fatalf("String() of %q is %q", s, str)
			}
		}
		// The accessors work on anything Parse accepts, and agree with each other.
		_ = id.Type()
		_ = id.FullName()
		_ = resource.CheckPlacement(id)
		if !id.Contains(id) || !id.Parent().Contains(id) || !id.Scope().Contains(id) {
			t.Fatalf("%s is not contained by itself, its parent or its scope", id)
		}
		if !id.IsRoot() && id.Parent().Equal(id) {
			t.Fatalf("%s is its own parent", id)
		}
		for _, a := range id.Ancestors() {
			if !a.Contains(id) {
				t.Fatalf("ancestor %s of %s does not contain it", a, id)
			}
		}
		if c := id.Child("t", "n"); id.Kind() == resource.KindResource && !c.Parent().Equal(id) {
			t.Fatalf("Child of %s has parent %s", id, c.Parent())
		}
	})
}

// FuzzDecodeBody: DecodeBody never panics, fails only with InvalidRequestContent, and what
// it accepts honours its promises and survives a second trip through JSON.
func FuzzDecodeBody(f *testing.F) {
	bodies := []string{
		``, ` `, `null`, `[]`, `"x"`, `{}`, `{} {}`, `{}x`, `{"a" 1}`, "{\n\"location\": \"lo",
		`{"id":"` + idVM + `","name":"api-1","type":"Microsoft.Compute/virtualMachines","location":"local","tags":{"a":"b"},"properties":{"x":1},"zones":["1"],"sku":{"name":"s"},"systemData":{"createdAt":"2025-01-02T03:04:05Z"}}`,
		`{"location": 5}`, `{"tags": ["a"]}`, `{"tags": {"env": 1}}`, `{"zones": ["1", 2]}`,
		`{"properties": [1]}`, `{"systemData": {"creator": "me"}}`, `{"systemData": {"createdAt": 1}}`,
		`{"location": "a", "Location": "b"}`, `{"propertes": {}}`, `{"tags": {"a/b": "x", "": "y"}}`,
		`{"name": "g/i/1.0.0"}`, `{"id": "subscriptions/x"}`, `{"type": "A.B/c"}`,
		`{"zzz": 1, "aaa": 2, "name": "other", "type": "A.B/c", "location": 7, "properties": 1}`,
		tagsBody(resource.MaxTags + 1), "{\"tags\":{\"\xff\":\"\xfe\"}}",
	}
	for _, b := range bodies {
		f.Add(idVM, []byte(b))
	}
	f.Add(idVersion, []byte(`{"name":"g/i/1.0.0"}`))
	f.Add("/", []byte(`{"name":""}`))
	f.Add(idTenantPol, []byte(`{"id":"/PROVIDERS/microsoft.authorization/POLICYDEFINITIONS/P"}`))
	f.Fuzz(func(t *testing.T, path string, body []byte) {
		id, err := resource.Parse(path)
		if err != nil {
			return
		}
		r, err := resource.DecodeBody(id, body)
		// The same body gives the same answer: map order must not leak into the details.
		_, err2 := resource.DecodeBody(id, body)
		if j1, j2 := mustJSON(t, err), mustJSON(t, err2); j1 != j2 {
			t.Fatalf("two decodings of one body disagree:\n%s\n%s", j1, j2)
		}
		if err != nil {
			if r != nil {
				t.Fatal("DecodeBody returned a resource with its error")
			}
			var e *resource.Error
			if !errors.As(err, &e) || e.Code != resource.CodeInvalidRequestContent {
				t.Fatalf("error %v is not InvalidRequestContent", err)
			}
			for _, d := range e.Details {
				if d.Code != resource.CodeInvalidRequestContent || d.Message == "" {
					t.Fatalf("detail %+v", d)
				}
			}
			return
		}
		if r.ID != id.String() || r.Name != id.Name() || r.Type != id.Type() {
			t.Fatalf("id, name, type = %q, %q, %q; want them from %s", r.ID, r.Name, r.Type, id)
		}
		if len(r.Tags) > resource.MaxTags {
			t.Fatalf("%d tags accepted", len(r.Tags))
		}
		for _, raw := range []json.RawMessage{r.Properties, r.SKU, r.Plan, r.Identity} {
			if len(raw) > 0 && !json.Valid(raw) {
				t.Fatalf("raw field %q is not valid JSON", raw)
			}
			// ARM's sku, plan, identity and properties are objects.
			if v := strings.TrimSpace(string(raw)); v != "" && v != "null" && v[0] != '{' {
				t.Fatalf("accepted a raw field that is not an object: %s", raw)
			}
		}
		if _, err := r.PropertiesMap(); err != nil {
			t.Fatalf("accepted properties %q do not decode: %v", r.Properties, err)
		}
		out, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		r2, err := resource.DecodeBody(id, out)
		if err != nil {
			t.Fatalf("DecodeBody of its own output %s: %v", out, err)
		}
		if !reflect.DeepEqual(r2.Clone(), r2) {
			t.Fatalf("Clone differs from %+v", r2)
		}
	})
}

func mustJSON(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return "null"
	}
	b, jerr := json.Marshal(err)
	if jerr != nil {
		t.Fatalf("marshal %v: %v", err, jerr)
	}
	return string(b)
}
