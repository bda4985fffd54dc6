package controlplane

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
	"github.com/gildhq/gild/store/sqlite"
)

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), sqlite.URL(filepath.Join(t.TempDir(), "gild.db")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func put(t *testing.T, s *Service, c Caller, id, body string) {
	t.Helper()
	rid := resource.MustParse(id)
	r, err := resource.DecodeBody(rid, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Put(context.Background(), c, r, store.Precondition{}); err != nil {
		t.Fatalf("put %s: %v", id, err)
	}
}

// TestTwoServersShareGrants runs two control planes on one store, as two gild servers on
// one database: a role granted through one takes effect on the other within its refresh
// interval, and so does moving a subscription in the tree.
func TestTwoServersShareGrants(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := openStore(t)
	a, err := New(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(ctx, st, Options{RefreshInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go b.Run(ctx)

	put(t, a, System, "/subscriptions/pay", `{}`)
	put(t, a, System, "/subscriptions/pay/resourceGroups/prod", `{"location":"local"}`)
	vm := resource.MustParse("/subscriptions/pay/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/v")
	put(t, a, System, vm.String(), `{"location":"local"}`)
	team := Caller{PrincipalID: "team"}
	if _, err := b.Get(ctx, team, vm); resource.CodeOf(err) != resource.CodeNotFound {
		t.Fatalf("before the grant: %v", err)
	}
	put(t, a, System, "/subscriptions/pay/providers/Microsoft.Authorization/roleAssignments/r1",
		`{"properties":{"roleDefinitionId":"Reader","principalId":"team"}}`)
	if _, err := a.Get(ctx, team, vm); err != nil {
		t.Fatalf("the granting server must apply the grant at once: %v", err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		_, err := b.Get(ctx, team, vm)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the other server never saw the grant: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A group-level grant reaches the subscription only once it is moved into the group.
	put(t, a, System, "/providers/Microsoft.Management/managementGroups/corp", `{}`)
	put(t, a, System, "/providers/Microsoft.Management/managementGroups/corp/providers/Microsoft.Authorization/roleAssignments/r2",
		`{"properties":{"roleDefinitionId":"Contributor","principalId":"corp"}}`)
	corp := Caller{PrincipalID: "corp"}
	if _, err := b.Get(ctx, corp, vm); resource.CodeOf(err) != resource.CodeNotFound {
		t.Fatalf("before the move: %v", err)
	}
	put(t, a, System, "/subscriptions/pay", `{"properties":{"managementGroupId":"/providers/Microsoft.Management/managementGroups/corp"}}`)
	for deadline := time.Now().Add(3 * time.Second); ; {
		_, err := b.Get(ctx, corp, vm)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the other server never saw the move: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTokens(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s, err := New(ctx, openStore(t), Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	var secret string
	made, err := s.Bootstrap(ctx, func(sec string) error { secret = sec; return nil })
	if err != nil || !made {
		t.Fatalf("bootstrap: %v %v", made, err)
	}
	if made, _ := s.Bootstrap(ctx, func(string) error { t.Fatal("second bootstrap saved a token"); return nil }); made {
		t.Fatal("bootstrap made a second admin token")
	}
	admin, err := s.Authenticate(ctx, secret)
	if err != nil || admin.PrincipalID != AdminPrincipal {
		t.Fatalf("admin token: %+v %v", admin, err)
	}
	put(t, s, admin, "/subscriptions/pay", `{}`)

	nt, err := s.CreateToken(ctx, admin, TokenRequest{Role: "Owner", Scope: "/subscriptions/pay", ExpiresInDays: 1})
	if err != nil {
		t.Fatal(err)
	}
	owner, err := s.Authenticate(ctx, nt.Secret)
	if err != nil {
		t.Fatal(err)
	}
	// A subscription owner may mint tokens inside its subscription, not above it, and not
	// for an existing principal (which might hold roles elsewhere).
	if _, err := s.CreateToken(ctx, owner, TokenRequest{Role: "Reader", Scope: "/subscriptions/pay"}); err != nil {
		t.Fatalf("owner minting a reader: %v", err)
	}
	if _, err := s.CreateToken(ctx, owner, TokenRequest{Role: "Reader", Scope: "/"}); resource.CodeOf(err) != resource.CodeAuthorizationFailed && resource.CodeOf(err) != resource.CodeNotFound {
		t.Fatalf("owner minting above its scope: %v", err)
	}
	if _, err := s.CreateToken(ctx, owner, TokenRequest{PrincipalID: AdminPrincipal}); resource.CodeOf(err) != resource.CodeAuthorizationFailed {
		t.Fatalf("owner minting a token for admin: %v", err)
	}
	// Expiry and revocation.
	now = now.Add(25 * time.Hour)
	if _, err := s.Authenticate(ctx, nt.Secret); !ErrUnauthenticated(err) {
		t.Fatalf("expired token still works: %v", err)
	}
	now = now.Add(-25 * time.Hour)
	if err := s.RevokeToken(ctx, admin, nt.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, nt.Secret); !ErrUnauthenticated(err) {
		t.Fatalf("revoked token still works: %v", err)
	}
	list, err := s.Tokens(ctx, admin)
	if err != nil || len(list) != 3 {
		t.Fatalf("admin sees %d tokens, want 3: %v", len(list), err)
	}
	for _, ti := range list {
		if ti.ID == nt.ID && ti.RevokedAt == nil {
			t.Fatal("revocation not shown")
		}
	}
}
