package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gildhq/gild/server"
)

const (
	testRG  = "/subscriptions/payments/resourceGroups/prod"
	testVM  = testRG + "/providers/Microsoft.Compute/virtualMachines/api-1"
	testHyb = testRG + "/providers/Microsoft.HybridCompute/machines/sap-01"
)

// sshKeyLine is a fresh ed25519 public key as an OpenSSH public key line.
func sshKeyLine(t *testing.T, comment string) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	b = binary.BigEndian.AppendUint32(b, uint32(len("ssh-ed25519")))
	b = append(b, "ssh-ed25519"...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(pub)))
	b = append(b, pub...)
	line := "ssh-ed25519 " + base64.StdEncoding.EncodeToString(b)
	if comment != "" {
		line += " " + comment
	}
	return line
}

func TestParseSSHPublicKey(t *testing.T) {
	key := sshKeyLine(t, "ops@laptop")
	if got, err := parseSSHPublicKey("  " + strings.Replace(key, " ", "   ", 1) + "\n"); err != nil || got != key {
		t.Errorf("parseSSHPublicKey(spaced key) = %q, %v; want %q", got, err, key)
	}
	bare := sshKeyLine(t, "")
	if got, err := parseSSHPublicKey(bare); err != nil || got != bare {
		t.Errorf("a key without a comment: %q, %v", got, err)
	}
	f := strings.Fields(key)
	for _, tc := range []struct{ in, want string }{
		{"", "empty"},
		{"ssh-ed25519", "no key data"},
		{"ssh-ed25519 not*base64", "not base64"},
		{"ssh-rsa " + f[1] + " x", "not a ssh-rsa key"},
		{"ssh-ed25519 " + base64.StdEncoding.EncodeToString([]byte{0, 0}), "too short"},
		{"ssh-ed25519 " + base64.StdEncoding.EncodeToString([]byte{0, 0, 0, 99, 'x'}), "not a ssh-ed25519 key"},
		{"ssh-dss AAAA", `"ssh-dss" is not an OpenSSH public key type`},
		{"-----BEGIN OPENSSH PRIVATE KEY-----", "private key"},
		{`command="x" ` + key, "is not an OpenSSH public key type"},
	} {
		if _, err := parseSSHPublicKey(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseSSHPublicKey(%q): %v; want an error with %q", tc.in, err, tc.want)
		}
	}
}

