package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/gildhq/gild/pipeline"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// register adds every kind of job; every server knows them all, so that whichever leads
// can rescue any of them, while only servers that build work the builds queue.
func (s *Service) register(w *river.Workers) {
	river.AddWorker(w, &buildWorker{s: s})
	river.AddWorker(w, &scheduleWorker{s: s})
	river.AddWorker(w, &scheduledRunWorker{s: s})
	river.AddWorker(w, &baseCheckWorker{s: s})
	river.AddWorker(w, &baseRunWorker{s: s})
	river.AddWorker(w, &deliverWorker{s: s})
	river.AddWorker(w, &eventsWorker{s: s})
	river.AddWorker(w, &chore{s: s})
	river.AddWorker(w, &replicateWorker{s: s})
}

// DispatchReplication queues the replication of an image version; it is the gallery's
// dispatch. The job is unique while it waits or runs.
func (s *Service) DispatchReplication(ctx context.Context, version string) error {
	_, err := s.insert(ctx, replicateArgs{Version: version}, &river.InsertOpts{MaxAttempts: 10, UniqueOpts: river.UniqueOpts{ByArgs: true,
		ByState: []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
			rivertype.JobStateRetryable, rivertype.JobStateScheduled}}})
	return err
}

type replicateArgs struct {
	Version string `json:"version"`
}

func (replicateArgs) Kind() string { return "gild.replicate" }

type replicateWorker struct {
	river.WorkerDefaults[replicateArgs]
	s *Service
}

func (w *replicateWorker) Work(ctx context.Context, job *river.Job[replicateArgs]) error {
	if w.s.opts.Replicate == nil {
		return errors.New("jobs: this server has no gallery to replicate with")
	}
	return w.s.opts.Replicate(ctx, job.Args.Version)
}

// periodic lists the recurring jobs. River's leader inserts them, and each is unique
// while it waits or runs, so a slow one is never doubled.
func (s *Service) periodic() []*river.PeriodicJob {
	once := &river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending,
		rivertype.JobStateRunning, rivertype.JobStateRetryable, rivertype.JobStateScheduled}}
	every := func(d time.Duration, args river.JobArgs) *river.PeriodicJob {
		return river.NewPeriodicJob(river.PeriodicInterval(d), func() (river.JobArgs, *river.InsertOpts) {
			return args, &river.InsertOpts{UniqueOpts: *once, MaxAttempts: 1}
		}, &river.PeriodicJobOpts{RunOnStart: true})
	}
	jobs := []*river.PeriodicJob{
		every(s.opts.ScheduleTick, scheduleArgs{}),
		every(s.opts.EventsEvery, eventsArgs{}),
	}
	if s.opts.Scan != nil {
		jobs = append(jobs, every(orDefault(s.opts.ScanInterval, time.Hour), choreArgs{Chore: "scan"}))
	}
	if s.opts.Verify != nil && s.opts.VerifyInterval >= 0 {
		jobs = append(jobs, every(orDefault(s.opts.VerifyInterval, 24*time.Hour), choreArgs{Chore: "verify"}))
	}
	if s.opts.Refresh != nil && s.opts.RefreshInterval > 0 {
		jobs = append(jobs, every(s.opts.RefreshInterval, choreArgs{Chore: "refresh"}))
	}
	return jobs
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// choreArgs is recurring work a service does in one call: a full compliance scan, an
// image verification, a refresh of due cattle.
type choreArgs struct {
	Chore string `json:"chore"`
}

func (choreArgs) Kind() string { return "gild.chore" }

type chore struct {
	river.WorkerDefaults[choreArgs]
	s *Service
}

func (c *chore) Work(ctx context.Context, job *river.Job[choreArgs]) error {
	var f func(context.Context) error
	switch job.Args.Chore {
	case "scan":
		f = c.s.opts.Scan
	case "verify":
		f = c.s.opts.Verify
	case "refresh":
		f = c.s.opts.Refresh
	}
	if f == nil {
		return nil // a server without that service: nothing to do
	}
	return f(ctx)
}

// Dispatch queues the build of a run that the pipeline has recorded; a server that can
// build will run it. It is the pipeline's Options.Dispatch.
func (s *Service) Dispatch(ctx context.Context, run resource.ID) error {
	_, err := s.insert(ctx, buildArgs{Run: run.String()}, &river.InsertOpts{Queue: QueueBuilds, MaxAttempts: 3,
		UniqueOpts: river.UniqueOpts{ByArgs: true}})
	return err
}

