package fleet_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gildhq/gild/agentproto"
	"github.com/gildhq/gild/controlplane"
	"github.com/gildhq/gild/fleet"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

func assign(t *testing.T, e *env, vm resource.ID, name, typ string, params ...[2]string) resource.ID {
	t.Helper()
	var cp []map[string]string
	for _, p := range params {
		cp = append(cp, map[string]string{"name": p[0], "value": p[1]})
	}
	props, _ := json.Marshal(map[string]any{"guestConfiguration": map[string]any{"name": name, "assignmentType": typ, "configurationParameter": cp}})
	id := vm.Child(fleet.TypeAssignment, name)
	if _, _, err := e.cp.Put(e.ctx, controlplane.System, &resource.Resource{ID: id.String(), Properties: props}, store.Precondition{}); err != nil {
		t.Fatalf("assign %s: %v", name, err)
	}
	return id
}

func props(t *testing.T, e *env, id resource.ID) map[string]any {
	t.Helper()
	r, err := e.cp.Get(e.ctx, controlplane.System, id)
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(r.Properties, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAssignmentsReachTheAgentAndResultsComeBack(t *testing.T) {
	e := newEnv(t, fleet.BuiltinConfigurations{})
	vm := e.vm(t, "pet-1")
	e.enroll(t, vm)

	first, changed, err := e.fleet.Assignments(e.ctx, vm, "", 0)
	if err != nil || !changed || len(first.Assignments) != 0 || first.ETag == "" {
		t.Fatalf("no assignments yet: %+v %v %v", first, changed, err)
	}
	// A long poll with the current ETag is woken by a new assignment.
	type result struct {
		a       agentproto.Assignments
		changed bool
		err     error
	}
	done := make(chan result, 1)
	go func() {
		a, ch, err := e.fleet.Assignments(e.ctx, vm, first.ETag, 30*time.Second)
		done <- result{a, ch, err}
	}()
	time.Sleep(100 * time.Millisecond)
	id := assign(t, e, vm, "LinuxSshServerSecurityBaseline", "Audit", [2]string{"permitRootLogin", "no"})
	var got result
	select {
	case got = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the long poll was not woken by the new assignment")
	}
	if got.err != nil || !got.changed || len(got.a.Assignments) != 1 {
		t.Fatalf("after assigning: %+v", got)
	}
	a := got.a.Assignments[0]
	if a.Name != "LinuxSshServerSecurityBaseline" || a.AssignmentType != agentproto.AssignmentAudit || !strings.Contains(string(a.Checks), "PermitRootLogin") {
		t.Fatalf("assignment as the agent sees it: %+v", a)
	}
	p := props(t, e, id)
	if p["complianceStatus"] != "Pending" || p["parameterHash"] == "" || p["assignmentHash"] == "" {
		t.Fatalf("a new assignment: %v", p)
	}
	// Unchanged: a long poll with the new ETag times out unchanged.
	if _, ch, err := e.fleet.Assignments(e.ctx, vm, got.a.ETag, 50*time.Millisecond); err != nil || ch {
		t.Fatalf("unchanged assignments reported as changed: %v %v", ch, err)
	}

	now := time.Now().UTC()
	rep := report("r1", now, "1.0.0")
	rep.Assignments = []agentproto.AssignmentReport{{Name: a.Name, Hash: a.Hash, ComplianceStatus: agentproto.StatusNonCompliant, StartTime: now, EndTime: now,
		OperationType: "Initial", Resources: []agentproto.ResourceReport{{ResourceID: "Ensure that the SSH PermitRootLogin is configured",
			ComplianceStatus: agentproto.StatusNonCompliant, Reasons: []agentproto.Reason{{Code: "SettingMismatch", Phrase: `PermitRootLogin is "yes"; expected "no".`}},
			Expected: "PermitRootLogin no", Actual: "PermitRootLogin yes"}}}}
	if _, err := e.fleet.Report(e.ctx, vm, rep); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for props(t, e, id)["complianceStatus"] != "NonCompliant" {
		if time.Now().After(deadline) {
			t.Fatalf("the result never reached the assignment: %v", props(t, e, id))
		}
		time.Sleep(20 * time.Millisecond)
	}
	latest := props(t, e, id)["latestAssignmentReport"].(map[string]any)
	res := latest["resources"].([]any)[0].(map[string]any)
	if res["complianceStatus"] != "NonCompliant" || !strings.Contains(res["reasons"].([]any)[0].(map[string]any)["phrase"].(string), "PermitRootLogin") ||
		res["properties"].(map[string]any)["actual"] != "PermitRootLogin yes" {
		t.Fatalf("latestAssignmentReport: %v", latest)
	}

	// A client writing the assignment again, unchanged, cannot overwrite the result.
	forged, _ := json.Marshal(map[string]any{"guestConfiguration": map[string]any{"name": "LinuxSshServerSecurityBaseline", "assignmentType": "Audit",
		"configurationParameter": []map[string]string{{"name": "permitRootLogin", "value": "no"}}}, "complianceStatus": "Compliant"})
	if _, _, err := e.cp.Put(e.ctx, controlplane.System, &resource.Resource{ID: id.String(), Properties: forged}, store.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if s := props(t, e, id)["complianceStatus"]; s != "NonCompliant" {
		t.Fatalf("a client set complianceStatus to %v", s)
	}
	// Changing the assignment makes it Pending again, and a result for the old one is stale.
	assign(t, e, vm, "LinuxSshServerSecurityBaseline", "ApplyAndAutoCorrect", [2]string{"permitRootLogin", "no"})
	if s := props(t, e, id)["complianceStatus"]; s != "Pending" {
		t.Fatalf("a changed assignment is %v, want Pending", s)
	}
	rep.ID, rep.Time = "r2", now.Add(time.Second)
	rep.Assignments[0].ComplianceStatus = agentproto.StatusCompliant
	rep.Assignments[0].Resources[0].ComplianceStatus = agentproto.StatusCompliant
	if _, err := e.fleet.Report(e.ctx, vm, rep); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if s := props(t, e, id)["complianceStatus"]; s != "Pending" {
		t.Fatalf("a stale result was applied: %v", s)
	}
}

func TestAssignmentValidation(t *testing.T) {
	e := newEnv(t, fleet.BuiltinConfigurations{})
	vm := e.vm(t, "pet-2")
	props, _ := json.Marshal(map[string]any{"guestConfiguration": map[string]any{"name": "LinuxSshServerSecurityBaselin", "assignmentType": "Sometimes"}})
	_, _, err := e.cp.Put(e.ctx, controlplane.System, &resource.Resource{ID: vm.Child(fleet.TypeAssignment, "x").String(), Properties: props}, store.Precondition{})
	var re *resource.Error
	if !errors.As(err, &re) || re.Code != resource.CodeInvalidRequestContent {
		t.Fatalf("invalid assignment: %v", err)
	}
	for _, want := range []string{"LinuxSshServerSecurityBaseline", "assignmentType"} {
		if !strings.Contains(re.Message, want) {
			t.Errorf("the error does not mention %q: %s", want, re.Message)
		}
	}
}

// TestShutdownEndsLongPolls: a server stopping answers the agents' held requests at once.
func TestShutdownEndsLongPolls(t *testing.T) {
	e := newEnv(t, fleet.BuiltinConfigurations{})
	vm := e.vm(t, "pet-3")
	e.enroll(t, vm)
	first, _, err := e.fleet.Assignments(e.ctx, vm, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan bool, 1)
	go func() {
		_, changed, _ := e.fleet.Assignments(e.ctx, vm, first.ETag, time.Minute)
		done <- changed
	}()
	time.Sleep(100 * time.Millisecond)
	e.fleet.Shutdown()
	select {
	case changed := <-done:
		if changed {
			t.Error("a shutdown answered changed assignments")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a held request outlived Shutdown")
	}
}
