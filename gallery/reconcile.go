package gallery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gildhq/gild/blob"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// Run reconciles until ctx ends: it moves versions through their lifecycle states,
// replicates versions to their target regions (resuming whatever a stopped server left
// unfinished), verifies replicas on Options.VerifyInterval, and collects artifacts no
// version refers to.
func (s *Service) Run(ctx context.Context) {
	if err := s.Load(ctx); err != nil {
		s.log.Warn("gallery: load", "err", err)
	}
	interval := s.opts.ReconcileInterval
	if interval <= 0 {
		interval = time.Minute
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	follow := time.NewTicker(time.Second)
	defer follow.Stop()
	var workers sync.WaitGroup
	defer workers.Wait()
	s.Kick()
	for {
		select {
		case <-ctx.Done():
			return
		case <-follow.C:
			s.followChanges(ctx)
			continue
		case <-s.kick:
		case <-tick.C:
		}
		s.reconcile(ctx, &workers)
	}
}

func (s *Service) reconcile(ctx context.Context, workers *sync.WaitGroup) {
	if s.writer == nil {
		return
	}
	now := s.now()
	ix := s.idx.Load()
	var changedDefs []resource.ID
	for _, d := range ix.defs {
		states := States(d.props, d.versions, now)
		changed := false
		for _, e := range d.versions {
			want, ok := states[e.Version.String()]
			if !ok || (e.Props.Lifecycle != nil && e.Props.Lifecycle.State == want.State && e.Props.Lifecycle.Reason == want.Reason) {
				continue
			}
			if err := s.setLifecycle(ctx, e.ID, want); err != nil {
				s.log.Warn("gallery: lifecycle", "version", e.ID, "err", err)
			}
			changed = true
		}
		if changed {
			changedDefs = append(changedDefs, d.id)
		}
	}
	if len(changedDefs) > 0 && s.opts.Reevaluate != nil {
		scopes, err := s.vmScopes(ctx, changedDefs)
		if err != nil {
			s.log.Warn("gallery: find VMs to evaluate again", "err", err)
		}
		for _, sc := range scopes {
			s.opts.Reevaluate(sc)
		}
	}
	for _, d := range ix.defs {
		for _, e := range d.versions {
			if e.Props.ProvisioningState != ProvisioningSucceeded || e.Props.ReplicationStatus == nil ||
				e.Props.ReplicationStatus.AggregatedState == ReplicationCompleted {
				continue
			}
			s.startReplication(ctx, workers, e.ID)
		}
	}
	if s.opts.VerifyInterval >= 0 {
		every := s.opts.VerifyInterval
		if every == 0 {
			every = 24 * time.Hour
		}
		s.mu.Lock()
		due := s.lastScan.IsZero() || now.Sub(s.lastScan) >= every
		if s.lastScan.IsZero() {
			s.lastScan = now // the first full verification waits one interval after start
			due = false
		}
		if due {
			s.lastScan = now
		}
		s.mu.Unlock()
		if due {
			workers.Add(1)
			go func() {
				defer workers.Done()
				if _, err := s.VerifyAll(ctx); err != nil {
					s.log.Warn("gallery: verify", "err", err)
				}
			}()
		}
	}
	if now.Sub(s.lastGC) >= time.Hour {
		s.lastGC = now
		if err := s.collect(ctx); err != nil {
			s.log.Warn("gallery: collect unused artifacts", "err", err)
		}
	}
}

func (s *Service) setLifecycle(ctx context.Context, id string, want Lifecycle) error {
	rid, err := resource.Parse(id)
	if err != nil {
		return err
	}
	return s.writer.Update(internal(ctx), rid, func(r *resource.Resource) (bool, error) {
		var p VersionProperties
		if err := json.Unmarshal(r.Properties, &p); err != nil {
			return false, err
		}
		if p.Lifecycle != nil && p.Lifecycle.State == want.State && p.Lifecycle.Reason == want.Reason {
			return false, nil
		}
		l := want
		l.Since = s.now().UTC()
		if p.Lifecycle != nil && p.Lifecycle.State == want.State {
			l.Since = p.Lifecycle.Since
		}
		p.Lifecycle = &l
		r.Properties = marshalProps(p)
		s.log.Info("gallery: lifecycle", "version", id, "state", l.State, "reason", l.Reason)
		return true, nil
	})
}

func (s *Service) startReplication(ctx context.Context, workers *sync.WaitGroup, id string) {
	key := strings.ToLower(id)
	if dispatch := s.dispatch.Load(); dispatch != nil {
		// A durable job replicates it, on whichever server takes it; the job is unique
		// while it waits or runs, so asking again on every look is harmless.
		if err := (*dispatch)(ctx, id); err != nil && ctx.Err() == nil {
			s.log.Warn("gallery: queue a replication", "version", id, "err", err)
		}
		return
	}
	limit := s.opts.Workers
	if limit <= 0 {
		limit = 2
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running[key] || s.replicating() >= limit || s.now().Before(s.retryAt[key]) {
		return
	}
	s.running[key] = true
	workers.Add(1)
	go func() {
		defer workers.Done()
		err := s.Replicate(ctx, id)
		s.mu.Lock()
		delete(s.running, key)
		delete(s.progress, key)
		if err != nil && ctx.Err() == nil {
			s.failures[key]++
			delay := min(5*time.Second<<min(s.failures[key]-1, 6), 5*time.Minute)
			s.retryAt[key] = s.now().Add(delay)
			s.log.Warn("gallery: replication failed; will retry", "version", id, "in", delay, "err", err)
			time.AfterFunc(delay, s.Kick)
		} else {
			delete(s.failures, key)
			delete(s.retryAt, key)
		}
		s.mu.Unlock()
		s.Kick() // the next version may be waiting for a worker
	}()
}

// SetDispatch hands replication to a job system: f queues the replication of a version,
// and the job calls ReplicateJob.
func (s *Service) SetDispatch(f func(ctx context.Context, id string) error) { s.dispatch.Store(&f) }

// ReplicateJob replicates version id in this process for the job system, with the same
// bookkeeping (progress, one worker per version) as the gallery's own workers.
func (s *Service) ReplicateJob(ctx context.Context, id string) error {
	key := strings.ToLower(id)
	s.mu.Lock()
	if s.running[key] {
		s.mu.Unlock()
		return fmt.Errorf("gallery: %s is already replicating in this process", id)
	}
	s.running[key] = true
	s.mu.Unlock()
	err := s.Replicate(ctx, id)
	s.mu.Lock()
	delete(s.running, key)
	delete(s.progress, key)
	s.mu.Unlock()
	return err
}

// replicating counts the replication workers running; s.mu is held.
func (s *Service) replicating() int {
	n := 0
	for k := range s.running {
		if !strings.HasPrefix(k, "verify:") {
			n++
		}
	}
	return n
}

// Replicate copies version id's artifact to every target region replica it is missing,
// reading one good replica once and writing all the missing ones at the same time, each
// checked by SHA-256 before it is committed. A source found corrupt on the way is deleted
// (verification and replication then restore it) and the next source is tried.
func (s *Service) Replicate(ctx context.Context, id string) error {
	rid, err := resource.Parse(id)
	if err != nil {
		return err
	}
	res, err := s.store.Get(ctx, rid)
	if err != nil {
		if store.IsNotFound(err) {
			return nil
		}
		return err
	}
	e, err := entryOf(res)
	if err != nil {
		return err
	}
	d, size := e.Props.Digest(), e.Props.StorageProfile.OSDiskImage.SizeInBytes
	var missing []blob.Target
	regionErr := map[string]string{}
	for _, t := range e.Props.Targets() {
		r := s.regions[t.Name]
		if r == nil {
			regionErr[t.Name] = "region " + t.Name + " is not configured on this server"
			continue
		}
		for i := range t.RegionalReplicaCount {
			got, err := r.Size(ctx, blob.ArtifactKey(d, i))
			if err != nil && !isNotFound(err) {
				regionErr[t.Name] = err.Error()
				continue
			}
			if err != nil || got != size {
				missing = append(missing, blob.Target{Region: r, Key: blob.ArtifactKey(d, i)})
			}
		}
	}
	var copyErr error
	if len(missing) > 0 {
		copyErr = s.copyTo(ctx, rid, d, size, missing, regionErr)
	}
	if err := s.updateStatus(ctx, rid, regionErr); err != nil {
		return err
	}
	if copyErr != nil {
		return copyErr
	}
	if len(regionErr) > 0 {
		return fmt.Errorf("replicate %s: %d regions failed", id, len(regionErr))
	}
	return nil
}

// copyTo writes the missing replicas from the first good source.
func (s *Service) copyTo(ctx context.Context, id resource.ID, d blob.Digest, size int64, missing []blob.Target, regionErr map[string]string) error {
	isMissing := map[string]bool{}
	for _, m := range missing {
		isMissing[m.String()] = true
	}
	var sources []blob.Target
	for _, name := range s.order {
		r := s.regions[name]
		objs, err := r.List(ctx, blob.ArtifactPrefix(d))
		if err != nil {
			continue
		}
		for _, o := range objs {
			if _, _, ok := blob.ParseArtifactKey(o.Key); ok && o.Size == size && !isMissing[name+":"+o.Key] {
				sources = append(sources, blob.Target{Region: r, Key: o.Key})
			}
		}
	}
	if len(sources) == 0 {
		for _, m := range missing {
			regionErr[m.Region.Name] = "no intact replica of the artifact is left in any region"
		}
		return fmt.Errorf("replicate %s: no intact replica of artifact %s is left", id, d)
	}
	key := strings.ToLower(id.String())
	stop := make(chan struct{})
	defer close(stop)
	go s.reportProgress(ctx, id, key, size, missing, stop)
	var lastErr error
	for _, src := range sources {
		rd, err := src.Region.Open(ctx, src.Key)
		if err != nil {
			lastErr = err
			continue
		}
		res, err := blob.Write(ctx, rd, blob.Expect{Digest: d, Size: size}, missing, func(n int64) {
			s.mu.Lock()
			if s.progress[key] == nil {
				s.progress[key] = map[string]int64{}
			}
			for _, m := range missing {
				s.progress[key][m.Region.Name] = n
			}
			s.mu.Unlock()
		})
		rd.Close()
		if errors.Is(err, blob.ErrMismatch) {
			s.log.Warn("gallery: a replica is corrupt; deleting it so it is replaced", "replica", src.String(), "err", err)
			if derr := src.Region.Delete(ctx, src.Key); derr != nil {
				s.log.Warn("gallery: delete corrupt replica", "replica", src.String(), "err", derr)
			}
			lastErr = err
			continue
		}
		if err != nil {
			lastErr = err
			continue
		}
		for i, ferr := range res.Failed {
			regionErr[missing[i].Region.Name] = ferr.Error()
		}
		s.log.Info("gallery: replicated", "version", id.String(), "from", src.String(), "replicas", len(missing)-len(res.Failed))
		return nil
	}
	for _, m := range missing {
		regionErr[m.Region.Name] = fmt.Sprint(lastErr)
	}
	return fmt.Errorf("replicate %s: %w", id, lastErr)
}

// reportProgress writes the copy's progress into the version every few seconds, so that
// clients following it see it move.
func (s *Service) reportProgress(ctx context.Context, id resource.ID, key string, size int64, missing []blob.Target, stop chan struct{}) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		prog := map[string]int{}
		for region, n := range s.progress[key] {
			prog[region] = int(n * 100 / max(size, 1))
		}
		s.mu.Unlock()
		_ = s.writer.Update(internal(ctx), id, func(r *resource.Resource) (bool, error) {
			var p VersionProperties
			if err := json.Unmarshal(r.Properties, &p); err != nil || p.ReplicationStatus == nil {
				return false, err
			}
			changed := false
			for i := range p.ReplicationStatus.Summary {
				st := &p.ReplicationStatus.Summary[i]
				if pr, ok := prog[st.Region]; ok && st.State != ReplicationCompleted && pr < 100 && st.Progress != pr {
					st.Progress, st.State, changed = pr, ReplicationReplicating, true
				}
			}
			if changed {
				p.ReplicationStatus.AggregatedState = aggregate(p.ReplicationStatus.Summary)
				r.Properties = marshalProps(p)
			}
			return changed, nil
		})
	}
}

