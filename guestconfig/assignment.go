package guestconfig

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gildhq/gild/agentproto"
)

// AssignmentProperties are a Microsoft.GuestConfiguration/guestConfigurationAssignments
// resource's properties: what a client sets (guestConfiguration, context) and the hashes
// the server keeps (Normalize). The compliance fields of a stored assignment
// (complianceStatus, latestAssignmentReport, ...) come from the machine's reports and
// live beside these, with the server.
type AssignmentProperties struct {
	GuestConfiguration GuestConfiguration `json:"guestConfiguration"`
	// Context says who made the assignment ("Azure policy"), as free text.
	Context        string `json:"context,omitempty"`
	ParameterHash  string `json:"parameterHash,omitempty"`
	AssignmentHash string `json:"assignmentHash,omitempty"`

	configuration *Configuration // what Name resolved to; nil for properties built by hand
}

// GuestConfiguration says which configuration an assignment runs and how.
type GuestConfiguration struct {
	Name string `json:"name"` // a configuration's name or alias, as given
	// Version, when given, is the configuration's version exactly ("1.0.0") or a pattern
	// ("1.*", "1.0.*") that it must match.
	Version                string      `json:"version,omitempty"`
	AssignmentType         string      `json:"assignmentType"` // Audit (the default), ApplyAndMonitor or ApplyAndAutoCorrect
	ConfigurationParameter []NameValue `json:"configurationParameter,omitempty"`
}

// assignmentTypes are Azure's, in the order the package doc gives them.
var assignmentTypes = []string{agentproto.AssignmentAudit, agentproto.AssignmentApplyAndMonitor, agentproto.AssignmentApplyAndAutoCorrect}

// serverFields are properties the server maintains; a client sending them back (a GET,
// changed, PUT again) is not wrong, and they are ignored.
var serverFields = []string{"complianceStatus", "latestAssignmentReport", "lastComplianceStatusChecked", "parameterHash",
	"assignmentHash", "provisioningState", "latestReportId", "targetResourceId", "resourceType", "vmssVMList"}

// unsupported are Azure fields for what gild does not do, with why.
var unsupported = map[string]string{
	"contentUri":                      "custom configuration packages are not supported; gild runs its built-in configurations",
	"contentHash":                     "custom configuration packages are not supported; gild runs its built-in configurations",
	"contentManagedIdentity":          "custom configuration packages are not supported; gild runs its built-in configurations",
	"configurationProtectedParameter": "protected parameters are not supported; give the values in configurationParameter",
	"configurationSetting":            "configuration settings (the DSC local configuration manager's) are not supported",
}

