package compliance

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// scanBatch is how many resources one scan transaction evaluates: big enough that the
// per-transaction cost vanishes, small enough that writers wait only briefly.
const scanBatch = 500

// ScanResult says what a scan did.
type ScanResult struct {
	Scope       string `json:"scope"`
	Resources   int    `json:"resources"`
	States      int    `json:"states"`
	Transitions int    `json:"transitions"`
	Duration    string `json:"duration"`
}

// Scan evaluates every resource under scope against every assignment and records the
// states, writing only those that changed. Each batch is evaluated inside the transaction
// that records it, so a scan never overwrites the states of a write made meanwhile.
func (s *Service) Scan(ctx context.Context, scope resource.ID) (ScanResult, error) {
	start := time.Now()
	res := ScanResult{Scope: scope.String()}
	tree := s.tree()
	q := store.ListQuery{Scopes: tree.Expand(scope), Limit: scanBatch}
	if scope.IsRoot() {
		q.Scopes = nil
	}
	for {
		var next string
		err := s.store.Update(ctx, func(tx store.Tx) error {
			page, err := tx.List(ctx, q)
			if err != nil {
				return err
			}
			next = page.Next
			ids, states, err := s.evaluatePage(ctx, tx, tree, page.Items)
			if err != nil {
				return err
			}
			if len(ids) == 0 {
				return nil
			}
			ts, err := tx.ReplacePolicyStates(ctx, ids, nil, states)
			res.Resources += len(ids)
			res.States += len(states)
			res.Transitions += len(ts)
			return err
		})
		if err != nil {
			return res, fmt.Errorf("scan %s: %w", scope, err)
		}
		if next == "" {
			break
		}
		q.After = next
	}
	res.Duration = time.Since(start).Round(time.Millisecond).String()
	return res, nil
}

// scanWorkers is how many goroutines evaluate a batch: evaluation is CPU work between two
// store calls, so it uses the machine's cores while the batch's transaction is open.
var scanWorkers = max(1, runtime.GOMAXPROCS(0))

// evaluatePage evaluates a page of resources, split over scanWorkers goroutines each with
// its own evaluation (their caches are not shared), and returns the IDs evaluated and
// their states in page order.
func (s *Service) evaluatePage(ctx context.Context, r store.Reader, tree *resource.Hierarchy, items []*resource.Resource) ([]string, []store.PolicyState, error) {
	type result struct {
		id     string
		states []store.PolicyState
		ok     bool
	}
	results := make([]result, len(items))
	errs := make([]error, scanWorkers)
	var wg sync.WaitGroup
	chunk := (len(items) + scanWorkers - 1) / scanWorkers
	for w := 0; w < scanWorkers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, len(items))
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func(w, lo, hi int) {
			defer wg.Done()
			ev := s.Engine.newEvaluation(r, tree)
			for i := lo; i < hi; i++ {
				id, err := resource.Parse(items[i].ID)
				if err != nil || !Evaluable(id.Type()) {
					continue
				}
				st, err := ev.states(ctx, items[i])
				if err != nil {
					errs[w] = err
					return
				}
				results[i] = result{id: items[i].ID, states: st, ok: true}
			}
		}(w, lo, hi)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, nil, err
		}
	}
	var ids []string
	var states []store.PolicyState
	for _, r := range results {
		if r.ok {
			ids = append(ids, r.id)
			states = append(states, r.states...)
		}
	}
	return ids, states, nil
}

// Enqueue asks for a background scan of scope.
func (s *Service) Enqueue(scope resource.ID) {
	s.mu.Lock()
	s.pending[scope.Key()] = scope
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run scans in the background until ctx ends: queued scopes at once, every assignment's
// scope each Interval, and the scope of an exemption the moment it expires, so that it
// stops counting without anyone asking.
func (s *Service) Run(ctx context.Context) {
	go s.runGuestCreator(ctx)
	interval := s.Interval
	if interval == 0 {
		interval = time.Hour
	}
	periodic := time.NewTicker(max(interval, time.Second))
	defer periodic.Stop()
	if interval < 0 {
		// Full scans are started from outside (a durable job, once for all servers).
		periodic.Stop()
	}
	follow := time.NewTicker(time.Second)
	defer follow.Stop()
	for {
		expiry := time.NewTimer(time.Hour)
		if at, _ := s.Engine.NextExpiry(s.Engine.now()); !at.IsZero() {
			expiry.Reset(time.Until(at) + 50*time.Millisecond)
		}
		select {
		case <-ctx.Done():
			expiry.Stop()
			return
		case <-follow.C:
			s.followChanges(ctx)
		case <-s.kick:
		case <-periodic.C:
			s.queueAll()
		case <-expiry.C:
			// An exemption passed its expiresOn: rescan the scopes it covered.
			now := s.Engine.now()
			if _, scopes := s.Engine.NextExpiry(now.Add(-2 * time.Second)); len(scopes) > 0 {
				for _, sc := range scopes {
					s.Enqueue(sc)
				}
			}
		}
		expiry.Stop()
		s.drain(ctx)
	}
}

// ScanAll queues a scan of every assignment's scope; Run carries it out.
func (s *Service) ScanAll() { s.queueAll() }

func (s *Service) queueAll() {
	for _, sc := range s.Engine.AssignmentScopes() {
		s.Enqueue(sc)
	}
}

// drain scans every queued scope, the outermost first, skipping those a scanned scope
// already covers.
func (s *Service) drain(ctx context.Context) {
	s.mu.Lock()
	var scopes []resource.ID
	for _, sc := range s.pending {
		scopes = append(scopes, sc)
	}
	s.pending = map[string]resource.ID{}
	s.mu.Unlock()
	tree := s.tree()
	for _, sc := range outermostScopes(scopes, tree) {
		if ctx.Err() != nil {
			return
		}
		r, err := s.Scan(ctx, sc)
		if err != nil {
			s.log.Warn("background compliance scan failed", "scope", sc.String(), "err", err)
			continue
		}
		s.log.Info("compliance scan", "scope", r.Scope, "resources", r.Resources, "transitions", r.Transitions, "took", r.Duration)
	}
}

func outermostScopes(scopes []resource.ID, tree *resource.Hierarchy) []resource.ID {
	var out []resource.ID
	for i, s := range scopes {
		covered := false
		for j, o := range scopes {
			if i != j && tree.Contains(o, s) && !(tree.Contains(s, o) && j > i) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, s)
		}
	}
	return out
}
