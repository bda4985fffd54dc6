package resource

import (
	"sort"
	"strings"

	"github.com/gildhq/gild/spelling"
)

// Placement is where a resource type may live.
type Placement uint8

const (
	AtRoot            Placement = 1 << iota // directly under "/" (tenant level)
	AtManagementGroup                       // at a management group's scope
	AtSubscription                          // at a subscription's scope
	AtResourceGroup                         // in a resource group
	AsExtension                             // on another resource (providers/... after a resource)
	AsChild                                 // a child of its Parent type
)

// LocationRule says whether a type's resources carry a location.
type LocationRule uint8

const (
	LocationOptional LocationRule = iota
	LocationRequired
)

// TypeInfo describes one resource type gild models.
type TypeInfo struct {
	Name      string // "Microsoft.Compute/galleries/images"
	Placement Placement
	Location  LocationRule
	// ExtensionOf lists the types an extension resource may sit on; empty means any.
	ExtensionOf []string
	// Tracked types support tags and location: Azure Policy's "indexed" mode sees only them.
	Tracked bool
}

var types = map[string]TypeInfo{}

func init() {
	for _, t := range []TypeInfo{
		{Name: TypeManagementGroup, Placement: AtRoot},
		{Name: TypeSubscription, Placement: AtRoot, Tracked: true},
		{Name: TypeResourceGroup, Placement: AtSubscription, Location: LocationRequired, Tracked: true},
		{Name: "Microsoft.Compute/virtualMachines", Placement: AtResourceGroup, Location: LocationRequired, Tracked: true},
		{Name: "Microsoft.Compute/disks", Placement: AtResourceGroup, Location: LocationRequired, Tracked: true},
		{Name: "Microsoft.Compute/galleries", Placement: AtResourceGroup, Location: LocationRequired, Tracked: true},
		{Name: "Microsoft.Compute/galleries/images", Placement: AsChild, Location: LocationRequired, Tracked: true},
		{Name: "Microsoft.Compute/galleries/images/versions", Placement: AsChild, Location: LocationRequired, Tracked: true},
		{Name: "Microsoft.HybridCompute/machines", Placement: AtResourceGroup, Location: LocationRequired, Tracked: true},
		{Name: "Microsoft.VirtualMachineImages/imageTemplates", Placement: AtResourceGroup, Location: LocationRequired, Tracked: true},
		// A template's runs (gild's: Azure keeps only the last run's status) and, as in
		// Azure, the outputs its last successful run published.
		{Name: "Microsoft.VirtualMachineImages/imageTemplates/runs", Placement: AsChild},
		{Name: "Microsoft.VirtualMachineImages/imageTemplates/runOutputs", Placement: AsChild},
		{Name: "Microsoft.GuestConfiguration/guestConfigurationAssignments", Placement: AsExtension,
			ExtensionOf: []string{"Microsoft.Compute/virtualMachines", "Microsoft.HybridCompute/machines"}},
		{Name: "Microsoft.Authorization/policyDefinitions", Placement: AtRoot | AtManagementGroup | AtSubscription},
		{Name: "Microsoft.Authorization/policySetDefinitions", Placement: AtRoot | AtManagementGroup | AtSubscription},
		{Name: "Microsoft.Authorization/policyAssignments", Placement: AtRoot | AtManagementGroup | AtSubscription | AtResourceGroup | AsExtension},
		{Name: "Microsoft.Authorization/policyExemptions", Placement: AtManagementGroup | AtSubscription | AtResourceGroup | AsExtension},
		{Name: TypeRoleAssignment, Placement: AtRoot | AtManagementGroup | AtSubscription | AtResourceGroup | AsExtension},
		{Name: "Microsoft.PolicyInsights/remediations", Placement: AtManagementGroup | AtSubscription | AtResourceGroup | AsExtension},
	} {
		types[strings.ToLower(t.Name)] = t
	}
}

// TypeRoleAssignment is the type of RBAC role assignments.
const TypeRoleAssignment = "Microsoft.Authorization/roleAssignments"

// LookupType returns the description of the named type, case-insensitively.
func LookupType(name string) (TypeInfo, bool) {
	t, ok := types[strings.ToLower(name)]
	return t, ok
}

