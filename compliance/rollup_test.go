package compliance

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
	"github.com/gildhq/gild/store/sqlite"
)

func rollupStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), sqlite.URL(filepath.Join(t.TempDir(), "gild.db")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func writeStates(t *testing.T, st store.Store, at time.Time, states ...store.PolicyState) {
	t.Helper()
	err := st.Update(context.Background(), func(tx store.Tx) error {
		for _, s := range states {
			s.EvaluatedAt = at
			if s.Effect == "" {
				s.Effect = "audit"
			}
			var assignments []string
			if s.AssignmentID != "" {
				assignments = []string{s.AssignmentID}
			}
			var keep []store.PolicyState
			if s.State != "" {
				keep = []store.PolicyState{s}
			}
			if _, err := tx.ReplacePolicyStates(context.Background(), []string{s.ResourceID}, assignments, keep); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func vmID(sub, rg, name string) string {
	return resource.ResourceGroupID(sub, rg).Child("Microsoft.Compute/virtualMachines", name).String()
}

func groupByID(gs []Group, id string) *Group {
	for i := range gs {
		if gs[i].ID == id {
			return &gs[i]
		}
	}
	return nil
}

func TestRollupOverview(t *testing.T) {
	st := rollupStore(t)
	ctx := context.Background()
	const (
		tags  = "/providers/Microsoft.Management/managementGroups/corp/providers/Microsoft.Authorization/policyAssignments/tags"
		set   = "/providers/Microsoft.Management/managementGroups/corp/providers/Microsoft.Authorization/policyAssignments/baseline"
		tagD  = "/providers/Microsoft.Authorization/policyDefinitions/tag"
		setD  = "/providers/Microsoft.Authorization/policySetDefinitions/baseline"
		imgD  = "/providers/Microsoft.Authorization/policyDefinitions/image"
		sshD  = "/providers/Microsoft.Authorization/policyDefinitions/ssh"
		dayNs = 24 * time.Hour
	)
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	api1, api2, web1 := vmID("payments", "prod", "api-1"), vmID("payments", "dev", "api-2"), vmID("retail", "web", "web-1")
	ps := func(id, assignment, def, ref, state string) store.PolicyState {
		return store.PolicyState{ResourceID: id, ResourceType: "Microsoft.Compute/virtualMachines", AssignmentID: assignment, DefinitionID: def, ReferenceID: ref, State: state}
	}
	// Ten days ago everything was compliant; three days ago api-1 drifted on ssh.
	writeStates(t, st, now.Add(-10*dayNs),
		ps(api1, tags, tagD, "", "Compliant"), ps(api2, tags, tagD, "", "Compliant"), ps(web1, tags, tagD, "", "Compliant"))
	err := st.Update(ctx, func(tx store.Tx) error {
		for _, id := range []string{api1, api2, web1} {
			if _, err := tx.ReplacePolicyStates(ctx, []string{id}, []string{set}, []store.PolicyState{
				{ResourceID: id, AssignmentID: set, DefinitionID: imgD, SetDefinitionID: setD, ReferenceID: "image", State: "Compliant", Effect: "audit", EvaluatedAt: now.Add(-10 * dayNs)},
				{ResourceID: id, AssignmentID: set, DefinitionID: sshD, SetDefinitionID: setD, ReferenceID: "ssh", State: "Compliant", Effect: "audit", EvaluatedAt: now.Add(-10 * dayNs)},
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = st.Update(ctx, func(tx store.Tx) error {
		_, err := tx.ReplacePolicyStates(ctx, []string{api1}, []string{set}, []store.PolicyState{
			{ResourceID: api1, AssignmentID: set, DefinitionID: imgD, ReferenceID: "image", State: "Compliant", Effect: "audit", EvaluatedAt: now.Add(-3 * dayNs)},
			{ResourceID: api1, AssignmentID: set, DefinitionID: sshD, ReferenceID: "ssh", State: "NonCompliant", Effect: "audit", EvaluatedAt: now.Add(-3 * dayNs)},
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	r := NewRollup(st)
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	tree := resource.NewHierarchy()
	tree.SetSubscription("payments", resource.ManagementGroupID("corp"))
	tree.SetSubscription("retail", resource.ManagementGroupID("corp"))
	view := RollupView{Tree: tree, Initiatives: map[string]string{strings.ToLower(set): setD}, Now: now, Days: 30}
	o := r.Overview(view)
	if o.Overall.Total != 3 || o.Overall.NonCompliantResources != 1 {
		t.Fatalf("overall = %+v, want 3 resources, 1 non-compliant", o.Overall)
	}
	if o.Overall.CompliancePercentage != 66.67 {
		t.Errorf("overall percentage = %v, want 66.67", o.Overall.CompliancePercentage)
	}
	if o.Policies != 3 || o.NonCompliantPolicies != 1 {
		t.Errorf("policies = %d (%d non-compliant), want 3 (1)", o.Policies, o.NonCompliantPolicies)
	}
	if g := groupByID(o.Assignments, set); g == nil || g.NonCompliantResources != 1 || g.Total != 3 {
		t.Errorf("baseline assignment = %+v", g)
	}
	if g := groupByID(o.Assignments, tags); g == nil || g.CompliancePercentage != 100 {
		t.Errorf("tags assignment = %+v", g)
	}
	if len(o.Initiatives) != 1 || o.Initiatives[0].ID != setD || o.Initiatives[0].NonCompliantResources != 1 {
		t.Errorf("initiatives = %+v", o.Initiatives)
	}
	if g := groupByID(o.PolicyGroups, set+"#ssh"); g == nil || g.NonCompliantResources != 1 || g.DefinitionID != sshD {
		t.Errorf("ssh policy = %+v", g)
	}
	if g := groupByID(o.Subscriptions, "/subscriptions/payments"); g == nil || g.Total != 2 || g.CompliancePercentage != 50 {
		t.Errorf("payments = %+v", g)
	}
	if g := groupByID(o.ResourceGroups, "/subscriptions/payments/resourceGroups/prod"); g == nil || g.CompliancePercentage != 0 {
		t.Errorf("payments/prod = %+v", g)
	}
	if g := groupByID(o.ManagementGroups, "/providers/Microsoft.Management/managementGroups/corp"); g == nil || g.Total != 3 {
		t.Errorf("corp = %+v", g)
	}
	// The worst group comes first.
	if o.ResourceGroups[0].ID != "/subscriptions/payments/resourceGroups/prod" {
		t.Errorf("resource groups are not worst first: %+v", o.ResourceGroups)
	}
	// The trend: nothing 30 days ago, 100 % ten days ago, 66.67 % from three days ago.
	if len(o.Trend) != 30 {
		t.Fatalf("trend has %d points, want 30", len(o.Trend))
	}
	for _, p := range o.Trend {
		age := int(now.Sub(p.Day).Hours() / 24)
		switch {
		case age > 10:
			if p.Total != 0 {
				t.Errorf("%s: %d resources before anything was evaluated", p.Day.Format(time.DateOnly), p.Total)
			}
		case age > 3:
			if p.Total != 3 || p.CompliancePercentage != 100 {
				t.Errorf("%s: %+v, want 3 resources at 100%%", p.Day.Format(time.DateOnly), p)
			}
		default:
			if p.Total != 3 || p.CompliancePercentage != 66.67 {
				t.Errorf("%s: %+v, want 3 resources at 66.67%%", p.Day.Format(time.DateOnly), p)
			}
		}
	}

	// A team that reads only retail sees web-1 only.
	team := view
	team.Scopes = []resource.ID{resource.SubscriptionID("retail")}
	o = r.Overview(team)
	if o.Overall.Total != 1 || o.Overall.NonCompliantResources != 0 || len(o.Subscriptions) != 1 || o.Subscriptions[0].Name != "retail" {
		t.Errorf("retail's view = %+v, subscriptions %+v", o.Overall, o.Subscriptions)
	}
	if got := r.Resources(team); len(got) != 1 || got[0].ID != web1 {
		t.Errorf("retail's resources = %+v", got)
	}
	// A grant on one VM sees that VM; the trend leaves its bucket out and says so.
	one := view
	one.Scopes = []resource.ID{mustParse(t, api1)}
	o = r.Overview(one)
	if o.Overall.Total != 1 || o.Overall.NonCompliantResources != 1 || !o.TrendPartial {
		t.Errorf("one VM's view = %+v (trend partial %v)", o.Overall, o.TrendPartial)
	}
	// Within narrows: the payments subscription only.
	within := view
	within.Within = resource.SubscriptionID("payments")
	if o = r.Overview(within); o.Overall.Total != 2 {
		t.Errorf("within payments: %d resources, want 2", o.Overall.Total)
	}
	within.Within = resource.ManagementGroupID("corp")
	if o = r.Overview(within); o.Overall.Total != 3 {
		t.Errorf("within corp: %d resources, want 3", o.Overall.Total)
	}

	// A deleted VM leaves every count; new transitions arrive with Sync.
	if err := st.Update(ctx, func(tx store.Tx) error {
		_, err := tx.DeletePolicyStates(ctx, []string{api1})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	o = r.Overview(view)
	if o.Overall.Total != 2 || o.Overall.NonCompliantResources != 0 || o.NonCompliantPolicies != 0 {
		t.Errorf("after api-1's delete: %+v, %d non-compliant policies", o.Overall, o.NonCompliantPolicies)
	}
	if got := r.State(api1); got != "" {
		t.Errorf("deleted api-1 has state %q", got)
	}
	if got := r.State(api2); got != "Compliant" {
		t.Errorf("api-2 has state %q, want Compliant", got)
	}
}

func mustParse(t *testing.T, s string) resource.ID {
	t.Helper()
	id, err := resource.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
