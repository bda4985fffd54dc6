package vm

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gildhq/gild/agentproto"
	"github.com/gildhq/gild/blob"
	"github.com/gildhq/gild/builder/qemu"
	"github.com/gildhq/gild/controlplane"
	"github.com/gildhq/gild/gallery"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
	"github.com/gildhq/gild/store/sqlite"
)

// testEnroller hands out numbered tokens, as fleet's one-time tokens, and can fail.
type testEnroller struct {
	mu    sync.Mutex
	calls []string
	fail  error
}

func (e *testEnroller) EnrollmentToken(_ context.Context, id resource.ID) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail != nil {
		return "", e.fail
	}
	e.calls = append(e.calls, id.String())
	return fmt.Sprintf("gild-enroll-test-%d", len(e.calls)), nil
}

func (e *testEnroller) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.calls)
}

// harness is a control plane with the gallery and the VM service as hooks, on SQLite, with
// a published image version.
type harness struct {
	t       *testing.T
	ctx     context.Context
	st      store.Store
	cp      *controlplane.Service
	images  *gallery.Service
	vms     *Service
	opts    Options
	enroll  *testEnroller
	dataDir string
	def     resource.ID // the image definition
	version resource.ID // its version 1.0.0
	digest  blob.Digest
	regions map[string]string // region name → its directory
	rg      resource.ID
}

const sshKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGQ2cT3lD1ZC6XQHCG5pWhzZt5XJv5A0l2R1lJp7b8mC alice@laptop"

