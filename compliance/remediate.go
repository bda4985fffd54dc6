package compliance

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gildhq/gild/policy"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// TypeRemediation is the type of remediation tasks.
const TypeRemediation = "Microsoft.PolicyInsights/remediations"

// Writer writes resources as gild itself, through every check and hook a write gets, so a
// remediation's changes are admitted, audited and evaluated like anyone's.
type Writer interface {
	Put(ctx context.Context, r *resource.Resource) error
	Patch(ctx context.Context, id resource.ID, patch []byte) error
}

// SetWriter sets how remediations write. Without one, remediation tasks fail.
func (s *Service) SetWriter(w Writer) { s.writer = w }

// Limits Azure sets on remediation tasks.
const (
	defaultResourceCount = 500
	maxResourceCount     = 50000
	defaultParallel      = 10
	maxParallel          = 30
)

type remediationProps struct {
	PolicyAssignmentID    string `json:"policyAssignmentId"`
	ReferenceID           string `json:"policyDefinitionReferenceId,omitempty"`
	ResourceDiscoveryMode string `json:"resourceDiscoveryMode,omitempty"`
	Filters               *struct {
		Locations []string `json:"locations,omitempty"`
	} `json:"filters,omitempty"`
	ResourceCount       int `json:"resourceCount,omitempty"`
	ParallelDeployments int `json:"parallelDeployments,omitempty"`
	FailureThreshold    *struct {
		Percentage float64 `json:"percentage"`
	} `json:"failureThreshold,omitempty"`

	ProvisioningState string              `json:"provisioningState,omitempty"`
	DeploymentStatus  *deploymentStatus   `json:"deploymentStatus,omitempty"`
	CreatedOn         string              `json:"createdOn,omitempty"`
	LastUpdatedOn     string              `json:"lastUpdatedOn,omitempty"`
	Deployments       []remediationResult `json:"deployments,omitempty"`
	StatusMessage     string              `json:"statusMessage,omitempty"`
}

type deploymentStatus struct {
	TotalDeployments      int `json:"totalDeployments"`
	SuccessfulDeployments int `json:"successfulDeployments"`
	FailedDeployments     int `json:"failedDeployments"`
}

type remediationResult struct {
	RemediatedResourceID string `json:"remediatedResourceId"`
	Status               string `json:"status"`
	Error                string `json:"error,omitempty"`
}

// checkRemediation validates a remediation task written by a client and marks it Accepted;
// writes by the runner itself (which set a provisioning state) pass as they are.
func (s *Service) checkRemediation(next *resource.Resource, old *resource.Resource) (*resource.Resource, error) {
	var p remediationProps
	if err := json.Unmarshal(orEmpty(next.Properties), &p); err != nil {
		return nil, resource.Errorf(resource.CodeInvalidRequestContent, "properties", "the remediation's properties do not decode: %v", err)
	}
	if p.ProvisioningState != "" && old != nil {
		return next, nil
	}
	var errs []*resource.Error
	_, _, err := s.remediationTarget(p)
	if err != nil {
		errs = append(errs, err.(*resource.Error))
	}
	switch strings.ToLower(p.ResourceDiscoveryMode) {
	case "", "existingnoncompliant", "reevaluatecompliance":
	default:
		errs = append(errs, resource.Errorf(resource.CodeInvalidRequestContent, "properties.resourceDiscoveryMode", "resourceDiscoveryMode is ExistingNonCompliant or ReEvaluateCompliance, not %q", p.ResourceDiscoveryMode))
	}
	if p.ResourceCount < 0 || p.ResourceCount > maxResourceCount {
		errs = append(errs, resource.Errorf(resource.CodeInvalidRequestContent, "properties.resourceCount", "resourceCount is 1 to %d", maxResourceCount))
	}
	if p.ParallelDeployments < 0 || p.ParallelDeployments > maxParallel {
		errs = append(errs, resource.Errorf(resource.CodeInvalidRequestContent, "properties.parallelDeployments", "parallelDeployments is 1 to %d", maxParallel))
	}
	if p.FailureThreshold != nil && (p.FailureThreshold.Percentage < 0 || p.FailureThreshold.Percentage > 1) {
		errs = append(errs, resource.Errorf(resource.CodeInvalidRequestContent, "properties.failureThreshold.percentage", "the failure threshold is a fraction from 0 to 1"))
	}
	if err := resource.Join(resource.CodeInvalidRequestContent, "the remediation is invalid", errs); err != nil {
		return nil, err
	}
	now := s.Engine.now().UTC().Format(time.RFC3339)
	p.ProvisioningState, p.CreatedOn, p.LastUpdatedOn = "Accepted", now, now
	p.DeploymentStatus, p.Deployments, p.StatusMessage = &deploymentStatus{}, nil, ""
	out := next.Clone()
	out.Properties, _ = json.Marshal(p)
	return out, nil
}

