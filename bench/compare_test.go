package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/gildhq/gild/policy"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// rule is one typical VM rule in both encodings, with the assignment's parameter values.
type rule struct {
	name string
	// azure is the definition in Azure Policy JSON. The three are copies of benchDefinitions
	// in policy/eval_bench_test.go (a test file, so not importable), parameters included, so
	// that the figures here and BenchmarkEvalTypicalVM's measure the same rules.
	azure  string
	params map[string]any
	// rego is the same rule in idiomatic Rego v1; query names the set rule that holds a
	// message for each violation (named after the Azure effect), empty when the VM complies.
	rego  string
	query string
}

var rules = []rule{
	{
		name: "allowed-publishers",
		azure: `{"properties":{"mode":"All","parameters":{"publishers":{"type":"Array"}},"policyRule":{
		"if":{"allOf":[{"field":"type","equals":"Microsoft.Compute/virtualMachines"},
		{"not":{"field":"Microsoft.Compute/imagePublisher","in":"[parameters('publishers')]"}}]},
		"then":{"effect":"deny"}}}}`,
		params: map[string]any{"publishers": []any{"Canonical", "RedHat", "Debian"}},
		rego: `package gild.allowed_publishers

# Azure compares strings ignoring case, so both sides are lower-cased.
allowed := {lower(p) | some p in data.parameters.publishers}

deny contains msg if {
	lower(input.type) == "microsoft.compute/virtualmachines"
	not publisher_allowed
	msg := sprintf("image publisher %v is not one of %v", [publisher, data.parameters.publishers])
}

# A missing, null or non-string publisher is in no list of names, as in Azure's "in".
publisher_allowed if {
	p := input.properties.storageProfile.imageReference.publisher
	is_string(p)
	lower(p) in allowed
}

publisher := object.get(input, ["properties", "storageProfile", "imageReference", "publisher"], null)
`,
		query: "data.gild.allowed_publishers.deny",
	},
	{
		name: "allowed-locations",
		azure: `{"properties":{"mode":"Indexed","parameters":{"listOfAllowedLocations":{"type":"Array"}},"policyRule":{
		"if":{"allOf":[{"field":"location","notIn":"[parameters('listOfAllowedLocations')]"},
		{"field":"location","notEquals":"global"},{"field":"type","notEquals":"Microsoft.AzureActiveDirectory/b2cDirectories"}]},
		"then":{"effect":"audit"}}}}`,
		params: map[string]any{"listOfAllowedLocations": []any{"local", "westeurope", "eastus2"}},
		rego: `package gild.allowed_locations

# Azure compares locations with spaces removed and case ignored: "East US 2" is eastus2.
normalize(s) := lower(replace(s, " ", ""))

allowed := {normalize(l) | some l in data.parameters.listOfAllowedLocations}

# A missing, null or non-string location is in no list and is not "global", as in Azure's
# notIn and notEquals; the empty string stands for it.
default location := ""

location := normalize(input.location) if is_string(input.location)

audit contains msg if {
	not location in allowed
	location != "global"
	not b2c_directory
	msg := sprintf("location %q is not one of %v", [location, data.parameters.listOfAllowedLocations])
}

b2c_directory if lower(input.type) == "microsoft.azureactivedirectory/b2cdirectories"
`,
		query: "data.gild.allowed_locations.audit",
	},
	{
		name: "required-tag",
		azure: `{"properties":{"mode":"Indexed","parameters":{"tagName":{"type":"String"}},"policyRule":{
		"if":{"field":"[concat('tags[', parameters('tagName'), ']')]","exists":"false"},
		"then":{"effect":"deny"}}}}`,
		params: map[string]any{"tagName": "serviceModel"},
		rego: `package gild.required_tag

deny contains msg if {
	not has_tag
	msg := sprintf("the resource has no %q tag", [data.parameters.tagName])
}

# The name as given first, the common case. Azure's tag names ignore case, so any spelling
# of it counts; a null value is no tag (gild's exists, as Azure reports unset values).
has_tag if input.tags[data.parameters.tagName] != null

has_tag if {
	some name, value in input.tags
	lower(name) == lower(data.parameters.tagName)
	value != null
}
`,
		query: "data.gild.required_tag.deny",
	},
}

// now is the evaluation time gild is given; none of the three rules looks at it.
var now = time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)

// absent marks a property the generated VM leaves out, as opposed to one set to null.
type absentT struct{}

var absent absentT