// newHarness makes the harness; the VMs run under the fake QEMU unless real is set.
func newHarness(t *testing.T, real bool, image []byte, edit func(*Options)) *harness {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	h := &harness{t: t, ctx: ctx, enroll: &testEnroller{}, dataDir: filepath.Join(dir, "data"), regions: map[string]string{}}
	st, err := store.Open(ctx, sqlite.URL(filepath.Join(dir, "gild.db")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h.st = st
	if h.cp, err = controlplane.New(ctx, st, controlplane.Options{}); err != nil {
		t.Fatal(err)
	}
	var regions []*blob.Region
	for _, name := range []string{"local", "west"} {
		h.regions[name] = filepath.Join(dir, "regions", name)
		r, err := blob.Open(ctx, name, blob.FileURL(h.regions[name]))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		regions = append(regions, r)
	}
	if h.images, err = gallery.New(st, gallery.Options{Regions: regions, VerifyInterval: -1}); err != nil {
		t.Fatal(err)
	}
	h.images.SetWriter(controlplane.SystemWriter{Service: h.cp})

	// Short: the runtime directories' sockets must fit in 107 bytes.
	run, err := os.MkdirTemp("", "gvt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	h.opts = Options{Dir: h.dataDir, RuntimeDir: run, Enroll: h.enroll, ServerURL: func() string { return "http://10.0.2.2:8080" },
		StopGrace: 5 * time.Second, KVMTimeout: 3 * time.Second}
	if !real {
		t.Setenv("GILD_VM_FAKE", "1")
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		code, vars := fakeFirmware(t)
		h.opts.QEMU, h.opts.QemuImg, h.opts.Firmware, h.opts.Accel = exe, exe, &qemu.Firmware{Code: code, Vars: vars}, "tcg"
	}
	if edit != nil {
		edit(&h.opts)
	}
	h.vms = h.newService()
	h.cp.SetHooks(controlplane.Chain(h.images, h.vms))

	h.rg = resource.ResourceGroupID("payments", "prod")
	gal := resource.ResourceGroupID("platform", "images").Child(gallery.TypeGallery, "corp")
	h.def = gal.Child("images", "debian-12")
	h.put(resource.SubscriptionID("platform").String(), "", `{}`)
	h.put(resource.ResourceGroupID("platform", "images").String(), "local", "")
	h.put(resource.SubscriptionID("payments").String(), "", `{}`)
	h.put(h.rg.String(), "local", "")
	h.put(gal.String(), "local", "")
	h.put(h.def.String(), "local", `{"identifier":{"publisher":"contoso","offer":"debian","sku":"12"},"osType":"Linux","osState":"Generalized"}`)
	if image == nil {
		image = make([]byte, 1<<20)
		rand.Read(image)
	}
	sum := sha256.Sum256(image)
	h.digest = blob.Digest(hex.EncodeToString(sum[:]))
	if _, err := h.images.Upload(ctx, []string{"local", "west"}, h.digest, int64(len(image)), bytes.NewReader(image), nil); err != nil {
		t.Fatal(err)
	}
	h.version = h.def.Child("versions", "1.0.0")
	h.put(h.version.String(), "local", fmt.Sprintf(`{"publishingProfile":{"targetRegions":[{"name":"local"},{"name":"west"}]},
		"storageProfile":{"osDiskImage":{"sha256":%q,"sizeInBytes":%d,"format":"qcow2"}}}`, h.digest, len(image)))
	t.Cleanup(func() {
		// Never leave a VM running: kill whatever this test's data directory has.
		h.vms.Close()
		if err := h.newService().KillAll(context.Background()); err != nil {
			t.Errorf("kill the VMs: %v", err)
		}
	})
	return h
}

// newService is another Service on the same store and data directory, as a restarted
// server makes.
func (h *harness) newService() *Service {
	h.t.Helper()
	s, err := New(h.st, h.images, h.opts)
	if err != nil {
		h.t.Fatal(err)
	}
	s.SetWriter(controlplane.SystemWriter{Service: h.cp})
	return s
}

// restart replaces the service, as a server restart does: the old one is dropped (its VMs
// keep running), the new one recovers.
func (h *harness) restart() {
	h.t.Helper()
	h.vms.Close()
	h.vms = h.newService()
	h.cp.SetHooks(controlplane.Chain(h.images, h.vms))
	if err := h.vms.Recover(h.ctx); err != nil {
		h.t.Fatal(err)
	}
	h.vms.Wait()
}

func (h *harness) put(id, location, props string) (*resource.Resource, error) {
	h.t.Helper()
	pid, err := resource.Parse(id)
	if err != nil {
		h.t.Fatal(err)
	}
	r := &resource.Resource{ID: id, Name: pid.Name(), Type: pid.Type(), Location: location}
	if props != "" {
		r.Properties = json.RawMessage(props)
	}
	stored, _, err := h.cp.Put(h.ctx, controlplane.System, r, store.Precondition{})
	if err != nil && !strings.Contains(id, "virtualMachines") {
		h.t.Fatalf("put %s: %v", id, err)
	}
	return stored, err
}

// createVM creates a VM and waits for its provisioning to end.
func (h *harness) createVM(name, location, props string) resource.ID {
	h.t.Helper()
	id := h.rg.Child(TypeVM, name)
	if _, err := h.put(id.String(), location, props); err != nil {
		h.t.Fatalf("create %s: %v", name, err)
	}
	h.vms.Wait()
	return id
}

func (h *harness) props(id resource.ID) map[string]any {
	h.t.Helper()
	r, err := h.st.Get(h.ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	var p map[string]any
	json.Unmarshal(r.Properties, &p)
	return p
}

func (h *harness) state(id resource.ID) *State {
	h.t.Helper()
	st, err := h.vms.machine(id.String()).loadState()
	if err != nil || st == nil {
		h.t.Fatalf("state of %s: %v %v", id.Name(), st, err)
	}
	return st
}

func (h *harness) view(id resource.ID) *InstanceView {
	h.t.Helper()
	iv, err := h.vms.InstanceView(h.ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	return iv
}

func vmProps(extra string) string {
	return `{"hardwareProfile":{"vmSize":"standard_b2s"},
	  "osProfile":{"adminUsername":"alice","linuxConfiguration":{"ssh":{"publicKeys":[{"keyData":"` + sshKey + `"}]}}},
	  "storageProfile":{"imageReference":{"id":"` + extra + `"}}}`
}

func TestCreateRunsTheVMAndItSurvivesARestart(t *testing.T) {
	h := newHarness(t, false, nil, nil)
	id := h.createVM("api-1", "local", vmProps(h.def.String()))

	p := h.props(id)
	if p["provisioningState"] != ProvisioningSucceeded || p["provisioningError"] != nil {
		t.Fatalf("provisioning: %v %v", p["provisioningState"], p["provisioningError"])
	}
	vmID, _ := p["vmId"].(string)
	if len(vmID) != 36 {
		t.Errorf("vmId %q", vmID)
	}
	hw := p["hardwareProfile"].(map[string]any)
	if hw["vmSize"] != "Standard_B2s" {
		t.Errorf("vmSize %v: the size's own spelling is stored", hw["vmSize"])
	}

	m := h.vms.machine(id.String())
	st := h.state(id)
	if st.Desired != PowerRunning || st.Accel != "tcg" || st.CPUs != 2 || st.MemoryMiB != 4096 || st.SSHPort == 0 || st.VMID != vmID || st.InstanceID == "" {
		t.Errorf("state %+v", st)
	}
	// The image: cached once, read-only, with the version's bytes; the disk an overlay on it.
	img := filepath.Join(h.dataDir, "vm-images", string(h.digest)+".qcow2")
	if fi, err := os.Stat(img); err != nil || fi.Mode().Perm() != 0o444 || st.Image != img || st.ImageVersion != h.version.String() {
		t.Errorf("cached image %s (%v, %v), state says %s from %s", img, fi, err, st.Image, st.ImageVersion)
	}
	if b, _ := os.ReadFile(m.disk()); !strings.Contains(string(b), "overlay of "+img) {
		t.Errorf("disk %q is not an overlay on the cached image", b)
	}
	// The first-boot data: private, complete, with the enrollment token.
	fi, err := os.Stat(m.firstBoot())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("firstboot.json: %v %v", fi, err)
	}
	var fb agentproto.FirstBoot
	b, _ := os.ReadFile(m.firstBoot())
	if err := json.Unmarshal(b, &fb); err != nil {
		t.Fatal(err)
	}
	want := agentproto.FirstBoot{Version: agentproto.Version, InstanceID: st.InstanceID, MachineID: id.String(), ComputerName: "api-1",
		AdminUsername: "alice", SSHPublicKeys: []string{sshKey}, Server: "http://10.0.2.2:8080", EnrollmentToken: "gild-enroll-test-1"}
	if fmt.Sprint(fb) != fmt.Sprint(want) {
		t.Errorf("first boot\n%+v\nwant\n%+v", fb, want)
	}

	iv := h.view(id)
	if iv.PowerState != PowerRunning || iv.PID == 0 || iv.SSHAddress != "127.0.0.1:"+strconv.Itoa(st.SSHPort) || iv.Accel != "tcg" || iv.StartedAt == nil {
		t.Errorf("instance view %+v", iv)
	}
	if len(iv.Statuses) != 2 || iv.Statuses[0].Code != "ProvisioningState/succeeded" || iv.Statuses[1].Code != "PowerState/running" || iv.Statuses[1].DisplayStatus != "VM running" {
		t.Errorf("statuses %+v", iv.Statuses)
	}
	// QEMU forwards the SSH port, and the guest writes to its console.
	if c, err := net.Dial("tcp", iv.SSHAddress); err != nil {
		t.Errorf("SSH port: %v", err)
	} else {
		c.Close()
	}
	if log, _ := os.ReadFile(h.vms.ConsolePath(id)); !strings.Contains(string(log), "instance "+st.InstanceID) {
		t.Errorf("console log %q", log)
	}
	pid := iv.PID

	// A restarted server finds the VM running and leaves it so.
	h.restart()
	if iv := h.view(id); iv.PowerState != PowerRunning || iv.PID != pid {
		t.Errorf("after a restart: %+v, want pid %d still running", iv, pid)
	}

	// Stop: the guest powers off, and stays off across a restart.
	if err := h.vms.Stop(h.ctx, id); err != nil {
		t.Fatal(err)
	}
	if iv := h.view(id); iv.PowerState != PowerStopped || iv.PID != 0 || iv.Statuses[1].Code != "PowerState/stopped" {
		t.Errorf("after stop: %+v", iv)
	}
	if log, _ := os.ReadFile(h.vms.ConsolePath(id)); !strings.Contains(string(log), "reboot: Power down") {
		t.Errorf("the guest was not powered off cleanly: %q", log)
	}
	h.restart()
	if iv := h.view(id); iv.PowerState != PowerStopped {
		t.Errorf("a stopped VM was started by a restart: %+v", iv)
	}

	// Start: the same disk, the same instance, the same SSH port; no new enrollment.
	diskBefore, _ := os.Stat(m.disk())
	if err := h.vms.Start(h.ctx, id); err != nil {
		t.Fatal(err)
	}
	st2 := h.state(id)
	diskAfter, _ := os.Stat(m.disk())
	iv = h.view(id)
	if iv.PowerState != PowerRunning || iv.PID == pid || st2.InstanceID != st.InstanceID || st2.SSHPort != st.SSHPort || !os.SameFile(diskBefore, diskAfter) || h.enroll.count() != 1 {
		t.Errorf("after start: %+v, state %+v (was %+v), enrollments %d", iv, st2, st, h.enroll.count())
	}

	// Restart: a new QEMU.
	pid = iv.PID
	if err := h.vms.Restart(h.ctx, id); err != nil {
		t.Fatal(err)
	}
	if iv := h.view(id); iv.PowerState != PowerRunning || iv.PID == pid || iv.PID == 0 {
		t.Errorf("after restart: %+v (was pid %d)", iv, pid)
	}
	pid = h.view(id).PID

	// Delete: QEMU killed, the VM's files and sockets gone; the cached image stays.
	if _, err := h.cp.Delete(h.ctx, controlplane.System, id, store.Precondition{}); err != nil {
		t.Fatal(err)
	}
	h.vms.Wait()
	for _, p := range []string{m.dir, m.run} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after the delete: %v", p, err)
		}
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid) + "/cmdline"); err == nil {
		if b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); len(b) > 0 {
			t.Errorf("QEMU (pid %d) outlived its VM's delete", pid)
		}
	}
	if _, err := os.Stat(img); err != nil {
		t.Errorf("the cached image went with the VM: %v", err)
	}
}

