// Package storetest is the one conformance suite every store backend passes: Run checks the
// store.Store contract on a fresh store per case, RunCrash kills a writer process with
// SIGKILL and checks that what it reported committed survived. Backends call both from
// their own tests, so SQLite and PostgreSQL are held to the same behaviour.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// Run runs the suite. open must return a new, empty store each call; the suite closes it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	fresh := func(t *testing.T) store.Store {
		t.Helper()
		s := open(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
		return s
	}
	cases := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateGetReplaceDelete", testCRUD},
		{"BodyRoundTrip", testBodyRoundTrip},
		{"CaseInsensitiveIDs", testCaseInsensitive},
		{"Preconditions", testPreconditions},
		{"ListByScope", testListByScope},
		{"ListByType", testListByType},
		{"ListPaging", testListPaging},
		{"ChangeSequence", testChangeSequence},
		{"UpdateRollback", testUpdateRollback},
		{"TxEndsWithUpdate", testTxEnds},
		{"Audit", testAudit},
		{"Tokens", testTokens},
		{"ConcurrentWritersReadOutside", func(t *testing.T, s store.Store) { testConcurrentWriters(t, s, false) }},
		{"ConcurrentWritersReadInside", func(t *testing.T, s store.Store) { testConcurrentWriters(t, s, true) }},
		{"Ping", func(t *testing.T, s store.Store) {
			if err := s.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
		}},
	}
	cases = append(cases, testPolicyStates...)
	cases = append(cases, testMachineCases...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, fresh(t)) })
	}
}

// Resource IDs the cases share. The near-misses (prod2, payments2, contoso-eu) share a
// prefix with a scope but lie outside it.
const (
	subPayments   = "/subscriptions/payments"
	rgProd        = "/subscriptions/payments/resourceGroups/prod"
	vmAPI1        = "/subscriptions/payments/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/api-1"
	vmAPI2        = "/subscriptions/payments/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/api-2"
	gcAPI1        = vmAPI1 + "/providers/Microsoft.GuestConfiguration/guestConfigurationAssignments/baseline"
	vmProd2       = "/subscriptions/payments/resourceGroups/prod2/providers/Microsoft.Compute/virtualMachines/web-1"
	vmPayments2   = "/subscriptions/payments2/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/api-1"
	galleryCorp   = "/subscriptions/Billing/resourceGroups/Dev/providers/Microsoft.Compute/galleries/corp"
	imageVersion  = galleryCorp + "/images/debian-12/versions/1.0.0"
	mgContoso     = "/providers/Microsoft.Management/managementGroups/contoso"
	policyContoso = mgContoso + "/providers/Microsoft.Authorization/policyDefinitions/deny-unapproved"
	policyEU      = "/providers/Microsoft.Management/managementGroups/contoso-eu/providers/Microsoft.Authorization/policyDefinitions/audit-tags"
	policyTenant  = "/providers/Microsoft.Authorization/policyDefinitions/builtin-1"
)

var allFixtures = []string{subPayments, rgProd, vmAPI1, vmAPI2, gcAPI1, vmProd2, vmPayments2, galleryCorp, imageVersion, mgContoso, policyContoso, policyEU, policyTenant}

// newResource returns a resource at id with properties props (a JSON object).
func newResource(t testing.TB, id string, props string) *resource.Resource {
	t.Helper()
	pid, err := resource.Parse(id)
	if err != nil {
		t.Fatalf("parse %s: %v", id, err)
	}
	return &resource.Resource{
		ID:         pid.String(),
		Name:       pid.Name(),
		Type:       pid.Type(),
		Location:   "local",
		Tags:       map[string]string{"serviceModel": "cattle"},
		Properties: json.RawMessage(props),
	}
}

func mustID(t testing.TB, s string) resource.ID {
	t.Helper()
	id, err := resource.Parse(s)
	if err != nil {
		t.Fatalf("parse %s: %v", s, err)
	}
	return id
}

// put writes r in its own Update.
func put(t testing.TB, s store.Store, r *resource.Resource, pre store.Precondition) (*resource.Resource, bool, error) {
	t.Helper()
	var stored *resource.Resource
	var created bool
	err := s.Update(context.Background(), func(tx store.Tx) error {
		var err error
		stored, created, err = tx.Put(context.Background(), r, pre)
		return err
	})
	return stored, created, err
}

func mustPut(t testing.TB, s store.Store, r *resource.Resource) *resource.Resource {
	t.Helper()
	stored, _, err := put(t, s, r, store.Precondition{})
	if err != nil {
		t.Fatalf("put %s: %v", r.ID, err)
	}
	return stored
}

func del(t testing.TB, s store.Store, id string, pre store.Precondition) (*resource.Resource, error) {
	t.Helper()
	var deleted *resource.Resource
	err := s.Update(context.Background(), func(tx store.Tx) error {
		var err error
		deleted, err = tx.Delete(context.Background(), mustID(t, id), pre)
		return err
	})
	return deleted, err
}

