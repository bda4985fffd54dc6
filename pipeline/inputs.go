package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/gildhq/gild/builder/debian"
	"github.com/gildhq/gild/gallery"
	"github.com/gildhq/gild/resource"
)

// Inputs are what a run is built from: when none of them changed, a new run would build
// the same image, which is what a "changed" schedule skips.
type Inputs struct {
	// TemplateDigest is Digest of the template; inline scripts and files are part of it.
	TemplateDigest string `json:"templateDigest"`
	// Base is the base version key (see Builder.BaseVersion).
	Base string `json:"base"`
	// Files maps the URI of every script and file a customizer or validator downloads to
	// its "sha256:HEX".
	Files map[string]string `json:"files,omitempty"`
}

// Fingerprint is the SHA-256 (hex) of the inputs in a canonical encoding: JSON with the
// fields in declaration order and the files sorted by URI, as encoding/json writes maps.
func (in Inputs) Fingerprint() string {
	raw, err := json.Marshal(in)
	if err != nil {
		panic(fmt.Sprintf("pipeline: marshal inputs: %v", err))
	}
	h := sha256.Sum256(append([]byte("gild inputs v1\n"), raw...))
	return hex.EncodeToString(h[:])
}

// Diff says, for logs and skip reasons, what changed from prev to in; nil when nothing.
func (in Inputs) Diff(prev Inputs) []string {
	if prev.TemplateDigest == "" && prev.Base == "" && len(prev.Files) == 0 {
		return []string{"no earlier inputs to compare with"}
	}
	var out []string
	if in.TemplateDigest != prev.TemplateDigest {
		out = append(out, "template changed")
	}
	switch {
	case in.Base == prev.Base:
	case prev.Base == "":
		out = append(out, "base image "+shortBase(in.Base)+" (unknown before)")
	case in.Base == "":
		out = append(out, "base image "+shortBase(prev.Base)+" → unknown")
	default:
		out = append(out, "base image "+shortBase(prev.Base)+" → "+shortBase(in.Base))
	}
	var uris []string
	for u := range in.Files {
		uris = append(uris, u)
	}
	for u := range prev.Files {
		if _, ok := in.Files[u]; !ok {
			uris = append(uris, u)
		}
	}
	slices.Sort(uris)
	for _, u := range uris {
		now, isNow := in.Files[u]
		was, wasThere := prev.Files[u]
		switch {
		case !wasThere:
			out = append(out, "file "+u+" added")
		case !isNow:
			out = append(out, "file "+u+" removed")
		case now != was:
			out = append(out, "file "+u+" changed")
		}
	}
	return out
}

// shortBase is the part of a base key a person tells versions apart by: the release date
// of a marketplace image, the start of a checksum, a gallery version's number.
func shortBase(key string) string {
	switch {
	case strings.Contains(key, "@"):
		return key[strings.LastIndex(key, "@")+1:]
	case strings.HasPrefix(key, "url:"):
		algo, sum, _ := strings.Cut(strings.TrimPrefix(key, "url:"), ":")
		return algo + ":" + sum[:min(12, len(sum))]
	case strings.HasPrefix(key, "gallery:"):
		return path.Base(strings.TrimPrefix(key, "gallery:"))
	}
	return key
}

// Bounds of what Inputs and BaseVersion read.
const (
	maxSumsFile   = 4 << 20
	maxHashedFile = 64 << 20
)

// BaseVersion asks the source for the version a run starting now would build from, as a
// key that changes exactly when the base does:
//
//   - PlatformImage: "Publisher/Offer/SKU@VERSION", the version being the newest release
//     date of the mirror's suites (as the source step names it), or the version the
//     template pins;
//   - Url: "url:ALGO:HEX", the checksum the sums file (or the inline checksum) names for
//     the URL;
//   - SharedImageVersion: "gallery:" and the ID of the version it resolves to.
func (bd *Builder) BaseVersion(ctx context.Context, src Source) (string, error) {
	switch src.Type {
	case SourcePlatformImage:
		suite, err := suiteOf(src)
		if err != nil {
			return "", err
		}
		key := src.Publisher + "/" + src.Offer + "/" + src.SKU + "@"
		if src.Version != "" && src.Version != "latest" {
			return key + src.Version, nil
		}
		sources, err := debian.LoadSources(orDefault(bd.SourcesRoot, "/"))
		if err != nil {
			return "", fmt.Errorf("read the machine's apt sources: %w", err)
		}
		mirrors, err := debian.FindMirrors(sources, suite)
		if err != nil {
			return "", err
		}
		releases, err := debian.FetchReleases(ctx, bd.HTTP, debian.Spec{Suite: suite, Mirrors: mirrors})
		if err != nil {
			return "", err
		}
		return key + debian.VersionOf(debian.Newest(releases)), nil
	case SourceURL:
		algo, sum, err := bd.urlChecksum(ctx, src)
		if err != nil {
			return "", err
		}
		return "url:" + algo + ":" + sum, nil
	case SourceSharedImageVersion:
		res, err := bd.resolveGallery(ctx, src)
		if err != nil {
			return "", err
		}
		return "gallery:" + res.ID, nil
	}
	return "", fmt.Errorf("unknown source type %q", src.Type)
}

