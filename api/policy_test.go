package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gildhq/gild/agentproto"
	"github.com/gildhq/gild/compliance"
	"github.com/gildhq/gild/policy"
	"github.com/gildhq/gild/resource"
)

const (
	defPublishers = "/providers/Microsoft.Management/managementGroups/contoso/providers/Microsoft.Authorization/policyDefinitions/allowed-publishers"
	asgPublishers = subPay + "/providers/Microsoft.Authorization/policyAssignments/publishers"
)

// publishersDefinition is Azure's "allowed image publishers" sample, as a team would bring it.
var publishersDefinition = map[string]any{"properties": map[string]any{
	"displayName": "Only allow images from certain publishers",
	"mode":        "All",
	"parameters": map[string]any{"listOfAllowedimagePublishers": map[string]any{"type": "Array",
		"metadata": map[string]any{"displayName": "Allowed image publishers"}}},
	"policyRule": map[string]any{
		"if": map[string]any{"allOf": []any{
			map[string]any{"field": "type", "in": []any{"Microsoft.Compute/virtualMachines", "Microsoft.Compute/VirtualMachineScaleSets"}},
			map[string]any{"not": map[string]any{"field": "Microsoft.Compute/imagePublisher", "in": "[parameters('listOfAllowedimagePublishers')]"}},
		}},
		"then": map[string]any{"effect": "deny"},
	},
}}

func publishersAssignment(mode string) map[string]any {
	return map[string]any{"properties": map[string]any{
		"policyDefinitionId": defPublishers,
		"enforcementMode":    mode,
		"parameters":         map[string]any{"listOfAllowedimagePublishers": map[string]any{"value": []any{"Debian", "Canonical"}}},
		"nonComplianceMessages": []any{map[string]any{
			"message": "Use a golden image from the corp gallery; see https://wiki.example/golden-images"}},
	}}
}

// states returns the compliance states the API reports for a resource, by assignment name.
func (e *env) states(resourceID string) map[string]map[string]any {
	e.t.Helper()
	r := e.must(e.admin, "POST", "/providers/Microsoft.PolicyInsights/policyStates/latest/queryResults?$filter="+
		strings.ReplaceAll("resourceId eq '"+resourceID+"'", " ", "%20"), nil, 200)
	out := map[string]map[string]any{}
	for _, v := range r.body["value"].([]any) {
		m := v.(map[string]any)
		id := m["policyAssignmentId"].(string)
		key := id[strings.LastIndex(id, "/")+1:]
		if ref, _ := m["policyDefinitionReferenceId"].(string); ref != "" {
			key += "/" + ref
		}
		out[key] = m
	}
	return out
}

// TestDenyAtAdmission is the acceptance case: an "allowed image publishers" deny
// assignment stops a VM with a publisher it does not allow and lets an allowed one
// through; with DoNotEnforce both are stored and the bad one is NonCompliant.
func TestDenyAtAdmission(t *testing.T) {
	e := newEnv(t)
	e.seed()
	e.must(e.admin, "PUT", defPublishers, publishersDefinition, 201)
	e.must(e.admin, "PUT", asgPublishers, publishersAssignment("Default"), 201)

	bad := rgPay + "/providers/" + vmType + "/from-redhat"
	good := rgPay + "/providers/" + vmType + "/from-debian"
	before, _ := e.st.LastSeq(t.Context())
	r := e.do(e.admin, "PUT", bad, vmBody("RedHat"))
	if r.status != 403 || r.errCode() != "RequestDisallowedByPolicy" {
		t.Fatalf("VM from a publisher not allowed: %d %s", r.status, r.raw)
	}
	msg := r.errField("message")
	if !strings.Contains(msg, "publishers") || !strings.Contains(msg, "golden image from the corp gallery") {
		t.Fatalf("the refusal should name the assignment and carry its message: %q", msg)
	}
	if after, _ := e.st.LastSeq(t.Context()); after != before {
		t.Fatalf("a denied PUT stored something: change sequence %d -> %d", before, after)
	}
	e.must(e.admin, "GET", bad, nil, 404)
	e.must(e.admin, "PUT", good, vmBody("debian"), 201) // publishers compare without case
	if st := e.states(good)["publishers"]; st["complianceState"] != "Compliant" {
		t.Fatalf("allowed VM state: %v", st)
	}

	// DoNotEnforce: both are stored, the bad one is NonCompliant, with its reason.
	e.must(e.admin, "PUT", asgPublishers, publishersAssignment("DoNotEnforce"), 200)
	e.must(e.admin, "PUT", bad, vmBody("RedHat"), 201)
	st := e.states(bad)["publishers"]
	if st["complianceState"] != "NonCompliant" || st["isCompliant"] != false || st["policyDefinitionAction"] != "deny" {
		t.Fatalf("VM stored under DoNotEnforce: %v", st)
	}
	reasons, _ := json.Marshal(st["complianceReasons"])
	if !strings.Contains(string(reasons), "Microsoft.Compute/imagePublisher") || !strings.Contains(string(reasons), "RedHat") {
		t.Fatalf("reasons should name the alias and the actual value: %s", reasons)
	}
	if st := e.states(good)["publishers"]; st["complianceState"] != "Compliant" {
		t.Fatalf("allowed VM state after the mode change: %v", st)
	}
	// Fixing the VM makes it compliant at once, and the history shows both changes.
	e.must(e.admin, "PUT", bad, vmBody("Canonical"), 200)
	if st := e.states(bad)["publishers"]; st["complianceState"] != "Compliant" {
		t.Fatalf("fixed VM: %v", st)
	}
	h := e.must(e.admin, "POST", "/providers/Microsoft.PolicyInsights/policyStates/default/queryResults", nil, 200)
	var path []string
	for _, v := range h.body["value"].([]any) {
		m := v.(map[string]any)
		if m["resourceId"] == bad {
			from, _ := m["previousComplianceState"].(string)
			to, _ := m["complianceState"].(string)
			path = append(path, from+">"+to)
		}
	}
	if strings.Join(path, " ") != ">NonCompliant NonCompliant>Compliant" {
		t.Fatalf("history of the VM: %v", path)
	}
}

