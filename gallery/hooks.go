package gallery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/gildhq/gild/blob"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// BeforeWrite checks and completes gallery resources, and admits VMs only onto image
// versions that exist, are replicated and have not reached their end of life.
func (s *Service) BeforeWrite(ctx context.Context, tx store.Tx, _ *resource.Hierarchy, old, next *resource.Resource) (*resource.Resource, error) {
	switch {
	case strings.EqualFold(next.Type, TypeGallery):
		var p GalleryProperties
		if err := decodeStrict(next.Properties, &p); err != nil {
			return nil, err
		}
		p.ProvisioningState = ProvisioningSucceeded
		next.Properties = marshalProps(p)
	case strings.EqualFold(next.Type, TypeDefinition):
		return s.checkDefinition(ctx, tx, old, next)
	case strings.EqualFold(next.Type, TypeVersion):
		if isInternal(ctx) {
			return next, nil
		}
		return s.checkVersion(ctx, tx, old, next)
	case strings.EqualFold(next.Type, TypeVM):
		return s.admitVM(ctx, tx, old, next)
	}
	return next, nil
}

// AfterWrite has nothing to add: what follows a gallery write is reconciled after commit.
func (s *Service) AfterWrite(context.Context, store.Tx, *resource.Hierarchy, *resource.Resource) error {
	return nil
}

// AfterDelete has nothing to add: artifacts nobody refers to are collected by Run.
func (s *Service) AfterDelete(context.Context, store.Tx, *resource.Hierarchy, *resource.Resource) error {
	return nil
}

func (s *Service) checkDefinition(ctx context.Context, tx store.Tx, old, next *resource.Resource) (*resource.Resource, error) {
	p, err := ParseDefinition(next.Properties)
	if err != nil {
		return nil, err
	}
	if old != nil {
		var was DefinitionProperties
		if err := json.Unmarshal(old.Properties, &was); err == nil {
			var f fieldErrors
			for _, c := range []struct {
				field      string
				before, is any
			}{
				{"identifier", was.Identifier, p.Identifier}, {"osType", was.OSType, p.OSType}, {"osState", was.OSState, p.OSState},
				{"hyperVGeneration", was.HyperVGeneration, p.HyperVGeneration}, {"architecture", was.Architecture, p.Architecture},
			} {
				if !reflect.DeepEqual(c.before, c.is) {
					f = append(f, resource.Errorf(CodeImmutableProperty, "properties."+c.field, "an image definition's %s cannot change (it was %v)", c.field, c.before))
				}
			}
			if len(f) > 0 {
				return nil, resource.Join(CodeImmutableProperty, "the image definition cannot change this way", f)
			}
		}
	}
	id, err := resource.Parse(next.ID)
	if err != nil {
		return nil, err
	}
	siblings, err := store.ListAll(ctx, tx, store.ListQuery{Scopes: []resource.ID{id.Parent()}, Type: TypeDefinition})
	if err != nil {
		return nil, err
	}
	for _, sib := range siblings {
		if strings.EqualFold(sib.ID, next.ID) {
			continue
		}
		var sp DefinitionProperties
		if json.Unmarshal(sib.Properties, &sp) == nil && strings.EqualFold(sp.Identifier.Publisher, p.Identifier.Publisher) &&
			strings.EqualFold(sp.Identifier.Offer, p.Identifier.Offer) && strings.EqualFold(sp.Identifier.SKU, p.Identifier.SKU) {
			return nil, resource.Errorf(CodeIdentifierConflict, "properties.identifier", "image definition %s already has publisher %q, offer %q and sku %q in this gallery",
				sib.Name, p.Identifier.Publisher, p.Identifier.Offer, p.Identifier.SKU)
		}
	}
	p.ProvisioningState = ProvisioningSucceeded
	next.Properties = marshalProps(p)
	return next, nil
}