// The variants each VM draws from: compliant values, non-compliant ones, and the edge cases
// where the two encodings could part (case, spaces, empty, null, missing). The VM type
// varies a little so that the publisher rule's type test is exercised too.
var (
	vmTypes = []string{
		"Microsoft.Compute/virtualMachines", "Microsoft.Compute/virtualMachines", "Microsoft.Compute/virtualMachines",
		"Microsoft.Compute/virtualMachines", "Microsoft.Compute/virtualMachines", "Microsoft.Compute/virtualMachines",
		"microsoft.compute/virtualmachines", "Microsoft.Compute/virtualMachines/extensions",
	}
	publishers = []any{"Canonical", "RedHat", "Debian", "canonical", "REDHAT", "MicrosoftWindowsServer", "SUSE", "", nil, absent}
	locations  = []any{"local", "westeurope", "eastus2", "West Europe", "East US 2", "WestEurope", "northeurope", "East US",
		"global", "Global", "", nil, absent}
	tagSets = []any{
		map[string]any{"serviceModel": "cattle", "owner": "payments"},
		map[string]any{"serviceModel": "pet"},
		map[string]any{"servicemodel": "cattle", "owner": "payments"},
		map[string]any{"SERVICEMODEL": "cattle"},
		map[string]any{"serviceModel": ""},
		map[string]any{"serviceModel": nil, "owner": "payments"},
		map[string]any{"owner": "payments"},
		map[string]any{},
		nil,
		absent,
	}
)

const corpusSize = 1000

// corpus is the VMs both engines evaluate, built once and shared: the same maps go to gild
// and to OPA. The seed is fixed so that every run measures the same corpus.
var corpus = sync.OnceValue(func() []map[string]any {
	r := rand.New(rand.NewPCG(2026, 11))
	pick := func(vs []any) any { return vs[r.IntN(len(vs))] }
	set := func(m map[string]any, k string, v any) {
		if v != absent {
			m[k] = v
		}
	}
	vms := make([]map[string]any, corpusSize)
	for i := range vms {
		name := fmt.Sprintf("vm-%04d", i)
		image := map[string]any{"offer": "image", "sku": "1", "version": "latest"}
		set(image, "publisher", pick(publishers))
		vm := map[string]any{
			"id":   "/subscriptions/payments/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/" + name,
			"name": name,
			"type": vmTypes[r.IntN(len(vmTypes))],
			"properties": map[string]any{
				"hardwareProfile": map[string]any{"vmSize": "Standard_B2s"},
				"storageProfile": map[string]any{
					"imageReference": image,
					"osDisk":         map[string]any{"osType": "Linux", "createOption": "FromImage", "diskSizeGB": 30},
				},
				"osProfile": map[string]any{"computerName": name, "adminUsername": "gild"},
			},
		}
		set(vm, "location", pick(locations))
		set(vm, "tags", pick(tagSets))
		// gild's value model (int64 numbers, []any, map[string]any), which OPA takes as well.
		vms[i] = policy.Normalize(vm).(map[string]any)
	}
	return vms
})

// prepared is one rule ready to evaluate in both engines.
type prepared struct {
	name string
	gild *policy.Prepared
	opa  rego.PreparedEvalQuery
}

func prepareAll(tb testing.TB) []prepared {
	tb.Helper()
	out := make([]prepared, 0, len(rules))
	for _, ru := range rules {
		def, err := policy.ParseDefinition([]byte(ru.azure))
		if err != nil {
			tb.Fatalf("%s: %v", ru.name, err)
		}
		p, err := policy.Compile(def, policy.CompileOptions{})
		if err != nil {
			tb.Fatalf("%s: %v", ru.name, err)
		}
		q, err := p.Prepare(ru.params)
		if err != nil {
			tb.Fatalf("%s: %v", ru.name, err)
		}
		// The parameters are data, so the query is prepared once per assignment as gild's
		// is. The store returns AST values on read, OPA's own advice for data that does not
		// change, so that each evaluation does not convert the parameters again.
		store := inmem.NewFromObjectWithOpts(map[string]any{"parameters": ru.params}, inmem.OptReturnASTValuesOnRead(true))
		pq, err := rego.New(
			rego.Query(ru.query),
			rego.Module(ru.name+".rego", ru.rego),
			rego.Store(store),
		).PrepareForEval(context.Background())
		if err != nil {
			tb.Fatalf("%s: %v", ru.name, err)
		}
		out = append(out, prepared{name: ru.name, gild: q, opa: pq})
	}
	return out
}

func gildInputs() []*policy.Input {
	vms := corpus()
	ins := make([]*policy.Input, len(vms))
	for i, vm := range vms {
		ins[i] = &policy.Input{Resource: vm, Now: now}
	}
	return ins
}

// gildDecide says whether gild's rule matched, that is the VM is non-compliant.
func gildDecide(q *policy.Prepared, in *policy.Input) (bool, error) {
	res, err := q.Eval(in)
	if err != nil {
		return false, err
	}
	if res.Failed {
		return false, fmt.Errorf("evaluation failed: %v", res.Reasons)
	}
	return res.Matched, nil
}

