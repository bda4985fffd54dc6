package api_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gildhq/gild/pipeline"
)

const tmplID = rgPay + "/providers/Microsoft.VirtualMachineImages/imageTemplates/debian-12-hardened"

func templateBody() map[string]any {
	return map[string]any{"location": "local", "properties": map[string]any{
		"source":     map[string]any{"type": "PlatformImage", "publisher": "Debian", "offer": "debian-12", "sku": "12"},
		"customize":  []any{map[string]any{"type": "Shell", "name": "harden", "inline": []string{"true"}}},
		"distribute": []any{map[string]any{"type": "SharedImage", "galleryImageId": defA, "runOutputName": "debian"}},
	}}
}

// scriptedStep stands in for the builder, whose drivers have tests of their own: the
// thing under test here is how runs are started, followed, cancelled and reported.
type scriptedStep struct {
	name, sub string
	lines     int
	fail      error
	block     chan struct{}
}

func (s scriptedStep) Name() string     { return s.name }
func (s scriptedStep) SubState() string { return s.sub }
func (s scriptedStep) Run(ctx context.Context, b *pipeline.Build) error {
	for i := range s.lines {
		b.Log.Printf("%s line %d", s.name, i)
	}
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return s.fail
}
func (s scriptedStep) Cleanup(*pipeline.Build) {}

