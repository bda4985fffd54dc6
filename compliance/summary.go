package compliance

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/gildhq/gild/store"
)

// Results are counts in the shape of Azure's policy-state summaries, with gild's
// compliance percentage added.
type Results struct {
	NonCompliantResources int64         `json:"nonCompliantResources"`
	NonCompliantPolicies  int64         `json:"nonCompliantPolicies,omitempty"`
	ResourceDetails       []StateDetail `json:"resourceDetails"`
	PolicyDetails         []StateDetail `json:"policyDetails,omitempty"`
	// CompliancePercentage is Azure's formula: (Compliant + Exempt + Unknown) over
	// (Compliant + NonCompliant + Exempt + Conflicting), 100 when nothing is evaluated.
	CompliancePercentage float64 `json:"compliancePercentage"`
}

// StateDetail is a count of one compliance state (Azure spells them in lower case here).
type StateDetail struct {
	ComplianceState string `json:"complianceState"`
	Count           int64  `json:"count"`
}

// AssignmentSummary is one assignment's part of a summary.
type AssignmentSummary struct {
	PolicyAssignmentID    string              `json:"policyAssignmentId"`
	PolicySetDefinitionID string              `json:"policySetDefinitionId,omitempty"`
	Results               Results             `json:"results"`
	PolicyDefinitions     []DefinitionSummary `json:"policyDefinitions"`
}

// DefinitionSummary is one policy of an assignment.
type DefinitionSummary struct {
	PolicyDefinitionID          string  `json:"policyDefinitionId"`
	PolicyDefinitionReferenceID string  `json:"policyDefinitionReferenceId,omitempty"`
	Effect                      string  `json:"effect,omitempty"`
	Results                     Results `json:"results"`
}

// Summary is the answer to summarize.
type Summary struct {
	Results           Results             `json:"results"`
	PolicyAssignments []AssignmentSummary `json:"policyAssignments"`
}

// Percentage applies Azure's compliance formula to counts by state.
func Percentage(counts map[string]int64) float64 {
	den := counts[store.StateCompliant] + counts[store.StateNonCompliant] + counts[store.StateExempt] + counts[store.StateConflicting]
	if den == 0 {
		return 100
	}
	num := counts[store.StateCompliant] + counts[store.StateExempt] + counts[store.StateUnknown]
	p := float64(num) / float64(den) * 100
	return math.Round(math.Min(p, 100)*100) / 100
}

func details(counts map[string]int64) []StateDetail {
	out := []StateDetail{}
	for _, st := range []string{store.StateNonCompliant, store.StateCompliant, store.StateConflicting, store.StateExempt, store.StateUnknown, store.StateNotStarted} {
		if n := counts[st]; n > 0 {
			out = append(out, StateDetail{ComplianceState: strings.ToLower(st), Count: n})
		}
	}
	return out
}

// Summarize summarises the states q selects: resources by their roll-up state, overall and
// per assignment, and policies (assignment × member) by theirs.
func Summarize(ctx context.Context, st store.PolicyStateStore, q store.PolicyStateQuery) (Summary, error) {
	counts, err := st.SummarizePolicyStates(ctx, q)
	if err != nil {
		return Summary{}, fmt.Errorf("summarize: %w", err)
	}
	overall, err := resourceCounts(ctx, st, q)
	if err != nil {
		return Summary{}, err
	}
	sum := Summary{Results: Results{ResourceDetails: details(overall), CompliancePercentage: Percentage(overall),
		NonCompliantResources: overall[store.StateNonCompliant]}, PolicyAssignments: []AssignmentSummary{}}

	type defKey struct{ assignment, reference string }
	byAssignment := map[string]*AssignmentSummary{}
	defCounts := map[defKey]map[string]int64{}
	defIDs := map[defKey]string{}
	var order []string
	for _, c := range counts {
		ak := strings.ToLower(c.AssignmentID)
		if _, ok := byAssignment[ak]; !ok {
			byAssignment[ak] = &AssignmentSummary{PolicyAssignmentID: c.AssignmentID}
			order = append(order, ak)
		}
		k := defKey{ak, strings.ToLower(c.ReferenceID)}
		if defCounts[k] == nil {
			defCounts[k] = map[string]int64{}
		}
		defCounts[k][c.State] += c.Count
		defIDs[k] = c.DefinitionID
	}
	sort.Strings(order)
	policyStates := map[string]int64{}
	for _, ak := range order {
		as := byAssignment[ak]
		aq := q
		aq.AssignmentID = as.PolicyAssignmentID
		rc, err := resourceCounts(ctx, st, aq)
		if err != nil {
			return Summary{}, err
		}
		as.Results = Results{NonCompliantResources: rc[store.StateNonCompliant], ResourceDetails: details(rc), CompliancePercentage: Percentage(rc)}
		perPolicy := map[string]int64{}
		var keys []defKey
		for k := range defCounts {
			if k.assignment == ak {
				keys = append(keys, k)
			}
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i].reference < keys[j].reference })
		for _, k := range keys {
			dc := defCounts[k]
			ref := ""
			for _, c := range counts {
				if strings.EqualFold(c.AssignmentID, as.PolicyAssignmentID) && strings.EqualFold(c.ReferenceID, k.reference) {
					ref = c.ReferenceID
					break
				}
			}
			as.PolicyDefinitions = append(as.PolicyDefinitions, DefinitionSummary{PolicyDefinitionID: defIDs[k], PolicyDefinitionReferenceID: ref,
				Results: Results{NonCompliantResources: dc[store.StateNonCompliant], ResourceDetails: details(dc), CompliancePercentage: Percentage(dc)}})
			state := rollUp(dc)
			perPolicy[state]++
			policyStates[state]++
		}
		as.Results.NonCompliantPolicies = perPolicy[store.StateNonCompliant]
		as.Results.PolicyDetails = details(perPolicy)
		sum.PolicyAssignments = append(sum.PolicyAssignments, *as)
	}
	sum.Results.NonCompliantPolicies = policyStates[store.StateNonCompliant]
	sum.Results.PolicyDetails = details(policyStates)
	return sum, nil
}

func resourceCounts(ctx context.Context, st store.PolicyStateStore, q store.PolicyStateQuery) (map[string]int64, error) {
	rcs, err := st.SummarizeResources(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("summarize resources: %w", err)
	}
	m := map[string]int64{}
	for _, c := range rcs {
		m[c.State] += c.Count
	}
	return m, nil
}

// rollUp is the state of a group of states, in Azure's precedence: NonCompliant, then
// Compliant, Conflicting, Exempt, Unknown.
func rollUp(counts map[string]int64) string {
	for _, st := range []string{store.StateNonCompliant, store.StateCompliant, store.StateConflicting, store.StateExempt, store.StateUnknown} {
		if counts[st] > 0 {
			return st
		}
	}
	return store.StateNotStarted
}
