package vm

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/gildhq/gild/resource"
)

func TestLookupSize(t *testing.T) {
	for _, tt := range []struct {
		name      string
		want      Size
		errSubstr string
	}{
		{"Standard_B1s", Size{"Standard_B1s", 1, 1024}, ""},
		{"standard_d4S_V5", Size{"Standard_D4s_v5", 4, 16384}, ""},
		{DefaultSize, Size{"Standard_B2ats_v2", 2, 1024}, ""},
		{"Standard_D2s_v4", Size{}, `did you mean "Standard_D2s_v5"?`},
		{"Standard_M416ms_v2", Size{}, "the sizes are Standard_B1s, Standard_B1ms, Standard_B2ats_v2, Standard_B2s, Standard_B2ms, Standard_D2s_v5, Standard_D4s_v5"},
	} {
		got, err := LookupSize(tt.name)
		switch {
		case tt.errSubstr == "" && (err != nil || got != tt.want):
			t.Errorf("%s: %+v, %v; want %+v", tt.name, got, err, tt.want)
		case tt.errSubstr != "" && (err == nil || !strings.Contains(err.Error(), tt.errSubstr)):
			t.Errorf("%s: error %v, want one saying %q", tt.name, err, tt.errSubstr)
		}
	}
	if _, err := LookupSize("Standard_M416ms_v2"); strings.Contains(err.Error(), "did you mean") {
		t.Errorf("a name far from every size got a suggestion: %v", err)
	}
}

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

const defID = "/subscriptions/platform/resourceGroups/images/providers/Microsoft.Compute/galleries/corp/images/debian-12"

func TestCheckPropertiesFillsTheDefaults(t *testing.T) {
	props := decode(t, `{"storageProfile":{"imageReference":{"id":"`+defID+`","exactVersion":"1.2.0"}},
		"osProfile":{"adminUsername":"alice","linuxConfiguration":{"ssh":{"publicKeys":[{"keyData":"  `+sshKey+`  "}]}}},
		"networkProfile":{"networkInterfaces":[]}}`)
	sp, errs := checkProperties("api-1", props)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if sp.Size.Name != DefaultSize || sp.ComputerName != "api-1" || sp.AdminUsername != "alice" || len(sp.SSHKeys) != 1 || sp.SSHKeys[0] != sshKey || sp.OSType != "Linux" {
		t.Errorf("spec %+v", sp)
	}
	if v, err := sp.imageVersion(); err != nil || v.String() != defID+"/versions/1.2.0" {
		t.Errorf("image version %s, %v", v, err)
	}
	got, _ := json.Marshal(props)
	for _, want := range []string{`"vmSize":"Standard_B2ats_v2"`, `"computerName":"api-1"`, `"disablePasswordAuthentication":true`,
		`"path":"/home/alice/.ssh/authorized_keys"`, `"osType":"Linux"`, `"networkProfile":{"networkInterfaces":[]}`} {
		if !strings.Contains(string(got), want) {
			t.Errorf("properties lack %s: %s", want, got)
		}
	}
}

