// Package resource is gild's resource model: ARM-style resource IDs, scopes and the
// management-group tree, the resource envelope every object shares, and the table of
// resource types gild models.
//
// IDs keep the spelling they were written with but compare case-insensitively, as Azure
// Resource Manager does; Key gives the canonical form to index and compare by.
package resource

import (
	"strings"
)

// Well-known resource types of the scopes.
const (
	TypeManagementGroup = "Microsoft.Management/managementGroups"
	TypeSubscription    = "Microsoft.Resources/subscriptions"
	TypeResourceGroup   = "Microsoft.Resources/resourceGroups"
	TypeTenant          = "Microsoft.Resources/tenants"
)

// Kind says what level of the ARM hierarchy an ID names.
type Kind int

const (
	KindRoot            Kind = iota // "/", the tenant root
	KindManagementGroup             // /providers/Microsoft.Management/managementGroups/{mg}
	KindSubscription                // /subscriptions/{sub}
	KindResourceGroup               // /subscriptions/{sub}/resourceGroups/{rg}
	KindResource                    // anything under /providers/{namespace}/...
)

func (k Kind) String() string {
	switch k {
	case KindRoot:
		return "root"
	case KindManagementGroup:
		return "managementGroup"
	case KindSubscription:
		return "subscription"
	case KindResourceGroup:
		return "resourceGroup"
	default:
		return "resource"
	}
}

// Segment is one "providers/{namespace}/{type}/{name}[/{type}/{name}]..." run of an ID.
// An ID has more than one when it names an extension resource, a resource that lives
// on another resource (a guest-configuration assignment on a VM, say).
type Segment struct {
	Namespace string
	Types     []string // resource type names, parent first: galleries, images, versions
	Names     []string // the names paired with Types
}

// ID is a parsed ARM resource ID. The zero value is the root scope "/".
type ID struct {
	// At most one of ManagementGroup and Subscription is set: resources live either at a
	// management group's scope or under a subscription.
	ManagementGroup string
	Subscription    string
	ResourceGroup   string
	Providers       []Segment
}

// Root is the tenant root scope, "/".
var Root = ID{}

// ManagementGroupID returns the ID of management group name.
func ManagementGroupID(name string) ID { return ID{ManagementGroup: name} }

// SubscriptionID returns the ID of subscription name.
func SubscriptionID(name string) ID { return ID{Subscription: name} }

// ResourceGroupID returns the ID of resource group rg in subscription sub.
func ResourceGroupID(sub, rg string) ID { return ID{Subscription: sub, ResourceGroup: rg} }

// Kind tells what level of the hierarchy id names.
func (id ID) Kind() Kind {
	switch {
	case len(id.Providers) > 0:
		return KindResource
	case id.ResourceGroup != "":
		return KindResourceGroup
	case id.Subscription != "":
		return KindSubscription
	case id.ManagementGroup != "":
		return KindManagementGroup
	default:
		return KindRoot
	}
}

// IsRoot reports whether id is the tenant root "/".
func (id ID) IsRoot() bool { return id.Kind() == KindRoot }

// IsScope reports whether id names a management group, subscription or resource group
// (or the root), rather than a provider resource.
func (id ID) IsScope() bool { return len(id.Providers) == 0 }

