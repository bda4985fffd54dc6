package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gildhq/gild/agentproto"
)

// Timing is how long the daemon waits for things. DefaultTiming is what runs in a
// machine; tests shorten it.
type Timing struct {
	// BackoffMin and BackoffMax bound the exponential backoff after a network error, a
	// 5xx or a 429: BackoffMin, doubling, capped at BackoffMax.
	BackoffMin, BackoffMax time.Duration
	// NotEnrolledRecheck is how often a machine that is not enrolled looks again for
	// first-boot data or a state written by "gild-agent enroll".
	NotEnrolledRecheck time.Duration
	// FirstBootWait is how long the daemon waits, once, for the fw_cfg first-boot item to
	// appear after loading qemu_fw_cfg.
	FirstBootWait time.Duration
	// PollWait is how long the server may hold a request for assignments.
	PollWait time.Duration
	// DefaultInterval is the report interval until the server gives one; MinInterval and
	// MaxInterval bound the server's, so that a mistaken server can neither make every
	// machine report in a tight loop nor silence them.
	DefaultInterval, MinInterval, MaxInterval time.Duration
}

// DefaultTiming is the daemon's timing in a machine.
var DefaultTiming = Timing{
	BackoffMin: time.Second, BackoffMax: time.Minute,
	NotEnrolledRecheck: 30 * time.Second,
	FirstBootWait:      10 * time.Second,
	PollWait:           60 * time.Second,
	DefaultInterval:    15 * time.Minute, MinInterval: 10 * time.Second, MaxInterval: 24 * time.Hour,
}

// Daemon is "gild-agent run": it provisions a VM from its first-boot data, enrolls, and
// then runs its assignments and reports, until its context ends.
type Daemon struct {
	// StateDir holds state.json and the spool.
	StateDir string
	// FirstBootFile, when set, is read for first-boot data instead of QEMU's fw_cfg.
	FirstBootFile string
	System        System
	HTTP          *http.Client
	Log           *log.Logger
	Timing        Timing
	// SpoolMax is how many unsent reports are kept; zero means DefaultSpoolMax.
	SpoolMax int

	store         *stateStore
	spool         spool
	firstBootSeen bool // the fw_cfg item was waited for once already
	moduleLoaded  bool // modprobe qemu_fw_cfg ran once already
}

// Errors that end serve and send Run back to enrollment.
var (
	errRevoked    = errors.New("the server revoked this machine's credential")
	errReenrolled = errors.New("the machine was enrolled again beside this daemon")
)

func (d *Daemon) init() {
	if d.store == nil {
		d.store = &stateStore{dir: d.StateDir}
	}
	max := d.SpoolMax
	if max <= 0 {
		max = DefaultSpoolMax
	}
	d.spool = spool{dir: filepath.Join(d.StateDir, spoolDir), max: max}
	if d.HTTP == nil {
		d.HTTP = &http.Client{}
	}
	if d.Log == nil {
		d.Log = log.New(os.Stderr, "", 0)
	}
	if d.Timing == (Timing{}) {
		d.Timing = DefaultTiming
	}
}

// Run runs the daemon until ctx ends, and then returns nil: a stop is not a failure.
// It returns an error only when it cannot keep its state at all, since systemd restarts
// a daemon that exits and a problem that persists would only loop.
func (d *Daemon) Run(ctx context.Context) error {
	d.init()
	checkedInstance := false
	backoff := d.Timing.BackoffMin
	for ctx.Err() == nil {
		st, err := d.loadState()
		if err != nil {
			return err
		}
		if st.Enrolled() && !checkedInstance {
			checkedInstance = true
			if again, err := d.reconcileInstance(ctx, st); err != nil {
				return err
			} else if again {
				continue
			}
		}
		if !st.Enrolled() {
			if err := d.waitForEnrollment(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			continue
		}
		err = d.serve(ctx, st)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errRevoked), errors.Is(err, errReenrolled):
			backoff = d.Timing.BackoffMin
		default:
			d.Log.Printf("%v; starting again in %s", err, backoff)
			if sleep(ctx, backoff) != nil {
				return nil
			}
			backoff = min(2*backoff, d.Timing.BackoffMax)
		}
	}
	return nil
}

