package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gildhq/gild/compliance"
	"github.com/gildhq/gild/controlplane"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// The PolicyInsights paths: {scope}/providers/Microsoft.PolicyInsights/policyStates/
// {latest|default}/{summarize|queryResults|triggerEvaluation}, where scope may also be an
// assignment. "latest" is the current states; "default" (as in Azure) their history.
const (
	insightsNamespace  = "Microsoft.PolicyInsights"
	actionTriggerEval  = "Microsoft.PolicyInsights/policyStates/triggerEvaluation/action"
	insightsStatesType = "Microsoft.PolicyInsights/policyStates"
)

// insightsPath recognises a PolicyInsights path and splits it into the scope, the state
// set (latest or default) and the operation.
func insightsPath(p resource.Path) (scope resource.ID, set, op string, ok bool) {
	if !strings.EqualFold(p.ID.Type(), insightsStatesType) || p.Collection == "" {
		return resource.ID{}, "", "", false
	}
	op = p.Collection[strings.LastIndex(p.Collection, "/")+1:]
	return p.ID.Parent(), strings.ToLower(p.ID.Name()), op, true
}

func (s *Server) insights(w http.ResponseWriter, r *http.Request, c controlplane.Caller, scope resource.ID, set, op string) {
	if s.compliance == nil {
		s.writeError(w, r, resource.Errorf(resource.CodeStoreUnavailable, "", "this server runs without the compliance engine"))
		return
	}
	if r.Method != http.MethodPost && !(r.Method == http.MethodGet && strings.EqualFold(op, "queryResults")) {
		s.writeError(w, r, methodNotAllowed(r, "POST"))
		return
	}
	q := store.PolicyStateQuery{}
	// An assignment as the scope means its states wherever they are.
	if strings.EqualFold(scope.Type(), compliance.TypeAssignment) {
		q.AssignmentID = scope.String()
		scope = resource.Root
	}
	if err := applyFilter(&q, r.URL.Query().Get("$filter")); err != nil {
		s.writeError(w, r, err)
		return
	}
	scopes, err := s.cp.ReadableScopes(c, scope)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q.Scopes = scopes
	if scopes == nil && !scope.IsRoot() {
		q.Scopes = s.cp.Tree().Expand(scope)
	}
	switch {
	case strings.EqualFold(op, "triggerEvaluation") && set == "latest":
		if err := s.cp.Authorize(c, actionTriggerEval, scope); err != nil {
			s.writeError(w, r, err)
			return
		}
		res, err := s.compliance.Scan(r.Context(), scope)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, http.StatusOK, map[string]any{"status": "Succeeded", "result": res})
	case strings.EqualFold(op, "summarize") && set == "latest":
		sum, err := compliance.Summarize(r.Context(), s.cp.Store(), q)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, http.StatusOK, map[string]any{"@odata.count": 1, "value": []compliance.Summary{sum}})
	case strings.EqualFold(op, "queryResults") && set == "latest":
		s.queryStates(w, r, q)
	case strings.EqualFold(op, "queryResults") && set == "default":
		s.queryHistory(w, r, q)
	default:
		s.writeError(w, r, resource.Errorf(resource.CodeInvalidResourceID, r.URL.Path, "unknown policy-state operation %s/%s; use latest/summarize, latest/queryResults, latest/triggerEvaluation or default/queryResults", set, op))
	}
}

// applyFilter reads the small part of OData's $filter that policy-state queries use:
// "name eq 'value'" clauses joined by "and".
func applyFilter(q *store.PolicyStateQuery, filter string) error {
	filter = strings.TrimSpace(filter)
	if filter == "" {
		return nil
	}
	for _, clause := range splitAnd(filter) {
		name, rest, ok := strings.Cut(strings.TrimSpace(clause), " ")
		rest = strings.TrimSpace(rest)
		op, value, ok2 := strings.Cut(rest, " ")
		if !ok || !ok2 || !strings.EqualFold(op, "eq") {
			return resource.Errorf(resource.CodeInvalidParameter, "$filter", "cannot read %q: $filter takes clauses like complianceState eq 'NonCompliant' joined by and", clause)
		}
		value = strings.TrimSpace(value)
		str := strings.Trim(value, "'")
		switch strings.ToLower(name) {
		case "resourceid":
			q.ResourceID = str
		case "policyassignmentid":
			q.AssignmentID = str
		case "policydefinitionid":
			q.DefinitionID = str
		case "policydefinitionreferenceid":
			q.ReferenceID = str
		case "compliancestate":
			st, ok := canonicalState(str)
			if !ok {
				return resource.Errorf(resource.CodeInvalidParameter, "$filter", "complianceState %q is not one of Compliant, NonCompliant, Exempt, Conflicting, Unknown, NotStarted", str)
			}
			q.State = st
		case "iscompliant":
			if strings.EqualFold(value, "true") {
				q.State = store.StateCompliant
			} else {
				q.State = store.StateNonCompliant
			}
		default:
			return resource.Errorf(resource.CodeInvalidParameter, "$filter", "cannot filter on %q; use resourceId, policyAssignmentId, policyDefinitionId, policyDefinitionReferenceId, complianceState or isCompliant", name)
		}
	}
	return nil
}

