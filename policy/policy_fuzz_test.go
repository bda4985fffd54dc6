package policy

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fuzzSeedDefinitions adds a handful of the corpus's definitions as seeds when it is there.
func fuzzSeedDefinitions(f *testing.F) {
	for _, bd := range benchDefinitions {
		f.Add([]byte(bd.rule))
	}
	f.Add([]byte(`{"if":{"count":{"field":"Microsoft.Compute/virtualMachines/storageProfile.dataDisks[*]","where":{"field":"Microsoft.Compute/virtualMachines/storageProfile.dataDisks[*].lun","greater":0}},"equals":1},"then":{"effect":"audit"}}`))
	f.Add([]byte(`{"if":{"count":{"value":"[createArray(1,2,3)]","name":"n","where":{"value":"[current('n')]","greater":1}},"equals":2},"then":{"effect":"audit"}}`))
	f.Add([]byte(`{"if":{"not":{"anyOf":[{"field":"tags.env","like":"pro*"},{"value":"[utcNow()]","less":"[addDays(utcNow(), 1)]"}]}},"then":{"effect":"[[x"}}`))
	matches, _ := filepath.Glob(filepath.Join(corpusDir, "built-in-policies", "policyDefinitions", "Compute", "*.json"))
	for i, m := range matches {
		if i >= 10 {
			break
		}
		if data, err := os.ReadFile(m); err == nil {
			f.Add(data)
		}
	}
}

// FuzzParseDefinition feeds arbitrary bytes to the parser and compiler: they must never
// panic, and a definition that compiles must prepare with its defaults or fail cleanly.
func FuzzParseDefinition(f *testing.F) {
	fuzzSeedDefinitions(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		def, err := ParseDefinition(data)
		if err != nil {
			if CodeOf(err) == "" {
				t.Fatalf("parse error without a code: %v", err)
			}
			return
		}
		p, err := Compile(def, CompileOptions{})
		if err != nil {
			if CodeOf(err) == "" {
				t.Fatalf("compile error without a code: %v", err)
			}
			return
		}
		_, _ = p.Prepare(nil)
	})
}

// FuzzEvaluate evaluates the seed rules against arbitrary resources: evaluation must never
// panic, and the same input must always give the same decision.
func FuzzEvaluate(f *testing.F) {
	f.Add([]byte(`{"type":"Microsoft.Compute/virtualMachines","location":"East US","tags":{"serviceModel":"pet"},"properties":{"storageProfile":{"imageReference":{"publisher":"Debian"},"dataDisks":[{"lun":0},{"lun":1},null,5]}}}`))
	f.Add([]byte(`{"type":7,"tags":null,"properties":[]}`))
	f.Add([]byte(`{"id":"/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/galleries/g/images/i/versions/1.0.0","name":"1.0.0","type":"Microsoft.Compute/galleries/images/versions"}`))
	rules := []string{}
	for _, bd := range benchDefinitions {
		rules = append(rules, bd.rule)
	}
	rules = append(rules,
		`{"if":{"count":{"field":"Microsoft.Compute/virtualMachines/storageProfile.dataDisks[*]","where":{"field":"Microsoft.Compute/virtualMachines/storageProfile.dataDisks[*].lun","greaterOrEquals":1}},"greater":0},"then":{"effect":"audit"}}`,
		`{"if":{"anyOf":[{"field":"fullName","like":"*/1.*"},{"value":"[length(field('tags'))]","greater":1},{"field":"location","in":["eastus","local"]}]},"then":{"effect":"audit"}}`,
		`{"if":{"field":"Microsoft.Compute/virtualMachines/storageProfile.dataDisks[*].managedDisk.id","exists":"true"},"then":{"effect":"audit"}}`,
	)
	var prepared []*Prepared
	for _, r := range rules {
		def, err := ParseDefinition([]byte(r))
		if err != nil {
			f.Fatal(err)
		}
		p, err := Compile(def, CompileOptions{})
		if err != nil {
			f.Fatal(err)
		}
		params := map[string]any{}
		for name, bd := range benchDefinitions {
			if bd.rule == r {
				params = benchDefinitions[name].params
			}
		}
		q, err := p.Prepare(params)
		if err != nil {
			f.Fatal(err)
		}
		prepared = append(prepared, q)
	}
	now := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := DecodeJSON(data)
		if err != nil {
			return
		}
		res, ok := v.(map[string]any)
		if !ok {
			return
		}
		for _, q := range prepared {
			a, err1 := q.Decide(&Input{Resource: res, Now: now}, nil)
			b, err2 := q.Decide(&Input{Resource: res, Now: now}, nil)
			if (err1 == nil) != (err2 == nil) || a.Effect != b.Effect || a.Compliant != b.Compliant || len(a.Reasons) != len(b.Reasons) {
				t.Fatalf("two evaluations of one input differ: %+v %v / %+v %v", a, err1, b, err2)
			}
		}
	})
}
