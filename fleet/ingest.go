package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/gildhq/gild/agentproto"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// ingest is one report waiting for its batch's transaction.
type ingest struct {
	key    string
	m      *machine // the index entry when the report was accepted
	rep    agentproto.Report
	stored []byte // the report as stored: without its events
	at     time.Time
	// Filled by the batch writer.
	duplicate bool
	err       error
	done      chan struct{}
}

// followup is work a committed report leaves: assignment results to write into their
// resources, a machine to evaluate again.
type followup struct {
	machineID   string
	assignments []agentproto.AssignmentReport
	reevaluate  bool
}

// Authenticate returns the ID of the machine whose agent holds credential.
func (s *Service) Authenticate(ctx context.Context, credential string) (resource.ID, error) {
	fail := resource.Errorf(resource.CodeAuthenticationFailed, "Authorization", "the agent credential is not valid or was revoked (the machine was deleted?); enroll again")
	if !strings.HasPrefix(credential, CredentialPrefix) || len(credential) > 200 {
		return resource.ID{}, fail
	}
	hash := HashSecret(credential)
	s.mu.Lock()
	key, ok := s.byCred[hash]
	var id string
	if ok {
		id = s.machines[key].id
	}
	s.mu.Unlock()
	if !ok {
		// Another server may have enrolled it.
		m, err := s.store.MachineByCredential(ctx, hash)
		if store.IsNotFound(err) {
			return resource.ID{}, fail
		}
		if err != nil {
			return resource.ID{}, fmt.Errorf("fleet: authenticate: %w", err)
		}
		s.mu.Lock()
		id = s.indexLocked(m).id
		s.mu.Unlock()
	}
	return resource.Parse(id)
}

// Report ingests a report from the agent of machine id (see Authenticate). It returns once
// the report is committed, together with others that arrived within the batch window.
func (s *Service) Report(ctx context.Context, id resource.ID, rep agentproto.Report) (agentproto.ReportResponse, error) {
	if err := rep.Validate(); err != nil {
		return agentproto.ReportResponse{}, fmt.Errorf("fleet: report: %w", resource.Errorf(resource.CodeInvalidRequestContent, "report", "%v", err))
	}
	key := id.Key()
	s.mu.Lock()
	m := s.machines[key]
	s.mu.Unlock()
	if m == nil {
		return agentproto.ReportResponse{}, fmt.Errorf("fleet: report: %w", resource.Errorf(resource.CodeAuthenticationFailed, "Authorization", "machine %s is not enrolled", id))
	}
	stored := rep
	stored.Events = nil
	raw, err := json.Marshal(stored)
	if err != nil {
		return agentproto.ReportResponse{}, fmt.Errorf("fleet: report: %w", err)
	}
	in := &ingest{key: key, m: m, rep: rep, stored: raw, at: s.opts.Now().UTC(), done: make(chan struct{})}
	select {
	case s.batch <- in:
	case <-ctx.Done():
		return agentproto.ReportResponse{}, ctx.Err()
	}
	select {
	case <-in.done:
	case <-ctx.Done():
		// The report may still commit; the agent resends it with the same ID, which is
		// then acknowledged as a duplicate.
		return agentproto.ReportResponse{}, ctx.Err()
	}
	if in.err != nil {
		return agentproto.ReportResponse{}, fmt.Errorf("fleet: report: %w", in.err)
	}
	etag, err := s.assignmentsETag(ctx, id)
	if err != nil {
		return agentproto.ReportResponse{}, fmt.Errorf("fleet: report: %w", err)
	}
	return agentproto.ReportResponse{Version: agentproto.Version, Duplicate: in.duplicate, AssignmentsETag: etag,
		ReportIntervalSeconds: int(s.opts.ReportInterval / time.Second)}, nil
}

// Run writes reports in batches and carries out their follow-ups until ctx ends.
func (s *Service) Run(ctx context.Context) {
	go s.runFollowups(ctx)
	for {
		var first *ingest
		select {
		case first = <-s.batch:
		case <-ctx.Done():
			return
		}
		batch := []*ingest{first}
		timer := time.NewTimer(s.opts.BatchWindow)
	collect:
		for len(batch) < s.opts.MaxBatch {
			select {
			case in := <-s.batch:
				batch = append(batch, in)
			case <-timer.C:
				break collect
			}
		}
		timer.Stop()
		s.writeBatch(ctx, batch)
	}
}

