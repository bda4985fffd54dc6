package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gildhq/gild/controlplane"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
	"github.com/gildhq/gild/store/sqlite"
)

// script is what the fake builder does, changed by a test between runs.
type script struct {
	mu      sync.Mutex
	fail    error // validate fails with it
	block   bool  // customize waits for its context to end
	started chan string
}

func (sc *script) set(fail error, block bool) {
	sc.mu.Lock()
	sc.fail, sc.block = fail, block
	sc.mu.Unlock()
}

func (sc *script) steps(*Build) []Step {
	return []Step{scriptStep{sc, "source", SubBuilding}, scriptStep{sc, "customize", SubCustomizing}, scriptStep{sc, "validate", SubValidating}}
}

type scriptStep struct {
	sc        *script
	name, sub string
}

func (s scriptStep) Name() string     { return s.name }
func (s scriptStep) SubState() string { return s.sub }
func (s scriptStep) Cleanup(*Build)   {}
func (s scriptStep) Run(ctx context.Context, b *Build) error {
	s.sc.mu.Lock()
	fail, block := s.sc.fail, s.sc.block
	s.sc.mu.Unlock()
	select {
	case s.sc.started <- s.name:
	default:
	}
	switch s.name {
	case "customize":
		if block {
			<-ctx.Done()
			return ctx.Err()
		}
	case "validate":
		return fail
	}
	return nil
}

// server is one gild server: a control plane and a pipeline over a store that others
// may share.
type server struct {
	cp   *controlplane.Service
	svc  *Service
	ends chan RunEnd
}

const tmplPath = "/subscriptions/platform/resourceGroups/images/providers/Microsoft.VirtualMachineImages/imageTemplates/debian"

