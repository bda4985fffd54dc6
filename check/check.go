package check

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kind names what a check looks at.
type Kind string

// The kinds of check.
const (
	KindFile         Kind = "file"
	KindLineInFile   Kind = "lineInFile"
	KindSetting      Kind = "setting"
	KindPackage      Kind = "package"
	KindService      Kind = "service"
	KindSysctl       Kind = "sysctl"
	KindUser         Kind = "user"
	KindGroup        Kind = "group"
	KindPort         Kind = "port"
	KindKernelModule Kind = "kernelModule"
	KindCommand      Kind = "command"
)

// Kinds lists every kind, in the order the package doc describes them.
var Kinds = []Kind{KindFile, KindLineInFile, KindSetting, KindPackage, KindService, KindSysctl, KindUser, KindGroup, KindPort, KindKernelModule, KindCommand}

// Check is one statement about a system, such as "/etc/ssh/sshd_config has mode 0600" or
// "package auditd is installed". Name and Kind are common to all kinds; the other fields
// belong to one kind or a few (the package doc lists which), and a field that is not its
// kind's is refused. Build checks with Parse or NewSet, which validate them and compile
// their regular expressions once.
//
// Optional booleans are pointers so that "not said" differs from false; Contents is a
// pointer because an empty file is a legitimate expectation.
type Check struct {
	Name        string `json:"name" yaml:"name"`
	Kind        Kind   `json:"kind" yaml:"kind"`
	Description string `json:"description,omitempty" yaml:"description,omitempty"`

	// file, lineInFile and setting
	Path     string  `json:"path,omitempty" yaml:"path,omitempty"`
	Exists   *bool   `json:"exists,omitempty" yaml:"exists,omitempty"` // also user and group
	Contents *string `json:"contents,omitempty" yaml:"contents,omitempty"`
	Contains string  `json:"contains,omitempty" yaml:"contains,omitempty"`
	Matches  string  `json:"matches,omitempty" yaml:"matches,omitempty"` // file: the contents; lineInFile: a line
	Mode     string  `json:"mode,omitempty" yaml:"mode,omitempty"`
	MaxMode  string  `json:"maxMode,omitempty" yaml:"maxMode,omitempty"`
	Owner    string  `json:"owner,omitempty" yaml:"owner,omitempty"`
	Group    string  `json:"group,omitempty" yaml:"group,omitempty"` // file: the owning group; group: the group checked
	Line     string  `json:"line,omitempty" yaml:"line,omitempty"`
	Present  *bool   `json:"present,omitempty" yaml:"present,omitempty"` // also setting

	// setting (with path, key, value and present)
	Syntax  string `json:"syntax,omitempty" yaml:"syntax,omitempty"`
	Default Scalar `json:"default,omitempty" yaml:"default,omitempty"`

	// package
	Package    string `json:"package,omitempty" yaml:"package,omitempty"`
	Installed  *bool  `json:"installed,omitempty" yaml:"installed,omitempty"`
	Version    string `json:"version,omitempty" yaml:"version,omitempty"`
	MinVersion string `json:"minVersion,omitempty" yaml:"minVersion,omitempty"`

	// service
	Unit    string `json:"unit,omitempty" yaml:"unit,omitempty"`
	Enabled *bool  `json:"enabled,omitempty" yaml:"enabled,omitempty"`
	Active  *bool  `json:"active,omitempty" yaml:"active,omitempty"`
	Masked  *bool  `json:"masked,omitempty" yaml:"masked,omitempty"`

	// sysctl and setting
	Key   string `json:"key,omitempty" yaml:"key,omitempty"`
	Value Scalar `json:"value,omitempty" yaml:"value,omitempty"`

	// user and group
	User             string   `json:"user,omitempty" yaml:"user,omitempty"`
	UID              *int     `json:"uid,omitempty" yaml:"uid,omitempty"`
	Shell            string   `json:"shell,omitempty" yaml:"shell,omitempty"`
	Home             string   `json:"home,omitempty" yaml:"home,omitempty"`
	PasswordLocked   *bool    `json:"passwordLocked,omitempty" yaml:"passwordLocked,omitempty"`
	PasswordEmpty    *bool    `json:"passwordEmpty,omitempty" yaml:"passwordEmpty,omitempty"`
	GID              *int     `json:"gid,omitempty" yaml:"gid,omitempty"`
	Members          []string `json:"members,omitzero" yaml:"members,omitempty"` // [] (no members) is kept
	MembersToInclude []string `json:"membersToInclude,omitempty" yaml:"membersToInclude,omitempty"`
	MembersToExclude []string `json:"membersToExclude,omitempty" yaml:"membersToExclude,omitempty"`

	// port
	Port      int    `json:"port,omitempty" yaml:"port,omitempty"`
	Protocol  string `json:"protocol,omitempty" yaml:"protocol,omitempty"`
	Address   string `json:"address,omitempty" yaml:"address,omitempty"`
	Listening *bool  `json:"listening,omitempty" yaml:"listening,omitempty"`

	// kernelModule
	Module      string `json:"module,omitempty" yaml:"module,omitempty"`
	Loaded      *bool  `json:"loaded,omitempty" yaml:"loaded,omitempty"`
	Blacklisted *bool  `json:"blacklisted,omitempty" yaml:"blacklisted,omitempty"`

	// command
	Command        string   `json:"command,omitempty" yaml:"command,omitempty"`
	Inline         []string `json:"inline,omitempty" yaml:"inline,omitempty"`
	Timeout        Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	ExitStatus     *int     `json:"exitStatus,omitempty" yaml:"exitStatus,omitempty"`
	StdoutContains string   `json:"stdoutContains,omitempty" yaml:"stdoutContains,omitempty"`
	StdoutMatches  string   `json:"stdoutMatches,omitempty" yaml:"stdoutMatches,omitempty"`

	// compiled is what validation derived (regexps, parsed modes...); nil until then.
	compiled *compiled
}

