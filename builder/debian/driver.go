package debian

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gildhq/gild/builder"
)

// Rootfs is a built base root filesystem.
type Rootfs struct {
	Dir      string
	Digest   string    // of the build's inputs: mmdebstrap's arguments and version, the release dates
	Releases []Release // of the suites it was built from
	Date     time.Time // the newest release date
	Version  string    // VersionOf(Date), such as 2026.11.20
	Cached   bool      // unpacked from the cache rather than built
}

// Driver builds base root filesystems.
type Driver interface {
	// Build makes the root filesystem spec describes in dir, which must not exist or be
	// empty. On failure dir is removed again.
	Build(ctx context.Context, spec Spec, dir string) (*Rootfs, error)
}

// Mmdebstrap builds with mmdebstrap and caches each result as a tarball in CacheDir, keyed
// by the digest of its inputs.
type Mmdebstrap struct {
	Runner *builder.Runner
	// CacheDir holds rootfs-DIGEST.tar files; "" disables the cache. Nothing prunes it.
	CacheDir string
	HTTP     *http.Client // for the Release files; http.DefaultClient when nil
	// Mmdebstrap and Tar name the programs; "mmdebstrap" and "tar" when empty.
	Mmdebstrap, Tar string
}

var _ Driver = (*Mmdebstrap)(nil)

func (m *Mmdebstrap) tool(p, def string) string {
	if p == "" {
		return def
	}
	return p
}

// InputDigest is the cache key of a build: a SHA-256 over mmdebstrap's arguments (with a
// fixed target, so where a build goes does not matter), mmdebstrap's version, and each
// suite's release date, because an unchanged command line builds something new once the
// mirror publishes.
func InputDigest(spec Spec, toolVersion string, releases []Release) string {
	h := sha256.New()
	fmt.Fprintf(h, "gild rootfs v1\x00%s\x00", toolVersion)
	for _, a := range MmdebstrapArgs(spec, "TARGET") {
		fmt.Fprintf(h, "arg %s\x00", a)
	}
	for _, r := range releases {
		fmt.Fprintf(h, "release %s %s\x00", r.Suite, r.Date.UTC().Format(time.RFC3339))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// tarArgs keep what a root filesystem needs from a tarball: numeric owners (the host's
// users are not the image's), permissions, and extended attributes such as file
// capabilities.
var tarArgs = []string{"--numeric-owner", "--xattrs", "--xattrs-include=*"}

// TarCreateArgs archives dir into file. Sorted by name, so equal trees give equal tarballs.
func TarCreateArgs(dir, file string) []string {
	return append([]string{"--create", "--file", file, "--directory", dir, "--sort=name"}, append(tarArgs, ".")...)
}

// TarExtractArgs unpacks file into dir.
func TarExtractArgs(file, dir string) []string {
	return append([]string{"--extract", "--file", file, "--directory", dir, "--same-permissions"}, tarArgs...)
}

// Build implements Driver.
func (m *Mmdebstrap) Build(ctx context.Context, spec Spec, dir string) (_ *Rootfs, err error) {
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("build rootfs: %w", err)
	}
	start := time.Now()
	r := m.Runner
	releases, err := FetchReleases(ctx, m.HTTP, spec)
	if err != nil {
		return nil, fmt.Errorf("build rootfs: %w", err)
	}
	for _, rel := range releases {
		r.Logf("debian", "%s released %s (%s)", rel.Suite, rel.Date.Format(time.RFC3339), rel.URL)
	}
	out, err := r.Output(ctx, builder.Command{Path: m.tool(m.Mmdebstrap, "mmdebstrap"), Args: []string{"--version"}})
	if err != nil {
		return nil, fmt.Errorf("build rootfs: mmdebstrap version: %w", err)
	}
	version := strings.TrimSpace(string(out))
	fs := &Rootfs{Dir: dir, Digest: InputDigest(spec, version, releases), Releases: releases, Date: Newest(releases)}
	fs.Version = VersionOf(fs.Date)

	if err := emptyDir(dir); err != nil {
		return nil, fmt.Errorf("build rootfs: %w", err)
	}
	// From here on a failure leaves nothing half-built behind.
	defer func() {
		if err != nil {
			// RemoveTree refuses while a killed mmdebstrap left mounts behind.
			if rmErr := builder.RemoveTree(dir); rmErr != nil {
				err = errors.Join(err, fmt.Errorf("remove the partial rootfs: %w", rmErr))
			}
		}
	}()

	cached := ""
	if m.CacheDir != "" {
		cached = filepath.Join(m.CacheDir, "rootfs-"+fs.Digest+".tar")
		if _, err := os.Stat(cached); err == nil {
			if err := r.Run(ctx, builder.Command{Path: m.tool(m.Tar, "tar"), Args: TarExtractArgs(cached, dir)}); err != nil {
				return nil, fmt.Errorf("build rootfs: unpack the cached %s: %w", cached, err)
			}
			fs.Cached = true
			r.Logf("debian", "rootfs %s from the cache in %s (inputs unchanged: %s)", fs.Version, time.Since(start).Round(time.Millisecond), cached)
			return fs, nil
		}
	}
	args := MmdebstrapArgs(spec, dir)
	if err := r.Run(ctx, builder.Command{Path: m.tool(m.Mmdebstrap, "mmdebstrap"), Args: args}); err != nil {
		return nil, fmt.Errorf("build rootfs: %w", err)
	}
	r.Logf("debian", "rootfs %s built by mmdebstrap in %s", fs.Version, time.Since(start).Round(time.Millisecond))
	if cached != "" {
		// A cache that cannot be written costs the next build time, not this one its result.
		if err := m.store(ctx, dir, cached); err != nil {
			r.Logf("debian", "warning: rootfs not cached: %v", err)
		}
	}
	return fs, nil
}

// store archives dir into the cache under a temporary name and renames it into place, so
// a reader never sees half a tarball and concurrent builds of the same inputs are safe.
func (m *Mmdebstrap) store(ctx context.Context, dir, file string) error {
	start := time.Now()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return fmt.Errorf("cache rootfs: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".rootfs-*.tar")
	if err != nil {
		return fmt.Errorf("cache rootfs: %w", err)
	}
	tmp.Close()
	if err := m.Runner.Run(ctx, builder.Command{Path: m.tool(m.Tar, "tar"), Args: TarCreateArgs(dir, tmp.Name())}); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cache rootfs: %w", err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cache rootfs: %w", err)
	}
	m.Runner.Logf("debian", "rootfs cached in %s as %s", time.Since(start).Round(time.Millisecond), file)
	return nil
}

// emptyDir makes sure dir exists and is empty: mmdebstrap refuses anything else, and
// unpacking a cached tree over old files would mix two builds.
func emptyDir(dir string) error {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); err != io.EOF {
		if err == nil {
			return fmt.Errorf("%s is not empty", dir)
		}
		return err
	}
	return nil
}