// loadState reads the state; an unreadable state file is moved aside, logged and replaced
// by an empty state, because a daemon that cannot start would be restarted for ever.
func (d *Daemon) loadState() (State, error) {
	st, err := d.store.load()
	if err == nil {
		return st, nil
	}
	p := filepath.Join(d.StateDir, stateFile)
	aside := p + ".unreadable-" + time.Now().UTC().Format("20060102T150405Z")
	if rerr := os.Rename(p, aside); rerr != nil {
		return State{}, fmt.Errorf("%w (and moving it aside failed: %v)", err, rerr)
	}
	d.Log.Printf("%v: moved it to %s and starting as a machine not enrolled", err, aside)
	return State{}, nil
}

// reconcileInstance compares an enrolled machine with its first-boot data, once per start.
// A disk enrolled as one VM and booted as another (a copied disk) must not report as the
// first: it forgets the enrollment, and again says to go back to enrollment. An instance
// whose provisioning failed is provisioned again.
func (d *Daemon) reconcileInstance(ctx context.Context, st State) (again bool, err error) {
	fb, source, err := d.firstBoot(ctx, 0)
	if err != nil {
		return false, nil // no first-boot data, or none usable: nothing to reconcile
	}
	if st.EnrolledInstanceID != "" && fb.InstanceID != st.EnrolledInstanceID {
		d.Log.Printf("first-boot data names instance %s, not %s as enrolled: enrolling again", fb.InstanceID, st.EnrolledInstanceID)
		return true, d.forget(st.Credential)
	}
	if fb.InstanceID != st.InstanceID {
		return false, d.provisionInstance(ctx, fb, source)
	}
	return false, nil
}

// provisionInstance provisions the instance fb describes and, when that succeeds,
// records it so that it is not provisioned again. A failure is logged, not returned:
// enrolling anyway makes the machine visible, with its problem in the log, and
// provisioning runs again when the daemon next starts.
func (d *Daemon) provisionInstance(ctx context.Context, fb agentproto.FirstBoot, source string) error {
	did, err := d.System.provision(ctx, fb)
	if len(did) > 0 {
		d.Log.Printf("provisioned instance %s: %s", fb.InstanceID, strings.Join(did, "; "))
	}
	if err != nil {
		d.Log.Printf("provision instance %s (first-boot data %s): %v", fb.InstanceID, source, strings.ReplaceAll(err.Error(), "\n", "; "))
		return nil
	}
	_, err = d.store.update(func(s *State) error { s.InstanceID = fb.InstanceID; return nil })
	return err
}

// firstBoot reads the machine's first-boot data. qemu_fw_cfg is loaded at the first look
// only: a machine that is not a gild VM looks every NotEnrolledRecheck, and a module that
// did not load once will not load later.
func (d *Daemon) firstBoot(ctx context.Context, wait time.Duration) (agentproto.FirstBoot, string, error) {
	load := !d.moduleLoaded
	d.moduleLoaded = true
	return d.System.readFirstBoot(ctx, d.FirstBootFile, wait, load)
}

// forget drops the machine identity whose credential is credential, and its spool.
func (d *Daemon) forget(credential string) error {
	if _, err := d.store.update(func(s *State) error {
		if s.Credential == credential {
			s.forgetMachine()
		}
		return nil
	}); err != nil {
		return err
	}
	return d.spool.clear()
}

