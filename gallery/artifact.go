package gallery

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	gcblob "gocloud.dev/blob"

	"github.com/gildhq/gild/blob"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

func (s *Service) region(name string) (*blob.Region, error) {
	if name == "" {
		name = s.Home()
	}
	r, ok := s.regions[name]
	if !ok {
		return nil, resource.Errorf(CodeRegionNotFound, "region", "region %q is not configured; regions: %s", name, strings.Join(s.order, ", "))
	}
	return r, nil
}

// HasArtifact reports the size of artifact d in region (the home region when empty), or
// false when the region does not hold it.
func (s *Service) HasArtifact(ctx context.Context, region string, d blob.Digest) (int64, bool, error) {
	r, err := s.region(region)
	if err != nil {
		return 0, false, err
	}
	n, err := r.Size(ctx, blob.ArtifactKey(d, 0))
	if isNotFound(err) {
		return 0, false, nil
	}
	return n, err == nil, err
}

// UploadResult says what an upload did.
type UploadResult struct {
	Digest blob.Digest `json:"sha256"`
	Size   int64       `json:"sizeInBytes"`
	// Regions are the regions that hold the artifact now, the first as asked.
	Regions []string `json:"regions"`
	// Stored names the regions written; none when every region already held these bytes.
	Stored []string `json:"stored"`
}

// Upload stores body, which must be size bytes with SHA-256 d, as an artifact in the given
// regions (the home region when none), reading and hashing it once and writing every
// region that lacks it at the same time; bytes already held are not written again. Nothing
// appears in any region unless the whole body arrived and matched. Writing the later
// regions during the upload spares replication a second pass over the bytes; a region
// that fails here is left to replication. Until a version refers to it, the artifact is
// collected after Options.GCGrace.
func (s *Service) Upload(ctx context.Context, regions []string, d blob.Digest, size int64, body io.Reader, progress func(int64)) (UploadResult, error) {
	if len(regions) == 0 {
		regions = []string{s.Home()}
	}
	res := UploadResult{Digest: d, Size: size, Stored: []string{}}
	var targets []blob.Target
	seen := map[string]bool{}
	for _, name := range regions {
		r, err := s.region(name)
		if err != nil {
			return UploadResult{}, err
		}
		if seen[r.Name] {
			continue
		}
		seen[r.Name] = true
		res.Regions = append(res.Regions, r.Name)
		if n, err := r.Size(ctx, blob.ArtifactKey(d, 0)); err == nil && n == size {
			continue
		}
		targets = append(targets, blob.Target{Region: r, Key: blob.ArtifactKey(d, 0)})
	}
	if len(targets) == 0 {
		return res, nil
	}
	wr, err := blob.Write(ctx, body, blob.Expect{Digest: d, Size: size}, targets, progress)
	if errors.Is(err, blob.ErrMismatch) {
		return UploadResult{}, resource.Errorf(CodeChecksumMismatch, "body", "the upload does not match: %v", err)
	}
	if err != nil {
		return UploadResult{}, fmt.Errorf("upload artifact %s: %w", d, err)
	}
	for i, t := range targets {
		if ferr, failed := wr.Failed[i]; failed {
			if t.Region.Name == res.Regions[0] {
				return UploadResult{}, fmt.Errorf("upload artifact %s to region %s: %w", d, t.Region.Name, ferr)
			}
			s.log.Warn("gallery: upload to a later region failed; replication will copy it", "region", t.Region.Name, "err", ferr)
			continue
		}
		res.Stored = append(res.Stored, t.Region.Name)
	}
	return res, nil
}

// Download is an open replica of a version's artifact.
type Download struct {
	*gcblob.Reader
	Digest  blob.Digest
	Size    int64
	Region  string
	Replica int
	Version string
}