// remediationTarget finds the assignment and member a remediation acts for; the member's
// effect must be one a remediation can carry out.
func (s *Service) remediationTarget(p remediationProps) (*assignment, member, error) {
	for _, a := range s.Engine.cat.Load().assignments {
		if !strings.EqualFold(a.idStr, p.PolicyAssignmentID) {
			continue
		}
		if a.err != nil {
			return nil, member{}, resource.Errorf(resource.CodeInvalidRequestContent, "properties.policyAssignmentId", "assignment %s cannot be evaluated: %v", a.idStr, a.err)
		}
		for _, m := range a.members {
			if a.setDefinitionID != "" && !strings.EqualFold(m.referenceID, p.ReferenceID) {
				continue
			}
			if e := m.prepared.Effect(); e != "modify" && e != "deployifnotexists" {
				return nil, member{}, resource.Errorf(resource.CodeInvalidRequestContent, "properties.policyAssignmentId", "the policy's effect is %s; remediation carries out modify and deployIfNotExists only", e)
			}
			return a, m, nil
		}
		return nil, member{}, resource.Errorf(resource.CodeInvalidRequestContent, "properties.policyDefinitionReferenceId", "assignment %s has no policy with reference id %q (an initiative's remediation names one)", a.idStr, p.ReferenceID)
	}
	return nil, member{}, resource.Errorf(resource.CodeInvalidRequestContent, "properties.policyAssignmentId", "policy assignment %q does not exist", p.PolicyAssignmentID)
}

// startRemediations starts the tasks among ids that were just accepted.
func (s *Service) startRemediations(ctx context.Context, ids []resource.ID) {
	for _, id := range ids {
		if !strings.EqualFold(id.Type(), TypeRemediation) {
			continue
		}
		r, err := s.store.Get(ctx, id)
		if err != nil || r.StringProperty("provisioningState") != "Accepted" {
			continue
		}
		s.mu.Lock()
		if s.running == nil {
			s.running = map[string]bool{}
		}
		busy := s.running[id.Key()]
		s.running[id.Key()] = true
		s.mu.Unlock()
		if busy {
			continue
		}
		go func(id resource.ID) {
			defer func() {
				s.mu.Lock()
				delete(s.running, id.Key())
				s.mu.Unlock()
			}()
			// The task outlives the request that made it.
			s.runRemediation(context.WithoutCancel(ctx), id)
		}(id)
	}
}

