package resource

import (
	"sort"
	"strings"
)

// Hierarchy is the management-group tree: each management group has one parent group (or
// the root), each subscription belongs to one group (or the root). The zero value is an
// empty tree in which everything hangs from the root. It is not safe for concurrent
// mutation; readers share a Hierarchy that is no longer changed.
type Hierarchy struct {
	groupParent map[string]string // group key -> parent group key; "" is the root
	subGroup    map[string]string // subscription key -> group key; "" is the root
	names       map[string]string // key -> name as spelt
}

// MaxGroupDepth is how deep management groups may nest under the root, as in Azure.
const MaxGroupDepth = 6

// NewHierarchy returns an empty tree.
func NewHierarchy() *Hierarchy {
	return &Hierarchy{groupParent: map[string]string{}, subGroup: map[string]string{}, names: map[string]string{}}
}

// Clone returns a copy that can be changed without affecting h.
func (h *Hierarchy) Clone() *Hierarchy {
	c := NewHierarchy()
	for k, v := range h.groupParent {
		c.groupParent[k] = v
	}
	for k, v := range h.subGroup {
		c.subGroup[k] = v
	}
	for k, v := range h.names {
		c.names[k] = v
	}
	return c
}

// ParentGroupOf returns the management group ID named by a management group's
// properties.details.parent.id, or the root.
func ParentGroupOf(r *Resource) (ID, error) {
	return groupRef(r, "details.parent.id")
}

// GroupOfSubscription returns the management group named by a subscription's
// properties.managementGroupId, or the root.
func GroupOfSubscription(r *Resource) (ID, error) {
	return groupRef(r, "managementGroupId")
}

func groupRef(r *Resource, path string) (ID, error) {
	s := r.StringProperty(path)
	if s == "" {
		return Root, nil
	}
	id, err := Parse(s)
	if err != nil || (id.Kind() != KindManagementGroup && id.Kind() != KindRoot) {
		return Root, Errorf(CodeInvalidRequestContent, "properties."+path, "%q is not a management group ID (/providers/Microsoft.Management/managementGroups/NAME)", s)
	}
	return id, nil
}

// init makes the zero Hierarchy usable for changes.
func (h *Hierarchy) init() {
	if h.groupParent == nil {
		h.groupParent = map[string]string{}
	}
	if h.subGroup == nil {
		h.subGroup = map[string]string{}
	}
	if h.names == nil {
		h.names = map[string]string{}
	}
}

// SetGroup places management group name under parent (a management group ID, or Root). It
// refuses an invalid name, a parent that is not a management group, a cycle and a tree
// deeper than MaxGroupDepth.
func (h *Hierarchy) SetGroup(name string, parent ID) error {
	target := "properties.details.parent.id"
	if name == "" {
		return Errorf(CodeInvalidParameter, "name", "a management group needs a name")
	}
	if msg := checkScopeName("management group", name); msg != "" {
		return Errorf(CodeInvalidParameter, "name", "%s", msg)
	}
	if k := parent.Kind(); k != KindManagementGroup && k != KindRoot {
		return Errorf(CodeInvalidRequestContent, target, "the parent of management group %q must be a management group or the root, not %s %s", name, k, parent)
	}
	h.init()
	k, pk := strings.ToLower(name), strings.ToLower(parent.ManagementGroup)
	for cur, depth := pk, 0; cur != ""; cur, depth = h.groupParent[cur], depth+1 {
		if cur == k {
			return Errorf(CodeInvalidRequestContent, target, "management group %q cannot be placed under %q: that would make a cycle", name, parent.ManagementGroup)
		}
		if depth > 2*MaxGroupDepth {
			break
		}
	}
	// depth counts the parent and the groups above it; height counts name and the
	// levels below it.
	if d := h.depth(pk) + h.height(k); d > MaxGroupDepth {
		return Errorf(CodeInvalidRequestContent, target, "placing management group %q under %q makes the tree %d levels deep; at most %d are allowed", name, parent.String(), d, MaxGroupDepth)
	}
	h.groupParent[k] = pk
	h.names["g:"+k] = name
	if pk != "" {
		if _, ok := h.names["g:"+pk]; !ok {
			h.names["g:"+pk] = parent.ManagementGroup
		}
	}
	return nil
}

// RemoveGroup takes management group name out of the tree.
func (h *Hierarchy) RemoveGroup(name string) { delete(h.groupParent, strings.ToLower(name)) }