func TestSSHKeys(t *testing.T) {
	home := t.TempDir()
	k1, k2 := sshKeyLine(t, "a@x"), sshKeyLine(t, "b@y")
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(home, ".ssh", "id_ed25519.pub")
	if err := os.WriteFile(pub, []byte(k1+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	multi := filepath.Join(home, "keys")
	if err := os.WriteFile(multi, []byte("# team keys\n\n"+k1+"\r\n"+k2+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(home, "bad")
	if err := os.WriteFile(bad, []byte(k1+"\nssh-ed25519 garbage!\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	priv := filepath.Join(home, ".ssh", "id_ed25519")
	if err := os.WriteFile(priv, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(home, "empty")
	if err := os.WriteFile(empty, []byte("# nothing\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		arg  string
		want []string
	}{
		{k1, []string{k1}},
		{pub, []string{k1}},
		{"~/.ssh/id_ed25519.pub", []string{k1}},
		{multi, []string{k1, k2}},
	} {
		got, err := sshKeys(tc.arg, home)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("sshKeys(%q) = %q, %v; want %q", tc.arg, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ arg, want string }{
		{bad, bad + ", line 2: the key data of the ssh-ed25519 key is not base64"},
		{priv, "is a private key; give the public key (" + priv + ".pub)"},
		{"~/.ssh/id_rsa.pub", "is neither a file nor an OpenSSH public key line"},
		{"AAAAC3NzaC1lZDI1NTE5AAAAI", "is neither a file nor an OpenSSH public key line"},
		{"ssh-ed25519 AAAA", "--ssh-key: the key data of the ssh-ed25519 key is too short"},
		{empty, "holds no public key"},
		{home, "--ssh-key"},
	} {
		if _, err := sshKeys(tc.arg, home); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("sshKeys(%q): %v; want an error with %q", tc.arg, err, tc.want)
		}
	}
}

func TestParseTags(t *testing.T) {
	tags, problems := parseTags([]string{"serviceModel=Cattle", "team=payments", "note=a=b", "empty="})
	want := map[string]string{"serviceModel": "cattle", "team": "payments", "note": "a=b", "empty": ""}
	if len(problems) > 0 || !reflect.DeepEqual(tags, want) {
		t.Errorf("parseTags = %v, %v; want %v", tags, problems, want)
	}
	_, problems = parseTags([]string{"servicemodel=herd", "team", "=x", "team=a", "Team=b", "a/b=1"})
	got := strings.Join(problems, "\n")
	for _, w := range []string{"--tag serviceModel=herd: the service model is pet", `--tag "team": give KEY=VALUE`, `--tag "=x"`, "--tag Team is given twice", `--tag "a/b"`} {
		if !strings.Contains(got, w) {
			t.Errorf("parseTags problems lack %q:\n%s", w, got)
		}
	}
	if len(problems) != 5 {
		t.Errorf("%d problems, want 5:\n%s", len(problems), got)
	}
}

// planJSON runs create's checks and gives the body as generic JSON.
func planJSON(t *testing.T, f vmCreateFlags, name, home string) (string, map[string]any) {
	t.Helper()
	if f.timeout == 0 {
		f.timeout = 10 * time.Minute
	}
	id, body, err := f.plan(name, home)
	if err != nil {
		t.Fatalf("plan(%q): %v", name, err)
	}
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return id.String(), m
}

func TestVMCreateBody(t *testing.T) {
	home := t.TempDir()
	k1, k2 := sshKeyLine(t, "ops@laptop"), sshKeyLine(t, "ci")
	if err := os.WriteFile(filepath.Join(home, "ci.pub"), []byte(k2+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	id, got := planJSON(t, vmCreateFlags{rg: testRG, image: testDef + "@1.4.0", size: "Standard_B2s", location: "west",
		tags: []string{"serviceModel=pet", "team=payments", "note=a=b"}, adminUser: "ops",
		sshKeys: []string{k1, "~/ci.pub", k1}}, "api-1", home)
	if id != testVM {
		t.Errorf("id = %s, want %s", id, testVM)
	}
	want := map[string]any{
		"location": "west",
		"tags":     map[string]any{"serviceModel": "pet", "team": "payments", "note": "a=b"},
		"properties": map[string]any{
			"hardwareProfile": map[string]any{"vmSize": "Standard_B2s"},
			"storageProfile":  map[string]any{"imageReference": map[string]any{"id": testDef + "/versions/1.4.0"}},
			"osProfile": map[string]any{
				"computerName":  "api-1",
				"adminUsername": "ops",
				"linuxConfiguration": map[string]any{
					"disablePasswordAuthentication": true,
					"ssh": map[string]any{"publicKeys": []any{
						map[string]any{"path": "/home/ops/.ssh/authorized_keys", "keyData": k1},
						map[string]any{"path": "/home/ops/.ssh/authorized_keys", "keyData": k2},
					}},
				},
			},
		},
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("body\n%s\nwant\n%s", g, w)
	}

	// The least: no size, tags, user or keys; @latest and no suffix both name the definition.
	for _, image := range []string{testDef, testDef + "@latest", testDef + "@LATEST"} {
		_, got = planJSON(t, vmCreateFlags{rg: testRG, image: image}, "web-2", home)
		want = map[string]any{
			"location": "",
			"properties": map[string]any{
				"storageProfile": map[string]any{"imageReference": map[string]any{"id": testDef}},
				"osProfile": map[string]any{"computerName": "web-2",
					"linuxConfiguration": map[string]any{"disablePasswordAuthentication": true}},
			},
		}
		if !reflect.DeepEqual(got, want) {
			g, _ := json.Marshal(got)
			t.Errorf("--image %s: body %s", image, g)
		}
	}
	// A full VM ID works without -g, and a version ID as the image.
	id, got = planJSON(t, vmCreateFlags{image: testDef + "/versions/2.0.0"}, testVM, home)
	if id != testVM || got["properties"].(map[string]any)["storageProfile"].(map[string]any)["imageReference"].(map[string]any)["id"] != testDef+"/versions/2.0.0" {
		t.Errorf("full ID and version ID: %s %v", id, got)
	}
}

// runWith runs the CLI with env variables and stdin, and no saved login.
func runWith(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr strings.Builder
	base := map[string]string{"HOME": t.TempDir(), "XDG_CONFIG_HOME": t.TempDir()}
	getenv := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return base[k]
	}
	code := Run(context.Background(), args, Env{Stdin: strings.NewReader(stdin), Stdout: &stdout, Stderr: &stderr, Getenv: getenv})
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func wantUsage(t *testing.T, cases []struct {
	args  []string
	wants []string
}) {
	t.Helper()
	for _, tc := range cases {
		r := runCLI(t, tc.args...)
		if r.code != exitUsage {
			t.Errorf("gild %s: want exit %d: %s", strings.Join(tc.args, " "), exitUsage, r)
			continue
		}
		for _, w := range tc.wants {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("gild %s: stderr lacks %q: %s", strings.Join(tc.args, " "), w, r)
			}
		}
	}
}

func TestVMUsageErrors(t *testing.T) {
	key := sshKeyLine(t, "x")
	wantUsage(t, []struct {
		args  []string
		wants []string
	}{
		{[]string{"vm", "create", "api-1", "-g", testRG}, []string{"--image is required"}},
		{[]string{"vm", "create", "api-1", "-g", testRG, "--image", testDef + "@1.x"}, []string{"--image: ", "the version after @ must be latest or Major.Minor.Patch"}},
		{[]string{"vm", "create", "api-1", "-g", testRG, "--image", testRG}, []string{"--image: ", "is a Microsoft.Resources/resourceGroups"}},
		{[]string{"vm", "create", "api-1", "-g", testRG, "--image", testDef, "--tag", "serviceModel=herd"}, []string{"--tag serviceModel=herd: the service model is pet"}},
		{[]string{"vm", "create", "api-1", "-g", testRG, "--image", testDef, "--admin-username", "ops", "--ssh-key", "ssh-ed25519 AAAAnotakey"}, []string{"--ssh-key: the key data"}},
		{[]string{"vm", "create", "api-1", "-g", testRG, "--image", testDef, "--admin-username", "ops", "--ssh-key", "/nonexistent/id.pub"}, []string{`--ssh-key "/nonexistent/id.pub" is neither a file nor an OpenSSH public key line`}},
		{[]string{"vm", "create", "api-1", "-g", testRG, "--image", testDef, "--ssh-key", key}, []string{"--ssh-key needs --admin-username"}},
		{[]string{"vm", "create", "api-1", "-g", testRG, "--image", testDef, "--admin-username", "root"}, []string{`--admin-username "root"`}},
		{[]string{"vm", "create", "api-1", "-g", testRG, "--image", testDef, "--timeout", "1m"}, []string{"--timeout is how long --wait waits"}},
		{[]string{"vm", "create", "api-1", "-g", testRG, "--image", testDef, "--wait", "--timeout", "0s"}, []string{"--timeout must be positive"}},
		{[]string{"vm", "create", "api_1", "-g", testRG, "--image", testDef}, []string{`VM name "api_1" is also its host name`}},
		{[]string{"vm", "create", "-g", testRG, "--image", testDef, "--", "-api"}, []string{`VM name "-api" is also its host name`}},
		{[]string{"vm", "create", "1234", "-g", testRG, "--image", testDef}, []string{`VM name "1234" is also its host name`}},
		{[]string{"vm", "create", "a..b", "-g", testRG, "--image", testDef}, []string{`VM name "a..b" is also its host name`}},
		{[]string{"vm", "create", "api-1", "--image", testDef}, []string{`VM "api-1" is a name: give its resource group with --resource-group RG-ID (-g)`}},
		{[]string{"vm", "create", "api-1", "-g", "/subscriptions/payments", "--image", testDef}, []string{`--resource-group "/subscriptions/payments" is a Microsoft.Resources/subscriptions, not a resource group ID`}},
		{[]string{"vm", "create", "api-1", "-g", testRG, "--image", "debian@latest", "--tag", "x", "--size", "big one"},
			[]string{"3 problems", "--image: ", "must start with '/'", `--tag "x"`, `--size "big one"`}},
		{[]string{"vm", "create"}, []string{"gild vm create takes one VM name"}},
		{[]string{"vm", "show", testDef}, []string{"is a Microsoft.Compute/galleries/images, not a Microsoft.Compute/virtualMachines"}},
		{[]string{"vm", "show", testVM, "-g", "/subscriptions/payments/resourceGroups/dev"}, []string{"is not in --resource-group"}},
		{[]string{"vm", "show", "a/b"}, []string{"is neither a name nor a resource ID"}},
		{[]string{"vm", "start", "api-1"}, []string{"give its resource group with --resource-group"}},
		{[]string{"vm", "list", "-g", testRG, "--scope", "/"}, []string{"--resource-group and --scope both name the scope"}},
		{[]string{"vm", "list", "--scope", testVM}, []string{"not a scope"}},
		{[]string{"vm", "list", "--top", "-1"}, []string{"--top must be a positive number"}},
		{[]string{"vm", "console", testVM, "--follow", "-o", "json"}, []string{"--follow streams text"}},
		{[]string{"vm", "console", testVM, "--tail", "-3"}, []string{"--tail must be 0 or more"}},
		{[]string{"vm", "events", testVM, "--top", "0"}, []string{"--top must be 1 to 1000"}},
		{[]string{"vm", "refresh", testVM}, []string{"is a Microsoft.Compute/virtualMachines, not a scope"}},
		{[]string{"vm", "refresh", "/subscriptions/payments", "--cycle-days", "0"}, []string{"--cycle-days must be 1 or more"}},
		{[]string{"vm", "refresh", "/subscriptions/payments", "--max-unavailable", "-2"}, []string{"--max-unavailable must be 1 or more"}},
		{[]string{"vm", "refresh"}, []string{"gild vm refresh takes one scope"}},
		{[]string{"vm", "list", "-o", "yaml"}, []string{`invalid --output "yaml"`}},
	})
	// Flags that are right get as far as needing a login.
	r := runCLI(t, "vm", "create", "api-1", "-g", testRG, "--image", testDef+"@1.0.0", "--tag", "serviceModel=cattle")
	if r.code != exitError || !strings.Contains(r.stderr, "not logged in") {
		t.Errorf("create with good flags and no login: %s", r)
	}
}

// vmHarness is a server with two published versions of testDef and a resource group
// testRG in location local. With runVMs its VM service runs the VMs created (their QEMU
// outlives the server: delete them with deleteVMs); without, VMs are records only.
func vmHarness(t *testing.T, runVMs bool) *harness {
	t.Helper()
	h := newHarness(t, func(c *server.Config) { c.NoVMs = !runVMs })
	if runVMs {
		t.Cleanup(func() { killQEMUsUnder(t, h.dataDir) })
	}
	h.login()
	h.ok(`{"properties":{}}`, "put", "/subscriptions/payments", "-f", "-")
	h.ok(`{"location":"local"}`, "put", "/subscriptions/payments/resourceGroups/images", "-f", "-")
	h.ok(`{"location":"local","properties":{}}`, "put", "/subscriptions/payments/resourceGroups/images/providers/Microsoft.Compute/galleries/golden", "-f", "-")
	h.ok(`{"location":"local","properties":{"identifier":{"publisher":"Contoso","offer":"debian-12","sku":"hardened"},"osType":"Linux","osState":"Generalized"}}`,
		"put", testDef, "-f", "-")
	h.ok(`{"location":"local"}`, "put", testRG, "-f", "-")
	// Raw disks without an OS (different bytes per version): a VM started from one runs
	// its firmware and nothing else.
	for _, v := range []string{"1.0.0", "1.1.0"} {
		disk := filepath.Join(t.TempDir(), "disk-"+v+".raw")
		if err := os.WriteFile(disk, append([]byte("gild test disk "+v+"\n"), make([]byte, 64<<10)...), 0o644); err != nil {
			t.Fatal(err)
		}
		h.ok("", "image", "publish", "--definition", testDef, "--version", v, "--file", disk)
	}
	return h
}

// deleteVMs deletes the VMs when the test ends, before its server stops, so that no QEMU
// outlives it.
func (h *harness) deleteVMs(ids ...string) {
	h.t.Cleanup(func() {
		for _, id := range ids {
			if r := h.run("vm", "delete", id, "--yes"); r.code != 0 {
				h.t.Errorf("vm delete %s: %s", id, r)
			}
		}
	})
}

type vmJSON struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	Properties struct {
		HardwareProfile map[string]any `json:"hardwareProfile"`
		StorageProfile  struct {
			ImageReference struct {
				ID           string `json:"id"`
				ExactVersion string `json:"exactVersion"`
			} `json:"imageReference"`
		} `json:"storageProfile"`
		OSProfile struct {
			ComputerName       string `json:"computerName"`
			AdminUsername      string `json:"adminUsername"`
			LinuxConfiguration struct {
				DisablePasswordAuthentication bool `json:"disablePasswordAuthentication"`
				SSH                           struct {
					PublicKeys []sshPublicKey `json:"publicKeys"`
				} `json:"ssh"`
			} `json:"linuxConfiguration"`
		} `json:"osProfile"`
	} `json:"properties"`
}

func TestVMEndToEnd(t *testing.T) {
	h := vmHarness(t, true)
	devVM := "/subscriptions/payments/resourceGroups/dev/providers/Microsoft.Compute/virtualMachines/dev-1"
	h.deleteVMs(testVM, testRG+"/providers/Microsoft.Compute/virtualMachines/db-1", devVM)
	key := sshKeyLine(t, "ops@laptop")
	keyFile := filepath.Join(t.TempDir(), "id.pub")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// @latest: the server resolves it and records the exact version.
	r := h.ok("", "vm", "create", "api-1", "-g", testRG, "--image", testDef+"@latest", "--size", "Standard_B2s",
		"--tag", "serviceModel=cattle", "--tag", "team=payments", "--admin-username", "ops", "--ssh-key", keyFile)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 || lines[0] != "Created "+testVM || lines[1] != "" {
		t.Fatalf("create:\n%s", r)
	}
	for _, col := range []string{"NAME", "SIZE", "IMAGE", "PROVISIONING", "SERVICE MODEL"} {
		if !strings.Contains(lines[2], col) {
			t.Errorf("create's header lacks %s: %q", col, lines[2])
		}
	}
	if f := strings.Fields(lines[3]); len(f) < 5 || f[0] != "api-1" || f[1] != "Standard_B2s" || f[2] != "debian-12@1.1.0" || f[len(f)-1] != "cattle" {
		t.Errorf("create's row: %q", lines[3])
	}
	vm := decode[vmJSON](t, h.ok("", "get", testVM, "-o", "json").stdout)
	ir := vm.Properties.StorageProfile.ImageReference
	osp := vm.Properties.OSProfile
	if vm.Location != "local" || vm.Tags["serviceModel"] != "cattle" || vm.Tags["team"] != "payments" ||
		ir.ID != testDef || ir.ExactVersion != "1.1.0" || vm.Properties.HardwareProfile["vmSize"] != "Standard_B2s" ||
		osp.ComputerName != "api-1" || osp.AdminUsername != "ops" || !osp.LinuxConfiguration.DisablePasswordAuthentication ||
		len(osp.LinuxConfiguration.SSH.PublicKeys) != 1 || osp.LinuxConfiguration.SSH.PublicKeys[0] != (sshPublicKey{Path: "/home/ops/.ssh/authorized_keys", KeyData: key}) {
		t.Errorf("the stored VM: %+v", vm)
	}

	// @X.Y.Z names the version; -o json is the server's VM.
	r = h.ok("", "vm", "create", testRG+"/providers/Microsoft.Compute/virtualMachines/db-1", "--image", testDef+"@1.0.0", "--tag", "serviceModel=pet", "-o", "json")
	db := decode[vmJSON](t, r.stdout)
	if db.Name != "db-1" || db.Properties.StorageProfile.ImageReference.ID != testDef+"/versions/1.0.0" || db.Properties.StorageProfile.ImageReference.ExactVersion != "1.0.0" || db.Tags["serviceModel"] != "pet" {
		t.Errorf("create @1.0.0 -o json: %s", r.stdout)
	}
	if db.Properties.HardwareProfile["vmSize"] == nil {
		t.Errorf("create without --size: the server did not default vmSize (hardwareProfile %v)", db.Properties.HardwareProfile)
	}

	// Creating it again is refused and changes nothing.
	h.fails(nil, "", exitError, []string{"VM " + testVM + " already exists; nothing was changed"}, "vm", "create", "api-1", "-g", testRG, "--image", testDef+"@1.0.0")
	if again := decode[vmJSON](t, h.ok("", "get", testVM, "-o", "json").stdout); again.Properties.StorageProfile.ImageReference.ExactVersion != "1.1.0" {
		t.Errorf("a refused create changed the VM: %+v", again)
	}
	// So is an image that does not exist, with the server's reason.
	h.fails(nil, "", exitError, []string{"create VM web-9: ", "GalleryImageVersionNotFound", "9.9.9"}, "vm", "create", "web-9", "-g", testRG, "--image", testDef+"@9.9.9")

	// list: table and JSON, by resource group and by scope.
	h.ok(`{"location":"local"}`, "put", "/subscriptions/payments/resourceGroups/dev", "-f", "-")
	h.ok("", "vm", "create", "dev-1", "-g", "/subscriptions/payments/resourceGroups/dev", "--image", testDef)
	r = h.ok("", "vm", "list", "-g", testRG)
	lines = strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("vm list -g:\n%s", r)
	}
	for _, col := range []string{"NAME", "RESOURCE GROUP", "SIZE", "IMAGE", "SERVICE MODEL", "PROVISIONING"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("list header lacks %s: %q", col, lines[0])
		}
	}
	if f := strings.Fields(lines[1]); len(f) < 5 || f[0] != "api-1" || f[1] != "prod" || f[2] != "Standard_B2s" || f[3] != "debian-12@1.1.0" || f[4] != "cattle" {
		t.Errorf("list row api-1: %q", lines[1])
	}
	if f := strings.Fields(lines[2]); len(f) < 5 || f[0] != "db-1" || f[3] != "debian-12@1.0.0" || f[4] != "pet" {
		t.Errorf("list row db-1: %q", lines[2])
	}
	all := decode[listJSON](t, h.ok("", "vm", "list", "--scope", "/subscriptions/payments", "-o", "json").stdout)
	if got := strings.Join(ids(all), " "); !strings.Contains(got, testVM) || !strings.Contains(got, "/dev/providers/Microsoft.Compute/virtualMachines/dev-1") || len(all.Value) != 3 {
		t.Errorf("vm list --scope: %v", got)
	}
	if everywhere := decode[listJSON](t, h.ok("", "vm", "list", "-o", "json").stdout); len(everywhere.Value) != 3 {
		t.Errorf("vm list with no scope: %v", ids(everywhere))
	}
	page := decode[listJSON](t, h.ok("", "vm", "list", "--scope", "/subscriptions/payments", "--top", "2", "-o", "json").stdout)
	if len(page.Value) != 2 || page.NextLink == "" {
		t.Errorf("vm list --top 2: %d VMs, nextLink %q", len(page.Value), page.NextLink)
	}
	r = h.ok("", "vm", "list", "--scope", "/subscriptions/payments", "--top", "2")
	if !strings.Contains(r.stderr, "gild vm list --top 2 --skip-token ") || !strings.Contains(r.stderr, "--scope /subscriptions/payments") {
		t.Errorf("vm list --top 2 does not say how to go on: %s", r)
	}

	// show: the resource, with whatever instance view and agent the server has.
	r = h.ok("", "vm", "show", "api-1", "-g", testRG)
	for _, want := range []string{"id ", testVM, "resourceGroup ", "prod", "size ", "Standard_B2s", "image ", "debian-12@1.1.0",
		"imageId ", testDef, "serviceModel ", "cattle", "adminUsername ", "ops", "power ", "agent "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("vm show lacks %q:\n%s", want, r.stdout)
		}
	}
	details := decode[struct {
		VM           vmJSON          `json:"vm"`
		InstanceView json.RawMessage `json:"instanceView"`
		Agent        json.RawMessage `json:"agent"`
	}](t, h.ok("", "vm", "show", testVM, "-o", "json").stdout)
	if details.VM.ID != testVM || details.InstanceView == nil || details.Agent == nil {
		t.Errorf("vm show -o json: %+v", details)
	}
	// No agent enrolled as the VM in a test server.
	if string(details.Agent) != "null" {
		t.Errorf("vm show -o json: agent %s, want null", details.Agent)
	}
	h.fails(nil, "", exitError, []string{"ResourceNotFound"}, "vm", "show", "nope", "-g", testRG)

	// delete: no question when stdin is not a terminal; deleting again deletes nothing.
	r = h.ok("", "vm", "delete", "db-1", "-g", testRG)
	if r.stdout != "Deleted "+testRG+"/providers/Microsoft.Compute/virtualMachines/db-1\n" {
		t.Errorf("vm delete: %s", r)
	}
	if d := decode[deleteResult](t, h.ok("", "vm", "delete", "db-1", "-g", testRG, "--yes", "-o", "json").stdout); d.Deleted {
		t.Errorf("deleting a deleted VM: %+v", d)
	}
}

// TestVMCreateDenied: a deny policy's refusal is shown with the assignment's message and
// fails; nothing is created.
func TestVMCreateDenied(t *testing.T) {
	h := vmHarness(t, false)
	def := "/subscriptions/payments/providers/Microsoft.Authorization/policyDefinitions/require-service-model"
	h.ok(`{"properties":{"displayName":"VMs say whether they are pets or cattle","mode":"All","policyRule":{
		"if":{"allOf":[{"field":"type","equals":"Microsoft.Compute/virtualMachines"},{"field":"tags['serviceModel']","exists":"false"}]},
		"then":{"effect":"deny"}}}}`, "put", def, "-f", "-")
	msg := "Every VM needs --tag serviceModel=pet or cattle; see https://wiki.example/pets-and-cattle"
	h.ok(`{"properties":{"policyDefinitionId":"`+def+`","nonComplianceMessages":[{"message":"`+msg+`"}]}}`,
		"put", "/subscriptions/payments/providers/Microsoft.Authorization/policyAssignments/service-model", "-f", "-")
	r := h.fails(nil, "", exitError, []string{"RequestDisallowedByPolicy", msg}, "vm", "create", "stray-1", "-g", testRG, "--image", testDef)
	if r.stdout != "" {
		t.Errorf("a denied create printed: %q", r.stdout)
	}
	h.fails(nil, "", exitError, []string{"ResourceNotFound"}, "get", testRG+"/providers/Microsoft.Compute/virtualMachines/stray-1")
	h.ok("", "vm", "create", "herd-1", "-g", testRG, "--image", testDef, "--tag", "serviceModel=cattle")
}

// ---- a fake API for what the test server does not serve yet ----

type fakeRequest struct {
	Method string
	Path   string
	Query  url.Values
	Body   string
}

// fakeAPI is an httptest server with handlers by "METHOD /path"; others answer 404 in
// ARM's shape. It records every request.
type fakeAPI struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []fakeRequest
	routes map[string]http.HandlerFunc
}

func newFakeAPI(t *testing.T, routes map[string]http.HandlerFunc) *fakeAPI {
	t.Helper()
	f := &fakeAPI{routes: routes}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		f.mu.Lock()
		f.reqs = append(f.reqs, fakeRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Body: string(body)})
		f.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer tok" {
			armError(w, http.StatusUnauthorized, "AuthenticationFailed", "no token")
			return
		}
		if r.URL.Query().Get("api-version") == "" {
			armError(w, http.StatusBadRequest, "MissingApiVersionParameter", "no api-version")
			return
		}
		f.mu.Lock()
		h := f.routes[r.Method+" "+r.URL.Path]
		f.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		armError(w, http.StatusNotFound, "ResourceNotFound", r.URL.Path+" was not found")
	}))
	t.Cleanup(f.Close)
	return f
}

