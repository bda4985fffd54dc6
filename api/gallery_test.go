package api_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gildhq/gild/blob"
)

const (
	galleryA = rgPay + "/providers/Microsoft.Compute/galleries/corp"
	defA     = galleryA + "/images/debian-12"
	galleryB = rgFind + "/providers/Microsoft.Compute/galleries/search"
	defB     = galleryB + "/images/debian-12"
)

func definitionBody(publisher string) map[string]any {
	return map[string]any{"location": "local", "properties": map[string]any{
		"identifier": map[string]any{"publisher": publisher, "offer": "debian-12", "sku": "hardened"},
		"osType":     "Linux", "osState": "Generalized", "description": "Debian 12, hardened",
	}}
}

// disk is a pseudo-random artifact.
func disk(seed uint64, size int) []byte {
	b := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// seedGalleries makes a gallery with a definition in each team's subscription.
func (e *env) seedGalleries() {
	e.t.Helper()
	e.seed()
	for _, g := range []struct{ gallery, def string }{{galleryA, defA}, {galleryB, defB}} {
		e.must(e.admin, "PUT", g.gallery, map[string]any{"location": "local", "properties": map[string]any{"description": "golden images"}}, 201)
		e.must(e.admin, "PUT", g.def, definitionBody("Contoso"), 201)
	}
}

// publish uploads data to the first target region (when it is not there already) and
// creates version v of def with the extra publishing-profile fields.
func (e *env) publish(token, def, v string, data []byte, profile map[string]any) response {
	e.t.Helper()
	region := "local"
	if trs, ok := profile["targetRegions"].([]map[string]any); ok {
		region = trs[0]["name"].(string)
	}
	art := def + "/artifacts/" + digestOf(data) + "?region=" + region
	if r := e.do(token, "HEAD", art, nil); r.status == 404 {
		e.mustUpload(token, art, data, 201)
	}
	if profile == nil {
		profile = map[string]any{}
	}
	return e.do(token, "PUT", def+"/versions/"+v, map[string]any{"location": "local", "properties": map[string]any{
		"publishingProfile": profile,
		"storageProfile":    map[string]any{"osDiskImage": map[string]any{"sha256": digestOf(data), "sizeInBytes": len(data), "format": "raw"}},
	}})
}

func (e *env) mustUpload(token, path string, data []byte, want int) response {
	e.t.Helper()
	r := e.do(token, "PUT", path, data, "Content-Type", "application/octet-stream")
	if r.status != want {
		e.t.Fatalf("upload %s: %d %s", path, r.status, r.raw)
	}
	return r
}

// waitFor polls version v until cond holds on its properties.
func (e *env) waitFor(v, what string, cond func(props map[string]any) bool) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := e.must(e.admin, "GET", v, nil, 200)
		props := r.body["properties"].(map[string]any)
		if cond(props) {
			return props
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: never %s: %s", v, what, r.raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func lifecycleState(props map[string]any) string {
	l, _ := props["lifecycle"].(map[string]any)
	s, _ := l["state"].(string)
	return s
}

func aggregated(props map[string]any) string {
	rs, _ := props["replicationStatus"].(map[string]any)
	s, _ := rs["aggregatedState"].(string)
	return s
}

func (e *env) resolve(token, def, ref, region string) response {
	e.t.Helper()
	return e.do(token, "POST", def+"/resolve?version="+ref+"&region="+region, nil)
}

// TestLatestAgedAndEndOfLife is the first acceptance point.
func TestLatestAgedAndEndOfLife(t *testing.T) {
	e := newEnv(t)
	e.seedGalleries()
	v100, v110, v101 := defA+"/versions/1.0.0", defA+"/versions/1.1.0", defA+"/versions/1.0.1"
	if r := e.publish(e.admin, defA, "1.0.0", disk(1, 4096), nil); r.status != 201 {
		t.Fatalf("publish 1.0.0: %d %s", r.status, r.raw)
	}
	if r := e.publish(e.admin, defA, "1.1.0", disk(2, 4096), map[string]any{"excludeFromLatest": true}); r.status != 201 {
		t.Fatalf("publish 1.1.0: %d %s", r.status, r.raw)
	}
	r := e.publish(e.admin, defA, "1.0.1", disk(3, 4096), nil)
	if r.status != 201 {
		t.Fatalf("publish 1.0.1: %d %s", r.status, r.raw)
	}
	props := r.body["properties"].(map[string]any)
	if props["provisioningState"] != "Succeeded" || lifecycleState(props) != "active" || props["publishingProfile"].(map[string]any)["publishedDate"] == nil {
		t.Fatalf("a published version: %s", r.raw)
	}
	if got := e.resolve(e.admin, defA, "latest", ""); got.status != 200 || got.body["version"] != "1.0.1" || got.body["sha256"] != digestOf(disk(3, 4096)) {
		t.Fatalf("latest: %d %s", got.status, got.raw)
	}
	e.waitFor(v100, "aged", func(p map[string]any) bool { return lifecycleState(p) == "aged" })
	for _, v := range []string{v110, v101} {
		if s := lifecycleState(e.must(e.admin, "GET", v, nil, 200).body["properties"].(map[string]any)); s != "active" {
			t.Errorf("%s is %s, want active", v, s)
		}
	}

	// A VM on the definition gets latest, recorded as its exact version; policies see
	// the image's facts.
	vm := rgPay + "/providers/" + vmType + "/web-1"
	vmOn := func(image string) map[string]any {
		b := vmBody("Contoso")
		b["properties"].(map[string]any)["storageProfile"] = map[string]any{"imageReference": map[string]any{"id": image}}
		return b
	}
	got := e.must(e.admin, "PUT", vm, vmOn(defA), 201)
	if ir := got.body["properties"].(map[string]any)["storageProfile"].(map[string]any)["imageReference"].(map[string]any); ir["exactVersion"] != "1.0.1" {
		t.Fatalf("the VM's exact version: %s", got.raw)
	}

	// 1.0.1 reaches its end of life: never latest again, refused for new VMs, while the
	// VM already on it keeps running.
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	e.must(e.admin, "PATCH", v101, map[string]any{"properties": map[string]any{"publishingProfile": map[string]any{"endOfLifeDate": past}}}, 200)
	if got := e.resolve(e.admin, defA, "latest", ""); got.status != 200 || got.body["version"] != "1.0.0" {
		t.Fatalf("latest after 1.0.1's end of life: %d %s", got.status, got.raw)
	}
	r = e.do(e.admin, "PUT", rgPay+"/providers/"+vmType+"/web-2", vmOn(v101))
	if r.status != 409 || r.errCode() != "GalleryImageVersionEndOfLife" || r.errField("target") != "properties.storageProfile.imageReference.id" {
		t.Fatalf("a new VM on an end-of-life version: %d %s", r.status, r.raw)
	}
	e.must(e.admin, "PATCH", vm, map[string]any{"tags": map[string]string{"owner": "web"}}, 200)
	e.waitFor(v101, "endOfLife", func(p map[string]any) bool { return lifecycleState(p) == "endOfLife" })
	// 1.0.0 is latest again, so no longer aged.
	e.waitFor(v100, "active again", func(p map[string]any) bool { return lifecycleState(p) == "active" })

	// The immutable parts of a version stay as they were.
	r = e.do(e.admin, "PUT", v100, map[string]any{"location": "local", "properties": map[string]any{
		"storageProfile": map[string]any{"osDiskImage": map[string]any{"sha256": digestOf(disk(9, 10)), "sizeInBytes": 10}}}})
	if r.status != 409 || r.errCode() != "PropertyChangeNotAllowed" {
		t.Fatalf("changing a version's disk: %d %s", r.status, r.raw)
	}
}

func TestPublishRefusals(t *testing.T) {
	e := newEnv(t)
	e.seedGalleries()
	data := disk(7, 1000)
	// No artifact: no version.
	r := e.do(e.admin, "PUT", defA+"/versions/1.0.0", map[string]any{"location": "local", "properties": map[string]any{
		"storageProfile": map[string]any{"osDiskImage": map[string]any{"sha256": digestOf(data), "sizeInBytes": len(data)}}}})
	if r.status != 400 || r.errCode() != "GalleryArtifactNotFound" || r.errField("target") != "properties.storageProfile.osDiskImage.sha256" {
		t.Fatalf("a version without its artifact: %d %s", r.status, r.raw)
	}
	// Bytes that do not match their name are not kept.
	bad := append([]byte{}, data...)
	bad[10] ^= 1
	r = e.do(e.admin, "PUT", defA+"/artifacts/"+digestOf(data), bad, "Content-Type", "application/octet-stream")
	if r.status != 400 || r.errCode() != "GalleryArtifactChecksumMismatch" {
		t.Fatalf("a corrupt upload: %d %s", r.status, r.raw)
	}
	e.must(e.admin, "HEAD", defA+"/artifacts/"+digestOf(data), nil, 404)
	if r := e.do(e.admin, "HEAD", defA+"/artifacts/"+digestOf(data)+"?region=mars", nil); r.status != 400 || r.header.Get("X-Ms-Error-Code") != "GalleryRegionNotFound" {
		t.Fatalf("HEAD in a region that does not exist: %d %v", r.status, r.header)
	}
	// Every problem of a version at once.
	r = e.do(e.admin, "PUT", defA+"/versions/1.0", map[string]any{"location": "local", "properties": map[string]any{}})
	if r.status != 400 || !strings.Contains(string(r.raw), "Major.Minor.Patch") {
		t.Fatalf("a bad version name: %d %s", r.status, r.raw)
	}
	r = e.do(e.admin, "PUT", defA+"/versions/1.0.0", map[string]any{"location": "local", "properties": map[string]any{
		"publishingProfile": map[string]any{"targetRegions": []any{map[string]any{"name": "mars"}}},
		"storageProfile":    map[string]any{"osDiskImage": map[string]any{"sha256": "nope", "sizeInBytes": -1}}}})
	if r.status != 400 || !strings.Contains(string(r.raw), `"targetRegions[0].name`) && !strings.Contains(string(r.raw), "mars") || !strings.Contains(string(r.raw), "osDiskImage.sha256") || !strings.Contains(string(r.raw), "osDiskImage.sizeInBytes") {
		t.Fatalf("a bad version: %d %s", r.status, r.raw)
	}
	// Two definitions with one identifier in a gallery.
	r = e.do(e.admin, "PUT", galleryA+"/images/other", definitionBody("Contoso"))
	if r.status != 409 || r.errCode() != "GalleryImageIdentifierConflict" {
		t.Fatalf("a duplicate identifier: %d %s", r.status, r.raw)
	}
	// A definition's identity does not change.
	b := definitionBody("Fabrikam")
	r = e.do(e.admin, "PUT", defA, b)
	if r.status != 409 || r.errCode() != "PropertyChangeNotAllowed" {
		t.Fatalf("changing a definition's identifier: %d %s", r.status, r.raw)
	}
}

// TestReplicationDedupAndRepair covers replication with replica counts, publishing the same
// bytes again without copying them, and repairing a corrupted replica from another region.
func TestReplicationDedupAndRepair(t *testing.T) {
	e := newEnv(t)
	e.seedGalleries()
	data := disk(11, 3<<20+17)
	targets := []map[string]any{{"name": "local"}, {"name": "west", "regionalReplicaCount": 2}, {"name": "east"}}
	r := e.publish(e.admin, defA, "1.0.0", data, map[string]any{"targetRegions": targets})
	if r.status != 201 {
		t.Fatalf("publish: %d %s", r.status, r.raw)
	}
	v := defA + "/versions/1.0.0"
	e.waitFor(v, "replicated", func(p map[string]any) bool { return aggregated(p) == "Completed" })
	d := blob.Digest(digestOf(data))
	replica := func(region string, n int) string {
		return filepath.Join(e.regions, region, filepath.FromSlash(blob.ArtifactKey(d, n)))
	}
	stats := map[string]os.FileInfo{}
	for _, p := range []string{replica("local", 0), replica("west", 0), replica("west", 1), replica("east", 0)} {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(b, data) {
			t.Fatalf("replica %s: %v", p, err)
		}
		stats[p], _ = os.Stat(p)
	}
	for _, region := range []string{"local", "west", "east"} {
		if got := e.resolve(e.admin, defA, "latest", region); got.body["version"] != "1.0.0" {
			t.Fatalf("latest in %s: %s", region, got.raw)
		}
	}

	// The same bytes again: the upload is skipped, and the new version is complete
	// everywhere at once, with no byte copied.
	e.must(e.admin, "HEAD", defA+"/artifacts/"+digestOf(data), nil, 200)
	up := e.mustUpload(e.admin, defA+"/artifacts/"+digestOf(data), data, 200)
	if stored, _ := up.body["stored"].([]any); len(stored) != 0 {
		t.Fatalf("uploading bytes already held: %s", up.raw)
	}
	r = e.publish(e.admin, defA, "1.0.1", data, map[string]any{"targetRegions": targets})
	if r.status != 201 || aggregated(r.body["properties"].(map[string]any)) != "Completed" {
		t.Fatalf("publishing the same bytes again: %d %s", r.status, r.raw)
	}
	for p, before := range stats {
		after, err := os.Stat(p)
		if err != nil || !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
			t.Fatalf("replica %s was written again", p)
		}
	}

	// Corrupt one replica on disk; verification finds it and replication restores it.
	f, err := os.OpenFile(replica("east", 0), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("rot"), 1<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	rep := e.must(e.admin, "POST", v+"/verify", nil, 200)
	corrupt := 0
	for _, c := range rep.body["replicas"].([]any) {
		c := c.(map[string]any)
		if c["status"] == "corrupt" {
			corrupt++
			if c["region"] != "east" {
				t.Errorf("reported corrupt: %v", c)
			}
		} else if c["status"] != "ok" {
			t.Errorf("replica %v", c)
		}
	}
	if corrupt != 1 || rep.body["repairing"] != true {
		t.Fatalf("verification: %s", rep.raw)
	}
	e.waitFor(v, "repaired", func(p map[string]any) bool { return aggregated(p) == "Completed" })
	if b, err := os.ReadFile(replica("east", 0)); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("the east replica was not repaired: %v", err)
	}
	rep = e.must(e.admin, "POST", v+"/verify", nil, 200)
	if rep.body["repairing"] != false {
		t.Fatalf("after repair: %s", rep.raw)
	}
}

