package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gildhq/gild/builder"
	"github.com/gildhq/gild/builder/qemu"
	"github.com/gildhq/gild/server"
)

// The image builds below are real: a Debian base from this machine's apt mirror,
// customized in a chroot, booted under QEMU, published and pulled.

var e2e struct {
	once     sync.Once
	agent    string
	cacheDir string
	err      error
}

const exampleDir = "../examples/debian-12-hardened"

func requireBuilds(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("real image builds take minutes; run them with: go test ./cli -run Build -v (as root)")
	}
	var missing []string
	for _, tool := range []string{"mmdebstrap", "qemu-system-x86_64", "qemu-img", "mkfs.ext4", "mkfs.vfat", "grub-mkimage", "sfdisk", "debugfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	switch {
	case len(missing) > 0 && os.Getenv("CI") != "":
		t.Fatalf("image build tools missing in CI (make deps installs them): %v", missing)
	case len(missing) > 0:
		t.Skipf("image build tools missing (make deps installs them): %v", missing)
	case os.Geteuid() != 0 && os.Getenv("CI") != "":
		t.Fatal("image builds need root (chroot, mounts)")
	case os.Geteuid() != 0:
		t.Skip("image builds need root (chroot, mounts)")
	}
	e2e.once.Do(func() {
		dir, err := os.MkdirTemp("", "gild-cli-e2e-")
		if err != nil {
			e2e.err = err
			return
		}
		e2e.cacheDir = filepath.Join(dir, "cache")
		e2e.agent = filepath.Join(dir, "gild-agent")
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-trimpath", "-o", e2e.agent, "../cmd/gild-agent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			e2e.err = err
			e2e.agent = string(out)
		}
	})
	if e2e.err != nil {
		t.Fatalf("build gild-agent: %v %s", e2e.err, e2e.agent)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if e2e.cacheDir != "" {
		os.RemoveAll(filepath.Dir(e2e.cacheDir))
	}
	os.Exit(code)
}

func newBuildHarness(t *testing.T) *harness {
	h := newHarness(t, func(c *server.Config) { c.AgentBinary, c.CacheDir = e2e.agent, e2e.cacheDir })
	h.login()
	return h
}

// buildOutput is what image build -o json prints.
type buildOutput struct {
	ID         string `json:"id"`
	VersionID  string `json:"versionId"`
	Properties struct {
		RunState     string   `json:"runState"`
		Message      string   `json:"message"`
		FailedStep   string   `json:"failedStep"`
		FailedChecks []string `json:"failedChecks"`
		Kept         []string `json:"kept"`
		Steps        []struct {
			Name        string  `json:"name"`
			DurationSec float64 `json:"durationSeconds"`
		} `json:"steps"`
		Validation *struct {
			BootSeconds float64 `json:"bootSeconds"`
		} `json:"validation"`
	} `json:"properties"`
}

func (h *harness) build(t *testing.T, file string, extra ...string) (buildOutput, result) {
	t.Helper()
	start := time.Now()
	r := h.run(append([]string{"image", "build", "-f", file, "-o", "json"}, extra...)...)
	var out buildOutput
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("image build -o json printed no run: %v\n%s", err, r)
	}
	var steps []string
	for _, s := range out.Properties.Steps {
		steps = append(steps, s.Name+" "+time.Duration(s.DurationSec*float64(time.Second)).Round(100*time.Millisecond).String())
	}
	t.Logf("build of %s: %s in %s (%s)", filepath.Base(file), out.Properties.RunState, time.Since(start).Round(time.Second), strings.Join(steps, ", "))
	return out, r
}

