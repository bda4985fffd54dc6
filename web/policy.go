package web

import (
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/gildhq/gild/compliance"
	"github.com/gildhq/gild/controlplane"
	"github.com/gildhq/gild/policy"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// maxStateRows bounds the states a policy page reads: beyond it the page says how many
// more there are and the export or the API has them all.
const maxStateRows = 20000

// definitionInfo is what the pages show of a policy definition or initiative.
type definitionInfo struct {
	ID          string
	Name        string
	Initiative  bool
	DisplayName string                     `json:"displayName"`
	Description string                     `json:"description"`
	Mode        string                     `json:"mode"`
	PolicyType  string                     `json:"policyType"`
	Metadata    map[string]any             `json:"metadata"`
	Parameters  map[string]json.RawMessage `json:"parameters"`
	PolicyRule  json.RawMessage            `json:"policyRule"`
	Members     []struct {
		ReferenceID  string `json:"policyDefinitionReferenceId"`
		DefinitionID string `json:"policyDefinitionId"`
	} `json:"policyDefinitions"`
	Raw json.RawMessage
}

func readDefinition(r *resource.Resource) definitionInfo {
	var d definitionInfo
	_ = json.Unmarshal(r.Properties, &d)
	d.ID, d.Name, d.Raw = r.ID, r.Name, r.Properties
	d.Initiative = strings.EqualFold(r.Type, compliance.TypeSetDefinition)
	if d.DisplayName == "" {
		d.DisplayName = r.Name
	}
	return d
}

// Category is the definition's metadata category, if any.
func (d definitionInfo) Category() string {
	s, _ := d.Metadata["category"].(string)
	return s
}

// DefaultEffect is the effect the rule names, or its effect parameter's default.
func (d definitionInfo) DefaultEffect() string {
	var rule struct {
		Then struct {
			Effect string `json:"effect"`
		} `json:"then"`
	}
	_ = json.Unmarshal(d.PolicyRule, &rule)
	e := rule.Then.Effect
	if strings.HasPrefix(e, "[parameters('") {
		name := strings.TrimSuffix(strings.TrimPrefix(e, "[parameters('"), "')]")
		var p struct {
			DefaultValue any `json:"defaultValue"`
		}
		_ = json.Unmarshal(d.Parameters[name], &p)
		if s, ok := p.DefaultValue.(string); ok {
			return s
		}
		return "(parameter " + name + ")"
	}
	return e
}

// lookupDefinition reads a definition or initiative as the caller. Definitions at the root
// (gild's built-ins among them) or at a management group are the rules that apply to
// everything under them, so any signed-in caller may read those, as in Azure.
func (h *Handler) lookupDefinition(r *request, id resource.ID) (*resource.Resource, error) {
	res, err := h.cp.Get(r.ctx, r.caller, id)
	if err == nil || !isNotFound(err) {
		return res, err
	}
	if id.Subscription != "" {
		return nil, err
	}
	for _, b := range compliance.BuiltinDefinitions() {
		if strings.EqualFold(b.ID, id.String()) {
			return b, nil
		}
	}
	return h.cp.Get(r.ctx, controlplane.System, id)
}

// lookupAssignment reads an assignment as the caller, or as gild when the assignment
// applies to resources the caller may read (Azure shows inherited assignments too).
func (h *Handler) lookupAssignment(r *request, id resource.ID) (*resource.Resource, []resource.ID, error) {
	scopes, err := h.readable(r.caller, resource.Root)
	if err != nil && !isNotFound(err) {
		return nil, nil, err
	}
	if err != nil {
		scopes = []resource.ID{}
	}
	res, err := h.cp.Get(r.ctx, r.caller, id)
	if err == nil || !isNotFound(err) {
		return res, scopes, err
	}
	states, _, qerr := h.cp.Store().PolicyStates(r.ctx, store.PolicyStateQuery{Scopes: scopes, AssignmentID: id.String(), Limit: 1})
	if qerr != nil || len(states) == 0 {
		return nil, nil, err
	}
	res, err = h.cp.Get(r.ctx, controlplane.System, id)
	return res, scopes, err
}

func (h *Handler) policies(r *request) (*view, error) {
	scopes, err := h.readable(r.caller, resource.Root)
	if err != nil && !isNotFound(err) {
		return nil, err
	}
	if err != nil {
		scopes = []resource.ID{}
	}
	if err := h.rollup.Sync(r.ctx); err != nil {
		return nil, err
	}
	infos, err := h.assignments(r.ctx)
	if err != nil {
		return nil, err
	}
	o := h.rollup.Overview(compliance.RollupView{Scopes: scopes, Tree: h.cp.Tree()})
	byAssignment := map[string]compliance.Group{}
	for _, g := range o.Assignments {
		byAssignment[strings.ToLower(g.ID)] = g
	}
	at := &table{Name: "assignments", Title: "Policy assignments", Empty: "No policy is assigned where you can see.", Columns: []column{
		{Key: "name", Title: "Assignment"}, {Key: "scope", Title: "Scope", Filter: true}, {Key: "definition", Title: "Definition"},
		{Key: "enforcement", Title: "Enforcement", Filter: true}, {Key: "compliance", Title: "Compliance", Numeric: true},
		{Key: "nonCompliant", Title: "Non-compliant resources", Numeric: true}, {Key: "resources", Title: "Resources", Numeric: true}}}
	keys := slices.Sorted(maps.Keys(infos))
	for _, k := range keys {
		a := infos[k]
		g, evaluated := byAssignment[k]
		// An assignment is listed if the caller may read it, or if it applies to resources
		// the caller sees.
		if !evaluated {
			id, _ := resource.Parse(a.ID)
			if _, err := h.cp.Get(r.ctx, r.caller, id); err != nil {
				continue
			}
		}
		comp := cell{Text: "—"}
		if evaluated {
			comp = percent(g.CompliancePercentage)
		}
		at.Rows = append(at.Rows, row{{Text: a.Name, Href: assignmentURL(a.ID), Title: a.ID}, link(a.Scope, scopeURL(a.Scope)),
			link(lastSegment(a.DefinitionID), definitionURL(a.DefinitionID)), text(a.EnforcementMode), comp,
			number(g.NonCompliantResources), number(g.Total)})
	}
	dt := &table{Name: "definitions", Title: "Definitions and initiatives", Columns: []column{
		{Key: "name", Title: "Definition"}, {Key: "kind", Title: "Kind", Filter: true}, {Key: "type", Title: "Type", Filter: true},
		{Key: "category", Title: "Category", Filter: true}, {Key: "effect", Title: "Default effect", Filter: true}, {Key: "id", Title: "ID"}}}
	defs := compliance.BuiltinDefinitions()
	for _, typ := range []string{compliance.TypeDefinition, compliance.TypeSetDefinition} {
		list, err := h.listAll(r, resource.Root, typ)
		if err != nil {
			return nil, err
		}
		defs = append(defs, list...)
	}
	seen := map[string]bool{}
	for _, res := range defs {
		if seen[strings.ToLower(res.ID)] {
			continue
		}
		seen[strings.ToLower(res.ID)] = true
		d := readDefinition(res)
		kind := "Policy"
		if d.Initiative {
			kind = "Initiative"
		}
		dt.Rows = append(dt.Rows, row{link(d.DisplayName, definitionURL(d.ID)), text(kind), text(orDash(d.PolicyType)),
			text(orDash(d.Category())), text(orDash(d.DefaultEffect())), text(d.ID)})
	}
	return &view{Template: "policies", Title: "Policies", Nav: "policies", Data: map[string]any{"Assignments": at, "Definitions": dt},
		Tables: []*table{at, dt}}, nil
}

// listAll lists every resource of typ in scope that the caller may read; a scope the caller
// sees nothing of is an empty list.
func (h *Handler) listAll(r *request, scope resource.ID, typ string) ([]*resource.Resource, error) {
	var out []*resource.Resource
	after := ""
	for {
		p, err := h.cp.List(r.ctx, r.caller, controlplane.ListRequest{Scope: scope, Type: typ, Limit: store.MaxPageSize, After: after})
		if err != nil {
			if isNotFound(err) {
				return out, nil
			}
			return nil, err
		}
		out = append(out, p.Items...)
		if p.Next == "" {
			return out, nil
		}
		after = p.Next
	}
}

type assignmentData struct {
	Assignment  assignmentInfo
	Definition  definitionInfo
	Summary     compliance.Summary
	Messages    []messageInfo
	Parameters  *table
	NonComplies *table
	Truncated   int
}

type messageInfo struct{ ReferenceID, Message string }

func (h *Handler) assignment(r *request) (*view, error) {
	id, err := idFromPath(r)
	if err != nil {
		return nil, badParam("id", "%v", err)
	}
	if !strings.EqualFold(id.Type(), compliance.TypeAssignment) {
		return nil, badParam("id", "%s is not a policy assignment", id)
	}
	res, scopes, err := h.lookupAssignment(r, id)
	if err != nil {
		return nil, err
	}
	a := readAssignment(res)
	d := &assignmentData{Assignment: a}
	if defID, err := resource.Parse(a.DefinitionID); err == nil {
		if def, err := h.lookupDefinition(r, defID); err == nil {
			d.Definition = readDefinition(def)
		}
	}
	if d.Definition.ID == "" {
		d.Definition = definitionInfo{ID: a.DefinitionID, DisplayName: lastSegment(a.DefinitionID)}
	}
	messages := map[string]string{}
	for _, m := range a.Props.NonComplianceMessages {
		d.Messages = append(d.Messages, messageInfo{ReferenceID: m.ReferenceID, Message: m.Message})
		messages[strings.ToLower(m.ReferenceID)] = m.Message
	}
	q := store.PolicyStateQuery{Scopes: scopes, AssignmentID: res.ID}
	if d.Summary, err = compliance.Summarize(r.ctx, h.cp.Store(), q); err != nil {
		return nil, err
	}
	d.Parameters = &table{Name: "parameters", Title: "Parameters", Empty: "The assignment sets no parameters; the definition's defaults apply.",
		Columns: []column{{Key: "name", Title: "Parameter"}, {Key: "value", Title: "Value"}}}
	names := slices.Sorted(maps.Keys(a.Props.Parameters))
	for _, n := range names {
		var v struct {
			Value json.RawMessage `json:"value"`
		}
		raw := a.Props.Parameters[n]
		if json.Unmarshal(raw, &v) == nil && v.Value != nil {
			raw = v.Value
		}
		d.Parameters.Rows = append(d.Parameters.Rows, row{text(n), text(compactJSON(raw))})
	}
	d.NonComplies = reasonTable("noncompliant", "Non-compliant resources")
	q.State = store.StateNonCompliant
	q.Limit = store.MaxPageSize
	n := 0
	for {
		states, next, err := h.cp.Store().PolicyStates(r.ctx, q)
		if err != nil {
			return nil, err
		}
		for _, s := range states {
			if n >= maxStateRows {
				d.Truncated++
				continue
			}
			n++
			msg, ok := messages[strings.ToLower(s.ReferenceID)]
			if !ok {
				msg = messages[""]
			}
			d.NonComplies.Rows = append(d.NonComplies.Rows, reasonRows(s, msg)...)
		}
		if next == "" {
			break
		}
		q.After = next
	}
	crumbs := []crumb{{Text: "Policies", Href: "/ui/policies"}}
	return &view{Template: "assignment", Title: a.Name, Nav: "policies", Crumbs: crumbs, Data: d,
		Tables: []*table{d.Parameters, d.NonComplies}}, nil
}

// reasonTable is a list of states with one row per reason.
func reasonTable(name, title string) *table {
	return &table{Name: name, Title: title, Empty: "Every resource evaluated here is compliant.", Columns: []column{
		{Key: "resource", Title: "Resource"}, {Key: "subscription", Title: "Subscription", Filter: true},
		{Key: "resourceGroup", Title: "Resource group", Filter: true}, {Key: "policy", Title: "Policy", Filter: true},
		{Key: "field", Title: "Field"}, {Key: "expected", Title: "Expected"}, {Key: "actual", Title: "Actual"},
		{Key: "reason", Title: "Reason"}, {Key: "message", Title: "What to do"}, {Key: "since", Title: "Since"}}}
}

// reasonRows turns a state into a row per reason, the assignment's message on each.
func reasonRows(s store.PolicyState, message string) []row {
	id, _ := resource.Parse(s.ResourceID)
	pol := lastSegment(s.DefinitionID)
	if s.ReferenceID != "" {
		pol = s.ReferenceID
	}
	base := row{link(id.Name(), resourceURL(s.ResourceID)), text(id.Subscription), text(id.ResourceGroup), text(pol)}
	msg := messageCell(message)
	since := text(formatTime(s.ChangedAt))
	var reasons []policy.Reason
	_ = json.Unmarshal(s.Reasons, &reasons)
	if len(reasons) == 0 {
		return []row{append(append(row{}, base...), text("—"), text("—"), text("—"), text("—"), msg, since)}
	}
	out := make([]row, 0, len(reasons))
	for _, rs := range reasons {
		expected := reasonValue(rs.Expected)
		if rs.Operator != "" {
			not := ""
			if rs.Negated {
				not = "not "
			}
			expected = not + rs.Operator + " " + expected
		}
		out = append(out, append(append(row{}, base...), text(rs.Subject), text(expected), text(reasonValue(rs.Actual)), text(rs.Phrase), msg, since))
	}
	return out
}

func compactJSON(raw json.RawMessage) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return string(raw)
	}
	return reasonValue(v)
}

