package pipeline

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// Error codes of the pipeline, mapped to HTTP statuses by the API.
const (
	CodeRunInProgress = "ImageTemplateRunInProgress"
	CodeRunNotFound   = "ImageTemplateRunNotFound"
	CodeRunFinished   = "ImageTemplateRunFinished"
)

// Writer changes resources on the pipeline's own account, through the control plane.
type Writer interface {
	Put(ctx context.Context, r *resource.Resource) error
	Update(ctx context.Context, id resource.ID, mutate func(r *resource.Resource) (bool, error)) error
}

// Why a run started.
const (
	TriggerManual    = "manual"
	TriggerSchedule  = "schedule"
	TriggerBaseImage = "baseImage"
)

// Options configure a Service.
type Options struct {
	// Dir holds one directory per run: its log, console log, results and work files.
	Dir string
	// Steps makes a run's steps; the server gives the real builder, tests their own.
	Steps func(b *Build) []Step
	// Concurrent is how many runs build at once; 0 means 1 (a build uses the machine).
	Concurrent int
	Now        func() time.Time
	Logger     *slog.Logger
	// Dispatch, when set, hands a queued run to a durable job system, which calls
	// RunBuild on whichever server takes it; when nil, a run builds in a goroutine of the
	// server that started it.
	Dispatch func(ctx context.Context, run resource.ID) error
	// Inputs reads a run's inputs (Builder.Inputs) when the starter did not give them.
	Inputs func(ctx context.Context, p *TemplateProperties) (Inputs, error)
	// OnRunEnd is told once about each run whose end this server recorded.
	OnRunEnd func(ctx context.Context, e RunEnd)
}

// StartOptions say why a run starts.
type StartOptions struct {
	// Trigger is TriggerManual (also when empty), TriggerSchedule or TriggerBaseImage.
	Trigger string
	// ScheduledTime is the cron time a scheduled run is for.
	ScheduledTime *time.Time
	// Reason is why it started, written at the top of the run log and on the run.
	Reason string
	// Inputs are the run's inputs, when the caller has them (a schedule compared them
	// already); when nil and Options.Inputs is set they are read as the build starts,
	// and a failure to read them is logged, not fatal.
	Inputs *Inputs
}

// RunEnd is how a run ended, for Options.OnRunEnd.
type RunEnd struct {
	Template, Run                       resource.ID
	State, FailedStep, Message, Trigger string
	FailedChecks                        []string
	Outputs                             []Output
	StartTime, EndTime                  *time.Time
	// ScheduleDisabled is set when this failure disabled the template's schedule;
	// DisabledReason says why.
	ScheduleDisabled bool
	DisabledReason   string
}

// Service starts, follows and cancels runs.
type Service struct {
	store  store.Store
	writer Writer
	opts   Options
	now    func() time.Time
	log    *slog.Logger
	slots  chan struct{}
	// pollEvery is how often a build looks whether another server asked to cancel it.
	pollEvery time.Duration

	mu      sync.Mutex
	running map[string]context.CancelCauseFunc // run key → cancel
	wg      sync.WaitGroup
}

// Why a build's context ended, besides its timeout.
var (
	errCancelRequested = errors.New("the run was cancelled")
	errServerStopping  = errors.New("the server is stopping")
)

// New returns the pipeline over st.
func New(st store.Store, w Writer, opts Options) (*Service, error) {
	if opts.Dir == "" {
		return nil, errors.New("pipeline: a run directory is required")
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	s := &Service{store: st, writer: w, opts: opts, now: opts.Now, log: opts.Logger, running: map[string]context.CancelCauseFunc{}, pollEvery: 2 * time.Second}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	n := opts.Concurrent
	if n <= 0 {
		n = 1
	}
	s.slots = make(chan struct{}, n)
	return s, nil
}

// SetSteps sets Options.Steps, for a builder made after the service.
func (s *Service) SetSteps(f func(b *Build) []Step) { s.opts.Steps = f }

// CancelAll cancels every run, as a server shutting down does; each run's cleanup still
// runs (unmounts, QEMU killed) before Wait returns. A run built in a goroutine ends
// Canceled; a run taken up by RunBuild is left Running, for the job system to start again
// on another server.
func (s *Service) CancelAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cancel := range s.running {
		cancel(errServerStopping)
	}
}

// Wait blocks until every run this service started or took up has ended.
func (s *Service) Wait() { s.wg.Wait() }

