package web

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gildhq/gild/agentproto"
	"github.com/gildhq/gild/compliance"
	"github.com/gildhq/gild/controlplane"
	"github.com/gildhq/gild/fleet"
	"github.com/gildhq/gild/policy"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
	"github.com/gildhq/gild/vm"
)

// maxMachineEvents bounds the drift and correction events a resource page reads, newest
// first; the API pages through all of them.
const maxMachineEvents = 1000

// resourceData is what the resource page shows.
type resourceData struct {
	ID, Name, Type, Location    string
	Subscription, ResourceGroup string
	Machine                     bool // a VM or an enrolled machine: image, agent, machine configuration
	VM                          bool
	ServiceModel                string
	Size                        string
	ProvisioningState           string
	PowerState                  string
	InstanceView                *vm.InstanceView
	InstanceViewProblem         string
	CreatedAt                   time.Time
	CreatedBy                   string
	ModifiedAt                  time.Time
	AgeDays                     *int64
	Compliance                  string // the worst of its policy states; "" when none
	NonCompliantPolicies        int
	Image                       imageFacts
	Tattoo                      []kv
	TattooMatches               *bool
	Agent                       agentFacts
	Messages                    []assignmentMessage
	Properties                  string
	ResourcesURL, ScopeName     string

	Tags, States, GuestAssignments, Checks, Events, History *table
	EventsCapped                                            bool
	MaxEvents                                               int
}

type kv struct{ Key, Value string }

// imageFacts are what the page knows of the image a machine runs.
type imageFacts struct {
	// Gallery images: the definition and version, and what the gallery says of them.
	DefinitionID, DefinitionName, Version, VersionID string
	Lifecycle                                        string
	VersionsBehind, AgeDays, DaysPastEndOfLife       *int64
	// Marketplace images and references outside the gallery.
	Marketplace string
	Reference   string
}

// EndOfLife says when the version's life ends, relative to today.
func (i imageFacts) EndOfLife() string {
	if i.DaysPastEndOfLife == nil {
		return ""
	}
	switch d := *i.DaysPastEndOfLife; {
	case d > 0:
		return fmt.Sprintf("ended %s ago", days(d))
	case d == 0:
		return "ends today"
	default:
		return "in " + days(-d)
	}
}

// EndOfLifeClass is the badge class of EndOfLife.
func (i imageFacts) EndOfLifeClass() string {
	switch {
	case i.DaysPastEndOfLife == nil:
		return "neutral"
	case *i.DaysPastEndOfLife >= 0:
		return "bad"
	case *i.DaysPastEndOfLife > -30:
		return "warn"
	}
	return "good"
}

// Behind says whether newer versions offered as latest exist.
func (i imageFacts) Behind() bool { return i.VersionsBehind != nil && *i.VersionsBehind > 0 }

// Known says whether anything is known of the image.
func (i imageFacts) Known() bool {
	return i.DefinitionID != "" || i.Marketplace != "" || i.Reference != ""
}

func days(n int64) string {
	if n == 1 {
		return "1 day"
	}
	return strconv.FormatInt(n, 10) + " days"
}

// agentFacts are what the machine's agent reported.
type agentFacts struct {
	Status                          string
	LastHeartbeat, LastBoot         time.Time
	Version, Kernel, OSName, OSVers string
}

// assignmentMessage is an assignment's non-compliance message, for a policy the resource
// does not comply with.
type assignmentMessage struct {
	Assignment, AssignmentID, Policy, Message string
}