type buildArgs struct {
	Run string `json:"run" river:"unique"`
}

func (buildArgs) Kind() string { return "gild.build" }

type buildWorker struct {
	river.WorkerDefaults[buildArgs]
	s *Service
}

// Timeout: the pipeline applies the template's own build timeout.
func (w *buildWorker) Timeout(*river.Job[buildArgs]) time.Duration { return -1 }

func (w *buildWorker) Work(ctx context.Context, job *river.Job[buildArgs]) error {
	if w.s.opts.Pipeline == nil {
		return errNoPipeline
	}
	id, err := resource.Parse(job.Args.Run)
	if err != nil {
		return river.JobCancel(fmt.Errorf("run %q: %w", job.Args.Run, err))
	}
	return w.s.opts.Pipeline.RunBuild(ctx, id, job.Attempt)
}

// scheduleArgs is the recurring look at every template's schedule.
type scheduleArgs struct{}

func (scheduleArgs) Kind() string { return "gild.schedules" }

type scheduleWorker struct {
	river.WorkerDefaults[scheduleArgs]
	s *Service
}

func (w *scheduleWorker) Work(ctx context.Context, _ *river.Job[scheduleArgs]) error {
	s := w.s
	if s.opts.Pipeline == nil {
		return nil
	}
	templates, err := store.ListAll(ctx, s.opts.Store, store.ListQuery{Type: pipeline.TypeTemplate})
	if err != nil {
		return fmt.Errorf("list templates: %w", err)
	}
	now := s.now().UTC()
	for _, r := range templates {
		if err := s.schedule(ctx, r, now); err != nil {
			s.log.Warn("jobs: schedule", "template", r.ID, "err", err)
		}
	}
	return s.sweepRuns(ctx, now)
}