// Status is the outcome of evaluating a check, with guest configuration's names.
type Status string

// The statuses. Error means the check could not be evaluated (a file could not be read,
// a command timed out): it says nothing about compliance, and validation treats it as a
// failure because an image that cannot be checked is not known to be good.
const (
	StatusCompliant    Status = "Compliant"
	StatusNonCompliant Status = "NonCompliant"
	StatusError        Status = "Error"
)

// Reason explains a status in the shape of Azure guest configuration's reasons: a stable
// code that programs match on, and a sentence for people with the expected and actual
// values.
type Reason struct {
	Code   string `json:"code"`
	Phrase string `json:"phrase"`
}

// Result is the outcome of evaluating one check. Expected and Actual summarise the
// properties the check asserts, in the same order, so they read side by side. Reasons is
// empty (never null in JSON) for a compliant result.
type Result struct {
	Name       string   `json:"name"`
	Kind       Kind     `json:"kind"`
	Status     Status   `json:"status"`
	Reasons    []Reason `json:"reasons"`
	Expected   string   `json:"expected,omitempty"`
	Actual     string   `json:"actual,omitempty"`
	DurationMs int64    `json:"durationMs"`
}

// Counts tallies results by status.
type Counts struct {
	Total        int `json:"total"`
	Compliant    int `json:"compliant"`
	NonCompliant int `json:"nonCompliant"`
	Error        int `json:"error"`
}

// Add counts one result.
func (c *Counts) Add(r Result) {
	c.Total++
	switch r.Status {
	case StatusCompliant:
		c.Compliant++
	case StatusNonCompliant:
		c.NonCompliant++
	default:
		c.Error++
	}
}

// Passed reports whether every counted result is compliant. No results pass: whether an
// empty set is acceptable is the caller's decision.
func (c Counts) Passed() bool { return c.NonCompliant == 0 && c.Error == 0 }

// CountResults tallies results.
func CountResults(results []Result) Counts {
	var c Counts
	for _, r := range results {
		c.Add(r)
	}
	return c
}

// Scalar is a text value that may be written in JSON as a string or a number, because
// people write sysctl values both as "1" and as 1. It keeps the text as written.
type Scalar string

// UnmarshalJSON accepts a JSON string or number.
func (s *Scalar) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		return nil
	}
	if len(data) > 0 && data[0] == '"' {
		var str string
		if err := json.Unmarshal(data, &str); err != nil {
			return err
		}
		*s = Scalar(str)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(data, &n); err != nil {
		return fmt.Errorf("want a string or a number, got %s", jsonKind(data))
	}
	*s = Scalar(n.String())
	return nil
}

// Duration is a time.Duration written as Go writes durations ("30s", "5m"), in JSON and
// YAML alike (both use its text form).
type Duration time.Duration

// MarshalText writes the duration as "1m30s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a duration such as "90s" or "1m30s".
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("want a duration such as \"30s\" or \"5m\", got %q", text)
	}
	*d = Duration(v)
	return nil
}

// UnmarshalJSON reads a duration string; a bare number is refused because its unit would
// be a guess.
func (d *Duration) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"30s\", got %s", jsonKind(data))
	}
	return d.UnmarshalText([]byte(s))
}

// jsonKind names the JSON type of a raw value for error messages.
func jsonKind(data []byte) string {
	s := strings.TrimSpace(string(data))
	if s == "" {
		return "nothing"
	}
	switch s[0] {
	case '"':
		return "string " + truncate(s, 40)
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "boolean " + s
	case 'n':
		return "null"
	default:
		return "number " + truncate(s, 40)
	}
}

// truncate shortens s to at most n bytes (plus an ellipsis), on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// octal writes a permission as four octal digits, as chmod and stat do.
func octal(mode uint32) string { return fmt.Sprintf("%04o", mode) }

// quote writes a value for a phrase: short text quoted (control characters escaped),
// long text cut and followed by its length.
func quote(s string) string {
	if len(s) <= 80 {
		return strconv.Quote(s)
	}
	return strconv.Quote(truncate(s, 77)) + fmt.Sprintf(" (%d bytes)", len(s))
}