// TestPullRangesAndShareLinks pulls a version whole and in ranges, spread over replicas,
// and through a share link that expires.
func TestPullRangesAndShareLinks(t *testing.T) {
	e := newEnv(t)
	e.seedGalleries()
	data := disk(21, 1<<20+3)
	targets := []map[string]any{{"name": "local", "regionalReplicaCount": 3}}
	if r := e.publish(e.admin, defA, "2.0.0", data, map[string]any{"targetRegions": targets}); r.status != 201 {
		t.Fatalf("publish: %d %s", r.status, r.raw)
	}
	v := defA + "/versions/2.0.0"
	e.waitFor(v, "replicated", func(p map[string]any) bool { return aggregated(p) == "Completed" })
	seen := map[string]bool{}
	for range 6 {
		r := e.do(e.admin, "GET", v+"/content", nil)
		if r.status != 200 || !bytes.Equal(r.raw, data) || r.header.Get("X-Gild-Sha256") != digestOf(data) {
			t.Fatalf("pull: %d, %d bytes", r.status, len(r.raw))
		}
		seen[r.header.Get("X-Gild-Replica")] = true
	}
	if len(seen) != 3 {
		t.Errorf("pulls used replicas %v, want all three", seen)
	}
	r := e.do(e.admin, "GET", v+"/content", nil, "Range", "bytes=1000-", "If-Range", `"sha256:`+digestOf(data)+`"`)
	if r.status != 206 || !bytes.Equal(r.raw, data[1000:]) {
		t.Fatalf("a resumed pull: %d, %d bytes", r.status, len(r.raw))
	}
	r = e.do(e.admin, "GET", v+"/content", nil, "Range", "bytes=1000-", "If-Range", `"sha256:other"`)
	if r.status != 200 || len(r.raw) != len(data) {
		t.Fatalf("a resumed pull of other bytes must restart: %d, %d bytes", r.status, len(r.raw))
	}
	if r := e.do(e.admin, "GET", v+"/content?region=west", nil); r.status != 404 {
		t.Fatalf("a pull from a region without the version: %d %s", r.status, r.raw)
	}

	link := e.must(e.admin, "POST", v+"/share?expires=1h", nil, 200)
	url, _ := link.body["url"].(string)
	if !strings.HasPrefix(url, e.url+"/share/") {
		t.Fatalf("share link: %s", link.raw)
	}
	resp, err := http.Get(url) // no token
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("pull through the link: %d, %d bytes", resp.StatusCode, len(body))
	}
	for _, bad := range []string{url + "x", strings.Replace(url, "/share/", "/share/x", 1)} {
		resp, err := http.Get(bad)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Errorf("a tampered link: %d", resp.StatusCode)
		}
	}
	if r := e.do(e.admin, "POST", v+"/share?expires=3000h", nil); r.status != 400 || r.errField("target") != "expires" {
		t.Fatalf("a link for too long: %d %s", r.status, r.raw)
	}
	short := e.must(e.admin, "POST", v+"/share?expires=1s", nil, 200)
	time.Sleep(1100 * time.Millisecond)
	resp, err = http.Get(short.body["url"].(string))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(msg), "expired") {
		t.Fatalf("an expired link: %d %s", resp.StatusCode, msg)
	}
	// A Reader cannot hand out links.
	if r := e.do(e.token("Reader", subPay), "POST", v+"/share?expires=1h", nil); r.status != 403 {
		t.Fatalf("a reader sharing: %d %s", r.status, r.raw)
	}
}

