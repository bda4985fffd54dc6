package web_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gildhq/gild/api"
	"github.com/gildhq/gild/pipeline"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/server"
	"github.com/gildhq/gild/store"
)

const (
	imgRG      = "/subscriptions/platform/resourceGroups/images"
	imgGallery = imgRG + "/providers/Microsoft.Compute/galleries/corp"
	imgDef     = imgGallery + "/images/debian-12-hardened"
	imgTmpl    = imgRG + "/providers/Microsoft.VirtualMachineImages/imageTemplates/debian-hardened"
)

func imgVMID(team, name string) string {
	return "/subscriptions/" + team + "/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/" + name
}

// imgPublish uploads a small artifact for version v to its first region and creates the
// version with the publishing profile given, as gild image publish does.
func imgPublish(e *env, v string, seed byte, profile map[string]any) {
	e.t.Helper()
	data := bytes.Repeat([]byte{seed, 0x5a, seed ^ 0xff}, 2000)
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	region := "local"
	if trs, ok := profile["targetRegions"].([]map[string]any); ok {
		region = trs[0]["name"].(string)
	}
	if status, raw := e.raw(e.admin, "PUT", imgDef+"/artifacts/"+digest+"?region="+region+"&api-version="+api.Version, "application/octet-stream", data); status >= 300 {
		e.t.Fatalf("upload for %s: %d %s", v, status, raw)
	}
	e.put(e.admin, imgDef+"/versions/"+v, map[string]any{"location": "local", "tags": map[string]string{"build": "nightly-" + v}, "properties": map[string]any{
		"publishingProfile": profile,
		"storageProfile":    map[string]any{"osDiskImage": map[string]any{"sha256": digest, "sizeInBytes": len(data), "format": "raw"}},
	}})
}

func imgVM(image string) map[string]any {
	return map[string]any{"location": "local", "tags": map[string]string{"serviceModel": "cattle"}, "properties": map[string]any{
		"hardwareProfile": map[string]any{"vmSize": "Standard_B2s"},
		"storageProfile":  map[string]any{"imageReference": map[string]any{"id": image}}}}
}

// seedImages makes, in subscription platform, gallery corp with definition
// debian-12-hardened (keep the newest 3) and its versions: 0.9.0 past its end of life,
// 0.9.5 deprecated (beyond the newest 3), 1.0.0 aged, 1.1.0 latest (replicated to local
// and, twice, to west), 1.2.0 excluded from latest. teamA runs a-1 and a-2 on 1.0.0 and
// a-3 on 1.1.0; teamB runs b-1 on the definition, which resolves to 1.1.0.
func seedImages(t *testing.T, e *env) {
	t.Helper()
	for _, s := range []string{"platform", "teamA", "teamB"} {
		e.put(e.admin, "/subscriptions/"+s, map[string]any{"properties": map[string]any{}})
	}
	e.put(e.admin, imgRG, map[string]any{"location": "local"})
	e.put(e.admin, "/subscriptions/teamA/resourceGroups/prod", map[string]any{"location": "local"})
	e.put(e.admin, "/subscriptions/teamB/resourceGroups/prod", map[string]any{"location": "local"})
	e.put(e.admin, imgGallery, map[string]any{"location": "local", "properties": map[string]any{"description": "golden images"}})
	e.put(e.admin, imgDef, map[string]any{"location": "local", "properties": map[string]any{
		"identifier": map[string]any{"publisher": "Contoso", "offer": "debian-12", "sku": "hardened"},
		"osType":     "Linux", "osState": "Generalized", "description": "Debian 12, hardened",
		"lifecyclePolicy": map[string]any{"keepNewest": 3},
	}})
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	imgPublish(e, "0.9.0", 1, map[string]any{"endOfLifeDate": past})
	imgPublish(e, "0.9.5", 2, map[string]any{})
	imgPublish(e, "1.0.0", 3, map[string]any{})
	imgPublish(e, "1.1.0", 4, map[string]any{"targetRegions": []map[string]any{{"name": "local", "regionalReplicaCount": 1}, {"name": "west", "regionalReplicaCount": 2}}})
	imgPublish(e, "1.2.0", 5, map[string]any{"excludeFromLatest": true})
	e.put(e.admin, imgVMID("teamA", "a-1"), imgVM(imgDef+"/versions/1.0.0"))
	e.put(e.admin, imgVMID("teamA", "a-2"), imgVM(imgDef+"/versions/1.0.0"))
	e.put(e.admin, imgVMID("teamA", "a-3"), imgVM(imgDef+"/versions/1.1.0"))
	b1 := e.put(e.admin, imgVMID("teamB", "b-1"), imgVM(imgDef))
	if ir := b1["properties"].(map[string]any)["storageProfile"].(map[string]any)["imageReference"].(map[string]any); ir["exactVersion"] != "1.1.0" {
		t.Fatalf("b-1 on the definition got %v, want latest 1.1.0", ir["exactVersion"])
	}
	// Replication to west happens after the version is created: wait for it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		v := e.call(e.admin, "GET", imgDef+"/versions/1.1.0", nil)
		rs, _ := v["properties"].(map[string]any)["replicationStatus"].(map[string]any)
		if rs["aggregatedState"] == "Completed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("1.1.0 never replicated to west: %v", rs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func newImagesEnv(t *testing.T) *env {
	regions := t.TempDir()
	return newEnv(t, func(c *server.Config) {
		c.Regions = []string{"local=file://" + filepath.ToSlash(filepath.Join(regions, "local")), "west=file://" + filepath.ToSlash(filepath.Join(regions, "west"))}
	})
}

