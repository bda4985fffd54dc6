package check

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"path"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/gildhq/gild/spelling"
)

// Set is a validated list of checks with unique names, their regular expressions
// compiled. The zero Set is empty. Build one with Parse (JSON) or NewSet (checks decoded
// some other way, such as from YAML).
type Set struct {
	checks []Check
}

// NewSet validates checks and compiles them into a Set. The error, a Problems, lists
// every problem at once, at paths such as "checks[3].path".
func NewSet(checks []Check) (Set, error) {
	return newSet(checks, nil)
}

// newSet is NewSet that drops problems at the paths in skip, where decoding already
// reported one: a field that failed to decode must not also be reported as missing.
func newSet(checks []Check, skip Problems) (Set, error) {
	owned := make([]Check, len(checks))
	copy(owned, checks)
	problems := append(Problems(nil), skip...)
	seen := map[string]int{}
	for i := range owned {
		at := fmt.Sprintf("checks[%d]", i)
		for _, p := range owned[i].compile(at) {
			if !skip.covers(p.Path) {
				problems = append(problems, p)
			}
		}
		name := owned[i].Name
		if name == "" {
			continue
		}
		if first, dup := seen[name]; dup {
			problems.add(at+".name", "%q is already the name of checks[%d]; names must be unique", name, first)
		} else {
			seen[name] = i
		}
	}
	if len(problems) > 0 {
		sort.SliceStable(problems, func(a, b int) bool { return pathLess(problems[a].Path, problems[b].Path) })
		return Set{}, problems
	}
	return Set{checks: owned}, nil
}

// Len is the number of checks.
func (s Set) Len() int { return len(s.checks) }

// Checks returns the checks, in order. They are copies, ready to Evaluate.
func (s Set) Checks() []Check {
	out := make([]Check, len(s.checks))
	copy(out, s.checks)
	return out
}

// Evaluate evaluates every check in order. A check that starts after ctx ends gets an
// Error result with code Canceled, so that there is one result per check.
func (s Set) Evaluate(ctx context.Context, env Env) []Result {
	results := make([]Result, len(s.checks))
	for i := range s.checks {
		results[i] = s.checks[i].Evaluate(ctx, env)
	}
	return results
}

// MarshalJSON writes the set as {"checks": [...]}, which Parse reads back.
func (s Set) MarshalJSON() ([]byte, error) {
	checks := s.checks
	if checks == nil {
		checks = []Check{}
	}
	return json.Marshal(struct {
		Checks []Check `json:"checks"`
	}{checks})
}

// UnmarshalJSON reads a set with Parse, so that a Set inside another JSON document is
// validated as strictly as one on its own.
func (s *Set) UnmarshalJSON(data []byte) error {
	set, err := Parse(data)
	if err != nil {
		return err
	}
	*s = set
	return nil
}

// Problem is one thing wrong with a check set, at a JSON path such as "checks[3].path".
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// Problems is every problem found in a check set, so that its author fixes them in one
// round. It is the error Parse and NewSet return.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

func (ps *Problems) add(at, format string, args ...any) {
	*ps = append(*ps, Problem{Path: at, Message: fmt.Sprintf(format, args...)})
}

// covers reports whether a problem at p is already reported by one of ps: at the same
// path or at a path that contains it.
func (ps Problems) covers(p string) bool {
	for _, q := range ps {
		if p == q.Path || strings.HasPrefix(p, q.Path+".") || strings.HasPrefix(p, q.Path+"[") {
			return true
		}
	}
	return false
}

