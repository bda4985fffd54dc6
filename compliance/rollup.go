package compliance

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// Rollup holds every compliance state in memory, a few bytes each, and keeps them current by
// following the compliance history in sequence order. It answers the dashboard's overview
// (percentages per scope, initiative, assignment and policy, and a daily trend) by one pass
// over memory: summarising millions of state rows in SQL for every page view would not fit a
// page's time budget. The history is complete (every change of state is a transition), so
// replaying it from the start rebuilds the current states and, on the way, each resource
// group's counts at the end of every day.
type Rollup struct {
	st store.PolicyStateStore

	syncMu sync.Mutex // one Sync at a time
	mu     sync.RWMutex

	cursor   int64
	gapSince time.Time // when the oldest unfilled gap after cursor was first seen

	resources   []rollupResource
	resourceIdx map[string]int32
	policies    []rollupPolicy
	policyIdx   map[policyRef]int32
	assignments []string // spelling of each assignment ID
	assignIdx   map[string]int32
	buckets     []rollupBucket
	bucketIdx   map[string]int32
	types       map[string]string // one copy of each resource type's name
	synced      time.Time
}

// Compact state codes, in Azure's roll-up precedence: the smallest non-zero code of a
// resource's states is its state.
type stateCode uint8

const (
	codeNone stateCode = iota
	codeNonCompliant
	codeCompliant
	codeConflicting
	codeExempt
	codeUnknown
	codeNotStarted
	numCodes
)

var codeNames = [numCodes]string{"", store.StateNonCompliant, store.StateCompliant, store.StateConflicting, store.StateExempt, store.StateUnknown, store.StateNotStarted}

func codeOf(state string) stateCode {
	for i, n := range codeNames {
		if i > 0 && strings.EqualFold(n, state) {
			return stateCode(i)
		}
	}
	if state == "" {
		return codeNone
	}
	return codeUnknown
}

type counts [numCodes]int64

func (c *counts) add(o *counts) {
	for i := range c {
		c[i] += o[i]
	}
}

// byName turns counts into a map by state name, leaving zeros out.
func (c *counts) byName() map[string]int64 {
	m := map[string]int64{}
	for i := 1; i < int(numCodes); i++ {
		if c[i] != 0 {
			m[codeNames[i]] = c[i]
		}
	}
	return m
}

func (c *counts) total() int64 {
	var n int64
	for i := 1; i < int(numCodes); i++ {
		n += c[i]
	}
	return n
}

type policyRef struct{ assignment, reference string }

type rollupEntry struct {
	policy int32
	state  stateCode
}

type rollupResource struct {
	id      string
	typ     string
	bucket  int32
	entries []rollupEntry
}

func (r *rollupResource) worst() stateCode {
	w := codeNone
	for _, e := range r.entries {
		if w == codeNone || e.state < w {
			w = e.state
		}
	}
	return w
}

type rollupPolicy struct {
	assignment   int32
	definitionID string
	referenceID  string
}

// A bucket is the resource group (or, outside one, the subscription or other scope) that
// resources lie in: the smallest scope role assignments are usually made at, so that what a
// caller may see is decided per bucket, not per resource.
type rollupBucket struct {
	id   resource.ID
	key  string
	live [numCodes]int32 // resources by roll-up state, now
	days []dayCounts     // the live counts at the end of each day they changed, oldest first
}

type dayCounts struct {
	day    int32 // days since 1970-01-01, UTC
	counts [numCodes]int32
}

// NewRollup returns an empty roll-up over st; Sync fills it.
func NewRollup(st store.PolicyStateStore) *Rollup {
	return &Rollup{st: st, resourceIdx: map[string]int32{}, policyIdx: map[policyRef]int32{},
		assignIdx: map[string]int32{}, bucketIdx: map[string]int32{}, types: map[string]string{}}
}