// ParseAssignment reads a guestConfigurationAssignment's properties as a client sends
// them. guestConfiguration.name must name a configuration (Lookup); version, when given,
// must match its version; assignmentType is Audit when not given; every
// configurationParameter must be one of the configuration's parameters, given once, with
// a string value that makes valid checks. Field names are matched in any case, as ARM
// does. Fields the server maintains are ignored. The error, an *InvalidError, lists every
// problem at once with its path ("properties.guestConfiguration.configurationParameter[2].name").
func ParseAssignment(raw json.RawMessage) (*AssignmentProperties, error) {
	var ps problems
	const at = "properties"
	fields, ok := readObject(raw, at, &ps)
	if !ok {
		return nil, ps.err()
	}
	a := &AssignmentProperties{}
	var gc json.RawMessage
	for _, f := range fields {
		name := canonical(f.name, append([]string{"guestConfiguration", "context"}, serverFields...))
		switch {
		case name == "guestConfiguration":
			gc = f.raw
		case name == "context":
			a.Context, _ = readString(f.raw, at+".context", &ps)
		case contains(serverFields, name):
		default:
			ps.add(at+"."+f.name, "%s", unknownField(f.name, []string{"guestConfiguration", "context"}))
		}
	}
	if gc == nil || isNull(gc) {
		ps.add(at+".guestConfiguration", "required")
		return nil, ps.err()
	}
	a.parseGuestConfiguration(gc, at+".guestConfiguration", &ps)
	if err := ps.err(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *AssignmentProperties) parseGuestConfiguration(raw json.RawMessage, at string, ps *problems) {
	fields, ok := readObject(raw, at, ps)
	if !ok {
		return
	}
	g := &a.GuestConfiguration
	known := []string{"name", "version", "assignmentType", "configurationParameter"}
	var params json.RawMessage
	for _, f := range fields {
		name := canonical(f.name, append(append([]string{"assignmentSource", "contentType", "kind"}, known...), keys(unsupported)...))
		fat := at + "." + f.name
		switch name {
		case "name":
			g.Name, _ = readString(f.raw, fat, ps)
		case "version":
			g.Version, _ = readString(f.raw, fat, ps)
		case "assignmentType":
			g.AssignmentType, _ = readString(f.raw, fat, ps)
		case "configurationParameter":
			params = f.raw
		case "assignmentSource":
			// Read-only in Azure: where the assignment came from.
		case "contentType":
			// Azure reports "BuiltIn" for its own configurations, which all of gild's are.
			if s, ok := readString(f.raw, fat, ps); ok && s != "" && !strings.EqualFold(s, "BuiltIn") {
				ps.add(fat, "%q: gild runs only built-in configurations (contentType BuiltIn)", s)
			}
		case "kind":
			if s, ok := readString(f.raw, fat, ps); ok && s != "" && !strings.EqualFold(s, "DSC") {
				ps.add(fat, "%q: gild's configurations are of kind DSC, as Azure's Linux ones", s)
			}
		default:
			if why, ok := unsupported[name]; ok {
				if !isNull(f.raw) {
					ps.add(fat, "%s", why)
				}
				continue
			}
			ps.add(fat, "%s", unknownField(f.name, known))
		}
	}
	if g.Name == "" {
		ps.add(at+".name", "required: the configuration to run (%s)", strings.Join(Names(), ", "))
	} else if c, ok := Lookup(g.Name); ok {
		a.configuration = c
	} else {
		ps.add(at+".name", "%v", NotFound(g.Name))
	}
	switch t := canonical(g.AssignmentType, assignmentTypes); {
	case g.AssignmentType == "":
		g.AssignmentType = agentproto.AssignmentAudit
	case contains(assignmentTypes, t):
		g.AssignmentType = t
	default:
		ps.add(at+".assignmentType", "%q is not one of %s", g.AssignmentType, strings.Join(assignmentTypes, ", "))
	}
	if g.Version != "" {
		if !validVersionPattern(g.Version) {
			ps.add(at+".version", "%q is not a version such as 1.0.0 or a pattern such as 1.* or 1.0.*", g.Version)
		} else if c := a.configuration; c != nil && !versionMatches(g.Version, c.Version) {
			ps.add(at+".version", "%q does not match configuration %s, which is version %s", g.Version, c.Name, c.Version)
		}
	}
	before := len(*ps)
	if params != nil && !isNull(params) {
		g.ConfigurationParameter = readParameters(params, at+".configurationParameter", ps)
	}
	// The values are judged by the checks they make, once the names and values are read.
	if c := a.configuration; c != nil && len(*ps) == before {
		if _, rps := render(c, g.ConfigurationParameter); len(rps) > 0 {
			*ps = append(*ps, rps.under(at)...)
		}
	}
}

// readParameters reads [{name, value}, ...]; an empty list is none.
func readParameters(raw json.RawMessage, at string, ps *problems) []NameValue {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		ps.add(at, "want an array of {\"name\", \"value\"}, got %s", jsonKind(raw))
		return nil
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		ps.add(at, "%v", err)
		return nil
	}
	var out []NameValue
	for i, e := range elems {
		eat := fmt.Sprintf("%s[%d]", at, i)
		fields, ok := readObject(e, eat, ps)
		if !ok {
			continue
		}
		var nv NameValue
		var hasName, hasValue bool
		for _, f := range fields {
			switch canonical(f.name, []string{"name", "value"}) {
			case "name":
				nv.Name, hasName = readString(f.raw, eat+"."+f.name, ps)
			case "value":
				nv.Value, hasValue = readString(f.raw, eat+"."+f.name, ps)
			default:
				ps.add(eat+"."+f.name, "%s", unknownField(f.name, []string{"name", "value"}))
			}
		}
		if !hasName || nv.Name == "" {
			ps.add(eat+".name", "required")
		}
		if !hasValue {
			ps.add(eat+".value", "required (a string; \"\" for empty)")
		}
		out = append(out, nv)
	}
	return out
}

// Configuration returns the configuration the assignment runs: the one its name resolved
// to when parsed, or looked up now for properties built by hand.
func (a *AssignmentProperties) Configuration() (*Configuration, error) {
	if a.configuration != nil {
		return a.configuration.clone(), nil
	}
	c, ok := Lookup(a.GuestConfiguration.Name)
	if !ok {
		return nil, NotFound(a.GuestConfiguration.Name)
	}
	return c, nil
}

// Agent is the assignment as the agent runs it: the configuration's checks with the
// parameters in place (or the image baseline), its type, the configuration's name and
// version, and a Hash of all of these and the assignment's name, which changes whenever
// anything the agent must do does.
func (a *AssignmentProperties) Agent(assignmentName string) (agentproto.Assignment, error) {
	if strings.TrimSpace(assignmentName) == "" {
		return agentproto.Assignment{}, errors.New("guestconfig: an assignment for the agent needs its name")
	}
	return a.agent(assignmentName)
}

