package gallery

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gildhq/gild/blob"
	"github.com/gildhq/gild/resource"
)

// The resource types the gallery owns.
const (
	TypeGallery    = "Microsoft.Compute/galleries"
	TypeDefinition = "Microsoft.Compute/galleries/images"
	TypeVersion    = "Microsoft.Compute/galleries/images/versions"
	TypeVM         = "Microsoft.Compute/virtualMachines"
)

// IsGalleryType reports whether typ is a gallery, an image definition or an image version.
func IsGalleryType(typ string) bool {
	return strings.EqualFold(typ, TypeGallery) || strings.EqualFold(typ, TypeDefinition) || strings.EqualFold(typ, TypeVersion)
}

// Provisioning states, as ARM reports them.
const (
	ProvisioningSucceeded = "Succeeded"
	ProvisioningFailed    = "Failed"
)

// Replication states of a version in a region, and of the version as a whole, as the
// compute gallery reports them.
const (
	ReplicationUnknown     = "Unknown"
	ReplicationReplicating = "Replicating"
	ReplicationCompleted   = "Completed"
	ReplicationFailed      = "Failed"
	AggregatedInProgress   = "InProgress"
)

// Lifecycle states of a version, in the order a version passes through them.
const (
	StateActive     = "active"
	StateAged       = "aged"
	StateDeprecated = "deprecated"
	StateEndOfLife  = "endOfLife"
)

// Version is a Major.Minor.Patch image version number.
type Version struct{ Major, Minor, Patch int32 }

var versionPattern = regexp.MustCompile(`^(\d{1,9})\.(\d{1,9})\.(\d{1,9})$`)