// gapGrace is how long a hole in the history's sequence is waited for: a transaction that
// took a sequence number may not have committed yet (PostgreSQL), or may have rolled back,
// leaving the hole for good.
const gapGrace = 10 * time.Second

// Sync applies the transitions recorded since the last Sync.
func (r *Rollup) Sync(ctx context.Context) error {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	for {
		trs, _, err := r.st.PolicyStateHistory(ctx, store.PolicyStateQuery{After: fmt.Sprint(r.cursor), Limit: store.MaxPageSize})
		if err != nil {
			return fmt.Errorf("compliance roll-up: read history: %w", err)
		}
		now := time.Now()
		n := 0
		for _, tr := range trs {
			if tr.Seq != r.cursor+1 && r.cursor > 0 && now.Sub(tr.At) < gapGrace {
				if r.gapSince.IsZero() {
					r.gapSince = now
				}
				if now.Sub(r.gapSince) < gapGrace {
					break
				}
			}
			r.gapSince = time.Time{}
			n++
			r.cursor = tr.Seq
		}
		if n > 0 {
			r.mu.Lock()
			for _, tr := range trs[:n] {
				r.apply(tr)
			}
			r.mu.Unlock()
		}
		if n < len(trs) || len(trs) < store.MaxPageSize {
			r.mu.Lock()
			r.synced = now
			r.mu.Unlock()
			return nil
		}
	}
}