func TestCheckPropertiesNamesEveryProblem(t *testing.T) {
	tests := []struct {
		name  string
		vm    string // the VM's name
		props string
		want  map[string]string // target → part of its message
	}{
		{"everything wrong at once", "api-1", `{
			"hardwareProfile":{"vmSize":"Standard_B2z"},
			"osProfile":{"computerName":"-bad-","adminUsername":"root","adminPassword":"hunter2","customData":"I2Nsb3Vk",
				"linuxConfiguration":{"disablePasswordAuthentication":false,
					"ssh":{"publicKeys":[{"keyData":"ssh-dss AAAA"},{"keyData":"ssh-ed25519 !!!"},{"keyData":"ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIGQ2"},
						{"path":"/root/.ssh/authorized_keys","keyData":"` + sshKey + `"}, "ssh-ed25519 AAAA"]}}},
			"storageProfile":{"imageReference":{"publisher":"Canonical","offer":"ubuntu","sku":"22_04-lts"},"osDisk":{"osType":"Windows"}}}`,
			map[string]string{
				fVMSize:                       `did you mean "Standard_B2s"?`,
				fComputerName:                 `"-bad-" is not a valid hostname`,
				fAdminUsername:                "system account",
				fOSProfile + ".adminPassword": "gild sets no passwords",
				fOSProfile + ".customData":    "customized when they are built",
				fDisablePwd:                   "false is not supported",
				fPublicKeys + "[0].keyData":   `key type "ssh-dss"`,
				fPublicKeys + "[1].keyData":   "not base64",
				fPublicKeys + "[2].keyData":   "is not a ssh-rsa key",
				fPublicKeys + "[3].path":      "/home/root/.ssh/authorized_keys",
				fPublicKeys + "[4]":           "must be an object",
				fImageID:                      "from its own gallery only",
				fOSType:                       `"Windows": gild runs Linux VMs only`,
			}},
		{"nothing at all; the VM's name is no hostname", "api_1", `{}`, map[string]string{
			fComputerName: `the VM's name "api_1" is not a valid hostname`,
			fImageID:      "is required",
		}},
		{"wrong JSON types", "api-1", `{"hardwareProfile":"big","osProfile":{"adminUsername":7,"linuxConfiguration":{"disablePasswordAuthentication":"yes","ssh":{"publicKeys":{}}}},
			"storageProfile":{"imageReference":{"id":"/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/disks/d"}}}`, map[string]string{
			"properties.hardwareProfile": "must be an object, not a string",
			fAdminUsername:               "must be a string, not a number",
			fDisablePwd:                  "must be a boolean",
			fPublicKeys:                  "must be an array",
			fImageID:                     "is a Microsoft.Compute/disks, not a gallery image",
		}},
		{"keys without a user; a key that would add a line to authorized_keys", "api-1", `{"osProfile":{"linuxConfiguration":{"ssh":{"publicKeys":[
			{"keyData":"` + sshKey + `\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGQ2cT3lD1ZC6XQHCG5pWhzZt5XJv5A0l2R1lJp7b8mC mallory"}]}}},
			"storageProfile":{"imageReference":{"id":"` + defID + `"}}}`, map[string]string{
			fPublicKeys:                 "need an adminUsername",
			fPublicKeys + "[0].keyData": "one line",
		}},
		{"a name too long, only digits", "12345", `{"osProfile":{"computerName":"` + strings.Repeat("a", 65) + `"},"storageProfile":{"imageReference":{"id":"x"}}}`, map[string]string{
			fComputerName: "1 to 64 characters",
			fImageID:      "not a resource ID",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := checkProperties(tt.vm, decode(t, tt.props))
			got := map[string]string{}
			for _, e := range errs {
				if got[e.Target] != "" {
					t.Errorf("two errors for %s: %q and %q", e.Target, got[e.Target], e.Message)
				}
				got[e.Target] = e.Message
				if e.Code != resource.CodeInvalidParameter {
					t.Errorf("%s: code %s", e.Target, e.Code)
				}
			}
			for target, want := range tt.want {
				if !strings.Contains(got[target], want) {
					t.Errorf("%s: %q, want it to say %q", target, got[target], want)
				}
			}
			for target, msg := range got {
				if _, ok := tt.want[target]; !ok {
					t.Errorf("unexpected error on %s: %s", target, msg)
				}
			}
		})
	}
	// The computer name is checked for the VM's name only when no computerName is given.
	if _, errs := checkProperties("api_1", decode(t, `{"osProfile":{"computerName":"api-1"},"storageProfile":{"imageReference":{"id":"`+defID+`"}}}`)); len(errs) > 0 {
		t.Errorf("a valid computerName for an unhostly VM name: %v", errs)
	}
}

func TestValidHostnameAndUser(t *testing.T) {
	for _, h := range []string{"api-1", "API-1", "a", "web.prod.local", "x1", strings.Repeat("a", 63)} {
		if err := validHostname(h); err != nil {
			t.Errorf("%q: %v", h, err)
		}
	}
	for _, h := range []string{"", "a_b", "-a", "a-", "a..b", "123", "1.2", strings.Repeat("a", 64) + ".b"} {
		if validHostname(h) == nil {
			t.Errorf("%q accepted as a hostname", h)
		}
	}
	for _, u := range []string{"alice", "_svc", "deploy-bot", "a1"} {
		if err := validUsername(u); err != nil {
			t.Errorf("%q: %v", u, err)
		}
	}
	for _, u := range []string{"Alice", "1alice", "root", "www-data", "systemd-network", "a b", strings.Repeat("a", 33)} {
		if validUsername(u) == nil {
			t.Errorf("%q accepted as an admin user", u)
		}
	}
}

