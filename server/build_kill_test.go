package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gildhq/gild/builder/qemu"
	"github.com/gildhq/gild/pipeline"
)

// The image pipeline's crash tests: a real `gild serve` child builds the example template
// (examples/debian-12-hardened), is killed with SIGKILL while a run has a chroot mounted or
// a validation VM running, and is restarted on the same data directory. The restarted
// server must fail the run, kill the VM, unmount the chroot, publish nothing, keep the
// run's log, and build the template again.

const buildKillHowTo = "it builds a real image: run it as root with the builder's tools installed (make deps): go test -count=1 -run BuildKill -v ./server"

const (
	bkSubscription = "/subscriptions/platform"
	bkGroup        = bkSubscription + "/resourceGroups/images"
	bkGallery      = bkGroup + "/providers/Microsoft.Compute/galleries/corp"
	bkDefinition   = bkGallery + "/images/debian-12-hardened"
	bkTemplateFile = "../examples/debian-12-hardened/template.json"
)

// requireBuildKill skips the test under -short, and when what a real build needs is missing
// (or fails it, in CI, where it must run).
func requireBuildKill(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped under -short: " + buildKillHowTo)
	}
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (the chroot's mounts)")
	}
	for _, tool := range []string{"mmdebstrap", "qemu-system-x86_64", "qemu-img", "tar", "mount", "umount", "chroot",
		"mkfs.ext4", "mkfs.vfat", "mmd", "mcopy", "grub-mkimage", "sfdisk"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if _, err := qemu.FindFirmware(qemu.FirmwareCandidates); err != nil {
		missing = append(missing, "OVMF firmware")
	}
	if len(missing) > 0 {
		msg := "missing " + strings.Join(missing, ", ") + "; " + buildKillHowTo
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// buildAgent builds gild-agent, which the images get and their validation needs.
func buildAgent(t *testing.T) string {
	t.Helper()
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		if goTool, err = exec.LookPath("go"); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("the go tool is not installed; cannot build gild-agent")
			}
			t.Skip("the go tool is not installed; cannot build gild-agent")
		}
	}
	bin := filepath.Join(t.TempDir(), "gild-agent")
	start := time.Now()
	cmd := exec.Command(goTool, "build", "-o", bin, "./cmd/gild-agent")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build gild-agent: %v\n%s", err, out)
	}
	t.Logf("built gild-agent in %v", time.Since(start).Round(time.Millisecond))
	return bin
}

// buildRig is a data directory that outlives the servers started on it.
type buildRig struct {
	dir    string // the data directory, symbolic links resolved
	token  string
	vmDirs []string // QEMU work directories seen, to remove at the end
}

func newBuildRig(t *testing.T) *buildRig {
	t.Helper()
	// Not t.TempDir: removing a tree with a chroot still mounted in it would walk into the
	// host's /dev. cleanUp unmounts first, and removes nothing if that fails.
	dir, err := os.MkdirTemp("", "gild-build-kill-")
	if err != nil {
		t.Fatal(err)
	}
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		t.Fatal(err)
	}
	r := &buildRig{dir: dir}
	t.Cleanup(func() { r.cleanUp(t) })
	return r
}

// cleanUp kills what the rig's runs left running, unmounts what they left mounted, and
// removes the data directory.
func (r *buildRig) cleanUp(t *testing.T) {
	for _, p := range r.leftoverProcs() {
		if syscall.Kill(p.pid, syscall.SIGKILL) == nil {
			t.Logf("cleanup: killed pid %d left by the test (%s)", p.pid, p.describe())
		}
	}
	mounts := mountsUnder(t, r.dir)
	for i := len(mounts) - 1; i >= 0; i-- {
		if out, err := exec.Command("umount", "-l", mounts[i]).CombinedOutput(); err != nil {
			t.Logf("cleanup: umount -l %s: %v: %s", mounts[i], err, bytes.TrimSpace(out))
		}
	}
	if left := mountsUnder(t, r.dir); len(left) > 0 {
		t.Errorf("cleanup: %s is left in place, still mounted: %s", r.dir, strings.Join(left, ", "))
		return
	}
	for _, d := range r.vmDirs {
		_ = os.RemoveAll(d)
	}
	if err := os.RemoveAll(r.dir); err != nil {
		t.Logf("cleanup: %v", err)
	}
}

