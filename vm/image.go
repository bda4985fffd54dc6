package vm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gildhq/gild/blob"
	"github.com/gildhq/gild/gallery"
	"github.com/gildhq/gild/resource"
)

// cachedImage is an image version's disk in the local cache.
type cachedImage struct {
	Path    string
	Format  string // qcow2 or raw
	Version string // the version's resource ID
}

// imagePath is where the cache keeps the artifact with digest d: the digest, so that two
// versions with the same disk share it, and the format as the extension.
func (s *Service) imagePath(d blob.Digest, format string) string {
	return filepath.Join(s.imageDir, string(d)+"."+format)
}

// cacheImage makes sure version v's disk is in the local cache and returns it. It is
// fetched once, from the gallery region named like location when there is one and it
// holds the version (the nearest), else from the gallery's choice (the home region
// first), into a temporary file renamed into place only once its SHA-256 and size match
// the version's. The cached file is never written afterwards: it is the backing file of
// every VM made from the version.
func (s *Service) cacheImage(ctx context.Context, v resource.ID, location string) (cachedImage, error) {
	res, err := s.store.Get(ctx, v)
	if err != nil {
		return cachedImage{}, fmt.Errorf("image version %s: %w", v, err)
	}
	var p gallery.VersionProperties
	if err := json.Unmarshal(res.Properties, &p); err != nil {
		return cachedImage{}, fmt.Errorf("read image version %s: %w", v, err)
	}
	disk := p.StorageProfile.OSDiskImage
	if disk == nil {
		return cachedImage{}, fmt.Errorf("image version %s has no disk", v)
	}
	// The digest names a file: it must be nothing but hex.
	d, err := blob.ParseDigest(disk.SHA256)
	if err != nil {
		return cachedImage{}, fmt.Errorf("image version %s: %w", v, err)
	}
	format := or(disk.Format, "qcow2")
	if format != "qcow2" && format != "raw" {
		return cachedImage{}, fmt.Errorf("image version %s: disk format %q is neither qcow2 nor raw", v, format)
	}
	img := cachedImage{Path: s.imagePath(d, format), Format: format, Version: res.ID}

	unlock, err := s.lockKey(ctx, "image:"+string(d))
	if err != nil {
		return cachedImage{}, err
	}
	defer unlock()
	if fi, err := os.Stat(img.Path); err == nil {
		if fi.Size() != disk.SizeInBytes {
			return cachedImage{}, fmt.Errorf("the cached image %s has %d bytes, not the %d of version %s; it was changed behind gild's back", img.Path, fi.Size(), disk.SizeInBytes, v)
		}
		return img, nil
	}
	if err := os.MkdirAll(s.imageDir, 0o700); err != nil {
		return cachedImage{}, fmt.Errorf("image cache: %w", err)
	}

	start := time.Now()
	dl, err := s.openImage(ctx, v, location)
	if err != nil {
		return cachedImage{}, err
	}
	defer dl.Close()
	tmp, err := os.CreateTemp(s.imageDir, "."+string(d)+"-*"+partialSuffix)
	if err != nil {
		return cachedImage{}, fmt.Errorf("image cache: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), dl)
	if err != nil {
		return cachedImage{}, fmt.Errorf("fetch image version %s from region %s: %w", v.Name(), dl.Region, err)
	}
	got := blob.Digest(hex.EncodeToString(h.Sum(nil)))
	if got != d || n != disk.SizeInBytes {
		return cachedImage{}, fmt.Errorf("fetch image version %s from region %s (replica %d): got %d bytes with SHA-256 %s, want %d bytes with %s",
			v.Name(), dl.Region, dl.Replica, n, got, disk.SizeInBytes, d)
	}
	// Read-only: QEMU opens a backing file read-only anyway, and nothing else should write it.
	if err := tmp.Chmod(0o444); err != nil {
		return cachedImage{}, fmt.Errorf("image cache: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return cachedImage{}, fmt.Errorf("image cache: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return cachedImage{}, fmt.Errorf("image cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), img.Path); err != nil {
		return cachedImage{}, fmt.Errorf("image cache: %w", err)
	}
	done = true
	syncDir(s.imageDir)
	s.log.Info("vm: cached image", "version", v.String(), "region", dl.Region, "path", img.Path, "bytes", n, "took", time.Since(start).Round(time.Millisecond))
	return img, nil
}

const partialSuffix = ".partial"

// openImage opens a replica of v in the region named like the VM's location, falling back
// to the gallery's own choice when that region is not a gallery region or lacks v.
func (s *Service) openImage(ctx context.Context, v resource.ID, location string) (*gallery.Download, error) {
	var errs []error
	if name := regionName(location); name != "" {
		if _, ok := s.images.Region(name); ok {
			dl, err := s.images.Open(ctx, v, name)
			if err == nil {
				return dl, nil
			}
			errs = append(errs, err)
		}
	}
	dl, err := s.images.Open(ctx, v, "")
	if err != nil {
		return nil, fmt.Errorf("open image version %s: %w", v, errors.Join(append(errs, err)...))
	}
	return dl, nil
}

// regionName turns a location ("West Europe", "westeurope") into the form region names take.
func regionName(location string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(location), " ", ""))
}

// removePartialImages removes what fetches cut short by a crash left in the cache.
func (s *Service) removePartialImages() {
	entries, _ := os.ReadDir(s.imageDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") && strings.HasSuffix(e.Name(), partialSuffix) {
			os.Remove(filepath.Join(s.imageDir, e.Name()))
		}
	}
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