// BeforeWrite checks and completes templates (a template cannot change while it runs,
// its schedule can), and leaves runs to the service itself, which it keeps from starting
// a second run of a template that is being built, whichever server starts it.
func (s *Service) BeforeWrite(ctx context.Context, tx store.Tx, _ *resource.Hierarchy, old, next *resource.Resource) (*resource.Resource, error) {
	isRun := strings.EqualFold(next.Type, TypeRun) || strings.EqualFold(next.Type, TypeRunOutput)
	switch {
	case internal(ctx):
		if old == nil && strings.EqualFold(next.Type, TypeRun) {
			// In the write's transaction, so that two servers starting a run of one
			// template at once cannot both succeed.
			id, err := resource.Parse(next.ID)
			if err != nil {
				return nil, err
			}
			if name, err := s.storedRunning(ctx, tx, id.Parent()); err != nil {
				return nil, err
			} else if name != "" {
				return nil, resource.Errorf(CodeRunInProgress, id.Parent().String(), "the template is already being built (%s)", name)
			}
		}
		return next, nil
	case isRun:
		return nil, resource.Errorf(resource.CodeMethodNotAllowed, next.ID, "runs and their outputs are made by gild; start a run with POST {templateId}/run")
	case !strings.EqualFold(next.Type, TypeTemplate):
		return next, nil
	}
	p, err := ParseTemplate(next.Properties)
	if err != nil {
		return nil, err
	}
	// What gild writes about the template is kept from the stored one; a client sending
	// it back (as a GET gave it) changes nothing.
	p.ProvisioningState, p.LastRunStatus, p.ScheduleStatus = "Succeeded", nil, nil
	if old != nil {
		var was TemplateProperties
		if json.Unmarshal(old.Properties, &was) == nil {
			p.LastRunStatus = was.LastRunStatus
			p.ScheduleStatus = scheduleWritten(was.Schedule, p.Schedule, was.ScheduleStatus)
			if was.LastRunStatus != nil && (was.LastRunStatus.RunState == StateRunning || was.LastRunStatus.RunState == StateCanceling) {
				// Only the schedule may change meanwhile: it is not what is being built. A
				// write that changes nothing at all is refused as before, so that a client
				// learns the template is busy.
				before, err := ParseTemplate(stripReadOnly(old.Properties))
				if err != nil || Digest(before) != Digest(p) || string(mustJSON(before.Schedule)) == string(mustJSON(p.Schedule)) {
					return nil, resource.Errorf(CodeRunInProgress, next.ID, "the template is being built; cancel the run or wait for it to end before changing the template (its schedule may change meanwhile)")
				}
			}
		}
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	next.Properties = raw
	return next, nil
}

// scheduleWritten is the schedule status after a user wrote schedule next over was. A
// schedule set or turned back on starts afresh: its failure count and why gild disabled
// it go. A new cron or zone counts from when it is next looked at, not from the old
// one's last time. Nothing is scheduled next while there is no enabled schedule.
func scheduleWritten(was, next *Schedule, st *ScheduleStatus) *ScheduleStatus {
	if st == nil {
		return nil
	}
	c := *st
	switch {
	case next == nil || next.Disabled:
		c.NextScheduledTime = nil
	case was == nil || was.Disabled:
		c.ConsecutiveFailures, c.DisabledReason, c.DisabledTime = 0, "", nil
		c.LastScheduledTime, c.NextScheduledTime = nil, nil
	case was.Cron != next.Cron || was.TimeZone != next.TimeZone:
		c.LastScheduledTime, c.NextScheduledTime = nil, nil
	}
	return &c
}

// AfterWrite, BeforeDelete, AfterDelete and Committed complete the control plane's hooks.
func (s *Service) AfterWrite(context.Context, store.Tx, *resource.Hierarchy, *resource.Resource) error {
	return nil
}

// BeforeDelete refuses to delete a template while it runs, here or on another server.
func (s *Service) BeforeDelete(ctx context.Context, tx store.Tx, _ *resource.Hierarchy, victim *resource.Resource) error {
	if !strings.EqualFold(victim.Type, TypeTemplate) {
		return nil
	}
	id, err := resource.Parse(victim.ID)
	if err != nil {
		return err
	}
	name := s.localRunning(id)
	if name == "" {
		if name, err = s.storedRunning(ctx, tx, id); err != nil {
			return err
		}
	}
	if name != "" {
		return resource.Errorf(CodeRunInProgress, victim.ID, "the template is being built (%s); cancel the run first", name)
	}
	return nil
}

func (s *Service) AfterDelete(context.Context, store.Tx, *resource.Hierarchy, *resource.Resource) error {
	return nil
}

func (s *Service) Committed(context.Context, []resource.ID) {}

type internalKey struct{}

func withInternal(ctx context.Context) context.Context {
	return context.WithValue(ctx, internalKey{}, true)
}
func internal(ctx context.Context) bool { v, _ := ctx.Value(internalKey{}).(bool); return v }

// Digest is the SHA-256 of a template's build inputs, in the tattoo and on each run, so
// that a schedule can tell whether the template changed. The schedule is not one of them.
func Digest(p *TemplateProperties) string {
	c := *p
	c.ProvisioningState, c.LastRunStatus = "", nil
	c.Schedule, c.ScheduleStatus = nil, nil
	raw, _ := json.Marshal(c)
	h := sha256.Sum256(raw)
	return hex.EncodeToString(h[:])
}

// localRunning names the run of tmpl this process is building, if any.
func (s *Service) localRunning(tmpl resource.ID) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key := range s.running {
		if strings.HasPrefix(key, tmpl.Key()+"/runs/") {
			return key[strings.LastIndex(key, "/")+1:]
		}
	}
	return ""
}

