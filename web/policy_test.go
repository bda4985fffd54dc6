package web_test

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const (
	mgCorp      = "/providers/Microsoft.Management/managementGroups/corp"
	tagPolicy   = mgCorp + "/providers/Microsoft.Authorization/policyAssignments/require-service-model"
	tagDef      = "/providers/Microsoft.Authorization/policyDefinitions/gild-service-model-tag"
	wikiMessage = "Tag every VM pet or cattle: https://wiki.example.com/policies/service-model"
)

func testVM(serviceModel string) map[string]any {
	tags := map[string]string{}
	if serviceModel != "" {
		tags["serviceModel"] = serviceModel
	}
	return map[string]any{"location": "local", "tags": tags, "properties": map[string]any{
		"hardwareProfile": map[string]any{"vmSize": "Standard_B2s"},
		"storageProfile": map[string]any{"imageReference": map[string]any{
			"publisher": "Debian", "offer": "debian-12", "sku": "12", "version": "latest"}}}}
}

func vmPath(sub, rg, name string) string {
	return "/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/Microsoft.Compute/virtualMachines/" + name
}

// seedCompliance makes two teams under management group corp, the serviceModel-tag policy
// assigned at corp in audit mode with a wiki link in its message, and VMs: payments has
// api-1 (untagged, non-compliant) and api-2; retail has web-1.
func seedCompliance(e *env) {
	e.t.Helper()
	e.put(e.admin, mgCorp, map[string]any{"properties": map[string]any{"displayName": "Corp"}})
	for _, s := range []string{"payments", "retail"} {
		e.put(e.admin, "/subscriptions/"+s, map[string]any{"properties": map[string]any{"managementGroupId": mgCorp}})
		e.put(e.admin, "/subscriptions/"+s+"/resourceGroups/prod", map[string]any{"location": "local"})
	}
	e.put(e.admin, tagPolicy, map[string]any{"properties": map[string]any{
		"displayName":           "Every VM is a pet or cattle",
		"policyDefinitionId":    tagDef,
		"parameters":            map[string]any{"effect": map[string]any{"value": "Audit"}},
		"nonComplianceMessages": []map[string]any{{"message": wikiMessage}},
	}})
	e.put(e.admin, vmPath("payments", "prod", "api-1"), testVM(""))
	e.put(e.admin, vmPath("payments", "prod", "api-2"), testVM("cattle"))
	e.put(e.admin, vmPath("retail", "prod", "web-1"), testVM("pet"))
}

func TestOverviewAndPolicyPages(t *testing.T) {
	e := newEnv(t)
	seedCompliance(e)
	admin := e.signIn(e.admin)

	page := admin.mustGet("/ui/")
	for _, want := range []string{
		`id="overall-pct">66.67 %`, `id="noncompliant-resources"`, `>1</a><span class="label">non-compliant resources`,
		`id="noncompliant-policies">1<`, `>payments</a>`, `>retail</a>`, `>corp</a>`, `Every VM is a pet or cattle`, `<svg class="trend"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the overview lacks %q", want)
		}
	}
	// Drill into a team: only its resources count.
	page = admin.mustGet("/ui/?scope=" + url.QueryEscape("/subscriptions/payments"))
	if !strings.Contains(page, `id="overall-pct">50 %`) || !strings.Contains(page, "Compliance in payments") {
		t.Errorf("payments' overview:\n%s", page)
	}
	if status, body := admin.get("/ui/?days=7"); status != http.StatusBadRequest || !strings.Contains(body, "days") {
		t.Errorf("days=7: %d", status)
	}
	page = admin.mustGet("/ui/resources?scope=" + url.QueryEscape("/subscriptions/payments") + "&resources.state=NonCompliant")
	if !strings.Contains(page, ">api-1</a>") || strings.Contains(page, ">api-2</a>") {
		t.Errorf("payments' non-compliant resources:\n%s", page)
	}

	// The assignment page: the reason with field, expected and actual, and the wiki link.
	page = admin.mustGet("/ui/assignment" + tagPolicy)
	for _, want := range []string{
		`<a href="https://wiki.example.com/policies/service-model" rel="noopener noreferrer">`,
		">api-1</a>", "tags[&#39;serviceModel&#39;]", "notIn [&#34;pet&#34;,&#34;cattle&#34;]", "(not set)", "Audit",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the assignment page lacks %q", want)
		}
	}
	if strings.Contains(page, ">api-2</a>") || strings.Contains(page, ">web-1</a>") {
		t.Error("the assignment page lists compliant VMs as non-compliant")
	}
	page = admin.mustGet("/ui/definition" + tagDef)
	if !strings.Contains(page, "VMs must be tagged serviceModel pet or cattle") || !strings.Contains(page, "Every VM is a pet or cattle</a>") {
		t.Errorf("definition page:\n%s", page)
	}
	page = admin.mustGet("/ui/policies")
	if !strings.Contains(page, "Every VM is a pet or cattle</a>") || !strings.Contains(page, "gild-tattoo-matches-image") {
		t.Errorf("policies page:\n%s", page)
	}

	// Export: the non-compliant list as CSV and JSON.
	status, body := admin.get("/ui/assignment" + tagPolicy + "?export=noncompliant&format=csv")
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if status != http.StatusOK || err != nil || len(recs) != 3 || recs[2][0] != "api-1" || recs[2][4] != "tags['serviceModel']" || recs[0][4] != "Field" {
		t.Errorf("CSV export: %d %v %q", status, err, recs)
	}
	_, body = admin.get("/ui/?export=teams&format=json")
	var teams []map[string]any
	if err := json.Unmarshal([]byte(body), &teams); err != nil || len(teams) != 2 || teams[0]["name"] != "payments" || teams[0]["compliance"] != 50.0 {
		t.Errorf("JSON export of teams: %v %v", err, teams)
	}
	if status, _ := admin.get("/ui/?export=nope&format=csv"); status != http.StatusBadRequest {
		t.Errorf("export of an unknown list: %d", status)
	}

	// Filter and search: the teams list narrowed to retail.
	page = admin.mustGet("/ui/?teams.q=reta")
	if !strings.Contains(page, ">retail</a>") || strings.Contains(page, `title="/subscriptions/payments">payments</a>`) {
		t.Errorf("teams search:\n%s", page)
	}

	// Retail's reader sees retail only; the assignment made above it is shown (it applies
	// to retail's VMs) but lists none of payments' VMs.
	retail := e.signIn(e.token("Reader", "/subscriptions/retail"))
	page = retail.mustGet("/ui/")
	if !strings.Contains(page, `id="overall-pct">100 %`) || strings.Contains(page, "payments") {
		t.Errorf("retail's overview:\n%s", page)
	}
	page = retail.mustGet("/ui/assignment" + tagPolicy)
	if strings.Contains(page, "api-1") {
		t.Error("retail's reader sees payments' VM on the assignment page")
	}
	if status, _ := retail.get("/ui/?scope=" + url.QueryEscape("/subscriptions/payments")); status != http.StatusNotFound {
		t.Errorf("retail's reader opening payments' overview: %d", status)
	}
	page = retail.mustGet("/ui/resources")
	if strings.Contains(page, "api-1") || !strings.Contains(page, ">web-1</a>") {
		t.Errorf("retail's resources:\n%s", page)
	}
}