func armError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

func jsonReply(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// sequence answers with each body in turn, repeating the last.
func sequence(bodies ...string) http.HandlerFunc {
	var mu sync.Mutex
	i := 0
	return func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		b := bodies[min(i, len(bodies)-1)]
		i++
		mu.Unlock()
		if b == "404" {
			armError(w, http.StatusNotFound, "NotFound", "not there yet")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, b)
	}
}

// set makes h answer key ("METHOD /path"); nil removes the route.
func (f *fakeAPI) set(key string, h http.HandlerFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h == nil {
		delete(f.routes, key)
		return
	}
	f.routes[key] = h
}

func (f *fakeAPI) run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return runWith(t, map[string]string{"GILD_SERVER": f.URL, "GILD_TOKEN": "tok"}, stdin, args...)
}

func (f *fakeAPI) requests(method, path string) []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeRequest
	for _, r := range f.reqs {
		if r.Method == method && r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// fastPoll makes vm create --wait poll every millisecond for the test.
func fastPoll(t *testing.T) {
	old := vmPollInterval
	vmPollInterval = time.Millisecond
	t.Cleanup(func() { vmPollInterval = old })
}

const fakeVMBody = `{"id":"` + testVM + `","name":"api-1","type":"Microsoft.Compute/virtualMachines","location":"local",
	"tags":{"serviceModel":"cattle"},"properties":{"provisioningState":"%s","hardwareProfile":{"vmSize":"Standard_B2s"},
	"storageProfile":{"imageReference":{"id":"` + testDef + `","exactVersion":"1.1.0"}}%s}}`

func fakeVM(state, extra string) string {
	return strings.Replace(strings.Replace(fakeVMBody, "%s", state, 1), "%s", extra, 1)
}

func TestVMCreateWait(t *testing.T) {
	fastPoll(t)
	// The VM is not there until it is PUT; then GET answers with vmGET.
	var created atomic.Bool
	var mu sync.Mutex
	vmGET := sequence(fakeVM("Creating", ""), fakeVM("Creating", ""), fakeVM("Succeeded", ""))
	setVM := func(h http.HandlerFunc) {
		mu.Lock()
		vmGET = h
		mu.Unlock()
		created.Store(false)
	}
	f := newFakeAPI(t, map[string]http.HandlerFunc{
		"GET " + testRG: jsonReply(200, `{"id":"`+testRG+`","name":"prod","location":"west"}`),
		"PUT " + testVM: func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("If-None-Match") != "*" {
				armError(w, 400, "Test", "create must send If-None-Match: *")
				return
			}
			created.Store(true)
			jsonReply(201, fakeVM("Creating", ""))(w, r)
		},
		"GET " + testVM: func(w http.ResponseWriter, r *http.Request) {
			if !created.Load() {
				armError(w, http.StatusNotFound, "ResourceNotFound", "no VM")
				return
			}
			mu.Lock()
			h := vmGET
			mu.Unlock()
			h(w, r)
		},
		"GET " + testVM + "/instanceView": sequence("404", `{"powerState":"starting","statuses":[]}`, `{"powerState":"running","newField":{"x":1}}`),
		"GET " + testVM + "/agentStatus":  sequence("404", `{"status":"Pending"}`, `{"status":"Connected","facts":{"hostname":"api-1"}}`),
	})
	r := f.run(t, "", "vm", "create", "api-1", "-g", testRG, "--image", testDef+"@latest", "--wait", "--timeout", "30s")
	if r.code != 0 {
		t.Fatalf("create --wait: %s", r)
	}
	// The location came from the resource group.
	puts := f.requests("PUT", testVM)
	if len(puts) != 1 || !strings.Contains(puts[0].Body, `"location":"west"`) {
		t.Errorf("PUT: %+v", puts)
	}
	for _, want := range []string{
		"provisioning Creating, power no instance yet, agent not enrolled\n",
		"provisioning Creating, power starting, agent not enrolled\n",
		"power running, agent not enrolled\n",
		"power running, agent Pending\n",
		"provisioning Succeeded, power running, agent Connected\n",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("create --wait progress lacks %q:\n%s", want, r.stderr)
		}
	}
	if !strings.Contains(r.stdout, "Created "+testVM) || !strings.Contains(r.stdout, "Succeeded") {
		t.Errorf("create --wait prints the VM as it ends up:\n%s", r.stdout)
	}
	// The VM is there now: creating it again is refused before any PUT.
	r = f.run(t, "", "vm", "create", "api-1", "-g", testRG, "--image", testDef)
	if r.code != exitError || !strings.Contains(r.stderr, "VM "+testVM+" already exists; nothing was changed") || len(f.requests("PUT", testVM)) != 1 {
		t.Errorf("create of an existing VM: %s", r)
	}

	// A failed provisioning ends the wait with the server's reason.
	setVM(jsonReply(200, fakeVM("Failed", `,"provisioningError":{"code":"VMStartFailed","message":"qemu: cannot open the disk"}`)))
	r = f.run(t, "", "vm", "create", "api-1", "-g", testRG, "--image", testDef, "--wait")
	if r.code != exitError || !strings.Contains(r.stderr, "VM "+testVM+" failed to provision: qemu: cannot open the disk") {
		t.Errorf("create --wait of a failing VM: %s", r)
	}

	// A timeout says what it was waiting for.
	setVM(jsonReply(200, fakeVM("Succeeded", "")))
	f.set("GET "+testVM+"/instanceView", jsonReply(200, `{"powerState":"running"}`))
	f.set("GET "+testVM+"/agentStatus", jsonReply(200, `{"status":"Disconnected"}`))
	r = f.run(t, "", "vm", "create", "api-1", "-g", testRG, "--image", testDef, "--wait", "--timeout", "50ms", "-o", "json")
	if r.code != exitError || !strings.Contains(r.stderr, "gave up after 50ms waiting for its agent to be Connected (provisioning Succeeded, power running, agent Disconnected)") {
		t.Errorf("create --wait timeout: %s", r)
	}
	if v := decode[vmJSON](t, r.stdout); v.ID != testVM {
		t.Errorf("create --wait -o json prints the VM even when the wait fails: %s", r.stdout)
	}
	f.set("GET "+testVM+"/instanceView", jsonReply(200, `{"powerState":"stopped"}`))
	created.Store(false)
	r = f.run(t, "", "vm", "create", "api-1", "-g", testRG, "--image", testDef, "--wait", "--timeout", "50ms")
	if r.code != exitError || !strings.Contains(r.stderr, "waiting for the VM to run (provisioning Succeeded, power stopped, agent not enrolled)") {
		t.Errorf("create --wait timeout before running: %s", r)
	}
}

