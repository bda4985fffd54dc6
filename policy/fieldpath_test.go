package policy

import (
	"reflect"
	"strings"
	"testing"
)

// pathSegsText renders a path's segments unambiguously, for comparing parses.
func pathSegsText(p FieldPath) []string {
	out := []string{}
	for _, s := range p.segs {
		switch s.kind {
		case pathAll:
			out = append(out, "*")
		case pathIndex:
			out = append(out, "#"+s.key)
		default:
			out = append(out, "k:"+s.key)
		}
	}
	return out
}

func TestParseFieldPath(t *testing.T) {
	tests := []struct {
		in      string
		segs    []string
		str     string // String(); "" means the same as in
		wild    bool
		wantErr string
	}{
		{in: "name", segs: []string{"k:name"}},
		{in: "properties.hardwareProfile.vmSize", segs: []string{"k:properties", "k:hardwareProfile", "k:vmSize"}},
		{in: "properties.storageProfile.dataDisks[*].managedDisk.id",
			segs: []string{"k:properties", "k:storageProfile", "k:dataDisks", "*", "k:managedDisk", "k:id"}, wild: true},
		{in: "properties.a[0].b", segs: []string{"k:properties", "k:a", "#0", "k:b"}},
		{in: "a[*][*]", segs: []string{"k:a", "*", "*"}, wild: true},
		{in: "a[*].b[*].c", segs: []string{"k:a", "*", "k:b", "*", "k:c"}, wild: true},
		{in: "a[12][3]", segs: []string{"k:a", "#12", "#3"}},
		{in: "tags['cost center']", segs: []string{"k:tags", "k:cost center"}, str: "tags.cost center"},
		{in: "tags['Acct.CostCenter']", segs: []string{"k:tags", "k:Acct.CostCenter"}},
		{in: "tags['''My.Apostrophe.Tag''']", segs: []string{"k:tags", "k:'My.Apostrophe.Tag'"}},
		{in: "tags['it''s']", segs: []string{"k:tags", "k:it's"}, str: "tags.it's"},
		{in: "tags[tag.with.dots]", segs: []string{"k:tags", "k:tag.with.dots"}, str: "tags['tag.with.dots']"},
		{in: "tags[env]", segs: []string{"k:tags", "k:env"}, str: "tags.env"},
		{in: "tags[a b]", segs: []string{"k:tags", "k:a b"}, str: "tags.a b"},
		{in: "tags['']", segs: []string{"k:tags", "k:"}},
		{in: "tags['a[b]']", segs: []string{"k:tags", "k:a[b]"}},
		{in: "['a.b'].c", segs: []string{"k:a.b", "k:c"}},
		{in: "[0].x", segs: []string{"#0", "k:x"}},
		{in: "[*].x", segs: []string{"*", "k:x"}, wild: true},
		{in: "a.007", segs: []string{"k:a", "k:007"}},
		{in: "a[007]", segs: []string{"k:a", "#007"}},
		{in: "a[1234567890]", segs: []string{"k:a", "k:1234567890"}, str: "a.1234567890"},
		{in: "properties.options[*].configuration.#Microsoft-Media-X.licenses[*]",
			segs: []string{"k:properties", "k:options", "*", "k:configuration", "k:#Microsoft-Media-X", "k:licenses", "*"}, wild: true},
		{in: "properties.$default.state", segs: []string{"k:properties", "k:$default", "k:state"}},
		{in: "", wantErr: "empty field path"},
		{in: ".a", wantErr: "empty segment"},
		{in: "a.", wantErr: "empty segment"},
		{in: "a..b", wantErr: "empty segment"},
		{in: "a.[0]", wantErr: "empty segment"},
		{in: "a[", wantErr: "unclosed ["},
		{in: "a[*", wantErr: "unclosed ["},
		{in: "a[]", wantErr: "empty []"},
		{in: "a[0]b", wantErr: "after ]"},
		{in: "a[*]b", wantErr: "after ]"},
		{in: "a]", wantErr: "unexpected ]"},
		{in: "tags['x", wantErr: "unclosed quote"},
		{in: "tags['x'", wantErr: "expected ]"},
		{in: "tags['x'y]", wantErr: "expected ]"},
		{in: "a[b[c]]", wantErr: "[ inside"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := ParseFieldPath(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseFieldPath(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseFieldPath(%q): %v", tt.in, err)
			}
			if got := pathSegsText(p); !reflect.DeepEqual(got, tt.segs) {
				t.Errorf("segments = %q, want %q", got, tt.segs)
			}
			if p.HasWildcard() != tt.wild {
				t.Errorf("HasWildcard = %v, want %v", p.HasWildcard(), tt.wild)
			}
			want := tt.str
			if want == "" {
				want = tt.in
			}
			if p.String() != want {
				t.Errorf("String() = %q, want %q", p.String(), want)
			}
			back, err := ParseFieldPath(p.String())
			if err != nil || !reflect.DeepEqual(pathSegsText(back), tt.segs) {
				t.Errorf("String() %q does not parse back to the same path: %q, %v", p.String(), pathSegsText(back), err)
			}
		})
	}
}

