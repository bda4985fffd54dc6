package web

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gildhq/gild/api"
	"github.com/gildhq/gild/controlplane"
	"github.com/gildhq/gild/gallery"
	"github.com/gildhq/gild/pipeline"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// The Images pages: galleries, image definitions and versions with their lifecycle state
// (as package gallery computes it now) and replication per region, the VMs on each
// version and whose they are, and the pipelines (image templates) with their runs. All of
// it is read as the caller, so a team sees only what its role assignments allow, and VM
// counts count only the VMs the caller may see.

// imgLogTail is how much of a run's log the run page shows unless asked for all of it;
// imgLogMax caps "all of it".
const (
	imgLogTail = 64 << 10
	imgLogMax  = 16 << 20
)

// imgRunFiles are the files of a run the run page shows, as the API serves them.
var imgRunFiles = []string{"run.log", "console.log"}

// lifecycleNames are the lifecycle states as policies and people name them.
var lifecycleNames = map[string]string{
	gallery.StateActive: "Active", gallery.StateAged: "Aged", gallery.StateDeprecated: "Deprecated", gallery.StateEndOfLife: "EndOfLife",
}

// imgVersion is one image version with what the pages say about it.
type imgVersion struct {
	res   *resource.Resource
	id    resource.ID
	props gallery.VersionProperties
	// parsed is false for a version whose name or properties could not be read.
	parsed    bool
	entry     gallery.Entry
	lifecycle gallery.Lifecycle
	hasState  bool // provisioned, so it has a lifecycle state
	latest    bool
	vms       []*imgVM
}

// imgDef is one image definition (or, when the caller may read versions but not their
// definition, what is known of it) and its versions, newest first.
type imgDef struct {
	res      *resource.Resource // nil when the caller may not read it
	id       resource.ID
	props    *gallery.DefinitionProperties
	versions []*imgVersion
	latest   *imgVersion
	// noLatest says why no version qualifies as latest.
	noLatest string
}

// imgVM is a VM whose image is a gallery image.
type imgVM struct {
	res          *resource.Resource
	id           resource.ID
	ref          string // properties.storageProfile.imageReference.id
	exactVersion string // properties.storageProfile.imageReference.exactVersion
	versionKey   string // lower-cased ID of the version it runs
	provisioning string
}

// imgCatalog is the gallery as the caller sees it.
type imgCatalog struct {
	defs     []*imgDef
	defByKey map[string]*imgDef
	verByKey map[string]*imgVersion
	vms      []*imgVM
}

// imgList lists every resource of typ in scope that the caller may read, page by page. A
// caller with no role anywhere sees nothing at the root rather than an error.
func (h *Handler) imgList(r *request, scope resource.ID, typ string) ([]*resource.Resource, error) {
	var out []*resource.Resource
	after := ""
	for {
		page, err := h.cp.List(r.ctx, r.caller, controlplane.ListRequest{Scope: scope, Type: typ, Limit: store.MaxPageSize, After: after})
		if err != nil {
			if scope.IsRoot() && isNotFound(err) {
				return nil, nil
			}
			return nil, err
		}
		out = append(out, page.Items...)
		if page.Next == "" || len(page.Items) == 0 {
			return out, nil
		}
		after = page.Next
	}
}

// imgBuild reads definitions, versions and VMs into a catalog and works out each version's
// lifecycle state and which version is latest, at now.
func imgBuild(defs, versions, vms []*resource.Resource, now time.Time) *imgCatalog {
	c := &imgCatalog{defByKey: map[string]*imgDef{}, verByKey: map[string]*imgVersion{}}
	for _, d := range defs {
		id, err := resource.Parse(d.ID)
		if err != nil {
			continue
		}
		var p gallery.DefinitionProperties
		def := &imgDef{res: d, id: id}
		if json.Unmarshal(d.Properties, &p) == nil {
			def.props = &p
		}
		c.defs = append(c.defs, def)
		c.defByKey[id.Key()] = def
	}
	for _, v := range versions {
		id, err := resource.Parse(v.ID)
		if err != nil {
			continue
		}
		iv := &imgVersion{res: v, id: id}
		if json.Unmarshal(v.Properties, &iv.props) == nil {
			if n, err := gallery.ParseVersion(id.Name()); err == nil {
				iv.parsed = true
				iv.entry = gallery.Entry{ID: v.ID, Version: n, Props: &iv.props}
			}
		}
		dk := id.Parent().Key()
		def := c.defByKey[dk]
		if def == nil {
			def = &imgDef{id: id.Parent()}
			c.defs = append(c.defs, def)
			c.defByKey[dk] = def
		}
		def.versions = append(def.versions, iv)
		c.verByKey[id.Key()] = iv
	}
	for _, def := range c.defs {
		sort.SliceStable(def.versions, func(i, j int) bool {
			a, b := def.versions[i], def.versions[j]
			if a.parsed != b.parsed {
				return a.parsed
			}
			if a.parsed {
				return a.entry.Version.Compare(b.entry.Version) > 0
			}
			return a.id.Name() > b.id.Name()
		})
		var entries []gallery.Entry
		for _, v := range def.versions {
			if v.parsed {
				entries = append(entries, v.entry)
			}
		}
		states := gallery.States(def.props, entries, now)
		for _, v := range def.versions {
			if l, ok := states[v.id.Name()]; ok && v.parsed {
				v.lifecycle, v.hasState = l, true
				if v.props.Lifecycle != nil && v.props.Lifecycle.State == l.State {
					v.lifecycle.Since = v.props.Lifecycle.Since
				}
			}
		}
		if len(entries) == 0 {
			def.noLatest = "no version is published"
			continue
		}
		e, err := gallery.Resolve(def.props, entries, "latest", "", now)
		if err != nil {
			def.noLatest = err.Error()
			continue
		}
		for _, v := range def.versions {
			if v.parsed && strings.EqualFold(v.entry.ID, e.ID) {
				v.latest, def.latest = true, v
			}
		}
	}
	sort.SliceStable(c.defs, func(i, j int) bool { return c.defs[i].id.Key() < c.defs[j].id.Key() })
	for _, r := range vms {
		vm := imgVMOf(r)
		if vm == nil {
			continue
		}
		c.vms = append(c.vms, vm)
		if v := c.verByKey[vm.versionKey]; v != nil {
			v.vms = append(v.vms, vm)
		}
	}
	return c
}

