package check

import (
	"os"
	"strings"
	"sync"
	"time"
)

// dpkgStatusPath is where dpkg keeps what is installed.
const dpkgStatusPath = "/var/lib/dpkg/status"

// dpkgPackage is what a paragraph of dpkg's status file says about one package.
type dpkgPackage struct {
	name    string
	arch    string
	status  string // "install ok installed"
	version string
}

// installed reports whether dpkg considers the package installed: the third word of its
// status is "installed" (not config-files, half-installed, unpacked...).
func (p dpkgPackage) installed() bool { return p.state() == "installed" }

func (p dpkgPackage) state() string {
	f := strings.Fields(p.status)
	if len(f) < 3 {
		return "unknown"
	}
	return f[2]
}

// parseDpkgStatus reads the deb822 paragraphs of dpkg's status file, keeping the fields
// checks use. Continuation lines (starting with a space) belong to the previous field and
// are skipped.
func parseDpkgStatus(data []byte) map[string][]dpkgPackage {
	db := map[string][]dpkgPackage{}
	var cur dpkgPackage
	flush := func() {
		if cur.name != "" {
			db[cur.name] = append(db[cur.name], cur)
		}
		cur = dpkgPackage{}
	}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch key {
		case "Package":
			cur.name = value
		case "Architecture":
			cur.arch = value
		case "Status":
			cur.status = value
		case "Version":
			cur.version = value
		}
	}
	flush()
	return db
}

// dpkgCache keeps the last status file read per path, reused while its size and
// modification time stay the same: a set with fifty package checks reads it once.
var dpkgCache struct {
	sync.Mutex
	entries map[string]dpkgCacheEntry
}

type dpkgCacheEntry struct {
	size    int64
	modTime time.Time
	db      map[string][]dpkgPackage
}

func (e Env) dpkgStatus() (map[string][]dpkgPackage, error) {
	hp, err := e.hostPath(dpkgStatusPath, true)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(hp)
	if err != nil {
		return nil, err
	}
	dpkgCache.Lock()
	defer dpkgCache.Unlock()
	if c, ok := dpkgCache.entries[hp]; ok && c.size == fi.Size() && c.modTime.Equal(fi.ModTime()) {
		return c.db, nil
	}
	data, err := os.ReadFile(hp)
	if err != nil {
		return nil, err
	}
	db := parseDpkgStatus(data)
	if dpkgCache.entries == nil {
		dpkgCache.entries = map[string]dpkgCacheEntry{}
	}
	dpkgCache.entries[hp] = dpkgCacheEntry{size: fi.Size(), modTime: fi.ModTime(), db: db}
	return db, nil
}

func (c *Check) evalPackage(env Env, o *outcome) {
	wantInstalled := orDefault(c.Installed, true)
	want := "installed"
	switch {
	case !wantInstalled:
		want = "not installed"
	case c.Version != "":
		want = "installed, version " + c.Version
	case c.MinVersion != "":
		want = "installed, version at least " + c.MinVersion
	}
	db, err := env.dpkgStatus()
	if err != nil {
		o.property(want, "unknown")
		o.readError(dpkgStatusPath, err)
		return
	}
	var inst *dpkgPackage
	state := "not known to dpkg"
	for _, p := range db[c.Package] {
		if p.installed() {
			inst = &p
			break
		}
		state = p.state()
	}
	if inst == nil {
		o.property(want, "not installed ("+state+")")
		if wantInstalled {
			o.mismatch(CodePackageNotInstalled, "Package %s is not installed (%s); expected it installed.", c.Package, state)
		}
		return
	}
	o.property(want, "installed, version "+inst.version)
	switch {
	case !wantInstalled:
		o.mismatch(CodePackageInstalled, "Package %s is installed (version %s); expected it not installed.", c.Package, inst.version)
	case c.Version != "" && CompareDebianVersions(inst.version, c.Version) != 0:
		o.mismatch(CodePackageVersionMismatch, "Package %s has version %s; expected %s.", c.Package, inst.version, c.Version)
	case c.MinVersion != "" && CompareDebianVersions(inst.version, c.MinVersion) < 0:
		o.mismatch(CodePackageVersionTooOld, "Package %s has version %s, older than the minimum %s.", c.Package, inst.version, c.MinVersion)
	}
}
