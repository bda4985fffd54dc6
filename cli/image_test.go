package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gildhq/gild/server"
)

const (
	testDef     = "/subscriptions/payments/resourceGroups/images/providers/Microsoft.Compute/galleries/golden/images/debian-12"
	testVersion = testDef + "/versions/1.0.1"
)

func TestParseImageRef(t *testing.T) {
	for _, tc := range []struct {
		arg       string
		versionOK bool
		want      imageRef
	}{
		{testDef, false, imageRef{Definition: testDef, Version: "latest"}},
		{testDef + "@latest", false, imageRef{Definition: testDef, Version: "latest"}},
		{testDef + "@LATEST", true, imageRef{Definition: testDef, Version: "latest"}},
		{testDef + "@1.0.10", false, imageRef{Definition: testDef, Version: "1.0.10"}},
		{testVersion, true, imageRef{Definition: testDef, Version: "1.0.1", VersionID: testVersion}},
		// resolve takes a version ID as DEF@X.Y.Z.
		{testVersion, false, imageRef{Definition: testDef, Version: "1.0.1"}},
	} {
		got, err := parseImageRef(tc.arg, tc.versionOK)
		if err != nil || got != tc.want {
			t.Errorf("parseImageRef(%q, %v) = %+v, %v; want %+v", tc.arg, tc.versionOK, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ arg, want string }{
		{"", "the image is empty"},
		{testDef + "@", `not ""`},
		{testDef + "@1.0", `not "1.0"`},
		{testDef + "@v1.0.0", `not "v1.0.0"`},
		{testDef + "@newest", `not "newest"`},
		{"/subscriptions/payments/resourceGroups/images@latest", "not an image definition"},
		{"/subscriptions/payments/resourceGroups/images", "is a Microsoft.Resources/resourceGroups"},
		{testDef + "/versions/one", `the version "one" is not Major.Minor.Patch`},
		{"debian-12@latest", "must start with '/'"},
	} {
		_, err := parseImageRef(tc.arg, true)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseImageRef(%q): %v; want a usage error with %q", tc.arg, err, tc.want)
		}
	}
}

func TestParseTargetRegion(t *testing.T) {
	for in, want := range map[string]targetRegion{
		"local=1":   {Name: "local", Replicas: 1},
		"West=3":    {Name: "west", Replicas: 3},
		" eu-2 = 2": {Name: "eu-2", Replicas: 2},
		"local":     {Name: "local"},
		"a=100":     {Name: "a", Replicas: 100},
	} {
		got, err := parseTargetRegion(in)
		if err != nil || got != want {
			t.Errorf("parseTargetRegion(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "=2", "west=", "west=0", "west=101", "west=two", "west=-1", "we st=1", "west=1.5", "us_west=1"} {
		if _, err := parseTargetRegion(in); err == nil || !strings.Contains(err.Error(), "--target-region") {
			t.Errorf("parseTargetRegion(%q): %v; want an error naming --target-region", in, err)
		}
	}
}

func TestParseDate(t *testing.T) {
	for in, want := range map[string]string{
		"2027-01-01":                "2027-01-01T00:00:00Z",
		"2027-01-01T00:00:00Z":      "2027-01-01T00:00:00Z",
		"2027-06-30T12:30:00+02:00": "2027-06-30T10:30:00Z",
	} {
		got, err := parseDate(in)
		if err != nil || got.Format(time.RFC3339) != want {
			t.Errorf("parseDate(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "tomorrow", "2027-13-01", "01/01/2027", "2027-01-01 00:00"} {
		if _, err := parseDate(in); err == nil {
			t.Errorf("parseDate(%q) succeeded", in)
		}
	}
	if got := formatDate(ptr(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))); got != "2027-01-01" {
		t.Errorf("formatDate of midnight = %q", got)
	}
	if got := formatDate(ptr(time.Date(2027, 1, 1, 9, 0, 0, 0, time.UTC))); got != "2027-01-01T09:00:00Z" {
		t.Errorf("formatDate of 9:00 = %q", got)
	}
}

func ptr[T any](v T) *T { return &v }

func TestGuessFormat(t *testing.T) {
	for in, want := range map[string]string{
		"QFI\xfb\x00\x00\x00\x03rest": formatQCOW2,
		"QFI\xfb":                     formatQCOW2,
		"QFI":                         formatRaw,
		"":                            formatRaw,
		"\x00\x00\x00\x00QFI\xfb":     formatRaw,
		"qfi\xfb":                     formatRaw,
	} {
		if got, err := guessFormat(strings.NewReader(in)); err != nil || got != want {
			t.Errorf("guessFormat(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestFormatReplication(t *testing.T) {
	for _, tc := range []struct {
		r    *replicationStatus
		want string
	}{
		{nil, "-"},
		{&replicationStatus{AggregatedState: "InProgress"}, "InProgress"},
		{&replicationStatus{AggregatedState: "InProgress", Summary: []regionStatus{
			{Region: "local", State: "Completed", Progress: 100, Replicas: 1},
			{Region: "west", State: "Replicating", Progress: 42},
		}}, "local:Completed west:Replicating 42%"},
		{&replicationStatus{AggregatedState: "Failed", Summary: []regionStatus{
			{Region: "local", State: "Completed", Progress: 100},
			{Region: "west", State: "Failed", Details: "disk full"},
			{Region: "east", State: ""},
		}}, "local:Completed west:Failed east:-"},
	} {
		if got := formatReplication(tc.r); got != tc.want {
			t.Errorf("formatReplication(%+v) = %q, want %q", tc.r, got, tc.want)
		}
	}
	err := replicationFailure("v", &replicationStatus{Summary: []regionStatus{{Region: "west", State: "Failed", Details: "disk full"}, {Region: "local", State: "Completed"}}})
	if err == nil || err.Error() != "replication of v failed in west (disk full)" {
		t.Errorf("replicationFailure: %v", err)
	}
}

func TestSortVersions(t *testing.T) {
	names := []string{"1.0.0", "1.10.0", "1.2.0", "zeta", "1.0.10", "2.0.0", "1.0.9", "alpha"}
	vs := make([]*imageVersion, len(names))
	for i, n := range names {
		vs[i] = &imageVersion{Name: n}
	}
	var got []string
	for _, i := range sortVersions(vs) {
		got = append(got, vs[i].Name)
	}
	want := "2.0.0 1.10.0 1.2.0 1.0.10 1.0.9 1.0.0 alpha zeta"
	if strings.Join(got, " ") != want {
		t.Errorf("sortVersions = %v, want %s", got, want)
	}
}

func TestParseExpiry(t *testing.T) {
	for in, want := range map[string]string{"72h": "72h0m0s", "90m": "1h30m0s", "3d": "72h0m0s", "1h30m": "1h30m0s"} {
		if got, err := parseExpiry(in); err != nil || got != want {
			t.Errorf("parseExpiry(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "soon", "0h", "-1h", "0d", "xd", "3 days"} {
		if _, err := parseExpiry(in); err == nil || !strings.Contains(err.Error(), "--expires") {
			t.Errorf("parseExpiry(%q): %v; want an error naming --expires", in, err)
		}
	}
}

func TestProgressOffTerminal(t *testing.T) {
	var buf bytes.Buffer
	clock := time.Unix(0, 0)
	p := newProgress(&buf, "Uploading", 1000, 0)
	p.now = func() time.Time { return clock }
	p.began = clock
	for range 1000 {
		clock = clock.Add(time.Millisecond)
		p.Write([]byte{0})
	}
	p.Done()
	p.Done() // a second Done writes nothing
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 10 {
		t.Fatalf("%d lines, want one per tenth:\n%s", len(lines), buf.String())
	}
	if lines[0] != "Uploading  100 B / 1000 B   10%  1000 B/s" {
		t.Errorf("first line %q", lines[0])
	}
	if !strings.Contains(lines[9], "1000 B / 1000 B  100%") {
		t.Errorf("last line %q", lines[9])
	}
	if strings.Contains(buf.String(), "\r") {
		t.Error("off a terminal, progress must not redraw with \\r")
	}

	// A resumed copy starts at its offset, reports only what is new, and says 100% once.
	buf.Reset()
	p = newProgress(&buf, "Downloading", 4<<20, 3<<20)
	p.Write(make([]byte, 1<<20))
	p.Done()
	if got := strings.Count(buf.String(), "\n"); got != 1 || !strings.Contains(buf.String(), "4.0 MiB / 4.0 MiB  100%") {
		t.Errorf("resumed progress:\n%s", buf.String())
	}
	// An aborted display writes nothing more.
	buf.Reset()
	p = newProgress(&buf, "x", 100, 0)
	p.Write(make([]byte, 5))
	p.Abort()
	p.Done()
	if buf.Len() != 0 {
		t.Errorf("an aborted progress wrote %q", buf.String())
	}
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 30: "5.0 GiB", 3 << 40: "3.0 TiB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// artifactServer serves data as a gild server serves a version's content, with ranges
// and If-Range through http.ServeContent. With interrupt set, a request for the whole
// artifact gets half of it and then a dropped connection.
type artifactServer struct {
	*httptest.Server
	data      []byte
	sum       string
	interrupt atomic.Bool
	noRanges  atomic.Bool
	corrupt   atomic.Bool

	mu       sync.Mutex
	requests []http.Header
}

func newArtifactServer(t *testing.T, data []byte) *artifactServer {
	s := &artifactServer{data: data}
	h := sha256.Sum256(data)
	s.sum = hex.EncodeToString(h[:])
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.Header.Clone())
		s.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, `{"error":{"code":"AuthenticationFailed","message":"no token"}}`, http.StatusUnauthorized)
			return
		}
		body := s.data
		if s.corrupt.Load() {
			body = bytes.Clone(s.data)
			body[len(body)/3] ^= 0xff
		}
		w.Header().Set("ETag", `"sha256:`+s.sum+`"`)
		w.Header().Set("X-Gild-Sha256", s.sum)
		w.Header().Set("X-Gild-Region", "local")
		w.Header().Set("X-Gild-Replica", "0")
		if s.interrupt.Load() && r.Header.Get("Range") == "" {
			w.Header().Set("Content-Length", itoa(len(body)))
			w.WriteHeader(http.StatusOK)
			w.Write(body[:len(body)/2])
			w.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond) // let the client read what was sent
			panic(http.ErrAbortHandler)
		}
		if s.noRanges.Load() {
			w.Header().Set("Content-Length", itoa(len(body)))
			w.Write(body)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}))
	t.Cleanup(s.Close)
	return s
}

func itoa(n int) string { return strconv.Itoa(n) }

func (s *artifactServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

func (s *artifactServer) lastRequest() http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[len(s.requests)-1]
}

func (s *artifactServer) pull(t *testing.T, dest string) (*downloadResult, string, error) {
	t.Helper()
	c, err := NewClient(s.URL, "tok")
	if err != nil {
		t.Fatal(err)
	}
	var progress strings.Builder
	res, err := download(context.Background(), c, testVersion+"/content", nil, dest, s.sum, int64(len(s.data)), &progress)
	return res, progress.String(), err
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestDownloadResumes(t *testing.T) {
	data := randomBytes(t, 3<<20+17)
	s := newArtifactServer(t, data)
	dest := filepath.Join(t.TempDir(), "disk.qcow2")

	// The first try is cut off half way: dest.part and its ETag stay, dest does not appear.
	s.interrupt.Store(true)
	_, _, err := s.pull(t, dest)
	if err == nil || !strings.Contains(err.Error(), "run the same command again to resume from "+dest+".part") {
		t.Fatalf("an interrupted download: %v", err)
	}
	fi, err := os.Stat(dest + ".part")
	if err != nil || fi.Size() == 0 || fi.Size() >= int64(len(data)) {
		t.Fatalf("after the interruption, %s.part: %v, %v", dest, fi, err)
	}
	have := fi.Size()
	if etag, err := os.ReadFile(dest + ".part.etag"); err != nil || strings.TrimSpace(string(etag)) != `"sha256:`+s.sum+`"` {
		t.Errorf("the saved ETag: %q, %v", etag, err)
	}
	if exists(dest) {
		t.Fatal("an interrupted download created the destination")
	}

	// The second try asks for the rest only, guarded by the ETag, and checks the whole.
	s.interrupt.Store(false)
	res, progress, err := s.pull(t, dest)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	req := s.lastRequest()
	if got, want := req.Get("Range"), "bytes="+itoa(int(have))+"-"; got != want {
		t.Errorf("resume sent Range %q, want %q", got, want)
	}
	if got := req.Get("If-Range"); got != `"sha256:`+s.sum+`"` {
		t.Errorf("resume sent If-Range %q", got)
	}
	if res.ResumedFrom != have || res.SizeInBytes != int64(len(data)) || res.SHA256 != s.sum || res.Region != "local" || res.Replica != "0" {
		t.Errorf("result %+v, want resumed from %d", res, have)
	}
	if got, err := os.ReadFile(dest); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the resumed file differs from the artifact (%v)", err)
	}
	if exists(dest+".part") || exists(dest+".part.etag") {
		t.Error("the .part or .part.etag file is left after success")
	}
	if !strings.Contains(progress, "100%") {
		t.Errorf("no progress shown:\n%s", progress)
	}

	// A server that ignores ranges sends everything again: the part is dropped, not doubled.
	if err := os.WriteFile(dest+".part", data[:1000], 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(dest)
	s.noRanges.Store(true)
	res, progress, err = s.pull(t, dest)
	if err != nil || res.ResumedFrom != 0 || !strings.Contains(progress, "starting over") {
		t.Fatalf("pull from a server without ranges: %+v, %v\n%s", res, err, progress)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
		t.Fatal("the file from a server without ranges differs")
	}
	if got := s.lastRequest().Get("If-Range"); got != "" {
		t.Errorf("without a saved ETag, If-Range %q was sent", got)
	}
	s.noRanges.Store(false)

	// A part of another artifact is not resumed.
	if err := os.WriteFile(dest+".part", data[:1000], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dest+".part.etag", []byte(`"sha256:`+strings.Repeat("ab", 32)+`"`), 0o644); err != nil {
		t.Fatal(err)
	}
	res, _, err = s.pull(t, dest)
	if err != nil || res.ResumedFrom != 0 || s.lastRequest().Get("Range") != "" {
		t.Fatalf("a part of another artifact was resumed: %+v, %v, Range %q", res, err, s.lastRequest().Get("Range"))
	}

	// A complete part needs no request at all.
	if err := os.WriteFile(dest+".part", data, 0o644); err != nil {
		t.Fatal(err)
	}
	n := s.count()
	if res, _, err = s.pull(t, dest); err != nil || res.ResumedFrom != 0 || s.count() != n {
		t.Fatalf("a complete part: %+v, %v, %d requests", res, err, s.count()-n)
	}
}

func TestDownloadRefusesCorruptBytes(t *testing.T) {
	data := randomBytes(t, 1<<20)
	s := newArtifactServer(t, data)
	dir := t.TempDir()

	// The server sends wrong bytes: nothing is written, the .part is gone.
	s.corrupt.Store(true)
	dest := filepath.Join(dir, "a.raw")
	_, _, err := s.pull(t, dest)
	if err == nil || !strings.Contains(err.Error(), "do not match the version's artifact") || !strings.Contains(err.Error(), "deleted "+dest+".part") {
		t.Fatalf("corrupt download: %v", err)
	}
	if exists(dest) || exists(dest+".part") || exists(dest+".part.etag") {
		t.Error("a corrupt download left a file behind")
	}

	// The server is right but the part already on disk is wrong: the whole is hashed, so
	// the resumed download fails too, and starts afresh the next time.
	s.corrupt.Store(false)
	dest = filepath.Join(dir, "b.raw")
	bad := bytes.Clone(data[:len(data)/2])
	bad[10] ^= 1
	if err := os.WriteFile(dest+".part", bad, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.pull(t, dest)
	if err == nil || !strings.Contains(err.Error(), "do not match") {
		t.Fatalf("a corrupt part was accepted: %v", err)
	}
	if s.lastRequest().Get("Range") == "" {
		t.Error("the part was not resumed")
	}
	if exists(dest) || exists(dest+".part") {
		t.Error("a corrupt resumed download left a file behind")
	}
	if _, _, err := s.pull(t, dest); err != nil {
		t.Fatalf("the next pull after a corrupt one: %v", err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
		t.Error("the next pull after a corrupt one differs")
	}

	// An API error is reported as one.
	c, _ := NewClient(s.URL, "wrong")
	_, err = download(context.Background(), c, testVersion+"/content", nil, filepath.Join(dir, "c"), s.sum, int64(len(data)), io.Discard)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != "AuthenticationFailed" {
		t.Errorf("download with a wrong token: %v", err)
	}
}

// runCLI runs the CLI with no server and no login.
func runCLI(t *testing.T, args ...string) result {
	var stdout, stderr strings.Builder
	env := map[string]string{"HOME": t.TempDir(), "XDG_CONFIG_HOME": t.TempDir()}
	code := Run(context.Background(), args, Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return env[k] }})
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func TestImageUsageErrors(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(raw, []byte("not a qcow2 image"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"image", "publish"}, []string{"3 problems with the flags", "--definition is required", "--version is required", "--file is required"}},
		{[]string{"image", "publish", "--definition", "/subscriptions/x", "--version", "1.0", "--file", filepath.Join(dir, "nope"),
			"--target-region", "west=0", "--target-region", "local", "--target-region", "LOCAL=2", "--replica-count", "0",
			"--end-of-life", "next year", "--format", "vhd", "--source", testDef},
			[]string{"9 problems", `--definition "/subscriptions/x" is a Microsoft.Resources/subscriptions, not an image definition`,
				`--version "1.0" is not Major.Minor.Patch`, `--target-region "west=0": the replica count must be a whole number from 1 to 100`,
				"--target-region local is given twice", "--replica-count 0", `--end-of-life "next year" is neither a date`,
				`--format "vhd": use qcow2 or raw`, "--source", "not an image version", "--file: " + filepath.Join(dir, "nope") + " does not exist"}},
		{[]string{"image", "publish", "--definition", testDef, "--version", "1.0.0", "--file", raw, "--format", "qcow2"}, []string{"--format qcow2, but", "does not start with the qcow2 magic"}},
		{[]string{"image", "publish", "--definition", testDef, "--version", "1.0.0", "--file", empty}, []string{"--file " + empty + " is empty"}},
		{[]string{"image", "publish", "--definition", testDef, "--version", "1.0.0", "--file", dir}, []string{"is not a regular file"}},
		{[]string{"image", "publish", "extra"}, []string{"gild image publish takes no arguments"}},
		{[]string{"image", "resolve", testDef + "@1.x"}, []string{"the version after @ must be latest or Major.Minor.Patch"}},
		{[]string{"image", "resolve"}, []string{"gild image resolve takes one image"}},
		{[]string{"image", "pull", testDef + "@latest"}, []string{"the file to write is required: -o FILE or --file FILE"}},
		{[]string{"image", "pull", testDef + "@latest", "-o", "json"}, []string{"the file to write is required"}},
		{[]string{"image", "pull", testDef + "@latest", "-o", ""}, []string{"-o needs a file name"}},
		{[]string{"image", "pull", testDef + "@latest", "-f", "a.qcow2", "-o", "b.qcow2"}, []string{`invalid --output "b.qcow2": use table or json (the file to write is already --file a.qcow2)`}},
		{[]string{"image", "pull", "/subscriptions/x", "-f", dir}, []string{"is a Microsoft.Resources/subscriptions", "--file " + dir + " is a directory"}},
		{[]string{"image", "share", testVersion, "--expires", "soon"}, []string{`--expires "soon"`}},
		{[]string{"image", "share", testDef}, []string{"is a Microsoft.Compute/galleries/images, not an image version"}},
		{[]string{"image", "verify", testVersion, "--wait", "--wait-timeout", "0s"}, []string{"--wait-timeout must be positive"}},
		{[]string{"image", "delete", testDef + "/versions/latest"}, []string{`the version "latest" is not Major.Minor.Patch`}},
		{[]string{"image", "versions", testVersion}, []string{"not an image definition"}},
		{[]string{"image", "versions", testDef, "-o", "yaml"}, []string{`invalid --output "yaml"`}},
	} {
		r := runCLI(t, tc.args...)
		if r.code != exitUsage {
			t.Errorf("gild %s: want exit %d: %s", strings.Join(tc.args, " "), exitUsage, r)
			continue
		}
		for _, w := range tc.wants {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("gild %s: stderr lacks %q: %s", strings.Join(tc.args, " "), w, r)
			}
		}
	}
	// Flags that are right get as far as needing a login.
	r := runCLI(t, "image", "publish", "--definition", testDef, "--version", "1.0.0", "--file", raw)
	if r.code != exitError || !strings.Contains(r.stderr, "not logged in") {
		t.Errorf("publish with good flags and no login: %s", r)
	}
}

// imageHarness is a server with a gallery image definition to publish into.
func imageHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t)
	h.login()
	h.ok(`{"properties":{}}`, "put", "/subscriptions/payments", "-f", "-")
	h.ok(`{"location":"local"}`, "put", "/subscriptions/payments/resourceGroups/images", "-f", "-")
	h.ok(`{"location":"local","properties":{}}`, "put", "/subscriptions/payments/resourceGroups/images/providers/Microsoft.Compute/galleries/golden", "-f", "-")
	h.ok(`{"location":"local","properties":{"identifier":{"publisher":"Contoso","offer":"debian-12","sku":"hardened"},"osType":"Linux","osState":"Generalized"}}`,
		"put", testDef, "-f", "-")
	return h
}

// diskFile writes a qcow2-looking file of n random bytes.
func diskFile(t *testing.T, name string, n int) (string, []byte) {
	t.Helper()
	data := randomBytes(t, n)
	copy(data, qcow2Magic)
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, data
}

func TestImageEndToEnd(t *testing.T) {
	h := imageHarness(t)
	disk1, _ := diskFile(t, "disk-1.0.0.qcow2", 2<<20+5)
	disk11, _ := diskFile(t, "disk-1.1.0.qcow2", 1<<20)
	disk101, data101 := diskFile(t, "disk-1.0.1.qcow2", 3<<20+1)

	r := h.ok("", "image", "publish", "--definition", testDef, "--version", "1.0.0", "--file", disk1, "--wait", "--end-of-life", "2027-01-01")
	for _, want := range []string{"Published " + testDef + "/versions/1.0.0", "version ", "1.0.0", "provisioning ", "Succeeded", "lifecycle ", "active",
		"replication ", "Completed", "local ", "endOfLife ", "2027-01-01", "format ", "qcow2"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("publish 1.0.0 lacks %q:\n%s", want, r)
		}
	}
	for _, want := range []string{"Hashing disk-1.0.0.qcow2", "100%", "Uploading to local", "Uploaded 2.0 MiB to region local.", "Replication Completed: local:Completed"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("publish 1.0.0's stderr lacks %q:\n%s", want, r)
		}
	}
	h.ok("", "image", "publish", "--definition", testDef, "--version", "1.1.0", "--file", disk11, "--exclude-from-latest", "--target-region", "local=1")
	r = h.ok("", "image", "publish", "--definition", testDef, "--version", "1.0.1", "--file", disk101, "--wait", "-o", "json")
	v := decode[imageVersion](t, r.stdout)
	if v.Name != "1.0.1" || v.Properties.ReplicationStatus == nil || v.Properties.ReplicationStatus.AggregatedState != "Completed" ||
		v.Properties.StorageProfile.OSDiskImage == nil || v.Properties.StorageProfile.OSDiskImage.SizeInBytes != int64(len(data101)) {
		t.Errorf("publish 1.0.1 -o json: %s", r.stdout)
	}

	// latest skips 1.1.0, which is excluded from it.
	r = h.ok("", "image", "resolve", testDef+"@latest")
	sum := sha256.Sum256(data101)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "SHA256") ||
		!strings.Contains(lines[1], testDef+"/versions/1.0.1") || !strings.Contains(lines[1], hex.EncodeToString(sum[:])) {
		t.Errorf("resolve latest:\n%s", r)
	}
	res := decode[resolved](t, h.ok("", "image", "resolve", testDef, "-o", "json").stdout)
	if res.Version != "1.0.1" || res.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("resolve -o json: %+v", res)
	}
	if res := decode[resolved](t, h.ok("", "image", "resolve", testDef+"@1.1.0", "-o", "json").stdout); res.Version != "1.1.0" {
		t.Errorf("resolve @1.1.0: %+v", res)
	}

	// versions: newest number first, latest marked.
	r = h.ok("", "image", "versions", testDef)
	lines = strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 {
		t.Fatalf("versions:\n%s", r)
	}
	for _, col := range []string{"VERSION", "PROVISIONING", "LIFECYCLE", "LATEST", "PUBLISHED", "END OF LIFE", "REPLICATION"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("versions header lacks %s: %q", col, lines[0])
		}
	}
	for i, want := range []string{"1.1.0 ", "1.0.1 ", "1.0.0 "} {
		if !strings.HasPrefix(lines[i+1], want) || !strings.Contains(lines[i+1], "local:Completed") {
			t.Errorf("versions line %d: %q, want %s first and local:Completed", i+1, lines[i+1], want)
		}
		if marked := strings.Contains(lines[i+1], " * "); marked != (want == "1.0.1 ") {
			t.Errorf("versions line %q: latest mark %v", lines[i+1], marked)
		}
	}
	if !strings.Contains(lines[3], "2027-01-01") {
		t.Errorf("1.0.0's end of life is not shown: %q", lines[3])
	}
	vj := decode[struct {
		Value  []imageVersion `json:"value"`
		Latest string         `json:"latest"`
	}](t, h.ok("", "image", "versions", testDef, "-o", "json").stdout)
	if len(vj.Value) != 3 || vj.Value[0].Name != "1.1.0" || !strings.EqualFold(vj.Latest, testDef+"/versions/1.0.1") {
		t.Errorf("versions -o json: %+v", vj)
	}

	// pull gives the same bytes, by reference and by ID.
	out := filepath.Join(t.TempDir(), "pulled.qcow2")
	r = h.ok("", "image", "pull", testDef+"@latest", "-o", out)
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, data101) {
		t.Fatalf("pull latest: the file differs (%v): %s", err, r)
	}
	if !strings.Contains(r.stdout, "Pulled "+testDef+"/versions/1.0.1 to "+out) || !strings.Contains(r.stderr, "Downloading from local") {
		t.Errorf("pull output: %s", r)
	}
	out2 := filepath.Join(t.TempDir(), "by-id.qcow2")
	pj := decode[downloadResult](t, h.ok("", "image", "pull", testDef+"/versions/1.0.1", "--file", out2, "-o", "json").stdout)
	if pj.SHA256 != hex.EncodeToString(sum[:]) || pj.SizeInBytes != int64(len(data101)) || pj.Region != "local" {
		t.Errorf("pull -o json: %+v", pj)
	}
	// A pull interrupted half way resumes against the real server.
	out3 := filepath.Join(t.TempDir(), "resumed.qcow2")
	if err := os.WriteFile(out3+".part", data101[:len(data101)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	pj = decode[downloadResult](t, h.ok("", "image", "pull", testDef+"@1.0.1", "-f", out3, "-o", "json").stdout)
	if got, _ := os.ReadFile(out3); pj.ResumedFrom != int64(len(data101)/2) || !bytes.Equal(got, data101) {
		t.Errorf("resumed pull: %+v", pj)
	}

	// The same bytes again copy nothing.
	r = h.ok("", "image", "publish", "--definition", testDef, "--version", "1.0.2", "--file", disk101)
	if !strings.Contains(r.stderr, "no bytes were copied") || strings.Contains(r.stderr, "Uploading") {
		t.Errorf("publishing the same file again:\n%s", r)
	}
	if res := decode[resolved](t, h.ok("", "image", "resolve", testDef+"@latest", "-o", "json").stdout); res.Version != "1.0.2" {
		t.Errorf("latest after 1.0.2: %+v", res)
	}

	// share: a URL that works without a token.
	r = h.ok("", "image", "share", testDef+"/versions/1.0.1", "--expires", "1h")
	if !strings.Contains(r.stdout, "url ") || !strings.Contains(r.stdout, "/share/") || !strings.Contains(r.stdout, "expires ") {
		t.Fatalf("share:\n%s", r)
	}
	sh := decode[struct {
		URL string `json:"url"`
	}](t, h.ok("", "image", "share", testDef+"/versions/1.0.1", "-o", "json").stdout)
	resp, err := http.Get(sh.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, data101) {
		t.Errorf("the share link gave %d and %d bytes", resp.StatusCode, len(got))
	}

	// verify: every replica is fine.
	r = h.ok("", "image", "verify", testDef+"/versions/1.0.1")
	if !strings.Contains(r.stdout, "1 of 1 replicas ok") || !strings.Contains(r.stdout, "REGION") || !strings.Contains(r.stdout, " ok ") {
		t.Errorf("verify:\n%s", r)
	}

	// Errors from the server name what is wrong and fail.
	h.fails(nil, "", exitError, []string{"version 9.9.9 does not exist"}, "image", "resolve", testDef+"@9.9.9")
	h.fails(nil, "", exitError, []string{"ResourceNotFound"}, "image", "versions", strings.Replace(testDef, "debian-12", "nope", 1))
	h.fails(nil, "", exitError, []string{"image definition: ResourceNotFound"}, "image", "publish", "--definition", strings.Replace(testDef, "debian-12", "nope", 1), "--version", "1.0.0", "--file", disk1)

	// delete, then again.
	r = h.ok("", "image", "delete", testDef+"/versions/1.0.0")
	if r.stdout != "Deleted "+testDef+"/versions/1.0.0\n" {
		t.Errorf("delete: %s", r)
	}
	if d := decode[deleteResult](t, h.ok("", "image", "delete", testDef+"/versions/1.0.0", "--force", "-o", "json").stdout); d.Deleted {
		t.Errorf("deleting a deleted version: %+v", d)
	}
}

// newRegionHarness is newHarness with the image regions local, west and east in folders of
// regionsDir.
func newRegionHarness(t *testing.T, regionsDir string) *harness {
	t.Helper()
	var regions []string
	for _, r := range []string{"local", "west", "east"} {
		regions = append(regions, r+"=file://"+filepath.ToSlash(filepath.Join(regionsDir, r)))
	}
	return newHarness(t, func(c *server.Config) { c.Regions = regions })
}

func TestImageRegions(t *testing.T) {
	regionsDir := t.TempDir()
	h := newRegionHarness(t, regionsDir)
	h.login()
	h.ok(`{"properties":{}}`, "put", "/subscriptions/payments", "-f", "-")
	h.ok(`{"location":"local"}`, "put", "/subscriptions/payments/resourceGroups/images", "-f", "-")
	h.ok(`{"location":"local","properties":{}}`, "put", "/subscriptions/payments/resourceGroups/images/providers/Microsoft.Compute/galleries/golden", "-f", "-")
	h.ok(`{"location":"local","properties":{"identifier":{"publisher":"Contoso","offer":"debian-12","sku":"hardened"},"osType":"Linux","osState":"Generalized"}}`,
		"put", testDef, "-f", "-")
	disk, data := diskFile(t, "disk.raw", 2<<20+3)
	copy(data, "RAW!") // not qcow2
	if err := os.WriteFile(disk, data, 0o644); err != nil {
		t.Fatal(err)
	}
	v := testDef + "/versions/2.0.0"

	r := h.ok("", "image", "publish", "--definition", testDef, "--version", "2.0.0", "--file", disk,
		"--target-region", "local", "--target-region", "West=2", "--target-region", "east=1", "--wait")
	for _, want := range []string{"format ", "raw", "replication ", "Completed", "  local ", "  west ", "Completed 100%, 2 replica(s)", "  east "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("publish to three regions lacks %q:\n%s", want, r)
		}
	}
	if !strings.Contains(r.stderr, "Replication Completed: local:Completed west:Completed east:Completed") {
		t.Errorf("publish --wait did not follow replication to the end:\n%s", r)
	}
	// A region the server does not have is refused before the file is hashed.
	r = h.fails(nil, "", exitError, []string{`--target-region nowhere: `, `is region "nowhere" configured on the server`},
		"image", "publish", "--definition", testDef, "--version", "2.0.1", "--file", disk, "--target-region", "local", "--target-region", "nowhere")
	if strings.Contains(r.stderr, "Hashing") {
		t.Errorf("a wrong region was found only after hashing:\n%s", r)
	}
	// So is a token that may not publish.
	reader := decode[struct {
		Secret string `json:"token"`
	}](t, h.ok("", "token", "create", "--role", "Reader", "--scope", "/", "-o", "json").stdout)
	h.fails(map[string]string{"GILD_TOKEN": reader.Secret}, "", exitError, []string{"refused to let this token upload", "403 Forbidden"},
		"image", "publish", "--definition", testDef, "--version", "2.0.1", "--file", disk)

	r = h.ok("", "image", "versions", testDef)
	if !strings.Contains(r.stdout, "local:Completed west:Completed east:Completed") {
		t.Errorf("versions:\n%s", r)
	}

	// Pull from one region, resolve in another.
	out := filepath.Join(t.TempDir(), "west.raw")
	pj := decode[downloadResult](t, h.ok("", "image", "pull", v, "--region", "west", "-f", out, "-o", "json").stdout)
	if got, _ := os.ReadFile(out); pj.Region != "west" || !bytes.Equal(got, data) {
		t.Errorf("pull from west: %+v", pj)
	}
	if res := decode[resolved](t, h.ok("", "image", "resolve", testDef, "--region", "east", "-o", "json").stdout); res.Version != "2.0.0" || res.Region != "east" {
		t.Errorf("resolve in east: %+v", res)
	}
	h.fails(nil, "", exitError, []string{"nowhere"}, "image", "resolve", testDef, "--region", "nowhere")

	// A corrupted replica: verify --wait reports it, waits for the repair and checks again.
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	east := filepath.Join(regionsDir, "east", "artifacts", "sha256", digest[:2], digest, "0")
	corrupt := func() {
		t.Helper()
		f, err := os.OpenFile(east, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("rot"), 1<<20); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	corrupt()
	r = h.ok("", "image", "verify", v, "--wait")
	if !strings.Contains(r.stdout, "3 of 4 replicas ok, repairing") || !strings.Contains(r.stdout, "corrupt") || !strings.Contains(r.stdout, "4 of 4 replicas ok\n") {
		t.Errorf("verify --wait of a corrupted replica:\n%s", r)
	}
	if got, _ := os.ReadFile(east); !bytes.Equal(got, data) {
		t.Error("the east replica was not repaired")
	}
	corrupt()
	r = h.fails(nil, "", exitError, []string{"1 of 4 replicas of " + v + " are not ok; a repair has started"}, "image", "verify", v)
	if !strings.Contains(r.stdout, "east") || !strings.Contains(r.stdout, "corrupt") {
		t.Errorf("verify of a corrupted replica:\n%s", r)
	}

	// A version a VM uses is deleted only with --force.
	vm := "/subscriptions/payments/resourceGroups/images/providers/Microsoft.Compute/virtualMachines/app-1"
	h.ok(`{"location":"local","properties":{"hardwareProfile":{"vmSize":"Standard_B2s"},"storageProfile":{"imageReference":{"id":"`+v+`"}}}}`, "put", vm, "-f", "-")
	h.fails(nil, "", exitError, []string{"GalleryImageVersionInUse", "app-1", "forceDeletion"}, "image", "delete", v)
	if r := h.ok("", "image", "delete", v, "--force"); r.stdout != "Deleted "+v+"\n" {
		t.Errorf("delete --force: %s", r)
	}
}