// templateOf reads a stored template's properties, status included.
func templateOf(r *resource.Resource) (*pipeline.TemplateProperties, error) {
	var p pipeline.TemplateProperties
	if err := json.Unmarshal(r.Properties, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// schedule fires the latest cron time that passed since the last one fired, and queues
// a base-image check when one is due. A new schedule starts counting from now: it does
// not fire for times before it was seen.
func (s *Service) schedule(ctx context.Context, r *resource.Resource, now time.Time) error {
	p, err := templateOf(r)
	if err != nil || p.Schedule == nil || p.Schedule.Disabled {
		return err
	}
	id, err := resource.Parse(r.ID)
	if err != nil {
		return err
	}
	cron, err := p.Schedule.Parsed()
	if err != nil {
		return err
	}
	st := pipeline.ScheduleStatus{}
	if p.ScheduleStatus != nil {
		st = *p.ScheduleStatus
	}
	next := cron.Next(now)
	switch {
	case st.LastScheduledTime == nil:
		err = s.opts.Pipeline.UpdateScheduleStatus(ctx, id, func(st *pipeline.ScheduleStatus) {
			if st.LastScheduledTime == nil {
				st.LastScheduledTime, st.NextScheduledTime = &now, &next
			}
		})
	default:
		if t, ok := cron.Latest(*st.LastScheduledTime, now); ok {
			// Unique by template and time: two servers looking at once queue it once.
			if _, err := s.insert(ctx, scheduledRunArgs{Template: id.String(), Time: t.UTC()}, &river.InsertOpts{MaxAttempts: 3,
				UniqueOpts: river.UniqueOpts{ByArgs: true}}); err != nil {
				return err
			}
			err = s.opts.Pipeline.UpdateScheduleStatus(ctx, id, func(st *pipeline.ScheduleStatus) {
				if st.LastScheduledTime == nil || st.LastScheduledTime.Before(t) {
					st.LastScheduledTime = &t
				}
				st.NextScheduledTime = &next
			})
		} else if st.NextScheduledTime == nil || !st.NextScheduledTime.Equal(next) {
			err = s.opts.Pipeline.UpdateScheduleStatus(ctx, id, func(st *pipeline.ScheduleStatus) { st.NextScheduledTime = &next })
		}
	}
	if err != nil {
		return err
	}
	if p.Schedule.BaseImageTrigger && s.opts.BaseVersion != nil {
		poll := time.Duration(p.Schedule.BasePollMinutes) * time.Minute
		if st.LastBaseCheckTime == nil || now.Sub(*st.LastBaseCheckTime) >= poll {
			_, err := s.insert(ctx, baseCheckArgs{Template: id.String()}, &river.InsertOpts{MaxAttempts: 1, UniqueOpts: river.UniqueOpts{ByArgs: true,
				ByState: []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning, rivertype.JobStateScheduled}}})
			return err
		}
	}
	return nil
}

type scheduledRunArgs struct {
	Template string    `json:"template"`
	Time     time.Time `json:"time"`
}

func (scheduledRunArgs) Kind() string { return "gild.scheduled_run" }

type scheduledRunWorker struct {
	river.WorkerDefaults[scheduledRunArgs]
	s *Service
}

// Work starts the run a schedule fired, unless the schedule says "changed" and nothing
// changed since the last successful run.
func (w *scheduledRunWorker) Work(ctx context.Context, job *river.Job[scheduledRunArgs]) error {
	s := w.s
	id, r, p, err := s.template(ctx, job.Args.Template)
	if err != nil || r == nil || p.Schedule == nil || p.Schedule.Disabled {
		return err // deleted or disabled since: nothing to run
	}
	at := job.Args.Time
	o := pipeline.StartOptions{Trigger: pipeline.TriggerSchedule, ScheduledTime: &at,
		Reason: fmt.Sprintf("the schedule %q (%s) fired for %s", p.Schedule.Cron, p.Schedule.TimeZone, at.Format(time.RFC3339))}
	if s.opts.Inputs != nil {
		in, err := s.opts.Inputs(ctx, p)
		if err != nil {
			// Without the inputs nothing can be compared: a "changed" schedule runs, so
			// that a source that cannot be read shows up as a failed run, not silence.
			s.log.Warn("jobs: read a template's inputs", "template", id.String(), "err", err)
		} else {
			o.Inputs = &in
			if p.Schedule.When == "changed" && p.ScheduleStatus != nil && p.ScheduleStatus.LastInputs == in.Fingerprint() {
				return s.skip(ctx, id, at, "nothing changed since the last successful run (template, base image and files are the same)")
			}
		}
	}
	_, err = s.opts.Pipeline.StartWith(ctx, id, o)
	var re *resource.Error
	if errors.As(err, &re) && re.Code == pipeline.CodeRunInProgress {
		return s.skip(ctx, id, at, "a run of the template was still going")
	}
	return err
}

func (s *Service) skip(ctx context.Context, id resource.ID, at time.Time, why string) error {
	s.log.Info("jobs: a scheduled run was skipped", "template", id.String(), "for", at, "why", why)
	now := s.now().UTC()
	return s.opts.Pipeline.UpdateScheduleStatus(ctx, id, func(st *pipeline.ScheduleStatus) {
		st.LastSkipTime, st.LastSkipReason = &now, fmt.Sprintf("%s: %s", at.Format(time.RFC3339), why)
	})
}

// template reads a template; a template that is gone gives a nil resource and no error.
func (s *Service) template(ctx context.Context, raw string) (resource.ID, *resource.Resource, *pipeline.TemplateProperties, error) {
	id, err := resource.Parse(raw)
	if err != nil {
		return id, nil, nil, river.JobCancel(err)
	}
	if s.opts.Pipeline == nil {
		return id, nil, nil, errNoPipeline
	}
	r, err := s.opts.Store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return id, nil, nil, nil
	}
	if err != nil {
		return id, nil, nil, err
	}
	p, err := templateOf(r)
	if err != nil {
		return id, nil, nil, err
	}
	return id, r, p, nil
}

type baseCheckArgs struct {
	Template string `json:"template"`
}

func (baseCheckArgs) Kind() string { return "gild.base_image_check" }

type baseCheckWorker struct {
	river.WorkerDefaults[baseCheckArgs]
	s *Service
}

