// Package access is gild's role-based access control: the built-in roles, the actions they
// permit, and the decision whether a principal may perform an action on a resource given
// its role assignments and the management-group tree. It is pure logic over values; the
// control plane feeds it the assignments it keeps in the store.
package access

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/gildhq/gild/resource"
)

// Verbs of the actions on resources. An action is "{resource type}/{verb}", as in Azure:
// "Microsoft.Compute/virtualMachines/write".
const (
	VerbRead   = "read"
	VerbWrite  = "write"
	VerbDelete = "delete"
)

// Actions on things that are not resources in the store.
const (
	ActionAuditRead   = "Gild.Audit/events/read"
	ActionTokenRead   = "Gild.Identity/tokens/read"
	ActionTokenWrite  = "Gild.Identity/tokens/write"
	ActionTokenDelete = "Gild.Identity/tokens/delete"
)

// Action returns the action of verb on resources of type typ.
func Action(typ, verb string) string { return typ + "/" + verb }

// Role is a role definition: the actions it permits, less its NotActions.
type Role struct {
	Name        string   `json:"roleName"`
	ID          string   `json:"-"`
	Description string   `json:"description"`
	Actions     []string `json:"actions"`
	NotActions  []string `json:"notActions"`
	// AzureID is the GUID of the Azure built-in role this one matches, so that role
	// assignments written for Azure resolve here too.
	AzureID string `json:"-"`
}

// RoleDefinitionPrefix is where built-in role definitions live.
const RoleDefinitionPrefix = "/providers/Microsoft.Authorization/roleDefinitions/"

// Permits reports whether r permits action.
func (r *Role) Permits(action string) bool {
	ok := false
	for _, p := range r.Actions {
		if matchAction(p, action) {
			ok = true
			break
		}
	}
	if !ok {
		return false
	}
	for _, p := range r.NotActions {
		if matchAction(p, action) {
			return false
		}
	}
	return true
}

// Things only owners may touch: the audit log and other people's credentials.
var ownerOnly = []string{"Gild.Audit/*", "Gild.Identity/*", "Microsoft.Authorization/roleAssignments/write", "Microsoft.Authorization/roleAssignments/delete"}

var builtins = []*Role{
	{Name: "Owner", AzureID: "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
		Description: "Everything, including granting access and reading the audit log.",
		Actions:     []string{"*"}},
	{Name: "Contributor", AzureID: "b24988ac-6180-42a0-ab88-20f7382dd24c",
		Description: "Create and manage every kind of resource, but not grant access.",
		Actions:     []string{"*"}, NotActions: ownerOnly},
	{Name: "Reader", AzureID: "acdd72a7-3385-48ef-bd42-f606fba81ae7",
		Description: "Read every resource; change nothing.",
		Actions:     []string{"*/read"}, NotActions: ownerOnly},
	{Name: "Image Publisher", AzureID: "",
		Description: "Read everything; build, publish, replicate and retire images (galleries, image templates, disks).",
		Actions: []string{"*/read", "Microsoft.Compute/galleries/*", "Microsoft.VirtualMachineImages/imageTemplates/*",
			"Microsoft.Compute/disks/*"},
		NotActions: ownerOnly},
	{Name: "Policy Contributor", AzureID: "36243c78-bf99-498c-9df9-86d9f8d28608",
		Description: "Read everything; manage policy definitions, initiatives, assignments, exemptions and machine configuration.",
		Actions: []string{"*/read", "Microsoft.Authorization/policyDefinitions/*", "Microsoft.Authorization/policySetDefinitions/*",
			"Microsoft.Authorization/policyAssignments/*", "Microsoft.Authorization/policyExemptions/*",
			"Microsoft.PolicyInsights/*", "Microsoft.GuestConfiguration/*"},
		NotActions: ownerOnly},
}

func init() {
	for _, r := range builtins {
		r.ID = RoleDefinitionPrefix + r.Name
	}
}

// Roles lists the built-in roles.
func Roles() []*Role { return append([]*Role(nil), builtins...) }

// LookupRole resolves a role by name ("Reader"), by ID ("/providers/Microsoft.Authorization/
// roleDefinitions/Reader") or by the GUID of the matching Azure built-in, case-insensitively,
// also when the ID is given at a scope ("/subscriptions/s/providers/Microsoft.Authorization/
// roleDefinitions/GUID").
func LookupRole(ref string) (*Role, error) {
	name := ref
	if i := strings.LastIndex(strings.ToLower(ref), "/roledefinitions/"); i >= 0 {
		name = ref[i+len("/roledefinitions/"):]
	}
	for _, r := range builtins {
		if strings.EqualFold(r.Name, name) || (r.AzureID != "" && strings.EqualFold(r.AzureID, name)) {
			return r, nil
		}
	}
	names := make([]string, len(builtins))
	for i, r := range builtins {
		names[i] = r.Name
	}
	return nil, resource.Errorf(resource.CodeInvalidParameter, "roleDefinitionId", "role %q does not exist; the roles are %s", ref, strings.Join(names, ", "))
}

// matchAction matches action against pattern, case-insensitively; "*" in a pattern matches
// any run of characters, slashes included, as in Azure role definitions.
func matchAction(pattern, action string) bool {
	p, a := strings.ToLower(pattern), strings.ToLower(action)
	for {
		star := strings.IndexByte(p, '*')
		if star < 0 {
			return p == a
		}
		if !strings.HasPrefix(a, p[:star]) {
			return false
		}
		a, p = a[star:], p[star+1:]
		if p == "" {
			return true
		}
		// Try every place the rest of the pattern could start.
		for i := 0; i <= len(a); i++ {
			if matchAction(p, a[i:]) {
				return true
			}
		}
		return false
	}
}

