package compliance

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/gildhq/gild/policy"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// Evaluable reports whether resources of type typ get compliance states: everything but
// the policy and access model itself and the tree's groups.
func Evaluable(typ string) bool {
	l := strings.ToLower(typ)
	return !strings.HasPrefix(l, "microsoft.authorization/") && !strings.HasPrefix(l, "microsoft.policyinsights/") && !strings.HasPrefix(l, "gild.") &&
		!strings.EqualFold(typ, resource.TypeManagementGroup) && !strings.EqualFold(typ, resource.TypeTenant)
}

// applies reports whether assignment a reaches a resource: inside its scope and outside
// its notScopes. within holds the keys of the resource and every scope above it.
func (a *assignment) applies(within map[string]bool) bool {
	if !within[a.scopeKey] {
		return false
	}
	for _, k := range a.notScopeKeys {
		if within[k] {
			return false
		}
	}
	return true
}

// inIndexedMode reports whether Indexed-mode policies evaluate a resource: only types that
// take tags and location, and (as Azure documents) not resource groups or subscriptions,
// which need mode All.
func inIndexedMode(id resource.ID) bool {
	if id.Kind() == resource.KindResourceGroup || id.Kind() == resource.KindSubscription {
		return false
	}
	info, _ := resource.LookupType(id.Type())
	return info.Tracked
}

// withinKeys are the keys of id and of every scope that contains it, the tree included:
// computed once per resource, so each assignment's scope test is a map lookup.
func withinKeys(id resource.ID, tree *resource.Hierarchy) map[string]bool {
	anc := tree.Ancestors(id)
	m := make(map[string]bool, len(anc)+1)
	m[id.Key()] = true
	for _, a := range anc {
		m[a.Key()] = true
	}
	return m
}

// toDoc turns a resource into the policy package's value model. It builds the envelope
// directly and decodes only the raw JSON parts: this runs once per resource in every scan.
func toDoc(r *resource.Resource) (map[string]any, error) {
	m := make(map[string]any, 10)
	m["id"], m["name"], m["type"] = r.ID, r.Name, r.Type
	for k, v := range map[string]string{"kind": r.Kind, "location": r.Location, "managedBy": r.ManagedBy} {
		if v != "" {
			m[k] = v
		}
	}
	if len(r.Tags) > 0 {
		tags := make(map[string]any, len(r.Tags))
		for k, v := range r.Tags {
			tags[k] = v
		}
		m["tags"] = tags
	}
	if r.SystemData != nil {
		m["systemData"] = map[string]any{"createdBy": r.SystemData.CreatedBy, "createdAt": r.SystemData.CreatedAt.Format(time.RFC3339Nano),
			"lastModifiedBy": r.SystemData.LastModifiedBy, "lastModifiedAt": r.SystemData.LastModifiedAt.Format(time.RFC3339Nano)}
	}
	if len(r.Zones) > 0 {
		zones := make([]any, len(r.Zones))
		for i, z := range r.Zones {
			zones[i] = z
		}
		m["zones"] = zones
	}
	for k, raw := range map[string]json.RawMessage{"sku": r.SKU, "plan": r.Plan, "identity": r.Identity, "properties": r.Properties} {
		if len(raw) == 0 {
			continue
		}
		v, err := policy.DecodeJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("decode %s of %s: %w", k, r.ID, err)
		}
		if v != nil {
			m[k] = v
		}
	}
	return m, nil
}

// document is the resource as policies see it: its JSON with the enrichers' derived
// fields under properties.gild.
func (ev *evaluation) document(ctx context.Context, r *resource.Resource) (map[string]any, error) {
	doc, err := toDoc(r)
	if err != nil {
		return nil, err
	}
	for _, enrich := range ev.e.enrichers {
		if err := enrich(ctx, ev.r, doc, ev.now); err != nil {
			return nil, fmt.Errorf("derive the gild properties of %s: %w", r.ID, err)
		}
	}
	return doc, nil
}

// evaluation is the state of evaluating resources inside one read: the containers'
// objects for resourceGroup() and subscription(), fetched once each.
type evaluation struct {
	e     *Engine
	r     store.Reader
	tree  *resource.Hierarchy
	cat   *catalog
	now   time.Time
	cache map[string]map[string]any
}

func (e *Engine) newEvaluation(r store.Reader, tree *resource.Hierarchy) *evaluation {
	return &evaluation{e: e, r: r, tree: tree, cat: e.cat.Load(), now: e.now().UTC(), cache: map[string]map[string]any{}}
}

// container returns the resource group or subscription object for the functions of the
// same names; absent ones give an empty object. The cache key is built from the names as
// spelt, which is cheaper than the ID's key; differently spelt names cost one more read.
func (ev *evaluation) container(ctx context.Context, k string, id resource.ID) map[string]any {
	if m, ok := ev.cache[k]; ok {
		return m
	}
	m := map[string]any{}
	if r, err := ev.r.Get(ctx, id); err == nil {
		if doc, err := toDoc(r); err == nil {
			m = doc
			if id.Kind() == resource.KindSubscription {
				m["subscriptionId"] = id.Subscription
				if dn := r.StringProperty("displayName"); dn != "" {
					m["displayName"] = dn
				} else {
					m["displayName"] = id.Subscription
				}
			}
		}
	}
	ev.cache[k] = m
	return m
}