func TestPolicyResourcesAreChecked(t *testing.T) {
	e := newEnv(t)
	e.seed()
	broken := map[string]any{"properties": map[string]any{"policyRule": map[string]any{
		"if":   map[string]any{"field": "Microsoft.Compute/imagePublsher", "equals": "x"},
		"then": map[string]any{"effect": "audit"}}}}
	r := e.do(e.admin, "PUT", defPublishers, broken)
	if r.status != 400 || r.errCode() != "InvalidPolicyDefinition" || !strings.Contains(r.errField("message"), "imagePublisher") ||
		r.errField("target") != "properties.policyRule.if.field" {
		t.Fatalf("definition with a misspelt alias: %d %s", r.status, r.raw)
	}
	e.must(e.admin, "PUT", defPublishers, publishersDefinition, 201)
	noParams := map[string]any{"properties": map[string]any{"policyDefinitionId": defPublishers}}
	r = e.do(e.admin, "PUT", asgPublishers, noParams)
	if r.status != 400 || !strings.Contains(r.errField("target"), "listOfAllowedimagePublishers") {
		t.Fatalf("assignment without its required parameter: %d %s", r.status, r.raw)
	}
	r = e.do(e.admin, "PUT", asgPublishers, map[string]any{"properties": map[string]any{"policyDefinitionId": defPublishers + "x"}})
	if r.status != 404 || r.errCode() != "PolicyDefinitionNotFound" {
		t.Fatalf("assignment of a missing definition: %d %s", r.status, r.raw)
	}
	// A definition in the contoso group cannot be assigned outside it.
	e.must(e.admin, "PUT", "/subscriptions/outside", map[string]any{}, 201)
	r = e.do(e.admin, "PUT", "/subscriptions/outside/providers/Microsoft.Authorization/policyAssignments/x", publishersAssignment("Default"))
	if r.status != 400 || !strings.Contains(r.errField("message"), "does not contain") {
		t.Fatalf("assignment outside the definition's scope: %d %s", r.status, r.raw)
	}
	e.must(e.admin, "PUT", asgPublishers, publishersAssignment("Default"), 201)
	if r := e.do(e.admin, "DELETE", defPublishers, nil); r.status != 409 || !strings.Contains(r.errField("message"), "publishers") {
		t.Fatalf("deleting a definition in use: %d %s", r.status, r.raw)
	}
	e.must(e.admin, "DELETE", asgPublishers, nil, 200)
	e.must(e.admin, "DELETE", defPublishers, nil, 200)
}