// TestGalleryAccess: a team with Reader on one gallery pulls from it and cannot see
// another.
func TestGalleryAccess(t *testing.T) {
	e := newEnv(t)
	e.seedGalleries()
	a, b := disk(31, 5000), disk(32, 5000)
	for _, p := range []struct {
		def  string
		data []byte
	}{{defA, a}, {defB, b}} {
		if r := e.publish(e.admin, p.def, "1.0.0", p.data, nil); r.status != 201 {
			t.Fatalf("publish: %d %s", r.status, r.raw)
		}
	}
	reader := e.token("Reader", galleryA)
	if r := e.resolve(reader, defA, "latest", ""); r.status != 200 || r.body["version"] != "1.0.0" {
		t.Fatalf("reader resolving its gallery: %d %s", r.status, r.raw)
	}
	if r := e.do(reader, "GET", defA+"/versions/1.0.0/content", nil); r.status != 200 || !bytes.Equal(r.raw, a) {
		t.Fatalf("reader pulling from its gallery: %d", r.status)
	}
	if got := ids(e.must(reader, "GET", defA+"/versions", nil, 200)); len(got) != 1 {
		t.Fatalf("reader listing versions: %v", got)
	}
	for _, p := range []string{galleryB, defB, defB + "/versions/1.0.0", defB + "/versions/1.0.0/content", defB + "/resolve?version=latest"} {
		method := "GET"
		if strings.Contains(p, "/resolve") {
			method = "POST"
		}
		if r := e.do(reader, method, p, nil); r.status != 404 {
			t.Errorf("reader %s %s: %d %s", method, p, r.status, r.raw)
		}
	}
	if got := ids(e.must(reader, "GET", "/providers/Microsoft.Compute/galleries", nil, 200)); len(got) != 1 || !strings.EqualFold(got[0], galleryA) {
		t.Errorf("reader's galleries: %v", got)
	}
	// Reading is not publishing.
	c := disk(33, 100)
	if r := e.do(reader, "PUT", defA+"/artifacts/"+digestOf(c), c, "Content-Type", "application/octet-stream"); r.status != 403 {
		t.Fatalf("reader uploading: %d %s", r.status, r.raw)
	}
	publisher := e.token("Image Publisher", galleryA)
	if r := e.publish(publisher, defA, "1.0.1", c, nil); r.status != 201 {
		t.Fatalf("image publisher publishing: %d %s", r.status, r.raw)
	}
	if r := e.do(publisher, "PUT", defB+"/artifacts/"+digestOf(c), c, "Content-Type", "application/octet-stream"); r.status != 404 {
		t.Fatalf("image publisher uploading into another gallery: %d %s", r.status, r.raw)
	}
	if r := e.do(publisher, "PUT", defB+"/versions/1.0.1", map[string]any{"location": "local", "properties": map[string]any{
		"storageProfile": map[string]any{"osDiskImage": map[string]any{"sha256": digestOf(c), "sizeInBytes": len(c)}}}}); r.status != 404 {
		t.Fatalf("image publisher publishing into another gallery: %d %s", r.status, r.raw)
	}
}