// Types lists the names of every type gild models, sorted.
func Types() []string {
	out := make([]string, 0, len(types))
	for _, t := range types {
		out = append(out, t.Name)
	}
	sort.Strings(out)
	return out
}

// CheckPlacement reports whether id names a resource of a type gild models, placed where
// that type may live. The error says what is wrong and, for a misspelt type, the nearest one.
func CheckPlacement(id ID) error {
	if id.IsScope() {
		// The root, management groups, subscriptions and resource groups have IDs of
		// their own shape, which Parse has already checked.
		return nil
	}
	typ := id.Type()
	info, ok := LookupType(typ)
	if !ok {
		msg := "resource type %q is not one gild models"
		if near := nearest(typ, Types()); near != "" {
			return Errorf(CodeInvalidResourceType, id.String(), msg+"; did you mean %q?", typ, near)
		}
		return Errorf(CodeInvalidResourceType, id.String(), msg, typ)
	}
	if canon, ok := scopeForm[strings.ToLower(info.Name)]; ok {
		// "/providers/Microsoft.Resources/subscriptions/s" would be a second ID, with a
		// second key, for /subscriptions/s.
		return Errorf(CodeInvalidResourceType, id.String(), "a %s is written %s, not as a provider resource", info.Name, canon)
	}
	var where Placement
	last := id.Providers[len(id.Providers)-1]
	switch {
	case len(last.Types) > 1:
		where = AsChild
	case len(id.Providers) > 1:
		where = AsExtension
	case id.ResourceGroup != "":
		where = AtResourceGroup
	case id.Subscription != "":
		where = AtSubscription
	case id.ManagementGroup != "":
		where = AtManagementGroup
	default:
		where = AtRoot
	}
	if info.Placement&where == 0 {
		return Errorf(CodeInvalidResourceType, id.String(), "a %s cannot live %s; it lives %s", info.Name, placementText(where), allowedPlaces(info.Placement))
	}
	if where == AsChild || where == AsExtension {
		// The parent or target must itself be a type gild models, placed where it may
		// live: an image under a gallery at subscription scope is as wrong as the gallery.
		rel := "parent"
		if where == AsExtension {
			rel = "target"
		}
		if err := CheckPlacement(id.Parent()); err != nil {
			return Errorf(CodeInvalidResourceType, id.String(), "the %s %s of this %s is misplaced: %s", rel, id.Parent(), info.Name, messageOf(err))
		}
	}
	if where == AsExtension && len(info.ExtensionOf) > 0 {
		target := id.Parent().Type()
		found := false
		for _, t := range info.ExtensionOf {
			found = found || strings.EqualFold(t, target)
		}
		if !found {
			return Errorf(CodeInvalidResourceType, id.String(), "a %s can only sit on %s, not on a %s", info.Name, strings.Join(info.ExtensionOf, " or "), target)
		}
	}
	return nil
}

// scopeForm gives the ID shape of each scope type.
var scopeForm = map[string]string{
	strings.ToLower(TypeManagementGroup): "/providers/Microsoft.Management/managementGroups/{name}",
	strings.ToLower(TypeSubscription):    "/subscriptions/{name}",
	strings.ToLower(TypeResourceGroup):   "/subscriptions/{subscription}/resourceGroups/{name}",
}

func messageOf(err error) string {
	if e, ok := err.(*Error); ok {
		return e.Message
	}
	return err.Error()
}

// allowedPlaces lists the placements in p for messages.
func allowedPlaces(p Placement) string {
	var out []string
	for bit := AtRoot; bit <= AsChild; bit <<= 1 {
		if p&bit != 0 {
			out = append(out, placementText(bit))
		}
	}
	return strings.Join(out, " or ")
}

func placementText(p Placement) string {
	switch p {
	case AtRoot:
		return "at the tenant root"
	case AtManagementGroup:
		return "at a management group's scope"
	case AtSubscription:
		return "at a subscription's scope"
	case AtResourceGroup:
		return "in a resource group"
	case AsExtension:
		return "on another resource"
	default:
		return "as a child resource"
	}
}

// nearest returns the candidate closest to s by edit distance, if it is close enough to be
// a plausible misspelling: a few edits, one more per ten characters.
func nearest(s string, candidates []string) string {
	return spelling.Nearest(s, candidates, 3+len(s)/10)
}