func TestAFailedStartIsRecordedAndStartRetriesIt(t *testing.T) {
	h := newHarness(t, false, nil, nil)
	t.Setenv("GILD_VM_FAKE_MODE", "fail")
	id := h.createVM("api-1", "local", vmProps(h.def.String()))
	p := h.props(id)
	pe, _ := p["provisioningError"].(map[string]any)
	if p["provisioningState"] != ProvisioningFailed || pe["code"] != ErrStart || !strings.Contains(fmt.Sprint(pe["message"]), "Could not set up host forwarding rule") {
		t.Fatalf("provisioning %v, error %v: want Failed with QEMU's own message", p["provisioningState"], pe)
	}
	iv := h.view(id)
	if iv.PowerState != PowerStopped || iv.Statuses[0].Code != "ProvisioningState/failed/"+ErrStart || iv.Statuses[0].Level != "Error" {
		t.Errorf("instance view %+v", iv)
	}
	m := h.vms.machine(id.String())
	st := h.state(id)
	for _, f := range []string{m.disk(), m.firstBoot(), m.vars()} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}

	// The cause is gone: Start reuses what the failed attempt made.
	t.Setenv("GILD_VM_FAKE_MODE", "")
	if err := h.vms.Start(h.ctx, id); err != nil {
		t.Fatal(err)
	}
	p = h.props(id)
	if p["provisioningState"] != ProvisioningSucceeded || p["provisioningError"] != nil {
		t.Errorf("after Start: %v %v", p["provisioningState"], p["provisioningError"])
	}
	if st2 := h.state(id); st2.InstanceID != st.InstanceID || h.enroll.count() != 1 {
		t.Errorf("the retry made a new instance (%s, was %s) or enrolled again (%d)", st2.InstanceID, st.InstanceID, h.enroll.count())
	}
	if h.view(id).PowerState != PowerRunning {
		t.Error("not running after Start")
	}
}