func (e *env) waitRun(runID, state string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.must(e.admin, "GET", runID, nil, 200)
		props := r.body["properties"].(map[string]any)
		if props["runState"] == state {
			return props
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("run %s never reached %s: %s", runID, state, r.raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTemplateRuns(t *testing.T) {
	e := newEnv(t)
	e.seedGalleries()
	release := make(chan struct{})
	e.steps = func(b *pipeline.Build) []pipeline.Step {
		return []pipeline.Step{
			scriptedStep{name: "source", sub: pipeline.SubBuilding, lines: 3},
			scriptedStep{name: "customize", sub: pipeline.SubCustomizing, lines: 2, block: release},
			scriptedStep{name: "validate", sub: pipeline.SubValidating, lines: 1},
		}
	}
	// A bad template is refused with every problem named.
	bad := templateBody()
	bad["properties"].(map[string]any)["buildTimeoutInMinutes"] = 1
	bad["properties"].(map[string]any)["source"] = map[string]any{"type": "ManagedImage"}
	if r := e.do(e.admin, "PUT", tmplID, bad); r.status != 400 || !strings.Contains(string(r.raw), "properties.source.type") || !strings.Contains(string(r.raw), "properties.buildTimeoutInMinutes") {
		t.Fatalf("a bad template: %d %s", r.status, r.raw)
	}
	r := e.must(e.admin, "PUT", tmplID, templateBody(), 201)
	if p := r.body["properties"].(map[string]any); p["provisioningState"] != "Succeeded" || p["buildTimeoutInMinutes"] != float64(240) {
		t.Fatalf("the stored template: %s", r.raw)
	}
	// A reader cannot start a build.
	if r := e.do(e.token("Reader", subPay), "POST", tmplID+"/run", nil); r.status != 403 {
		t.Fatalf("a reader starting a run: %d %s", r.status, r.raw)
	}
	r = e.must(e.admin, "POST", tmplID+"/run", nil, 202)
	runID, _ := r.body["id"].(string)
	if !strings.HasPrefix(runID, tmplID+"/runs/") || !strings.Contains(r.header.Get("Location"), runID) {
		t.Fatalf("the run: %s (Location %q)", r.raw, r.header.Get("Location"))
	}
	if r := e.do(e.admin, "POST", tmplID+"/run", nil); r.status != 409 || r.errCode() != "ImageTemplateRunInProgress" {
		t.Fatalf("a second run: %d %s", r.status, r.raw)
	}
	if r := e.do(e.admin, "PUT", tmplID, templateBody()); r.status != 409 {
		t.Fatalf("changing a template while it builds: %d %s", r.status, r.raw)
	}
	if r := e.do(e.admin, "PUT", tmplID+"/runs/fake", map[string]any{"properties": map[string]any{"runState": "Succeeded"}}); r.status != 405 {
		t.Fatalf("writing a run by hand: %d %s", r.status, r.raw)
	}

	// Follow the log while the run goes on; it ends when the run does.
	req, _ := http.NewRequest("GET", e.url+runID+"/log?follow=true&api-version=2026-11-01", nil)
	req.Header.Set("Authorization", "Bearer "+e.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	followed := make(chan string)
	go func() { b, _ := io.ReadAll(resp.Body); followed <- string(b) }()
	time.Sleep(100 * time.Millisecond)
	props := e.must(e.admin, "GET", runID, nil, 200).body["properties"].(map[string]any)
	if props["runState"] != "Running" || props["runSubState"] != "Customizing" {
		t.Fatalf("while customizing: %v", props)
	}
	if tp := e.must(e.admin, "GET", tmplID, nil, 200).body["properties"].(map[string]any)["lastRunStatus"].(map[string]any); tp["runSubState"] != "Customizing" {
		t.Fatalf("the template's last run: %v", tp)
	}
	close(release)
	props = e.waitRun(runID, "Succeeded")
	steps := props["steps"].([]any)
	if len(steps) != 3 || props["endTime"] == nil {
		t.Fatalf("steps: %v", props)
	}
	for _, s := range steps {
		s := s.(map[string]any)
		if s["state"] != "Succeeded" || s["durationSeconds"] == nil {
			t.Errorf("step %v", s)
		}
	}
	select {
	case log := <-followed:
		for _, want := range []string{"[source] source line 2", "[customize] customize line 1", "[validate] succeeded in"} {
			if !strings.Contains(log, want) {
				t.Errorf("the followed log lacks %q:\n%s", want, log)
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatal("following the log did not end with the run")
	}
	if tp := e.must(e.admin, "GET", tmplID, nil, 200).body["properties"].(map[string]any)["lastRunStatus"].(map[string]any); tp["runState"] != "Succeeded" {
		t.Fatalf("the template's last run: %v", tp)
	}
	if got := ids(e.must(e.admin, "GET", tmplID+"/runs", nil, 200)); len(got) != 1 {
		t.Fatalf("the template's runs: %v", got)
	}
}

func TestFailedAndCancelledRuns(t *testing.T) {
	e := newEnv(t)
	e.seedGalleries()
	e.must(e.admin, "PUT", tmplID, templateBody(), 201)
	e.steps = func(b *pipeline.Build) []pipeline.Step {
		return []pipeline.Step{
			scriptedStep{name: "source", sub: pipeline.SubBuilding},
			scriptedStep{name: "validate", sub: pipeline.SubValidating, fail: &pipeline.StepError{Step: "validate", Checks: []string{"sshd-root-login"}, Err: errors.New("1 of 4 checks failed: sshd-root-login")}},
			scriptedStep{name: "distribute", sub: pipeline.SubDistributing},
		}
	}
	run := e.must(e.admin, "POST", tmplID+"/run", nil, 202).body["id"].(string)
	props := e.waitRun(run, "Failed")
	if props["failedStep"] != "validate" || !strings.Contains(props["message"].(string), "sshd-root-login") || len(props["steps"].([]any)) != 2 {
		t.Fatalf("a failed run: %v", props)
	}
	if checks, _ := props["failedChecks"].([]any); len(checks) != 1 || checks[0] != "sshd-root-login" {
		t.Fatalf("failed checks: %v", props["failedChecks"])
	}
	if r := e.do(e.admin, "GET", run+"/log", nil); r.status != 200 || !strings.Contains(string(r.raw), "[validate] failed in") {
		t.Fatalf("the failed run's log: %d %s", r.status, r.raw)
	}

	e.steps = func(b *pipeline.Build) []pipeline.Step {
		return []pipeline.Step{scriptedStep{name: "source", sub: pipeline.SubBuilding, block: make(chan struct{})}}
	}
	run = e.must(e.admin, "POST", tmplID+"/run", nil, 202).body["id"].(string)
	time.Sleep(50 * time.Millisecond)
	e.must(e.admin, "POST", run+"/cancel", nil, 202)
	props = e.waitRun(run, "Canceled")
	if props["failedStep"] != "source" {
		t.Fatalf("a cancelled run: %v", props)
	}
	if r := e.do(e.admin, "POST", run+"/cancel", nil); r.status != 409 || r.errCode() != "ImageTemplateRunFinished" {
		t.Fatalf("cancelling an ended run: %d %s", r.status, r.raw)
	}
}
