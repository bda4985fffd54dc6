package compliance

import (
	"context"
	"math"
	"strings"
	"time"

	"github.com/gildhq/gild/store"
)

// Enricher adds derived fields under properties.gild of a resource document before it is
// evaluated, where gild's own aliases (Gild.Compute/virtualMachines/image.lifecycleState,
// tattoo.imageVersion, ...) find them. The gallery adds image lifecycle data, the agent's
// reports add the tattoo; what an enricher adds is never stored with the resource.
type Enricher func(ctx context.Context, r store.Reader, doc map[string]any, now time.Time) error

// gildProperties returns the properties.gild object of doc, creating it.
func gildProperties(doc map[string]any) map[string]any {
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
	return g
}

// enrichServiceModel derives what the resource itself says: its service model (from the
// serviceModel tag) and, for cattle, the days since it was last rebuilt (created anew).
func enrichServiceModel(_ context.Context, _ store.Reader, doc map[string]any, now time.Time) error {
	typ, _ := doc["type"].(string)
	if !strings.EqualFold(typ, "Microsoft.Compute/virtualMachines") && !strings.EqualFold(typ, "Microsoft.HybridCompute/machines") {
		return nil
	}
	g := gildProperties(doc)
	if tags, ok := doc["tags"].(map[string]any); ok {
		for k, v := range tags {
			if strings.EqualFold(k, "serviceModel") {
				if s, ok := v.(string); ok {
					g["serviceModel"] = strings.ToLower(s)
				}
			}
		}
	}
	if sd, ok := doc["systemData"].(map[string]any); ok {
		if created, ok := sd["createdAt"].(string); ok {
			if t, err := time.Parse(time.RFC3339Nano, created); err == nil && strings.EqualFold(typ, "Microsoft.Compute/virtualMachines") {
				g["refresh"] = map[string]any{"ageDays": int64(math.Floor(now.Sub(t).Hours() / 24))}
			}
		}
	}
	return nil
}
