package compliance

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
	"github.com/gildhq/gild/store/sqlite"
)

// TestFollowsOtherServers checks that an assignment written through another server on the
// same store reaches this server's catalog without a restart.
func TestFollowsOtherServers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, sqlite.URL(filepath.Join(t.TempDir(), "gild.db")))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tree := resource.NewHierarchy()
	svc, err := NewService(ctx, New(Options{}), st, func() *resource.Hierarchy { return tree })
	if err != nil {
		t.Fatal(err)
	}
	go svc.Run(ctx)
	if n := len(svc.Engine.AssignmentScopes()); n != 0 {
		t.Fatalf("%d assignments before any was written", n)
	}
	props, _ := json.Marshal(map[string]any{"policyDefinitionId": "/providers/Microsoft.Authorization/policyDefinitions/gild-service-model-tag"})
	id := resource.SubscriptionID("s").Child(TypeAssignment, "a")
	// Written straight to the store, as another server's control plane would.
	err = st.Update(ctx, func(tx store.Tx) error {
		_, _, err := tx.Put(ctx, &resource.Resource{ID: id.String(), Name: "a", Type: TypeAssignment, Properties: props}, store.Precondition{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); len(svc.Engine.AssignmentScopes()) != 1; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the assignment written elsewhere never reached the catalog")
		}
	}
}