// imgVMOf reads which gallery image version a VM runs: imageReference.id names a version,
// or a definition with exactVersion saying which of its versions the VM got. Nil for a VM
// not on a gallery image.
func imgVMOf(r *resource.Resource) *imgVM {
	id, err := resource.Parse(r.ID)
	if err != nil {
		return nil
	}
	var p struct {
		ProvisioningState string `json:"provisioningState"`
		StorageProfile    struct {
			ImageReference struct {
				ID           string `json:"id"`
				ExactVersion string `json:"exactVersion"`
			} `json:"imageReference"`
		} `json:"storageProfile"`
	}
	if json.Unmarshal(r.Properties, &p) != nil {
		return nil
	}
	ir := p.StorageProfile.ImageReference
	ref, err := resource.Parse(ir.ID)
	if ir.ID == "" || err != nil {
		return nil
	}
	vm := &imgVM{res: r, id: id, ref: ir.ID, exactVersion: ir.ExactVersion, provisioning: p.ProvisioningState}
	switch {
	case strings.EqualFold(ref.Type(), gallery.TypeVersion):
		vm.versionKey = ref.Key()
	case strings.EqualFold(ref.Type(), gallery.TypeDefinition):
		if ir.ExactVersion == "" {
			vm.versionKey = ref.Key() + "/versions/?"
		} else {
			vm.versionKey = ref.Child("versions", ir.ExactVersion).Key()
		}
	default:
		return nil
	}
	return vm
}

// versionID is the ID of the version the VM runs, as the VM names it.
func (vm *imgVM) versionID() string {
	ref, _ := resource.Parse(vm.ref)
	if strings.EqualFold(ref.Type(), gallery.TypeDefinition) && vm.exactVersion != "" {
		return ref.Child("versions", vm.exactVersion).String()
	}
	return ref.String()
}

func (vm *imgVM) versionName() string {
	ref, _ := resource.Parse(vm.ref)
	if strings.EqualFold(ref.Type(), gallery.TypeDefinition) {
		return orDash(vm.exactVersion)
	}
	return ref.Name()
}

func (vm *imgVM) definitionID() resource.ID {
	ref, _ := resource.Parse(vm.ref)
	if strings.EqualFold(ref.Type(), gallery.TypeVersion) {
		return ref.Parent()
	}
	return ref
}

// lifecycleCell shows a version's lifecycle state as a badge, with the reason on hover.
func (v *imgVersion) lifecycleCell() cell {
	if !v.hasState {
		if v.props.ProvisioningState != "" && v.props.ProvisioningState != gallery.ProvisioningSucceeded {
			return cell{Text: "Not published (" + v.props.ProvisioningState + ")", State: v.props.ProvisioningState}
		}
		return cell{Text: "—"}
	}
	name := lifecycleNames[v.lifecycle.State]
	if name == "" {
		name = v.lifecycle.State
	}
	state := strings.ToLower(name)
	if v.lifecycle.State == gallery.StateActive {
		state = "current"
	}
	return cell{Text: name, State: state, Title: v.lifecycle.Reason}
}

func (v *imgVersion) lifecycleName() string {
	if !v.hasState {
		return ""
	}
	return lifecycleNames[v.lifecycle.State]
}

// replication says, per target region, "region: State (replicas/wanted)".
func (v *imgVersion) replication() string {
	var parts []string
	for _, t := range v.props.Targets() {
		st, n := gallery.ReplicationUnknown, 0
		if rs := v.props.ReplicationStatus.Region(t.Name); rs != nil {
			st, n = rs.State, rs.Replicas
		}
		parts = append(parts, fmt.Sprintf("%s: %s (%d/%d)", t.Name, st, n, t.RegionalReplicaCount))
	}
	return strings.Join(parts, "; ")
}

func replicationCell(state string) cell {
	switch state {
	case gallery.ReplicationCompleted:
		return cell{Text: state, State: "succeeded"}
	case gallery.ReplicationFailed:
		return cell{Text: state, State: "failed"}
	case gallery.ReplicationReplicating, gallery.AggregatedInProgress:
		return cell{Text: state, State: "running"}
	}
	return stateCell(state)
}

func (v *imgVersion) aggregated() string {
	if v.props.ReplicationStatus == nil {
		return ""
	}
	return v.props.ReplicationStatus.AggregatedState
}

// teams says whose the version's VMs are: "payments (2), retail (1)".
func teamsOf(vms []*imgVM) string {
	n := map[string]int{}
	for _, vm := range vms {
		n[vm.id.Subscription]++
	}
	keys := slices.Sorted(maps.Keys(n))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s (%d)", k, n[k])
	}
	return strings.Join(parts, ", ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func timePtr(t *time.Time) string {
	if t == nil {
		return "—"
	}
	return formatTime(*t)
}

// imgDuration says how long something took, to the tenth of a second under a minute.
func imgDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "—"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
	case d < time.Hour:
		return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
}

// defName is how a definition is called in lists: gallery/definition.
func defName(id resource.ID) string {
	return id.Parent().Name() + "/" + id.Name()
}

// versionTable lists versions; withDef adds the definition and gallery columns.
func versionTable(name, title string, defs []*imgDef, withDef bool) *table {
	t := &table{Name: name, Title: title, Empty: "No image version has been published here yet."}
	if withDef {
		t.Columns = append(t.Columns, column{Key: "definition", Title: "Definition"}, column{Key: "gallery", Title: "Gallery", Filter: true})
	}
	t.Columns = append(t.Columns,
		column{Key: "version", Title: "Version"}, column{Key: "lifecycle", Title: "Lifecycle", Filter: true},
		column{Key: "latest", Title: "Latest", Filter: true}, column{Key: "published", Title: "Published"},
		column{Key: "endOfLife", Title: "End of life"}, column{Key: "excludeFromLatest", Title: "Excluded from latest", Filter: true},
		column{Key: "replication", Title: "Replication", Filter: true}, column{Key: "regions", Title: "Regions (replicas)"},
		column{Key: "vms", Title: "VMs", Numeric: true}, column{Key: "teams", Title: "Teams (VMs)"})
	for _, d := range defs {
		for _, v := range d.versions {
			var rw row
			if withDef {
				rw = append(rw, link(defName(d.id), imageURL(d.id.String())), text(d.id.Parent().Name()))
			}
			latest := text("—")
			if v.latest {
				latest = cell{Text: "latest", State: "latest"}
			}
			eol := timePtr(v.props.PublishingProfile.EndOfLifeDate)
			if v.props.PublishingProfile.EndOfLifeDate == nil && d.props != nil && d.props.EndOfLifeDate != nil {
				eol = formatTime(*d.props.EndOfLifeDate) + " (definition)"
			}
			rw = append(rw, cell{Text: v.id.Name(), Href: imageURL(v.id.String()), Title: v.id.String()}, v.lifecycleCell(), latest,
				text(timePtr(v.props.PublishingProfile.PublishedDate)), text(eol), text(yesNo(v.props.PublishingProfile.ExcludeFromLatest)),
				replicationCell(v.aggregated()), text(orDash(v.replication())), number(int64(len(v.vms))), text(orDash(teamsOf(v.vms))))
			t.Rows = append(t.Rows, rw)
		}
	}
	return t
}