// ParseVersion parses "1.4.0".
func ParseVersion(s string) (Version, error) {
	m := versionPattern.FindStringSubmatch(s)
	if m == nil {
		return Version{}, fmt.Errorf("version %q is not Major.Minor.Patch (three whole numbers, such as 1.4.0)", s)
	}
	var v [3]int32
	for i := range v {
		n, _ := strconv.ParseInt(m[i+1], 10, 32)
		v[i] = int32(n)
	}
	return Version{v[0], v[1], v[2]}, nil
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Compare orders versions by Major, then Minor, then Patch.
func (v Version) Compare(w Version) int {
	switch {
	case v.Major != w.Major:
		return cmp.Compare(v.Major, w.Major)
	case v.Minor != w.Minor:
		return cmp.Compare(v.Minor, w.Minor)
	}
	return cmp.Compare(v.Patch, w.Patch)
}

// Identifier names an image definition's publisher, offer and SKU; unique in its gallery.
type Identifier struct {
	Publisher string `json:"publisher"`
	Offer     string `json:"offer"`
	SKU       string `json:"sku"`
}

// ResourceRange is a recommended minimum and maximum.
type ResourceRange struct {
	Min *int `json:"min,omitempty"`
	Max *int `json:"max,omitempty"`
}

// Recommended is the definition's recommended VM shape.
type Recommended struct {
	VCPUs  *ResourceRange `json:"vCPUs,omitempty"`
	Memory *ResourceRange `json:"memory,omitempty"`
}

// Feature is a named image feature, such as SecurityType.
type Feature struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// LifecyclePolicy is a definition's rules for moving its versions from aged to deprecated
// and end-of-life; Azure has only the informational dates, gild acts on them.
type LifecyclePolicy struct {
	// DeprecateAfterDays deprecates a version this many days after it was published.
	DeprecateAfterDays int `json:"deprecateAfterDays,omitempty"`
	// KeepNewest deprecates the versions beyond the newest K.
	KeepNewest int `json:"keepNewest,omitempty"`
	// RetainAtLeast keeps this many of the newest versions undeprecated whatever the other
	// rules say; nil means 1.
	RetainAtLeast *int `json:"retainAtLeast,omitempty"`
	// EndOfLifeAfterDays ends a version's life this many days after it was published, when
	// the version sets no endOfLifeDate of its own.
	EndOfLifeAfterDays int `json:"endOfLifeAfterDays,omitempty"`
}

func (p *LifecyclePolicy) retain() int {
	if p == nil || p.RetainAtLeast == nil {
		return 1
	}
	return *p.RetainAtLeast
}

// DefinitionProperties are an image definition's properties.
type DefinitionProperties struct {
	Identifier          Identifier       `json:"identifier"`
	OSType              string           `json:"osType"`
	OSState             string           `json:"osState"`
	HyperVGeneration    string           `json:"hyperVGeneration,omitempty"`
	Architecture        string           `json:"architecture,omitempty"`
	Description         string           `json:"description,omitempty"`
	Eula                string           `json:"eula,omitempty"`
	PrivacyStatementURI string           `json:"privacyStatementUri,omitempty"`
	ReleaseNoteURI      string           `json:"releaseNoteUri,omitempty"`
	EndOfLifeDate       *time.Time       `json:"endOfLifeDate,omitempty"`
	Recommended         *Recommended     `json:"recommended,omitempty"`
	Features            []Feature        `json:"features,omitempty"`
	LifecyclePolicy     *LifecyclePolicy `json:"lifecyclePolicy,omitempty"`
	ProvisioningState   string           `json:"provisioningState,omitempty"`
}

// GalleryProperties are a gallery's properties.
type GalleryProperties struct {
	Description       string `json:"description,omitempty"`
	ProvisioningState string `json:"provisioningState,omitempty"`
}

// TargetRegion is a region a version is replicated to.
type TargetRegion struct {
	Name                 string `json:"name"`
	RegionalReplicaCount int    `json:"regionalReplicaCount,omitempty"`
	// ExcludeFromLatest, when set, wins over the version's own for this region.
	ExcludeFromLatest  *bool  `json:"excludeFromLatest,omitempty"`
	StorageAccountType string `json:"storageAccountType,omitempty"`
}

// PublishingProfile says where a version goes and how it is offered.
type PublishingProfile struct {
	TargetRegions      []TargetRegion `json:"targetRegions,omitempty"`
	ReplicaCount       int            `json:"replicaCount,omitempty"`
	ExcludeFromLatest  bool           `json:"excludeFromLatest,omitempty"`
	EndOfLifeDate      *time.Time     `json:"endOfLifeDate,omitempty"`
	PublishedDate      *time.Time     `json:"publishedDate,omitempty"`
	StorageAccountType string         `json:"storageAccountType,omitempty"`
}

// DiskImage is the artifact of a version: an opaque disk file kept by its SHA-256.
type DiskImage struct {
	SHA256      string `json:"sha256"`
	SizeInBytes int64  `json:"sizeInBytes"`
	// SizeInGB is the size rounded up to whole GiB, as Azure reports it.
	SizeInGB    int    `json:"sizeInGB,omitempty"`
	Format      string `json:"format,omitempty"` // qcow2 or raw
	HostCaching string `json:"hostCaching,omitempty"`
}

// MarketplaceImage names a marketplace base image and its version.
type MarketplaceImage struct {
	Publisher string `json:"publisher"`
	Offer     string `json:"offer"`
	SKU       string `json:"sku"`
	Version   string `json:"version,omitempty"`
}

// Source is what a version was built from: another image version (id), or a marketplace
// image.
type Source struct {
	ID          string            `json:"id,omitempty"`
	Marketplace *MarketplaceImage `json:"marketplaceImage,omitempty"`
	// URI is a disk image the version was built from, as Azure's storageProfile.source.uri.
	URI string `json:"uri,omitempty"`
}

// StorageProfile holds the version's disk.
type StorageProfile struct {
	OSDiskImage *DiskImage `json:"osDiskImage,omitempty"`
	Source      *Source    `json:"source,omitempty"`
}

// RegionStatus is how far a version is in one region.
type RegionStatus struct {
	Region   string `json:"region"`
	State    string `json:"state"`
	Details  string `json:"details,omitempty"`
	Progress int    `json:"progress"`
	// Replicas is how many verified replicas the region holds.
	Replicas int `json:"replicas"`
}

// ReplicationStatus sums up a version's regions.
type ReplicationStatus struct {
	AggregatedState string         `json:"aggregatedState"`
	Summary         []RegionStatus `json:"summary"`
}

// Region returns the status of region name, or nil.
func (r *ReplicationStatus) Region(name string) *RegionStatus {
	if r == nil {
		return nil
	}
	for i := range r.Summary {
		if r.Summary[i].Region == name {
			return &r.Summary[i]
		}
	}
	return nil
}

// Lifecycle is where a version stands in its life.
type Lifecycle struct {
	State  string    `json:"state"`
	Since  time.Time `json:"since"`
	Reason string    `json:"reason,omitempty"`
}

// SafetyProfile guards deletions.
type SafetyProfile struct {
	AllowDeletionOfReplicatedLocations *bool `json:"allowDeletionOfReplicatedLocations,omitempty"`
}

// VersionProperties are an image version's properties.
type VersionProperties struct {
	PublishingProfile PublishingProfile  `json:"publishingProfile"`
	StorageProfile    StorageProfile     `json:"storageProfile"`
	SafetyProfile     *SafetyProfile     `json:"safetyProfile,omitempty"`
	ReplicationStatus *ReplicationStatus `json:"replicationStatus,omitempty"`
	Lifecycle         *Lifecycle         `json:"lifecycle,omitempty"`
	ProvisioningState string             `json:"provisioningState,omitempty"`
}

// Digest is the version's artifact digest.
func (p *VersionProperties) Digest() blob.Digest {
	if p.StorageProfile.OSDiskImage == nil {
		return ""
	}
	return blob.Digest(p.StorageProfile.OSDiskImage.SHA256)
}

// Targets are the version's regions with their replica counts, the first region first.
func (p *VersionProperties) Targets() []TargetRegion {
	out := make([]TargetRegion, len(p.PublishingProfile.TargetRegions))
	for i, t := range p.PublishingProfile.TargetRegions {
		if t.RegionalReplicaCount == 0 {
			t.RegionalReplicaCount = max(p.PublishingProfile.ReplicaCount, 1)
		}
		out[i] = t
	}
	return out
}

// ExcludedIn reports whether the version is kept out of latest in region (the region's own
// setting wins); region "" asks about the version's own setting.
func (p *VersionProperties) ExcludedIn(region string) bool {
	for _, t := range p.PublishingProfile.TargetRegions {
		if t.Name == region && t.ExcludeFromLatest != nil {
			return *t.ExcludeFromLatest
		}
	}
	return p.PublishingProfile.ExcludeFromLatest
}

// MaxReplicas is Azure's limit on replicas of a version in one region.
const MaxReplicas = 100

// fieldErrors gathers every problem of a document at once.
type fieldErrors []*resource.Error

func (f *fieldErrors) add(target, format string, args ...any) {
	*f = append(*f, resource.Errorf(resource.CodeInvalidRequestContent, target, format, args...))
}

func (f fieldErrors) err(summary string) error {
	if len(f) == 0 {
		return nil
	}
	return resource.Join(resource.CodeInvalidRequestContent, summary, f)
}

// decodeStrict decodes JSON properties into v, refusing unknown fields.
func decodeStrict(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		raw = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return resource.Errorf(resource.CodeInvalidRequestContent, "properties", "the properties are invalid: %v", err)
	}
	return nil
}

