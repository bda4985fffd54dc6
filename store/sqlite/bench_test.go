package sqlite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
	"github.com/gildhq/gild/store/sqlite"
)

// vmBody is a VM as gild stores one, about 1 KB of JSON.
func vmBody(i int) *resource.Resource {
	id := resource.MustParse(fmt.Sprintf("/subscriptions/payments/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/vm-%05d", i))
	props := map[string]any{
		"vmId":              fmt.Sprintf("4f1c1e2a-7d3b-4c55-9a0e-%012d", i),
		"provisioningState": "Succeeded",
		"hardwareProfile":   map[string]any{"vmSize": "Standard_D2s_v5", "cpus": 2, "memoryMB": 4096},
		"storageProfile": map[string]any{
			"imageReference": map[string]any{"id": "/subscriptions/payments/resourceGroups/images/providers/Microsoft.Compute/galleries/corp/images/debian-12-hardened/versions/1.4.0"},
			"osDisk":         map[string]any{"name": fmt.Sprintf("vm-%05d-os", i), "diskSizeGB": 20, "caching": "ReadWrite"},
		},
		"osProfile":      map[string]any{"computerName": fmt.Sprintf("vm-%05d", i), "adminUsername": "gild", "linuxConfiguration": map[string]any{"disablePasswordAuthentication": true}},
		"networkProfile": map[string]any{"networkInterfaces": []any{map[string]any{"id": "nic-0", "macAddress": "52:54:00:12:34:56", "ipAddress": "10.0.0.17"}}},
		"instanceView":   map[string]any{"powerState": "running", "bootTimeSeconds": 14.2, "agentVersion": "1.0.0"},
	}
	raw, _ := json.Marshal(props)
	return &resource.Resource{
		ID: id.String(), Name: id.Name(), Type: id.Type(), Location: "local",
		Tags:       map[string]string{"serviceModel": "cattle", "team": "payments", "costCenter": "cc-1234", "environment": "production"},
		Properties: raw,
	}
}

func openBench(b *testing.B, query string) store.Store {
	b.Helper()
	s, err := store.Open(context.Background(), sqlite.URL(filepath.Join(b.TempDir(), "gild.db"))+query)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func fill(b *testing.B, s store.Store, n int) {
	b.Helper()
	err := s.Update(context.Background(), func(tx store.Tx) error {
		for i := 0; i < n; i++ {
			if _, _, err := tx.Put(context.Background(), vmBody(i), store.Precondition{}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPut is one Update with one Put of a VM, the API's PUT path. The sub-benchmarks
// compare the PRAGMA synchronous settings that defaultSynchronous was chosen between
// (go test ./store/sqlite -run '^$' -bench Put -benchtime 3s).
func BenchmarkPut(b *testing.B) {
	for _, c := range []struct{ name, query string }{
		{"default", ""},
		{"synchronous=FULL", "?synchronous=full"},
		{"synchronous=NORMAL", "?synchronous=normal"},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := openBench(b, c.query)
			ctx := context.Background()
			bodies := make([]*resource.Resource, 1000)
			for i := range bodies {
				bodies[i] = vmBody(i)
			}
			raw, _ := json.Marshal(bodies[0])
			b.SetBytes(int64(len(raw)))
			for i := 0; b.Loop(); i++ {
				err := s.Update(ctx, func(tx store.Tx) error {
					_, _, err := tx.Put(ctx, bodies[i%len(bodies)], store.Precondition{})
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
		})
	}
}

func BenchmarkGet(b *testing.B) {
	s := openBench(b, "")
	fill(b, s, 1000)
	ctx := context.Background()
	ids := make([]resource.ID, 1000)
	for i := range ids {
		ids[i] = resource.MustParse(vmBody(i).ID)
	}
	for i := 0; b.Loop(); i++ {
		if _, err := s.Get(ctx, ids[i%len(ids)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkList pages through a resource group of 1,000 VMs, 100 at a time; one op is one
// page.
func BenchmarkList(b *testing.B) {
	s := openBench(b, "")
	fill(b, s, 1000)
	ctx := context.Background()
	q := store.ListQuery{Scopes: []resource.ID{resource.ResourceGroupID("payments", "prod")}, Type: "Microsoft.Compute/virtualMachines", Limit: 100}
	for b.Loop() {
		page, err := s.List(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		if len(page.Items) != 100 {
			b.Fatalf("%d items", len(page.Items))
		}
		q.After = page.Next
	}
}
