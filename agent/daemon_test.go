package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gildhq/gild/agentproto"
	"github.com/gildhq/gild/check"
)

// fakeServer plays the server's side of the machine channel, as agentproto describes it.
// It is an edge here: the real server is tested end to end elsewhere.
type fakeServer struct {
	t   *testing.T
	srv *httptest.Server

	mu          sync.Mutex
	down        bool              // every request answers 503
	tokens      map[string]string // enrollment token → machine ID; used tokens are removed
	credentials map[string]string // credential → machine ID
	enrolls     []agentproto.EnrollRequest
	received    map[string]int // report ID → times acknowledged
	reports     []agentproto.Report
	assignments agentproto.Assignments
	wake        chan struct{} // closed when the assignments or the credentials change
	interval    int
}

func newFakeServer(t *testing.T) *fakeServer {
	s := &fakeServer{t: t, tokens: map[string]string{}, credentials: map[string]string{}, received: map[string]int{},
		assignments: agentproto.Assignments{Version: 1, ETag: "1", Assignments: []agentproto.Assignment{}}, wake: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+agentproto.PathEnroll, s.enroll)
	mux.HandleFunc("POST "+agentproto.PathReports, s.report)
	mux.HandleFunc("GET "+agentproto.PathAssignments, s.getAssignments)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *fakeServer) URL() string { return s.srv.URL }

