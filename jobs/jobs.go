// Package jobs runs gild's background work as durable River jobs in the store's own
// database: image builds, schedules and base-image checks, compliance scans, image
// verification, refreshes, event detection and webhook deliveries. Several gild servers on
// one PostgreSQL share the work: each job runs once, each scheduled time fires once, and a
// job whose server died is picked up by another.
package jobs

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/gildhq/gild/pipeline"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// Queues: builds run only on servers that can build; everything else anywhere.
const (
	QueueDefault = river.QueueDefault
	QueueBuilds  = "builds"
)

// Options configure the job system.
type Options struct {
	Store    store.Store
	Pipeline *pipeline.Service
	// Inputs and BaseVersion come from the image builder: what a template is built from,
	// and the newest base version its source offers.
	Inputs      func(ctx context.Context, p *pipeline.TemplateProperties) (pipeline.Inputs, error)
	BaseVersion func(ctx context.Context, src pipeline.Source) (string, error)
	// Builds makes this server work the builds queue.
	Builds bool
	// Scan queues a compliance scan of every assignment's scope, every ScanInterval (0:
	// hourly). Verify reads back every image replica every VerifyInterval (0: daily,
	// negative: never). Refresh replaces due cattle every RefreshInterval (0: never).
	Scan            func(ctx context.Context) error
	ScanInterval    time.Duration
	Verify          func(ctx context.Context) error
	VerifyInterval  time.Duration
	Refresh         func(ctx context.Context) error
	RefreshInterval time.Duration
	// Replicate copies an image version to the regions it is missing from.
	Replicate func(ctx context.Context, version string) error
	// CattleDue lists the cattle a refresh would replace now, for notifications.
	CattleDue func(ctx context.Context) ([]DueVM, error)
	// Within reports whether resource id lies in scope (management groups included);
	// nil compares IDs.
	Within func(id, scope resource.ID) bool

	// ScheduleTick is how often schedules are looked at; 0 means 15 s.
	ScheduleTick time.Duration
	// EventsEvery is how often changes are turned into notifications; 0 means 10 s.
	EventsEvery time.Duration
	// RescueAfter is how long a running job may go without its server's heartbeat before
	// another server takes it over; 0 means 2 minutes.
	RescueAfter time.Duration
	// DeliveryRetryBase is the first wait after a failed webhook delivery, doubled after
	// each failure up to an hour; 0 means 30 s. DeliveryAttempts bounds the attempts; 0
	// means 12 (about a day and a half with the default base).
	DeliveryRetryBase time.Duration
	DeliveryAttempts  int
	// HTTP sends webhook deliveries; nil means a client with a 10 s timeout.
	HTTP *http.Client
	// ServerID names this server among those sharing the database; it should stay the
	// same across restarts (the server keeps it in its data directory), so that a
	// restarted server takes its own interrupted jobs back at once. Empty: made up.
	ServerID string

	Logger *slog.Logger
	Now    func() time.Time
}

// Service is the job system of one server.
type Service struct {
	opts    Options
	db      *sql.DB
	dialect string
	client  *river.Client[*sql.Tx]
	log     *slog.Logger
	now     func() time.Time
	id      string

	mu      sync.Mutex
	running map[int64]bool // jobs this server is working, for the heartbeat
	// lastCattle is when this server last worked out which cattle are due.
	lastCattle time.Time
	stop       context.CancelFunc
	done       chan struct{}
}

// backend is what the store offers the job system: its database.
type backend interface {
	Write() *sql.DB
	DialectName() string
}