// TestVersionInUseIsNotDeleted: a version VMs use cannot be deleted before its end of life
// unless forced, and the refusal names the VMs.
func TestVersionInUseIsNotDeleted(t *testing.T) {
	e := newEnv(t)
	e.seedGalleries()
	if r := e.publish(e.admin, defA, "1.0.0", disk(41, 100), nil); r.status != 201 {
		t.Fatalf("publish: %d %s", r.status, r.raw)
	}
	v := defA + "/versions/1.0.0"
	for i, image := range []string{v, defA} {
		b := vmBody("Contoso")
		b["properties"].(map[string]any)["storageProfile"] = map[string]any{"imageReference": map[string]any{"id": image}}
		e.must(e.admin, "PUT", fmt.Sprintf("%s/providers/%s/app-%d", rgPay, vmType, i), b, 201)
	}
	r := e.do(e.admin, "DELETE", v, nil)
	if r.status != 409 || r.errCode() != "GalleryImageVersionInUse" || !strings.Contains(r.errField("message"), "app-0") || !strings.Contains(r.errField("message"), "app-1") {
		t.Fatalf("deleting a version in use: %d %s", r.status, r.raw)
	}
	// Deleting the gallery takes its versions along, so it is refused too.
	if r := e.do(e.admin, "DELETE", rgPay, nil); r.status != 409 || r.errCode() != "GalleryImageVersionInUse" {
		t.Fatalf("deleting the resource group: %d %s", r.status, r.raw)
	}
	e.must(e.admin, "DELETE", v+"?forceDeletion=true", nil, 200)
	e.must(e.admin, "GET", v, nil, 404)

	// Past its end of life, a version in use can go.
	if r := e.publish(e.admin, defA, "1.0.1", disk(42, 100), map[string]any{"endOfLifeDate": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}); r.status != 201 {
		t.Fatalf("publish: %d %s", r.status, r.raw)
	}
	b := vmBody("Contoso")
	b["properties"].(map[string]any)["storageProfile"] = map[string]any{"imageReference": map[string]any{"id": defA + "/versions/1.0.1"}}
	e.must(e.admin, "PUT", rgPay+"/providers/"+vmType+"/app-9", b, 201)
	e.must(e.admin, "DELETE", defA+"/versions/1.0.1", nil, 409)
	e.must(e.admin, "PATCH", defA+"/versions/1.0.1", map[string]any{"properties": map[string]any{"publishingProfile": map[string]any{"endOfLifeDate": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)}}}, 200)
	e.must(e.admin, "DELETE", defA+"/versions/1.0.1", nil, 200)
}