// vmTable lists the VMs on versions, with power states when this server runs VMs.
func (h *Handler) vmTable(r *request, name, title string, vms []*imgVM, c *imgCatalog, withVersion bool) *table {
	t := &table{Name: name, Title: title, Empty: "No VM you may see runs this image.", Columns: []column{{Key: "name", Title: "VM"}}}
	if withVersion {
		t.Columns = append(t.Columns, column{Key: "version", Title: "Version", Filter: true}, column{Key: "lifecycle", Title: "Lifecycle", Filter: true})
	}
	t.Columns = append(t.Columns, column{Key: "team", Title: "Team (subscription)", Filter: true},
		column{Key: "resourceGroup", Title: "Resource group", Filter: true}, column{Key: "serviceModel", Title: "Service model", Filter: true},
		column{Key: "provisioning", Title: "Provisioning", Filter: true}, column{Key: "power", Title: "Power", Filter: true})
	for _, vm := range vms {
		rw := row{{Text: vm.id.Name(), Href: resourceURL(vm.id.String()), Title: vm.id.String()}}
		if withVersion {
			lc := text("—")
			if v := c.verByKey[vm.versionKey]; v != nil {
				lc = v.lifecycleCell()
			}
			rw = append(rw, cell{Text: vm.versionName(), Href: imageURL(vm.versionID()), Title: vm.versionID()}, lc)
		}
		power := "—"
		if h.opts.VMs != nil {
			if iv, err := h.opts.VMs.InstanceView(r.ctx, vm.id); err == nil {
				power = iv.PowerState
			}
		}
		rw = append(rw, text(vm.id.Subscription), text(vm.id.ResourceGroup), text(orDash(vm.res.Tags["serviceModel"])),
			stateCell(vm.provisioning), text(power))
		t.Rows = append(t.Rows, rw)
	}
	return t
}

// imgRun is a pipeline run as the pages show it.
type imgRun struct {
	res   *resource.Resource
	id    resource.ID
	props pipeline.RunProperties
}

func imgRunsOf(items []*resource.Resource) []*imgRun {
	var out []*imgRun
	for _, r := range items {
		id, err := resource.Parse(r.ID)
		if err != nil {
			continue
		}
		run := &imgRun{res: r, id: id}
		_ = json.Unmarshal(r.Properties, &run.props)
		out = append(out, run)
	}
	// Newest first.
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].props.StartTime, out[j].props.StartTime
		switch {
		case a == nil || b == nil:
			return b == nil && a != nil
		case !a.Equal(*b):
			return a.After(*b)
		}
		return out[i].id.Key() > out[j].id.Key()
	})
	return out
}

func (run *imgRun) duration(now time.Time) time.Duration {
	p := run.props
	if p.StartTime == nil {
		return -1
	}
	end := now
	if p.EndTime != nil {
		end = *p.EndTime
	}
	return end.Sub(*p.StartTime)
}

// stage is where the run is, or where it stopped.
func (run *imgRun) stage() string {
	if run.props.FailedStep != "" {
		return run.props.FailedStep
	}
	if run.props.EndTime == nil {
		return run.props.RunSubState
	}
	return ""
}

// published is the versions the run published.
func (run *imgRun) published() []string {
	var out []string
	for _, o := range run.props.Outputs {
		if o.Error == "" && o.ArtifactID != "" {
			out = append(out, o.ArtifactID)
		}
	}
	return out
}

func runTable(name, title string, runs []*imgRun, now time.Time) *table {
	t := &table{Name: name, Title: title, Empty: "No pipeline run yet.", Columns: []column{
		{Key: "run", Title: "Run"}, {Key: "template", Title: "Template", Filter: true}, {Key: "team", Title: "Team (subscription)", Filter: true},
		{Key: "state", Title: "State", Filter: true}, {Key: "stage", Title: "Step"}, {Key: "started", Title: "Started"},
		{Key: "duration", Title: "Duration"}, {Key: "version", Title: "Version produced"}}}
	for _, run := range runs {
		tmpl := run.id.Parent()
		version := text("—")
		if pub := run.published(); len(pub) > 0 {
			vid, _ := resource.Parse(pub[0])
			names := make([]string, len(pub))
			for i, p := range pub {
				pid, _ := resource.Parse(p)
				names[i] = pid.Parent().Name() + " " + pid.Name()
			}
			version = cell{Text: strings.Join(names, ", "), Href: imageURL(vid.String()), Title: strings.Join(pub, "\n")}
		}
		dur := "—"
		if d := run.duration(now); d >= 0 {
			dur = imgDuration(d)
		}
		t.Rows = append(t.Rows, row{{Text: run.id.Name(), Href: runURL(run.id.String()), Title: run.id.String()},
			{Text: tmpl.Name(), Href: resourceURL(tmpl.String()), Title: tmpl.String()}, text(tmpl.Subscription),
			stateCell(run.props.RunState), text(orDash(run.stage())), text(timePtr(run.props.StartTime)), text(dur), version})
	}
	return t
}

// templateSource says what a template builds from.
func templateSource(s pipeline.Source) string {
	switch {
	case strings.EqualFold(s.Type, pipeline.SourcePlatformImage):
		return fmt.Sprintf("%s/%s/%s (%s)", s.Publisher, s.Offer, s.SKU, orDefaultStr(s.Version, "latest"))
	case strings.EqualFold(s.Type, pipeline.SourceSharedImageVersion):
		id, err := resource.Parse(s.ImageVersionID)
		if err != nil {
			return s.ImageVersionID
		}
		if strings.EqualFold(id.Type(), gallery.TypeVersion) {
			return id.Parent().Name() + " " + id.Name()
		}
		return id.Name() + " (latest)"
	case strings.EqualFold(s.Type, pipeline.SourceURL):
		return s.URL
	}
	return s.Type
}

