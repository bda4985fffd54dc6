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
}

// Service starts, follows and cancels runs.
type Service struct {
	store  store.Store
	writer Writer
	opts   Options
	now    func() time.Time
	log    *slog.Logger
	slots  chan struct{}

	mu      sync.Mutex
	running map[string]context.CancelFunc // run key → cancel
	wg      sync.WaitGroup
}

// New returns the pipeline over st.
func New(st store.Store, w Writer, opts Options) (*Service, error) {
	if opts.Dir == "" {
		return nil, errors.New("pipeline: a run directory is required")
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	s := &Service{store: st, writer: w, opts: opts, now: opts.Now, log: opts.Logger, running: map[string]context.CancelFunc{}}
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
// runs (unmounts, QEMU killed) before Wait returns.
func (s *Service) CancelAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cancel := range s.running {
		cancel()
	}
}

// Wait blocks until every run this service started has ended.
func (s *Service) Wait() { s.wg.Wait() }

// BeforeWrite checks and completes templates (a template cannot change while it runs),
// and leaves runs to the service itself.
func (s *Service) BeforeWrite(ctx context.Context, tx store.Tx, _ *resource.Hierarchy, old, next *resource.Resource) (*resource.Resource, error) {
	isRun := strings.EqualFold(next.Type, TypeRun) || strings.EqualFold(next.Type, TypeRunOutput)
	switch {
	case internal(ctx):
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
	p.ProvisioningState, p.LastRunStatus = "Succeeded", nil
	if old != nil {
		var was TemplateProperties
		if json.Unmarshal(old.Properties, &was) == nil {
			p.LastRunStatus = was.LastRunStatus
			if was.LastRunStatus != nil && (was.LastRunStatus.RunState == StateRunning || was.LastRunStatus.RunState == StateCanceling) {
				return nil, resource.Errorf(CodeRunInProgress, next.ID, "the template is being built; cancel the run or wait for it to end before changing the template")
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

// AfterWrite, BeforeDelete, AfterDelete and Committed complete the control plane's hooks.
func (s *Service) AfterWrite(context.Context, store.Tx, *resource.Hierarchy, *resource.Resource) error {
	return nil
}

// BeforeDelete refuses to delete a template while it runs.
func (s *Service) BeforeDelete(_ context.Context, _ store.Tx, _ *resource.Hierarchy, victim *resource.Resource) error {
	if strings.EqualFold(victim.Type, TypeTemplate) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for key := range s.running {
			if strings.HasPrefix(key, strings.ToLower(victim.ID)+"/runs/") {
				return resource.Errorf(CodeRunInProgress, victim.ID, "the template is being built; cancel the run first")
			}
		}
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
// that a schedule can tell whether the template changed.
func Digest(p *TemplateProperties) string {
	c := *p
	c.ProvisioningState, c.LastRunStatus = "", nil
	raw, _ := json.Marshal(c)
	h := sha256.Sum256(raw)
	return hex.EncodeToString(h[:])
}

// Start queues a run of template tmpl and returns its resource; the build goes on in the
// background until it ends or is cancelled.
func (s *Service) Start(ctx context.Context, tmpl resource.ID) (*resource.Resource, error) {
	if s.opts.Steps == nil {
		return nil, errors.New("pipeline: this server has no image builder")
	}
	res, err := s.store.Get(ctx, tmpl)
	if err != nil {
		return nil, err
	}
	p, err := ParseTemplate(stripReadOnly(res.Properties))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	for key := range s.running {
		if strings.HasPrefix(key, strings.ToLower(tmpl.String())+"/runs/") {
			s.mu.Unlock()
			return nil, resource.Errorf(CodeRunInProgress, tmpl.String(), "the template is already being built (%s)", key[strings.LastIndex(key, "/")+1:])
		}
	}
	now := s.now().UTC()
	name := now.Format("20060102T150405Z") + "-" + randomHex(2)
	runID := tmpl.Child("runs", name)
	runCtx, cancel := context.WithTimeout(context.Background(), p.Timeout())
	s.running[strings.ToLower(runID.String())] = cancel
	s.mu.Unlock()

	// The log exists before the run is announced, so a client may follow it at once.
	dir := s.RunDir(runID)
	var log *Log
	err = os.MkdirAll(dir, 0o700)
	if err == nil {
		log, err = OpenLog(filepath.Join(dir, "run.log"), s.now)
	}
	if err != nil {
		s.finish(runID, cancel)
		return nil, fmt.Errorf("pipeline: start a run: %w", err)
	}
	props := RunProperties{RunState: StateRunning, RunSubState: SubQueued, StartTime: &now, TemplateDigest: Digest(p), Steps: []StepStatus{}}
	run := &resource.Resource{ID: runID.String(), Name: name, Type: TypeRun, Properties: mustJSON(props)}
	if err := s.writer.Put(withInternal(ctx), run); err != nil {
		log.Close()
		s.finish(runID, cancel)
		return nil, err
	}
	s.setLastRun(ctx, tmpl, RunStatus{StartTime: &now, RunState: StateRunning, RunSubState: SubQueued})
	s.wg.Add(1)
	go s.build(runCtx, cancel, tmpl, runID, p, log)
	stored, err := s.store.Get(ctx, runID)
	if err != nil {
		return run, nil
	}
	return stored, nil
}

func (s *Service) finish(runID resource.ID, cancel context.CancelFunc) {
	cancel()
	s.mu.Lock()
	delete(s.running, strings.ToLower(runID.String()))
	s.mu.Unlock()
}

// Cancel stops run id (or the template's running run, when id is a template).
func (s *Service) Cancel(ctx context.Context, id resource.ID) error {
	// A run whose end is already recorded is over, though its goroutine may still be
	// closing its log: cancelling it does nothing, and the caller is told so.
	if strings.EqualFold(id.Type(), TypeRun) {
		if r, err := s.store.Get(ctx, id); err == nil {
			var p RunProperties
			if json.Unmarshal(r.Properties, &p) == nil && p.EndTime != nil {
				return resource.Errorf(CodeRunFinished, id.String(), "the run has ended (%s)", p.RunState)
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, cancel := range s.running {
		if key == strings.ToLower(id.String()) || strings.HasPrefix(key, strings.ToLower(id.String())+"/runs/") {
			cancel()
			return nil
		}
	}
	if _, err := s.store.Get(ctx, id); err != nil {
		return resource.Errorf(CodeRunNotFound, id.String(), "%s does not exist", id)
	}
	return resource.Errorf(CodeRunFinished, id.String(), "nothing is running there")
}

// RunDir is where run id keeps its files.
func (s *Service) RunDir(id resource.ID) string {
	h := sha256.Sum256([]byte(strings.ToLower(id.String())))
	return filepath.Join(s.opts.Dir, id.Name()+"-"+hex.EncodeToString(h[:4]))
}

// Running reports whether run id is still going.
func (s *Service) Running(id resource.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.running[strings.ToLower(id.String())]
	return ok
}

func (s *Service) build(ctx context.Context, cancel context.CancelFunc, tmpl, runID resource.ID, p *TemplateProperties, log *Log) {
	defer s.wg.Done()
	defer s.finish(runID, cancel)
	defer log.Close()
	bg := context.Background()
	dir := s.RunDir(runID)
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	case <-ctx.Done():
		s.end(bg, tmpl, runID, StateCanceled, "", "cancelled while queued", nil, nil)
		return
	}
	b := &Build{RunID: runID.String(), TemplateID: tmpl.String(), Template: p, Dir: dir, Log: log}
	log.Printf("run %s of %s", runID.Name(), tmpl)
	rec := &runRecorder{s: s, id: runID, tmpl: tmpl}
	err := Execute(ctx, b, s.opts.Steps(b), rec, s.now)
	kept := []string{"run.log"}
	if _, e := os.Stat(filepath.Join(dir, "console.log")); e == nil {
		kept = append(kept, "console.log")
	}
	var se *StepError
	switch {
	case err == nil:
		s.end(bg, tmpl, runID, StateSucceeded, "", "", b, kept)
	case errors.Is(err, context.DeadlineExceeded):
		s.end(bg, tmpl, runID, StateFailed, stepOf(err), fmt.Sprintf("the build ran past its %d-minute timeout", p.BuildTimeoutInMinutes), b, kept)
	case errors.Is(err, context.Canceled):
		s.end(bg, tmpl, runID, StateCanceled, stepOf(err), "the run was cancelled", b, kept)
	case errors.As(err, &se):
		if b.Keep {
			if entries, e := os.ReadDir(dir); e == nil {
				for _, en := range entries {
					if n := en.Name(); n != "run.log" && n != "console.log" {
						kept = append(kept, n)
					}
				}
			}
		}
		state := StateFailed
		if len(b.Outputs) > 0 {
			state = StatePartiallySucceeded
		}
		s.end(bg, tmpl, runID, state, se.Step, se.Error(), b, kept, se.Checks...)
	default:
		s.end(bg, tmpl, runID, StateFailed, "", err.Error(), b, kept)
	}
}

func stepOf(err error) string {
	var se *StepError
	if errors.As(err, &se) {
		return se.Step
	}
	return ""
}

// end records how a run ended, on the run and on the template.
func (s *Service) end(ctx context.Context, tmpl, runID resource.ID, state, step, msg string, b *Build, kept []string, checks ...string) {
	now := s.now().UTC()
	err := s.updateRun(ctx, runID, func(p *RunProperties) {
		p.RunState, p.RunSubState, p.Message, p.EndTime = state, "", msg, &now
		p.FailedStep, p.FailedChecks, p.Kept = step, checks, kept
		// A step a dead server left Running ended with the run.
		for i := range p.Steps {
			if st := &p.Steps[i]; st.State == StateRunning {
				st.State, st.EndTime = state, &now
				if st.StartTime != nil {
					st.DurationSec = now.Sub(*st.StartTime).Seconds()
				}
				if p.FailedStep == "" {
					p.FailedStep = st.Name
				}
			}
		}
		if b != nil {
			if b.Source != (ResolvedSource{}) {
				src := b.Source
				p.Source = &src
			}
			p.Validation, p.Outputs = b.Validation, b.Outputs
		}
	})
	if err != nil {
		s.log.Warn("pipeline: record the end of a run", "run", runID.String(), "err", err)
	}
	var start *time.Time
	if r, err := s.store.Get(ctx, runID); err == nil {
		var p RunProperties
		if json.Unmarshal(r.Properties, &p) == nil {
			start = p.StartTime
		}
	}
	s.setLastRun(ctx, tmpl, RunStatus{StartTime: start, EndTime: &now, RunState: state, Message: msg})
	s.log.Info("pipeline: run ended", "run", runID.String(), "state", state, "step", step, "message", msg)
}

func (s *Service) updateRun(ctx context.Context, id resource.ID, change func(p *RunProperties)) error {
	return s.writer.Update(withInternal(ctx), id, func(r *resource.Resource) (bool, error) {
		var p RunProperties
		if err := json.Unmarshal(r.Properties, &p); err != nil {
			return false, err
		}
		change(&p)
		r.Properties = mustJSON(p)
		return true, nil
	})
}

func (s *Service) setLastRun(ctx context.Context, tmpl resource.ID, st RunStatus) {
	err := s.writer.Update(withInternal(ctx), tmpl, func(r *resource.Resource) (bool, error) {
		var p map[string]any
		if err := json.Unmarshal(r.Properties, &p); err != nil {
			return false, err
		}
		p["lastRunStatus"] = st
		r.Properties = mustJSON(p)
		return true, nil
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

// Recover marks the runs a stopped server left Running as Failed, since their build
// processes died with it. (Durable, resumable builds are River jobs: issue 8.)
func (s *Service) Recover(ctx context.Context) error {
	runs, err := store.ListAll(ctx, s.store, store.ListQuery{Type: TypeRun})
	if err != nil {
		return fmt.Errorf("pipeline: recover runs: %w", err)
	}
	for _, r := range runs {
		var p RunProperties
		if json.Unmarshal(r.Properties, &p) != nil || (p.RunState != StateRunning && p.RunState != StateCanceling) {
			continue
		}
		id, err := resource.Parse(r.ID)
		if err != nil || s.Running(id) {
			continue
		}
		for _, msg := range clearLeftovers(ctx, s.RunDir(id)) {
			s.log.Warn("pipeline: after a stopped run", "run", id.String(), "did", msg)
		}
		s.end(ctx, id.Parent(), id, StateFailed, "", "the server stopped during the run; start it again", nil, []string{"run.log"})
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
