package api

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gildhq/gild/blob"
	"github.com/gildhq/gild/controlplane"
	"github.com/gildhq/gild/gallery"
	"github.com/gildhq/gild/resource"
)

// The gallery's endpoints beside its resources: artifact uploads under an image definition,
// resolution of latest, and the content, share and verify actions of a version.
const (
	typeArtifacts      = "Microsoft.Compute/galleries/images/artifacts"
	actionWriteVersion = "Microsoft.Compute/galleries/images/versions/write"
)

// galleryRoute serves p if it is one of the gallery's endpoints.
func (s *Server) galleryRoute(w http.ResponseWriter, r *http.Request, c controlplane.Caller, p resource.Path) bool {
	if s.gallery == nil {
		return false
	}
	typ := p.ID.Type()
	// A path that continues past a resource ID with one segment is an action on it; the
	// parser reports that segment as a collection of the resource's type.
	action := p.Collection[strings.LastIndex(p.Collection, "/")+1:]
	switch {
	case strings.EqualFold(typ, typeArtifacts) && p.Collection == "":
		s.artifact(w, r, c, p.ID)
	case strings.EqualFold(typ, gallery.TypeDefinition) && strings.EqualFold(action, "resolve"):
		s.resolveImage(w, r, c, p.ID)
	case strings.EqualFold(typ, gallery.TypeVersion) && strings.EqualFold(action, "content"):
		s.content(w, r, c, p.ID)
	case strings.EqualFold(typ, gallery.TypeVersion) && strings.EqualFold(action, "share"):
		s.share(w, r, c, p.ID)
	case strings.EqualFold(typ, gallery.TypeVersion) && strings.EqualFold(action, "verify"):
		s.verifyImage(w, r, c, p.ID)
	default:
		return false
	}
	return true
}

// artifact answers HEAD (is it there?) and PUT (upload) of {definitionId}/artifacts/{sha256}.
func (s *Server) artifact(w http.ResponseWriter, r *http.Request, c controlplane.Caller, id resource.ID) {
	ctx := r.Context()
	def := id.Parent()
	if _, err := s.cp.Get(ctx, c, def); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.cp.Authorize(c, actionWriteVersion, def); err != nil {
		s.writeError(w, r, err)
		return
	}
	d, err := blob.ParseDigest(id.Name())
	if err != nil {
		s.writeError(w, r, resource.Errorf(resource.CodeInvalidResourceID, "sha256", "the artifact's name must be its SHA-256: %v", err))
		return
	}
	// region may be repeated (or comma-separated) on an upload: the artifact is written
	// to all of them in one pass; the first is the one a HEAD asks about.
	var regions []string
	for _, v := range r.URL.Query()["region"] {
		for _, name := range strings.Split(v, ",") {
			if name = strings.ToLower(strings.TrimSpace(name)); name != "" {
				regions = append(regions, name)
			}
		}
	}
	region := ""
	if len(regions) > 0 {
		region = regions[0]
	}
	switch r.Method {
	case http.MethodHead:
		size, ok, err := s.gallery.HasArtifact(ctx, region, d)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
	case http.MethodPut:
		if r.ContentLength < 0 {
			s.writeError(w, r, resource.Errorf(resource.CodeInvalidRequestContent, "Content-Length", "an upload must give its Content-Length"))
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/octet-stream") {
			s.writeError(w, r, resource.Errorf(resource.CodeUnsupportedMediaType, "Content-Type", "an upload must be application/octet-stream, not %q", ct))
			return
		}
		// A disk image takes longer than the server's read timeout to arrive.
		_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
		res, err := s.gallery.Upload(ctx, regions, d, r.ContentLength, r.Body, nil)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		status := http.StatusOK
		if len(res.Stored) > 0 {
			status = http.StatusCreated
		}
		s.writeJSON(w, status, res)
	default:
		s.writeError(w, r, methodNotAllowed(r, "HEAD or PUT"))
	}
}

func (s *Server) resolveImage(w http.ResponseWriter, r *http.Request, c controlplane.Caller, def resource.ID) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		s.writeError(w, r, methodNotAllowed(r, "POST"))
		return
	}
	if _, err := s.cp.Get(r.Context(), c, def); err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	res, err := s.gallery.Resolve(r.Context(), def, q.Get("version"), strings.ToLower(q.Get("region")))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, res)
}