func (ev *evaluation) input(ctx context.Context, id resource.ID, doc map[string]any) policy.Input {
	in := policy.Input{Resource: doc, Now: ev.now}
	if id.Subscription != "" {
		in.Subscription = ev.container(ctx, "s:"+id.Subscription, resource.SubscriptionID(id.Subscription))
		if id.ResourceGroup != "" {
			in.ResourceGroup = ev.container(ctx, "g:"+id.Subscription+"/"+id.ResourceGroup, resource.ResourceGroupID(id.Subscription, id.ResourceGroup))
		}
	}
	return in
}

// decide evaluates one member, fetching the related resources an existence check needs.
func (ev *evaluation) decide(ctx context.Context, m member, a *assignment, in *policy.Input) (policy.Decision, error) {
	in.Policy = m.policyInfo
	q := m.prepared
	switch q.Effect() {
	case "auditifnotexists", "deployifnotexists":
	default:
		return q.Decide(in, nil)
	}
	res, err := q.Eval(in)
	if err != nil || !res.Matched || res.Failed {
		return q.Decide(in, nil)
	}
	check, err := q.Existence(in)
	if err != nil || check == nil {
		return q.Decide(in, nil)
	}
	related, err := ev.related(ctx, check, in.Resource)
	if err != nil {
		return policy.Decision{}, err
	}
	if q.Effect() == "auditifnotexists" {
		rid, _ := in.Resource["id"].(string)
		ev.guestNeed(m, rid, check.Type, check.Name, related)
	}
	return q.Decide(in, related)
}

// related lists the candidates for an existence check: resources of its type under the
// evaluated resource (extension and child resources), or in its resource group or
// subscription.
func (ev *evaluation) related(ctx context.Context, check *policy.ExistenceCheck, res map[string]any) ([]map[string]any, error) {
	rid, _ := res["id"].(string)
	id, err := resource.Parse(rid)
	if err != nil {
		return nil, nil
	}
	scope := id
	switch {
	case strings.Count(strings.ToLower(check.Type), "/") > 1 && strings.HasPrefix(strings.ToLower(check.Type), strings.ToLower(id.Type())+"/"):
		// A child type of the evaluated resource lives under it.
	case check.Scope == "subscription" && id.Subscription != "":
		scope = resource.SubscriptionID(id.Subscription)
	case check.ResourceGroupName != "" && id.Subscription != "":
		scope = resource.ResourceGroupID(id.Subscription, check.ResourceGroupName)
	case id.ResourceGroup != "":
		scope = resource.ResourceGroupID(id.Subscription, id.ResourceGroup)
	}
	page, err := ev.r.List(ctx, store.ListQuery{Scopes: []resource.ID{scope}, Type: check.Type, Limit: store.MaxPageSize})
	if err != nil {
		return nil, fmt.Errorf("find %s for %s: %w", check.Type, rid, err)
	}
	out := make([]map[string]any, 0, len(page.Items))
	for _, r := range page.Items {
		if doc, err := toDoc(r); err == nil {
			out = append(out, doc)
		}
	}
	return out, nil
}

// states evaluates one resource against every assignment that reaches it.
func (ev *evaluation) states(ctx context.Context, res *resource.Resource) ([]store.PolicyState, error) {
	id, err := resource.Parse(res.ID)
	if err != nil || !Evaluable(id.Type()) {
		return nil, nil
	}
	indexedOK := inIndexedMode(id)
	within := withinKeys(id, ev.tree)
	var doc map[string]any
	var out []store.PolicyState
	for _, a := range ev.cat.assignments {
		if a.err != nil || !a.applies(within) {
			continue
		}
		for _, m := range a.members {
			if m.indexed && !indexedOK {
				continue
			}
			if m.prepared.Effect() == "disabled" {
				continue
			}
			if doc == nil {
				if doc, err = ev.document(ctx, res); err != nil {
					return nil, err
				}
			}
			in := ev.input(ctx, id, doc)
			d, err := ev.decide(ctx, m, a, &in)
			if err != nil {
				return nil, err
			}
			st := store.PolicyState{ResourceID: res.ID, ResourceType: id.Type(), ResourceGroup: id.ResourceGroup,
				Subscription: id.Subscription, Location: res.Location, AssignmentID: a.idStr,
				DefinitionID: m.definitionID, SetDefinitionID: a.setDefinitionID, ReferenceID: m.referenceID,
				Effect: d.Effect, EvaluatedAt: ev.now}
			switch {
			case d.Effect == "manual":
				// People attest manual policies; until then the definition's defaultState holds.
				st.State = map[string]string{"Compliant": store.StateCompliant, "NonCompliant": store.StateNonCompliant}[m.prepared.ManualDefaultState()]
				if st.State == "" {
					st.State = store.StateUnknown
				}
			case d.Compliant:
				st.State = store.StateCompliant
			default:
				st.State = store.StateNonCompliant
				st.Reasons, _ = json.Marshal(d.Reasons)
			}
			if d.Effect == "none" {
				st.Effect = m.prepared.Effect()
			}
			if x := ev.exemption(a, m.referenceID, within); x != nil {
				st.State = store.StateExempt
				st.Reasons, _ = json.Marshal([]map[string]string{{"phrase": "Exempt (" + x.category + ") by " + x.id.String()}})
			}
			out = append(out, st)
		}
	}
	return out, nil
}

