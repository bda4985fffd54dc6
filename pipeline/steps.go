package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gildhq/gild/agent"
	"github.com/gildhq/gild/agentproto"
	"github.com/gildhq/gild/blob"
	"github.com/gildhq/gild/builder"
	"github.com/gildhq/gild/builder/debian"
	"github.com/gildhq/gild/builder/disk"
	"github.com/gildhq/gild/builder/qemu"
	"github.com/gildhq/gild/check"
	"github.com/gildhq/gild/gallery"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// Builder makes the real steps of a run: a Debian base from the machine's apt mirror,
// offline customization in a chroot, gild-agent and the tattoo, a UEFI disk as a
// compressed qcow2, a validation boot under QEMU, and publication to the gallery.
type Builder struct {
	// CacheDir keeps base root filesystems between runs, keyed by their inputs.
	CacheDir string
	// AgentBinary is the gild-agent installed into images; validation needs it.
	AgentBinary string
	// SourcesRoot is where the apt sources are read from ("/": the machine's own).
	SourcesRoot string
	// Accel forces "kvm" or "tcg"; empty probes the host.
	Accel   string
	Gallery *gallery.Service
	Store   store.Store
	Writer  Writer
	HTTP    *http.Client
	Now     func() time.Time
}

// The marketplace catalogue gild builds from the apt mirror itself.
var catalogue = []struct{ publisher, offer, sku, suite string }{
	{"Debian", "debian-12", "12", "bookworm"},
}

// Steps returns the steps of b's run.
func (bd *Builder) Steps(b *Build) []Step {
	w := &work{bd: bd, runner: &builder.Runner{Sink: func(l builder.Line) { b.Log.Printf("%s: %s", l.Source, l.Text) }}}
	steps := []Step{&sourceStep{w}}
	if !b.Template.Validate.SourceValidationOnly {
		steps = append(steps, &customizeStep{w})
	}
	steps = append(steps, &tattooStep{w}, &diskStep{w}, &validateStep{w})
	if !b.Template.Validate.SourceValidationOnly {
		steps = append(steps, &distributeStep{w})
	}
	return steps
}

// work is what the steps of one run share beyond Build: the tools.
type work struct {
	bd      *Builder
	runner  *builder.Runner
	version map[int]string // planned version number of each distribution
}

func (w *work) now() time.Time {
	if w.bd.Now != nil {
		return w.bd.Now()
	}
	return time.Now()
}

// ---- source ----

type sourceStep struct{ w *work }

func (s *sourceStep) Name() string     { return "source" }
func (s *sourceStep) SubState() string { return SubBuilding }

func (s *sourceStep) Run(ctx context.Context, b *Build) error {
	src := b.Template.Source
	switch src.Type {
	case SourcePlatformImage:
		suite, err := suiteOf(src)
		if err != nil {
			return err
		}
		sources, err := debian.LoadSources(orDefault(s.w.bd.SourcesRoot, "/"))
		if err != nil {
			return fmt.Errorf("read the machine's apt sources: %w", err)
		}
		mirrors, err := debian.FindMirrors(sources, suite)
		if err != nil {
			return err
		}
		b.Rootfs = filepath.Join(b.Dir, "rootfs")
		md := &debian.Mmdebstrap{Runner: s.w.runner, CacheDir: s.w.bd.CacheDir, HTTP: s.w.bd.HTTP}
		root, err := md.Build(ctx, debian.Spec{Suite: suite, Mirrors: mirrors}, b.Rootfs)
		if err != nil {
			return err
		}
		if src.Version != "latest" && src.Version != root.Version {
			return fmt.Errorf("source version %s is not available: the mirror's release is %s (use latest)", src.Version, root.Version)
		}
		b.Source = ResolvedSource{Publisher: src.Publisher, Offer: src.Offer, SKU: src.SKU, Version: root.Version}
		cached := ""
		if root.Cached {
			cached = " (from the cache)"
		}
		b.Log.Printf("base %s/%s/%s version %s%s", src.Publisher, src.Offer, src.SKU, root.Version, cached)
		return nil
	case SourceSharedImageVersion:
		return s.fromGallery(ctx, b)
	case SourceURL:
		return s.fromURL(ctx, b)
	}
	return fmt.Errorf("unknown source type %q", src.Type)
}

