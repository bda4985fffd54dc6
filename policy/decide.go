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
// decides nothing (compliant); manual leaves the state to people (compliant here,
// reported as Unknown by the compliance layer).
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
		d.Compliant = true
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
// child resource, the last part of the name), and in the check's scope: the evaluated
// resource's resource group (or the named one), or its subscription. A check for a child
// type also needs the candidate to be a child of the evaluated resource, as Azure looks
// for related resources under it.
func RelatedMatches(check *ExistenceCheck, resource, candidate map[string]any) bool {
	ctype, _ := lookupKey(candidate, "type").(string)
	if !strings.EqualFold(ctype, check.Type) {
		return false
	}
	cid, _ := lookupKey(candidate, "id").(string)
	rid, _ := lookupKey(resource, "id").(string)
	if check.Name != "" {
		cname, _ := lookupKey(candidate, "name").(string)
		full := fullNameOf(candidate)
		if !strings.EqualFold(cname, check.Name) && !strings.EqualFold(full, check.Name) &&
			!strings.HasSuffix(strings.ToLower(full), "/"+strings.ToLower(check.Name)) {
			return false
		}
	}
	rsub, rrg := idScopes(rid)
	csub, crg := idScopes(cid)
	if !strings.EqualFold(rsub, csub) {
		return false
	}
	if check.Scope == "subscription" {
		return true
	}
	wantRG := rrg
	if check.ResourceGroupName != "" {
		wantRG = check.ResourceGroupName
	}
	if !strings.EqualFold(crg, wantRG) {
		return false
	}
	// A child type of the evaluated resource's type, or an extension resource (such as a
	// guest-configuration assignment on a VM), counts only under the evaluated resource.
	rtype, _ := lookupKey(resource, "type").(string)
	lcid := strings.ToLower(cid)
	if extendsType(check.Type, rtype) || strings.Count(lcid, "/providers/") > 1 {
		return strings.HasPrefix(lcid, strings.ToLower(rid)+"/")
	}
	return true
}

// extendsType reports whether child is a child type of parent
// ("Microsoft.Compute/virtualMachines/extensions" of "Microsoft.Compute/virtualMachines").
func extendsType(child, parent string) bool {
	return parent != "" && strings.HasPrefix(strings.ToLower(child), strings.ToLower(parent)+"/")
}