func oneOf(f *fieldErrors, target, got string, allowed ...string) string {
	for _, a := range allowed {
		if strings.EqualFold(got, a) {
			return a
		}
	}
	f.add(target, "%q is not allowed; use %s", got, strings.Join(allowed, ", "))
	return got
}

func checkURI(f *fieldErrors, target, s string) {
	if s == "" {
		return
	}
	if u, err := url.Parse(s); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		f.add(target, "%q is not an http or https URL", s)
	}
}

var identifierPart = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ParseDefinition decodes and checks an image definition's properties, reporting every
// problem at once, and fills in Azure's defaults.
func ParseDefinition(raw json.RawMessage) (*DefinitionProperties, error) {
	var p DefinitionProperties
	if err := decodeStrict(raw, &p); err != nil {
		return nil, err
	}
	var f fieldErrors
	for _, part := range []struct{ name, v string }{{"publisher", p.Identifier.Publisher}, {"offer", p.Identifier.Offer}, {"sku", p.Identifier.SKU}} {
		if !identifierPart.MatchString(part.v) {
			f.add("properties.identifier."+part.name, "the %s is required: letters, digits, '.', '_' and '-', up to 128 characters", part.name)
		}
	}
	p.OSType = oneOf(&f, "properties.osType", p.OSType, "Linux", "Windows")
	p.OSState = oneOf(&f, "properties.osState", p.OSState, "Generalized", "Specialized")
	if p.HyperVGeneration == "" {
		p.HyperVGeneration = "V2"
	}
	p.HyperVGeneration = oneOf(&f, "properties.hyperVGeneration", p.HyperVGeneration, "V1", "V2")
	if p.Architecture == "" {
		p.Architecture = "x64"
	}
	p.Architecture = oneOf(&f, "properties.architecture", p.Architecture, "x64", "Arm64")
	checkURI(&f, "properties.privacyStatementUri", p.PrivacyStatementURI)
	checkURI(&f, "properties.releaseNoteUri", p.ReleaseNoteURI)
	if r := p.Recommended; r != nil {
		for _, rr := range []struct {
			name string
			r    *ResourceRange
		}{{"vCPUs", r.VCPUs}, {"memory", r.Memory}} {
			if rr.r == nil {
				continue
			}
			if (rr.r.Min != nil && *rr.r.Min < 1) || (rr.r.Max != nil && *rr.r.Max < 1) {
				f.add("properties.recommended."+rr.name, "the minimum and maximum must be at least 1")
			} else if rr.r.Min != nil && rr.r.Max != nil && *rr.r.Min > *rr.r.Max {
				f.add("properties.recommended."+rr.name, "the minimum %d is above the maximum %d", *rr.r.Min, *rr.r.Max)
			}
		}
	}
	if lp := p.LifecyclePolicy; lp != nil {
		for _, n := range []struct {
			name string
			v    int
		}{{"deprecateAfterDays", lp.DeprecateAfterDays}, {"keepNewest", lp.KeepNewest}, {"endOfLifeAfterDays", lp.EndOfLifeAfterDays}} {
			if n.v < 0 {
				f.add("properties.lifecyclePolicy."+n.name, "must not be negative, got %d", n.v)
			}
		}
		if lp.RetainAtLeast != nil && *lp.RetainAtLeast < 0 {
			f.add("properties.lifecyclePolicy.retainAtLeast", "must not be negative, got %d", *lp.RetainAtLeast)
		}
	}
	if err := f.err("the image definition is invalid"); err != nil {
		return nil, err
	}
	return &p, nil
}