func mustPath(t testing.TB, s string) FieldPath {
	t.Helper()
	p, err := ParseFieldPath(s)
	if err != nil {
		t.Fatalf("ParseFieldPath(%q): %v", s, err)
	}
	return p
}

func mustJSON(t testing.TB, s string) any {
	t.Helper()
	v, err := DecodeJSON([]byte(s))
	if err != nil {
		t.Fatalf("DecodeJSON: %v", err)
	}
	return v
}

// The example resource of Azure's "Referencing array resource properties", with nulls,
// case variants and an empty array added.
const pathTestResource = `{
  "name": "vm1",
  "tags": {"env": "prod", "Cost Center": "42", "a.b": "dotted", "2024": "year"},
  "identity": {"type": "SystemAssigned"},
  "properties": {
    "stringArray": ["a", "b", "c"],
    "objectArray": [
      {"property": "value1", "nestedArray": [1, 2]},
      {"property": "value2", "nestedArray": [3, 4]}
    ],
    "ragged": [
      {"property": "x", "nestedArray": [5]},
      {"other": true},
      null,
      {"property": null, "nestedArray": []}
    ],
    "emptyArray": [],
    "nullValue": null,
    "notArray": "s",
    "MixedCase": {"Inner": 7},
    "dup": 1, "DUP": 2,
    "zero": 0, "false": false, "empty": ""
  }
}`

