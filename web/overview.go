package web

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/gildhq/gild/compliance"
	"github.com/gildhq/gild/controlplane"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// trendDays are the trend lengths offered.
var trendDays = []int{30, 90, 365}

type overviewData struct {
	Scope       string
	ScopeName   string
	Days        int
	TrendDays   []int
	Overview    compliance.RollupOverview
	SyncProblem string
	// Links to the resource list, narrowed to this scope.
	ResourcesURL, NonCompliantURL                                       string
	Teams, Groups, ManagementGroups, Initiatives, Assignments, Policies *table
}

// scopeParam reads ?scope=, the scope a page is narrowed to; root when absent.
func scopeParam(r *request) (resource.ID, error) {
	s := strings.TrimSpace(r.URL.Query().Get("scope"))
	if s == "" || s == "/" {
		return resource.Root, nil
	}
	id, err := resource.Parse(s)
	if err != nil {
		return resource.ID{}, badParam("scope", "scope %q is not a resource ID: %v", s, err)
	}
	if !id.IsScope() {
		return resource.ID{}, badParam("scope", "scope %q is a resource, not a management group, subscription or resource group", s)
	}
	return id, nil
}

// readable is what a caller may see inside scope, for the roll-up and state queries:
// nil means everything.
func (h *Handler) readable(c controlplane.Caller, scope resource.ID) ([]resource.ID, error) {
	scopes, err := h.cp.ReadableScopes(c, scope)
	if err != nil {
		return nil, err
	}
	if scopes == nil && !scope.IsRoot() {
		scopes = h.cp.Tree().Expand(scope)
	}
	return scopes, nil
}

// assignmentInfo is what the pages need of policy assignments: names, and which assign an
// initiative.
type assignmentInfo struct {
	ID, Name, DefinitionID, Scope, EnforcementMode string
	Initiative                                     bool
	Props                                          assignmentProps
}

type assignmentProps struct {
	DisplayName           string                     `json:"displayName"`
	Description           string                     `json:"description"`
	PolicyDefinitionID    string                     `json:"policyDefinitionId"`
	EnforcementMode       string                     `json:"enforcementMode"`
	NotScopes             []string                   `json:"notScopes"`
	Parameters            map[string]json.RawMessage `json:"parameters"`
	NonComplianceMessages []struct {
		Message     string `json:"message"`
		ReferenceID string `json:"policyDefinitionReferenceId"`
	} `json:"nonComplianceMessages"`
}

func readAssignment(r *resource.Resource) assignmentInfo {
	var p assignmentProps
	_ = json.Unmarshal(r.Properties, &p)
	id, _ := resource.Parse(r.ID)
	a := assignmentInfo{ID: r.ID, Name: p.DisplayName, DefinitionID: p.PolicyDefinitionID, Scope: id.Parent().String(),
		EnforcementMode: p.EnforcementMode, Props: p,
		Initiative: strings.Contains(strings.ToLower(p.PolicyDefinitionID), "/policysetdefinitions/")}
	if a.Name == "" {
		a.Name = r.Name
	}
	if a.EnforcementMode == "" {
		a.EnforcementMode = "Default"
	}
	return a
}

// assignments lists every policy assignment, by lower-case ID. It reads as gild: names and
// definitions of assignments that apply to the caller's resources are shown to the caller
// even when the assignment sits at a scope above them, as Azure shows inherited ones.
func (h *Handler) assignments(ctx context.Context) (map[string]assignmentInfo, error) {
	all, err := store.ListAll(ctx, h.cp.Store(), store.ListQuery{Type: compliance.TypeAssignment})
	if err != nil {
		return nil, err
	}
	out := make(map[string]assignmentInfo, len(all))
	for _, r := range all {
		out[strings.ToLower(r.ID)] = readAssignment(r)
	}
	return out, nil
}

