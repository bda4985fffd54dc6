// Package pipeline turns an image template into a tested, tattooed image version in the
// gallery, or into a failed run that says which step failed and why, with nothing
// published.
//
// A template is a Microsoft.VirtualMachineImages/imageTemplates resource whose properties
// are Azure Image Builder's (source, customize, validate, distribute,
// buildTimeoutInMinutes, errorHandling, vmProfile) with a few gild additions: a URL
// source, a Packages customizer, inline file content, the check language and a boot-time
// limit for validation, tattoo entries, and end-of-life and excludeFromLatest on the
// distribution. gild's own YAML format is a friendlier spelling of the same model.
//
// A template may carry a schedule (a cron in a time zone, optionally only when an input
// changed, or as soon as the base image does), which gild disables after a number of
// scheduled runs fail in a row.
package pipeline

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/gildhq/gild/check"
	"github.com/gildhq/gild/resource"
)

// TypeTemplate is the template resource type.
const TypeTemplate = "Microsoft.VirtualMachineImages/imageTemplates"

// Source types.
const (
	SourcePlatformImage      = "PlatformImage"
	SourceSharedImageVersion = "SharedImageVersion"
	SourceURL                = "Url" // gild: a qcow2 or raw disk at an https:// or file:// URL
)

// Customizer and validator types.
const (
	CustomizeShell    = "Shell"
	CustomizeFile     = "File"
	CustomizePackages = "Packages" // gild: apt packages to install and remove
)

// Error handling choices.
const (
	ErrorCleanup = "cleanup"
	ErrorAbort   = "abort"
)

// Limits from Azure Image Builder.
const (
	DefaultBuildTimeoutMinutes = 240
	MinBuildTimeoutMinutes     = 6
	MaxBuildTimeoutMinutes     = 960
	// DefaultMaxBootSeconds bounds a validation VM's boot under software emulation.
	DefaultMaxBootSeconds = 180
)

// Source is where the image starts.
type Source struct {
	Type string `json:"type"`
	// PlatformImage: a marketplace image; version "latest" is resolved when a run starts.
	Publisher string `json:"publisher,omitempty"`
	Offer     string `json:"offer,omitempty"`
	SKU       string `json:"sku,omitempty"`
	Version   string `json:"version,omitempty"`
	// SharedImageVersion: a gallery image version, or a definition for its latest.
	ImageVersionID string `json:"imageVersionId,omitempty"`
	// Url: a disk image and the sums file that vouches for it (SHA256SUMS or SHA512SUMS
	// style), or a checksum given inline as sha256:HEX or sha512:HEX.
	URL         string `json:"url,omitempty"`
	ChecksumURL string `json:"checksumUrl,omitempty"`
	Checksum    string `json:"checksum,omitempty"`
	Format      string `json:"format,omitempty"`
}

// Customizer is one step run inside the image, offline; validators use the Shell shape.
type Customizer struct {
	Type string `json:"type"`
	Name string `json:"name"`
	// Shell: inline lines, or a script (scriptUri or inline content) with its checksum.
	Inline    []string `json:"inline,omitempty"`
	ScriptURI string   `json:"scriptUri,omitempty"`
	// File: sourceUri, or content (base64, as gild image build inlines local files).
	SourceURI      string `json:"sourceUri,omitempty"`
	Content        string `json:"content,omitempty"`
	SHA256Checksum string `json:"sha256Checksum,omitempty"`
	Destination    string `json:"destination,omitempty"`
	Mode           string `json:"mode,omitempty"`
	Owner          string `json:"owner,omitempty"`
	// Packages.
	Install []string `json:"install,omitempty"`
	Remove  []string `json:"remove,omitempty"`
}

// Validation says how the image is tested in a throwaway VM.
type Validation struct {
	ContinueDistributeOnFailure bool         `json:"continueDistributeOnFailure,omitempty"`
	SourceValidationOnly        bool         `json:"sourceValidationOnly,omitempty"`
	InVMValidations             []Customizer `json:"inVMValidations,omitempty"`
	// Checks are in gild's check language, run in the VM by gild-agent.
	Checks         json.RawMessage `json:"checks,omitempty"`
	MaxBootSeconds int             `json:"maxBootSeconds,omitempty"`
}

// TargetRegion is a region a distributed version goes to.
type TargetRegion struct {
	Name               string `json:"name" yaml:"name"`
	ReplicaCount       int    `json:"replicaCount,omitempty" yaml:"replicaCount"`
	StorageAccountType string `json:"storageAccountType,omitempty" yaml:"storageAccountType"`
}

