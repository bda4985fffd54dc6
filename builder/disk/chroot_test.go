package disk

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gildhq/gild/builder"
)

// fakeMounter records mounts and fails the one numbered failAt (1-based).
type fakeMounter struct {
	calls  []string
	failAt int
	n      int
}

func (f *fakeMounter) Mount(_ context.Context, m Mount) error {
	f.n++
	if f.n == f.failAt {
		return errors.New("mount: permission denied")
	}
	f.calls = append(f.calls, "mount "+m.Target)
	return nil
}

func (f *fakeMounter) Unmount(_ context.Context, target string) error {
	f.calls = append(f.calls, "umount "+target)
	return nil
}

func TestOpenChrootUndoesWhatItDidWhenAMountFails(t *testing.T) {
	root := t.TempDir()
	m := &fakeMounter{failAt: 3}
	_, err := OpenChroot(context.Background(), &builder.Runner{}, m, root, "")
	if err == nil || !strings.Contains(err.Error(), "mount "+root+"/proc: mount: permission denied") {
		t.Fatalf("error %v should name the mount", err)
	}
	want := []string{"mount " + root + "/dev", "mount " + root + "/dev/pts", "umount " + root + "/dev/pts", "umount " + root + "/dev"}
	if strings.Join(m.calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls\n%s\nwant\n%s", strings.Join(m.calls, "\n"), strings.Join(want, "\n"))
	}
	if _, err := os.Lstat(filepath.Join(root, "usr/sbin/policy-rc.d")); !os.IsNotExist(err) {
		t.Error("policy-rc.d written although opening failed early")
	}
}

func TestChrootRestoresWhatItReplaced(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	// The image's resolv.conf is a link (as with systemd-resolved); it must come back as one.
	os.Symlink("../run/systemd/resolve/stub-resolv.conf", filepath.Join(root, "etc/resolv.conf"))
	hostDNS := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(hostDNS, []byte("nameserver 192.0.2.53\n"), 0o644)
	// A fake chroot(8): runs the script with the root as its working directory.
	fake := filepath.Join(t.TempDir(), "chroot")
	os.WriteFile(fake, []byte("#!/bin/sh\nroot=$1; shift; cd \"$root\" && PATH=/usr/bin:/bin exec \"$@\"\n"), 0o755)

	var log strings.Builder
	m := &fakeMounter{}
	c, err := OpenChroot(context.Background(), &builder.Runner{Sink: builder.WriterSink(&log)}, m, root, hostDNS)
	if err != nil {
		t.Fatal(err)
	}
	c.ChrootPath = fake
	if b, _ := os.ReadFile(filepath.Join(root, "etc/resolv.conf")); string(b) != "nameserver 192.0.2.53\n" {
		t.Errorf("resolv.conf while open: %q", b)
	}
	st, err := os.Stat(filepath.Join(root, "usr/sbin/policy-rc.d"))
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("policy-rc.d: %v %v", st, err)
	}
	if err := c.Run(context.Background(), "hello", "echo from the chroot; sh usr/sbin/policy-rc.d"); err == nil || !strings.Contains(err.Error(), "exit status 101") {
		t.Errorf("policy-rc.d should exit 101: %v", err)
	}
	if !strings.Contains(log.String(), "hello[stdout]: from the chroot") {
		t.Errorf("the script's output is not in the log:\n%s", log.String())
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(root, "etc/resolv.conf")); err != nil || target != "../run/systemd/resolve/stub-resolv.conf" {
		t.Errorf("resolv.conf not restored: %q %v", target, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "usr/sbin/policy-rc.d")); !os.IsNotExist(err) {
		t.Error("policy-rc.d left behind")
	}
	if n := len(m.calls); n != 8 || m.calls[4] != "umount "+root+"/sys" || m.calls[7] != "umount "+root+"/dev" {
		t.Errorf("mounts not undone in reverse: %q", m.calls)
	}
}

func TestOpenChrootRefusesASymlinkedMountPoint(t *testing.T) {
	root := t.TempDir()
	os.Symlink("/", filepath.Join(root, "proc"))
	m := &fakeMounter{}
	_, err := OpenChroot(context.Background(), &builder.Runner{}, m, root, "")
	if err == nil || !strings.Contains(err.Error(), "mount point "+root+"/proc is not a directory") {
		t.Fatalf("got %v", err)
	}
	if len(m.calls) != 4 || m.calls[3] != "umount "+root+"/dev" {
		t.Errorf("calls %q", m.calls)
	}
}