// storedRunning names a run of tmpl that the store shows Running or Canceling, if any:
// several servers share one store, and any of them may be building it.
func (s *Service) storedRunning(ctx context.Context, r store.Reader, tmpl resource.ID) (string, error) {
	runs, err := store.ListAll(ctx, r, store.ListQuery{Scopes: []resource.ID{tmpl}, Type: TypeRun})
	if err != nil {
		return "", fmt.Errorf("pipeline: list the runs of %s: %w", tmpl, err)
	}
	for _, run := range runs {
		var p RunProperties
		if json.Unmarshal(run.Properties, &p) == nil && p.EndTime == nil && (p.RunState == StateRunning || p.RunState == StateCanceling) {
			return run.Name, nil
		}
	}
	return "", nil
}

// Start queues a run of template tmpl, started by hand; see StartWith.
func (s *Service) Start(ctx context.Context, tmpl resource.ID) (*resource.Resource, error) {
	return s.StartWith(ctx, tmpl, StartOptions{})
}

// StartWith queues a run of template tmpl and returns its resource. Without
// Options.Dispatch the build goes on in the background here until it ends or is
// cancelled; with it, the run is handed to Dispatch, and a failure to hand it over ends
// the run Failed and is returned.
func (s *Service) StartWith(ctx context.Context, tmpl resource.ID, o StartOptions) (*resource.Resource, error) {
	dispatch := s.opts.Dispatch
	if dispatch == nil && s.opts.Steps == nil {
		return nil, errors.New("pipeline: this server has no image builder")
	}
	switch o.Trigger {
	case "":
		o.Trigger = TriggerManual
	case TriggerManual, TriggerSchedule, TriggerBaseImage:
	default:
		return nil, fmt.Errorf("pipeline: %q is not a trigger; use %s, %s or %s", o.Trigger, TriggerManual, TriggerSchedule, TriggerBaseImage)
	}
	res, err := s.store.Get(ctx, tmpl)
	if err != nil {
		return nil, err
	}
	p, err := ParseTemplate(stripReadOnly(res.Properties))
	if err != nil {
		return nil, err
	}
	// The write of the run checks again, in its transaction; this spares a run directory
	// and says so before anything is made.
	name := s.localRunning(tmpl)
	if name == "" {
		if name, err = s.storedRunning(ctx, s.store, tmpl); err != nil {
			return nil, err
		}
	}
	if name != "" {
		return nil, resource.Errorf(CodeRunInProgress, tmpl.String(), "the template is already being built (%s)", name)
	}
	now := s.now().UTC()
	name = now.Format("20060102T150405Z") + "-" + randomHex(2)
	runID := tmpl.Child("runs", name)
	props := RunProperties{RunState: StateRunning, RunSubState: SubQueued, StartTime: &now, TemplateDigest: Digest(p), Steps: []StepStatus{},
		Trigger: o.Trigger, Reason: o.Reason, ScheduledTime: o.ScheduledTime, Inputs: o.Inputs}
	var (
		base   context.Context
		cancel context.CancelCauseFunc
	)
	if dispatch == nil {
		// Built here, at once: taken up by this server already. Looking and registering
		// under one lock keeps two starts in this process from both going ahead.
		props.Attempt = 1
		base, cancel = context.WithCancelCause(context.Background())
		s.mu.Lock()
		for key := range s.running {
			if strings.HasPrefix(key, tmpl.Key()+"/runs/") {
				s.mu.Unlock()
				cancel(nil)
				return nil, resource.Errorf(CodeRunInProgress, tmpl.String(), "the template is already being built (%s)", key[strings.LastIndex(key, "/")+1:])
			}
		}
		s.running[runID.Key()] = cancel
		s.mu.Unlock()
	}
	// The log exists before the run is announced, so a client may follow it at once.
	log, err := s.openLog(runID)
	if err != nil {
		if cancel != nil {
			s.finish(runID, cancel)
		}
		return nil, fmt.Errorf("pipeline: start a run: %w", err)
	}
	writeHeader(log, tmpl, runID, props)
	run := &resource.Resource{ID: runID.String(), Name: name, Type: TypeRun, Properties: mustJSON(props)}
	if err := s.writer.Put(withInternal(ctx), run); err != nil {
		log.Printf("the run could not be recorded: %v", err)
		log.Close()
		if cancel != nil {
			s.finish(runID, cancel)
		}
		return nil, err
	}
	s.setLastRun(ctx, tmpl, RunStatus{StartTime: &now, RunState: StateRunning, RunSubState: SubQueued})
	if dispatch != nil {
		log.Printf("queued for a build server")
		log.Close()
		if err := dispatch(ctx, runID); err != nil {
			s.end(context.Background(), tmpl, runID, outcome{state: StateFailed, msg: fmt.Sprintf("the build could not be queued: %v", err), kept: []string{"run.log"}})
			return nil, fmt.Errorf("pipeline: queue the build of %s: %w", runID, err)
		}
	} else {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.execute(base, cancel, job{tmpl: tmpl, run: runID, p: p, log: log, needInputs: o.Inputs == nil})
		}()
	}
	stored, err := s.store.Get(ctx, runID)
	if err != nil {
		return run, nil
	}
	return stored, nil
}