// String formats id in the spelling it was given.
func (id ID) String() string {
	var b strings.Builder
	id.write(&b)
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

// Key is the canonical, lower-case form of id: equal IDs have equal keys.
func (id ID) Key() string { return strings.ToLower(id.String()) }

// Equal reports whether id and other name the same thing, ignoring case as ARM does. It
// compares keys, so that Equal and Key always agree (strings.EqualFold and strings.ToLower
// fold some Unicode letters differently).
func (id ID) Equal(other ID) bool { return id.Key() == other.Key() }

func (id ID) write(b *strings.Builder) {
	if id.ManagementGroup != "" {
		b.WriteString("/providers/")
		b.WriteString(TypeManagementGroup)
		b.WriteByte('/')
		b.WriteString(id.ManagementGroup)
	}
	if id.Subscription != "" {
		b.WriteString("/subscriptions/")
		b.WriteString(id.Subscription)
	}
	if id.ResourceGroup != "" {
		b.WriteString("/resourceGroups/")
		b.WriteString(id.ResourceGroup)
	}
	for _, s := range id.Providers {
		b.WriteString("/providers/")
		b.WriteString(s.Namespace)
		for i := range s.Types {
			b.WriteByte('/')
			b.WriteString(s.Types[i])
			b.WriteByte('/')
			b.WriteString(s.Names[i])
		}
	}
}

// Type is the full resource type of id: "Microsoft.Compute/galleries/images/versions"
// for an image version, TypeSubscription for a subscription, TypeTenant for the root.
func (id ID) Type() string {
	switch id.Kind() {
	case KindRoot:
		return TypeTenant
	case KindManagementGroup:
		return TypeManagementGroup
	case KindSubscription:
		return TypeSubscription
	case KindResourceGroup:
		return TypeResourceGroup
	}
	last := id.Providers[len(id.Providers)-1]
	return last.Namespace + "/" + strings.Join(last.Types, "/")
}

// Name is the last name in id: "1.0.0" for an image version, the subscription's name for a
// subscription, "" for the root.
func (id ID) Name() string {
	switch id.Kind() {
	case KindRoot:
		return ""
	case KindManagementGroup:
		return id.ManagementGroup
	case KindSubscription:
		return id.Subscription
	case KindResourceGroup:
		return id.ResourceGroup
	}
	last := id.Providers[len(id.Providers)-1]
	return last.Names[len(last.Names)-1]
}

// FullName is the resource's names joined by "/" within its own provider segment, as Azure
// Policy's fullName field gives it: "g/i/1.0.0" for an image version.
func (id ID) FullName() string {
	if id.Kind() != KindResource {
		return id.Name()
	}
	last := id.Providers[len(id.Providers)-1]
	return strings.Join(last.Names, "/")
}

// Parent is the ID that directly contains id: a child resource's parent resource, an
// extension resource's target, a top-level resource's resource group (or subscription or
// management group), a resource group's subscription. The parent of a management group or
// subscription in the tree is a property of that resource, not of its ID (see Hierarchy);
// here both answer the root. The root's parent is the root.
func (id ID) Parent() ID {
	switch id.Kind() {
	case KindRoot, KindManagementGroup:
		return Root
	case KindSubscription:
		return Root
	case KindResourceGroup:
		return SubscriptionID(id.Subscription)
	}
	p := id.clone()
	last := &p.Providers[len(p.Providers)-1]
	if len(last.Types) > 1 {
		last.Types = last.Types[:len(last.Types)-1]
		last.Names = last.Names[:len(last.Names)-1]
		return p
	}
	p.Providers = p.Providers[:len(p.Providers)-1]
	if len(p.Providers) == 0 {
		p.Providers = nil // the scope, in the same form Parse gives it
	}
	return p
}

// Scope is the management group, subscription or resource group that id lies in (id
// itself when it is a scope).
func (id ID) Scope() ID {
	s := id
	s.Providers = nil
	return s
}

// Child returns the ID of the child resource of type typeName ("images") and name under
// id. When id is a scope, typeName must be qualified ("Microsoft.Compute/galleries") and
// the child is a top-level resource in that scope; a qualified type under a resource makes
// an extension resource. A fully qualified nested type ("Microsoft.Compute/galleries/images")
// names a child of id when id is a resource of the parent type. The scope types give the
// scopes' own IDs: Root.Child(TypeSubscription, "s") is /subscriptions/s.
func (id ID) Child(typeName, name string) ID {
	switch {
	case id.IsRoot() && strings.EqualFold(typeName, TypeManagementGroup):
		return ManagementGroupID(name)
	case id.IsRoot() && strings.EqualFold(typeName, TypeSubscription):
		return SubscriptionID(name)
	case id.Kind() == KindSubscription && strings.EqualFold(typeName, TypeResourceGroup):
		return ResourceGroupID(id.Subscription, name)
	}
	c := id.clone()
	if ns, rest, ok := strings.Cut(typeName, "/"); ok && strings.Contains(ns, ".") {
		types := strings.Split(rest, "/")
		// A nested type such as Microsoft.Compute/galleries/images names a child of the
		// last resource of that namespace when the parent chain matches.
		if len(types) > 1 && len(c.Providers) > 0 {
			last := &c.Providers[len(c.Providers)-1]
			if strings.EqualFold(last.Namespace, ns) && sameTypes(last.Types, types[:len(types)-1]) {
				last.Types = append(last.Types, types[len(types)-1])
				last.Names = append(last.Names, name)
				return c
			}
		}
		// Otherwise the parents' names are unknown: they stay empty, and the ID does not
		// parse, rather than guess.
		names := make([]string, len(types))
		names[len(names)-1] = name
		c.Providers = append(c.Providers, Segment{Namespace: ns, Types: types, Names: names})
		return c
	}
	if len(c.Providers) == 0 {
		// An unqualified child of a scope is malformed; keep it visible rather than guess.
		c.Providers = append(c.Providers, Segment{Types: []string{typeName}, Names: []string{name}})
		return c
	}
	last := &c.Providers[len(c.Providers)-1]
	last.Types = append(last.Types, typeName)
	last.Names = append(last.Names, name)
	return c
}

// Contains reports whether other is id or lies under it by its ID alone: a resource group
// contains its resources, a resource its child and extension resources. Containment through
// the management-group tree needs a Hierarchy.
func (id ID) Contains(other ID) bool {
	if id.IsRoot() {
		return true
	}
	k, o := id.Key(), other.Key()
	return o == k || strings.HasPrefix(o, k+"/")
}

// Ancestors lists the IDs that contain id by its ID alone, nearest first, ending at the
// scope that id lies in (management groups above a subscription come from a Hierarchy).
func (id ID) Ancestors() []ID {
	var out []ID
	for cur := id; cur.Kind() != KindRoot; {
		p := cur.Parent()
		if cur.Kind() == KindSubscription || cur.Kind() == KindManagementGroup {
			break
		}
		out = append(out, p)
		cur = p
	}
	return out
}

func sameTypes(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !strings.EqualFold(a[i], b[i]) {
			return false
		}
	}
	return true
}

func (id ID) clone() ID {
	c := id
	if id.Providers == nil {
		return c
	}
	c.Providers = make([]Segment, len(id.Providers))
	for i, s := range id.Providers {
		c.Providers[i] = Segment{
			Namespace: s.Namespace,
			Types:     append([]string(nil), s.Types...),
			Names:     append([]string(nil), s.Names...),
		}
	}
	return c
}