func TestEnrollmentFailureFailsTheVM(t *testing.T) {
	h := newHarness(t, false, nil, nil)
	h.enroll.fail = errors.New("the fleet is down")
	id := h.createVM("api-1", "local", vmProps(h.def.String()))
	p := h.props(id)
	pe, _ := p["provisioningError"].(map[string]any)
	if p["provisioningState"] != ProvisioningFailed || pe["code"] != ErrEnrollment || !strings.Contains(fmt.Sprint(pe["message"]), "the fleet is down") {
		t.Errorf("provisioning %v %v", p["provisioningState"], pe)
	}
	if _, err := os.Stat(h.vms.machine(id.String()).firstBoot()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("first-boot data without a token: %v", err)
	}
}

func TestKVMFailureFallsBackToTCG(t *testing.T) {
	h := newHarness(t, false, nil, func(o *Options) {
		o.Accel = ""
		o.Host = func() qemu.HostFacts { return qemu.HostFacts{CPUInfo: "flags\t\t: fpu vmx sse"} }
	})
	t.Setenv("GILD_VM_FAKE_MODE", "kvm-pause")
	id := h.createVM("api-1", "local", vmProps(h.def.String()))
	if p := h.props(id); p["provisioningState"] != ProvisioningSucceeded {
		t.Fatalf("provisioning %v %v", p["provisioningState"], p["provisioningError"])
	}
	iv := h.view(id)
	if iv.Accel != "tcg" || !strings.Contains(iv.AccelReason, "KVM failed: the VM stopped in state internal-error") || iv.PowerState != PowerRunning {
		t.Errorf("instance view %+v", iv)
	}
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(iv.PID) + "/cmdline")
	if !bytes.Contains(cmdline, []byte("\x00-accel\x00tcg\x00")) {
		t.Errorf("QEMU runs with %q", bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
	}
	// It stays on TCG: KVM would fail again.
	if err := h.vms.Restart(h.ctx, id); err != nil {
		t.Fatal(err)
	}
	if iv := h.view(id); iv.Accel != "tcg" || iv.AccelReason != h.state(id).AccelReason {
		t.Errorf("after restart %+v", iv)
	}
}