// TestExemptionExpires checks that an exemption stops counting at expiresOn with nobody
// doing anything: the engine rescans when it expires.
func TestExemptionExpires(t *testing.T) {
	e := newEnv(t)
	e.seed()
	e.must(e.admin, "PUT", defPublishers, publishersDefinition, 201)
	e.must(e.admin, "PUT", asgPublishers, publishersAssignment("DoNotEnforce"), 201)
	bad := rgPay + "/providers/" + vmType + "/legacy"
	e.must(e.admin, "PUT", bad, vmBody("RedHat"), 201)
	if st := e.states(bad)["publishers"]; st["complianceState"] != "NonCompliant" {
		t.Fatalf("before the exemption: %v", st)
	}
	expires := time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339Nano)
	e.must(e.admin, "PUT", bad+"/providers/Microsoft.Authorization/policyExemptions/legacy-waiver", map[string]any{"properties": map[string]any{
		"policyAssignmentId": asgPublishers, "exemptionCategory": "Waiver", "expiresOn": expires,
		"description": "migrating off RedHat by the end of the sprint"}}, 201)
	waitFor(t, 5*time.Second, "the exemption to apply", func() bool { return e.states(bad)["publishers"]["complianceState"] == "Exempt" })
	waitFor(t, 10*time.Second, "the exemption to expire", func() bool { return e.states(bad)["publishers"]["complianceState"] == "NonCompliant" })
}

// TestInitiativeAndSummary assigns an initiative of two policies with notScopes and
// checks states per reference id and Azure's summary and percentage.
func TestInitiativeAndSummary(t *testing.T) {
	e := newEnv(t)
	e.seed()
	e.must(e.admin, "PUT", defPublishers, publishersDefinition, 201)
	initiative := "/providers/Microsoft.Management/managementGroups/contoso/providers/Microsoft.Authorization/policySetDefinitions/vm-baseline"
	e.must(e.admin, "PUT", initiative, map[string]any{"properties": map[string]any{
		"displayName": "VM baseline",
		"parameters":  map[string]any{"publishers": map[string]any{"type": "Array", "defaultValue": []any{"Debian"}}},
		"policyDefinitions": []any{
			map[string]any{"policyDefinitionId": defPublishers, "policyDefinitionReferenceId": "publishers",
				"parameters": map[string]any{"listOfAllowedimagePublishers": map[string]any{"value": "[parameters('publishers')]"}}},
			map[string]any{"policyDefinitionId": "/providers/Microsoft.Authorization/policyDefinitions/gild-service-model-tag",
				"policyDefinitionReferenceId": "service-model",
				"parameters":                  map[string]any{"effect": map[string]any{"value": "Audit"}}},
		}}}, 201)
	assignment := mgCorp + "/providers/Microsoft.Authorization/policyAssignments/baseline"
	e.must(e.admin, "PUT", assignment, map[string]any{"properties": map[string]any{
		"policyDefinitionId": initiative, "enforcementMode": "DoNotEnforce",
		"notScopes": []any{rgFind}}}, 201)
	e.must(e.admin, "POST", mgCorp+"/providers/Microsoft.PolicyInsights/policyStates/latest/triggerEvaluation", nil, 200)

	pet := rgPay + "/providers/" + vmType + "/untagged"
	body := vmBody("RedHat")
	delete(body, "tags")
	e.must(e.admin, "PUT", pet, body, 201)
	got := e.states(pet)
	if got["baseline/publishers"]["complianceState"] != "NonCompliant" || got["baseline/service-model"]["complianceState"] != "NonCompliant" {
		t.Fatalf("untagged RedHat VM: %v", got)
	}
	if got := e.states(vmPay); got["baseline/publishers"]["complianceState"] != "Compliant" || got["baseline/service-model"]["complianceState"] != "Compliant" {
		t.Fatalf("api-1: %v", got)
	}
	if got := e.states(vmFind); len(got) != 0 {
		t.Fatalf("a VM in a notScope has states: %v", got)
	}
	sum := e.must(e.admin, "POST", subPay+"/providers/Microsoft.PolicyInsights/policyStates/latest/summarize", nil, 200)
	results := sum.body["value"].([]any)[0].(map[string]any)["results"].(map[string]any)
	// Resources in payments: the subscription and its resource group (tags are not
	// required there: the tag policy is Indexed and VM-only, the publisher one VM-only,
	// so they are compliant), api-1 (compliant) and untagged (non-compliant).
	if results["nonCompliantResources"] != 1.0 || results["nonCompliantPolicies"] != 2.0 {
		t.Fatalf("summary results: %v", results)
	}
	if pct := results["compliancePercentage"].(float64); pct != 75 {
		t.Fatalf("compliance percentage %v, want 75 (3 of 4 resources)", pct)
	}
	// The payments reader sees payments' states only.
	reader := e.token("Reader", subPay)
	r := e.must(reader, "POST", "/providers/Microsoft.PolicyInsights/policyStates/latest/queryResults", nil, 200)
	for _, v := range r.body["value"].([]any) {
		if id := v.(map[string]any)["resourceId"].(string); !strings.HasPrefix(id, subPay) {
			t.Fatalf("reader sees the state of %s", id)
		}
	}
	if r := e.do(reader, "POST", subFind+"/providers/Microsoft.PolicyInsights/policyStates/latest/summarize", nil); r.status != 404 {
		t.Fatalf("reader summarising another team: %d", r.status)
	}
	if r := e.do(reader, "POST", subPay+"/providers/Microsoft.PolicyInsights/policyStates/latest/triggerEvaluation", nil); r.status != 403 {
		t.Fatalf("reader triggering a scan: %d %s", r.status, r.raw)
	}
}

