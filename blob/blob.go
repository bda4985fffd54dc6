// Package blob is where image artifacts live: named regions, each a bucket behind
// gocloud.dev/blob (a local folder by default; S3, Azure Blob or GCS at scale), holding
// content-addressed artifacts written with their SHA-256 checked on the fly.
//
// A write is committed only when the bytes streamed through it have the expected size and
// SHA-256; otherwise it is aborted and nothing appears under its key. So an artifact present
// under its key was verified when it was written; Hash reads it again to find corruption
// that happened since.
package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	gcblob "gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	_ "gocloud.dev/blob/fileblob" // file:// regions are always available
)

// DefaultRegion is the region of a server configured with none.
const DefaultRegion = "local"

// ErrNotFound is returned for a key with nothing stored under it.
var ErrNotFound = errors.New("blob: not found")

var regionName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidRegionName reports whether name can name a region: lower-case letters, digits and
// dashes, as Azure region names are.
func ValidRegionName(name string) bool { return regionName.MatchString(name) }

// ParseSpec splits a NAME=URL region flag.
func ParseSpec(spec string) (name, rawURL string, err error) {
	name, rawURL, ok := strings.Cut(spec, "=")
	name = strings.ToLower(strings.TrimSpace(name))
	if !ok || rawURL == "" {
		return "", "", fmt.Errorf("region %q: want NAME=URL, such as west=file:///srv/gild/west or eu=s3://bucket?region=eu-west-1", spec)
	}
	if !ValidRegionName(name) {
		return "", "", fmt.Errorf("region %q: the name must be lower-case letters, digits and dashes", name)
	}
	return name, rawURL, nil
}

// FileURL is the file:// URL of a region kept in the local folder dir.
func FileURL(dir string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(dir)}).String()
}

// Digest is a SHA-256 in lower-case hex.
type Digest string

var digestPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ParseDigest accepts a SHA-256 in hex, optionally prefixed with "sha256:".
func ParseDigest(s string) (Digest, error) {
	s = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(s), "sha256:"))
	if !digestPattern.MatchString(s) {
		return "", fmt.Errorf("%q is not a SHA-256 (64 hexadecimal digits)", s)
	}
	return Digest(s), nil
}

// ArtifactKey is where replica n (from 0) of the artifact with digest d is kept in a region.
// Replicas are distinct copies, so one can be repaired from another.
func ArtifactKey(d Digest, replica int) string {
	return "artifacts/sha256/" + string(d[:2]) + "/" + string(d) + "/" + strconv.Itoa(replica)
}

// ParseArtifactKey is the inverse of ArtifactKey.
func ParseArtifactKey(key string) (Digest, int, bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 5 || parts[0] != "artifacts" || parts[1] != "sha256" {
		return "", 0, false
	}
	d, err := ParseDigest(parts[3])
	if err != nil || parts[2] != string(d[:2]) {
		return "", 0, false
	}
	n, err := strconv.Atoi(parts[4])
	if err != nil || n < 0 || strconv.Itoa(n) != parts[4] {
		return "", 0, false
	}
	return d, n, true
}

// ArtifactPrefix is the prefix under which ArtifactKey keeps every replica of d.
func ArtifactPrefix(d Digest) string {
	return "artifacts/sha256/" + string(d[:2]) + "/" + string(d) + "/"
}

// Region is one named storage location.
type Region struct {
	Name   string
	URL    string
	bucket *gcblob.Bucket
	// dir is the folder of a file:// region, whose commits are made durable with fsync
	// (gocloud renames a finished file into place but does not sync it).
	dir string
}