func (ev *evaluation) exemption(a *assignment, referenceID string, within map[string]bool) *exemption {
	for _, x := range ev.cat.exemptions {
		if x.applies(a.key, referenceID, within, ev.now) {
			return x
		}
	}
	return nil
}

// Evaluate returns the compliance states of one resource, reading related resources and
// containers through r.
func (e *Engine) Evaluate(ctx context.Context, r store.Reader, tree *resource.Hierarchy, res *resource.Resource) ([]store.PolicyState, error) {
	return e.newEvaluation(r, tree).states(ctx, res)
}

// admit decides whether next may be stored, applying modify and append first and then
// deny, as Azure orders effects. It returns the resource to store.
func (e *Engine) admit(ctx context.Context, r store.Reader, tree *resource.Hierarchy, next *resource.Resource) (*resource.Resource, error) {
	id, err := resource.Parse(next.ID)
	if err != nil || !Evaluable(id.Type()) {
		return next, nil
	}
	ev := e.newEvaluation(r, tree)
	indexedOK := inIndexedMode(id)
	within := withinKeys(id, tree)
	var doc map[string]any
	changed := false
	type member2 struct {
		a *assignment
		m member
	}
	var denies []member2
	for _, a := range ev.cat.assignments {
		if a.err != nil || !a.enforce || !a.applies(within) {
			continue
		}
		for _, m := range a.members {
			eff := m.prepared.Effect()
			if eff != "deny" && eff != "modify" && eff != "append" {
				continue
			}
			if m.indexed && !indexedOK {
				continue
			}
			if ev.exemption(a, m.referenceID, within) != nil {
				continue
			}
			if eff == "deny" {
				denies = append(denies, member2{a, m})
				continue
			}
			if doc == nil {
				if doc, err = ev.document(ctx, next); err != nil {
					return nil, err
				}
			}
			in := ev.input(ctx, id, doc)
			d, err := ev.decide(ctx, m, a, &in)
			if err != nil {
				return nil, err
			}
			if len(d.Operations) == 0 {
				continue
			}
			res, err := policy.ApplyOperations(doc, d.Operations, e.aliases)
			if err != nil {
				return nil, disallowed(a, m, id, "its "+eff+" effect could not be applied: "+err.Error())
			}
			if res.Conflict != "" && m.prepared.ConflictEffect() == "deny" {
				return nil, disallowed(a, m, id, fmt.Sprintf("its %s effect conflicts with the value of %s", eff, res.Conflict))
			}
			changed = changed || res.Changed
		}
	}
	for _, dm := range denies {
		if doc == nil {
			if doc, err = ev.document(ctx, next); err != nil {
				return nil, err
			}
		}
		in := ev.input(ctx, id, doc)
		d, err := ev.decide(ctx, dm.m, dm.a, &in)
		if err != nil {
			return nil, err
		}
		if !d.Compliant {
			return nil, disallowed(dm.a, dm.m, id, "")
		}
	}
	if !changed {
		return next, nil
	}
	// Derived fields are for evaluation only; they are not part of what is stored.
	if props, ok := doc["properties"].(map[string]any); ok {
		delete(props, "gild")
	}
	delete(doc, "systemData")
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("admit %s: %w", id, err)
	}
	var out resource.Resource
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("admit %s: %w", id, err)
	}
	return &out, nil
}

// disallowed is the refusal of a write by a deny policy, worded as Azure words it, with
// the assignment's non-compliance message.
func disallowed(a *assignment, m member, id resource.ID, why string) error {
	msg := fmt.Sprintf("Resource '%s' was disallowed by policy assignment '%s' (definition '%s'", id.Name(), a.id.Name(), m.definitionID)
	if m.referenceID != "" {
		msg += ", reference '" + m.referenceID + "'"
	}
	msg += ")"
	if why != "" {
		msg += ": " + why
	}
	if text := a.message(m.referenceID); text != "" {
		msg += ". " + text
	}
	return &resource.Error{Code: CodeDisallowedByPolicy, Target: a.id.String(), Message: msg}
}

// message is the non-compliance message for a member: its own, or the assignment's.
func (a *assignment) message(referenceID string) string {
	if m, ok := a.messages[strings.ToLower(referenceID)]; ok && referenceID != "" {
		return m
	}
	return a.messages[""]
}
