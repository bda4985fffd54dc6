package compliance

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gildhq/gild/resource"
)

// typeGuestAssignment is the machine-configuration assignment type.
const typeGuestAssignment = "Microsoft.GuestConfiguration/guestConfigurationAssignments"

// guestSpec is what a definition's metadata.guestConfiguration asks for: the configuration
// and, in the definition's own order, which policy parameter feeds which configuration
// parameter. The order matters: the assignment's parameterHash is computed over its
// parameters in order, and the policy's existence condition compares it with a hash built
// in the order the definition writes them.
type guestSpec struct {
	name, version string
	params        []guestParam
}

type guestParam struct{ policy, configuration string }

// parseGuestSpec reads metadata.guestConfiguration from a definition's raw JSON; nil when
// there is none. The parameters' order is that of the existence condition's parameterHash
// expression (concat of name=value pairs), which is what the hash is compared with: a
// stored definition's objects may not keep their keys' order. Parameters the expression
// does not name follow, in the metadata's order.
func parseGuestSpec(raw json.RawMessage) *guestSpec {
	var doc map[string]any
	if json.Unmarshal(raw, &doc) != nil {
		return nil
	}
	if p, ok := doc["properties"].(map[string]any); ok {
		doc = p
	}
	meta, _ := doc["metadata"].(map[string]any)
	gc, _ := meta["guestConfiguration"].(map[string]any)
	name, _ := gc["name"].(string)
	if name == "" {
		return nil
	}
	spec := &guestSpec{name: name}
	spec.version, _ = gc["version"].(string)
	cp, _ := gc["configurationParameter"].(map[string]any)
	if len(cp) == 0 {
		return spec
	}
	rule, _ := doc["policyRule"].(map[string]any)
	then, _ := rule["then"].(map[string]any)
	details, _ := then["details"].(map[string]any)
	cond, _ := json.Marshal(details["existenceCondition"])
	seen := map[string]bool{}
	for _, m := range parameterRef.FindAllStringSubmatch(string(cond), -1) {
		for k, v := range cp {
			if strings.EqualFold(k, m[1]) && !seen[k] {
				if s, ok := v.(string); ok {
					spec.params = append(spec.params, guestParam{policy: k, configuration: s})
				}
				seen[k] = true
			}
		}
	}
	rest := make([]string, 0, len(cp))
	for k := range cp {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		if s, ok := cp[k].(string); ok {
			spec.params = append(spec.params, guestParam{policy: k, configuration: s})
		}
	}
	return spec
}

// parameterRef finds parameters('name') in a policy expression.
var parameterRef = regexp.MustCompile(`parameters\('([A-Za-z0-9_.-]+)'\)`)

// GuestAssignment is a machine-configuration assignment an auditIfNotExists policy of
// Azure's guest-configuration kind expects on a machine and found missing. As Azure does,
// gild creates it (as Audit): the policy then measures what the machine's agent reports.
type GuestAssignment struct {
	ID         resource.ID
	Properties json.RawMessage
}

// guestNeed records a missing guest assignment when the member is a guest-configuration
// auditIfNotExists policy whose existence check names one.
func (ev *evaluation) guestNeed(m member, machine string, checkType, checkName string, related []map[string]any) {
	if m.guest == nil || ev.e.onGuest == nil || checkName == "" || !strings.EqualFold(checkType, typeGuestAssignment) {
		return
	}
	for _, r := range related {
		if n, _ := r["name"].(string); strings.EqualFold(n, checkName) {
			return
		}
	}
	id, err := resource.Parse(machine)
	if err != nil {
		return
	}
	params := make([]map[string]string, 0, len(m.guest.params))
	for _, p := range m.guest.params {
		v, ok := m.prepared.ParameterValue(p.policy)
		if !ok {
			continue
		}
		s, isString := v.(string)
		if !isString {
			s = fmt.Sprint(v)
		}
		params = append(params, map[string]string{"name": p.configuration, "value": s})
	}
	gc := map[string]any{"name": m.guest.name, "assignmentType": "Audit", "configurationParameter": params}
	if m.guest.version != "" {
		gc["version"] = m.guest.version
	}
	props, err := json.Marshal(map[string]any{"guestConfiguration": gc, "context": "Azure policy"})
	if err != nil {
		return
	}
	ev.e.onGuest(GuestAssignment{ID: id.Child(typeGuestAssignment, checkName), Properties: props})
}

// guestCreator creates the guest assignments evaluations found missing, in the
// background and once each, through the service's writer.
type guestCreator struct {
	mu      sync.Mutex
	pending map[string]GuestAssignment
	kick    chan struct{}
}

func newGuestCreator() *guestCreator {
	return &guestCreator{pending: map[string]GuestAssignment{}, kick: make(chan struct{}, 1)}
}

// add queues an assignment; it never blocks, as evaluations call it inside transactions.
func (g *guestCreator) add(a GuestAssignment) {
	g.mu.Lock()
	g.pending[a.ID.Key()] = a
	g.mu.Unlock()
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// run creates the queued assignments until ctx ends. One that exists by then (someone
// made it meanwhile) is left as it is.
func (s *Service) runGuestCreator(ctx context.Context) {
	g := s.guests
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.kick:
		}
		g.mu.Lock()
		batch := g.pending
		g.pending = map[string]GuestAssignment{}
		g.mu.Unlock()
		for _, a := range batch {
			if s.writer == nil {
				return
			}
			if _, err := s.store.Get(ctx, a.ID); err == nil {
				continue
			}
			if _, err := s.store.Get(ctx, a.ID.Parent()); err != nil {
				continue // the machine went away
			}
			r := &resource.Resource{ID: a.ID.String(), Name: a.ID.Name(), Type: typeGuestAssignment, Properties: a.Properties}
			if err := s.writer.Put(ctx, r); err != nil && ctx.Err() == nil {
				s.Engine.log.Warn("compliance: create a guest configuration assignment", "assignment", a.ID.String(), "err", err)
				continue
			}
			s.Engine.log.Info("compliance: created the guest configuration assignment a policy expects", "assignment", a.ID.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}
