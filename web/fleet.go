package web

import (
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gildhq/gild/controlplane"
	"github.com/gildhq/gild/fleet"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
	"github.com/gildhq/gild/vm"
)

// fleetData is what the pets-and-cattle page shows.
type fleetData struct {
	// Runtime says the server runs VMs: due cattle are rebuilt by its refresh schedule or
	// by "gild vm refresh"; without it they are only listed.
	Runtime     bool
	SyncProblem string
	Cattle      int
	Due         int
	Pets        int
	PetsBad     int
	Untagged    int

	CattleList, PetList, Teams *table
}

// teamCounts are one team's figures.
type teamCounts struct{ cattle, due, pets, petsBad, untagged int64 }

// fleetMachines lists the VMs and enrolled machines the caller may read. A caller who may
// read nothing anywhere has none.
func (h *Handler) fleetMachines(r *request) ([]*resource.Resource, error) {
	var out []*resource.Resource
	for _, typ := range []string{fleet.TypeVM, fleet.TypeHybrid} {
		req := controlplane.ListRequest{Scope: resource.Root, Type: typ, Limit: store.MaxPageSize}
		for {
			page, err := h.cp.List(r.ctx, r.caller, req)
			if isNotFound(err) {
				break
			}
			if err != nil {
				return nil, err
			}
			out = append(out, page.Items...)
			if page.Next == "" {
				break
			}
			req.After = page.Next
		}
	}
	return out, nil
}

// refreshPlan is a dry run of the refresh of every VM: which cattle are due and why, and
// which pets would be, were they cattle. The server's refresher is used when it runs VMs;
// otherwise the same plan is made over the records (a dry run replaces nothing, so it needs
// no runtime).
func (h *Handler) refreshPlan(r *request) (vm.RefreshReport, error) {
	f := h.opts.Refresher
	if f == nil {
		f = &vm.Refresher{Store: h.cp.Store(), Gallery: h.opts.Gallery, Now: func() time.Time { return r.now }}
	}
	return f.Refresh(r.ctx, resource.Root, vm.RefreshOptions{DryRun: true})
}

// refreshCycle is the refresh cycle of a VM's cattle, as the refresher reads it: the
// refreshCycleDays tag of its resource group, else of its subscription, else the default.
func (h *Handler) refreshCycle(r *request, id resource.ID, cache map[string]int) int {
	scopes := []resource.ID{resource.SubscriptionID(id.Subscription)}
	if id.ResourceGroup != "" {
		scopes = append([]resource.ID{resource.ResourceGroupID(id.Subscription, id.ResourceGroup)}, scopes...)
	}
	for _, s := range scopes {
		days, seen := cache[s.Key()]
		if !seen {
			if sr, err := h.cp.Store().Get(r.ctx, s); err == nil {
				for k, v := range sr.Tags {
					if n, err := strconv.Atoi(strings.TrimSpace(v)); strings.EqualFold(k, vm.CycleTag) && err == nil && n > 0 {
						days = n
					}
				}
			}
			cache[s.Key()] = days
		}
		if days > 0 {
			return days
		}
	}
	return vm.DefaultCycleDays
}