// Versioning picks the version number when the gallery image ID names no version.
type Versioning struct {
	Scheme string `json:"scheme"` // Latest (the next patch, optionally within major) or Source
	Major  *int   `json:"major,omitempty"`
}

// Distributor publishes the image.
type Distributor struct {
	Type string `json:"type"` // SharedImage
	// GalleryImageID is an image definition (the version is chosen by Versioning) or an
	// image version (published as that number).
	GalleryImageID     string            `json:"galleryImageId"`
	RunOutputName      string            `json:"runOutputName"`
	TargetRegions      []TargetRegion    `json:"targetRegions,omitempty"`
	ReplicationRegions []string          `json:"replicationRegions,omitempty"` // Azure's deprecated form
	Versioning         *Versioning       `json:"versioning,omitempty"`
	ExcludeFromLatest  bool              `json:"excludeFromLatest,omitempty"`
	EndOfLifeDate      *time.Time        `json:"endOfLifeDate,omitempty"`
	ArtifactTags       map[string]string `json:"artifactTags,omitempty"`
}

// ErrorHandling keeps (abort) or removes (cleanup) the build's leftovers after a failure.
type ErrorHandling struct {
	OnCustomizerError string `json:"onCustomizerError,omitempty" yaml:"onCustomizerError"`
	OnValidationError string `json:"onValidationError,omitempty" yaml:"onValidationError"`
}

// VMProfile shapes the build and validation VM.
type VMProfile struct {
	VMSize       string `json:"vmSize,omitempty"`
	OSDiskSizeGB int    `json:"osDiskSizeGB,omitempty"`
}

// RunStatus is the last run, as Azure reports it on the template.
type RunStatus struct {
	StartTime   *time.Time `json:"startTime,omitempty"`
	EndTime     *time.Time `json:"endTime,omitempty"`
	RunState    string     `json:"runState"`
	RunSubState string     `json:"runSubState,omitempty"`
	Message     string     `json:"message,omitempty"`
}

// TemplateProperties are an image template's properties.
type TemplateProperties struct {
	Source                Source            `json:"source"`
	Customize             []Customizer      `json:"customize,omitempty"`
	Validate              *Validation       `json:"validate,omitempty"`
	Distribute            []Distributor     `json:"distribute"`
	BuildTimeoutInMinutes int               `json:"buildTimeoutInMinutes,omitempty"`
	ErrorHandling         *ErrorHandling    `json:"errorHandling,omitempty"`
	VMProfile             *VMProfile        `json:"vmProfile,omitempty"`
	Tattoo                map[string]string `json:"tattoo,omitempty"`
	// InstallAgent puts gild-agent and its unit into the image; nil means true.
	InstallAgent *bool `json:"installAgent,omitempty"`
	// Schedule (gild) builds the template by itself; it is not part of the build.
	Schedule *Schedule `json:"schedule,omitempty"`

	ProvisioningState string     `json:"provisioningState,omitempty"`
	LastRunStatus     *RunStatus `json:"lastRunStatus,omitempty"`
	// ScheduleStatus is written by gild only.
	ScheduleStatus *ScheduleStatus `json:"scheduleStatus,omitempty"`
}

// Timeout is the build's time limit.
func (p *TemplateProperties) Timeout() time.Duration {
	return time.Duration(p.BuildTimeoutInMinutes) * time.Minute
}

// fieldErrors gathers every problem of a template at once.
type fieldErrors []*resource.Error

func (f *fieldErrors) add(target, format string, args ...any) {
	*f = append(*f, resource.Errorf(resource.CodeInvalidRequestContent, target, format, args...))
}

