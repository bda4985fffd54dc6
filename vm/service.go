package vm

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gildhq/gild/agentproto"
	"github.com/gildhq/gild/atomicfile"
	"github.com/gildhq/gild/builder"
	"github.com/gildhq/gild/builder/qemu"
	"github.com/gildhq/gild/gallery"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// TypeVM is the resource type the service runs.
const TypeVM = gallery.TypeVM

// Enroller makes the one-time token a VM's agent enrolls with (package fleet).
type Enroller interface {
	EnrollmentToken(ctx context.Context, machineID resource.ID) (string, error)
}

// Writer changes resources on the service's own account, through the control plane, so
// that the audit log and the policy engine see it (controlplane.SystemWriter). Update
// reads the resource, lets mutate change it, and writes it back if mutate reports a
// change, retrying on a concurrent write.
type Writer interface {
	Update(ctx context.Context, id resource.ID, mutate func(r *resource.Resource) (bool, error)) error
	Put(ctx context.Context, r *resource.Resource) error
}

// Options configure a Service.
type Options struct {
	// Dir is the data directory: VMs go to Dir/vms, cached images to Dir/vm-images.
	Dir string
	// RuntimeDir holds each running VM's sockets, in a short directory: a unix socket's
	// path takes at most 107 bytes. When empty: $XDG_RUNTIME_DIR, else /run/gild for root,
	// else os.TempDir() (which a tmp cleaner may age; /run is not aged).
	RuntimeDir string
	Logger     *slog.Logger
	// Accel forces "kvm" or "tcg"; "" chooses from the host, falling back to TCG when KVM
	// fails.
	Accel string
	// ServerURL is the gild server's URL as a guest reaches it (GuestURL), for the agent's
	// first-boot data; it is asked when a VM is provisioned, so it may be set up after New.
	ServerURL func() string
	// Enroll makes the agents' one-time enrollment tokens.
	Enroll Enroller
	// QEMU and QemuImg are the programs; qemu-system-x86_64 and qemu-img in PATH when empty.
	QEMU, QemuImg string
	// Firmware is OVMF; qemu.FindFirmware(qemu.FirmwareCandidates) when nil.
	Firmware *qemu.Firmware
	// Host reports the host's facts for the accelerator choice; qemu.ProbeHost when nil.
	Host func() qemu.HostFacts
	// StopGrace is how long a guest has to power off before QEMU is killed; 60 s when zero.
	StopGrace time.Duration
	// KVMTimeout is how long a guest has under KVM to write to its console before the VM
	// falls back to TCG; 60 s when zero.
	KVMTimeout time.Duration
	Now        func() time.Time
}

// Service runs the VMs of a store, as a control-plane hook.
type Service struct {
	store    store.Store
	images   *gallery.Service
	writer   Writer
	opts     Options
	log      *slog.Logger
	now      func() time.Time
	rt       *runtime
	vmDir    string
	imageDir string
	runRoot  string

	ctx    context.Context // ends with Close: the background work's
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu          sync.Mutex
	locks       map[string]chan struct{}      // per VM key, per image: one holder at a time
	transitions map[string]string             // VM key → PowerStarting or PowerStopping
	inflight    map[string]context.CancelFunc // VM key → cancels its provisioning
}