func (h *Handler) fleetPage(r *request) (*view, error) {
	machines, err := h.fleetMachines(r)
	if err != nil {
		return nil, err
	}
	plan, err := h.refreshPlan(r)
	if err != nil {
		return nil, err
	}
	due := map[string]vm.RefreshItem{}
	for _, it := range plan.Due {
		due[strings.ToLower(it.ID)] = it
	}
	petReasons := map[string][]string{}
	for _, it := range plan.Pets {
		petReasons[strings.ToLower(it.ID)] = it.Reasons
	}
	d := &fleetData{Runtime: h.opts.Refresher != nil}
	if err := h.rollup.Sync(r.ctx); err != nil {
		h.log.Warn("dashboard: compliance roll-up", "err", err)
		d.SyncProblem = "Compliance may be out of date: " + err.Error()
	}

	d.CattleList = &table{Name: "cattle", Title: "Cattle", Empty: "No cattle here: no VM is tagged serviceModel=cattle.", Columns: []column{
		{Key: "name", Title: "Name"}, {Key: "team", Title: "Team", Filter: true}, {Key: "resourceGroup", Title: "Resource group"},
		{Key: "image", Title: "Image version"}, {Key: "versionsBehind", Title: "Versions behind", Numeric: true},
		{Key: "ageDays", Title: "Age (days)", Numeric: true}, {Key: "cycleDays", Title: "Refresh cycle (days)", Numeric: true},
		{Key: "due", Title: "Due for refresh", Filter: true}, {Key: "why", Title: "Why"}, {Key: "compliance", Title: "Compliance", Filter: true}}}
	d.PetList = &table{Name: "pets", Title: "Pets", Empty: "No pets here.", Columns: []column{
		{Key: "name", Title: "Name"}, {Key: "team", Title: "Team", Filter: true}, {Key: "resourceGroup", Title: "Resource group"},
		{Key: "serviceModel", Title: "Service model", Filter: true}, {Key: "type", Title: "Kind", Filter: true},
		{Key: "image", Title: "Image version"}, {Key: "versionsBehind", Title: "Versions behind", Numeric: true},
		{Key: "outOfDate", Title: "Out of date because"}, {Key: "compliance", Title: "Compliance", Filter: true},
		{Key: "agent", Title: "Agent", Filter: true}, {Key: "lastHeartbeat", Title: "Last heartbeat"}}}

	teams := map[string]*teamCounts{}
	team := func(name string) *teamCounts {
		if teams[name] == nil {
			teams[name] = &teamCounts{}
		}
		return teams[name]
	}
	cycles := map[string]int{}
	sort.Slice(machines, func(i, j int) bool { return strings.ToLower(machines[i].ID) < strings.ToLower(machines[j].ID) })
	for _, m := range machines {
		id, err := resource.Parse(m.ID)
		if err != nil {
			continue
		}
		g, err := h.enrichedGild(r.ctx, m, r.now)
		if err != nil {
			return nil, err
		}
		var props map[string]any
		_ = json.Unmarshal(m.Properties, &props)
		img := readImage(props, g)
		behind := text("—")
		if img.VersionsBehind != nil {
			behind = number(*img.VersionsBehind)
		}
		name := cell{Text: id.Name(), Href: resourceURL(m.ID), Title: m.ID}
		state := h.rollup.State(m.ID)
		compliance := stateCell(state)
		if state == "" {
			compliance = text("not evaluated")
		}
		tc := team(id.Subscription)
		isVM := strings.EqualFold(m.Type, fleet.TypeVM)
		model := serviceModelTag(m.Tags)
		if model == "cattle" {
			d.Cattle++
			tc.cattle++
			age := text("—")
			if a := intOf(g["ageDays"]); a != nil {
				age = number(*a)
			}
			cycle, dueCell, why := text("—"), text("no"), text("")
			if isVM {
				cycle = number(int64(h.refreshCycle(r, id, cycles)))
				if it, ok := due[strings.ToLower(m.ID)]; ok {
					d.Due++
					tc.due++
					dueCell = cell{Text: "yes", State: "pending"} // a warning badge
					why = text(it.Reason)
				}
			} else {
				dueCell, why = text("—"), text("an enrolled machine: gild does not rebuild it")
			}
			d.CattleList.Rows = append(d.CattleList.Rows, row{name, text(id.Subscription), text(id.ResourceGroup), imageVersionCell(img, g),
				behind, age, cycle, dueCell, why, compliance})
			continue
		}
		switch {
		case model == "pet" && state == store.StateNonCompliant:
			d.PetsBad++
			tc.petsBad++
			fallthrough
		case model == "pet":
			d.Pets++
			tc.pets++
		default:
			// Without the tag (or with another value) a machine is never rebuilt: it is
			// audited as a pet, and counted apart.
			if model == "" {
				model = "untagged"
			}
			d.Untagged++
			tc.untagged++
		}
		kind := "VM"
		if !isVM {
			kind = "enrolled machine"
		}
		ag := readAgent(g)
		agent := stateCell(ag.Status)
		heartbeat := text("never")
		if !ag.LastHeartbeat.IsZero() {
			heartbeat = cell{Text: formatTime(ag.LastHeartbeat), Title: ago(r.now, ag.LastHeartbeat)}
		}
		d.PetList.Rows = append(d.PetList.Rows, row{name, text(id.Subscription), text(id.ResourceGroup), text(model), text(kind),
			imageVersionCell(img, g), behind, text(strings.Join(petReasons[strings.ToLower(m.ID)], "; ")), compliance, agent, heartbeat})
	}

	d.Teams = &table{Name: "teams", Title: "Per team", Empty: "There is no VM or machine here that you may see.", Columns: []column{
		{Key: "team", Title: "Team (subscription)"}, {Key: "cattle", Title: "Cattle", Numeric: true},
		{Key: "due", Title: "Cattle due for refresh", Numeric: true}, {Key: "pets", Title: "Pets", Numeric: true},
		{Key: "petsNonCompliant", Title: "Pets non-compliant", Numeric: true}, {Key: "untagged", Title: "Without a pet or cattle tag", Numeric: true}}}
	names := slices.Sorted(maps.Keys(teams))
	for _, n := range names {
		c := teams[n]
		d.Teams.Rows = append(d.Teams.Rows, row{link(n, scopeURL(resource.SubscriptionID(n).String())), number(c.cattle), number(c.due),
			number(c.pets), number(c.petsBad), number(c.untagged)})
	}
	return &view{Template: "fleet", Title: "Pets and cattle", Nav: "fleet", Data: d, Tables: []*table{d.Teams, d.CattleList, d.PetList}}, nil
}