// Work asks the source for its newest base version. The first answer is remembered; a
// later different answer queues one run for that version.
func (w *baseCheckWorker) Work(ctx context.Context, job *river.Job[baseCheckArgs]) error {
	s := w.s
	id, r, p, err := s.template(ctx, job.Args.Template)
	if err != nil || r == nil || p.Schedule == nil || !p.Schedule.BaseImageTrigger {
		return err
	}
	base, checkErr := s.opts.BaseVersion(ctx, p.Source)
	now := s.now().UTC()
	prev := ""
	if p.ScheduleStatus != nil {
		prev = p.ScheduleStatus.LastBaseVersion
	}
	if checkErr == nil && prev != "" && base != prev {
		if _, err := s.insert(ctx, baseRunArgs{Template: id.String(), Base: base, Previous: prev}, &river.InsertOpts{MaxAttempts: 20,
			UniqueOpts: river.UniqueOpts{ByArgs: true}}); err != nil {
			return err
		}
	}
	return s.opts.Pipeline.UpdateScheduleStatus(ctx, id, func(st *pipeline.ScheduleStatus) {
		st.LastBaseCheckTime, st.LastBaseCheckError = &now, errorText(checkErr)
		if checkErr == nil {
			st.LastBaseVersion = base
		}
	})
}

type baseRunArgs struct {
	Template string `json:"template" river:"unique"`
	Base     string `json:"base" river:"unique"`
	Previous string `json:"previous"`
}

func (baseRunArgs) Kind() string { return "gild.base_image_run" }

type baseRunWorker struct {
	river.WorkerDefaults[baseRunArgs]
	s *Service
}

// Work starts the run for a new base version. If the template is being built, it waits
// (the job is retried) rather than lose the new version.
func (w *baseRunWorker) Work(ctx context.Context, job *river.Job[baseRunArgs]) error {
	s := w.s
	id, r, p, err := s.template(ctx, job.Args.Template)
	if err != nil || r == nil || p.Schedule == nil || p.Schedule.Disabled {
		return err
	}
	o := pipeline.StartOptions{Trigger: pipeline.TriggerBaseImage,
		Reason: fmt.Sprintf("the source shows a newer base: %s (was %s)", job.Args.Base, job.Args.Previous)}
	if s.opts.Inputs != nil {
		if in, err := s.opts.Inputs(ctx, p); err == nil {
			o.Inputs = &in
			// A scheduled run may have built this base already.
			if p.ScheduleStatus != nil && p.ScheduleStatus.LastInputs == in.Fingerprint() {
				return nil
			}
		}
	}
	_, err = s.opts.Pipeline.StartWith(ctx, id, o)
	return err
}

// sweepRuns ends the runs left Running whose build job is gone: given up after its
// attempts, or started by a server from before builds were jobs.
func (s *Service) sweepRuns(ctx context.Context, now time.Time) error {
	runs, err := store.ListAll(ctx, s.opts.Store, store.ListQuery{Type: pipeline.TypeRun})
	if err != nil {
		return fmt.Errorf("list runs: %w", err)
	}
	var open []resource.ID
	for _, r := range runs {
		var p pipeline.RunProperties
		if json.Unmarshal(r.Properties, &p) != nil || (p.RunState != pipeline.StateRunning && p.RunState != pipeline.StateCanceling) {
			continue
		}
		// A run is recorded a moment before its job is queued.
		if p.StartTime != nil && now.Sub(*p.StartTime) < time.Minute {
			continue
		}
		if id, err := resource.Parse(r.ID); err == nil {
			open = append(open, id)
		}
	}
	if len(open) == 0 {
		return nil
	}
	live := map[string]bool{}
	params := river.NewJobListParams().Kinds(buildArgs{}.Kind()).First(10000).States(rivertype.JobStateAvailable, rivertype.JobStatePending,
		rivertype.JobStateRunning, rivertype.JobStateRetryable, rivertype.JobStateScheduled)
	res, err := s.client.JobList(ctx, params)
	if err != nil {
		return fmt.Errorf("list build jobs: %w", err)
	}
	for _, j := range res.Jobs {
		var a buildArgs
		if json.Unmarshal(j.EncodedArgs, &a) == nil {
			live[strings.ToLower(a.Run)] = true
		}
	}
	for _, id := range open {
		if live[id.Key()] {
			continue
		}
		if err := s.opts.Pipeline.Abandon(ctx, id, "the build's job ended without recording the run's end: the servers that tried it stopped"); err != nil {
			s.log.Warn("jobs: end an abandoned run", "run", id.String(), "err", err)
		}
	}
	return nil
}