// New returns the VM service over st, taking images from the gallery images.
func New(st store.Store, images *gallery.Service, opts Options) (*Service, error) {
	var errs []error
	if opts.Dir == "" {
		errs = append(errs, errors.New("Dir: a data directory is required"))
	}
	if images == nil {
		errs = append(errs, errors.New("images: a gallery is required"))
	}
	if opts.Enroll == nil {
		errs = append(errs, errors.New("Enroll: an Enroller is required (a VM's agent enrolls with a one-time token)"))
	}
	if opts.ServerURL == nil {
		errs = append(errs, errors.New("ServerURL: required (the URL the VMs' agents reach the server at)"))
	}
	if opts.Accel != "" && opts.Accel != "kvm" && opts.Accel != "tcg" {
		errs = append(errs, fmt.Errorf("Accel: %q is neither kvm nor tcg", opts.Accel))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	s := &Service{store: st, images: images, opts: opts, log: opts.Logger, now: opts.Now,
		vmDir: filepath.Join(dir, "vms"), imageDir: filepath.Join(dir, "vm-images"), runRoot: opts.RuntimeDir,
		locks: map[string]chan struct{}{}, transitions: map[string]string{}, inflight: map[string]context.CancelFunc{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.runRoot == "" {
		s.runRoot = defaultRuntimeDir()
	}
	if n := len(s.machineByKey(strings.Repeat("0", 16)).consoleSock()); n > 107 {
		return nil, fmt.Errorf("vm: RuntimeDir %s is too long: a VM's socket paths would take %d bytes, and unix sockets take at most 107", s.runRoot, n)
	}
	if s.opts.StopGrace <= 0 {
		s.opts.StopGrace = time.Minute
	}
	if s.opts.KVMTimeout <= 0 {
		s.opts.KVMTimeout = time.Minute
	}
	for _, d := range []string{s.vmDir, s.imageDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("vm: %w", err)
		}
	}
	var fwOnce sync.Once
	var fw qemu.Firmware
	var fwErr error
	host := opts.Host
	if host == nil {
		host = qemu.ProbeHost
	}
	s.rt = &runtime{
		qemu: opts.QEMU, qemuImg: opts.QemuImg, accel: opts.Accel, host: host, kvmTimeout: s.opts.KVMTimeout, now: s.now,
		firmware: func() (qemu.Firmware, error) {
			fwOnce.Do(func() {
				if opts.Firmware != nil {
					fw = *opts.Firmware
					return
				}
				fw, fwErr = qemu.FindFirmware(qemu.FirmwareCandidates)
			})
			return fw, fwErr
		},
		runner: func(vmID string) *builder.Runner {
			return &builder.Runner{Sink: func(l builder.Line) { s.log.Info("vm: "+l.Source, "vm", vmID, "text", l.Text) }}
		},
		logf: func(vmID, format string, args ...any) { s.log.Info("vm: "+fmt.Sprintf(format, args...), "vm", vmID) },
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

func defaultRuntimeDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		if err := os.MkdirAll("/run/gild", 0o700); err == nil {
			return "/run/gild"
		}
	}
	return os.TempDir()
}

// SetWriter sets how the service records provisioning outcomes.
func (s *Service) SetWriter(w Writer) { s.writer = w }

// Close stops the service's background work (provisioning half done is finished by the
// next Recover) and waits for it. The VMs keep running: they outlive the server.
func (s *Service) Close() {
	s.cancel()
	s.wg.Wait()
}

// Wait waits until the background work started so far (provisioning, Recover's starts)
// has ended.
func (s *Service) Wait() { s.wg.Wait() }

// GuestURL is the URL at which a guest on user-mode networking reaches a server listening
// on addr (host:port): QEMU maps the host's loopback to 10.0.2.2, and a server listening on
// every address is reached there too. A server on one other address is reached at it.
func GuestURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || host == "localhost" || ip != nil && (ip.IsLoopback() || ip.IsUnspecified()) {
		host = "10.0.2.2"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func (s *Service) machine(id string) *machine { return s.machineByKey(Key(id)) }

func (s *Service) machineByKey(key string) *machine {
	// The runtime directory's name also hashes the data directory: two servers on one
	// machine, as tests run them, may have VMs with the same ID.
	h := sha256.Sum256([]byte(s.vmDir + "\x00" + key))
	return &machine{key: key, dir: filepath.Join(s.vmDir, key), run: filepath.Join(s.runRoot, "gild-vm-"+hex.EncodeToString(h[:8]))}
}

// isKey reports whether a directory name under vms/ is a VM key.
func isKey(name string) bool {
	if len(name) != 16 {
		return false
	}
	_, err := hex.DecodeString(name)
	return err == nil && strings.ToLower(name) == name
}

// lockKey takes the lock named key (a VM's or an image's), waiting at most until ctx ends.
func (s *Service) lockKey(ctx context.Context, key string) (func(), error) {
	s.mu.Lock()
	l := s.locks[key]
	if l == nil {
		l = make(chan struct{}, 1)
		s.locks[key] = l
	}
	s.mu.Unlock()
	select {
	case l <- struct{}{}:
		return func() { <-l }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *Service) setTransition(key, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if state == "" {
		delete(s.transitions, key)
	} else {
		s.transitions[key] = state
	}
}

// spawn runs f in the background until Close.
func (s *Service) spawn(f func(ctx context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f(s.ctx)
	}()
}

type internalKey struct{}

// withInternal marks the service's own writes, which may set what clients cannot
// (provisioningState, provisioningError).
func withInternal(ctx context.Context) context.Context {
	return context.WithValue(ctx, internalKey{}, true)
}
func internal(ctx context.Context) bool { v, _ := ctx.Value(internalKey{}).(bool); return v }

// readOnly are the properties only the service sets; a client's values are ignored.
var readOnly = []string{"vmId", "provisioningState", "provisioningError", "timeCreated"}

func decodeProps(raw json.RawMessage) (map[string]any, error) {
	props := map[string]any{}
	if len(raw) == 0 || string(raw) == "null" {
		return props, nil
	}
	if err := json.Unmarshal(raw, &props); err != nil || props == nil {
		return nil, resource.Errorf(resource.CodeInvalidRequestContent, "properties", "a VM's properties must be a JSON object")
	}
	return props, nil
}

// BeforeWrite checks and completes a VM's properties. It starts nothing: a later hook may
// still refuse the write; Committed starts what was committed.
func (s *Service) BeforeWrite(ctx context.Context, _ store.Tx, _ *resource.Hierarchy, old, next *resource.Resource) (*resource.Resource, error) {
	if !strings.EqualFold(next.Type, TypeVM) || internal(ctx) {
		return next, nil
	}
	props, err := decodeProps(next.Properties)
	if err != nil {
		return nil, err
	}
	if ir := imageRef(props); old == nil && ir != nil && ir["id"] == nil && ir["publisher"] != nil {
		// A marketplace image reference (publisher, offer, sku): a record of a VM that runs
		// elsewhere, kept for its policies; gild runs only VMs from its gallery's images.
		return next, nil
	}
	var was map[string]any
	if old != nil {
		if was, err = decodeProps(old.Properties); err != nil {
			return nil, fmt.Errorf("read VM %s: %w", old.ID, err)
		}
		if v, _ := was["vmId"].(string); v == "" {
			// Stored before gild ran VMs: a record, which this service neither checks nor runs.
			return next, nil
		}
		for _, k := range readOnly {
			if v, ok := was[k]; ok {
				props[k] = v
			} else {
				delete(props, k)
			}
		}
		// A client that gives the image again without the version it resolved to keeps it.
		if ir := imageRef(props); ir != nil && ir["exactVersion"] == nil {
			if wir := imageRef(was); wir != nil && strings.EqualFold(fmt.Sprint(ir["id"]), fmt.Sprint(wir["id"])) {
				ir["exactVersion"] = wir["exactVersion"]
			}
		}
	}
	sp, errs := checkProperties(next.Name, props)
	if old != nil && len(errs) == 0 {
		wsp, _ := checkProperties(old.Name, was)
		errs = checkUnchanged(wsp, sp)
	}
	if err := resource.Join(resource.CodeInvalidParameter, "the VM is invalid", errs); err != nil {
		return nil, err
	}
	if old == nil {
		for _, k := range readOnly {
			delete(props, k)
		}
		props["vmId"] = newUUID()
		props["provisioningState"] = ProvisioningCreating
		props["timeCreated"] = s.now().UTC().Format(time.RFC3339Nano)
	}
	raw, err := json.Marshal(props)
	if err != nil {
		return nil, err
	}
	next.Properties = raw
	return next, nil
}

func imageRef(props map[string]any) map[string]any {
	sp, _ := props["storageProfile"].(map[string]any)
	ir, _ := sp["imageReference"].(map[string]any)
	return ir
}

// AfterWrite has nothing to add inside the transaction.
func (s *Service) AfterWrite(context.Context, store.Tx, *resource.Hierarchy, *resource.Resource) error {
	return nil
}

// BeforeDelete lets every VM go: deleting one kills it.
func (s *Service) BeforeDelete(context.Context, store.Tx, *resource.Hierarchy, *resource.Resource) error {
	return nil
}

// AfterDelete has nothing to add inside the transaction: Committed removes a deleted VM's
// QEMU and files once the delete has committed.
func (s *Service) AfterDelete(context.Context, store.Tx, *resource.Hierarchy, *resource.Resource) error {
	return nil
}

// Committed brings the VMs a write changed in line with the store, in the background:
// a new VM is provisioned and started, a deleted one killed and removed.
func (s *Service) Committed(ctx context.Context, ids []resource.ID) {
	for _, id := range ids {
		if !strings.EqualFold(id.Type(), TypeVM) {
			continue
		}
		if _, err := s.store.Get(ctx, id); store.IsNotFound(err) {
			// Deleted: provisioning it is pointless now.
			s.mu.Lock()
			if cancel := s.inflight[Key(id.String())]; cancel != nil {
				cancel()
			}
			s.mu.Unlock()
			// Removed before the delete answers, so that a deleted VM is gone when its
			// deleter hears so, even if the server stops right after.
			s.reconcile(context.WithoutCancel(ctx), id)
			continue
		}
		s.spawn(func(ctx context.Context) { s.reconcile(ctx, id) })
	}
}

// reconcile does what the stored VM asks of this server: nothing, provisioning, or
// removal.
func (s *Service) reconcile(ctx context.Context, id resource.ID) {
	m := s.machine(id.String())
	unlock, err := s.lockKey(ctx, m.key)
	if err != nil {
		return
	}
	defer unlock()
	r, err := s.store.Get(ctx, id)
	if store.IsNotFound(err) {
		if m.exists() || fileExists(m.run) {
			if err := s.rt.destroy(m); err != nil {
				s.log.Error("vm: remove a deleted VM", "vm", id.String(), "err", err)
			} else {
				s.log.Info("vm: removed a deleted VM", "vm", id.String())
			}
		}
		return
	}
	if err != nil {
		s.log.Error("vm: read", "vm", id.String(), "err", err)
		return
	}
	sp, err := s.readSpec(r)
	if err != nil || sp.VMID == "" {
		return
	}
	if err := s.dropOtherIncarnation(m, sp.VMID); err != nil {
		s.log.Error("vm: remove the files of an earlier VM with the same ID", "vm", id.String(), "err", err)
		return
	}
	if sp.ProvisioningState == ProvisioningCreating {
		s.provision(ctx, id, r, sp)
	}
}

// dropOtherIncarnation removes the files of an earlier VM with this ID, deleted and created
// again (a refresh does that) before this server removed them.
func (s *Service) dropOtherIncarnation(m *machine, vmID string) error {
	st, err := m.loadState()
	if err != nil || st == nil || st.VMID == vmID {
		return err
	}
	s.log.Info("vm: removing the files of the VM's earlier incarnation", "vm", st.ID, "vmId", st.VMID)
	return s.rt.destroy(m)
}

func (s *Service) readSpec(r *resource.Resource) (spec, error) {
	props, err := decodeProps(r.Properties)
	if err != nil {
		return spec{}, err
	}
	sp, errs := checkProperties(r.Name, props)
	if len(errs) > 0 && sp.VMID != "" {
		return sp, resource.Join(resource.CodeInvalidParameter, "the stored VM is invalid", errs)
	}
	return sp, nil
}

// provision brings a new VM up and records the outcome on the resource. The caller holds
// the VM's lock.
func (s *Service) provision(ctx context.Context, id resource.ID, r *resource.Resource, sp spec) {
	key := Key(id.String())
	pctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	s.inflight[key] = cancel
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.inflight, key)
		s.mu.Unlock()
		cancel()
	}()
	start := s.now()
	err := s.bringUp(pctx, id, r, sp)
	if ctx.Err() != nil {
		return // shutting down: Recover finishes it
	}
	if pctx.Err() != nil {
		return // deleted meanwhile: the delete's reconcile removes what was made
	}
	s.record(ctx, id, sp.VMID, err)
	if err == nil {
		s.log.Info("vm: provisioned", "vm", id.String(), "took", s.now().Sub(start).Round(time.Millisecond))
	}
}

// stepError is a failure with the provisioningError code that names its step.
type stepError struct {
	code string
	err  error
}

func (e *stepError) Error() string { return e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

func step(code string, err error) error {
	if err == nil {
		return nil
	}
	return &stepError{code, err}
}

// record writes the outcome of a start onto the VM: Succeeded, or Failed and why.
func (s *Service) record(ctx context.Context, id resource.ID, vmID string, failure error) {
	if s.writer == nil {
		s.log.Error("vm: no writer to record the VM's provisioning state", "vm", id.String(), "err", failure)
		return
	}
	state, perr := ProvisioningSucceeded, (*ProvisioningError)(nil)
	if failure != nil {
		code := ErrInternal
		var se *stepError
		if errors.As(failure, &se) {
			code = se.code
		}
		state, perr = ProvisioningFailed, &ProvisioningError{Code: code, Message: failure.Error()}
		s.log.Error("vm: start failed", "vm", id.String(), "code", code, "err", failure)
	}
	err := s.writer.Update(withInternal(ctx), id, func(r *resource.Resource) (bool, error) {
		props, err := decodeProps(r.Properties)
		if err != nil {
			return false, err
		}
		if props["vmId"] != vmID {
			return false, nil // another VM by now
		}
		was, _ := json.Marshal([]any{props["provisioningState"], props["provisioningError"]})
		props["provisioningState"] = state
		if perr != nil {
			props["provisioningError"] = perr
		} else {
			delete(props, "provisioningError")
		}
		is, _ := json.Marshal([]any{props["provisioningState"], props["provisioningError"]})
		if string(was) == string(is) {
			return false, nil
		}
		raw, err := json.Marshal(props)
		r.Properties = raw
		return true, err
	})
	if err != nil && !store.IsNotFound(err) && resource.CodeOf(err) != resource.CodeNotFound {
		s.log.Error("vm: record the provisioning state", "vm", id.String(), "state", state, "err", err)
	}
}

// bringUp makes and starts the VM, each step skipped when an earlier attempt did it: the
// image cached, the state and first-boot data written, the disk made, QEMU started.
func (s *Service) bringUp(ctx context.Context, id resource.ID, r *resource.Resource, sp spec) error {
	m := s.machine(id.String())
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return step(ErrInternal, fmt.Errorf("create the VM's directory: %w", err))
	}
	st, err := m.loadState()
	if err != nil {
		return step(ErrInternal, err)
	}
	if st == nil {
		st = &State{ID: id.String(), VMID: sp.VMID, InstanceID: newUUID()}
	}
	st.Name, st.Size, st.CPUs, st.MemoryMiB = r.Name, sp.Size.Name, sp.Size.CPUs, sp.Size.MemoryMiB
	st.Desired = PowerRunning
	s.setTransition(m.key, PowerStarting)
	defer s.setTransition(m.key, "")
	if st.Image == "" || !fileExists(st.Image) {
		v, err := sp.imageVersion()
		if err != nil {
			return step(ErrImageUnavailable, err)
		}
		img, err := s.cacheImage(ctx, v, r.Location)
		if err != nil {
			return step(ErrImageUnavailable, err)
		}
		if st.Image != "" && st.Image != img.Path && fileExists(m.disk()) {
			return step(ErrImageUnavailable, fmt.Errorf("the VM's disk is an overlay on %s, which is gone", st.Image))
		}
		st.Image, st.ImageFormat, st.ImageVersion = img.Path, img.Format, img.Version
	}
	if err := m.saveState(st); err != nil {
		return step(ErrInternal, err)
	}
	if !fileExists(m.firstBoot()) {
		if err := s.writeFirstBoot(ctx, m, id, st, sp); err != nil {
			return err
		}
	}
	return step(ErrStart, s.rt.start(ctx, m, st))
}

// writeFirstBoot writes what the guest's agent reads at its first boot, with a new
// one-time enrollment token.
func (s *Service) writeFirstBoot(ctx context.Context, m *machine, id resource.ID, st *State, sp spec) error {
	url := s.opts.ServerURL()
	if url == "" {
		return step(ErrEnrollment, errors.New("the server's URL for guests is not known yet"))
	}
	token, err := s.opts.Enroll.EnrollmentToken(ctx, id)
	if err != nil {
		return step(ErrEnrollment, fmt.Errorf("enrollment token: %w", err))
	}
	fb := agentproto.FirstBoot{
		Version: agentproto.Version, InstanceID: st.InstanceID, MachineID: id.String(), ComputerName: sp.ComputerName,
		AdminUsername: sp.AdminUsername, SSHPublicKeys: sp.SSHKeys, Server: url, EnrollmentToken: token,
	}
	if err := fb.Validate(); err != nil {
		return step(ErrInternal, fmt.Errorf("first-boot data: %w", err))
	}
	b, err := json.Marshal(fb)
	if err != nil {
		return step(ErrInternal, err)
	}
	// 0600: it holds the enrollment token.
	if err := atomicfile.Write(m.firstBoot(), b, 0o600); err != nil {
		return step(ErrInternal, fmt.Errorf("first-boot data: %w", err))
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// newUUID is a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// vmFor reads the VM id for an action, which must be one this service runs.
func (s *Service) vmFor(ctx context.Context, id resource.ID) (*resource.Resource, spec, error) {
	if !strings.EqualFold(id.Type(), TypeVM) {
		return nil, spec{}, resource.Errorf(resource.CodeInvalidResourceType, id.String(), "%s is a %s, not a virtual machine", id, id.Type())
	}
	r, err := s.store.Get(ctx, id)
	if store.IsNotFound(err) {
		return nil, spec{}, resource.Errorf(resource.CodeNotFound, id.String(), "the virtual machine %q was not found", id)
	}
	if err != nil {
		return nil, spec{}, err
	}
	sp, err := s.readSpec(r)
	if err != nil {
		return nil, spec{}, err
	}
	if sp.VMID == "" {
		return nil, spec{}, resource.Errorf(CodeOperationNotAllowed, id.String(), "%s was recorded before gild ran VMs and has no QEMU VM; create it again to run it", id.Name())
	}
	return r, sp, nil
}

// powerOp runs a power operation on VM id under its lock. Begun, an operation is finished
// even if the caller goes away: a start cut short would be recorded as a failure of the
// VM, a stop cut short (StopGrace bounds it) would leave running a VM recorded as stopped.
func (s *Service) powerOp(ctx context.Context, id resource.ID, op func(ctx context.Context, r *resource.Resource, sp spec, m *machine) error) error {
	r, sp, err := s.vmFor(ctx, id)
	if err != nil {
		return err
	}
	m := s.machine(id.String())
	unlock, err := s.lockKey(ctx, m.key)
	if err != nil {
		return err
	}
	defer unlock()
	return op(context.WithoutCancel(ctx), r, sp, m)
}

// startLocked brings a VM up and records the outcome on its provisioningState; verb names
// the operation in the error.
func (s *Service) startLocked(ctx context.Context, verb string, id resource.ID, r *resource.Resource, sp spec, m *machine) error {
	if err := s.dropOtherIncarnation(m, sp.VMID); err != nil {
		return err
	}
	err := s.bringUp(ctx, id, r, sp)
	s.record(ctx, id, sp.VMID, err)
	if err != nil {
		return fmt.Errorf("%s %s: %w", verb, id.Name(), err)
	}
	return nil
}

// Start starts a stopped VM, or provisions again one whose provisioning failed, reusing
// whatever it has (its disk, its instance ID: the guest is not provisioned again). The
// outcome is recorded on the VM's provisioningState.
func (s *Service) Start(ctx context.Context, id resource.ID) error {
	return s.powerOp(ctx, id, func(ctx context.Context, r *resource.Resource, sp spec, m *machine) error {
		return s.startLocked(ctx, "start", id, r, sp, m)
	})
}

// Stop powers a VM off: the guest gets StopGrace to shut down before QEMU is killed. The
// VM stays stopped, also across a server restart, until Start.
func (s *Service) Stop(ctx context.Context, id resource.ID) error {
	return s.powerOp(ctx, id, func(ctx context.Context, _ *resource.Resource, _ spec, m *machine) error {
		return s.stopLocked(ctx, id, m)
	})
}

func (s *Service) stopLocked(ctx context.Context, id resource.ID, m *machine) error {
	st, err := m.loadState()
	if err != nil {
		return err
	}
	if st == nil {
		return resource.Errorf(CodeOperationNotAllowed, id.String(), "%s has not been started on this server", id.Name())
	}
	// Recorded first: a server that dies while the guest shuts down must not start it again.
	st.Desired = PowerStopped
	if err := m.saveState(st); err != nil {
		return err
	}
	s.setTransition(m.key, PowerStopping)
	defer s.setTransition(m.key, "")
	if err := s.rt.stop(ctx, m, id.String(), s.opts.StopGrace); err != nil {
		return fmt.Errorf("stop %s: %w", id.Name(), err)
	}
	return nil
}

// Restart powers a VM off (as Stop) and starts it again (as Start).
func (s *Service) Restart(ctx context.Context, id resource.ID) error {
	return s.powerOp(ctx, id, func(ctx context.Context, r *resource.Resource, sp spec, m *machine) error {
		if st, _ := m.loadState(); st != nil {
			if err := s.stopLocked(ctx, id, m); err != nil {
				return err
			}
		}
		return s.startLocked(ctx, "restart", id, r, sp, m)
	})
}

// InstanceStatus is one status of an instance view, in Azure's shape.
type InstanceStatus struct {
	Code          string     `json:"code"`
	Level         string     `json:"level"`
	DisplayStatus string     `json:"displayStatus"`
	Message       string     `json:"message,omitempty"`
	Time          *time.Time `json:"time,omitempty"`
}

// InstanceView is how a VM runs on this server now.
type InstanceView struct {
	PowerState string `json:"powerState"` // running, stopped, starting or stopping
	// Statuses are Azure's: ProvisioningState/..., then PowerState/...
	Statuses    []InstanceStatus `json:"statuses"`
	Accel       string           `json:"accel,omitempty"`
	AccelReason string           `json:"accelReason,omitempty"`
	PID         int              `json:"pid,omitempty"`
	// SSHAddress is where the guest's port 22 is forwarded, on the server's loopback.
	SSHAddress    string     `json:"sshAddress,omitempty"`
	ConsoleLog    string     `json:"consoleLog,omitempty"`
	ConsoleSocket string     `json:"consoleSocket,omitempty"`
	StartedAt     *time.Time `json:"startedAt,omitempty"`
	ImagePath     string     `json:"imagePath,omitempty"`
	ImageVersion  string     `json:"imageVersion,omitempty"`
	InstanceID    string     `json:"instanceId,omitempty"`
	VMSize        string     `json:"vmSize,omitempty"`
}

// InstanceView reports how VM id runs. It does not wait for a start or stop under way.
func (s *Service) InstanceView(ctx context.Context, id resource.ID) (*InstanceView, error) {
	r, sp, err := s.vmFor(ctx, id)
	if err != nil {
		return nil, err
	}
	m := s.machine(id.String())
	st, err := m.loadState()
	if err != nil {
		return nil, err
	}
	iv := &InstanceView{PowerState: PowerStopped, VMSize: sp.Size.Name}
	if st != nil && st.VMID == sp.VMID {
		if pid, alive := m.pid(); alive {
			iv.PowerState, iv.PID = PowerRunning, pid
			iv.ConsoleSocket = m.consoleSock()
			if !st.StartedAt.IsZero() {
				t := st.StartedAt
				iv.StartedAt = &t
			}
		}
		iv.Accel, iv.AccelReason = st.Accel, st.AccelReason
		if st.SSHPort != 0 {
			iv.SSHAddress = "127.0.0.1:" + strconv.Itoa(st.SSHPort)
		}
		iv.ImagePath, iv.ImageVersion, iv.InstanceID = st.Image, st.ImageVersion, st.InstanceID
		if fileExists(m.consoleLog()) {
			iv.ConsoleLog = m.consoleLog()
		}
	}
	s.mu.Lock()
	if t := s.transitions[m.key]; t != "" {
		iv.PowerState = t
	}
	s.mu.Unlock()

	prov := InstanceStatus{Code: "ProvisioningState/" + strings.ToLower(sp.ProvisioningState), Level: "Info",
		DisplayStatus: "Provisioning " + strings.ToLower(sp.ProvisioningState)}
	switch sp.ProvisioningState {
	case ProvisioningSucceeded:
		if r.SystemData != nil {
			t := r.SystemData.LastModifiedAt
			prov.Time = &t
		}
	case ProvisioningFailed:
		props, _ := decodeProps(r.Properties)
		var pe ProvisioningError
		if raw, err := json.Marshal(props["provisioningError"]); err == nil {
			json.Unmarshal(raw, &pe)
		}
		prov.Code += "/" + or(pe.Code, ErrInternal)
		prov.Level, prov.Message = "Error", pe.Message
	case ProvisioningCreating:
		prov.DisplayStatus = "Creating"
	}
	display := map[string]string{PowerRunning: "VM running", PowerStopped: "VM stopped", PowerStarting: "VM starting", PowerStopping: "VM stopping"}
	iv.Statuses = []InstanceStatus{prov, {Code: "PowerState/" + iv.PowerState, Level: "Info", DisplayStatus: display[iv.PowerState]}}
	return iv, nil
}

// ConsolePath is the file VM id's serial console is logged to, appended to across boots.
// Like ConsoleSocket it does not look the VM up: the caller has read it (and checked the
// caller's right to) first.
func (s *Service) ConsolePath(id resource.ID) string { return s.machine(id.String()).consoleLog() }

// ConsoleSocket is the unix socket to attach to VM id's serial console while it runs:
// what is read from it is the guest's console output, what is written its keyboard. QEMU
// serves one client at a time.
func (s *Service) ConsoleSocket(id resource.ID) string { return s.machine(id.String()).consoleSock() }

// Recover brings this server's VMs in line with the store after the server (re)starts. A
// VM whose QEMU still runs is left running; one that should run and does not is started
// again on the same disk, with the same instance (the guest does not provision itself
// again), unless its guest powered itself off (it stays stopped, as on Azure); one whose
// provisioning was cut short is provisioned; the files of VMs no longer
// in the store are removed, their QEMU killed. Starts go on in the background (Wait).
func (s *Service) Recover(ctx context.Context) error {
	vms, err := store.ListAll(ctx, s.store, store.ListQuery{Type: TypeVM})
	if err != nil {
		return fmt.Errorf("vm: recover: %w", err)
	}
	s.removePartialImages()
	known := map[string]bool{}
	for _, r := range vms {
		id, err := resource.Parse(r.ID)
		if err != nil {
			continue
		}
		if v, _ := readVMID(r); v == "" {
			continue
		}
		known[Key(r.ID)] = true
		s.spawn(func(ctx context.Context) { s.recoverOne(ctx, id) })
	}
	entries, err := os.ReadDir(s.vmDir)
	if err != nil {
		return fmt.Errorf("vm: recover: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || !isKey(e.Name()) || known[e.Name()] {
			continue
		}
		m := s.machineByKey(e.Name())
		if err := s.rt.destroy(m); err != nil {
			s.log.Error("vm: remove a VM no longer in the store", "dir", m.dir, "err", err)
			continue
		}
		s.log.Info("vm: removed a VM no longer in the store", "dir", m.dir)
	}
	return nil
}

func readVMID(r *resource.Resource) (string, error) {
	var p struct {
		VMID string `json:"vmId"`
	}
	err := json.Unmarshal(r.Properties, &p)
	return p.VMID, err
}

func (s *Service) recoverOne(ctx context.Context, id resource.ID) {
	m := s.machine(id.String())
	unlock, err := s.lockKey(ctx, m.key)
	if err != nil {
		return
	}
	defer unlock()
	r, err := s.store.Get(ctx, id)
	if err != nil {
		return // deleted since: the delete's Committed removes it
	}
	sp, err := s.readSpec(r)
	if err != nil || sp.VMID == "" {
		return
	}
	if err := s.dropOtherIncarnation(m, sp.VMID); err != nil {
		s.log.Error("vm: recover", "vm", id.String(), "err", err)
		return
	}
	if sp.ProvisioningState == ProvisioningCreating {
		s.provision(ctx, id, r, sp)
		return
	}
	st, err := m.loadState()
	if err != nil {
		s.log.Error("vm: recover", "vm", id.String(), "err", err)
		return
	}
	if st == nil {
		if sp.ProvisioningState == ProvisioningSucceeded {
			s.record(ctx, id, sp.VMID, step(ErrDiskMissing, fmt.Errorf("the VM's directory %s is gone from this server; Start makes a new disk from its image, or delete the VM", m.dir)))
		}
		return
	}
	if pid, alive := m.pid(); alive {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		status, err := qemu.QMPStatus(qctx, m.qmpSocket())
		cancel()
		if err != nil {
			s.log.Warn("vm: reattached to a running VM whose QMP does not answer; stopping it will kill it", "vm", id.String(), "pid", pid, "err", err)
		} else {
			s.log.Info("vm: reattached", "vm", id.String(), "pid", pid, "status", status)
		}
		return
	}
	if st.Desired != PowerRunning {
		return
	}
	if m.guestPoweredOff() {
		// As on Azure, a VM shut down from inside stays stopped.
		st.Desired = PowerStopped
		if err := m.saveState(st); err != nil {
			s.log.Error("vm: recover", "vm", id.String(), "err", err)
		}
		s.log.Info("vm: the guest powered itself off; it stays stopped", "vm", id.String())
		return
	}
	s.log.Info("vm: starting a VM that should run", "vm", id.String())
	err = s.bringUp(ctx, id, r, sp)
	if ctx.Err() != nil {
		return
	}
	if err != nil || sp.ProvisioningState != ProvisioningSucceeded {
		s.record(ctx, id, sp.VMID, err)
	}
}

// KillAll kills the QEMU of every VM of this service's data directory, as a host crash
// would, leaving their files and desired power states (the next Recover starts again those
// that should run): for tests. A normal shutdown leaves the VMs running.
func (s *Service) KillAll(ctx context.Context) error {
	entries, err := os.ReadDir(s.vmDir)
	if err != nil {
		return fmt.Errorf("vm: kill all: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() && isKey(e.Name()) {
			if err := s.rt.kill(s.machineByKey(e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