// Open opens the region name at rawURL. For file:// URLs the folder is created if missing,
// temporary files are kept beside their final names (so a commit is an atomic rename on
// one file system) and no metadata files are written.
func Open(ctx context.Context, name, rawURL string) (*Region, error) {
	if !ValidRegionName(name) {
		return nil, fmt.Errorf("open region %q: the name must be lower-case letters, digits and dashes", name)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("open region %s: %w", name, err)
	}
	if u.Scheme == "file" {
		q := u.Query()
		for k, v := range map[string]string{"create_dir": "1", "no_tmp_dir": "1", "metadata": "skip"} {
			if q.Get(k) == "" {
				q.Set(k, v)
			}
		}
		u.RawQuery = q.Encode()
	}
	b, err := gcblob.OpenBucket(ctx, u.String())
	if err != nil {
		return nil, fmt.Errorf("open region %s at %s: %w", name, redact(rawURL), err)
	}
	r := &Region{Name: name, URL: redact(rawURL), bucket: b}
	if u.Scheme == "file" {
		r.dir = filepath.FromSlash(u.Path)
	}
	return r, nil
}

// redact drops credentials from a URL before it is shown.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = url.User(u.User.Username())
	return u.String()
}

// Close releases the region.
func (r *Region) Close() error { return r.bucket.Close() }

func (r *Region) wrap(op, key string, err error) error {
	if gcerrors.Code(err) == gcerrors.NotFound {
		return fmt.Errorf("%s %s in region %s: %w", op, key, r.Name, ErrNotFound)
	}
	return fmt.Errorf("%s %s in region %s: %w", op, key, r.Name, err)
}

// Size is the size of what is stored under key, or ErrNotFound.
func (r *Region) Size(ctx context.Context, key string) (int64, error) {
	a, err := r.bucket.Attributes(ctx, key)
	if err != nil {
		return 0, r.wrap("stat", key, err)
	}
	return a.Size, nil
}

// Open reads key; the reader can seek, for HTTP range requests.
func (r *Region) Open(ctx context.Context, key string) (*gcblob.Reader, error) {
	rd, err := r.bucket.NewReader(ctx, key, nil)
	if err != nil {
		return nil, r.wrap("read", key, err)
	}
	return rd, nil
}

// Delete removes key; a missing key is not an error.
func (r *Region) Delete(ctx context.Context, key string) error {
	if err := r.bucket.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return r.wrap("delete", key, err)
	}
	return nil
}

// Object is one stored key.
type Object struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// List returns every key under prefix.
func (r *Region) List(ctx context.Context, prefix string) ([]Object, error) {
	var out []Object
	it := r.bucket.List(&gcblob.ListOptions{Prefix: prefix})
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, r.wrap("list", prefix, err)
		}
		if !o.IsDir {
			out = append(out, Object{Key: o.Key, Size: o.Size, ModTime: o.ModTime})
		}
	}
}

// Hash reads key through and returns its SHA-256 and size; progress, if set, is told the
// bytes read so far.
func (r *Region) Hash(ctx context.Context, key string, progress func(int64)) (Digest, int64, error) {
	rd, err := r.Open(ctx, key)
	if err != nil {
		return "", 0, err
	}
	defer rd.Close()
	h := sha256.New()
	n, err := copyBuffer(h, rd, progress)
	if err != nil {
		return "", n, r.wrap("hash", key, err)
	}
	return Digest(hex.EncodeToString(h.Sum(nil))), n, nil
}

// chunk is the unit of streaming: large enough that per-call costs vanish next to the bytes.
const chunk = 4 << 20

var chunks = sync.Pool{New: func() any { b := make([]byte, chunk); return &b }}

func copyBuffer(dst io.Writer, src io.Reader, progress func(int64)) (int64, error) {
	bp := chunks.Get().(*[]byte)
	defer chunks.Put(bp)
	buf := *bp
	var total int64
	for {
		n, err := io.ReadFull(src, buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
			if progress != nil {
				progress(total)
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// sync makes a committed key durable in a file:// region: the file's data, and the
// directory entry the commit's rename made. Other stores are durable when a write returns.
func (r *Region) sync(key string) error {
	if r.dir == "" {
		return nil
	}
	path := filepath.Join(r.dir, filepath.FromSlash(key))
	for _, p := range []string{path, filepath.Dir(path)} {
		f, err := os.Open(p)
		if err != nil {
			return r.wrap("sync", key, err)
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return r.wrap("sync", key, err)
		}
	}
	return nil
}