// waitForEnrollment provisions the instance the first-boot data describes and enrolls
// with its token, retrying with backoff while the server cannot be reached. Without
// first-boot data it waits for "gild-agent enroll" to write a state. It returns when the
// machine is enrolled or ctx ends.
func (d *Daemon) waitForEnrollment(ctx context.Context) error {
	backoff := d.Timing.BackoffMin
	provisioned := "" // the instance this process provisioned, successfully or not
	lastNote := ""
	// note logs a condition once, not at every look.
	note := func(format string, args ...any) {
		if msg := fmt.Sprintf(format, args...); msg != lastNote {
			d.Log.Print(msg)
			lastNote = msg
		}
	}
	for {
		st, err := d.loadState()
		if err != nil {
			return err
		}
		if st.Enrolled() {
			d.Log.Printf("enrolled as %s (by gild-agent enroll)", st.MachineID)
			return nil
		}
		wait := time.Duration(0)
		if !d.firstBootSeen {
			wait, d.firstBootSeen = d.Timing.FirstBootWait, true
		}
		fb, source, err := d.firstBoot(ctx, wait)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, errNoFirstBoot):
			note("not enrolled: run gild-agent enroll --server URL --token T")
			if err := sleep(ctx, d.Timing.NotEnrolledRecheck); err != nil {
				return err
			}
			continue
		case err != nil:
			note("not enrolled: %v", err)
			if err := sleep(ctx, d.Timing.NotEnrolledRecheck); err != nil {
				return err
			}
			continue
		}
		if fb.InstanceID != st.InstanceID && fb.InstanceID != provisioned {
			provisioned = fb.InstanceID
			if err := d.provisionInstance(ctx, fb, source); err != nil {
				return err
			}
		}
		if tokenHash(fb.EnrollmentToken) == st.RefusedToken {
			note("not enrolled: the server refused the enrollment token of instance %s; waiting for new first-boot data or gild-agent enroll", fb.InstanceID)
			if err := sleep(ctx, d.Timing.NotEnrolledRecheck); err != nil {
				return err
			}
			continue
		}
		c := &client{http: d.HTTP, server: fb.Server}
		resp, err := c.enroll(ctx, d.enrollRequest(fb.EnrollmentToken, fb.ComputerName))
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case isRefusal(err):
			d.Log.Printf("enrollment with %s refused, for good with this token: %v", fb.Server, err)
			if _, err := d.store.update(func(s *State) error { s.RefusedToken = tokenHash(fb.EnrollmentToken); return nil }); err != nil {
				return err
			}
			continue
		case err != nil:
			d.Log.Printf("enroll with %s: %v; retrying in %s", fb.Server, err, backoff)
			if err := sleep(ctx, backoff); err != nil {
				return err
			}
			backoff = min(2*backoff, d.Timing.BackoffMax)
			continue
		}
		if resp.MachineID != fb.MachineID {
			d.Log.Printf("the server enrolled this machine as %s, though its first-boot data says %s", resp.MachineID, fb.MachineID)
		}
		if err := d.saveEnrollment(fb.Server, fb.InstanceID, resp); err != nil {
			return err
		}
		d.Log.Printf("enrolled as %s with %s", resp.MachineID, fb.Server)
		return nil
	}
}

// enrollRequest is the request that enrolls this machine.
func (d *Daemon) enrollRequest(token, name string) agentproto.EnrollRequest {
	env := d.System.env()
	tattoo, err := readTattoo(env)
	if err != nil {
		d.Log.Print(err)
	}
	return agentproto.EnrollRequest{Token: token, Name: name, Facts: facts(env, time.Now()), Tattoo: tattoo}
}

// saveEnrollment records a new identity, replacing whatever the state knew about an
// earlier one, and empties the spool of that one's reports. instance is the first-boot
// instance whose token enrolled, empty for "gild-agent enroll".
func (d *Daemon) saveEnrollment(server, instance string, resp agentproto.EnrollResponse) error {
	if _, err := d.store.update(func(s *State) error {
		*s = State{Server: server, MachineID: resp.MachineID, Credential: resp.Credential, EnrolledAt: time.Now().UTC(),
			ReportIntervalSeconds: resp.ReportIntervalSeconds, InstanceID: s.InstanceID, EnrolledInstanceID: instance}
		return nil
	}); err != nil {
		return err
	}
	return d.spool.clear()
}

// tokenHash is how the state remembers a refused token without keeping it.
func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// interval is the report interval the state says, within the timing's bounds.
func (d *Daemon) interval(st State) time.Duration {
	iv := d.Timing.DefaultInterval
	if st.ReportIntervalSeconds > 0 {
		iv = time.Duration(st.ReportIntervalSeconds) * time.Second
	}
	return min(max(iv, d.Timing.MinInterval), d.Timing.MaxInterval)
}