func (s *Server) content(w http.ResponseWriter, r *http.Request, c controlplane.Caller, v resource.ID) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.writeError(w, r, methodNotAllowed(r, "GET"))
		return
	}
	if _, err := s.cp.Get(r.Context(), c, v); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.serveArtifact(w, r, v, strings.ToLower(r.URL.Query().Get("region")))
}

// serveArtifact streams a replica of version v, with range requests (a pull resumes where
// it stopped) guarded by the artifact's digest as its ETag.
func (s *Server) serveArtifact(w http.ResponseWriter, r *http.Request, v resource.ID, region string) {
	dl, err := s.gallery.Open(r.Context(), v, region)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer dl.Close()
	h := w.Header()
	h.Set("ETag", `"sha256:`+string(dl.Digest)+`"`)
	h.Set("X-Gild-Sha256", string(dl.Digest))
	h.Set("X-Gild-Region", dl.Region)
	h.Set("X-Gild-Replica", strconv.Itoa(dl.Replica))
	h.Set("X-Gild-Version", dl.Version)
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="`+v.Parent().Name()+"-"+dl.Version+`"`)
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	hr := &hashingReader{rs: dl.Reader, h: sha256.New()}
	http.ServeContent(w, r, "", time.Time{}, hr)
	// A whole pull is hashed on the way out: bytes that do not match mean the replica
	// rotted, and the version is verified (and repaired) without waiting for the next
	// scheduled verification. The client, checking the SHA-256 itself, retries.
	if hr.n == dl.Size && !hr.broken && hex.EncodeToString(hr.h.Sum(nil)) != string(dl.Digest) {
		s.log.Warn("a pull served bytes that do not match the version's SHA-256", "version", v.String(), "region", dl.Region, "replica", dl.Replica)
		s.gallery.Suspect(v)
	}
}

// hashingReader hashes what is read from the start of the stream onward; a seek anywhere
// but the start, after reading began, makes the hash meaningless.
type hashingReader struct {
	rs     io.ReadSeeker
	h      hash.Hash
	n, pos int64
	broken bool
}

func (r *hashingReader) Read(p []byte) (int, error) {
	n, err := r.rs.Read(p)
	if n > 0 {
		if r.pos == r.n {
			r.h.Write(p[:n])
			r.n += int64(n)
		} else {
			r.broken = true
		}
		r.pos += int64(n)
	}
	return n, err
}

func (r *hashingReader) Seek(off int64, whence int) (int64, error) {
	pos, err := r.rs.Seek(off, whence)
	if err == nil {
		r.pos = pos
	}
	return pos, err
}

func (s *Server) share(w http.ResponseWriter, r *http.Request, c controlplane.Caller, v resource.ID) {
	if !s.versionAction(w, r, c, v) {
		return
	}
	q := r.URL.Query()
	ttl := 72 * time.Hour
	if e := q.Get("expires"); e != "" {
		d, err := time.ParseDuration(e)
		if err != nil {
			s.writeError(w, r, resource.Errorf(resource.CodeInvalidParameter, "expires", "expires must be a duration such as 72h: %v", err))
			return
		}
		ttl = d
	}
	link, err := s.gallery.Share(r.Context(), v, strings.ToLower(q.Get("region")), ttl)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	s.writeJSON(w, http.StatusOK, struct {
		URL string `json:"url"`
		gallery.ShareLink
	}{scheme + "://" + r.Host + "/share/" + link.Token, link})
}

// versionAction checks a POST action on version v that needs the right to publish: the
// caller must see v (else 404) and may write versions there (else 403).
func (s *Server) versionAction(w http.ResponseWriter, r *http.Request, c controlplane.Caller, v resource.ID) bool {
	err := error(nil)
	switch {
	case r.Method != http.MethodPost:
		err = methodNotAllowed(r, "POST")
	default:
		if _, err = s.cp.Get(r.Context(), c, v); err == nil {
			err = s.cp.Authorize(c, actionWriteVersion, v)
		}
	}
	if err != nil {
		s.writeError(w, r, err)
		return false
	}
	return true
}

// shared serves a share link: no token, no api-version, read-only, until it expires.
func (s *Server) shared(w http.ResponseWriter, r *http.Request) {
	if s.gallery == nil {
		http.NotFound(w, r)
		return
	}
	v, region, err := s.gallery.OpenShare(r.PathValue("token"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.serveArtifact(w, r, v, region)
}

func (s *Server) verifyImage(w http.ResponseWriter, r *http.Request, c controlplane.Caller, v resource.ID) {
	if !s.versionAction(w, r, c, v) {
		return
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	rep, err := s.gallery.Verify(r.Context(), v)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, rep)
}
