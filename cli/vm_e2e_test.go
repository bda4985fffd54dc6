package cli

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gildhq/gild/server"
)

// The VM tests below are real: images built from the example, VMs booted under QEMU from
// them, their agents enrolling and reporting to the server over the VMs' user-mode network.

const (
	vmTeamSub   = "/subscriptions/team-a"
	vmTeamRG    = vmTeamSub + "/resourceGroups/app"
	corpDef     = "/subscriptions/platform/resourceGroups/images/providers/Microsoft.Compute/galleries/corp/images/debian-12-hardened"
	corpGal     = "/subscriptions/platform/resourceGroups/images/providers/Microsoft.Compute/galleries/corp"
	sandboxDef  = "/subscriptions/platform/resourceGroups/images/providers/Microsoft.Compute/galleries/sandbox/images/debian-12-custom"
	sshBaseline = "LinuxSshServerSecurityBaseline"
	// agentInterval is short so that the test sees reports within seconds; agents also
	// report at once when their assignments change.
	agentInterval = 20 * time.Second
)

// vmShow is what `gild vm show -o json` prints.
type vmShow struct {
	VM struct {
		ID         string            `json:"id"`
		Tags       map[string]string `json:"tags"`
		Properties struct {
			VMID              string `json:"vmId"`
			ProvisioningState string `json:"provisioningState"`
			StorageProfile    struct {
				ImageReference struct {
					ID           string `json:"id"`
					ExactVersion string `json:"exactVersion"`
				} `json:"imageReference"`
			} `json:"storageProfile"`
		} `json:"properties"`
	} `json:"vm"`
	InstanceView struct {
		PowerState string `json:"powerState"`
		SSHAddress string `json:"sshAddress"`
	} `json:"instanceView"`
	Agent struct {
		Status string         `json:"status"`
		Tattoo map[string]any `json:"tattoo"`
	} `json:"agent"`
}

func (h *harness) showVM(t *testing.T, id string) vmShow {
	t.Helper()
	r := h.ok("", "vm", "show", id, "-o", "json")
	var s vmShow
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("vm show -o json: %v\n%s", err, r)
	}
	return s
}