func TestValidPublicKey(t *testing.T) {
	const ecdsa = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg="
	for _, k := range []string{sshKey, ecdsa, strings.Fields(sshKey)[0] + " " + strings.Fields(sshKey)[1]} {
		if err := validPublicKey(k); err != nil {
			t.Errorf("%q: %v", k, err)
		}
	}
	for _, k := range []string{"", "ssh-ed25519", `command="rm -rf /" ` + sshKey, "ssh-ed25519 AAAA", "ssh-rsa " + strings.Fields(sshKey)[1]} {
		if validPublicKey(k) == nil {
			t.Errorf("%q accepted as a public key", k)
		}
	}
}

func TestVMUpdates(t *testing.T) {
	h := newHarness(t, false, nil, nil)
	id := h.createVM("api-1", "local", vmProps(h.def.String()))
	before := h.props(id)

	// Tags and other properties change; what gild sets stays, whatever the client says.
	r := &resource.Resource{ID: id.String(), Name: id.Name(), Type: id.Type(), Location: "local", Tags: map[string]string{"serviceModel": "cattle"},
		Properties: json.RawMessage(strings.Replace(vmProps(h.def.String()), `{"hardwareProfile"`,
			`{"vmId":"forged","provisioningState":"Failed","diagnosticsProfile":{"bootDiagnostics":{"enabled":true}},"hardwareProfile"`, 1))}
	if _, err := h.put(r.ID, r.Location, string(r.Properties)); err != nil {
		t.Fatalf("an update of what may change: %v", err)
	}
	after := h.props(id)
	ir := after["storageProfile"].(map[string]any)["imageReference"].(map[string]any)
	if after["vmId"] != before["vmId"] || after["provisioningState"] != ProvisioningSucceeded || after["diagnosticsProfile"] == nil || ir["exactVersion"] != "1.0.0" {
		t.Errorf("after the update: %v", after)
	}

	// What the VM was made from cannot change, all named at once.
	changed := `{"hardwareProfile":{"vmSize":"Standard_D4s_v5"},
	  "osProfile":{"computerName":"other","adminUsername":"bob"},
	  "storageProfile":{"imageReference":{"id":"` + h.version.String() + `"}}}`
	_, err := h.put(id.String(), "local", changed)
	var re *resource.Error
	if !errors.As(err, &re) {
		t.Fatalf("a change of the image, size and OS profile: %v", err)
	}
	targets := map[string]bool{}
	for _, d := range append([]*resource.Error{re}, re.Details...) {
		targets[d.Target] = true
		if d.Target != "" && d.Code != CodePropertyChangeNotAllowed {
			t.Errorf("%s: code %s", d.Target, d.Code)
		}
	}
	for _, want := range []string{fImageRef, fVMSize, fComputerName, fAdminUsername, fPublicKeys} {
		if !targets[want] {
			t.Errorf("no error names %s: %v", want, err)
		}
	}
}

func TestGuestURLAndKey(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:8080":    "http://10.0.2.2:8080",
		"[::1]:8080":        "http://10.0.2.2:8080",
		"0.0.0.0:8443":      "http://10.0.2.2:8443",
		":8080":             "http://10.0.2.2:8080",
		"localhost:80":      "http://10.0.2.2:80",
		"192.168.1.5:8080":  "http://192.168.1.5:8080",
		"[2001:db8::1]:443": "http://[2001:db8::1]:443",
		"nonsense":          "",
	} {
		if got := GuestURL(addr); got != want {
			t.Errorf("GuestURL(%q) = %q, want %q", addr, got, want)
		}
	}
	a := Key("/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/API-1")
	b := Key("/subscriptions/S/resourcegroups/R/providers/microsoft.compute/virtualmachines/api-1")
	if a != b || len(a) != 16 || !isKey(a) {
		t.Errorf("keys %q and %q: resource IDs are case-insensitive", a, b)
	}
}