// Inputs reads what a run of p would be built from now: the template's digest, the base
// version (BaseVersion) and the SHA-256 of every file a customizer or validator
// downloads, taken from the template where it pins one and fetched (up to 64 MiB)
// otherwise.
func (bd *Builder) Inputs(ctx context.Context, p *TemplateProperties) (Inputs, error) {
	in := Inputs{TemplateDigest: Digest(p)}
	base, err := bd.BaseVersion(ctx, p.Source)
	if err != nil {
		return Inputs{}, fmt.Errorf("the base image: %w", err)
	}
	in.Base = base
	steps := slices.Clone(p.Customize)
	if p.Validate != nil {
		steps = append(steps, p.Validate.InVMValidations...)
	}
	for _, c := range steps {
		for _, uri := range []string{c.ScriptURI, c.SourceURI} {
			if uri == "" {
				continue
			}
			if in.Files == nil {
				in.Files = map[string]string{}
			}
			if hexSHA256.MatchString(c.SHA256Checksum) {
				in.Files[uri] = "sha256:" + strings.ToLower(c.SHA256Checksum)
				continue
			}
			data, err := bd.fetchAll(ctx, uri, maxHashedFile)
			if err != nil {
				return Inputs{}, fmt.Errorf("%s %q: %w", c.Type, c.Name, err)
			}
			h := sha256.Sum256(data)
			in.Files[uri] = "sha256:" + hex.EncodeToString(h[:])
		}
	}
	return in, nil
}

// suiteOf is the Debian suite of a marketplace image gild builds from the apt mirror.
func suiteOf(src Source) (string, error) {
	for _, c := range catalogue {
		if strings.EqualFold(c.publisher, src.Publisher) && strings.EqualFold(c.offer, src.Offer) && strings.EqualFold(c.sku, src.SKU) {
			return c.suite, nil
		}
	}
	return "", fmt.Errorf("the marketplace has no %s/%s/%s; gild builds Debian/debian-12/12 from this machine's apt mirror", src.Publisher, src.Offer, src.SKU)
}

// urlChecksum is the checksum a Url source's disk must have: the inline one, or the one
// its sums file lists for it.
func (bd *Builder) urlChecksum(ctx context.Context, src Source) (algo, sum string, err error) {
	if src.Checksum != "" {
		return ParseChecksum(src.Checksum)
	}
	data, err := bd.fetchAll(ctx, src.ChecksumURL, maxSumsFile)
	if err != nil {
		return "", "", fmt.Errorf("the sums file: %w", err)
	}
	if algo, sum, err = FindSum(data, src.URL); err != nil {
		return "", "", fmt.Errorf("the sums file %s: %w", src.ChecksumURL, err)
	}
	return algo, sum, nil
}

// resolveGallery finds the gallery image version a SharedImageVersion source names, or
// the latest of the definition it names.
func (bd *Builder) resolveGallery(ctx context.Context, src Source) (gallery.Resolved, error) {
	if bd.Gallery == nil {
		return gallery.Resolved{}, errors.New("this server has no gallery to resolve the source image in")
	}
	id, err := resource.Parse(src.ImageVersionID)
	if err != nil {
		return gallery.Resolved{}, err
	}
	def, ref := id, "latest"
	if strings.EqualFold(id.Type(), gallery.TypeVersion) {
		def, ref = id.Parent(), id.Name()
	}
	return bd.Gallery.Resolve(ctx, def, ref, "")
}

// fetchAll reads an http(s):// or file:// URL whole, refusing one larger than limit
// rather than judging it by its beginning.
func (bd *Builder) fetchAll(ctx context.Context, uri string, limit int64) ([]byte, error) {
	r, err := (&work{bd: bd}).fetch(ctx, uri, 0)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", uri, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", uri, limit)
	}
	return data, nil
}