func orDefaultStr(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func templateTable(templates []*resource.Resource, runs []*imgRun) *table {
	t := &table{Name: "templates", Title: "Image templates (pipelines)", Empty: "No image template yet.", Columns: []column{
		{Key: "template", Title: "Template"}, {Key: "team", Title: "Team (subscription)", Filter: true}, {Key: "source", Title: "Source"},
		{Key: "publishesTo", Title: "Publishes to"}, {Key: "lastRun", Title: "Last run", Filter: true}, {Key: "lastRunStarted", Title: "Last run started"},
		{Key: "runs", Title: "Runs", Numeric: true}}}
	count := map[string]int{}
	for _, run := range runs {
		count[run.id.Parent().Key()]++
	}
	for _, r := range templates {
		id, err := resource.Parse(r.ID)
		if err != nil {
			continue
		}
		var p pipeline.TemplateProperties
		_ = json.Unmarshal(r.Properties, &p)
		var to []string
		href := ""
		for _, d := range p.Distribute {
			did, err := resource.Parse(d.GalleryImageID)
			if err != nil {
				to = append(to, d.GalleryImageID)
				continue
			}
			if strings.EqualFold(did.Type(), gallery.TypeVersion) {
				to = append(to, defName(did.Parent())+" "+did.Name())
			} else {
				to = append(to, defName(did))
			}
			if href == "" {
				href = imageURL(did.String())
			}
		}
		last, started := text("never run"), "—"
		if lr := p.LastRunStatus; lr != nil {
			last = stateCell(lr.RunState)
			if lr.Message != "" {
				last.Title = lr.Message
			}
			started = timePtr(lr.StartTime)
		}
		t.Rows = append(t.Rows, row{{Text: id.Name(), Href: resourceURL(r.ID), Title: r.ID}, text(id.Subscription),
			text(orDash(templateSource(p.Source))), {Text: orDash(strings.Join(to, ", ")), Href: href}, last, text(started),
			number(int64(count[id.Key()]))})
	}
	return t
}

type imgCard struct {
	Value int
	Label string
	Bad   bool
	ID    string
}

type imagesData struct {
	Cards                                                    []imgCard
	Galleries, Definitions, Versions, Usage, Templates, Runs *table
}

// images is the Images page: every gallery, definition, version, the VMs on them by team,
// the image templates and their runs.
func (h *Handler) images(r *request) (*view, error) {
	lists := map[string][]*resource.Resource{}
	for _, typ := range []string{gallery.TypeGallery, gallery.TypeDefinition, gallery.TypeVersion, gallery.TypeVM, pipeline.TypeTemplate, pipeline.TypeRun} {
		items, err := h.imgList(r, resource.Root, typ)
		if err != nil {
			return nil, err
		}
		lists[typ] = items
	}
	c := imgBuild(lists[gallery.TypeDefinition], lists[gallery.TypeVersion], lists[gallery.TypeVM], r.now)
	runs := imgRunsOf(lists[pipeline.TypeRun])
	d := &imagesData{}

	// Galleries, with how many definitions and versions each holds.
	d.Galleries = &table{Name: "galleries", Title: "Galleries", Empty: "No gallery you may see.", Columns: []column{
		{Key: "gallery", Title: "Gallery"}, {Key: "team", Title: "Team (subscription)", Filter: true}, {Key: "resourceGroup", Title: "Resource group"},
		{Key: "description", Title: "Description"}, {Key: "definitions", Title: "Definitions", Numeric: true}, {Key: "versions", Title: "Versions", Numeric: true}}}
	for _, g := range lists[gallery.TypeGallery] {
		id, err := resource.Parse(g.ID)
		if err != nil {
			continue
		}
		var p gallery.GalleryProperties
		_ = json.Unmarshal(g.Properties, &p)
		nd, nv := 0, 0
		for _, def := range c.defs {
			if def.id.Parent().Equal(id) {
				nd++
				nv += len(def.versions)
			}
		}
		d.Galleries.Rows = append(d.Galleries.Rows, row{{Text: id.Name(), Href: imageURL(g.ID), Title: g.ID}, text(id.Subscription),
			text(id.ResourceGroup), text(orDash(p.Description)), number(int64(nd)), number(int64(nv))})
	}

	// Definitions.
	d.Definitions = &table{Name: "definitions", Title: "Image definitions", Empty: "No image definition you may see.", Columns: []column{
		{Key: "definition", Title: "Definition"}, {Key: "gallery", Title: "Gallery", Filter: true}, {Key: "os", Title: "OS", Filter: true},
		{Key: "publisher", Title: "Publisher", Filter: true}, {Key: "offer", Title: "Offer"}, {Key: "sku", Title: "SKU"},
		{Key: "latest", Title: "Latest version"}, {Key: "versions", Title: "Versions", Numeric: true}, {Key: "vms", Title: "VMs", Numeric: true}}}
	for _, def := range c.defs {
		if def.res == nil {
			continue
		}
		p := def.props
		if p == nil {
			p = &gallery.DefinitionProperties{}
		}
		latest := cell{Text: "none", Title: def.noLatest}
		if def.latest != nil {
			latest = link(def.latest.id.Name(), imageURL(def.latest.id.String()))
		}
		vms := 0
		for _, v := range def.versions {
			vms += len(v.vms)
		}
		d.Definitions.Rows = append(d.Definitions.Rows, row{{Text: def.id.Name(), Href: imageURL(def.id.String()), Title: def.id.String()},
			text(def.id.Parent().Name()), text(strings.TrimSpace(p.OSType + " " + p.OSState)), text(p.Identifier.Publisher),
			text(p.Identifier.Offer), text(p.Identifier.SKU), latest, number(int64(len(def.versions))), number(int64(vms))})
	}

	d.Versions = versionTable("versions", "Image versions", c.defs, true)

	// Use by team: how many VMs of each team run each version.
	d.Usage = &table{Name: "usage", Title: "VMs on gallery images, by team", Empty: "No VM you may see runs a gallery image.", Columns: []column{
		{Key: "team", Title: "Team (subscription)", Filter: true}, {Key: "definition", Title: "Definition", Filter: true},
		{Key: "version", Title: "Version"}, {Key: "lifecycle", Title: "Lifecycle", Filter: true}, {Key: "vms", Title: "VMs", Numeric: true}}}
	type usageKey struct{ team, version string }
	usage := map[usageKey][]*imgVM{}
	var keys []usageKey
	stale := 0
	for _, vm := range c.vms {
		k := usageKey{vm.id.Subscription, vm.versionKey}
		if usage[k] == nil {
			keys = append(keys, k)
		}
		usage[k] = append(usage[k], vm)
		if v := c.verByKey[vm.versionKey]; v != nil && v.hasState && v.lifecycle.State != gallery.StateActive {
			stale++
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].team != keys[j].team {
			return keys[i].team < keys[j].team
		}
		return keys[i].version < keys[j].version
	})
	for _, k := range keys {
		vms := usage[k]
		vm := vms[0]
		// A version the caller may not read is named, not linked, and its state unknown.
		lc := cell{Text: "—", Title: "you may not read this image version"}
		ver := cell{Text: vm.versionName(), Title: vm.versionID()}
		if v := c.verByKey[k.version]; v != nil {
			lc, ver.Href = v.lifecycleCell(), imageURL(v.id.String())
		}
		def := vm.definitionID()
		d.Usage.Rows = append(d.Usage.Rows, row{text(k.team), {Text: defName(def), Title: def.String()}, ver, lc, number(int64(len(vms)))})
	}

	d.Templates = templateTable(lists[pipeline.TypeTemplate], runs)
	d.Runs = runTable("runs", "Pipeline runs", runs, r.now)

	failed, recent := 0, 0
	for _, run := range runs {
		if run.props.StartTime != nil && r.now.Sub(*run.props.StartTime) <= 30*24*time.Hour {
			recent++
			if run.props.RunState == pipeline.StateFailed {
				failed++
			}
		}
	}
	d.Cards = []imgCard{
		{Value: len(c.verByKey), Label: "image versions", ID: "versions-total"},
		{Value: len(c.vms), Label: "VMs on gallery images", ID: "vms-total"},
		{Value: stale, Label: "VMs on aged, deprecated or end-of-life versions", Bad: stale > 0, ID: "vms-stale"},
		{Value: failed, Label: fmt.Sprintf("failed runs of %d in the last 30 days", recent), Bad: failed > 0, ID: "runs-failed"},
	}
	return &view{Template: "images", Title: "Images", Nav: "images", Data: d,
		Tables: []*table{d.Galleries, d.Definitions, d.Versions, d.Usage, d.Templates, d.Runs}}, nil
}