var tmplID = resource.MustParse(tmplPath)

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), sqlite.URL(filepath.Join(t.TempDir(), "gild.db")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newServer(t *testing.T, st store.Store, sc *script, mod func(o *Options)) *server {
	t.Helper()
	cp, err := controlplane.New(context.Background(), st, controlplane.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := &server{cp: cp, ends: make(chan RunEnd, 20)}
	opts := Options{Dir: t.TempDir(), Steps: sc.steps, OnRunEnd: func(_ context.Context, e RunEnd) { s.ends <- e }}
	if mod != nil {
		mod(&opts)
	}
	if s.svc, err = New(st, controlplane.SystemWriter{Service: cp}, opts); err != nil {
		t.Fatal(err)
	}
	s.svc.pollEvery = 20 * time.Millisecond
	cp.SetHooks(s.svc)
	t.Cleanup(func() { s.svc.CancelAll(); s.svc.Wait() })
	return s
}

// newEnv is a store with the template's resource group and one server on it.
func newEnv(t *testing.T, sc *script, mod func(o *Options)) (store.Store, *server) {
	st := openStore(t)
	s := newServer(t, st, sc, mod)
	for _, r := range []struct{ id, body string }{{"/subscriptions/platform", `{}`}, {"/subscriptions/platform/resourceGroups/images", `{"location": "local"}`}} {
		if err := s.put(r.id, r.body); err != nil {
			t.Fatal(err)
		}
	}
	return st, s
}

func (s *server) put(id, body string) error {
	r, err := resource.DecodeBody(resource.MustParse(id), []byte(body))
	if err != nil {
		return err
	}
	_, _, err = s.cp.Put(context.Background(), controlplane.System, r, store.Precondition{})
	return err
}

func (s *server) putTemplate(props string) error {
	return s.put(tmplPath, `{"location": "local", "properties": {`+props+`}}`)
}

func (s *server) template(t *testing.T) TemplateProperties {
	t.Helper()
	r, err := s.svc.store.Get(context.Background(), tmplID)
	if err != nil {
		t.Fatal(err)
	}
	var p TemplateProperties
	if err := json.Unmarshal(r.Properties, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func (s *server) run(t *testing.T, id resource.ID) RunProperties {
	t.Helper()
	r, err := s.svc.store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var p RunProperties
	if err := json.Unmarshal(r.Properties, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func (s *server) waitEnd(t *testing.T) RunEnd {
	t.Helper()
	select {
	case e := <-s.ends:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no run ended")
	}
	return RunEnd{}
}

func waitStarted(t *testing.T, sc *script, step string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case n := <-sc.started:
			if n == step {
				return
			}
		case <-deadline:
			t.Fatalf("step %s never started", step)
		}
	}
}

func (s *server) start(t *testing.T, o StartOptions) resource.ID {
	t.Helper()
	r, err := s.svc.StartWith(context.Background(), tmplID, o)
	if err != nil {
		t.Fatal(err)
	}
	return resource.MustParse(r.ID)
}

func code(err error) string { return resource.CodeOf(err) }

func TestScheduledFailuresDisableTheSchedule(t *testing.T) {
	sc := &script{started: make(chan string, 10)}
	_, s := newEnv(t, sc, nil)
	if err := s.putTemplate(urlSource + `, "schedule": {"cron": "@daily", "maxConsecutiveFailures": 3}`); err != nil {
		t.Fatal(errorText(err))
	}
	checks := errors.New("2 checks failed")
	in := &Inputs{TemplateDigest: "d", Base: "url:sha256:1"}
	steps := []struct {
		name    string
		trigger string
		fail    bool
		cancel  bool
		inputs  *Inputs
		count   int
	}{
		{"a scheduled run fails", TriggerSchedule, true, false, nil, 1},
		{"a base-image run fails", TriggerBaseImage, true, false, nil, 2},
		{"a scheduled success clears the count", TriggerSchedule, false, false, in, 0},
		{"a manual failure does not count", TriggerManual, true, false, nil, 0},
		{"a scheduled failure", TriggerSchedule, true, false, nil, 1},
		{"a cancelled scheduled run leaves the count", TriggerSchedule, false, true, nil, 1},
		{"a second in a row", TriggerSchedule, true, false, nil, 2},
	}
	for i, st := range steps {
		var fail error
		if st.fail {
			fail = checks
		}
		sc.set(fail, st.cancel)
		id := s.start(t, StartOptions{Trigger: st.trigger, Inputs: st.inputs})
		if st.cancel {
			waitStarted(t, sc, "customize")
			if err := s.svc.Cancel(context.Background(), id); err != nil {
				t.Fatal(err)
			}
		}
		e := s.waitEnd(t)
		s.svc.Wait()
		p := s.template(t)
		if p.ScheduleStatus == nil || p.ScheduleStatus.ConsecutiveFailures != st.count || e.ScheduleDisabled || p.Schedule.Disabled {
			t.Fatalf("%s: status %+v, end %+v", st.name, p.ScheduleStatus, e)
		}
		if e.Trigger != st.trigger || e.Run.Key() != id.Key() {
			t.Fatalf("%s: end %+v", st.name, e)
		}
		if i >= 2 && p.ScheduleStatus.LastInputs != in.Fingerprint() {
			t.Fatalf("%s: the succeeded run's inputs are not remembered: %+v", st.name, p.ScheduleStatus)
		}
	}

	sc.set(checks, false)
	id := s.start(t, StartOptions{Trigger: TriggerSchedule})
	e := s.waitEnd(t)
	s.svc.Wait()
	want := "the schedule was disabled after 3 scheduled runs failed in a row; the last (" + id.Name() + ") failed at step validate: 2 checks failed"
	if !e.ScheduleDisabled || e.DisabledReason != want || e.State != StateFailed || e.FailedStep != "validate" {
		t.Fatalf("the third failure: %+v", e)
	}
	p := s.template(t)
	if !p.Schedule.Disabled || p.ScheduleStatus.DisabledReason != want || p.ScheduleStatus.DisabledTime == nil || p.ScheduleStatus.ConsecutiveFailures != 3 {
		t.Fatalf("the template: %+v %+v", p.Schedule, p.ScheduleStatus)
	}
	if p.LastRunStatus == nil || p.LastRunStatus.RunState != StateFailed {
		t.Fatalf("the last run status was not written with it: %+v", p.LastRunStatus)
	}

	// Kept disabled, the count stays; what a client sends as the status is ignored.
	if err := s.putTemplate(urlSource + `, "schedule": {"cron": "@daily", "maxConsecutiveFailures": 3, "disabled": true}, "scheduleStatus": {"consecutiveFailures": 99}`); err != nil {
		t.Fatal(errorText(err))
	}
	if p := s.template(t); p.ScheduleStatus.ConsecutiveFailures != 3 || p.ScheduleStatus.DisabledReason != want {
		t.Fatalf("still disabled: %+v", p.ScheduleStatus)
	}
	// Turned back on, it starts afresh, and still remembers the last inputs.
	if err := s.putTemplate(urlSource + `, "schedule": {"cron": "@daily", "maxConsecutiveFailures": 3}, "scheduleStatus": {"consecutiveFailures": 99}`); err != nil {
		t.Fatal(errorText(err))
	}
	p = s.template(t)
	if p.Schedule.Disabled || p.ScheduleStatus.ConsecutiveFailures != 0 || p.ScheduleStatus.DisabledReason != "" || p.ScheduleStatus.DisabledTime != nil ||
		p.ScheduleStatus.LastInputs != in.Fingerprint() {
		t.Fatalf("re-enabled: %+v %+v", p.Schedule, p.ScheduleStatus)
	}
}

func TestScheduleWrites(t *testing.T) {
	sc := &script{started: make(chan string, 10)}
	_, s := newEnv(t, sc, nil)
	if err := s.putTemplate(urlSource + `, "schedule": {"cron": "@daily"}`); err != nil {
		t.Fatal(errorText(err))
	}
	last, next := utc("2026-05-17T00:00:00Z"), utc("2026-05-18T00:00:00Z")
	ctx := context.Background()
	err := s.svc.UpdateScheduleStatus(ctx, tmplID, func(st *ScheduleStatus) {
		st.LastScheduledTime, st.NextScheduledTime, st.ConsecutiveFailures = &last, &next, 1
	})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := s.svc.store.Get(ctx, tmplID)
	if err := s.svc.UpdateScheduleStatus(ctx, tmplID, func(st *ScheduleStatus) {}); err != nil {
		t.Fatal(err)
	}
	if after, _ := s.svc.store.Get(ctx, tmplID); after.ETag != before.ETag {
		t.Fatal("a status update that changes nothing wrote the template")
	}
	if err := s.svc.UpdateScheduleStatus(ctx, tmplID.Child("runs", "r"), func(*ScheduleStatus) {}); err == nil {
		t.Fatal("a run's schedule status")
	}

	// A write that keeps the cron keeps the times; a new cron counts afresh.
	if err := s.putTemplate(urlSource + `, "schedule": {"cron": "@daily", "when": "changed"}`); err != nil {
		t.Fatal(errorText(err))
	}
	if st := s.template(t).ScheduleStatus; st.LastScheduledTime == nil || !st.LastScheduledTime.Equal(last) || st.ConsecutiveFailures != 1 {
		t.Fatalf("the same cron: %+v", st)
	}
	if err := s.putTemplate(urlSource + `, "schedule": {"cron": "@weekly", "when": "changed"}`); err != nil {
		t.Fatal(errorText(err))
	}
	if st := s.template(t).ScheduleStatus; st.LastScheduledTime != nil || st.NextScheduledTime != nil || st.ConsecutiveFailures != 1 {
		t.Fatalf("a new cron: %+v", st)
	}

	// While a run goes on, only the schedule may change.
	sc.set(nil, true)
	id := s.start(t, StartOptions{})
	waitStarted(t, sc, "customize")
	if err := s.putTemplate(urlSource + `, "schedule": {"cron": "@monthly"}`); err != nil {
		t.Fatalf("a schedule-only change during a run: %v", errorText(err))
	}
	if p := s.template(t); p.Schedule.Cron != "@monthly" || p.LastRunStatus.RunState != StateRunning {
		t.Fatalf("after the schedule-only change: %+v %+v", p.Schedule, p.LastRunStatus)
	}
	if err := s.putTemplate(urlSource + `, "schedule": {"cron": "@monthly"}`); code(err) != CodeRunInProgress {
		t.Fatalf("a write that changes nothing during a run: %v", err)
	}
	if err := s.putTemplate(urlSource + `, "buildTimeoutInMinutes": 30, "schedule": {"cron": "@yearly"}`); code(err) != CodeRunInProgress {
		t.Fatalf("a change to the build during a run: %v", err)
	}
	if err := s.svc.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	if e := s.waitEnd(t); e.State != StateCanceled {
		t.Fatalf("%+v", e)
	}
}

// Two servers share one store: what one builds, the other knows about.
func TestTwoServersShareRuns(t *testing.T) {
	sc := &script{started: make(chan string, 10)}
	st, a := newEnv(t, sc, nil)
	b := newServer(t, st, sc, nil)
	if err := a.putTemplate(urlSource); err != nil {
		t.Fatal(errorText(err))
	}
	sc.set(nil, true)
	id := a.start(t, StartOptions{})
	waitStarted(t, sc, "customize")
	ctx := context.Background()
	if _, err := b.svc.Start(ctx, tmplID); code(err) != CodeRunInProgress || !strings.Contains(err.Error(), id.Name()) {
		t.Fatalf("a second run from the other server: %v", err)
	}
	// Even past the look before it, the write of the run itself is refused.
	other := tmplID.Child("runs", "other")
	err := controlplane.SystemWriter{Service: b.cp}.Put(withInternal(ctx), &resource.Resource{ID: other.String(), Name: "other", Type: TypeRun,
		Properties: mustJSON(RunProperties{RunState: StateRunning, Steps: []StepStatus{}})})
	if code(err) != CodeRunInProgress {
		t.Fatalf("a second run written at once: %v", err)
	}
	// (A template with runs goes with its resource group.)
	rg := resource.MustParse("/subscriptions/platform/resourceGroups/images")
	if _, err := b.cp.Delete(ctx, controlplane.System, rg, store.Precondition{}); code(err) != CodeRunInProgress {
		t.Fatalf("deleting the template on the other server: %v", err)
	}
	// Cancelled on the other server: marked Canceling, seen and stopped by the builder.
	if err := b.svc.Cancel(ctx, tmplID); err != nil {
		t.Fatal(err)
	}
	e := a.waitEnd(t)
	if e.State != StateCanceled || e.Message != "the run was cancelled" || e.Run.Key() != id.Key() {
		t.Fatalf("%+v", e)
	}
	if err := b.svc.Cancel(ctx, id); code(err) != CodeRunFinished {
		t.Fatalf("cancelling an ended run: %v", err)
	}
	b.svc.Wait()
	a.svc.Wait()
	if _, err := b.cp.Delete(ctx, controlplane.System, rg, store.Precondition{}); err != nil {
		t.Fatalf("deleting the template once the run ended: %v", err)
	}
}

func TestDispatch(t *testing.T) {
	sc := &script{started: make(chan string, 10)}
	var mu sync.Mutex
	var dispatched []resource.ID
	var dispatchErr error
	inputs := Inputs{TemplateDigest: "t", Base: "url:sha256:2"}
	_, s := newEnv(t, sc, func(o *Options) {
		o.Dispatch = func(_ context.Context, run resource.ID) error {
			mu.Lock()
			defer mu.Unlock()
			dispatched = append(dispatched, run)
			return dispatchErr
		}
		o.Inputs = func(context.Context, *TemplateProperties) (Inputs, error) { return inputs, nil }
	})
	if err := s.putTemplate(urlSource + `, "schedule": {}`); err != nil {
		t.Fatal(errorText(err))
	}
	ctx := context.Background()
	at := utc("2026-06-01T03:00:00Z")
	id := s.start(t, StartOptions{Trigger: TriggerSchedule, ScheduledTime: &at, Reason: "the schedule fired"})
	p := s.run(t, id)
	if p.RunState != StateRunning || p.RunSubState != SubQueued || p.Attempt != 0 || p.Trigger != TriggerSchedule || !p.ScheduledTime.Equal(at) || p.Reason != "the schedule fired" {
		t.Fatalf("the queued run: %+v", p)
	}
	if len(dispatched) != 1 || dispatched[0].Key() != id.Key() || len(sc.started) != 0 {
		t.Fatalf("dispatched %v, started %d steps", dispatched, len(sc.started))
	}
	if err := s.svc.RunBuild(ctx, id, 1); err != nil {
		t.Fatal(err)
	}
	p = s.run(t, id)
	if p.RunState != StateSucceeded || p.Attempt != 1 || len(p.Steps) != 3 || p.Inputs == nil {
		t.Fatalf("after RunBuild: %+v", p)
	}
	if p.Inputs.Fingerprint() != inputs.Fingerprint() || s.template(t).ScheduleStatus.LastInputs != inputs.Fingerprint() {
		t.Fatalf("the inputs read at the start: %+v", p.Inputs)
	}
	if e := s.waitEnd(t); e.State != StateSucceeded || e.Trigger != TriggerSchedule {
		t.Fatalf("%+v", e)
	}
	log, _ := os.ReadFile(filepath.Join(s.svc.RunDir(id), "run.log"))
	for _, want := range []string{"[run] started by schedule for 2026-06-01T03:00:00Z", "[run] why: the schedule fired", "[run] queued for a build server", "[validate] succeeded"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("the log lacks %q:\n%s", want, log)
		}
	}
	if err := s.svc.RunBuild(ctx, id, 2); err != nil || s.run(t, id).Attempt != 1 {
		t.Fatalf("an ended run built again: %v", err)
	}

	// A job system that cannot take the run: it ends Failed, and the template is free.
	mu.Lock()
	dispatchErr = errors.New("the job queue is full")
	mu.Unlock()
	if _, err := s.svc.Start(ctx, tmplID); err == nil || !strings.Contains(err.Error(), "the job queue is full") {
		t.Fatalf("a failed dispatch: %v", err)
	}
	e := s.waitEnd(t)
	if p := s.run(t, e.Run); p.RunState != StateFailed || !strings.Contains(p.Message, "the job queue is full") || e.Trigger != TriggerManual {
		t.Fatalf("the run that could not be queued: %+v", p)
	}
	if s.template(t).LastRunStatus.RunState != StateFailed {
		t.Fatal("the template still shows a run")
	}
	mu.Lock()
	dispatchErr = nil
	mu.Unlock()
	if _, err := s.svc.Start(ctx, tmplID); err != nil {
		t.Fatalf("a run after the failed dispatch: %v", err)
	}
}

// A server stops during a dispatched build; the job system gives it to another attempt,
// which clears what the first left and builds from the start.
func TestRunBuildAgainAfterAServerStopped(t *testing.T) {
	sc := &script{started: make(chan string, 10)}
	_, s := newEnv(t, sc, func(o *Options) { o.Dispatch = func(context.Context, resource.ID) error { return nil } })
	if err := s.putTemplate(urlSource); err != nil {
		t.Fatal(errorText(err))
	}
	id := s.start(t, StartOptions{})
	sc.set(nil, true)
	jobCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.svc.RunBuild(jobCtx, id, 1) }()
	waitStarted(t, sc, "customize")
	if err := os.MkdirAll(filepath.Join(s.svc.RunDir(id), "rootfs", "etc"), 0o700); err != nil {
		t.Fatal(err)
	}
	stop() // the server stops: River cancels the job's context
	if err := <-done; err == nil || !strings.Contains(err.Error(), "still Running") {
		t.Fatalf("RunBuild of a stopped server: %v", err)
	}
	p := s.run(t, id)
	if p.RunState != StateRunning || p.EndTime != nil || len(p.Steps) != 2 || p.Attempt != 1 {
		t.Fatalf("left for the next attempt: %+v", p)
	}
	select {
	case e := <-s.ends:
		t.Fatalf("an end was reported: %+v", e)
	default:
	}

	sc.set(nil, false)
	if err := s.svc.RunBuild(context.Background(), id, 2); err != nil {
		t.Fatal(err)
	}
	p = s.run(t, id)
	if p.RunState != StateSucceeded || p.Attempt != 2 || len(p.Steps) != 3 {
		t.Fatalf("the second attempt: %+v", p)
	}
	for _, st := range p.Steps {
		if st.State != StateSucceeded {
			t.Fatalf("a step of the first attempt is left: %+v", p.Steps)
		}
	}
	if _, err := os.Stat(filepath.Join(s.svc.RunDir(id), "rootfs")); !os.IsNotExist(err) {
		t.Fatalf("the first attempt's rootfs is left: %v", err)
	}
	log, _ := os.ReadFile(filepath.Join(s.svc.RunDir(id), "run.log"))
	for _, want := range []string{"this server stopped during the build", "attempt 2: the server that ran this build before stopped; starting it again", "removed rootfs"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("the log lacks %q:\n%s", want, log)
		}
	}
}

func TestCancelAndAbandonDispatchedRuns(t *testing.T) {
	sc := &script{started: make(chan string, 10)}
	dispatch := func(o *Options) { o.Dispatch = func(context.Context, resource.ID) error { return nil } }
	st, a := newEnv(t, sc, dispatch)
	b := newServer(t, st, sc, dispatch)
	if err := a.putTemplate(urlSource); err != nil {
		t.Fatal(errorText(err))
	}
	ctx := context.Background()

	// No server took it up yet: it ends at once, and a late RunBuild builds nothing.
	id := a.start(t, StartOptions{})
	if err := b.svc.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	if e := b.waitEnd(t); e.State != StateCanceled || e.Message != "cancelled while queued" {
		t.Fatalf("%+v", e)
	}
	if err := a.svc.RunBuild(ctx, id, 1); err != nil || len(sc.started) != 0 {
		t.Fatalf("a cancelled run built: %v", err)
	}

	// Taken up by one server, cancelled on the other.
	sc.set(nil, true)
	id = a.start(t, StartOptions{})
	done := make(chan error, 1)
	go func() { done <- a.svc.RunBuild(ctx, id, 1) }()
	waitStarted(t, sc, "customize")
	if err := b.svc.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p := a.run(t, id); p.RunState != StateCanceled || p.Message != "the run was cancelled" || p.FailedStep != "" && p.FailedStep != "customize" {
		t.Fatalf("cancelled across servers: %+v", p)
	}
	a.waitEnd(t)

	// A run whose job is gone is abandoned; Recover leaves dispatched runs alone.
	id = a.start(t, StartOptions{})
	if err := b.svc.Recover(ctx); err != nil || b.run(t, id).RunState != StateRunning {
		t.Fatalf("Recover ended a dispatched run: %v", err)
	}
	if err := b.svc.Abandon(ctx, id, "its job is gone"); err != nil {
		t.Fatal(err)
	}
	if p := b.run(t, id); p.RunState != StateFailed || p.Message != "its job is gone" || p.EndTime == nil {
		t.Fatalf("abandoned: %+v", p)
	}
	if e := b.waitEnd(t); e.State != StateFailed {
		t.Fatalf("%+v", e)
	}
	if err := b.svc.Abandon(ctx, id, "again"); err != nil || b.run(t, id).Message != "its job is gone" {
		t.Fatalf("abandoning an ended run: %v", err)
	}
	if err := b.svc.Abandon(ctx, tmplID.Child("runs", "none"), "x"); code(err) != CodeRunNotFound {
		t.Fatalf("abandoning a run that is not there: %v", err)
	}
}

// Without a job system, a server starting up ends the runs it left Running.
func TestRecoverWithoutDispatch(t *testing.T) {
	sc := &script{started: make(chan string, 10)}
	st, a := newEnv(t, sc, func(o *Options) { o.Dispatch = func(context.Context, resource.ID) error { return nil } })
	if err := a.putTemplate(urlSource); err != nil {
		t.Fatal(errorText(err))
	}
	id := a.start(t, StartOptions{})
	b := newServer(t, st, sc, nil)
	if err := b.svc.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p := b.run(t, id); p.RunState != StateFailed || p.Message != "the server stopped during the run; start it again" {
		t.Fatalf("%+v", p)
	}
}

// Inputs the starter gives are kept; missing ones are read as the build starts, and a
// failure to read them is logged without failing the run.
func TestRunInputs(t *testing.T) {
	sc := &script{started: make(chan string, 10)}
	var calls int
	var mu sync.Mutex
	_, s := newEnv(t, sc, func(o *Options) {
		o.Inputs = func(context.Context, *TemplateProperties) (Inputs, error) {
			mu.Lock()
			calls++
			mu.Unlock()
			return Inputs{}, errors.New("the sums file: 503 Service Unavailable")
		}
	})
	if err := s.putTemplate(urlSource); err != nil {
		t.Fatal(errorText(err))
	}
	given := &Inputs{TemplateDigest: "t", Base: "b"}
	id := s.start(t, StartOptions{Inputs: given})
	s.waitEnd(t)
	s.svc.Wait()
	if p := s.run(t, id); p.Inputs == nil || p.Inputs.Fingerprint() != given.Fingerprint() || calls != 0 {
		t.Fatalf("given inputs: %+v, %d reads", p.Inputs, calls)
	}
	if st := s.template(t).ScheduleStatus; st == nil || st.LastInputs != given.Fingerprint() || st.ConsecutiveFailures != 0 {
		t.Fatalf("a manual success remembers its inputs: %+v", st)
	}
	id = s.start(t, StartOptions{})
	if e := s.waitEnd(t); e.State != StateSucceeded {
		t.Fatalf("%+v", e)
	}
	s.svc.Wait()
	if p := s.run(t, id); p.Inputs != nil || calls != 1 {
		t.Fatalf("unreadable inputs: %+v, %d reads", p.Inputs, calls)
	}
	log, _ := os.ReadFile(filepath.Join(s.svc.RunDir(id), "run.log"))
	if !strings.Contains(string(log), "the run's inputs could not be read") || !strings.Contains(string(log), "503 Service Unavailable") {
		t.Fatalf("log:\n%s", log)
	}
	if st := s.template(t).ScheduleStatus; st.LastInputs != given.Fingerprint() {
		t.Fatalf("a run without inputs changed the last inputs: %+v", st)
	}
}