// serve runs an enrolled machine: a goroutine long-polls for assignments, and the loop runs
// them and reports every interval, at once when they change, and retries unsent reports
// with backoff. It returns errRevoked on a 401, errReenrolled when another enrollment
// replaced st's, and ctx's error when ctx ends.
func (d *Daemon) serve(ctx context.Context, st State) error {
	c := &client{http: d.HTTP, server: st.Server, credential: st.Credential}
	// The assignments of now, before the first run: otherwise a starting daemon would
	// report the old ones and, a moment later, the new ones.
	switch a, ch, err := c.assignments(ctx, st.etag(), 0); {
	case ctx.Err() != nil:
		return ctx.Err()
	case isUnauthorized(err):
		return d.revoke(c)
	case err != nil:
		d.Log.Print(err)
	case ch:
		if _, err := d.storeAssignments(a); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	changed := make(chan struct{}, 1)
	revoked := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.pollAssignments(ctx, c, changed, revoked)
	}()
	defer func() {
		cancel()
		wg.Wait()
	}()
	d.Log.Printf("reporting as %s to %s every %s", st.MachineID, st.Server, d.interval(st))
	var lastRun time.Time
	nextRun := time.Now()
	var retryAt time.Time // when to try the spool again; zero when it is empty
	backoff := d.Timing.BackoffMin
	lastFailure := ""
	for {
		wake := nextRun
		if !retryAt.IsZero() && retryAt.Before(wake) {
			wake = retryAt
		}
		timer := time.NewTimer(time.Until(wake))
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-revoked:
			timer.Stop()
			return d.revoke(c)
		case <-changed:
			timer.Stop()
			nextRun = time.Now()
		case <-timer.C:
		}
		cur, err := d.loadState()
		if err != nil {
			return err
		}
		if cur.Credential != c.credential {
			d.Log.Printf("the state now holds another enrollment (%s); switching to it", orNone(cur.MachineID))
			return errReenrolled
		}
		if !time.Now().Before(nextRun) {
			if err := d.runAndSpool(ctx, cur); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				d.Log.Print(err)
			}
			lastRun = time.Now()
			nextRun = lastRun.Add(d.interval(cur))
			retryAt = lastRun
		}
		if retryAt.IsZero() || time.Now().Before(retryAt) {
			continue
		}
		fetch, err := d.flush(ctx, c)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case isUnauthorized(err):
			return d.revoke(c)
		case err != nil:
			retryAt = time.Now().Add(backoff)
			n := d.spooled()
			if msg := fmt.Sprintf("%d reports spooled: %v", n, err); msg != lastFailure {
				d.Log.Printf("%s; retrying with backoff", msg)
				lastFailure = msg
			}
			backoff = min(2*backoff, d.Timing.BackoffMax)
		default:
			retryAt, backoff, lastFailure = time.Time{}, d.Timing.BackoffMin, ""
		}
		if cur, err = d.loadState(); err != nil {
			return err
		}
		// The server may have given a new interval with the acknowledgement.
		nextRun = lastRun.Add(d.interval(cur))
		if fetch {
			a, ch, err := c.assignments(ctx, cur.etag(), 0)
			switch {
			case isUnauthorized(err):
				return d.revoke(c)
			case err != nil:
				d.Log.Print(err)
			case ch:
				if stored, err := d.storeAssignments(a); err != nil {
					return err
				} else if stored {
					nextRun = time.Now()
				}
			}
		}
	}
}

// revoke handles a 401: the server deleted the machine, so its credential, state and
// unsent reports go, and the daemon is back to waiting for enrollment.
func (d *Daemon) revoke(c *client) error {
	d.Log.Printf("the server does not know this machine's credential any more (the machine was deleted): forgetting the enrollment; not enrolled")
	if err := d.forget(c.credential); err != nil {
		return err
	}
	return errRevoked
}

// spooled counts the reports in the spool.
func (d *Daemon) spooled() int {
	names, _ := d.spool.list()
	return len(names)
}