// fact is one term of a page's facts list.
type fact struct {
	Term, Text, Href, State, Note string
	Code                          bool
}

type imagePageData struct {
	Kind, Name, ID string
	Facts          []fact
	// Lifecycle is said in full on a version page.
	Lifecycle *fact
	// Tattoo is what the image says of itself, as the agent of one of its VMs reported it.
	Tattoo     []fact
	TattooFrom string
	TattooAt   time.Time
	PowerNote  bool
	Tags       []fact
	// The page's lists; those a kind of page has not are nil.
	Definitions, Versions, Regions, VMs, Runs *table
}

// imagePage is a gallery, an image definition or an image version.
func (h *Handler) imagePage(r *request) (*view, error) {
	id, err := idFromPath(r)
	if err != nil {
		return nil, err
	}
	typ := id.Type()
	switch {
	case strings.EqualFold(typ, gallery.TypeGallery), strings.EqualFold(typ, gallery.TypeDefinition), strings.EqualFold(typ, gallery.TypeVersion):
	default:
		return nil, badParam("id", "%s is not a gallery, an image definition or an image version (its type is %s)", id, orDash(typ))
	}
	res, err := h.cp.Get(r.ctx, r.caller, id)
	if err != nil {
		return nil, err
	}
	d := &imagePageData{Name: id.Name(), ID: id.String(), PowerNote: h.opts.VMs == nil}
	v := &view{Template: "image", Nav: "images", Data: d, Crumbs: []crumb{{Text: "Images", Href: "/ui/images"}}}
	vms, err := h.imgList(r, resource.Root, gallery.TypeVM)
	if err != nil {
		return nil, err
	}
	runs, err := h.imgList(r, resource.Root, pipeline.TypeRun)
	if err != nil {
		return nil, err
	}
	for k, val := range res.Tags {
		d.Tags = append(d.Tags, fact{Term: k, Text: val})
	}
	sort.Slice(d.Tags, func(i, j int) bool { return d.Tags[i].Term < d.Tags[j].Term })

	switch {
	case strings.EqualFold(typ, gallery.TypeGallery):
		defs, err := h.imgList(r, id, gallery.TypeDefinition)
		if err != nil {
			return nil, err
		}
		versions, err := h.imgList(r, id, gallery.TypeVersion)
		if err != nil {
			return nil, err
		}
		c := imgBuild(defs, versions, vms, r.now)
		var p gallery.GalleryProperties
		_ = json.Unmarshal(res.Properties, &p)
		d.Kind = "Gallery"
		v.Title = "Gallery " + id.Name()
		d.Facts = []fact{{Term: "Team (subscription)", Text: id.Subscription}, {Term: "Resource group", Text: id.ResourceGroup},
			{Term: "Location", Text: orDash(res.Location)}, {Term: "Description", Text: orDash(p.Description)},
			{Term: "Provisioning state", Text: orDash(p.ProvisioningState), State: p.ProvisioningState}, {Term: "ID", Text: id.String(), Code: true}}
		defsT := &table{Name: "definitions", Title: "Image definitions", Empty: "This gallery has no image definition yet.", Columns: []column{
			{Key: "definition", Title: "Definition"}, {Key: "os", Title: "OS", Filter: true}, {Key: "publisher", Title: "Publisher"},
			{Key: "offer", Title: "Offer"}, {Key: "sku", Title: "SKU"}, {Key: "latest", Title: "Latest version"},
			{Key: "versions", Title: "Versions", Numeric: true}, {Key: "vms", Title: "VMs", Numeric: true}}}
		for _, def := range c.defs {
			if def.res == nil || def.props == nil {
				continue
			}
			latest := cell{Text: "none", Title: def.noLatest}
			if def.latest != nil {
				latest = link(def.latest.id.Name(), imageURL(def.latest.id.String()))
			}
			n := 0
			for _, ver := range def.versions {
				n += len(ver.vms)
			}
			p := def.props
			defsT.Rows = append(defsT.Rows, row{link(def.id.Name(), imageURL(def.id.String())), text(strings.TrimSpace(p.OSType + " " + p.OSState)),
				text(p.Identifier.Publisher), text(p.Identifier.Offer), text(p.Identifier.SKU), latest, number(int64(len(def.versions))), number(int64(n))})
		}
		d.Definitions, d.Versions = defsT, versionTable("versions", "Image versions", c.defs, true)

	case strings.EqualFold(typ, gallery.TypeDefinition):
		versions, err := h.imgList(r, id, gallery.TypeVersion)
		if err != nil {
			return nil, err
		}
		c := imgBuild([]*resource.Resource{res}, versions, vms, r.now)
		def := c.defByKey[id.Key()]
		d.Kind = "Image definition"
		v.Title = "Image definition " + defName(id)
		v.Crumbs = append(v.Crumbs, crumb{Text: "Gallery " + id.Parent().Name(), Href: imageURL(id.Parent().String())})
		d.Facts = definitionFacts(id, def)
		var onIt []*imgVM
		for _, ver := range def.versions {
			onIt = append(onIt, ver.vms...)
		}
		d.Versions = versionTable("versions", "Versions", c.defs, false)
		d.VMs = h.vmTable(r, "vms", "VMs on this image", onIt, c, true)
		d.Runs = runTable("runs", "Pipeline runs that published here", imgRunsPublishing(imgRunsOf(runs), id), r.now)

	default: // a version
		defID := id.Parent()
		var defs []*resource.Resource
		defRes, err := h.cp.Get(r.ctx, r.caller, defID)
		switch {
		case err == nil:
			defs = []*resource.Resource{defRes}
		case !isNotFound(err):
			return nil, err
		}
		versions, err := h.imgList(r, defID, gallery.TypeVersion)
		if err != nil {
			return nil, err
		}
		c := imgBuild(defs, versions, vms, r.now)
		def := c.defByKey[defID.Key()]
		ver := c.verByKey[id.Key()]
		if def == nil || ver == nil { // deleted between the reads
			return nil, resource.Errorf(resource.CodeNotFound, id.String(), "image version %s does not exist", id)
		}
		d.Kind = "Image version"
		v.Title = "Image version " + defName(defID) + " " + id.Name()
		v.Crumbs = append(v.Crumbs, crumb{Text: "Gallery " + defID.Parent().Name(), Href: imageURL(defID.Parent().String())},
			crumb{Text: defID.Name(), Href: imageURL(defID.String())})
		d.Facts, d.Lifecycle = versionFacts(id, def, ver, imgRunsPublishing(imgRunsOf(runs), id))
		d.Regions = regionTable(ver)
		d.VMs = h.vmTable(r, "vms", "VMs on this version", ver.vms, c, false)
		h.tattooOf(ver, d)
	}
	for _, t := range []*table{d.Definitions, d.Versions, d.Regions, d.VMs, d.Runs} {
		if t != nil {
			v.Tables = append(v.Tables, t)
		}
	}
	return v, nil
}

