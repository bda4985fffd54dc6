package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gildhq/gild/api"
	"github.com/gildhq/gild/jobs"
	"github.com/gildhq/gild/pipeline"
	"github.com/gildhq/gild/store/postgres/pgtest"
)

// The job system's acceptance tests run real `gild serve` children (this test binary)
// on one database. Their builds are a single step that sleeps and succeeds or fails as
// the template's tattoo says: what is tested is who starts, runs and finishes builds, not
// the image builder, which has tests of its own.
const (
	childJobsEnv  = "GILD_SERVER_TEST_CHILD_JOBS"  // set: fast job timings and test builds
	childStoreEnv = "GILD_SERVER_TEST_CHILD_STORE" // the store URL the child opens
)

// jobsChild tunes a child server for the job tests.
func jobsChild(cfg *Config) {
	cfg.StoreURL = os.Getenv(childStoreEnv)
	cfg.NoVMs = true
	cfg.Jobs = jobs.Options{ScheduleTick: time.Second, EventsEvery: time.Second, RescueAfter: 6 * time.Second,
		DeliveryRetryBase: 2 * time.Second}
	cfg.BuildSteps = func(*pipeline.Build) []pipeline.Step { return []pipeline.Step{testBuildStep{}} }
}

// testBuildStep sleeps for the template's tattoo testSleep, says which process ran it,
// and fails when the tattoo's testOutcome is "fail".
type testBuildStep struct{}

func (testBuildStep) Name() string            { return "work" }
func (testBuildStep) SubState() string        { return pipeline.SubBuilding }
func (testBuildStep) Cleanup(*pipeline.Build) {}

func (testBuildStep) Run(ctx context.Context, b *pipeline.Build) error {
	b.Log.Printf("built by pid %d", os.Getpid())
	d, _ := time.ParseDuration(b.Template.Tattoo["testSleep"])
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
	}
	if b.Template.Tattoo["testOutcome"] == "fail" {
		return fmt.Errorf("the test template asked to fail")
	}
	return nil
}

const (
	jtSub   = "/subscriptions/jobs"
	jtGroup = jtSub + "/resourceGroups/images"
	jtDef   = jtGroup + "/providers/Microsoft.Compute/galleries/g/images/d"
)

// jobsRig is a database, one data directory per server, and the admin token.
type jobsRig struct {
	storeURL string
	dirs     []string
	token    string
}

func newJobsRig(t *testing.T, storeURL string, servers int) *jobsRig {
	r := &jobsRig{storeURL: storeURL}
	for range servers {
		r.dirs = append(r.dirs, t.TempDir())
	}
	return r
}

// start starts server i (again).
func (r *jobsRig) start(t *testing.T, i int) *child {
	t.Helper()
	c := startChild(t, r.dirs[i], childJobsEnv+"=1", childStoreEnv+"="+r.storeURL)
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			_ = c.cmd.Process.Kill()
			_ = c.cmd.Wait()
		}
	})
	if r.token == "" {
		raw, err := os.ReadFile(filepath.Join(r.dirs[i], AdminTokenFile))
		if err != nil {
			t.Fatalf("the first server made no admin token: %v", err)
		}
		r.token = strings.TrimSpace(string(raw))
	}
	return c
}

func (r *jobsRig) must(t *testing.T, c *child, method, path string, body any, want ...int) map[string]any {
	t.Helper()
	return c.must(t, r.token, method, path, body, want...)
}

// template creates the template's parents (once) and the template, whose source is a
// disk at sourceURL vouched for by the sums file at sumsURL.
func (r *jobsRig) template(t *testing.T, c *child, name string, tattoo map[string]string, schedule map[string]any, sourceURL, sumsURL string) string {
	t.Helper()
	if code, _, _ := c.do(t, r.token, "GET", jtSub, nil); code != 200 {
		r.must(t, c, "PUT", jtSub, map[string]any{"properties": map[string]any{}}, 201)
		r.must(t, c, "PUT", jtGroup, map[string]any{"location": "local"}, 201)
	}
	src := map[string]any{"type": "Url", "url": sourceURL, "checksumUrl": sumsURL}
	if sumsURL == "" {
		src = map[string]any{"type": "Url", "url": sourceURL, "checksum": "sha256:" + strings.Repeat("ab", 32)}
	}
	props := map[string]any{"source": src, "tattoo": tattoo,
		"distribute": []map[string]any{{"type": "SharedImage", "galleryImageId": jtDef, "runOutputName": "out"}}}
	if schedule != nil {
		props["schedule"] = schedule
	}
	id := jtGroup + "/providers/Microsoft.VirtualMachineImages/imageTemplates/" + name
	r.must(t, c, "PUT", id, map[string]any{"location": "local", "properties": props}, 200, 201)
	return id
}