func TestStopKillsAGuestThatIgnoresThePowerButton(t *testing.T) {
	h := newHarness(t, false, nil, func(o *Options) { o.StopGrace = time.Second })
	t.Setenv("GILD_VM_FAKE_MODE", "ignore-powerdown")
	id := h.createVM("api-1", "local", vmProps(h.def.String()))
	pid := h.view(id).PID
	start := time.Now()
	if err := h.vms.Stop(h.ctx, id); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if iv := h.view(id); iv.PowerState != PowerStopped || took < time.Second || took > 10*time.Second {
		t.Errorf("stopped in %s: %+v (pid %d)", took, iv, pid)
	}
	if log, _ := os.ReadFile(h.vms.ConsolePath(id)); strings.Contains(string(log), "Power down") {
		t.Error("the guest says it powered down; it should have been killed")
	}
}

func TestAStopIsFinishedWhenItsCallerGoesAway(t *testing.T) {
	h := newHarness(t, false, nil, func(o *Options) { o.StopGrace = time.Second })
	t.Setenv("GILD_VM_FAKE_MODE", "ignore-powerdown")
	id := h.createVM("api-1", "local", vmProps(h.def.String()))
	ctx, cancel := context.WithTimeout(h.ctx, 200*time.Millisecond)
	defer cancel()
	if err := h.vms.Stop(ctx, id); err != nil {
		t.Fatalf("a stop whose caller left: %v", err)
	}
	if iv := h.view(id); iv.PowerState != PowerStopped {
		t.Errorf("a VM recorded as stopped still runs: %+v", iv)
	}
}

