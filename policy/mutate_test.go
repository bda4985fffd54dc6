package policy

import (
	"encoding/json"
	"testing"
)

func TestApplyOperations(t *testing.T) {
	vm := func() map[string]any {
		v, _ := DecodeJSON([]byte(`{"type":"Microsoft.Compute/virtualMachines","tags":{"Env":"prod"},
			"properties":{"storageProfile":{"dataDisks":[{"lun":0},{"lun":1}]},"licenseType":"Windows_Server"}}`))
		return v.(map[string]any)
	}
	cases := []struct {
		name     string
		ops      []Operation
		want     string
		changed  bool
		conflict string
	}{
		{"addOrReplace a tag", []Operation{{"addOrReplace", "tags['owner']", "pay"}},
			`{"Env":"prod","owner":"pay"}`, true, ""},
		{"tag names compare without case", []Operation{{"addOrReplace", "tags.env", "dev"}},
			`{"Env":"dev"}`, true, ""},
		{"add an existing equal tag changes nothing", []Operation{{"add", "tags['env']", "prod"}},
			`{"Env":"prod"}`, false, ""},
		{"add over another value is a conflict", []Operation{{"add", "tags['env']", "dev"}},
			`{"Env":"prod"}`, false, "tags['env']"},
		{"remove a tag", []Operation{{"remove", "tags['Env']", nil}}, `{}`, true, ""},
		{"remove an absent tag", []Operation{{"remove", "tags['nope']", nil}}, `{"Env":"prod"}`, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := vm()
			res, err := ApplyOperations(r, c.ops, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(r["tags"])
			if string(got) != c.want || res.Changed != c.changed || res.Conflict != c.conflict {
				t.Fatalf("tags %s changed %v conflict %q; want %s %v %q", got, res.Changed, res.Conflict, c.want, c.changed, c.conflict)
			}
		})
	}
	r := vm()
	if _, err := ApplyOperations(r, []Operation{
		{"addOrReplace", "Microsoft.Compute/licenseType", "None"},
		{"addOrReplace", "Microsoft.Compute/virtualMachines/storageProfile.dataDisks[*].caching", "ReadOnly"},
		{"add", "Microsoft.Compute/virtualMachines/storageProfile.dataDisks[*]", map[string]any{"lun": int64(2)}},
	}, nil); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(r["properties"])
	want := `{"licenseType":"None","storageProfile":{"dataDisks":[{"caching":"ReadOnly","lun":0},{"caching":"ReadOnly","lun":1},{"lun":2}]}}`
	if string(got) != want {
		t.Fatalf("properties %s\nwant %s", got, want)
	}
	if _, err := ApplyOperations(vm(), []Operation{{"addOrReplace", "Microsoft.Compute/notAnAlias", "x"}}, nil); CodeOf(err) != CodeUnknownAlias {
		t.Fatalf("unknown alias: %v", err)
	}
}