// imgTable is the table with id name in page.
func imgTable(page, name string) string {
	i := strings.Index(page, `<table id="`+name+`">`)
	if i < 0 {
		return ""
	}
	t, _, _ := strings.Cut(page[i:], "</table>")
	return t
}

// imgRow finds the table row (its <tr>) in page that contains all of wants.
func imgRow(page string, wants ...string) string {
	for _, tr := range strings.Split(page, "<tr>") {
		tr, _, _ = strings.Cut(tr, "</tr>")
		ok := true
		for _, w := range wants {
			ok = ok && strings.Contains(tr, w)
		}
		if ok {
			return tr
		}
	}
	return ""
}

func TestImagesPages(t *testing.T) {
	e := newImagesEnv(t)
	seedImages(t, e)
	admin := e.signIn(e.admin)

	page := admin.mustGet("/ui/images")
	for _, want := range []string{
		`aria-current="page">Images</a>`, `id="versions-total">5<`, `id="vms-total">4<`, `id="vms-stale">2<`,
		`>corp</a>`, `golden images`, `>debian-12-hardened</a>`, `Linux Generalized`, `>Contoso<`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the images page lacks %q", want)
		}
	}
	// Each version's lifecycle, latest, replication per region and VMs by team.
	for _, c := range []struct {
		version string
		wants   []string
	}{
		{"0.9.0", []string{`>EndOfLife<`, `local: Completed (1/1)`, `<td class="num">0</td>`}},
		{"0.9.5", []string{`>Deprecated<`, `newest 3 versions`}},
		{"1.0.0", []string{`>Aged<`, `a newer version, 1.1.0, is published`, `<td class="num">2</td>`, `teamA (2)`}},
		{"1.1.0", []string{`>Active<`, `badge good">latest<`, `local: Completed (1/1); west: Completed (2/2)`, `<td class="num">2</td>`, `teamA (1), teamB (1)`}},
		{"1.2.0", []string{`>Active<`, `<td>yes</td>`}},
	} {
		tr := imgRow(imgTable(page, "versions"), `/versions/`+c.version+`">`+c.version+`</a>`)
		if tr == "" {
			t.Errorf("no row for version %s", c.version)
			continue
		}
		for _, w := range c.wants {
			if !strings.Contains(tr, w) {
				t.Errorf("version %s's row lacks %q:\n%s", c.version, w, tr)
			}
		}
	}
	if tr := imgRow(page, ">debian-12-hardened</a>", "Contoso"); !strings.Contains(tr, `>1.1.0</a>`) {
		t.Errorf("the definition's latest version is not 1.1.0:\n%s", tr)
	}
	if tr := imgRow(page, "<td>teamB</td>"); !strings.Contains(tr, ">1.1.0</a>") || !strings.Contains(tr, "<td class=\"num\">1</td>") {
		t.Errorf("teamB's use:\n%s", tr)
	}
	// Filters: by lifecycle state, by team.
	page = admin.mustGet("/ui/images?versions.lifecycle=Aged&usage.team=teamB")
	if vt := imgTable(page, "versions"); !strings.Contains(vt, `/versions/1.0.0">1.0.0</a>`) || strings.Contains(vt, `/versions/1.1.0">1.1.0</a>`) {
		t.Errorf("versions filtered to Aged:\n%s", vt)
	}
	if imgRow(imgTable(page, "usage"), "<td>teamA</td>") != "" {
		t.Errorf("usage filtered to teamB shows teamA")
	}

	// Exports.
	status, body := admin.get("/ui/images?export=versions&format=csv")
	if status != http.StatusOK {
		t.Fatalf("CSV export: %d %s", status, body)
	}
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(recs) != 6 {
		t.Fatalf("CSV export: %v, %d records:\n%s", err, len(recs), body)
	}
	if strings.Join(recs[0], ",") != "Definition,Gallery,Version,Lifecycle,Latest,Published,End of life,Excluded from latest,Replication,Regions (replicas),VMs,Teams (VMs)" {
		t.Errorf("CSV header: %v", recs[0])
	}
	got := map[string][]string{}
	for _, r := range recs[1:] {
		got[r[2]] = r
	}
	if r := got["1.1.0"]; r == nil || r[3] != "Active" || r[4] != "latest" || r[8] != "Completed" || r[10] != "2" || r[11] != "teamA (1), teamB (1)" {
		t.Errorf("CSV row of 1.1.0: %v", r)
	}
	if r := got["0.9.0"]; r == nil || r[3] != "EndOfLife" {
		t.Errorf("CSV row of 0.9.0: %v", r)
	}
	status, body = admin.get("/ui/images?export=usage&format=json")
	var usage []map[string]any
	if status != http.StatusOK || json.Unmarshal([]byte(body), &usage) != nil || len(usage) != 3 {
		t.Errorf("usage JSON export: %d %s", status, body)
	}

	// A version's page: facts, replication per region, its VMs, tags.
	page = admin.mustGet("/ui/image" + imgDef + "/versions/1.1.0")
	for _, want := range []string{
		`<h1>Image version corp/debian-12-hardened 1.1.0</h1>`, `badge good">Active<`, `badge good">yes<`, `new VMs on the definition get this version`,
		`>a-3</a>`, `>b-1</a>`, `<td>teamB</td>`, `Replication by region`, `<dt>build</dt><dd>nightly-1.1.0</dd>`,
		`href="/ui/images">Images</a>`, `This server keeps VMs as records only`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("version 1.1.0's page lacks %q", want)
		}
	}
	if tr := imgRow(page, "<td>west</td>"); !strings.Contains(tr, "Completed") || !strings.Contains(tr, "<td class=\"num\">2</td>") {
		t.Errorf("west's replication:\n%s", tr)
	}
	page = admin.mustGet("/ui/image" + imgDef + "/versions/0.9.0")
	if !strings.Contains(page, `badge bad">EndOfLife<`) || !strings.Contains(page, "has passed") || !strings.Contains(page, "the latest is 1.1.0") {
		t.Errorf("0.9.0's page:\n%s", page)
	}

	// The definition's page: versions, every VM on it with its version and lifecycle.
	page = admin.mustGet("/ui/image" + imgDef)
	for _, want := range []string{`Contoso / debian-12 / hardened`, `deprecate all but the newest 3`, `>a-1</a>`, `>b-1</a>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the definition's page lacks %q", want)
		}
	}
	if tr := imgRow(page, ">a-1</a>"); !strings.Contains(tr, ">1.0.0</a>") || !strings.Contains(tr, "Aged") || !strings.Contains(tr, "<td>teamA</td>") {
		t.Errorf("a-1 on the definition's page:\n%s", tr)
	}
	page = admin.mustGet("/ui/image" + imgGallery)
	if !strings.Contains(page, "<h1>Gallery corp</h1>") || !strings.Contains(page, ">debian-12-hardened</a>") {
		t.Errorf("the gallery's page:\n%s", page)
	}
	if status, body := admin.get("/ui/image" + imgVMID("teamA", "a-1")); status != http.StatusBadRequest || !strings.Contains(body, "not a gallery") {
		t.Errorf("a VM as an image: %d", status)
	}
	if status, _ := admin.get("/ui/image" + imgDef + "/versions/9.9.9"); status != http.StatusNotFound {
		t.Errorf("a missing version: %d", status)
	}
}

// TestImagesPagesShowATeamOnlyItsVMs: a team that may read the platform's gallery sees
// every version, but only its own VMs in names and counts.
func TestImagesPagesShowATeamOnlyItsVMs(t *testing.T) {
	e := newImagesEnv(t)
	seedImages(t, e)
	out := e.call(e.admin, "POST", "/providers/Gild.Identity/tokens", map[string]any{"role": "Reader", "scope": "/subscriptions/teamA", "description": "teamA"})
	token, principal := out["token"].(string), out["principalId"].(string)
	e.put(e.admin, "/subscriptions/platform/providers/Microsoft.Authorization/roleAssignments/teamA-images", map[string]any{"properties": map[string]any{
		"roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/Reader", "principalId": principal}})
	b := e.signIn(token)

	pages := map[string]string{
		"images":     b.mustGet("/ui/images"),
		"definition": b.mustGet("/ui/image" + imgDef),
		"1.1.0":      b.mustGet("/ui/image" + imgDef + "/versions/1.1.0"),
	}
	for name, page := range pages {
		if strings.Contains(page, "b-1") || strings.Contains(page, "teamB") {
			t.Errorf("teamA sees teamB's VMs on the %s page", name)
		}
	}
	if !strings.Contains(pages["1.1.0"], ">a-3</a>") || !strings.Contains(pages["definition"], ">a-2</a>") {
		t.Errorf("teamA does not see its own VMs")
	}
	page := pages["images"]
	if !strings.Contains(page, `id="vms-total">3<`) || !strings.Contains(page, `id="versions-total">5<`) {
		t.Errorf("teamA's counts:\n%s", page)
	}
	if tr := imgRow(imgTable(page, "versions"), `/versions/1.1.0">1.1.0</a>`); !strings.Contains(tr, "teamA (1)") || !strings.Contains(tr, "<td class=\"num\">1</td>") {
		t.Errorf("teamA's row of 1.1.0:\n%s", tr)
	}
	status, body := b.get("/ui/images?export=versions&format=csv")
	if status != http.StatusOK || strings.Contains(body, "teamB") {
		t.Errorf("teamA's CSV export: %d\n%s", status, body)
	}

	// A team that may not read the gallery sees its VMs' use of it, and nothing of the gallery.
	tb := e.signIn(e.token("Reader", "/subscriptions/teamB"))
	page = tb.mustGet("/ui/images")
	if strings.Contains(page, ">corp</a>") || strings.Contains(page, "a-1") || strings.Contains(page, "teamA") || !strings.Contains(page, `id="vms-total">1<`) {
		t.Errorf("teamB's images page:\n%s", page)
	}
	if tr := imgRow(imgTable(page, "usage"), "<td>teamB</td>"); !strings.Contains(tr, ">1.1.0</td>") || strings.Contains(tr, "href") || !strings.Contains(tr, "<td class=\"num\">1</td>") {
		t.Errorf("teamB's use of 1.1.0, which it may not open:\n%s", tr)
	}
	if status, _ := tb.get("/ui/image" + imgDef + "/versions/1.1.0"); status != http.StatusNotFound && status != http.StatusForbidden {
		t.Errorf("teamB opening the platform's version: %d", status)
	}
}