// TestBuildExample is the acceptance: the example builds on a server with nothing
// set up, its published disk boots under UEFI in a plain QEMU to a login prompt and
// carries the tattoo; the Azure JSON form of the template makes the same image.
func TestBuildExample(t *testing.T) {
	requireBuilds(t)
	h := newBuildHarness(t)
	out, r := h.build(t, exampleDir+"/template.yaml")
	if r.code != 0 || out.Properties.RunState != "Succeeded" || !strings.HasSuffix(out.VersionID, "/images/debian-12-hardened/versions/1.0.0") {
		t.Fatalf("the example's build: %s", r)
	}
	if !strings.Contains(r.stderr, "Created /subscriptions/platform/resourceGroups/images/providers/Microsoft.Compute/galleries/corp/images/debian-12-hardened") {
		t.Errorf("the declared definition was not created: %s", r.stderr)
	}
	dir := t.TempDir()
	disk := filepath.Join(dir, "debian.qcow2")
	h.ok("", "image", "pull", out.VersionID, "-o", disk)

	// A plain QEMU, as any KVM host would run the image: UEFI firmware, the disk, a serial
	// console; the login prompt is the end of the boot.
	fw, err := qemu.FindFirmware(qemu.FirmwareCandidates)
	if err != nil {
		t.Fatal(err)
	}
	vars := filepath.Join(dir, "vars.fd")
	if data, err := os.ReadFile(fw.Vars); err != nil || os.WriteFile(vars, data, 0o600) != nil {
		t.Fatalf("OVMF vars: %v", err)
	}
	console := filepath.Join(dir, "console.log")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	vm := exec.CommandContext(ctx, "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-smp", "2", "-m", "1024",
		"-drive", "if=pflash,format=raw,readonly=on,file="+fw.Code, "-drive", "if=pflash,format=raw,file="+vars,
		"-drive", "file="+disk+",if=virtio,format=qcow2,snapshot=on", "-serial", "file:"+console,
		"-display", "none", "-monitor", "none", "-nodefaults", "-no-reboot")
	if err := vm.Start(); err != nil {
		t.Fatal(err)
	}
	bootStart := time.Now()
	defer func() { _ = vm.Process.Kill(); _ = vm.Wait() }()
	for {
		data, _ := os.ReadFile(console)
		if bytes.Contains(data, []byte("login:")) {
			t.Logf("the pulled image reached a login prompt %s after QEMU started", time.Since(bootStart).Round(100*time.Millisecond))
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no login prompt on the serial console; it ends with:\n%s", tail(string(data), 30))
		}
		time.Sleep(500 * time.Millisecond)
	}

	tattoo := readFromImage(t, disk, "/etc/gild/tattoo.json")
	var tt map[string]any
	if err := json.Unmarshal(tattoo, &tt); err != nil {
		t.Fatalf("tattoo.json: %v\n%s", err, tattoo)
	}
	if tt["imageVersion"] != "1.0.0" || tt["sourceOffer"] != "debian-12" || !strings.HasSuffix(tt["imageDefinition"].(string), "/debian-12-hardened") ||
		tt["runId"] != out.ID || tt["templateDigest"] == "" || tt["osVersion"] == "" {
		t.Errorf("tattoo: %s", tattoo)
	}
	if osr := string(readFromImage(t, disk, "/etc/os-release")); !strings.Contains(osr, `IMAGE_ID="debian-12-hardened"`) || !strings.Contains(osr, `IMAGE_VERSION="1.0.0"`) {
		t.Errorf("os-release: %s", osr)
	}

	// The same template as Azure Image Builder JSON: the same image, tattoo aside.
	out2, r := h.build(t, exampleDir+"/template.json")
	if r.code != 0 || !strings.HasSuffix(out2.VersionID, "/versions/1.0.1") {
		t.Fatalf("the JSON form's build: %s", r)
	}
	disk2 := filepath.Join(dir, "json.qcow2")
	h.ok("", "image", "pull", out2.VersionID, "-o", disk2)
	for _, f := range []string{"/etc/motd", "/etc/ssh/sshd_config.d/50-gild-hardening.conf", "/etc/sysctl.d/60-gild-hardening.conf",
		"/var/lib/dpkg/status", "/etc/gild/checks.json", "/etc/systemd/system/ssh.service.d/10-host-keys.conf"} {
		if a, b := readFromImage(t, disk, f), readFromImage(t, disk2, f); !bytes.Equal(a, b) {
			t.Errorf("%s differs between the YAML and JSON builds", f)
		}
	}
	if tt2 := readFromImage(t, disk2, "/etc/gild/tattoo.json"); !bytes.Contains(tt2, []byte(`"imageVersion": "1.0.1"`)) {
		t.Errorf("the JSON build's tattoo: %s", tt2)
	}
}