func TestVMShowFake(t *testing.T) {
	f := newFakeAPI(t, map[string]http.HandlerFunc{
		"GET " + testVM: jsonReply(200, fakeVM("Succeeded", "")),
		"GET " + testVM + "/instanceView": jsonReply(200, `{"powerState":"running","statuses":[{"code":"PowerState/running","displayStatus":"VM running"}],
			"accel":"tcg","accelReason":"KVM: permission denied","sshAddress":"127.0.0.1:2222","startedAt":"2026-11-24T10:00:00Z","pid":4242}`),
		"GET " + testVM + "/agentStatus": jsonReply(200, `{"machineId":"`+testVM+`","enrolledAt":"2026-11-24T10:00:20Z","lastHeartbeat":"2026-11-24T10:15:20Z",
			"status":"Connected","facts":{"hostname":"api-1","kernel":"6.1.0-28-amd64","osRelease":{"PRETTY_NAME":"Debian GNU/Linux 12 (bookworm)"},"agentVersion":"0.9.0"},
			"tattoo":{"imageDefinition":"`+testDef+`","imageVersion":"1.1.0","buildDate":"2026-11-01T00:00:00Z"}}`),
	})
	r := f.run(t, "", "vm", "show", testVM)
	if r.code != 0 {
		t.Fatalf("vm show: %s", r)
	}
	for _, want := range []string{"power ", "running", "PowerState/running ", "VM running", "accel ", "tcg (KVM: permission denied)", "sshAddress ", "127.0.0.1:2222",
		"agent ", "Connected", "lastHeartbeat ", "2026-11-24T10:15:20Z", "os ", "Debian GNU/Linux 12 (bookworm)", "kernel ", "6.1.0-28-amd64",
		"tattoo ", "debian-12@1.1.0, built 2026-11-01T00:00:00Z", "agentVersion ", "0.9.0"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("vm show lacks %q:\n%s", want, r.stdout)
		}
	}
	var d map[string]map[string]any
	if err := json.Unmarshal([]byte(f.run(t, "", "vm", "show", testVM, "-o", "json").stdout), &d); err != nil {
		t.Fatal(err)
	}
	if d["vm"]["id"] != testVM || d["instanceView"]["pid"] != float64(4242) || d["agent"]["status"] != "Connected" {
		t.Errorf("vm show -o json: %v", d)
	}

	// No instance and no agent yet: 404s are not failures.
	f.set("GET "+testVM+"/instanceView", nil)
	f.set("GET "+testVM+"/agentStatus", nil)
	r = f.run(t, "", "vm", "show", testVM)
	if r.code != 0 || !strings.Contains(r.stdout, "no instance yet") || !strings.Contains(r.stdout, "not enrolled yet") {
		t.Errorf("vm show without instance or agent: %s", r)
	}
	if r := f.run(t, "", "vm", "show", testVM, "-o", "json"); !strings.Contains(r.stdout, `"instanceView": null`) || !strings.Contains(r.stdout, `"agent": null`) {
		t.Errorf("vm show -o json without instance or agent: %s", r)
	}
	// Another failure is one.
	f.set("GET "+testVM+"/agentStatus", jsonReply(500, `{"error":{"code":"InternalServerError","message":"boom"}}`))
	if r := f.run(t, "", "vm", "show", testVM); r.code != exitError || !strings.Contains(r.stderr, "agent status: InternalServerError: boom") {
		t.Errorf("vm show with a failing agent status: %s", r)
	}
}

