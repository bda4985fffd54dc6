package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gildhq/gild/gallery"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// DefaultCycleDays is the refresh cycle when a scope sets none: cattle older than this are
// rebuilt.
const DefaultCycleDays = 30

// CycleTag, on a resource group or subscription, sets the refresh cycle of the cattle in it,
// in days.
const CycleTag = "refreshCycleDays"

// RefreshOptions say what a refresh of a scope does.
type RefreshOptions struct {
	// CycleDays: cattle older than this many days are due. When zero, each VM's cycle is
	// its scope's: the tag CycleTag on its resource group, else on its subscription, else
	// DefaultCycleDays.
	CycleDays int `json:"cycleDays,omitempty"`
	// MaxUnavailable is how many VMs may be replaced at once; 1 when zero.
	MaxUnavailable int `json:"maxUnavailable,omitempty"`
	// DryRun reports what is due and replaces nothing.
	DryRun bool `json:"dryRun,omitempty"`
}

// RefreshItem is one VM in a refresh report.
type RefreshItem struct {
	ID           string   `json:"id"`
	ServiceModel string   `json:"serviceModel,omitempty"`
	Reason       string   `json:"reason,omitempty"`
	Reasons      []string `json:"reasons,omitempty"`
	FromVersion  string   `json:"fromVersion,omitempty"`
	ToVersion    string   `json:"toVersion,omitempty"`
	Error        string   `json:"error,omitempty"`
}

// RefreshReport is what a refresh found and did.
type RefreshReport struct {
	Scope     string        `json:"scope"`
	CycleDays int           `json:"cycleDays,omitempty"` // the cycle asked for; 0: each scope's own
	Due       []RefreshItem `json:"due"`                 // cattle due for replacement
	Replaced  []RefreshItem `json:"replaced"`            // cattle replaced by this refresh
	Pets      []RefreshItem `json:"pets"`                // pets that would be due, were they cattle: reported, never replaced
	Failed    []RefreshItem `json:"failed"`
}

// ResourceWriter writes resources through the control plane, hooks and policies included
// (controlplane.SystemWriter).
type ResourceWriter interface {
	Put(ctx context.Context, r *resource.Resource) error
	Delete(ctx context.Context, id resource.ID) error
}

// Refresher replaces due cattle with new VMs from their image's latest version.
type Refresher struct {
	Store   store.Store
	Gallery *gallery.Service
	Writer  ResourceWriter
	// Ready waits until a new VM is up; nil waits for its provisioningState to be
	// Succeeded. It should also wait for the VM's agent to report.
	Ready func(ctx context.Context, id resource.ID) error
	// ReadyTimeout bounds the wait for one VM; 10 minutes when zero.
	ReadyTimeout time.Duration
	Now          func() time.Time
}

// refreshCandidate is a VM with what makes it due.
type refreshCandidate struct {
	r       *resource.Resource
	model   string
	reasons []string
	version string
}

// serviceModelOf reads the serviceModel tag, case-insensitively.
func serviceModelOf(r *resource.Resource) string {
	for k, v := range r.Tags {
		if strings.EqualFold(k, "serviceModel") {
			return strings.ToLower(v)
		}
	}
	return ""
}

// scopeCycle is the refresh cycle of the scope a VM is in: the CycleTag of its resource
// group, else of its subscription, else DefaultCycleDays.
func (f *Refresher) scopeCycle(ctx context.Context, r *resource.Resource, cache map[string]int) int {
	id, err := resource.Parse(r.ID)
	if err != nil {
		return DefaultCycleDays
	}
	for _, scope := range []resource.ID{resource.ResourceGroupID(id.Subscription, id.ResourceGroup), resource.SubscriptionID(id.Subscription)} {
		if id.ResourceGroup == "" && scope.Kind() == resource.KindResourceGroup {
			continue
		}
		days, seen := cache[scope.Key()]
		if !seen {
			days = 0
			if sr, err := f.Store.Get(ctx, scope); err == nil {
				for k, v := range sr.Tags {
					if n, err := strconv.Atoi(strings.TrimSpace(v)); strings.EqualFold(k, CycleTag) && err == nil && n > 0 {
						days = n
					}
				}
			}
			cache[scope.Key()] = days
		}
		if days > 0 {
			return days
		}
	}
	return DefaultCycleDays
}