func (a *AssignmentProperties) agent(name string) (agentproto.Assignment, error) {
	c, err := a.Configuration()
	if err != nil {
		return agentproto.Assignment{}, err
	}
	t := canonical(a.GuestConfiguration.AssignmentType, assignmentTypes)
	if t == "" {
		t = agentproto.AssignmentAudit
	}
	if !contains(assignmentTypes, t) {
		return agentproto.Assignment{}, fmt.Errorf("guestconfig: assignment type %q is not one of %s", t, strings.Join(assignmentTypes, ", "))
	}
	out := agentproto.Assignment{
		Name:                 name,
		Configuration:        c.Name,
		ConfigurationVersion: c.Version,
		AssignmentType:       t,
		ImageBaseline:        c.ImageBaseline,
	}
	if !c.ImageBaseline {
		checks, ps := render(c, a.GuestConfiguration.ConfigurationParameter)
		if err := ps.err(); err != nil {
			return agentproto.Assignment{}, err
		}
		out.Checks = checks
	}
	// The agent's own struct, its Hash empty, marshals its fields in a fixed order and
	// the checks in Render's canonical form: the same work gives the same bytes.
	data, err := json.Marshal(out)
	if err != nil {
		return agentproto.Assignment{}, err
	}
	sum := sha256.Sum256(data)
	out.Hash = hex.EncodeToString(sum[:])
	return out, nil
}

// Normalize fills the hashes the server stores. ParameterHash is over the
// configurationParameter list exactly as the assignment carries it, in its order and
// without defaults filled in, because that is what Azure computes and what a policy's
// existence condition compares with (see ParameterHash). AssignmentHash is the hash of
// what the assignment makes a machine do (Agent's Hash without the assignment's name), so
// two assignments with equal hashes run the same checks the same way.
func (a *AssignmentProperties) Normalize() error {
	ag, err := a.agent("")
	if err != nil {
		return err
	}
	a.GuestConfiguration.AssignmentType = ag.AssignmentType
	a.ParameterHash = ParameterHash(a.GuestConfiguration.ConfigurationParameter)
	a.AssignmentHash = ag.Hash
	return nil
}

// validVersionPattern accepts "1.2.3", "1.2.*", "1.*" and "*".
func validVersionPattern(p string) bool {
	parts := strings.Split(p, ".")
	if len(parts) > 3 {
		return false
	}
	for i, s := range parts {
		if s == "*" {
			return i == len(parts)-1
		}
		if n, err := strconv.Atoi(s); err != nil || n < 0 || strconv.Itoa(n) != s {
			return false
		}
	}
	return len(parts) == 3
}

// versionMatches reports whether version (Major.Minor.Patch) matches a valid pattern.
func versionMatches(pattern, version string) bool {
	pp, vp := strings.Split(pattern, "."), strings.Split(version, ".")
	for i, s := range pp {
		if s == "*" {
			return true
		}
		if i >= len(vp) || s != vp[i] {
			return false
		}
	}
	return len(pp) == len(vp)
}

// field is one member of a JSON object, in document order.
type field struct {
	name string
	raw  json.RawMessage
}

// readObject reads a JSON object's members in order, reporting a value that is not an
// object and names repeated in any case (encoding/json would keep the last silently).
func readObject(raw json.RawMessage, at string, ps *problems) ([]field, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		ps.add(at, "want an object, got %s", jsonKind(raw))
		return nil, false
	}
	if !json.Valid(raw) {
		var v any
		err := json.Unmarshal(raw, &v)
		ps.add(at, "not valid JSON: %v", err)
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil {
		ps.add(at, "%v", err)
		return nil, false
	}
	var out []field
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			ps.add(at, "%v", err)
			return nil, false
		}
		name, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			ps.add(at, "%v", err)
			return nil, false
		}
		if seen[strings.ToLower(name)] {
			ps.add(at+"."+name, "repeated field")
			continue
		}
		seen[strings.ToLower(name)] = true
		out = append(out, field{name, v})
	}
	return out, true
}

// readString reads a string member; null counts as not given (ok false, no problem).
func readString(raw json.RawMessage, at string, ps *problems) (string, bool) {
	if isNull(raw) {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		ps.add(at, "want a string, got %s", jsonKind(raw))
		return "", false
	}
	return s, true
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// canonical returns the name in names equal to s in any case, or s.
func canonical(s string, names []string) string {
	for _, n := range names {
		if strings.EqualFold(n, s) {
			return n
		}
	}
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// unknownField says that name is not a field here, with the nearest known one.
func unknownField(name string, known []string) string {
	msg := "unknown field"
	if s := nearest(name, known); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return msg + " (fields: " + strings.Join(known, ", ") + ")"
}

// jsonKind names a raw JSON value's type for messages.
func jsonKind(raw []byte) string {
	s := strings.TrimSpace(string(raw))
	if s == "" {
		return "nothing"
	}
	short := func(s string) string {
		if len(s) <= 40 {
			return s
		}
		cut := 40
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return s[:cut] + "…"
	}
	switch s[0] {
	case '"':
		return "string " + short(s)
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "boolean " + s
	case 'n':
		return "null"
	default:
		return "number " + short(s)
	}
}