// New migrates River's tables and gild's notification tables in the store's database and
// returns the job system, not yet started.
func New(ctx context.Context, opts Options) (*Service, error) {
	b, ok := opts.Store.(backend)
	if !ok {
		return nil, fmt.Errorf("jobs: the store %T has no SQL database to keep jobs in", opts.Store)
	}
	s := &Service{opts: opts, db: b.Write(), dialect: b.DialectName(), log: opts.Logger, now: opts.Now, running: map[int64]bool{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.id = opts.ServerID
	if s.id == "" {
		host, _ := os.Hostname()
		s.id = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), randomHex(3))
	}
	if s.opts.RescueAfter <= 0 {
		s.opts.RescueAfter = 2 * time.Minute
	}
	if s.opts.ScheduleTick <= 0 {
		s.opts.ScheduleTick = 15 * time.Second
	}
	if s.opts.EventsEvery <= 0 {
		s.opts.EventsEvery = 10 * time.Second
	}
	if s.opts.DeliveryRetryBase <= 0 {
		s.opts.DeliveryRetryBase = 30 * time.Second
	}
	if s.opts.DeliveryAttempts <= 0 {
		s.opts.DeliveryAttempts = 12
	}
	if s.opts.HTTP == nil {
		s.opts.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	if s.opts.Within == nil {
		s.opts.Within = func(id, scope resource.ID) bool { return scope.Contains(id) }
	}
	var driver riverdriver.Driver[*sql.Tx]
	switch s.dialect {
	case "sqlite":
		driver = riversqlite.New(s.db)
	case "postgres":
		driver = riverdatabasesql.New(s.db)
	default:
		return nil, fmt.Errorf("jobs: no River driver for a %s store", s.dialect)
	}
	if err := s.migrate(ctx, driver); err != nil {
		return nil, err
	}
	workers := river.NewWorkers()
	s.register(workers)
	queues := map[string]river.QueueConfig{QueueDefault: {MaxWorkers: 8}}
	if opts.Builds {
		// A build uses the machine: one at a time per server.
		queues[QueueBuilds] = river.QueueConfig{MaxWorkers: 1}
	}
	client, err := river.NewClient(driver, &river.Config{
		ID:       s.id,
		Queues:   queues,
		Workers:  workers,
		Logger:   s.log.With("component", "river"),
		PollOnly: true, // the database/sql drivers have no LISTEN; polling every second is plenty
		// No timeout from River: the build worker applies the template's own, and jobs of
		// dead servers are taken up by the heartbeat's rescue (River's rescuer leaves jobs
		// without a timeout alone).
		JobTimeout:        -1,
		PeriodicJobs:      s.periodic(),
		Middleware:        []rivertype.Middleware{&heartbeatTracker{s: s}},
		FetchPollInterval: time.Second,
		MaxAttempts:       5,
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	s.client = client
	return s, nil
}

// migrate brings River's tables and gild's up to date. Servers starting at once may race
// to do it; the loser's error goes away on a second try, when the work is done.
func (s *Service) migrate(ctx context.Context, driver riverdriver.Driver[*sql.Tx]) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = s.migrateOnce(ctx, driver); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(200*(attempt+1)) * time.Millisecond):
		}
	}
	return err
}

func (s *Service) migrateOnce(ctx context.Context, driver riverdriver.Driver[*sql.Tx]) error {
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("jobs: migrate River's tables: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("jobs: migrate River's tables: %w", err)
	}
	for _, stmt := range schema {
		if _, err := s.db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("jobs: create gild's job tables: %w", err)
		}
	}
	return nil
}

// Start works jobs until Stop. Jobs this server's ID was running when it last stopped
// died with it: they are made available again first.
func (s *Service) Start(ctx context.Context) error {
	if err := s.reclaim(ctx); err != nil {
		return err
	}
	if err := s.client.Start(ctx); err != nil {
		return fmt.Errorf("jobs: start: %w", err)
	}
	hctx, cancel := context.WithCancel(context.Background())
	s.stop, s.done = cancel, make(chan struct{})
	go s.heartbeat(hctx)
	s.log.Info("jobs: working", "server", s.id, "builds", s.opts.Builds)
	return nil
}

