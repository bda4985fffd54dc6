package check

import (
	"reflect"
	"strings"
	"testing"
)

// TestTagsAgree: a YAML front-end decodes check sets into the same structs, so every
// field's YAML name must be its JSON name, and every field the kinds list must exist.
func TestTagsAgree(t *testing.T) {
	typ := reflect.TypeFor[Check]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		jsonName, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		yamlName, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if jsonName == "" || jsonName != yamlName {
			t.Errorf("field %s: json name %q, yaml name %q", f.Name, jsonName, yamlName)
		}
	}
	for kind, fields := range kindFields {
		for _, name := range fields {
			if _, ok := fieldByName[name]; !ok {
				t.Errorf("kind %s lists field %q, which Check does not have", kind, name)
			}
		}
	}
	if len(kindFields) != len(Kinds) {
		t.Errorf("%d kinds have fields, %d kinds exist", len(kindFields), len(Kinds))
	}
}