// updateStatus rewrites version id's replication status from what the regions hold.
func (s *Service) updateStatus(ctx context.Context, id resource.ID, regionErr map[string]string) error {
	if s.writer == nil {
		return errors.New("gallery: no writer")
	}
	return s.writer.Update(internal(ctx), id, func(r *resource.Resource) (bool, error) {
		var p VersionProperties
		if err := json.Unmarshal(r.Properties, &p); err != nil {
			return false, err
		}
		targets := p.Targets()
		held, err := s.held(ctx, p.Digest(), p.StorageProfile.OSDiskImage.SizeInBytes, targets)
		if err != nil {
			return false, err
		}
		rs := regionStatuses(targets, held, nil)
		for i := range rs.Summary {
			st := &rs.Summary[i]
			if msg, ok := regionErr[st.Region]; ok && st.State != ReplicationCompleted {
				st.State, st.Details = ReplicationFailed, msg
			}
		}
		rs.AggregatedState = aggregate(rs.Summary)
		before, _ := json.Marshal(p.ReplicationStatus)
		after, _ := json.Marshal(rs)
		if string(before) == string(after) {
			return false, nil
		}
		p.ReplicationStatus = rs
		r.Properties = marshalProps(p)
		return true, nil
	})
}

// ReplicaCheck is the verification of one replica.
type ReplicaCheck struct {
	Region  string `json:"region"`
	Replica int    `json:"replica"`
	Status  string `json:"status"` // ok, missing, corrupt, error
	Detail  string `json:"detail,omitempty"`
}

