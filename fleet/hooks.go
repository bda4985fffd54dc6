package fleet

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// The fields of a guestConfigurationAssignment only the server writes: a client's values
// are ignored, the stored ones kept while the assignment stays the same.
var serverFields = []string{"complianceStatus", "latestAssignmentReport", "lastComplianceStatusChecked", "complianceReason", "latestReportId"}

// BeforeWrite validates guestConfigurationAssignments and keeps their results.
func (s *Service) BeforeWrite(ctx context.Context, _ store.Tx, _ *resource.Hierarchy, old, next *resource.Resource) (*resource.Resource, error) {
	id, err := resource.Parse(next.ID)
	if err != nil || !strings.EqualFold(id.Type(), TypeAssignment) {
		return next, nil
	}
	if !IsMachineType(machineOf(id).Type()) {
		return nil, resource.Errorf(resource.CodeInvalidResourceType, next.ID, "a guestConfigurationAssignment belongs to a virtual machine or a hybrid machine")
	}
	var in map[string]any
	if err := json.Unmarshal(next.Properties, &in); err != nil || in == nil {
		in = map[string]any{}
	}
	results := map[string]any{}
	for _, f := range serverFields {
		if v, ok := in[f]; ok {
			results[f] = v
			delete(in, f)
		}
	}
	clean, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	norm, err := s.opts.Configurations.Normalize(clean)
	if err != nil {
		return nil, err
	}
	var props map[string]any
	if err := json.Unmarshal(norm, &props); err != nil {
		return nil, err
	}
	var prev map[string]any
	if old != nil {
		_ = json.Unmarshal(old.Properties, &prev)
	}
	same := prev != nil && prev["assignmentHash"] == props["assignmentHash"]
	switch {
	case ctx.Value(reportKey{}) != nil && same:
		// An agent's result for this very assignment.
		for k, v := range results {
			props[k] = v
		}
	case same:
		for _, f := range serverFields {
			if v, ok := prev[f]; ok {
				props[f] = v
			}
		}
	default:
		// New, or changed: nothing has run it yet.
		props["complianceStatus"] = "Pending"
	}
	props["provisioningState"] = "Succeeded"
	raw, err := json.Marshal(props)
	if err != nil {
		return nil, err
	}
	next.Properties = raw
	return next, nil
}

// AfterWrite does nothing: fleet acts on committed changes.
func (s *Service) AfterWrite(context.Context, store.Tx, *resource.Hierarchy, *resource.Resource) error {
	return nil
}

// BeforeDelete does nothing.
func (s *Service) BeforeDelete(context.Context, store.Tx, *resource.Hierarchy, *resource.Resource) error {
	return nil
}

// AfterDelete forgets a deleted machine's agent in the same transaction: its credential
// stops working and its events go.
func (s *Service) AfterDelete(ctx context.Context, tx store.Tx, _ *resource.Hierarchy, deleted *resource.Resource) error {
	id, err := resource.Parse(deleted.ID)
	if err != nil || !IsMachineType(id.Type()) {
		return nil
	}
	if err := tx.DeleteMachine(ctx, id.String()); err != nil {
		return err
	}
	s.mu.Lock()
	s.deleted[id.Key()] = true
	s.mu.Unlock()
	return nil
}

// Committed wakes the agents whose assignments changed and drops deleted machines from
// the index.
func (s *Service) Committed(ctx context.Context, ids []resource.ID) {
	for _, id := range ids {
		switch {
		case strings.EqualFold(id.Type(), TypeAssignment):
			s.changed(machineOf(id).Key())
		case IsMachineType(id.Type()):
			s.mu.Lock()
			gone := s.deleted[id.Key()]
			if gone {
				delete(s.deleted, id.Key())
				if m := s.machines[id.Key()]; m != nil {
					delete(s.byCred, m.credHash)
					delete(s.machines, id.Key())
				}
			}
			s.mu.Unlock()
			if gone {
				s.changed(id.Key())
			}
		}
	}
}