// TestGuestConfigurationAuditIfNotExists evaluates an auditIfNotExists definition in the
// shape of Azure's guest-configuration built-ins: the VM complies only when its
// guestConfigurationAssignments extension reports Compliant, which only the VM's agent can
// make it.
func TestGuestConfigurationAuditIfNotExists(t *testing.T) {
	e := newEnv(t)
	e.seed()
	def := "/providers/Microsoft.Authorization/policyDefinitions/linux-baseline-audit"
	e.must(e.admin, "PUT", def, map[string]any{"properties": map[string]any{
		"mode": "Indexed",
		"policyRule": map[string]any{
			"if": map[string]any{"field": "type", "equals": "Microsoft.Compute/virtualMachines"},
			"then": map[string]any{"effect": "auditIfNotExists", "details": map[string]any{
				"type": "Microsoft.GuestConfiguration/guestConfigurationAssignments",
				"name": "LinuxSshServerSecurityBaseline",
				"existenceCondition": map[string]any{
					"field": "Microsoft.GuestConfiguration/guestConfigurationAssignments/complianceStatus", "equals": "Compliant"},
			}},
		}}}, 201)
	e.must(e.admin, "PUT", subPay+"/providers/Microsoft.Authorization/policyAssignments/linux-baseline",
		map[string]any{"properties": map[string]any{"policyDefinitionId": def}}, 201)
	gca := vmPay + "/providers/Microsoft.GuestConfiguration/guestConfigurationAssignments/LinuxSshServerSecurityBaseline"
	scan := func() {
		e.must(e.admin, "POST", subPay+"/providers/Microsoft.PolicyInsights/policyStates/latest/triggerEvaluation", nil, 200)
	}
	scan()
	if st := e.states(vmPay)["linux-baseline"]; st["complianceState"] != "NonCompliant" {
		t.Fatalf("VM without its guest assignment: %v", st)
	}
	// A client cannot declare the assignment compliant: only the agent's report counts.
	e.must(e.admin, "PUT", gca, map[string]any{"properties": map[string]any{"guestConfiguration": map[string]any{"name": "LinuxSshServerSecurityBaseline"},
		"complianceStatus": "Compliant"}}, 201)
	scan()
	if st := e.states(vmPay)["linux-baseline"]; st["complianceState"] != "NonCompliant" {
		t.Fatalf("VM whose guest assignment is Pending: %v", st)
	}
	agent := e.enrollAgent(vmPay)
	agent.report(t, "NonCompliant")
	waitFor(t, 10*time.Second, "the agent's NonCompliant result", func() bool {
		return e.must(e.admin, "GET", gca, nil, 200).body["properties"].(map[string]any)["complianceStatus"] == "NonCompliant"
	})
	scan()
	if st := e.states(vmPay)["linux-baseline"]; st["complianceState"] != "NonCompliant" {
		t.Fatalf("VM whose guest assignment reports NonCompliant: %v", st)
	}
	agent.report(t, "Compliant")
	waitFor(t, 10*time.Second, "the VM Compliant", func() bool {
		return e.states(vmPay)["linux-baseline"]["complianceState"] == "Compliant"
	})
	// Another VM's guest assignment does not count for this one.
	other := rgPay + "/providers/" + vmType + "/api-2"
	e.must(e.admin, "PUT", other, vmBody("Debian"), 201)
	if st := e.states(other)["linux-baseline"]; st["complianceState"] != "NonCompliant" {
		t.Fatalf("a VM must not borrow another VM's guest assignment: %v", st)
	}
}

// testAgent plays a machine's agent over the API, with a credential enrollment gave it.
type testAgent struct {
	e          *env
	credential string
	n          int
}