// Assignment grants Role to PrincipalID at Scope and everything under it.
type Assignment struct {
	ID          resource.ID
	Scope       resource.ID
	PrincipalID string
	Role        *Role
}

// AssignmentProperties is the properties object of a roleAssignments resource.
type AssignmentProperties struct {
	RoleDefinitionID string `json:"roleDefinitionId"`
	PrincipalID      string `json:"principalId"`
	PrincipalType    string `json:"principalType,omitempty"`
	Description      string `json:"description,omitempty"`
	Scope            string `json:"scope,omitempty"`
}

// AssignmentFromResource reads a roleAssignments resource. Its scope is where it is stored:
// the ID with its last provider segment removed.
func AssignmentFromResource(r *resource.Resource) (Assignment, error) {
	id, err := resource.Parse(r.ID)
	if err != nil {
		return Assignment{}, err
	}
	var p AssignmentProperties
	if len(r.Properties) > 0 {
		if err := json.Unmarshal(r.Properties, &p); err != nil {
			return Assignment{}, resource.Errorf(resource.CodeInvalidRequestContent, "properties", "role assignment properties: %v", err)
		}
	}
	var errs []*resource.Error
	if strings.TrimSpace(p.PrincipalID) == "" {
		errs = append(errs, resource.Errorf(resource.CodeInvalidRequestContent, "properties.principalId", "principalId is required"))
	}
	role, rerr := LookupRole(p.RoleDefinitionID)
	if p.RoleDefinitionID == "" {
		errs = append(errs, resource.Errorf(resource.CodeInvalidRequestContent, "properties.roleDefinitionId", "roleDefinitionId is required"))
	} else if rerr != nil {
		errs = append(errs, resource.Errorf(resource.CodeInvalidRequestContent, "properties.roleDefinitionId", "%s", strings.TrimPrefix(rerr.Error(), resource.CodeInvalidParameter+": roleDefinitionId: ")))
	}
	if err := resource.Join(resource.CodeInvalidRequestContent, "the role assignment is invalid", errs); err != nil {
		return Assignment{}, err
	}
	return Assignment{ID: id, Scope: id.Parent(), PrincipalID: p.PrincipalID, Role: role}, nil
}

// Grants is every role assignment, indexed for decisions. It is immutable once built, so
// requests share one without locking.
type Grants struct {
	byPrincipal map[string][]Assignment
	tree        *resource.Hierarchy
}

// NewGrants indexes assignments under the management-group tree h.
func NewGrants(h *resource.Hierarchy, assignments []Assignment) *Grants {
	g := &Grants{byPrincipal: map[string][]Assignment{}, tree: h}
	for _, a := range assignments {
		k := strings.ToLower(a.PrincipalID)
		g.byPrincipal[k] = append(g.byPrincipal[k], a)
	}
	for _, as := range g.byPrincipal {
		sort.Slice(as, func(i, j int) bool { return as[i].ID.Key() < as[j].ID.Key() })
	}
	return g
}

// Tree is the management-group tree the grants were built with.
func (g *Grants) Tree() *resource.Hierarchy { return g.tree }

// Of lists the assignments of principal.
func (g *Grants) Of(principal string) []Assignment {
	return g.byPrincipal[strings.ToLower(principal)]
}

// Allowed reports whether principal may perform action on target: some assignment of it at
// target or a scope above target has a role that permits action.
func (g *Grants) Allowed(principal, action string, target resource.ID) bool {
	for _, a := range g.Of(principal) {
		if a.Role.Permits(action) && g.tree.Contains(a.Scope, target) {
			return true
		}
	}
	return false
}

// ListableScope reports whether principal may list inside scope: it may read there, or
// somewhere under it (a team that reads one subscription may list "/subscriptions" and
// sees its own; one that reads nothing under a scope is told the scope does not exist).
func (g *Grants) ListableScope(principal string, scope resource.ID) bool {
	for _, a := range g.Of(principal) {
		if !canReadSomething(a.Role) {
			continue
		}
		if g.tree.Contains(a.Scope, scope) || g.tree.Contains(scope, a.Scope) {
			return true
		}
	}
	return false
}

func canReadSomething(r *Role) bool {
	for _, p := range r.Actions {
		if strings.HasSuffix(p, "*") || strings.HasSuffix(strings.ToLower(p), "/read") {
			return true
		}
	}
	return false
}

// ReadScopes returns the scopes inside within where principal may read resources of type
// typ (any type when typ is empty), expanded to ID prefixes for a store query. A nil result
// means none; scopes that overlap are reduced to the outermost.
func (g *Grants) ReadScopes(principal, typ string, within resource.ID) []resource.ID {
	action := "*/read"
	if typ != "" {
		action = Action(typ, VerbRead)
	}
	var scopes []resource.ID
	for _, a := range g.Of(principal) {
		if !a.Role.Permits(action) {
			continue
		}
		switch {
		case g.tree.Contains(a.Scope, within):
			scopes = append(scopes, within)
		case g.tree.Contains(within, a.Scope):
			scopes = append(scopes, a.Scope)
		}
	}
	var expanded []resource.ID
	for _, s := range scopes {
		expanded = append(expanded, g.tree.Expand(s)...)
	}
	return outermost(expanded)
}

// outermost drops every scope that another in the list already contains by ID.
func outermost(scopes []resource.ID) []resource.ID {
	sort.Slice(scopes, func(i, j int) bool { return len(scopes[i].Key()) < len(scopes[j].Key()) })
	var out []resource.ID
	for _, s := range scopes {
		covered := false
		for _, o := range out {
			if o.Contains(s) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}

// String describes an assignment for messages.
func (a Assignment) String() string {
	return fmt.Sprintf("%s for %s at %s", a.Role.Name, a.PrincipalID, a.Scope)
}
