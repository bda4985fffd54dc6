package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gildhq/gild/agentproto"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// MaxWait bounds how long an assignments request is held.
const MaxWait = 5 * time.Minute

// load reads the machine's assignments and renders each as its agent runs it. An
// assignment that no longer renders (its configuration was removed from gild) is left
// out and logged; the rest still run.
func (s *Service) load(ctx context.Context, machineID resource.ID) (agentproto.Assignments, error) {
	items, err := store.ListAll(ctx, s.store, store.ListQuery{Scopes: []resource.ID{machineID}, Type: TypeAssignment})
	if err != nil {
		return agentproto.Assignments{}, fmt.Errorf("fleet: assignments of %s: %w", machineID, err)
	}
	out := agentproto.Assignments{Version: agentproto.Version, ReportIntervalSeconds: int(s.opts.ReportInterval / time.Second),
		Assignments: []agentproto.Assignment{}}
	for _, r := range items {
		id, err := resource.Parse(r.ID)
		if err != nil || !id.Parent().Equal(machineID) && !strings.EqualFold(machineOf(id).Key(), machineID.Key()) {
			continue
		}
		a, err := s.opts.Configurations.Agent(id.Name(), r.Properties)
		if err != nil {
			s.log.Warn("fleet: assignment cannot run", "assignment", r.ID, "err", err)
			continue
		}
		out.Assignments = append(out.Assignments, a)
	}
	sort.Slice(out.Assignments, func(i, j int) bool { return out.Assignments[i].Name < out.Assignments[j].Name })
	h := sha256.New()
	fmt.Fprintf(h, "%d\n", out.ReportIntervalSeconds)
	for _, a := range out.Assignments {
		fmt.Fprintf(h, "%s %s\n", a.Name, a.Hash)
	}
	// Bare, as gild's API shows ETags in bodies; HTTP quotes it in its header.
	out.ETag = hex.EncodeToString(h.Sum(nil)[:12])
	s.mu.Lock()
	s.etags[machineID.Key()] = out.ETag
	s.mu.Unlock()
	return out, nil
}

// machineOf is the machine an assignment is an extension of.
func machineOf(assignment resource.ID) resource.ID {
	c := assignment
	c.Providers = c.Providers[:len(c.Providers)-1]
	return c
}

// assignmentsETag is the ETag of the machine's assignments now, cached until they change.
func (s *Service) assignmentsETag(ctx context.Context, machineID resource.ID) (string, error) {
	s.mu.Lock()
	etag, ok := s.etags[machineID.Key()]
	s.mu.Unlock()
	if ok {
		return etag, nil
	}
	a, err := s.load(ctx, machineID)
	return a.ETag, err
}

// Assignments returns the machine's assignments. When etag is their current ETag and wait
// is positive, it waits up to wait for them to change; changed is false when they did not.
func (s *Service) Assignments(ctx context.Context, machineID resource.ID, etag string, wait time.Duration) (a agentproto.Assignments, changed bool, err error) {
	wait = min(wait, MaxWait)
	deadline := time.NewTimer(max(wait, 0))
	defer deadline.Stop()
	for {
		// Take the waiter before reading, so that a change between the read and the
		// wait is not missed.
		ch := s.waiter(machineID.Key())
		a, err = s.load(ctx, machineID)
		if err != nil {
			return a, false, err
		}
		if etag == "" || a.ETag != etag || wait <= 0 {
			return a, a.ETag != etag, nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			return a, false, nil
		case <-s.stopping:
			return a, false, nil
		case <-ctx.Done():
			return a, false, ctx.Err()
		}
	}
}

// waiter returns the channel closed when the machine's assignments next change.
func (s *Service) waiter(key string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.waiters[key]
	if ch == nil {
		ch = make(chan struct{})
		s.waiters[key] = ch
	}
	return ch
}

// changed wakes whoever waits for the machine's assignments and forgets their ETag.
func (s *Service) changed(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.etags, key)
	if ch := s.waiters[key]; ch != nil {
		close(ch)
		delete(s.waiters, key)
	}
}

// Events returns a machine's events (Machine set) or those of every machine under scopes,
// newest first.
func (s *Service) Events(ctx context.Context, q store.MachineEventQuery) ([]store.MachineEvent, error) {
	ev, err := s.store.MachineEvents(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("fleet: events: %w", err)
	}
	return ev, nil
}
