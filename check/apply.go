package check

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Change is one thing Apply changed, with the value before and after, so that a
// correction is reported rather than silent.
type Change struct {
	Check  string `json:"check"`
	Target string `json:"target"` // what changed: "/etc/ssh/sshd_config mode", "sysctl net.ipv4.ip_forward"
	Before string `json:"before"`
	After  string `json:"after"`
}

// ErrNotRemediable is wrapped by Apply's error when a check, or the part of it that does
// not hold, cannot be corrected: package checks (installing software is the image's
// job), user, group, port, kernelModule and command checks, and properties such as a
// file's "contains" without the full contents to write.
var ErrNotRemediable = errors.New("not remediable")

// Remediable reports whether Apply can correct checks of c's kind.
func (c *Check) Remediable() bool {
	switch c.Kind {
	case KindFile, KindLineInFile, KindSetting, KindSysctl, KindService:
		return true
	}
	return false
}

// Apply corrects what of c does not hold in env and returns what it changed. A compliant
// check changes nothing. A check that cannot be evaluated (status Error) is not touched.
// When only part can be corrected, Apply makes the changes it can and returns them with
// an error wrapping ErrNotRemediable. Evaluate again afterwards to confirm.
func (c *Check) Apply(ctx context.Context, env Env) ([]Change, error) {
	o := c.outcome(ctx, env)
	switch o.status() {
	case StatusCompliant:
		return nil, nil
	case StatusError:
		phrases := make([]string, len(o.reasons))
		for i, r := range o.reasons {
			phrases[i] = r.Phrase
		}
		return nil, fmt.Errorf("apply %s: cannot evaluate it: %s", c.Name, strings.Join(phrases, " "))
	}
	var changes []Change
	var err error
	switch c.Kind {
	case KindFile:
		changes, err = c.applyFile(env)
	case KindLineInFile:
		changes, err = c.applyLineInFile(env)
	case KindSetting:
		changes, err = c.applySetting(env)
	case KindSysctl:
		changes, err = c.applySysctl(env)
	case KindService:
		changes, err = c.applyService(ctx, env)
	default:
		return nil, fmt.Errorf("apply %s: %s checks are %w", c.Name, c.Kind, ErrNotRemediable)
	}
	if err != nil {
		return changes, fmt.Errorf("apply %s: %w", c.Name, err)
	}
	return changes, nil
}

func (c *Check) change(target, before, after string) Change {
	return Change{Check: c.Name, Target: target, Before: before, After: after}
}

func (c *Check) applyFile(env Env) ([]Change, error) {
	cc := c.compiled
	hp, err := env.hostPath(c.Path, true)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(hp)
	if !orDefault(c.Exists, true) {
		if err != nil {
			return nil, nil
		}
		if fi.IsDir() {
			return nil, fmt.Errorf("%s is a directory; gild removes only files: %w", c.Path, ErrNotRemediable)
		}
		if err := os.Remove(hp); err != nil {
			return nil, fmt.Errorf("remove %s: %w", c.Path, err)
		}
		return []Change{c.change(c.Path, "exists", "absent")}, nil
	}
	var changes []Change
	var unfixable []string
	switch {
	case isNotExist(err):
		if c.Contents == nil {
			return nil, fmt.Errorf("file %s is missing and the check has no contents to create it with: %w", c.Path, ErrNotRemediable)
		}
		perm := uint32(0o644)
		if cc.hasMode {
			perm = cc.mode
		} else if cc.hasMaxMode {
			perm &= cc.maxMode
		}
		if err := writeFileAtomic(hp, []byte(*c.Contents), perm, nil); err != nil {
			return nil, err
		}
		changes = append(changes, c.change(c.Path, "absent", "created with contents "+describeContents(*c.Contents)+", mode "+octal(perm)))
	case err != nil:
		return nil, fmt.Errorf("stat %s: %w", c.Path, err)
	case !fi.Mode().IsRegular() && (c.Contents != nil || c.Contains != "" || cc.re != nil):
		return nil, fmt.Errorf("%s is %s, not a regular file: %w", c.Path, describeFileType(fi), ErrNotRemediable)
	case c.Contents != nil:
		data, err := os.ReadFile(hp)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", c.Path, err)
		}
		if string(data) != *c.Contents {
			if err := writeFileAtomic(hp, []byte(*c.Contents), unixPerm(fi.Mode()), fi); err != nil {
				return nil, err
			}
			changes = append(changes, c.change(c.Path+" contents", describeContents(string(data)), describeContents(*c.Contents)))
		}
	case c.Contains != "" || cc.re != nil:
		data, err := os.ReadFile(hp)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", c.Path, err)
		}
		if c.Contains != "" && !strings.Contains(string(data), c.Contains) {
			unfixable = append(unfixable, "contains")
		}
		if cc.re != nil && !cc.re.Match(data) {
			unfixable = append(unfixable, "matches")
		}
	}
	if fi, err = os.Stat(hp); err != nil {
		return changes, fmt.Errorf("stat %s: %w", c.Path, err)
	}
	// Owner before mode: chown clears the setuid and setgid bits.
	ownership, err := c.applyOwnership(env, hp, fi)
	changes = append(changes, ownership...)
	if err != nil {
		return changes, err
	}
	if fi, err = os.Stat(hp); err != nil {
		return changes, fmt.Errorf("stat %s: %w", c.Path, err)
	}
	perm := unixPerm(fi.Mode())
	want := perm
	if cc.hasMode {
		want = cc.mode
	}
	if cc.hasMaxMode {
		want = perm & cc.maxMode
	}
	if want != perm {
		if err := os.Chmod(hp, fileMode(want)); err != nil {
			return changes, fmt.Errorf("chmod %s: %w", c.Path, err)
		}
		changes = append(changes, c.change(c.Path+" mode", octal(perm), octal(want)))
	}
	if len(unfixable) > 0 {
		return changes, fmt.Errorf("file %s fails %s, which only a check with contents could correct: %w", c.Path, strings.Join(unfixable, " and "), ErrNotRemediable)
	}
	return changes, nil
}

