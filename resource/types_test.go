package resource_test

import (
	"sort"
	"strings"
	"testing"

	"github.com/gildhq/gild/resource"
)

// TestCheckPlacement checks where each modelled type may and may not live.
func TestCheckPlacement(t *testing.T) {
	const rg = "/subscriptions/s/resourceGroups/rg"
	tests := []struct {
		id      string
		ok      bool
		mention []string // for refusals: substrings of the message
	}{
		// Scopes are always well placed; their shape is Parse's business.
		{id: "/", ok: true},
		{id: idMG, ok: true},
		{id: idSub, ok: true},
		{id: idRG, ok: true},
		{id: idVM, ok: true},
		{id: rg + "/providers/Microsoft.HybridCompute/machines/sap-01", ok: true},
		{id: rg + "/providers/Microsoft.VirtualMachineImages/imageTemplates/debian", ok: true},
		{id: idGallery, ok: true},
		{id: idImage, ok: true},
		{id: idVersion, ok: true},
		{id: idGuestConf, ok: true},
		{id: rg + "/providers/Microsoft.HybridCompute/machines/m/providers/Microsoft.GuestConfiguration/guestConfigurationAssignments/a", ok: true},
		{id: idTenantPol, ok: true},
		{id: idMGPolicy, ok: true},
		{id: idSubPolicy, ok: true},
		{id: "/providers/Microsoft.Authorization/policyAssignments/a", ok: true},
		{id: rg + "/providers/Microsoft.Authorization/policyAssignments/a", ok: true},
		{id: idVM + "/providers/Microsoft.Authorization/policyAssignments/a", ok: true},
		{id: idVM + "/providers/Microsoft.Authorization/policyExemptions/e", ok: true},
		{id: rg + "/providers/Microsoft.Authorization/roleAssignments/r", ok: true},
		// Type names compare case-insensitively, as ARM does.
		{id: "/subscriptions/s/resourceGroups/rg/providers/microsoft.compute/VIRTUALMACHINES/vm", ok: true},

		// Unknown types, with a suggestion for a plausible typo.
		{id: rg + "/providers/Microsoft.Compute/virtualMachine/vm", mention: []string{`"Microsoft.Compute/virtualMachine"`, `did you mean "Microsoft.Compute/virtualMachines"`}},
		{id: "/subscriptions/s/providers/Microsoft.Authorization/policyDefinition/p", mention: []string{`did you mean "Microsoft.Authorization/policyDefinitions"`}},
		{id: rg + "/providers/Microsoft.Compute/galleries/g/image/i", mention: []string{`did you mean "Microsoft.Compute/galleries/images"`}},
		// ... and none for what is merely another type of the same namespace.
		{id: rg + "/providers/Microsoft.Storage/storageAccounts/sa", mention: []string{"not one gild models"}},
		{id: rg + "/providers/Microsoft.Network/virtualNetworks/vnet", mention: []string{"not one gild models"}},
		{id: rg + "/providers/Microsoft.Compute/snapshots/snap", mention: []string{"not one gild models"}},

		// Misplaced types.
		{id: "/subscriptions/s/providers/Microsoft.Compute/virtualMachines/vm", mention: []string{"Microsoft.Compute/virtualMachines cannot live at a subscription's scope"}},
		{id: "/providers/Microsoft.Compute/virtualMachines/vm", mention: []string{"cannot live at the tenant root"}},
		{id: idGallery + "/providers/Microsoft.GuestConfiguration/guestConfigurationAssignments/a", mention: []string{"can only sit on Microsoft.Compute/virtualMachines or Microsoft.HybridCompute/machines", "Microsoft.Compute/galleries"}},
		{id: rg + "/providers/Microsoft.GuestConfiguration/guestConfigurationAssignments/a", mention: []string{"cannot live in a resource group"}},
		{id: rg + "/providers/Microsoft.Authorization/policyDefinitions/p", mention: []string{"Microsoft.Authorization/policyDefinitions cannot live in a resource group"}},
		{id: rg + "/providers/Microsoft.Authorization/policySetDefinitions/p", mention: []string{"cannot live in a resource group"}},
		{id: "/providers/Microsoft.Authorization/policyExemptions/e", mention: []string{"cannot live at the tenant root"}},
		{id: idVM + "/providers/Microsoft.Compute/disks/d", mention: []string{"cannot live on another resource"}},
		// A child of a misplaced parent is as misplaced as its parent.
		{id: "/subscriptions/s/providers/Microsoft.Compute/galleries/g/images/i", mention: []string{"parent", "cannot live at a subscription's scope"}},
		{id: "/subscriptions/s/providers/Microsoft.Compute/virtualMachines/vm/providers/Microsoft.GuestConfiguration/guestConfigurationAssignments/a", mention: []string{"target", "cannot live at a subscription's scope"}},
		{id: idVM + "/providers/Microsoft.Compute/galleries/g/images/i", mention: []string{"parent", "cannot live on another resource"}},
		// Child types of an unknown parent.
		{id: rg + "/providers/Microsoft.Compute/virtualMachines/vm/images/i", mention: []string{`"Microsoft.Compute/virtualMachines/images" is not one gild models`}},
		// The scope types written as provider resources would give a second key for one
		// scope.
		{id: "/providers/Microsoft.Resources/subscriptions/s", mention: []string{"is written /subscriptions/{name}"}},
		{id: "/subscriptions/s/providers/Microsoft.Resources/resourceGroups/rg", mention: []string{"/subscriptions/{subscription}/resourceGroups/{name}"}},
		{id: "/subscriptions/s/providers/Microsoft.Management/managementGroups/mg", mention: []string{"/providers/Microsoft.Management/managementGroups/{name}"}},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			err := resource.CheckPlacement(resource.MustParse(tt.id))
			if tt.ok {
				if err != nil {
					t.Errorf("CheckPlacement = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("CheckPlacement = nil, want an error")
			}
			if c := resource.CodeOf(err); c != resource.CodeInvalidResourceType {
				t.Errorf("code = %q, want %q", c, resource.CodeInvalidResourceType)
			}
			for _, m := range tt.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
			if strings.Contains(err.Error(), "did you mean") != strings.Contains(strings.Join(tt.mention, " "), "did you mean") {
				t.Errorf("error %q: suggestion given where none is expected, or missing", err)
			}
		})
	}
}