func TestResolve(t *testing.T) {
	res := mustJSON(t, pathTestResource)
	type entry struct {
		v  any
		ok bool
	}
	tests := []struct {
		path        string
		want        []entry
		array       bool
		arrayExists bool
	}{
		// Plain paths.
		{path: "name", want: []entry{{"vm1", true}}},
		{path: "NAME", want: []entry{{"vm1", true}}},
		{path: "tags.env", want: []entry{{"prod", true}}},
		{path: "tags.ENV", want: []entry{{"prod", true}}},
		{path: "tags['cost center']", want: []entry{{"42", true}}},
		{path: "tags['a.b']", want: []entry{{"dotted", true}}},
		{path: "tags[2024]", want: []entry{{"year", true}}},
		{path: "tags.missing", want: []entry{{nil, false}}},
		{path: "identity.type", want: []entry{{"SystemAssigned", true}}},
		{path: "properties.mixedcase.inner", want: []entry{{int64(7), true}}},
		{path: "properties.dup", want: []entry{{int64(1), true}}},
		{path: "properties.Dup", want: []entry{{int64(2), true}}}, // "DUP" < "dup": the smallest of the folded matches
		{path: "properties.nullValue", want: []entry{{nil, false}}},
		{path: "properties.nullValue.x", want: []entry{{nil, false}}},
		{path: "properties.missing", want: []entry{{nil, false}}},
		{path: "properties.missing.deeper", want: []entry{{nil, false}}},
		{path: "properties.notArray.x", want: []entry{{nil, false}}},
		{path: "properties.zero", want: []entry{{int64(0), true}}},
		{path: "properties.false", want: []entry{{false, true}}},
		{path: "properties.empty", want: []entry{{"", true}}},
		{path: "properties.emptyArray", want: []entry{{[]any{}, true}}},
		{path: "properties.stringArray[1]", want: []entry{{"b", true}}},
		{path: "properties.stringArray[3]", want: []entry{{nil, false}}},
		{path: "properties.objectArray[1].nestedArray[0]", want: []entry{{int64(3), true}}},
		{path: "properties.ragged[2]", want: []entry{{nil, false}}},
		{path: "properties.stringArray", want: []entry{{[]any{"a", "b", "c"}, true}}},

		// [*] paths: Azure's table.
		{path: "properties.missingArray[*]", array: true, want: []entry{}},
		{path: "properties.missingArray[*].property", array: true, want: []entry{}},
		{path: "properties.stringArray[*]", array: true, arrayExists: true,
			want: []entry{{"a", true}, {"b", true}, {"c", true}}},
		{path: "properties.objectArray[*].property", array: true, arrayExists: true,
			want: []entry{{"value1", true}, {"value2", true}}},
		{path: "properties.objectArray[*].nestedArray", array: true, arrayExists: true,
			want: []entry{{[]any{int64(1), int64(2)}, true}, {[]any{int64(3), int64(4)}, true}}},
		{path: "properties.objectArray[*].nestedArray[*]", array: true, arrayExists: true,
			want: []entry{{int64(1), true}, {int64(2), true}, {int64(3), true}, {int64(4), true}}},
		{path: "Properties.ObjectArray[*].NestedArray[*]", array: true, arrayExists: true,
			want: []entry{{int64(1), true}, {int64(2), true}, {int64(3), true}, {int64(4), true}}},
		// Members without the property, null members, null properties.
		{path: "properties.ragged[*].property", array: true, arrayExists: true,
			want: []entry{{"x", true}, {nil, false}, {nil, false}, {nil, false}}},
		{path: "properties.ragged[*]", array: true, arrayExists: true,
			want: []entry{{map[string]any{"property": "x", "nestedArray": []any{int64(5)}}, true},
				{map[string]any{"other": true}, true}, {nil, false},
				{map[string]any{"property": nil, "nestedArray": []any{}}, true}}},
		// A member without the inner array, or with an empty one, adds nothing.
		{path: "properties.ragged[*].nestedArray[*]", array: true, arrayExists: true,
			want: []entry{{int64(5), true}}},
		{path: "properties.emptyArray[*]", array: true, arrayExists: true, want: []entry{}},
		{path: "properties.emptyArray[*].x", array: true, arrayExists: true, want: []entry{}},
		{path: "properties.nullValue[*]", array: true, want: []entry{}},
		{path: "properties.notArray[*]", array: true, want: []entry{}},
		{path: "tags[*]", array: true, want: []entry{}},
		{path: "properties.objectArray[0].nestedArray[*]", array: true, arrayExists: true,
			want: []entry{{int64(1), true}, {int64(2), true}}},
		{path: "properties.objectArray[*].nestedArray[1]", array: true, arrayExists: true,
			want: []entry{{int64(2), true}, {int64(4), true}}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			p := mustPath(t, tt.path)
			r := p.Resolve(res)
			if len(r.Values) != len(r.Exists) {
				t.Fatalf("len(Values) = %d, len(Exists) = %d", len(r.Values), len(r.Exists))
			}
			got := make([]entry, len(r.Values))
			for i := range r.Values {
				got[i] = entry{r.Values[i], r.Exists[i]}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Resolve = %#v, want %#v", got, tt.want)
			}
			if r.Array != tt.array || r.ArrayExists != tt.arrayExists {
				t.Errorf("Array, ArrayExists = %v, %v, want %v, %v", r.Array, r.ArrayExists, tt.array, tt.arrayExists)
			}
			if !tt.array {
				if !reflect.DeepEqual(r.Value, tt.want[0].v) || r.Found != tt.want[0].ok {
					t.Errorf("Value, Found = %v, %v", r.Value, r.Found)
				}
				v, ok := p.Get(res)
				if !reflect.DeepEqual(v, tt.want[0].v) || ok != tt.want[0].ok {
					t.Errorf("Get = %v, %v, want %v, %v", v, ok, tt.want[0].v, tt.want[0].ok)
				}
			} else {
				v, ok := p.Get(res)
				var want []any = []any{}
				for _, e := range tt.want {
					if e.ok {
						want = append(want, e.v)
					}
				}
				if !reflect.DeepEqual(v, want) || ok != tt.arrayExists {
					t.Errorf("Get = %#v, %v, want %#v, %v", v, ok, want, tt.arrayExists)
				}
			}
		})
	}
}