func (c *Check) applyOwnership(env Env, hp string, fi fs.FileInfo) ([]Change, error) {
	if c.Owner == "" && c.Group == "" {
		return nil, nil
	}
	uid, gid, ok := ownerOf(fi)
	if !ok {
		return nil, fmt.Errorf("cannot read the owner of %s on this platform", c.Path)
	}
	var changes []Change
	newUID, newGID := -1, -1
	if c.Owner != "" {
		users, err := env.passwd()
		if err != nil {
			return nil, fmt.Errorf("read /etc/passwd: %w", err)
		}
		u, found := findUser(users, c.Owner)
		if !found {
			return nil, fmt.Errorf("owner %q is not in /etc/passwd", c.Owner)
		}
		if u.uid != uid {
			newUID = u.uid
			changes = append(changes, c.change(c.Path+" owner", userName(users, uid), c.Owner))
		}
	}
	if c.Group != "" {
		groups, err := env.groups()
		if err != nil {
			return nil, fmt.Errorf("read /etc/group: %w", err)
		}
		g, found := findGroup(groups, c.Group)
		if !found {
			return nil, fmt.Errorf("group %q is not in /etc/group", c.Group)
		}
		if g.gid != gid {
			newGID = g.gid
			changes = append(changes, c.change(c.Path+" group", groupName(groups, gid), c.Group))
		}
	}
	if newUID == -1 && newGID == -1 {
		return nil, nil
	}
	if err := os.Chown(hp, newUID, newGID); err != nil {
		return nil, fmt.Errorf("chown %s: %w", c.Path, err)
	}
	return changes, nil
}

// writeFileAtomic replaces hp with data through a temporary file in the same directory
// and a rename, so that a reader (sshd reading its configuration) never sees half a file.
// like, when not nil, is the file being replaced, whose owner the new one keeps.
func writeFileAtomic(hp string, data []byte, perm uint32, like fs.FileInfo) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(hp), "."+filepath.Base(hp)+".gild-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", hp, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", hp, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", hp, err)
	}
	if like != nil {
		if uid, gid, ok := ownerOf(like); ok {
			if err = tmp.Chown(uid, gid); err != nil {
				return fmt.Errorf("write %s: keep its owner: %w", hp, err)
			}
		}
	}
	// After chown, which clears the setuid and setgid bits.
	if err = tmp.Chmod(fileMode(perm)); err != nil {
		return fmt.Errorf("write %s: %w", hp, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", hp, err)
	}
	if err = os.Rename(tmp.Name(), hp); err != nil {
		return fmt.Errorf("write %s: %w", hp, err)
	}
	return nil
}

