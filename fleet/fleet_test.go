package fleet_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gildhq/gild/agentproto"
	"github.com/gildhq/gild/controlplane"
	"github.com/gildhq/gild/fleet"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
	"github.com/gildhq/gild/store/sqlite"
)

// env is a fleet over a real SQLite store and control plane.
type env struct {
	ctx   context.Context
	st    store.Store
	cp    *controlplane.Service
	fleet *fleet.Service
	rg    resource.ID
}

func newEnv(t testing.TB, cfg fleet.Configurations) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := store.Open(ctx, sqlite.URL(filepath.Join(t.TempDir(), "gild.db")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cp, err := controlplane.New(ctx, st, controlplane.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg == nil {
		cfg = noConfigurations{}
	}
	f, err := fleet.New(st, fleet.Options{Configurations: cfg, ReportInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	f.SetWriter(controlplane.SystemWriter{Service: cp})
	cp.SetHooks(controlplane.Chain(f))
	go cp.Run(ctx)
	go f.Run(ctx)
	e := &env{ctx: ctx, st: st, cp: cp, fleet: f, rg: resource.ResourceGroupID("team-a", "prod")}
	e.put(t, resource.SubscriptionID("team-a"), "", nil)
	e.put(t, e.rg, "westeurope", nil)
	return e
}

// noConfigurations refuses every assignment: the tests that use none need nothing more.
type noConfigurations struct{}

func (noConfigurations) Normalize(json.RawMessage) (json.RawMessage, error) {
	return nil, errors.New("no configurations in this test")
}

func (noConfigurations) Agent(string, json.RawMessage) (agentproto.Assignment, error) {
	return agentproto.Assignment{}, errors.New("no configurations in this test")
}

func (e *env) put(t testing.TB, id resource.ID, location string, props map[string]any) {
	t.Helper()
	r := &resource.Resource{ID: id.String(), Location: location}
	if props != nil {
		r.Properties, _ = json.Marshal(props)
	}
	if _, _, err := e.cp.Put(e.ctx, controlplane.System, r, store.Precondition{}); err != nil {
		t.Fatalf("put %s: %v", id, err)
	}
}

func (e *env) vm(t testing.TB, name string) resource.ID {
	t.Helper()
	id := e.rg.Child(fleet.TypeVM, name)
	e.put(t, id, "westeurope", map[string]any{"storageProfile": map[string]any{}})
	return id
}

func (e *env) enroll(t testing.TB, vm resource.ID) string {
	t.Helper()
	tok, err := e.fleet.EnrollmentToken(e.ctx, vm)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.fleet.Enroll(e.ctx, agentproto.EnrollRequest{Version: agentproto.Version, Token: tok, Facts: facts(vm.Name())})
	if err != nil {
		t.Fatalf("enroll %s: %v", vm, err)
	}
	if !resource.MustParse(resp.MachineID).Equal(vm) || resp.Credential == "" || resp.ReportIntervalSeconds != 60 {
		t.Fatalf("enrolled: %+v", resp)
	}
	return resp.Credential
}

func facts(host string) agentproto.Facts {
	return agentproto.Facts{Hostname: host, Kernel: "6.1.0-27-cloud-amd64", OSRelease: map[string]string{"ID": "debian", "VERSION_ID": "12", "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)"},
		AgentVersion: "test", UptimeSeconds: 30, BootTime: time.Now().Add(-30 * time.Second)}
}

func report(id string, at time.Time, tattooVersion string, events ...agentproto.Event) agentproto.Report {
	return agentproto.Report{Version: agentproto.Version, ID: id, Time: at, Facts: facts("web-1"),
		Tattoo: json.RawMessage(fmt.Sprintf(`{"imageDefinition":"/subscriptions/p/resourceGroups/img/providers/Microsoft.Compute/galleries/corp/images/deb","imageVersion":%q}`, tattooVersion)),
		Events: events}
}

func TestEnrollReportAndForget(t *testing.T) {
	e := newEnv(t, nil)
	vm := e.vm(t, "web-1")
	cred := e.enroll(t, vm)
	id, err := e.fleet.Authenticate(e.ctx, cred)
	if err != nil || !id.Equal(vm) {
		t.Fatalf("authenticate: %v %v", id, err)
	}
	if _, err := e.fleet.Authenticate(e.ctx, cred+"x"); err == nil {
		t.Fatal("a wrong credential authenticated")
	}

	// Before the first report the agent is Pending; enrichment says so.
	doc := map[string]any{"id": vm.String(), "type": fleet.TypeVM}
	if err := e.fleet.Enrich(e.ctx, e.st, doc, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := doc["properties"].(map[string]any)["gild"].(map[string]any)["agent"].(map[string]any)["status"]; got != "Pending" {
		t.Fatalf("agent status before a report: %v", got)
	}

	t0 := time.Now().UTC()
	ev := agentproto.Event{ID: "e1", Time: t0, Kind: agentproto.EventCorrection, Assignment: "ssh", Check: "PermitRootLogin",
		Target: "/etc/ssh/sshd_config PermitRootLogin", Before: "yes", After: "no"}
	resp, err := e.fleet.Report(e.ctx, vm, report("r1", t0, "1.0.0", ev))
	if err != nil || resp.Duplicate {
		t.Fatalf("first report: %+v %v", resp, err)
	}
	// The same report again (the acknowledgement was lost): acknowledged, not applied twice.
	resp, err = e.fleet.Report(e.ctx, vm, report("r1", t0, "1.0.0", ev))
	if err != nil || !resp.Duplicate {
		t.Fatalf("resent report: %+v %v", resp, err)
	}
	// An older report arriving late keeps its events but does not roll the state back.
	old := agentproto.Event{ID: "e0", Time: t0.Add(-time.Hour), Kind: agentproto.EventCorrection, Assignment: "ssh", Check: "X"}
	if _, err := e.fleet.Report(e.ctx, vm, report("r0", t0.Add(-time.Hour), "0.9.0", old)); err != nil {
		t.Fatal(err)
	}
	st, err := e.fleet.Status(vm)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != "Connected" || st.LastReportID != "r1" || st.Tattoo["imageVersion"] != "1.0.0" || st.Facts.Hostname != "web-1" {
		t.Fatalf("status: %+v", st)
	}
	events, err := e.fleet.Events(e.ctx, store.MachineEventQuery{Machine: vm.String()})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[1].EventID != "e1" || events[1].Before != "yes" || events[1].After != "no" {
		t.Fatalf("events: %+v", events)
	}
	stored, err := e.st.Machine(e.ctx, vm.String())
	if err != nil || stored.LastReportID != "r1" {
		t.Fatalf("stored machine: %+v %v", stored, err)
	}

	// Enrichment: the tattoo, the agent, and whether the tattoo matches the declared image.
	doc = map[string]any{"id": vm.String(), "type": fleet.TypeVM, "properties": map[string]any{"gild": map[string]any{
		"image": map[string]any{"definitionId": "/subscriptions/p/resourceGroups/img/providers/Microsoft.Compute/galleries/corp/images/deb", "version": "1.0.1"}}}}
	if err := e.fleet.Enrich(e.ctx, e.st, doc, time.Now()); err != nil {
		t.Fatal(err)
	}
	g := doc["properties"].(map[string]any)["gild"].(map[string]any)
	if g["tattoo"].(map[string]any)["imageVersion"] != "1.0.0" || g["tattooMatchesImage"] != false || g["agent"].(map[string]any)["status"] != "Connected" {
		t.Fatalf("enriched: %+v", g)
	}

	// Deleting the VM revokes the credential and forgets its events.
	if _, err := e.cp.Delete(e.ctx, controlplane.System, vm, store.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.fleet.Authenticate(e.ctx, cred); err == nil {
		t.Fatal("the credential of a deleted VM still authenticates")
	}
	if ev, _ := e.fleet.Events(e.ctx, store.MachineEventQuery{Machine: vm.String()}); len(ev) != 0 {
		t.Fatalf("events outlived the VM: %+v", ev)
	}
}

func TestEnrollmentTokenOnce(t *testing.T) {
	e := newEnv(t, nil)
	vm := e.vm(t, "web-2")
	tok, err := e.fleet.EnrollmentToken(e.ctx, vm)
	if err != nil {
		t.Fatal(err)
	}
	req := agentproto.EnrollRequest{Version: agentproto.Version, Token: tok, Facts: facts("web-2")}
	if _, err := e.fleet.Enroll(e.ctx, req); err != nil {
		t.Fatal(err)
	}
	var re *resource.Error
	if _, err := e.fleet.Enroll(e.ctx, req); !errors.As(err, &re) || re.Code != resource.CodeConflict {
		t.Fatalf("second use of a token: %v", err)
	}
	req.Token = "gild-enroll-0000"
	if _, err := e.fleet.Enroll(e.ctx, req); !errors.As(err, &re) || re.Code != resource.CodeNotFound {
		t.Fatalf("unknown token: %v", err)
	}
	req.Token = "not-a-token"
	if _, err := e.fleet.Enroll(e.ctx, req); !errors.As(err, &re) || re.Code != resource.CodeAuthenticationFailed {
		t.Fatalf("malformed token: %v", err)
	}
	if _, err := e.fleet.CreateEnrollmentToken(e.ctx, resource.SubscriptionID("team-a"), "me", time.Hour); err == nil {
		t.Fatal("a token for a subscription was made")
	}
}

func TestEnrollHybridMachine(t *testing.T) {
	e := newEnv(t, nil)
	tok, err := e.fleet.CreateEnrollmentToken(e.ctx, e.rg, "alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bad := agentproto.EnrollRequest{Version: agentproto.Version, Token: tok, Facts: facts("bad name!")}
	if _, err := e.fleet.Enroll(e.ctx, bad); err == nil {
		t.Fatal("a host with an invalid name enrolled")
	}
	// The refusal left the token usable.
	resp, err := e.fleet.Enroll(e.ctx, agentproto.EnrollRequest{Version: agentproto.Version, Token: tok, Facts: facts("sap-01.corp.example")})
	if err != nil {
		t.Fatal(err)
	}
	want := e.rg.Child(fleet.TypeHybrid, "sap-01")
	if !resource.MustParse(resp.MachineID).Equal(want) {
		t.Fatalf("machine %s, want %s", resp.MachineID, want)
	}
	r, err := e.cp.Get(e.ctx, controlplane.System, want)
	if err != nil {
		t.Fatal(err)
	}
	var props map[string]any
	_ = json.Unmarshal(r.Properties, &props)
	if r.Tags["serviceModel"] != "pet" || props["osName"] != "debian" || props["status"] != "Connected" || r.Location != "westeurope" {
		t.Fatalf("hybrid machine: %+v %v", r, props)
	}
	if _, err := e.fleet.Report(e.ctx, want, report("h1", time.Now(), "")); err != nil {
		t.Fatal(err)
	}
}

func TestReportValidation(t *testing.T) {
	e := newEnv(t, nil)
	vm := e.vm(t, "web-3")
	e.enroll(t, vm)
	bad := agentproto.Report{Version: 7, Assignments: []agentproto.AssignmentReport{{ComplianceStatus: "Fine"}}, Events: []agentproto.Event{{}}}
	_, err := e.fleet.Report(e.ctx, vm, bad)
	var re *resource.Error
	if !errors.As(err, &re) || re.Code != resource.CodeInvalidRequestContent {
		t.Fatalf("bad report: %v", err)
	}
	for _, want := range []string{"version", "id:", "time:", "assignments[0].name", "assignments[0].complianceStatus", "events[0].id", "events[0].kind"} {
		if !strings.Contains(re.Message, want) {
			t.Errorf("the error does not name %q: %s", want, re.Message)
		}
	}
}