// enrichedGild returns properties.gild of res as the policy engine sees it: the gallery's
// facts about its image, then what its agent reported (the fleet's enricher reads the
// gallery's). Nothing is written back.
func (h *Handler) enrichedGild(ctx context.Context, res *resource.Resource, now time.Time) (map[string]any, error) {
	raw, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("resource %s: %w", res.ID, err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("resource %s: %w", res.ID, err)
	}
	var enrichers []compliance.Enricher
	if h.opts.Gallery != nil {
		enrichers = append(enrichers, h.opts.Gallery.Enrich)
	}
	if h.opts.Fleet != nil {
		enrichers = append(enrichers, h.opts.Fleet.Enrich)
	}
	for _, e := range enrichers {
		if err := e(ctx, h.cp.Store(), doc, now); err != nil {
			return nil, fmt.Errorf("resource %s: derive its facts: %w", res.ID, err)
		}
	}
	props, _ := doc["properties"].(map[string]any)
	g, _ := props["gild"].(map[string]any)
	if g == nil {
		g = map[string]any{}
	}
	return g, nil
}

// intOf reads a whole number from a document value.
func intOf(v any) *int64 {
	var n int64
	switch x := v.(type) {
	case int64:
		n = x
	case int:
		n = int64(x)
	case float64:
		n = int64(x)
	case json.Number:
		i, err := x.Int64()
		if err != nil {
			return nil
		}
		n = i
	default:
		return nil
	}
	return &n
}

