package guestconfig

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/gildhq/gild/spelling"
)

// Configuration is a machine configuration: a named, versioned set of checks whose values
// an assignment may change through parameters.
type Configuration struct {
	Name        string      `json:"name"`
	Version     string      `json:"version"` // Major.Minor.Patch
	Description string      `json:"description"`
	Aliases     []string    `json:"aliases,omitempty"` // other names it answers to, such as Azure's DINE policy's
	Parameters  []Parameter `json:"parameters,omitempty"`
	// Checks is an array of checks in check.Parse's form, whose string values may hold
	// ${short} placeholders for the parameters' values.
	Checks json.RawMessage `json:"checks,omitempty"`
	// ImageBaseline, instead of Checks, runs the checks the machine's image was validated
	// with (agentproto.ImageChecksPath).
	ImageBaseline bool `json:"imageBaseline,omitempty"`
}

// Parameter is a value an assignment may set. Name is Azure's configurationParameter name
// ("Ensure that the SSH PermitRootLogin is configured;DesiredObjectValue"), which policies
// hash and deploy; Short is the name of the policy parameter that feeds it
// ("permitRootLogin"), shorter to write, and the name of its placeholder in the checks.
type Parameter struct {
	Name        string `json:"name"`
	Short       string `json:"short"`
	Default     string `json:"default"`
	Description string `json:"description"`
}

// NameValue is one configurationParameter of an assignment, as Azure writes them.
type NameValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// placeholder is ${short} in a check's string.
var placeholder = regexp.MustCompile(`\$\{([^}]*)\}`)

// shortName is what a Short may be: placeholders are written with it.
var shortName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)

// versionRE is Major.Minor.Patch without leading zeros, as Azure versions configurations.
var versionRE = regexp.MustCompile(`^(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})$`)

// Validate reports every problem of c at once: its names, version and parameters, that
// it has checks or runs the image baseline (not both), that every placeholder names a
// parameter and every parameter is used, and that its checks parse with the defaults in
// place.
func (c *Configuration) Validate() error {
	var ps problems
	if strings.TrimSpace(c.Name) == "" {
		ps.add("name", "required")
	} else if strings.ContainsAny(c.Name, " \t\n/") {
		ps.add("name", "%q has a space or a slash; a configuration name is one word", c.Name)
	}
	if !versionRE.MatchString(c.Version) {
		ps.add("version", "%q is not a version such as 1.0.0", c.Version)
	}
	for i, a := range c.Aliases {
		if strings.TrimSpace(a) == "" || strings.ContainsAny(a, " \t\n/") {
			ps.add(fmt.Sprintf("aliases[%d]", i), "%q is not a configuration name", a)
		}
	}
	seen := map[string]string{}
	for i, p := range c.Parameters {
		at := fmt.Sprintf("parameters[%d]", i)
		if strings.TrimSpace(p.Name) == "" {
			ps.add(at+".name", "required")
		}
		if !shortName.MatchString(p.Short) {
			ps.add(at+".short", "%q is not a short name (a letter, then letters, digits or _)", p.Short)
		}
		for _, n := range []struct{ field, v string }{{"name", p.Name}, {"short", p.Short}} {
			k := strings.ToLower(n.v)
			if k == "" || n.field == "short" && strings.EqualFold(p.Name, p.Short) {
				continue
			}
			if other, dup := seen[k]; dup {
				ps.add(at+"."+n.field, "%q is already %s", n.v, other)
			} else {
				seen[k] = at + "." + n.field
			}
		}
	}
	switch {
	case c.ImageBaseline && len(c.Checks) > 0:
		ps.add("checks", "a configuration runs its own checks or the image baseline, not both")
	case c.ImageBaseline && len(c.Parameters) > 0:
		ps.add("parameters", "the image baseline has no parameters: its checks are the image's")
	case !c.ImageBaseline && len(bytes.TrimSpace(c.Checks)) == 0:
		ps.add("checks", "required (or imageBaseline: true)")
	case !c.ImageBaseline:
		c.validateChecks(&ps)
	}
	return ps.err()
}

// validateChecks checks the placeholders and that the checks parse with the defaults.
func (c *Configuration) validateChecks(ps *problems) {
	var doc any
	dec := json.NewDecoder(bytes.NewReader(c.Checks))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		ps.add("checks", "not valid JSON: %v", err)
		return
	}
	if _, ok := doc.([]any); !ok {
		ps.add("checks", "want an array of checks")
		return
	}
	used := map[string]bool{}
	walkStrings(doc, "checks", func(at, s string, key bool) {
		for _, m := range placeholder.FindAllStringSubmatch(s, -1) {
			switch p := c.parameter(m[1]); {
			case key:
				ps.add(at, "placeholder %s in a field name; placeholders go in values", m[0])
			case p == nil || p.Short != m[1]:
				msg := fmt.Sprintf("placeholder %s names no parameter", m[0])
				if s := spelling.Nearest(m[1], c.shorts(), len(m[1])/3+2); s != "" {
					msg += fmt.Sprintf("; did you mean ${%s}?", s)
				}
				ps.add(at, "%s", msg)
			default:
				used[p.Short] = true
			}
		}
	})
	for i, p := range c.Parameters {
		if shortName.MatchString(p.Short) && !used[p.Short] {
			ps.add(fmt.Sprintf("parameters[%d]", i), "${%s} appears in no check, so the parameter would change nothing", p.Short)
		}
	}
	if len(*ps) > 0 {
		return
	}
	if _, err := Render(c, nil); err != nil {
		ps.add("checks", "with the defaults in place: %v", err)
	}
}

