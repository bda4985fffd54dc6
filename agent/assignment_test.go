package agent

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gildhq/gild/agentproto"
	"github.com/gildhq/gild/check"
)

// sshChecks: a line the auto-corrector can fix, a file whose contents it can restore, and
// a file property ("contains" without contents) it cannot.
const sshChecks = `[
	{"name":"no root login","kind":"lineInFile","path":"/etc/ssh/sshd_config","line":"PermitRootLogin no","matches":"^\\s*PermitRootLogin\\b"},
	{"name":"banner","kind":"file","path":"/etc/issue","contents":"Authorized use only\n"}
]`

func driftedRoot(t *testing.T) string {
	return writeRoot(t, map[string]string{
		"/etc/ssh/sshd_config": "Port 22\nPermitRootLogin yes\n",
		"/etc/issue":           "Debian GNU/Linux 12\n",
	})
}

func fixedClock() func() time.Time {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	return func() time.Time { now = now.Add(time.Millisecond); return now }
}

func statuses(r agentproto.AssignmentReport) map[string]string {
	out := map[string]string{}
	for _, res := range r.Resources {
		out[res.ResourceID] = res.ComplianceStatus
	}
	return out
}

// TestRunAssignmentTypes runs one drifted machine under each assignment type and checks
// the report, the events and what happened to the files.
func TestRunAssignmentTypes(t *testing.T) {
	for _, tc := range []struct {
		name       string
		typ        string
		status     string
		resources  map[string]string
		events     []agentproto.Event // IDs and times are not compared
		sshdAfter  string
		appliedSet bool
	}{
		{name: "audit changes nothing", typ: agentproto.AssignmentAudit, status: agentproto.StatusNonCompliant,
			resources: map[string]string{"no root login": "NonCompliant", "banner": "NonCompliant"},
			sshdAfter: "Port 22\nPermitRootLogin yes\n"},
		{name: "unknown type is audited", typ: "ApplyAndDance", status: agentproto.StatusNonCompliant,
			resources: map[string]string{"no root login": "NonCompliant", "banner": "NonCompliant"},
			sshdAfter: "Port 22\nPermitRootLogin yes\n"},
		{name: "auto-correct reports the state after correction and each change", typ: agentproto.AssignmentApplyAndAutoCorrect, status: agentproto.StatusCompliant,
			resources: map[string]string{"no root login": "Compliant", "banner": "Compliant"},
			events: []agentproto.Event{
				{Kind: agentproto.EventCorrection, Assignment: "baseline", Check: "no root login", Target: "/etc/ssh/sshd_config line 2", Before: `"PermitRootLogin yes"`, After: `"PermitRootLogin no"`},
				{Kind: agentproto.EventCorrection, Assignment: "baseline", Check: "banner", Target: "/etc/issue contents", Before: `"Debian GNU/Linux 12\n"`, After: `"Authorized use only\n"`},
			},
			sshdAfter: "Port 22\nPermitRootLogin no\n"},
		{name: "apply-and-monitor applies on the first run", typ: agentproto.AssignmentApplyAndMonitor, status: agentproto.StatusCompliant,
			resources: map[string]string{"no root login": "Compliant", "banner": "Compliant"},
			events: []agentproto.Event{
				{Kind: agentproto.EventCorrection, Assignment: "baseline", Check: "no root login", Target: "/etc/ssh/sshd_config line 2", Before: `"PermitRootLogin yes"`, After: `"PermitRootLogin no"`},
				{Kind: agentproto.EventCorrection, Assignment: "baseline", Check: "banner", Target: "/etc/issue contents", Before: `"Debian GNU/Linux 12\n"`, After: `"Authorized use only\n"`},
			},
			sshdAfter: "Port 22\nPermitRootLogin no\n", appliedSet: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := driftedRoot(t)
			a := agentproto.Assignment{Name: "baseline", Hash: "h1", AssignmentType: tc.typ, Checks: json.RawMessage(sshChecks)}
			o := runAssignment(context.Background(), check.OfflineEnv(root), a, State{}, fixedClock())
			r := o.report
			if r.ComplianceStatus != tc.status || r.OperationType != "Initial" || r.Name != "baseline" || r.Hash != "h1" || !r.EndTime.After(r.StartTime) {
				t.Errorf("report %+v", r)
			}
			if got := statuses(r); !reflect.DeepEqual(got, tc.resources) {
				t.Errorf("resources %v, want %v", got, tc.resources)
			}
			for _, res := range r.Resources {
				if res.Reasons == nil || (res.ComplianceStatus != "Compliant") != (len(res.Reasons) > 0) || res.Expected == "" {
					t.Errorf("resource %+v", res)
				}
			}
			var got []agentproto.Event
			for _, e := range o.events {
				if len(e.ID) != 32 || e.Time.IsZero() {
					t.Errorf("event without an ID or time: %+v", e)
				}
				e.ID, e.Time = "", time.Time{}
				got = append(got, e)
			}
			if !reflect.DeepEqual(got, tc.events) {
				t.Errorf("events\n%+v\nwant\n%+v", got, tc.events)
			}
			if data, _ := os.ReadFile(filepath.Join(root, "etc/ssh/sshd_config")); string(data) != tc.sshdAfter {
				t.Errorf("sshd_config after: %q", data)
			}
			if o.applied != tc.appliedSet {
				t.Errorf("applied = %v", o.applied)
			}
		})
	}
}