func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`, code, msg)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *fakeServer) setDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

func (s *fakeServer) addToken(token, machine string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = machine
}

// broadcast wakes the held requests; s.mu is held.
func (s *fakeServer) broadcast() {
	close(s.wake)
	s.wake = make(chan struct{})
}

func (s *fakeServer) setAssignments(etag string, as ...agentproto.Assignment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.assignments = agentproto.Assignments{Version: 1, ETag: etag, Assignments: as}
	s.broadcast()
}

// deleteMachines revokes every credential, as deleting the machines does.
func (s *fakeServer) deleteMachines() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.credentials = map[string]string{}
	s.broadcast()
}

func (s *fakeServer) enroll(w http.ResponseWriter, r *http.Request) {
	var req agentproto.EnrollRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		apiError(w, 400, "InvalidRequest", err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enrolls = append(s.enrolls, req)
	if s.down {
		apiError(w, 503, "Unavailable", "down")
		return
	}
	machine, ok := s.tokens[req.Token]
	if !ok {
		apiError(w, 403, "EnrollmentTokenInvalid", "the enrollment token is unknown, expired or used")
		return
	}
	delete(s.tokens, req.Token)
	cred := "cred-" + strconv.Itoa(len(s.enrolls))
	s.credentials[cred] = machine
	writeJSON(w, agentproto.EnrollResponse{Version: 1, MachineID: machine, Credential: cred, ReportIntervalSeconds: s.interval})
}

// authorized answers 503 or 401 when the request may not go on; s.mu is held.
func (s *fakeServer) authorized(w http.ResponseWriter, r *http.Request) bool {
	if s.down {
		apiError(w, 503, "Unavailable", "down")
		return false
	}
	cred, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if _, known := s.credentials[cred]; !ok || !known {
		apiError(w, 401, "Unauthorized", "unknown credential")
		return false
	}
	return true
}

func (s *fakeServer) report(w http.ResponseWriter, r *http.Request) {
	var rep agentproto.Report
	if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
		apiError(w, 400, "InvalidRequest", err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.authorized(w, r) {
		return
	}
	if err := rep.Validate(); err != nil {
		s.t.Errorf("the agent sent an invalid report: %v", err)
		apiError(w, 400, "InvalidReport", err.Error())
		return
	}
	dup := s.received[rep.ID] > 0
	s.received[rep.ID]++
	if !dup {
		s.reports = append(s.reports, rep)
	}
	writeJSON(w, agentproto.ReportResponse{Version: 1, Duplicate: dup, AssignmentsETag: s.assignments.ETag, ReportIntervalSeconds: s.interval})
}

func (s *fakeServer) getAssignments(w http.ResponseWriter, r *http.Request) {
	wait, _ := strconv.Atoi(r.URL.Query().Get("wait"))
	deadline := time.After(time.Duration(wait) * time.Second)
	for {
		s.mu.Lock()
		if !s.authorized(w, r) {
			s.mu.Unlock()
			return
		}
		a, wake := s.assignments, s.wake
		s.mu.Unlock()
		if r.Header.Get("If-None-Match") != `"`+a.ETag+`"` {
			w.Header().Set("ETag", `"`+a.ETag+`"`)
			writeJSON(w, a)
			return
		}
		if wait == 0 {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		select {
		case <-wake:
		case <-deadline:
			w.WriteHeader(http.StatusNotModified)
			return
		case <-r.Context().Done():
			return
		}
	}
}

// reportsCopy returns the distinct reports received so far.
func (s *fakeServer) reportsCopy() []agentproto.Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reports)
}

// syncBuffer is a log destination the daemon's goroutines and the test share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fakeRunner records the programs the daemon runs. useradd adds the user to the root's
// /etc/passwd with the test's own uid and gid, so that chown works without root.
type fakeRunner struct {
	mu    sync.Mutex
	calls []string
	fail  string // a program that fails
}

func (r *fakeRunner) Run(_ context.Context, name string, args ...string) (check.Output, error) {
	r.mu.Lock()
	r.calls = append(r.calls, strings.Join(append([]string{name}, args...), " "))
	r.mu.Unlock()
	if name == r.fail {
		return check.Output{ExitStatus: 1, Stderr: []byte(name + ": failed")}, nil
	}
	switch name {
	case "useradd":
		root, user := "/", args[len(args)-1]
		if len(args) > 1 && args[0] == "--root" {
			root = args[1]
		}
		line := fmt.Sprintf("%s:x:%d:%d::/home/%s:/bin/bash\n", user, os.Getuid(), os.Getgid(), user)
		f, err := os.OpenFile(filepath.Join(root, "etc/passwd"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return check.Output{ExitStatus: 1, Stderr: []byte(err.Error())}, nil
		}
		defer f.Close()
		if _, err := f.WriteString(line); err != nil {
			return check.Output{ExitStatus: 1}, nil
		}
		if err := os.MkdirAll(filepath.Join(root, "home", user), 0o755); err != nil {
			return check.Output{ExitStatus: 1}, nil
		}
		return check.Output{}, nil
	case "usermod", "modprobe":
		return check.Output{}, nil
	}
	return check.Output{ExitStatus: 127, Stderr: []byte(name + ": not found")}, nil
}

func (r *fakeRunner) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// testTiming makes the daemon's waits short; the report interval is an hour, so that a
// test sees a report only when something triggers one.
func testTiming() Timing {
	return Timing{BackoffMin: 5 * time.Millisecond, BackoffMax: 40 * time.Millisecond, NotEnrolledRecheck: 20 * time.Millisecond,
		FirstBootWait: 300 * time.Millisecond, PollWait: time.Second,
		DefaultInterval: time.Hour, MinInterval: 0, MaxInterval: time.Hour}
}

const testTattoo = `{
  "imageDefinition": "debian-12-hardened",
  "imageVersion": "1.4.0"
}
`

// guestRoot is a small machine to provision and report on.
func guestRoot(t *testing.T) string {
	files := map[string]string{
		"/etc/passwd":               "root:x:0:0:root:/root:/bin/bash\n",
		"/etc/hosts":                "127.0.0.1\tlocalhost\n",
		"/etc/sudoers.d/README":     "",
		agentproto.TattooPath:       testTattoo,
		"/etc/ssh/sshd_config":      "PermitRootLogin yes\n",
		"/proc/sys/kernel/hostname": "debian\n",
	}
	for k, v := range guestFiles {
		if k != "/proc/sys/kernel/hostname" {
			files[k] = v
		}
	}
	return writeRoot(t, files)
}

// testDaemon is a daemon on a temporary root, running until the test ends.
type testDaemon struct {
	*Daemon
	logs      *syncBuffer
	runner    *fakeRunner
	hostnames *[]string
	cancel    context.CancelFunc
	done      chan error
}

func newTestDaemon(t *testing.T, root, stateDir, firstBoot string, timing Timing) *testDaemon {
	td := &testDaemon{logs: &syncBuffer{}, runner: &fakeRunner{}, hostnames: &[]string{}}
	var mu sync.Mutex
	td.Daemon = &Daemon{StateDir: stateDir, FirstBootFile: firstBoot, Timing: timing, Log: log.New(td.logs, "", 0),
		System: System{Root: root, Live: true, Runner: td.runner, Sethostname: func(name string) error {
			mu.Lock()
			defer mu.Unlock()
			*td.hostnames = append(*td.hostnames, name)
			return nil
		}}}
	return td
}

func (td *testDaemon) start(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	td.cancel, td.done = cancel, make(chan error, 1)
	go func() { td.done <- td.Run(ctx) }()
	t.Cleanup(func() { td.stop(t) })
}

// stop ends the daemon as SIGTERM does and checks that it returns nil, promptly.
func (td *testDaemon) stop(t *testing.T) {
	if td.cancel == nil {
		return
	}
	td.cancel()
	td.cancel = nil
	select {
	case err := <-td.done:
		if err != nil {
			t.Errorf("Run returned %v when stopped", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("Run did not return after its context ended\nlog:\n%s", td.logs.String())
	}
}

func (td *testDaemon) state(t *testing.T) State {
	t.Helper()
	st, err := (&stateStore{dir: td.StateDir}).load()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, what string, td *testDaemon, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s\nlog:\n%s", what, td.logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func writeFirstBoot(t *testing.T, path string, fb agentproto.FirstBoot) {
	t.Helper()
	data, err := json.Marshal(fb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func firstBootFor(srv *fakeServer, instance, token string) agentproto.FirstBoot {
	return agentproto.FirstBoot{Version: 1, InstanceID: instance, MachineID: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-1",
		ComputerName: "web-1", AdminUsername: "ops", SSHPublicKeys: []string{"ssh-ed25519 AAAAC3 ops@laptop", "ssh-rsa AAAAB3 ci"},
		Server: srv.URL(), EnrollmentToken: token}
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestEnrollFromFirstBoot: a VM gild created provisions itself from its first-boot data
// once, enrolls once, and reports its facts and tattoo.
func TestEnrollFromFirstBoot(t *testing.T) {
	srv := newFakeServer(t)
	machine := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-1"
	srv.addToken("tok-1", machine)
	root, stateDir := guestRoot(t), t.TempDir()
	fbFile := filepath.Join(t.TempDir(), "firstboot.json")
	writeFirstBoot(t, fbFile, firstBootFor(srv, "i-1", "tok-1"))

	td := newTestDaemon(t, root, stateDir, fbFile, testTiming())
	td.start(t)
	eventually(t, "the first report", td, func() bool { return len(srv.reportsCopy()) > 0 })
	td.stop(t)

	// Provisioning.
	read := func(p string) string {
		data, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	if got := read("/etc/hostname"); got != "web-1\n" {
		t.Errorf("/etc/hostname = %q", got)
	}
	if got := read("/etc/hosts"); got != "127.0.0.1\tlocalhost\n127.0.1.1\tweb-1\n" {
		t.Errorf("/etc/hosts = %q", got)
	}
	if !slices.Equal(*td.hostnames, []string{"web-1"}) {
		t.Errorf("sethostname calls %v", *td.hostnames)
	}
	wantCalls := []string{"useradd --root " + root + " -m -s /bin/bash ops", "usermod --root " + root + " -p * ops"}
	if got := td.runner.Calls(); !slices.Equal(got, wantCalls) {
		t.Errorf("programs run %q, want %q", got, wantCalls)
	}
	if got := read("/home/ops/.ssh/authorized_keys"); got != "ssh-ed25519 AAAAC3 ops@laptop\nssh-rsa AAAAB3 ci\n" {
		t.Errorf("authorized_keys = %q", got)
	}
	if m := mode(t, filepath.Join(root, "home/ops/.ssh")); m != 0o700 {
		t.Errorf(".ssh mode %v", m)
	}
	if m := mode(t, filepath.Join(root, "home/ops/.ssh/authorized_keys")); m != 0o600 {
		t.Errorf("authorized_keys mode %v", m)
	}
	if got := read("/etc/sudoers.d/90-gild-ops"); !strings.HasSuffix(got, "\nops ALL=(ALL) NOPASSWD:ALL\n") {
		t.Errorf("sudoers = %q", got)
	}
	if m := mode(t, filepath.Join(root, "etc/sudoers.d/90-gild-ops")); m != 0o440 {
		t.Errorf("sudoers mode %v", m)
	}

	// Enrollment and state.
	st := td.state(t)
	if st.MachineID != machine || st.Credential != "cred-1" || st.Server != srv.URL() || st.InstanceID != "i-1" || st.LastReport.IsZero() {
		t.Errorf("state %+v", st)
	}
	if m := mode(t, filepath.Join(stateDir, stateFile)); m != 0o600 {
		t.Errorf("state.json mode %v", m)
	}
	if len(srv.enrolls) != 1 || srv.enrolls[0].Token != "tok-1" || srv.enrolls[0].Facts.Hostname != "debian" ||
		string(srv.enrolls[0].Tattoo) != `{"imageDefinition":"debian-12-hardened","imageVersion":"1.4.0"}` {
		t.Errorf("enroll requests %+v", srv.enrolls)
	}

	// The report.
	rep := srv.reportsCopy()[0]
	f := rep.Facts
	if len(rep.ID) != 32 || f.Kernel != "6.1.0-27-cloud-amd64" || f.OSRelease["ID"] != "debian" || f.UptimeSeconds != 12.52 ||
		f.BootTime.IsZero() || time.Since(f.BootTime) < 12*time.Second || !strings.HasPrefix(f.AgentVersion, "gild-agent") || f.Architecture == "" {
		t.Errorf("report %+v", rep)
	}
	if string(rep.Tattoo) != string(srv.enrolls[0].Tattoo) {
		t.Errorf("report tattoo %s", rep.Tattoo)
	}
	for _, want := range []string{"provisioned instance i-1: hostname web-1; user ops created; 2 SSH keys for ops; passwordless sudo for ops", "enrolled as " + machine, "report " + rep.ID + " sent"} {
		if !strings.Contains(td.logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, td.logs.String())
		}
	}

	// A restart with the same first-boot data neither provisions nor enrolls again.
	again := newTestDaemon(t, root, stateDir, fbFile, testTiming())
	again.start(t)
	eventually(t, "a report after the restart", again, func() bool { return len(srv.reportsCopy()) > 1 })
	again.stop(t)
	if calls := again.runner.Calls(); len(calls) != 0 || len(*again.hostnames) != 0 || len(srv.enrolls) != 1 {
		t.Errorf("after a restart: programs %q, hostnames %v, %d enrollments", calls, *again.hostnames, len(srv.enrolls))
	}
}

// TestEnrollmentRetriesAndRefusal: an unreachable server is retried with backoff; a
// refused token is not offered again, until new first-boot data brings another.
func TestEnrollmentRetriesAndRefusal(t *testing.T) {
	srv := newFakeServer(t)
	srv.setDown(true)
	root, stateDir := guestRoot(t), t.TempDir()
	fbFile := filepath.Join(t.TempDir(), "firstboot.json")
	fb := firstBootFor(srv, "i-1", "bad-token")
	fb.AdminUsername, fb.SSHPublicKeys = "", nil
	writeFirstBoot(t, fbFile, fb)
	td := newTestDaemon(t, root, stateDir, fbFile, testTiming())
	td.start(t)
	enrolls := func() int {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return len(srv.enrolls)
	}
	eventually(t, "three attempts while the server is down", td, func() bool { return enrolls() >= 3 })
	srv.setDown(false)
	eventually(t, "the refusal recorded", td, func() bool { return td.state(t).RefusedToken != "" })
	n := enrolls()
	time.Sleep(100 * time.Millisecond) // five rechecks
	if enrolls() != n {
		t.Errorf("the refused token was offered again: %d enrollments, then %d", n, enrolls())
	}
	logs := td.logs.String()
	for _, want := range []string{"enroll with " + srv.URL() + ": enroll: the server answered 503", "refused, for good with this token: enroll: the server answered 403 Forbidden: EnrollmentTokenInvalid: the enrollment token is unknown, expired or used",
		"not enrolled: the server refused the enrollment token of instance i-1"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	if strings.Count(logs, "not enrolled: the server refused") != 1 {
		t.Errorf("the refusal is logged at every look:\n%s", logs)
	}
	// New first-boot data (a new token) is tried.
	srv.addToken("good-token", fb.MachineID)
	fb.EnrollmentToken = "good-token"
	writeFirstBoot(t, fbFile, fb)
	eventually(t, "enrollment with the new token", td, func() bool { return td.state(t).Enrolled() })
}

// TestNotEnrolledWaitsForEnroll: without first-boot data the daemon says how to enroll,
// once, and carries on as soon as "gild-agent enroll" has written the state.
func TestNotEnrolledWaitsForEnroll(t *testing.T) {
	srv := newFakeServer(t)
	srv.addToken("tok", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.HybridCompute/machines/sap-01")
	root, stateDir := guestRoot(t), t.TempDir()
	td := newTestDaemon(t, root, stateDir, "", testTiming())
	td.start(t)
	eventually(t, "the hint", td, func() bool {
		return strings.Contains(td.logs.String(), "not enrolled: run gild-agent enroll --server URL --token T")
	})
	time.Sleep(100 * time.Millisecond)
	if n := strings.Count(td.logs.String(), "not enrolled"); n != 1 {
		t.Errorf("logged %d times:\n%s", n, td.logs.String())
	}
	if calls := td.runner.Calls(); !slices.Equal(calls, []string{"modprobe -q qemu_fw_cfg"}) {
		t.Errorf("programs run %q", calls)
	}
	var stdout, stderr bytes.Buffer
	if status := runEnroll(context.Background(), []string{"--server", srv.URL(), "--token", "tok", "--state-dir", stateDir}, &stdout, &stderr, System{Root: root}); status != ExitOK {
		t.Fatalf("enroll: status %d: %s", status, stderr.String())
	}
	if stdout.String() != "/subscriptions/s/resourceGroups/rg/providers/Microsoft.HybridCompute/machines/sap-01\n" {
		t.Errorf("enroll printed %q", stdout.String())
	}
	if srv.enrolls[0].Name != "debian" {
		t.Errorf("enrolled with name %q, want the hostname", srv.enrolls[0].Name)
	}
	eventually(t, "a report", td, func() bool { return len(srv.reportsCopy()) > 0 })
}

// TestFirstBootFromFwCfg: the daemon finds the data where qemu_fw_cfg shows it, even when
// it appears after the daemon started looking.
func TestFirstBootFromFwCfg(t *testing.T) {
	srv := newFakeServer(t)
	srv.addToken("tok", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-1")
	root := guestRoot(t)
	timing := testTiming()
	timing.FirstBootWait = 5 * time.Second // the data appears within it, however slow the machine
	td := newTestDaemon(t, root, t.TempDir(), "", timing)
	td.start(t)
	time.Sleep(50 * time.Millisecond)
	writeFirstBoot(t, filepath.Join(root, fwCfgFirstBoot), firstBootFor(srv, "i-9", "tok"))
	eventually(t, "a report", td, func() bool { return len(srv.reportsCopy()) > 0 })
	if strings.Contains(td.logs.String(), "not enrolled") {
		t.Errorf("the daemon did not wait for fw_cfg:\n%s", td.logs.String())
	}
}

// enrolledDaemon is a daemon enrolled with srv and started.
func enrolledDaemon(t *testing.T, srv *fakeServer, timing Timing) (*testDaemon, string) {
	t.Helper()
	srv.addToken("tok", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.HybridCompute/machines/m1")
	root, stateDir := guestRoot(t), t.TempDir()
	var stderr bytes.Buffer
	if status := runEnroll(context.Background(), []string{"--server", srv.URL(), "--token", "tok", "--state-dir", stateDir}, &bytes.Buffer{}, &stderr, System{Root: root}); status != ExitOK {
		t.Fatalf("enroll: %s", stderr.String())
	}
	td := newTestDaemon(t, root, stateDir, filepath.Join(t.TempDir(), "none.json"), timing)
	td.start(t)
	return td, root
}

// TestSpoolWhileServerDown: reports made while the server is down wait in the spool and
// are each sent once, with their IDs, oldest first, when it is back.
func TestSpoolWhileServerDown(t *testing.T) {
	srv := newFakeServer(t)
	timing := testTiming()
	timing.MaxInterval = 30 * time.Millisecond // a report every 30 ms
	td, _ := enrolledDaemon(t, srv, timing)
	eventually(t, "the first report", td, func() bool { return len(srv.reportsCopy()) > 0 })
	srv.setDown(true)
	var spooled []string
	eventually(t, "three spooled reports", td, func() bool {
		names, _ := td.spool.list()
		if len(names) >= 3 {
			spooled = names
			return true
		}
		return false
	})
	srv.setDown(false)
	eventually(t, "an empty spool", td, func() bool { names, _ := td.spool.list(); return len(names) == 0 })
	td.stop(t)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	var order []string
	for _, r := range srv.reports {
		order = append(order, r.ID)
	}
	last := -1
	for _, name := range spooled {
		id := reportIDOf(name)
		i := slices.Index(order, id)
		if i < 0 {
			t.Errorf("spooled report %s never reached the server", id)
			continue
		}
		if i < last {
			t.Errorf("spooled report %s arrived out of order", id)
		}
		last = i
	}
	for id, n := range srv.received {
		if n != 1 {
			t.Errorf("report %s acknowledged %d times", id, n)
		}
	}
	if !strings.Contains(td.logs.String(), "reports spooled: report: the server answered 503 Service Unavailable: Unavailable: down; retrying with backoff") {
		t.Errorf("log:\n%s", td.logs.String())
	}
}

// TestSpoolCap: the spool keeps the newest reports.
func TestSpoolCap(t *testing.T) {
	s := spool{dir: filepath.Join(t.TempDir(), "spool"), max: 3}
	base := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	var allDropped []string
	for i := range 5 {
		dropped, err := s.put(agentproto.Report{Version: 1, ID: fmt.Sprintf("r%d", i), Time: base.Add(time.Duration(i) * time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		allDropped = append(allDropped, dropped...)
	}
	names, err := s.list()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, n := range names {
		r, err := s.read(n)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	if !slices.Equal(ids, []string{"r2", "r3", "r4"}) || !slices.Equal(allDropped, []string{"r0", "r1"}) {
		t.Errorf("kept %v, dropped %v", ids, allDropped)
	}
	if m := mode(t, filepath.Join(s.dir, names[0])); m != 0o600 {
		t.Errorf("spool file mode %v", m)
	}
}

// TestRevokedCredential: a 401 means the machine was deleted: the credential and the
// spool go, and the daemon waits to be enrolled again.
func TestRevokedCredential(t *testing.T) {
	srv := newFakeServer(t)
	td, _ := enrolledDaemon(t, srv, testTiming())
	eventually(t, "the first report", td, func() bool { return len(srv.reportsCopy()) > 0 })
	srv.deleteMachines()
	eventually(t, "the credential forgotten", td, func() bool { return !td.state(t).Enrolled() })
	eventually(t, "the hint to enroll", td, func() bool { return strings.Contains(td.logs.String(), "not enrolled: run gild-agent enroll") })
	st := td.state(t)
	if st.Credential != "" || st.MachineID != "" || st.Assignments != nil {
		t.Errorf("state after revocation %+v", st)
	}
	if !strings.Contains(td.logs.String(), "the machine was deleted") {
		t.Errorf("log:\n%s", td.logs.String())
	}
}

// TestAssignmentChangeRunsAtOnce: new assignments arrive by long poll and run at once,
// not at the next interval (an hour away); an auto-correction reaches the server as an
// event and the report says the state after it.
func TestAssignmentChangeRunsAtOnce(t *testing.T) {
	srv := newFakeServer(t)
	td, root := enrolledDaemon(t, srv, testTiming())
	eventually(t, "the first report", td, func() bool { return len(srv.reportsCopy()) > 0 })
	srv.setAssignments("2", agentproto.Assignment{Name: "ssh", Hash: "h1", AssignmentType: agentproto.AssignmentApplyAndAutoCorrect,
		Checks: json.RawMessage(`[{"name":"no root login","kind":"lineInFile","path":"/etc/ssh/sshd_config","line":"PermitRootLogin no","matches":"^PermitRootLogin\\b"}]`)})
	var rep agentproto.Report
	eventually(t, "a report with the assignment", td, func() bool {
		for _, r := range srv.reportsCopy() {
			if len(r.Assignments) > 0 {
				rep = r
				return true
			}
		}
		return false
	})
	a := rep.Assignments[0]
	if a.Name != "ssh" || a.Hash != "h1" || a.ComplianceStatus != "Compliant" || a.OperationType != "Initial" || len(a.Resources) != 1 {
		t.Errorf("assignment report %+v", a)
	}
	if len(rep.Events) != 1 || rep.Events[0].Kind != agentproto.EventCorrection || rep.Events[0].Before != `"PermitRootLogin yes"` || rep.Events[0].After != `"PermitRootLogin no"` {
		t.Errorf("events %+v", rep.Events)
	}
	if data, _ := os.ReadFile(filepath.Join(root, "etc/ssh/sshd_config")); string(data) != "PermitRootLogin no\n" {
		t.Errorf("sshd_config %q", data)
	}
	eventually(t, "the events leaving the state", td, func() bool { return len(td.state(t).PendingEvents) == 0 })
	st := td.state(t)
	if st.etag() != "2" || len(st.LastRuns) != 1 || st.LastRuns[0].ComplianceStatus != "Compliant" {
		t.Errorf("state %+v", st)
	}
	// status shows it.
	var stdout bytes.Buffer
	if status := runStatus([]string{"--state-dir", td.StateDir}, &stdout, &bytes.Buffer{}); status != ExitOK {
		t.Errorf("status exit %d", status)
	}
	for _, want := range []string{"machine:          /subscriptions/s/resourceGroups/rg/providers/Microsoft.HybridCompute/machines/m1", "assignments:      1 (ETag 2)", "ssh         ApplyAndAutoCorrect  Compliant  0"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, stdout.String())
		}
	}
}

func TestEnrollCommand(t *testing.T) {
	srv := newFakeServer(t)
	srv.addToken("tok", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.HybridCompute/machines/m1")
	down := newFakeServer(t)
	down.setDown(true)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for _, tc := range []struct {
		name   string
		args   []string
		status int
		stderr []string
	}{
		{"no flags", nil, ExitError, []string{"--server URL is required", "--token T is required"}},
		{"bad URL", []string{"--server", "ftp://x", "--token", "t"}, ExitError, []string{`--server: server URL "ftp://x": want http://HOST[:PORT]`}},
		{"unreachable", []string{"--server", closed.URL, "--token", "t"}, ExitError, []string{"cannot reach the server at " + closed.URL, "connection refused"}},
		{"server failing", []string{"--server", down.URL(), "--token", "t"}, ExitError, []string{"the server at " + down.URL() + " failed; try again later", "503"}},
		{"token refused", []string{"--server", srv.URL(), "--token", "nope"}, ExitError, []string{"the server at " + srv.URL() + " refused the token (403 EnrollmentTokenInvalid): the enrollment token is unknown, expired or used"}},
		{"enrolled", []string{"--server", srv.URL(), "--token", "tok", "--name", "sap-01"}, ExitOK, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stateDir := t.TempDir()
			var stdout, stderr bytes.Buffer
			status := runEnroll(context.Background(), append(tc.args, "--state-dir", stateDir), &stdout, &stderr, System{Root: guestRoot(t)})
			if status != tc.status {
				t.Fatalf("status %d, want %d\nstderr: %s", status, tc.status, stderr.String())
			}
			for _, want := range tc.stderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
			st, err := (&stateStore{dir: stateDir}).load()
			if err != nil {
				t.Fatal(err)
			}
			if st.Enrolled() != (status == ExitOK) {
				t.Errorf("state %+v after status %d", st, status)
			}
		})
	}
	if got := srv.enrolls[len(srv.enrolls)-1].Name; got != "sap-01" {
		t.Errorf("--name sent as %q", got)
	}
	// status of a machine not enrolled says how to enroll, and exits 1.
	var stdout bytes.Buffer
	if status := runStatus([]string{"--state-dir", t.TempDir()}, &stdout, &bytes.Buffer{}); status != ExitNonCompliant || !strings.Contains(stdout.String(), "not enrolled: run gild-agent enroll") {
		t.Errorf("status %d:\n%s", status, stdout.String())
	}
}