func TestVMPowerAndDelete(t *testing.T) {
	f := newFakeAPI(t, map[string]http.HandlerFunc{
		"POST " + testVM + "/start":    jsonReply(200, `{"powerState":"running"}`),
		"POST " + testVM + "/powerOff": jsonReply(200, `{"powerState":"PowerState/stopped"}`),
		"POST " + testVM + "/restart":  jsonReply(200, `{"powerState":"running","statuses":[]}`),
		"DELETE " + testVM:             jsonReply(200, ``),
	})
	for _, tc := range []struct{ cmd, path, out string }{
		{"start", "/start", "api-1: running\n"},
		{"stop", "/powerOff", "api-1: stopped\n"},
		{"restart", "/restart", "api-1: running\n"},
	} {
		r := f.run(t, "", "vm", tc.cmd, "api-1", "-g", testRG)
		if r.code != 0 || r.stdout != tc.out {
			t.Errorf("vm %s: %s", tc.cmd, r)
		}
		if n := len(f.requests("POST", testVM+tc.path)); n != 1 {
			t.Errorf("vm %s sent %d POSTs to %s", tc.cmd, n, tc.path)
		}
	}
	if r := f.run(t, "", "vm", "stop", testVM, "-o", "json"); r.code != 0 || decode[map[string]any](t, r.stdout)["powerState"] != "PowerState/stopped" {
		t.Errorf("vm stop -o json: %s", r)
	}
	f.set("POST "+testVM+"/start", jsonReply(409, `{"error":{"code":"OperationNotAllowed","message":"the VM is being deleted"}}`))
	if r := f.run(t, "", "vm", "start", testVM); r.code != exitError || !strings.Contains(r.stderr, "start api-1: OperationNotAllowed: the VM is being deleted") {
		t.Errorf("vm start refused: %s", r)
	}

	// Standard input from a script (the null device, a pipe, a string) is no terminal.
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	for _, in := range []io.Reader{null, pr, strings.NewReader("y\n")} {
		if stdinIsTerminal(in) {
			t.Errorf("stdinIsTerminal(%T %v) = true", in, in)
		}
	}

	// On a terminal, delete asks; no answer but yes deletes nothing.
	old := stdinIsTerminal
	stdinIsTerminal = func(io.Reader) bool { return true }
	t.Cleanup(func() { stdinIsTerminal = old })
	r := f.run(t, "n\n", "vm", "delete", testVM)
	if r.code != exitError || !strings.Contains(r.stderr, "Delete VM "+testVM+" and its disk? [y/N] ") || !strings.Contains(r.stderr, "not confirmed; nothing was deleted") {
		t.Errorf("delete answered no: %s", r)
	}
	if r := f.run(t, "", "vm", "delete", testVM); r.code != exitError {
		t.Errorf("delete with no answer: %s", r)
	}
	if n := len(f.requests("DELETE", testVM)); n != 0 {
		t.Fatalf("an unconfirmed delete sent %d DELETEs", n)
	}
	if r := f.run(t, "yes\n", "vm", "delete", testVM); r.code != 0 || r.stdout != "Deleted "+testVM+"\n" {
		t.Errorf("delete answered yes: %s", r)
	}
	if r := f.run(t, "", "vm", "delete", testVM, "--yes"); r.code != 0 || strings.Contains(r.stderr, "[y/N]") {
		t.Errorf("delete --yes asked: %s", r)
	}
	if n := len(f.requests("DELETE", testVM)); n != 2 {
		t.Errorf("%d DELETEs, want 2", n)
	}
}