// pathLess orders paths with their indexes compared as numbers: checks[2] before checks[10].
func pathLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := leadingDigits(a), leadingDigits(b)
		if da != "" && db != "" {
			na, _ := strconv.Atoi(da)
			nb, _ := strconv.Atoi(db)
			if na != nb {
				return na < nb
			}
			a, b = a[len(da):], b[len(db):]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func leadingDigits(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}

// compiled is what validating a check derived from it, kept so that evaluation never
// parses or compiles again.
type compiled struct {
	re          *regexp.Regexp // file: over the contents; lineInFile: per line
	stdoutRE    *regexp.Regexp
	mode        uint32
	hasMode     bool
	maxMode     uint32
	hasMaxMode  bool
	unit        string // with its type suffix
	sysctlPath  string // under /proc/sys
	sysctlKey   string // dotted, as sysctl.conf writes it
	address     netip.Addr
	protocol    string
	module      string // with "-" written "_", as the kernel names modules
	timeout     time.Duration
	shellArgs   []string // the arguments to /bin/sh
	commandText string   // the script, for phrases
}

// Default values the package doc promises.
const (
	DefaultCommandTimeout = 60 * time.Second
	MaxCommandTimeout     = 24 * time.Hour
)

// commonFields are every kind's.
var commonFields = []string{"name", "kind", "description"}

// kindFields are the fields each kind accepts besides the common ones.
var kindFields = map[Kind][]string{
	KindFile:         {"path", "exists", "contents", "contains", "matches", "mode", "maxMode", "owner", "group"},
	KindLineInFile:   {"path", "line", "matches", "present"},
	KindSetting:      {"path", "key", "value", "present", "syntax", "default"},
	KindPackage:      {"package", "installed", "version", "minVersion"},
	KindService:      {"unit", "enabled", "active", "masked"},
	KindSysctl:       {"key", "value"},
	KindUser:         {"user", "exists", "uid", "shell", "home", "passwordLocked", "passwordEmpty"},
	KindGroup:        {"group", "exists", "gid", "members", "membersToInclude", "membersToExclude"},
	KindPort:         {"port", "protocol", "address", "listening"},
	KindKernelModule: {"module", "loaded", "blacklisted"},
	KindCommand:      {"command", "inline", "timeout", "exitStatus", "stdoutContains", "stdoutMatches"},
}

// checkField is a Check field by its JSON name.
type checkField struct {
	name  string
	index int
}

// checkFields lists Check's fields in declaration order; fieldByName finds them by JSON name.
var checkFields, fieldByName = func() ([]checkField, map[string]int) {
	t := reflect.TypeFor[Check]()
	var fields []checkField
	byName := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		fields = append(fields, checkField{name: name, index: i})
		byName[name] = i
	}
	return fields, byName
}()

// setFields returns the JSON names of c's fields that are not their zero value.
func (c *Check) setFields() []string {
	v := reflect.ValueOf(c).Elem()
	var set []string
	for _, f := range checkFields {
		if !v.Field(f.index).IsZero() {
			set = append(set, f.name)
		}
	}
	return set
}

func kindNames() string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// compile validates c, reporting problems under at ("checks[3]"), and on success keeps what
// evaluation needs in c.compiled.
func (c *Check) compile(at string) Problems {
	var ps Problems
	switch {
	case c.Name == "":
		ps.add(at+".name", "required")
	case len(c.Name) > 200:
		ps.add(at+".name", "longer than 200 bytes")
	case strings.IndexFunc(c.Name, unicode.IsControl) >= 0:
		ps.add(at+".name", "contains a control character")
	}
	allowed, known := kindFields[c.Kind]
	switch {
	case c.Kind == "":
		ps.add(at+".kind", "required; one of %s", kindNames())
	case !known:
		msg := fmt.Sprintf("unknown kind %q", c.Kind)
		if s := suggest(string(c.Kind), kindStrings()); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		ps.add(at+".kind", "%s; one of %s", msg, kindNames())
	}
	if !known {
		return ps
	}
	for _, name := range c.setFields() {
		if !contains(commonFields, name) && !contains(allowed, name) {
			ps.add(at+"."+name, "not a field of a %s check (its fields: %s)", c.Kind, strings.Join(allowed, ", "))
		}
	}
	cc := &compiled{}
	switch c.Kind {
	case KindFile:
		c.compileFile(at, cc, &ps)
	case KindLineInFile:
		c.compileLineInFile(at, cc, &ps)
	case KindSetting:
		c.compileSetting(at, &ps)
	case KindPackage:
		c.compilePackage(at, &ps)
	case KindService:
		c.compileService(at, cc, &ps)
	case KindSysctl:
		c.compileSysctl(at, cc, &ps)
	case KindUser:
		c.compileUser(at, &ps)
	case KindGroup:
		c.compileGroup(at, &ps)
	case KindPort:
		c.compilePort(at, cc, &ps)
	case KindKernelModule:
		c.compileKernelModule(at, cc, &ps)
	case KindCommand:
		c.compileCommand(at, cc, &ps)
	}
	if len(ps) == 0 {
		c.compiled = cc
	}
	return ps
}

