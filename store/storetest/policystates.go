package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// testPolicyStates are the compliance-state cases of Run.
var testPolicyStates = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"PolicyStatesReplace", testPSReplace},
	{"PolicyStatesUnchangedNotRewritten", testPSUnchanged},
	{"PolicyStatesByAssignment", testPSByAssignment},
	{"PolicyStatesCaseInsensitive", testPSCaseInsensitive},
	{"PolicyStatesInvalid", testPSInvalid},
	{"PolicyStatesScopes", testPSScopes},
	{"PolicyStatesPaging", testPSPaging},
	{"PolicyStatesHistory", testPSHistory},
	{"PolicyStatesSummaries", testPSSummaries},
	{"PolicyStatesDelete", testPSDelete},
	{"PolicyStatesRollback", testPSRollback},
	{"PolicyStatesRandomOperations", testPSModel},
}

// Assignments and definitions the cases share: a single-policy assignment at a
// subscription and an initiative at a management group.
const (
	asgVM    = "/subscriptions/payments/providers/Microsoft.Authorization/policyAssignments/vm-baseline"
	asgTags  = "/providers/Microsoft.Management/managementGroups/contoso/providers/Microsoft.Authorization/policyAssignments/Tagging"
	defVM    = "/providers/Microsoft.Authorization/policyDefinitions/vm-sku"
	defOwner = "/providers/Microsoft.Authorization/policyDefinitions/require-owner"
	defCost  = "/providers/Microsoft.Authorization/policyDefinitions/require-cost-center"
	setTags  = "/providers/Microsoft.Management/managementGroups/contoso/providers/Microsoft.Authorization/policySetDefinitions/tags"
)

var psT0 = time.Date(2025, 7, 1, 9, 0, 0, 0, time.UTC)

// psState is a state of res under asgVM (ref "") or a member of asgTags (ref "owner" or
// "cost"), evaluated at psT0 plus minutes.
func psState(res, asg, ref, state string, minutes int) store.PolicyState {
	st := store.PolicyState{
		ResourceID:   res,
		ResourceType: "Microsoft.Compute/virtualMachines",
		Location:     "local",
		AssignmentID: asg,
		ReferenceID:  ref,
		State:        state,
		Effect:       "audit",
		EvaluatedAt:  psT0.Add(time.Duration(minutes) * time.Minute),
	}
	if id, err := resource.Parse(res); err == nil {
		st.ResourceType = id.Type()
		st.ResourceGroup = id.ResourceGroup
		st.Subscription = id.Subscription
	}
	switch {
	case asg == asgVM:
		st.DefinitionID = defVM
		st.Effect = "deny"
	case strings.EqualFold(ref, "owner"):
		st.DefinitionID, st.SetDefinitionID = defOwner, setTags
	default:
		st.DefinitionID, st.SetDefinitionID = defCost, setTags
	}
	if state == store.StateNonCompliant {
		st.Reasons = json.RawMessage(`[{"field":"tags.owner","reason":"missing"}]`)
	}
	return st
}

func replaceStates(t testing.TB, s store.Store, resources, assignments []string, states []store.PolicyState) []store.StateTransition {
	t.Helper()
	var out []store.StateTransition
	err := s.Update(context.Background(), func(tx store.Tx) error {
		var err error
		out, err = tx.ReplacePolicyStates(context.Background(), resources, assignments, states)
		return err
	})
	if err != nil {
		t.Fatalf("replace policy states: %v", err)
	}
	return out
}