// start runs a server on the rig; it is killed at the end of the test if still running.
func (r *buildRig) start(t *testing.T) *child {
	t.Helper()
	c := startChild(t, r.dir)
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			_ = c.cmd.Process.Kill()
			_ = c.cmd.Wait()
		}
	})
	if r.token == "" {
		raw, err := os.ReadFile(filepath.Join(r.dir, AdminTokenFile))
		if err != nil {
			t.Fatal(err)
		}
		r.token = strings.TrimSpace(string(raw))
	}
	return c
}

func (r *buildRig) must(t *testing.T, c *child, method, path string, body any, want ...int) map[string]any {
	t.Helper()
	return c.must(t, r.token, method, path, body, want...)
}

// setUp creates the definition the example template publishes to, its parents, and the
// template; it returns the template's ID.
func (r *buildRig) setUp(t *testing.T, c *child) string {
	t.Helper()
	r.must(t, c, "PUT", bkSubscription, map[string]any{"properties": map[string]any{}}, 201)
	r.must(t, c, "PUT", bkGroup, map[string]any{"location": "local"}, 201)
	r.must(t, c, "PUT", bkGallery, map[string]any{"location": "local"}, 201)
	r.must(t, c, "PUT", bkDefinition, map[string]any{"location": "local", "properties": map[string]any{
		"identifier": map[string]any{"publisher": "Contoso", "offer": "debian-12", "sku": "hardened"},
		"osType":     "Linux", "osState": "Generalized",
	}}, 201)
	raw, err := os.ReadFile(bkTemplateFile)
	if err != nil {
		t.Fatal(err)
	}
	var tmpl struct {
		ID         string          `json:"id"`
		Location   string          `json:"location"`
		Properties json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(raw, &tmpl); err != nil {
		t.Fatalf("%s: %v", bkTemplateFile, err)
	}
	r.must(t, c, "PUT", tmpl.ID, map[string]any{"location": tmpl.Location, "properties": tmpl.Properties}, 200, 201)
	return tmpl.ID
}

// startRun starts a run of the template and returns the run's ID.
func (r *buildRig) startRun(t *testing.T, c *child, tmpl string) string {
	t.Helper()
	m := r.must(t, c, "POST", tmpl+"/run", nil, 202)
	id, _ := m["id"].(string)
	if !strings.Contains(id, "/runs/") {
		t.Fatalf("POST %s/run answered no run: %v", tmpl, m)
	}
	return id
}

func (r *buildRig) run(t *testing.T, c *child, id string) pipeline.RunProperties {
	t.Helper()
	m := r.must(t, c, "GET", id, nil, 200)
	raw, _ := json.Marshal(m["properties"])
	var p pipeline.RunProperties
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("GET %s: properties: %v", id, err)
	}
	return p
}

// runLog reads the run's log through the API.
func (r *buildRig) runLog(c *child, id string) (int, string, error) { return c.runLog(r.token, id) }

// versions lists the image versions under the definition.
func (r *buildRig) versions(t *testing.T, c *child) []string {
	t.Helper()
	m := r.must(t, c, "GET", bkDefinition+"/versions", nil, 200)
	value, ok := m["value"].([]any)
	if !ok && m["value"] != nil {
		t.Fatalf("GET %s/versions: no value list: %v", bkDefinition, m)
	}
	var names []string
	for _, v := range value {
		vm, _ := v.(map[string]any)
		name, _ := vm["name"].(string)
		names = append(names, name)
	}
	return names
}