// ParseVersionProperties decodes and checks a version's properties as a client sends them.
// regions says which region names exist.
func ParseVersionProperties(raw json.RawMessage, regions func(string) bool) (*VersionProperties, error) {
	var p VersionProperties
	if err := decodeStrict(raw, &p); err != nil {
		return nil, err
	}
	var f fieldErrors
	pp := &p.PublishingProfile
	if pp.ReplicaCount < 0 || pp.ReplicaCount > MaxReplicas {
		f.add("properties.publishingProfile.replicaCount", "must be between 1 and %d, got %d", MaxReplicas, pp.ReplicaCount)
	}
	seen := map[string]bool{}
	for i := range pp.TargetRegions {
		t := &pp.TargetRegions[i]
		target := fmt.Sprintf("properties.publishingProfile.targetRegions[%d]", i)
		t.Name = strings.ToLower(strings.TrimSpace(t.Name))
		switch {
		case t.Name == "":
			f.add(target+".name", "the region name is required")
		case !regions(t.Name):
			f.add(target+".name", "region %q is not configured on this server", t.Name)
		case seen[t.Name]:
			f.add(target+".name", "region %q is listed twice", t.Name)
		}
		seen[t.Name] = true
		if t.RegionalReplicaCount < 0 || t.RegionalReplicaCount > MaxReplicas {
			f.add(target+".regionalReplicaCount", "must be between 1 and %d, got %d", MaxReplicas, t.RegionalReplicaCount)
		}
	}
	if p.StorageProfile.OSDiskImage == nil {
		f.add("properties.storageProfile.osDiskImage", "the OS disk image (sha256 and sizeInBytes of an uploaded artifact) is required")
	} else {
		d := p.StorageProfile.OSDiskImage
		if dg, err := blob.ParseDigest(d.SHA256); err != nil {
			f.add("properties.storageProfile.osDiskImage.sha256", "%v", err)
		} else {
			d.SHA256 = string(dg)
		}
		if d.SizeInBytes <= 0 {
			f.add("properties.storageProfile.osDiskImage.sizeInBytes", "must be the artifact's size in bytes, got %d", d.SizeInBytes)
		}
		d.SizeInGB = int((d.SizeInBytes + 1<<30 - 1) >> 30)
		if d.Format == "" {
			d.Format = "qcow2"
		}
		d.Format = oneOf(&f, "properties.storageProfile.osDiskImage.format", d.Format, "qcow2", "raw")
	}
	if s := p.StorageProfile.Source; s != nil {
		n := 0
		for _, set := range []bool{s.ID != "", s.Marketplace != nil, s.URI != ""} {
			if set {
				n++
			}
		}
		switch {
		case n > 1:
			f.add("properties.storageProfile.source", "give one of id (an image version), marketplaceImage or uri")
		case s.ID != "":
			id, err := resource.Parse(s.ID)
			if err != nil || !strings.EqualFold(id.Type(), TypeVersion) {
				f.add("properties.storageProfile.source.id", "%q is not an image version ID", s.ID)
			}
		case s.Marketplace != nil:
			m := s.Marketplace
			if m.Publisher == "" || m.Offer == "" || m.SKU == "" {
				f.add("properties.storageProfile.source.marketplaceImage", "publisher, offer and sku are required")
			}
		}
	}
	if err := f.err("the image version is invalid"); err != nil {
		return nil, err
	}
	return &p, nil
}

func marshalProps(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("gallery: marshal properties: %v", err)) // plain structs always marshal
	}
	return b
}