type definitionData struct {
	Definition  definitionInfo
	Rule        string
	Parameters  *table
	Members     *table
	Assignments *table
}

func (h *Handler) definition(r *request) (*view, error) {
	id, err := idFromPath(r)
	if err != nil {
		return nil, badParam("id", "%v", err)
	}
	if t := id.Type(); !strings.EqualFold(t, compliance.TypeDefinition) && !strings.EqualFold(t, compliance.TypeSetDefinition) {
		return nil, badParam("id", "%s is not a policy definition or initiative", id)
	}
	res, err := h.lookupDefinition(r, id)
	if err != nil {
		return nil, err
	}
	d := &definitionData{Definition: readDefinition(res)}
	if len(d.Definition.PolicyRule) > 0 {
		d.Rule = prettyJSON(d.Definition.PolicyRule)
	}
	d.Parameters = &table{Name: "parameters", Title: "Parameters", Empty: "This definition takes no parameters.", Columns: []column{
		{Key: "name", Title: "Parameter"}, {Key: "type", Title: "Type"}, {Key: "default", Title: "Default"},
		{Key: "allowed", Title: "Allowed values"}, {Key: "description", Title: "Description"}}}
	names := slices.Sorted(maps.Keys(d.Definition.Parameters))
	for _, n := range names {
		var p struct {
			Type          string `json:"type"`
			DefaultValue  any    `json:"defaultValue"`
			AllowedValues []any  `json:"allowedValues"`
			Metadata      struct {
				Description string `json:"description"`
			} `json:"metadata"`
		}
		_ = json.Unmarshal(d.Definition.Parameters[n], &p)
		allowed := ""
		if p.AllowedValues != nil {
			allowed = reasonValue(p.AllowedValues)
		}
		def := "—"
		if p.DefaultValue != nil {
			def = reasonValue(p.DefaultValue)
		}
		d.Parameters.Rows = append(d.Parameters.Rows, row{text(n), text(p.Type), text(def), text(orDash(allowed)), text(p.Metadata.Description)})
	}
	tables := []*table{d.Parameters}
	if d.Definition.Initiative {
		d.Members = &table{Name: "members", Title: "Policies in this initiative", Columns: []column{
			{Key: "reference", Title: "Reference"}, {Key: "definition", Title: "Definition"}}}
		for _, m := range d.Definition.Members {
			d.Members.Rows = append(d.Members.Rows, row{text(m.ReferenceID), link(lastSegment(m.DefinitionID), definitionURL(m.DefinitionID))})
		}
		tables = append(tables, d.Members)
	}
	infos, err := h.assignments(r.ctx)
	if err != nil {
		return nil, err
	}
	d.Assignments = &table{Name: "assignments", Title: "Assignments", Empty: "Nothing assigns this definition where you can see.", Columns: []column{
		{Key: "name", Title: "Assignment"}, {Key: "scope", Title: "Scope"}, {Key: "enforcement", Title: "Enforcement"}}}
	for _, a := range infos {
		if !strings.EqualFold(a.DefinitionID, res.ID) {
			continue
		}
		aid, _ := resource.Parse(a.ID)
		if _, _, err := h.lookupAssignment(r, aid); err != nil {
			continue
		}
		d.Assignments.Rows = append(d.Assignments.Rows, row{link(a.Name, assignmentURL(a.ID)), link(a.Scope, scopeURL(a.Scope)), text(a.EnforcementMode)})
	}
	sort.Slice(d.Assignments.Rows, func(i, j int) bool { return d.Assignments.Rows[i][0].Text < d.Assignments.Rows[j][0].Text })
	tables = append(tables, d.Assignments)
	return &view{Template: "definition", Title: d.Definition.DisplayName, Nav: "policies", Crumbs: []crumb{{Text: "Policies", Href: "/ui/policies"}},
		Data: d, Tables: tables}, nil
}
