package debian

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// BasePackages are installed in every base image on top of mmdebstrap's minbase variant:
// an init system and device manager to boot to multi-user, the cloud kernel (virtio,
// vsock and ext4 built in; half the size of linux-image-amd64) with an initramfs to find
// the root filesystem by UUID, D-Bus for systemd's tools, and basic networking.
//
// The UEFI boot chain needs nothing more inside: GRUB is built on the host as a
// standalone EFI binary on the EFI system partition (see builder/disk) and loads the
// /vmlinuz and /initrd.img links, which the kernel packages keep pointing at the newest
// kernel, so an update in the guest boots without running grub-install. dosfstools lets
// systemd check the EFI system partition that /etc/fstab mounts at /boot/efi.
var BasePackages = []string{
	"systemd-sysv", "udev", "linux-image-cloud-amd64", "initramfs-tools",
	"dbus", "netbase", "ca-certificates", "iproute2", "dosfstools",
}

// Spec is what a base root filesystem is built from.
type Spec struct {
	Suite   string  // "bookworm"
	Mirrors Mirrors // from FindMirrors
	// Components of every suite; ["main"] when empty.
	Components []string
	// Architecture is a Debian architecture; "amd64" when empty.
	Architecture string
	// Variant is mmdebstrap's; "minbase" when empty.
	Variant string
	// Packages are installed on top of BasePackages.
	Packages []string
	// Hooks are shell commands mmdebstrap runs at the end, with the root directory in "$1".
	// They are part of the inputs, so changing one misses the cache.
	Hooks []string
}

func (s Spec) components() []string {
	if len(s.Components) == 0 {
		return []string{"main"}
	}
	return s.Components
}

func (s Spec) arch() string {
	if s.Architecture == "" {
		return "amd64"
	}
	return s.Architecture
}

func (s Spec) variant() string {
	if s.Variant == "" {
		return "minbase"
	}
	return s.Variant
}

// Suites are the three suites a build takes packages from: without the updates and
// security suites an image would ship the release's first kernel and libraries.
func (s Spec) Suites() []string {
	return []string{s.Suite, s.Suite + "-updates", s.Suite + "-security"}
}

// MirrorOf is the mirror URI serving suite, one of Suites.
func (s Spec) MirrorOf(suite string) string {
	switch suite {
	case s.Suite + "-updates":
		return s.Mirrors.Updates
	case s.Suite + "-security":
		return s.Mirrors.Security
	}
	return s.Mirrors.Archive
}

// SourceLines are the apt source lines mmdebstrap gets, one per suite; they also end up in
// the image's /etc/apt/sources.list.
func (s Spec) SourceLines() []string {
	var out []string
	for _, suite := range s.Suites() {
		out = append(out, fmt.Sprintf("deb %s %s %s", s.MirrorOf(suite), suite, strings.Join(s.components(), " ")))
	}
	return out
}

// IncludeList is BasePackages and Packages, sorted and without duplicates, so the same
// set always gives the same arguments and the same cache key.
func (s Spec) IncludeList() []string {
	pkgs := append(slices.Clone(BasePackages), s.Packages...)
	slices.Sort(pkgs)
	return slices.Compact(pkgs)
}

var (
	nameRe    = regexp.MustCompile(`^[a-z0-9][a-z0-9.+-]*$`)
	packageRe = regexp.MustCompile(`^[a-z0-9][a-z0-9.+-]+(:[a-z0-9-]+)?(=[A-Za-z0-9.+:~-]+|/[a-z0-9.-]+)?$`)
)

// Validate reports every problem with s at once.
func (s Spec) Validate() error {
	var errs []error
	if !nameRe.MatchString(s.Suite) {
		errs = append(errs, fmt.Errorf("suite %q is not a Debian suite name such as bookworm", s.Suite))
	}
	for _, m := range []struct{ name, uri string }{{"archive", s.Mirrors.Archive}, {"updates", s.Mirrors.Updates}, {"security", s.Mirrors.Security}} {
		u, err := url.Parse(m.uri)
		switch {
		case m.uri == "":
			errs = append(errs, fmt.Errorf("no %s mirror", m.name))
		case err != nil || u.Scheme == "" || strings.ContainsAny(m.uri, " \t\n"):
			errs = append(errs, fmt.Errorf("%s mirror %q is not a URI", m.name, m.uri))
		}
	}
	for _, c := range s.components() {
		if !nameRe.MatchString(c) {
			errs = append(errs, fmt.Errorf("component %q is not a name such as main", c))
		}
	}
	if !nameRe.MatchString(s.arch()) {
		errs = append(errs, fmt.Errorf("architecture %q is not a Debian architecture such as amd64", s.arch()))
	}
	switch s.variant() {
	case "extract", "custom", "essential", "apt", "required", "minbase", "buildd", "important", "debootstrap", "standard":
	default:
		errs = append(errs, fmt.Errorf("variant %q is not one of mmdebstrap's", s.variant()))
	}
	for _, p := range s.Packages {
		if !packageRe.MatchString(p) {
			errs = append(errs, fmt.Errorf("package %q is not a Debian package name (name, name=version or name/suite)", p))
		}
	}
	for i, h := range s.Hooks {
		if strings.TrimSpace(h) == "" {
			errs = append(errs, fmt.Errorf("hook %d is empty", i+1))
		}
	}
	return errors.Join(errs...)
}

// imageHooks run in every build, before Spec.Hooks: mmdebstrap copies the build host's
// /etc/hostname and /etc/resolv.conf into the root, and an image must carry neither.
var imageHooks = []string{
	`echo localhost > "$1/etc/hostname"`,
	`rm -f "$1/etc/resolv.conf"`,
}

// MmdebstrapArgs are mmdebstrap's arguments to build s into target (a directory). Root
// mode, because the disk assembly that follows needs real ownership in the tree.
func MmdebstrapArgs(s Spec, target string) []string {
	args := []string{
		"--mode=root",
		"--variant=" + s.variant(),
		"--architectures=" + s.arch(),
		"--include=" + strings.Join(s.IncludeList(), ","),
	}
	for _, h := range append(slices.Clone(imageHooks), s.Hooks...) {
		args = append(args, "--customize-hook="+h)
	}
	args = append(args, s.Suite, target)
	return append(args, s.SourceLines()...)
}
