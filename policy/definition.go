package policy

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Definition is a policy definition as written, before compilation. ParseDefinition accepts
// the three shapes Azure's repositories use: a full resource ({"name","type","properties"}),
// its properties alone ({"displayName","policyRule",...}), or a bare rule ({"if","then"}).
type Definition struct {
	ID          string
	Name        string
	DisplayName string
	Description string
	// Mode is "All", "Indexed" (only types with tags and location) or a resource provider
	// mode; empty means All.
	Mode       string
	PolicyType string
	Version    string
	Metadata   map[string]any
	Parameters Parameters
	// Rule is the policyRule, {"if": ..., "then": ...}, in the package's value model.
	Rule map[string]any
}

// Parameters are parameter declarations by name.
type Parameters map[string]*ParameterDefinition

// ParameterDefinition declares one parameter of a definition or initiative.
type ParameterDefinition struct {
	Name          string
	Type          string // String, Array, Object, Boolean, Integer, Float or DateTime
	DefaultValue  any
	HasDefault    bool
	AllowedValues []any
	Metadata      map[string]any
}

// Lookup finds a declared parameter by name, case-insensitively as Azure does.
func (ps Parameters) Lookup(name string) (*ParameterDefinition, bool) {
	if p, ok := ps[name]; ok {
		return p, true
	}
	for k, p := range ps {
		if strings.EqualFold(k, name) {
			return p, true
		}
	}
	return nil, false
}