// dueReasons says why a VM is due for replacement: older than the cycle, or on an image
// version that is no longer current (aged, deprecated, past its end of life, or behind
// the latest).
func (f *Refresher) dueReasons(ctx context.Context, r *resource.Resource, cycle int, now time.Time) ([]string, string) {
	var reasons []string
	if r.SystemData != nil && !r.SystemData.CreatedAt.IsZero() {
		age := int(math.Floor(now.Sub(r.SystemData.CreatedAt).Hours() / 24))
		if age > cycle {
			reasons = append(reasons, fmt.Sprintf("built %d days ago, more than the %d-day cycle", age, cycle))
		}
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return reasons, ""
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return reasons, ""
	}
	if f.Gallery == nil {
		return reasons, ""
	}
	if err := f.Gallery.Enrich(ctx, f.Store, doc, now); err != nil {
		return reasons, ""
	}
	props, _ := doc["properties"].(map[string]any)
	g, _ := props["gild"].(map[string]any)
	img, _ := g["image"].(map[string]any)
	if img == nil {
		return reasons, ""
	}
	version, _ := img["version"].(string)
	state, _ := img["lifecycleState"].(string)
	behind, _ := img["versionsBehind"].(int64)
	switch {
	case state != "" && state != "Active" && behind > 0:
		reasons = append(reasons, fmt.Sprintf("its image version %s is %s, %d behind the latest", version, state, behind))
	case state != "" && state != "Active":
		reasons = append(reasons, fmt.Sprintf("its image version %s is %s", version, state))
	case behind > 0:
		reasons = append(reasons, fmt.Sprintf("its image version %s is %d behind the latest", version, behind))
	}
	return reasons, version
}

// Refresh finds the cattle under scope that are due and, unless opts.DryRun, replaces them:
// each is deleted and created again with the same name, size, tags, OS profile and
// machine-configuration assignments, from its image definition's latest version, at most
// opts.MaxUnavailable at a time. Pets are only reported.
func (f *Refresher) Refresh(ctx context.Context, scope resource.ID, opts RefreshOptions) (RefreshReport, error) {
	now := time.Now()
	if f.Now != nil {
		now = f.Now()
	}
	if opts.CycleDays < 0 || opts.MaxUnavailable < 0 {
		return RefreshReport{}, resource.Errorf(resource.CodeInvalidParameter, "cycleDays", "cycleDays and maxUnavailable must not be negative")
	}
	cycles := map[string]int{} // scope key → its cycle, read once per refresh
	if opts.MaxUnavailable == 0 {
		opts.MaxUnavailable = 1
	}
	rep := RefreshReport{Scope: scope.String(), CycleDays: opts.CycleDays, Due: []RefreshItem{}, Replaced: []RefreshItem{}, Pets: []RefreshItem{}, Failed: []RefreshItem{}}
	vms, err := store.ListAll(ctx, f.Store, store.ListQuery{Scopes: []resource.ID{scope}, Type: gallery.TypeVM})
	if err != nil {
		return rep, fmt.Errorf("refresh %s: %w", scope, err)
	}
	var due []refreshCandidate
	for _, r := range vms {
		cycle := opts.CycleDays
		if cycle == 0 {
			cycle = f.scopeCycle(ctx, r, cycles)
		}
		reasons, version := f.dueReasons(ctx, r, cycle, now)
		if len(reasons) == 0 {
			continue
		}
		model := serviceModelOf(r)
		switch model {
		case "cattle":
			due = append(due, refreshCandidate{r: r, model: model, reasons: reasons, version: version})
			rep.Due = append(rep.Due, RefreshItem{ID: r.ID, ServiceModel: model, Reason: strings.Join(reasons, "; "), Reasons: reasons, FromVersion: version})
		default:
			// Pets, and VMs without the tag, are never replaced: someone looks after them.
			rep.Pets = append(rep.Pets, RefreshItem{ID: r.ID, ServiceModel: model, Reasons: reasons, FromVersion: version})
		}
	}
	if opts.DryRun || len(due) == 0 {
		return rep, nil
	}
	var mu sync.Mutex
	sem := make(chan struct{}, opts.MaxUnavailable)
	var wg sync.WaitGroup
	for _, c := range due {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return rep, ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			to, err := f.replace(ctx, c.r)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				rep.Failed = append(rep.Failed, RefreshItem{ID: c.r.ID, ServiceModel: c.model, FromVersion: c.version, Error: err.Error()})
				return
			}
			rep.Replaced = append(rep.Replaced, RefreshItem{ID: c.r.ID, ServiceModel: c.model, FromVersion: c.version, ToVersion: to, Reason: strings.Join(c.reasons, "; ")})
		}()
	}
	wg.Wait()
	sort.Slice(rep.Replaced, func(i, j int) bool { return rep.Replaced[i].ID < rep.Replaced[j].ID })
	sort.Slice(rep.Failed, func(i, j int) bool { return rep.Failed[i].ID < rep.Failed[j].ID })
	return rep, nil
}