var (
	customizerName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._ -]{0,63}$`)
	hexSHA256      = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	fileMode       = regexp.MustCompile(`^0?[0-7]{3,4}$`)
	debPackage     = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?$`)
	tattooKey      = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,63}$`)
)

// ParseTemplate decodes and checks a template's properties, reporting every problem at
// once with its JSON path, and fills in the defaults. It reads nothing and changes nothing.
func ParseTemplate(raw json.RawMessage) (*TemplateProperties, error) {
	var p TemplateProperties
	if err := decodeStrict(raw, &p); err != nil {
		return nil, err
	}
	var f fieldErrors
	p.check(&f)
	if len(f) > 0 {
		return nil, resource.Join(resource.CodeInvalidRequestContent, "the image template is invalid", f)
	}
	return &p, nil
}

func decodeStrict(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		raw = json.RawMessage("{}")
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return resource.Errorf(resource.CodeInvalidRequestContent, "properties", "the image template is invalid: %v", err)
	}
	return nil
}

func (p *TemplateProperties) check(f *fieldErrors) {
	p.Source.check(f)
	names := map[string]string{}
	for i := range p.Customize {
		c := &p.Customize[i]
		at := fmt.Sprintf("properties.customize[%d]", i)
		c.check(f, at, false)
		if prev, dup := names[strings.ToLower(c.Name)]; dup && c.Name != "" {
			f.add(at+".name", "the name %q is already used by %s", c.Name, prev)
		}
		names[strings.ToLower(c.Name)] = at
	}
	if p.Validate == nil {
		p.Validate = &Validation{}
	}
	v := p.Validate
	if v.MaxBootSeconds == 0 {
		v.MaxBootSeconds = DefaultMaxBootSeconds
	}
	if v.MaxBootSeconds < 5 || v.MaxBootSeconds > 3600 {
		f.add("properties.validate.maxBootSeconds", "must be between 5 and 3600 seconds, got %d", v.MaxBootSeconds)
	}
	for i := range v.InVMValidations {
		at := fmt.Sprintf("properties.validate.inVMValidations[%d]", i)
		v.InVMValidations[i].check(f, at, true)
		if v.InVMValidations[i].Type == CustomizeShell && len(v.InVMValidations[i].Inline) == 0 {
			f.add(at+".inline", "a validation runs inside the VM from inline lines; scripts are for customizers")
		}
	}
	if len(v.Checks) > 0 {
		if _, err := check.Parse(v.Checks); err != nil {
			var ps check.Problems
			if errors.As(err, &ps) {
				for _, pr := range ps {
					f.add("properties.validate."+pr.Path, "%s", pr.Message)
				}
			} else {
				f.add("properties.validate.checks", "%v", err)
			}
		}
	}
	if len(p.Distribute) == 0 && !v.SourceValidationOnly {
		f.add("properties.distribute", "at least one distribution target is required")
	}
	outputs := map[string]bool{}
	for i := range p.Distribute {
		d := &p.Distribute[i]
		at := fmt.Sprintf("properties.distribute[%d]", i)
		d.check(f, at)
		if outputs[strings.ToLower(d.RunOutputName)] {
			f.add(at+".runOutputName", "the run output name %q is used twice", d.RunOutputName)
		}
		outputs[strings.ToLower(d.RunOutputName)] = true
	}
	switch {
	case p.BuildTimeoutInMinutes == 0:
		p.BuildTimeoutInMinutes = DefaultBuildTimeoutMinutes
	case p.BuildTimeoutInMinutes < MinBuildTimeoutMinutes || p.BuildTimeoutInMinutes > MaxBuildTimeoutMinutes:
		f.add("properties.buildTimeoutInMinutes", "must be between %d and %d, got %d", MinBuildTimeoutMinutes, MaxBuildTimeoutMinutes, p.BuildTimeoutInMinutes)
	}
	if p.ErrorHandling == nil {
		p.ErrorHandling = &ErrorHandling{}
	}
	for _, e := range []struct {
		name string
		v    *string
	}{{"onCustomizerError", &p.ErrorHandling.OnCustomizerError}, {"onValidationError", &p.ErrorHandling.OnValidationError}} {
		switch strings.ToLower(*e.v) {
		case "":
			*e.v = ErrorCleanup
		case ErrorCleanup, ErrorAbort:
			*e.v = strings.ToLower(*e.v)
		default:
			f.add("properties.errorHandling."+e.name, "%q is not allowed; use cleanup or abort", *e.v)
		}
	}
	if p.VMProfile != nil && p.VMProfile.OSDiskSizeGB != 0 && (p.VMProfile.OSDiskSizeGB < 2 || p.VMProfile.OSDiskSizeGB > 2048) {
		f.add("properties.vmProfile.osDiskSizeGB", "must be between 2 and 2048, got %d", p.VMProfile.OSDiskSizeGB)
	}
	for k := range p.Tattoo {
		if !tattooKey.MatchString(k) {
			f.add("properties.tattoo."+k, "a tattoo key must start with a letter and hold letters, digits, '_', '.' and '-' (up to 64)")
		}
	}
	if p.Schedule != nil {
		p.Schedule.check(f)
	}
}

func (s *Source) check(f *fieldErrors) {
	const at = "properties.source"
	need := func(field, v string) {
		if strings.TrimSpace(v) == "" {
			f.add(at+"."+field, "%s is required for a %s source", field, s.Type)
		}
	}
	switch {
	case strings.EqualFold(s.Type, SourcePlatformImage):
		s.Type = SourcePlatformImage
		need("publisher", s.Publisher)
		need("offer", s.Offer)
		need("sku", s.SKU)
		if s.Version == "" {
			s.Version = "latest"
		}
	case strings.EqualFold(s.Type, SourceSharedImageVersion):
		s.Type = SourceSharedImageVersion
		id, err := resource.Parse(s.ImageVersionID)
		if err != nil || (!strings.EqualFold(id.Type(), "Microsoft.Compute/galleries/images/versions") && !strings.EqualFold(id.Type(), "Microsoft.Compute/galleries/images")) {
			f.add(at+".imageVersionId", "%q is not an image version ID (or an image definition ID, for its latest version)", s.ImageVersionID)
		}
	case strings.EqualFold(s.Type, SourceURL):
		s.Type = SourceURL
		u, err := url.Parse(s.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "file") || (u.Scheme != "file" && u.Host == "") {
			f.add(at+".url", "%q is not an https://, http:// or file:// URL", s.URL)
		}
		switch {
		case s.ChecksumURL == "" && s.Checksum == "":
			f.add(at+".checksumUrl", "a URL source needs checksumUrl (a SHA256SUMS or SHA512SUMS file) or checksum, so its bytes can be trusted")
		case s.ChecksumURL != "" && s.Checksum != "":
			f.add(at+".checksum", "give checksumUrl or checksum, not both")
		case s.Checksum != "":
			if _, _, err := ParseChecksum(s.Checksum); err != nil {
				f.add(at+".checksum", "%v", err)
			}
		default:
			if u, err := url.Parse(s.ChecksumURL); err != nil || (u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "file") {
				f.add(at+".checksumUrl", "%q is not an https://, http:// or file:// URL", s.ChecksumURL)
			}
		}
		switch strings.ToLower(s.Format) {
		case "":
			s.Format = formatFromName(s.URL)
		case "qcow2", "raw":
			s.Format = strings.ToLower(s.Format)
		default:
			f.add(at+".format", "%q is not allowed; use qcow2 or raw", s.Format)
		}
	case s.Type == "":
		f.add(at+".type", "the source type is required: PlatformImage, SharedImageVersion or Url")
	default:
		f.add(at+".type", "%q is not a source type gild builds from; use PlatformImage, SharedImageVersion or Url", s.Type)
	}
}

func formatFromName(u string) string {
	if strings.HasSuffix(strings.ToLower(path.Base(u)), ".raw") || strings.HasSuffix(strings.ToLower(path.Base(u)), ".img") {
		return "raw"
	}
	return "qcow2"
}

// ParseChecksum splits "sha256:HEX" or "sha512:HEX".
func ParseChecksum(s string) (algo, hexSum string, err error) {
	algo, hexSum, ok := strings.Cut(strings.TrimSpace(s), ":")
	algo = strings.ToLower(algo)
	want := map[string]int{"sha256": 64, "sha512": 128}[algo]
	if !ok || want == 0 || len(hexSum) != want || strings.Trim(strings.ToLower(hexSum), "0123456789abcdef") != "" {
		return "", "", fmt.Errorf("%q is not sha256:HEX or sha512:HEX", s)
	}
	return algo, strings.ToLower(hexSum), nil
}

func (c *Customizer) check(f *fieldErrors, at string, validator bool) {
	if !customizerName.MatchString(c.Name) {
		f.add(at+".name", "a name is required: letters, digits, spaces, '.', '_' and '-', up to 64 characters")
	}
	switch {
	case strings.EqualFold(c.Type, CustomizeShell):
		c.Type = CustomizeShell
		n := 0
		for _, set := range []bool{len(c.Inline) > 0, c.ScriptURI != "", c.Content != ""} {
			if set {
				n++
			}
		}
		if n != 1 {
			f.add(at, "a Shell step needs exactly one of inline, scriptUri or content")
		}
		if (c.ScriptURI != "" || c.Content != "") && !hexSHA256.MatchString(c.SHA256Checksum) {
			f.add(at+".sha256Checksum", "a script needs its SHA-256 (64 hexadecimal digits), so what runs is what was reviewed")
		}
		c.checkContent(f, at)
	case strings.EqualFold(c.Type, CustomizeFile) && !validator:
		c.Type = CustomizeFile
		if (c.SourceURI == "") == (c.Content == "") {
			f.add(at, "a File step needs exactly one of sourceUri or content")
		}
		if c.SourceURI != "" && !hexSHA256.MatchString(c.SHA256Checksum) {
			f.add(at+".sha256Checksum", "a downloaded file needs its SHA-256 (64 hexadecimal digits)")
		}
		if !strings.HasPrefix(c.Destination, "/") || path.Clean(c.Destination) != c.Destination {
			f.add(at+".destination", "the destination must be an absolute, clean path in the image, got %q", c.Destination)
		}
		if c.Mode != "" && !fileMode.MatchString(c.Mode) {
			f.add(at+".mode", "%q is not an octal file mode such as 0644", c.Mode)
		}
		c.checkContent(f, at)
	case strings.EqualFold(c.Type, CustomizePackages) && !validator:
		c.Type = CustomizePackages
		if len(c.Install)+len(c.Remove) == 0 {
			f.add(at, "a Packages step needs install or remove")
		}
		for _, l := range []struct {
			name string
			v    []string
		}{{"install", c.Install}, {"remove", c.Remove}} {
			for j, pkg := range l.v {
				if !debPackage.MatchString(pkg) {
					f.add(fmt.Sprintf("%s.%s[%d]", at, l.name, j), "%q is not a Debian package name (optionally =VERSION)", pkg)
				}
			}
		}
	case validator:
		f.add(at+".type", "%q is not a validator type; use Shell (or checks, for gild's check language)", c.Type)
	default:
		f.add(at+".type", "%q is not a customizer type; use Shell, File or Packages", c.Type)
	}
}

func (c *Customizer) checkContent(f *fieldErrors, at string) {
	if c.Content == "" {
		return
	}
	if _, err := base64.StdEncoding.DecodeString(c.Content); err != nil {
		f.add(at+".content", "content must be base64: %v", err)
	}
}

func (d *Distributor) check(f *fieldErrors, at string) {
	if !strings.EqualFold(d.Type, "SharedImage") {
		f.add(at+".type", "%q is not a distribution gild makes; use SharedImage (a gallery image version)", d.Type)
	}
	d.Type = "SharedImage"
	id, err := resource.Parse(d.GalleryImageID)
	switch {
	case err != nil:
		f.add(at+".galleryImageId", "%q is not a resource ID", d.GalleryImageID)
	case strings.EqualFold(id.Type(), "Microsoft.Compute/galleries/images"):
	case strings.EqualFold(id.Type(), "Microsoft.Compute/galleries/images/versions"):
		if d.Versioning != nil {
			f.add(at+".versioning", "versioning applies only when galleryImageId names an image definition, not a version")
		}
		if !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(id.Name()) {
			f.add(at+".galleryImageId", "the version %q is not Major.Minor.Patch", id.Name())
		}
	default:
		f.add(at+".galleryImageId", "%q is not an image definition or image version ID", d.GalleryImageID)
	}
	if d.RunOutputName == "" {
		d.RunOutputName = "image"
	}
	if !customizerName.MatchString(d.RunOutputName) || strings.Contains(d.RunOutputName, " ") {
		f.add(at+".runOutputName", "%q is not a run output name: letters, digits, '.', '_' and '-'", d.RunOutputName)
	}
	for _, r := range d.ReplicationRegions {
		d.TargetRegions = append(d.TargetRegions, TargetRegion{Name: r})
	}
	d.ReplicationRegions = nil
	for j := range d.TargetRegions {
		t := &d.TargetRegions[j]
		t.Name = strings.ToLower(t.Name)
		if t.Name == "" {
			f.add(fmt.Sprintf("%s.targetRegions[%d].name", at, j), "the region name is required")
		}
		if t.ReplicaCount < 0 || t.ReplicaCount > 100 {
			f.add(fmt.Sprintf("%s.targetRegions[%d].replicaCount", at, j), "must be between 1 and 100, got %d", t.ReplicaCount)
		}
	}
	if v := d.Versioning; v != nil {
		switch {
		case strings.EqualFold(v.Scheme, "Latest"):
			v.Scheme = "Latest"
			if v.Major != nil && *v.Major < 0 {
				f.add(at+".versioning.major", "must not be negative, got %d", *v.Major)
			}
		case strings.EqualFold(v.Scheme, "Source"):
			v.Scheme = "Source"
		default:
			f.add(at+".versioning.scheme", "%q is not allowed; use Latest or Source", v.Scheme)
		}
	}
}
