// Package e2e builds a real Debian 12 image from this machine's apt mirror with the
// builder drivers, in the order a pipeline runs them (base rootfs, offline customization
// in a chroot, disk assembly, compressed qcow2, validation boot of a throwaway overlay),
// boots it under UEFI and reads its report back. It is slow and needs root, the image
// builder's tools (make deps) and the mirror, so it is skipped under -short and when not
// root.
//
//	sudo go test -v -count=1 ./builder/e2e
//
// Set GILD_BUILDER_CACHE to a directory to keep the rootfs cache between runs; by default
// the cache lasts one run, shared by its tests. Set GILD_E2E_LOGS to a directory to keep
// each test's run log there (for a CI artifact); by default it is printed on failure only.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gildhq/gild/builder"
	"github.com/gildhq/gild/builder/debian"
	"github.com/gildhq/gild/builder/disk"
	"github.com/gildhq/gild/builder/qemu"
)

const howToRun = "it builds and boots a real Debian image (about 2 minutes; root, the image builder's tools and this machine's apt mirror): run sudo go test -v -count=1 ./builder/e2e, or make test as root"

// maxBoot is a generous bound on the UEFI boot under TCG to the ready line; measured here
// at about 20 s.
const maxBoot = 120 * time.Second

var cacheDir string