// states returns the compliance state of each assignment (by name) for one resource.
func (h *harness) states(t *testing.T, resourceID string) map[string]string {
	t.Helper()
	r := h.ok("", "compliance", "list", vmTeamSub, "--resource", resourceID, "-o", "json")
	var out struct {
		Value []struct {
			AssignmentID string `json:"policyAssignmentId"`
			State        string `json:"complianceState"`
		} `json:"value"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		// Some commands print a bare array.
		if err2 := json.Unmarshal([]byte(r.stdout), &out.Value); err2 != nil {
			t.Fatalf("compliance list -o json: %v\n%s", err, r)
		}
	}
	m := map[string]string{}
	for _, v := range out.Value {
		m[v.AssignmentID[strings.LastIndex(v.AssignmentID, "/")+1:]] = v.State
	}
	return m
}

// eventually polls cond every 2 s until it holds or d passes; then it fails with what the
// last poll said.
func eventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	start := time.Now()
	for {
		ok, last := cond()
		if ok {
			t.Logf("%s after %s", what, time.Since(start).Round(time.Second))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last seen: %s", what, d, last)
		}
		time.Sleep(2 * time.Second)
	}
}

// sshRun runs a command in a VM as the admin user, through the port gild forwards to its
// SSH server.
func sshRun(t *testing.T, addr string, key ed25519.PrivateKey, command string) string {
	t.Helper()
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ClientConfig{User: "ops", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 20 * time.Second}
	var client *ssh.Client
	deadline := time.Now().Add(2 * time.Minute)
	for {
		client, err = ssh.Dial("tcp", addr, cfg)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssh to %s: %v", addr, err)
		}
		time.Sleep(2 * time.Second)
	}
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	out, err := sess.CombinedOutput(command)
	if err != nil {
		t.Fatalf("ssh %s %q: %v\n%s", addr, command, err, out)
	}
	return string(out)
}

// TestVMsEndToEnd is the acceptance, on real VMs: a cattle VM and a pet VM from the
// example image and a third from an image outside the approved gallery (with the deny in
// DoNotEnforce); their states and tattoos within one agent interval; drift in the pet's
// sshd_config reported with the setting, expected and actual value, then corrected under
// ApplyAndAutoCorrect and listed as an event; a newer version leaves both one version
// behind; a refresh replaces the cattle and leaves the pet.
func TestVMsEndToEnd(t *testing.T) {
	requireBuilds(t)
	h := newHarness(t, func(c *server.Config) {
		c.AgentBinary, c.CacheDir, c.AgentInterval, c.NoVMs = e2e.agent, e2e.cacheDir, agentInterval, false
	})
	h.login()
	// Whatever happens, no VM of this test outlives it: QEMU runs detached from the server.
	t.Cleanup(func() { killQEMUsUnder(t, h.dataDir) })

	// Two images: the example, published to the approved corp gallery, and the same
	// template published to a sandbox gallery nobody approved.
	out, r := h.build(t, exampleDir+"/template.yaml")
	if r.code != 0 || !strings.HasSuffix(out.VersionID, "/versions/1.0.0") {
		t.Fatalf("the example's build: %s", r)
	}
	example, err := os.ReadFile(exampleDir + "/template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sandbox := strings.ReplaceAll(string(example), corpDef, sandboxDef)
	sandbox = strings.Replace(sandbox, "imageTemplates/debian-12-hardened", "imageTemplates/debian-12-custom", 1)
	sandbox = strings.Replace(sandbox, "source: files/motd", "source: "+filepath.Join(mustAbs(t, exampleDir), "files/motd"), 1)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sandbox.yaml"), []byte(sandbox), 0o644); err != nil {
		t.Fatal(err)
	}
	out2, r := h.build(t, filepath.Join(dir, "sandbox.yaml"))
	if r.code != 0 || !strings.Contains(out2.VersionID, "/galleries/sandbox/") {
		t.Fatalf("the sandbox build: %s", r)
	}

	// The team's subscription, with the policies: approved galleries (deny, but not
	// enforced), the tattoo, the SSH baseline's assignment, and versions behind latest.
	h.ok(`{}`, "put", vmTeamSub, "-f", "-")
	h.ok(`{"location":"local"}`, "put", vmTeamRG, "-f", "-")
	assignPolicy := func(name, definition, params, mode string) {
		body := fmt.Sprintf(`{"properties":{"policyDefinitionId":"/providers/Microsoft.Authorization/policyDefinitions/%s","parameters":%s,"enforcementMode":%q,
			"nonComplianceMessages":[{"message":"%s is not allowed here: see the wiki"}]}}`, definition, params, mode, name)
		h.ok(body, "put", vmTeamSub+"/providers/Microsoft.Authorization/policyAssignments/"+name, "-f", "-")
	}
	assignPolicy("approved-images", "gild-approved-gallery-images", `{"approvedGalleryIds":{"value":["`+corpGal+`"]}}`, "DoNotEnforce")
	assignPolicy("tattoo", "gild-tattoo-matches-image", `{}`, "Default")
	assignPolicy("ssh-baseline", "gild-machine-configuration-compliant", `{"assignmentName":{"value":"`+sshBaseline+`"}}`, "Default")

	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	keyLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " e2e"

	vms := map[string]struct{ image, model string }{
		"cattle-1": {corpDef + "@latest", "cattle"},
		"pet-1":    {corpDef + "@1.0.0", "pet"},
		"rogue-1":  {sandboxDef + "@latest", "cattle"},
	}
	ids := map[string]string{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	results := map[string]result{}
	for name, v := range vms {
		ids[name] = vmTeamRG + "/providers/Microsoft.Compute/virtualMachines/" + name
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := h.run("vm", "create", name, "-g", vmTeamRG, "--image", v.image, "--tag", "serviceModel="+v.model,
				"--admin-username", "ops", "--ssh-key", keyLine, "--wait", "--timeout", "8m")
			mu.Lock()
			results[name] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, id := range ids {
			h.run("vm", "delete", id, "--yes")
		}
	})
	for name, r := range results {
		if r.code != 0 {
			t.Fatalf("vm create %s: %s", name, r)
		}
	}
	// The baseline on every VM, audited.
	for _, id := range ids {
		h.ok("", "guest-config", "assign", id, "--configuration", sshBaseline, "--type", "Audit")
	}

	// Within one agent interval: the rogue VM NonCompliant (its image is not approved),
	// the others Compliant, and every agent's tattoo names its own image version.
	eventually(t, agentInterval+30*time.Second, "states and tattoos right", func() (bool, string) {
		var seen []string
		ok := true
		for name, id := range ids {
			s := h.showVM(t, id)
			ref := s.VM.Properties.StorageProfile.ImageReference
			def := strings.Split(ref.ID, "/versions/")[0]
			tv, _ := s.Agent.Tattoo["imageVersion"].(string)
			td, _ := s.Agent.Tattoo["imageDefinition"].(string)
			if tv != ref.ExactVersion || !strings.EqualFold(td, def) {
				ok = false
			}
			st := h.states(t, id)
			want := "Compliant"
			if name == "rogue-1" {
				want = "NonCompliant"
			}
			if st["approved-images"] != want || st["tattoo"] != "Compliant" || st["ssh-baseline"] != "Compliant" {
				ok = false
			}
			seen = append(seen, fmt.Sprintf("%s: tattoo %s@%s, image %s@%s, states %v", name, td, tv, def, ref.ExactVersion, st))
		}
		return ok, strings.Join(seen, "; ")
	})

	// Drift in the pet: a line at the top of sshd_config wins over the hardening drop-in.
	pet := h.showVM(t, ids["pet-1"])
	sshRun(t, pet.InstanceView.SSHAddress, key, "sudo sed -i '1i PermitRootLogin yes' /etc/ssh/sshd_config")
	eventually(t, agentInterval+30*time.Second, "the pet's drift reported", func() (bool, string) {
		r := h.ok("", "guest-config", "show", ids["pet-1"], "--name", sshBaseline, "-o", "json")
		var a struct {
			Properties struct {
				ComplianceStatus string `json:"complianceStatus"`
				Latest           struct {
					Resources []struct {
						ResourceID       string `json:"resourceId"`
						ComplianceStatus string `json:"complianceStatus"`
						Reasons          []struct{ Code, Phrase string }
					} `json:"resources"`
				} `json:"latestAssignmentReport"`
			} `json:"properties"`
		}
		_ = json.Unmarshal([]byte(r.stdout), &a)
		for _, res := range a.Properties.Latest.Resources {
			for _, why := range res.Reasons {
				if res.ComplianceStatus == "NonCompliant" && strings.Contains(why.Phrase, "PermitRootLogin") && strings.Contains(why.Phrase, `"yes"`) && strings.Contains(why.Phrase, `"no"`) {
					return a.Properties.ComplianceStatus == "NonCompliant" && h.states(t, ids["pet-1"])["ssh-baseline"] == "NonCompliant", r.stdout
				}
			}
		}
		return false, r.stdout
	})

	// ApplyAndAutoCorrect: the agent is told at once, corrects the setting and records it.
	h.ok("", "guest-config", "assign", ids["pet-1"], "--configuration", sshBaseline, "--type", "ApplyAndAutoCorrect")
	eventually(t, agentInterval+30*time.Second, "the drift corrected and listed", func() (bool, string) {
		r := h.ok("", "vm", "events", ids["pet-1"], "-o", "json")
		if !strings.Contains(r.stdout, "PermitRootLogin") || !strings.Contains(r.stdout, `"before": "yes"`) || !strings.Contains(r.stdout, `"after": "no"`) {
			return false, r.stdout
		}
		return h.states(t, ids["pet-1"])["ssh-baseline"] == "Compliant", r.stdout
	})
	if got := sshRun(t, pet.InstanceView.SSHAddress, key, "sudo head -n 1 /etc/ssh/sshd_config"); !strings.Contains(got, "PermitRootLogin no") {
		t.Errorf("the first line of sshd_config after the correction: %q", got)
	}

	// A newer version: both corp VMs are one version behind; a refresh replaces the cattle.
	out3, r := h.build(t, exampleDir+"/template.yaml")
	if r.code != 0 || !strings.HasSuffix(out3.VersionID, "/versions/1.0.1") {
		t.Fatalf("the second build: %s", r)
	}
	assignPolicy("current-images", "gild-image-versions-behind", `{"maxVersionsBehind":{"value":0}}`, "Default")
	dry := h.ok("", "vm", "refresh", vmTeamRG, "--dry-run", "-o", "json")
	for _, want := range []string{ids["cattle-1"], ids["pet-1"], "1 behind"} {
		if !strings.Contains(dry.stdout, want) {
			t.Errorf("the dry run lacks %q:\n%s", want, dry.stdout)
		}
	}
	eventually(t, time.Minute, "both corp VMs one version behind", func() (bool, string) {
		a, b := h.states(t, ids["cattle-1"])["current-images"], h.states(t, ids["pet-1"])["current-images"]
		return a == "NonCompliant" && b == "NonCompliant", a + " " + b
	})
	petBefore := h.showVM(t, ids["pet-1"]).VM.Properties.VMID
	cattleBefore := h.showVM(t, ids["cattle-1"]).VM.Properties.VMID
	ref := h.ok("", "vm", "refresh", vmTeamRG, "-o", "json")
	var rep struct {
		Replaced []struct{ ID, FromVersion, ToVersion string } `json:"replaced"`
		Pets     []struct{ ID string }                         `json:"pets"`
		Failed   []struct{ ID, Error string }                  `json:"failed"`
	}
	if err := json.Unmarshal([]byte(ref.stdout), &rep); err != nil {
		t.Fatalf("refresh -o json: %v\n%s", err, ref)
	}
	replaced := map[string]string{}
	for _, x := range rep.Replaced {
		replaced[x.ID] = x.ToVersion
	}
	if replaced[ids["cattle-1"]] != "1.0.1" || len(rep.Failed) != 0 {
		t.Fatalf("refresh: %s", ref.stdout)
	}
	if _, ok := replaced[ids["pet-1"]]; ok {
		t.Fatalf("the pet was replaced: %s", ref.stdout)
	}
	if after := h.showVM(t, ids["pet-1"]).VM.Properties.VMID; after != petBefore {
		t.Errorf("the pet's vmId changed from %s to %s", petBefore, after)
	}
	cattle := h.showVM(t, ids["cattle-1"])
	if cattle.VM.Properties.VMID == cattleBefore || cattle.VM.Properties.StorageProfile.ImageReference.ExactVersion != "1.0.1" ||
		cattle.VM.Tags["serviceModel"] != "cattle" {
		t.Errorf("the replaced cattle: %+v", cattle.VM)
	}
	eventually(t, agentInterval+60*time.Second, "the new cattle reports tattoo 1.0.1", func() (bool, string) {
		s := h.showVM(t, ids["cattle-1"])
		return s.Agent.Tattoo["imageVersion"] == "1.0.1", fmt.Sprint(s.Agent)
	})
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// killQEMUsUnder kills the QEMU processes whose command line names a file under dir: the
// VMs of a test's data directory, which QEMU runs detached from the server.
func killQEMUsUnder(t *testing.T, dir string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmd), "qemu-system") || !strings.Contains(string(cmd), dir) {
			continue
		}
		if p, err := os.FindProcess(pid); err == nil && p.Kill() == nil {
			t.Logf("killed QEMU %d, left running by the test", pid)
		}
	}
}