// VerifyReport is what a verification found.
type VerifyReport struct {
	VersionID string         `json:"versionId"`
	SHA256    string         `json:"sha256"`
	Replicas  []ReplicaCheck `json:"replicas"`
	// Repairing is true when bad replicas were removed and replication was started to
	// replace them.
	Repairing bool `json:"repairing"`
}

// Verify reads every replica of version id back and checks its SHA-256. A corrupt replica
// is deleted and the version goes back to replicating, which restores it from a good one.
func (s *Service) Verify(ctx context.Context, id resource.ID) (VerifyReport, error) {
	return s.verify(ctx, id, map[string]string{})
}

func (s *Service) verify(ctx context.Context, id resource.ID, seen map[string]string) (VerifyReport, error) {
	res, err := s.store.Get(ctx, id)
	if err != nil {
		if store.IsNotFound(err) {
			return VerifyReport{}, resource.Errorf(CodeVersionNotFound, id.String(), "image version %s does not exist", id)
		}
		return VerifyReport{}, err
	}
	e, err := entryOf(res)
	if err != nil {
		return VerifyReport{}, err
	}
	d, size := e.Props.Digest(), e.Props.StorageProfile.OSDiskImage.SizeInBytes
	rep := VerifyReport{VersionID: res.ID, SHA256: string(d)}
	bad := false
	for _, t := range e.Props.Targets() {
		r := s.regions[t.Name]
		if r == nil {
			rep.Replicas = append(rep.Replicas, ReplicaCheck{Region: t.Name, Status: "error", Detail: "region not configured on this server"})
			continue
		}
		for i := range t.RegionalReplicaCount {
			key := blob.ArtifactKey(d, i)
			status, ok := seen[r.Name+":"+key]
			if !ok {
				got, n, err := r.Hash(ctx, key, nil)
				switch {
				case isNotFound(err):
					status = "missing"
				case err != nil:
					status = "error: " + err.Error()
				case got != d || n != size:
					status = "corrupt"
					s.log.Warn("gallery: corrupt replica found; deleting it so it is replaced", "region", r.Name, "key", key, "sha256", got, "size", n)
					if err := r.Delete(ctx, key); err != nil {
						s.log.Warn("gallery: delete corrupt replica", "err", err)
					}
				default:
					status = "ok"
				}
				seen[r.Name+":"+key] = status
			}
			c := ReplicaCheck{Region: r.Name, Replica: i, Status: status}
			if st, detail, ok := strings.Cut(status, ": "); ok {
				c.Status, c.Detail = st, detail
			}
			if c.Status == "corrupt" {
				c.Detail = "its SHA-256 no longer matches; it was deleted and will be copied again from an intact replica"
			}
			if c.Status != "ok" && c.Status != "error" {
				bad = true
			}
			rep.Replicas = append(rep.Replicas, c)
		}
	}
	if bad {
		rep.Repairing = true
		if err := s.updateStatus(ctx, id, nil); err != nil {
			return rep, err
		}
		s.mu.Lock()
		delete(s.retryAt, strings.ToLower(id.String()))
		s.mu.Unlock()
		s.Kick()
	}
	return rep, nil
}

