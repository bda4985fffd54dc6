package guestconfig

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/gildhq/gild/agentproto"
	"github.com/gildhq/gild/check"
)

// dineBody is what Azure's DINE policy deploys for the SSH baseline, values given.
const dineBody = `{
	"guestConfiguration": {
		"name": "SetLinuxSshServerSecurityBaseline",
		"version": "1.*",
		"assignmentType": "ApplyAndAutoCorrect",
		"configurationParameter": [
			{"name": "Ensure that the SSH PermitRootLogin is configured;DesiredObjectValue", "value": "no"},
			{"name": "Ensure that the SSH port is configured;DesiredObjectValue", "value": "2222"}
		]
	}
}`

func TestParseAssignment(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want AssignmentProperties
	}{
		{"the least", `{"guestConfiguration":{"name":"PasswordPolicy_msid232"}}`,
			AssignmentProperties{GuestConfiguration: GuestConfiguration{Name: "PasswordPolicy_msid232", AssignmentType: "Audit"}}},
		{"as Azure's DINE policy deploys it", dineBody,
			AssignmentProperties{GuestConfiguration: GuestConfiguration{Name: "SetLinuxSshServerSecurityBaseline", Version: "1.*", AssignmentType: "ApplyAndAutoCorrect",
				ConfigurationParameter: []NameValue{
					{"Ensure that the SSH PermitRootLogin is configured;DesiredObjectValue", "no"},
					{"Ensure that the SSH port is configured;DesiredObjectValue", "2222"},
				}}}},
		{"names in any case, as ARM reads them", `{"GuestConfiguration":{"NAME":"linuxsshserversecuritybaseline","AssignmentType":"applyandmonitor","Version":"1.0.0",
			"configurationparameter":[{"Name":"port","VALUE":"22"}]},"Context":"Azure policy"}`,
			AssignmentProperties{Context: "Azure policy", GuestConfiguration: GuestConfiguration{Name: "linuxsshserversecuritybaseline", Version: "1.0.0", AssignmentType: "ApplyAndMonitor",
				ConfigurationParameter: []NameValue{{"port", "22"}}}}},
		{"what the server maintains is ignored", `{"guestConfiguration":{"name":"gild-image-baseline","version":"*","assignmentSource":"x","contentType":"BuiltIn","kind":"DSC","configurationParameter":[]},
			"complianceStatus":"Compliant","parameterHash":"forged","assignmentHash":"forged","provisioningState":"Succeeded","latestAssignmentReport":{"resources":[]},
			"lastComplianceStatusChecked":"2026-01-01T00:00:00Z","latestReportId":"r","targetResourceId":"t","resourceType":"x","vmssVMList":[]}`,
			AssignmentProperties{GuestConfiguration: GuestConfiguration{Name: "gild-image-baseline", Version: "*", AssignmentType: "Audit"}}},
		{"nulls are not given", `{"guestConfiguration":{"name":"PasswordPolicy_msid232","version":null,"assignmentType":null,"configurationParameter":null,"contentUri":null},"context":null}`,
			AssignmentProperties{GuestConfiguration: GuestConfiguration{Name: "PasswordPolicy_msid232", AssignmentType: "Audit"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseAssignment(json.RawMessage(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if a.configuration == nil {
				t.Error("the configuration was not resolved")
			}
			a.configuration = nil
			if a.GuestConfiguration.Name != tc.want.GuestConfiguration.Name || a.GuestConfiguration.Version != tc.want.GuestConfiguration.Version ||
				a.GuestConfiguration.AssignmentType != tc.want.GuestConfiguration.AssignmentType || a.Context != tc.want.Context ||
				!slices.Equal(a.GuestConfiguration.ConfigurationParameter, tc.want.GuestConfiguration.ConfigurationParameter) ||
				a.ParameterHash != "" || a.AssignmentHash != "" {
				t.Errorf("got  %+v\nwant %+v", *a, tc.want)
			}
		})
	}
}

// TestParseAssignmentProblems: every problem at once, each at its path under properties.
func TestParseAssignmentProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []string
	}{
		{"not an object", `[1]`, []string{`properties: want an object, got an array`}},
		{"not JSON", `{"guestConfiguration":`, []string{`properties: not valid JSON: unexpected end of JSON input`}},
		{"no guestConfiguration", `{"guestConfig":{}}`, []string{
			`properties.guestConfig: unknown field; did you mean "guestConfiguration"? (fields: guestConfiguration, context)`,
			`properties.guestConfiguration: required`,
		}},
		{"guestConfiguration not an object", `{"guestConfiguration":"LinuxSshServerSecurityBaseline"}`, []string{
			`properties.guestConfiguration: want an object, got string "LinuxSshServerSecurityBaseline"`,
		}},
		{"everything wrong", `{"context":5,"guestConfiguration":{"name":"LinuxSshServerBaseline","version":"1.x","assignmentType":"Enforce","colour":"red","contentUri":"https://x/y.zip",
			"configurationParameter":[{"name":"port"},{"value":"1"},"x",{"name":3,"value":true,"extra":1}]}}`, []string{
			`properties.context: want a string, got number 5`,
			`properties.guestConfiguration.colour: unknown field (fields: name, version, assignmentType, configurationParameter)`,
			`properties.guestConfiguration.contentUri: custom configuration packages are not supported; gild runs its built-in configurations`,
			`properties.guestConfiguration.name: no machine configuration is named "LinuxSshServerBaseline"; did you mean "LinuxSshServerSecurityBaseline"? (gild has "LinuxSshServerSecurityBaseline", "PasswordPolicy_msid232", "gild-image-baseline")`,
			`properties.guestConfiguration.assignmentType: "Enforce" is not one of Audit, ApplyAndMonitor, ApplyAndAutoCorrect`,
			`properties.guestConfiguration.version: "1.x" is not a version such as 1.0.0 or a pattern such as 1.* or 1.0.*`,
			`properties.guestConfiguration.configurationParameter[0].value: required (a string; "" for empty)`,
			`properties.guestConfiguration.configurationParameter[1].name: required`,
			`properties.guestConfiguration.configurationParameter[2]: want an object, got string "x"`,
			`properties.guestConfiguration.configurationParameter[3].name: want a string, got number 3`,
			`properties.guestConfiguration.configurationParameter[3].value: want a string, got boolean true`,
			`properties.guestConfiguration.configurationParameter[3].extra: unknown field (fields: name, value)`,
			`properties.guestConfiguration.configurationParameter[3].name: required`,
			`properties.guestConfiguration.configurationParameter[3].value: required (a string; "" for empty)`,
		}},
		{"a version the configuration does not have, parameters it does not have", `{"guestConfiguration":{"name":"LinuxSshServerSecurityBaseline","version":"2.*",
			"configurationParameter":[{"name":"port","value":"22"},{"name":"Port","value":"23"},{"name":"Ensure that the SSH PermitRootLogin is configured","value":"no"},{"name":"maxMode","value":"600"}]}}`, []string{
			`properties.guestConfiguration.version: "2.*" does not match configuration LinuxSshServerSecurityBaseline, which is version 1.0.0`,
			`properties.guestConfiguration.configurationParameter[1].name: "Port" is parameter port, already given at configurationParameter[0]`,
			`properties.guestConfiguration.configurationParameter[2].name: "Ensure that the SSH PermitRootLogin is configured" is not a parameter of configuration LinuxSshServerSecurityBaseline; did you mean "Ensure that the SSH PermitRootLogin is configured;DesiredObjectValue"?`,
			`properties.guestConfiguration.configurationParameter[3].name: "maxMode" is not a parameter of configuration LinuxSshServerSecurityBaseline`,
		}},
		{"a value that makes a check invalid", `{"guestConfiguration":{"name":"LinuxSshServerSecurityBaseline","configurationParameter":[{"name":"accessPermissionsForSshdConfig","value":"0x600"}]}}`, []string{
			`properties.guestConfiguration.configurationParameter[0].value: "0x600" makes checks[0].maxMode invalid: "0x600" is not an octal mode such as "0644"`,
		}},
		{"repeated fields, in any case", `{"guestConfiguration":{"name":"PasswordPolicy_msid232","Name":"x"},"GuestConfiguration":{}}`, []string{
			`properties.GuestConfiguration: repeated field`,
			`properties.guestConfiguration.Name: repeated field`,
		}},
		{"an empty name", `{"guestConfiguration":{"name":""}}`, []string{
			`properties.guestConfiguration.name: required: the configuration to run (LinuxSshServerSecurityBaseline, PasswordPolicy_msid232, gild-image-baseline)`,
		}},
		{"another package's kind", `{"guestConfiguration":{"name":"PasswordPolicy_msid232","contentType":"Custom","kind":"Chef"}}`, []string{
			`properties.guestConfiguration.contentType: "Custom": gild runs only built-in configurations (contentType BuiltIn)`,
			`properties.guestConfiguration.kind: "Chef": gild's configurations are of kind DSC, as Azure's Linux ones`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseAssignment(json.RawMessage(tc.in))
			var ie *InvalidError
			if !errors.As(err, &ie) || a != nil {
				t.Fatalf("ParseAssignment = %+v, %v; want an *InvalidError", a, err)
			}
			if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, tc.want) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestVersionPatterns(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		valid   bool
		matches bool // against 1.0.0
	}{
		{"1.0.0", true, true}, {"1.*", true, true}, {"1.0.*", true, true}, {"*", true, true},
		{"1.0.1", true, false}, {"2.*", true, false}, {"1.1.*", true, false},
		{"1", false, false}, {"1.0", false, false}, {"1.*.0", false, false}, {"01.0.0", false, false}, {"1.0.0.0", false, false}, {"", false, false}, {"-1.0.0", false, false},
	} {
		valid := validVersionPattern(tc.pattern)
		if valid != tc.valid || (valid && versionMatches(tc.pattern, "1.0.0") != tc.matches) {
			t.Errorf("%q: valid %v, matches 1.0.0 %v; want %v, %v", tc.pattern, valid, versionMatches(tc.pattern, "1.0.0"), tc.valid, tc.matches)
		}
	}
}

func mustParseAssignment(t *testing.T, in string) *AssignmentProperties {
	t.Helper()
	a, err := ParseAssignment(json.RawMessage(in))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAgent(t *testing.T) {
	a := mustParseAssignment(t, dineBody)
	got, err := a.Agent("ssh-baseline")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "ssh-baseline" || got.Configuration != "LinuxSshServerSecurityBaseline" || got.ConfigurationVersion != "1.0.0" ||
		got.AssignmentType != agentproto.AssignmentApplyAndAutoCorrect || got.ImageBaseline || len(got.Hash) != 64 {
		t.Errorf("Agent = %+v", got)
	}
	if port := checkByName(t, got.Checks, "Ensure that the SSH port is configured"); port.Value != "2222" {
		t.Errorf("the port check has %q", port.Value)
	}
	if _, err := check.Parse(got.Checks); err != nil {
		t.Errorf("the agent's checks do not parse: %v", err)
	}

	// Everything the agent must do moves the hash; nothing else does.
	hash := func(name, body string) string {
		t.Helper()
		ag, err := mustParseAssignment(t, body).Agent(name)
		if err != nil {
			t.Fatal(err)
		}
		return ag.Hash
	}
	base := hash("ssh-baseline", dineBody)
	for _, tc := range []struct {
		name, assignment, body string
		same                   bool
	}{
		{"the same again", "ssh-baseline", dineBody, true},
		{"the parameters by their short names", "ssh-baseline", strings.NewReplacer("Ensure that the SSH PermitRootLogin is configured;DesiredObjectValue", "permitRootLogin", "Ensure that the SSH port is configured;DesiredObjectValue", "port").Replace(dineBody), true},
		{"a default given", "ssh-baseline", strings.Replace(dineBody, `"value": "2222"}`, `"value": "2222"}, {"name": "logLevel", "value": "INFO"}`, 1), true},
		{"the context", "ssh-baseline", strings.Replace(dineBody, `"guestConfiguration"`, `"context": "x", "guestConfiguration"`, 1), true},
		{"another name", "ssh-baseline-2", dineBody, false},
		{"another type", "ssh-baseline", strings.Replace(dineBody, "ApplyAndAutoCorrect", "Audit", 1), false},
		{"another value", "ssh-baseline", strings.Replace(dineBody, "2222", "2200", 1), false},
		{"a value back to its default", "ssh-baseline", strings.Replace(dineBody, "2222", "22", 1), false},
	} {
		if got := hash(tc.assignment, tc.body); (got == base) != tc.same {
			t.Errorf("%s: hash %s, the first %s; want the same: %v", tc.name, got, base, tc.same)
		}
	}

	img, err := mustParseAssignment(t, `{"guestConfiguration":{"name":"gild-image-baseline","assignmentType":"ApplyAndMonitor"}}`).Agent("image")
	if err != nil || !img.ImageBaseline || img.Checks != nil || img.AssignmentType != agentproto.AssignmentApplyAndMonitor || img.Hash == "" {
		t.Errorf("image baseline: %+v, %v", img, err)
	}
	if _, err := a.Agent(" "); err == nil {
		t.Error("Agent without a name")
	}
	// Properties built by hand are resolved when used.
	byHand := &AssignmentProperties{GuestConfiguration: GuestConfiguration{Name: "PasswordPolicy_msid232"}}
	if ag, err := byHand.Agent("pw"); err != nil || ag.AssignmentType != agentproto.AssignmentAudit || ag.Checks == nil {
		t.Errorf("by hand: %+v, %v", ag, err)
	}
	byHand.GuestConfiguration.Name = "nonesuch"
	var nf *NotFoundError
	if _, err := byHand.Agent("pw"); !errors.As(err, &nf) {
		t.Errorf("an unknown configuration built by hand: %v", err)
	}
}

func TestNormalize(t *testing.T) {
	a := mustParseAssignment(t, dineBody)
	if err := a.Normalize(); err != nil {
		t.Fatal(err)
	}
	// Azure's hash of the parameters exactly as the assignment gives them.
	want := ParameterHash([]NameValue{
		{"Ensure that the SSH PermitRootLogin is configured;DesiredObjectValue", "no"},
		{"Ensure that the SSH port is configured;DesiredObjectValue", "2222"},
	})
	if a.ParameterHash != want {
		t.Errorf("parameterHash %q, want %q", a.ParameterHash, want)
	}
	ag, _ := a.Agent("any name")
	if len(a.AssignmentHash) != 64 || a.AssignmentHash == ag.Hash {
		t.Errorf("assignmentHash %q should hash the work without the assignment's name (Agent's is %q)", a.AssignmentHash, ag.Hash)
	}
	// The same work under other parameter names hashes the same; Azure's parameterHash,
	// over what the assignment carries, does not.
	b := mustParseAssignment(t, strings.Replace(dineBody, "Ensure that the SSH port is configured;DesiredObjectValue", "port", 1))
	if err := b.Normalize(); err != nil {
		t.Fatal(err)
	}
	if b.AssignmentHash != a.AssignmentHash || b.ParameterHash == a.ParameterHash {
		t.Errorf("assignmentHash %q vs %q, parameterHash %q vs %q", b.AssignmentHash, a.AssignmentHash, b.ParameterHash, a.ParameterHash)
	}
	none := mustParseAssignment(t, `{"guestConfiguration":{"name":"PasswordPolicy_msid232"}}`)
	if err := none.Normalize(); err != nil || none.ParameterHash != "" {
		t.Errorf("no parameters: %q, %v", none.ParameterHash, err)
	}
}

// TestAssignmentRoundTrip: stored properties, written as JSON and read back, are the same.
func TestAssignmentRoundTrip(t *testing.T) {
	a := mustParseAssignment(t, strings.Replace(dineBody, `"guestConfiguration"`, `"context": "Azure policy", "guestConfiguration"`, 1))
	if err := a.Normalize(); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"parameterHash":"`, `"assignmentHash":"`, `"context":"Azure policy"`, `"assignmentType":"ApplyAndAutoCorrect"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("%s lacks %s", data, want)
		}
	}
	b := mustParseAssignment(t, string(data))
	if err := b.Normalize(); err != nil {
		t.Fatal(err)
	}
	again, _ := json.Marshal(b)
	if string(again) != string(data) {
		t.Errorf("round trip:\n%s\n%s", data, again)
	}
}
