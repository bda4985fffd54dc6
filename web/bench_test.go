package web

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gildhq/gild/compliance"
	"github.com/gildhq/gild/controlplane"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
	"github.com/gildhq/gild/store/sqlite"
)

// BenchmarkOverview renders the overview page, signed in as an Owner, for 100,000 VMs under
// 20 assignments (2 million states) on SQLite, with a year of history: every state written
// 400 days ago, then 100 states changing each day since. Target: at most 200 ms a page on
// 2 cores. Filling the store takes a few minutes:
//
//	go test ./web -run '^$' -bench Overview -benchtime 20x
//
// It reports the first load of the roll-up (replaying the whole history) and its memory
// too, and the overview as one team (a subscription of 5,000 VMs) sees it.
func BenchmarkOverview(b *testing.B) {
	const (
		vms, assignments, subs, rgsPerSub = 100_000, 20, 20, 5
		batch                             = 500
		days                              = 400
		changesPerDay                     = 100
	)
	ctx := context.Background()
	st, err := store.Open(ctx, sqlite.URL(filepath.Join(b.TempDir(), "gild.db")))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC()
	start := now.Add(-days * 24 * time.Hour)
	// Assignments at the corp management group; four assign an initiative of three policies.
	var assignIDs []string
	err = st.Update(ctx, func(tx store.Tx) error {
		mg := resource.ManagementGroupID("corp")
		if _, _, err := tx.Put(ctx, &resource.Resource{ID: mg.String(), Name: "corp", Type: resource.TypeManagementGroup, Properties: json.RawMessage(`{}`)}, store.Precondition{}); err != nil {
			return err
		}
		for i := 0; i < subs; i++ {
			sub := resource.SubscriptionID(fmt.Sprintf("team-%02d", i))
			props, _ := json.Marshal(map[string]any{"managementGroupId": mg.String()})
			if _, _, err := tx.Put(ctx, &resource.Resource{ID: sub.String(), Name: sub.Subscription, Type: resource.TypeSubscription, Properties: props}, store.Precondition{}); err != nil {
				return err
			}
		}
		for i := 0; i < assignments; i++ {
			def := "/providers/Microsoft.Authorization/policyDefinitions/bench-" + fmt.Sprint(i)
			if i < 4 {
				def = "/providers/Microsoft.Authorization/policySetDefinitions/bench-set-" + fmt.Sprint(i)
			}
			props, _ := json.Marshal(map[string]any{"displayName": fmt.Sprintf("Bench assignment %d", i), "policyDefinitionId": def})
			id := resource.ManagementGroupID("corp").Child(compliance.TypeAssignment, fmt.Sprintf("a%02d", i))
			if _, _, err := tx.Put(ctx, &resource.Resource{ID: id.String(), Name: id.Name(), Type: compliance.TypeAssignment, Properties: props}, store.Precondition{}); err != nil {
				return err
			}
			assignIDs = append(assignIDs, id.String())
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	vmIDs := make([]string, vms)
	for i := range vmIDs {
		sub := i % subs
		vmIDs[i] = resource.ResourceGroupID(fmt.Sprintf("team-%02d", sub), fmt.Sprintf("rg-%d", (i/subs)%rgsPerSub)).
			Child("Microsoft.Compute/virtualMachines", fmt.Sprintf("vm-%06d", i)).String()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	stateOf := func() string {
		if rng.IntN(100) < 3 {
			return store.StateNonCompliant
		}
		return store.StateCompliant
	}
	write := func(ids []string, at time.Time, pick func(id string, a int) (string, bool)) {
		err := st.Update(ctx, func(tx store.Tx) error {
			for _, id := range ids {
				var states []store.PolicyState
				var touched []string
				for a, aid := range assignIDs {
					s, ok := pick(id, a)
					if !ok {
						continue
					}
					touched = append(touched, aid)
					states = append(states, store.PolicyState{ResourceID: id, ResourceType: "Microsoft.Compute/virtualMachines",
						AssignmentID: aid, DefinitionID: fmt.Sprintf("/providers/Microsoft.Authorization/policyDefinitions/bench-%d", a),
						State: s, Effect: "audit", EvaluatedAt: at})
				}
				if _, err := tx.ReplacePolicyStates(ctx, []string{id}, touched, states); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	fill := time.Now()
	for i := 0; i < vms; i += batch {
		write(vmIDs[i:min(i+batch, vms)], start, func(string, int) (string, bool) { return stateOf(), true })
	}
	for d := 1; d < days; d++ {
		picked := map[string]int{}
		for j := 0; j < changesPerDay; j++ {
			picked[vmIDs[rng.IntN(vms)]] = rng.IntN(assignments)
		}
		ids := make([]string, 0, len(picked))
		for id := range picked {
			ids = append(ids, id)
		}
		write(ids, start.Add(time.Duration(d)*24*time.Hour), func(id string, a int) (string, bool) {
			if a != picked[id] {
				return "", false
			}
			return stateOf(), true
		})
	}
	b.Logf("filled the store in %s", time.Since(fill).Round(time.Second))

	cp, err := controlplane.New(ctx, st, controlplane.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var admin string
	if _, err := cp.Bootstrap(ctx, func(s string) error { admin = s; return nil }); err != nil {
		b.Fatal(err)
	}
	team, err := cp.CreateToken(ctx, controlplane.System, controlplane.TokenRequest{Role: "Reader", Scope: "/subscriptions/team-03"})
	if err != nil {
		b.Fatal(err)
	}
	h, err := New(Options{Control: cp, Key: []byte(strings.Repeat("k", 32))})
	if err != nil {
		b.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	load := time.Now()
	if err := h.rollup.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	loaded := time.Since(load)
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.Logf("first load of the roll-up: %s, %.0f MB held", loaded.Round(time.Millisecond), float64(after.HeapAlloc-before.HeapAlloc)/1e6)

	cookie := func(secret string) *http.Cookie {
		v, err := h.keys.seal(&session{Secret: secret, Expires: time.Now().Add(time.Hour), Nonce: "n"})
		if err != nil {
			b.Fatal(err)
		}
		return &http.Cookie{Name: sessionCookie, Value: v}
	}
	get := func(b *testing.B, c *http.Cookie, path string) int {
		req := httptest.NewRequest("GET", path, nil)
		req.AddCookie(c)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body.String())
		}
		return rec.Body.Len()
	}
	for _, c := range []struct {
		name, path string
		cookie     *http.Cookie
	}{
		{"owner-30d", "/ui/", cookie(admin)},
		{"owner-365d", "/ui/?days=365", cookie(admin)},
		{"team-30d", "/ui/", cookie(team.Secret)},
	} {
		b.Run(c.name, func(b *testing.B) {
			size := 0
			for i := 0; i < b.N; i++ {
				size = get(b, c.cookie, c.path)
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/page")
			b.ReportMetric(float64(size)/1024, "KiB/page")
		})
	}
}
