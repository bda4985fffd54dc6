package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gildhq/gild/agentproto"
	"github.com/gildhq/gild/check"
)

// System is the machine as the daemon touches it: the root its files are under, and the
// programs and system calls it uses. LiveSystem is the machine itself; tests give a
// temporary root and a Runner that records programs, and the same code runs.
type System struct {
	// Root stands for "/". Empty means "/".
	Root string
	// Live says that Root is the running system (check.Env's Live): its /proc is the
	// kernel's, and checks that need a running system can run.
	Live bool
	// Runner runs useradd, usermod and modprobe, and the programs checks run. Nil means
	// check.ExecRunner.
	Runner check.Runner
	// Sethostname sets the running kernel's hostname. Nil means sethostname(2) when Root
	// is "/", and nothing otherwise: another root's hostname is only its /etc/hostname.
	Sethostname func(name string) error
}

// LiveSystem is the machine the agent runs on.
func LiveSystem() System { return System{Root: "/", Live: true} }

func (s System) root() string {
	if s.Root == "" {
		return "/"
	}
	return filepath.Clean(s.Root)
}

// path is where the system's absolute path p is on this machine.
func (s System) path(p string) string { return filepath.Join(s.root(), filepath.FromSlash(p)) }

func (s System) env() check.Env { return check.Env{Root: s.root(), Live: s.Live, Runner: s.runner()} }

func (s System) runner() check.Runner {
	if s.Runner == nil {
		return check.ExecRunner{}
	}
	return s.Runner
}

// run runs a program that changes the system; with a root other than "/", the tools'
// --root option points them at it.
func (s System) run(ctx context.Context, name string, args ...string) error {
	if s.root() != "/" && (name == "useradd" || name == "usermod") {
		args = append([]string{"--root", s.root()}, args...)
	}
	out, err := s.runner().Run(ctx, name, args...)
	if err != nil {
		return err
	}
	if out.ExitStatus != 0 {
		return fmt.Errorf("%s %s: exit status %d: %s", name, strings.Join(args, " "), out.ExitStatus, strings.TrimSpace(string(out.Stderr)))
	}
	return nil
}

// fwCfgFirstBoot is where the kernel's qemu_fw_cfg module shows the first-boot item.
var fwCfgFirstBoot = path.Join("/sys/firmware/qemu_fw_cfg/by_name", agentproto.FirstBootFwCfgName, "raw")

// maxFirstBootBytes bounds the first-boot data: a few keys and a token.
const maxFirstBootBytes = 1 << 20

// errNoFirstBoot says that there is no first-boot data: not a VM gild created.
var errNoFirstBoot = errors.New("no first-boot data")