func (h *Handler) overview(r *request) (*view, error) {
	scope, err := scopeParam(r)
	if err != nil {
		return nil, err
	}
	days := 30
	if s := r.URL.Query().Get("days"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || (n != 30 && n != 90 && n != 365) {
			return nil, badParam("days", "days %q is not one of 30, 90 or 365", s)
		}
		days = n
	}
	scopes, err := h.readable(r.caller, scope)
	if err != nil {
		return nil, err
	}
	d := &overviewData{Scope: scope.String(), ScopeName: scopeName(scope), Days: days, TrendDays: trendDays}
	if err := h.rollup.Sync(r.ctx); err != nil {
		// The figures are as of the last sync; say so rather than fail the page.
		h.log.Warn("dashboard: compliance roll-up", "err", err)
		d.SyncProblem = "The figures could not be brought up to date: " + err.Error()
	}
	infos, err := h.assignments(r.ctx)
	if err != nil {
		return nil, err
	}
	initiatives := map[string]string{}
	for k, a := range infos {
		if a.Initiative {
			initiatives[k] = a.DefinitionID
		}
	}
	o := h.rollup.Overview(compliance.RollupView{Scopes: scopes, Tree: h.cp.Tree(), Initiatives: initiatives, Now: r.now, Days: days})
	d.Overview = o
	d.ResourcesURL = resourcesURL(scope, "")
	d.NonCompliantURL = resourcesURL(scope, store.StateNonCompliant)

	d.Teams = groupTable("teams", "Teams (subscriptions)", "Subscription", o.Subscriptions, func(g compliance.Group) string { return scopeURL(g.ID) })
	d.Groups = groupTable("groups", "Resource groups", "Resource group", o.ResourceGroups, func(g compliance.Group) string { return scopeURL(g.ID) })
	d.Groups.Columns = append([]column{{Key: "subscription", Title: "Subscription", Filter: true}}, d.Groups.Columns...)
	for i, g := range o.ResourceGroups {
		id, _ := resource.Parse(g.ID)
		d.Groups.Rows[i] = append(row{text(id.Subscription)}, d.Groups.Rows[i]...)
	}
	d.ManagementGroups = groupTable("mgs", "Management groups", "Management group", o.ManagementGroups, func(g compliance.Group) string { return scopeURL(g.ID) })
	d.Initiatives = groupTable("initiatives", "Initiatives", "Initiative", o.Initiatives, func(g compliance.Group) string { return definitionURL(g.ID) })
	d.Assignments = groupTable("assignments", "Policy assignments", "Assignment", o.Assignments, func(g compliance.Group) string { return assignmentURL(g.ID) })
	for i, g := range o.Assignments {
		if a, ok := infos[strings.ToLower(g.ID)]; ok {
			d.Assignments.Rows[i][0].Text = a.Name
			d.Assignments.Rows[i][0].Title = g.ID
		}
	}
	d.Policies = groupTable("policies", "Policies", "Policy", o.PolicyGroups, func(g compliance.Group) string { return definitionURL(g.DefinitionID) })
	d.Policies.Columns = append(d.Policies.Columns[:1], append([]column{{Key: "assignment", Title: "Assignment", Filter: true}}, d.Policies.Columns[1:]...)...)
	for i, g := range o.PolicyGroups {
		name := lastSegment(g.AssignmentID)
		if a, ok := infos[strings.ToLower(g.AssignmentID)]; ok {
			name = a.Name
		}
		rw := d.Policies.Rows[i]
		d.Policies.Rows[i] = append(row{rw[0], link(name, assignmentURL(g.AssignmentID))}, rw[1:]...)
	}
	v := &view{Template: "overview", Title: "Compliance", Nav: "overview", Data: d,
		Tables: []*table{d.Teams, d.Groups, d.ManagementGroups, d.Initiatives, d.Assignments, d.Policies}}
	if !scope.IsRoot() {
		v.Title = "Compliance in " + d.ScopeName
		v.Crumbs = scopeCrumbs(h.cp.Tree(), scope)
	}
	return v, nil
}

