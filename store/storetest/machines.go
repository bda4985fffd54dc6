package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

var testMachineCases = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"Machines", testMachines},
	{"MachineEvents", testMachineEvents},
	{"EnrollmentTokens", testEnrollmentTokens},
}

const vmA = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/a"

func testMachines(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.Machine(ctx, vmA); !store.IsNotFound(err) {
		t.Fatalf("missing machine: err %v, want not found", err)
	}
	enrolled := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	m := store.Machine{ID: vmA, CredentialHash: "h1", EnrolledAt: enrolled}
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.PutMachine(ctx, m) }); err != nil {
		t.Fatal(err)
	}
	got, err := s.Machine(ctx, "/SUBSCRIPTIONS/s1/resourcegroups/RG/providers/microsoft.compute/virtualmachines/A")
	if err != nil {
		t.Fatalf("case-insensitive get: %v", err)
	}
	if got.ID != vmA || got.CredentialHash != "h1" || !got.EnrolledAt.Equal(enrolled) || got.Report != nil || !got.LastSeen.IsZero() {
		t.Fatalf("got %+v", got)
	}
	seen := enrolled.Add(time.Minute)
	m.LastSeen, m.LastReportID, m.LastReportAt, m.Report = seen, "r1", seen.Add(-time.Second), []byte(`{"id":"r1"}`)
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.PutMachine(ctx, m) }); err != nil {
		t.Fatal(err)
	}
	got, err = s.MachineByCredential(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if got.LastReportID != "r1" || string(got.Report) != `{"id":"r1"}` || !got.LastSeen.Equal(seen) || !got.LastReportAt.Equal(seen.Add(-time.Second)) {
		t.Fatalf("after report: %+v", got)
	}
	if _, err := s.MachineByCredential(ctx, "nope"); !store.IsNotFound(err) {
		t.Fatalf("unknown credential: %v", err)
	}
	// A second machine may not reuse a credential hash.
	err = s.Update(ctx, func(tx store.Tx) error {
		return tx.PutMachine(ctx, store.Machine{ID: vmA + "x", CredentialHash: "h1"})
	})
	if err == nil {
		t.Fatal("two machines with one credential hash were accepted")
	}
	for i := range 5 {
		id := fmt.Sprintf("/subscriptions/s1/resourceGroups/rg/providers/Microsoft.HybridCompute/machines/m%d", i)
		if err := s.Update(ctx, func(tx store.Tx) error {
			return tx.PutMachine(ctx, store.Machine{ID: id, CredentialHash: fmt.Sprintf("hm%d", i)})
		}); err != nil {
			t.Fatal(err)
		}
	}
	var all []store.Machine
	after := ""
	for {
		page, err := s.Machines(ctx, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		after = page[len(page)-1].ID
	}
	if len(all) != 6 {
		t.Fatalf("paged through %d machines, want 6", len(all))
	}
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.DeleteMachine(ctx, vmA) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Machine(ctx, vmA); !store.IsNotFound(err) {
		t.Fatalf("deleted machine: %v", err)
	}
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.DeleteMachine(ctx, vmA) }); err != nil {
		t.Fatalf("deleting a missing machine: %v", err)
	}
}