// TestPullFindsRot: a whole pull that hashes wrong sets off verification and repair.
func TestPullFindsRot(t *testing.T) {
	e := newEnv(t)
	e.seedGalleries()
	data := disk(51, 200_000)
	if r := e.publish(e.admin, defA, "1.0.0", data, map[string]any{"targetRegions": []map[string]any{{"name": "local"}, {"name": "west"}}}); r.status != 201 {
		t.Fatalf("publish: %d %s", r.status, r.raw)
	}
	v := defA + "/versions/1.0.0"
	e.waitFor(v, "replicated", func(p map[string]any) bool { return aggregated(p) == "Completed" })
	path := filepath.Join(e.regions, "local", filepath.FromSlash(blob.ArtifactKey(blob.Digest(digestOf(data)), 0)))
	rotten := append([]byte{}, data...)
	rotten[12345] ^= 0xff
	if err := os.WriteFile(path, rotten, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := e.do(e.admin, "GET", v+"/content?region=local", nil); r.status != 200 || bytes.Equal(r.raw, data) {
		t.Fatalf("the rotten pull: %d", r.status)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil && bytes.Equal(b, data) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the rotten replica was never replaced")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := e.do(e.admin, "GET", v+"/content?region=local", nil); r.status != 200 || !bytes.Equal(r.raw, data) {
		t.Fatalf("the pull after repair: %d", r.status)
	}
}

// TestPoliciesSeeImageLifecycle: gild's built-in lifecycle policy finds a VM whose image
// version aged when a newer one was published, with no write to the VM.
func TestPoliciesSeeImageLifecycle(t *testing.T) {
	e := newEnv(t)
	e.seedGalleries()
	if r := e.publish(e.admin, defA, "1.0.0", disk(61, 100), nil); r.status != 201 {
		t.Fatalf("publish: %d %s", r.status, r.raw)
	}
	e.must(e.admin, "PUT", subPay+"/providers/Microsoft.Authorization/policyAssignments/current-images", map[string]any{"properties": map[string]any{
		"policyDefinitionId": "/providers/Microsoft.Authorization/policyDefinitions/gild-image-lifecycle",
		"parameters":         map[string]any{"disallowedStates": map[string]any{"value": []string{"Aged", "Deprecated", "EndOfLife"}}},
	}}, 201)
	vm := rgPay + "/providers/" + vmType + "/web-1"
	b := vmBody("Contoso")
	b["properties"].(map[string]any)["storageProfile"] = map[string]any{"imageReference": map[string]any{"id": defA}}
	e.must(e.admin, "PUT", vm, b, 201)
	waitFor(t, 10*time.Second, "the VM on the newest image to be compliant", func() bool {
		return e.states(vm)["current-images"]["complianceState"] == "Compliant"
	})
	if r := e.publish(e.admin, defA, "1.0.1", disk(62, 100), nil); r.status != 201 {
		t.Fatalf("publish: %d %s", r.status, r.raw)
	}
	waitFor(t, 10*time.Second, "the VM on the aged image to be non-compliant", func() bool {
		return e.states(vm)["current-images"]["complianceState"] == "NonCompliant"
	})
}
