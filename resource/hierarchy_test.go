package resource_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/gildhq/gild/resource"
)

func mgID(name string) string { return "/providers/Microsoft.Management/managementGroups/" + name }

// tree builds:
//
//	/ ── Contoso ── Platform ── Prod ── payments
//	   │                     └─ shared
//	   └─ sandbox                       (a subscription directly under the root)
func tree(t *testing.T) *resource.Hierarchy {
	t.Helper()
	h := resource.NewHierarchy()
	for _, g := range []struct{ name, parent string }{
		{"Contoso", "/"},
		{"Platform", mgID("contoso")}, // the parent in another case
		{"Prod", mgID("Platform")},
	} {
		if err := h.SetGroup(g.name, resource.MustParse(g.parent)); err != nil {
			t.Fatalf("SetGroup(%s): %v", g.name, err)
		}
	}
	h.SetSubscription("payments", resource.ManagementGroupID("prod"))
	h.SetSubscription("shared", resource.ManagementGroupID("Platform"))
	h.SetSubscription("sandbox", resource.Root)
	return h
}

// TestHierarchyAncestors checks that every ancestor is listed, nearest first, in the
// spelling the groups were set with, ending with "/" exactly once.
func TestHierarchyAncestors(t *testing.T) {
	h := tree(t)
	tests := []struct {
		id   string
		want []string
	}{
		{"/", nil},
		{"/subscriptions/payments/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/api-1", []string{
			"/subscriptions/payments/resourceGroups/prod", "/subscriptions/payments",
			mgID("Prod"), mgID("Platform"), mgID("Contoso"), "/",
		}},
		{"/SUBSCRIPTIONS/PAYMENTS", []string{mgID("Prod"), mgID("Platform"), mgID("Contoso"), "/"}},
		{"/subscriptions/shared/resourceGroups/rg", []string{"/subscriptions/shared", mgID("Platform"), mgID("Contoso"), "/"}},
		{"/subscriptions/sandbox", []string{"/"}},
		{"/subscriptions/unknown", []string{"/"}},
		{mgID("prod"), []string{mgID("Platform"), mgID("Contoso"), "/"}},
		{mgID("Contoso"), []string{"/"}},
		{mgID("Prod") + "/providers/Microsoft.Authorization/policyAssignments/a", []string{mgID("Prod"), mgID("Platform"), mgID("Contoso"), "/"}},
		// A tenant-level resource: its own scope is the root, listed once.
		{"/providers/Microsoft.Authorization/policyDefinitions/p", []string{"/"}},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			if got := ids(h.Ancestors(resource.MustParse(tt.id))); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Ancestors =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// TestHierarchyContains checks containment through the management-group tree.
func TestHierarchyContains(t *testing.T) {
	h := tree(t)
	vm := "/subscriptions/payments/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/api-1"
	tests := []struct {
		scope, other string
		want         bool
	}{
		{mgID("Contoso"), vm, true},
		{mgID("CONTOSO"), vm, true},
		{mgID("Platform"), vm, true},
		{mgID("Prod"), vm, true},
		{mgID("Prod"), "/subscriptions/payments", true},
		{mgID("Contoso"), mgID("Prod"), true},
		{mgID("Prod"), mgID("Prod"), true},
		{mgID("Prod"), mgID("Prod") + "/providers/Microsoft.Authorization/policyAssignments/a", true},
		{"/", vm, true},
		{"/subscriptions/payments", vm, true},
		{mgID("Prod"), "/subscriptions/shared", false},
		{mgID("Prod"), mgID("Platform"), false},
		{mgID("Contoso"), "/subscriptions/sandbox", false},
		{mgID("Contoso"), "/providers/Microsoft.Authorization/policyDefinitions/p", false},
		{"/subscriptions/pay", "/subscriptions/payments", false},
		{"/subscriptions/shared", vm, false},
	}
	for _, tt := range tests {
		t.Run(tt.scope+" ⊇ "+tt.other, func(t *testing.T) {
			if got := h.Contains(resource.MustParse(tt.scope), resource.MustParse(tt.other)); got != tt.want {
				t.Errorf("Contains = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestHierarchyExpand checks that a group expands to itself, its descendant groups and
// their subscriptions, and that other scopes expand to themselves.
func TestHierarchyExpand(t *testing.T) {
	h := tree(t)
	tests := []struct {
		scope string
		want  []string
	}{
		{mgID("contoso"), []string{mgID("contoso"), mgID("Platform"), mgID("Prod"), "/subscriptions/payments", "/subscriptions/shared"}},
		{mgID("Platform"), []string{mgID("Platform"), mgID("Prod"), "/subscriptions/payments", "/subscriptions/shared"}},
		{mgID("Prod"), []string{mgID("Prod"), "/subscriptions/payments"}},
		{mgID("empty"), []string{mgID("empty")}},
		{"/", []string{"/"}},
		{"/subscriptions/payments", []string{"/subscriptions/payments"}},
		{"/subscriptions/payments/resourceGroups/rg", []string{"/subscriptions/payments/resourceGroups/rg"}},
	}
	for _, tt := range tests {
		t.Run(tt.scope, func(t *testing.T) {
			if got := ids(h.Expand(resource.MustParse(tt.scope))); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Expand =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// TestHierarchyChildren lists what lies directly under each group.
func TestHierarchyChildren(t *testing.T) {
	h := tree(t)
	tests := []struct {
		group  string
		groups []string
		subs   []string
	}{
		{"/", []string{"Contoso"}, []string{"sandbox"}},
		{mgID("contoso"), []string{"Platform"}, nil},
		{mgID("PLATFORM"), []string{"Prod"}, []string{"shared"}},
		{mgID("Prod"), nil, []string{"payments"}},
		{mgID("nothing"), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.group, func(t *testing.T) {
			groups, subs := h.Children(resource.MustParse(tt.group))
			if !reflect.DeepEqual(groups, tt.groups) || !reflect.DeepEqual(subs, tt.subs) {
				t.Errorf("Children = %q, %q; want %q, %q", groups, subs, tt.groups, tt.subs)
			}
		})
	}
}

// TestHierarchySetGroupRefuses checks the refusals: cycles, depth, bad names, bad parents.
// A refused change must leave the tree as it was.
func TestHierarchySetGroupRefuses(t *testing.T) {
	tests := []struct {
		name    string
		group   string
		parent  string
		code    string
		mention string
	}{
		{"self", "Contoso", mgID("contoso"), resource.CodeInvalidRequestContent, "cycle"},
		{"under own child", "Contoso", mgID("Platform"), resource.CodeInvalidRequestContent, "cycle"},
		{"under own grandchild", "platform", mgID("PROD"), resource.CodeInvalidRequestContent, "cycle"},
		{"parent is a subscription", "x", "/subscriptions/payments", resource.CodeInvalidRequestContent, "must be a management group or the root, not subscription"},
		{"parent is a resource", "x", mgID("Prod") + "/providers/Microsoft.Authorization/policyAssignments/a", resource.CodeInvalidRequestContent, "not resource"},
		{"empty name", "", "/", resource.CodeInvalidParameter, "needs a name"},
		{"bad name", "a/b", "/", resource.CodeInvalidParameter, "'/'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tree(t)
			before := snapshot(h)
			err := h.SetGroup(tt.group, resource.MustParse(tt.parent))
			if err == nil {
				t.Fatal("SetGroup = nil, want an error")
			}
			if c := resource.CodeOf(err); c != tt.code {
				t.Errorf("code = %q, want %q", c, tt.code)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
			if after := snapshot(h); after != before {
				t.Errorf("a refused SetGroup changed the tree:\n%s\nto\n%s", before, after)
			}
		})
	}
}

// TestHierarchyDepth checks MaxGroupDepth exactly: a chain of MaxGroupDepth groups under
// the root is allowed, one more is not, whether added at the bottom or by hanging an
// existing subtree under a deeper parent.
func TestHierarchyDepth(t *testing.T) {
	h := resource.NewHierarchy()
	parent := resource.Root
	for i := 1; i <= resource.MaxGroupDepth; i++ {
		name := fmt.Sprintf("g%d", i)
		if err := h.SetGroup(name, parent); err != nil {
			t.Fatalf("level %d: %v", i, err)
		}
		parent = resource.ManagementGroupID(name)
	}
	err := h.SetGroup("too-deep", parent)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%d levels deep; at most %d", resource.MaxGroupDepth+1, resource.MaxGroupDepth)) {
		t.Errorf("level %d: SetGroup = %v, want a depth error", resource.MaxGroupDepth+1, err)
	}

	// A two-level subtree fits under level MaxGroupDepth-2 but not under MaxGroupDepth-1.
	if err := h.SetGroup("sub-top", resource.Root); err != nil {
		t.Fatal(err)
	}
	if err := h.SetGroup("sub-bottom", resource.ManagementGroupID("sub-top")); err != nil {
		t.Fatal(err)
	}
	if err := h.SetGroup("sub-top", resource.ManagementGroupID(fmt.Sprintf("g%d", resource.MaxGroupDepth-2))); err != nil {
		t.Errorf("moving a 2-level subtree to level %d: %v", resource.MaxGroupDepth-1, err)
	}
	if err := h.SetGroup("sub-top", resource.ManagementGroupID(fmt.Sprintf("g%d", resource.MaxGroupDepth-1))); err == nil {
		t.Errorf("moving a 2-level subtree below level %d was allowed", resource.MaxGroupDepth-1)
	}
	// Moving a group within its own level does not count it twice.
	if err := h.SetGroup(fmt.Sprintf("g%d", resource.MaxGroupDepth), resource.ManagementGroupID(fmt.Sprintf("g%d", resource.MaxGroupDepth-1))); err != nil {
		t.Errorf("re-setting the deepest group where it is: %v", err)
	}
}

// TestHierarchyMoves checks moving a subscription and a group, and removal.
func TestHierarchyMoves(t *testing.T) {
	h := tree(t)
	vm := resource.MustParse("/subscriptions/payments/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/api-1")

	// Move payments from Prod to Contoso (named in another case).
	h.SetSubscription("PAYMENTS", resource.ManagementGroupID("CONTOSO"))
	if h.Contains(resource.ManagementGroupID("Prod"), vm) {
		t.Error("Prod still contains the VM after its subscription moved")
	}
	if !h.Contains(resource.ManagementGroupID("Contoso"), vm) {
		t.Error("Contoso does not contain the VM after its subscription moved there")
	}
	if _, subs := h.Children(resource.ManagementGroupID("Prod")); len(subs) != 0 {
		t.Errorf("Prod still lists %q", subs)
	}
	// The latest spelling of the subscription is the one shown.
	if _, subs := h.Children(resource.ManagementGroupID("Contoso")); !reflect.DeepEqual(subs, []string{"PAYMENTS"}) {
		t.Errorf("Contoso lists %q", subs)
	}
	// The group keeps the spelling SetGroup gave it, not the one a reference used.
	if got := ids(h.Ancestors(resource.SubscriptionID("payments"))); !reflect.DeepEqual(got, []string{mgID("Contoso"), "/"}) {
		t.Errorf("Ancestors after the move = %q", got)
	}

	// Move the Prod group to the root: its ancestors shrink.
	if err := h.SetGroup("prod", resource.Root); err != nil {
		t.Fatal(err)
	}
	if got := ids(h.Ancestors(resource.ManagementGroupID("Prod"))); !reflect.DeepEqual(got, []string{"/"}) {
		t.Errorf("Ancestors of Prod at the root = %q", got)
	}
	if groups, _ := h.Children(resource.Root); !reflect.DeepEqual(groups, []string{"Contoso", "prod"}) {
		t.Errorf("root's groups = %q", groups)
	}

	h.RemoveSubscription("payments")
	if h.Contains(resource.ManagementGroupID("Contoso"), vm) {
		t.Error("a removed subscription is still in its group")
	}
	h.RemoveGroup("PROD")
	if groups, _ := h.Children(resource.Root); !reflect.DeepEqual(groups, []string{"Contoso"}) {
		t.Errorf("root's groups after removing Prod = %q", groups)
	}
}

// TestHierarchyZeroValue: the doc says the zero value is an empty tree; it must accept
// changes without a nil-map panic.
func TestHierarchyZeroValue(t *testing.T) {
	var h resource.Hierarchy
	if got := ids(h.Ancestors(resource.SubscriptionID("s"))); !reflect.DeepEqual(got, []string{"/"}) {
		t.Errorf("Ancestors in an empty tree = %q", got)
	}
	if err := h.SetGroup("g", resource.Root); err != nil {
		t.Fatal(err)
	}
	h.SetSubscription("s", resource.ManagementGroupID("g"))
	if got := ids(h.Ancestors(resource.SubscriptionID("s"))); !reflect.DeepEqual(got, []string{mgID("g"), "/"}) {
		t.Errorf("Ancestors = %q", got)
	}
	var h2 resource.Hierarchy
	h2.SetSubscription("s", resource.Root)
	if _, subs := h2.Children(resource.Root); !reflect.DeepEqual(subs, []string{"s"}) {
		t.Errorf("Children = %q", subs)
	}
}

// TestHierarchyClone: changing a clone leaves the original alone.
func TestHierarchyClone(t *testing.T) {
	h := tree(t)
	before := snapshot(h)
	c := h.Clone()
	if snapshot(c) != before {
		t.Fatalf("clone differs:\n%s\n%s", snapshot(c), before)
	}
	if err := c.SetGroup("Prod", resource.Root); err != nil {
		t.Fatal(err)
	}
	c.SetSubscription("new", resource.ManagementGroupID("Contoso"))
	if snapshot(h) != before {
		t.Errorf("changing the clone changed the original:\n%s", snapshot(h))
	}
}

// TestGroupRefs checks reading a group's parent and a subscription's group from their
// properties.
func TestGroupRefs(t *testing.T) {
	tests := []struct {
		name    string
		props   string
		read    func(*resource.Resource) (resource.ID, error)
		want    string
		wantErr string // target of the expected error
	}{
		{"parent", `{"details":{"parent":{"id":"` + mgID("top") + `"}}}`, resource.ParentGroupOf, mgID("top"), ""},
		{"parent in another case", `{"Details":{"Parent":{"ID":"` + strings.ToLower(mgID("top")) + `"}}}`, resource.ParentGroupOf, mgID("top"), ""},
		{"parent is the root", `{"details":{"parent":{"id":"/"}}}`, resource.ParentGroupOf, "/", ""},
		{"no parent", `{}`, resource.ParentGroupOf, "/", ""},
		{"no properties", ``, resource.ParentGroupOf, "/", ""},
		{"parent is a subscription", `{"details":{"parent":{"id":"/subscriptions/s"}}}`, resource.ParentGroupOf, "/", "properties.details.parent.id"},
		{"parent is garbage", `{"details":{"parent":{"id":"top"}}}`, resource.ParentGroupOf, "/", "properties.details.parent.id"},
		{"subscription's group", `{"managementGroupId":"` + mgID("Prod") + `"}`, resource.GroupOfSubscription, mgID("Prod"), ""},
		{"subscription at the root", `{}`, resource.GroupOfSubscription, "/", ""},
		{"subscription's group is a policy", `{"managementGroupId":"` + idMGPolicy + `"}`, resource.GroupOfSubscription, "/", "properties.managementGroupId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.read(&resource.Resource{Properties: json.RawMessage(tt.props)})
			if got.String() != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("error %v", err)
				}
				return
			}
			e, ok := err.(*resource.Error)
			if !ok || e.Code != resource.CodeInvalidRequestContent || e.Target != tt.wantErr {
				t.Errorf("error = %v, want InvalidRequestContent on %s", err, tt.wantErr)
			}
		})
	}
}

// snapshot renders a tree through its public methods, for comparing trees.
func snapshot(h *resource.Hierarchy) string {
	var b strings.Builder
	var walk func(group resource.ID, depth int)
	walk = func(group resource.ID, depth int) {
		groups, subs := h.Children(group)
		for _, s := range subs {
			fmt.Fprintf(&b, "%s%s (subscription)\n", strings.Repeat("  ", depth), s)
		}
		for _, g := range groups {
			fmt.Fprintf(&b, "%s%s\n", strings.Repeat("  ", depth), g)
			if depth < 2*resource.MaxGroupDepth {
				walk(resource.ManagementGroupID(g), depth+1)
			}
		}
	}
	walk(resource.Root, 0)
	return b.String()
}
