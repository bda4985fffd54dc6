package server

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gildhq/gild/api"
	"github.com/gildhq/gild/blob"
)

// The gallery's crash tests: a real `gild serve` child with two file:// regions, killed with
// SIGKILL in the middle of moving an artifact, then restarted on the same data directory
// and regions.

const (
	killDef = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/d"
	killVer = killDef + "/versions/1.0.0"
)

// galleryRig is a data directory and two regions, local (home) and west, that outlive the
// servers started on them.
type galleryRig struct {
	dataDir, localDir, westDir string
	specs                      string
	token                      string
}

func newGalleryRig(t *testing.T) *galleryRig {
	t.Helper()
	root := t.TempDir()
	g := &galleryRig{
		dataDir:  filepath.Join(root, "data"),
		localDir: filepath.Join(root, "local"),
		westDir:  filepath.Join(root, "west"),
	}
	g.specs = "local=" + blob.FileURL(g.localDir) + ",west=" + blob.FileURL(g.westDir)
	return g
}

// start runs a server on the rig; it is killed at the end of the test if still running.
func (g *galleryRig) start(t *testing.T) *child {
	t.Helper()
	t.Setenv(childRegionsEnv, g.specs)
	c := startChild(t, g.dataDir)
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			_ = c.cmd.Process.Kill()
			_ = c.cmd.Wait()
		}
	})
	if g.token == "" {
		raw, err := os.ReadFile(filepath.Join(g.dataDir, AdminTokenFile))
		if err != nil {
			t.Fatal(err)
		}
		g.token = strings.TrimSpace(string(raw))
	}
	return c
}

func sigkill(t *testing.T, c *child) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = c.cmd.Wait()
}

func stopGracefully(t *testing.T, c *child) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Wait(); err != nil {
		t.Errorf("graceful stop: %v", err)
	}
}

// request sends a raw request; query is added to the api-version.
func (g *galleryRig) request(c *child, method, path, query string, body io.Reader, size int64) (*http.Response, error) {
	u := "http://" + c.addr + path + "?api-version=" + api.Version
	if query != "" {
		u += "&" + query
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+g.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
		req.ContentLength = size
	}
	return http.DefaultClient.Do(req)
}

// must does a JSON request and fails the test unless it answers want.
func (g *galleryRig) must(t *testing.T, c *child, method, path string, body any, want int) map[string]any {
	t.Helper()
	return c.must(t, g.token, method, path, body, want)
}

// setUp creates the subscription, resource group, gallery and image definition.
func (g *galleryRig) setUp(t *testing.T, c *child) {
	t.Helper()
	g.must(t, c, "PUT", "/subscriptions/s1", map[string]any{"properties": map[string]any{}}, 201)
	g.must(t, c, "PUT", "/subscriptions/s1/resourceGroups/rg", map[string]any{"location": "local"}, 201)
	g.must(t, c, "PUT", "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/galleries/g", map[string]any{"location": "local"}, 201)
	g.must(t, c, "PUT", killDef, map[string]any{"location": "local", "properties": map[string]any{
		"identifier": map[string]any{"publisher": "P", "offer": "O", "sku": "S"},
		"osType":     "Linux", "osState": "Generalized",
	}}, 201)
}

// upload streams the file at path as artifact digest to region local.
func (g *galleryRig) upload(t *testing.T, c *child, digest, path string, size int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	resp, err := g.request(c, "PUT", killDef+"/artifacts/"+digest, "region=local", f, size)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 {
		t.Fatalf("upload: %d %s, want 201", resp.StatusCode, msg)
	}
	t.Logf("uploaded %d MiB in %v", size>>20, time.Since(start).Round(time.Millisecond))
}

func versionBody(digest string, size int64, targets ...map[string]any) map[string]any {
	return map[string]any{"location": "local", "properties": map[string]any{
		"publishingProfile": map[string]any{"targetRegions": targets},
		"storageProfile":    map[string]any{"osDiskImage": map[string]any{"sha256": digest, "sizeInBytes": size}},
	}}
}