// storeAssignments keeps new assignments and reports whether they differ from the ones held.
func (d *Daemon) storeAssignments(a agentproto.Assignments) (bool, error) {
	changed := false
	_, err := d.store.update(func(s *State) error {
		if s.Assignments != nil && s.etag() == a.ETag {
			return nil
		}
		s.setAssignments(a)
		changed = true
		return nil
	})
	if changed {
		names := make([]string, len(a.Assignments))
		for i, x := range a.Assignments {
			names[i] = x.Name
		}
		list := "none"
		if len(names) > 0 {
			list = strings.Join(names, ", ")
		}
		d.Log.Printf("assignments (ETag %s): %s", a.ETag, list)
	}
	return changed, err
}

// pollAssignments long-polls the server for assignments until ctx ends, stores each new
// set and signals changed. A 401 signals revoked and ends it.
func (d *Daemon) pollAssignments(ctx context.Context, c *client, changed, revoked chan<- struct{}) {
	backoff := d.Timing.BackoffMin
	lastFailure := ""
	for ctx.Err() == nil {
		st, err := d.store.load()
		if err != nil {
			d.Log.Print(err)
			_ = sleep(ctx, backoff)
			continue
		}
		started := time.Now()
		a, ch, err := c.assignments(ctx, st.etag(), d.Timing.PollWait)
		switch {
		case ctx.Err() != nil:
			return
		case isUnauthorized(err):
			select {
			case revoked <- struct{}{}:
			default:
			}
			return
		case err != nil:
			if msg := err.Error(); msg != lastFailure {
				d.Log.Printf("%v; retrying with backoff", err)
				lastFailure = msg
			}
			_ = sleep(ctx, backoff)
			backoff = min(2*backoff, d.Timing.BackoffMax)
			continue
		}
		lastFailure = ""
		if ch {
			stored, err := d.storeAssignments(a)
			if err != nil {
				d.Log.Print(err)
			}
			if stored {
				select {
				case changed <- struct{}{}:
				default:
				}
			}
			backoff = d.Timing.BackoffMin
			continue
		}
		if time.Since(started) < d.Timing.PollWait/2 {
			// The server answered "no change" without holding the request: polling again at
			// once would be a tight loop.
			_ = sleep(ctx, backoff)
			backoff = min(2*backoff, d.Timing.BackoffMax)
			continue
		}
		backoff = d.Timing.BackoffMin
	}
}

// runAndSpool runs every assignment, records the outcome, and spools the report that
// carries it with the pending events.
func (d *Daemon) runAndSpool(ctx context.Context, st State) error {
	env := d.System.env()
	var assignments []agentproto.Assignment
	if st.Assignments != nil {
		assignments = st.Assignments.Assignments
	}
	types := map[string]string{}
	var outcomes []runOutcome
	for _, a := range assignments {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch a.AssignmentType {
		case agentproto.AssignmentAudit, agentproto.AssignmentApplyAndMonitor, agentproto.AssignmentApplyAndAutoCorrect:
		default:
			d.Log.Printf("assignment %s: unknown type %q, audited only", a.Name, a.AssignmentType)
		}
		o := runAssignment(ctx, env, a, st, time.Now)
		d.logOutcome(st, a, o)
		types[a.Name] = a.AssignmentType
		outcomes = append(outcomes, o)
	}
	st, err := d.store.update(func(s *State) error {
		for _, o := range outcomes {
			o.merge(s, types[o.report.Name])
		}
		return nil
	})
	if err != nil {
		return err
	}
	r := agentproto.Report{Version: agentproto.Version, ID: newID(), Time: time.Now().UTC(), Facts: facts(env, time.Now())}
	if r.Tattoo, err = readTattoo(env); err != nil {
		d.Log.Print(err)
	}
	for _, o := range outcomes {
		r.Assignments = append(r.Assignments, o.report)
	}
	// A report carries at most 1000 events; the rest wait for the next one.
	r.Events = st.PendingEvents[:min(len(st.PendingEvents), 1000)]
	if err := r.Validate(); err != nil {
		return fmt.Errorf("report %s is not valid, not spooled: %w", r.ID, err)
	}
	dropped, err := d.spool.put(r)
	if err != nil {
		return err
	}
	if len(dropped) > 0 {
		d.Log.Printf("spool full (%d reports): dropped the oldest, %s", d.spool.max, strings.Join(dropped, ", "))
	}
	sent := map[string]bool{}
	for _, e := range r.Events {
		sent[e.ID] = true
	}
	_, err = d.store.update(func(s *State) error {
		kept := s.PendingEvents[:0]
		for _, e := range s.PendingEvents {
			if !sent[e.ID] {
				kept = append(kept, e)
			}
		}
		s.PendingEvents = kept
		return nil
	})
	return err
}