// shorts lists the parameters' short names.
func (c *Configuration) shorts() []string {
	out := make([]string, len(c.Parameters))
	for i, p := range c.Parameters {
		out[i] = p.Short
	}
	return out
}

// parameter finds a parameter by its Name or its Short, in any case.
func (c *Configuration) parameter(name string) *Parameter {
	for i := range c.Parameters {
		p := &c.Parameters[i]
		if strings.EqualFold(p.Name, name) || strings.EqualFold(p.Short, name) {
			return p
		}
	}
	return nil
}

// parameterNames lists every name a parameter answers to, for suggestions.
func (c *Configuration) parameterNames() []string {
	var out []string
	for _, p := range c.Parameters {
		out = append(out, p.Name, p.Short)
	}
	return out
}

// clone copies c so that callers cannot change the registry's configurations.
func (c *Configuration) clone() *Configuration {
	out := *c
	out.Aliases = slices.Clone(c.Aliases)
	out.Parameters = slices.Clone(c.Parameters)
	out.Checks = slices.Clone(c.Checks)
	return &out
}

// builtinFS holds gild's built-in configurations, one JSON file each.
//
//go:embed builtin/*.json
var builtinFS embed.FS

// builtins are the built-in configurations, by file name order. A broken embedded file is
// a bug of this package, which its tests catch; loading does not validate, so that the
// tests can report every problem rather than a panic.
var builtins = loadBuiltins()

func loadBuiltins() []*Configuration {
	entries, err := builtinFS.ReadDir("builtin")
	if err != nil {
		panic(err)
	}
	var out []*Configuration
	for _, e := range entries {
		data, err := builtinFS.ReadFile(path.Join("builtin", e.Name()))
		if err != nil {
			panic(err)
		}
		c, err := decodeConfiguration(data)
		if err != nil {
			panic(fmt.Sprintf("guestconfig: built-in %s: %v", e.Name(), err))
		}
		out = append(out, c)
	}
	return out
}

// decodeConfiguration reads a configuration file strictly: an unknown field is a typo.
func decodeConfiguration(data []byte) (*Configuration, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c Configuration
	if err := dec.Decode(&c); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("data after the configuration")
	}
	return &c, nil
}

// Lookup finds a built-in configuration by its name or an alias, in any case, and
// returns a copy of it.
func Lookup(name string) (*Configuration, bool) {
	for _, c := range builtins {
		if strings.EqualFold(c.Name, name) || slices.ContainsFunc(c.Aliases, func(a string) bool { return strings.EqualFold(a, name) }) {
			return c.clone(), true
		}
	}
	return nil, false
}

// Names lists the built-in configurations' names (not their aliases), sorted.
func Names() []string {
	out := make([]string, len(builtins))
	for i, c := range builtins {
		out[i] = c.Name
	}
	sort.Strings(out)
	return out
}

// NotFoundError says that no configuration has a name, and which one was probably meant.
type NotFoundError struct {
	Name       string
	Suggestion string // the nearest name or alias; empty when none is close
}

func (e *NotFoundError) Error() string {
	msg := fmt.Sprintf("no machine configuration is named %q", e.Name)
	if e.Suggestion != "" {
		msg += fmt.Sprintf("; did you mean %q?", e.Suggestion)
	}
	quoted := make([]string, 0, len(builtins))
	for _, n := range Names() {
		quoted = append(quoted, strconv.Quote(n))
	}
	return msg + " (gild has " + strings.Join(quoted, ", ") + ")"
}

// NotFound is the error for a configuration name that Lookup does not know, with the
// nearest name or alias as a suggestion.
func NotFound(name string) error {
	var all []string
	for _, c := range builtins {
		all = append(all, c.Name)
		all = append(all, c.Aliases...)
	}
	return &NotFoundError{Name: name, Suggestion: nearest(name, all)}
}

// nearest is the candidate s was probably meant to be: one a typo away
// (spelling.Nearest), or else the only one that s begins ("guestConfig" for
// "guestConfiguration", a rule name without its ";DesiredObjectValue").
func nearest(s string, candidates []string) string {
	if n := spelling.Nearest(s, candidates, len(s)/3+2); n != "" {
		return n
	}
	if len(s) < 4 {
		return ""
	}
	found := ""
	for _, c := range candidates {
		if len(c) > len(s) && strings.EqualFold(c[:len(s)], s) {
			if found != "" && found != c {
				return ""
			}
			found = c
		}
	}
	return found
}

// walkStrings calls fn for every string in a decoded JSON document, object keys
// included (key true), with its path written as check.Parse writes paths
// ("checks[3].value").
func walkStrings(v any, at string, fn func(at, s string, key bool)) {
	switch v := v.(type) {
	case string:
		fn(at, v, false)
	case []any:
		for i, e := range v {
			walkStrings(e, fmt.Sprintf("%s[%d]", at, i), fn)
		}
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fn(at+"."+k, k, true)
			walkStrings(v[k], at+"."+k, fn)
		}
	}
}
