package policy

import (
	"strings"
)

// Decision is what a policy decides for one resource: the effect that applies ("none"
// when the rule's if does not match) and whether the resource complies, with reasons.
type Decision struct {
	// Effect is the resolved effect, lower-cased, or "none" when the if did not match.
	Effect    string   `json:"effect"`
	Compliant bool     `json:"compliant"`
	Reasons   []Reason `json:"reasons"`
	// Existence is the check auditIfNotExists and deployIfNotExists made, when they did.
	Existence *ExistenceCheck `json:"existence,omitempty"`
	// Operations are the changes modify or append make, when the rule matched.
	Operations []Operation `json:"operations,omitempty"`
}

// Decide evaluates the rule and, for auditIfNotExists and deployIfNotExists, looks for a
// matching resource among related (the caller passes candidates; Decide keeps those of the
// check's type and name in the check's scope). Azure's semantics: audit, deny, modify and
// append make a matching resource non-compliant; the IfNotExists effects make it
// non-compliant only when no related resource meets the existence condition; disabled
// decides nothing (compliant); manual leaves the state to people: its defaultState until
// attested (Unknown is compliant here, reported as Unknown by the compliance layer).
func (q *Prepared) Decide(in *Input, related []map[string]any) (Decision, error) {
	d := Decision{Effect: "none", Compliant: true, Reasons: []Reason{}}
	if q.effect == "disabled" {
		d.Effect = "disabled"
		return d, nil
	}
	res, err := q.Eval(in)
	if err != nil {
		return d, err
	}
	if !res.Matched {
		return d, nil
	}
	d.Effect = q.effect
	d.Reasons = res.Reasons
	if res.Failed {
		d.Compliant = false
		return d, nil
	}
	switch q.effect {
	case "auditifnotexists", "deployifnotexists":
		check, err := q.Existence(in)
		if err != nil {
			d.Compliant = false
			d.Reasons = []Reason{{Location: errLocation(err), Phrase: "evaluation failed, which counts as non-compliant: " + errMessage(err)}}
			return d, nil
		}
		d.Existence = check
		d.Compliant = false
		var why []Reason
		for _, r := range related {
			if check == nil || !RelatedMatches(check, in.Resource, r) {
				continue
			}
			ok, reasons, err := q.ExistenceMet(in, r)
			if err != nil {
				continue // a related resource that cannot be evaluated does not satisfy the check
			}
			if ok {
				d.Compliant = true
				d.Reasons = []Reason{}
				return d, nil
			}
			why = append(why, reasons...)
		}
		if check != nil {
			d.Reasons = append([]Reason{{Location: "policyRule.then.details", Subject: "type", Operator: "exists",
				Expected: check.Type, Phrase: "No related resource of the required type meets the existence condition."}}, why...)
		}
	case "manual":
		// The state is people's to attest; until then it is the rule's defaultState
		// (compliance-states.md: non-compliant when that is Non-compliant). Unknown is
		// reported as compliant here; the compliance layer tells it apart with
		// ManualDefaultState.
		d.Compliant = q.ManualDefaultState() != "NonCompliant"
	case "denyaction", "auditaction":
		// These act on requests such as DELETE, not on what a resource is: a matching
		// resource is not out of compliance for them.
		d.Compliant = true
	case "modify", "append":
		ops, err := q.Operations(in)
		if err != nil {
			return d, err
		}
		d.Operations = ops
		d.Compliant = false
	default:
		d.Compliant = false
	}
	return d, nil
}

// RelatedMatches reports whether candidate is a resource the existence check looks for,
// for the evaluated resource: of the check's type, with its name when it gives one (for a
// child resource, the last part of the name; "parent/?" stands for any child of parent),
// and in the check's scope. A child type of the evaluated resource's type, or an extension
// resource, is looked for under the evaluated resource, and existenceScope and
// resourceGroupName do not apply to it (effect-audit-if-not-exists.md, "type",
// "resourceGroupName", "existenceScope"); anything else is looked for in the evaluated
// resource's resource group (or the named one), or its subscription.
func RelatedMatches(check *ExistenceCheck, resource, candidate map[string]any) bool {
	ctype, _ := lookupKey(candidate, "type").(string)
	if !strings.EqualFold(ctype, check.Type) {
		return false
	}
	cid, _ := lookupKey(candidate, "id").(string)
	rid, _ := lookupKey(resource, "id").(string)
	if check.Name != "" && !relatedNameMatches(check.Name, candidate) {
		return false
	}
	rsub, rrg := idScopes(rid)
	csub, crg := idScopes(cid)
	if !strings.EqualFold(rsub, csub) {
		return false
	}
	rtype, _ := lookupKey(resource, "type").(string)
	lcid := strings.ToLower(cid)
	if extendsType(check.Type, rtype) || strings.Count(lcid, "/providers/") > 1 {
		return strings.HasPrefix(lcid, strings.ToLower(rid)+"/")
	}
	if check.Scope == "subscription" {
		return true
	}
	wantRG := rrg
	if check.ResourceGroupName != "" {
		wantRG = check.ResourceGroupName
	}
	return strings.EqualFold(crg, wantRG)
}

// relatedNameMatches compares an existence check's name with a candidate's name and full
// name. A last segment "?" matches any name under the given parent
// (effect-audit-if-not-exists.md: "parentResourceName/?").
func relatedNameMatches(want string, candidate map[string]any) bool {
	cname, _ := lookupKey(candidate, "name").(string)
	full := fullNameOf(candidate)
	if parent, ok := strings.CutSuffix(want, "/?"); ok {
		for _, n := range []string{cname, full} {
			if i := strings.LastIndexByte(n, '/'); i >= 0 && strings.EqualFold(n[:i], parent) {
				return true
			}
		}
		return false
	}
	return strings.EqualFold(cname, want) || strings.EqualFold(full, want) ||
		strings.HasSuffix(strings.ToLower(full), "/"+strings.ToLower(want))
}

// extendsType reports whether child is a child type of parent
// ("Microsoft.Compute/virtualMachines/extensions" of "Microsoft.Compute/virtualMachines").
func extendsType(child, parent string) bool {
	return parent != "" && strings.HasPrefix(strings.ToLower(child), strings.ToLower(parent)+"/")
}
