package web_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gildhq/gild/agentproto"
	"github.com/gildhq/gild/api"
)

// The resource and fleet tests' organisation: two teams; team A has a gallery with two
// versions of one image, a cattle VM on the older version with a machine-configuration
// assignment and an agent that reports, and an untagged VM the serviceModel policy finds
// non-compliant; team B has a pet and a cattle VM whose resource group refreshes weekly.
const (
	rtSubA    = "/subscriptions/teamA"
	rtSubB    = "/subscriptions/teamB"
	rtRGA     = rtSubA + "/resourceGroups/prod"
	rtRGB     = rtSubB + "/resourceGroups/prod"
	rtImages  = rtSubA + "/resourceGroups/images"
	rtGallery = rtImages + "/providers/Microsoft.Compute/galleries/golden"
	rtDef     = rtGallery + "/images/debian-12-hardened"
	rtVMType  = "/providers/Microsoft.Compute/virtualMachines/"
	rtWeb     = rtRGA + rtVMType + "web-1"   // cattle, gallery image 1.0.0, agent
	rtDB      = rtRGA + rtVMType + "db-1"    // no serviceModel tag: non-compliant
	rtShop    = rtRGB + rtVMType + "shop-1"  // pet
	rtBatch   = rtRGB + rtVMType + "batch-1" // cattle, marketplace image, fresh
	rtGuest   = rtWeb + "/providers/Microsoft.GuestConfiguration/guestConfigurationAssignments/LinuxSshServerSecurityBaseline"
	rtAssign  = rtSubA + "/providers/Microsoft.Authorization/policyAssignments/service-model"
	rtWikiURL = "https://wiki.example.com/policies/tags"
	rtCheck   = "Ensure that the SSH PermitRootLogin is configured"
)

// rtPublish uploads a small disk and publishes it as version v of rtDef, then waits until
// the version is Succeeded.
func rtPublish(e *env, v string, seed byte, profile map[string]any) {
	e.t.Helper()
	data := bytes.Repeat([]byte{seed, 'g', 'i', 'l', 'd'}, 4096)
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	if status, raw := e.raw(e.admin, "PUT", rtDef+"/artifacts/"+digest+"?region=local&api-version="+api.Version, "application/octet-stream", data); status != 201 && status != 200 {
		e.t.Fatalf("upload %s: %d %s", v, status, raw)
	}
	e.put(e.admin, rtDef+"/versions/"+v, map[string]any{"location": "local", "properties": map[string]any{
		"publishingProfile": profile,
		"storageProfile":    map[string]any{"osDiskImage": map[string]any{"sha256": digest, "sizeInBytes": len(data), "format": "raw"}},
	}})
	rtWait(e.t, "version "+v+" Succeeded", func() bool {
		props, _ := e.call(e.admin, "GET", rtDef+"/versions/"+v, nil)["properties"].(map[string]any)
		return props["provisioningState"] == "Succeeded"
	})
}