func putAll(t testing.TB, s store.Store, ids []string) {
	t.Helper()
	err := s.Update(context.Background(), func(tx store.Tx) error {
		for _, id := range ids {
			if _, _, err := tx.Put(context.Background(), newResource(t, id, `{}`), store.Precondition{}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("put fixtures: %v", err)
	}
}

// allChanges reads the whole change log, page by page as a follower would.
func allChanges(t testing.TB, s store.Store) []store.Change {
	t.Helper()
	var out []store.Change
	var after int64
	for {
		page, err := s.Changes(context.Background(), after, 0)
		if err != nil {
			t.Fatalf("changes after %d: %v", after, err)
		}
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].Seq
	}
}

// checkGapFree fails unless changes are numbered 1, 2, 3, ... up to the store's LastSeq.
func checkGapFree(t testing.TB, s store.Store, changes []store.Change) {
	t.Helper()
	for i, c := range changes {
		if c.Seq != int64(i+1) {
			t.Fatalf("change %d has seq %d; the sequence must run 1, 2, 3, ... without gaps", i, c.Seq)
		}
	}
	last, err := s.LastSeq(context.Background())
	if err != nil {
		t.Fatalf("last seq: %v", err)
	}
	if last != int64(len(changes)) {
		t.Fatalf("LastSeq = %d, but the change log has %d entries", last, len(changes))
	}
}

func keysOf(items []*resource.Resource) []string {
	out := make([]string, len(items))
	for i, r := range items {
		out[i] = mustIDKey(r.ID)
	}
	return out
}

func mustIDKey(s string) string {
	id, err := resource.Parse(s)
	if err != nil {
		return "unparseable:" + s
	}
	return id.Key()
}

func sortedKeys(ids ...string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = mustIDKey(id)
	}
	sort.Strings(out)
	return out
}

func wantErr(t testing.TB, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want one wrapping %v", what, err, target)
	}
}