func testMachineEvents(t *testing.T, s store.Store) {
	ctx := context.Background()
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	other := "/subscriptions/s2/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/b"
	ev := func(machine, id string) store.MachineEvent {
		return store.MachineEvent{MachineID: machine, EventID: id, At: at, Kind: "Correction", Assignment: "ssh", Check: "PermitRootLogin",
			Target: "/etc/ssh/sshd_config PermitRootLogin", Before: "yes", After: "no"}
	}
	var added int
	if err := s.Update(ctx, func(tx store.Tx) (err error) {
		added, err = tx.AddMachineEvents(ctx, []store.MachineEvent{ev(vmA, "e1"), ev(vmA, "e2"), ev(other, "e1")})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if added != 3 {
		t.Fatalf("added %d, want 3", added)
	}
	// A resent report carries the same events again: nothing is added twice.
	if err := s.Update(ctx, func(tx store.Tx) (err error) {
		added, err = tx.AddMachineEvents(ctx, []store.MachineEvent{ev(vmA, "e2"), ev(vmA, "e3")})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if added != 1 {
		t.Fatalf("added %d on resend, want 1", added)
	}
	got, err := s.MachineEvents(ctx, store.MachineEventQuery{Machine: vmA})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].EventID != "e3" || got[2].EventID != "e1" || got[0].Seq <= got[1].Seq {
		t.Fatalf("events of a, newest first: %+v", got)
	}
	if e := got[2]; e.Before != "yes" || e.After != "no" || e.Target == "" || !e.At.Equal(at) || e.MachineID != vmA {
		t.Fatalf("event round trip: %+v", e)
	}
	under, err := s.MachineEvents(ctx, store.MachineEventQuery{Scopes: []string{"/subscriptions/S2"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(under) != 1 || under[0].MachineID != other {
		t.Fatalf("events under s2: %+v", under)
	}
	// "/subscriptions/s1" must not match "/subscriptions/s10...".
	none, err := s.MachineEvents(ctx, store.MachineEventQuery{Scopes: []string{"/subscriptions/s"}})
	if err != nil || len(none) != 0 {
		t.Fatalf("events under a prefix that is no scope: %+v %v", none, err)
	}
	page, err := s.MachineEvents(ctx, store.MachineEventQuery{Machine: vmA, Before: got[0].Seq, Limit: 1})
	if err != nil || len(page) != 1 || page[0].EventID != "e2" {
		t.Fatalf("page before %d: %+v %v", got[0].Seq, page, err)
	}
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.DeleteMachine(ctx, vmA) }); err != nil {
		t.Fatal(err)
	}
	if left, _ := s.MachineEvents(ctx, store.MachineEventQuery{Machine: vmA}); len(left) != 0 {
		t.Fatalf("events outlived their machine: %+v", left)
	}
}

func testEnrollmentTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	if err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.CreateEnrollmentToken(ctx, store.EnrollmentToken{Hash: "t1", Target: vmA, CreatedBy: "system", ExpiresAt: now.Add(time.Hour)}); err != nil {
			return err
		}
		return tx.CreateEnrollmentToken(ctx, store.EnrollmentToken{Hash: "t2", Target: vmA, ExpiresAt: now.Add(-time.Second)})
	}); err != nil {
		t.Fatal(err)
	}
	use := func(hash string) (store.EnrollmentToken, error) {
		var tok store.EnrollmentToken
		err := s.Update(ctx, func(tx store.Tx) (err error) {
			tok, err = tx.UseEnrollmentToken(ctx, hash, now)
			return err
		})
		return tok, err
	}
	tok, err := use("t1")
	if err != nil {
		t.Fatal(err)
	}
	if tok.Target != vmA || !tok.UsedAt.Equal(now) {
		t.Fatalf("used token: %+v", tok)
	}
	var rerr *resource.Error
	if _, err := use("t1"); !errors.As(err, &rerr) || rerr.Code != resource.CodeConflict {
		t.Fatalf("second use: %v, want a conflict", err)
	}
	if _, err := use("t2"); !errors.As(err, &rerr) || rerr.Code != resource.CodeConflict {
		t.Fatalf("expired token: %v, want a conflict", err)
	}
	if _, err := use("t3"); !store.IsNotFound(err) {
		t.Fatalf("unknown token: %v", err)
	}
	// A failed transaction leaves the token unused.
	if err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.CreateEnrollmentToken(ctx, store.EnrollmentToken{Hash: "t4", Target: vmA}); err != nil {
			return err
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := s.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.UseEnrollmentToken(ctx, "t4", now); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if _, err := use("t4"); err != nil {
		t.Fatalf("a rolled-back use still counted: %v", err)
	}
}