func TestResolveEmptyPathAndScalars(t *testing.T) {
	var empty FieldPath
	if !empty.IsEmpty() || empty.String() != "" || empty.HasWildcard() {
		t.Fatalf("zero FieldPath: IsEmpty %v, String %q, HasWildcard %v", empty.IsEmpty(), empty.String(), empty.HasWildcard())
	}
	for _, v := range []any{"x", int64(3), map[string]any{"a": 1}} {
		if got, ok := empty.Get(v); !ok || !reflect.DeepEqual(got, v) {
			t.Errorf("empty path on %v = %v, %v", v, got, ok)
		}
	}
	if _, ok := empty.Get(nil); ok {
		t.Errorf("empty path on null exists")
	}
	if _, ok := mustPath(t, "a").Get("scalar"); ok {
		t.Errorf("a key on a string exists")
	}
	if _, ok := mustPath(t, "a").Get(nil); ok {
		t.Errorf("a key on null exists")
	}
}

func TestArrayPrefixAndTrim(t *testing.T) {
	tests := []struct {
		path, prefix, rest string
		ok                 bool
	}{
		{"properties.securityRules[*].description", "properties.securityRules[*]", "description", true},
		{"properties.a[*].b[*].c", "properties.a[*].b[*]", "c", true},
		{"properties.a[*]", "properties.a[*]", "", true},
		{"properties.a[*][0]", "properties.a[*]", "[0]", true},
		{"properties.a.b", "", "properties.a.b", false},
	}
	for _, tt := range tests {
		p := mustPath(t, tt.path)
		prefix, rest, ok := p.ArrayPrefix()
		if ok != tt.ok || prefix.String() != tt.prefix || rest.String() != tt.rest {
			t.Errorf("ArrayPrefix(%q) = %q, %q, %v; want %q, %q, %v", tt.path, prefix, rest, ok, tt.prefix, tt.rest, tt.ok)
		}
		if ok {
			if !p.HasPrefix(prefix) || !p.TrimPrefix(prefix).Equal(rest) {
				t.Errorf("%q: HasPrefix/TrimPrefix disagree with ArrayPrefix", tt.path)
			}
			if !prefix.HasWildcard() {
				t.Errorf("%q: prefix %q has no wildcard", tt.path, prefix)
			}
		}
	}

	p := mustPath(t, "Properties.SecurityRules[*].Description")
	q := mustPath(t, "properties.securityRules[*]")
	if !p.HasPrefix(q) {
		t.Fatalf("HasPrefix should ignore case")
	}
	rest := p.TrimPrefix(q)
	if rest.String() != "Description" || rest.HasWildcard() {
		t.Errorf("TrimPrefix = %q (wildcard %v)", rest, rest.HasWildcard())
	}
	// The remainder resolves on a counted element.
	el := map[string]any{"description": "d1"}
	if v, ok := rest.Get(el); !ok || v != "d1" {
		t.Errorf("rest on element = %v, %v", v, ok)
	}
	if !p.TrimPrefix(p).IsEmpty() {
		t.Errorf("TrimPrefix of itself should be empty")
	}
	if got := p.TrimPrefix(mustPath(t, "properties.other")); !got.Equal(p) {
		t.Errorf("TrimPrefix of a non-prefix changed the path: %q", got)
	}
	for _, tc := range []struct{ a, b string }{
		{"a[*]", "a[0]"}, {"a[0]", "a.0"}, {"a.b", "a.b.c"},
	} {
		if mustPath(t, tc.a).HasPrefix(mustPath(t, tc.b)) {
			t.Errorf("%q.HasPrefix(%q) = true", tc.a, tc.b)
		}
	}
	// The halves of a split do not share capacity: growing one cannot touch the other.
	prefix, restP, _ := mustPath(t, "a[*].b").ArrayPrefix()
	if cap(prefix.segs) != len(prefix.segs) || cap(restP.segs) != len(restP.segs) {
		t.Errorf("ArrayPrefix halves keep spare capacity")
	}
}