func TestRecoverStartsWhatShouldRunAndRemovesWhatIsGone(t *testing.T) {
	h := newHarness(t, false, nil, nil)
	keep := h.createVM("keep", "local", vmProps(h.def.String()))
	gone := h.createVM("gone", "local", vmProps(h.def.String()))
	stopped := h.createVM("stopped", "local", vmProps(h.def.String()))
	if err := h.vms.Stop(h.ctx, stopped); err != nil {
		t.Fatal(err)
	}
	// Someone ran poweroff inside this one.
	selfoff := h.createVM("selfoff", "local", vmProps(h.def.String()))
	if err := qemu.QMPPowerdown(h.ctx, h.vms.machine(selfoff.String()).qmpSocket()); err != nil {
		t.Fatal(err)
	}
	for h.view(selfoff).PowerState != PowerStopped {
		time.Sleep(50 * time.Millisecond)
	}
	keepState := h.state(keep)
	gonePID := h.view(gone).PID
	goneDir := h.vms.machine(gone.String())

	// The host crashed: every QEMU is gone. And "gone" was deleted while this server was
	// down (straight from the store: no hook saw it).
	if err := h.vms.KillAll(h.ctx); err != nil {
		t.Fatal(err)
	}
	if iv := h.view(keep); iv.PowerState != PowerStopped {
		t.Fatalf("after KillAll: %+v", iv)
	}
	if err := h.st.Update(h.ctx, func(tx store.Tx) error { _, err := tx.Delete(h.ctx, gone, store.Precondition{}); return err }); err != nil {
		t.Fatal(err)
	}
	// A stray QEMU of "gone" that survived.
	if err := h.vms.rt.start(h.ctx, goneDir, h.mustState(goneDir)); err != nil {
		t.Fatal(err)
	}
	strayPID, alive := goneDir.pid()
	if !alive || strayPID == gonePID {
		t.Fatalf("stray QEMU %d %v", strayPID, alive)
	}

	h.restart()
	iv := h.view(keep)
	st := h.state(keep)
	if iv.PowerState != PowerRunning || st.InstanceID != keepState.InstanceID || h.enroll.count() != 4 {
		t.Errorf("keep after recovery: %+v, instance %s (was %s), enrollments %d", iv, st.InstanceID, keepState.InstanceID, h.enroll.count())
	}
	if iv := h.view(stopped); iv.PowerState != PowerStopped {
		t.Errorf("a stopped VM was started: %+v", iv)
	}
	if iv, st := h.view(selfoff), h.state(selfoff); iv.PowerState != PowerStopped || st.Desired != PowerStopped {
		t.Errorf("a VM whose guest powered itself off was started again: %+v, desired %s", iv, st.Desired)
	}
	if _, err := os.Stat(goneDir.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the deleted VM's files are still there: %v", err)
	}
	if b, _ := os.ReadFile("/proc/" + strconv.Itoa(strayPID) + "/cmdline"); len(b) > 0 {
		t.Errorf("the deleted VM's QEMU (pid %d) still runs", strayPID)
	}
}

func (h *harness) mustState(m *machine) *State {
	st, err := m.loadState()
	if err != nil || st == nil {
		h.t.Fatalf("state in %s: %v", m.dir, err)
	}
	return st
}