// TestVersionTattoo: the tattoo an agent on a VM of the version reports is shown on the
// version's page.
func TestVersionTattoo(t *testing.T) {
	e := newImagesEnv(t)
	seedImages(t, e)
	vm := imgVMID("teamA", "a-3")
	tok := e.call(e.admin, "POST", vm+"/enrollmentToken", nil)["token"].(string)
	enroll, _ := json.Marshal(map[string]any{"version": 1, "token": tok, "facts": map[string]any{"hostname": "a-3"}})
	status, raw := e.raw("", "POST", "/agent/v1/enroll", "application/json", enroll)
	if status != http.StatusOK {
		t.Fatalf("enroll: %d %s", status, raw)
	}
	var cred struct{ Credential string }
	_ = json.Unmarshal(raw, &cred)
	tattoo := map[string]any{"imageDefinition": imgDef, "imageVersion": "1.1.0", "sourceOffer": "debian-12", "runId": imgTmpl + "/runs/r1", "osVersion": "12.7"}
	report, _ := json.Marshal(map[string]any{"version": 1, "id": "rep-1", "time": time.Now().UTC(), "facts": map[string]any{"hostname": "a-3"}, "tattoo": tattoo})
	if status, raw := e.raw(cred.Credential, "POST", "/agent/v1/reports", "application/json", report); status != http.StatusOK {
		t.Fatalf("report: %d %s", status, raw)
	}
	page := e.signIn(e.admin).mustGet("/ui/image" + imgDef + "/versions/1.1.0")
	tat, _, _ := strings.Cut(page[strings.Index(page, `id="tattoo"`)+1:], "</dl>")
	for _, want := range []string{"<dt>imageVersion</dt><dd>1.1.0</dd>", "<dt>osVersion</dt><dd>12.7</dd>", "<dt>sourceOffer</dt><dd>debian-12</dd>"} {
		if !strings.Contains(tat, want) {
			t.Errorf("the tattoo lacks %q:\n%s", want, page)
		}
	}
	if !strings.Contains(page, `as the agent on <a href="/ui/resource`+vm+`">a-3</a>`) {
		t.Errorf("the tattoo does not say which VM reported it")
	}
}