func TestBuiltinField(t *testing.T) {
	res := mustJSON(t, pathTestResource)
	tests := []struct {
		name string
		path string // String() of the result; "-" for not a built-in
		want any
	}{
		{"name", "name", "vm1"},
		{"Name", "name", "vm1"},
		{"type", "type", nil},
		{"kind", "kind", nil},
		{"id", "id", nil},
		{"location", "location", nil},
		{"tags", "tags", map[string]any{"env": "prod", "Cost Center": "42", "a.b": "dotted", "2024": "year"}},
		{"identity.type", "identity.type", "SystemAssigned"},
		{"Identity.Type", "identity.type", "SystemAssigned"},
		{"identity.userAssignedIdentities", "identity.userAssignedIdentities", nil},
		{"tags['env']", "tags.env", "prod"},
		{"tags[env]", "tags.env", "prod"},
		{"tags.env", "tags.env", "prod"},
		{"Tags.Env", "tags.Env", "prod"},
		{"tags['Cost Center']", "tags.Cost Center", "42"},
		{"tags[cost center]", "tags.cost center", "42"},
		{"tags[a.b]", "tags['a.b']", "dotted"},
		{"tags.a.b", "tags['a.b']", "dotted"},
		{"tags['''q''']", "tags.'q'", nil},
		{"tags[2024]", "tags.2024", "year"},
		{"fullName", "fullName", nil},
		{"FULLNAME", "fullName", nil},
		{"sku.name", "-", nil},
		{"properties.a", "-", nil},
		{"zones", "-", nil},
		{"tags[]", "-", nil},
		{"tags['x", "-", nil},
		{"tags['x']y", "-", nil},
		{"tags.", "-", nil},
		{"identity.", "-", nil},
		{"Microsoft.Compute/virtualMachines/sku.name", "-", nil},
	}
	for _, tt := range tests {
		p, ok := BuiltinField(tt.name)
		if tt.path == "-" {
			if ok {
				t.Errorf("BuiltinField(%q) = %q, want not a built-in", tt.name, p)
			}
			continue
		}
		if !ok || p.String() != tt.path {
			t.Errorf("BuiltinField(%q) = %q, %v; want %q", tt.name, p, ok, tt.path)
			continue
		}
		v, _ := p.Get(res)
		if !reflect.DeepEqual(v, tt.want) {
			t.Errorf("BuiltinField(%q) on the resource = %v, want %v", tt.name, v, tt.want)
		}
	}
	fn, _ := BuiltinField("fullName")
	if !fn.IsFullName() || fn.IsEmpty() {
		t.Errorf("fullName marker: IsFullName %v IsEmpty %v", fn.IsFullName(), fn.IsEmpty())
	}
	if r := fn.Resolve(res); r.Found || len(r.Values) != 1 || r.Exists[0] {
		t.Errorf("the fullName marker should select nothing: %+v", r)
	}
}

