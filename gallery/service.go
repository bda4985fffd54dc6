// Package gallery is gild's compute gallery: galleries, image definitions and image versions
// in the Azure Compute Gallery shape, their artifacts in regions (package blob), replication
// with replica counts and checksums, `latest` resolution, lifecycle states acted on rather
// than merely shown (aged, deprecated, end of life), share links, and the image facts
// policies see on VMs.
//
// The gallery takes part in the control plane's writes as a hook, so that a version becomes
// visible only in the transaction that finds its artifact complete and verified in its
// first region. What happens after (replication, lifecycle transitions, verification,
// repair, garbage collection) is reconciled from the stored resources by Run, so a server
// killed at any point resumes from what the store says.
package gallery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gildhq/gild/blob"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// Error codes of the gallery, mapped to HTTP statuses by the API.
const (
	CodeArtifactNotFound   = "GalleryArtifactNotFound"
	CodeChecksumMismatch   = "GalleryArtifactChecksumMismatch"
	CodeVersionNotFound    = "GalleryImageVersionNotFound"
	CodeVersionEndOfLife   = "GalleryImageVersionEndOfLife"
	CodeVersionInUse       = "GalleryImageVersionInUse"
	CodeRegionNotFound     = "GalleryRegionNotFound"
	CodeIdentifierConflict = "GalleryImageIdentifierConflict"
	CodeImmutableProperty  = "PropertyChangeNotAllowed"
	CodeShareLinkInvalid   = "ShareLinkInvalid"
)

// Writer changes resources on the gallery's own account, through the control plane (so
// the audit log and the policy engine see it). Update reads the resource, lets mutate
// change it, and writes it back if mutate reports a change, retrying on a concurrent write.
type Writer interface {
	Update(ctx context.Context, id resource.ID, mutate func(r *resource.Resource) (bool, error)) error
}

// Options configure a Service.
type Options struct {
	// Regions are the storage locations; the first is the home region, where this
	// server's VMs take their disks from and where versions go when they name no region.
	Regions []*blob.Region
	// ShareKey signs share links; links stay valid as long as it does not change.
	ShareKey []byte
	Now      func() time.Time
	Logger   *slog.Logger
	// VerifyInterval is how often every replica is read back and checked; 0 means daily,
	// negative never.
	VerifyInterval time.Duration
	// ReconcileInterval is how often lifecycle states and replication are looked at
	// without a change to prompt it; 0 means a minute.
	ReconcileInterval time.Duration
	// Workers is how many versions replicate at once; 0 means 2.
	Workers int
	// Reevaluate, if set, is asked to evaluate policies again at a scope whose VMs run an
	// image version whose lifecycle state changed.
	Reevaluate func(scope resource.ID)
	// GCGrace is how long an artifact nobody refers to is kept (an upload waiting for its
	// version); 0 means a day.
	GCGrace time.Duration
}

// Service is the gallery over one store.
type Service struct {
	store   store.Store
	writer  Writer
	regions map[string]*blob.Region
	order   []string
	opts    Options
	now     func() time.Time
	log     *slog.Logger

	idx  atomic.Pointer[index]
	kick chan struct{}
	// dispatch, when set, queues replications as durable jobs instead of running them here.
	dispatch atomic.Pointer[func(ctx context.Context, id string) error]

	mu       sync.Mutex
	running  map[string]bool      // version keys being replicated
	retryAt  map[string]time.Time // version key → when a failed replication is tried again
	failures map[string]int
	progress map[string]map[string]int64 // version key → region → bytes copied

	rr       atomic.Uint64 // spreads pulls over replicas
	seq      int64
	lastGC   time.Time
	lastScan time.Time
}

// New returns the gallery over st with the regions of opts.
func New(st store.Store, opts Options) (*Service, error) {
	if len(opts.Regions) == 0 {
		return nil, errors.New("gallery: at least one region is required")
	}
	s := &Service{store: st, opts: opts, now: opts.Now, log: opts.Logger, regions: map[string]*blob.Region{},
		kick: make(chan struct{}, 1), running: map[string]bool{}, retryAt: map[string]time.Time{},
		failures: map[string]int{}, progress: map[string]map[string]int64{}}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for _, r := range opts.Regions {
		if _, dup := s.regions[r.Name]; dup {
			return nil, fmt.Errorf("gallery: region %s is configured twice", r.Name)
		}
		s.regions[r.Name] = r
		s.order = append(s.order, r.Name)
	}
	s.idx.Store(&index{defs: map[string]*defEntry{}})
	return s, nil
}

// SetWriter sets how the gallery writes its own changes (replication status, lifecycle).
func (s *Service) SetWriter(w Writer) { s.writer = w }

// SetReevaluate sets Options.Reevaluate, for a policy engine made after the gallery.
func (s *Service) SetReevaluate(f func(scope resource.ID)) { s.opts.Reevaluate = f }

// Home is the home region's name.
func (s *Service) Home() string { return s.order[0] }

// Regions lists the region names, the home region first.
func (s *Service) Regions() []string { return slices.Clone(s.order) }