// opaDecide says whether the Rego rule's violation set is non-empty.
func opaDecide(pq rego.PreparedEvalQuery, vm map[string]any) (bool, error) {
	rs, err := pq.Eval(context.Background(), rego.EvalInput(vm))
	if err != nil {
		return false, err
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return false, fmt.Errorf("unexpected result set %v", rs)
	}
	set, ok := rs[0].Expressions[0].Value.([]any)
	if !ok {
		return false, fmt.Errorf("the query gave %T, not a set", rs[0].Expressions[0].Value)
	}
	return len(set) > 0, nil
}

// TestSameDecisions checks that both engines decide every VM of the corpus alike for every
// rule, so that the benchmarks compare equal work, and that the corpus holds compliant and
// non-compliant VMs for each rule, so that both paths of each are timed.
func TestSameDecisions(t *testing.T) {
	ins := gildInputs()
	for _, pr := range prepareAll(t) {
		t.Run(pr.name, func(t *testing.T) {
			violations := 0
			for i, in := range ins {
				g, err := gildDecide(pr.gild, in)
				if err != nil {
					t.Fatalf("gild, VM %d: %v", i, err)
				}
				o, err := opaDecide(pr.opa, in.Resource)
				if err != nil {
					t.Fatalf("OPA, VM %d: %v", i, err)
				}
				if g != o {
					t.Errorf("VM %d: gild says non-compliant=%v, OPA %v; type %v, location %v, tags %v, image %v", i, g, o,
						in.Resource["type"], in.Resource["location"], in.Resource["tags"],
						in.Resource["properties"].(map[string]any)["storageProfile"].(map[string]any)["imageReference"])
				}
				if g {
					violations++
				}
			}
			t.Logf("%d of %d VMs non-compliant", violations, len(ins))
			if violations == 0 || violations == len(ins) {
				t.Errorf("%d of %d VMs non-compliant: the corpus should hold both", violations, len(ins))
			}
		})
	}
}

// BenchmarkGild times one gild evaluation per op, round-robin over the corpus.
func BenchmarkGild(b *testing.B) {
	ins := gildInputs()
	for _, pr := range prepareAll(b) {
		b.Run(pr.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := pr.gild.Eval(ins[i%len(ins)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOPA times one OPA prepared-query evaluation per op, round-robin over the corpus.
// The VM goes in as the decoded map, as it does to gild, so converting it to OPA's AST is
// part of each evaluation, as it is for any Go program that calls OPA this way.
func BenchmarkOPA(b *testing.B) {
	vms := corpus()
	ctx := context.Background()
	for _, pr := range prepareAll(b) {
		b.Run(pr.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := pr.opa.Eval(ctx, rego.EvalInput(vms[i%len(vms)])); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// bothBlock is how many evaluations each engine makes in turn in BenchmarkBoth: enough that
// reading the clock twice per block costs nothing measurable, few enough that both engines
// see the same machine conditions (frequency, other load, GC) over the run.
const bothBlock = 256

// BenchmarkBoth evaluates each VM with both engines in one benchmark and reports each
// engine's time per evaluation and their ratio. Its ns/op is the sum of the two. The engines
// take turns block by block, and which goes first alternates, so that neither always finds
// the block's VMs already in cache. Both allocate in the same heap, so the collector's work
// for one can land in the other's time; BenchmarkGild and BenchmarkOPA time each alone.
func BenchmarkBoth(b *testing.B) {
	ins := gildInputs()
	ctx := context.Background()
	for _, pr := range prepareAll(b) {
		b.Run(pr.name, func(b *testing.B) {
			runGild := func(from, to int) {
				for i := from; i < to; i++ {
					if _, err := pr.gild.Eval(ins[i%len(ins)]); err != nil {
						b.Fatal(err)
					}
				}
			}
			runOPA := func(from, to int) {
				for i := from; i < to; i++ {
					if _, err := pr.opa.Eval(ctx, rego.EvalInput(ins[i%len(ins)].Resource)); err != nil {
						b.Fatal(err)
					}
				}
			}
			var gildTime, opaTime time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for from, block := 0, 0; from < b.N; from, block = from+bothBlock, block+1 {
				to := min(from+bothBlock, b.N)
				if block%2 == 0 {
					t0 := time.Now()
					runGild(from, to)
					t1 := time.Now()
					runOPA(from, to)
					gildTime, opaTime = gildTime+t1.Sub(t0), opaTime+time.Since(t1)
				} else {
					t0 := time.Now()
					runOPA(from, to)
					t1 := time.Now()
					runGild(from, to)
					opaTime, gildTime = opaTime+t1.Sub(t0), gildTime+time.Since(t1)
				}
			}
			b.StopTimer()
			g := float64(gildTime.Nanoseconds()) / float64(b.N)
			o := float64(opaTime.Nanoseconds()) / float64(b.N)
			b.ReportMetric(g, "gild-ns/eval")
			b.ReportMetric(o, "opa-ns/eval")
			b.ReportMetric(o/g, "opa/gild")
		})
	}
}
