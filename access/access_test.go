package access

import (
	"strings"
	"testing"

	"github.com/gildhq/gild/resource"
)

func TestMatchAction(t *testing.T) {
	cases := []struct {
		pattern, action string
		want            bool
	}{
		{"*", "Microsoft.Compute/virtualMachines/write", true},
		{"*/read", "Microsoft.Compute/virtualMachines/read", true},
		{"*/read", "Microsoft.Compute/virtualMachines/write", false},
		{"*/READ", "microsoft.compute/virtualmachines/read", true},
		{"Microsoft.Compute/galleries/*", "Microsoft.Compute/galleries/images/versions/write", true},
		{"Microsoft.Compute/galleries/*", "Microsoft.Compute/virtualMachines/write", false},
		{"Microsoft.Authorization/*/write", "Microsoft.Authorization/policyAssignments/write", true},
		{"Microsoft.Authorization/*/write", "Microsoft.Authorization/policyAssignments/delete", false},
		{"Gild.Audit/*", "Gild.Audit/events/read", true},
		{"Microsoft.Compute/virtualMachines/read", "Microsoft.Compute/virtualMachines/read", true},
		{"Microsoft.Compute/virtualMachines/read", "Microsoft.Compute/virtualMachines/readx", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
	}
	for _, c := range cases {
		if got := matchAction(c.pattern, c.action); got != c.want {
			t.Errorf("matchAction(%q, %q) = %v, want %v", c.pattern, c.action, got, c.want)
		}
	}
}

func TestBuiltInRoles(t *testing.T) {
	vmWrite := Action("Microsoft.Compute/virtualMachines", VerbWrite)
	vmRead := Action("Microsoft.Compute/virtualMachines", VerbRead)
	raWrite := Action(resource.TypeRoleAssignment, VerbWrite)
	galleryWrite := Action("Microsoft.Compute/galleries/images/versions", VerbWrite)
	policyWrite := Action("Microsoft.Authorization/policyAssignments", VerbWrite)
	cases := []struct {
		role   string
		action string
		want   bool
	}{
		{"Owner", raWrite, true}, {"Owner", ActionAuditRead, true},
		{"Contributor", vmWrite, true}, {"Contributor", raWrite, false}, {"Contributor", ActionAuditRead, false},
		{"Contributor", policyWrite, true},
		{"Reader", vmRead, true}, {"Reader", vmWrite, false}, {"Reader", ActionAuditRead, false}, {"Reader", ActionTokenRead, false},
		{"Image Publisher", galleryWrite, true}, {"Image Publisher", vmWrite, false}, {"Image Publisher", vmRead, true},
		{"Image Publisher", Action("Microsoft.VirtualMachineImages/imageTemplates", VerbDelete), true},
		{"Policy Contributor", policyWrite, true}, {"Policy Contributor", vmWrite, false}, {"Policy Contributor", raWrite, false},
	}
	for _, c := range cases {
		r, err := LookupRole(c.role)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Permits(c.action); got != c.want {
			t.Errorf("%s permits %s = %v, want %v", c.role, c.action, got, c.want)
		}
	}
}

func TestLookupRole(t *testing.T) {
	for _, ref := range []string{"Reader", "reader", "/providers/Microsoft.Authorization/roleDefinitions/Reader",
		"/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"} {
		r, err := LookupRole(ref)
		if err != nil || r.Name != "Reader" {
			t.Errorf("LookupRole(%q) = %v, %v", ref, r, err)
		}
	}
	_, err := LookupRole("Boss")
	if err == nil || !strings.Contains(err.Error(), "Owner, Contributor, Reader") {
		t.Errorf("unknown role: %v", err)
	}
}

func assignment(t *testing.T, scope, role, principal string) Assignment {
	t.Helper()
	r, err := LookupRole(role)
	if err != nil {
		t.Fatal(err)
	}
	s := resource.MustParse(scope)
	return Assignment{ID: s.Child(resource.TypeRoleAssignment, principal), Scope: s, PrincipalID: principal, Role: r}
}

func TestGrants(t *testing.T) {
	tree := resource.NewHierarchy()
	if err := tree.SetGroup("corp", resource.Root); err != nil {
		t.Fatal(err)
	}
	tree.SetSubscription("payments", resource.ManagementGroupID("corp"))
	tree.SetSubscription("search", resource.Root)
	g := NewGrants(tree, []Assignment{
		assignment(t, "/subscriptions/payments", "Reader", "pay"),
		assignment(t, "/providers/Microsoft.Management/managementGroups/corp", "Contributor", "corp-admin"),
		assignment(t, "/subscriptions/search/resourceGroups/rg", "Owner", "rg-owner"),
	})
	vmPay := resource.MustParse("/subscriptions/payments/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/a")
	vmSearch := resource.MustParse("/subscriptions/search/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/b")
	read := Action("Microsoft.Compute/virtualMachines", VerbRead)
	write := Action("Microsoft.Compute/virtualMachines", VerbWrite)
	cases := []struct {
		principal, action string
		target            resource.ID
		want              bool
	}{
		{"pay", read, vmPay, true},
		{"PAY", read, vmPay, true}, // principals compare case-insensitively
		{"pay", write, vmPay, false},
		{"pay", read, vmSearch, false},
		{"corp-admin", write, vmPay, true}, // inherited through the group
		{"corp-admin", write, vmSearch, false},
		{"rg-owner", write, vmSearch, true},
		{"rg-owner", read, resource.MustParse("/subscriptions/search"), false},
		{"nobody", read, vmPay, false},
	}
	for _, c := range cases {
		if got := g.Allowed(c.principal, c.action, c.target); got != c.want {
			t.Errorf("Allowed(%s, %s, %s) = %v, want %v", c.principal, c.action, c.target, got, c.want)
		}
	}

	keys := func(ids []resource.ID) string {
		var s []string
		for _, id := range ids {
			s = append(s, id.Key())
		}
		return strings.Join(s, " ")
	}
	if got := keys(g.ReadScopes("pay", "", resource.Root)); got != "/subscriptions/payments" {
		t.Errorf("pay's read scopes under / = %q", got)
	}
	if got := keys(g.ReadScopes("pay", "", resource.MustParse("/subscriptions/payments/resourceGroups/prod"))); got != "/subscriptions/payments/resourcegroups/prod" {
		t.Errorf("pay's read scopes under its resource group = %q", got)
	}
	if got := g.ReadScopes("pay", "", resource.MustParse("/subscriptions/search")); got != nil {
		t.Errorf("pay's read scopes under search = %v, want none", got)
	}
	if got := keys(g.ReadScopes("corp-admin", "", resource.Root)); got != "/providers/microsoft.management/managementgroups/corp /subscriptions/payments" {
		t.Errorf("corp-admin's read scopes = %q", got)
	}
	if !g.ListableScope("rg-owner", resource.MustParse("/subscriptions/search")) || g.ListableScope("pay", resource.MustParse("/subscriptions/search")) {
		t.Error("ListableScope: a grant below a scope makes it listable, none makes it hidden")
	}
}

func TestAssignmentFromResource(t *testing.T) {
	r := &resource.Resource{ID: "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/a1",
		Properties: []byte(`{"roleDefinitionId":"/providers/Microsoft.Authorization/roleDefinitions/Owner","principalId":"p1"}`)}
	a, err := AssignmentFromResource(r)
	if err != nil || a.Role.Name != "Owner" || a.Scope.Key() != "/subscriptions/s" || a.PrincipalID != "p1" {
		t.Fatalf("got %+v, %v", a, err)
	}
	r.Properties = []byte(`{"roleDefinitionId":"Boss"}`)
	_, err = AssignmentFromResource(r)
	if err == nil || !strings.Contains(err.Error(), "principalId") || !strings.Contains(err.Error(), "Boss") {
		t.Fatalf("both problems should be reported: %v", err)
	}
}