// readFirstBoot reads first-boot data from file, or when file is empty from QEMU's
// fw_cfg, loading qemu_fw_cfg first when loadModule says so, and waiting up to wait for
// the item to appear (the module loads while the system boots). It returns the data's
// source, for logs, and errNoFirstBoot when there is none.
func (s System) readFirstBoot(ctx context.Context, file string, wait time.Duration, loadModule bool) (agentproto.FirstBoot, string, error) {
	source := file
	if file == "" {
		source = s.path(fwCfgFirstBoot)
		if s.Live && loadModule {
			// Best effort: the image loads the module at boot (modules-load.d), and a kernel
			// with it built in has nothing to load.
			_ = s.run(ctx, "modprobe", "-q", "qemu_fw_cfg")
		}
		deadline := time.Now().Add(wait)
		for {
			if _, err := os.Stat(source); err == nil || time.Now().After(deadline) {
				break
			}
			select {
			case <-ctx.Done():
				return agentproto.FirstBoot{}, source, ctx.Err()
			case <-time.After(min(200*time.Millisecond, wait)):
			}
		}
	}
	f, err := os.Open(source)
	if isNotExist(err) {
		return agentproto.FirstBoot{}, source, errNoFirstBoot
	}
	if err != nil {
		return agentproto.FirstBoot{}, source, fmt.Errorf("read first-boot data: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFirstBootBytes+1))
	if err != nil {
		return agentproto.FirstBoot{}, source, fmt.Errorf("read first-boot data %s: %w", source, err)
	}
	if len(data) > maxFirstBootBytes {
		return agentproto.FirstBoot{}, source, fmt.Errorf("read first-boot data %s: larger than %d bytes", source, maxFirstBootBytes)
	}
	fb, err := parseFirstBoot(data)
	if err != nil {
		return agentproto.FirstBoot{}, source, fmt.Errorf("first-boot data %s: %w", source, err)
	}
	return fb, source, nil
}

// parseFirstBoot decodes and validates first-boot data: agentproto's rules, and what
// provisioning needs to do safely (a hostname, an account name and key lines that cannot
// smuggle in anything else). It reports every problem at once.
func parseFirstBoot(data []byte) (agentproto.FirstBoot, error) {
	var fb agentproto.FirstBoot
	if err := json.Unmarshal(data, &fb); err != nil {
		return fb, fmt.Errorf("not JSON first-boot data: %w", err)
	}
	var errs []error
	if err := fb.Validate(); err != nil {
		errs = append(errs, err)
	}
	if fb.ComputerName != "" && !validHostname(fb.ComputerName) {
		errs = append(errs, fmt.Errorf("computerName: %q is not a hostname (letters, digits and hyphens, labels of 1 to 63, at most 253 in all)", fb.ComputerName))
	}
	if fb.AdminUsername != "" && !userNameRE.MatchString(fb.AdminUsername) {
		errs = append(errs, fmt.Errorf("adminUsername: %q is not a user name (a lower-case letter or _, then lower-case letters, digits, _ and -, at most 32)", fb.AdminUsername))
	}
	if len(fb.SSHPublicKeys) > 0 && fb.AdminUsername == "" {
		errs = append(errs, errors.New("sshPublicKeys: given without adminUsername, so no account would get them"))
	}
	for i, k := range fb.SSHPublicKeys {
		if strings.TrimSpace(k) == "" || strings.ContainsAny(k, "\r\n\x00") {
			errs = append(errs, fmt.Errorf("sshPublicKeys[%d]: must be one non-empty authorized_keys line", i))
		}
	}
	if fb.Server != "" {
		if err := checkServerURL(fb.Server); err != nil {
			errs = append(errs, fmt.Errorf("server: %w", err))
		}
	}
	return fb, errors.Join(errs...)
}

// userNameRE is Debian's default NAME_REGEX (adduser.conf), without the trailing $ of
// Samba machine accounts.
var userNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if len(label) < 1 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// provision makes the system the instance fb describes: its hostname, and its admin
// account with SSH keys and passwordless sudo. Each step is idempotent, so a provisioning
// that failed halfway can run again. It returns what it did, for the log, and every
// error at once.
func (s System) provision(ctx context.Context, fb agentproto.FirstBoot) ([]string, error) {
	var did []string
	var errs []error
	if err := s.setHostname(fb.ComputerName); err != nil {
		errs = append(errs, err)
	} else {
		did = append(did, "hostname "+fb.ComputerName)
	}
	if fb.AdminUsername != "" {
		d, err := s.provisionAdmin(ctx, fb.AdminUsername, fb.SSHPublicKeys)
		did = append(did, d...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return did, errors.Join(errs...)
}

// setHostname writes /etc/hostname, points 127.0.1.1 at the name in /etc/hosts as Debian's
// installer does (so that sudo and others resolve it without DNS), and sets the running
// kernel's hostname.
func (s System) setHostname(name string) error {
	if err := os.MkdirAll(s.path("/etc"), 0o755); err != nil {
		return fmt.Errorf("set hostname: %w", err)
	}
	if err := writeFileAtomic(s.path("/etc/hostname"), []byte(name+"\n"), 0o644); err != nil {
		return fmt.Errorf("set hostname: %w", err)
	}
	hosts, err := os.ReadFile(s.path("/etc/hosts"))
	if err != nil && !isNotExist(err) {
		return fmt.Errorf("set hostname: %w", err)
	}
	if err := writeFileAtomic(s.path("/etc/hosts"), hostsWithName(hosts, name), 0o644); err != nil {
		return fmt.Errorf("set hostname: %w", err)
	}
	set := s.Sethostname
	if set == nil && s.root() == "/" {
		set = sethostname
	}
	if set != nil {
		if err := set(name); err != nil {
			return fmt.Errorf("set hostname: %w", err)
		}
	}
	return nil
}

// hostsWithName returns /etc/hosts with its 127.0.1.1 line naming host (the short name
// after the full one, as Debian writes it), added when there is none.
func hostsWithName(hosts []byte, host string) []byte {
	entry := "127.0.1.1\t" + host
	if short, _, ok := strings.Cut(host, "."); ok {
		entry += " " + short
	}
	var out []string
	found := false
	for _, line := range splitLinesKeep(string(hosts)) {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "127.0.1.1" {
			if !found {
				out = append(out, entry)
				found = true
			}
			continue
		}
		out = append(out, line)
	}
	if !found {
		if len(out) == 0 {
			out = append(out, "127.0.0.1\tlocalhost")
		}
		out = append(out, entry)
	}
	return []byte(strings.Join(out, "\n") + "\n")
}

// splitLinesKeep splits text into lines without their line breaks.
func splitLinesKeep(text string) []string {
	text = strings.TrimRight(text, "\n")
	if text == "" {
		return nil
	}
	return strings.Split(text, "\n")
}

// passwdEntry is a line of /etc/passwd.
type passwdEntry struct {
	name     string
	uid, gid int
	home     string
}

// lookupUser finds name in the system's /etc/passwd.
func (s System) lookupUser(name string) (passwdEntry, bool, error) {
	data, err := os.ReadFile(s.path("/etc/passwd"))
	if err != nil {
		if isNotExist(err) {
			return passwdEntry{}, false, nil
		}
		return passwdEntry{}, false, fmt.Errorf("read /etc/passwd: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 7 || f[0] != name {
			continue
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			return passwdEntry{}, false, fmt.Errorf("read /etc/passwd: the line of %s has a bad uid or gid", name)
		}
		return passwdEntry{name: name, uid: uid, gid: gid, home: f[5]}, true, nil
	}
	return passwdEntry{}, false, nil
}

// provisionAdmin creates the admin account when it is missing (its password locked: it
// logs in with its keys), writes its authorized_keys, and gives it passwordless sudo.
func (s System) provisionAdmin(ctx context.Context, user string, keys []string) ([]string, error) {
	var did []string
	u, found, err := s.lookupUser(user)
	if err != nil {
		return nil, fmt.Errorf("provision %s: %w", user, err)
	}
	if !found {
		if err := s.run(ctx, "useradd", "-m", "-s", "/bin/bash", user); err != nil {
			return nil, fmt.Errorf("provision %s: %w", user, err)
		}
		// "*" locks the password (no password matches it; check's passwordLocked counts
		// it) without locking the account, which "!" does: sshd without PAM refuses a
		// locked account even its keys.
		if err := s.run(ctx, "usermod", "-p", "*", user); err != nil {
			return nil, fmt.Errorf("provision %s: lock its password: %w", user, err)
		}
		if u, found, err = s.lookupUser(user); err != nil || !found {
			return nil, fmt.Errorf("provision %s: useradd succeeded but /etc/passwd has no such user (%v)", user, err)
		}
		did = append(did, "user "+user+" created")
	}
	var errs []error
	if len(keys) > 0 {
		if err := s.writeAuthorizedKeys(u, keys); err != nil {
			errs = append(errs, fmt.Errorf("provision %s: %w", user, err))
		} else {
			did = append(did, fmt.Sprintf("%d SSH keys for %s", len(keys), user))
		}
	}
	if fi, err := os.Stat(s.path("/etc/sudoers.d")); err == nil && fi.IsDir() {
		// sudo skips files in sudoers.d whose names contain a dot.
		name := "/etc/sudoers.d/90-gild-" + strings.ReplaceAll(user, ".", "_")
		if err := writeFileAtomic(s.path(name), []byte("# Written by gild-agent from the VM's first-boot data.\n"+user+" ALL=(ALL) NOPASSWD:ALL\n"), 0o440); err != nil {
			errs = append(errs, fmt.Errorf("provision %s: passwordless sudo: %w", user, err))
		} else {
			did = append(did, "passwordless sudo for "+user)
		}
	}
	return did, errors.Join(errs...)
}

// writeAuthorizedKeys writes the user's ~/.ssh/authorized_keys, owned by the user, as sshd's
// StrictModes wants: the directory 0700, the file 0600.
func (s System) writeAuthorizedKeys(u passwdEntry, keys []string) error {
	if !path.IsAbs(u.home) {
		return fmt.Errorf("write authorized_keys: home directory %q is not absolute", u.home)
	}
	home := s.path(u.home)
	if _, err := os.Stat(home); isNotExist(err) {
		// An account made without -m: its home is its own, as useradd -m would make it.
		if err := os.MkdirAll(home, 0o755); err != nil {
			return fmt.Errorf("write authorized_keys: %w", err)
		}
		if err := os.Lchown(home, u.uid, u.gid); err != nil {
			return fmt.Errorf("write authorized_keys: %w", err)
		}
	}
	dir := filepath.Join(home, ".ssh")
	if fi, err := os.Lstat(dir); err == nil && !fi.IsDir() {
		return fmt.Errorf("write authorized_keys: %s is not a directory", path.Join(u.home, ".ssh"))
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return fmt.Errorf("write authorized_keys: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("write authorized_keys: %w", err)
	}
	file := filepath.Join(dir, "authorized_keys")
	if err := writeFileAtomic(file, []byte(strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("write authorized_keys: %w", err)
	}
	for _, p := range []string{dir, file} {
		if err := os.Lchown(p, u.uid, u.gid); err != nil {
			return fmt.Errorf("write authorized_keys: %w", err)
		}
	}
	return nil
}