func TestVMConsoleAndEvents(t *testing.T) {
	f := newFakeAPI(t, map[string]http.HandlerFunc{
		"GET " + testVM + "/console": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, "[    0.000000] Linux version 6.1.0\n")
			w.(http.Flusher).Flush()
			io.WriteString(w, "api-1 login: \n")
		},
		"GET " + testVM + "/events": jsonReply(200, `{"value":[
			{"seq":12,"machineId":"`+testVM+`","id":"e2","time":"2026-11-24T10:20:00Z","kind":"Correction","assignment":"ssh","check":"sshd_PermitRootLogin",
			 "target":"/etc/ssh/sshd_config PermitRootLogin","before":"yes","after":"no"},
			{"seq":11,"machineId":"`+testVM+`","id":"e1","time":"2026-11-24T10:19:00Z","kind":"ApplyError","assignment":"ssh","check":"sshd_Banner","message":"read-only file system"}],
			"nextLink":"`+testVM+`/events?api-version=x&top=2&before=11"}`),
	})
	r := f.run(t, "", "vm", "console", "api-1", "-g", testRG, "--follow", "--tail", "20")
	if r.code != 0 || r.stdout != "[    0.000000] Linux version 6.1.0\napi-1 login: \n" {
		t.Errorf("vm console: %s", r)
	}
	q := f.requests("GET", testVM+"/console")[0].Query
	if q.Get("follow") != "true" || q.Get("tail") != "20" {
		t.Errorf("vm console --follow --tail 20 sent %v", q)
	}
	r = f.run(t, "", "vm", "console", testVM, "-o", "json")
	if c := decode[map[string]string](t, r.stdout); c["id"] != testVM || !strings.HasSuffix(c["text"], "login: \n") {
		t.Errorf("vm console -o json: %s", r)
	}
	q = f.requests("GET", testVM+"/console")[1].Query
	if q.Has("follow") || q.Has("tail") {
		t.Errorf("vm console without flags sent %v", q)
	}
	if r := f.run(t, "", "vm", "console", strings.Replace(testVM, "api-1", "gone", 1)); r.code != exitError || !strings.Contains(r.stderr, "ResourceNotFound") {
		t.Errorf("console of a missing VM: %s", r)
	}

	r = f.run(t, "", "vm", "events", testVM, "--top", "2")
	if r.code != 0 {
		t.Fatalf("vm events: %s", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("vm events:\n%s", r.stdout)
	}
	for _, col := range []string{"TIME", "KIND", "ASSIGNMENT", "CHECK", "TARGET", "BEFORE → AFTER"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("events header lacks %s: %q", col, lines[0])
		}
	}
	for _, want := range []string{"2026-11-24T10:20:00Z", "Correction", "ssh", "sshd_PermitRootLogin", "/etc/ssh/sshd_config PermitRootLogin", "yes → no"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("events row lacks %q: %q", want, lines[1])
		}
	}
	if !strings.Contains(lines[2], "ApplyError") || !strings.Contains(lines[2], "read-only file system") {
		t.Errorf("events row 2: %q", lines[2])
	}
	if !strings.Contains(r.stderr, "gild vm events "+testVM+" --top 2 --before 11") {
		t.Errorf("events does not say how to go on: %s", r)
	}
	if q := f.requests("GET", testVM+"/events")[0].Query; q.Get("top") != "2" || q.Has("before") {
		t.Errorf("events --top 2 sent %v", q)
	}
	r = f.run(t, "", "vm", "events", testVM, "--before", "11", "-o", "json")
	if ev := decode[struct {
		Value []machineEvent `json:"value"`
	}](t, r.stdout); len(ev.Value) != 2 || ev.Value[0].Before != "yes" {
		t.Errorf("events -o json: %s", r.stdout)
	}
	if q := f.requests("GET", testVM+"/events")[1].Query; q.Get("top") != "50" || q.Get("before") != "11" {
		t.Errorf("events --before 11 sent %v", q)
	}
}

