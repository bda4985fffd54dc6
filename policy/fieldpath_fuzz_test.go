package policy

import (
	"reflect"
	"testing"
)

// FuzzParseFieldPath checks that no input panics the parser, that every parsed path
// renders to text that parses back to the same segments, and that resolving it on a
// resource neither panics nor breaks PathResult's invariants.
func FuzzParseFieldPath(f *testing.F) {
	for _, s := range []string{
		"name", "properties.storageProfile.dataDisks[*].managedDisk.id", "tags['cost center']",
		"tags['''q''']", "tags[a.b]", "a[0].b", "a[*][*]", "[*].x", "a..b", "a[", "tags['x",
		"a[0]b", "a]", "['a.b'].c", "a[007]", "a[1234567890]", "properties.$default.x",
		"a[*].b[*].c", "tags['']", "identity.type", "x['a''b']",
	} {
		f.Add(s)
	}
	res := map[string]any{
		"tags": map[string]any{"a.b": "x", "": "empty"},
		"properties": map[string]any{
			"a": []any{map[string]any{"b": []any{int64(1), nil}}, nil, "s"},
		},
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseFieldPath(s)
		if err != nil {
			return
		}
		text := p.String()
		back, err := ParseFieldPath(text)
		if err != nil {
			t.Fatalf("%q renders as %q, which does not parse: %v", s, text, err)
		}
		if !reflect.DeepEqual(pathSegsText(p), pathSegsText(back)) || back.String() != text {
			t.Fatalf("%q renders as %q, which parses to %q, not %q", s, text, pathSegsText(back), pathSegsText(p))
		}
		if back.HasWildcard() != p.HasWildcard() {
			t.Fatalf("%q: wildcard lost in the round trip", s)
		}
		r := p.Resolve(res)
		if len(r.Values) != len(r.Exists) || r.Array != p.HasWildcard() {
			t.Fatalf("%q: bad PathResult %+v", s, r)
		}
		if !r.Array && len(r.Values) != 1 {
			t.Fatalf("%q: a plain path gave %d entries", s, len(r.Values))
		}
		for i, v := range r.Values {
			if r.Exists[i] != (v != nil) {
				t.Fatalf("%q: entry %d exists=%v with value %v", s, i, r.Exists[i], v)
			}
		}
		if prefix, rest, ok := p.ArrayPrefix(); ok {
			if !p.HasPrefix(prefix) || !p.TrimPrefix(prefix).Equal(rest) || rest.HasWildcard() {
				t.Fatalf("%q: ArrayPrefix gave %q + %q", s, prefix, rest)
			}
		}
	})
}
