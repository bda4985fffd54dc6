package guestconfig

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/gildhq/gild/check"
)

// FuzzParseAssignment: ParseAssignment never panics; what it refuses it explains with
// at least one problem; what it accepts gives the agent valid checks, and written back as
// JSON reads back the same. Run with: go test -fuzz=FuzzParseAssignment ./guestconfig
func FuzzParseAssignment(f *testing.F) {
	for _, seed := range []string{
		dineBody,
		`{"guestConfiguration":{"name":"PasswordPolicy_msid232"}}`,
		`{"guestConfiguration":{"name":"gild-image-baseline","assignmentType":"ApplyAndMonitor","version":"1.0.*"}}`,
		`{"guestConfiguration":{"name":"LinuxSshServerSecurityBaseline","configurationParameter":[{"name":"banner","value":"\"quoted\"\n${port}\\"}]}}`,
		`{"guestConfiguration":{"name":"linuxsshserversecuritybaseline","configurationParameter":[{"name":"accessPermissionsForSshdConfig","value":"0x1"}]},"complianceStatus":1}`,
		`{"GuestConfiguration":{"Name":"x"},"guestconfiguration":null}`,
		`{"guestConfiguration":{"name":"PasswordPolicy_msid232","contentUri":"u","kind":"DSC"}}`,
		`[]`, `null`, `{`, `{"guestConfiguration":{"configurationParameter":[null,1,{"name":{}}]}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseAssignment(data)
		if err != nil {
			var ie *InvalidError
			if !errors.As(err, &ie) || len(ie.Problems) == 0 || a != nil {
				t.Fatalf("refused without problems: %v", err)
			}
			for _, p := range ie.Problems {
				if p.Message == "" {
					t.Fatalf("a problem without a message: %+v", ie.Problems)
				}
			}
			return
		}
		if err := a.Normalize(); err != nil {
			t.Fatalf("accepted %q but cannot normalize it: %v", data, err)
		}
		ag, err := a.Agent("fuzz")
		if err != nil {
			t.Fatalf("accepted %q but gives the agent nothing: %v", data, err)
		}
		if !ag.ImageBaseline {
			if _, err := check.Parse(ag.Checks); err != nil {
				t.Fatalf("accepted %q but the agent's checks do not parse: %v", data, err)
			}
		}
		written, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ParseAssignment(written)
		if err != nil {
			t.Fatalf("accepted %q but not its own JSON %s: %v", data, written, err)
		}
		if err := b.Normalize(); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("round trip changed the properties:\n%+v\n%+v", a, b)
		}
	})
}