// openLog opens (creating, or appending to) the run's log in its directory.
func (s *Service) openLog(runID resource.ID) (*Log, error) {
	dir := s.RunDir(runID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return OpenLog(filepath.Join(dir, "run.log"), s.now)
}

// writeHeader writes the run log's first lines: which run, and why it started.
func writeHeader(log *Log, tmpl, runID resource.ID, p RunProperties) {
	log.Printf("run %s of %s", runID.Name(), tmpl)
	by := "started by " + orDefault(p.Trigger, TriggerManual)
	if p.ScheduledTime != nil {
		by += " for " + p.ScheduledTime.UTC().Format(time.RFC3339)
	}
	log.Printf("%s", by)
	if p.Reason != "" {
		log.Printf("why: %s", p.Reason)
	}
}

func (s *Service) finish(runID resource.ID, cancel context.CancelCauseFunc) {
	cancel(nil)
	s.mu.Lock()
	delete(s.running, runID.Key())
	s.mu.Unlock()
}

// Cancel stops run id (or the template's running run, when id is a template). A run this
// process builds stops at once; a run another server builds is marked Canceling, which
// that server sees within seconds and stops; a run no server has taken up yet ends
// Canceled at once.
func (s *Service) Cancel(ctx context.Context, id resource.ID) error {
	isRun := strings.EqualFold(id.Type(), TypeRun)
	// A run whose end is already recorded is over, though its goroutine may still be
	// closing its log: cancelling it does nothing, and the caller is told so.
	if isRun {
		if r, err := s.store.Get(ctx, id); err == nil {
			var p RunProperties
			if json.Unmarshal(r.Properties, &p) == nil && p.EndTime != nil {
				return resource.Errorf(CodeRunFinished, id.String(), "the run has ended (%s)", p.RunState)
			}
		}
	}
	s.mu.Lock()
	for key, cancel := range s.running {
		if key == id.Key() || strings.HasPrefix(key, id.Key()+"/runs/") {
			cancel(errCancelRequested)
			s.mu.Unlock()
			return nil
		}
	}
	s.mu.Unlock()
	if _, err := s.store.Get(ctx, id); err != nil {
		if store.IsNotFound(err) {
			return resource.Errorf(CodeRunNotFound, id.String(), "%s does not exist", id)
		}
		return err
	}
	var open []resource.ID
	if isRun {
		open = append(open, id)
	} else {
		runs, err := store.ListAll(ctx, s.store, store.ListQuery{Scopes: []resource.ID{id}, Type: TypeRun})
		if err != nil {
			return fmt.Errorf("pipeline: list the runs of %s: %w", id, err)
		}
		for _, r := range runs {
			if rid, err := resource.Parse(r.ID); err == nil {
				open = append(open, rid)
			}
		}
	}
	cancelled := false
	for _, run := range open {
		ok, err := s.cancelElsewhere(ctx, run)
		if err != nil {
			return err
		}
		cancelled = cancelled || ok
	}
	if !cancelled {
		return resource.Errorf(CodeRunFinished, id.String(), "nothing is running there")
	}
	return nil
}

// cancelElsewhere cancels a run this process is not building: one that no server has
// taken up ends now; one that a server builds is marked Canceling for it to stop.
func (s *Service) cancelElsewhere(ctx context.Context, run resource.ID) (bool, error) {
	if s.endIf(ctx, run.Parent(), run, outcome{state: StateCanceled, msg: "cancelled while queued", kept: []string{"run.log"}}, func(p *RunProperties) bool {
		return p.RunState == StateRunning && p.Attempt == 0
	}) {
		return true, nil
	}
	marked := false
	err := s.updateRunIf(ctx, run, func(p *RunProperties) bool {
		marked = p.EndTime == nil && (p.RunState == StateRunning || p.RunState == StateCanceling)
		if !marked || p.RunState == StateCanceling {
			return false
		}
		p.RunState = StateCanceling
		return true
	})
	if err != nil {
		return false, fmt.Errorf("pipeline: cancel %s: %w", run, err)
	}
	if marked {
		s.log.Info("pipeline: asked the server building a run to cancel it", "run", run.String())
	}
	return marked, nil
}

// RunDir is where run id keeps its files.
func (s *Service) RunDir(id resource.ID) string {
	h := sha256.Sum256([]byte(id.Key()))
	return filepath.Join(s.opts.Dir, id.Name()+"-"+hex.EncodeToString(h[:4]))
}

// Running reports whether run id is still going in this process.
func (s *Service) Running(id resource.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.running[id.Key()]
	return ok
}

// RunBuild builds run (queued by StartWith with Options.Dispatch) to its end in this
// process, and returns once its end is recorded (nil) or when it cannot be built for a
// reason outside the run (an error, for the job system to try again). A run that has
// ended already returns nil at once.
//
// attempt counts the servers that took the run up, from 1: above 1, a server stopped
// during the build, and this one clears what that left here and builds from the start.
// If ctx ends, or CancelAll is called, before the build does, the build stops, its
// cleanups run, and the run is left Running for the next attempt; the error says so.
func (s *Service) RunBuild(ctx context.Context, run resource.ID, attempt int) error {
	if s.opts.Steps == nil {
		return errors.New("pipeline: this server has no image builder")
	}
	if !strings.EqualFold(run.Type(), TypeRun) {
		return fmt.Errorf("pipeline: %s is not a run", run)
	}
	attempt = max(attempt, 1)
	r, err := s.store.Get(ctx, run)
	if err != nil {
		return fmt.Errorf("pipeline: build %s: %w", run, err)
	}
	var rp RunProperties
	if err := json.Unmarshal(r.Properties, &rp); err != nil {
		return fmt.Errorf("pipeline: build %s: %w", run, err)
	}
	if rp.EndTime != nil {
		return nil
	}
	tmpl := run.Parent()
	base, cancel := context.WithCancelCause(ctx)
	s.mu.Lock()
	if _, dup := s.running[run.Key()]; dup {
		s.mu.Unlock()
		cancel(nil)
		return fmt.Errorf("pipeline: %s is already being built by this server", run)
	}
	s.running[run.Key()] = cancel
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	// Taking the run up is a write, so that a Cancel deciding whether anyone took it
	// up and this server cannot both win.
	ended, canceling := false, false
	err = s.updateRunIf(ctx, run, func(p *RunProperties) bool {
		if p.EndTime != nil {
			ended = true
			return false
		}
		rp = *p
		canceling = p.RunState == StateCanceling
		p.Attempt = attempt
		if attempt > 1 {
			p.Steps, p.RunSubState = []StepStatus{}, SubQueued
		}
		return true
	})
	if err != nil || ended {
		s.finish(run, cancel)
		if err != nil {
			return fmt.Errorf("pipeline: take up %s: %w", run, err)
		}
		return nil
	}
	fresh := false
	if _, err := os.Stat(filepath.Join(s.RunDir(run), "run.log")); errors.Is(err, os.ErrNotExist) {
		fresh = true // started by another server: its log is there
	}
	log, err := s.openLog(run)
	if err != nil {
		s.finish(run, cancel)
		return fmt.Errorf("pipeline: build %s: %w", run, err)
	}
	if fresh {
		writeHeader(log, tmpl, run, rp)
	}
	if attempt > 1 {
		log.Printf("attempt %d: the server that ran this build before stopped; starting it again", attempt)
		for _, did := range clearLeftovers(ctx, s.RunDir(run)) {
			log.Printf("after the stopped attempt: %s", did)
		}
	}
	failNow := func(state, msg string) error {
		log.Printf("%s", msg)
		log.Close()
		s.finish(run, cancel)
		s.end(context.WithoutCancel(ctx), tmpl, run, outcome{state: state, msg: msg, kept: []string{"run.log"}})
		return nil
	}
	if canceling {
		return failNow(StateCanceled, "cancelled while queued")
	}
	res, err := s.store.Get(ctx, tmpl)
	if store.IsNotFound(err) {
		return failNow(StateFailed, "the template no longer exists")
	}
	if err != nil {
		log.Close()
		s.finish(run, cancel)
		return fmt.Errorf("pipeline: build %s: %w", run, err)
	}
	p, err := ParseTemplate(stripReadOnly(res.Properties))
	if err != nil {
		return failNow(StateFailed, fmt.Sprintf("the template cannot be built: %v", err))
	}
	if Digest(p) != rp.TemplateDigest {
		log.Printf("note: the template changed since the run was queued (digest %s, queued with %s)", short(Digest(p)), short(rp.TemplateDigest))
	}
	if s.execute(base, cancel, job{tmpl: tmpl, run: run, p: p, log: log, durable: true, attempt: attempt, needInputs: rp.Inputs == nil}) {
		return fmt.Errorf("pipeline: the build of %s stopped before its end (%v); it is still Running, for another attempt", run, context.Cause(base))
	}
	return nil
}

func short(digest string) string { return digest[:min(12, len(digest))] }

// job is one build, as execute runs it.
type job struct {
	tmpl, run resource.ID
	p         *TemplateProperties
	log       *Log
	// durable: taken up by RunBuild for a job system, which starts it again elsewhere
	// if this server stops during it.
	durable bool
	attempt int
	// needInputs: the run has no inputs yet; they are read as the build starts.
	needInputs bool
}

// execute builds j in base (registered in s.running with cancel) and records its end.
// It reports true, and records nothing, when a durable build stopped because its server
// did: the job system starts it again.
func (s *Service) execute(base context.Context, cancel context.CancelCauseFunc, j job) (interrupted bool) {
	defer s.finish(j.run, cancel)
	defer j.log.Close()
	bg := context.Background()
	log, dir := j.log, s.RunDir(j.run)
	stopWatch := s.watchCancel(base, cancel, j.run, log)
	defer stopWatch()
	stopped := func() bool {
		return j.durable && !errors.Is(context.Cause(base), errCancelRequested)
	}
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	case <-base.Done():
		if stopped() {
			log.Printf("this server stopped before the build started (%v); it will start again", context.Cause(base))
			return true
		}
		s.end(bg, j.tmpl, j.run, outcome{state: StateCanceled, msg: "cancelled while queued", kept: []string{"run.log"}})
		return false
	}
	ctx, stop := context.WithTimeout(base, j.p.Timeout())
	defer stop()
	if j.needInputs && s.opts.Inputs != nil {
		in, err := s.opts.Inputs(ctx, j.p)
		if err != nil {
			log.Printf("the run's inputs could not be read, so a \"changed\" schedule cannot compare it with later ones: %v", err)
		} else {
			_ = s.updateRun(bg, j.run, func(p *RunProperties) { p.Inputs = &in })
			log.Printf("inputs %s: template %s, base %s, %d downloaded files", short(in.Fingerprint()), short(in.TemplateDigest), in.Base, len(in.Files))
		}
	}
	b := &Build{RunID: j.run.String(), TemplateID: j.tmpl.String(), Template: j.p, Dir: dir, Log: log}
	rec := &runRecorder{s: s, id: j.run, tmpl: j.tmpl}
	err := Execute(ctx, b, s.opts.Steps(b), rec, s.now)
	kept := []string{"run.log"}
	if _, e := os.Stat(filepath.Join(dir, "console.log")); e == nil {
		kept = append(kept, "console.log")
	}
	o := outcome{b: b, kept: kept}
	var se *StepError
	switch {
	case err == nil:
		o.state = StateSucceeded
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		o.state, o.step, o.msg = StateFailed, stepOf(err), fmt.Sprintf("the build ran past its %d-minute timeout", j.p.BuildTimeoutInMinutes)
	case ctx.Err() != nil:
		if stopped() {
			log.Printf("this server stopped during the build (%v); it will start again from the beginning", context.Cause(base))
			return true
		}
		o.state, o.step, o.msg = StateCanceled, stepOf(err), "the run was cancelled"
	case errors.As(err, &se):
		if b.Keep {
			if entries, e := os.ReadDir(dir); e == nil {
				for _, en := range entries {
					if n := en.Name(); n != "run.log" && n != "console.log" {
						o.kept = append(o.kept, n)
					}
				}
			}
		}
		o.state, o.step, o.msg, o.checks = StateFailed, se.Step, se.Error(), se.Checks
		if len(b.Outputs) > 0 {
			o.state = StatePartiallySucceeded
		}
	default:
		o.state, o.msg = StateFailed, err.Error()
	}
	s.end(bg, j.tmpl, j.run, o)
	return false
}

