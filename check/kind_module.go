package check

import (
	"bufio"
	"fmt"
	"path"
	"sort"
	"strings"
)

// modprobeDirs are where modprobe.d(5) reads configuration, a file in an earlier
// directory hiding one of the same name in a later one.
var modprobeDirs = []string{"/etc/modprobe.d", "/run/modprobe.d", "/usr/local/lib/modprobe.d", "/usr/lib/modprobe.d", "/lib/modprobe.d"}

// moduleDirective is a modprobe.d line that keeps a module from loading.
type moduleDirective struct {
	file string
	line string
}

// modprobeConfigFiles lists the root's modprobe.d files in the order modprobe reads them,
// by name, without the ones hidden by a file of the same name in a directory that wins.
func (e Env) modprobeConfigFiles() ([]string, error) {
	byName := map[string]string{}
	for _, dir := range modprobeDirs {
		entries, err := e.readDir(dir)
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return nil, fmt.Errorf("read %s: %w", dir, withoutHostPath(err))
		}
		for _, ent := range entries {
			name := ent.Name()
			if !strings.HasSuffix(name, ".conf") {
				continue
			}
			if _, hidden := byName[name]; !hidden {
				byName[name] = path.Join(dir, name)
			}
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	files := make([]string, len(names))
	for i, n := range names {
		files[i] = byName[n]
	}
	return files, nil
}

// blacklistDirectives finds what keeps module from loading: "blacklist module" (no
// loading by alias, at boot) and "install module /bin/false" or "/bin/true" (no loading
// at all, the CIS benchmarks' "disabled").
func (e Env) blacklistDirectives(module string) ([]moduleDirective, error) {
	files, err := e.modprobeConfigFiles()
	if err != nil {
		return nil, err
	}
	var found []moduleDirective
	for _, file := range files {
		data, err := e.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", file, withoutHostPath(err))
		}
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		pending := ""
		for sc.Scan() {
			line := pending + sc.Text()
			if strings.HasSuffix(line, "\\") {
				pending = strings.TrimSuffix(line, "\\") + " "
				continue
			}
			pending = ""
			if i := strings.IndexByte(line, '#'); i >= 0 {
				line = line[:i]
			}
			f := strings.Fields(line)
			if len(f) < 2 || strings.ReplaceAll(f[1], "-", "_") != module {
				continue
			}
			switch {
			case f[0] == "blacklist":
				found = append(found, moduleDirective{file: file, line: strings.Join(f, " ")})
			case f[0] == "install" && len(f) >= 3 && (path.Base(f[2]) == "false" || path.Base(f[2]) == "true"):
				found = append(found, moduleDirective{file: file, line: strings.Join(f, " ")})
			}
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return found, nil
}

func describeDirectives(ds []moduleDirective) string {
	if len(ds) == 0 {
		return "not blacklisted"
	}
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = quote(d.line) + " in " + d.file
	}
	return "blacklisted by " + strings.Join(parts, ", ")
}

// loadedModules reads /proc/modules. A live kernel without one was built without
// loadable modules: nothing is loaded.
func (e Env) loadedModules() (map[string]bool, bool, error) {
	data, err := e.ReadFile("/proc/modules")
	if isNotExist(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	loaded := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			loaded[f[0]] = true
		}
	}
	return loaded, true, nil
}

func (c *Check) evalKernelModule(env Env, o *outcome) {
	module := c.compiled.module
	if c.Loaded != nil {
		want := yesNo(*c.Loaded, "loaded", "not loaded")
		if !env.Live {
			o.property(want, "unknown")
			o.notLive(env, "Whether module "+module+" is loaded")
		} else if loaded, supported, err := env.loadedModules(); err != nil {
			o.property(want, "unknown")
			o.readError("/proc/modules", err)
		} else {
			is := loaded[module]
			actual := yesNo(is, "loaded", "not loaded")
			if !supported {
				actual = "not loaded (the kernel has no loadable modules: no /proc/modules)"
			}
			o.property(want, actual)
			switch {
			case *c.Loaded && !is:
				o.mismatch(CodeModuleNotLoaded, "Kernel module %s is %s; expected it loaded.", module, actual)
			case !*c.Loaded && is:
				o.mismatch(CodeModuleLoaded, "Kernel module %s is loaded; expected it not loaded.", module)
			}
		}
	}
	if c.Blacklisted != nil {
		want := yesNo(*c.Blacklisted, "blacklisted", "not blacklisted")
		ds, err := env.blacklistDirectives(module)
		if err != nil {
			o.property(want, "unknown")
			o.error(CodeReadError, "Cannot read the modprobe configuration: %v.", err)
			return
		}
		o.property(want, describeDirectives(ds))
		switch {
		case *c.Blacklisted && len(ds) == 0:
			o.mismatch(CodeModuleNotBlacklisted, "Kernel module %s is not blacklisted: no \"blacklist %s\" or \"install %s /bin/false\" in modprobe.d.", module, module, module)
		case !*c.Blacklisted && len(ds) > 0:
			o.mismatch(CodeModuleBlacklisted, "Kernel module %s is %s; expected it loadable.", module, describeDirectives(ds))
		}
	}
}