// TestFlushAnswers: what each answer of the server does to the spool.
func TestFlushAnswers(t *testing.T) {
	for _, tc := range []struct {
		status  int
		kept    int
		errHas  string
		fetch   bool
		dropLog bool
	}{
		{status: 200, kept: 0, fetch: true},
		{status: 400, kept: 0, dropLog: true},
		{status: 413, kept: 0, dropLog: true},
		{status: 401, kept: 2, errHas: "401 Unauthorized"},
		{status: 404, kept: 2, errHas: "404 Not Found"},
		{status: 429, kept: 2, errHas: "429 Too Many Requests"},
		{status: 503, kept: 2, errHas: "503 Service Unavailable"},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			var got []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var rep agentproto.Report
				_ = json.NewDecoder(r.Body).Decode(&rep)
				got = append(got, rep.ID)
				if tc.status != 200 {
					apiError(w, tc.status, "X", "no")
					return
				}
				writeJSON(w, agentproto.ReportResponse{Version: 1, AssignmentsETag: "new", ReportIntervalSeconds: 60})
			}))
			defer srv.Close()
			logs := &syncBuffer{}
			d := &Daemon{StateDir: t.TempDir(), Log: log.New(logs, "", 0)}
			d.init()
			for i := range 2 {
				if _, err := d.spool.put(agentproto.Report{Version: 1, ID: fmt.Sprintf("r%d", i), Time: time.Unix(int64(i), 0)}); err != nil {
					t.Fatal(err)
				}
			}
			fetch, err := d.flush(context.Background(), &client{http: srv.Client(), server: srv.URL, credential: "c"})
			if (err != nil) != (tc.errHas != "") || err != nil && !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("err = %v", err)
			}
			if n := d.spooled(); n != tc.kept || fetch != tc.fetch {
				t.Errorf("%d kept, fetch %v", n, fetch)
			}
			wantSent := []string{"r0", "r1"}
			if tc.kept > 0 {
				wantSent = wantSent[:1] // it stops at the first that cannot be sent
			}
			if !slices.Equal(got, wantSent) {
				t.Errorf("sent %v, want %v", got, wantSent)
			}
			if strings.Contains(logs.String(), "dropping it") != tc.dropLog {
				t.Errorf("log:\n%s", logs.String())
			}
			if st, _ := d.store.load(); tc.status == 200 && (st.ReportIntervalSeconds != 60 || st.LastReport.IsZero()) {
				t.Errorf("state after acknowledgements %+v", st)
			}
		})
	}
}