// readFromImage reads a file from the root partition of a qcow2 disk, without mounting it.
func readFromImage(t *testing.T, qcow2, path string) []byte {
	t.Helper()
	raw := qcow2 + ".raw"
	if _, err := os.Stat(raw); err != nil {
		if out, err := exec.Command("qemu-img", "convert", "-O", "raw", qcow2, raw).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img convert: %v %s", err, out)
		}
		t.Cleanup(func() { os.Remove(raw) })
	}
	js, err := exec.Command("sfdisk", "-J", raw).Output()
	if err != nil {
		t.Fatalf("sfdisk: %v", err)
	}
	var pt struct {
		PartitionTable struct {
			Partitions []struct {
				Start int64  `json:"start"`
				Name  string `json:"name"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(js, &pt); err != nil {
		t.Fatal(err)
	}
	for _, p := range pt.PartitionTable.Partitions {
		if p.Name == "root" {
			out, err := exec.Command("debugfs", "-R", "cat "+path, raw+"?offset="+strconv.FormatInt(p.Start*512, 10)).Output()
			if err != nil || len(out) == 0 {
				t.Fatalf("read %s from the image: %v", path, err)
			}
			return out
		}
	}
	t.Fatalf("no root partition in %s: %s", qcow2, js)
	return nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestBuildFailures: a failing check and a boot over budget each fail the run with a
// message naming the cause, publish nothing and keep the logs.
func TestBuildFailures(t *testing.T) {
	requireBuilds(t)
	h := newBuildHarness(t)
	example, err := os.ReadFile(exampleDir + "/template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o755); err != nil {
		t.Fatal(err)
	}
	motd, _ := os.ReadFile(exampleDir + "/files/motd")
	_ = os.WriteFile(filepath.Join(dir, "files/motd"), motd, 0o644)
	variant := func(name, old, new string) string {
		y := strings.Replace(string(example), old, new, 1)
		y = strings.Replace(y, "imageTemplates/debian-12-hardened", "imageTemplates/"+name, 1)
		if y == string(example) {
			t.Fatalf("the variant %s changed nothing", name)
		}
		p := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, file, wantMsg, wantCheck string
	}{
		{"failing-check", variant("failing-check", "  checks:\n", "  checks:\n    - {name: no-telnet-banner, kind: file, path: /etc/issue.net, contains: AUTHORIZED}\n"),
			"no-telnet-banner", "no-telnet-banner"},
		{"slow-boot", variant("slow-boot", "maxBootSeconds: 150", "maxBootSeconds: 5"), "more than maxBootSeconds 5", ""},
	}
	for _, c := range cases {
		out, r := h.build(t, c.file)
		if r.code == 0 || out.Properties.RunState != "Failed" || out.Properties.FailedStep != "validate" || !strings.Contains(out.Properties.Message, c.wantMsg) {
			t.Errorf("%s: want a failed validation naming %q: %s", c.name, c.wantMsg, r)
			continue
		}
		if c.wantCheck != "" && (len(out.Properties.FailedChecks) != 1 || out.Properties.FailedChecks[0] != c.wantCheck) {
			t.Errorf("%s: failed checks %v", c.name, out.Properties.FailedChecks)
		}
		if out.VersionID != "" {
			t.Errorf("%s: a version was published: %s", c.name, out.VersionID)
		}
		for _, f := range []string{"run.log", "console.log"} {
			if lr := h.run("image", "logs", out.ID, "--name", f); lr.code != 0 || len(lr.stdout) < 100 {
				t.Errorf("%s: the %s was not kept: %s", c.name, f, lr)
			}
		}
	}
	versions := h.ok("", "image", "versions", "/subscriptions/platform/resourceGroups/images/providers/Microsoft.Compute/galleries/corp/images/debian-12-hardened", "-o", "json")
	if strings.Contains(versions.stdout, "/versions/") {
		t.Errorf("failed runs published versions: %s", versions.stdout)
	}
}

// TestBuildCancelled: cancelling a run while its VM boots leaves no QEMU, no mount and no
// version.
func TestBuildCancelled(t *testing.T) {
	requireBuilds(t)
	h := newBuildHarness(t)
	r := h.ok("", "image", "build", "-f", exampleDir+"/template.yaml", "--no-follow")
	runID := strings.TrimSpace(r.stdout)
	deadline := time.Now().Add(4 * time.Minute)
	name := runID[strings.LastIndex(runID, "/")+1:]
	for !qemuRunning(name) {
		if time.Now().After(deadline) {
			t.Fatalf("the run never reached its validation VM: %s", h.run("get", runID))
		}
		time.Sleep(200 * time.Millisecond)
	}
	h.ok("", "image", "cancel", runID)
	for {
		g := h.ok("", "get", runID, "-o", "json")
		if strings.Contains(g.stdout, `"runState": "Canceled"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run was not cancelled: %s", g.stdout)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if qemuRunning(name) {
		t.Error("a validation VM is still running after the run was cancelled")
	}
	if m, err := builder.MountsUnder(h.dataDir); err != nil || len(m) > 0 {
		t.Errorf("mounts left under the data directory: %v %v", m, err)
	}
	versions := h.ok("", "image", "versions", "/subscriptions/platform/resourceGroups/images/providers/Microsoft.Compute/galleries/corp/images/debian-12-hardened", "-o", "json")
	if strings.Contains(versions.stdout, "/versions/") {
		t.Errorf("a cancelled run published a version: %s", versions.stdout)
	}
}

// qemuRunning reports whether the validation VM of run name is running.
func qemuRunning(name string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if data, err := os.ReadFile(p); err == nil && bytes.Contains(data, []byte("gild-validate-"+name)) {
			return true
		}
	}
	return false
}