func TestMain(m *testing.M) {
	cacheDir = os.Getenv("GILD_BUILDER_CACHE")
	if cacheDir == "" {
		d, err := os.MkdirTemp("", "gild-rootfs-cache-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		cacheDir = d
		code := m.Run()
		os.RemoveAll(d)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func requireE2E(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped under -short: " + howToRun)
	}
	if os.Geteuid() != 0 {
		t.Skip("skipped when not root: " + howToRun)
	}
	var missing []string
	for _, tool := range []string{"mmdebstrap", "tar", "mount", "chroot", "mkfs.ext4", "mkfs.vfat", "mmd", "mcopy", "grub-mkimage", "sfdisk", "qemu-img", "qemu-system-x86_64"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("missing %s: run make deps", strings.Join(missing, ", "))
	}
	if _, err := qemu.FindFirmware(qemu.FirmwareCandidates); err != nil {
		t.Fatalf("%v: run make deps", err)
	}
}

// runLog is the run log: every line to a file, the last lines kept to print on failure.
type runLog struct {
	mu   sync.Mutex
	f    *os.File
	tail []string
}

func newRunner(t *testing.T) *builder.Runner {
	path := filepath.Join(t.TempDir(), "run.log")
	if dir := os.Getenv("GILD_E2E_LOGS"); dir != "" {
		path = filepath.Join(dir, t.Name()+".log")
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	l := &runLog{f: f}
	t.Cleanup(func() {
		f.Close()
		if t.Failed() {
			t.Logf("run log (last %d lines; all in %s):\n%s", len(l.tail), f.Name(), strings.Join(l.tail, "\n"))
		}
	})
	return &builder.Runner{Sink: func(line builder.Line) {
		l.mu.Lock()
		defer l.mu.Unlock()
		s := line.String()
		fmt.Fprintln(l.f, s)
		if l.tail = append(l.tail, s); len(l.tail) > 150 {
			l.tail = l.tail[1:]
		}
	}}
}

func baseSpec(t *testing.T) debian.Spec {
	sources, err := debian.LoadSources("/")
	if err != nil {
		t.Fatalf("this machine's apt sources: %v", err)
	}
	m, err := debian.FindMirrors(sources, "bookworm")
	if err != nil {
		t.Fatalf("this machine's apt sources: %v", err)
	}
	return debian.Spec{Suite: "bookworm", Mirrors: m}
}

// The guest's side of the test channel: a unit that, once the system is up, writes the
// ready line and a JSON report to the results port (the console if there is none).
const (
	reportScript = `#!/bin/sh
# virtio_console is a module udev may not have loaded yet; the port's /dev/virtio-ports
# link comes later still, so look the port up by its name in /sys.
modprobe -q virtio_console || true
port=
for i in $(seq 100); do
	for n in /sys/class/virtio-ports/*/name; do
		[ "$(cat "$n" 2>/dev/null)" = org.gild.results ] && port=/dev/$(basename "$(dirname "$n")")
	done
	[ -n "$port" ] && [ -e "$port" ] && break
	port=
	sleep 0.1
done
[ -n "$port" ] || port=/dev/ttyS0
exec > "$port"
echo GILD-READY
# The EFI system partition is mounted (nofail) in parallel with this unit: wait for it.
for i in $(seq 300); do
	findmnt -n /boot/efi >/dev/null && break
	sleep 0.1
done
efi=false
[ -d /sys/firmware/efi ] && efi=true
read -r uptime _ < /proc/uptime
printf '{"kernel":"%s","efi":%s,"uptime":%s,"root":"%s","esp":"%s","hostname":"%s"}\n' \
	"$(uname -r)" "$efi" "$uptime" "$(findmnt -no SOURCE /)" "$(findmnt -no FSTYPE /boot/efi)" "$(hostname)"
echo GILD-DONE
`
	reportUnit = `[Unit]
Description=Report to the gild host that this VM is up

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/gild-report

[Install]
WantedBy=multi-user.target
`
)

type report struct {
	Kernel   string  `json:"kernel"`
	EFI      bool    `json:"efi"`
	Uptime   float64 `json:"uptime"`
	Root     string  `json:"root"`
	ESP      string  `json:"esp"`
	Hostname string  `json:"hostname"`
}

func TestDebianImageBootsUnderUEFI(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	r := newRunner(t)
	spec := baseSpec(t)
	work := t.TempDir()
	timings := map[string]time.Duration{}
	step := func(name string, f func() error) {
		t.Helper()
		start := time.Now()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		timings[name] = time.Since(start)
	}

	// 1. The base root filesystem from the mirror.
	rootfs := filepath.Join(work, "rootfs")
	var base *debian.Rootfs
	step("rootfs", func() (err error) {
		base, err = (&debian.Mmdebstrap{Runner: r, CacheDir: cacheDir}).Build(ctx, spec, rootfs)
		return err
	})
	t.Logf("rootfs %s (mirror dated %s) in %s, cached: %v", base.Version, base.Date.Format(time.RFC3339), timings["rootfs"].Round(time.Millisecond), base.Cached)

	pkgs, err := debian.Packages(ctx, r, rootfs)
	if err != nil {
		t.Fatal(err)
	}
	installed := map[string]bool{}
	for _, p := range pkgs {
		installed[p.Name] = true
	}
	for _, want := range spec.IncludeList() {
		if !installed[want] {
			t.Errorf("package %s is not installed", want)
		}
	}
	t.Logf("%d packages installed", len(pkgs))

	// 2. Offline customization in a chroot: the report unit, enabled the way a package
	// would; and a look-up of the mirror's host, which needs the host's resolver inside.
	step("customize", func() error {
		if err := os.WriteFile(filepath.Join(rootfs, "usr/local/sbin/gild-report"), []byte(reportScript), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(rootfs, "etc/systemd/system/gild-report.service"), []byte(reportUnit), 0o644); err != nil {
			return err
		}
		c, err := disk.OpenChroot(ctx, r, disk.SystemMounter{Runner: r}, rootfs, "")
		if err != nil {
			return err
		}
		u, _ := url.Parse(spec.Mirrors.Archive)
		err = c.Run(ctx, "customize", "systemctl enable gild-report.service\ngetent ahosts '"+u.Hostname()+"' >/dev/null\ntest -x /usr/sbin/policy-rc.d")
		if cerr := c.Close(ctx); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if m, err := builder.MountsUnder(rootfs); err != nil || len(m) > 0 {
			return fmt.Errorf("mounts left under the rootfs after Close: %v %v", m, err)
		}
		if _, err := os.Lstat(filepath.Join(rootfs, "usr/sbin/policy-rc.d")); !os.IsNotExist(err) {
			return fmt.Errorf("policy-rc.d left in the image: %v", err)
		}
		return nil
	})

	// 3. The disk, 4. the published qcow2.
	raw := filepath.Join(work, "disk.raw")
	step("assemble", func() error {
		_, err := (&disk.Tools{Runner: r}).Assemble(ctx, rootfs, raw, disk.Options{Seed: base.Digest})
		return err
	})
	golden := filepath.Join(work, "golden.qcow2")
	img := &qemu.QemuImg{Runner: r}
	step("convert", func() error { return img.Convert(ctx, raw, "raw", golden, true) })
	info, err := img.Info(ctx, golden)
	if err != nil {
		t.Fatal(err)
	}
	if info.Format != "qcow2" || info.CompressionType() != "zstd" {
		t.Errorf("image %+v, want a zstd-compressed qcow2", info)
	}
	sum, _ := os.Stat(golden)

	// 5. The validation boot on a throwaway overlay.
	vmDir, err := os.MkdirTemp("", "gild-e2e-vm-") // short: socket paths
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(vmDir)
	var res *qemu.BootResult
	step("boot", func() (err error) {
		res, err = (&qemu.System{Runner: r, Img: img}).Boot(ctx, qemu.BootSpec{Name: "e2e", Image: golden, WorkDir: vmDir, Timeout: 4 * time.Minute})
		return err
	})
	if after, _ := os.Stat(golden); after.ModTime() != sum.ModTime() || after.Size() != sum.Size() {
		t.Errorf("the boot wrote the image itself")
	}
	if len(res.Results) != 1 {
		t.Fatalf("results %q, want one JSON line", res.Results)
	}
	var rep report
	if err := json.Unmarshal([]byte(res.Results[0]), &rep); err != nil {
		t.Fatalf("result %q: %v", res.Results[0], err)
	}
	if !rep.EFI || !strings.HasSuffix(rep.Kernel, "-cloud-amd64") || rep.Root != "/dev/vda2" || rep.ESP != "vfat" || rep.Hostname != "localhost" {
		t.Errorf("report %+v: want a UEFI boot of the cloud kernel from /dev/vda2, the ESP mounted, hostname localhost", rep)
	}
	if res.BootTime > maxBoot {
		t.Errorf("boot took %s, more than %s", res.BootTime, maxBoot)
	}
	t.Logf("rootfs %s, customize %s, assemble %s, convert %s (%d MiB qcow2), boot+report+power-off %s",
		timings["rootfs"].Round(time.Millisecond), timings["customize"].Round(time.Millisecond), timings["assemble"].Round(time.Millisecond),
		timings["convert"].Round(time.Millisecond), info.ActualSize>>20, timings["boot"].Round(time.Millisecond))
	t.Logf("UEFI boot under %s: ready after %s from QEMU's start (via %s), of which firmware and GRUB %s; guest uptime at its report %.2f s; kernel %s; powered off cleanly: %v",
		res.Accel, res.BootTime.Round(time.Millisecond), res.ReadySource, res.KernelStart.Round(time.Millisecond), rep.Uptime, rep.Kernel, res.PoweredOff)
}

func TestRootfsCacheHit(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	r := newRunner(t)
	spec := baseSpec(t)
	d := &debian.Mmdebstrap{Runner: r, CacheDir: cacheDir}
	// The first build fills the cache unless an earlier test did.
	first, err := d.Build(ctx, spec, filepath.Join(t.TempDir(), "a"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	second, err := d.Build(ctx, spec, filepath.Join(t.TempDir(), "b"))
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if !second.Cached || second.Digest != first.Digest {
		t.Errorf("unchanged inputs should come from the cache: %+v", second)
	}
	if took > 30*time.Second {
		t.Errorf("a cached build took %s", took)
	}
	if _, err := os.Stat(filepath.Join(second.Dir, "usr/lib/systemd/systemd")); err != nil {
		t.Errorf("the cached tree lacks systemd: %v", err)
	}
	t.Logf("cached rootfs %s in %s", second.Version, took.Round(time.Millisecond))
}