// Names lists the declared names, sorted.
func (ps Parameters) Names() []string {
	out := make([]string, 0, len(ps))
	for k := range ps {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var parameterTypes = []string{"String", "Array", "Object", "Boolean", "Integer", "Float", "DateTime"}

// ParseDefinition parses a policy definition in any of its three shapes.
func ParseDefinition(data []byte) (*Definition, error) {
	v, err := decodeDocument(data)
	if err != nil {
		return nil, err
	}
	top, ok := v.(map[string]any)
	if !ok {
		return nil, errorf(CodeParse, "", "a policy definition is a JSON object, not %s", TypeName(v))
	}
	d := &Definition{}
	props := top
	prefix := ""
	switch {
	case isObject(lookupKey(top, "properties")) && lookupKey(lookupKey(top, "properties").(map[string]any), "policyRule") != nil:
		props = lookupKey(top, "properties").(map[string]any)
		prefix = "properties."
		d.ID = stringKey(top, "id")
		d.Name = stringKey(top, "name")
	case lookupKey(top, "policyRule") != nil:
	case lookupKey(top, "if") != nil || lookupKey(top, "then") != nil:
		d.Rule = top
		return d, d.check("")
	default:
		return nil, errorf(CodeParse, "", "not a policy definition: expected a policyRule, a properties object holding one, or a bare rule with if and then")
	}
	d.DisplayName = stringKey(props, "displayName")
	d.Description = stringKey(props, "description")
	d.Mode = stringKey(props, "mode")
	d.PolicyType = stringKey(props, "policyType")
	d.Version = stringKey(props, "version")
	if m, ok := lookupKey(props, "metadata").(map[string]any); ok {
		d.Metadata = m
	}
	var errs Errors
	if raw := lookupKey(props, "parameters"); raw != nil {
		ps, perrs := parseParameters(raw, prefix+"parameters")
		d.Parameters = ps
		errs = append(errs, perrs...)
	}
	rule, ok := lookupKey(props, "policyRule").(map[string]any)
	if !ok {
		errs = append(errs, errorf(CodeParse, prefix+"policyRule", "policyRule must be an object with if and then"))
	} else {
		d.Rule = rule
	}
	if err := d.check(prefix); err != nil {
		errs = append(errs, err.(Errors)...)
	}
	return d, errs.err()
}

// check applies the limits Azure documents for a definition's text fields and rule shape.
func (d *Definition) check(prefix string) error {
	var errs Errors
	if len([]rune(d.DisplayName)) > 128 {
		errs = append(errs, errorf(CodeInvalid, prefix+"displayName", "displayName is longer than 128 characters"))
	}
	if len([]rune(d.Description)) > 512 {
		errs = append(errs, errorf(CodeInvalid, prefix+"description", "description is longer than 512 characters"))
	}
	if d.Rule != nil {
		rulePrefix := prefix + "policyRule"
		if prefix == "" && d.DisplayName == "" && d.Parameters == nil {
			rulePrefix = ""
		}
		if lookupKey(d.Rule, "if") == nil {
			errs = append(errs, errorf(CodeInvalid, joinLoc(rulePrefix, "if"), "the rule has no if condition"))
		}
		then, ok := lookupKey(d.Rule, "then").(map[string]any)
		if !ok {
			errs = append(errs, errorf(CodeInvalid, joinLoc(rulePrefix, "then"), "the rule needs a then object with an effect"))
		} else if lookupKey(then, "effect") == nil {
			errs = append(errs, errorf(CodeInvalid, joinLoc(rulePrefix, "then.effect"), "then has no effect"))
		}
	}
	return errs.err()
}

// ParseParameters parses parameter declarations on their own, as samples keep them in an
// azurepolicy.parameters.json file.
func ParseParameters(data []byte) (Parameters, error) {
	v, err := decodeDocument(data)
	if err != nil {
		return nil, err
	}
	ps, errs := parseParameters(v, "")
	return ps, errs.err()
}

func parseParameters(raw any, loc string) (Parameters, Errors) {
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, Errors{errorf(CodeParse, loc, "parameters must be an object of parameter declarations")}
	}
	ps := Parameters{}
	var errs Errors
	for _, name := range sortedKeys(m) {
		ploc := joinLoc(loc, name)
		pm, ok := m[name].(map[string]any)
		if !ok {
			errs = append(errs, errorf(CodeParse, ploc, "parameter %q must be an object with a type", name))
			continue
		}
		p := &ParameterDefinition{Name: name}
		p.Type = stringKey(pm, "type")
		canon := ""
		for _, t := range parameterTypes {
			if strings.EqualFold(t, p.Type) {
				canon = t
			}
		}
		if canon == "" {
			errs = append(errs, errorf(CodeInvalid, ploc+".type", "parameter %q has type %q; the types are %s", name, p.Type, strings.Join(parameterTypes, ", ")))
		}
		p.Type = canon
		if md, ok := lookupKey(pm, "metadata").(map[string]any); ok {
			p.Metadata = md
		}
		if dv, ok := lookupKeyOK(pm, "defaultValue"); ok {
			p.DefaultValue, p.HasDefault = dv, true
		}
		if av := lookupKey(pm, "allowedValues"); av != nil {
			arr, ok := av.([]any)
			if !ok {
				errs = append(errs, errorf(CodeInvalid, ploc+".allowedValues", "allowedValues must be an array"))
			}
			p.AllowedValues = arr
		}
		if canon != "" && p.HasDefault && !isExpressionString(p.DefaultValue) {
			if err := p.CheckValue(p.DefaultValue); err != nil {
				errs = append(errs, errorf(CodeInvalid, ploc+".defaultValue", "%s", err.Error()))
			}
		}
		ps[name] = p
	}
	return ps, errs
}

// CheckValue reports whether v is a valid value for p: of its type and, when it has allowed
// values, exactly one of them, strings compared case-sensitively (each element, for an
// array parameter whose allowed values are not arrays).
func (p *ParameterDefinition) CheckValue(v any) error {
	ok := true
	switch p.Type {
	case "String":
		_, ok = v.(string)
	case "Array":
		_, ok = v.([]any)
	case "Object":
		_, ok = v.(map[string]any)
	case "Boolean":
		_, ok = v.(bool)
	case "Integer":
		_, ok = v.(int64)
	case "Float":
		switch v.(type) {
		case int64, float64:
		default:
			ok = false
		}
	case "DateTime":
		s, isStr := v.(string)
		ok = isStr && parseTimeOK(s)
	}
	if !ok {
		return fmt.Errorf("parameter %q is of type %s, but the value is %s", p.Name, p.Type, describeValue(v))
	}
	if len(p.AllowedValues) == 0 {
		return nil
	}
	check := []any{v}
	if arr, isArr := v.([]any); isArr && !allowedValuesAreArrays(p.AllowedValues) {
		check = arr
	}
	for _, c := range check {
		found := false
		for _, a := range p.AllowedValues {
			// definition-structure-parameters.md, "allowedValues": the comparison is
			// case-sensitive (unlike the conditions that later use the value).
			if fnDeepEqual(a, c) {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("parameter %q does not allow %s; allowed: %s", p.Name, describeValue(c), describeValue(p.AllowedValues))
		}
	}
	return nil
}

func allowedValuesAreArrays(vs []any) bool {
	for _, v := range vs {
		if _, ok := v.([]any); !ok {
			return false
		}
	}
	return len(vs) > 0
}

func describeValue(v any) string {
	b, err := json.Marshal(v)
	if err != nil || len(b) > 200 {
		return "a " + TypeName(v)
	}
	return string(b)
}

func isExpressionString(v any) bool {
	s, ok := v.(string)
	return ok && strings.HasPrefix(s, "[") && !strings.HasPrefix(s, "[[")
}

// SetDefinition is an initiative (policySetDefinition): definitions grouped under one
// assignment, each with its reference id and parameter values.
type SetDefinition struct {
	ID          string
	Name        string
	DisplayName string
	Description string
	Metadata    map[string]any
	Parameters  Parameters
	Members     []SetMember
	Groups      []string
}

// SetMember is one definition in an initiative.
type SetMember struct {
	DefinitionID string
	ReferenceID  string
	// Parameters maps the member definition's parameter names to values, usually
	// expressions over the initiative's parameters ("[parameters('effect')]").
	Parameters map[string]any
	GroupNames []string
}

// ParseSetDefinition parses an initiative, as a full resource or its properties.
func ParseSetDefinition(data []byte) (*SetDefinition, error) {
	v, err := decodeDocument(data)
	if err != nil {
		return nil, err
	}
	top, ok := v.(map[string]any)
	if !ok {
		return nil, errorf(CodeParse, "", "an initiative is a JSON object, not %s", TypeName(v))
	}
	s := &SetDefinition{}
	props, prefix := top, ""
	if p, ok := lookupKey(top, "properties").(map[string]any); ok {
		props, prefix = p, "properties."
		s.ID, s.Name = stringKey(top, "id"), stringKey(top, "name")
	}
	members, ok := lookupKey(props, "policyDefinitions").([]any)
	if !ok {
		return nil, errorf(CodeParse, prefix+"policyDefinitions", "an initiative needs a policyDefinitions array")
	}
	s.DisplayName = stringKey(props, "displayName")
	s.Description = stringKey(props, "description")
	if m, ok := lookupKey(props, "metadata").(map[string]any); ok {
		s.Metadata = m
	}
	var errs Errors
	if raw := lookupKey(props, "parameters"); raw != nil {
		ps, perrs := parseParameters(raw, prefix+"parameters")
		s.Parameters = ps
		errs = append(errs, perrs...)
	}
	if groups, ok := lookupKey(props, "policyDefinitionGroups").([]any); ok {
		for _, g := range groups {
			if gm, ok := g.(map[string]any); ok {
				s.Groups = append(s.Groups, stringKey(gm, "name"))
			}
		}
	}
	seen := map[string]bool{}
	for i, raw := range members {
		loc := fmt.Sprintf("%spolicyDefinitions[%d]", prefix, i)
		m, ok := raw.(map[string]any)
		if !ok {
			errs = append(errs, errorf(CodeParse, loc, "each member must be an object"))
			continue
		}
		mem := SetMember{DefinitionID: stringKey(m, "policyDefinitionId"), ReferenceID: stringKey(m, "policyDefinitionReferenceId")}
		if mem.DefinitionID == "" {
			errs = append(errs, errorf(CodeInvalid, loc+".policyDefinitionId", "policyDefinitionId is required"))
		}
		if mem.ReferenceID == "" {
			// Azure generates one when it is left out; a stable one keeps states keyed.
			mem.ReferenceID = lastSegment(mem.DefinitionID)
		}
		if seen[strings.ToLower(mem.ReferenceID)] {
			errs = append(errs, errorf(CodeInvalid, loc+".policyDefinitionReferenceId", "reference id %q is used twice", mem.ReferenceID))
		}
		seen[strings.ToLower(mem.ReferenceID)] = true
		if pm, ok := lookupKey(m, "parameters").(map[string]any); ok {
			mem.Parameters = map[string]any{}
			for k, pv := range pm {
				wrapper, ok := pv.(map[string]any)
				if !ok || lookupKey(wrapper, "value") == nil {
					errs = append(errs, errorf(CodeInvalid, loc+".parameters."+k, "a member parameter is {\"value\": ...}"))
					continue
				}
				mem.Parameters[k] = lookupKey(wrapper, "value")
			}
		}
		if gn, ok := lookupKey(m, "groupNames").([]any); ok {
			for _, g := range gn {
				if gs, ok := g.(string); ok {
					mem.GroupNames = append(mem.GroupNames, gs)
				}
			}
		}
		s.Members = append(s.Members, mem)
	}
	return s, errs.err()
}

func lastSegment(id string) string {
	if i := strings.LastIndex(id, "/"); i >= 0 {
		return id[i+1:]
	}
	return id
}

// decodeDocument decodes a JSON document, tolerating a UTF-8 byte-order mark as Azure's
// files sometimes carry one.
func decodeDocument(data []byte) (any, error) {
	data = []byte(strings.TrimPrefix(string(data), "\ufeff"))
	v, err := DecodeJSON(data)
	if err != nil {
		var syn *json.SyntaxError
		if ok := asSyntax(err, &syn); ok {
			line, col := jsonPosition(data, syn.Offset)
			return nil, errorf(CodeParse, fmt.Sprintf("line %d, column %d", line, col), "invalid JSON: %v", err)
		}
		return nil, errorf(CodeParse, "", "invalid JSON: %v", err)
	}
	return v, nil
}

func asSyntax(err error, target **json.SyntaxError) bool {
	s, ok := err.(*json.SyntaxError)
	if ok {
		*target = s
	}
	return ok
}

func jsonPosition(data []byte, offset int64) (line, col int) {
	line, col = 1, 1
	for i := int64(0); i < offset && i < int64(len(data)); i++ {
		if data[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// lookupKey finds a key in an object, case-insensitively (Azure's JSON is); exact wins.
func lookupKey(m map[string]any, key string) any {
	v, _ := lookupKeyOK(m, key)
	return v
}

func lookupKeyOK(m map[string]any, key string) (any, bool) {
	if m == nil {
		return nil, false
	}
	if v, ok := m[key]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

func stringKey(m map[string]any, key string) string {
	s, _ := lookupKey(m, key).(string)
	return s
}

func isObject(v any) bool {
	_, ok := v.(map[string]any)
	return ok
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func joinLoc(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// dateTimeLayouts are the ISO 8601 forms a DateTime parameter may take.
var dateTimeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"}

func parseTimeOK(s string) bool {
	for _, l := range dateTimeLayouts {
		if _, err := time.Parse(l, s); err == nil {
			return true
		}
	}
	return false
}
