package guestconfig

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gildhq/gild/check"
)

// TestBuiltinsValid: every built-in configuration validates, so its checks parse with
// the defaults in place, and no two configurations answer to the same name.
func TestBuiltinsValid(t *testing.T) {
	if len(builtins) != 3 {
		t.Errorf("%d built-in configurations, want 3", len(builtins))
	}
	owner := map[string]string{}
	for _, c := range builtins {
		if err := c.Validate(); err != nil {
			t.Errorf("%s:\n%v", c.Name, err)
		}
		for _, n := range append([]string{c.Name}, c.Aliases...) {
			if other, dup := owner[strings.ToLower(n)]; dup {
				t.Errorf("%q names both %s and %s", n, other, c.Name)
			}
			owner[strings.ToLower(n)] = c.Name
		}
		if c.ImageBaseline {
			continue
		}
		out, err := Render(c, nil)
		if err != nil {
			t.Errorf("%s: %v", c.Name, err)
			continue
		}
		set, err := check.Parse(out)
		if err != nil || set.Len() == 0 {
			t.Errorf("%s renders %d checks: %v", c.Name, set.Len(), err)
		}
	}
}

func TestLookup(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"LinuxSshServerSecurityBaseline", "LinuxSshServerSecurityBaseline"},
		{"linuxsshserversecuritybaseline", "LinuxSshServerSecurityBaseline"},
		{"SetLinuxSshServerSecurityBaseline", "LinuxSshServerSecurityBaseline"},
		{"PASSWORDPOLICY_MSID232", "PasswordPolicy_msid232"},
		{"gild-image-baseline", "gild-image-baseline"},
		{"LinuxSshServerSecurityBaselin", ""},
		{"", ""},
	} {
		c, ok := Lookup(tc.name)
		if ok != (tc.want != "") || (ok && c.Name != tc.want) {
			t.Errorf("Lookup(%q) = %v, %v; want %q", tc.name, c, ok, tc.want)
		}
	}
	if got, want := Names(), []string{"LinuxSshServerSecurityBaseline", "PasswordPolicy_msid232", "gild-image-baseline"}; !slices.Equal(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
	// A caller's changes to what Lookup returned do not reach the registry.
	c, _ := Lookup("LinuxSshServerSecurityBaseline")
	c.Parameters[0].Default = "777"
	c.Aliases[0] = "x"
	c.Checks[0] = ' '
	again, _ := Lookup("LinuxSshServerSecurityBaseline")
	if again.Parameters[0].Default != "600" || again.Aliases[0] != "SetLinuxSshServerSecurityBaseline" || again.Checks[0] != '[' {
		t.Error("Lookup shares its configuration with its callers")
	}
}

func TestNotFound(t *testing.T) {
	for _, tc := range []struct{ name, suggestion, message string }{
		{"LinuxSshServerBaseline", "LinuxSshServerSecurityBaseline",
			`no machine configuration is named "LinuxSshServerBaseline"; did you mean "LinuxSshServerSecurityBaseline"? (gild has "LinuxSshServerSecurityBaseline", "PasswordPolicy_msid232", "gild-image-baseline")`},
		{"SetLinuxSshServerSecurityBaselin", "SetLinuxSshServerSecurityBaseline", ""},
		{"PasswordPolicy_msid110", "PasswordPolicy_msid232", ""},
		{"AzureWindowsBaseline", "",
			`no machine configuration is named "AzureWindowsBaseline" (gild has "LinuxSshServerSecurityBaseline", "PasswordPolicy_msid232", "gild-image-baseline")`},
	} {
		err := NotFound(tc.name)
		var nf *NotFoundError
		if !errors.As(err, &nf) || nf.Name != tc.name || nf.Suggestion != tc.suggestion {
			t.Errorf("NotFound(%q) = %#v, want suggestion %q", tc.name, err, tc.suggestion)
		}
		if tc.message != "" && err.Error() != tc.message {
			t.Errorf("NotFound(%q):\n%s\nwant\n%s", tc.name, err, tc.message)
		}
	}
}