func (s *Service) checkVersion(ctx context.Context, tx store.Tx, old, next *resource.Resource) (*resource.Resource, error) {
	if _, err := ParseVersion(next.Name); err != nil {
		return nil, resource.Errorf(resource.CodeInvalidResourceID, "name", "image version name: %v", err)
	}
	p, err := ParseVersionProperties(next.Properties, func(n string) bool { _, ok := s.regions[n]; return ok })
	if err != nil {
		return nil, err
	}
	pp := &p.PublishingProfile
	if len(pp.TargetRegions) == 0 {
		pp.TargetRegions = []TargetRegion{{Name: s.Home()}}
	}
	if pp.ReplicaCount == 0 {
		pp.ReplicaCount = 1
	}
	for i := range pp.TargetRegions {
		if pp.TargetRegions[i].RegionalReplicaCount == 0 {
			pp.TargetRegions[i].RegionalReplicaCount = pp.ReplicaCount
		}
	}
	disk := p.StorageProfile.OSDiskImage
	d := blob.Digest(disk.SHA256)
	var prev *ReplicationStatus
	if old == nil {
		first := s.regions[pp.TargetRegions[0].Name]
		got, err := first.Size(ctx, blob.ArtifactKey(d, 0))
		switch {
		case err != nil && !isNotFound(err):
			return nil, err
		case err != nil:
			return nil, resource.Errorf(CodeArtifactNotFound, "properties.storageProfile.osDiskImage.sha256",
				"no artifact with SHA-256 %s is in region %s, the version's first target region; upload it first (gild image publish does both)", d, first.Name)
		case got != disk.SizeInBytes:
			return nil, resource.Errorf(CodeArtifactNotFound, "properties.storageProfile.osDiskImage.sizeInBytes",
				"the artifact with SHA-256 %s in region %s has %d bytes, not %d", d, first.Name, got, disk.SizeInBytes)
		}
		now := s.now().UTC()
		pp.PublishedDate = &now
		p.ProvisioningState = ProvisioningSucceeded
		p.Lifecycle = &Lifecycle{State: StateActive, Since: now}
	} else {
		var was VersionProperties
		if err := json.Unmarshal(old.Properties, &was); err != nil {
			return nil, fmt.Errorf("read image version %s: %w", old.ID, err)
		}
		wd := *was.StorageProfile.OSDiskImage
		if disk.SHA256 != wd.SHA256 || disk.SizeInBytes != wd.SizeInBytes || disk.Format != wd.Format || !reflect.DeepEqual(p.StorageProfile.Source, was.StorageProfile.Source) {
			return nil, resource.Errorf(CodeImmutableProperty, "properties.storageProfile",
				"an image version's disk and source cannot change; publish a new version instead")
		}
		disk.HostCaching = wd.HostCaching
		pp.PublishedDate = was.PublishingProfile.PublishedDate
		p.ProvisioningState = was.ProvisioningState
		p.Lifecycle = was.Lifecycle
		prev = was.ReplicationStatus
	}
	held, err := s.held(ctx, d, disk.SizeInBytes, pp.TargetRegions)
	if err != nil {
		return nil, err
	}
	p.ReplicationStatus = regionStatuses(pp.TargetRegions, held, prev)
	if old == nil {
		id, _ := resource.Parse(next.ID)
		v, _ := ParseVersion(next.Name)
		if states, err := s.siblingStates(ctx, tx, id, &Entry{ID: next.ID, Version: v, Props: p}); err == nil {
			if l, ok := states[next.Name]; ok {
				p.Lifecycle.State, p.Lifecycle.Reason = l.State, l.Reason
			}
		}
	}
	next.Properties = marshalProps(p)
	return next, nil
}

// siblingStates computes the lifecycle of the versions of id's definition, with extra (if
// not nil) among them as about to be stored.
func (s *Service) siblingStates(ctx context.Context, r store.Reader, id resource.ID, extra *Entry) (map[string]Lifecycle, error) {
	dp, err := definitionOf(ctx, r, id.Parent())
	if err != nil {
		return nil, err
	}
	vers, err := versionsOf(ctx, r, id.Parent())
	if err != nil {
		return nil, err
	}
	if extra != nil {
		vers = append(vers, *extra)
	}
	return States(dp, vers, s.now()), nil
}

func isNotFound(err error) bool { return errors.Is(err, blob.ErrNotFound) }

// imageReference is the part of a VM the gallery looks at.
type imageReference struct {
	ID           string `json:"id"`
	ExactVersion string `json:"exactVersion"`
}