// makeArtifact writes size deterministic pseudo-random bytes to a file and returns its
// path and SHA-256.
func makeArtifact(t *testing.T, size int64, seed byte) (string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "artifact.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var key [32]byte
	key[0] = seed
	src := rand.NewChaCha8(key)
	h := sha256.New()
	buf := make([]byte, 4<<20)
	for left := size; left > 0; {
		n := min(int64(len(buf)), left)
		src.Read(buf[:n])
		h.Write(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
		left -= n
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path, hex.EncodeToString(h.Sum(nil))
}

func hashFile(t *testing.T, path string) (string, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

// replicaDir is the folder of a region holding every replica of digest (and the
// temporary files of unfinished writes beside them).
func replicaDir(regionDir, digest string) string {
	return filepath.Join(regionDir, filepath.FromSlash(blob.ArtifactPrefix(blob.Digest(digest))))
}

// listReplicaDir names the files in dir with their sizes; a missing dir is empty.
func listReplicaDir(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return out
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = fi.Size()
	}
	return out
}

// tmpName is the name fileblob gives the temporary file of a write to key "N".
var tmpName = regexp.MustCompile(`^[0-9]+\.[0-9a-f]+\.tmp$`)

// replicationStatus is the version's properties.replicationStatus as the API shows it.
type replicationStatus struct {
	AggregatedState string `json:"aggregatedState"`
	Summary         []struct {
		Region   string `json:"region"`
		State    string `json:"state"`
		Details  string `json:"details"`
		Progress int    `json:"progress"`
		Replicas int    `json:"replicas"`
	} `json:"summary"`
}

func (g *galleryRig) status(t *testing.T, c *child) (replicationStatus, map[string]any) {
	t.Helper()
	m := g.must(t, c, "GET", killVer, nil, 200)
	props, _ := m["properties"].(map[string]any)
	raw, _ := json.Marshal(props["replicationStatus"])
	var rs replicationStatus
	if err := json.Unmarshal(raw, &rs); err != nil {
		t.Fatalf("replicationStatus %s: %v", raw, err)
	}
	return rs, props
}

// TestKilledDuringReplicationResumes publishes a large artifact to local and to two
// replicas in west, kills the server as soon as the copy to west is under way, restarts
// it, and checks that replication resumes and completes with intact replicas that serve
// the right bytes, and that no unfinished write counts as one.
func TestKilledDuringReplicationResumes(t *testing.T) {
	const size = 512 << 20
	begin := time.Now()
	g := newGalleryRig(t)
	path, digest := makeArtifact(t, size, 1)
	t.Logf("wrote a %d MiB artifact in %v", size>>20, time.Since(begin).Round(time.Millisecond))

	c := g.start(t)
	g.setUp(t, c)
	g.upload(t, c, digest, path, size)
	code, m, err := c.do(t, g.token, "PUT", killVer, versionBody(digest, size,
		map[string]any{"name": "local"}, map[string]any{"name": "west", "regionalReplicaCount": 2}))
	if err != nil || code != 201 {
		t.Fatalf("PUT version: %d %v %v", code, m, err)
	}
	// The version is acknowledged before its replication to west begins, so a kill at
	// once would come before any byte reached west. Kill as soon as the copy is under way
	// on disk instead, to leave half-written replicas behind.
	acknowledgedAt := time.Now()
	westDir := replicaDir(g.westDir, digest)
	for deadline := acknowledgedAt.Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		var written int64
		final := false
		for name, n := range listReplicaDir(t, westDir) {
			if tmpName.MatchString(name) {
				written = max(written, n)
			} else {
				final = true
			}
		}
		if written >= 8<<20 || final {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replication to west wrote nothing within 10 s of the version's acknowledgement")
		}
	}
	sigkill(t, c)
	killedAt := time.Now()
	atKill := listReplicaDir(t, westDir)
	complete := 0
	for _, n := range []string{"0", "1"} {
		if got, ok := atKill[n]; ok && got == size {
			complete++
		}
	}
	if complete == 2 {
		t.Fatalf("both west replicas were complete when the server was killed: the kill came too late to test a resumed replication; raise the artifact size")
	}
	props, _ := m["properties"].(map[string]any)
	acked, _ := json.Marshal(props["replicationStatus"])
	t.Logf("the acknowledged version's replicationStatus: %s", acked)
	t.Logf("killed %v after the acknowledgement; west then held %v (%d complete replicas)",
		killedAt.Sub(acknowledgedAt).Round(time.Millisecond), atKill, complete)

	c2 := g.start(t)
	var rs replicationStatus
	var last string
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		rs, _ = g.status(t, c2)
		if raw, _ := json.Marshal(rs); string(raw) != last {
			last = string(raw)
			t.Logf("%6v after restart: %s", time.Since(killedAt).Round(time.Millisecond), raw)
		}
		if rs.AggregatedState == "Completed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replication did not complete within 2 minutes of the restart; last status %s", last)
		}
	}
	t.Logf("replication completed %v after the kill", time.Since(killedAt).Round(time.Millisecond))
	for _, s := range rs.Summary {
		want := map[string]int{"local": 1, "west": 2}[s.Region]
		if s.State != "Completed" || s.Replicas != want || s.Progress != 100 {
			t.Errorf("region %s: state %s, %d replicas, progress %d; want Completed, %d, 100", s.Region, s.State, s.Replicas, s.Progress, want)
		}
	}

	// Both west replicas are whole and intact on disk.
	for _, n := range []string{"0", "1"} {
		got, gotSize := hashFile(t, filepath.Join(westDir, n))
		if got != digest || gotSize != size {
			t.Errorf("west replica %s: %d bytes with SHA-256 %s, want %d bytes with %s", n, gotSize, got, size, digest)
		}
	}
	// Whatever the killed write left on disk is only temporary files, which are not replicas.
	for name, n := range listReplicaDir(t, westDir) {
		switch {
		case name == "0" || name == "1":
		case tmpName.MatchString(name):
			t.Logf("west keeps a temporary file of the killed write: %s (%d bytes)", name, n)
			if _, _, ok := blob.ParseArtifactKey(blob.ArtifactPrefix(blob.Digest(digest)) + name); ok {
				t.Errorf("temporary file %s parses as a replica key", name)
			}
		default:
			t.Errorf("unexpected file %s (%d bytes) among west's replicas", name, n)
		}
	}
	for name := range listReplicaDir(t, replicaDir(g.localDir, digest)) {
		if name != "0" && !tmpName.MatchString(name) {
			t.Errorf("unexpected file %s among local's replicas", name)
		}
	}

	// Pulls from west are served only from real replicas, and carry the right bytes.
	for range 4 {
		resp, err := g.request(c2, "HEAD", killVer+"/content", "region=west", nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if r := resp.Header.Get("X-Gild-Replica"); resp.StatusCode != 200 || (r != "0" && r != "1") || resp.ContentLength != size {
			t.Errorf("HEAD content from west: %d, replica %q, %d bytes; want 200 from replica 0 or 1 with %d bytes", resp.StatusCode, r, resp.ContentLength, size)
		}
	}
	resp, err := g.request(c2, "GET", killVer+"/content", "region=west", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		t.Fatalf("GET content from west: %d %s", resp.StatusCode, msg)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		t.Fatalf("GET content from west: %v after %d bytes", err, n)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != digest || n != size {
		t.Errorf("GET content from west (replica %s): %d bytes with SHA-256 %s, want %d bytes with %s",
			resp.Header.Get("X-Gild-Replica"), n, got, int64(size), digest)
	}
	stopGracefully(t, c2)
	t.Logf("total %v", time.Since(begin).Round(time.Millisecond))
}

// TestKilledUploadLeavesNoVersion kills the server halfway through an artifact upload,
// restarts it, and checks that the half-written artifact is not there and cannot be
// published, and that the same artifact then uploads and publishes normally.
func TestKilledUploadLeavesNoVersion(t *testing.T) {
	const size = 256 << 20
	begin := time.Now()
	g := newGalleryRig(t)
	path, digest := makeArtifact(t, size, 2)
	c := g.start(t)
	g.setUp(t, c)

	// Stream the first half through a pipe, then kill the server with the upload open.
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		resp, err := g.request(c, "PUT", killDef+"/artifacts/"+digest, "region=local", pr, size)
		if err == nil {
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			err = fmt.Errorf("the upload was answered %d %s", resp.StatusCode, msg)
		}
		pr.CloseWithError(err)
		done <- err
	}()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n, err := io.CopyN(pw, f, size/2); err != nil {
		t.Fatalf("stream the first half: %v after %d bytes", err, n)
	}
	// Wait until the server has written a good part of it, so the kill is mid-write.
	localDir := replicaDir(g.localDir, digest)
	var partial int64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		for name, n := range listReplicaDir(t, localDir) {
			if tmpName.MatchString(name) {
				partial = max(partial, n)
			}
		}
		if partial >= size/4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server wrote only %d bytes of the %d sent within 10 s", partial, size/2)
		}
	}
	sigkill(t, c)
	// The client's request writer is still waiting for the rest of the body; end it.
	pw.CloseWithError(errors.New("the server was killed"))
	select {
	case err := <-done:
		if err == nil || strings.Contains(err.Error(), "answered") {
			t.Fatalf("the upload did not fail with the server killed: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the upload's request did not end within 30 s of the kill")
	}
	t.Logf("killed the server with %d of %d bytes written; local then held %v", partial, size, listReplicaDir(t, localDir))

	c2 := g.start(t)
	resp, err := g.request(c2, "HEAD", killDef+"/artifacts/"+digest, "region=local", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("HEAD of the half-uploaded artifact: %d, want 404", resp.StatusCode)
	}
	if code, m, err := c2.do(t, g.token, "GET", killVer, nil); err != nil || code != 404 {
		t.Errorf("GET of the never-published version: %d %v %v, want 404", code, m, err)
	}
	body := versionBody(digest, size, map[string]any{"name": "local"})
	code, m, err := c2.do(t, g.token, "PUT", killVer, body)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := m["error"].(map[string]any)
	if code != 400 || e["code"] != "GalleryArtifactNotFound" {
		t.Errorf("PUT of a version of the half-uploaded artifact: %d %v, want 400 GalleryArtifactNotFound", code, m)
	}
	if code, m, err := c2.do(t, g.token, "GET", killVer, nil); err != nil || code != 404 {
		t.Errorf("GET of the refused version: %d %v %v, want 404", code, m, err)
	}

	// The whole artifact then uploads and publishes.
	g.upload(t, c2, digest, path, size)
	resp, err = g.request(c2, "HEAD", killDef+"/artifacts/"+digest, "region=local", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Length") != strconv.Itoa(size) {
		t.Errorf("HEAD of the uploaded artifact: %d, Content-Length %q; want 200, %d", resp.StatusCode, resp.Header.Get("Content-Length"), size)
	}
	m = g.must(t, c2, "PUT", killVer, body, 201)
	props, _ := m["properties"].(map[string]any)
	if props["provisioningState"] != "Succeeded" {
		t.Errorf("published version: provisioningState %v, want Succeeded; %v", props["provisioningState"], props)
	}
	if got, n := hashFile(t, filepath.Join(localDir, "0")); got != digest || n != size {
		t.Errorf("local replica 0: %d bytes with SHA-256 %s, want %d with %s", n, got, size, digest)
	}
	for name := range listReplicaDir(t, localDir) {
		if name != "0" && !tmpName.MatchString(name) {
			t.Errorf("unexpected file %s among local's replicas", name)
		}
	}
	stopGracefully(t, c2)
	t.Logf("total %v", time.Since(begin).Round(time.Millisecond))
}