// runs lists the template's runs.
func (r *jobsRig) runs(t *testing.T, c *child, tmpl string) map[string]pipeline.RunProperties {
	t.Helper()
	m := r.must(t, c, "GET", tmpl+"/runs", nil, 200)
	out := map[string]pipeline.RunProperties{}
	vals, _ := m["value"].([]any)
	for _, v := range vals {
		o, _ := v.(map[string]any)
		raw, _ := json.Marshal(o["properties"])
		var p pipeline.RunProperties
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatalf("a run's properties: %v", err)
		}
		id, _ := o["id"].(string)
		out[id] = p
	}
	return out
}

func (r *jobsRig) templateProps(t *testing.T, c *child, tmpl string) pipeline.TemplateProperties {
	t.Helper()
	m := r.must(t, c, "GET", tmpl, nil, 200)
	raw, _ := json.Marshal(m["properties"])
	var p pipeline.TemplateProperties
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("the template's properties: %v", err)
	}
	return p
}

func (r *jobsRig) jobs(t *testing.T, c *child, state string) []jobs.Job {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+c.addr+"/providers/Gild.Jobs/jobs?api-version="+api.Version+"&$top=500&state="+state, nil)
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Value []jobs.Job `json:"value"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	return page.Value
}

// TestTwoServersShareSchedules runs two servers on one PostgreSQL with a schedule every
// minute: between them they start exactly one run per minute. Then a server is killed
// while it builds, and the other finishes the build.
func TestTwoServersShareSchedules(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about four minutes")
	}
	t.Parallel()
	r := newJobsRig(t, pgtest.URL(t), 2)
	a := r.start(t, 0)
	b := r.start(t, 1)
	servers := []*child{a, b}
	tmpl := r.template(t, a, "minutely", map[string]string{"testSleep": "5s"}, map[string]any{"cron": "* * * * *"}, "https://images.example.com/base.qcow2", "")
	start := time.Now()
	// Three minutes of schedule: the first look only notes the schedule, so the first run
	// is for the next minute.
	time.Sleep(time.Until(start.Truncate(time.Minute).Add(3*time.Minute + 20*time.Second)))
	r.must(t, b, "PATCH", tmpl, map[string]any{"properties": map[string]any{"schedule": map[string]any{"cron": "* * * * *", "disabled": true}}}, 200)
	runs := r.runs(t, b, tmpl)
	perMinute := map[time.Time][]string{}
	builtBy := map[string]bool{}
	for id, p := range runs {
		if p.Trigger != pipeline.TriggerSchedule || p.ScheduledTime == nil {
			t.Errorf("run %s: trigger %q, scheduled time %v; want a scheduled run", id, p.Trigger, p.ScheduledTime)
			continue
		}
		perMinute[*p.ScheduledTime] = append(perMinute[*p.ScheduledTime], id)
		_, log, _ := runLogOf(r, a, id)
		if i := strings.Index(log, "built by pid "); i >= 0 {
			builtBy[strings.Fields(log[i+len("built by pid "):])[0]] = true
		}
	}
	for at, ids := range perMinute {
		if len(ids) != 1 {
			t.Errorf("the schedule time %s has %d runs, want 1: %v", at, len(ids), ids)
		}
		if at.Second() != 0 {
			t.Errorf("a run for %s, which is not on a minute", at)
		}
	}
	if len(perMinute) < 2 || len(perMinute) > 4 {
		t.Errorf("%d scheduled minutes had runs in about 3 minutes, want 2 to 4: %v", len(perMinute), perMinute)
	}
	t.Logf("%d runs for %d minutes, built by processes %v", len(runs), len(perMinute), builtBy)

	// Kill the server that builds, mid-build: the other finishes the run.
	r.must(t, a, "PATCH", tmpl, map[string]any{"properties": map[string]any{"tattoo": map[string]string{"testSleep": "40s"}}}, 200)
	run := r.must(t, a, "POST", tmpl+"/run", nil, 202)["id"].(string)
	var running jobs.Job
	for deadline := time.Now().Add(30 * time.Second); running.ID == 0; time.Sleep(200 * time.Millisecond) {
		for _, j := range r.jobs(t, a, "running") {
			if j.Kind == "gild.build" && strings.Contains(j.Args, run) {
				running = j
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no server took the build within 30 s")
		}
	}
	time.Sleep(3 * time.Second)
	_, log, _ := runLogOf(r, a, run)
	victim, survivor := a, b
	if !strings.Contains(log, fmt.Sprintf("built by pid %d", a.cmd.Process.Pid)) {
		victim, survivor = b, a
	}
	sigkill(t, victim)
	killed := time.Now()
	t.Logf("killed pid %d, which was building %s (job %d, attempted by %v)", victim.cmd.Process.Pid, run, running.ID, running.AttemptedBy)
	var p pipeline.RunProperties
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(time.Second) {
		p = r.runs(t, survivor, tmpl)[run]
		if p.RunState != pipeline.StateRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("3 minutes after the kill the run is still %s/%s", p.RunState, p.RunSubState)
		}
	}
	if p.RunState != pipeline.StateSucceeded || p.Attempt != 2 {
		t.Fatalf("after the kill the run ended %s (attempt %d): %s; want Succeeded on attempt 2", p.RunState, p.Attempt, p.Message)
	}
	_, log, _ = runLogOf(r, survivor, run)
	if !strings.Contains(log, fmt.Sprintf("built by pid %d", survivor.cmd.Process.Pid)) {
		t.Errorf("the surviving server (pid %d) did not build the run; log:\n%s", survivor.cmd.Process.Pid, log)
	}
	t.Logf("the other server finished the run %v after the kill", time.Since(killed).Round(time.Second))
	_ = servers
}

func runLogOf(r *jobsRig, c *child, id string) (int, string, error) { return c.runLog(r.token, id) }

// sumsServer serves a disk's sums file whose content the test changes.
type sumsServer struct {
	mu   sync.Mutex
	sums string
	*httptest.Server
}

func newSumsServer(t *testing.T) *sumsServer {
	s := &sumsServer{}
	s.set("base-1")
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		fmt.Fprint(w, s.sums)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *sumsServer) set(content string) {
	h := sha256.Sum256([]byte(content))
	s.mu.Lock()
	s.sums = hex.EncodeToString(h[:]) + "  base.qcow2\n"
	s.mu.Unlock()
}

// TestBaseImageTrigger: a newer base (the sums file changes) starts exactly one run; a
// "changed" schedule whose inputs did not change starts none.
func TestBaseImageTrigger(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about three minutes")
	}
	t.Parallel()
	sums := newSumsServer(t)
	r := newJobsRig(t, pgtest.URL(t), 1)
	c := r.start(t, 0)
	fast := map[string]string{"testSleep": "1s"}
	trig := r.template(t, c, "triggered", fast, map[string]any{"baseImageTrigger": true, "basePollMinutes": 1}, sums.URL+"/base.qcow2", sums.URL+"/SHA256SUMS")
	steady := newSumsServer(t) // the "changed" template's base does not change
	changed := r.template(t, c, "changed", fast, nil, steady.URL+"/base.qcow2", steady.URL+"/SHA256SUMS")

	// The "changed" template is built once by hand; then a schedule every minute that
	// runs only on change.
	first := r.must(t, c, "POST", changed+"/run", nil, 202)["id"].(string)
	waitRun(t, r, c, changed, first, pipeline.StateSucceeded)
	r.must(t, c, "PATCH", changed, map[string]any{"properties": map[string]any{"schedule": map[string]any{"cron": "* * * * *", "when": "changed"}}}, 200)

	// The trigger's first look notes the base; change it, and one run starts.
	waitFor(t, 90*time.Second, "the trigger's first look at the base", func() bool {
		st := r.templateProps(t, c, trig).ScheduleStatus
		return st != nil && st.LastBaseVersion != ""
	})
	if n := len(r.runs(t, c, trig)); n != 0 {
		t.Fatalf("the trigger's first look started %d runs, want none", n)
	}
	sums.set("base-2")
	waitFor(t, 2*time.Minute, "a run for the new base", func() bool { return len(r.runs(t, c, trig)) > 0 })
	// Give the trigger two more looks: still one run.
	time.Sleep(70 * time.Second)
	runs := r.runs(t, c, trig)
	if len(runs) != 1 {
		t.Fatalf("the new base started %d runs, want exactly 1", len(runs))
	}
	for id, p := range runs {
		if p.Trigger != pipeline.TriggerBaseImage {
			t.Errorf("run %s has trigger %q, want %q", id, p.Trigger, pipeline.TriggerBaseImage)
		}
	}
	// By now the "changed" schedule has fired at least once, with nothing changed.
	st := r.templateProps(t, c, changed).ScheduleStatus
	if got := len(r.runs(t, c, changed)); got != 1 {
		t.Errorf("the changed-only schedule started %d runs with no change, want none (1 run in all)", got-1)
	}
	if st == nil || !strings.Contains(st.LastSkipReason, "nothing changed") {
		t.Errorf("the changed-only schedule's status says no skip: %+v", st)
	}
}

func waitRun(t *testing.T, r *jobsRig, c *child, tmpl, run, want string) {
	t.Helper()
	waitFor(t, time.Minute, "run "+run+" to end", func() bool { return r.runs(t, c, tmpl)[run].RunState != pipeline.StateRunning })
	if p := r.runs(t, c, tmpl)[run]; p.RunState != want {
		t.Fatalf("run %s ended %s (%s), want %s", run, p.RunState, p.Message, want)
	}
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !ok(); time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", limit, what)
		}
	}
}

// receiver is a webhook endpoint that answers with the statuses it is given, in turn,
// then 200, and keeps what it got.
type receiver struct {
	mu       sync.Mutex
	answers  []int
	got      []receivedDelivery
	received chan struct{}
	*httptest.Server
}

type receivedDelivery struct {
	header http.Header
	body   []byte
	status int
}

func newReceiver(t *testing.T, answers ...int) *receiver {
	rc := &receiver{answers: answers, received: make(chan struct{}, 100)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		status := http.StatusOK
		if len(rc.answers) > 0 {
			status, rc.answers = rc.answers[0], rc.answers[1:]
		}
		rc.got = append(rc.got, receivedDelivery{header: r.Header.Clone(), body: body, status: status})
		rc.mu.Unlock()
		w.WriteHeader(status)
		rc.received <- struct{}{}
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) deliveries() []receivedDelivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

func createWebhook(t *testing.T, r *jobsRig, c *child, name, url string, events ...string) string {
	t.Helper()
	m := r.must(t, c, "PUT", "/providers/Gild.Notifications/webhooks/"+name, map[string]any{"url": url, "events": events}, 201)
	secret, _ := m["secret"].(string)
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("the new webhook has no secret: %v", m)
	}
	return secret
}

// TestScheduleDisabledAfterThreeFailures: a schedule every minute whose runs fail three
// times in a row disables itself, says why, and a webhook says so.
func TestScheduleDisabledAfterThreeFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about four minutes")
	}
	t.Parallel()
	rc := newReceiver(t)
	r := newJobsRig(t, sqliteURL(t), 1)
	c := r.start(t, 0)
	secret := createWebhook(t, r, c, "ops", rc.URL, jobs.EventScheduleDisabled, jobs.EventRunFailed)
	tmpl := r.template(t, c, "broken", map[string]string{"testSleep": "1s", "testOutcome": "fail"},
		map[string]any{"cron": "* * * * *"}, "https://images.example.com/base.qcow2", "")
	waitFor(t, 5*time.Minute, "the schedule to be disabled", func() bool {
		p := r.templateProps(t, c, tmpl)
		return p.Schedule != nil && p.Schedule.Disabled
	})
	p := r.templateProps(t, c, tmpl)
	if p.ScheduleStatus == nil || p.ScheduleStatus.ConsecutiveFailures != 3 || !strings.Contains(p.ScheduleStatus.DisabledReason, "3 scheduled runs failed in a row") {
		t.Fatalf("the disabled schedule's status: %+v", p.ScheduleStatus)
	}
	if n := len(r.runs(t, c, tmpl)); n != 3 {
		t.Errorf("%d runs, want 3", n)
	}
	var disabled *receivedDelivery
	waitFor(t, 30*time.Second, "the schedule.disabled webhook", func() bool {
		for _, d := range rc.deliveries() {
			if d.header.Get("X-Gild-Event") == jobs.EventScheduleDisabled {
				disabled = &d
				return true
			}
		}
		return false
	})
	if err := jobs.Verify(secret, disabled.header, disabled.body, time.Now(), time.Minute); err != nil {
		t.Errorf("the schedule.disabled delivery: %v", err)
	}
	var ev jobs.Event
	if err := json.Unmarshal(disabled.body, &ev); err != nil || ev.Subject != tmpl || !bytes.Contains(ev.Data, []byte("failed in a row")) {
		t.Errorf("the schedule.disabled event: %v %s", err, disabled.body)
	}
	// Three run.failed events came too, each naming the failing step.
	waitFor(t, 30*time.Second, "three run.failed webhooks", func() bool {
		n := 0
		for _, d := range rc.deliveries() {
			if d.header.Get("X-Gild-Event") == jobs.EventRunFailed && bytes.Contains(d.body, []byte(`"failedStep":"work"`)) {
				n++
			}
		}
		return n == 3
	})
	// No more runs once disabled.
	time.Sleep(65 * time.Second)
	if n := len(r.runs(t, c, tmpl)); n != 3 {
		t.Errorf("%d runs after the schedule was disabled, want still 3", n)
	}
}

func sqliteURL(t *testing.T) string {
	return "sqlite://" + filepath.ToSlash(filepath.Join(t.TempDir(), "gild.db"))
}

// TestWebhookRetriesAcrossRestart: a receiver that answers 500 twice, then 200, gets
// the event once it answers 200, with a valid signature, though the server was killed
// and started again in between.
func TestWebhookRetriesAcrossRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about half a minute")
	}
	t.Parallel()
	rc := newReceiver(t, 500, 500)
	r := newJobsRig(t, sqliteURL(t), 1)
	c := r.start(t, 0)
	secret := createWebhook(t, r, c, "flaky", rc.URL, jobs.EventRunFailed)
	tmpl := r.template(t, c, "fails", map[string]string{"testSleep": "0s", "testOutcome": "fail"}, nil, "https://images.example.com/base.qcow2", "")
	run := r.must(t, c, "POST", tmpl+"/run", nil, 202)["id"].(string)
	select {
	case <-rc.received:
	case <-time.After(time.Minute):
		t.Fatal("no delivery within a minute of the failed run")
	}
	sigkill(t, c)
	t.Log("killed the server after the first answer (500)")
	c = r.start(t, 0)
	waitFor(t, 2*time.Minute, "the delivery to get through", func() bool {
		got := rc.deliveries()
		return len(got) > 0 && got[len(got)-1].status == 200
	})
	got := rc.deliveries()
	if len(got) != 3 {
		t.Errorf("the receiver got %d POSTs, want 3 (500, 500, 200)", len(got))
	}
	last := got[len(got)-1]
	if err := jobs.Verify(secret, last.header, last.body, time.Now(), time.Minute); err != nil {
		t.Fatalf("the delivered event: %v", err)
	}
	var ev jobs.Event
	if err := json.Unmarshal(last.body, &ev); err != nil || ev.Type != jobs.EventRunFailed || !strings.Contains(string(ev.Data), run) {
		t.Fatalf("the delivered event is not the run's failure: %v %s", err, last.body)
	}
	for _, d := range got {
		if !bytes.Equal(d.body, last.body) || d.header.Get("X-Gild-Delivery") != last.header.Get("X-Gild-Delivery") {
			t.Errorf("a retry sent a different body or delivery ID:\n%s\n%s", d.body, last.body)
		}
	}
	// The delivery log has it, attempt by attempt.
	var log struct {
		Value []jobs.Delivery `json:"value"`
	}
	waitFor(t, 10*time.Second, "the delivery log to say Delivered", func() bool {
		m := r.must(t, c, "GET", "/providers/Gild.Notifications/webhooks/flaky/deliveries", nil, 200)
		raw, _ := json.Marshal(m)
		_ = json.Unmarshal(raw, &log)
		return len(log.Value) == 1 && log.Value[0].State == jobs.DeliveryDelivered
	})
	d := log.Value[0]
	if n := len(d.Tries); n < 2 || d.Tries[n-1].Status != 200 || d.Tries[0].Status != 500 {
		t.Errorf("the delivery log's attempts: %+v", d.Tries)
	}
}
