package sqlite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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

// scanWorkload is a compliance scan's output for an estate: every resource evaluated
// against every assignment, one state each, most of them Compliant.
type scanWorkload struct {
	resources   []scanResource
	assignments []string
	definitions []string
	cur         []uint8 // index into scanStateNames, per resource*len(assignments)+assignment
	rng         *rand.Rand
	buf         []store.PolicyState
	ids         []string
}

type scanResource struct{ id, sub, rg string }

var scanStateNames = []string{store.StateCompliant, store.StateNonCompliant, store.StateExempt, store.StateUnknown}

// scanReasons is a typical non-compliance reason, about 200 bytes.
var scanReasons = json.RawMessage(`[{"field":"Microsoft.Compute/virtualMachines/storageProfile.imageReference.id","operator":"like","expected":"/subscriptions/*/galleries/corp/images/*","actual":"/subscriptions/payments/images/custom-1"}]`)

func newScanWorkload(resources, assignments int) *scanWorkload {
	w := &scanWorkload{rng: rand.New(rand.NewPCG(7, 11))}
	for i := 0; i < resources; i++ {
		sub, rg := fmt.Sprintf("sub-%02d", i%10), fmt.Sprintf("rg-%02d", (i/10)%10)
		w.resources = append(w.resources, scanResource{
			id:  fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/vm-%06d", sub, rg, i),
			sub: sub, rg: rg,
		})
	}
	// A scanner pages through the store's resources, so it meets them in key order, and a
	// batch's changes then share pages; batches of resources scattered over the key space
	// made the 1% pass about a fifth slower.
	slices.SortFunc(w.resources, func(a, b scanResource) int { return strings.Compare(strings.ToLower(a.id), strings.ToLower(b.id)) })
	for a := 0; a < assignments; a++ {
		w.assignments = append(w.assignments, fmt.Sprintf("/providers/Microsoft.Management/managementGroups/corp/providers/Microsoft.Authorization/policyAssignments/baseline-%02d", a))
		w.definitions = append(w.definitions, fmt.Sprintf("/providers/Microsoft.Authorization/policyDefinitions/vm-rule-%02d", a))
	}
	w.cur = make([]uint8, resources*assignments)
	for i := range w.cur {
		switch r := w.rng.IntN(100); {
		case r < 85:
			w.cur[i] = 0
		case r < 97:
			w.cur[i] = 1
		case r < 99:
			w.cur[i] = 2
		default:
			w.cur[i] = 3
		}
	}
	return w
}

// pass writes one full scan in Updates of batch resources, first moving about a fraction
// change of the states to another state. It returns the transitions the store reported.
func (w *scanWorkload) pass(b *testing.B, s store.Store, batch int, change float64) int {
	ctx := context.Background()
	at := time.Now()
	transitions := 0
	na := len(w.assignments)
	for start := 0; start < len(w.resources); start += batch {
		end := min(start+batch, len(w.resources))
		w.buf, w.ids = w.buf[:0], w.ids[:0]
		for i := start; i < end; i++ {
			r := &w.resources[i]
			w.ids = append(w.ids, r.id)
			for a := 0; a < na; a++ {
				k := i*na + a
				if change > 0 && w.rng.Float64() < change {
					w.cur[k] = (w.cur[k] + 1) % uint8(len(scanStateNames))
				}
				st := store.PolicyState{
					ResourceID: r.id, ResourceType: "Microsoft.Compute/virtualMachines",
					ResourceGroup: r.rg, Subscription: r.sub, Location: "local",
					AssignmentID: w.assignments[a], DefinitionID: w.definitions[a],
					State: scanStateNames[w.cur[k]], Effect: "audit", EvaluatedAt: at,
				}
				if w.cur[k] == 1 {
					st.Reasons = scanReasons
				}
				w.buf = append(w.buf, st)
			}
		}
		err := s.Update(ctx, func(tx store.Tx) error {
			trs, err := tx.ReplacePolicyStates(ctx, w.ids, nil, w.buf)
			transitions += len(trs)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return transitions
}

// BenchmarkReplacePolicyStates is a compliance scan of 100,000 VMs against 20 assignments
// written as the scanner does, 500 resources per Update; one op is one full pass of 2
// million states. write fills an empty store (every state new, each with a history row);
// rescan-1pct then moves about 1% of the states, and rescan-unchanged moves none, the
// steady state the diff is built for. It takes about two minutes and 4 GB of disk:
//
//	go test ./store/sqlite -run '^$' -bench ReplacePolicyStates -benchtime 1x
func BenchmarkReplacePolicyStates(b *testing.B) {
	const resources, assignments, batch = 100_000, 20, 500
	w := newScanWorkload(resources, assignments)
	dir := b.TempDir()
	report := func(b *testing.B, transitions int) {
		b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/pass")
		b.ReportMetric(float64(resources*assignments*b.N)/b.Elapsed().Seconds(), "states/s")
		b.ReportMetric(float64(transitions)/float64(b.N), "transitions/pass")
	}
	var filled store.Store
	fillOnce := func(b *testing.B) store.Store {
		if filled == nil {
			filled = openAt(b, filepath.Join(dir, "filled.db"))
			w.pass(b, filled, batch, 0)
		}
		return filled
	}
	b.Cleanup(func() {
		if filled != nil {
			filled.Close()
		}
	})
	b.Run("write", func(b *testing.B) {
		transitions := 0
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			s := openAt(b, filepath.Join(dir, fmt.Sprintf("write-%d.db", i)))
			b.StartTimer()
			transitions += w.pass(b, s, batch, 0)
			b.StopTimer()
			if filled == nil {
				filled = s // the rescans start from it rather than fill another
			} else {
				s.Close()
			}
			b.StartTimer()
		}
		report(b, transitions)
	})
	b.Run("rescan-1pct", func(b *testing.B) {
		s := fillOnce(b)
		b.ResetTimer()
		transitions := 0
		for i := 0; i < b.N; i++ {
			transitions += w.pass(b, s, batch, 0.01)
		}
		report(b, transitions)
	})
	b.Run("rescan-unchanged", func(b *testing.B) {
		s := fillOnce(b)
		b.ResetTimer()
		transitions := 0
		for i := 0; i < b.N; i++ {
			transitions += w.pass(b, s, batch, 0)
		}
		report(b, transitions)
	})
}

func openAt(b *testing.B, path string) store.Store {
	b.Helper()
	s, err := store.Open(context.Background(), sqlite.URL(path))
	if err != nil {
		b.Fatal(err)
	}
	return s
}
