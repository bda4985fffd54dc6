package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// files is a small web server whose files a test changes as it goes.
type files struct {
	mu    sync.Mutex
	files map[string]string
	gets  map[string]int
}

func serveFiles(t *testing.T, initial map[string]string) (*files, *httptest.Server) {
	f := &files{files: initial, gets: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.gets[r.URL.Path]++
		body, ok := f.files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *files) set(path, body string) {
	f.mu.Lock()
	f.files[path] = body
	f.mu.Unlock()
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestBaseVersionOfAURLFollowsItsSumsFile(t *testing.T) {
	disk1, disk2 := sum("disk one"), sum("disk two")
	f, srv := serveFiles(t, map[string]string{"/images/SHA256SUMS": disk1 + "  other.qcow2\n" + disk1 + "  debian.qcow2\n"})
	bd := &Builder{HTTP: srv.Client()}
	src := Source{Type: SourceURL, URL: srv.URL + "/images/debian.qcow2", ChecksumURL: srv.URL + "/images/SHA256SUMS"}
	ctx := context.Background()
	got, err := bd.BaseVersion(ctx, src)
	if err != nil || got != "url:sha256:"+disk1 {
		t.Fatalf("got %q, %v", got, err)
	}
	// The mirror publishes a new image: the sums file names a new checksum.
	f.set("/images/SHA256SUMS", disk2+" *debian.qcow2\n")
	if got, err = bd.BaseVersion(ctx, src); err != nil || got != "url:sha256:"+disk2 {
		t.Fatalf("after the sums file changed: %q, %v", got, err)
	}
	f.set("/images/SHA256SUMS", disk2+"  another.qcow2\n")
	if _, err = bd.BaseVersion(ctx, src); err == nil || !strings.Contains(err.Error(), "lists no SHA-256 or SHA-512 for debian.qcow2") {
		t.Fatalf("a sums file without the disk: %v", err)
	}

	// A file:// sums file, and an inline checksum, which is the version itself.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(disk1+"  debian.qcow2\n"), 0o600)
	got, err = bd.BaseVersion(ctx, Source{Type: SourceURL, URL: "file://" + dir + "/debian.qcow2", ChecksumURL: "file://" + dir + "/SHA256SUMS"})
	if err != nil || got != "url:sha256:"+disk1 {
		t.Fatalf("file://: %q, %v", got, err)
	}
	got, err = bd.BaseVersion(ctx, Source{Type: SourceURL, URL: "file://" + dir + "/debian.qcow2", Checksum: "SHA256:" + strings.ToUpper(disk2)})
	if err != nil || got != "url:sha256:"+disk2 {
		t.Fatalf("inline: %q, %v", got, err)
	}
	// A sums file too large to be one is refused, not read in part.
	os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(strings.Repeat("x", maxSumsFile+1)), 0o600)
	if _, err = bd.BaseVersion(ctx, Source{Type: SourceURL, URL: "file://" + dir + "/debian.qcow2", ChecksumURL: "file://" + dir + "/SHA256SUMS"}); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("a huge sums file: %v", err)
	}
}

// The mirror here is a test server that the machine's (a test directory's) apt sources
// name; the base version is the newest of its suites' release dates.
func TestBaseVersionOfAMarketplaceImage(t *testing.T) {
	release := func(date string) string {
		return "Origin: Debian\nSuite: stable\nCodename: bookworm\nDate: " + date + "\nSHA256:\n abc 1 main/binary-amd64/Packages\n"
	}
	f, srv := serveFiles(t, map[string]string{
		"/debian/dists/bookworm/InRelease":         release("Sat, 14 Nov 2026 09:00:00 UTC"),
		"/debian/dists/bookworm-updates/InRelease": release("Fri, 20 Nov 2026 20:10:00 UTC"),
		// No InRelease here: the Release file is read instead.
		"/debian-security/dists/bookworm-security/Release": release("Thu, 19 Nov 2026 08:00:00 UTC"),
	})
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc/apt"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/apt/sources.list"), []byte("deb "+srv.URL+"/debian bookworm main\n"+
		"deb "+srv.URL+"/debian bookworm-updates main\ndeb "+srv.URL+"/debian-security bookworm-security main\n"), 0o644)
	bd := &Builder{HTTP: srv.Client(), SourcesRoot: root}
	src := Source{Type: SourcePlatformImage, Publisher: "Debian", Offer: "debian-12", SKU: "12", Version: "latest"}
	ctx := context.Background()
	got, err := bd.BaseVersion(ctx, src)
	if err != nil || got != "Debian/debian-12/12@2026.11.20" {
		t.Fatalf("got %q, %v", got, err)
	}
	f.set("/debian-security/dists/bookworm-security/Release", release("Tue, 24 Nov 2026 07:00:00 UTC"))
	if got, err = bd.BaseVersion(ctx, src); err != nil || got != "Debian/debian-12/12@2026.11.24" {
		t.Fatalf("after a security release: %q, %v", got, err)
	}
	// A pinned version asks nobody.
	before := f.gets["/debian/dists/bookworm/InRelease"]
	src.Version = "2026.11.14"
	if got, err = bd.BaseVersion(ctx, src); err != nil || got != "Debian/debian-12/12@2026.11.14" || f.gets["/debian/dists/bookworm/InRelease"] != before {
		t.Fatalf("a pinned version: %q, %v", got, err)
	}
	src.Offer = "ubuntu"
	if _, err = bd.BaseVersion(ctx, src); err == nil || !strings.Contains(err.Error(), "the marketplace has no Debian/ubuntu/12") {
		t.Fatalf("an image gild does not build: %v", err)
	}
	if _, err = (&Builder{}).BaseVersion(ctx, Source{Type: SourceSharedImageVersion, ImageVersionID: def}); err == nil || !strings.Contains(err.Error(), "no gallery") {
		t.Fatalf("a gallery source without a gallery: %v", err)
	}
}