// TestInstanceChanges: a failed provisioning is tried again at the next start, without
// enrolling again; a disk booted as another instance (new first-boot data) is provisioned
// and enrolled as that one.
func TestInstanceChanges(t *testing.T) {
	srv := newFakeServer(t)
	srv.addToken("tok-1", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-1")
	root, stateDir := guestRoot(t), t.TempDir()
	fbFile := filepath.Join(t.TempDir(), "firstboot.json")
	writeFirstBoot(t, fbFile, firstBootFor(srv, "i-1", "tok-1"))

	td := newTestDaemon(t, root, stateDir, fbFile, testTiming())
	td.runner.fail = "useradd"
	td.start(t)
	eventually(t, "a report", td, func() bool { return len(srv.reportsCopy()) > 0 })
	td.stop(t)
	if st := td.state(t); st.InstanceID != "" || st.EnrolledInstanceID != "i-1" {
		t.Errorf("after a failed provisioning: state %+v", st)
	}
	if !strings.Contains(td.logs.String(), "provision instance i-1 (first-boot data "+fbFile+"): provision ops: useradd --root "+root+" -m -s /bin/bash ops: exit status 1: useradd: failed") {
		t.Errorf("log:\n%s", td.logs.String())
	}

	retry := newTestDaemon(t, root, stateDir, fbFile, testTiming())
	retry.start(t)
	eventually(t, "provisioning again", retry, func() bool { return retry.state(t).InstanceID == "i-1" })
	retry.stop(t)
	if len(srv.enrolls) != 1 || !slices.Contains(retry.runner.Calls(), "useradd --root "+root+" -m -s /bin/bash ops") {
		t.Errorf("%d enrollments; programs %q", len(srv.enrolls), retry.runner.Calls())
	}

	// The disk, copied, boots as instance i-2 with its own token.
	vm2 := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-2"
	srv.addToken("tok-2", vm2)
	fb2 := firstBootFor(srv, "i-2", "tok-2")
	fb2.ComputerName, fb2.MachineID = "web-2", vm2
	writeFirstBoot(t, fbFile, fb2)
	copied := newTestDaemon(t, root, stateDir, fbFile, testTiming())
	copied.start(t)
	eventually(t, "enrollment as the new instance", copied, func() bool { return copied.state(t).MachineID == vm2 })
	copied.stop(t)
	st := copied.state(t)
	if st.InstanceID != "i-2" || st.EnrolledInstanceID != "i-2" || st.Credential != "cred-2" {
		t.Errorf("state %+v", st)
	}
	if !slices.Equal(*copied.hostnames, []string{"web-2"}) || !strings.Contains(copied.logs.String(), "first-boot data names instance i-2, not i-1 as enrolled: enrolling again") {
		t.Errorf("hostnames %v; log:\n%s", *copied.hostnames, copied.logs.String())
	}
}

func TestWriteStatus(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	st := State{Server: "http://10.0.2.2:8080", MachineID: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-1",
		Credential: "c", EnrolledAt: now.Add(-time.Hour), InstanceID: "i-1", LastReport: now.Add(-90 * time.Second),
		PendingEvents: []agentproto.Event{{ID: "e"}},
		Assignments: &agentproto.Assignments{ETag: "7", Assignments: []agentproto.Assignment{
			{Name: "ssh", Hash: "h2", AssignmentType: agentproto.AssignmentAudit},
			{Name: "motd", Hash: "m1", AssignmentType: agentproto.AssignmentApplyAndMonitor},
			{Name: "new", Hash: "n1"},
		}},
		LastRuns: []RunSummary{
			{Name: "ssh", Hash: "h2", ComplianceStatus: "NonCompliant", NonCompliant: 2, Time: now.Add(-time.Minute)},
			{Name: "motd", Hash: "m0", ComplianceStatus: "Compliant", Time: now.Add(-time.Minute)}, // an older hash: stale
		}}
	var out bytes.Buffer
	if err := writeStatus(&out, st, 3, 15*time.Minute, now); err != nil {
		t.Fatal(err)
	}
	want := `machine:          /subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-1
server:           http://10.0.2.2:8080
enrolled:         2026-11-24T11:00:00Z (1h0m0s ago)
instance:         i-1
report every:     15m0s
last report:      2026-11-24T11:58:30Z (1m30s ago)
spooled reports:  3
pending events:   1
assignments:      3 (ETag 7)

ASSIGNMENT  TYPE             STATUS        NON-COMPLIANT  LAST RUN
ssh         Audit            NonCompliant  2              2026-11-24T11:59:00Z
motd        ApplyAndMonitor  Pending       -              never
new         (none)           Pending       -              never
`
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}
