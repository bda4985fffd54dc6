package check

import (
	"bufio"
	"context"
	"fmt"
	"path"
	"path/filepath"
	"strings"
)

// Where systemd looks for unit files, in its order of precedence. /lib is kept beside
// /usr/lib for roots without the merged /usr.
var unitDirs = []string{"/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"}

// Unit enablement states, as systemctl is-enabled names them.
const (
	unitEnabled  = "enabled"
	unitDisabled = "disabled"
	unitStatic   = "static"
	unitMasked   = "masked"
	unitNotFound = "not-found"
)

// unitFile finds the file of unit (or of its template, for "getty@tty1.service"): the
// first of that name in unitDirs' order. masked says that file is a link to /dev/null,
// which is how both an administrator (in /etc) and a package (in /lib) mask a unit.
func (e Env) unitFile(unit string) (file string, masked, found bool) {
	names := []string{unit}
	if at := strings.IndexByte(unit, '@'); at >= 0 {
		names = append(names, unit[:at+1]+unit[strings.LastIndexByte(unit, '.'):])
	}
	for _, name := range names {
		for _, dir := range unitDirs {
			p := path.Join(dir, name)
			if target, err := e.readlink(p); err == nil && target == "/dev/null" {
				return p, true, true
			}
			if fi, err := e.stat(p); err == nil && fi.Mode().IsRegular() {
				return p, false, true
			}
		}
	}
	return "", false, false
}

// unitState judges a unit's enablement from its files alone, so that it works on an
// offline root: masked when its unit file is a link to /dev/null; enabled when a .wants or
// .requires directory under /etc/systemd/system links it; static when its file has no
// [Install] section to enable it by; disabled otherwise.
func (e Env) unitState(unit string) (state string, err error) {
	file, masked, found := e.unitFile(unit)
	switch {
	case !found:
		return unitNotFound, nil
	case masked:
		return unitMasked, nil
	}
	etc, err := e.hostPath("/etc/systemd/system", true)
	if err != nil {
		return "", err
	}
	for _, pattern := range []string{"*.wants", "*.requires"} {
		links, err := filepath.Glob(filepath.Join(etc, pattern, unit))
		if err != nil {
			return "", err
		}
		if len(links) > 0 {
			return unitEnabled, nil
		}
	}
	installable, err := e.hasInstallSection(file)
	if err != nil {
		return "", err
	}
	if !installable {
		return unitStatic, nil
	}
	return unitDisabled, nil
}

// hasInstallSection reports whether a unit file says how to enable it: an [Install]
// section with WantedBy, RequiredBy, UpheldBy, Alias or Also.
func (e Env) hasInstallSection(file string) (bool, error) {
	data, err := e.ReadFile(file)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", file, withoutHostPath(err))
	}
	inInstall := false
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			inInstall = line == "[Install]"
			continue
		}
		if !inInstall {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(value) == "" {
			continue
		}
		switch strings.TrimSpace(key) {
		case "WantedBy", "RequiredBy", "UpheldBy", "Alias", "Also":
			return true, nil
		}
	}
	return false, sc.Err()
}

// unitActiveState asks systemd whether unit is running. ok is false when the answer is
// not available; the outcome then has an Error reason saying why.
func (c *Check) unitActiveState(ctx context.Context, env Env, o *outcome) (state string, ok bool) {
	unit := c.compiled.unit
	switch {
	case !env.Live:
		o.notLive(env, "Whether unit "+unit+" is active")
		return "", false
	case !env.systemdRunning():
		o.error(CodeSystemdNotRunning, "Whether unit %s is active needs systemd, which is not running (no /run/systemd/system).", unit)
		return "", false
	}
	out, err := env.runner().Run(ctx, "systemctl", "is-active", unit)
	state = strings.TrimSpace(string(out.Stdout))
	if err != nil || state == "" {
		detail := strings.TrimSpace(string(out.Stderr))
		if err != nil {
			detail = err.Error()
		}
		o.error(CodeServiceQueryFailed, "Cannot ask systemd whether unit %s is active: %s.", unit, detail)
		return "", false
	}
	return state, true
}

// isActiveState reports whether systemd's active state means running.
func isActiveState(s string) bool { return s == "active" || s == "reloading" || s == "refreshing" }

func (c *Check) evalService(ctx context.Context, env Env, o *outcome) {
	unit := c.compiled.unit
	state, err := env.unitState(unit)
	if err != nil {
		o.error(CodeReadError, "Cannot judge whether unit %s is enabled: %v.", unit, err)
		return
	}
	if c.Masked != nil {
		masked := state == unitMasked
		o.property(yesNo(*c.Masked, "masked", "not masked"), yesNo(masked, "masked", "not masked"))
		switch {
		case *c.Masked && !masked:
			o.mismatch(CodeServiceNotMasked, "Unit %s is not masked (it is %s); expected it masked.", unit, state)
		case !*c.Masked && masked:
			o.mismatch(CodeServiceMasked, "Unit %s is masked (linked to /dev/null); expected it not masked.", unit)
		}
	}
	if c.Enabled != nil {
		o.property(yesNo(*c.Enabled, "enabled", "not enabled"), state)
		switch {
		case *c.Enabled && state == unitNotFound:
			o.mismatch(CodeServiceNotFound, "Unit %s has no unit file; expected it enabled.", unit)
		case *c.Enabled && state == unitMasked:
			o.mismatch(CodeServiceMasked, "Unit %s is masked (linked to /dev/null); expected it enabled.", unit)
		case *c.Enabled && state == unitDisabled:
			o.mismatch(CodeServiceNotEnabled, "Unit %s is disabled; expected it enabled.", unit)
		case !*c.Enabled && state == unitEnabled:
			o.mismatch(CodeServiceEnabled, "Unit %s is enabled; expected it not enabled.", unit)
		case !*c.Enabled && state == unitStatic:
			o.mismatch(CodeServiceStatic, "Unit %s is static: it has no [Install] section, so it cannot be disabled; mask it to keep it from starting.", unit)
		}
	}
	if c.Active != nil {
		if state == unitNotFound && !*c.Active {
			o.property("not active", "no unit file")
			return
		}
		active, ok := c.unitActiveState(ctx, env, o)
		if !ok {
			o.property(yesNo(*c.Active, "active", "not active"), "unknown")
			return
		}
		o.property(yesNo(*c.Active, "active", "not active"), active)
		switch {
		case *c.Active && !isActiveState(active):
			o.mismatch(CodeServiceNotActive, "Unit %s is %s; expected it active.", unit, active)
		case !*c.Active && (isActiveState(active) || active == "activating"):
			o.mismatch(CodeServiceActive, "Unit %s is %s; expected it not active.", unit, active)
		}
	}
}