// VerifyAll verifies every version's replicas, each replica once.
func (s *Service) VerifyAll(ctx context.Context) ([]VerifyReport, error) {
	seen := map[string]string{}
	var out []VerifyReport
	for _, d := range s.idx.Load().defs {
		for _, e := range d.versions {
			if e.Props.ProvisioningState != ProvisioningSucceeded {
				continue
			}
			id, err := resource.Parse(e.ID)
			if err != nil {
				continue
			}
			rep, err := s.verify(ctx, id, seen)
			if err != nil {
				return out, err
			}
			out = append(out, rep)
		}
	}
	return out, nil
}

// collect deletes artifacts and unfinished writes that no version needs, once they are
// older than the grace period (an upload waits there for its version).
func (s *Service) collect(ctx context.Context) error {
	grace := s.opts.GCGrace
	if grace <= 0 {
		grace = 24 * time.Hour
	}
	vers, err := store.ListAll(ctx, s.store, store.ListQuery{Type: TypeVersion})
	if err != nil {
		return err
	}
	wanted := map[string]int{} // region:digest → replicas wanted
	for _, v := range vers {
		e, err := entryOf(v)
		if err != nil {
			continue
		}
		for _, t := range e.Props.Targets() {
			k := t.Name + ":" + string(e.Props.Digest())
			wanted[k] = max(wanted[k], t.RegionalReplicaCount)
		}
	}
	cutoff := s.now().Add(-grace)
	for _, name := range s.order {
		r := s.regions[name]
		objs, err := r.List(ctx, "artifacts/")
		if err != nil {
			return err
		}
		for _, o := range objs {
			if o.ModTime.After(cutoff) {
				continue
			}
			if d, n, ok := blob.ParseArtifactKey(o.Key); ok && n < wanted[name+":"+string(d)] {
				continue
			}
			s.log.Info("gallery: deleting an artifact no version needs", "region", name, "key", o.Key)
			if err := r.Delete(ctx, o.Key); err != nil {
				return err
			}
		}
	}
	return nil
}