// TestBuildLayeredAndURLSources builds on top of a published gallery version (a layered
// image, keeping its parent's checks), and from a disk at a URL vouched for by a sums file.
func TestBuildLayeredAndURLSources(t *testing.T) {
	requireBuilds(t)
	h := newBuildHarness(t)
	base, r := h.build(t, exampleDir+"/template.yaml")
	if r.code != 0 {
		t.Fatalf("the base build: %s", r)
	}
	dir := t.TempDir()
	const def = "/subscriptions/platform/resourceGroups/images/providers/Microsoft.Compute/galleries/corp/images/"
	layered := `
id: /subscriptions/platform/resourceGroups/images/providers/Microsoft.VirtualMachineImages/imageTemplates/web
source: {image: ` + def + `debian-12-hardened}
customize:
  - shell: {name: web-marker, inline: ["echo web > /etc/gild-layer"]}
validate:
  maxBootSeconds: 150
  checks:
    - {name: layer, kind: file, path: /etc/gild-layer, contains: web}
distribute:
  - gallery: ` + def + `web
    definition: {publisher: Contoso, offer: debian-12, sku: web}
`
	if err := os.WriteFile(filepath.Join(dir, "layered.yaml"), []byte(layered), 0o644); err != nil {
		t.Fatal(err)
	}
	out, r := h.build(t, filepath.Join(dir, "layered.yaml"))
	if r.code != 0 || !strings.HasSuffix(out.VersionID, "/images/web/versions/1.0.0") {
		t.Fatalf("the layered build: %s", r)
	}
	disk := filepath.Join(dir, "web.qcow2")
	h.ok("", "image", "pull", out.VersionID, "-o", disk)
	if got := readFromImage(t, disk, "/etc/gild-layer"); string(got) != "web\n" {
		t.Errorf("the layer's file: %q", got)
	}
	if motd := readFromImage(t, disk, "/etc/motd"); !bytes.Contains(motd, []byte("Contoso")) {
		t.Errorf("the base's motd is not in the layered image: %q", motd)
	}
	checks := readFromImage(t, disk, "/etc/gild/checks.json")
	for _, name := range []string{`"layer"`, `"sshd-no-root-login"`} {
		if !bytes.Contains(checks, []byte(name)) {
			t.Errorf("the layered image's checks lack %s: %s", name, checks)
		}
	}
	tattoo := readFromImage(t, disk, "/etc/gild/tattoo.json")
	if !bytes.Contains(tattoo, []byte(`"sourceImageId": "`+base.VersionID+`"`)) || !bytes.Contains(tattoo, []byte(`"sourceOffer": "debian-12"`)) {
		t.Errorf("the layered image's tattoo does not name its parent: %s", tattoo)
	}
	v := h.ok("", "get", out.VersionID, "-o", "json")
	if !strings.Contains(v.stdout, base.VersionID) {
		t.Errorf("the version does not record its parent: %s", v.stdout)
	}

	// The layered disk, served from a folder with its SHA256SUMS, as a URL source.
	data, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	hsum := sha256Hex(data)
	if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(hsum+"  web.qcow2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fromURL := `
id: /subscriptions/platform/resourceGroups/images/providers/Microsoft.VirtualMachineImages/imageTemplates/from-url
source: {url: "file://` + disk + `", checksums: "file://` + filepath.Join(dir, "SHA256SUMS") + `"}
validate:
  maxBootSeconds: 150
  checks:
    - {name: layer, kind: file, path: /etc/gild-layer, contains: web}
distribute:
  - gallery: ` + def + `from-url
    definition: {publisher: Contoso, offer: debian-12, sku: from-url}
`
	if err := os.WriteFile(filepath.Join(dir, "url.yaml"), []byte(fromURL), 0o644); err != nil {
		t.Fatal(err)
	}
	out, r = h.build(t, filepath.Join(dir, "url.yaml"))
	if r.code != 0 || !strings.HasSuffix(out.VersionID, "/images/from-url/versions/1.0.0") {
		t.Fatalf("the URL build: %s", r)
	}
	// A sums file that does not vouch for the bytes stops the run at its source.
	if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(strings.Repeat("0", 64)+"  web.qcow2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, r = h.build(t, filepath.Join(dir, "url.yaml"))
	if r.code == 0 || out.Properties.FailedStep != "source" || !strings.Contains(out.Properties.Message, "sha256") {
		t.Fatalf("a disk its sums file does not vouch for: %s", r)
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