// groupTable lists groups with their compliance, worst first.
func groupTable(name, title, what string, gs []compliance.Group, href func(compliance.Group) string) *table {
	t := &table{Name: name, Title: title, Empty: "Nothing evaluated here yet.", Columns: []column{
		{Key: "name", Title: what}, {Key: "compliance", Title: "Compliance", Numeric: true},
		{Key: "nonCompliant", Title: "Non-compliant resources", Numeric: true}, {Key: "resources", Title: "Resources", Numeric: true}}}
	for _, g := range gs {
		t.Rows = append(t.Rows, row{{Text: g.Name, Href: href(g), Title: g.ID}, percent(g.CompliancePercentage), number(g.NonCompliantResources), number(g.Total)})
	}
	return t
}

func resourcesURL(scope resource.ID, state string) string {
	u := "/ui/resources"
	var q []string
	if !scope.IsRoot() {
		q = append(q, "scope="+urlQueryEscape(scope.String()))
	}
	if state != "" {
		q = append(q, "resources.state="+state)
	}
	if len(q) > 0 {
		u += "?" + strings.Join(q, "&")
	}
	return u
}

// scopeName is how a scope is called on a page.
func scopeName(id resource.ID) string {
	switch id.Kind() {
	case resource.KindRoot:
		return "the whole organisation"
	case resource.KindManagementGroup:
		return "management group " + id.ManagementGroup
	case resource.KindSubscription:
		return id.Subscription
	case resource.KindResourceGroup:
		return id.Subscription + " / " + id.ResourceGroup
	}
	return id.String()
}

// scopeCrumbs leads from the organisation down to scope's parent.
func scopeCrumbs(tree *resource.Hierarchy, scope resource.ID) []crumb {
	anc := tree.Ancestors(scope)
	out := make([]crumb, 0, len(anc))
	for i := len(anc) - 1; i >= 0; i-- {
		a := anc[i]
		if !a.IsScope() {
			continue
		}
		text := scopeName(a)
		if a.IsRoot() {
			text = "Organisation"
		}
		out = append(out, crumb{Text: text, Href: scopeURL(a.String())})
	}
	return out
}

// resourceList lists the resources the caller sees that policies evaluate, with their
// roll-up state, in one scope.
func (h *Handler) resourceList(r *request) (*view, error) {
	scope, err := scopeParam(r)
	if err != nil {
		return nil, err
	}
	scopes, err := h.readable(r.caller, scope)
	if err != nil {
		return nil, err
	}
	if err := h.rollup.Sync(r.ctx); err != nil {
		return nil, err
	}
	list := h.rollup.Resources(compliance.RollupView{Scopes: scopes, Tree: h.cp.Tree()})
	t := &table{Name: "resources", Title: "Resources", Empty: "No resource here has been evaluated yet.", Columns: []column{
		{Key: "name", Title: "Name"}, {Key: "state", Title: "Compliance", Filter: true},
		{Key: "nonCompliantPolicies", Title: "Non-compliant policies", Numeric: true}, {Key: "policies", Title: "Policies", Numeric: true},
		{Key: "type", Title: "Type", Filter: true}, {Key: "subscription", Title: "Subscription", Filter: true},
		{Key: "resourceGroup", Title: "Resource group", Filter: true}, {Key: "id", Title: "ID"}}}
	for _, s := range list {
		id, _ := resource.Parse(s.ID)
		t.Rows = append(t.Rows, row{link(id.Name(), resourceURL(s.ID)), stateCell(s.State), number(int64(s.NonCompliantPolicies)),
			number(int64(s.Policies)), text(s.Type), text(id.Subscription), text(id.ResourceGroup), text(s.ID)})
	}
	v := &view{Template: "resources", Title: "Resources", Nav: "resources", Data: map[string]any{"Table": t, "Scope": scope.String(), "ScopeName": scopeName(scope)}, Tables: []*table{t}}
	if !scope.IsRoot() {
		v.Title = "Resources in " + scopeName(scope)
		v.Crumbs = append(scopeCrumbs(h.cp.Tree(), scope), crumb{Text: "Compliance in " + scopeName(scope), Href: scopeURL(scope.String())})
	}
	return v, nil
}

// isNotFound reports an error that means "not there, or not yours".
func isNotFound(err error) bool {
	var re *resource.Error
	return errors.As(err, &re) && (re.Code == resource.CodeNotFound || re.Code == resource.CodeAuthorizationFailed || re.Code == resource.CodeParentNotFound)
}