func (e *env) enrollAgent(machine string) *testAgent {
	e.t.Helper()
	id := resource.MustParse(machine)
	tok, err := e.fleet.EnrollmentToken(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	r := e.do("", "POST", agentproto.PathEnroll, agentproto.EnrollRequest{Version: agentproto.Version, Token: tok,
		Facts: agentproto.Facts{Hostname: id.Name(), AgentVersion: "test"}})
	if r.status != 200 {
		e.t.Fatalf("enroll: %d %s", r.status, r.raw)
	}
	return &testAgent{e: e, credential: r.body["credential"].(string)}
}

// report runs nothing: it reports every assignment the server gives the machine with the
// status given, as an agent whose checks came out that way would.
func (a *testAgent) report(t *testing.T, status string) {
	t.Helper()
	r := a.e.do(a.credential, "GET", agentproto.PathAssignments, nil)
	if r.status != 200 {
		t.Fatalf("assignments: %d %s", r.status, r.raw)
	}
	var as agentproto.Assignments
	if err := json.Unmarshal(r.raw, &as); err != nil {
		t.Fatal(err)
	}
	a.n++
	now := time.Now().UTC()
	rep := agentproto.Report{Version: agentproto.Version, ID: fmt.Sprintf("r%d", a.n), Time: now, Facts: agentproto.Facts{Hostname: "h", AgentVersion: "test"}}
	for _, x := range as.Assignments {
		res := agentproto.ResourceReport{ResourceID: "Ensure that the SSH PermitRootLogin is configured", ComplianceStatus: status, Reasons: []agentproto.Reason{}}
		if status != "Compliant" {
			res.Reasons = append(res.Reasons, agentproto.Reason{Code: "SettingMismatch", Phrase: `PermitRootLogin is "yes"; expected "no".`})
		}
		rep.Assignments = append(rep.Assignments, agentproto.AssignmentReport{Name: x.Name, Hash: x.Hash, ComplianceStatus: status,
			StartTime: now, EndTime: now, OperationType: "Consistency", Resources: []agentproto.ResourceReport{res}})
	}
	if r := a.e.do(a.credential, "POST", agentproto.PathReports, rep); r.status != 200 {
		t.Fatalf("report: %d %s", r.status, r.raw)
	}
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestModifyAndDerivedFields checks that modify changes a request before it is stored, and
// that gild's derived fields (properties.gild) reach policies without being stored.
func TestModifyAndDerivedFields(t *testing.T) {
	e := newEnv(t)
	e.seed()
	def := "/providers/Microsoft.Authorization/policyDefinitions/owner-tag"
	e.must(e.admin, "PUT", def, map[string]any{"properties": map[string]any{
		"mode": "Indexed",
		"policyRule": map[string]any{
			"if": map[string]any{"field": "tags['owner']", "exists": "false"},
			"then": map[string]any{"effect": "modify", "details": map[string]any{
				"roleDefinitionIds": []any{"/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c"},
				"operations":        []any{map[string]any{"operation": "add", "field": "tags['owner']", "value": "[resourceGroup().name]"}},
			}},
		}}}, 201)
	e.must(e.admin, "PUT", subPay+"/providers/Microsoft.Authorization/policyAssignments/owner-tag",
		map[string]any{"properties": map[string]any{"policyDefinitionId": def}}, 201)
	vm := rgPay + "/providers/" + vmType + "/tagged-by-policy"
	r := e.must(e.admin, "PUT", vm, vmBody("Debian"), 201)
	tags := r.body["tags"].(map[string]any)
	if tags["owner"] != "prod" || tags["serviceModel"] != "cattle" {
		t.Fatalf("modify should add the owner tag from the resource group's name: %v", tags)
	}
	if props := r.body["properties"].(map[string]any); props["gild"] != nil {
		t.Fatalf("derived fields were stored: %v", props["gild"])
	}
	// The built-in refresh policy sees the VM's age through properties.gild.refresh.ageDays.
	e.must(e.admin, "PUT", subPay+"/providers/Microsoft.Authorization/policyAssignments/refresh",
		map[string]any{"properties": map[string]any{"policyDefinitionId": "/providers/Microsoft.Authorization/policyDefinitions/gild-cattle-refresh",
			"parameters": map[string]any{"maxAgeDays": map[string]any{"value": -1}}}}, 201)
	e.must(e.admin, "PUT", vm, vmBody("Debian"), 200)
	if st := e.states(vm)["refresh"]; st["complianceState"] != "NonCompliant" {
		t.Fatalf("a cattle VM older than the refresh cycle: %v", st)
	}
}

// TestRemediation runs remediation tasks over resources that existed before their policies:
// modify adds a missing tag; deployIfNotExists deploys a guest-configuration assignment
// with a template in the shape of Azure's built-ins. Both resources comply afterwards.
func TestRemediation(t *testing.T) {
	e := newEnv(t)
	e.seed()
	// An untagged VM, written before any policy.
	vm := rgPay + "/providers/" + vmType + "/old-vm"
	e.must(e.admin, "PUT", vm, map[string]any{"location": "local", "properties": map[string]any{}}, 201)

	modifyDef := "/providers/Microsoft.Authorization/policyDefinitions/cost-center"
	e.must(e.admin, "PUT", modifyDef, map[string]any{"properties": map[string]any{"mode": "Indexed",
		"policyRule": map[string]any{
			"if": map[string]any{"field": "tags['costCenter']", "exists": "false"},
			"then": map[string]any{"effect": "modify", "details": map[string]any{
				"roleDefinitionIds": []any{"/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c"},
				"operations":        []any{map[string]any{"operation": "addOrReplace", "field": "tags['costCenter']", "value": "cc-42"}}}}}}}, 201)
	dineDef := "/providers/Microsoft.Authorization/policyDefinitions/deploy-linux-baseline"
	e.must(e.admin, "PUT", dineDef, map[string]any{"properties": map[string]any{"mode": "Indexed",
		"policyRule": map[string]any{
			"if": map[string]any{"field": "type", "equals": "Microsoft.Compute/virtualMachines"},
			"then": map[string]any{"effect": "deployIfNotExists", "details": map[string]any{
				"type": "Microsoft.GuestConfiguration/guestConfigurationAssignments", "name": "LinuxSshServerSecurityBaseline",
				"roleDefinitionIds": []any{"/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c"},
				"deployment": map[string]any{"properties": map[string]any{"mode": "incremental",
					"parameters": map[string]any{"vmName": map[string]any{"value": "[field('name')]"}, "location": map[string]any{"value": "[field('location')]"},
						"type": map[string]any{"value": "[field('type')]"}},
					"template": map[string]any{"$schema": "https://schema.management.azure.com/schemas/2015-01-01/deploymentTemplate.json#", "contentVersion": "1.0.0.0",
						"parameters": map[string]any{"vmName": map[string]any{"type": "string"}, "location": map[string]any{"type": "string"},
							"type": map[string]any{"type": "string"}, "configurationName": map[string]any{"type": "string", "defaultValue": "LinuxSshServerSecurityBaseline"}},
						"resources": []any{map[string]any{
							"condition":  "[equals(toLower(parameters('type')), toLower('Microsoft.Compute/virtualMachines'))]",
							"apiVersion": "2018-11-20", "type": "Microsoft.Compute/virtualMachines/providers/guestConfigurationAssignments",
							"name":       "[concat(parameters('vmName'), '/Microsoft.GuestConfiguration/', parameters('configurationName'))]",
							"location":   "[parameters('location')]",
							"properties": map[string]any{"guestConfiguration": map[string]any{"name": "[parameters('configurationName')]", "version": "1.*"}},
						}}}}}}}}}}, 201)
	for _, a := range []struct{ name, def string }{{"cost-center", modifyDef}, {"linux-baseline", dineDef}} {
		e.must(e.admin, "PUT", subPay+"/providers/Microsoft.Authorization/policyAssignments/"+a.name,
			map[string]any{"properties": map[string]any{"policyDefinitionId": a.def}}, 201)
	}
	e.must(e.admin, "POST", subPay+"/providers/Microsoft.PolicyInsights/policyStates/latest/triggerEvaluation", nil, 200)
	if st := e.states(vm); st["cost-center"]["complianceState"] != "NonCompliant" || st["linux-baseline"]["complianceState"] != "NonCompliant" {
		t.Fatalf("before remediation: %v", st)
	}
	// A remediation of an audit policy is refused.
	if r := e.do(e.admin, "PUT", subPay+"/providers/Microsoft.PolicyInsights/remediations/bad", map[string]any{"properties": map[string]any{
		"policyAssignmentId": subPay + "/providers/Microsoft.Authorization/policyAssignments/none"}}); r.status != 400 {
		t.Fatalf("remediation of a missing assignment: %d %s", r.status, r.raw)
	}
	for _, name := range []string{"cost-center", "linux-baseline"} {
		id := subPay + "/providers/Microsoft.PolicyInsights/remediations/fix-" + name
		r := e.must(e.admin, "PUT", id, map[string]any{"properties": map[string]any{
			"policyAssignmentId": subPay + "/providers/Microsoft.Authorization/policyAssignments/" + name}}, 201)
		if st := r.body["properties"].(map[string]any)["provisioningState"]; st != "Accepted" {
			t.Fatalf("new remediation: %v", st)
		}
		waitFor(t, 10*time.Second, "remediation "+name, func() bool {
			p := e.must(e.admin, "GET", id, nil, 200).body["properties"].(map[string]any)
			return p["provisioningState"] == "Succeeded" || p["provisioningState"] == "Failed"
		})
		p := e.must(e.admin, "GET", id, nil, 200).body["properties"].(map[string]any)
		status := p["deploymentStatus"].(map[string]any)
		if p["provisioningState"] != "Succeeded" || status["successfulDeployments"].(float64) < 1 || status["failedDeployments"] != 0.0 {
			t.Fatalf("remediation %s: %v", name, p)
		}
	}
	if tags := e.must(e.admin, "GET", vm, nil, 200).body["tags"].(map[string]any); tags["costCenter"] != "cc-42" {
		t.Fatalf("the modify remediation did not tag the VM: %v", tags)
	}
	e.must(e.admin, "GET", vm+"/providers/Microsoft.GuestConfiguration/guestConfigurationAssignments/LinuxSshServerSecurityBaseline", nil, 200)
	if st := e.states(vm); st["cost-center"]["complianceState"] != "Compliant" || st["linux-baseline"]["complianceState"] != "Compliant" {
		t.Fatalf("after remediation: %v", st)
	}
}

// TestAzureGuestConfigurationBuiltIn runs Azure's own "Linux machines should meet the SSH
// server security baseline" deployIfNotExists built-in, as published, against a VM: it is
// NonCompliant without the guest assignment; a remediation deploys the assignment with its
// template (ApplyAndAutoCorrect and the 19 parameters), which gild's configurations accept;
// the VM stays NonCompliant until its agent reports the assignment Compliant, and then the
// built-in's existence condition (its parameterHash included) holds.
func TestAzureGuestConfigurationBuiltIn(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "shared", "azure-policy", "built-in-policies", "policyDefinitions",
		"Guest Configuration", "LinuxSshServerSecurityBaseline_DINE.json"))
	if err != nil {
		t.Skipf("the Azure Policy corpus is not beside the repository: %v", err)
	}
	var def map[string]any
	if err := json.Unmarshal(raw, &def); err != nil {
		t.Fatal(err)
	}
	// Azure's full alias catalogue: the built-in also names Arc and vSphere aliases.
	catalogue, err := policy.LoadAliasFile(filepath.Join("..", "..", "shared", "azure-policy", "aliases.csv.gz"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *compliance.Options) { o.Aliases = policy.DefaultAliases().Merge(catalogue) })
	e.seed()
	defID := "/providers/Microsoft.Authorization/policyDefinitions/ssh-baseline-dine"
	e.must(e.admin, "PUT", defID, map[string]any{"properties": def["properties"]}, 201)
	vm := rgPay + "/providers/" + vmType + "/linux-1"
	e.must(e.admin, "PUT", vm, map[string]any{"location": "local", "tags": map[string]any{"serviceModel": "pet"}, "properties": map[string]any{
		"osProfile":      map[string]any{"computerName": "linux-1", "linuxConfiguration": map[string]any{"disablePasswordAuthentication": true}},
		"storageProfile": map[string]any{"osDisk": map[string]any{"osType": "Linux"}, "imageReference": map[string]any{"publisher": "Debian", "offer": "debian-12", "sku": "12"}}}}, 201)
	asg := subPay + "/providers/Microsoft.Authorization/policyAssignments/ssh-baseline"
	e.must(e.admin, "PUT", asg, map[string]any{"location": "local", "identity": map[string]any{"type": "SystemAssigned"},
		"properties": map[string]any{"policyDefinitionId": defID}}, 201)
	scan := func() {
		e.must(e.admin, "POST", subPay+"/providers/Microsoft.PolicyInsights/policyStates/latest/triggerEvaluation", nil, 200)
	}
	scan()
	if st := e.states(vm)["ssh-baseline"]; st["complianceState"] != "NonCompliant" {
		t.Fatalf("before remediation: %v", st)
	}
	rem := subPay + "/providers/Microsoft.PolicyInsights/remediations/ssh"
	e.must(e.admin, "PUT", rem, map[string]any{"properties": map[string]any{"policyAssignmentId": asg}}, 201)
	waitFor(t, 10*time.Second, "the remediation", func() bool {
		p := e.must(e.admin, "GET", rem, nil, 200).body["properties"].(map[string]any)
		return p["provisioningState"] == "Succeeded" || p["provisioningState"] == "Failed"
	})
	if p := e.must(e.admin, "GET", rem, nil, 200).body["properties"].(map[string]any); p["provisioningState"] != "Succeeded" {
		t.Fatalf("remediation: %v", p)
	}
	gca := vm + "/providers/Microsoft.GuestConfiguration/guestConfigurationAssignments/SetLinuxSshServerSecurityBaseline"
	props := e.must(e.admin, "GET", gca, nil, 200).body["properties"].(map[string]any)
	gc := props["guestConfiguration"].(map[string]any)
	if gc["assignmentType"] != "ApplyAndAutoCorrect" || len(gc["configurationParameter"].([]any)) != 19 || props["complianceStatus"] != "Pending" || props["parameterHash"] == "" {
		t.Fatalf("the deployed assignment: %v", props)
	}
	scan()
	if st := e.states(vm)["ssh-baseline"]; st["complianceState"] != "NonCompliant" {
		t.Fatalf("with the assignment Pending: %v", st)
	}
	e.enrollAgent(vm).report(t, "Compliant")
	waitFor(t, 10*time.Second, "the VM Compliant under Azure's built-in", func() bool {
		return e.states(vm)["ssh-baseline"]["complianceState"] == "Compliant"
	})
}