// A VM-like resource in the value model, for benchmarks.
func pathBenchVM() map[string]any {
	return map[string]any{
		"id":       "/subscriptions/payments/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/api-1",
		"name":     "api-1",
		"type":     "Microsoft.Compute/virtualMachines",
		"location": "local",
		"tags":     map[string]any{"serviceModel": "cattle", "team": "payments"},
		"properties": map[string]any{
			"vmId":            "2f1b",
			"hardwareProfile": map[string]any{"vmSize": "Standard_D2s_v5"},
			"osProfile":       map[string]any{"computerName": "api-1", "adminUsername": "gild"},
			"networkProfile":  map[string]any{"networkInterfaces": []any{map[string]any{"id": "nic-1"}}},
			"storageProfile": map[string]any{
				"imageReference": map[string]any{
					"publisher": "gild", "offer": "debian", "sku": "12-hardened", "version": "1.4.0",
					"id": "/subscriptions/payments/resourceGroups/img/providers/Microsoft.Compute/galleries/corp/images/debian-12-hardened/versions/1.4.0",
				},
				"osDisk": map[string]any{"osType": "Linux", "name": "api-1-os", "diskSizeGB": int64(30)},
				"dataDisks": []any{
					map[string]any{"lun": int64(0), "diskSizeGB": int64(64), "managedDisk": map[string]any{"id": "d0"}},
					map[string]any{"lun": int64(1), "diskSizeGB": int64(128), "managedDisk": map[string]any{"id": "d1"}},
				},
			},
			"provisioningState": "Succeeded",
		},
	}
}

var (
	pathBenchSink       any
	pathBenchResultSink PathResult
	pathBenchPathSink   FieldPath
)

func BenchmarkResolve(b *testing.B) {
	vm := pathBenchVM()
	p := mustPath(b, "properties.storageProfile.imageReference.publisher")
	b.Run("Get", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v, _ := p.Get(vm)
			pathBenchSink = v
		}
	})
	b.Run("Resolve", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			pathBenchResultSink = p.Resolve(vm)
		}
	})
	folded := mustPath(b, "Properties.StorageProfile.ImageReference.Publisher")
	b.Run("GetCaseFolded", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v, _ := folded.Get(vm)
			pathBenchSink = v
		}
	})
	missing := mustPath(b, "properties.storageProfile.imageReference.missing")
	b.Run("GetMissing", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v, _ := missing.Get(vm)
			pathBenchSink = v
		}
	})
	wild := mustPath(b, "properties.storageProfile.dataDisks[*].managedDisk.id")
	b.Run("ResolveWildcard", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			pathBenchResultSink = wild.Resolve(vm)
		}
	})
}

func TestResolvePlainAllocations(t *testing.T) {
	vm := pathBenchVM()
	p := mustPath(t, "properties.storageProfile.imageReference.publisher")
	if n := testing.AllocsPerRun(100, func() { pathBenchSink, _ = p.Get(vm) }); n != 0 {
		t.Errorf("Get allocates %v times, want 0", n)
	}
	folded := mustPath(t, "PROPERTIES.storageProfile.imageReference.Publisher")
	if n := testing.AllocsPerRun(100, func() { pathBenchSink, _ = folded.Get(vm) }); n != 0 {
		t.Errorf("case-folded Get allocates %v times, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { pathBenchResultSink = p.Resolve(vm) }); n > 1 {
		t.Errorf("Resolve of a plain path allocates %v times, want at most 1", n)
	}
	missing := mustPath(t, "properties.nothing.here")
	if n := testing.AllocsPerRun(100, func() { pathBenchResultSink = missing.Resolve(vm) }); n != 0 {
		t.Errorf("Resolve of an absent plain path allocates %v times, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { pathBenchPathSink, _ = BuiltinField("identity.type") }); n != 0 {
		t.Errorf("BuiltinField allocates %v times, want 0", n)
	}
}