// TestApplyAndMonitorAppliesOncePerHash: after its first run, an ApplyAndMonitor
// assignment only reports drift; a new hash applies again.
func TestApplyAndMonitorAppliesOncePerHash(t *testing.T) {
	root := driftedRoot(t)
	env := check.OfflineEnv(root)
	a := agentproto.Assignment{Name: "baseline", Hash: "h1", AssignmentType: agentproto.AssignmentApplyAndMonitor, Checks: json.RawMessage(sshChecks)}
	var st State
	run := func() runOutcome {
		o := runAssignment(context.Background(), env, a, st, fixedClock())
		o.merge(&st, a.AssignmentType)
		return o
	}
	first := run()
	if first.report.ComplianceStatus != "Compliant" || len(first.events) != 2 || first.report.OperationType != "Initial" {
		t.Fatalf("first run: %+v, %d events", first.report, len(first.events))
	}
	// Someone edits the file back: drift.
	if err := os.WriteFile(filepath.Join(root, "etc/ssh/sshd_config"), []byte("PermitRootLogin yes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	second := run()
	if second.report.ComplianceStatus != "NonCompliant" || len(second.events) != 0 || second.report.OperationType != "Consistency" {
		t.Fatalf("second run: %+v, events %+v", second.report, second.events)
	}
	if data, _ := os.ReadFile(filepath.Join(root, "etc/ssh/sshd_config")); string(data) != "PermitRootLogin yes\n" {
		t.Errorf("the drift was corrected: %q", data)
	}
	if !reflect.DeepEqual(st.AppliedHashes, []string{"h1"}) || !reflect.DeepEqual(st.RunHashes, []string{"h1"}) {
		t.Errorf("state hashes: run %v, applied %v", st.RunHashes, st.AppliedHashes)
	}
	// A changed assignment is a new hash: applied once more.
	a.Hash = "h2"
	st.setAssignments(agentproto.Assignments{Version: 1, ETag: "2", Assignments: []agentproto.Assignment{a}})
	if len(st.AppliedHashes) != 0 || len(st.RunHashes) != 0 {
		t.Errorf("hashes of the old assignment kept: %v %v", st.RunHashes, st.AppliedHashes)
	}
	third := run()
	if third.report.ComplianceStatus != "Compliant" || len(third.events) != 1 || third.report.OperationType != "Initial" {
		t.Fatalf("third run: %+v, events %+v", third.report, third.events)
	}
}

// TestApplyErrorReportedOnce: a correction that fails is an ApplyError event, once while
// it keeps failing the same way.
func TestApplyErrorReportedOnce(t *testing.T) {
	root := writeRoot(t, map[string]string{"/etc/login.defs": "UMASK 022\n"})
	a := agentproto.Assignment{Name: "umask", Hash: "h", AssignmentType: agentproto.AssignmentApplyAndAutoCorrect,
		Checks: json.RawMessage(`[{"name":"umask","kind":"file","path":"/etc/login.defs","contains":"UMASK 027"}]`)}
	var st State
	for i, wantEvents := range []int{1, 0, 0} {
		o := runAssignment(context.Background(), check.OfflineEnv(root), a, st, fixedClock())
		o.merge(&st, a.AssignmentType)
		if o.report.ComplianceStatus != "NonCompliant" || len(o.events) != wantEvents {
			t.Fatalf("run %d: %s, events %+v", i, o.report.ComplianceStatus, o.events)
		}
		if wantEvents == 1 {
			e := o.events[0]
			if e.Kind != agentproto.EventApplyError || e.Check != "umask" || !strings.Contains(e.Message, "not remediable") {
				t.Errorf("event %+v", e)
			}
		}
	}
	if len(st.PendingEvents) != 1 || st.LastApplyErrors["umask/umask"] == "" {
		t.Errorf("state: %d pending events, last errors %v", len(st.PendingEvents), st.LastApplyErrors)
	}
}

// TestAssignmentChecksProblems: an assignment whose checks cannot be loaded is NonCompliant
// with one resource saying why.
func TestAssignmentChecksProblems(t *testing.T) {
	withBaseline := writeRoot(t, map[string]string{
		agentproto.ImageChecksPath: `{"checks":[{"name":"issue","kind":"file","path":"/etc/issue"}]}`,
		"/etc/issue":               "x",
	})
	for _, tc := range []struct {
		name     string
		root     string
		a        agentproto.Assignment
		status   string
		resource string
		code     string
	}{
		{"baseline missing", t.TempDir(), agentproto.Assignment{ImageBaseline: true}, "NonCompliant", "image-baseline", CodeImageChecksMissing},
		{"baseline present", withBaseline, agentproto.Assignment{ImageBaseline: true}, "Compliant", "issue", ""},
		{"invalid checks", t.TempDir(), agentproto.Assignment{Checks: json.RawMessage(`[{"name":"a","kind":"nope"}]`)}, "NonCompliant", "checks", CodeChecksInvalid},
		{"no checks", t.TempDir(), agentproto.Assignment{}, "NonCompliant", "checks", CodeChecksInvalid},
		{"null checks", t.TempDir(), agentproto.Assignment{Checks: json.RawMessage(`null`)}, "NonCompliant", "checks", CodeChecksInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.a.Name, tc.a.Hash, tc.a.AssignmentType = "a", "h", agentproto.AssignmentApplyAndAutoCorrect
			o := runAssignment(context.Background(), check.OfflineEnv(tc.root), tc.a, State{}, fixedClock())
			r := o.report
			if r.ComplianceStatus != tc.status || len(r.Resources) != 1 || r.Resources[0].ResourceID != tc.resource {
				t.Fatalf("report %+v", r)
			}
			if tc.code != "" && (len(r.Resources[0].Reasons) != 1 || r.Resources[0].Reasons[0].Code != tc.code) {
				t.Errorf("reasons %+v", r.Resources[0].Reasons)
			}
			rep := agentproto.Report{Version: 1, ID: "x", Time: time.Now(), Assignments: []agentproto.AssignmentReport{r}}
			if err := rep.Validate(); err != nil {
				t.Errorf("the server would refuse it: %v", err)
			}
		})
	}
}

func TestDecodeAssignments(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		errs     []string
	}{
		{"valid", `{"version":1,"etag":"7","reportIntervalSeconds":60,"assignments":[{"name":"a","hash":"1","assignmentType":"Audit","checks":[]},{"name":"b","hash":"2","imageBaseline":true}]}`, nil},
		{"empty", `{"version":1,"etag":"1","assignments":[]}`, nil},
		{"not JSON", `{"version":1,`, []string{"decode assignments: unexpected end of JSON input"}},
		{"every problem at once", `{"version":2,"reportIntervalSeconds":-1,"assignments":[{"name":"","hash":""},{"name":"a/b","hash":"1"},{"name":"c","hash":"1"},{"name":"c","hash":"2"}]}`, []string{
			"version: 2, this agent speaks 1", "reportIntervalSeconds: -1 is negative", "assignments[0].name: empty", "assignments[0].hash: empty",
			`assignments[1].name: "a/b" has a slash`, `assignments[3].name: "c" is also the name of assignments[2]`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeAssignments([]byte(tc.in))
			if (err != nil) != (len(tc.errs) > 0) {
				t.Fatalf("err = %v", err)
			}
			for _, want := range tc.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
		})
	}
	var many strings.Builder
	many.WriteString(`{"version":1,"assignments":[`)
	for i := range maxAssignments + 1 {
		if i > 0 {
			many.WriteString(",")
		}
		many.WriteString(`{"name":"a` + strings.Repeat("x", i) + `","hash":"h"}`)
	}
	many.WriteString(`]}`)
	if _, err := decodeAssignments([]byte(many.String())); err == nil || !strings.Contains(err.Error(), "at most 50") {
		t.Errorf("51 assignments: %v", err)
	}
}