func TestInputs(t *testing.T) {
	script := "#!/bin/sh\necho harden\n"
	f, srv := serveFiles(t, map[string]string{"/SHA256SUMS": sum("disk") + "  d.qcow2\n", "/motd": "hello\n"})
	bd := &Builder{HTTP: srv.Client()}
	p := &TemplateProperties{
		Source: Source{Type: SourceURL, URL: srv.URL + "/d.qcow2", ChecksumURL: srv.URL + "/SHA256SUMS"},
		Customize: []Customizer{
			{Type: CustomizeShell, Name: "harden", ScriptURI: srv.URL + "/harden.sh", SHA256Checksum: strings.ToUpper(sum(script))},
			{Type: CustomizeShell, Name: "inline", Inline: []string{"true"}},
			// Not pinned (as a checked template would be): fetched and hashed.
			{Type: CustomizeFile, Name: "motd", SourceURI: srv.URL + "/motd", Destination: "/etc/motd"},
		},
	}
	ctx := context.Background()
	in, err := bd.Inputs(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	want := Inputs{TemplateDigest: Digest(p), Base: "url:sha256:" + sum("disk"),
		Files: map[string]string{srv.URL + "/harden.sh": "sha256:" + sum(script), srv.URL + "/motd": "sha256:" + sum("hello\n")}}
	if !reflect.DeepEqual(in, want) {
		t.Fatalf("got %+v\nwant %+v", in, want)
	}
	if f.gets["/harden.sh"] != 0 {
		t.Error("a pinned script was downloaded")
	}
	again, _ := bd.Inputs(ctx, p)
	if again.Fingerprint() != in.Fingerprint() || len(in.Fingerprint()) != 64 {
		t.Fatalf("the fingerprint is not stable: %s %s", again.Fingerprint(), in.Fingerprint())
	}
	f.set("/motd", "changed\n")
	changed, err := bd.Inputs(ctx, p)
	if err != nil || changed.Fingerprint() == in.Fingerprint() {
		t.Fatalf("a changed file: %v", err)
	}
	if d := changed.Diff(in); !reflect.DeepEqual(d, []string{"file " + srv.URL + "/motd changed"}) {
		t.Fatalf("diff %q", d)
	}
	p.Customize = p.Customize[:2]
	p.Customize[1].Inline = []string{"false"}
	f.set("/SHA256SUMS", sum("disk 2")+"  d.qcow2\n")
	later, err := bd.Inputs(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	wantDiff := []string{"template changed", "base image sha256:" + sum("disk")[:12] + " → sha256:" + sum("disk 2")[:12], "file " + srv.URL + "/motd removed"}
	if d := later.Diff(changed); !reflect.DeepEqual(d, wantDiff) {
		t.Fatalf("diff %q, want %q", d, wantDiff)
	}
	f.set("/SHA256SUMS", "")
	if _, err := bd.Inputs(ctx, p); err == nil || !strings.Contains(err.Error(), "the base image: the sums file") {
		t.Fatalf("an unreadable base: %v", err)
	}
	p.Customize = append(p.Customize, Customizer{Type: CustomizeFile, Name: "gone", SourceURI: srv.URL + "/gone"})
	f.set("/SHA256SUMS", sum("disk")+"  d.qcow2\n")
	if _, err := bd.Inputs(ctx, p); err == nil || !strings.Contains(err.Error(), `File "gone"`) || !strings.Contains(err.Error(), "404") {
		t.Fatalf("a file that is not there: %v", err)
	}
}

func TestInputsDiff(t *testing.T) {
	a := Inputs{TemplateDigest: "t1", Base: "Debian/debian-12/12@2026.11.20", Files: map[string]string{"https://x/a": "sha256:1", "https://x/b": "sha256:2"}}
	b := Inputs{TemplateDigest: "t1", Base: "Debian/debian-12/12@2026.11.24", Files: map[string]string{"https://x/a": "sha256:1", "https://x/c": "sha256:3"}}
	want := []string{"base image 2026.11.20 → 2026.11.24", "file https://x/b removed", "file https://x/c added"}
	if d := b.Diff(a); !reflect.DeepEqual(d, want) {
		t.Fatalf("diff %q", d)
	}
	if d := a.Diff(a); d != nil {
		t.Fatalf("no change: %q", d)
	}
	g1 := Inputs{TemplateDigest: "t", Base: "gallery:/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/galleries/g/images/i/versions/1.0.3"}
	g2 := g1
	g2.Base = strings.Replace(g1.Base, "1.0.3", "1.0.4", 1)
	if d := g2.Diff(g1); !reflect.DeepEqual(d, []string{"base image 1.0.3 → 1.0.4"}) {
		t.Fatalf("gallery diff %q", d)
	}
	if d := a.Diff(Inputs{}); !reflect.DeepEqual(d, []string{"no earlier inputs to compare with"}) {
		t.Fatalf("against nothing: %q", d)
	}
	if a.Fingerprint() == b.Fingerprint() {
		t.Fatal("different inputs, one fingerprint")
	}
}