func rtWait(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func rtVM(serviceModel string, imageReference map[string]any) map[string]any {
	tags := map[string]string{}
	if serviceModel != "" {
		tags["serviceModel"] = serviceModel
	}
	return map[string]any{"location": "local", "tags": tags, "properties": map[string]any{
		"hardwareProfile": map[string]any{"vmSize": "Standard_B2s"},
		"storageProfile":  map[string]any{"imageReference": imageReference}}}
}

var rtMarketplace = map[string]any{"publisher": "Debian", "offer": "debian-12", "sku": "12", "version": "latest"}

// seedFleet makes the organisation above, enrolls web-1's agent and has it report a
// failed check, a correction and a failed correction.
func seedFleet(e *env) {
	e.t.Helper()
	for _, s := range []string{rtSubA, rtSubB} {
		e.put(e.admin, s, map[string]any{"properties": map[string]any{}})
	}
	e.put(e.admin, rtRGA, map[string]any{"location": "local"})
	e.put(e.admin, rtRGB, map[string]any{"location": "local", "tags": map[string]string{"refreshCycleDays": "7"}})
	e.put(e.admin, rtImages, map[string]any{"location": "local"})
	e.put(e.admin, rtGallery, map[string]any{"location": "local", "properties": map[string]any{}})
	e.put(e.admin, rtDef, map[string]any{"location": "local", "properties": map[string]any{
		"identifier": map[string]any{"publisher": "Contoso", "offer": "debian-12", "sku": "hardened"},
		"osType":     "Linux", "osState": "Generalized"}})
	eol := time.Now().UTC().Add(100*24*time.Hour - time.Hour).Format(time.RFC3339)
	rtPublish(e, "1.0.0", 1, map[string]any{"endOfLifeDate": eol})
	rtPublish(e, "1.1.0", 2, map[string]any{})

	e.put(e.admin, rtAssign, map[string]any{"properties": map[string]any{
		"displayName":           "VMs carry a service model",
		"policyDefinitionId":    "/providers/Microsoft.Authorization/policyDefinitions/gild-service-model-tag",
		"parameters":            map[string]any{"effect": map[string]any{"value": "Audit"}},
		"nonComplianceMessages": []map[string]any{{"message": "See " + rtWikiURL + " for which tag to use."}},
	}})
	e.put(e.admin, rtWeb, rtVM("cattle", map[string]any{"id": rtDef + "/versions/1.0.0"}))
	e.put(e.admin, rtDB, rtVM("", rtMarketplace))
	e.put(e.admin, rtShop, rtVM("pet", rtMarketplace))
	e.put(e.admin, rtBatch, rtVM("cattle", rtMarketplace))
	e.put(e.admin, rtGuest, map[string]any{"properties": map[string]any{
		"guestConfiguration": map[string]any{"name": "LinuxSshServerSecurityBaseline", "assignmentType": "ApplyAndAutoCorrect"}}})

	// web-1's agent enrolls with the image's tattoo and reports.
	tok, _ := e.call(e.admin, "POST", rtWeb+"/enrollmentToken", nil)["token"].(string)
	tattoo, _ := json.Marshal(map[string]any{"imageDefinition": rtDef, "imageVersion": "1.0.0", "sourcePublisher": "Debian"})
	enroll, _ := json.Marshal(agentproto.EnrollRequest{Version: agentproto.Version, Token: tok, Tattoo: tattoo,
		Facts: agentproto.Facts{Hostname: "web-1", AgentVersion: "test-1"}})
	status, raw := e.raw("", "POST", agentproto.PathEnroll, "application/json", enroll)
	if status != 200 {
		e.t.Fatalf("enroll: %d %s", status, raw)
	}
	var er agentproto.EnrollResponse
	if err := json.Unmarshal(raw, &er); err != nil {
		e.t.Fatal(err)
	}
	status, raw = e.raw(er.Credential, "GET", agentproto.PathAssignments, "application/json", nil)
	var as agentproto.Assignments
	if err := json.Unmarshal(raw, &as); status != 200 || err != nil || len(as.Assignments) != 1 {
		e.t.Fatalf("assignments: %d %s", status, raw)
	}
	now := time.Now().UTC()
	rep := agentproto.Report{Version: agentproto.Version, ID: "r1", Time: now, Tattoo: tattoo,
		Facts: agentproto.Facts{Hostname: "web-1", AgentVersion: "test-1", Kernel: "6.1.0-test",
			OSRelease: map[string]string{"ID": "debian", "VERSION_ID": "12"}},
		Assignments: []agentproto.AssignmentReport{{Name: as.Assignments[0].Name, Hash: as.Assignments[0].Hash,
			ComplianceStatus: "NonCompliant", StartTime: now, EndTime: now, OperationType: "Consistency",
			Resources: []agentproto.ResourceReport{{ResourceID: rtCheck, ComplianceStatus: "NonCompliant",
				Reasons:  []agentproto.Reason{{Code: "SettingMismatch", Phrase: "PermitRootLogin is yes; expected no."}},
				Expected: "PermitRootLogin no", Actual: "PermitRootLogin yes"}}}},
		Events: []agentproto.Event{
			{ID: "e1", Time: now.Add(-time.Minute), Kind: agentproto.EventCorrection, Assignment: "LinuxSshServerSecurityBaseline",
				Check: "Ensure SSH MaxAuthTries", Target: "/etc/ssh/sshd_config MaxAuthTries", Before: "MaxAuthTries 10", After: "MaxAuthTries 4"},
			{ID: "e2", Time: now, Kind: agentproto.EventApplyError, Assignment: "LinuxSshServerSecurityBaseline",
				Check: rtCheck, Target: "/etc/ssh/sshd_config PermitRootLogin", Message: "read-only file system"},
		}}
	body, _ := json.Marshal(rep)
	if status, raw := e.raw(er.Credential, "POST", agentproto.PathReports, "application/json", body); status != 200 {
		e.t.Fatalf("report: %d %s", status, raw)
	}
	rtWait(e.t, "web-1's machine-configuration result", func() bool {
		props, _ := e.call(e.admin, "GET", rtGuest, nil)["properties"].(map[string]any)
		return props["complianceStatus"] == "NonCompliant"
	})
}

var rtTags = regexp.MustCompile(`<[^>]*>`)

// pageText is a page's text without its markup, entities decoded and spaces collapsed.
func pageText(page string) string {
	return strings.Join(strings.Fields(html.UnescapeString(rtTags.ReplaceAllString(page, " "))), " ")
}

// tableRows returns the text of the cells of each row of the list with id.
func tableRows(t *testing.T, page, id string) [][]string {
	t.Helper()
	start := strings.Index(page, `<table id="`+id+`">`)
	if start < 0 {
		return nil
	}
	end := strings.Index(page[start:], "</table>")
	body := page[start : start+end]
	var out [][]string
	for _, tr := range regexp.MustCompile(`(?s)<tr>(.*?)</tr>`).FindAllStringSubmatch(body, -1) {
		var cells []string
		for _, td := range regexp.MustCompile(`(?s)<td[^>]*>(.*?)</td>`).FindAllStringSubmatch(tr[1], -1) {
			cells = append(cells, pageText(td[1]))
		}
		if cells != nil {
			out = append(out, cells)
		}
	}
	return out
}

func wantAll(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("%s does not say %q:\n%s", what, w, text)
		}
	}
}

