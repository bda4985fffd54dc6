package web_test

import (
	"encoding/csv"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestFleetPage(t *testing.T) {
	e := newEnv(t)
	seedFleet(e)
	admin := e.signIn(e.admin)

	page := admin.mustGet("/ui/fleet")
	if !strings.Contains(page, `id="no-runtime"`) {
		t.Errorf("a server without the VM runtime should say refreshing needs it")
	}
	// Per team: team A has one cattle VM, due (it runs 1.0.0, one behind), and one
	// untagged VM; team B a pet and a cattle VM that is not due.
	teams := tableRows(t, page, "teams")
	want := [][]string{{"teamA", "1", "1", "0", "0", "1"}, {"teamB", "1", "0", "1", "0", "0"}}
	if !slices.EqualFunc(teams, want, slices.Equal) {
		t.Errorf("per team = %q, want %q", teams, want)
	}
	cattle := map[string][]string{}
	for _, rw := range tableRows(t, page, "cattle") {
		cattle[rw[0]] = rw
	}
	if rw := cattle["web-1"]; len(rw) != 10 || rw[1] != "teamA" || rw[3] != "debian-12-hardened 1.0.0" || rw[4] != "1" ||
		rw[6] != "30" || rw[7] != "yes" || !strings.Contains(rw[8], "1 behind the latest") || rw[9] != "Compliant" {
		t.Errorf("web-1 in the cattle list = %q", rw)
	}
	if rw := cattle["batch-1"]; len(rw) != 10 || rw[1] != "teamB" || rw[3] != "Debian:debian-12:12:latest" || rw[6] != "7" || rw[7] != "no" || rw[8] != "" {
		t.Errorf("batch-1 in the cattle list = %q", rw)
	}
	pets := map[string][]string{}
	for _, rw := range tableRows(t, page, "pets") {
		pets[rw[0]] = rw
	}
	if rw := pets["shop-1"]; len(rw) != 11 || rw[1] != "teamB" || rw[3] != "pet" || rw[4] != "VM" || rw[8] != "not evaluated" ||
		rw[9] != "NotEnrolled" || rw[10] != "never" {
		t.Errorf("shop-1 in the pets list = %q", rw)
	}
	if rw := pets["db-1"]; len(rw) != 11 || rw[1] != "teamA" || rw[3] != "untagged" || rw[8] != "NonCompliant" {
		t.Errorf("db-1 in the pets list = %q", rw)
	}
	if len(cattle) != 2 || len(pets) != 2 {
		t.Errorf("cattle %d, pets %d; want 2 and 2", len(cattle), len(pets))
	}

	// The due filter narrows the cattle list; its CSV export is the filtered list whole.
	page = admin.mustGet("/ui/fleet?cattle.due=yes")
	if rows := tableRows(t, page, "cattle"); len(rows) != 1 || rows[0][0] != "web-1" {
		t.Errorf("cattle due = %q", rows)
	}
	status, body := admin.get("/ui/fleet?cattle.due=yes&export=cattle&format=csv")
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if status != 200 || err != nil || len(recs) != 2 || recs[0][7] != "Due for refresh" || recs[1][0] != "web-1" || recs[1][7] != "yes" {
		t.Errorf("cattle CSV: %d %v %q", status, err, recs)
	}
	status, body = admin.get("/ui/fleet?export=teams&format=json")
	var js []map[string]any
	if err := json.Unmarshal([]byte(body), &js); status != 200 || err != nil || len(js) != 2 || js[0]["team"] != "teamA" || js[0]["due"] != 1.0 {
		t.Errorf("teams JSON: %d %v %s", status, err, body)
	}

	// Team B sees its own machines only.
	teamB := e.signIn(e.token("Reader", rtSubB))
	page = teamB.mustGet("/ui/fleet")
	if teams := tableRows(t, page, "teams"); !slices.EqualFunc(teams, want[1:], slices.Equal) {
		t.Errorf("team B's teams = %q", teams)
	}
	text := pageText(page)
	for _, other := range []string{"teamA", "web-1", "db-1", "debian-12-hardened"} {
		if strings.Contains(text, other) {
			t.Errorf("team B's fleet page mentions %q:\n%s", other, text)
		}
	}
	if rows := tableRows(t, page, "pets"); len(rows) != 1 || rows[0][0] != "shop-1" {
		t.Errorf("team B's pets = %q", rows)
	}
	if rows := tableRows(t, page, "cattle"); len(rows) != 1 || rows[0][0] != "batch-1" {
		t.Errorf("team B's cattle = %q", rows)
	}
	status, body = teamB.get("/ui/fleet?export=cattle&format=csv")
	if status != 200 || strings.Contains(body, "web-1") || !strings.Contains(body, "batch-1") {
		t.Errorf("team B's cattle CSV: %d\n%s", status, body)
	}
}