// TestVMRefresh tests the request refresh sends and how it shows the answer against a
// stand-in for {scope}/providers/Gild.Compute/refresh, which the test server does not
// serve yet.
func TestVMRefresh(t *testing.T) {
	const answer = `{"scope":"/subscriptions/payments","cycleDays":30,
	  "due": [{"id":"` + testVM + `","reason":"older than 30 days","serviceModel":"cattle","fromVersion":"1.0.0"}],
	  "replaced": [{"id":"` + testVM + `","fromVersion":"1.0.0","toVersion":"1.1.0"}],
	  "pets": [{"id":"` + testRG + `/providers/Microsoft.Compute/virtualMachines/db-1","reasons":["image 1.0.0 is 1 version behind latest","running for 200 days"]}],
	  "failed": []}`
	f := newFakeAPI(t, map[string]http.HandlerFunc{
		"POST /subscriptions/payments/providers/Gild.Compute/refresh": jsonReply(200, answer),
		"POST /providers/Gild.Compute/refresh":                        jsonReply(200, `{"due":[],"replaced":[],"pets":[],"failed":[]}`),
	})
	r := f.run(t, "", "vm", "refresh", "/subscriptions/payments", "--cycle-days", "30", "--max-unavailable", "2")
	if r.code != 0 {
		t.Fatalf("vm refresh: %s", r)
	}
	reqs := f.requests("POST", "/subscriptions/payments/providers/Gild.Compute/refresh")
	if len(reqs) != 1 {
		t.Fatalf("%d refresh requests", len(reqs))
	}
	if got := decode[map[string]any](t, reqs[0].Body); !reflect.DeepEqual(got, map[string]any{"cycleDays": float64(30), "maxUnavailable": float64(2), "dryRun": false}) {
		t.Errorf("refresh body: %s", reqs[0].Body)
	}
	for _, want := range []string{
		"Refresh cycle: 30 days.\n", "Due for a rebuild (1):\n", "older than 30 days", "cattle",
		"Rebuilt (1):\n", "1.0.0", "1.1.0",
		"Pets that need attention (1):\n", "db-1", "image 1.0.0 is 1 version behind latest; running for 200 days",
		"Failed: none\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("refresh output lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.HasSuffix(r.stdout, "\n\nFailed: none\n") || strings.Contains(r.stdout, "\n\n\n") {
		t.Errorf("refresh's sections are not one blank line apart:\n%q", r.stdout)
	}
	if !strings.Contains(r.stderr, "Refreshing under /subscriptions/payments...") {
		t.Errorf("refresh shows no progress: %s", r)
	}

	// A dry run sends dryRun and no numbers it was not given; the root scope has no prefix.
	r = f.run(t, "", "vm", "refresh", "/", "--dry-run", "-o", "json")
	reqs = f.requests("POST", "/providers/Gild.Compute/refresh")
	if r.code != 0 || len(reqs) != 1 || reqs[0].Body != `{"dryRun":true}` {
		t.Fatalf("refresh / --dry-run: %s, %+v", r, reqs)
	}
	if got := decode[refreshResult](t, r.stdout); got.Due == nil || len(got.Due) != 0 {
		t.Errorf("refresh -o json: %s", r.stdout)
	}
	r = f.run(t, "", "vm", "refresh", "/", "--dry-run")
	if !strings.Contains(r.stdout, "Due for a rebuild (dry run: nothing was done): none") {
		t.Errorf("refresh --dry-run table: %s", r)
	}

	// A VM that failed makes the exit status 1, after the report.
	f.set("POST /subscriptions/payments/providers/Gild.Compute/refresh", jsonReply(200,
		`{"due":[],"replaced":[],"pets":[],"failed":[{"id":"`+testVM+`","error":"image 1.1.0 is not in region local"}]}`))
	r = f.run(t, "", "vm", "refresh", "/subscriptions/payments")
	if r.code != exitError || !strings.Contains(r.stdout, "Failed (1):") || !strings.Contains(r.stdout, "image 1.1.0 is not in region local") ||
		!strings.Contains(r.stderr, "1 VM could not be rebuilt") {
		t.Errorf("refresh with a failure: %s", r)
	}
	r = f.run(t, "", "vm", "refresh", "/subscriptions/payments", "-o", "json")
	if r.code != exitError || len(decode[refreshResult](t, r.stdout).Failed) != 1 {
		t.Errorf("refresh -o json with a failure: %s", r)
	}
}

// TestVMRefreshServer runs refresh against the real server, once it serves the endpoint.
func TestVMRefreshServer(t *testing.T) {
	h := vmHarness(t, true)
	old, pet := testRG+"/providers/Microsoft.Compute/virtualMachines/old-1", testRG+"/providers/Microsoft.Compute/virtualMachines/pet-1"
	h.deleteVMs(testVM, old, pet)
	h.ok("", "vm", "create", "api-1", "-g", testRG, "--image", testDef, "--tag", "serviceModel=cattle")
	h.ok("", "vm", "create", "old-1", "-g", testRG, "--image", testDef+"@1.0.0", "--tag", "serviceModel=cattle")
	h.ok("", "vm", "create", "pet-1", "-g", testRG, "--image", testDef+"@1.0.0", "--tag", "serviceModel=pet")
	r := h.run("vm", "refresh", "/subscriptions/payments", "--dry-run", "-o", "json")
	if r.code != 0 && (strings.Contains(r.stderr, "MethodNotAllowed") || strings.Contains(r.stderr, "InvalidResourceType")) {
		t.Skipf("the server does not serve POST {scope}/providers/Gild.Compute/refresh yet: %s", strings.TrimSpace(r.stderr))
	}
	if r.code != 0 {
		t.Fatalf("vm refresh --dry-run: %s", r)
	}
	res := decode[refreshResult](t, r.stdout)
	if len(res.Replaced) != 0 || len(res.Failed) != 0 {
		t.Errorf("a dry run replaced VMs: %s", r.stdout)
	}
	var due, pets []string
	for _, d := range res.Due {
		due = append(due, d.ID)
	}
	for _, p := range res.Pets {
		pets = append(pets, p.ID)
	}
	if len(due) != 1 || !strings.EqualFold(due[0], old) || len(pets) != 1 || !strings.EqualFold(pets[0], pet) {
		t.Errorf("refresh --dry-run: due %v, pets %v; want the cattle and the pet on 1.0.0:\n%s", due, pets, r.stdout)
	}
	r = h.ok("", "vm", "refresh", "/subscriptions/payments", "--dry-run")
	for _, want := range []string{"Due for a rebuild (dry run: nothing was done) (1):", "old-1", "Pets that need attention (1):", "pet-1", "Failed: none"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("refresh --dry-run's table lacks %q:\n%s", want, r.stdout)
		}
	}
}