func kindStrings() []string {
	out := make([]string, len(Kinds))
	for i, k := range Kinds {
		out[i] = string(k)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func isTrue(b *bool) bool { return b != nil && *b }

// orDefault reads an optional boolean with its default.
func orDefault(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

// checkPath validates an absolute, clean path field.
func checkPath(ps *Problems, at, p string, required bool) {
	switch {
	case p == "":
		if required {
			ps.add(at, "required")
		}
	case !path.IsAbs(p):
		ps.add(at, "%q is not an absolute path", p)
	case strings.ContainsRune(p, 0):
		ps.add(at, "contains a NUL byte")
	case path.Clean(p) != p:
		ps.add(at, "write it as %q", path.Clean(p))
	}
}

// checkAccountName validates a user or group name as it appears in /etc/passwd and
// /etc/group: no field or list separators, no spaces.
func checkAccountName(ps *Problems, at, name string, required bool) {
	switch {
	case name == "":
		if required {
			ps.add(at, "required")
		}
	case strings.ContainsAny(name, ":,\n\r\t /") || strings.IndexFunc(name, unicode.IsControl) >= 0:
		ps.add(at, "%q is not a valid account name", name)
	}
}

func compileRegexp(ps *Problems, at, expr string) *regexp.Regexp {
	if expr == "" {
		return nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		ps.add(at, "not a valid regular expression: %v", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		return nil
	}
	return re
}

// parseMode reads a permission written in octal ("0644", "644", "4755").
func parseMode(s string) (uint32, error) {
	if len(s) < 3 || len(s) > 4 {
		return 0, fmt.Errorf("%q is not an octal mode such as \"0644\"", s)
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not an octal mode such as \"0644\"", s)
	}
	return uint32(v), nil
}

func (c *Check) compileFile(at string, cc *compiled, ps *Problems) {
	checkPath(ps, at+".path", c.Path, true)
	if !orDefault(c.Exists, true) {
		for _, f := range c.setFields() {
			if contains(kindFields[KindFile], f) && f != "path" && f != "exists" {
				ps.add(at+"."+f, "a file that must not exist has no %s", f)
			}
		}
		return
	}
	if c.Mode != "" && c.MaxMode != "" {
		ps.add(at+".maxMode", "give mode (exact) or maxMode (at most), not both")
	}
	if c.Mode != "" {
		m, err := parseMode(c.Mode)
		if err != nil {
			ps.add(at+".mode", "%v", err)
		}
		cc.mode, cc.hasMode = m, err == nil
	}
	if c.MaxMode != "" {
		m, err := parseMode(c.MaxMode)
		if err != nil {
			ps.add(at+".maxMode", "%v", err)
		}
		cc.maxMode, cc.hasMaxMode = m, err == nil
	}
	checkAccountName(ps, at+".owner", c.Owner, false)
	checkAccountName(ps, at+".group", c.Group, false)
	cc.re = compileRegexp(ps, at+".matches", c.Matches)
	if c.Contents != nil && cc.re != nil && !cc.re.MatchString(*c.Contents) {
		ps.add(at+".matches", "does not match contents, so no file could pass")
	}
	if c.Contents != nil && c.Contains != "" && !strings.Contains(*c.Contents, c.Contains) {
		ps.add(at+".contains", "contents do not contain it, so no file could pass")
	}
}

func (c *Check) compileLineInFile(at string, cc *compiled, ps *Problems) {
	checkPath(ps, at+".path", c.Path, true)
	if c.Line == "" && c.Matches == "" {
		ps.add(at+".line", "required: give line (exact), matches (a regular expression) or both")
	}
	if strings.ContainsAny(c.Line, "\n\r") {
		ps.add(at+".line", "a line has no line break")
	}
	cc.re = compileRegexp(ps, at+".matches", c.Matches)
	present := orDefault(c.Present, true)
	if !present && c.Line != "" && c.Matches != "" {
		ps.add(at+".matches", "with present: false give line or matches, not both")
	}
	if present && cc.re != nil && c.Line != "" && !cc.re.MatchString(c.Line) {
		ps.add(at+".line", "does not match %s.matches, so a file fixed with it would still fail", at)
	}
}

func (c *Check) compilePackage(at string, ps *Problems) {
	switch {
	case c.Package == "":
		ps.add(at+".package", "required")
	case !validPackageName(c.Package):
		ps.add(at+".package", "%q is not a Debian package name (lower-case letters, digits, + - . and at least 2 characters)", c.Package)
	}
	if !orDefault(c.Installed, true) {
		if c.Version != "" {
			ps.add(at+".version", "a package that must not be installed has no version")
		}
		if c.MinVersion != "" {
			ps.add(at+".minVersion", "a package that must not be installed has no version")
		}
		return
	}
	if c.Version != "" && c.MinVersion != "" {
		ps.add(at+".minVersion", "give version (exact) or minVersion (at least), not both")
	}
	if c.Version != "" {
		if err := validDebianVersion(c.Version); err != nil {
			ps.add(at+".version", "%v", err)
		}
	}
	if c.MinVersion != "" {
		if err := validDebianVersion(c.MinVersion); err != nil {
			ps.add(at+".minVersion", "%v", err)
		}
	}
}

// validPackageName follows Debian policy 5.6.1.
func validPackageName(s string) bool {
	if len(s) < 2 || !isLowerAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isLowerAlnum(s[i]) && !strings.ContainsRune("+-.", rune(s[i])) {
			return false
		}
	}
	return true
}

func isLowerAlnum(b byte) bool { return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' }

// unitSuffixes are systemd's unit types.
var unitSuffixes = []string{".service", ".socket", ".target", ".timer", ".mount", ".automount", ".path", ".slice", ".scope", ".swap", ".device"}

func (c *Check) compileService(at string, cc *compiled, ps *Problems) {
	switch {
	case c.Unit == "":
		ps.add(at+".unit", "required")
	case strings.ContainsAny(c.Unit, "/ \t\n") || strings.HasPrefix(c.Unit, "."):
		ps.add(at+".unit", "%q is not a unit name such as \"ssh.service\"", c.Unit)
	default:
		cc.unit = c.Unit
		if !hasUnitSuffix(c.Unit) {
			cc.unit += ".service"
		}
	}
	if c.Enabled == nil && c.Active == nil && c.Masked == nil {
		ps.add(at+".enabled", "required: give enabled, active, masked or several")
	}
	if isTrue(c.Masked) && isTrue(c.Enabled) {
		ps.add(at+".enabled", "a masked unit cannot be enabled")
	}
	if isTrue(c.Masked) && isTrue(c.Active) {
		ps.add(at+".active", "a masked unit cannot be active")
	}
}

func hasUnitSuffix(unit string) bool {
	for _, s := range unitSuffixes {
		if strings.HasSuffix(unit, s) {
			return true
		}
	}
	return false
}

func (c *Check) compileSysctl(at string, cc *compiled, ps *Problems) {
	key := c.Key
	switch {
	case key == "":
		ps.add(at+".key", "required")
	default:
		sep := "."
		if strings.Contains(key, "/") {
			sep = "/" // sysctl(8): with slashes, dots belong to the names (eth0.100)
		}
		elems := strings.Split(strings.Trim(key, sep), sep)
		ok := true
		for _, e := range elems {
			if e == "" || e == "." || e == ".." || strings.IndexFunc(e, func(r rune) bool {
				return !(r == '_' || r == '-' || r == '.' || r == '@' || r == ':' || r == '+' || r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)))
			}) >= 0 {
				ok = false
			}
		}
		if !ok {
			ps.add(at+".key", "%q is not a sysctl key such as \"net.ipv4.ip_forward\"", key)
			break
		}
		cc.sysctlPath = "/proc/sys/" + strings.Join(elems, "/")
		if sep == "/" {
			cc.sysctlKey = strings.Join(elems, "/")
		} else {
			cc.sysctlKey = strings.Join(elems, ".")
		}
	}
	if strings.TrimSpace(string(c.Value)) == "" {
		ps.add(at+".value", "required")
	} else if strings.ContainsAny(string(c.Value), "\n\r") {
		ps.add(at+".value", "a sysctl value has no line break")
	}
}

func (c *Check) compileUser(at string, ps *Problems) {
	if c.User == "*" {
		// Every account: only the property that makes sense for all of them.
		if c.PasswordEmpty == nil || *c.PasswordEmpty {
			ps.add(at+".passwordEmpty", "user \"*\" (every account) needs passwordEmpty: false")
		}
		for _, f := range c.setFields() {
			if contains(kindFields[KindUser], f) && f != "user" && f != "passwordEmpty" {
				ps.add(at+"."+f, "not used with user \"*\" (every account)")
			}
		}
		return
	}
	checkAccountName(ps, at+".user", c.User, true)
	if !orDefault(c.Exists, true) {
		for _, f := range c.setFields() {
			if contains(kindFields[KindUser], f) && f != "user" && f != "exists" {
				ps.add(at+"."+f, "a user that must not exist has no %s", f)
			}
		}
		return
	}
	if c.UID != nil && *c.UID < 0 {
		ps.add(at+".uid", "must be 0 or more")
	}
	checkPath(ps, at+".shell", c.Shell, false)
	checkPath(ps, at+".home", c.Home, false)
	if isTrue(c.PasswordLocked) && isTrue(c.PasswordEmpty) {
		ps.add(at+".passwordEmpty", "a locked password is not empty")
	}
}

func (c *Check) compileGroup(at string, ps *Problems) {
	checkAccountName(ps, at+".group", c.Group, true)
	if !orDefault(c.Exists, true) {
		for _, f := range c.setFields() {
			if contains(kindFields[KindGroup], f) && f != "group" && f != "exists" {
				ps.add(at+"."+f, "a group that must not exist has no %s", f)
			}
		}
		return
	}
	if c.GID != nil && *c.GID < 0 {
		ps.add(at+".gid", "must be 0 or more")
	}
	if c.Members != nil && (c.MembersToInclude != nil || c.MembersToExclude != nil) {
		ps.add(at+".members", "members (exactly these) cannot be combined with membersToInclude or membersToExclude")
	}
	for name, list := range map[string][]string{"members": c.Members, "membersToInclude": c.MembersToInclude, "membersToExclude": c.MembersToExclude} {
		for i, m := range list {
			checkAccountName(ps, fmt.Sprintf("%s.%s[%d]", at, name, i), m, true)
		}
	}
	for i, m := range c.MembersToExclude {
		if contains(c.MembersToInclude, m) {
			ps.add(fmt.Sprintf("%s.membersToExclude[%d]", at, i), "%q is also in membersToInclude", m)
		}
	}
}

func (c *Check) compilePort(at string, cc *compiled, ps *Problems) {
	if c.Port < 1 || c.Port > 65535 {
		ps.add(at+".port", "required: a port number from 1 to 65535")
	}
	switch c.Protocol {
	case "", "tcp":
		cc.protocol = "tcp"
	case "udp":
		cc.protocol = "udp"
	default:
		ps.add(at+".protocol", "%q is not tcp or udp", c.Protocol)
	}
	if c.Address != "" {
		a, err := netip.ParseAddr(c.Address)
		if err != nil || a.Zone() != "" {
			ps.add(at+".address", "%q is not an IP address such as \"0.0.0.0\", \"::\" or \"127.0.0.1\"", c.Address)
		}
		cc.address = a.Unmap()
	}
}

func (c *Check) compileKernelModule(at string, cc *compiled, ps *Problems) {
	switch {
	case c.Module == "":
		ps.add(at+".module", "required")
	case strings.IndexFunc(c.Module, func(r rune) bool {
		return !(r == '_' || r == '-' || r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)))
	}) >= 0:
		ps.add(at+".module", "%q is not a kernel module name", c.Module)
	default:
		cc.module = strings.ReplaceAll(c.Module, "-", "_")
	}
	if c.Loaded == nil && c.Blacklisted == nil {
		ps.add(at+".loaded", "required: give loaded, blacklisted or both")
	}
	if isTrue(c.Loaded) && isTrue(c.Blacklisted) {
		ps.add(at+".blacklisted", "a module that must be loaded is not blacklisted (a blacklisted module can still be loaded by hand, but say what you mean)")
	}
}

