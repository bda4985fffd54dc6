package compliance

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
	"github.com/gildhq/gild/store/sqlite"
)

// benchAssignments are 20 assignments of typical rules over the subscription: publishers,
// locations, tags, sizes and gild's own built-ins, with different parameters.
func benchAssignments() []*resource.Resource {
	var out []*resource.Resource
	put := func(name, def string, params map[string]any) {
		ps := map[string]any{}
		for k, v := range params {
			ps[k] = map[string]any{"value": v}
		}
		props, _ := json.Marshal(map[string]any{"policyDefinitionId": def, "parameters": ps, "enforcementMode": "DoNotEnforce"})
		id := resource.SubscriptionID("bench").Child(TypeAssignment, name)
		out = append(out, &resource.Resource{ID: id.String(), Name: name, Type: TypeAssignment, Properties: props})
	}
	custom := func(name, rule string, params map[string]any) {
		id := resource.SubscriptionID("bench").Child(TypeDefinition, name)
		out = append(out, &resource.Resource{ID: id.String(), Name: name, Type: TypeDefinition, Properties: json.RawMessage(rule)})
		put("a-"+name, id.String(), params)
	}
	for i := 0; i < 5; i++ {
		custom(fmt.Sprintf("publishers-%d", i), `{"mode":"All","parameters":{"p":{"type":"Array"}},"policyRule":{"if":{"allOf":[
			{"field":"type","equals":"Microsoft.Compute/virtualMachines"},{"not":{"field":"Microsoft.Compute/imagePublisher","in":"[parameters('p')]"}}]},
			"then":{"effect":"audit"}}}`, map[string]any{"p": []any{"Debian", "Canonical", fmt.Sprint("Other", i)}})
		custom(fmt.Sprintf("locations-%d", i), `{"mode":"Indexed","parameters":{"l":{"type":"Array"}},"policyRule":{"if":{"allOf":[
			{"field":"location","notIn":"[parameters('l')]"},{"field":"location","notEquals":"global"}]},"then":{"effect":"audit"}}}`,
			map[string]any{"l": []any{"local", "westeurope", fmt.Sprint("region", i)}})
		custom(fmt.Sprintf("tag-%d", i), `{"mode":"Indexed","parameters":{"t":{"type":"String"}},"policyRule":{"if":
			{"field":"[concat('tags[', parameters('t'), ']')]","exists":"false"},"then":{"effect":"audit"}}}`,
			map[string]any{"t": []string{"serviceModel", "owner", "costCenter", "env", "team"}[i]})
	}
	for i := 0; i < 3; i++ {
		custom(fmt.Sprintf("sizes-%d", i), `{"mode":"Indexed","parameters":{"s":{"type":"Array"}},"policyRule":{"if":{"allOf":[
			{"field":"type","equals":"Microsoft.Compute/virtualMachines"},{"field":"Microsoft.Compute/virtualMachines/sku.name","notIn":"[parameters('s')]"}]},
			"then":{"effect":"audit"}}}`, map[string]any{"s": []any{"Standard_B2s", "Standard_D2s_v5"}})
	}
	put("service-model", "/providers/Microsoft.Authorization/policyDefinitions/gild-service-model-tag", map[string]any{"effect": "Audit"})
	put("lifecycle", "/providers/Microsoft.Authorization/policyDefinitions/gild-image-lifecycle", nil)
	return out
}

// BenchmarkFullScan scans 100,000 VMs against 20 assignments on SQLite: the first scan
// writes every state; a rescan with 1% of the VMs changed writes only what changed.
// Target: a full scan in at most 10 s on this machine. Set GILD_BENCH_VMS for a smaller run.
func BenchmarkFullScan(b *testing.B) {
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("GILD_BENCH_VMS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	st, err := store.Open(ctx, sqlite.URL(filepath.Join(b.TempDir(), "gild.db")))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	tree := resource.NewHierarchy()
	tree.SetSubscription("bench", resource.Root)
	rg := resource.ResourceGroupID("bench", "vms")
	vm := func(i int, publisher string) *resource.Resource {
		id := rg.Child("Microsoft.Compute/virtualMachines", fmt.Sprintf("vm-%06d", i))
		props, _ := json.Marshal(map[string]any{"hardwareProfile": map[string]any{"vmSize": "Standard_B2s"},
			"storageProfile": map[string]any{"imageReference": map[string]any{"publisher": publisher, "offer": "debian-12", "sku": "12", "version": "latest"}}})
		tags := map[string]string{"serviceModel": "cattle", "owner": "team-" + strconv.Itoa(i%7)}
		return &resource.Resource{ID: id.String(), Name: id.Name(), Type: id.Type(), Location: "local", Tags: tags, Properties: props}
	}
	seed := []*resource.Resource{
		{ID: "/subscriptions/bench", Name: "bench", Type: resource.TypeSubscription},
		{ID: rg.String(), Name: "vms", Type: resource.TypeResourceGroup, Location: "local"},
	}
	seed = append(seed, benchAssignments()...)
	start := time.Now()
	for i := 0; i < n; i += 1000 {
		batch := seed
		seed = nil
		err := st.Update(ctx, func(tx store.Tx) error {
			for _, r := range batch {
				if _, _, err := tx.Put(ctx, r, store.Precondition{}); err != nil {
					return err
				}
			}
			for j := i; j < i+1000 && j < n; j++ {
				if _, _, err := tx.Put(ctx, vm(j, "Debian"), store.Precondition{}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("stored %d VMs in %s", n, time.Since(start).Round(time.Millisecond))
	e := New(Options{})
	svc, err := NewService(ctx, e, st, func() *resource.Hierarchy { return tree })
	if err != nil {
		b.Fatal(err)
	}
	if got := len(e.AssignmentScopes()); got != 20 {
		b.Fatalf("%d assignments loaded, want 20", got)
	}
	first, err := svc.Scan(ctx, resource.Root)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("first scan: %d resources, %d states written, %s", first.Resources, first.Transitions, first.Duration)
	if first.States < 20*n {
		b.Fatalf("first scan made %d states, want at least %d", first.States, 20*n)
	}
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		b.StopTimer()
		// Change 1% of the VMs behind the engine's back, as a drift it must find: to RedHat
		// and back, by turns.
		err := st.Update(ctx, func(tx store.Tx) error {
			for j := 0; j < n; j += 100 {
				if _, _, err := tx.Put(ctx, vm(j, []string{"RedHat", "Debian"}[it%2]), store.Precondition{}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		res, err := svc.Scan(ctx, resource.Root)
		if err != nil {
			b.Fatal(err)
		}
		if res.Transitions == 0 {
			b.Fatal("a rescan after changes recorded no transition")
		}
	}
	b.ReportMetric(float64(n), "vms")

}