func TestARecreatedVMIsANewVM(t *testing.T) {
	h := newHarness(t, false, nil, nil)
	id := h.createVM("api-1", "local", vmProps(h.def.String()))
	first := h.state(id)
	// Deleted and created again at once, as a refresh does: the delete's and the create's
	// background work race.
	if _, err := h.cp.Delete(h.ctx, controlplane.System, id, store.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.put(id.String(), "local", vmProps(h.def.String())); err != nil {
		t.Fatal(err)
	}
	h.vms.Wait()
	p := h.props(id)
	second := h.state(id)
	if p["provisioningState"] != ProvisioningSucceeded || second.VMID == first.VMID || second.VMID != p["vmId"] || second.InstanceID == first.InstanceID {
		t.Errorf("recreated: %v, state %+v (first %+v)", p["provisioningState"], second, first)
	}
	if h.view(id).PowerState != PowerRunning {
		t.Error("the recreated VM does not run")
	}
}

func TestTheImageComesFromTheNearestRegionAndIsVerified(t *testing.T) {
	h := newHarness(t, false, nil, nil)
	// Corrupt the home region's replica: a VM in "west" must not read it.
	replica := filepath.Join(h.regions["local"], filepath.FromSlash(blob.ArtifactKey(h.digest, 0)))
	if err := os.WriteFile(replica, bytes.Repeat([]byte{'x'}, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	west := h.createVM("west-1", "West", vmProps(h.def.String()))
	if p := h.props(west); p["provisioningState"] != ProvisioningSucceeded {
		t.Fatalf("a VM in west: %v %v", p["provisioningState"], p["provisioningError"])
	}
	// With the cache emptied, a VM in the home region reads the corrupt replica: refused.
	h.vms.KillAll(h.ctx)
	os.Chmod(filepath.Join(h.dataDir, "vm-images"), 0o700)
	if err := os.RemoveAll(filepath.Join(h.dataDir, "vm-images")); err != nil {
		t.Fatal(err)
	}
	local := h.createVM("local-1", "local", vmProps(h.version.String()))
	p := h.props(local)
	pe, _ := p["provisioningError"].(map[string]any)
	if p["provisioningState"] != ProvisioningFailed || pe["code"] != ErrImageUnavailable || !strings.Contains(fmt.Sprint(pe["message"]), "want 1048576 bytes with "+string(h.digest)) {
		t.Errorf("a VM from a corrupt replica: %v %v", p["provisioningState"], pe)
	}
	entries, _ := os.ReadDir(filepath.Join(h.dataDir, "vm-images"))
	for _, e := range entries {
		t.Errorf("the image cache holds %s after a failed fetch", e.Name())
	}
}

func TestARunningVMIsNeverConfusedWithAnotherProcess(t *testing.T) {
	h := newHarness(t, false, nil, nil)
	id := h.createVM("api-1", "local", vmProps(h.def.String()))
	m := h.vms.machine(id.String())
	if err := h.vms.KillAll(h.ctx); err != nil {
		t.Fatal(err)
	}
	// The PID in a stale pidfile now belongs to another process: this test.
	os.WriteFile(m.pidFile(), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
	if _, alive := m.pid(); alive {
		t.Fatal("a process whose command line does not name the VM's directory counts as its QEMU")
	}
	if err := h.vms.Stop(h.ctx, id); err != nil {
		t.Fatal(err)
	}
	if iv := h.view(id); iv.PowerState != PowerStopped || iv.PID != 0 {
		t.Errorf("instance view %+v", iv)
	}
}

func TestNewNamesWhatIsMissing(t *testing.T) {
	_, err := New(nil, nil, Options{Accel: "hvf"})
	for _, want := range []string{"Dir: a data directory is required", "images: a gallery is required", "Enroll: an Enroller is required", "ServerURL: required", `Accel: "hvf"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	h := newHarness(t, false, nil, nil)
	opts := h.opts
	opts.RuntimeDir = "/tmp/" + strings.Repeat("r", 80)
	if _, err := New(h.st, h.images, opts); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("a runtime directory too long for sockets: %v", err)
	}
}

func TestMarketplaceVMsAreRecordsOnly(t *testing.T) {
	h := newHarness(t, false, nil, nil)
	id := h.createVM("legacy-1", "local", `{"hardwareProfile":{"vmSize":"Standard_E64s_v5"},
		"storageProfile":{"imageReference":{"publisher":"RedHat","offer":"RHEL","sku":"8","version":"latest"}}}`)
	p := h.props(id)
	if p["vmId"] != nil || p["provisioningState"] != nil {
		t.Errorf("a record got %v, %v", p["vmId"], p["provisioningState"])
	}
	if _, err := os.Stat(h.vms.machine(id.String()).dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a record got a VM directory: %v", err)
	}
	if err := h.vms.Start(h.ctx, id); resource.CodeOf(err) != CodeOperationNotAllowed {
		t.Errorf("starting a record: %v", err)
	}
	// An update of the record stays a record, whatever it says.
	if _, err := h.put(id.String(), "local", `{"storageProfile":{"imageReference":{"id":"`+h.def.String()+`"}}}`); err != nil {
		t.Fatal(err)
	}
	h.vms.Wait()
	if p := h.props(id); p["vmId"] != nil {
		t.Errorf("an updated record is run: %v", p)
	}
	// No image at all is no record: it is refused.
	if _, err := h.put(h.rg.Child(TypeVM, "x").String(), "local", `{"storageProfile":{"imageReference":{"sku":"8"}}}`); err == nil || !strings.Contains(err.Error(), "gallery only") {
		t.Errorf("a VM without an image: %v", err)
	}
}