func (c *Check) applyLineInFile(env Env) ([]Change, error) {
	present := orDefault(c.Present, true)
	re := c.compiled.re
	hp, err := env.hostPath(c.Path, true)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(hp)
	missing := isNotExist(err)
	if err != nil && !missing {
		return nil, fmt.Errorf("stat %s: %w", c.Path, err)
	}
	if missing && !present {
		return nil, nil
	}
	if present && c.Line == "" {
		return nil, fmt.Errorf("no line of %s matches %s and the check has no line to add: %w", c.Path, describeRegexp(re), ErrNotRemediable)
	}
	var lines []string
	if !missing {
		data, err := os.ReadFile(hp)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", c.Path, err)
		}
		lines = splitLines(string(data))
	}
	s := c.scanLines(lines)
	var out []string
	var changes []Change
	switch {
	case present && (re == nil || len(s.matched) == 0):
		if re == nil && len(s.exact) > 0 {
			return nil, nil
		}
		out = append(lines, c.Line)
		changes = append(changes, c.change(fmt.Sprintf("%s line %d", c.Path, len(out)), "(none)", quote(c.Line)))
	case present:
		// The first matching line becomes the line; later matching lines go, so that one
		// setting is said once.
		first := s.matched[0]
		for i, l := range lines {
			switch {
			case i == first:
				out = append(out, c.Line)
				if l != c.Line {
					changes = append(changes, c.change(fmt.Sprintf("%s line %d", c.Path, i+1), quote(l), quote(c.Line)))
				}
			case re.MatchString(l):
				changes = append(changes, c.change(fmt.Sprintf("%s line %d", c.Path, i+1), quote(l), "(removed)"))
			default:
				out = append(out, l)
			}
		}
	default:
		for i, l := range lines {
			if (c.Line != "" && l == c.Line) || (c.Line == "" && re.MatchString(l)) {
				changes = append(changes, c.change(fmt.Sprintf("%s line %d", c.Path, i+1), quote(l), "(removed)"))
				continue
			}
			out = append(out, l)
		}
	}
	if len(changes) == 0 {
		return nil, nil
	}
	text := strings.Join(out, "\n")
	if len(out) > 0 {
		text += "\n"
	}
	perm := uint32(0o644)
	if !missing {
		perm = unixPerm(fi.Mode())
	} else {
		fi = nil
	}
	if err := writeFileAtomic(hp, []byte(text), perm, fi); err != nil {
		return nil, err
	}
	return changes, nil
}

// sysctlPersistPath is where Apply persists sysctl values. systemd-sysctl applies
// /etc/sysctl.d in lexical order, so 99- comes after the distribution's and wins.
const sysctlPersistPath = "/etc/sysctl.d/99-gild.conf"

func (c *Check) applySysctl(env Env) ([]Change, error) {
	cc := c.compiled
	if !env.Live {
		return nil, fmt.Errorf("setting sysctl %s needs the running system; %s is offline", cc.sysctlKey, env.describe())
	}
	want := normalizeSysctl(string(c.Value))
	hp, err := env.hostPath(cc.sysctlPath, true)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(hp)
	if err != nil {
		return nil, fmt.Errorf("read sysctl %s: %w", cc.sysctlKey, err)
	}
	var changes []Change
	if before := normalizeSysctl(string(data)); before != want {
		if err := os.WriteFile(hp, []byte(want+"\n"), 0); err != nil {
			return nil, fmt.Errorf("write sysctl %s: %w", cc.sysctlKey, err)
		}
		changes = append(changes, c.change("sysctl "+cc.sysctlKey, before, want))
	}
	persisted, err := c.persistSysctl(env, want)
	if persisted != nil {
		changes = append(changes, *persisted)
	}
	return changes, err
}