func vmImage(raw json.RawMessage) (imageReference, map[string]any) {
	var props map[string]any
	_ = json.Unmarshal(raw, &props)
	var ref imageReference
	sp, _ := props["storageProfile"].(map[string]any)
	ir, _ := sp["imageReference"].(map[string]any)
	ref.ID, _ = ir["id"].(string)
	ref.ExactVersion, _ = ir["exactVersion"].(string)
	return ref, props
}

// admitVM resolves a VM's gallery image reference when the VM is created or its image
// changes: a definition ID resolves to latest in the home region, an end-of-life version
// is refused, and exactVersion records what the VM got.
func (s *Service) admitVM(ctx context.Context, tx store.Tx, old, next *resource.Resource) (*resource.Resource, error) {
	ref, props := vmImage(next.Properties)
	if ref.ID == "" {
		return next, nil
	}
	id, err := resource.Parse(ref.ID)
	if err != nil {
		return next, nil // not a gallery image: the policy engine judges it
	}
	if old != nil {
		if was, _ := vmImage(old.Properties); strings.EqualFold(was.ID, ref.ID) && (ref.ExactVersion == "" || ref.ExactVersion == was.ExactVersion) {
			return next, nil // the image did not change: existing VMs keep running on old versions
		}
	}
	const target = "properties.storageProfile.imageReference.id"
	var def resource.ID
	var want string
	switch {
	case strings.EqualFold(id.Type(), TypeVersion):
		def, want = id.Parent(), id.Name()
	case strings.EqualFold(id.Type(), TypeDefinition):
		def, want = id, "latest"
	default:
		return next, nil
	}
	res, err := s.resolve(ctx, tx, def, want, "")
	if err != nil {
		if re, ok := err.(*resource.Error); ok {
			re.Target = target
		}
		return nil, err
	}
	if res.Lifecycle == StateEndOfLife {
		return nil, resource.Errorf(CodeVersionEndOfLife, target, "image version %s has reached its end of life; new VMs cannot use it (use %s or a newer version)", res.ID, def.String())
	}
	sp, _ := props["storageProfile"].(map[string]any)
	ir, _ := sp["imageReference"].(map[string]any)
	ir["exactVersion"] = res.Version
	raw, err := json.Marshal(props)
	if err != nil {
		return nil, err
	}
	next.Properties = raw
	return next, nil
}

// BeforeDelete refuses to delete an image version that VMs use before its end of life,
// unless the delete is forced, and names the VMs.
func (s *Service) BeforeDelete(ctx context.Context, tx store.Tx, _ *resource.Hierarchy, victim *resource.Resource) error {
	if !strings.EqualFold(victim.Type, TypeVersion) || forced(ctx) {
		return nil
	}
	id, err := resource.Parse(victim.ID)
	if err != nil {
		return err
	}
	states, err := s.siblingStates(ctx, tx, id, nil)
	if err == nil && states[victim.Name].State == StateEndOfLife {
		return nil
	}
	users, err := s.vmsUsing(ctx, tx, id)
	if err != nil {
		return err
	}
	if len(users) == 0 {
		return nil
	}
	shown := users
	more := ""
	if len(shown) > 10 {
		shown, more = shown[:10], fmt.Sprintf(" and %d more", len(users)-10)
	}
	return resource.Errorf(CodeVersionInUse, victim.ID, "image version %s is used by %d VMs and has not reached its end of life: %s%s; delete with forceDeletion=true to remove it anyway",
		victim.Name, len(users), strings.Join(shown, ", "), more)
}

// vmsUsing lists the IDs of the VMs whose image is version v.
func (s *Service) vmsUsing(ctx context.Context, r store.Reader, v resource.ID) ([]string, error) {
	vms, err := store.ListAll(ctx, r, store.ListQuery{Type: TypeVM})
	if err != nil {
		return nil, err
	}
	def := v.Parent().String()
	var out []string
	for _, vm := range vms {
		ref, _ := vmImage(vm.Properties)
		if strings.EqualFold(ref.ID, v.String()) || (strings.EqualFold(ref.ID, def) && ref.ExactVersion == v.Name()) {
			out = append(out, vm.ID)
		}
	}
	return out, nil
}