// fromGallery starts from a gallery image version (a layered image): its disk is pulled,
// checked against the version's SHA-256, and its root filesystem taken as the base.
func (s *sourceStep) fromGallery(ctx context.Context, b *Build) error {
	bd := s.w.bd
	res, err := bd.resolveGallery(ctx, b.Template.Source)
	if err != nil {
		return err
	}
	vid, _ := resource.Parse(res.ID)
	dl, err := bd.Gallery.Open(ctx, vid, "")
	if err != nil {
		return err
	}
	defer dl.Close()
	base := filepath.Join(b.Dir, "base."+res.Format)
	if err := saveChecked(dl, base, "sha256", res.SHA256); err != nil {
		return fmt.Errorf("pull %s: %w", res.ID, err)
	}
	b.Log.Printf("pulled %s (%s, sha256 %s) from region %s", res.ID, res.Format, res.SHA256, dl.Region)
	if err := s.extract(ctx, b, base, res.Format); err != nil {
		return err
	}
	b.Source = ResolvedSource{ID: res.ID, Version: res.Version, SHA256: res.SHA256}
	if t, err := os.ReadFile(filepath.Join(b.Rootfs, "etc/gild/tattoo.json")); err == nil {
		var parent Tattoo
		if json.Unmarshal(t, &parent) == nil { // a layered image keeps its marketplace lineage
			b.Source.Publisher, b.Source.Offer, b.Source.SKU = parent.SourcePublisher, parent.SourceOffer, parent.SourceSKU
		}
	}
	return nil
}

// fromURL starts from a disk image at a URL, trusted only once its checksum matches the
// one given inline or in the sums file next to it.
func (s *sourceStep) fromURL(ctx context.Context, b *Build) error {
	src := b.Template.Source
	algo, want, err := s.w.bd.urlChecksum(ctx, src)
	if err != nil {
		return err
	}
	body, err := s.w.fetch(ctx, src.URL, 0)
	if err != nil {
		return err
	}
	defer body.Close()
	base := filepath.Join(b.Dir, "base."+src.Format)
	if err := saveChecked(body, base, algo, want); err != nil {
		return fmt.Errorf("download %s: %w", src.URL, err)
	}
	b.Log.Printf("downloaded %s (%s %s verified)", src.URL, algo, want)
	if err := s.extract(ctx, b, base, src.Format); err != nil {
		return err
	}
	b.Source = ResolvedSource{URL: src.URL}
	if algo == "sha256" {
		b.Source.SHA256 = want
	}
	return nil
}

// extract turns a downloaded disk into the run's root filesystem.
func (s *sourceStep) extract(ctx context.Context, b *Build, disk_, format string) error {
	raw := disk_
	if format == "qcow2" {
		raw = strings.TrimSuffix(disk_, ".qcow2") + ".raw"
		if err := s.w.runner.Run(ctx, builder.Command{Path: "qemu-img", Args: []string{"convert", "-f", "qcow2", "-O", "raw", disk_, raw}}); err != nil {
			return err
		}
		_ = os.Remove(disk_)
	}
	defer os.Remove(raw)
	b.Rootfs = filepath.Join(b.Dir, "rootfs")
	return disk.ExtractRootfs(ctx, s.w.runner, disk.SystemMounter{Runner: s.w.runner}, raw, b.Rootfs)
}

// fetch opens an http(s):// or file:// URL.
func (w *work) fetch(ctx context.Context, raw string, limit int64) (io.ReadCloser, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "file" {
		return os.Open(u.Path)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, err
	}
	client := w.bd.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", raw, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("download %s: %s", raw, resp.Status)
	}
	if limit > 0 {
		return struct {
			io.Reader
			io.Closer
		}{io.LimitReader(resp.Body, limit), resp.Body}, nil
	}
	return resp.Body, nil
}