// FuzzDecodeAssignments: the server's answer is decoded and each assignment's checks
// loaded as the agent does before running them; no input may panic, and an accepted
// answer stays within what a report can carry. Run with:
// go test -fuzz=FuzzDecodeAssignments ./agent
func FuzzDecodeAssignments(f *testing.F) {
	f.Add([]byte(`{"version":1,"etag":"7","assignments":[{"name":"a","hash":"1","assignmentType":"ApplyAndAutoCorrect","checks":` + sshChecks + `}]}`))
	f.Add([]byte(`{"version":1,"assignments":[{"name":"b","hash":"2","imageBaseline":true}]}`))
	f.Add([]byte(`{"version":1,"assignments":[{"name":"c","hash":"3","checks":{"checks":[{"name":"x","kind":"command","command":"true"}]}}]}`))
	f.Add([]byte(`{"version":1,"assignments":[{"name":"d","hash":"4","checks":"not a set"}]}`))
	f.Add([]byte(`null`))
	root := f.TempDir()
	env := check.OfflineEnv(root)
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := decodeAssignments(data)
		if err != nil {
			return
		}
		if a.Version != agentproto.Version || len(a.Assignments) > maxAssignments {
			t.Fatalf("accepted %+v", a)
		}
		rep := agentproto.Report{Version: agentproto.Version, ID: "fuzz", Time: time.Now()}
		for _, x := range a.Assignments {
			// Loading only: running a fuzzed command check would run the fuzzer's shell.
			_, problem := assignmentChecks(env, x)
			ar := agentproto.AssignmentReport{Name: x.Name, Hash: x.Hash, ComplianceStatus: agentproto.StatusCompliant}
			if problem != nil {
				ar.ComplianceStatus, ar.Resources = agentproto.StatusNonCompliant, []agentproto.ResourceReport{*problem}
			}
			rep.Assignments = append(rep.Assignments, ar)
		}
		// What the agent would report about accepted assignments, the server accepts.
		if err := rep.Validate(); err != nil {
			t.Fatalf("report of accepted assignments is invalid: %v", err)
		}
	})
}