// runDirs are the base names of the rig's run directories (QEMU's -name is
// gild-validate-<base>).
func (r *buildRig) runDirs() []string {
	entries, _ := os.ReadDir(filepath.Join(r.dir, "runs"))
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// proc is a process seen in /proc.
type proc struct {
	pid  int
	args []string
	root string // its root directory: a chroot's shows here
}

func (p proc) describe() string {
	s := strings.Join(p.args, " ")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	if p.root != "/" {
		s += " (root " + p.root + ")"
	}
	return s
}

func processes() []proc {
	paths, _ := filepath.Glob("/proc/[0-9]*")
	var out []proc
	for _, d := range paths {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || pid == os.Getpid() {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || len(raw) == 0 {
			continue // gone, or a zombie or kernel thread
		}
		root, _ := os.Readlink(filepath.Join(d, "root"))
		out = append(out, proc{pid: pid, args: strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00"), root: root})
	}
	return out
}

// validationVMs are the processes whose command line names the validation VM of one of
// the rig's runs. (Any gild-validate- of another data directory is not this test's.)
func (r *buildRig) validationVMs() []proc {
	bases := r.runDirs()
	var out []proc
	for _, p := range processes() {
		cmdline := strings.Join(p.args, "\x00")
		for _, b := range bases {
			if strings.Contains(cmdline, "gild-validate-"+b) {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// chrootProcs are the processes whose root is inside the data directory.
func (r *buildRig) chrootProcs() []proc {
	var out []proc
	for _, p := range processes() {
		root := strings.TrimSuffix(p.root, " (deleted)")
		if strings.HasPrefix(root, r.dir+"/") {
			out = append(out, p)
		}
	}
	return out
}

func (r *buildRig) leftoverProcs() []proc {
	out := r.validationVMs()
	for _, p := range r.chrootProcs() {
		if !slices.ContainsFunc(out, func(q proc) bool { return q.pid == p.pid }) {
			out = append(out, p)
		}
	}
	return out
}

// otherValidationVMs are gild validation VMs that are not the rig's, for the log.
func (r *buildRig) otherValidationVMs() []proc {
	ours := r.validationVMs()
	var out []proc
	for _, p := range processes() {
		if strings.Contains(strings.Join(p.args, " "), "gild-validate-") && !slices.ContainsFunc(ours, func(q proc) bool { return q.pid == p.pid }) {
			out = append(out, p)
		}
	}
	return out
}

var vmDirPattern = regexp.MustCompile(`/[^,=\s]*/gild-vm-[^/,\s]+`)

// mountsUnder lists the mount points at or below dir, in mount order, from
// /proc/self/mountinfo (read here rather than with the builder's own helper, which is
// what the code under test uses).
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeOctal(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// unescapeOctal undoes mountinfo's \040-style escapes.
func unescapeOctal(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// stepTimes says how long each step of a run took; a step still Running at now is timed
// until now.
func stepTimes(p pipeline.RunProperties, now time.Time) string {
	var parts []string
	for _, s := range p.Steps {
		d := time.Duration(s.DurationSec * float64(time.Second))
		if s.State == pipeline.StateRunning && s.StartTime != nil {
			d = now.Sub(*s.StartTime)
		}
		parts = append(parts, fmt.Sprintf("%s %s %.1fs", s.Name, s.State, d.Seconds()))
	}
	return strings.Join(parts, ", ")
}

func TestBuildKill(t *testing.T) {
	requireBuildKill(t)
	agent := buildAgent(t)
	// One rootfs cache for every run: only the first builds the Debian base.
	cache, err := os.MkdirTemp("", "gild-build-kill-cache-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(cache) })
	t.Setenv(childAgentEnv, agent)
	t.Setenv(childCacheEnv, cache)

	t.Run("Customizing", func(t *testing.T) {
		killBuild(t, pipeline.SubCustomizing, func(t *testing.T, r *buildRig) (string, bool) {
			m := mountsUnder(t, r.dir)
			if len(m) == 0 {
				return "", false
			}
			var procs []string
			for _, p := range r.chrootProcs() {
				procs = append(procs, fmt.Sprintf("%d %s", p.pid, p.describe()))
			}
			return fmt.Sprintf("%d mounts under the data directory (%s); processes in the chroot: [%s]",
				len(m), strings.Join(m, ", "), strings.Join(procs, "; ")), true
		})
	})
	t.Run("Validating", func(t *testing.T) {
		r, c, tmpl := killBuild(t, pipeline.SubValidating, func(t *testing.T, r *buildRig) (string, bool) {
			for _, p := range r.validationVMs() {
				if filepath.Base(p.args[0]) == "qemu-system-x86_64" {
					if d := vmDirPattern.FindString(strings.Join(p.args, " ")); d != "" {
						r.vmDirs = append(r.vmDirs, d)
					}
					return fmt.Sprintf("validation VM pid %d: %s", p.pid, p.describe()), true
				}
			}
			return "", false
		})
		if t.Failed() {
			return
		}
		for _, d := range r.vmDirs {
			if _, err := os.Stat(d); err == nil {
				t.Logf("note: the killed VM's work directory %s is still there after the restart", d)
			}
		}

		// The leftovers do not block the next build.
		start := time.Now()
		id := r.startRun(t, c, tmpl)
		var p pipeline.RunProperties
		for deadline := time.Now().Add(4 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
			p = r.run(t, c, id)
			if p.RunState != pipeline.StateRunning {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the run after the restart is still %s/%s after 4 minutes: %s", p.RunState, p.RunSubState, stepTimes(p, time.Now()))
			}
		}
		t.Logf("the run after the restart: %s in %v: %s", p.RunState, time.Since(start).Round(time.Millisecond), stepTimes(p, time.Now()))
		if p.RunState != pipeline.StateSucceeded {
			_, log, _ := r.runLog(c, id)
			t.Fatalf("the run after the restart ended %s (step %q): %s\nlog:\n%s", p.RunState, p.FailedStep, p.Message, tail(log, 60))
		}
		if v := r.versions(t, c); len(v) != 1 {
			t.Errorf("after the run that succeeded the definition has versions %v, want one", v)
		} else {
			t.Logf("published version %s", v[0])
		}
		if m := mountsUnder(t, r.dir); len(m) > 0 {
			t.Errorf("mounts left under the data directory after a successful run: %v", m)
		}
		if vms := r.validationVMs(); len(vms) > 0 {
			t.Errorf("validation VMs left running after a successful run: %v", vms)
		}
	})
}

// killBuild starts a server on a new data directory, runs the example template, and
// SIGKILLs the server once the run is in subState and ready says the moment has come. It
// restarts the server, which takes the build back as attempt 2, cancels that, and checks
// that nothing of either attempt is left. It returns the
// rig, the restarted server and the template's ID.
func killBuild(t *testing.T, subState string, ready func(t *testing.T, r *buildRig) (string, bool)) (*buildRig, *child, string) {
	r := newBuildRig(t)
	c := r.start(t)
	tmpl := r.setUp(t, c)
	start := time.Now()
	id := r.startRun(t, c, tmpl)
	var (
		p    pipeline.RunProperties
		what string
	)
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		p = r.run(t, c, id)
		if p.RunState != pipeline.StateRunning {
			_, log, _ := r.runLog(c, id)
			t.Fatalf("the run ended %s (step %q: %s) before the server could be killed while %s\nlog:\n%s",
				p.RunState, p.FailedStep, p.Message, subState, tail(log, 60))
		}
		if p.RunSubState == subState {
			var ok bool
			if what, ok = ready(t, r); ok {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run did not reach the moment to kill within 5 minutes: %s/%s: %s", p.RunState, p.RunSubState, stepTimes(p, time.Now()))
		}
	}
	sigkill(t, c)
	killed := time.Now()
	t.Logf("SIGKILLed the server %v into the run, while %s: %s", killed.Sub(start).Round(time.Millisecond), subState, what)
	t.Logf("steps when killed: %s", stepTimes(p, killed))
	inChroot := r.chrootProcs()
	for _, q := range inChroot {
		t.Logf("after the kill, pid %d runs in the chroot: %s", q.pid, q.describe())
	}

	c2 := r.start(t)
	t.Logf("restarted the server in %v", time.Since(killed).Round(time.Millisecond))
	// The restarted server takes its interrupted build back at once, as attempt 2, after
	// clearing what attempt 1 left. Cancelling it then must leave nothing of either.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		p = r.run(t, c2, id)
		if p.RunState == pipeline.StateRunning && p.Attempt == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after the restart the run is %s (attempt %d) %q, want Running again as attempt 2", p.RunState, p.Attempt, p.Message)
		}
	}
	t.Logf("the restarted server took the run back as attempt 2 after %v", time.Since(killed).Round(time.Millisecond))
	r.must(t, c2, "POST", id+"/cancel", nil, 200, 202)
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		p = r.run(t, c2, id)
		if p.RunState != pipeline.StateRunning && p.RunState != pipeline.StateCanceling {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("2 minutes after the cancel the run is %s %q", p.RunState, p.Message)
		}
	}
	if p.RunState != pipeline.StateCanceled {
		t.Fatalf("the cancelled second attempt ended %s %q, want Canceled", p.RunState, p.Message)
	}
	t.Logf("after the cancel the run is %s: %q; steps: %s", p.RunState, p.Message, stepTimes(p, killed))

	var vms []proc
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if vms = r.validationVMs(); len(vms) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, q := range vms {
		t.Errorf("10 s after the restart the killed run's validation VM still runs: pid %d %s", q.pid, q.describe())
	}
	for _, q := range r.otherValidationVMs() {
		t.Logf("a gild validation VM that is not this test's runs: pid %d %s", q.pid, q.describe())
	}
	if m := mountsUnder(t, r.dir); len(m) > 0 {
		t.Errorf("after the restart the killed run's mounts are still there: %s", strings.Join(m, ", "))
	} else {
		// The run's logs stay; its work files (root filesystem, disk) must not.
		for _, b := range r.runDirs() {
			if mb := treeSize(filepath.Join(r.dir, "runs", b)) >> 20; mb > 10 {
				t.Errorf("the killed run's directory %s still holds %d MB after the restart", b, mb)
			}
		}
	}
	for _, q := range inChroot {
		if syscall.Kill(q.pid, 0) == nil {
			t.Errorf("pid %d, in the killed run's chroot, still runs after the restart: %s", q.pid, q.describe())
		}
	}
	if v := r.versions(t, c2); len(v) > 0 {
		t.Errorf("the killed run published versions %v", v)
	}
	code, log, err := r.runLog(c2, id)
	if err != nil || code != 200 {
		t.Errorf("GET %s/log after the restart: %d %v, want 200 (the log is kept)", id, code, err)
	} else if name := id[strings.LastIndex(id, "/")+1:]; !strings.Contains(log, "run "+name) {
		t.Errorf("the kept log does not name the run %s:\n%s", name, tail(log, 20))
	} else if !strings.Contains(log, "attempt 2: the server that ran this build before stopped") {
		t.Errorf("the log does not say the build was taken up again:\n%s", tail(log, 30))
	} else {
		t.Logf("the run's log is kept: %d lines", strings.Count(log, "\n"))
	}
	if tm := r.must(t, c2, "GET", tmpl, nil, 200); tm != nil {
		props, _ := tm["properties"].(map[string]any)
		last, _ := props["lastRunStatus"].(map[string]any)
		if last["runState"] != pipeline.StateCanceled {
			t.Errorf("the template's lastRunStatus after the restart: %v, want runState Canceled", last)
		}
	}
	return r, c2, tmpl
}

// treeSize is the bytes of the regular files under dir (symbolic links not followed).
func treeSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