// TestVMPowerServer runs a VM under QEMU on the real server: create --wait follows it to
// running (its disk holds no OS, so no agent connects and the wait ends at its timeout),
// then show, console, stop, start, restart and delete. Stopping an OS that does not shut
// down waits out the server's grace, so the test takes a minute or more.
func TestVMPowerServer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a VM under QEMU for a minute or more; run it without -short")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 is not installed")
	}
	h := vmHarness(t, true)
	h.deleteVMs(testVM)
	r := h.fails(nil, "", exitError, nil, "vm", "create", "api-1", "-g", testRG, "--image", testDef, "--wait", "--timeout", "40s")
	if strings.Contains(r.stderr, "failed to provision") {
		t.Skipf("this machine cannot run the VM: %s", r.stderr)
	}
	if !strings.Contains(r.stderr, "power running, agent not enrolled\n") ||
		!strings.Contains(r.stderr, "gave up after 40s waiting for its agent to be Connected (provisioning Succeeded, power running, agent not enrolled)") {
		t.Fatalf("create --wait of a VM without an agent: %s", r)
	}
	r = h.ok("", "vm", "show", testVM)
	for _, want := range []string{"power ", "running", "PowerState/running", "accel ", "sshAddress ", "127.0.0.1:", "agent ", "not enrolled yet"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("vm show of a running VM lacks %q:\n%s", want, r.stdout)
		}
	}
	h.ok("", "vm", "console", testVM, "--tail", "5")
	if r := h.ok("", "vm", "stop", testVM); r.stdout != "api-1: stopped\n" || !strings.Contains(r.stderr, "Stopping api-1...") {
		t.Errorf("vm stop: %s", r)
	}
	if r := h.ok("", "vm", "start", "api-1", "-g", testRG); r.stdout != "api-1: running\n" {
		t.Errorf("vm start: %s", r)
	}
	if iv := decode[map[string]any](t, h.ok("", "vm", "restart", testVM, "-o", "json").stdout); iv["powerState"] != "running" {
		t.Errorf("vm restart -o json: %v", iv)
	}
	if r := h.ok("", "vm", "delete", testVM, "--yes"); r.stdout != "Deleted "+testVM+"\n" {
		t.Errorf("vm delete: %s", r)
	}
}