// persistSysctl writes "key = value" into sysctlPersistPath, replacing the key's line if
// there is one, so that the value survives a reboot.
func (c *Check) persistSysctl(env Env, value string) (*Change, error) {
	key := c.compiled.sysctlKey
	hp, err := env.hostPath(sysctlPersistPath, true)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(hp), 0o755); err != nil {
		return nil, fmt.Errorf("persist sysctl %s: %w", key, err)
	}
	data, err := os.ReadFile(hp)
	if err != nil && !isNotExist(err) {
		return nil, fmt.Errorf("persist sysctl %s: %w", key, err)
	}
	lines := splitLines(string(data))
	if len(lines) == 0 {
		lines = []string{"# Written by gild when it corrects a sysctl check; change the check, not this file."}
	}
	line := key + " = " + value
	before := "(none)"
	found := false
	for i, l := range lines {
		k, _, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(l), "-"), "=")
		if !ok || strings.HasPrefix(strings.TrimSpace(l), "#") || strings.HasPrefix(strings.TrimSpace(l), ";") {
			continue
		}
		if sysctlKeysEqual(strings.TrimSpace(k), key) {
			if found {
				continue
			}
			found = true
			if l == line {
				return nil, nil
			}
			before = l
			lines[i] = line
		}
	}
	if !found {
		lines = append(lines, line)
	}
	if err := writeFileAtomic(hp, []byte(strings.Join(lines, "\n")+"\n"), 0o644, nil); err != nil {
		return nil, fmt.Errorf("persist sysctl %s: %w", key, err)
	}
	ch := c.change(sysctlPersistPath, before, line)
	return &ch, nil
}

// sysctlKeysEqual compares keys written with dots or slashes, as sysctl(8) accepts both.
func sysctlKeysEqual(a, b string) bool {
	norm := func(k string) string {
		if strings.Contains(k, "/") {
			return strings.Trim(k, "/")
		}
		return strings.ReplaceAll(k, ".", "/")
	}
	return norm(a) == norm(b)
}

func (c *Check) applyService(ctx context.Context, env Env) ([]Change, error) {
	unit := c.compiled.unit
	// Enablement is files, which systemctl --root writes on any root; starting and
	// stopping asks the running systemd, which has no root but its own.
	systemctl := func(args ...string) error {
		if root := env.root(); root != "/" && args[0] != "start" && args[0] != "stop" {
			args = append([]string{"--root=" + root}, args...)
		}
		out, err := env.runner().Run(ctx, "systemctl", args...)
		if err != nil {
			return fmt.Errorf("systemctl %s: %w", strings.Join(args, " "), err)
		}
		if out.ExitStatus != 0 {
			return fmt.Errorf("systemctl %s: exit status %d: %s", strings.Join(args, " "), out.ExitStatus, strings.TrimSpace(string(out.Stderr)))
		}
		return nil
	}
	var changes []Change
	state, err := env.unitState(unit)
	if err != nil {
		return nil, err
	}
	// Each step re-reads the state, since an earlier one (unmask) changes it.
	step := func(target, verb string) error {
		before := state
		if err := systemctl(verb, unit); err != nil {
			return err
		}
		if state, err = env.unitState(unit); err != nil {
			return err
		}
		changes = append(changes, c.change(unit+" "+target, before, state))
		return nil
	}
	if c.Masked != nil {
		switch {
		case *c.Masked && state != unitMasked:
			if err := step("masked", "mask"); err != nil {
				return changes, err
			}
		case !*c.Masked && state == unitMasked:
			if err := step("masked", "unmask"); err != nil {
				return changes, err
			}
		}
	}
	if c.Enabled != nil {
		if *c.Enabled && state == unitMasked {
			if err := step("masked", "unmask"); err != nil {
				return changes, err
			}
		}
		switch {
		case *c.Enabled && state == unitNotFound:
			return changes, fmt.Errorf("unit %s has no unit file to enable: %w", unit, ErrNotRemediable)
		case *c.Enabled && state == unitDisabled:
			if err := step("enabled", "enable"); err != nil {
				return changes, err
			}
		case !*c.Enabled && state == unitStatic:
			return changes, fmt.Errorf("unit %s is static and cannot be disabled; check masked: true instead: %w", unit, ErrNotRemediable)
		case !*c.Enabled && state == unitEnabled:
			if err := step("enabled", "disable"); err != nil {
				return changes, err
			}
		}
	}
	if c.Active != nil {
		var probe outcome
		active, ok := c.unitActiveState(ctx, env, &probe)
		if !ok {
			return changes, errors.New(probe.reasons[0].Phrase)
		}
		verb := ""
		switch {
		case *c.Active && !isActiveState(active):
			verb = "start"
		case !*c.Active && (isActiveState(active) || active == "activating"):
			verb = "stop"
		}
		if verb != "" {
			if err := systemctl(verb, unit); err != nil {
				return changes, err
			}
			after, _ := c.unitActiveState(ctx, env, &probe)
			changes = append(changes, c.change(unit+" active", active, after))
		}
	}
	return changes, nil
}