// runRemediation carries out a remediation task: for each non-compliant resource of its
// assignment in its scope (up to resourceCount, in its locations), modify's changes or
// deployIfNotExists's deployment, several at once, stopping once the failure threshold is
// passed. Its status is written back as it goes.
func (s *Service) runRemediation(ctx context.Context, id resource.ID) {
	r, err := s.store.Get(ctx, id)
	if err != nil {
		s.log.Warn("remediation vanished", "id", id.String(), "err", err)
		return
	}
	var p remediationProps
	_ = json.Unmarshal(orEmpty(r.Properties), &p)
	finish := func(state, msg string) {
		p.ProvisioningState, p.StatusMessage = state, msg
		p.LastUpdatedOn = s.Engine.now().UTC().Format(time.RFC3339)
		s.writeRemediation(ctx, r, p)
	}
	if s.writer == nil {
		finish("Failed", "this server cannot write remediations")
		return
	}
	a, m, err := s.remediationTarget(p)
	if err != nil {
		finish("Failed", err.Error())
		return
	}
	p.ProvisioningState = "Running"
	s.writeRemediation(ctx, r, p)
	scope := id.Parent()
	if strings.EqualFold(p.ResourceDiscoveryMode, "ReEvaluateCompliance") {
		if _, err := s.Scan(ctx, scope); err != nil {
			finish("Failed", "re-evaluating compliance failed: "+err.Error())
			return
		}
	}
	targets, err := s.remediationTargets(ctx, p, a, m, scope)
	if err != nil {
		finish("Failed", err.Error())
		return
	}
	parallel := p.ParallelDeployments
	if parallel == 0 {
		parallel = defaultParallel
	}
	results := make([]remediationResult, len(targets))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	var failed int
	var mu sync.Mutex
	threshold := 1.0
	if p.FailureThreshold != nil {
		threshold = p.FailureThreshold.Percentage
	}
	for i, t := range targets {
		mu.Lock()
		over := len(targets) > 0 && float64(failed)/float64(len(targets)) > threshold
		mu.Unlock()
		if over {
			results[i] = remediationResult{RemediatedResourceID: t, Status: "Canceled", Error: "the failure threshold was passed"}
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(i int, target string) {
			defer func() { <-sem; wg.Done() }()
			res := remediationResult{RemediatedResourceID: target, Status: "Succeeded"}
			if err := s.remediateOne(ctx, a, m, target); err != nil {
				res.Status, res.Error = "Failed", err.Error()
				mu.Lock()
				failed++
				mu.Unlock()
			}
			results[i] = res
		}(i, t)
	}
	wg.Wait()
	p.Deployments = results
	p.DeploymentStatus = &deploymentStatus{TotalDeployments: len(results)}
	for _, res := range results {
		if res.Status == "Succeeded" {
			p.DeploymentStatus.SuccessfulDeployments++
		} else {
			p.DeploymentStatus.FailedDeployments++
		}
	}
	state := "Succeeded"
	if len(results) > 0 && float64(p.DeploymentStatus.FailedDeployments)/float64(len(results)) > threshold {
		state = "Failed"
	}
	finish(state, fmt.Sprintf("%d of %d resources remediated", p.DeploymentStatus.SuccessfulDeployments, len(results)))
}

// remediationTargets lists the non-compliant resources a task acts on.
func (s *Service) remediationTargets(ctx context.Context, p remediationProps, a *assignment, m member, scope resource.ID) ([]string, error) {
	limit := p.ResourceCount
	if limit == 0 {
		limit = defaultResourceCount
	}
	q := store.PolicyStateQuery{Scopes: s.tree().Expand(scope), AssignmentID: a.idStr, ReferenceID: m.referenceID,
		State: store.StateNonCompliant, Limit: store.MaxPageSize}
	if scope.IsRoot() {
		q.Scopes = nil
	}
	var out []string
	for len(out) < limit {
		states, next, err := s.store.PolicyStates(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("find non-compliant resources: %w", err)
		}
		for _, st := range states {
			if !strings.EqualFold(st.ReferenceID, m.referenceID) {
				continue
			}
			if p.Filters != nil && len(p.Filters.Locations) > 0 && !containsFold(p.Filters.Locations, policy.NormalizeLocation(st.Location)) {
				continue
			}
			out = append(out, st.ResourceID)
			if len(out) == limit {
				break
			}
		}
		if next == "" {
			break
		}
		q.After = next
	}
	return out, nil
}

func containsFold(list []string, s string) bool {
	for _, l := range list {
		if strings.EqualFold(policy.NormalizeLocation(l), s) {
			return true
		}
	}
	return false
}

// remediateOne makes one resource comply: modify's changes written to it, or the resources
// deployIfNotExists's template deploys, created or merged into what exists.
func (s *Service) remediateOne(ctx context.Context, a *assignment, m member, target string) error {
	id, err := resource.Parse(target)
	if err != nil {
		return err
	}
	res, err := s.store.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("read %s: %w", target, err)
	}
	ev := s.Engine.newEvaluation(s.store, s.tree())
	doc, err := ev.document(ctx, res)
	if err != nil {
		return err
	}
	in := ev.input(ctx, id, doc)
	in.Policy = m.policyInfo
	switch m.prepared.Effect() {
	case "modify":
		ops, err := m.prepared.Operations(&in)
		if err != nil {
			return err
		}
		changed, err := policy.ApplyOperations(doc, ops, s.Engine.aliases)
		if err != nil {
			return err
		}
		if changed.Conflict != "" {
			return fmt.Errorf("the change conflicts with the value of %s", changed.Conflict)
		}
		if !changed.Changed {
			return nil
		}
		if props, ok := doc["properties"].(map[string]any); ok {
			delete(props, "gild")
		}
		delete(doc, "systemData")
		raw, _ := json.Marshal(doc)
		var out resource.Resource
		if err := json.Unmarshal(raw, &out); err != nil {
			return err
		}
		return s.writer.Put(ctx, &out)
	default:
		dep, err := m.prepared.Deployment(&in)
		if err != nil {
			return err
		}
		if dep == nil {
			return fmt.Errorf("the policy has no deployment")
		}
		if id.ResourceGroup == "" {
			return fmt.Errorf("gild deploys remediation templates into a resource group; %s is not in one", target)
		}
		resources, err := expandTemplate(dep, resource.ResourceGroupID(id.Subscription, id.ResourceGroup), s.Engine.now())
		if err != nil {
			return err
		}
		for _, tr := range resources {
			if _, err := s.store.Get(ctx, tr.ID); err == nil {
				// ARM deploys incrementally: a resource that exists keeps what the
				// template does not set.
				patch, _ := json.Marshal(mergeFields(tr.Body))
				if err := s.writer.Patch(ctx, tr.ID, patch); err != nil {
					return fmt.Errorf("update %s: %w", tr.ID, err)
				}
				continue
			}
			if err := s.writer.Put(ctx, tr.Body); err != nil {
				return fmt.Errorf("create %s: %w", tr.ID, err)
			}
		}
		return nil
	}
}

// mergeFields is a merge patch of the fields a template resource sets.
func mergeFields(r *resource.Resource) map[string]any {
	m := map[string]any{}
	if r.Location != "" {
		m["location"] = r.Location
	}
	if len(r.Tags) > 0 {
		m["tags"] = r.Tags
	}
	for k, raw := range map[string]json.RawMessage{"properties": r.Properties, "identity": r.Identity, "sku": r.SKU} {
		if len(raw) > 0 {
			m[k] = raw
		}
	}
	return m
}

// writeRemediation writes a task's status.
func (s *Service) writeRemediation(ctx context.Context, r *resource.Resource, p remediationProps) {
	next := r.Clone()
	next.ETag, next.SystemData = "", nil
	next.Properties, _ = json.Marshal(p)
	if err := s.writer.Put(ctx, next); err != nil {
		s.log.Warn("record remediation status", "id", r.ID, "err", err)
	}
}