// FindSum finds the checksum of the file at fileURL in a SHA256SUMS or SHA512SUMS style
// file ("HEX  NAME" or "HEX *NAME" lines); the algorithm follows from the length.
func FindSum(sums []byte, fileURL string) (algo, hexSum string, err error) {
	name := path.Base(fileURL)
	if u, err := url.Parse(fileURL); err == nil {
		name = path.Base(u.Path)
	}
	for _, line := range strings.Split(string(sums), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || strings.TrimPrefix(path.Base(strings.TrimPrefix(f[1], "*")), "./") != name {
			continue
		}
		switch len(f[0]) {
		case 64:
			return ParseChecksumParts("sha256", f[0])
		case 128:
			return ParseChecksumParts("sha512", f[0])
		}
	}
	return "", "", fmt.Errorf("it lists no SHA-256 or SHA-512 for %s", name)
}

// ParseChecksumParts checks a hex sum of the named algorithm.
func ParseChecksumParts(algo, hexSum string) (string, string, error) {
	return ParseChecksum(algo + ":" + hexSum)
}

// saveChecked writes r to path, hashing it on the way, and removes it if the sum differs.
func saveChecked(r io.Reader, path, algo, want string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	h := sha256.New()
	if algo == "sha512" {
		h = sha512.New()
	}
	_, err = io.Copy(io.MultiWriter(f, h), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && hex.EncodeToString(h.Sum(nil)) != strings.ToLower(want) {
		err = fmt.Errorf("its %s is %s, not the %s it should be", algo, hex.EncodeToString(h.Sum(nil)), want)
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

func (s *sourceStep) Cleanup(b *Build) {
	if b.Rootfs != "" && !b.Keep {
		if err := builder.RemoveTree(b.Rootfs); err != nil {
			b.Log.Printf("remove the root filesystem: %v", err)
		}
	}
}

// ---- customize ----

type customizeStep struct{ w *work }

func (s *customizeStep) Name() string     { return "customize" }
func (s *customizeStep) SubState() string { return SubCustomizing }

func (s *customizeStep) Run(ctx context.Context, b *Build) (err error) {
	if len(b.Template.Customize) == 0 {
		b.Log.Printf("nothing to customize")
		return nil
	}
	c, err := disk.OpenChroot(ctx, s.w.runner, disk.SystemMounter{Runner: s.w.runner}, b.Rootfs, "")
	if err != nil {
		return err
	}
	defer func() {
		if cerr := c.Close(context.WithoutCancel(ctx)); err == nil {
			err = cerr
		}
		if err != nil && b.Template.ErrorHandling.OnCustomizerError == ErrorAbort {
			b.Keep = true
		}
	}()
	for i, cu := range b.Template.Customize {
		b.Log.Printf("%s %q", cu.Type, cu.Name)
		if err := s.one(ctx, b, c, i, cu); err != nil {
			return fmt.Errorf("customizer %q (%s): %w", cu.Name, cu.Type, err)
		}
	}
	return nil
}

func (s *customizeStep) one(ctx context.Context, b *Build, c *disk.Chroot, i int, cu Customizer) error {
	tag := cu.Name
	switch cu.Type {
	case CustomizeShell:
		if len(cu.Inline) > 0 {
			return c.Run(ctx, tag, "set -e\n"+strings.Join(cu.Inline, "\n"))
		}
		data, err := s.w.content(ctx, cu.Content, cu.ScriptURI, cu.SHA256Checksum)
		if err != nil {
			return err
		}
		script := fmt.Sprintf("tmp/gild-customizer-%d.sh", i)
		if err := os.WriteFile(filepath.Join(b.Rootfs, script), data, 0o700); err != nil {
			return err
		}
		defer os.Remove(filepath.Join(b.Rootfs, script))
		return c.Run(ctx, tag, "/"+script)
	case CustomizeFile:
		data, err := s.w.content(ctx, cu.Content, cu.SourceURI, cu.SHA256Checksum)
		if err != nil {
			return err
		}
		dst := filepath.Join(b.Rootfs, cu.Destination)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if cu.Mode != "" {
			m, _ := strconv.ParseUint(cu.Mode, 8, 32)
			mode = os.FileMode(m)
		}
		if err := os.WriteFile(dst, data, mode); err != nil {
			return err
		}
		if err := os.Chmod(dst, mode); err != nil {
			return err
		}
		if cu.Owner != "" {
			return c.Run(ctx, tag, "chown "+shellQuote(cu.Owner)+" "+shellQuote(cu.Destination))
		}
		return nil
	case CustomizePackages:
		script := "set -e\nexport DEBIAN_FRONTEND=noninteractive\napt-get update -q\n"
		if len(cu.Install) > 0 {
			script += "apt-get install -y -q --no-install-recommends " + strings.Join(cu.Install, " ") + "\n"
		}
		if len(cu.Remove) > 0 {
			script += "apt-get purge -y -q " + strings.Join(cu.Remove, " ") + "\n"
		}
		script += "apt-get clean\nrm -rf /var/lib/apt/lists/*\n"
		return c.Run(ctx, tag, script)
	}
	return fmt.Errorf("unknown customizer type %q", cu.Type)
}

func (s *customizeStep) Cleanup(*Build) {}

// content returns inline (base64) content or downloads uri, checking its SHA-256 either way.
func (w *work) content(ctx context.Context, inline, uri, sum string) ([]byte, error) {
	var data []byte
	if inline != "" {
		d, err := base64.StdEncoding.DecodeString(inline)
		if err != nil {
			return nil, err
		}
		data = d
	} else {
		body, err := w.fetch(ctx, uri, 256<<20)
		if err != nil {
			return nil, err
		}
		defer body.Close()
		if data, err = io.ReadAll(body); err != nil {
			return nil, fmt.Errorf("download %s: %w", uri, err)
		}
	}
	h := sha256.Sum256(data)
	if got := hex.EncodeToString(h[:]); sum != "" && !strings.EqualFold(got, sum) {
		return nil, fmt.Errorf("its SHA-256 is %s, not the %s the template gives", got, sum)
	}
	return data, nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// ---- tattoo: gild-agent, the validation unit, the tattoo itself ----

type tattooStep struct{ w *work }

func (s *tattooStep) Name() string     { return "tattoo" }
func (s *tattooStep) SubState() string { return SubCustomizing }

// validateScript runs in the validation VM: it finds the results port, says the system is
// up, runs the checks with gild-agent and says it is done. In a VM made from the image
// later there is no such port, and the unit does not start.
const validateScript = `#!/bin/sh
modprobe -q virtio_console || true
port=
for i in $(seq 100); do
	for n in /sys/class/virtio-ports/*/name; do
		[ "$(cat "$n" 2>/dev/null)" = org.gild.results ] && port=/dev/$(basename "$(dirname "$n")")
	done
	[ -n "$port" ] && [ -e "$port" ] && break
	port=
	sleep 0.1
done
[ -n "$port" ] || exit 0
exec > "$port"
echo GILD-READY
/usr/local/bin/gild-agent validate --checks /etc/gild/checks.json --out -
echo GILD-DONE
`

const validateUnit = `[Unit]
Description=Report gild image validation results to the build host
ConditionPathExists=/etc/gild/checks.json

[Service]
Type=oneshot
ExecStart=/usr/local/lib/gild/validate

[Install]
WantedBy=multi-user.target
`

// Tattoo is what /etc/gild/tattoo.json says about an image.
type Tattoo struct {
	SourcePublisher string            `json:"sourcePublisher,omitempty"`
	SourceOffer     string            `json:"sourceOffer,omitempty"`
	SourceSKU       string            `json:"sourceSku,omitempty"`
	SourceVersion   string            `json:"sourceVersion,omitempty"`
	SourceImageID   string            `json:"sourceImageId,omitempty"`
	OSVersion       string            `json:"osVersion"`
	ImageDefinition string            `json:"imageDefinition,omitempty"`
	ImageVersion    string            `json:"imageVersion,omitempty"`
	BuildDate       time.Time         `json:"buildDate"`
	PublishDate     time.Time         `json:"publishDate"`
	RunID           string            `json:"runId"`
	TemplateDigest  string            `json:"templateDigest"`
	Extra           map[string]string `json:"extra,omitempty"`
}

func (s *tattooStep) Run(ctx context.Context, b *Build) error {
	root := b.Rootfs
	if err := os.MkdirAll(filepath.Join(root, "etc/gild"), 0o755); err != nil {
		return err
	}
	// The checks: the template's, with its Shell validations as command checks, and, in a
	// layered image, the parent's that this template does not redefine, so the baseline
	// machine configuration measures grows with each layer.
	set, err := validationChecks(b.Template.Validate)
	if err != nil {
		return err
	}
	if parent, err := os.ReadFile(filepath.Join(root, "etc/gild/checks.json")); err == nil {
		if ps, err := check.Parse(parent); err == nil {
			mine := map[string]bool{}
			for _, c := range set.Checks() {
				mine[c.Name] = true
			}
			merged := set.Checks()
			for _, c := range ps.Checks() {
				if !mine[c.Name] {
					merged = append(merged, c)
				}
			}
			if set, err = check.NewSet(merged); err != nil {
				return err
			}
			b.Log.Printf("kept %d checks of the parent image", len(merged)-len(mine))
		}
	}
	raw, err := json.MarshalIndent(set, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "etc/gild/checks.json"), raw, 0o644); err != nil {
		return err
	}
	if b.Template.InstallAgent == nil || *b.Template.InstallAgent || set.Len() > 0 {
		if err := s.installAgent(ctx, b); err != nil {
			return err
		}
	}
	// The version each distribution will publish, decided now so the tattoo can say it.
	s.w.version = map[int]string{}
	for i, d := range b.Template.Distribute {
		v, err := s.w.nextVersion(ctx, d, b.Source)
		if err != nil {
			return fmt.Errorf("distribute[%d]: %w", i, err)
		}
		s.w.version[i] = v
	}
	now := s.w.now().UTC()
	t := Tattoo{SourcePublisher: b.Source.Publisher, SourceOffer: b.Source.Offer, SourceSKU: b.Source.SKU, SourceVersion: b.Source.Version,
		SourceImageID: b.Source.ID, OSVersion: osVersion(root), BuildDate: now, PublishDate: now, RunID: b.RunID,
		TemplateDigest: Digest(b.Template), Extra: b.Template.Tattoo}
	if len(b.Template.Distribute) > 0 {
		t.ImageDefinition = definitionOf(b.Template.Distribute[0].GalleryImageID)
		t.ImageVersion = s.w.version[0]
	}
	raw, err = json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "etc/gild/tattoo.json"), append(raw, '\n'), 0o644); err != nil {
		return err
	}
	if err := tattooOSRelease(root, t.ImageDefinition, t.ImageVersion); err != nil {
		return err
	}
	b.Log.Printf("tattooed %s %s (source %s %s)", orDefault(t.ImageDefinition, "-"), orDefault(t.ImageVersion, "-"), t.SourceOffer, t.SourceVersion)
	return nil
}

func (s *tattooStep) installAgent(ctx context.Context, b *Build) error {
	if s.w.bd.AgentBinary == "" {
		return errors.New("gild-agent is not available on this server, so it cannot go into the image (installAgent: false skips it, but then nothing validates the checks)")
	}
	data, err := os.ReadFile(s.w.bd.AgentBinary)
	if err != nil {
		return fmt.Errorf("read gild-agent: %w", err)
	}
	root := b.Rootfs
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{"usr/local/bin/gild-agent", data, 0o755},
		{"usr/local/lib/gild/validate", []byte(validateScript), 0o755},
		{"etc/systemd/system/gild-validate.service", []byte(validateUnit), 0o644},
	} {
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			return err
		}
	}
	// Enabled the way systemctl enable would, without running systemctl.
	wants := filepath.Join(root, "etc/systemd/system/multi-user.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		return err
	}
	link := filepath.Join(wants, "gild-validate.service")
	_ = os.Remove(link)
	if err := os.Symlink("/etc/systemd/system/gild-validate.service", link); err != nil {
		return err
	}
	// The daemon every machine made from the image runs (agentunit.go).
	notes, err := installAgentService(root)
	for _, n := range notes {
		b.Log.Printf("%s", n)
	}
	return err
}