// TestRunPages: a run of a template, started through the API with the real builder, that
// fails in its first step (the source's checksum does not match), and a finished run with a
// test report. Such a run needs a real build (a Debian base, QEMU), so it is written into
// the store as the pipeline records one, beside the server.
func TestRunPages(t *testing.T) {
	e := newImagesEnv(t)
	seedImages(t, e)
	base := filepath.Join(t.TempDir(), "base.raw")
	if err := os.WriteFile(base, []byte("not the disk the checksum vouches for"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.put(e.admin, imgTmpl, map[string]any{"location": "local", "properties": map[string]any{
		"source":     map[string]any{"type": "Url", "url": "file://" + filepath.ToSlash(base), "checksum": "sha256:" + strings.Repeat("ab", 32), "format": "raw"},
		"distribute": []any{map[string]any{"type": "SharedImage", "galleryImageId": imgDef, "runOutputName": "debian"}},
	}})
	runID := e.call(e.admin, "POST", imgTmpl+"/run", nil)["id"].(string)
	deadline := time.Now().Add(20 * time.Second)
	for {
		p := e.call(e.admin, "GET", runID, nil)["properties"].(map[string]any)
		if p["endTime"] != nil {
			if p["runState"] != "Failed" {
				t.Fatalf("the run ended %v, want Failed: %v", p["runState"], p)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run never ended: %v", p)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A finished run with its test report, and a run that failed validation.
	st, err := store.Open(context.Background(), server.DefaultStoreURL(e.dataDir))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	at := func(s int) *time.Time { x := t0.Add(time.Duration(s) * time.Second); return &x }
	steps := func(last string, state string) []pipeline.StepStatus {
		var out []pipeline.StepStatus
		for i, n := range []string{"source", "customize", "tattoo", "disk", "validate", "distribute"} {
			s := pipeline.StepStatus{Name: n, SubState: pipeline.SubBuilding, State: pipeline.StateSucceeded, StartTime: at(i * 60), EndTime: at(i*60 + 42), DurationSec: 42}
			if n == last {
				s.State = state
				out = append(out, s)
				break
			}
			out = append(out, s)
		}
		return out
	}
	good := imgTmpl + "/runs/20260101T000000Z-0001"
	bad := imgTmpl + "/runs/20260102T000000Z-0002"
	records := []struct {
		id    string
		props pipeline.RunProperties
	}{
		{good, pipeline.RunProperties{RunState: pipeline.StateSucceeded, StartTime: at(0), EndTime: at(342), Steps: steps("distribute", pipeline.StateSucceeded), TemplateDigest: "d1",
			Validation: &pipeline.ValidationReport{Accelerator: "tcg", BootSeconds: 12.5, MaxBoot: 120, Passed: 2, Checks: []pipeline.CheckOutcome{
				{Name: "sshd-no-root", Status: "Compliant"}, {Name: "boot-time", Status: "Compliant", Reasons: []string{"booted in 12.5 s"}}}},
			Outputs: []pipeline.Output{{RunOutputName: "debian", ArtifactID: imgDef + "/versions/1.1.0", SHA256: "x"}}}},
		{bad, pipeline.RunProperties{RunState: pipeline.StateFailed, StartTime: at(3600), EndTime: at(3600 + 282), Steps: steps("validate", pipeline.StateFailed), TemplateDigest: "d2",
			FailedStep: "validate", FailedChecks: []string{"no-telnet"}, Message: "validate: 1 check failed",
			Validation: &pipeline.ValidationReport{Accelerator: "tcg", BootSeconds: 14, MaxBoot: 120, Passed: 1, Failed: 1, Checks: []pipeline.CheckOutcome{
				{Name: "sshd-no-root", Status: "Compliant"}, {Name: "no-telnet", Status: "NonCompliant", Reasons: []string{"package telnet is installed"}}}}}},
	}
	for _, rec := range records {
		raw, _ := json.Marshal(rec.props)
		id, _ := resource.Parse(rec.id)
		if err := st.Update(context.Background(), func(tx store.Tx) error {
			_, _, err := tx.Put(context.Background(), &resource.Resource{ID: rec.id, Name: id.Name(), Type: pipeline.TypeRun, Properties: raw}, store.Precondition{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}

	admin := e.signIn(e.admin)
	page := admin.mustGet("/ui/images")
	if tr := imgRow(page, `/ui/run`+runID+`"`); !strings.Contains(tr, `badge bad">Failed<`) || !strings.Contains(tr, "<td>source</td>") {
		t.Errorf("the failed run on the images page:\n%s", tr)
	}
	if tr := imgRow(page, `/ui/run`+good+`"`); !strings.Contains(tr, ">debian-12-hardened 1.1.0</a>") || !strings.Contains(tr, "<td>5 min 42 s</td>") {
		t.Errorf("the good run on the images page:\n%s", tr)
	}
	if tr := imgRow(page, ">debian-hardened</a>", "file://"); !strings.Contains(tr, "badge bad\">Failed<") || !strings.Contains(tr, "corp/debian-12-hardened") {
		t.Errorf("the template on the images page:\n%s", tr)
	}
	if !strings.Contains(page, `id="runs-failed">2<`) {
		t.Errorf("failed runs card: %s", page)
	}

	// The run the real builder failed: its step, message and log.
	page = admin.mustGet("/ui/run" + runID)
	for _, want := range []string{`badge bad">Failed<`, `Failed step</dt>`, `<td>source</td>`, `id="log-text"`, `[source] started`,
		`The run has no test report`, "/log?api-version=", "gild image logs " + runID} {
		if !strings.Contains(page, want) {
			t.Errorf("the failed run's page lacks %q", want)
		}
	}
	if tr := imgRow(page, "<td>source</td>"); !strings.Contains(tr, `badge bad">Failed<`) || !strings.Contains(tr, "sha256") {
		t.Errorf("the source step:\n%s", tr)
	}
	page = admin.mustGet("/ui/run" + runID + "?log=console.log")
	if !strings.Contains(page, "The run has no console.log") {
		t.Errorf("a missing console log:\n%s", page)
	}
	if status, body := admin.get("/ui/run" + runID + "?log=../../admin.token"); status != http.StatusBadRequest || !strings.Contains(body, "log") {
		t.Errorf("a file that is not a run's log: %d", status)
	}

	// The recorded runs: step timings and test results.
	page = admin.mustGet("/ui/run" + bad)
	for _, want := range []string{`Failed checks</dt>`, `no-telnet`, `package telnet is installed`, `badge bad">NonCompliant<`, `id="checks-failed"><span class="badge bad">1<`,
		`14.0 s (limit 120 s)`, `<td class="num">42.0</td>`, `4 min 42 s`} {
		if !strings.Contains(page, want) {
			t.Errorf("the failed validation's page lacks %q", want)
		}
	}
	if tr := imgRow(page, "<td>no-telnet</td>"); !strings.Contains(tr, "NonCompliant") || !strings.Contains(tr, "package telnet is installed") {
		t.Errorf("the failed check:\n%s", tr)
	}
	page = admin.mustGet("/ui/run" + good + "?checks.result=Compliant")
	if !strings.Contains(page, "booted in 12.5 s") || !strings.Contains(page, `href="/ui/image`+imgDef+`/versions/1.1.0"`) {
		t.Errorf("the good run's page:\n%s", page)
	}
	status, body := admin.get("/ui/run" + bad + "?export=checks&format=csv")
	if status != http.StatusOK || !strings.Contains(body, "no-telnet,NonCompliant,package telnet is installed") {
		t.Errorf("checks CSV: %d\n%s", status, body)
	}
	// The version says which run built it.
	page = admin.mustGet("/ui/image" + imgDef + "/versions/1.1.0")
	if !strings.Contains(page, `Built by run</dt>`) || !strings.Contains(page, fmt.Sprintf(`href="/ui/run%s"`, good)) {
		t.Errorf("the version does not name its run")
	}
	if status, _ := admin.get("/ui/run" + imgTmpl); status != http.StatusBadRequest {
		t.Errorf("a template as a run: %d", status)
	}
}