// watchCancel looks at the run's record every pollEvery until stopped, and cancels the
// build when another server marked it Canceling.
func (s *Service) watchCancel(base context.Context, cancel context.CancelCauseFunc, run resource.ID, log *Log) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(s.pollEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-base.Done():
				return
			case <-t.C:
			}
			r, err := s.store.Get(context.WithoutCancel(base), run)
			if err != nil {
				continue
			}
			var p RunProperties
			if json.Unmarshal(r.Properties, &p) == nil && p.RunState == StateCanceling {
				log.Printf("cancel requested")
				cancel(errCancelRequested)
				return
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func stepOf(err error) string {
	var se *StepError
	if errors.As(err, &se) {
		return se.Step
	}
	return ""
}

// outcome is how a run ended.
type outcome struct {
	state, step, msg string
	checks           []string
	kept             []string
	b                *Build
}

// end records how a run ended, on the run and on the template, once: it reports false,
// and does nothing, when the run's end is recorded already.
func (s *Service) end(ctx context.Context, tmpl, runID resource.ID, o outcome) bool {
	return s.endIf(ctx, tmpl, runID, o, nil)
}

// endIf is end when cond (if given) holds for the run as stored, decided in the write
// that records the end.
func (s *Service) endIf(ctx context.Context, tmpl, runID resource.ID, o outcome, cond func(p *RunProperties) bool) bool {
	now := s.now().UTC()
	var rec RunProperties
	recorded := false
	err := s.updateRunIf(ctx, runID, func(p *RunProperties) bool {
		recorded = false
		if p.EndTime != nil || (cond != nil && !cond(p)) {
			return false
		}
		p.RunState, p.RunSubState, p.Message, p.EndTime = o.state, "", o.msg, &now
		p.FailedStep, p.FailedChecks, p.Kept = o.step, o.checks, o.kept
		// A step a dead server left Running ended with the run.
		for i := range p.Steps {
			if st := &p.Steps[i]; st.State == StateRunning {
				st.State, st.EndTime = o.state, &now
				if st.StartTime != nil {
					st.DurationSec = now.Sub(*st.StartTime).Seconds()
				}
				if p.FailedStep == "" {
					p.FailedStep = st.Name
				}
			}
		}
		if b := o.b; b != nil {
			if b.Source != (ResolvedSource{}) {
				src := b.Source
				p.Source = &src
			}
			p.Validation, p.Outputs = b.Validation, b.Outputs
		}
		rec, recorded = *p, true
		return true
	})
	if err != nil {
		s.log.Warn("pipeline: record the end of a run", "run", runID.String(), "err", err)
		return false
	}
	if !recorded {
		return false
	}
	disabled, reason := s.recordOnTemplate(ctx, tmpl, runID, rec)
	s.log.Info("pipeline: run ended", "run", runID.String(), "state", rec.RunState, "step", rec.FailedStep, "message", rec.Message)
	if s.opts.OnRunEnd != nil {
		s.opts.OnRunEnd(ctx, RunEnd{Template: tmpl, Run: runID, State: rec.RunState, FailedStep: rec.FailedStep, Message: rec.Message,
			Trigger: orDefault(rec.Trigger, TriggerManual), FailedChecks: rec.FailedChecks, Outputs: rec.Outputs, StartTime: rec.StartTime,
			EndTime: rec.EndTime, ScheduleDisabled: disabled, DisabledReason: reason})
	}
	return true
}

// recordOnTemplate writes a run's end on its template in one write: the last run's
// status, and the schedule's accounting. A failed (or partly succeeded) run that a
// schedule or a new base image started counts as a failure in a row, and the failure
// that reaches the schedule's limit disables it; such a run that succeeded clears the
// count; a cancelled one leaves it. Any succeeded run remembers its inputs, so that a
// "changed" schedule compares with what was built last.
func (s *Service) recordOnTemplate(ctx context.Context, tmpl, runID resource.ID, rec RunProperties) (disabled bool, reason string) {
	scheduled := rec.Trigger == TriggerSchedule || rec.Trigger == TriggerBaseImage
	err := s.updateTemplate(ctx, tmpl, func(m map[string]json.RawMessage) error {
		disabled, reason = false, ""
		m["lastRunStatus"] = mustJSON(RunStatus{StartTime: rec.StartTime, EndTime: rec.EndTime, RunState: rec.RunState, Message: rec.Message})
		var sched *Schedule
		var st *ScheduleStatus
		if err := unmarshalField(m, "schedule", &sched); err != nil {
			return err
		}
		if err := unmarshalField(m, "scheduleStatus", &st); err != nil {
			return err
		}
		status := func() *ScheduleStatus {
			if st == nil {
				st = &ScheduleStatus{}
			}
			return st
		}
		switch rec.RunState {
		case StateSucceeded:
			if rec.Inputs != nil {
				status().LastInputs = rec.Inputs.Fingerprint()
			}
			if scheduled && st != nil {
				st.ConsecutiveFailures = 0
			}
		case StateFailed, StatePartiallySucceeded:
			if !scheduled {
				break
			}
			n := status().ConsecutiveFailures + 1
			st.ConsecutiveFailures = n
			limit := DefaultMaxConsecutiveFailures
			if sched != nil && sched.MaxConsecutiveFailures > 0 {
				limit = sched.MaxConsecutiveFailures
			}
			if sched == nil || sched.Disabled || n < limit {
				break
			}
			reason = disabledReason(n, runID.Name(), rec)
			now := s.now().UTC()
			sched.Disabled, st.DisabledReason, st.DisabledTime, st.NextScheduledTime = true, reason, &now, nil
			m["schedule"] = mustJSON(sched)
			disabled = true
		}
		if st != nil {
			m["scheduleStatus"] = mustJSON(st)
		}
		return nil
	})
	if err != nil {
		s.log.Warn("pipeline: record the end of a run on its template", "template", tmpl.String(), "err", err)
		return false, ""
	}
	if disabled {
		s.log.Warn("pipeline: schedule disabled", "template", tmpl.String(), "reason", reason)
	}
	return disabled, reason
}

func disabledReason(n int, run string, rec RunProperties) string {
	runs := "runs"
	if n == 1 {
		runs = "run"
	}
	msg := strings.TrimPrefix(rec.Message, rec.FailedStep+": ")
	at := ""
	if rec.FailedStep != "" {
		at = " at step " + rec.FailedStep
	}
	return fmt.Sprintf("the schedule was disabled after %d scheduled %s failed in a row; the last (%s) failed%s: %s", n, runs, run, at, msg)
}

func unmarshalField(m map[string]json.RawMessage, key string, v any) error {
	raw, ok := m[key]
	if !ok || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// UpdateScheduleStatus changes the schedule status of template tmpl (creating it when
// there is none) in one write, for the job system that runs schedules. Nothing is written
// when change changes nothing.
func (s *Service) UpdateScheduleStatus(ctx context.Context, tmpl resource.ID, change func(st *ScheduleStatus)) error {
	if !strings.EqualFold(tmpl.Type(), TypeTemplate) {
		return fmt.Errorf("pipeline: %s is not an image template", tmpl)
	}
	return s.updateTemplate(ctx, tmpl, func(m map[string]json.RawMessage) error {
		var st ScheduleStatus
		if err := unmarshalField(m, "scheduleStatus", &st); err != nil {
			return err
		}
		before := mustJSON(st)
		change(&st)
		after := mustJSON(st)
		if string(before) == string(after) {
			return errUnchanged
		}
		m["scheduleStatus"] = after
		return nil
	})
}

// errUnchanged tells updateTemplate that there is nothing to write.
var errUnchanged = errors.New("unchanged")

// updateTemplate changes the template's stored properties, kept as they are except for
// the fields change sets; change may run more than once, on a fresh read each time.
func (s *Service) updateTemplate(ctx context.Context, tmpl resource.ID, change func(m map[string]json.RawMessage) error) error {
	return s.writer.Update(withInternal(ctx), tmpl, func(r *resource.Resource) (bool, error) {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(r.Properties, &m); err != nil {
			return false, err
		}
		if m == nil {
			m = map[string]json.RawMessage{}
		}
		if err := change(m); err != nil {
			if errors.Is(err, errUnchanged) {
				return false, nil
			}
			return false, err
		}
		r.Properties = mustJSON(m)
		return true, nil
	})
}

func (s *Service) updateRun(ctx context.Context, id resource.ID, change func(p *RunProperties)) error {
	return s.updateRunIf(ctx, id, func(p *RunProperties) bool { change(p); return true })
}

// updateRunIf changes the run's record when change reports a change.
func (s *Service) updateRunIf(ctx context.Context, id resource.ID, change func(p *RunProperties) bool) error {
	return s.writer.Update(withInternal(ctx), id, func(r *resource.Resource) (bool, error) {
		var p RunProperties
		if err := json.Unmarshal(r.Properties, &p); err != nil {
			return false, err
		}
		if !change(&p) {
			return false, nil
		}
		r.Properties = mustJSON(p)
		return true, nil
	})
}

func (s *Service) setLastRun(ctx context.Context, tmpl resource.ID, st RunStatus) {
	err := s.updateTemplate(ctx, tmpl, func(m map[string]json.RawMessage) error {
		m["lastRunStatus"] = mustJSON(st)
		return nil
	})
	if err != nil {
		s.log.Warn("pipeline: record the template's last run", "template", tmpl.String(), "err", err)
	}
}

// runRecorder writes each step's progress into the run resource.
type runRecorder struct {
	s        *Service
	id, tmpl resource.ID
}

func (r *runRecorder) StepStarted(st StepStatus) {
	_ = r.s.updateRun(context.Background(), r.id, func(p *RunProperties) {
		p.RunSubState = st.SubState
		p.Steps = append(p.Steps, st)
	})
	r.s.setLastRun(context.Background(), r.tmpl, RunStatus{StartTime: st.StartTime, RunState: StateRunning, RunSubState: st.SubState})
}

func (r *runRecorder) StepEnded(st StepStatus) {
	_ = r.s.updateRun(context.Background(), r.id, func(p *RunProperties) {
		for i := range p.Steps {
			if p.Steps[i].Name == st.Name {
				p.Steps[i] = st
			}
		}
	})
}

// Abandon ends a run that no server will finish, Failed with message, after clearing
// what it left on this machine (its validation VM, its chroot's processes and mounts,
// its work files; the logs stay). The job system calls it for runs whose job is gone.
// A run that has ended already is left as it is.
func (s *Service) Abandon(ctx context.Context, run resource.ID, message string) error {
	if s.Running(run) {
		return resource.Errorf(CodeRunInProgress, run.String(), "the run is being built by this server")
	}
	r, err := s.store.Get(ctx, run)
	if store.IsNotFound(err) {
		return resource.Errorf(CodeRunNotFound, run.String(), "%s does not exist", run)
	}
	if err != nil {
		return err
	}
	var p RunProperties
	if err := json.Unmarshal(r.Properties, &p); err != nil {
		return fmt.Errorf("pipeline: read %s: %w", run, err)
	}
	if p.EndTime != nil {
		return nil
	}
	dir := s.RunDir(run)
	var log *Log
	if _, err := os.Stat(dir); err == nil {
		log, _ = OpenLog(filepath.Join(dir, "run.log"), s.now)
	}
	for _, did := range clearLeftovers(ctx, dir) {
		s.log.Warn("pipeline: after a stopped run", "run", run.String(), "did", did)
		if log != nil {
			log.Printf("after the stopped run: %s", did)
		}
	}
	if log != nil {
		log.Printf("%s", message)
		log.Close()
	}
	s.end(ctx, run.Parent(), run, outcome{state: StateFailed, msg: message, kept: []string{"run.log"}})
	return nil
}

// Recover marks the runs a stopped server left Running as Failed, since their build
// processes died with it. With Options.Dispatch it does nothing: the job system starts
// such runs again on another server, or abandons them (Abandon) when their job is gone,
// and runs that other servers are building are not this server's to end.
func (s *Service) Recover(ctx context.Context) error {
	if s.opts.Dispatch != nil {
		return nil
	}
	runs, err := store.ListAll(ctx, s.store, store.ListQuery{Type: TypeRun})
	if err != nil {
		return fmt.Errorf("pipeline: recover runs: %w", err)
	}
	for _, r := range runs {
		var p RunProperties
		if json.Unmarshal(r.Properties, &p) != nil || p.EndTime != nil || (p.RunState != StateRunning && p.RunState != StateCanceling) {
			continue
		}
		id, err := resource.Parse(r.ID)
		if err != nil || s.Running(id) {
			continue
		}
		if err := s.Abandon(ctx, id, "the server stopped during the run; start it again"); err != nil {
			s.log.Warn("pipeline: end a run the stopped server left", "run", id.String(), "err", err)
		}
	}
	return nil
}

func stripReadOnly(raw json.RawMessage) json.RawMessage {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return raw
	}
	delete(m, "provisioningState")
	delete(m, "lastRunStatus")
	delete(m, "scheduleStatus")
	return mustJSON(m)
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("pipeline: marshal: %v", err))
	}
	return b
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