// TestLookupType checks case-insensitive lookup and that Types lists the table sorted.
func TestLookupType(t *testing.T) {
	tests := []struct {
		name string
		want string
		ok   bool
	}{
		{"Microsoft.Compute/virtualMachines", "Microsoft.Compute/virtualMachines", true},
		{"microsoft.compute/galleries/images/VERSIONS", "Microsoft.Compute/galleries/images/versions", true},
		{resource.TypeManagementGroup, resource.TypeManagementGroup, true},
		{resource.TypeRoleAssignment, resource.TypeRoleAssignment, true},
		{"Microsoft.Compute/virtualMachine", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		info, ok := resource.LookupType(tt.name)
		if ok != tt.ok || info.Name != tt.want {
			t.Errorf("LookupType(%q) = %q, %v; want %q, %v", tt.name, info.Name, ok, tt.want, tt.ok)
		}
	}
	names := resource.Types()
	if !sort.StringsAreSorted(names) {
		t.Errorf("Types() not sorted: %q", names)
	}
	for _, n := range names {
		if info, ok := resource.LookupType(n); !ok || info.Name != n {
			t.Errorf("Types() lists %q, which LookupType does not find", n)
		}
	}
	// Every child type's parent type is modelled too.
	for _, n := range names {
		info, _ := resource.LookupType(n)
		if info.Placement&resource.AsChild == 0 {
			continue
		}
		parent := n[:strings.LastIndex(n, "/")]
		if _, ok := resource.LookupType(parent); !ok {
			t.Errorf("child type %s has no modelled parent %s", n, parent)
		}
	}
}