// Region returns the region called name.
func (s *Service) Region(name string) (*blob.Region, bool) {
	r, ok := s.regions[name]
	return r, ok
}

// internalKey marks a write made by the gallery itself, which may set the fields clients
// cannot (replication status, lifecycle, provisioning state).
type internalKey struct{}

func internal(ctx context.Context) context.Context {
	return context.WithValue(ctx, internalKey{}, true)
}
func isInternal(ctx context.Context) bool { v, _ := ctx.Value(internalKey{}).(bool); return v }

type forceKey struct{}

// WithForceDelete marks a delete that may remove versions VMs still use before their end
// of life.
func WithForceDelete(ctx context.Context) context.Context {
	return context.WithValue(ctx, forceKey{}, true)
}

func forced(ctx context.Context) bool { v, _ := ctx.Value(forceKey{}).(bool); return v }

// index is every definition and version, kept in memory for resolution and for the facts
// evaluation adds to VMs; it is rebuilt from the store when gallery resources change.
type index struct {
	defs map[string]*defEntry // by lower-cased definition ID
}

type defEntry struct {
	id       resource.ID
	props    *DefinitionProperties
	versions []Entry // newest first
}

func (ix *index) def(id string) *defEntry { return ix.defs[strings.ToLower(id)] }

// Load rebuilds the index from the store.
func (s *Service) Load(ctx context.Context) error {
	seq, err := s.store.LastSeq(ctx)
	if err != nil {
		return fmt.Errorf("gallery: load: %w", err)
	}
	ix := &index{defs: map[string]*defEntry{}}
	defs, err := store.ListAll(ctx, s.store, store.ListQuery{Type: TypeDefinition})
	if err != nil {
		return fmt.Errorf("gallery: load definitions: %w", err)
	}
	for _, d := range defs {
		id, err := resource.Parse(d.ID)
		if err != nil {
			continue
		}
		var p DefinitionProperties
		if err := json.Unmarshal(d.Properties, &p); err != nil {
			s.log.Warn("gallery: unreadable image definition", "id", d.ID, "err", err)
			continue
		}
		ix.defs[strings.ToLower(d.ID)] = &defEntry{id: id, props: &p}
	}
	vers, err := store.ListAll(ctx, s.store, store.ListQuery{Type: TypeVersion})
	if err != nil {
		return fmt.Errorf("gallery: load versions: %w", err)
	}
	for _, v := range vers {
		e, err := entryOf(v)
		if err != nil {
			s.log.Warn("gallery: unreadable image version", "id", v.ID, "err", err)
			continue
		}
		id, _ := resource.Parse(v.ID)
		if d := ix.def(id.Parent().String()); d != nil {
			d.versions = append(d.versions, e)
		}
	}
	for _, d := range ix.defs {
		sortNewestFirst(d.versions)
	}
	s.mu.Lock()
	s.seq = max(s.seq, seq)
	s.mu.Unlock()
	s.idx.Store(ix)
	return nil
}

func entryOf(r *resource.Resource) (Entry, error) {
	var p VersionProperties
	if err := json.Unmarshal(r.Properties, &p); err != nil {
		return Entry{}, err
	}
	v, err := ParseVersion(r.Name)
	if err != nil {
		return Entry{}, err
	}
	return Entry{ID: r.ID, Version: v, Props: &p}, nil
}

// versionsOf lists the versions of definition def as r sees them.
func versionsOf(ctx context.Context, r store.Reader, def resource.ID) ([]Entry, error) {
	items, err := store.ListAll(ctx, r, store.ListQuery{Scopes: []resource.ID{def}, Type: TypeVersion})
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(items))
	for _, it := range items {
		e, err := entryOf(it)
		if err != nil {
			continue
		}
		out = append(out, e)
	}
	sortNewestFirst(out)
	return out, nil
}

func definitionOf(ctx context.Context, r store.Reader, def resource.ID) (*DefinitionProperties, error) {
	res, err := r.Get(ctx, def)
	if err != nil {
		if store.IsNotFound(err) {
			return nil, resource.Errorf(CodeVersionNotFound, def.String(), "image definition %s does not exist", def)
		}
		return nil, err
	}
	var p DefinitionProperties
	if err := json.Unmarshal(res.Properties, &p); err != nil {
		return nil, fmt.Errorf("read image definition %s: %w", def, err)
	}
	return &p, nil
}

// Resolved is a version found by Resolve.
type Resolved struct {
	ID          string `json:"id"`
	Version     string `json:"version"`
	SHA256      string `json:"sha256"`
	SizeInBytes int64  `json:"sizeInBytes"`
	Format      string `json:"format"`
	Region      string `json:"region,omitempty"`
	Lifecycle   string `json:"lifecycleState"`
}

// Resolve finds the version ref ("latest", "" or "X.Y.Z") of definition def, in region
// (any region when empty), reading the store (so it sees every write committed so far).
func (s *Service) Resolve(ctx context.Context, def resource.ID, ref, region string) (Resolved, error) {
	if region != "" {
		if _, ok := s.regions[region]; !ok {
			return Resolved{}, resource.Errorf(CodeRegionNotFound, "region", "region %q is not configured; regions: %s", region, strings.Join(s.order, ", "))
		}
	}
	return s.resolve(ctx, s.store, def, ref, region)
}