// imgRunsPublishing keeps the runs that published id (a version) or a version of id (a
// definition).
func imgRunsPublishing(runs []*imgRun, id resource.ID) []*imgRun {
	var out []*imgRun
	for _, run := range runs {
		for _, p := range run.published() {
			pid, err := resource.Parse(p)
			if err == nil && (pid.Equal(id) || pid.Parent().Equal(id)) {
				out = append(out, run)
				break
			}
		}
	}
	return out
}

func definitionFacts(id resource.ID, def *imgDef) []fact {
	p := def.props
	if p == nil {
		p = &gallery.DefinitionProperties{}
	}
	fs := []fact{
		{Term: "Gallery", Text: id.Parent().Name(), Href: imageURL(id.Parent().String())},
		{Term: "Team (subscription)", Text: id.Subscription},
		{Term: "Publisher / offer / SKU", Text: p.Identifier.Publisher + " / " + p.Identifier.Offer + " / " + p.Identifier.SKU},
		{Term: "OS", Text: strings.TrimSpace(p.OSType + " " + p.OSState)},
		{Term: "Hyper-V generation, architecture", Text: orDash(strings.Trim(p.HyperVGeneration+", "+p.Architecture, ", "))},
		{Term: "Description", Text: orDash(p.Description)},
	}
	if def.latest != nil {
		fs = append(fs, fact{Term: "Latest version", Text: def.latest.id.Name(), Href: imageURL(def.latest.id.String())})
	} else {
		fs = append(fs, fact{Term: "Latest version", Text: "none", Note: def.noLatest})
	}
	if p.EndOfLifeDate != nil {
		fs = append(fs, fact{Term: "End of life", Text: formatTime(*p.EndOfLifeDate)})
	}
	if lp := p.LifecyclePolicy; lp != nil {
		var rules []string
		if lp.DeprecateAfterDays > 0 {
			rules = append(rules, fmt.Sprintf("deprecate %d days after publishing", lp.DeprecateAfterDays))
		}
		if lp.KeepNewest > 0 {
			rules = append(rules, fmt.Sprintf("deprecate all but the newest %d", lp.KeepNewest))
		}
		if lp.EndOfLifeAfterDays > 0 {
			rules = append(rules, fmt.Sprintf("end of life %d days after publishing", lp.EndOfLifeAfterDays))
		}
		retain := 1
		if lp.RetainAtLeast != nil {
			retain = *lp.RetainAtLeast
		}
		rules = append(rules, fmt.Sprintf("never deprecate the newest %d", retain))
		fs = append(fs, fact{Term: "Lifecycle policy", Text: strings.Join(rules, "; ")})
	}
	if p.ReleaseNoteURI != "" {
		fs = append(fs, fact{Term: "Release notes", Text: p.ReleaseNoteURI, Href: p.ReleaseNoteURI})
	}
	return append(fs, fact{Term: "ID", Text: id.String(), Code: true})
}

