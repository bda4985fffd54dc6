package fleet

import (
	"context"
	"math"
	"strings"
	"time"

	"github.com/gildhq/gild/store"
)

// tattooFields are the tattoo's fields policies see, under properties.gild.tattoo.
var tattooFields = []string{"imageDefinition", "imageVersion", "sourcePublisher", "sourceOffer", "sourceSku", "buildDate"}

// Enrich adds to a VM's or hybrid machine's document what its agent reported, for
// policies (compliance.Enricher): properties.gild.tattoo.*, properties.gild.agent.{status,
// lastHeartbeat, version, kernel, osName, osVersion, lastBoot}, properties.gild.ageDays
// (since the resource was created) and, when the gallery enricher has placed the declared
// image under properties.gild.image, properties.gild.tattooMatchesImage. It must run after
// the gallery's enricher.
func (s *Service) Enrich(_ context.Context, _ store.Reader, doc map[string]any, now time.Time) error {
	typ, _ := doc["type"].(string)
	if !IsMachineType(typ) {
		return nil
	}
	id, _ := doc["id"].(string)
	props, _ := doc["properties"].(map[string]any)
	if props == nil {
		props = map[string]any{}
		doc["properties"] = props
	}
	g, _ := props["gild"].(map[string]any)
	if g == nil {
		g = map[string]any{}
		props["gild"] = g
	}
	if sd, ok := doc["systemData"].(map[string]any); ok {
		if created, ok := sd["createdAt"].(string); ok {
			if t, err := time.Parse(time.RFC3339Nano, created); err == nil {
				g["ageDays"] = int64(math.Floor(now.Sub(t).Hours() / 24))
			}
		}
	}
	s.mu.Lock()
	m := s.machines[strings.ToLower(id)]
	var (
		state  string
		seen   time.Time
		facts  = m.factsOrZero()
		tattoo map[string]any
	)
	if m != nil {
		state, seen, tattoo = s.state(m, now), m.lastSeen, m.tattoo
	}
	s.mu.Unlock()
	if m == nil {
		g["agent"] = map[string]any{"status": "NotEnrolled"}
		return nil
	}
	agent := map[string]any{"status": state, "version": facts.AgentVersion, "kernel": facts.Kernel,
		"osName": facts.OSRelease["ID"], "osVersion": facts.OSRelease["VERSION_ID"]}
	if !seen.IsZero() {
		agent["lastHeartbeat"] = seen.UTC().Format(time.RFC3339)
		agent["minutesSinceHeartbeat"] = int64(now.Sub(seen) / time.Minute)
	}
	if !facts.BootTime.IsZero() {
		agent["lastBoot"] = facts.BootTime.UTC().Format(time.RFC3339)
	}
	g["agent"] = agent
	if tattoo == nil {
		return nil
	}
	t := map[string]any{}
	for _, f := range tattooFields {
		if v, ok := tattoo[f]; ok {
			t[f] = v
		}
	}
	g["tattoo"] = t
	if img, ok := g["image"].(map[string]any); ok {
		def, _ := img["definitionId"].(string)
		ver, _ := img["version"].(string)
		td, _ := t["imageDefinition"].(string)
		tv, _ := t["imageVersion"].(string)
		g["tattooMatchesImage"] = strings.EqualFold(def, td) && ver == tv
	}
	return nil
}