// Stop lets running jobs finish (cancelling them after ctx ends) and stops working.
func (s *Service) Stop(ctx context.Context) error {
	err := s.client.Stop(ctx)
	if err != nil && ctx.Err() != nil {
		err = s.client.StopAndCancel(context.Background())
	}
	if s.stop != nil {
		s.stop()
		<-s.done
	}
	if err != nil {
		return fmt.Errorf("jobs: stop: %w", err)
	}
	return nil
}

// reclaim makes the jobs a previous process with this server's ID left running available
// again at once: nothing runs under this ID before Start.
func (s *Service) reclaim(ctx context.Context) error {
	mine := `json_extract(attempted_by, '$[#-1]') = ?`
	if s.dialect == "postgres" {
		mine = `attempted_by[array_length(attempted_by, 1)] = ?`
	}
	n, err := s.requeue(ctx, mine, s.id)
	if err != nil {
		return fmt.Errorf("jobs: take back this server's interrupted jobs: %w", err)
	}
	if n > 0 {
		s.log.Warn("jobs: took back jobs this server was running when it stopped", "jobs", n)
	}
	return nil
}

// rescue makes the running jobs whose server has not beaten for RescueAfter available
// again (or discards those out of attempts), for any server to take. River's own rescuer
// cannot do this: it waits for a job's timeout, and a build may run for hours.
func (s *Service) rescue(ctx context.Context) error {
	stale := `julianday(attempted_at) < julianday('now') - ? / 86400.0`
	if s.dialect == "postgres" {
		stale = `attempted_at < now() - make_interval(secs => ?)`
	}
	n, err := s.requeue(ctx, stale, s.opts.RescueAfter.Seconds())
	if err != nil {
		return fmt.Errorf("jobs: take up the jobs of servers that stopped: %w", err)
	}
	if n > 0 {
		s.log.Warn("jobs: took up jobs whose server stopped beating", "jobs", n, "silent for", s.opts.RescueAfter)
	}
	return nil
}

// requeue puts running jobs that match cond back in the queue, or discards those that
// have used all their attempts, and says how many it touched.
func (s *Service) requeue(ctx context.Context, cond string, arg any) (int64, error) {
	now := `datetime('now', 'subsec')`
	if s.dialect == "postgres" {
		now = `now()`
	}
	var total int64
	for _, stmt := range []string{
		`UPDATE river_job SET state = 'available', scheduled_at = ` + now + ` WHERE state = 'running' AND attempt < max_attempts AND ` + cond,
		`UPDATE river_job SET state = 'discarded', finalized_at = ` + now + ` WHERE state = 'running' AND attempt >= max_attempts AND ` + cond,
	} {
		res, err := s.db.ExecContext(ctx, s.q(stmt), arg)
		if err != nil {
			return total, err
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}

// ServerID names this server among those sharing the database.
func (s *Service) ServerID() string { return s.id }

// heartbeatTracker remembers which jobs this server is working.
type heartbeatTracker struct {
	river.MiddlewareDefaults
	s *Service
}

func (h *heartbeatTracker) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	h.s.mu.Lock()
	h.s.running[job.ID] = true
	h.s.mu.Unlock()
	defer func() {
		h.s.mu.Lock()
		delete(h.s.running, job.ID)
		h.s.mu.Unlock()
	}()
	return doInner(ctx)
}

// heartbeat keeps this server's running jobs from looking abandoned, by moving their
// attempted_at forward while they run here, and takes up the jobs of servers that stopped
// beating (killed, frozen, cut off), however long those jobs had been running.
func (s *Service) heartbeat(ctx context.Context) {
	defer close(s.done)
	every := s.opts.RescueAfter / 4
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		ids := make([]int64, 0, len(s.running))
		for id := range s.running {
			ids = append(ids, id)
		}
		s.mu.Unlock()
		if err := s.rescue(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("jobs: rescue", "err", err)
		}
		for _, id := range ids {
			q := `UPDATE river_job SET attempted_at = datetime('now', 'subsec') WHERE id = ? AND state = 'running'`
			if s.dialect == "postgres" {
				q = `UPDATE river_job SET attempted_at = now() WHERE id = $1 AND state = 'running'`
			}
			if _, err := s.db.ExecContext(ctx, q, id); err != nil && ctx.Err() == nil {
				s.log.Warn("jobs: heartbeat", "job", id, "err", err)
			}
		}
	}
}