// writeBatch commits a batch of reports in one transaction, then updates the index and
// queues what changed. Reports of one machine in one batch are applied in order.
func (s *Service) writeBatch(ctx context.Context, batch []*ingest) {
	type plan struct {
		in    *ingest
		put   *store.Machine
		fresh bool // newer than what the machine last reported
	}
	plans := make([]plan, len(batch))
	s.confirmDeleted(ctx, batch)
	last := map[string]struct {
		id string
		at time.Time
	}{}
	s.mu.Lock()
	for i, in := range batch {
		m := s.machines[in.key]
		if m == nil || s.deleted[in.key] {
			in.err = resource.Errorf(resource.CodeAuthenticationFailed, "Authorization", "machine %s is no longer enrolled", in.m.id)
			continue
		}
		prev, seen := last[in.key]
		if !seen {
			prev.id, prev.at = m.lastReportID, m.lastReportAt
		}
		switch {
		case in.rep.ID == prev.id:
			in.duplicate = true
		case !prev.at.IsZero() && in.rep.Time.Before(prev.at):
			// A report older than the last one (resent from a spool after a newer one
			// arrived): its events count, its state does not.
			plans[i] = plan{in: in}
		default:
			plans[i] = plan{in: in, fresh: true, put: &store.Machine{ID: m.id, CredentialHash: m.credHash, EnrolledAt: m.enrolledAt,
				LastSeen: in.at, LastReportID: in.rep.ID, LastReportAt: in.rep.Time, Report: in.stored}}
			last[in.key] = struct {
				id string
				at time.Time
			}{in.rep.ID, in.rep.Time}
		}
	}
	s.mu.Unlock()
	err := s.store.Update(ctx, func(tx store.Tx) error {
		for _, p := range plans {
			if p.in == nil {
				continue
			}
			if p.put != nil {
				if err := tx.PutMachine(ctx, *p.put); err != nil {
					return err
				}
			}
			if len(p.in.rep.Events) > 0 {
				events := make([]store.MachineEvent, len(p.in.rep.Events))
				for j, e := range p.in.rep.Events {
					events[j] = store.MachineEvent{MachineID: p.in.m.id, EventID: e.ID, At: e.Time, Kind: e.Kind, Assignment: e.Assignment,
						Check: e.Check, Target: e.Target, Before: e.Before, After: e.After, Message: e.Message}
				}
				if _, err := tx.AddMachineEvents(ctx, events); err != nil {
					return err
				}
			}
		}
		return nil
	})
	var follow []followup
	s.mu.Lock()
	for _, p := range plans {
		if p.in == nil {
			continue
		}
		if err != nil {
			p.in.err = err
			continue
		}
		if !p.fresh {
			continue
		}
		m := s.machines[p.in.key]
		if m == nil {
			continue
		}
		rep := p.in.rep
		m.lastSeen, m.lastReportID, m.lastReportAt, m.facts = p.in.at, rep.ID, rep.Time, rep.Facts
		f := followup{machineID: m.id}
		tattoo, digest := parseTattoo(rep.Tattoo)
		if digest != m.tattooDigest {
			m.tattoo, m.tattooDigest = tattoo, digest
			f.reevaluate = true
		}
		for _, a := range rep.Assignments {
			d := assignmentDigest(a)
			k := strings.ToLower(a.Name)
			if m.assignments[k] != d {
				m.assignments[k] = d
				f.assignments = append(f.assignments, a)
			}
		}
		if f.reevaluate || len(f.assignments) > 0 {
			follow = append(follow, f)
		}
	}
	s.mu.Unlock()
	for _, in := range batch {
		close(in.done)
	}
	for _, f := range follow {
		select {
		case s.followups <- f:
		default:
			// A full queue: the next report of the machine carries the same results, and
			// the periodic scan evaluates it anyway; do not block ingestion.
			s.log.Warn("fleet: follow-up queue full; dropped one", "machine", f.machineID)
			s.mu.Lock()
			if m := s.machines[strings.ToLower(f.machineID)]; m != nil {
				for _, a := range f.assignments {
					delete(m.assignments, strings.ToLower(a.Name))
				}
				if f.reevaluate {
					m.tattooDigest = ""
				}
			}
			s.mu.Unlock()
		}
	}
}