func testCRUD(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := newResource(t, vmAPI1, `{"hardwareProfile":{"vmSize":"small"}}`)
	r.ETag = "caller-supplied" // ignored: the store stamps its own
	stored, created, err := put(t, s, r, store.Precondition{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if !created {
		t.Error("create: created = false")
	}
	if stored.ETag == "" || stored.ETag == "caller-supplied" {
		t.Errorf("create: ETag = %q, want one stamped by the store", stored.ETag)
	}
	if r.ETag != "caller-supplied" {
		t.Error("Put changed the caller's resource")
	}
	got, err := s.Get(ctx, mustID(t, vmAPI1))
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.ETag != stored.ETag || got.ID != vmAPI1 || got.Name != "api-1" || got.Type != "Microsoft.Compute/virtualMachines" {
		t.Errorf("get = %+v, want the stored resource with ETag %q", got, stored.ETag)
	}

	r2 := newResource(t, vmAPI1, `{"hardwareProfile":{"vmSize":"large"}}`)
	replaced, created, err := put(t, s, r2, store.Precondition{})
	if err != nil {
		t.Fatalf("replace: %v", err)
	}
	if created {
		t.Error("replace: created = true")
	}
	if replaced.ETag == stored.ETag {
		t.Errorf("replace kept ETag %q", replaced.ETag)
	}
	got, err = s.Get(ctx, mustID(t, vmAPI1))
	if err != nil {
		t.Fatalf("get after replace: %v", err)
	}
	if got.ETag != replaced.ETag || !strings.Contains(string(got.Properties), "large") {
		t.Errorf("get after replace = %s %s", got.ETag, got.Properties)
	}

	deleted, err := del(t, s, vmAPI1, store.Precondition{})
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	if deleted.ID != vmAPI1 || deleted.ETag != replaced.ETag || !strings.Contains(string(deleted.Properties), "large") {
		t.Errorf("delete returned %+v, want the resource as it was", deleted)
	}
	_, err = s.Get(ctx, mustID(t, vmAPI1))
	wantErr(t, err, store.ErrNotFound, "get after delete")
	if !store.IsNotFound(err) || !strings.Contains(err.Error(), vmAPI1) {
		t.Errorf("get after delete: %v should name the ID", err)
	}
	_, err = del(t, s, vmAPI1, store.Precondition{})
	wantErr(t, err, store.ErrNotFound, "delete twice")

	changes := allChanges(t, s)
	checkGapFree(t, s, changes)
	if len(changes) != 3 {
		t.Fatalf("changes = %+v, want put, put, delete", changes)
	}
	for i, want := range []struct {
		op   store.Op
		etag string
	}{{store.OpPut, stored.ETag}, {store.OpPut, replaced.ETag}, {store.OpDelete, ""}} {
		c := changes[i]
		if c.Op != want.op || c.ETag != want.etag || c.ID != vmAPI1 || c.Type != "Microsoft.Compute/virtualMachines" || c.At.IsZero() {
			t.Errorf("change %d = %+v, want %s with ETag %q", i, c, want.op, want.etag)
		}
	}
}

func testBodyRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	created := time.Date(2025, 3, 1, 12, 30, 15, 123456000, time.UTC)
	r := newResource(t, imageVersion, `{"publishingProfile":{"replicaCount":2,"targetRegions":[{"name":"local"}]},"storageProfile":{"osDiskImage":{"sizeInGB":4}}}`)
	r.Tags = map[string]string{"team": "payments", "serviceModel": "pet", "empty": ""}
	r.Kind = "golden"
	r.Zones = []string{"1", "2"}
	r.SKU = json.RawMessage(`{"name":"standard"}`)
	r.SystemData = &resource.SystemData{CreatedBy: "alice", CreatedAt: created, LastModifiedBy: "bob", LastModifiedAt: created.Add(time.Hour)}
	stored := mustPut(t, s, r)
	got, err := s.Get(ctx, mustID(t, imageVersion))
	if err != nil {
		t.Fatal(err)
	}
	want := r.Clone()
	want.ETag = stored.ETag
	if a, b := mustJSON(t, got), mustJSON(t, want); a != b {
		t.Errorf("round trip changed the resource:\n got %s\nwant %s", a, b)
	}
	if !got.SystemData.CreatedAt.Equal(created) {
		t.Errorf("systemData.createdAt = %v, want %v", got.SystemData.CreatedAt, created)
	}
	if a, b := mustJSON(t, stored), mustJSON(t, want); a != b {
		t.Errorf("Put returned\n %s\nwant %s", a, b)
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func testCaseInsensitive(t *testing.T, s store.Store) {
	ctx := context.Background()
	orig := "/subscriptions/Payments/resourceGroups/Prod/providers/Microsoft.Compute/virtualMachines/Api-1"
	first := mustPut(t, s, newResource(t, orig, `{"n":1}`))
	for _, spelling := range []string{strings.ToLower(orig), strings.ToUpper(orig), orig + "/"} {
		got, err := s.Get(ctx, mustID(t, spelling))
		if err != nil {
			t.Fatalf("get %s: %v", spelling, err)
		}
		if got.ID != orig || got.ETag != first.ETag {
			t.Errorf("get %s = %s (ETag %s), want %s (ETag %s)", spelling, got.ID, got.ETag, orig, first.ETag)
		}
	}
	lower := strings.ToLower(orig)
	second, created, err := put(t, s, newResource(t, lower, `{"n":2}`), store.Precondition{IfMatch: first.ETag})
	if err != nil {
		t.Fatalf("put in other case: %v", err)
	}
	if created {
		t.Error("a put in other letter case created a second resource")
	}
	if second.ID != orig || second.Name != "Api-1" {
		t.Errorf("put in other case renamed the resource to %s (name %s); the first spelling must stay", second.ID, second.Name)
	}
	got, err := s.Get(ctx, mustID(t, lower))
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != orig || got.Name != "Api-1" || string(got.Properties) != `{"n":2}` {
		t.Errorf("get after put in other case = %s %s %s", got.ID, got.Name, got.Properties)
	}
	page, err := s.List(ctx, store.ListQuery{Scopes: []resource.ID{mustID(t, "/SUBSCRIPTIONS/payments")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].ID != orig {
		t.Errorf("list = %v, want just %s", keysOf(page.Items), orig)
	}
	changes := allChanges(t, s)
	if len(changes) != 2 || changes[0].ID != orig || changes[1].ID != mustID(t, lower).String() {
		t.Errorf("changes = %+v, want IDs as each writer spelt them", changes)
	}
	if _, err := del(t, s, strings.ToUpper(orig), store.Precondition{}); err != nil {
		t.Fatalf("delete in other case: %v", err)
	}
	if _, err := s.Get(ctx, mustID(t, orig)); !store.IsNotFound(err) {
		t.Errorf("get after delete in other case: %v", err)
	}
}

func testPreconditions(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := newResource(t, vmAPI1, `{}`)

	_, _, err := put(t, s, r, store.Precondition{IfMatch: "*"})
	wantErr(t, err, store.ErrPrecondition, "If-Match * on an absent resource")
	_, _, err = put(t, s, r, store.Precondition{IfMatch: "1"})
	wantErr(t, err, store.ErrPrecondition, "If-Match etag on an absent resource")

	v1, created, err := put(t, s, r, store.Precondition{IfNoneMatch: "*"})
	if err != nil || !created {
		t.Fatalf("If-None-Match * on an absent resource: created=%v err=%v", created, err)
	}
	_, _, err = put(t, s, r, store.Precondition{IfNoneMatch: "*"})
	wantErr(t, err, store.ErrPrecondition, "If-None-Match * on an existing resource")
	if !strings.Contains(err.Error(), vmAPI1) || !strings.Contains(err.Error(), v1.ETag) {
		t.Errorf("precondition error %q should name the ID and the current ETag", err)
	}

	v2, _, err := put(t, s, r, store.Precondition{IfMatch: "*"})
	if err != nil {
		t.Fatalf("If-Match * on an existing resource: %v", err)
	}
	_, _, err = put(t, s, r, store.Precondition{IfMatch: v1.ETag})
	wantErr(t, err, store.ErrPrecondition, "If-Match with a stale ETag")
	if !strings.Contains(err.Error(), vmAPI1) || !strings.Contains(err.Error(), v1.ETag) || !strings.Contains(err.Error(), v2.ETag) {
		t.Errorf("precondition error %q should name the ID, the expected and the actual ETag", err)
	}

	cur := v2
	for _, quote := range []func(string) string{
		func(e string) string { return e },
		func(e string) string { return `"` + e + `"` },
		func(e string) string { return `W/"` + e + `"` },
		func(e string) string { return `"nope", "` + e + `"` },
	} {
		spelling := quote(cur.ETag)
		next, _, err := put(t, s, r, store.Precondition{IfMatch: spelling})
		if err != nil {
			t.Fatalf("If-Match %s with ETag %s: %v", spelling, cur.ETag, err)
		}
		cur = next
	}

	before, err := s.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = del(t, s, vmAPI1, store.Precondition{IfMatch: v1.ETag})
	wantErr(t, err, store.ErrPrecondition, "delete with a stale ETag")
	if after, _ := s.LastSeq(ctx); after != before {
		t.Errorf("a failed precondition moved LastSeq from %d to %d", before, after)
	}
	if _, err := s.Get(ctx, mustID(t, vmAPI1)); err != nil {
		t.Fatalf("a failed delete removed the resource: %v", err)
	}
	if _, err := del(t, s, vmAPI1, store.Precondition{IfMatch: `"` + cur.ETag + `"`}); err != nil {
		t.Fatalf("delete with the current ETag: %v", err)
	}
	checkGapFree(t, s, allChanges(t, s))
}

func testListByScope(t *testing.T, s store.Store) {
	ctx := context.Background()
	putAll(t, s, allFixtures)
	cases := []struct {
		name   string
		scopes []string
		want   []string
	}{
		{"resource group", []string{"/subscriptions/PAYMENTS/resourceGroups/PROD"}, []string{rgProd, vmAPI1, vmAPI2, gcAPI1}},
		{"subscription", []string{subPayments}, []string{subPayments, rgProd, vmAPI1, vmAPI2, gcAPI1, vmProd2}},
		{"resource and its extensions", []string{vmAPI1}, []string{vmAPI1, gcAPI1}},
		{"management group", []string{mgContoso}, []string{mgContoso, policyContoso}},
		{"nested gallery", []string{galleryCorp}, []string{galleryCorp, imageVersion}},
		{"root", []string{"/"}, allFixtures},
		{"root among others", []string{rgProd, "/"}, allFixtures},
		{"union", []string{rgProd, "/subscriptions/billing", mgContoso, rgProd}, []string{rgProd, vmAPI1, vmAPI2, gcAPI1, galleryCorp, imageVersion, mgContoso, policyContoso}},
		{"nested scopes", []string{subPayments, rgProd}, []string{subPayments, rgProd, vmAPI1, vmAPI2, gcAPI1, vmProd2}},
		{"empty scope", []string{"/subscriptions/nobody"}, nil},
	}
	for _, c := range cases {
		var scopes []resource.ID
		for _, sc := range c.scopes {
			scopes = append(scopes, mustID(t, sc))
		}
		page, err := s.List(ctx, store.ListQuery{Scopes: scopes})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got, want := keysOf(page.Items), sortedKeys(c.want...); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: list =\n  %s\nwant\n  %s", c.name, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
		if page.Next != "" {
			t.Errorf("%s: Next = %q on the only page", c.name, page.Next)
		}
	}

	all, err := s.List(ctx, store.ListQuery{Scopes: nil})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Items) != len(allFixtures) {
		t.Errorf("nil scopes listed %d resources, want all %d", len(all.Items), len(allFixtures))
	}
	none, err := s.List(ctx, store.ListQuery{Scopes: []resource.ID{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(none.Items) != 0 || none.Next != "" {
		t.Errorf("empty non-nil scopes listed %v, want nothing", keysOf(none.Items))
	}
}

func testListByType(t *testing.T, s store.Store) {
	ctx := context.Background()
	putAll(t, s, allFixtures)
	vms := []string{vmAPI1, vmAPI2, vmProd2, vmPayments2}
	for _, typ := range []string{"Microsoft.Compute/virtualMachines", "microsoft.compute/VIRTUALMACHINES"} {
		page, err := s.List(ctx, store.ListQuery{Type: typ})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := keysOf(page.Items), sortedKeys(vms...); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("type %s: list = %v, want %v", typ, got, want)
		}
	}
	page, err := s.List(ctx, store.ListQuery{Type: "Microsoft.Compute/virtualMachines", Scopes: []resource.ID{mustID(t, subPayments)}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keysOf(page.Items), sortedKeys(vmAPI1, vmAPI2, vmProd2); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("type and scope: list = %v, want %v", got, want)
	}
	page, err = s.List(ctx, store.ListQuery{Type: "Microsoft.Authorization/policyDefinitions", Scopes: []resource.ID{resource.Root}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keysOf(page.Items), sortedKeys(policyContoso, policyEU, policyTenant); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("policy definitions at the root: list = %v, want %v", got, want)
	}
	page, err = s.List(ctx, store.ListQuery{Type: "Microsoft.Compute/galleries"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keysOf(page.Items), sortedKeys(galleryCorp); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("galleries: list = %v, want %v (a child type is another type)", got, want)
	}
}

func testListPaging(t *testing.T, s store.Store) {
	ctx := context.Background()
	vm := func(i int) string {
		return fmt.Sprintf("/subscriptions/payments/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/vm-%03d", i)
	}
	// Even numbers exist from the start; odd ones arrive while paging.
	var ids []string
	for i := 0; i < 100; i += 2 {
		ids = append(ids, vm(i))
	}
	putAll(t, s, ids)
	want := map[string]bool{}
	for _, id := range ids {
		want[mustIDKey(id)] = true
	}

	q := store.ListQuery{Scopes: []resource.ID{mustID(t, rgProd)}, Type: "Microsoft.Compute/virtualMachines", Limit: 7}
	seen := map[string]bool{}
	var order []string
	pages := 0
	for {
		page, err := s.List(ctx, q)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		pages++
		if len(page.Items) > 7 {
			t.Fatalf("page %d has %d items, more than the limit 7", pages, len(page.Items))
		}
		for _, k := range keysOf(page.Items) {
			if seen[k] {
				t.Fatalf("page %d repeats %s", pages, k)
			}
			seen[k] = true
			order = append(order, k)
		}
		if page.Next == "" {
			break
		}
		if len(page.Items) != 7 {
			t.Fatalf("page %d has %d items but a Next cursor", pages, len(page.Items))
		}
		if pages == 3 {
			// Writes while a client pages: one behind the cursor (it must not show up),
			// one ahead of it (it must), and a deletion ahead (it must not).
			cursor := page.Next
			var behind, ahead, gone string
			for i := 1; i < 100; i += 2 {
				k := mustIDKey(vm(i))
				if k < cursor && behind == "" {
					behind = vm(i)
				}
				if k > cursor && ahead == "" {
					ahead = vm(i)
				}
			}
			for i := 98; i >= 0; i -= 2 {
				if mustIDKey(vm(i)) > cursor {
					gone = vm(i)
					break
				}
			}
			putAll(t, s, []string{behind, ahead})
			if _, err := del(t, s, gone, store.Precondition{}); err != nil {
				t.Fatal(err)
			}
			want[mustIDKey(ahead)] = true
			delete(want, mustIDKey(gone))
		}
		q.After = page.Next
	}
	if !sort.StringsAreSorted(order) {
		t.Errorf("pages are not in ID order: %v", order)
	}
	for k := range want {
		if !seen[k] {
			t.Errorf("paging omitted %s", k)
		}
	}
	for k := range seen {
		if !want[k] {
			t.Errorf("paging returned %s, which it should not have", k)
		}
	}
	if pages < 3 {
		t.Errorf("only %d pages", pages)
	}

	// The store now holds what paging saw plus the one added behind the cursor. A page
	// that ends exactly at the last item has no Next.
	total := len(want) + 1
	page, err := s.List(ctx, store.ListQuery{Type: "Microsoft.Compute/virtualMachines", Limit: total})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != total || page.Next != "" {
		t.Errorf("limit = count: %d items, Next %q; want %d items and no Next", len(page.Items), page.Next, total)
	}
	// Limit 0 means the default page size, which holds all of these.
	page, err = s.List(ctx, store.ListQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != total || page.Next != "" {
		t.Errorf("default limit: %d items, Next %q; want %d", len(page.Items), page.Next, total)
	}
}

var errRollback = errors.New("storetest: roll back")

func testChangeSequence(t *testing.T, s store.Store) {
	ctx := context.Background()
	var etags []string
	err := s.Update(ctx, func(tx store.Tx) error {
		for _, id := range []string{vmAPI1, vmAPI2} {
			r, _, err := tx.Put(ctx, newResource(t, id, `{}`), store.Precondition{})
			if err != nil {
				return err
			}
			etags = append(etags, r.ETag)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A rolled-back Update consumes no seq.
	for i := 0; i < 3; i++ {
		err = s.Update(ctx, func(tx store.Tx) error {
			if _, _, err := tx.Put(ctx, newResource(t, vmProd2, `{}`), store.Precondition{}); err != nil {
				return err
			}
			return errRollback
		})
		wantErr(t, err, errRollback, "rolled-back update")
	}
	// Neither does a write refused by its precondition.
	_, _, err = put(t, s, newResource(t, vmAPI1, `{}`), store.Precondition{IfNoneMatch: "*"})
	wantErr(t, err, store.ErrPrecondition, "refused write")

	etags = append(etags, mustPut(t, s, newResource(t, vmAPI1, `{"n":2}`)).ETag)
	if _, err := del(t, s, vmAPI2, store.Precondition{}); err != nil {
		t.Fatal(err)
	}
	etags = append(etags, "")
	etags = append(etags, mustPut(t, s, newResource(t, galleryCorp, `{}`)).ETag)

	changes := allChanges(t, s)
	checkGapFree(t, s, changes)
	if len(changes) != len(etags) {
		t.Fatalf("%d changes, want %d: %+v", len(changes), len(etags), changes)
	}
	seenETags := map[string]bool{}
	for i, c := range changes {
		if c.ETag != etags[i] {
			t.Errorf("change %d has ETag %q, the write returned %q", c.Seq, c.ETag, etags[i])
		}
		if c.ETag != "" {
			if seenETags[c.ETag] {
				t.Errorf("ETag %q given twice", c.ETag)
			}
			seenETags[c.ETag] = true
		}
	}
	for _, c := range changes {
		if strings.EqualFold(c.ID, vmProd2) {
			t.Errorf("a rolled-back put left change %+v", c)
		}
	}

	page, err := s.Changes(ctx, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 2 || page[0].Seq != 3 || page[1].Seq != 4 {
		t.Errorf("Changes(2, 2) = %+v, want seqs 3 and 4", page)
	}
	page, err = s.Changes(ctx, int64(len(changes)), 10)
	if err != nil || len(page) != 0 {
		t.Errorf("Changes after the last = %+v, %v; want none", page, err)
	}
}

func testUpdateRollback(t *testing.T, s store.Store) {
	ctx := context.Background()
	keep := mustPut(t, s, newResource(t, vmAPI2, `{"v":1}`))
	err := s.Update(ctx, func(tx store.Tx) error {
		if _, _, err := tx.Put(ctx, newResource(t, vmAPI1, `{}`), store.Precondition{}); err != nil {
			return err
		}
		if _, _, err := tx.Put(ctx, newResource(t, vmAPI2, `{"v":2}`), store.Precondition{}); err != nil {
			return err
		}
		// Reads in the transaction see its own writes.
		if _, err := tx.Get(ctx, mustID(t, vmAPI1)); err != nil {
			return fmt.Errorf("read own write: %w", err)
		}
		page, err := tx.List(ctx, store.ListQuery{Scopes: []resource.ID{mustID(t, rgProd)}})
		if err != nil {
			return err
		}
		if len(page.Items) != 2 {
			return fmt.Errorf("list in the transaction saw %d resources, want 2", len(page.Items))
		}
		if err := tx.Audit(ctx, store.AuditEntry{Principal: "alice", Action: "PUT", ResourceID: vmAPI1}); err != nil {
			return err
		}
		if err := tx.CreateToken(ctx, store.Token{ID: "t1", PrincipalID: "alice", Hash: "h1"}); err != nil {
			return err
		}
		return errRollback
	})
	wantErr(t, err, errRollback, "update")

	if _, err := s.Get(ctx, mustID(t, vmAPI1)); !store.IsNotFound(err) {
		t.Errorf("rolled-back create is visible: %v", err)
	}
	got, err := s.Get(ctx, mustID(t, vmAPI2))
	if err != nil {
		t.Fatal(err)
	}
	if got.ETag != keep.ETag || string(got.Properties) != `{"v":1}` {
		t.Errorf("rolled-back replace is visible: %s %s", got.ETag, got.Properties)
	}
	if entries, err := s.AuditLog(ctx, store.AuditQuery{}); err != nil || len(entries) != 0 {
		t.Errorf("rolled-back audit entry is visible: %+v %v", entries, err)
	}
	if _, err := s.TokenByHash(ctx, "h1"); !store.IsNotFound(err) {
		t.Errorf("rolled-back token is visible: %v", err)
	}
	checkGapFree(t, s, allChanges(t, s))

	// A panic in fn rolls back too, and the store stays usable.
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic did not reach the caller")
			}
		}()
		_ = s.Update(ctx, func(tx store.Tx) error {
			if _, _, err := tx.Put(ctx, newResource(t, vmAPI1, `{}`), store.Precondition{}); err != nil {
				return err
			}
			panic("storetest: boom")
		})
	}()
	if _, err := s.Get(ctx, mustID(t, vmAPI1)); !store.IsNotFound(err) {
		t.Errorf("put before a panic is visible: %v", err)
	}
	mustPut(t, s, newResource(t, vmAPI1, `{}`))
	checkGapFree(t, s, allChanges(t, s))
}

func testTxEnds(t *testing.T, s store.Store) {
	ctx := context.Background()
	var kept store.Tx
	if err := s.Update(ctx, func(tx store.Tx) error { kept = tx; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := kept.Put(ctx, newResource(t, vmAPI1, `{}`), store.Precondition{}); err == nil {
		t.Error("a Tx kept past its Update still writes")
	}
	if _, err := s.Get(ctx, mustID(t, vmAPI1)); !store.IsNotFound(err) {
		t.Errorf("a write through a finished Tx is visible: %v", err)
	}
}

func testAudit(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)
	entries := []store.AuditEntry{
		{At: t0, Principal: "alice", Action: "PUT", ResourceID: vmAPI1, Type: "Microsoft.Compute/virtualMachines", AfterETag: "1", Detail: "10.0.0.1"},
		{At: t0.Add(time.Hour), Principal: "bob", Action: "token/create", Detail: "ci token"},
		{At: t0.Add(2 * time.Hour), Principal: "carol", Action: "DELETE", ResourceID: policyContoso, BeforeETag: "7"},
		{At: t0.Add(3*time.Hour + 123456*time.Microsecond), Principal: "alice", Action: "PATCH", ResourceID: strings.ToUpper(rgProd), BeforeETag: "2", AfterETag: "3"},
	}
	for _, e := range entries {
		if err := s.Update(ctx, func(tx store.Tx) error { return tx.Audit(ctx, e) }); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.AuditLog(ctx, store.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(entries) {
		t.Fatalf("audit log has %d entries, want %d", len(all), len(entries))
	}
	for i, got := range all {
		want := entries[i]
		if i > 0 && got.Seq <= all[i-1].Seq {
			t.Errorf("audit seqs not increasing: %d after %d", got.Seq, all[i-1].Seq)
		}
		want.Seq = got.Seq
		if want.Type == "" && want.ResourceID != "" {
			want.Type = got.Type // the store may fill the type in from the ID
		}
		if !got.At.Equal(want.At) {
			t.Errorf("entry %d: At = %v, want %v", i, got.At, want.At)
		}
		got.At, want.At = time.Time{}, time.Time{}
		if got != want {
			t.Errorf("entry %d = %+v, want %+v", i, got, want)
		}
	}
	query := func(q store.AuditQuery) []string {
		t.Helper()
		es, err := s.AuditLog(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			out = append(out, e.Principal+" "+e.Action)
		}
		return out
	}
	check := func(name string, got []string, want ...string) {
		t.Helper()
		if strings.Join(got, ", ") != strings.Join(want, ", ") {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
	check("resource group scope", query(store.AuditQuery{Scopes: []resource.ID{mustID(t, rgProd)}}), "alice PUT", "alice PATCH")
	check("management group scope", query(store.AuditQuery{Scopes: []resource.ID{mustID(t, mgContoso)}}), "carol DELETE")
	check("root scope", query(store.AuditQuery{Scopes: []resource.ID{resource.Root}}), "alice PUT", "bob token/create", "carol DELETE", "alice PATCH")
	check("no scopes", query(store.AuditQuery{Scopes: []resource.ID{}}))
	check("since", query(store.AuditQuery{Since: t0.Add(time.Hour)}), "bob token/create", "carol DELETE", "alice PATCH")
	check("since, to the microsecond", query(store.AuditQuery{Since: t0.Add(3*time.Hour + 123456*time.Microsecond)}), "alice PATCH")
	check("after", query(store.AuditQuery{After: all[1].Seq}), "carol DELETE", "alice PATCH")
	check("limit", query(store.AuditQuery{After: all[0].Seq, Limit: 2}), "bob token/create", "carol DELETE")
	check("scope and since", query(store.AuditQuery{Scopes: []resource.ID{mustID(t, subPayments)}, Since: t0.Add(time.Minute)}), "alice PATCH")
	check("newest first", query(store.AuditQuery{Newest: true, Limit: 2}), "alice PATCH", "carol DELETE")
	check("newest, next page", query(store.AuditQuery{Newest: true, Limit: 2, Before: all[2].Seq}), "bob token/create", "alice PUT")
	check("before", query(store.AuditQuery{Before: all[2].Seq}), "alice PUT", "bob token/create")

	// An entry without a time gets the time it was written.
	before := time.Now().Add(-time.Second)
	if err := s.Update(ctx, func(tx store.Tx) error {
		return tx.Audit(ctx, store.AuditEntry{Principal: "dave", Action: "PUT", ResourceID: vmAPI2})
	}); err != nil {
		t.Fatal(err)
	}
	last, err := s.AuditLog(ctx, store.AuditQuery{After: all[len(all)-1].Seq})
	if err != nil || len(last) != 1 {
		t.Fatalf("new entry: %+v %v", last, err)
	}
	if last[0].At.Before(before) || last[0].At.After(time.Now().Add(time.Second)) {
		t.Errorf("stamped At = %v, want about now", last[0].At)
	}
}

func testTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	toks := []store.Token{
		{ID: "tok-a1", PrincipalID: "alice", Hash: strings.Repeat("a", 64), Description: "laptop", CreatedBy: "admin", CreatedAt: t0},
		{ID: "tok-b1", PrincipalID: "bob", Hash: strings.Repeat("b", 64), Description: "ci", CreatedBy: "admin", CreatedAt: t0.Add(time.Minute), ExpiresAt: t0.Add(24 * time.Hour)},
		{ID: "tok-a2", PrincipalID: "alice", Hash: strings.Repeat("c", 64), Description: "server", CreatedBy: "alice", CreatedAt: t0.Add(2 * time.Minute)},
	}
	for _, tok := range toks {
		if err := s.Update(ctx, func(tx store.Tx) error { return tx.CreateToken(ctx, tok) }); err != nil {
			t.Fatalf("create %s: %v", tok.ID, err)
		}
	}
	got, err := s.TokenByHash(ctx, toks[1].Hash)
	if err != nil {
		t.Fatal(err)
	}
	if got != toks[1] {
		t.Errorf("token by hash = %+v, want %+v", got, toks[1])
	}
	if !got.Active(t0.Add(time.Hour)) || got.Active(t0.Add(25*time.Hour)) {
		t.Error("expiry did not survive the round trip")
	}
	_, err = s.TokenByHash(ctx, strings.Repeat("f", 64))
	wantErr(t, err, store.ErrNotFound, "unknown hash")

	ids := func(principal string) string {
		t.Helper()
		ts, err := s.Tokens(ctx, principal)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, tk := range ts {
			out = append(out, tk.ID)
		}
		return strings.Join(out, " ")
	}
	if got, want := ids("alice"), "tok-a1 tok-a2"; got != want {
		t.Errorf("tokens of alice = %s, want %s", got, want)
	}
	if got, want := ids(""), "tok-a1 tok-b1 tok-a2"; got != want {
		t.Errorf("all tokens = %s, want %s", got, want)
	}
	if got := ids("nobody"); got != "" {
		t.Errorf("tokens of nobody = %s", got)
	}

	// The same secret twice is refused, as is the same ID.
	dup := toks[0]
	dup.ID = "tok-dup"
	err = s.Update(ctx, func(tx store.Tx) error { return tx.CreateToken(ctx, dup) })
	if resource.CodeOf(err) != resource.CodeConflict {
		t.Errorf("duplicate hash: %v, want a %s error", err, resource.CodeConflict)
	}
	dup = toks[0]
	dup.Hash = strings.Repeat("d", 64)
	err = s.Update(ctx, func(tx store.Tx) error { return tx.CreateToken(ctx, dup) })
	if resource.CodeOf(err) != resource.CodeConflict {
		t.Errorf("duplicate ID: %v, want a %s error", err, resource.CodeConflict)
	}

	revokedAt := t0.Add(time.Hour)
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.RevokeToken(ctx, "tok-a1", revokedAt) }); err != nil {
		t.Fatal(err)
	}
	// Revoking again keeps the first time.
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.RevokeToken(ctx, "tok-a1", revokedAt.Add(time.Hour)) }); err != nil {
		t.Fatal(err)
	}
	got, err = s.TokenByHash(ctx, toks[0].Hash)
	if err != nil {
		t.Fatal(err)
	}
	if !got.RevokedAt.Equal(revokedAt) || got.Active(revokedAt.Add(time.Second)) {
		t.Errorf("revoked token = %+v, want revoked at %v", got, revokedAt)
	}
	err = s.Update(ctx, func(tx store.Tx) error { return tx.RevokeToken(ctx, "tok-none", revokedAt) })
	wantErr(t, err, store.ErrNotFound, "revoke unknown token")
	if got := ids("alice"); got != "tok-a1 tok-a2" {
		t.Errorf("a revoked token left the list: %s", got)
	}
}

// testConcurrentWriters has 8 goroutines increment one counter 50 times each with
// read-modify-write. Reading outside the transaction races with the others, and If-Match
// must catch every race; reading inside it cannot race, since writers are serialised.
func testConcurrentWriters(t *testing.T, s store.Store, readInside bool) {
	const workers, increments = 8, 50
	ctx := context.Background()
	mustPut(t, s, newResource(t, vmAPI1, `{"n":0}`))
	id := mustID(t, vmAPI1)
	count := func(r *resource.Resource) (int, error) {
		var p struct{ N int }
		if err := json.Unmarshal(r.Properties, &p); err != nil {
			return 0, fmt.Errorf("decode %s: %w", r.Properties, err)
		}
		return p.N, nil
	}
	var conflicts, successes atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done := 0; done < increments; {
				var seen *resource.Resource
				if !readInside {
					var err error
					if seen, err = s.Get(ctx, id); err != nil {
						errs <- err
						return
					}
				}
				err := s.Update(ctx, func(tx store.Tx) error {
					cur := seen
					if readInside {
						var err error
						if cur, err = tx.Get(ctx, id); err != nil {
							return err
						}
					}
					n, err := count(cur)
					if err != nil {
						return err
					}
					next := newResource(t, vmAPI1, fmt.Sprintf(`{"n":%d}`, n+1))
					_, _, err = tx.Put(ctx, next, store.Precondition{IfMatch: cur.ETag})
					return err
				})
				switch {
				case errors.Is(err, store.ErrPrecondition):
					conflicts.Add(1)
				case err != nil:
					errs <- err
					return
				default:
					successes.Add(1)
					done++
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	final, err := s.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	n, err := count(final)
	if err != nil {
		t.Fatal(err)
	}
	if int64(n) != successes.Load() || n != workers*increments {
		t.Errorf("counter = %d after %d successful increments (want %d): an update was lost", n, successes.Load(), workers*increments)
	}
	if readInside && conflicts.Load() != 0 {
		t.Errorf("%d conflicts when reading inside the transaction; writers are not serialised", conflicts.Load())
	}
	if !readInside && conflicts.Load() == 0 {
		t.Error("no conflicts when reading outside the transaction: If-Match never caught a race")
	}
	t.Logf("%d increments, %d conflicts", successes.Load(), conflicts.Load())

	changes := allChanges(t, s)
	checkGapFree(t, s, changes)
	if got, want := len(changes), workers*increments+1; got != want {
		t.Errorf("%d changes for %d successful writes", got, want)
	}
	if last := changes[len(changes)-1]; last.ETag != final.ETag {
		t.Errorf("last change has ETag %s, the resource %s", last.ETag, final.ETag)
	}
}