func TestResourcePage(t *testing.T) {
	e := newEnv(t)
	seedFleet(e)
	admin := e.signIn(e.admin)

	// The non-compliant VM: its state, the reason (field, expected, actual), the
	// assignment's message with its link, and the history.
	page := admin.mustGet("/ui/resource" + rtDB)
	text := pageText(page)
	wantAll(t, "db-1's page", text, "db-1", "NonCompliant", "VMs carry a service model", "Resources in teamA / prod",
		"Debian:debian-12:12:latest", "no serviceModel tag", "(first evaluation)")
	if !strings.Contains(page, `<span class="badge bad" id="compliance-state">NonCompliant</span>`) {
		t.Errorf("db-1's page has no NonCompliant badge")
	}
	var reason []string
	for _, rw := range tableRows(t, page, "states") {
		if len(rw) > 4 && rw[2] == "NonCompliant" && rw[4] == "tags['serviceModel']" {
			reason = rw
		}
	}
	if len(reason) < 10 || reason[0] != "VMs carry a service model" || reason[5] != "notIn" ||
		reason[6] != `["pet","cattle"]` || reason[7] != "(not set)" || !strings.Contains(reason[9], rtWikiURL) {
		t.Errorf("db-1's non-compliant state row = %q", reason)
	}
	if n := strings.Count(page, `<a href="`+rtWikiURL+`"`); n < 2 {
		t.Errorf("the message's URL is linked %d times on db-1's page, want in the list and in the messages", n)
	}
	if hist := tableRows(t, page, "history"); len(hist) != 1 || hist[0][1] != "VMs carry a service model" || hist[0][4] != "NonCompliant" {
		t.Errorf("db-1's history = %q", hist)
	}

	// The cattle VM: image, version, lifecycle, versions behind, end of life, tattoo,
	// agent, machine-configuration results and corrections.
	page = admin.mustGet("/ui/resource" + rtWeb)
	text = pageText(page)
	wantAll(t, "web-1's page", text, "debian-12-hardened", "Exact version 1.0.0", "Versions behind latest 1", "End of life in 100 days",
		"imageVersion 1.0.0", "Matches the image yes", "Connected", "test-1", "debian 12", "6.1.0-test", "cattle", "Standard_B2s")
	if !strings.Contains(page, `id="image-lifecycle">`) || !strings.Contains(page, `href="/ui/image`+rtDef+`/versions/1.0.0"`) {
		t.Errorf("web-1's page lacks the lifecycle badge or the link to its version:\n%s", page)
	}
	if !strings.Contains(page, `<span class="badge good" id="compliance-state">Compliant</span>`) {
		t.Errorf("web-1 should be Compliant with the serviceModel policy")
	}
	if rows := tableRows(t, page, "guestAssignments"); len(rows) != 1 || rows[0][0] != "LinuxSshServerSecurityBaseline" ||
		rows[0][2] != "ApplyAndAutoCorrect" || rows[0][3] != "NonCompliant" {
		t.Errorf("web-1's machine configuration = %q", rows)
	}
	if rows := tableRows(t, page, "checks"); len(rows) != 1 || rows[0][1] != rtCheck || rows[0][2] != "NonCompliant" || rows[0][3] != "SettingMismatch" ||
		rows[0][4] != "PermitRootLogin is yes; expected no." || rows[0][5] != "PermitRootLogin no" || rows[0][6] != "PermitRootLogin yes" {
		t.Errorf("web-1's checks = %q", rows)
	}
	ev := tableRows(t, page, "events")
	if len(ev) != 2 || ev[0][1] != "ApplyError" || ev[0][7] != "read-only file system" ||
		ev[1][1] != "Correction" || ev[1][4] != "/etc/ssh/sshd_config MaxAuthTries" || ev[1][5] != "MaxAuthTries 10" || ev[1][6] != "MaxAuthTries 4" {
		t.Errorf("web-1's events, newest first = %q", ev)
	}
	// The machine-configuration assignment has a page of its own, under its VM.
	sub := admin.mustGet("/ui/resource" + rtGuest)
	if !strings.Contains(sub, `href="/ui/resource`+rtWeb+`"`) {
		t.Errorf("the guest assignment's page does not lead back to its VM")
	}

	// Export: the states list as CSV, one row per reason: the policy's two conditions
	// (the type is a VM's, the tag is missing) both held.
	status, csvBody := admin.get("/ui/resource" + rtDB + "?export=states&format=csv")
	recs, err := csv.NewReader(strings.NewReader(csvBody)).ReadAll()
	if status != 200 || err != nil || len(recs) != 3 {
		t.Fatalf("states CSV: %d %v\n%s", status, err, csvBody)
	}
	if recs[0][0] != "Assignment" || recs[0][4] != "Field" || recs[2][2] != "NonCompliant" || recs[2][4] != "tags['serviceModel']" ||
		recs[2][6] != `["pet","cattle"]` || recs[2][7] != "(not set)" || !strings.Contains(recs[2][9], rtWikiURL) {
		t.Errorf("states CSV = %q", recs)
	}

	// Team B reads its own VM, and team A's VMs are not there for it.
	teamB := e.signIn(e.token("Reader", rtSubB))
	teamB.mustGet("/ui/resource" + rtShop)
	for _, id := range []string{rtDB, rtWeb, rtGuest} {
		status, body := teamB.get("/ui/resource" + id)
		if status != http.StatusNotFound || strings.Contains(body, "NonCompliant") {
			t.Errorf("team B opening %s: %d, want 404", id, status)
		}
		if status, _ := teamB.get("/ui/resource" + id + "?export=states&format=csv"); status != http.StatusNotFound {
			t.Errorf("team B exporting %s's states: %d, want 404", id, status)
		}
	}
	if status, _ := admin.get("/ui/resource/subscriptions/teamA/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/nope"); status != http.StatusNotFound {
		t.Errorf("a VM that does not exist: %d, want 404", status)
	}
	if status, body := admin.get("/ui/resource/not-an-id"); status != http.StatusBadRequest && status != http.StatusNotFound {
		t.Errorf("a malformed ID: %d\n%s", status, body)
	}
}