// TestValidateProblems: a configuration's problems are reported together, each at its path.
func TestValidateProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Configuration
		want []string
	}{
		{"empty", Configuration{}, []string{
			`name: required`,
			`version: "" is not a version such as 1.0.0`,
			`checks: required (or imageBaseline: true)`,
		}},
		{"names and parameters", Configuration{Name: "a b", Version: "1.0", Aliases: []string{""},
			Parameters: []Parameter{{Name: "P;DesiredObjectValue", Short: "p"}, {Name: "p", Short: "2x"}, {Short: "q"}},
			Checks:     json.RawMessage(`[{"name":"c","kind":"file","path":"${p}","mode":"${q}"}]`)}, []string{
			`name: "a b" has a space or a slash; a configuration name is one word`,
			`version: "1.0" is not a version such as 1.0.0`,
			`aliases[0]: "" is not a configuration name`,
			`parameters[1].short: "2x" is not a short name (a letter, then letters, digits or _)`,
			`parameters[1].name: "p" is already parameters[0].short`,
			`parameters[2].name: required`,
		}},
		{"placeholders", Configuration{Name: "x", Version: "1.0.0",
			Parameters: []Parameter{{Name: "Mode;DesiredObjectValue", Short: "mode", Default: "0600"}, {Name: "Unused", Short: "unused"}},
			Checks:     json.RawMessage(`[{"name":"c","kind":"file","path":"/etc/${mod}","${mode}":"x"}]`)}, []string{
			`checks[0].${mode}: placeholder ${mode} in a field name; placeholders go in values`,
			`checks[0].path: placeholder ${mod} names no parameter; did you mean ${mode}?`,
			`parameters[0]: ${mode} appears in no check, so the parameter would change nothing`,
			`parameters[1]: ${unused} appears in no check, so the parameter would change nothing`,
		}},
		{"a placeholder by the full name", Configuration{Name: "x", Version: "1.0.0",
			Parameters: []Parameter{{Name: "Mode", Short: "mode", Default: "0600"}},
			Checks:     json.RawMessage(`[{"name":"c","kind":"file","path":"/etc/x","mode":"${Mode}"}]`)}, []string{
			`checks[0].mode: placeholder ${Mode} names no parameter; did you mean ${mode}?`,
			`parameters[0]: ${mode} appears in no check, so the parameter would change nothing`,
		}},
		{"a default that makes the checks invalid", Configuration{Name: "x", Version: "1.0.0",
			Parameters: []Parameter{{Name: "Mode", Short: "mode", Default: "rw-------"}},
			Checks:     json.RawMessage(`[{"name":"c","kind":"file","path":"/etc/x","mode":"${mode}"}]`)}, []string{
			`checks: with the defaults in place: configuration x with its defaults: checks[0].mode: "rw-------" is not an octal mode such as "0644"`,
		}},
		{"checks not an array", Configuration{Name: "x", Version: "1.0.0", Checks: json.RawMessage(`{"checks":[]}`)}, []string{
			`checks: want an array of checks`,
		}},
		{"both checks and the image baseline", Configuration{Name: "x", Version: "1.0.0", ImageBaseline: true, Checks: json.RawMessage(`[]`)}, []string{
			`checks: a configuration runs its own checks or the image baseline, not both`,
		}},
		{"parameters of the image baseline", Configuration{Name: "x", Version: "1.0.0", ImageBaseline: true, Parameters: []Parameter{{Name: "a", Short: "a"}}}, []string{
			`parameters: the image baseline has no parameters: its checks are the image's`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			var ie *InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("Validate() = %v, want an *InvalidError", err)
			}
			if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, tc.want) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// corpusDir is Azure's published policy definitions, beside the repository (../shared).
var corpusDir = filepath.Join("..", "..", "shared", "azure-policy", "built-in-policies", "policyDefinitions", "Guest Configuration")

// azurePolicy reads one of Azure's machine-configuration policies, or skips the test
// where the corpus is not beside the repository (CI has it).
func azurePolicy(t *testing.T, file string) ([]byte, azureDefinition) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(corpusDir, file))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the Azure Policy corpus is missing: %v", err)
		}
		t.Skipf("the Azure Policy corpus is not at %s; clone beside ../shared to compare with Azure's policies: %v", corpusDir, err)
	}
	var def azureDefinition
	if err := json.Unmarshal(data, &def); err != nil {
		t.Fatal(err)
	}
	return data, def
}

// azureDefinition is the part of a policy definition these tests compare with.
type azureDefinition struct {
	Properties struct {
		Metadata struct {
			GuestConfiguration struct {
				Name    string `json:"name"`
				Version string `json:"version"`
				// configurationParameter maps the policy's parameter names to Azure's
				// full names; its order matters, so it is read as raw JSON too.
				ConfigurationParameter json.RawMessage `json:"configurationParameter"`
			} `json:"guestConfiguration"`
		} `json:"metadata"`
		Parameters map[string]struct {
			DefaultValue any `json:"defaultValue"`
		} `json:"parameters"`
	} `json:"properties"`
}

// orderedStrings reads a JSON object of strings in document order.
func orderedStrings(t *testing.T, raw json.RawMessage) [][2]string {
	t.Helper()
	var ps problems
	fields, ok := readObject(raw, "configurationParameter", &ps)
	if !ok {
		t.Fatal(ps.err())
	}
	var out [][2]string
	for _, f := range fields {
		var s string
		if err := json.Unmarshal(f.raw, &s); err != nil {
			t.Fatal(err)
		}
		out = append(out, [2]string{f.name, s})
	}
	return out
}