// splitAnd splits on " and " outside quotes.
func splitAnd(s string) []string {
	var out []string
	inQuote := false
	start := 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\'':
			inQuote = !inQuote
		case !inQuote && i+5 <= len(s) && strings.EqualFold(s[i:i+5], " and "):
			out = append(out, s[start:i])
			start = i + 5
			i += 4
		}
	}
	return append(out, s[start:])
}

func canonicalState(s string) (string, bool) {
	for _, st := range []string{store.StateCompliant, store.StateNonCompliant, store.StateExempt, store.StateConflicting, store.StateUnknown, store.StateNotStarted} {
		if strings.EqualFold(st, s) {
			return st, true
		}
	}
	return "", false
}

type stateRecord struct {
	Timestamp                   time.Time       `json:"timestamp"`
	ResourceID                  string          `json:"resourceId"`
	ResourceType                string          `json:"resourceType"`
	ResourceLocation            string          `json:"resourceLocation,omitempty"`
	ResourceGroup               string          `json:"resourceGroup,omitempty"`
	SubscriptionID              string          `json:"subscriptionId,omitempty"`
	PolicyAssignmentID          string          `json:"policyAssignmentId"`
	PolicyDefinitionID          string          `json:"policyDefinitionId"`
	PolicySetDefinitionID       string          `json:"policySetDefinitionId,omitempty"`
	PolicyDefinitionReferenceID string          `json:"policyDefinitionReferenceId,omitempty"`
	PolicyDefinitionAction      string          `json:"policyDefinitionAction"`
	ComplianceState             string          `json:"complianceState"`
	IsCompliant                 bool            `json:"isCompliant"`
	StateChangedAt              time.Time       `json:"stateChangedAt"`
	ComplianceReasons           json.RawMessage `json:"complianceReasons,omitempty"`
}

func (s *Server) queryStates(w http.ResponseWriter, r *http.Request, q store.PolicyStateQuery) {
	if err := pageParams(r, &q); err != nil {
		s.writeError(w, r, err)
		return
	}
	states, next, err := s.cp.Store().PolicyStates(r.Context(), q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]stateRecord, len(states))
	for i, st := range states {
		out[i] = stateRecord{Timestamp: st.EvaluatedAt, ResourceID: st.ResourceID, ResourceType: st.ResourceType, ResourceLocation: st.Location,
			ResourceGroup: st.ResourceGroup, SubscriptionID: st.Subscription, PolicyAssignmentID: st.AssignmentID, PolicyDefinitionID: st.DefinitionID,
			PolicySetDefinitionID: st.SetDefinitionID, PolicyDefinitionReferenceID: st.ReferenceID, PolicyDefinitionAction: st.Effect,
			ComplianceState: st.State, IsCompliant: st.State == store.StateCompliant, StateChangedAt: st.ChangedAt}
		if len(st.Reasons) > 0 && string(st.Reasons) != "null" {
			out[i].ComplianceReasons = st.Reasons
		}
	}
	body := map[string]any{"@odata.count": len(out), "value": out}
	if next != "" {
		body["@odata.nextLink"] = nextLink(r, "$skipToken", next)
	}
	s.writeJSON(w, http.StatusOK, body)
}

func (s *Server) queryHistory(w http.ResponseWriter, r *http.Request, q store.PolicyStateQuery) {
	if err := pageParams(r, &q); err != nil {
		s.writeError(w, r, err)
		return
	}
	for _, b := range []struct {
		name string
		dst  *time.Time
	}{{"$from", &q.Since}, {"$to", &q.Until}} {
		if v := r.URL.Query().Get(b.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				s.writeError(w, r, resource.Errorf(resource.CodeInvalidParameter, b.name, "%s must be an RFC 3339 time, not %q", b.name, v))
				return
			}
			*b.dst = t
		}
	}
	ts, next, err := s.cp.Store().PolicyStateHistory(r.Context(), q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	type event struct {
		Timestamp                   time.Time `json:"timestamp"`
		ResourceID                  string    `json:"resourceId"`
		PolicyAssignmentID          string    `json:"policyAssignmentId"`
		PolicyDefinitionID          string    `json:"policyDefinitionId"`
		PolicyDefinitionReferenceID string    `json:"policyDefinitionReferenceId,omitempty"`
		PreviousComplianceState     string    `json:"previousComplianceState,omitempty"`
		ComplianceState             string    `json:"complianceState,omitempty"`
	}
	out := make([]event, len(ts))
	for i, t := range ts {
		out[i] = event{Timestamp: t.At, ResourceID: t.ResourceID, PolicyAssignmentID: t.AssignmentID, PolicyDefinitionID: t.DefinitionID,
			PolicyDefinitionReferenceID: t.ReferenceID, PreviousComplianceState: t.From, ComplianceState: t.To}
	}
	body := map[string]any{"@odata.count": len(out), "value": out}
	if next != "" {
		body["@odata.nextLink"] = nextLink(r, "$skipToken", next)
	}
	s.writeJSON(w, http.StatusOK, body)
}

func pageParams(r *http.Request, q *store.PolicyStateQuery) error {
	if v := r.URL.Query().Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxPageSize {
			return resource.Errorf(resource.CodeInvalidParameter, "$top", "$top must be a whole number from 1 to %d, not %q", store.MaxPageSize, v)
		}
		q.Limit = n
	}
	q.After = r.URL.Query().Get("$skipToken")
	return nil
}