// q adapts a query written with ? placeholders to the backend.
func (s *Service) q(query string) string {
	if s.dialect != "postgres" {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Job is a job as `gild jobs list` shows it.
type Job struct {
	ID          int64      `json:"id"`
	Kind        string     `json:"kind"`
	Queue       string     `json:"queue"`
	State       string     `json:"state"`
	Attempt     int        `json:"attempt"`
	MaxAttempts int        `json:"maxAttempts"`
	Args        string     `json:"args"`
	CreatedAt   time.Time  `json:"createdAt"`
	ScheduledAt time.Time  `json:"scheduledAt"`
	AttemptedAt *time.Time `json:"attemptedAt,omitempty"`
	FinalizedAt *time.Time `json:"finalizedAt,omitempty"`
	AttemptedBy []string   `json:"attemptedBy,omitempty"`
	Errors      []string   `json:"errors,omitempty"`
}

// States a job list may be narrowed to.
var States = []string{"available", "scheduled", "running", "retryable", "completed", "cancelled", "discarded", "pending"}

// CodeBadState is the error code of an unknown job state in a query.
const CodeBadState = "InvalidJobState"

// List returns up to limit jobs, newest first, in the given states (failed means
// retryable or discarded; none means every state).
func (s *Service) List(ctx context.Context, states []string, limit int) ([]Job, error) {
	params := river.NewJobListParams().OrderBy(river.JobListOrderByID, river.SortOrderDesc).First(max(1, min(limit, 10000)))
	var want []rivertype.JobState
	for _, st := range states {
		switch st := strings.ToLower(st); {
		case st == "failed":
			want = append(want, rivertype.JobStateRetryable, rivertype.JobStateDiscarded)
		case st == "":
		default:
			known := false
			for _, k := range States {
				if k == st {
					known = true
				}
			}
			if !known {
				return nil, resource.Errorf(CodeBadState, "state", "%q is not a job state; use failed or one of %s", st, strings.Join(States, ", "))
			}
			want = append(want, rivertype.JobState(st))
		}
	}
	if len(want) > 0 {
		params = params.States(want...)
	}
	res, err := s.client.JobList(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("jobs: list: %w", err)
	}
	out := make([]Job, 0, len(res.Jobs))
	for _, j := range res.Jobs {
		job := Job{ID: j.ID, Kind: j.Kind, Queue: j.Queue, State: string(j.State), Attempt: j.Attempt, MaxAttempts: j.MaxAttempts,
			Args: string(j.EncodedArgs), CreatedAt: j.CreatedAt, ScheduledAt: j.ScheduledAt, AttemptedAt: j.AttemptedAt,
			FinalizedAt: j.FinalizedAt, AttemptedBy: j.AttemptedBy}
		for _, e := range j.Errors {
			job.Errors = append(job.Errors, fmt.Sprintf("attempt %d at %s: %s", e.Attempt, e.At.UTC().Format(time.RFC3339), e.Error))
		}
		out = append(out, job)
	}
	return out, nil
}

// insert adds a job; a unique job that already exists is not an error.
func (s *Service) insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (bool, error) {
	res, err := s.client.Insert(ctx, args, opts)
	if err != nil {
		return false, fmt.Errorf("jobs: queue %s: %w", args.Kind(), err)
	}
	return !res.UniqueSkippedAsDuplicate, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// errorText is err's message, or "" for nil.
func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

var errNoPipeline = errors.New("jobs: this server has no image pipeline")