// logOutcome logs what a run changed, and its result when it differs from the last run's:
// a result that stays the same is not news at every interval.
func (d *Daemon) logOutcome(st State, a agentproto.Assignment, o runOutcome) {
	for _, e := range o.events {
		switch e.Kind {
		case agentproto.EventCorrection:
			d.Log.Printf("assignment %s: corrected %s: %s: %s -> %s", a.Name, e.Check, e.Target, e.Before, e.After)
		default:
			d.Log.Printf("assignment %s: %s %s: %s", a.Name, e.Kind, e.Check, e.Message)
		}
	}
	r := o.report
	var reasons []string
	nonCompliant := 0
	for _, res := range r.Resources {
		if res.ComplianceStatus == agentproto.StatusCompliant {
			continue
		}
		nonCompliant++
		for _, reason := range res.Reasons {
			reasons = append(reasons, res.ResourceID+": "+reason.Code)
		}
	}
	for _, last := range st.LastRuns {
		if last.Name == a.Name && last.Hash == a.Hash && last.ComplianceStatus == r.ComplianceStatus && last.NonCompliant == nonCompliant {
			return
		}
	}
	if r.ComplianceStatus == agentproto.StatusCompliant {
		d.Log.Printf("assignment %s Compliant (%d checks)", a.Name, len(r.Resources))
		return
	}
	d.Log.Printf("assignment %s %s: %s", a.Name, r.ComplianceStatus, truncateText(strings.Join(reasons, "; "), 1000))
}

// flush sends the spooled reports, oldest first, each with its own ID, and deletes each
// one the server acknowledges. It stops at the first that cannot be sent now and returns
// why. fetch says that an acknowledgement named assignments newer than the state's.
func (d *Daemon) flush(ctx context.Context, c *client) (fetch bool, err error) {
	names, err := d.spool.list()
	if err != nil {
		return false, err
	}
	sent := 0
	var lastID string
	for _, name := range names {
		r, err := d.spool.read(name)
		if err != nil {
			d.Log.Printf("%v: dropping it", err)
			if err := d.spool.remove(name); err != nil {
				return fetch, err
			}
			continue
		}
		resp, err := c.report(ctx, r)
		if isBadReport(err) {
			// The server will never take this report: keeping it would hold back every
			// later one. Other refusals (403, 404: a wrong URL, an older server) are the
			// server's, and the reports wait for it.
			d.Log.Printf("the server refused report %s, dropping it: %v", r.ID, err)
			if err := d.spool.remove(name); err != nil {
				return fetch, err
			}
			continue
		}
		if err != nil {
			if sent > 0 {
				d.Log.Printf("sent %d spooled reports", sent)
			}
			return fetch, err
		}
		if err := d.spool.remove(name); err != nil {
			return fetch, err
		}
		sent++
		lastID = r.ID
		st, err := d.store.update(func(s *State) error {
			s.LastReport = time.Now().UTC()
			if resp.ReportIntervalSeconds > 0 {
				s.ReportIntervalSeconds = resp.ReportIntervalSeconds
			}
			return nil
		})
		if err != nil {
			return fetch, err
		}
		if resp.AssignmentsETag != "" && resp.AssignmentsETag != st.etag() {
			fetch = true
		}
	}
	switch {
	case sent == 1:
		d.Log.Printf("report %s sent", lastID)
	case sent > 1:
		d.Log.Printf("sent %d reports", sent)
	}
	return fetch, nil
}

// sleep waits for d or until ctx ends, and then returns ctx's error.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