// allStates reads every state q selects, page by page.
func allStates(t testing.TB, s store.Store, q store.PolicyStateQuery) []store.PolicyState {
	t.Helper()
	var out []store.PolicyState
	for pages := 0; ; pages++ {
		page, next, err := s.PolicyStates(context.Background(), q)
		if err != nil {
			t.Fatalf("policy states %+v: %v", q, err)
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		if pages > 100000 {
			t.Fatal("policy states: paging does not end")
		}
		q.After = next
	}
}

func allHistory(t testing.TB, s store.Store, q store.PolicyStateQuery) []store.StateTransition {
	t.Helper()
	var out []store.StateTransition
	for pages := 0; ; pages++ {
		page, next, err := s.PolicyStateHistory(context.Background(), q)
		if err != nil {
			t.Fatalf("policy state history %+v: %v", q, err)
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		if pages > 100000 {
			t.Fatal("policy state history: paging does not end")
		}
		q.After = next
	}
}

// psKey is a state's identity as the store compares it.
func psKey(st store.PolicyState) string {
	return strings.Join([]string{mustIDKey(st.ResourceID), mustIDKey(st.AssignmentID), strings.ToLower(st.ReferenceID)}, "|")
}

func trKey(tr store.StateTransition) string {
	return strings.Join([]string{mustIDKey(tr.ResourceID), mustIDKey(tr.AssignmentID), strings.ToLower(tr.ReferenceID)}, "|")
}

// describe renders transitions as "resource-name/assignment-name/ref: from->to", sorted.
func describe(trs []store.StateTransition) string {
	var out []string
	for _, tr := range trs {
		out = append(out, fmt.Sprintf("%s/%s/%s: %s->%s", lastSegment(tr.ResourceID), lastSegment(tr.AssignmentID), tr.ReferenceID, tr.From, tr.To))
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

func lastSegment(id string) string { return id[strings.LastIndex(id, "/")+1:] }

// stateMap indexes states by psKey.
func stateMap(sts []store.PolicyState) map[string]store.PolicyState {
	m := map[string]store.PolicyState{}
	for _, st := range sts {
		m[psKey(st)] = st
	}
	return m
}

// sameContent compares what a writer decides, not the times the store keeps.
func sameContent(a, b store.PolicyState) bool {
	a.EvaluatedAt, a.ChangedAt, b.EvaluatedAt, b.ChangedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	ra, rb := compactJSON(a.Reasons), compactJSON(b.Reasons)
	a.Reasons, b.Reasons = nil, nil
	return ra == rb && fmt.Sprint(a) == fmt.Sprint(b)
}

func compactJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "null"
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "invalid:" + string(raw)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func checkStates(t testing.TB, s store.Store, want []store.PolicyState) []store.PolicyState {
	t.Helper()
	got := allStates(t, s, store.PolicyStateQuery{})
	gm, wm := stateMap(got), stateMap(want)
	if len(got) != len(gm) {
		t.Errorf("PolicyStates returned a key twice: %d states, %d keys", len(got), len(gm))
	}
	for k, w := range wm {
		g, ok := gm[k]
		if !ok {
			t.Errorf("state %s missing", k)
			continue
		}
		if !sameContent(g, w) {
			t.Errorf("state %s =\n %+v\nwant\n %+v", k, g, w)
		}
	}
	for k := range gm {
		if _, ok := wm[k]; !ok {
			t.Errorf("state %s should not be there", k)
		}
	}
	return got
}

func testPSReplace(t *testing.T, s store.Store) {
	resources := []string{vmAPI1, vmAPI2}
	first := []store.PolicyState{
		psState(vmAPI1, asgVM, "", store.StateCompliant, 0),
		psState(vmAPI1, asgTags, "owner", store.StateNonCompliant, 0),
		psState(vmAPI1, asgTags, "cost", store.StateCompliant, 0),
		psState(vmAPI2, asgVM, "", store.StateNonCompliant, 0),
	}
	trs := replaceStates(t, s, resources, nil, first)
	if got, want := describe(trs), "api-1/Tagging/cost: ->Compliant; api-1/Tagging/owner: ->NonCompliant; api-1/vm-baseline/: ->Compliant; api-2/vm-baseline/: ->NonCompliant"; got != want {
		t.Errorf("first write transitions:\n got %s\nwant %s", got, want)
	}
	for i, tr := range trs {
		if tr.Seq <= 0 || (i > 0 && tr.Seq <= trs[i-1].Seq) {
			t.Errorf("transition %d has seq %d after %d; want increasing seqs", i, tr.Seq, trs[max(i-1, 0)].Seq)
		}
		if !tr.At.Equal(psT0) {
			t.Errorf("transition %d at %v, want the evaluation time %v", i, tr.At, psT0)
		}
	}
	got := checkStates(t, s, first)
	for _, st := range got {
		if !st.EvaluatedAt.Equal(psT0) || !st.ChangedAt.Equal(psT0) {
			t.Errorf("new state %s: evaluated %v changed %v, want both %v", psKey(st), st.EvaluatedAt, st.ChangedAt, psT0)
		}
		if st.State == store.StateCompliant && st.Reasons != nil {
			t.Errorf("compliant state %s has reasons %s", psKey(st), st.Reasons)
		}
	}
	if h := allHistory(t, s, store.PolicyStateQuery{}); describe(h) != describe(trs) || len(h) != len(trs) {
		t.Errorf("history %s, want what the write returned: %s", describe(h), describe(trs))
	} else {
		bySeq := map[int64]store.StateTransition{}
		for _, tr := range trs {
			bySeq[tr.Seq] = tr
		}
		for _, tr := range h {
			if r, ok := bySeq[tr.Seq]; !ok || r != tr {
				t.Errorf("history entry %+v differs from the returned %+v", tr, r)
			}
		}
	}

	// Second scan: api-1's owner becomes compliant, its cost member goes (the initiative
	// lost it), api-2 stays, a new state appears; and api-2's effect changes alone.
	second := []store.PolicyState{
		psState(vmAPI1, asgVM, "", store.StateCompliant, 10),
		psState(vmAPI1, asgTags, "owner", store.StateCompliant, 10),
		psState(vmAPI2, asgVM, "", store.StateNonCompliant, 10),
		psState(vmAPI2, asgTags, "owner", store.StateExempt, 10),
	}
	second[2].Effect = "Audit" // stored lower-cased
	trs = replaceStates(t, s, resources, nil, second)
	if got, want := describe(trs), "api-1/Tagging/cost: Compliant->; api-1/Tagging/owner: NonCompliant->Compliant; api-2/Tagging/owner: ->Exempt"; got != want {
		t.Errorf("second write transitions:\n got %s\nwant %s", got, want)
	}
	second[2].Effect = "audit"
	got = checkStates(t, s, second)
	t10 := psT0.Add(10 * time.Minute)
	for _, st := range got {
		k := psKey(st)
		switch {
		case strings.Contains(k, "api-1|") && strings.Contains(k, "vm-baseline"):
			// Unchanged: not rewritten.
			if !st.EvaluatedAt.Equal(psT0) || !st.ChangedAt.Equal(psT0) {
				t.Errorf("unchanged %s: evaluated %v changed %v, want both %v (not rewritten)", k, st.EvaluatedAt, st.ChangedAt, psT0)
			}
		case strings.Contains(k, "api-2|") && strings.Contains(k, "vm-baseline"):
			// Effect changed, state did not: rewritten, changed_at kept.
			if !st.EvaluatedAt.Equal(t10) || !st.ChangedAt.Equal(psT0) {
				t.Errorf("effect-only change %s: evaluated %v changed %v, want %v and %v", k, st.EvaluatedAt, st.ChangedAt, t10, psT0)
			}
		default:
			if !st.EvaluatedAt.Equal(t10) || !st.ChangedAt.Equal(t10) {
				t.Errorf("changed %s: evaluated %v changed %v, want both %v", k, st.EvaluatedAt, st.ChangedAt, t10)
			}
		}
	}
	if h := allHistory(t, s, store.PolicyStateQuery{}); len(h) != 7 {
		t.Errorf("history has %d entries after 4 + 3 transitions: %s", len(h), describe(h))
	}

	// A resource with no states left loses them all; an empty batch is a no-op.
	trs = replaceStates(t, s, []string{vmAPI2}, nil, nil)
	if got, want := describe(trs), "api-2/Tagging/owner: Exempt->; api-2/vm-baseline/: NonCompliant->"; got != want {
		t.Errorf("clearing api-2: %s, want %s", got, want)
	}
	if trs := replaceStates(t, s, nil, nil, nil); len(trs) != 0 {
		t.Errorf("empty replace: %s", describe(trs))
	}
	checkStates(t, s, second[:2])
}

func testPSUnchanged(t *testing.T, s store.Store) {
	ctx := context.Background()
	states := []store.PolicyState{
		psState(vmAPI1, asgVM, "", store.StateNonCompliant, 0),
		psState(vmAPI1, asgTags, "owner", store.StateCompliant, 0),
	}
	replaceStates(t, s, []string{vmAPI1}, nil, states)
	before := allHistory(t, s, store.PolicyStateQuery{})

	// The same states, evaluated later, with the reasons spaced out: nothing to write.
	again := []store.PolicyState{states[1], states[0]}
	for i := range again {
		again[i].EvaluatedAt = psT0.Add(time.Hour)
		again[i].ChangedAt = psT0.Add(2 * time.Hour) // ignored: the store keeps ChangedAt
	}
	again[1].Reasons = json.RawMessage("[ {\"field\" : \"tags.owner\",\n \"reason\":\"missing\"} ]")
	again[0].Reasons = json.RawMessage(" null ")
	if trs := replaceStates(t, s, []string{vmAPI1}, nil, again); len(trs) != 0 {
		t.Errorf("unchanged states gave transitions: %s", describe(trs))
	}
	for _, st := range allStates(t, s, store.PolicyStateQuery{}) {
		if !st.EvaluatedAt.Equal(psT0) || !st.ChangedAt.Equal(psT0) {
			t.Errorf("%s was rewritten: evaluated %v, changed %v", psKey(st), st.EvaluatedAt, st.ChangedAt)
		}
	}
	if after := allHistory(t, s, store.PolicyStateQuery{}); len(after) != len(before) {
		t.Errorf("an unchanged scan added history: %s", describe(after[len(before):]))
	}

	// Changed reasons rewrite the row, without a transition.
	again[1].Reasons = json.RawMessage(`[{"field":"tags.owner","reason":"empty"}]`)
	if trs := replaceStates(t, s, []string{vmAPI1}, nil, again); len(trs) != 0 {
		t.Errorf("a change of reasons gave transitions: %s", describe(trs))
	}
	got := stateMap(allStates(t, s, store.PolicyStateQuery{}))
	nc := got[psKey(states[0])]
	if string(nc.Reasons) != `[{"field":"tags.owner","reason":"empty"}]` || !nc.EvaluatedAt.Equal(psT0.Add(time.Hour)) || !nc.ChangedAt.Equal(psT0) {
		t.Errorf("after a change of reasons: %s evaluated %v changed %v", nc.Reasons, nc.EvaluatedAt, nc.ChangedAt)
	}
	if c := got[psKey(states[1])]; !c.EvaluatedAt.Equal(psT0) {
		t.Errorf("the unchanged state was rewritten alongside: evaluated %v", c.EvaluatedAt)
	}

	// A zero EvaluatedAt means now.
	fresh := psState(vmAPI2, asgVM, "", store.StateCompliant, 0)
	fresh.EvaluatedAt = time.Time{}
	start := time.Now().Add(-time.Second)
	replaceStates(t, s, []string{vmAPI2}, nil, []store.PolicyState{fresh})
	st, _, err := s.PolicyStates(ctx, store.PolicyStateQuery{ResourceID: vmAPI2})
	if err != nil || len(st) != 1 {
		t.Fatalf("states of api-2: %v %v", st, err)
	}
	if st[0].EvaluatedAt.Before(start) || st[0].EvaluatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("zero EvaluatedAt stored as %v, want about now", st[0].EvaluatedAt)
	}
}

func testPSByAssignment(t *testing.T, s store.Store) {
	all := []store.PolicyState{
		psState(vmAPI1, asgVM, "", store.StateCompliant, 0),
		psState(vmAPI1, asgTags, "owner", store.StateNonCompliant, 0),
		psState(vmAPI1, asgTags, "cost", store.StateCompliant, 0),
		psState(vmAPI2, asgVM, "", store.StateCompliant, 0),
		psState(vmAPI2, asgTags, "owner", store.StateCompliant, 0),
	}
	replaceStates(t, s, []string{vmAPI1, vmAPI2}, nil, all)
	// Re-evaluating only the initiative: asgVM's rows stay although the batch has none.
	tags := []store.PolicyState{
		psState(vmAPI1, asgTags, "owner", store.StateCompliant, 5),
		psState(vmAPI2, asgTags, "owner", store.StateCompliant, 5),
		psState(vmAPI2, asgTags, "cost", store.StateNonCompliant, 5),
	}
	trs := replaceStates(t, s, []string{vmAPI1, vmAPI2}, []string{strings.ToUpper(asgTags)}, tags)
	if got, want := describe(trs), "api-1/Tagging/cost: Compliant->; api-1/Tagging/owner: NonCompliant->Compliant; api-2/Tagging/cost: ->NonCompliant"; got != want {
		t.Errorf("replace of one assignment:\n got %s\nwant %s", got, want)
	}
	checkStates(t, s, []store.PolicyState{all[0], all[3], tags[0], tags[1], tags[2]})
	// An empty assignment list replaces nothing.
	if trs := replaceStates(t, s, []string{vmAPI1, vmAPI2}, []string{}, nil); len(trs) != 0 {
		t.Errorf("empty assignment list: %s", describe(trs))
	}
	checkStates(t, s, []store.PolicyState{all[0], all[3], tags[0], tags[1], tags[2]})
	// A state of an assignment outside the list is refused.
	err := s.Update(context.Background(), func(tx store.Tx) error {
		_, err := tx.ReplacePolicyStates(context.Background(), []string{vmAPI1}, []string{asgTags}, []store.PolicyState{all[0]})
		return err
	})
	if err == nil {
		t.Error("a state of an assignment not among those replaced was accepted")
	}
}

func testPSCaseInsensitive(t *testing.T, s store.Store) {
	ctx := context.Background()
	orig := "/subscriptions/Payments/resourceGroups/Prod/providers/Microsoft.Compute/virtualMachines/Api-1"
	first := []store.PolicyState{
		psState(orig, asgTags, "Owner", store.StateNonCompliant, 0),
		psState(orig, asgVM, "", store.StateCompliant, 0),
	}
	replaceStates(t, s, []string{orig}, nil, first)

	// The same states in other letter cases are the same rows: nothing changes.
	upper := strings.ToUpper(orig)
	again := []store.PolicyState{
		psState(upper+"/", strings.ToUpper(asgTags), "OWNER", store.StateNonCompliant, 1),
		psState(strings.ToLower(orig), strings.ToLower(asgVM), "", "compliant", 1),
	}
	// The descriptive fields are the writer's; keep them as first written.
	for i := range again {
		again[i].ResourceGroup, again[i].Subscription = "Prod", "Payments"
		again[i].ResourceType = "Microsoft.Compute/virtualMachines"
	}
	if trs := replaceStates(t, s, []string{strings.ToLower(orig)}, nil, again); len(trs) != 0 {
		t.Errorf("states in other letter case gave transitions: %s", describe(trs))
	}
	got := allStates(t, s, store.PolicyStateQuery{})
	if len(got) != 2 {
		t.Fatalf("%d states, want 2", len(got))
	}
	for _, st := range got {
		if st.ResourceID != orig || (st.AssignmentID != asgTags && st.AssignmentID != asgVM) {
			t.Errorf("state %+v lost the first spelling", st)
		}
		if st.AssignmentID == asgTags && st.ReferenceID != "Owner" {
			t.Errorf("reference spelt %q, want Owner as first written", st.ReferenceID)
		}
		if st.State == "compliant" {
			t.Error("state stored as spelt, not as Azure names it")
		}
	}
	for _, q := range []store.PolicyStateQuery{
		{ResourceID: upper},
		{ResourceID: strings.ToLower(orig), AssignmentID: strings.ToUpper(asgTags), ReferenceID: "oWnEr"},
		{State: "NONCOMPLIANT"},
		{DefinitionID: strings.ToUpper(defOwner)},
		{Scopes: []resource.ID{mustID(t, "/SUBSCRIPTIONS/payments/resourcegroups/PROD")}, State: store.StateNonCompliant},
	} {
		sts, _, err := s.PolicyStates(ctx, q)
		if err != nil {
			t.Fatalf("query %+v: %v", q, err)
		}
		want := 2
		if q.ResourceID == "" || q.AssignmentID != "" {
			want = 1
		}
		if len(sts) != want {
			t.Errorf("query %+v: %d states, want %d", q, len(sts), want)
		}
	}
	h, _, err := s.PolicyStateHistory(ctx, store.PolicyStateQuery{ResourceID: upper, AssignmentID: strings.ToUpper(asgTags), ReferenceID: "OWNER"})
	if err != nil || len(h) != 1 {
		t.Errorf("history by IDs in other case: %v %v", h, err)
	}
	// A resource named twice in one batch, in two spellings, is one resource.
	if trs := replaceStates(t, s, []string{orig, upper}, nil, again); len(trs) != 0 {
		t.Errorf("a resource listed twice: %s", describe(trs))
	}
}

func testPSInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	replaceStates(t, s, []string{vmAPI1}, nil, []store.PolicyState{psState(vmAPI1, asgVM, "", store.StateCompliant, 0)})
	before := allHistory(t, s, store.PolicyStateQuery{})
	good := psState(vmAPI1, asgVM, "", store.StateNonCompliant, 1)
	cases := map[string]func() ([]string, []store.PolicyState){
		"resource not in the batch": func() ([]string, []store.PolicyState) {
			return []string{vmAPI1}, []store.PolicyState{good, psState(vmAPI2, asgVM, "", store.StateCompliant, 1)}
		},
		"unknown state": func() ([]string, []store.PolicyState) {
			bad := good
			bad.State = "Green"
			return []string{vmAPI1}, []store.PolicyState{bad}
		},
		"empty state": func() ([]string, []store.PolicyState) {
			bad := good
			bad.State = ""
			return []string{vmAPI1}, []store.PolicyState{bad}
		},
		"reasons not JSON": func() ([]string, []store.PolicyState) {
			bad := good
			bad.Reasons = json.RawMessage(`[{"field":`)
			return []string{vmAPI1}, []store.PolicyState{bad}
		},
		"same key twice": func() ([]string, []store.PolicyState) {
			dup := good
			dup.AssignmentID = strings.ToUpper(dup.AssignmentID)
			return []string{vmAPI1}, []store.PolicyState{good, dup}
		},
		"malformed resource ID": func() ([]string, []store.PolicyState) {
			return []string{"/subscriptions"}, nil
		},
		"malformed assignment ID": func() ([]string, []store.PolicyState) {
			bad := good
			bad.AssignmentID = "vm-baseline"
			return []string{vmAPI1}, []store.PolicyState{bad}
		},
	}
	for name, c := range cases {
		resources, states := c()
		err := s.Update(ctx, func(tx store.Tx) error {
			_, err := tx.ReplacePolicyStates(ctx, resources, nil, states)
			return err
		})
		switch {
		case err == nil:
			t.Errorf("%s: accepted", name)
		case !strings.Contains(err.Error(), "replace policy states"):
			t.Errorf("%s: error %q does not name the operation", name, err)
		default:
			t.Logf("%s: %v", name, err)
		}
	}
	if after := allHistory(t, s, store.PolicyStateQuery{}); len(after) != len(before) {
		t.Errorf("refused writes left history: %s", describe(after))
	}
	checkStates(t, s, []store.PolicyState{psState(vmAPI1, asgVM, "", store.StateCompliant, 0)})
	if _, _, err := s.PolicyStates(ctx, store.PolicyStateQuery{After: "not a cursor"}); resource.CodeOf(err) != resource.CodeInvalidParameter {
		t.Errorf("bad cursor: %v, want %s", err, resource.CodeInvalidParameter)
	}
	if _, _, err := s.PolicyStateHistory(ctx, store.PolicyStateQuery{After: "x"}); resource.CodeOf(err) != resource.CodeInvalidParameter {
		t.Errorf("bad history cursor: %v, want %s", err, resource.CodeInvalidParameter)
	}
}

// psFixtureStates gives every fixture resource a state under asgVM, NonCompliant for
// those whose name has a 1 in it.
func psFixtureStates() []store.PolicyState {
	var out []store.PolicyState
	for _, id := range allFixtures {
		state := store.StateCompliant
		if strings.Contains(lastSegment(id), "1") {
			state = store.StateNonCompliant
		}
		out = append(out, psState(id, asgVM, "", state, 0))
	}
	return out
}

func testPSScopes(t *testing.T, s store.Store) {
	ctx := context.Background()
	replaceStates(t, s, allFixtures, nil, psFixtureStates())
	replaceStates(t, s, allFixtures, nil, psFixtureStates()) // unchanged: no-op
	cases := []struct {
		name   string
		scopes []string
		want   []string
	}{
		{"resource group", []string{"/subscriptions/PAYMENTS/resourceGroups/PROD"}, []string{rgProd, vmAPI1, vmAPI2, gcAPI1}},
		{"subscription", []string{subPayments}, []string{subPayments, rgProd, vmAPI1, vmAPI2, gcAPI1, vmProd2}},
		{"resource and its extensions", []string{vmAPI1}, []string{vmAPI1, gcAPI1}},
		// A management group as the caller expands it: itself and its subscriptions.
		{"management group, expanded", []string{mgContoso, subPayments, "/subscriptions/billing"}, []string{mgContoso, policyContoso, subPayments, rgProd, vmAPI1, vmAPI2, gcAPI1, vmProd2, galleryCorp, imageVersion}},
		{"root", []string{"/"}, allFixtures},
		{"root among others", []string{rgProd, "/"}, allFixtures},
		{"empty scope", []string{"/subscriptions/nobody"}, nil},
	}
	for _, c := range cases {
		var scopes []resource.ID
		for _, sc := range c.scopes {
			scopes = append(scopes, mustID(t, sc))
		}
		var got []string
		for _, st := range allStates(t, s, store.PolicyStateQuery{Scopes: scopes, Limit: 3}) {
			got = append(got, mustIDKey(st.ResourceID))
		}
		if want := sortedKeys(c.want...); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: states of\n  %s\nwant\n  %s", c.name, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
		// Summaries and history take the same scopes.
		sum, err := s.SummarizeResources(ctx, store.PolicyStateQuery{Scopes: scopes})
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, c := range sum {
			n += c.Count
		}
		if n != int64(len(c.want)) {
			t.Errorf("%s: resource summary counts %d resources, want %d", c.name, n, len(c.want))
		}
		if h := allHistory(t, s, store.PolicyStateQuery{Scopes: scopes, Limit: 4}); len(h) != len(c.want) {
			t.Errorf("%s: %d history entries, want %d", c.name, len(h), len(c.want))
		}
	}
	if sts := allStates(t, s, store.PolicyStateQuery{Scopes: []resource.ID{}}); len(sts) != 0 {
		t.Errorf("empty non-nil scopes: %d states", len(sts))
	}
	if sum, err := s.SummarizePolicyStates(ctx, store.PolicyStateQuery{Scopes: []resource.ID{}}); err != nil || len(sum) != 0 {
		t.Errorf("empty non-nil scopes: summary %+v %v", sum, err)
	}
	if h := allHistory(t, s, store.PolicyStateQuery{Scopes: []resource.ID{}}); len(h) != 0 {
		t.Errorf("empty non-nil scopes: %d history entries", len(h))
	}
	if sts := allStates(t, s, store.PolicyStateQuery{}); len(sts) != len(allFixtures) {
		t.Errorf("nil scopes: %d states, want %d", len(sts), len(allFixtures))
	}
	// Each state alone, and one that no state is.
	n := 0
	for _, state := range []string{store.StateCompliant, store.StateNonCompliant, store.StateExempt} {
		n += len(allStates(t, s, store.PolicyStateQuery{State: state, Limit: 2}))
	}
	if n != len(allFixtures) {
		t.Errorf("states by state add up to %d, want %d", n, len(allFixtures))
	}
	if sts := allStates(t, s, store.PolicyStateQuery{State: "Green"}); len(sts) != 0 {
		t.Errorf("state Green: %d states", len(sts))
	}
}

func testPSPaging(t *testing.T, s store.Store) {
	vm := func(i int) string {
		return fmt.Sprintf("/subscriptions/payments/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/vm-%02d", i)
	}
	var resources []string
	var states []store.PolicyState
	for i := 0; i < 30; i++ {
		resources = append(resources, vm(i))
		states = append(states,
			psState(vm(i), asgVM, "", store.StateCompliant, 0),
			psState(vm(i), asgTags, "owner", store.StateNonCompliant, 0),
			psState(vm(i), asgTags, "cost", store.StateCompliant, 0))
	}
	replaceStates(t, s, resources, nil, states)
	for _, q := range []store.PolicyStateQuery{
		{Limit: 7},
		{Limit: 1},
		{Limit: 90},
		{Limit: 7, AssignmentID: asgTags},
		{Limit: 4, State: store.StateNonCompliant, Scopes: []resource.ID{mustID(t, rgProd)}},
		{},
	} {
		var keys []string
		seen := map[string]bool{}
		pages := 0
		qq := q
		for {
			page, next, err := s.PolicyStates(context.Background(), qq)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			limit := q.Limit
			if limit == 0 {
				limit = store.DefaultPageSize
			}
			if len(page) > limit || (next != "" && len(page) != limit) {
				t.Fatalf("query %+v: page %d has %d states (next %q)", q, pages, len(page), next)
			}
			for _, st := range page {
				k := psKey(st)
				if seen[k] {
					t.Fatalf("query %+v: %s on two pages", q, k)
				}
				seen[k] = true
				keys = append(keys, k)
			}
			if next == "" {
				break
			}
			qq.After = next
		}
		want := 90
		if q.AssignmentID != "" {
			want = 60
		}
		if q.State != "" {
			want = 30
		}
		if len(keys) != want {
			t.Errorf("query %+v: %d states over %d pages, want %d", q, len(keys), pages, want)
		}
		if !sort.StringsAreSorted(keys) {
			t.Errorf("query %+v: not in key order", q)
		}
	}
}

func testPSHistory(t *testing.T, s store.Store) {
	ctx := context.Background()
	// Three scans of api-1 an hour apart: new, one change, another change.
	replaceStates(t, s, []string{vmAPI1, vmAPI2}, nil, []store.PolicyState{
		psState(vmAPI1, asgVM, "", store.StateCompliant, 0),
		psState(vmAPI1, asgTags, "owner", store.StateCompliant, 0),
		psState(vmAPI2, asgVM, "", store.StateCompliant, 0),
	})
	replaceStates(t, s, []string{vmAPI1}, nil, []store.PolicyState{
		psState(vmAPI1, asgVM, "", store.StateNonCompliant, 60),
		psState(vmAPI1, asgTags, "owner", store.StateCompliant, 60),
	})
	replaceStates(t, s, []string{vmAPI1}, nil, []store.PolicyState{
		psState(vmAPI1, asgVM, "", store.StateCompliant, 120),
		psState(vmAPI1, asgTags, "owner", store.StateCompliant, 120),
	})
	all := allHistory(t, s, store.PolicyStateQuery{Limit: 2})
	if len(all) != 5 {
		t.Fatalf("history: %s, want 5 transitions", describe(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].Seq <= all[i-1].Seq {
			t.Errorf("history not in seq order: %d after %d", all[i].Seq, all[i-1].Seq)
		}
	}
	check := func(name string, q store.PolicyStateQuery, want string) {
		t.Helper()
		if got := describe(allHistory(t, s, q)); got != want {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
	check("by resource", store.PolicyStateQuery{ResourceID: vmAPI2}, "api-2/vm-baseline/: ->Compliant")
	check("by assignment", store.PolicyStateQuery{AssignmentID: asgVM, ResourceID: vmAPI1},
		"api-1/vm-baseline/: ->Compliant; api-1/vm-baseline/: Compliant->NonCompliant; api-1/vm-baseline/: NonCompliant->Compliant")
	check("into a state", store.PolicyStateQuery{State: store.StateNonCompliant}, "api-1/vm-baseline/: Compliant->NonCompliant")
	check("since", store.PolicyStateQuery{Since: psT0.Add(time.Hour)},
		"api-1/vm-baseline/: Compliant->NonCompliant; api-1/vm-baseline/: NonCompliant->Compliant")
	check("until", store.PolicyStateQuery{Until: psT0.Add(time.Hour)},
		"api-1/Tagging/owner: ->Compliant; api-1/vm-baseline/: ->Compliant; api-2/vm-baseline/: ->Compliant")
	check("since and until", store.PolicyStateQuery{Since: psT0.Add(time.Minute), Until: psT0.Add(2 * time.Hour)}, "api-1/vm-baseline/: Compliant->NonCompliant")
	check("by definition and reference", store.PolicyStateQuery{DefinitionID: defOwner, ReferenceID: "OWNER"}, "api-1/Tagging/owner: ->Compliant")
	check("after a seq", store.PolicyStateQuery{After: fmt.Sprint(all[3].Seq)}, describe(all[4:]))
	page, next, err := s.PolicyStateHistory(ctx, store.PolicyStateQuery{Limit: 5})
	if err != nil || len(page) != 5 || next != "" {
		t.Errorf("a page holding the rest: %d entries, next %q, %v", len(page), next, err)
	}
}

// psRandom builds random states for n resources over three resource groups, asgVM and
// the two members of asgTags, sometimes leaving one out.
func psRandom(rng *rand.Rand, n int, minutes int) (resources []string, states []store.PolicyState) {
	all := []string{store.StateCompliant, store.StateNonCompliant, store.StateConflicting, store.StateExempt, store.StateUnknown, store.StateNotStarted}
	pick := func() string {
		// Mostly compliant, as a real estate is.
		if rng.IntN(3) > 0 {
			return store.StateCompliant
		}
		return all[rng.IntN(len(all))]
	}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("/subscriptions/%s/resourceGroups/rg-%d/providers/Microsoft.Compute/virtualMachines/vm-%03d",
			[]string{"payments", "billing"}[i%2], i%3, i)
		resources = append(resources, id)
		for _, m := range []struct{ asg, ref string }{{asgVM, ""}, {asgTags, "owner"}, {asgTags, "cost"}} {
			if rng.IntN(8) == 0 {
				continue
			}
			states = append(states, psState(id, m.asg, m.ref, pick(), minutes))
		}
	}
	return resources, states
}

// psReference computes the summaries in Go.
func psReference(states []store.PolicyState, keep func(store.PolicyState) bool) (map[string]int64, map[string]int64) {
	groups := map[string]int64{}
	best := map[string]int{}
	rank := map[string]int{store.StateNonCompliant: 1, store.StateCompliant: 2, store.StateConflicting: 3, store.StateExempt: 4, store.StateUnknown: 5, store.StateNotStarted: 6}
	for _, st := range states {
		if !keep(st) {
			continue
		}
		groups[strings.Join([]string{st.AssignmentID, st.DefinitionID, st.ReferenceID, st.State}, "|")]++
		k := mustIDKey(st.ResourceID)
		if r, ok := best[k]; !ok || rank[st.State] < r {
			best[k] = rank[st.State]
		}
	}
	rollup := map[string]int64{}
	for _, r := range best {
		for s, rr := range rank {
			if rr == r {
				rollup[s]++
			}
		}
	}
	return groups, rollup
}

func testPSSummaries(t *testing.T, s store.Store) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	resources, states := psRandom(rng, 120, 0)
	// First half the estate, then all of it: the second call both adds and keeps.
	var firstHalf []store.PolicyState
	for _, st := range states {
		if slicesIndex(resources[:60], st.ResourceID) >= 0 {
			firstHalf = append(firstHalf, st)
		}
	}
	replaceStates(t, s, resources[:60], nil, firstHalf)
	replaceStates(t, s, resources, nil, states)
	// A second scan changes some: its transitions must be the Go diff.
	resources2, states2 := psRandom(rng, 120, 30)
	trs := replaceStates(t, s, resources2, nil, states2)
	oldM, newM := stateMap(states), stateMap(states2)
	var want []string
	for k, n := range newM {
		if o, ok := oldM[k]; !ok {
			want = append(want, k+": ->"+n.State)
		} else if o.State != n.State {
			want = append(want, k+": "+o.State+"->"+n.State)
		}
	}
	for k, o := range oldM {
		if _, ok := newM[k]; !ok {
			want = append(want, k+": "+o.State+"->")
		}
	}
	var got []string
	for _, tr := range trs {
		got = append(got, trKey(tr)+": "+tr.From+"->"+tr.To)
	}
	sort.Strings(want)
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("transitions of the second scan:\n got %d\nwant %d\n%s\nvs\n%s", len(got), len(want), strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	checkStates(t, s, states2)

	rgScope := mustID(t, "/subscriptions/payments/resourceGroups/rg-1")
	for _, c := range []struct {
		name string
		q    store.PolicyStateQuery
		keep func(store.PolicyState) bool
	}{
		{"all", store.PolicyStateQuery{}, func(store.PolicyState) bool { return true }},
		{"resource group", store.PolicyStateQuery{Scopes: []resource.ID{rgScope}}, func(st store.PolicyState) bool {
			return rgScope.Contains(mustID(t, st.ResourceID))
		}},
		{"assignment", store.PolicyStateQuery{AssignmentID: asgTags}, func(st store.PolicyState) bool { return st.AssignmentID == asgTags }},
		{"definition", store.PolicyStateQuery{DefinitionID: defCost}, func(st store.PolicyState) bool { return st.DefinitionID == defCost }},
		{"reference", store.PolicyStateQuery{ReferenceID: "owner"}, func(st store.PolicyState) bool { return st.ReferenceID == "owner" }},
		{"state", store.PolicyStateQuery{State: store.StateExempt}, func(st store.PolicyState) bool { return st.State == store.StateExempt }},
	} {
		wantGroups, wantRollup := psReference(states2, c.keep)
		sum, err := s.SummarizePolicyStates(ctx, c.q)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		gotGroups := map[string]int64{}
		for _, g := range sum {
			gotGroups[strings.Join([]string{g.AssignmentID, g.DefinitionID, g.ReferenceID, g.State}, "|")] += g.Count
		}
		if fmt.Sprint(gotGroups) != fmt.Sprint(wantGroups) || len(sum) != len(wantGroups) {
			t.Errorf("%s: summary\n %v\nwant\n %v", c.name, gotGroups, wantGroups)
		}
		res, err := s.SummarizeResources(ctx, c.q)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		gotRollup := map[string]int64{}
		for _, r := range res {
			gotRollup[r.State] = r.Count
		}
		if fmt.Sprint(gotRollup) != fmt.Sprint(wantRollup) || len(res) != len(wantRollup) {
			t.Errorf("%s: resource roll-up %v, want %v", c.name, gotRollup, wantRollup)
		}
	}
	// The roll-up comes in Azure's order.
	res, err := s.SummarizeResources(ctx, store.PolicyStateQuery{})
	if err != nil {
		t.Fatal(err)
	}
	order := map[string]int{store.StateNonCompliant: 1, store.StateCompliant: 2, store.StateConflicting: 3, store.StateExempt: 4, store.StateUnknown: 5, store.StateNotStarted: 6}
	for i := 1; i < len(res); i++ {
		if order[res[i].State] <= order[res[i-1].State] {
			t.Errorf("roll-up out of order: %+v", res)
		}
	}
}

func testPSDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	states := []store.PolicyState{
		psState(vmAPI1, asgVM, "", store.StateCompliant, 0),
		psState(vmAPI1, asgTags, "owner", store.StateNonCompliant, 0),
		psState(vmAPI2, asgVM, "", store.StateNonCompliant, 0),
		psState(vmAPI2, asgTags, "cost", store.StateExempt, 0),
		psState(vmProd2, asgTags, "owner", store.StateCompliant, 0),
	}
	replaceStates(t, s, []string{vmAPI1, vmAPI2, vmProd2}, nil, states)
	var trs []store.StateTransition
	start := time.Now().Add(-time.Second)
	err := s.Update(ctx, func(tx store.Tx) error {
		var err error
		trs, err = tx.DeletePolicyStates(ctx, []string{strings.ToUpper(vmAPI1), vmAPI1 + "/", vmPayments2})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := describe(trs), "api-1/Tagging/owner: NonCompliant->; api-1/vm-baseline/: Compliant->"; got != want {
		t.Errorf("delete states of api-1: %s, want %s", got, want)
	}
	for i, tr := range trs {
		if tr.Seq <= 0 || (i > 0 && tr.Seq <= trs[i-1].Seq) || tr.At.Before(start) || tr.DefinitionID == "" || tr.ResourceID != vmAPI1 {
			t.Errorf("delete transition %+v", tr)
		}
	}
	checkStates(t, s, states[2:])
	err = s.Update(ctx, func(tx store.Tx) error {
		var err error
		trs, err = tx.DeleteAssignmentStates(ctx, strings.ToLower(asgTags))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := describe(trs), "api-2/Tagging/cost: Exempt->; web-1/Tagging/owner: Compliant->"; got != want {
		t.Errorf("delete states of the initiative: %s, want %s", got, want)
	}
	checkStates(t, s, states[2:3])
	h := allHistory(t, s, store.PolicyStateQuery{})
	if len(h) != len(states)+4 {
		t.Errorf("history: %d entries, want %d", len(h), len(states)+4)
	}
	last := h[len(h)-2:]
	if describe(last) != describe(trs) || last[0].Seq != trs[0].Seq || last[1].Seq != trs[1].Seq {
		t.Errorf("history ends %+v, want the returned %+v", last, trs)
	}
	// Deleting what is not there is no error and no history.
	err = s.Update(ctx, func(tx store.Tx) error {
		var err error
		if trs, err = tx.DeleteAssignmentStates(ctx, asgTags); err != nil || len(trs) != 0 {
			return fmt.Errorf("again: %v %w", trs, err)
		}
		if trs, err = tx.DeletePolicyStates(ctx, nil); err != nil || len(trs) != 0 {
			return fmt.Errorf("none: %v %w", trs, err)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func testPSRollback(t *testing.T, s store.Store) {
	ctx := context.Background()
	err := s.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.ReplacePolicyStates(ctx, []string{vmAPI1}, nil, []store.PolicyState{psState(vmAPI1, asgVM, "", store.StateCompliant, 0)}); err != nil {
			return err
		}
		return errRollback
	})
	wantErr(t, err, errRollback, "update")
	if sts := allStates(t, s, store.PolicyStateQuery{}); len(sts) != 0 {
		t.Errorf("rolled-back states are visible: %+v", sts)
	}
	if h := allHistory(t, s, store.PolicyStateQuery{}); len(h) != 0 {
		t.Errorf("rolled-back history is visible: %s", describe(h))
	}
	kept := []store.PolicyState{psState(vmAPI1, asgVM, "", store.StateCompliant, 0)}
	replaceStates(t, s, []string{vmAPI1}, nil, kept)
	err = s.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.ReplacePolicyStates(ctx, []string{vmAPI1}, nil, []store.PolicyState{psState(vmAPI1, asgVM, "", store.StateNonCompliant, 5)}); err != nil {
			return err
		}
		if _, err := tx.DeleteAssignmentStates(ctx, asgVM); err != nil {
			return err
		}
		return errRollback
	})
	wantErr(t, err, errRollback, "update")
	checkStates(t, s, kept)
	if h := allHistory(t, s, store.PolicyStateQuery{}); len(h) != 1 {
		t.Errorf("rolled-back transitions are visible: %s", describe(h))
	}
	// A Tx kept past its Update writes no states.
	var tx store.Tx
	if err := s.Update(ctx, func(inner store.Tx) error { tx = inner; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ReplacePolicyStates(ctx, []string{vmAPI1}, nil, nil); err == nil {
		t.Error("a finished Tx replaced states")
	}
	if _, err := tx.DeleteAssignmentStates(ctx, asgVM); err == nil {
		t.Error("a finished Tx deleted states")
	}
	checkStates(t, s, kept)
}

// testPSModel runs random replacements (of all assignments and of one), deletions of
// resources and of assignments against a model in Go, and checks after each step the
// transitions, every stored state, and its times: a row is rewritten exactly when its
// content changes. Scans repeat one of a few results per resource, as real ones do, so
// that the store's shortcuts for unchanged resources are taken and must stay right.
func testPSModel(t *testing.T, s store.Store) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	type member struct{ asg, ref string }
	members := []member{{asgVM, ""}, {asgTags, "owner"}, {asgTags, "cost"}}
	asgs := []string{asgVM, asgTags}
	var resources []string
	for i := 0; i < 12; i++ {
		resources = append(resources, fmt.Sprintf("/subscriptions/payments/resourceGroups/rg-%d/providers/Microsoft.Compute/virtualMachines/vm-%02d", i%2, i))
	}
	states := []string{store.StateCompliant, store.StateNonCompliant, store.StateExempt}
	// variants[r] are the results a scan of resource r may give.
	variants := make([][][]store.PolicyState, len(resources))
	for r, id := range resources {
		for v := 0; v < 3; v++ {
			var sts []store.PolicyState
			for _, m := range members {
				if rng.IntN(5) == 0 {
					continue
				}
				st := psState(id, m.asg, m.ref, states[rng.IntN(len(states))], 0)
				if rng.IntN(4) == 0 {
					st.Effect = "audit" + fmt.Sprint(rng.IntN(2))
				}
				if st.State == store.StateNonCompliant && rng.IntN(3) == 0 {
					st.Reasons = json.RawMessage(fmt.Sprintf(`[{"reason":"r%d"}]`, rng.IntN(2)))
				}
				sts = append(sts, st)
			}
			variants[r] = append(variants[r], sts)
		}
	}
	type row struct {
		st                   store.PolicyState
		evaluated, changedAt time.Time
	}
	model := map[string]row{}
	at := psT0
	// write applies sts as the new states of the keys keep selects, in the model.
	write := func(keep func(key string) bool, sts []store.PolicyState) []string {
		var trs []string
		next := map[string]store.PolicyState{}
		for _, st := range sts {
			next[psKey(st)] = st
		}
		for k, old := range model {
			if !keep(k) {
				continue
			}
			if _, ok := next[k]; !ok {
				trs = append(trs, k+": "+old.st.State+"->")
				delete(model, k)
			}
		}
		for k, st := range next {
			old, ok := model[k]
			switch {
			case !ok:
				trs = append(trs, k+": ->"+st.State)
				model[k] = row{st, at, at}
			case old.st.State != st.State:
				trs = append(trs, k+": "+old.st.State+"->"+st.State)
				model[k] = row{st, at, at}
			case !sameContent(old.st, st):
				model[k] = row{st, at, old.changedAt}
			}
		}
		return trs
	}
	keyOf := func(id string) string { return mustIDKey(id) + "|" }
	for step := 0; step < 80; step++ {
		at = at.Add(time.Minute)
		var picked []string
		for _, id := range resources {
			if rng.IntN(3) == 0 {
				picked = append(picked, id)
			}
		}
		inPicked := func(k string) bool {
			for _, id := range picked {
				if strings.HasPrefix(k, keyOf(id)) {
					return true
				}
			}
			return false
		}
		var want []string
		var got []store.StateTransition
		var what string
		err := s.Update(ctx, func(tx store.Tx) error {
			var err error
			switch op := rng.IntN(10); {
			case op < 5:
				what = "replace all assignments"
				var sts []store.PolicyState
				for _, id := range picked {
					r := slicesIndex(resources, id)
					for _, st := range variants[r][rng.IntN(3)] {
						st.EvaluatedAt = at
						if st.Reasons != nil && rng.IntN(4) == 0 {
							st.Reasons = json.RawMessage(" " + string(st.Reasons) + "\n") // same reasons, spaced
						}
						sts = append(sts, st)
					}
				}
				want = write(inPicked, sts)
				got, err = tx.ReplacePolicyStates(ctx, picked, nil, sts)
			case op < 7:
				asg := asgs[rng.IntN(len(asgs))]
				what = "replace " + lastSegment(asg)
				var sts []store.PolicyState
				for _, id := range picked {
					r := slicesIndex(resources, id)
					for _, st := range variants[r][rng.IntN(3)] {
						if st.AssignmentID == asg {
							st.EvaluatedAt = at
							sts = append(sts, st)
						}
					}
				}
				want = write(func(k string) bool { return inPicked(k) && strings.Contains(k, "|"+mustIDKey(asg)+"|") }, sts)
				got, err = tx.ReplacePolicyStates(ctx, picked, []string{asg}, sts)
			case op < 8:
				what = "delete resources"
				want = write(inPicked, nil)
				got, err = tx.DeletePolicyStates(ctx, picked)
			default:
				asg := asgs[rng.IntN(len(asgs))]
				what = "delete " + lastSegment(asg)
				want = write(func(k string) bool { return strings.Contains(k, "|"+mustIDKey(asg)+"|") }, nil)
				got, err = tx.DeleteAssignmentStates(ctx, asg)
			}
			return err
		})
		if err != nil {
			t.Fatalf("step %d (%s): %v", step, what, err)
		}
		var gotS []string
		for _, tr := range got {
			gotS = append(gotS, trKey(tr)+": "+tr.From+"->"+tr.To)
		}
		sort.Strings(want)
		sort.Strings(gotS)
		if strings.Join(gotS, "\n") != strings.Join(want, "\n") {
			t.Fatalf("step %d (%s): transitions\n %s\nwant\n %s", step, what, strings.Join(gotS, "\n "), strings.Join(want, "\n "))
		}
		stored := stateMap(allStates(t, s, store.PolicyStateQuery{}))
		if len(stored) != len(model) {
			t.Fatalf("step %d (%s): %d states stored, model has %d", step, what, len(stored), len(model))
		}
		for k, m := range model {
			st, ok := stored[k]
			switch {
			case !ok:
				t.Fatalf("step %d (%s): %s missing", step, what, k)
			case !sameContent(st, m.st):
				t.Fatalf("step %d (%s): %s =\n %+v\nwant\n %+v", step, what, k, st, m.st)
			case !st.EvaluatedAt.Equal(m.evaluated) || !st.ChangedAt.Equal(m.changedAt):
				t.Fatalf("step %d (%s): %s evaluated %v changed %v, want %v and %v", step, what, k, st.EvaluatedAt, st.ChangedAt, m.evaluated, m.changedAt)
			}
		}
	}
}

func slicesIndex(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}