func versionFacts(id resource.ID, def *imgDef, ver *imgVersion, runs []*imgRun) ([]fact, *fact) {
	pp := ver.props.PublishingProfile
	lc := ver.lifecycleCell()
	life := &fact{Term: "Lifecycle", Text: lc.Text, State: lc.State, Note: ver.lifecycle.Reason}
	if ver.hasState && !ver.lifecycle.Since.IsZero() {
		life.Note = strings.TrimSpace(life.Note + " (since " + formatTime(ver.lifecycle.Since) + ")")
	}
	latest := fact{Term: "Latest", Text: "yes", State: "latest", Note: "new VMs on the definition get this version"}
	if !ver.latest {
		latest = fact{Term: "Latest", Text: "no"}
		if def.latest != nil {
			latest.Note = "the latest is " + def.latest.id.Name()
		} else {
			latest.Note = def.noLatest
		}
	}
	eol := timePtr(pp.EndOfLifeDate)
	if pp.EndOfLifeDate == nil && def.props != nil && def.props.EndOfLifeDate != nil {
		eol = formatTime(*def.props.EndOfLifeDate) + " (the definition's)"
	}
	fs := []fact{
		{Term: "Definition", Text: defName(id.Parent()), Href: imageURL(id.Parent().String())},
		latest,
		{Term: "Published", Text: timePtr(pp.PublishedDate)},
		{Term: "End of life", Text: eol},
		{Term: "Excluded from latest", Text: yesNo(pp.ExcludeFromLatest)},
		{Term: "Provisioning state", Text: orDash(ver.props.ProvisioningState), State: ver.props.ProvisioningState},
	}
	if rs := ver.props.ReplicationStatus; rs != nil {
		c := replicationCell(rs.AggregatedState)
		fs = append(fs, fact{Term: "Replication", Text: c.Text, State: c.State, Note: ver.replication()})
	}
	if disk := ver.props.StorageProfile.OSDiskImage; disk != nil {
		fs = append(fs, fact{Term: "Disk SHA-256", Text: disk.SHA256, Code: true},
			fact{Term: "Disk size", Text: fmt.Sprintf("%d bytes (%d GiB), %s", disk.SizeInBytes, disk.SizeInGB, orDash(disk.Format))})
	}
	if src := ver.props.StorageProfile.Source; src != nil {
		switch {
		case src.ID != "":
			sid, _ := resource.Parse(src.ID)
			fs = append(fs, fact{Term: "Built from", Text: defName(sid.Parent()) + " " + sid.Name(), Href: imageURL(src.ID)})
		case src.Marketplace != nil:
			m := src.Marketplace
			fs = append(fs, fact{Term: "Built from", Text: fmt.Sprintf("marketplace %s/%s/%s %s", m.Publisher, m.Offer, m.SKU, m.Version)})
		case src.URI != "":
			fs = append(fs, fact{Term: "Built from", Text: src.URI, Code: true})
		}
	}
	for _, run := range runs {
		fs = append(fs, fact{Term: "Built by run", Text: run.id.Parent().Name() + " " + run.id.Name(), Href: runURL(run.id.String()),
			Note: "template digest " + orDash(run.props.TemplateDigest)})
	}
	return append(fs, fact{Term: "ID", Text: id.String(), Code: true}), life
}

// regionTable is a version's replication, region by region.
func regionTable(ver *imgVersion) *table {
	t := &table{Name: "regions", Title: "Replication by region", Empty: "The version names no region.", Columns: []column{
		{Key: "region", Title: "Region"}, {Key: "state", Title: "State", Filter: true}, {Key: "replicas", Title: "Replicas", Numeric: true},
		{Key: "wanted", Title: "Replicas wanted", Numeric: true}, {Key: "progress", Title: "Progress", Numeric: true},
		{Key: "excludeFromLatest", Title: "Excluded from latest here"}, {Key: "details", Title: "Details"}}}
	for _, target := range ver.props.Targets() {
		st := gallery.RegionStatus{Region: target.Name, State: gallery.ReplicationUnknown}
		if rs := ver.props.ReplicationStatus.Region(target.Name); rs != nil {
			st = *rs
		}
		t.Rows = append(t.Rows, row{text(target.Name), replicationCell(st.State), number(int64(st.Replicas)),
			number(int64(target.RegionalReplicaCount)), text(strconv.Itoa(st.Progress) + " %"), text(yesNo(ver.props.ExcludedIn(target.Name))),
			text(orDash(st.Details))})
	}
	return t
}

// tattooOf finds the tattoo an agent on one of the version's VMs reported: what the image
// says of itself (its source, its build, its definition and version).
func (h *Handler) tattooOf(ver *imgVersion, d *imagePageData) {
	if h.opts.Fleet == nil {
		return
	}
	for _, vm := range ver.vms {
		st, err := h.opts.Fleet.Status(vm.id)
		if err != nil || len(st.Tattoo) == 0 {
			continue
		}
		keys := slices.Sorted(maps.Keys(st.Tattoo))
		for _, k := range keys {
			val := st.Tattoo[k]
			s, ok := val.(string)
			if !ok {
				b, _ := json.Marshal(val)
				s = string(b)
			}
			d.Tattoo = append(d.Tattoo, fact{Term: k, Text: s})
		}
		d.TattooFrom, d.TattooAt = vm.id.String(), st.LastSeen
		return
	}
}

type runPageData struct {
	ID, Name   string
	Facts      []fact
	Steps      *table
	Validation *pipeline.ValidationReport
	Checks     *table
	Files      []runFile
	File       string
	Full       bool
	Log        string
	LogSize    int64
	LogShown   int64
	LogMissing string
	APIPath    string
	FullURL    string
	TailURL    string
	LogTailKiB int
	CLICommand string
}

type runFile struct {
	Name, Href string
	Current    bool
}

