package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func open(t *testing.T, name string) (*Region, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	r, err := Open(context.Background(), name, FileURL(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, dir
}

func digest(b []byte) Digest {
	s := sha256.Sum256(b)
	return Digest(hex.EncodeToString(s[:]))
}

func TestWriteFansOutAndChecks(t *testing.T) {
	ctx := context.Background()
	a, _ := open(t, "a")
	b, dirB := open(t, "b")
	data := bytes.Repeat([]byte("golden image "), 1<<20) // several chunks
	d := digest(data)
	key := ArtifactKey(d, 0)
	var seen int64
	res, err := Write(ctx, bytes.NewReader(data), Expect{Digest: d, Size: int64(len(data))}, []Target{{a, key}, {b, key}}, func(n int64) { seen = n })
	if err != nil || len(res.Failed) != 0 || res.Digest != d || res.Size != int64(len(data)) || seen != int64(len(data)) {
		t.Fatalf("Write: %+v, %v (progress %d)", res, err, seen)
	}
	for _, r := range []*Region{a, b} {
		got, n, err := r.Hash(ctx, key, nil)
		if err != nil || got != d || n != int64(len(data)) {
			t.Fatalf("%s holds %s (%d bytes), %v", r.Name, got, n, err)
		}
	}

	// A stream that is not what it claims to be commits nowhere and leaves nothing.
	other := append([]byte{}, data...)
	other[len(other)/2] ^= 1
	key2 := ArtifactKey(digest(other), 0)
	_, err = Write(ctx, bytes.NewReader(other), Expect{Digest: d, Size: int64(len(other))}, []Target{{a, key2}, {b, key2}}, nil)
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("a mismatched stream: %v", err)
	}
	short := data[:len(data)-1]
	if _, err := Write(ctx, bytes.NewReader(short), Expect{Digest: digest(short), Size: int64(len(data))}, []Target{{a, key2}}, nil); !errors.Is(err, ErrMismatch) {
		t.Fatalf("a short stream: %v", err)
	}
	// A stream that breaks off (a client gone mid-upload) commits nowhere either.
	broken := io.MultiReader(bytes.NewReader(data[:1<<20]), errReader{})
	if _, err := Write(ctx, broken, Expect{Digest: d, Size: int64(len(data))}, []Target{{b, key2}}, nil); err == nil || errors.Is(err, ErrMismatch) {
		t.Fatalf("a broken stream: %v", err)
	}
	for _, r := range []*Region{a, b} {
		if _, err := r.Size(ctx, key2); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: after failed writes: %v", r.Name, err)
		}
		objs, err := r.List(ctx, "")
		if err != nil || len(objs) != 1 || objs[0].Key != key {
			t.Fatalf("%s lists %v, %v", r.Name, objs, err)
		}
	}
	// And no temporary file is left behind.
	err = filepath.WalkDir(dirB, func(p string, de os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".tmp") {
			t.Errorf("left behind: %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestKeysAndSpecs(t *testing.T) {
	d := digest([]byte("x"))
	for n := range 3 {
		got, m, ok := ParseArtifactKey(ArtifactKey(d, n))
		if !ok || got != d || m != n || !strings.HasPrefix(ArtifactKey(d, n), ArtifactPrefix(d)) {
			t.Fatalf("round trip of replica %d: %v %v %v", n, got, m, ok)
		}
	}
	for _, bad := range []string{"artifacts/sha256/" + string(d[:2]) + "/" + string(d) + "/0.1a2b.tmp", "artifacts/sha256/zz/" + string(d) + "/0", "x/" + string(d), "artifacts/sha256/" + string(d[:2]) + "/" + string(d) + "/01"} {
		if _, _, ok := ParseArtifactKey(bad); ok {
			t.Errorf("ParseArtifactKey(%q) accepted it", bad)
		}
	}
	if _, err := ParseDigest("sha256:" + strings.ToUpper(string(d))); err != nil {
		t.Errorf("a prefixed upper-case digest: %v", err)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("g", 64)} {
		if _, err := ParseDigest(bad); err == nil {
			t.Errorf("ParseDigest(%q) accepted it", bad)
		}
	}
	if n, u, err := ParseSpec("West=s3://bucket?region=eu-west-1"); err != nil || n != "west" || u != "s3://bucket?region=eu-west-1" {
		t.Errorf("ParseSpec: %q %q %v", n, u, err)
	}
	for _, bad := range []string{"west", "=file:///x", "we st=file:///x", "west="} {
		if _, _, err := ParseSpec(bad); err == nil {
			t.Errorf("ParseSpec(%q) accepted it", bad)
		}
	}
	if _, err := Open(context.Background(), "west", "nosuch://bucket"); err == nil {
		t.Error("an unknown scheme opened")
	}
}