// TestAzureGuestConfigurationAudit runs Azure's auditIfNotExists SSH baseline built-in, as
// published: as in Azure, gild creates the guest assignment the policy expects (its name
// from the policy's own expression, Audit, the parameters in the policy's order), and the
// VM is Compliant once its agent reports that assignment Compliant.
func TestAzureGuestConfigurationAudit(t *testing.T) {
	dir := filepath.Join("..", "..", "shared", "azure-policy")
	raw, err := os.ReadFile(filepath.Join(dir, "built-in-policies", "policyDefinitions", "Guest Configuration", "LinuxSshServerSecurityBaseline_AINE.json"))
	if err != nil {
		t.Skipf("the Azure Policy corpus is not beside the repository: %v", err)
	}
	catalogue, err := policy.LoadAliasFile(filepath.Join(dir, "aliases.csv.gz"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *compliance.Options) { o.Aliases = policy.DefaultAliases().Merge(catalogue) })
	e.seed()
	var def map[string]any
	if err := json.Unmarshal(raw, &def); err != nil {
		t.Fatal(err)
	}
	defID := "/providers/Microsoft.Authorization/policyDefinitions/ssh-baseline-audit"
	e.must(e.admin, "PUT", defID, map[string]any{"properties": def["properties"]}, 201)
	vm := rgPay + "/providers/" + vmType + "/linux-2"
	e.must(e.admin, "PUT", vm, map[string]any{"location": "local", "tags": map[string]any{"serviceModel": "pet"}, "properties": map[string]any{
		"osProfile":      map[string]any{"computerName": "linux-2", "linuxConfiguration": map[string]any{"disablePasswordAuthentication": true}},
		"storageProfile": map[string]any{"osDisk": map[string]any{"osType": "Linux"}, "imageReference": map[string]any{"publisher": "Debian", "offer": "debian-12", "sku": "12"}}}}, 201)
	e.must(e.admin, "PUT", subPay+"/providers/Microsoft.Authorization/policyAssignments/ssh-audit",
		map[string]any{"properties": map[string]any{"policyDefinitionId": defID, "parameters": map[string]any{"maxAuthTries": map[string]any{"value": "4"}}}}, 201)
	scan := func() {
		e.must(e.admin, "POST", subPay+"/providers/Microsoft.PolicyInsights/policyStates/latest/triggerEvaluation", nil, 200)
	}
	scan()
	if st := e.states(vm)["ssh-audit"]; st["complianceState"] != "NonCompliant" {
		t.Fatalf("before the guest assignment: %v", st)
	}
	var created map[string]any
	waitFor(t, 10*time.Second, "the guest assignment the policy expects", func() bool {
		r := e.do(e.admin, "GET", vm+"/providers/Microsoft.GuestConfiguration/guestConfigurationAssignments", nil)
		for _, v := range r.body["value"].([]any) {
			created = v.(map[string]any)
			return true
		}
		return false
	})
	name := created["name"].(string)
	props := created["properties"].(map[string]any)
	gc := props["guestConfiguration"].(map[string]any)
	params := gc["configurationParameter"].([]any)
	if !strings.HasPrefix(name, "LinuxSshServerSecurityBaseline$pid") || gc["assignmentType"] != "Audit" || len(params) != 19 {
		t.Fatalf("the created assignment: %s %v", name, props)
	}
	maxAuth := map[string]any{}
	for _, p := range params {
		if p := p.(map[string]any); p["name"] == "Ensure that the SSH MaxAuthTries is configured;DesiredObjectValue" {
			maxAuth = p
		}
	}
	if maxAuth["value"] != "4" {
		t.Fatalf("the assignment does not carry the assignment's parameter value: %v", params)
	}
	e.enrollAgent(vm).report(t, "Compliant")
	waitFor(t, 10*time.Second, "the VM Compliant under Azure's audit built-in", func() bool {
		return e.states(vm)["ssh-audit"]["complianceState"] == "Compliant"
	})
}