// SetSubscription places subscription name in group (a management group ID, or Root).
func (h *Hierarchy) SetSubscription(name string, group ID) {
	h.init()
	h.subGroup[strings.ToLower(name)] = strings.ToLower(group.ManagementGroup)
	h.names["s:"+strings.ToLower(name)] = name
	if gk := strings.ToLower(group.ManagementGroup); gk != "" {
		if _, ok := h.names["g:"+gk]; !ok {
			h.names["g:"+gk] = group.ManagementGroup
		}
	}
}

// RemoveSubscription takes subscription name out of the tree.
func (h *Hierarchy) RemoveSubscription(name string) { delete(h.subGroup, strings.ToLower(name)) }

// depth is how many groups lie between the root and group key, the group included.
func (h *Hierarchy) depth(k string) int {
	d := 0
	for cur := k; cur != "" && d <= 2*MaxGroupDepth; cur = h.groupParent[cur] {
		d++
	}
	return d
}

// height is how many levels of groups hang below group key, itself included.
func (h *Hierarchy) height(k string) int {
	best := 1
	for child, parent := range h.groupParent {
		if parent == k && child != k {
			if d := 1 + h.height(child); d > best {
				best = d
			}
		}
	}
	return best
}

// Ancestors lists every scope that contains id, nearest first, ending with the root: parent
// resources, the resource group, the subscription, its management groups, "/". Role
// assignments and policy assignments at any of them apply to id.
func (h *Hierarchy) Ancestors(id ID) []ID {
	out := id.Ancestors()
	top := id
	if len(out) > 0 {
		top = out[len(out)-1]
	}
	var group string
	switch top.Kind() {
	case KindSubscription:
		group = h.subGroup[strings.ToLower(top.Subscription)]
	case KindManagementGroup:
		group = h.groupParent[strings.ToLower(top.ManagementGroup)]
	}
	for seen := 0; group != "" && seen <= 2*MaxGroupDepth; seen++ {
		out = append(out, ManagementGroupID(h.name("g:", group)))
		group = h.groupParent[group]
	}
	// A tenant-level resource's own ancestors already end at the root.
	if !id.IsRoot() && (len(out) == 0 || !out[len(out)-1].IsRoot()) {
		out = append(out, Root)
	}
	return out
}

// Contains reports whether other is scope or lies anywhere under it, the management-group
// tree included.
func (h *Hierarchy) Contains(scope, other ID) bool {
	if scope.Contains(other) {
		return true
	}
	if scope.Kind() != KindManagementGroup {
		return false
	}
	for _, a := range h.Ancestors(other) {
		if a.Equal(scope) {
			return true
		}
	}
	return false
}

// Expand turns scope into the ID prefixes whose resources it contains: the scope itself and,
// for a management group, every descendant group and every subscription under them. The
// root expands to itself (everything).
func (h *Hierarchy) Expand(scope ID) []ID {
	if scope.Kind() != KindManagementGroup {
		return []ID{scope}
	}
	out := []ID{scope}
	under := map[string]bool{strings.ToLower(scope.ManagementGroup): true}
	// Walk down level by level until nothing is added; under only grows and is bounded by
	// the number of groups, so the loop ends even in a tree SetGroup did not build.
	for {
		grew := false
		for child, parent := range h.groupParent {
			if under[parent] && !under[child] {
				under[child] = true
				grew = true
			}
		}
		if !grew {
			break
		}
	}
	var groups, subs []string
	for g := range under {
		if g != strings.ToLower(scope.ManagementGroup) {
			groups = append(groups, g)
		}
	}
	for s, g := range h.subGroup {
		if under[g] {
			subs = append(subs, s)
		}
	}
	sort.Strings(groups)
	sort.Strings(subs)
	for _, g := range groups {
		out = append(out, ManagementGroupID(h.name("g:", g)))
	}
	for _, s := range subs {
		out = append(out, SubscriptionID(h.name("s:", s)))
	}
	return out
}

// Children lists the groups and subscriptions directly under group (Root for the top).
func (h *Hierarchy) Children(group ID) (groups, subscriptions []string) {
	gk := strings.ToLower(group.ManagementGroup)
	for child, parent := range h.groupParent {
		if parent == gk {
			groups = append(groups, h.name("g:", child))
		}
	}
	for s, g := range h.subGroup {
		if g == gk {
			subscriptions = append(subscriptions, h.name("s:", s))
		}
	}
	sort.Strings(groups)
	sort.Strings(subscriptions)
	return groups, subscriptions
}

// name returns the spelling of group (prefix "g:") or subscription ("s:") key k.
func (h *Hierarchy) name(prefix, k string) string {
	if n, ok := h.names[prefix+k]; ok {
		return n
	}
	return k
}