func (c *Check) compileCommand(at string, cc *compiled, ps *Problems) {
	switch {
	case c.Command == "" && c.Inline == nil:
		ps.add(at+".command", "required: give command (a shell command) or inline (lines of a script)")
	case c.Command != "" && c.Inline != nil:
		ps.add(at+".inline", "give command or inline, not both")
	case c.Command != "":
		if strings.ContainsRune(c.Command, 0) {
			ps.add(at+".command", "contains a NUL byte")
		}
		cc.shellArgs = []string{"-c", c.Command}
		cc.commandText = c.Command
	default:
		if len(c.Inline) == 0 {
			ps.add(at+".inline", "needs at least one line")
		}
		for i, l := range c.Inline {
			if strings.ContainsRune(l, 0) {
				ps.add(fmt.Sprintf("%s.inline[%d]", at, i), "contains a NUL byte")
			}
		}
		// As Packer's inline shell, which Azure Image Builder's Shell validator uses:
		// one script run by "/bin/sh -e", so that the first failing line fails it.
		script := strings.Join(c.Inline, "\n")
		cc.shellArgs = []string{"-e", "-c", script}
		cc.commandText = script
	}
	cc.timeout = time.Duration(c.Timeout)
	switch {
	case c.Timeout == 0:
		cc.timeout = DefaultCommandTimeout
	case c.Timeout < 0 || time.Duration(c.Timeout) > MaxCommandTimeout:
		ps.add(at+".timeout", "must be more than 0 and at most %s", MaxCommandTimeout)
	}
	if c.ExitStatus != nil && (*c.ExitStatus < 0 || *c.ExitStatus > 255) {
		ps.add(at+".exitStatus", "must be from 0 to 255")
	}
	cc.stdoutRE = compileRegexp(ps, at+".stdoutMatches", c.StdoutMatches)
}

// suggest returns the candidate closest to s, when it is close enough to be a typo.
func suggest(s string, candidates []string) string {
	return spelling.Nearest(s, candidates, len(s)/3+2)
}