func (s *tattooStep) Cleanup(*Build) {}

// validationChecks is the template's checks plus its Shell validations as command checks.
func validationChecks(v *Validation) (check.Set, error) {
	var checks []check.Check
	if len(v.Checks) > 0 {
		set, err := check.Parse(v.Checks)
		if err != nil {
			return check.Set{}, err
		}
		checks = set.Checks()
	}
	for _, sh := range v.InVMValidations {
		if len(sh.Inline) == 0 {
			return check.Set{}, fmt.Errorf("validation %q: only inline Shell validations run in the VM", sh.Name)
		}
		checks = append(checks, check.Check{Name: sh.Name, Kind: check.KindCommand, Inline: sh.Inline})
	}
	return check.NewSet(checks)
}

func osVersion(root string) string {
	data, _ := os.ReadFile(filepath.Join(root, "etc/os-release"))
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// tattooOSRelease adds IMAGE_ID and IMAGE_VERSION to /etc/os-release, which on Debian is
// a link into /usr/lib: the link becomes a file of its own.
func tattooOSRelease(root, def, version string) error {
	p := filepath.Join(root, "etc/os-release")
	data, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("read os-release: %w", err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		if !strings.HasPrefix(line, "IMAGE_ID=") && !strings.HasPrefix(line, "IMAGE_VERSION=") {
			out = append(out, line)
		}
	}
	id := def
	if i := strings.LastIndex(def, "/"); i >= 0 {
		id = def[i+1:]
	}
	out = append(out, "IMAGE_ID="+strconv.Quote(id), "IMAGE_VERSION="+strconv.Quote(version))
	_ = os.Remove(p)
	return os.WriteFile(p, []byte(strings.Join(out, "\n")+"\n"), 0o644)
}

func definitionOf(galleryImageID string) string {
	id, err := resource.Parse(galleryImageID)
	if err != nil {
		return galleryImageID
	}
	if strings.EqualFold(id.Type(), gallery.TypeVersion) {
		return id.Parent().String()
	}
	return id.String()
}

// nextVersion picks the version distribution d publishes.
func (w *work) nextVersion(ctx context.Context, d Distributor, src ResolvedSource) (string, error) {
	id, err := resource.Parse(d.GalleryImageID)
	if err != nil {
		return "", err
	}
	if strings.EqualFold(id.Type(), gallery.TypeVersion) {
		if _, err := w.bd.Store.Get(ctx, id); err == nil {
			return "", fmt.Errorf("version %s already exists in %s", id.Name(), id.Parent())
		}
		return id.Name(), nil
	}
	if _, err := w.bd.Store.Get(ctx, id); err != nil {
		return "", fmt.Errorf("image definition %s: %w", id, err)
	}
	if d.Versioning != nil && d.Versioning.Scheme == "Source" {
		v, err := gallery.ParseVersion(src.Version)
		if err != nil {
			return "", fmt.Errorf("versioning Source: the source version %q is not Major.Minor.Patch", src.Version)
		}
		return v.String(), nil
	}
	vers, err := store.ListAll(ctx, w.bd.Store, store.ListQuery{Scopes: []resource.ID{id}, Type: gallery.TypeVersion})
	if err != nil {
		return "", err
	}
	var best *gallery.Version
	for _, r := range vers {
		v, err := gallery.ParseVersion(r.Name)
		if err != nil || (d.Versioning != nil && d.Versioning.Major != nil && int(v.Major) != *d.Versioning.Major) {
			continue
		}
		if best == nil || v.Compare(*best) > 0 {
			best = &v
		}
	}
	switch {
	case best != nil:
		best.Patch++
		return best.String(), nil
	case d.Versioning != nil && d.Versioning.Major != nil:
		return fmt.Sprintf("%d.0.0", *d.Versioning.Major), nil
	}
	return "1.0.0", nil
}

// ---- disk ----

type diskStep struct{ w *work }

func (s *diskStep) Name() string     { return "disk" }
func (s *diskStep) SubState() string { return SubBuilding }

func (s *diskStep) Run(ctx context.Context, b *Build) error {
	size := int64(4 << 30)
	if p := b.Template.VMProfile; p != nil && p.OSDiskSizeGB > 0 {
		size = int64(p.OSDiskSizeGB) << 30
	}
	b.Disk = filepath.Join(b.Dir, "disk.raw")
	if _, err := (&disk.Tools{Runner: s.w.runner}).Assemble(ctx, b.Rootfs, b.Disk, disk.Options{Size: size, Seed: b.RunID}); err != nil {
		return err
	}
	b.Image = filepath.Join(b.Dir, "image.qcow2")
	if err := (&qemu.QemuImg{Runner: s.w.runner}).Convert(ctx, b.Disk, "raw", b.Image, true); err != nil {
		return err
	}
	_ = os.Remove(b.Disk)
	b.Disk = ""
	f, err := os.Open(b.Image)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	b.ImageSHA, b.ImageSize = hex.EncodeToString(h.Sum(nil)), n
	b.Log.Printf("image.qcow2: %d bytes, sha256 %s", n, b.ImageSHA)
	return nil
}

func (s *diskStep) Cleanup(b *Build) {
	if b.Disk != "" {
		_ = os.Remove(b.Disk)
	}
}

// ---- validate ----

type validateStep struct{ w *work }

func (s *validateStep) Name() string     { return "validate" }
func (s *validateStep) SubState() string { return SubValidating }

func (s *validateStep) Run(ctx context.Context, b *Build) (err error) {
	v := b.Template.Validate
	defer func() {
		if err != nil && b.Template.ErrorHandling.OnValidationError == ErrorAbort {
			b.Keep = true
		}
	}()
	vmWork := vmDir(b.Dir)
	if err := os.MkdirAll(vmWork, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(vmWork)
	sys := &qemu.System{Runner: s.w.runner, Img: &qemu.QemuImg{Runner: s.w.runner}}
	res, err := sys.Boot(ctx, qemu.BootSpec{Name: vmName(b.Dir), Image: b.Image, WorkDir: vmWork,
		Accel: s.w.bd.Accel, Timeout: time.Duration(v.MaxBootSeconds)*time.Second + 5*time.Minute})
	if res != nil && res.ConsoleLog != "" {
		if data, rerr := os.ReadFile(res.ConsoleLog); rerr == nil {
			_ = os.WriteFile(filepath.Join(b.Dir, "console.log"), data, 0o600)
		}
	}
	if err != nil {
		return fmt.Errorf("the validation VM: %w (see console.log)", err)
	}
	rep := &ValidationReport{Accelerator: res.Accel.String(), BootSeconds: res.BootTime.Seconds(), MaxBoot: v.MaxBootSeconds}
	b.Validation = rep
	b.Log.Printf("booted in %.1fs with %s", rep.BootSeconds, rep.Accelerator)
	run, err := agentproto.ReadRun(strings.NewReader(strings.Join(res.Results, "\n") + "\n"))
	if err != nil {
		return fmt.Errorf("read the validation results: %w (see console.log)", err)
	}
	results := make([]check.Result, len(run.Results))
	var failed []string
	for i, r := range run.Results {
		results[i] = agent.ResultFromWire(r)
		o := CheckOutcome{Name: r.Name, Status: r.Status}
		for _, rs := range r.Reasons {
			o.Reasons = append(o.Reasons, rs.Code+": "+rs.Phrase)
		}
		rep.Checks = append(rep.Checks, o)
		if r.Status == "Compliant" {
			rep.Passed++
		} else {
			rep.Failed++
			failed = append(failed, r.Name)
			b.Log.Printf("%s %s: %s", r.Status, r.Name, strings.Join(o.Reasons, "; "))
		}
	}
	var js, junit bytes.Buffer
	if err := check.WriteJSON(&js, results); err == nil {
		_ = os.WriteFile(filepath.Join(b.Dir, "results.json"), js.Bytes(), 0o600)
	}
	if err := check.WriteJUnit(&junit, "gild image validation", results); err == nil {
		_ = os.WriteFile(filepath.Join(b.Dir, "junit.xml"), junit.Bytes(), 0o600)
	}
	var problems []string
	if rep.BootSeconds > float64(v.MaxBootSeconds) {
		problems = append(problems, fmt.Sprintf("the VM took %.1fs to boot, more than maxBootSeconds %d", rep.BootSeconds, v.MaxBootSeconds))
	}
	if len(failed) > 0 {
		problems = append(problems, fmt.Sprintf("%d of %d checks failed: %s", len(failed), len(results), strings.Join(failed, ", ")))
	}
	if len(problems) == 0 {
		b.Log.Printf("all %d checks passed", len(results))
		return nil
	}
	err = &StepError{Step: "validate", Checks: failed, Err: errors.New(strings.Join(problems, "; "))}
	if v.ContinueDistributeOnFailure {
		b.Log.Printf("validation failed (%v); distributing anyway, as continueDistributeOnFailure says", err)
		b.validationFailed = err
		return nil
	}
	return err
}

func (s *validateStep) Cleanup(*Build) {}

// ---- distribute ----

type distributeStep struct{ w *work }

func (s *distributeStep) Name() string     { return "distribute" }
func (s *distributeStep) SubState() string { return SubDistributing }

func (s *distributeStep) Run(ctx context.Context, b *Build) error {
	bd := s.w.bd
	var errs []error
	for i, d := range b.Template.Distribute {
		def, _ := resource.Parse(definitionOf(d.GalleryImageID))
		version := s.w.version[i]
		out := Output{RunOutputName: d.RunOutputName, ArtifactID: def.Child("versions", version).String(), SHA256: b.ImageSHA}
		if err := s.publish(ctx, b, d, def, version); err != nil {
			out.Error = err.Error()
			errs = append(errs, fmt.Errorf("%s: %w", d.RunOutputName, err))
		} else {
			b.Log.Printf("published %s", out.ArtifactID)
			tmpl, _ := resource.Parse(b.TemplateID)
			ro := tmpl.Child("runOutputs", d.RunOutputName)
			_ = bd.Writer.Put(withInternal(ctx), &resource.Resource{ID: ro.String(), Name: ro.Name(), Type: TypeRunOutput,
				Properties: mustJSON(map[string]any{"artifactId": out.ArtifactID, "provisioningState": "Succeeded", "runId": b.RunID})})
		}
		b.Outputs = append(b.Outputs, out)
	}
	if len(errs) > 0 {
		// Outputs with no error were published: a partial success.
		return errors.Join(errs...)
	}
	if b.validationFailed != nil {
		return b.validationFailed
	}
	return nil
}

func (s *distributeStep) publish(ctx context.Context, b *Build, d Distributor, def resource.ID, version string) error {
	bd := s.w.bd
	defRes, err := bd.Store.Get(ctx, def)
	if err != nil {
		return fmt.Errorf("image definition %s: %w", def, err)
	}
	var regions []string
	var targets []map[string]any
	for _, t := range d.TargetRegions {
		regions = append(regions, t.Name)
		targets = append(targets, map[string]any{"name": t.Name, "regionalReplicaCount": max(t.ReplicaCount, 1)})
	}
	f, err := os.Open(b.Image)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := bd.Gallery.Upload(ctx, regions, blob.Digest(b.ImageSHA), b.ImageSize, f, nil); err != nil {
		return fmt.Errorf("upload the image: %w", err)
	}
	src := map[string]any{}
	switch {
	case b.Source.ID != "":
		src["id"] = b.Source.ID
	case b.Source.URL != "":
		src["uri"] = b.Source.URL
	default:
		src["marketplaceImage"] = map[string]any{"publisher": b.Source.Publisher, "offer": b.Source.Offer, "sku": b.Source.SKU, "version": b.Source.Version}
	}
	pp := map[string]any{"excludeFromLatest": d.ExcludeFromLatest}
	if len(targets) > 0 {
		pp["targetRegions"] = targets
	}
	if d.EndOfLifeDate != nil {
		pp["endOfLifeDate"] = d.EndOfLifeDate
	}
	v := def.Child("versions", version)
	return bd.Writer.Put(ctx, &resource.Resource{ID: v.String(), Name: version, Type: gallery.TypeVersion, Location: defRes.Location, Tags: d.ArtifactTags,
		Properties: mustJSON(map[string]any{
			"publishingProfile": pp,
			"storageProfile":    map[string]any{"osDiskImage": map[string]any{"sha256": b.ImageSHA, "sizeInBytes": b.ImageSize, "format": "qcow2"}, "source": src},
		})})
}

func (s *distributeStep) Cleanup(b *Build) {
	if b.Image != "" && !b.Keep {
		_ = os.Remove(b.Image)
	}
}
