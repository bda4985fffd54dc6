package disk

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/gildhq/gild/builder"
)

// Mount is one filesystem mounted into a chroot.
type Mount struct {
	Source  string   // a path for a bind mount, or a name such as "proc"
	Target  string   // the absolute path on the host
	FSType  string   // "" for a bind mount
	Options []string // mount -o options
}

// MountArgs are mount(8)'s arguments for m.
func MountArgs(m Mount) []string {
	var args []string
	if m.FSType != "" {
		args = append(args, "-t", m.FSType)
	}
	if len(m.Options) > 0 {
		args = append(args, "-o", strings.Join(m.Options, ","))
	}
	return append(args, m.Source, m.Target)
}

// ChrootMounts are the filesystems a chroot needs for package scripts to work: the host's
// device nodes and terminals, and fresh proc and sysfs. The binds are private: with a
// shared /dev, mounting /dev/pts onto the bound copy would show up on the host's /dev/pts
// too.
func ChrootMounts(root string) []Mount {
	return []Mount{
		{Source: "/dev", Target: filepath.Join(root, "dev"), Options: []string{"bind", "private"}},
		{Source: "/dev/pts", Target: filepath.Join(root, "dev/pts"), Options: []string{"bind", "private"}},
		{Source: "proc", Target: filepath.Join(root, "proc"), FSType: "proc", Options: []string{"nosuid", "nodev", "noexec"}},
		{Source: "sysfs", Target: filepath.Join(root, "sys"), FSType: "sysfs", Options: []string{"nosuid", "nodev", "noexec", "ro"}},
	}
}

// Mounter mounts and unmounts.
type Mounter interface {
	Mount(ctx context.Context, m Mount) error
	Unmount(ctx context.Context, target string) error
}

// SystemMounter uses mount(8) and umount(8).
type SystemMounter struct {
	Runner *builder.Runner
}

// Mount implements Mounter.
func (s SystemMounter) Mount(ctx context.Context, m Mount) error {
	return s.Runner.Run(ctx, builder.Command{Path: "mount", Args: MountArgs(m)})
}

// Unmount implements Mounter. When a process still holds the mount it detaches it lazily,
// so that whatever removes the tree next does not walk into the host's /dev.
func (s SystemMounter) Unmount(ctx context.Context, target string) error {
	err := s.Runner.Run(ctx, builder.Command{Path: "umount", Args: []string{target}})
	if err == nil {
		return nil
	}
	if lazyErr := s.Runner.Run(ctx, builder.Command{Path: "umount", Args: []string{"--lazy", target}}); lazyErr != nil {
		return errors.Join(err, lazyErr)
	}
	s.Runner.Logf("chroot", "%s was busy; detached it lazily (%v)", target, err)
	return nil
}

// Chroot is a root filesystem directory prepared for running commands in: mounts in
// place, services kept from starting, the host's DNS resolver configuration. Close undoes
// all of it.
type Chroot struct {
	Root   string
	Runner *builder.Runner
	// Env is the commands' whole environment: the host's is not passed in.
	Env []string
	// ChrootPath names chroot(8); "chroot" when empty.
	ChrootPath string

	undo builder.Cleanup
}

// ChrootEnv is a chroot's default environment: no prompts from package scripts, a plain
// locale that minbase has, a standard PATH.
var ChrootEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root", "LC_ALL=C.UTF-8", "DEBIAN_FRONTEND=noninteractive", "DEBCONF_NONINTERACTIVE_SEEN=true",
}

// policyRC tells invoke-rc.d that no service may start: package installs in a chroot
// must not start daemons on the build host.
const policyRC = "#!/bin/sh\n# gild: no services start while the image is customized.\nexit 101\n"

// OpenChroot prepares root. resolvConf is the host file copied to etc/resolv.conf while
// the chroot is open ("/etc/resolv.conf" when empty). If any step fails, the steps
// already done are undone before it returns.
func OpenChroot(ctx context.Context, runner *builder.Runner, m Mounter, root, resolvConf string) (_ *Chroot, err error) {
	if resolvConf == "" {
		resolvConf = "/etc/resolv.conf"
	}
	root, err = filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open chroot: %w", err)
	}
	c := &Chroot{Root: root, Runner: runner, Env: ChrootEnv}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.undo.Run(ctx))
		}
	}()
	for _, mt := range ChrootMounts(root) {
		if err := mountPoint(root, mt.Target); err != nil {
			return nil, fmt.Errorf("open chroot: %w", err)
		}
		if err := m.Mount(ctx, mt); err != nil {
			return nil, fmt.Errorf("open chroot: mount %s: %w", mt.Target, err)
		}
		c.undo.Push("unmount "+mt.Target, func(ctx context.Context) error { return m.Unmount(ctx, mt.Target) })
	}
	if err := c.replace("usr/sbin/policy-rc.d", []byte(policyRC), 0o755); err != nil {
		return nil, fmt.Errorf("open chroot: %w", err)
	}
	dns, err := os.ReadFile(resolvConf)
	if err != nil {
		return nil, fmt.Errorf("open chroot: the host's resolver configuration: %w", err)
	}
	if err := c.replace("etc/resolv.conf", dns, 0o644); err != nil {
		return nil, fmt.Errorf("open chroot: %w", err)
	}
	runner.Logf("chroot", "opened %s", root)
	return c, nil
}

// mountPoint makes sure target is a real directory inside root: a symbolic link there
// would make the mount land on the host.
func mountPoint(root, target string) error {
	st, err := os.Lstat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return os.MkdirAll(target, 0o755)
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("mount point %s is not a directory (a %s)", target, st.Mode().Type())
	}
	return nil
}

// replace puts content at rel in the root, keeping what was there (a file or a link) aside
// to restore on Close.
func (c *Chroot) replace(rel string, content []byte, mode os.FileMode) error {
	p := filepath.Join(c.Root, rel)
	saved := p + ".gild-saved"
	if _, err := os.Lstat(p); err == nil {
		if err := os.Rename(p, saved); err != nil {
			return fmt.Errorf("keep %s aside: %w", rel, err)
		}
		c.undo.Push("restore "+rel, func(context.Context) error {
			os.Remove(p)
			return os.Rename(saved, p)
		})
	} else {
		c.undo.Push("remove "+rel, func(context.Context) error {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return nil
		})
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p, content, mode); err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	return os.Chmod(p, mode)
}

// Run runs a shell script in the chroot with sh -e, streaming its output, line by line
// with timestamps, into the run log. tag names it there.
func (c *Chroot) Run(ctx context.Context, tag, script string) error {
	err := c.Runner.Run(ctx, builder.Command{
		Path: or(c.ChrootPath, "chroot"), Args: []string{c.Root, "/bin/sh", "-ec", script},
		Env: c.Env, Tag: tag,
	})
	if err != nil {
		return fmt.Errorf("chroot %s: %w", tag, err)
	}
	return nil
}

// Close undoes everything OpenChroot did, in reverse, and reports every step that failed.
func (c *Chroot) Close(ctx context.Context) error {
	if err := c.undo.Run(ctx); err != nil {
		return fmt.Errorf("close chroot %s: %w", c.Root, err)
	}
	c.Runner.Logf("chroot", "closed %s", c.Root)
	return nil
}