// confirmDeleted clears the deleted mark of machines whose deletion was rolled back: the
// mark is set inside the deleting transaction, before anyone knows whether it commits.
func (s *Service) confirmDeleted(ctx context.Context, batch []*ingest) {
	var marked []*ingest
	s.mu.Lock()
	for _, in := range batch {
		if s.deleted[in.key] {
			marked = append(marked, in)
		}
	}
	s.mu.Unlock()
	for _, in := range marked {
		if _, err := s.store.Machine(ctx, in.m.id); err == nil {
			s.mu.Lock()
			delete(s.deleted, in.key)
			s.mu.Unlock()
		}
	}
}

// runFollowups writes assignment results into their resources (which makes the policy
// engine evaluate the machine again) and asks for evaluations after a tattoo changed.
func (s *Service) runFollowups(ctx context.Context) {
	for {
		var f followup
		select {
		case f = <-s.followups:
		case <-ctx.Done():
			return
		}
		id, err := resource.Parse(f.machineID)
		if err != nil {
			continue
		}
		for _, a := range f.assignments {
			if err := s.writeAssignmentResult(ctx, id, a); err != nil && ctx.Err() == nil {
				s.log.Warn("fleet: write assignment result", "machine", f.machineID, "assignment", a.Name, "err", err)
			}
		}
		if f.reevaluate && s.reevaluate != nil {
			s.reevaluate(id)
		}
	}
}

// reportKey marks a context whose writes carry an agent's results, so that the assignment
// hook accepts the fields only the server may set.
type reportKey struct{}

// writeAssignmentResult puts an agent's result into the assignment resource, in the shape
// of Azure machine configuration: complianceStatus, latestAssignmentReport and
// lastComplianceStatusChecked. A result for another version of the assignment is stale and
// dropped.
func (s *Service) writeAssignmentResult(ctx context.Context, machineID resource.ID, a agentproto.AssignmentReport) error {
	if s.writer == nil {
		return nil
	}
	id := machineID.Child(TypeAssignment, a.Name)
	err := s.writer.Update(context.WithValue(ctx, reportKey{}, true), id, func(r *resource.Resource) (bool, error) {
		var props map[string]any
		if err := json.Unmarshal(r.Properties, &props); err != nil || props == nil {
			return false, nil
		}
		// A result for another version of the assignment (changed since the agent ran it)
		// is stale: the agent runs the new one at once and reports again.
		if cur, err := s.opts.Configurations.Agent(id.Name(), r.Properties); err != nil || (a.Hash != "" && cur.Hash != a.Hash) {
			return false, nil
		}
		resources := make([]map[string]any, 0, len(a.Resources))
		for _, res := range a.Resources {
			reasons := make([]map[string]any, 0, len(res.Reasons))
			for _, why := range res.Reasons {
				reasons = append(reasons, map[string]any{"code": why.Code, "phrase": why.Phrase})
			}
			item := map[string]any{"resourceId": res.ResourceID, "complianceStatus": res.ComplianceStatus, "reasons": reasons}
			if res.Expected != "" || res.Actual != "" {
				item["properties"] = map[string]any{"expected": res.Expected, "actual": res.Actual}
			}
			resources = append(resources, item)
		}
		props["complianceStatus"] = a.ComplianceStatus
		props["lastComplianceStatusChecked"] = a.EndTime.UTC().Format(time.RFC3339)
		props["latestAssignmentReport"] = map[string]any{
			"complianceStatus": a.ComplianceStatus,
			"startTime":        a.StartTime.UTC().Format(time.RFC3339),
			"endTime":          a.EndTime.UTC().Format(time.RFC3339),
			"operationType":    a.OperationType,
			"resources":        resources,
		}
		raw, err := json.Marshal(props)
		if err != nil {
			return false, err
		}
		r.Properties = raw
		return true, nil
	})
	if store.IsNotFound(err) {
		return nil // the assignment was deleted meanwhile
	}
	return err
}