// Open opens a replica of version v's artifact in region (when empty: the home region if
// the version is complete there, else the first region where it is). Pulls are spread over
// the region's replicas in turn; a missing replica is skipped.
func (s *Service) Open(ctx context.Context, v resource.ID, region string) (*Download, error) {
	res, err := s.store.Get(ctx, v)
	if err != nil {
		if store.IsNotFound(err) {
			return nil, resource.Errorf(CodeVersionNotFound, v.String(), "image version %s does not exist", v)
		}
		return nil, err
	}
	e, err := entryOf(res)
	if err != nil {
		return nil, fmt.Errorf("read image version %s: %w", v, err)
	}
	if region == "" {
		for _, name := range append([]string{s.Home()}, s.order...) {
			if Available(e, name) {
				region = name
				break
			}
		}
		if region == "" {
			return nil, resource.Errorf(CodeVersionNotFound, v.String(), "image version %s is not fully replicated in any region yet", v)
		}
	}
	r, err := s.region(region)
	if err != nil {
		return nil, err
	}
	if !Available(e, region) {
		return nil, resource.Errorf(CodeVersionNotFound, v.String(), "image version %s is not fully replicated in region %s", v.Name(), region)
	}
	d := e.Props.Digest()
	count := 1
	for _, t := range e.Props.Targets() {
		if t.Name == region {
			count = t.RegionalReplicaCount
		}
	}
	start := int(s.rr.Add(1) % uint64(count))
	var lastErr error
	for i := range count {
		n := (start + i) % count
		rd, err := r.Open(ctx, blob.ArtifactKey(d, n))
		if err != nil {
			lastErr = err
			continue
		}
		return &Download{Reader: rd, Digest: d, Size: rd.Size(), Region: region, Replica: n, Version: e.Version.String()}, nil
	}
	return nil, fmt.Errorf("open image version %s in region %s: %w", v.Name(), region, lastErr)
}

// ShareLink is a signed, expiring, read-only pull link.
type ShareLink struct {
	Token     string    `json:"token"`
	VersionID string    `json:"versionId"`
	Region    string    `json:"region,omitempty"`
	ExpiresOn time.Time `json:"expiresOn"`
}

type sharePayload struct {
	V string `json:"v"`
	R string `json:"r,omitempty"`
	E int64  `json:"e"`
}

// MaxShareLifetime bounds how long a share link may live.
const MaxShareLifetime = 90 * 24 * time.Hour

// Share signs a link to version v valid for ttl.
func (s *Service) Share(ctx context.Context, v resource.ID, region string, ttl time.Duration) (ShareLink, error) {
	if len(s.opts.ShareKey) == 0 {
		return ShareLink{}, errors.New("share: this server has no share key")
	}
	if ttl <= 0 || ttl > MaxShareLifetime {
		return ShareLink{}, resource.Errorf(resource.CodeInvalidParameter, "expires", "the link's lifetime must be between 1s and %s, got %s", MaxShareLifetime, ttl)
	}
	if region != "" {
		if _, err := s.region(region); err != nil {
			return ShareLink{}, err
		}
	}
	if _, err := s.store.Get(ctx, v); err != nil {
		if store.IsNotFound(err) {
			return ShareLink{}, resource.Errorf(CodeVersionNotFound, v.String(), "image version %s does not exist", v)
		}
		return ShareLink{}, err
	}
	exp := s.now().Add(ttl).UTC().Truncate(time.Second)
	payload, _ := json.Marshal(sharePayload{V: v.String(), R: region, E: exp.Unix()})
	p := base64.RawURLEncoding.EncodeToString(payload)
	return ShareLink{Token: p + "." + s.sign(p), VersionID: v.String(), Region: region, ExpiresOn: exp}, nil
}

func (s *Service) sign(p string) string {
	m := hmac.New(sha256.New, s.opts.ShareKey)
	m.Write([]byte("gild share link v1\n" + p))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// OpenShare checks a share link's token and returns the version and region it grants.
func (s *Service) OpenShare(token string) (resource.ID, string, error) {
	bad := func(why string) (resource.ID, string, error) {
		return resource.ID{}, "", resource.Errorf(CodeShareLinkInvalid, "token", "the share link is not valid: %s", why)
	}
	p, sig, ok := strings.Cut(token, ".")
	if !ok || len(s.opts.ShareKey) == 0 || !hmac.Equal([]byte(sig), []byte(s.sign(p))) {
		return bad("its signature does not match")
	}
	raw, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return bad("it is malformed")
	}
	var sp sharePayload
	if err := json.Unmarshal(raw, &sp); err != nil {
		return bad("it is malformed")
	}
	if !s.now().Before(time.Unix(sp.E, 0)) {
		return bad("it expired at " + time.Unix(sp.E, 0).UTC().Format(time.RFC3339))
	}
	id, err := resource.Parse(sp.V)
	if err != nil {
		return bad("it names no version")
	}
	return id, sp.R, nil
}