func (s *Service) resolve(ctx context.Context, r store.Reader, def resource.ID, ref, region string) (Resolved, error) {
	dp, err := definitionOf(ctx, r, def)
	if err != nil {
		return Resolved{}, err
	}
	vers, err := versionsOf(ctx, r, def)
	if err != nil {
		return Resolved{}, err
	}
	e, err := Resolve(dp, vers, ref, region, s.now())
	if err != nil {
		return Resolved{}, resource.Errorf(CodeVersionNotFound, def.String(), "image %s@%s: %v", def, refName(ref), err)
	}
	states := States(dp, vers, s.now())
	d := e.Props.StorageProfile.OSDiskImage
	out := Resolved{ID: e.ID, Version: e.Version.String(), SHA256: d.SHA256, SizeInBytes: d.SizeInBytes, Format: d.Format, Region: region,
		Lifecycle: states[e.Version.String()].State}
	return out, nil
}

func refName(ref string) string {
	if ref == "" {
		return "latest"
	}
	return ref
}

// Committed refreshes the index after gallery resources changed and wakes the reconciler.
func (s *Service) Committed(ctx context.Context, ids []resource.ID) {
	for _, id := range ids {
		if IsGalleryType(id.Type()) {
			if err := s.Load(ctx); err != nil {
				s.log.Warn("gallery: reload", "err", err)
			}
			s.Kick()
			return
		}
	}
}

// Kick wakes the reconciler.
func (s *Service) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// followChanges reloads the index when another server changed a gallery resource.
func (s *Service) followChanges(ctx context.Context) {
	s.mu.Lock()
	seq := s.seq
	s.mu.Unlock()
	reload := false
	for {
		changes, err := s.store.Changes(ctx, seq, 1000)
		if err != nil {
			s.log.Warn("gallery: follow changes", "err", err)
			return
		}
		for _, c := range changes {
			reload = reload || IsGalleryType(c.Type)
			seq = c.Seq
		}
		if len(changes) < 1000 {
			break
		}
	}
	s.mu.Lock()
	s.seq = max(s.seq, seq)
	s.mu.Unlock()
	if reload {
		if err := s.Load(ctx); err != nil {
			s.log.Warn("gallery: reload", "err", err)
		}
		s.Kick()
	}
}

// regionStatus builds a version's replication status from what its regions hold.
func regionStatuses(targets []TargetRegion, held map[string]int, prev *ReplicationStatus) *ReplicationStatus {
	rs := &ReplicationStatus{}
	for _, t := range targets {
		st := RegionStatus{Region: t.Name, Replicas: min(held[t.Name], t.RegionalReplicaCount)}
		if st.Replicas >= t.RegionalReplicaCount {
			st.State, st.Progress = ReplicationCompleted, 100
		} else {
			st.State = ReplicationReplicating
			st.Details = fmt.Sprintf("%d of %d replicas", st.Replicas, t.RegionalReplicaCount)
			if p := prev.Region(t.Name); p != nil && p.State == ReplicationFailed {
				st.State, st.Details = ReplicationFailed, p.Details
			}
		}
		rs.Summary = append(rs.Summary, st)
	}
	rs.AggregatedState = aggregate(rs.Summary)
	return rs
}

func aggregate(sum []RegionStatus) string {
	state := ReplicationCompleted
	for _, r := range sum {
		switch r.State {
		case ReplicationFailed:
			return ReplicationFailed
		case ReplicationCompleted:
		default:
			state = AggregatedInProgress
		}
	}
	return state
}

// held counts, per region of targets, the replicas of d present with size bytes.
func (s *Service) held(ctx context.Context, d blob.Digest, size int64, targets []TargetRegion) (map[string]int, error) {
	out := map[string]int{}
	for _, t := range targets {
		r := s.regions[t.Name]
		if r == nil {
			continue
		}
		n, err := s.replicasIn(ctx, r, d, size, t.RegionalReplicaCount)
		if err != nil {
			return nil, err
		}
		out[t.Name] = n
	}
	return out, nil
}

// replicasIn counts the replicas 0..want-1 of d held in r with the right size.
func (s *Service) replicasIn(ctx context.Context, r *blob.Region, d blob.Digest, size int64, want int) (int, error) {
	n := 0
	for i := range want {
		got, err := r.Size(ctx, blob.ArtifactKey(d, i))
		if errors.Is(err, blob.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if got == size {
			n++
		}
	}
	return n, nil
}

// sortedRegions returns names in the configured order.
func (s *Service) sortedRegions(names []string) []string {
	pos := map[string]int{}
	for i, n := range s.order {
		pos[n] = i
	}
	out := slices.Clone(names)
	sort.SliceStable(out, func(i, j int) bool { return pos[out[i]] < pos[out[j]] })
	return out
}