// runPage is a pipeline run: its state, steps with timings, test results and log.
func (h *Handler) runPage(r *request) (*view, error) {
	id, err := idFromPath(r)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(id.Type(), pipeline.TypeRun) {
		return nil, badParam("id", "%s is not a pipeline run ({template-id}/runs/NAME); its type is %s", id, orDash(id.Type()))
	}
	q := r.URL.Query()
	file := q.Get("log")
	if file == "" {
		file = "run.log"
	}
	if !slices.Contains(imgRunFiles, file) {
		return nil, badParam("log", "%q is not one of a run's logs: %s", file, strings.Join(imgRunFiles, ", "))
	}
	full := false
	switch s := q.Get("full"); s {
	case "", "0", "false":
	case "1", "true":
		full = true
	default:
		return nil, badParam("full", "full %q is not true or false", s)
	}
	res, err := h.cp.Get(r.ctx, r.caller, id)
	if err != nil {
		return nil, err
	}
	run := imgRunsOf([]*resource.Resource{res})[0]
	p := run.props
	tmpl := id.Parent()
	d := &runPageData{ID: id.String(), Name: id.Name(), File: file, Full: full, LogTailKiB: imgLogTail >> 10,
		APIPath: id.String() + "/log?api-version=" + api.Version + "&name=" + file, CLICommand: "gild image logs " + id.String() + " --name " + file}
	dur := "—"
	if dd := run.duration(r.now); dd >= 0 {
		dur = imgDuration(dd)
		if p.EndTime == nil {
			dur += " so far"
		}
	}
	d.Facts = []fact{
		{Term: "State", Text: orDash(p.RunState), State: p.RunState, Note: p.Message},
		{Term: "Template", Text: tmpl.Name(), Href: resourceURL(tmpl.String())},
		{Term: "Team (subscription)", Text: tmpl.Subscription},
	}
	if p.EndTime == nil && p.RunSubState != "" {
		d.Facts = append(d.Facts, fact{Term: "Stage", Text: p.RunSubState})
	}
	if p.FailedStep != "" {
		d.Facts = append(d.Facts, fact{Term: "Failed step", Text: p.FailedStep})
	}
	if len(p.FailedChecks) > 0 {
		d.Facts = append(d.Facts, fact{Term: "Failed checks", Text: strings.Join(p.FailedChecks, ", ")})
	}
	d.Facts = append(d.Facts, fact{Term: "Started", Text: timePtr(p.StartTime)}, fact{Term: "Ended", Text: timePtr(p.EndTime)},
		fact{Term: "Duration", Text: dur})
	if s := p.Source; s != nil {
		var src string
		switch {
		case s.ID != "":
			src = s.ID
		case s.URL != "":
			src = s.URL
		default:
			src = fmt.Sprintf("%s/%s/%s %s", s.Publisher, s.Offer, s.SKU, s.Version)
		}
		f := fact{Term: "Source", Text: src}
		if s.ID != "" {
			f.Href = imageURL(s.ID)
		}
		if s.SHA256 != "" {
			f.Note = "sha256 " + s.SHA256
		}
		d.Facts = append(d.Facts, f)
	}
	for _, o := range p.Outputs {
		f := fact{Term: "Output " + o.RunOutputName, Text: o.ArtifactID, Href: imageURL(o.ArtifactID)}
		if o.Error != "" {
			f.Href, f.State, f.Text, f.Note = "", "Failed", "Failed", o.ArtifactID+": "+o.Error
		}
		d.Facts = append(d.Facts, f)
	}
	d.Facts = append(d.Facts, fact{Term: "Template digest", Text: orDash(p.TemplateDigest), Code: true}, fact{Term: "ID", Text: id.String(), Code: true})

	d.Steps = &table{Name: "steps", Title: "Steps", Empty: "No step has started yet.", Columns: []column{
		{Key: "step", Title: "Step"}, {Key: "stage", Title: "Stage"}, {Key: "state", Title: "State", Filter: true},
		{Key: "started", Title: "Started"}, {Key: "ended", Title: "Ended"}, {Key: "seconds", Title: "Seconds", Numeric: true},
		{Key: "message", Title: "Message"}}}
	for _, st := range p.Steps {
		secs := st.DurationSec
		if st.EndTime == nil && st.StartTime != nil {
			secs = r.now.Sub(*st.StartTime).Seconds()
		}
		d.Steps.Rows = append(d.Steps.Rows, row{text(st.Name), text(orDash(st.SubState)), stateCell(st.State), text(timePtr(st.StartTime)),
			text(timePtr(st.EndTime)), text(strconv.FormatFloat(secs, 'f', 1, 64)), text(orDash(st.Message))})
	}
	tables := []*table{d.Steps}
	if p.Validation != nil {
		d.Validation = p.Validation
		d.Checks = &table{Name: "checks", Title: "Test results", Empty: "The validation ran no check.", Columns: []column{
			{Key: "check", Title: "Check"}, {Key: "result", Title: "Result", Filter: true}, {Key: "reason", Title: "Reason"}}}
		for _, c := range p.Validation.Checks {
			d.Checks.Rows = append(d.Checks.Rows, row{text(c.Name), stateCell(c.Status), text(orDash(strings.Join(c.Reasons, "; ")))})
		}
		tables = append(tables, d.Checks)
	}

	base := runURL(id.String())
	for _, f := range imgRunFiles {
		href := base
		if f != "run.log" {
			href += "?log=" + f
		}
		d.Files = append(d.Files, runFile{Name: f, Href: href + "#log", Current: f == file})
	}
	d.FullURL = base + "?log=" + file + "&full=1#log"
	d.TailURL = base + "?log=" + file + "#log"
	h.readRunLog(id, file, full, d)
	return &view{Template: "run", Title: "Run " + id.Name(), Nav: "images", Data: d, Tables: tables,
		Crumbs: []crumb{{Text: "Images", Href: "/ui/images"}, {Text: "Template " + tmpl.Name(), Href: resourceURL(tmpl.String())}}}, nil
}

// readRunLog reads the end of a run's log (all of it, up to imgLogMax, when full), from
// the first whole line on.
func (h *Handler) readRunLog(id resource.ID, file string, full bool, d *runPageData) {
	if h.opts.Pipeline == nil {
		d.LogMissing = "This server builds no images, so it keeps no run logs."
		return
	}
	f, err := os.Open(filepath.Join(h.opts.Pipeline.RunDir(id), file))
	if err != nil {
		d.LogMissing = "The run has no " + file + " (yet)."
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		d.LogMissing = "The log cannot be read: " + err.Error()
		return
	}
	limit := int64(imgLogTail)
	if full {
		limit = imgLogMax
	}
	d.LogSize = fi.Size()
	start := max(d.LogSize-limit, 0)
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		d.LogMissing = "The log cannot be read: " + err.Error()
		return
	}
	b, err := io.ReadAll(io.LimitReader(f, limit))
	if err != nil {
		d.LogMissing = "The log cannot be read: " + err.Error()
		return
	}
	if start > 0 {
		if i := strings.IndexByte(string(b), '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	d.Log = strings.ToValidUTF8(string(b), "\uFFFD")
	d.LogShown = int64(len(b))
}