// Run syncs every interval until ctx ends.
func (r *Rollup) Run(ctx context.Context, every time.Duration, log logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := r.Sync(ctx); err != nil && ctx.Err() == nil && log != nil {
			log.Warn("compliance roll-up", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func dayOf(t time.Time) int32 { return int32(t.UTC().Unix() / 86400) }

func (r *Rollup) apply(tr store.StateTransition) {
	res := r.resource(tr.ResourceID)
	pol := r.policy(tr)
	before := res.worst()
	to := codeOf(tr.To)
	found := false
	for i, e := range res.entries {
		if e.policy != pol {
			continue
		}
		found = true
		if to == codeNone {
			res.entries = append(res.entries[:i], res.entries[i+1:]...)
		} else {
			res.entries[i].state = to
		}
		break
	}
	if !found && to != codeNone {
		res.entries = append(res.entries, rollupEntry{policy: pol, state: to})
	}
	after := res.worst()
	if before == after {
		return
	}
	b := &r.buckets[res.bucket]
	if before != codeNone {
		b.live[before]--
	}
	if after != codeNone {
		b.live[after]++
	}
	day := dayOf(tr.At)
	if n := len(b.days); n > 0 && b.days[n-1].day >= day {
		// Same day (or a clock that stepped back): the end-of-day figure moves.
		b.days[n-1].counts = b.live
		return
	}
	b.days = append(b.days, dayCounts{day: day, counts: b.live})
}

func (r *Rollup) resource(id string) *rollupResource {
	k := strings.ToLower(id)
	if i, ok := r.resourceIdx[k]; ok {
		return &r.resources[i]
	}
	typ := ""
	bucket := resource.Root
	if parsed, err := resource.Parse(id); err == nil {
		typ = parsed.Type()
		if t, ok := r.types[typ]; ok {
			typ = t
		} else {
			r.types[typ] = typ
		}
		bucket = bucketOf(parsed)
	}
	bk := bucket.Key()
	bi, ok := r.bucketIdx[bk]
	if !ok {
		bi = int32(len(r.buckets))
		r.buckets = append(r.buckets, rollupBucket{id: bucket, key: bk})
		r.bucketIdx[bk] = bi
	}
	r.resources = append(r.resources, rollupResource{id: id, typ: typ, bucket: bi})
	r.resourceIdx[k] = int32(len(r.resources) - 1)
	return &r.resources[len(r.resources)-1]
}

// bucketOf is the scope a resource's bucket is: its resource group, or whatever scope it
// lies at directly.
func bucketOf(id resource.ID) resource.ID {
	switch {
	case id.ResourceGroup != "":
		return resource.ResourceGroupID(id.Subscription, id.ResourceGroup)
	case id.Subscription != "":
		return resource.SubscriptionID(id.Subscription)
	case id.ManagementGroup != "":
		return resource.ManagementGroupID(id.ManagementGroup)
	}
	return resource.Root
}

func (r *Rollup) policy(tr store.StateTransition) int32 {
	ak := strings.ToLower(tr.AssignmentID)
	k := policyRef{ak, strings.ToLower(tr.ReferenceID)}
	if i, ok := r.policyIdx[k]; ok {
		if tr.DefinitionID != "" {
			r.policies[i].definitionID = tr.DefinitionID
		}
		return i
	}
	ai, ok := r.assignIdx[ak]
	if !ok {
		ai = int32(len(r.assignments))
		r.assignments = append(r.assignments, tr.AssignmentID)
		r.assignIdx[ak] = ai
	}
	r.policies = append(r.policies, rollupPolicy{assignment: ai, definitionID: tr.DefinitionID, referenceID: tr.ReferenceID})
	r.policyIdx[k] = int32(len(r.policies) - 1)
	return int32(len(r.policies) - 1)
}

// RollupView is what one caller asks of the roll-up.
type RollupView struct {
	// Scopes are the ID prefixes the caller may read, as controlplane's ReadableScopes gives
	// them: nil means everything.
	Scopes []resource.ID
	// Within narrows the view to one scope (a management group is expanded with Tree);
	// the zero value is everything.
	Within resource.ID
	// Tree places subscriptions in management groups.
	Tree *resource.Hierarchy
	// Initiatives maps an assignment ID (lower case) to the initiative it assigns, if any.
	Initiatives map[string]string
	// Now is the last day of the trend; Days its length (0: no trend).
	Now  time.Time
	Days int
}

// Group is the compliance of one group of resources: a scope, an initiative, an
// assignment or a policy.
type Group struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	AssignmentID string `json:"policyAssignmentId,omitempty"`
	DefinitionID string `json:"policyDefinitionId,omitempty"`
	ReferenceID  string `json:"policyDefinitionReferenceId,omitempty"`
	// Resources counts resources by their roll-up state within the group.
	Resources             map[string]int64 `json:"resources"`
	Total                 int64            `json:"total"`
	NonCompliantResources int64            `json:"nonCompliantResources"`
	CompliancePercentage  float64          `json:"compliancePercentage"`
}

// TrendPoint is the compliance at the end of one day.
type TrendPoint struct {
	Day                   time.Time `json:"day"`
	Total                 int64     `json:"total"`
	NonCompliantResources int64     `json:"nonCompliantResources"`
	CompliancePercentage  float64   `json:"compliancePercentage"`
}

// RollupOverview is the answer to Overview.
type RollupOverview struct {
	Overall               Group        `json:"overall"`
	NonCompliantPolicies  int64        `json:"nonCompliantPolicies"`
	Policies              int64        `json:"policies"`
	Initiatives           []Group      `json:"initiatives"`
	Assignments           []Group      `json:"assignments"`
	PolicyGroups          []Group      `json:"policyDefinitions"`
	ManagementGroups      []Group      `json:"managementGroups"`
	Subscriptions         []Group      `json:"subscriptions"`
	ResourceGroups        []Group      `json:"resourceGroups"`
	Trend                 []TrendPoint `json:"trend,omitempty"`
	TrendPartial          bool         `json:"trendPartial,omitempty"`
	SyncedAt              time.Time    `json:"syncedAt"`
	ResourcesWithoutState int64        `json:"-"`
}

func newGroup(id, name string, c *counts) Group {
	m := c.byName()
	return Group{ID: id, Name: name, Resources: m, Total: c.total(), NonCompliantResources: c[codeNonCompliant], CompliancePercentage: Percentage(m)}
}

// visibility of a bucket to a view.
type visibility uint8

const (
	hidden visibility = iota
	partly            // some resources in it: decided per resource
	whole
)

// viewFilter decides what a view sees.
type viewFilter struct {
	scopes []string // keys of the readable prefixes; nil: all
	within []string // keys of the prefixes of Within; nil: all
}

func keyContains(prefix, key string) bool {
	if prefix == "/" {
		return true
	}
	return key == prefix || (strings.HasPrefix(key, prefix) && key[len(prefix)] == '/')
}

func newViewFilter(v RollupView) viewFilter {
	var f viewFilter
	if v.Scopes != nil {
		f.scopes = []string{}
		for _, s := range v.Scopes {
			f.scopes = append(f.scopes, s.Key())
		}
	}
	if !v.Within.IsRoot() {
		var within []resource.ID
		if v.Tree != nil {
			within = v.Tree.Expand(v.Within)
		} else {
			within = []resource.ID{v.Within}
		}
		for _, s := range within {
			f.within = append(f.within, s.Key())
		}
	}
	return f
}

// bucket says how much of bucket key b the filter lets through.
func (f viewFilter) bucket(b string) visibility {
	return minVis(listVis(f.scopes, b), listVis(f.within, b))
}

func listVis(prefixes []string, b string) visibility {
	if prefixes == nil {
		return whole
	}
	v := hidden
	for _, p := range prefixes {
		if keyContains(p, b) {
			return whole
		}
		if keyContains(b, p) {
			v = partly
		}
	}
	return v
}

func minVis(a, b visibility) visibility {
	if a < b {
		return a
	}
	return b
}

// resource decides for one resource key in a partly visible bucket.
func (f viewFilter) resource(key string) bool {
	return listHas(f.scopes, key) && listHas(f.within, key)
}

func listHas(prefixes []string, key string) bool {
	if prefixes == nil {
		return true
	}
	for _, p := range prefixes {
		if keyContains(p, key) {
			return true
		}
	}
	return false
}

// visibilities decides, bucket by bucket, how much of each f lets through. r.mu is held.
func (r *Rollup) visibilities(f viewFilter) []visibility {
	vis := make([]visibility, len(r.buckets))
	for i := range r.buckets {
		vis[i] = f.bucket(r.buckets[i].key)
	}
	return vis
}

// Overview rolls up what v may see.
func (r *Rollup) Overview(v RollupView) RollupOverview {
	f := newViewFilter(v)
	r.mu.RLock()
	defer r.mu.RUnlock()
	vis := r.visibilities(f)
	// Initiative of each assignment, by index.
	initiativeOf := make([]int32, len(r.assignments))
	var initiatives []string
	initIdx := map[string]int32{}
	for i, a := range r.assignments {
		initiativeOf[i] = -1
		set := v.Initiatives[strings.ToLower(a)]
		if set == "" {
			continue
		}
		k := strings.ToLower(set)
		ii, ok := initIdx[k]
		if !ok {
			ii = int32(len(initiatives))
			initiatives = append(initiatives, set)
			initIdx[k] = ii
		}
		initiativeOf[i] = ii
	}

	var overall counts
	bucketCounts := make([]counts, len(r.buckets))
	assignCounts := make([]counts, len(r.assignments))
	initCounts := make([]counts, len(initiatives))
	policyCounts := make([]counts, len(r.policies))
	assignWorst := make([]stateCode, len(r.assignments))
	initWorst := make([]stateCode, len(initiatives))
	var touchedA, touchedI []int32
	for i := range r.resources {
		res := &r.resources[i]
		if len(res.entries) == 0 {
			continue
		}
		switch vis[res.bucket] {
		case hidden:
			continue
		case partly:
			if !f.resource(strings.ToLower(res.id)) {
				continue
			}
		}
		w := codeNone
		touchedA, touchedI = touchedA[:0], touchedI[:0]
		for _, e := range res.entries {
			if w == codeNone || e.state < w {
				w = e.state
			}
			policyCounts[e.policy][e.state]++
			a := r.policies[e.policy].assignment
			if aw := assignWorst[a]; aw == codeNone {
				assignWorst[a] = e.state
				touchedA = append(touchedA, a)
			} else if e.state < aw {
				assignWorst[a] = e.state
			}
			if ii := initiativeOf[a]; ii >= 0 {
				if iw := initWorst[ii]; iw == codeNone {
					initWorst[ii] = e.state
					touchedI = append(touchedI, ii)
				} else if e.state < iw {
					initWorst[ii] = e.state
				}
			}
		}
		overall[w]++
		bucketCounts[res.bucket][w]++
		for _, a := range touchedA {
			assignCounts[a][assignWorst[a]]++
			assignWorst[a] = codeNone
		}
		for _, ii := range touchedI {
			initCounts[ii][initWorst[ii]]++
			initWorst[ii] = codeNone
		}
	}

	out := RollupOverview{Overall: newGroup("/", "All resources", &overall), SyncedAt: r.synced}
	for i, c := range assignCounts {
		if c.total() > 0 {
			id := r.assignments[i]
			out.Assignments = append(out.Assignments, newGroup(id, lastSegment(id), &c))
		}
	}
	for i, c := range initCounts {
		if c.total() > 0 {
			out.Initiatives = append(out.Initiatives, newGroup(initiatives[i], lastSegment(initiatives[i]), &c))
		}
	}
	for i, c := range policyCounts {
		if c.total() == 0 {
			continue
		}
		p := r.policies[i]
		aid := r.assignments[p.assignment]
		name := lastSegment(p.definitionID)
		if p.referenceID != "" {
			name = p.referenceID
		}
		g := newGroup(aid+"#"+p.referenceID, name, &c)
		g.AssignmentID, g.DefinitionID, g.ReferenceID = aid, p.definitionID, p.referenceID
		out.PolicyGroups = append(out.PolicyGroups, g)
		out.Policies++
		if c[codeNonCompliant] > 0 {
			out.NonCompliantPolicies++
		}
	}
	// Scopes from buckets: resource groups, subscriptions, and the management groups above.
	subs := map[string]*counts{}
	subName := map[string]string{}
	rgs := map[string]*counts{}
	mgs := map[string]*counts{}
	mgName := map[string]string{}
	for i, c := range bucketCounts {
		if c.total() == 0 {
			continue
		}
		c := c
		id := r.buckets[i].id
		switch id.Kind() {
		case resource.KindResourceGroup:
			rgs[id.String()] = &c
		case resource.KindManagementGroup:
			addTo(mgs, strings.ToLower(id.ManagementGroup), &c)
			mgName[strings.ToLower(id.ManagementGroup)] = id.ManagementGroup
		}
		if id.Subscription != "" {
			k := strings.ToLower(id.Subscription)
			addTo(subs, k, &c)
			subName[k] = id.Subscription
		}
	}
	if v.Tree != nil {
		for k, c := range subs {
			for _, a := range v.Tree.Ancestors(resource.SubscriptionID(subName[k])) {
				if a.Kind() == resource.KindManagementGroup {
					mk := strings.ToLower(a.ManagementGroup)
					addTo(mgs, mk, c)
					mgName[mk] = a.ManagementGroup
				}
			}
		}
	}
	for k, c := range subs {
		out.Subscriptions = append(out.Subscriptions, newGroup(resource.SubscriptionID(subName[k]).String(), subName[k], c))
	}
	for id, c := range rgs {
		out.ResourceGroups = append(out.ResourceGroups, newGroup(id, lastSegment(id), c))
	}
	for k, c := range mgs {
		out.ManagementGroups = append(out.ManagementGroups, newGroup(resource.ManagementGroupID(mgName[k]).String(), mgName[k], c))
	}
	for _, gs := range [][]Group{out.Assignments, out.Initiatives, out.PolicyGroups, out.Subscriptions, out.ResourceGroups, out.ManagementGroups} {
		sortGroups(gs)
	}
	if v.Days > 0 {
		out.Trend, out.TrendPartial = r.trend(vis, v.Now, v.Days)
	}
	return out
}

func addTo(m map[string]*counts, k string, c *counts) {
	if m[k] == nil {
		m[k] = &counts{}
	}
	m[k].add(c)
}

// sortGroups puts the worst first: lowest percentage, then most non-compliant, then by ID.
func sortGroups(gs []Group) {
	sort.Slice(gs, func(i, j int) bool {
		a, b := gs[i], gs[j]
		if a.CompliancePercentage != b.CompliancePercentage {
			return a.CompliancePercentage < b.CompliancePercentage
		}
		if a.NonCompliantResources != b.NonCompliantResources {
			return a.NonCompliantResources > b.NonCompliantResources
		}
		return strings.ToLower(a.ID) < strings.ToLower(b.ID)
	})
}

func lastSegment(id string) string {
	id = strings.TrimRight(id, "/")
	return id[strings.LastIndex(id, "/")+1:]
}

// trend sums the end-of-day counts of the wholly visible buckets over the last days days
// up to now. Buckets the caller sees only part of have no per-resource history here, so
// they are left out and the trend says it is partial.
func (r *Rollup) trend(vis []visibility, now time.Time, days int) ([]TrendPoint, bool) {
	last := dayOf(now)
	first := last - int32(days) + 1
	sums := make([][numCodes]int64, days)
	partial := false
	for i := range r.buckets {
		switch vis[i] {
		case hidden:
			continue
		case partly:
			partial = true
			continue
		}
		hist := r.buckets[i].days
		// The value on day d is the last entry on or before d.
		j := sort.Search(len(hist), func(k int) bool { return hist[k].day > first }) - 1
		for d := first; d <= last; d++ {
			for j+1 < len(hist) && hist[j+1].day <= d {
				j++
			}
			if j < 0 {
				continue
			}
			s := &sums[d-first]
			for c := range s {
				s[c] += int64(hist[j].counts[c])
			}
		}
	}
	out := make([]TrendPoint, days)
	for i := range out {
		c := counts(sums[i])
		out[i] = TrendPoint{Day: time.Unix(int64(first+int32(i))*86400, 0).UTC(), Total: c.total(),
			NonCompliantResources: c[codeNonCompliant], CompliancePercentage: Percentage(c.byName())}
	}
	return out, partial
}

// ResourceSummary is one resource's roll-up.
type ResourceSummary struct {
	ID                   string `json:"id"`
	Type                 string `json:"type"`
	State                string `json:"complianceState"`
	NonCompliantPolicies int    `json:"nonCompliantPolicies"`
	Policies             int    `json:"policies"`
}

// Resources lists the resources v sees that have states, in ID order.
func (r *Rollup) Resources(v RollupView) []ResourceSummary {
	f := newViewFilter(v)
	r.mu.RLock()
	defer r.mu.RUnlock()
	vis := r.visibilities(f)
	var out []ResourceSummary
	for i := range r.resources {
		res := &r.resources[i]
		if len(res.entries) == 0 || vis[res.bucket] == hidden || (vis[res.bucket] == partly && !f.resource(strings.ToLower(res.id))) {
			continue
		}
		s := ResourceSummary{ID: res.id, Type: res.typ, State: codeNames[res.worst()], Policies: len(res.entries)}
		for _, e := range res.entries {
			if e.state == codeNonCompliant {
				s.NonCompliantPolicies++
			}
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].ID) < strings.ToLower(out[j].ID) })
	return out
}

// State is a resource's roll-up state ("" when it has none).
func (r *Rollup) State(id string) string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	i, ok := r.resourceIdx[strings.ToLower(id)]
	if !ok {
		return ""
	}
	return codeNames[r.resources[i].worst()]
}