// serverSet are the VM properties the server sets, left out of the replacement's body.
var serverSet = []string{"vmId", "provisioningState", "provisioningError", "gild", "instanceView"}

// replace deletes r and creates it again from its definition's latest version. It returns
// the version the new VM runs.
func (f *Refresher) replace(ctx context.Context, r *resource.Resource) (string, error) {
	id, err := resource.Parse(r.ID)
	if err != nil {
		return "", err
	}
	var props map[string]any
	if err := json.Unmarshal(r.Properties, &props); err != nil {
		return "", fmt.Errorf("replace %s: %w", id, err)
	}
	for _, k := range serverSet {
		delete(props, k)
	}
	sp, _ := props["storageProfile"].(map[string]any)
	ir, _ := sp["imageReference"].(map[string]any)
	ref, _ := ir["id"].(string)
	imageID, err := resource.Parse(ref)
	if err != nil {
		return "", fmt.Errorf("replace %s: its image reference %q: %w", id, ref, err)
	}
	if strings.EqualFold(imageID.Type(), gallery.TypeVersion) {
		imageID = imageID.Parent()
	}
	// The definition, not a version: the gallery's admission picks the latest.
	sp["imageReference"] = map[string]any{"id": imageID.String()}
	body, err := json.Marshal(props)
	if err != nil {
		return "", err
	}
	assignments, err := store.ListAll(ctx, f.Store, store.ListQuery{Scopes: []resource.ID{id}, Type: "Microsoft.GuestConfiguration/guestConfigurationAssignments"})
	if err != nil {
		return "", fmt.Errorf("replace %s: %w", id, err)
	}
	if err := f.Writer.Delete(ctx, id); err != nil {
		return "", fmt.Errorf("replace %s: delete the old VM: %w", id, err)
	}
	next := &resource.Resource{ID: r.ID, Name: r.Name, Type: r.Type, Location: r.Location, Tags: r.Tags, Zones: r.Zones, Properties: body}
	if err := f.Writer.Put(ctx, next); err != nil {
		return "", fmt.Errorf("replace %s: create the new VM (the old one is gone): %w", id, err)
	}
	var errs []error
	for _, a := range assignments {
		var ap map[string]any
		_ = json.Unmarshal(a.Properties, &ap)
		keep := map[string]any{}
		if gc, ok := ap["guestConfiguration"]; ok {
			keep["guestConfiguration"] = gc
		}
		raw, _ := json.Marshal(keep)
		if err := f.Writer.Put(ctx, &resource.Resource{ID: a.ID, Name: a.Name, Type: a.Type, Properties: raw}); err != nil {
			errs = append(errs, fmt.Errorf("assignment %s: %w", a.ID, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("replace %s: restore its machine configuration: %w", id, err)
	}
	if err := f.waitReady(ctx, id); err != nil {
		return "", fmt.Errorf("replace %s: %w", id, err)
	}
	created, err := f.Store.Get(ctx, id)
	if err != nil {
		return "", err
	}
	var now map[string]any
	_ = json.Unmarshal(created.Properties, &now)
	sp, _ = now["storageProfile"].(map[string]any)
	ir, _ = sp["imageReference"].(map[string]any)
	v, _ := ir["exactVersion"].(string)
	return v, nil
}

// waitReady waits for a new VM to be up.
func (f *Refresher) waitReady(ctx context.Context, id resource.ID) error {
	timeout := f.ReadyTimeout
	if timeout == 0 {
		timeout = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if f.Ready != nil {
		if err := f.Ready(ctx, id); err != nil {
			return fmt.Errorf("the new VM did not become ready within %s: %w", timeout, err)
		}
		return nil
	}
	for {
		r, err := f.Store.Get(ctx, id)
		if err == nil {
			var p struct {
				ProvisioningState string `json:"provisioningState"`
				ProvisioningError *struct {
					Message string `json:"message"`
				} `json:"provisioningError"`
			}
			_ = json.Unmarshal(r.Properties, &p)
			switch p.ProvisioningState {
			case "Succeeded":
				return nil
			case "Failed":
				msg := "no reason given"
				if p.ProvisioningError != nil {
					msg = p.ProvisioningError.Message
				}
				return fmt.Errorf("the new VM failed to start: %s", msg)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the new VM did not start within %s", timeout)
		case <-time.After(time.Second):
		}
	}
}