func strOf(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func objOf(m map[string]any, k string) map[string]any {
	o, _ := m[k].(map[string]any)
	return o
}

// serviceModelTag reads the serviceModel tag, case-insensitively, in lower case.
func serviceModelTag(tags map[string]string) string {
	for k, v := range tags {
		if strings.EqualFold(k, "serviceModel") {
			return strings.ToLower(strings.TrimSpace(v))
		}
	}
	return ""
}

// readImage gathers what is known of a machine's image: the gallery's facts when it runs
// a gallery image, else its image reference (a marketplace image).
func readImage(props, g map[string]any) imageFacts {
	var f imageFacts
	if img := objOf(g, "image"); img != nil {
		f.DefinitionID, f.Version = strOf(img, "definitionId"), strOf(img, "version")
		f.DefinitionName = lastSegment(f.DefinitionID)
		if f.DefinitionID != "" && f.Version != "" {
			f.VersionID = f.DefinitionID + "/versions/" + f.Version
		}
		f.Lifecycle = strOf(img, "lifecycleState")
		f.VersionsBehind, f.AgeDays, f.DaysPastEndOfLife = intOf(img["versionsBehind"]), intOf(img["ageDays"]), intOf(img["daysPastEndOfLife"])
		return f
	}
	ir := objOf(objOf(props, "storageProfile"), "imageReference")
	if ir == nil {
		return f
	}
	if id := strOf(ir, "id"); id != "" {
		f.Reference = id
		if v := strOf(ir, "exactVersion"); v != "" {
			f.Reference += " (version " + v + ")"
		}
		return f
	}
	var parts []string
	for _, k := range []string{"publisher", "offer", "sku", "version"} {
		parts = append(parts, strOf(ir, k))
	}
	if v := strOf(ir, "exactVersion"); v != "" {
		parts[3] = v
	}
	if strings.Join(parts, "") != "" {
		f.Marketplace = strings.Join(parts, ":")
	}
	return f
}

// imageVersionCell is a machine's image as a list shows it: the gallery version (a link),
// the marketplace URN or the tattoo's image.
func imageVersionCell(f imageFacts, g map[string]any) cell {
	switch {
	case f.VersionID != "":
		return cell{Text: f.DefinitionName + " " + f.Version, Href: imageURL(f.VersionID), Title: f.VersionID}
	case f.Marketplace != "":
		return text(f.Marketplace)
	case f.Reference != "":
		return text(f.Reference)
	}
	if t := objOf(g, "tattoo"); t != nil && strOf(t, "imageDefinition") != "" {
		return cell{Text: lastSegment(strOf(t, "imageDefinition")) + " " + strOf(t, "imageVersion") + " (tattoo)", Title: strOf(t, "imageDefinition")}
	}
	return text("—")
}

// readAgent reads properties.gild.agent.
func readAgent(g map[string]any) agentFacts {
	a := objOf(g, "agent")
	if a == nil {
		return agentFacts{}
	}
	f := agentFacts{Status: strOf(a, "status"), Version: strOf(a, "version"), Kernel: strOf(a, "kernel"), OSName: strOf(a, "osName"), OSVers: strOf(a, "osVersion")}
	f.LastHeartbeat, _ = time.Parse(time.RFC3339, strOf(a, "lastHeartbeat"))
	f.LastBoot, _ = time.Parse(time.RFC3339, strOf(a, "lastBoot"))
	return f
}

// stateRank orders compliance states worst first, as Azure rolls them up.
func stateRank(s string) int {
	switch s {
	case store.StateNonCompliant:
		return 0
	case store.StateCompliant:
		return 1
	case store.StateConflicting:
		return 2
	case store.StateExempt:
		return 3
	case store.StateUnknown:
		return 4
	}
	return 5
}

// allPolicyStates reads every page of states q selects.
func (h *Handler) allPolicyStates(ctx context.Context, q store.PolicyStateQuery) ([]store.PolicyState, error) {
	var out []store.PolicyState
	q.Limit = store.MaxPageSize
	for {
		page, next, err := h.cp.Store().PolicyStates(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("policy states of %s: %w", q.ResourceID, err)
		}
		out = append(out, page...)
		if next == "" {
			return out, nil
		}
		q.After = next
	}
}

// allTransitions reads every page of the history q selects, oldest first.
func (h *Handler) allTransitions(ctx context.Context, q store.PolicyStateQuery) ([]store.StateTransition, error) {
	var out []store.StateTransition
	q.Limit = store.MaxPageSize
	for {
		page, next, err := h.cp.Store().PolicyStateHistory(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("compliance history of %s: %w", q.ResourceID, err)
		}
		out = append(out, page...)
		if next == "" || len(page) == 0 {
			return out, nil
		}
		q.After = next
	}
}

// policyNames returns the display names of policy definitions and initiatives, by
// lower-case ID: gild's built-ins and those stored. As with assignments, the names of
// the definitions that judge a caller's resources are shown to the caller.
func (h *Handler) policyNames(ctx context.Context, ids []string) map[string]string {
	out := map[string]string{}
	want := map[string]bool{}
	for _, id := range ids {
		if id != "" {
			want[strings.ToLower(id)] = true
		}
	}
	name := func(r *resource.Resource) string {
		var p struct {
			DisplayName string `json:"displayName"`
		}
		_ = json.Unmarshal(r.Properties, &p)
		if p.DisplayName != "" {
			return p.DisplayName
		}
		return r.Name
	}
	for _, b := range compliance.BuiltinDefinitions() {
		if k := strings.ToLower(b.ID); want[k] {
			out[k] = name(b)
		}
	}
	for k := range want {
		if _, ok := out[k]; ok {
			continue
		}
		id, err := resource.Parse(k)
		if err != nil {
			continue
		}
		if r, err := h.cp.Store().Get(ctx, id); err == nil {
			out[k] = name(r)
		}
	}
	return out
}

// messageFor is the assignment's non-compliance message for a policy: the one naming its
// reference id in the initiative, else the one naming none.
func messageFor(a assignmentInfo, referenceID string) string {
	general := ""
	for _, m := range a.Props.NonComplianceMessages {
		switch {
		case m.ReferenceID != "" && strings.EqualFold(m.ReferenceID, referenceID):
			return m.Message
		case m.ReferenceID == "" && general == "":
			general = m.Message
		}
	}
	return general
}

// messageCell shows a message with each web address in it a link.
func messageCell(msg string) cell { return cell{Text: msg, Links: true} }

// reasonValue shows an expected or actual value of a reason.
func reasonValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "(not set)"
	case string:
		return x
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func (h *Handler) resourcePage(r *request) (*view, error) {
	id, err := idFromPath(r)
	if err != nil {
		return nil, err
	}
	if id.IsRoot() {
		return nil, badParam("id", "the page needs a resource ID after /ui/resource")
	}
	// Read as the caller: a resource the caller may not read is not there.
	res, err := h.cp.Get(r.ctx, r.caller, id)
	if err != nil {
		return nil, err
	}
	readable, err := h.readable(r.caller, id)
	if err != nil {
		return nil, err
	}
	d := &resourceData{ID: res.ID, Name: res.Name, Type: res.Type, Location: res.Location,
		Subscription: id.Subscription, ResourceGroup: id.ResourceGroup, MaxEvents: maxMachineEvents}
	if d.Name == "" {
		d.Name = id.Name()
	}
	d.Machine = fleet.IsMachineType(res.Type)
	d.VM = strings.EqualFold(res.Type, fleet.TypeVM)
	if res.SystemData != nil {
		d.CreatedAt, d.CreatedBy, d.ModifiedAt = res.SystemData.CreatedAt, res.SystemData.CreatedBy, res.SystemData.LastModifiedAt
	}
	var props map[string]any
	_ = json.Unmarshal(res.Properties, &props)
	d.Properties = prettyJSON(res.Properties)
	d.ProvisioningState = strOf(props, "provisioningState")
	d.PowerState = strOf(props, "powerState")
	d.Size = strOf(objOf(props, "hardwareProfile"), "vmSize")
	d.ServiceModel = serviceModelTag(res.Tags)

	if d.Machine {
		g, err := h.enrichedGild(r.ctx, res, r.now)
		if err != nil {
			return nil, err
		}
		d.AgeDays = intOf(g["ageDays"])
		d.Image = readImage(props, g)
		if t := objOf(g, "tattoo"); t != nil {
			keys := slices.Sorted(maps.Keys(t))
			for _, k := range keys {
				d.Tattoo = append(d.Tattoo, kv{k, reasonValue(t[k])})
			}
		}
		if m, ok := g["tattooMatchesImage"].(bool); ok {
			d.TattooMatches = &m
		}
		d.Agent = readAgent(g)
	}
	if d.VM && h.opts.VMs != nil {
		iv, err := h.opts.VMs.InstanceView(r.ctx, id)
		if err != nil {
			d.InstanceViewProblem = "The VM runtime could not say how this VM runs: " + err.Error()
		} else {
			d.InstanceView = iv
			d.PowerState = iv.PowerState
			if iv.VMSize != "" {
				d.Size = iv.VMSize
			}
		}
	}

	d.Tags = &table{Name: "tags", Title: "Tags", Empty: "No tags.", Columns: []column{{Key: "name", Title: "Name"}, {Key: "value", Title: "Value"}}}
	tagNames := slices.Sorted(maps.Keys(res.Tags))
	for _, k := range tagNames {
		d.Tags.Rows = append(d.Tags.Rows, row{text(k), text(res.Tags[k])})
	}

	if err := h.resourceCompliance(r, id, readable, d); err != nil {
		return nil, err
	}
	if d.Machine {
		if err := h.resourceMachineConfig(r, id, d); err != nil {
			return nil, err
		}
	}

	scope := nearestScope(id)
	d.ScopeName = scopeName(scope)
	d.ResourcesURL = resourcesURL(scope, "")
	crumbs := append(scopeCrumbs(h.cp.Tree(), scope), crumb{Text: "Resources in " + d.ScopeName, Href: d.ResourcesURL})
	// A child resource (a machine-configuration assignment) leads back to its parents.
	var parents []resource.ID
	for p := id.Parent(); !p.IsScope(); p = p.Parent() {
		parents = append([]resource.ID{p}, parents...)
	}
	for _, p := range parents {
		crumbs = append(crumbs, crumb{Text: p.Name(), Href: resourceURL(p.String())})
	}
	tables := []*table{d.Tags, d.States, d.History}
	if d.Machine {
		tables = append(tables, d.GuestAssignments, d.Checks, d.Events)
	}
	return &view{Template: "resource", Title: d.Name, Nav: "resources", Crumbs: crumbs, Data: d, Tables: tables}, nil
}

// nearestScope is the resource group, subscription or management group a resource lies in.
func nearestScope(id resource.ID) resource.ID {
	for p := id; ; p = p.Parent() {
		if p.IsScope() {
			return p
		}
	}
}

// resourceCompliance fills in the resource's policy states with their reasons, and its
// evaluation history.
func (h *Handler) resourceCompliance(r *request, id resource.ID, readable []resource.ID, d *resourceData) error {
	q := store.PolicyStateQuery{ResourceID: id.String(), Scopes: readable}
	states, err := h.allPolicyStates(r.ctx, q)
	if err != nil {
		return err
	}
	history, err := h.allTransitions(r.ctx, q)
	if err != nil {
		return err
	}
	infos, err := h.assignments(r.ctx)
	if err != nil {
		return err
	}
	var defIDs []string
	for _, s := range states {
		defIDs = append(defIDs, s.DefinitionID)
	}
	for _, t := range history {
		defIDs = append(defIDs, t.DefinitionID)
	}
	names := h.policyNames(r.ctx, defIDs)
	assignmentCell := func(assignmentID string) (cell, assignmentInfo) {
		a, ok := infos[strings.ToLower(assignmentID)]
		if !ok {
			return cell{Text: lastSegment(assignmentID), Href: assignmentURL(assignmentID), Title: assignmentID}, a
		}
		return cell{Text: a.Name, Href: assignmentURL(assignmentID), Title: assignmentID}, a
	}
	policyCell := func(definitionID, referenceID string) cell {
		name := names[strings.ToLower(definitionID)]
		if name == "" {
			name = lastSegment(definitionID)
		}
		if referenceID != "" {
			name += " (" + referenceID + ")"
		}
		return cell{Text: name, Href: definitionURL(definitionID), Title: definitionID}
	}

	sort.SliceStable(states, func(i, j int) bool {
		if a, b := stateRank(states[i].State), stateRank(states[j].State); a != b {
			return a < b
		}
		return false
	})
	d.States = &table{Name: "states", Title: "Policy compliance", Empty: "No policy applies to this resource, or it has not been evaluated yet.", Columns: []column{
		{Key: "assignment", Title: "Assignment", Filter: true}, {Key: "policy", Title: "Policy"}, {Key: "state", Title: "State", Filter: true},
		{Key: "effect", Title: "Effect"}, {Key: "field", Title: "Field"}, {Key: "operator", Title: "Condition"},
		{Key: "expected", Title: "Expected"}, {Key: "actual", Title: "Actual"}, {Key: "reason", Title: "Reason"},
		{Key: "message", Title: "Message"}, {Key: "evaluated", Title: "Evaluated"}, {Key: "since", Title: "In this state since"}}}
	seenMsg := map[string]bool{}
	for _, s := range states {
		if rank := stateRank(s.State); d.Compliance == "" || rank < stateRank(d.Compliance) {
			d.Compliance = s.State
		}
		ac, a := assignmentCell(s.AssignmentID)
		msg := ""
		if s.State == store.StateNonCompliant {
			d.NonCompliantPolicies++
			msg = messageFor(a, s.ReferenceID)
			if key := strings.ToLower(s.AssignmentID) + "\x00" + msg; msg != "" && !seenMsg[key] {
				seenMsg[key] = true
				d.Messages = append(d.Messages, assignmentMessage{Assignment: ac.Text, AssignmentID: s.AssignmentID, Policy: policyCell(s.DefinitionID, s.ReferenceID).Text, Message: msg})
			}
		}
		var reasons []policy.Reason
		if len(s.Reasons) > 0 && string(s.Reasons) != "null" {
			if err := json.Unmarshal(s.Reasons, &reasons); err != nil {
				// Reasons in an unknown shape are shown as they are stored.
				reasons = []policy.Reason{{Phrase: string(s.Reasons)}}
			}
		}
		base := row{ac, policyCell(s.DefinitionID, s.ReferenceID), stateCell(s.State), text(s.Effect)}
		tail := row{messageCell(msg), text(formatTime(s.EvaluatedAt)), text(formatTime(s.ChangedAt))}
		if len(reasons) == 0 {
			d.States.Rows = append(d.States.Rows, append(append(append(row{}, base...), text(""), text(""), text(""), text(""), text("")), tail...))
			continue
		}
		for _, why := range reasons {
			op := why.Operator
			if why.Negated && op != "" {
				op = "not " + op
			}
			field := cell{Text: why.Subject, Title: why.Location}
			rw := append(append(row{}, base...), field, text(op), text(reasonValue(why.Expected)), text(reasonValue(why.Actual)), text(why.Phrase))
			d.States.Rows = append(d.States.Rows, append(rw, tail...))
		}
	}

	d.History = &table{Name: "history", Title: "Evaluation history", Empty: "No compliance state of this resource has changed yet.", Columns: []column{
		{Key: "at", Title: "When"}, {Key: "assignment", Title: "Assignment", Filter: true}, {Key: "policy", Title: "Policy"},
		{Key: "from", Title: "From"}, {Key: "to", Title: "To", Filter: true}}}
	for i := len(history) - 1; i >= 0; i-- {
		t := history[i]
		ac, _ := assignmentCell(t.AssignmentID)
		from, to := stateCell(t.From), stateCell(t.To)
		if t.From == "" {
			from = text("(first evaluation)")
		}
		if t.To == "" {
			to = text("(no longer evaluated)")
		}
		d.History.Rows = append(d.History.Rows, row{text(formatTime(t.At)), ac, policyCell(t.DefinitionID, t.ReferenceID), from, to})
	}
	return nil
}

// guestReport is the part of a guestConfigurationAssignment the page shows.
type guestReport struct {
	GuestConfiguration struct {
		Name           string `json:"name"`
		Version        string `json:"version"`
		AssignmentType string `json:"assignmentType"`
	} `json:"guestConfiguration"`
	ComplianceStatus            string `json:"complianceStatus"`
	LastComplianceStatusChecked string `json:"lastComplianceStatusChecked"`
	LatestAssignmentReport      *struct {
		ComplianceStatus string `json:"complianceStatus"`
		OperationType    string `json:"operationType"`
		Resources        []struct {
			ResourceID       string `json:"resourceId"`
			ComplianceStatus string `json:"complianceStatus"`
			Reasons          []struct {
				Code   string `json:"code"`
				Phrase string `json:"phrase"`
			} `json:"reasons"`
			Properties struct {
				Expected string `json:"expected"`
				Actual   string `json:"actual"`
			} `json:"properties"`
		} `json:"resources"`
	} `json:"latestAssignmentReport"`
}

// resourceMachineConfig fills in a machine's machine-configuration assignments, the result
// of each check, and the drift its agent corrected (or failed to).
func (h *Handler) resourceMachineConfig(r *request, id resource.ID, d *resourceData) error {
	var assignments []*resource.Resource
	req := controlplane.ListRequest{Scope: id, Type: fleet.TypeAssignment, Limit: store.MaxPageSize}
	for {
		page, err := h.cp.List(r.ctx, r.caller, req)
		if err != nil {
			return err
		}
		assignments = append(assignments, page.Items...)
		if page.Next == "" {
			break
		}
		req.After = page.Next
	}
	d.GuestAssignments = &table{Name: "guestAssignments", Title: "Machine configuration", Empty: "No machine configuration is assigned to this machine.", Columns: []column{
		{Key: "name", Title: "Assignment"}, {Key: "configuration", Title: "Configuration"}, {Key: "type", Title: "Assignment type", Filter: true},
		{Key: "status", Title: "Status", Filter: true}, {Key: "operation", Title: "Last run"}, {Key: "checked", Title: "Last checked"}}}
	d.Checks = &table{Name: "checks", Title: "Machine configuration checks", Empty: "The agent has reported no check results yet.", Columns: []column{
		{Key: "assignment", Title: "Assignment", Filter: true}, {Key: "check", Title: "Check"}, {Key: "status", Title: "Status", Filter: true},
		{Key: "code", Title: "Reason code"}, {Key: "reason", Title: "Reason"}, {Key: "expected", Title: "Expected"}, {Key: "actual", Title: "Actual"}}}
	for _, a := range assignments {
		var p guestReport
		_ = json.Unmarshal(a.Properties, &p)
		status := p.ComplianceStatus
		if status == "" {
			status = "Pending"
		}
		conf := p.GuestConfiguration.Name
		if p.GuestConfiguration.Version != "" {
			conf += " " + p.GuestConfiguration.Version
		}
		typ := p.GuestConfiguration.AssignmentType
		if typ == "" {
			typ = "Audit"
		}
		checked := "—"
		if t, err := time.Parse(time.RFC3339, p.LastComplianceStatusChecked); err == nil {
			checked = formatTime(t)
		}
		op := ""
		if p.LatestAssignmentReport != nil {
			op = p.LatestAssignmentReport.OperationType
		}
		nameCell := link(a.Name, resourceURL(a.ID))
		d.GuestAssignments.Rows = append(d.GuestAssignments.Rows, row{nameCell, text(conf), text(typ), stateCell(status), text(op), text(checked)})
		if p.LatestAssignmentReport == nil {
			continue
		}
		for _, c := range p.LatestAssignmentReport.Resources {
			exp, act := c.Properties.Expected, c.Properties.Actual
			if len(c.Reasons) == 0 {
				d.Checks.Rows = append(d.Checks.Rows, row{nameCell, text(c.ResourceID), stateCell(c.ComplianceStatus), text(""), text(""), text(exp), text(act)})
				continue
			}
			for _, why := range c.Reasons {
				d.Checks.Rows = append(d.Checks.Rows, row{nameCell, text(c.ResourceID), stateCell(c.ComplianceStatus), text(why.Code), text(why.Phrase), text(exp), text(act)})
			}
		}
	}
	sort.SliceStable(d.Checks.Rows, func(i, j int) bool {
		return stateRank(d.Checks.Rows[i][2].State) < stateRank(d.Checks.Rows[j][2].State)
	})

	d.Events = &table{Name: "events", Title: "Drift and corrections", Empty: "The agent has reported no corrections.", Columns: []column{
		{Key: "at", Title: "When"}, {Key: "kind", Title: "Event", Filter: true}, {Key: "assignment", Title: "Assignment", Filter: true},
		{Key: "check", Title: "Check"}, {Key: "target", Title: "What"}, {Key: "before", Title: "Before"}, {Key: "after", Title: "After"},
		{Key: "message", Title: "Message"}}}
	if h.opts.Fleet == nil {
		return nil
	}
	events, err := h.opts.Fleet.Events(r.ctx, store.MachineEventQuery{Machine: id.String(), Limit: maxMachineEvents})
	if err != nil {
		return err
	}
	d.EventsCapped = len(events) >= maxMachineEvents
	for _, e := range events {
		kind := text(e.Kind)
		if e.Kind == agentproto.EventApplyError {
			kind.State = "failed" // a badge that says the correction failed
		}
		d.Events.Rows = append(d.Events.Rows, row{text(formatTime(e.At)), kind, text(e.Assignment), text(e.Check), text(e.Target),
			text(e.Before), text(e.After), text(e.Message)})
	}
	return nil
}
