package policy

import (
	"testing"
	"time"
)

// benchDefinitions are the three typical VM rules the issue names: allowed image
// publishers, allowed locations and a required tag.
var benchDefinitions = map[string]struct {
	rule   string
	params map[string]any
}{
	"allowed-publishers": {`{"properties":{"mode":"All","parameters":{"publishers":{"type":"Array"}},"policyRule":{
		"if":{"allOf":[{"field":"type","equals":"Microsoft.Compute/virtualMachines"},
		{"not":{"field":"Microsoft.Compute/imagePublisher","in":"[parameters('publishers')]"}}]},
		"then":{"effect":"deny"}}}}`, map[string]any{"publishers": []any{"Canonical", "RedHat", "Debian"}}},
	"allowed-locations": {`{"properties":{"mode":"Indexed","parameters":{"listOfAllowedLocations":{"type":"Array"}},"policyRule":{
		"if":{"allOf":[{"field":"location","notIn":"[parameters('listOfAllowedLocations')]"},
		{"field":"location","notEquals":"global"},{"field":"type","notEquals":"Microsoft.AzureActiveDirectory/b2cDirectories"}]},
		"then":{"effect":"audit"}}}}`, map[string]any{"listOfAllowedLocations": []any{"local", "westeurope", "eastus2"}}},
	"required-tag": {`{"properties":{"mode":"Indexed","parameters":{"tagName":{"type":"String"}},"policyRule":{
		"if":{"field":"[concat('tags[', parameters('tagName'), ']')]","exists":"false"},
		"then":{"effect":"deny"}}}}`, map[string]any{"tagName": "serviceModel"}},
}

func benchVM() map[string]any {
	v, err := DecodeJSON([]byte(`{"id":"/subscriptions/payments/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/api-1",
		"name":"api-1","type":"Microsoft.Compute/virtualMachines","location":"local","tags":{"serviceModel":"cattle","owner":"payments"},
		"properties":{"hardwareProfile":{"vmSize":"Standard_B2s"},"storageProfile":{"imageReference":{"publisher":"Debian","offer":"debian-12","sku":"12","version":"latest"},
		"osDisk":{"osType":"Linux","createOption":"FromImage"}},"osProfile":{"computerName":"api-1","adminUsername":"gild"}}}`))
	if err != nil {
		panic(err)
	}
	return v.(map[string]any)
}

// BenchmarkEvalTypicalVM measures one evaluation of each typical VM definition against a
// decoded VM, compiled and prepared once. Target: at most 2 µs on one core.
func BenchmarkEvalTypicalVM(b *testing.B) {
	for name, bd := range benchDefinitions {
		b.Run(name, func(b *testing.B) {
			def, err := ParseDefinition([]byte(bd.rule))
			if err != nil {
				b.Fatal(err)
			}
			p, err := Compile(def, CompileOptions{})
			if err != nil {
				b.Fatal(err)
			}
			q, err := p.Prepare(bd.params)
			if err != nil {
				b.Fatal(err)
			}
			in := &Input{Resource: benchVM(), Now: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)}
			if _, err := q.Eval(in); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := q.Eval(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
