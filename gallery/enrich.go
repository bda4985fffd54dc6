package gallery

import (
	"context"
	"math"
	"strings"
	"time"

	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// policyState is how policies name a lifecycle state (gild's built-in definitions compare
// with these).
var policyState = map[string]string{StateActive: "Active", StateAged: "Aged", StateDeprecated: "Deprecated", StateEndOfLife: "EndOfLife"}

// Enrich adds to a VM document, under properties.gild.image, the facts about its gallery
// image that policies test: the definition and version, the version's lifecycle state, how
// many newer versions offered as latest exist, days since it was published and days past
// (negative: until) its end of life. It reads the gallery's index, not r, so that a scan of
// many VMs costs a map lookup each.
func (s *Service) Enrich(_ context.Context, _ store.Reader, doc map[string]any, now time.Time) error {
	typ, _ := doc["type"].(string)
	if !strings.EqualFold(typ, TypeVM) {
		return nil
	}
	props, _ := doc["properties"].(map[string]any)
	sp, _ := props["storageProfile"].(map[string]any)
	ir, _ := sp["imageReference"].(map[string]any)
	ref, _ := ir["id"].(string)
	if ref == "" {
		return nil
	}
	id, err := resource.Parse(ref)
	if err != nil {
		return nil
	}
	version, _ := ir["exactVersion"].(string)
	def := id
	if strings.EqualFold(id.Type(), TypeVersion) {
		def, version = id.Parent(), id.Name()
	} else if !strings.EqualFold(id.Type(), TypeDefinition) {
		return nil
	}
	d := s.idx.Load().def(def.String())
	if d == nil || version == "" {
		return nil
	}
	var mine *Entry
	behind := 0
	for i, e := range d.versions { // newest first
		if e.Version.String() == version {
			mine = &d.versions[i]
			break
		}
		if e.Props.ProvisioningState == ProvisioningSucceeded && !e.Props.PublishingProfile.ExcludeFromLatest {
			behind++
		}
	}
	if mine == nil {
		return nil
	}
	img := map[string]any{"definitionId": d.id.String(), "version": version, "versionsBehind": int64(behind)}
	states := States(d.props, d.versions, now)
	if st, ok := states[version]; ok {
		img["lifecycleState"] = policyState[st.State]
	}
	if pub := mine.published(); !pub.IsZero() {
		img["ageDays"] = int64(math.Floor(now.Sub(pub).Hours() / 24))
	}
	if eol := endOfLifeDate(d.props, *mine); !eol.IsZero() {
		img["daysPastEndOfLife"] = int64(math.Floor(now.Sub(eol).Hours() / 24))
	}
	g, _ := props["gild"].(map[string]any)
	if g == nil {
		g = map[string]any{}
		props["gild"] = g
	}
	g["image"] = img
	return nil
}

// endOfLifeDate is when version e's life ends, or zero when it has no end.
func endOfLifeDate(def *DefinitionProperties, e Entry) time.Time {
	if d := e.Props.PublishingProfile.EndOfLifeDate; d != nil {
		return *d
	}
	if def != nil && def.EndOfLifeDate != nil {
		return *def.EndOfLifeDate
	}
	if def != nil && def.LifecyclePolicy != nil && def.LifecyclePolicy.EndOfLifeAfterDays > 0 && !e.published().IsZero() {
		return e.published().Add(time.Duration(def.LifecyclePolicy.EndOfLifeAfterDays) * day)
	}
	return time.Time{}
}