// Suspect verifies version id in the background, when something (a pull whose bytes did
// not hash to the version's SHA-256) suggests a replica went bad.
func (s *Service) Suspect(id resource.ID) {
	key := "verify:" + strings.ToLower(id.String())
	s.mu.Lock()
	if s.running[key] {
		s.mu.Unlock()
		return
	}
	s.running[key] = true
	s.mu.Unlock()
	go func() {
		defer func() {
			s.mu.Lock()
			delete(s.running, key)
			s.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		if rep, err := s.Verify(ctx, id); err != nil {
			s.log.Warn("gallery: verify a suspect version", "version", id.String(), "err", err)
		} else if rep.Repairing {
			s.log.Warn("gallery: a pull found a bad replica; it is being replaced", "version", id.String())
		}
	}()
}

// vmScopes returns the resource groups of the VMs whose image is one of defs or a version
// of one of them.
func (s *Service) vmScopes(ctx context.Context, defs []resource.ID) ([]resource.ID, error) {
	vms, err := store.ListAll(ctx, s.store, store.ListQuery{Type: TypeVM})
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, d := range defs {
		want[strings.ToLower(d.String())] = true
	}
	seen := map[string]bool{}
	var out []resource.ID
	for _, vm := range vms {
		ref, _ := vmImage(vm.Properties)
		id, err := resource.Parse(ref.ID)
		if err != nil {
			continue
		}
		if strings.EqualFold(id.Type(), TypeVersion) {
			id = id.Parent()
		}
		if !want[strings.ToLower(id.String())] {
			continue
		}
		vid, err := resource.Parse(vm.ID)
		if err != nil {
			continue
		}
		rg := resource.ResourceGroupID(vid.Subscription, vid.ResourceGroup)
		if !seen[rg.Key()] {
			seen[rg.Key()] = true
			out = append(out, rg)
		}
	}
	return out, nil
}
