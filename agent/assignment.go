package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gildhq/gild/agentproto"
	"github.com/gildhq/gild/check"
)

// maxAssignments is how many assignments a machine runs: a report carries at most 50
// (agentproto.Report.Validate), so more could never be reported.
const maxAssignments = 50

// Reason codes of the resources the agent reports when an assignment's checks cannot run.
const (
	CodeImageChecksMissing = "ImageChecksMissing" // imageBaseline, but the image has no /etc/gild/checks.json
	CodeChecksInvalid      = "ChecksInvalid"      // the checks are not a valid check set
)

// decodeAssignments reads the server's answer as the agent trusts it: JSON of this
// protocol's version, at most maxAssignments, each with a unique name without "/" and a
// hash. It reports every problem at once. The checks themselves are parsed when an
// assignment runs, so that one bad check set is reported as that assignment's result
// instead of hiding all the others.
func decodeAssignments(data []byte) (agentproto.Assignments, error) {
	var a agentproto.Assignments
	if err := json.Unmarshal(data, &a); err != nil {
		return agentproto.Assignments{}, fmt.Errorf("decode assignments: %w", err)
	}
	var errs []error
	if a.Version != agentproto.Version {
		errs = append(errs, fmt.Errorf("version: %d, this agent speaks %d", a.Version, agentproto.Version))
	}
	if a.ReportIntervalSeconds < 0 {
		errs = append(errs, fmt.Errorf("reportIntervalSeconds: %d is negative", a.ReportIntervalSeconds))
	}
	if len(a.Assignments) > maxAssignments {
		errs = append(errs, fmt.Errorf("assignments: %d, at most %d", len(a.Assignments), maxAssignments))
	}
	seen := map[string]int{}
	for i, x := range a.Assignments {
		switch {
		case x.Name == "":
			errs = append(errs, fmt.Errorf("assignments[%d].name: empty", i))
		case strings.ContainsAny(x.Name, "/\x00\n"):
			errs = append(errs, fmt.Errorf("assignments[%d].name: %q has a slash or a control character", i, x.Name))
		default:
			if first, dup := seen[x.Name]; dup {
				errs = append(errs, fmt.Errorf("assignments[%d].name: %q is also the name of assignments[%d]", i, x.Name, first))
			} else {
				seen[x.Name] = i
			}
		}
		if x.Hash == "" {
			errs = append(errs, fmt.Errorf("assignments[%d].hash: empty", i))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return agentproto.Assignments{}, fmt.Errorf("decode assignments: %w", err)
	}
	return a, nil
}

// assignmentChecks loads the check set an assignment runs. When it cannot, it returns the
// one resource that says why, which makes the assignment NonCompliant: a machine whose
// configuration cannot be checked is not known to be compliant.
func assignmentChecks(env check.Env, a agentproto.Assignment) (check.Set, *agentproto.ResourceReport) {
	problem := func(id, code, phrase string) *agentproto.ResourceReport {
		return &agentproto.ResourceReport{ResourceID: id, ComplianceStatus: agentproto.StatusNonCompliant,
			Reasons: []agentproto.Reason{{Code: code, Phrase: phrase}}}
	}
	data, source := []byte(a.Checks), "the assignment's checks"
	if a.ImageBaseline {
		var err error
		data, err = env.ReadFile(agentproto.ImageChecksPath)
		if err != nil {
			if isNotExist(err) {
				return check.Set{}, problem("image-baseline", CodeImageChecksMissing,
					fmt.Sprintf("The assignment runs the image's baseline checks, but %s does not exist: this machine was not made from a gild image.", agentproto.ImageChecksPath))
			}
			return check.Set{}, problem("image-baseline", CodeImageChecksMissing, fmt.Sprintf("Cannot read %s: %v.", agentproto.ImageChecksPath, err))
		}
		source = agentproto.ImageChecksPath
	} else if len(strings.TrimSpace(string(data))) == 0 || string(data) == "null" {
		return check.Set{}, problem("checks", CodeChecksInvalid, "The assignment has neither checks nor imageBaseline.")
	}
	set, err := check.Parse(data)
	if err != nil {
		return check.Set{}, problem("checks", CodeChecksInvalid,
			truncateText(fmt.Sprintf("%s are not a valid check set: %s", source, strings.ReplaceAll(err.Error(), "\n", "; ")), 2000))
	}
	return set, nil
}

// runOutcome is what one run of an assignment found and did, to be merged into the state.
type runOutcome struct {
	report  agentproto.AssignmentReport
	events  []agentproto.Event
	applied bool // ApplyAndMonitor's one application of this hash happened
	// applyErrors holds, for each check Apply was tried on, its error ("" when it
	// succeeded), keyed by assignmentKey.
	applyErrors map[string]string
}

// runAssignment runs one assignment as its type says:
//   - Audit evaluates.
//   - ApplyAndMonitor applies once per hash (its first run on this machine), then
//     evaluates; later runs only evaluate, so drift shows as NonCompliant.
//   - ApplyAndAutoCorrect evaluates, corrects every non-compliant remediable check,
//     and evaluates again: the report shows the state after correction, and each change
//     is a Correction event.
//
// An unknown type is audited: running less than asked is safe, changing more is not.
// st is the state before the run: which hashes ran and were applied, and the last errors.
func runAssignment(ctx context.Context, env check.Env, a agentproto.Assignment, st State, now func() time.Time) runOutcome {
	start := now().UTC()
	out := runOutcome{applyErrors: map[string]string{}}
	out.report = agentproto.AssignmentReport{Name: a.Name, Hash: a.Hash, StartTime: start, OperationType: "Consistency"}
	if !slices.Contains(st.RunHashes, a.Hash) {
		out.report.OperationType = "Initial"
	}
	set, problem := assignmentChecks(env, a)
	if problem != nil {
		out.report.Resources = []agentproto.ResourceReport{*problem}
		out.report.ComplianceStatus = agentproto.StatusNonCompliant
		out.report.EndTime = now().UTC()
		return out
	}
	results := set.Evaluate(ctx, env)
	apply := false
	switch a.AssignmentType {
	case agentproto.AssignmentApplyAndAutoCorrect:
		apply = true
	case agentproto.AssignmentApplyAndMonitor:
		apply = !slices.Contains(st.AppliedHashes, a.Hash)
		out.applied = true
	}
	if apply && ctx.Err() == nil {
		tried := false
		for i, c := range set.Checks() {
			if results[i].Status != check.StatusNonCompliant || !c.Remediable() {
				continue
			}
			tried = true
			key := assignmentKey(a.Name, c.Name)
			changes, err := c.Apply(ctx, env)
			for _, ch := range changes {
				out.events = append(out.events, agentproto.Event{ID: newID(), Time: now().UTC(), Kind: agentproto.EventCorrection,
					Assignment: a.Name, Check: c.Name, Target: ch.Target, Before: ch.Before, After: ch.After})
			}
			msg := ""
			if err != nil {
				msg = err.Error()
				// The same failure at every run is one event, not one every interval.
				if st.LastApplyErrors[key] != msg {
					out.events = append(out.events, agentproto.Event{ID: newID(), Time: now().UTC(), Kind: agentproto.EventApplyError,
						Assignment: a.Name, Check: c.Name, Message: msg})
				}
			}
			out.applyErrors[key] = msg
		}
		if tried {
			results = set.Evaluate(ctx, env)
		}
	}
	out.report.Resources = make([]agentproto.ResourceReport, len(results))
	out.report.ComplianceStatus = agentproto.StatusCompliant
	for i, r := range results {
		w := ResultToWire(r)
		out.report.Resources[i] = agentproto.ResourceReport{ResourceID: r.Name, ComplianceStatus: w.Status, Reasons: w.Reasons, Expected: r.Expected, Actual: r.Actual}
		if r.Status != check.StatusCompliant {
			out.report.ComplianceStatus = agentproto.StatusNonCompliant
		}
	}
	out.report.EndTime = now().UTC()
	return out
}

// merge records a run's outcome in the state.
func (o runOutcome) merge(st *State, assignmentType string) {
	r := o.report
	if !slices.Contains(st.RunHashes, r.Hash) {
		st.RunHashes = append(st.RunHashes, r.Hash)
	}
	if o.applied && !slices.Contains(st.AppliedHashes, r.Hash) {
		st.AppliedHashes = append(st.AppliedHashes, r.Hash)
	}
	for k, msg := range o.applyErrors {
		if msg == "" {
			delete(st.LastApplyErrors, k)
			continue
		}
		if st.LastApplyErrors == nil {
			st.LastApplyErrors = map[string]string{}
		}
		st.LastApplyErrors[k] = msg
	}
	st.PendingEvents = append(st.PendingEvents, o.events...)
	summary := RunSummary{Name: r.Name, Hash: r.Hash, AssignmentType: assignmentType, ComplianceStatus: r.ComplianceStatus, Time: r.EndTime}
	for _, res := range r.Resources {
		if res.ComplianceStatus != agentproto.StatusCompliant {
			summary.NonCompliant++
		}
	}
	for i := range st.LastRuns {
		if st.LastRuns[i].Name == r.Name {
			st.LastRuns[i] = summary
			return
		}
	}
	st.LastRuns = append(st.LastRuns, summary)
}