// TestSshBaselineIsAzures: the SSH baseline has exactly the parameters of Azure's policy,
// in its order, with its names, short names and defaults; its checks are named after
// Azure's rules; both Azure names of the configuration find it, at a version the
// policies' version pattern accepts.
func TestSshBaselineIsAzures(t *testing.T) {
	_, def := azurePolicy(t, "LinuxSshServerSecurityBaseline_AINE.json")
	_, dine := azurePolicy(t, "LinuxSshServerSecurityBaseline_DINE.json")
	c, ok := Lookup(def.Properties.Metadata.GuestConfiguration.Name)
	if !ok {
		t.Fatalf("no configuration %q", def.Properties.Metadata.GuestConfiguration.Name)
	}
	if d, ok := Lookup(dine.Properties.Metadata.GuestConfiguration.Name); !ok || d.Name != c.Name {
		t.Errorf("the DINE policy's %q does not find %s", dine.Properties.Metadata.GuestConfiguration.Name, c.Name)
	}
	if v := def.Properties.Metadata.GuestConfiguration.Version; !versionMatches(v, c.Version) {
		t.Errorf("the policy asks for version %s; the configuration is %s", v, c.Version)
	}
	azure := orderedStrings(t, def.Properties.Metadata.GuestConfiguration.ConfigurationParameter)
	if len(azure) != len(c.Parameters) {
		t.Errorf("%d parameters, Azure's policy has %d", len(c.Parameters), len(azure))
	}
	for i, a := range azure {
		if i >= len(c.Parameters) {
			break
		}
		p := c.Parameters[i]
		def, _ := def.Properties.Parameters[a[0]].DefaultValue.(string)
		if p.Short != a[0] || p.Name != a[1] || p.Default != def {
			t.Errorf("parameter %d is {%q %q %q}, Azure's is {%q %q %q}", i, p.Short, p.Name, p.Default, a[0], a[1], def)
		}
	}
	set, err := check.Parse(mustRender(t, c, nil))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, ch := range set.Checks() {
		names[ch.Name] = true
	}
	for _, p := range c.Parameters {
		if rule := strings.TrimSuffix(p.Name, ";DesiredObjectValue"); !names[rule] {
			t.Errorf("no check is named after rule %q", rule)
		}
	}
}

func TestPasswordPolicyIsAzures(t *testing.T) {
	_, def := azurePolicy(t, "LinuxPassword232_AINE.json")
	c, ok := Lookup(def.Properties.Metadata.GuestConfiguration.Name)
	if !ok || len(c.Parameters) != 0 || !versionMatches(def.Properties.Metadata.GuestConfiguration.Version, c.Version) {
		t.Fatalf("Lookup(%q) = %+v, %v", def.Properties.Metadata.GuestConfiguration.Name, c, ok)
	}
}

// concatArg is one argument of concat(...) in a policy expression: a quoted literal or
// parameters('name').
var concatArg = regexp.MustCompile(`'((?:[^']|'')*)'|parameters\('([^']*)'\)`)

// TestParameterHashIsAzures builds the string Azure's policy hashes from the policy's own
// text, its existence condition's concat(...) with the parameters' default values, and
// compares it with ParameterHash of the configuration's defaults: the order, the names and
// the separators must all be Azure's.
func TestParameterHashIsAzures(t *testing.T) {
	data, def := azurePolicy(t, "LinuxSshServerSecurityBaseline_AINE.json")
	text := string(data)
	start := strings.Index(text, "[base64(concat(")
	end := strings.Index(text[max(start, 0):], "))]")
	if start < 0 || end < 0 {
		t.Fatal("the policy has no [base64(concat(...))] expression")
	}
	// The expression is inside a JSON string: unescape it first.
	var expr string
	if err := json.Unmarshal([]byte(`"`+text[start+len("[base64(concat("):start+end]+`"`), &expr); err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, a := range concatArg.FindAllStringSubmatch(expr, -1) {
		if a[2] != "" {
			v, _ := def.Properties.Parameters[a[2]].DefaultValue.(string)
			want.WriteString(v)
			continue
		}
		want.WriteString(strings.ReplaceAll(a[1], "''", "'"))
	}
	if !strings.Contains(want.String(), "PermitRootLogin is configured;DesiredObjectValue=no,") {
		t.Fatalf("reading the policy's concat went wrong: %q", want.String())
	}
	c, _ := Lookup("LinuxSshServerSecurityBaseline")
	var params []NameValue
	for _, p := range c.Parameters {
		params = append(params, NameValue{p.Name, p.Default})
	}
	if got, want := ParameterHash(params), base64.StdEncoding.EncodeToString([]byte(want.String())); got != want {
		got, _ := base64.StdEncoding.DecodeString(got)
		want, _ := base64.StdEncoding.DecodeString(want)
		t.Errorf("ParameterHash hashes\n%q\nAzure's policy hashes\n%q", got, want)
	}
}

func mustRender(t *testing.T, c *Configuration, params []NameValue) json.RawMessage {
	t.Helper()
	out, err := Render(c, params)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
