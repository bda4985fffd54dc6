package check

import (
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// The syntaxes a setting check reads a configuration file with.
const (
	// SyntaxSshd is sshd_config(5): keywords in any case, "Key value" or "Key=value", the
	// first value wins, Include is followed and a Match block ends the global section.
	SyntaxSshd = "sshd"
	// SyntaxKeyValue is "key = value" or "key value" per line with case-sensitive keys,
	// the last value winning, as login.defs, sysctl.conf and most simple tools read them.
	SyntaxKeyValue = "keyValue"
)

// syntaxes lists them for messages and suggestions.
var syntaxes = []string{SyntaxSshd, SyntaxKeyValue}

// maxIncludeDepth is how deeply sshd follows Include before refusing to start (OpenSSH's
// SERVCONF_MAX_DEPTH): a configuration gild accepts deeper would not run at all.
const maxIncludeDepth = 16

// sshdConfigDir is where sshd resolves an Include path that is not absolute, wherever the
// including file is.
const sshdConfigDir = "/etc/ssh"

// sshdCumulative are the sshd keywords whose every occurrence counts, each adding to the
// list, instead of the first one winning: two AllowUsers lines allow the users of both,
// two Port lines make sshd listen on both ports.
var sshdCumulative = map[string]bool{
	"allowusers": true, "denyusers": true, "allowgroups": true, "denygroups": true,
	"port": true, "listenaddress": true, "acceptenv": true, "hostkey": true,
}

// sshdTimeKeywords take a time such as "60", "1m" or "1h30m"; their values compare as
// durations, since sshd reads "1m" and "60" alike.
var sshdTimeKeywords = map[string]bool{"logingracetime": true, "clientaliveinterval": true}

// caselessWords are the values that the programs reading them compare without regard to
// case (sshd's yes/no and multiple-choice options, login.defs booleans): "No" is "no".
// Other values (user names, paths, algorithm names) keep their case.
var caselessWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`yes no true false on off none any all
		prohibit-password without-password forced-commands-only
		quiet fatal error info verbose debug debug1 debug2 debug3
		auth authpriv daemon user local0 local1 local2 local3 local4 local5 local6 local7
		inet inet6 delayed local remote clientspecified`) {
		m[w] = true
	}
	return m
}()

func (c *Check) settingSyntax() string {
	if c.Syntax == "" {
		return SyntaxKeyValue
	}
	return c.Syntax
}

func (c *Check) compileSetting(at string, ps *Problems) {
	checkPath(ps, at+".path", c.Path, true)
	switch c.Syntax {
	case "", SyntaxSshd, SyntaxKeyValue:
	default:
		msg := fmt.Sprintf("unknown syntax %q", c.Syntax)
		if s := suggest(c.Syntax, syntaxes); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		ps.add(at+".syntax", "%s; one of %s (the default)", msg, strings.Join(syntaxes, ", "))
	}
	switch {
	case c.Key == "":
		ps.add(at+".key", "required")
	case strings.IndexFunc(c.Key, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		ps.add(at+".key", "%q has a space or a control character; a key is one word", c.Key)
	case strings.ContainsRune(c.Key, '='):
		ps.add(at+".key", "%q has an \"=\", which separates a key from its value", c.Key)
	case c.Key[0] == '#' || c.Key[0] == ';':
		ps.add(at+".key", "%q starts a comment", c.Key)
	case c.Syntax == SyntaxSshd && (strings.EqualFold(c.Key, "Include") || strings.EqualFold(c.Key, "Match")):
		ps.add(at+".key", "%s is part of sshd_config's structure, not a setting", c.Key)
	}
	if !orDefault(c.Present, true) {
		if c.Value != "" {
			ps.add(at+".value", "a setting that must not be set has no value")
		}
		if c.Default != "" {
			ps.add(at+".default", "a setting that must not be set has no default to fall back on")
		}
		return
	}
	for _, f := range []struct {
		name  string
		value Scalar
	}{{"value", c.Value}, {"default", c.Default}} {
		switch {
		case f.name == "value" && strings.TrimSpace(string(f.value)) == "":
			ps.add(at+".value", "required (or present: false for a setting that must not be set)")
		case strings.ContainsAny(string(f.value), "\n\r\x00"):
			ps.add(at+"."+f.name, "a setting's value is on one line")
		}
	}
}

// settingOccurrence is one line that gives the setting a value.
type settingOccurrence struct {
	file      string // the root's path
	line      int    // 1-based
	value     string // as the program reads it: sshd's arguments joined by a space; keyValue's rest of line
	lineStart int    // byte offsets in the file: the line, and the value as written
	valStart  int
	valEnd    int
	global    bool // sshd: not inside a Match block
}

// settingScan is what reading a setting's configuration found.
type settingScan struct {
	syntax     string
	main       string
	files      map[string][]byte // every file read, by the root's path
	found      []settingOccurrence
	includes   int  // files read through Include
	insertAt   int  // sshd: byte offset of the main file's first Include or Match line (its length when none)
	usesEquals bool // keyValue: the main file writes "key = value"
}

// effective returns the occurrences that decide the value: sshd's first global one (every
// global one for cumulative keywords), keyValue's last one.
func (s *settingScan) effective(key string) []settingOccurrence {
	var global []settingOccurrence
	for _, o := range s.found {
		if o.global {
			global = append(global, o)
		}
	}
	switch {
	case len(global) == 0:
		return nil
	case s.syntax == SyntaxKeyValue:
		return global[len(global)-1:]
	case sshdCumulative[strings.ToLower(key)]:
		return global
	default:
		return global[:1]
	}
}

// valueOf joins the effective occurrences' values.
func valueOf(occs []settingOccurrence) string {
	vals := make([]string, len(occs))
	for i, o := range occs {
		vals[i] = o.value
	}
	return strings.Join(vals, " ")
}

// settingFileError is a file of the configuration that could not be read.
type settingFileError struct {
	path string
	err  error
}

func (e *settingFileError) Error() string { return e.path + ": " + e.err.Error() }

// includeTooDeepError is an Include beyond maxIncludeDepth.
type includeTooDeepError struct {
	path string
	line int
}

func (e *includeTooDeepError) Error() string {
	return fmt.Sprintf("%s line %d: Include nested deeper than %d files", e.path, e.line, maxIncludeDepth)
}

// scanSetting reads c's file (and, for sshd, what it includes) and finds the key.
func (c *Check) scanSetting(env Env) (*settingScan, error) {
	s := &settingScan{syntax: c.settingSyntax(), main: c.Path, files: map[string][]byte{}, insertAt: -1}
	var err error
	if s.syntax == SyntaxSshd {
		err = s.readSshd(env, c.Path, c.Key, 0, false)
	} else {
		err = s.readKeyValue(env, c.Path, c.Key)
	}
	if s.insertAt < 0 {
		s.insertAt = len(s.files[c.Path])
	}
	return s, err
}

// lines calls fn for each line of data with its 1-based number and byte offset, without
// its line break (and a carriage return before it).
func lines(data []byte, fn func(n, start int, line string) error) error {
	n, start := 0, 0
	for start < len(data) {
		end := start
		for end < len(data) && data[end] != '\n' {
			end++
		}
		n++
		line := strings.TrimSuffix(string(data[start:end]), "\r")
		if err := fn(n, start, line); err != nil {
			return err
		}
		start = end + 1
	}
	return nil
}

func (s *settingScan) readKeyValue(env Env, file, key string) error {
	data, err := env.readContents(file)
	if err != nil {
		return &settingFileError{file, err}
	}
	s.files[file] = data
	first := true
	return lines(data, func(n, start int, line string) error {
		d, ok := parseKeyValueLine(line)
		if !ok {
			return nil
		}
		if first {
			s.usesEquals, first = d.equals, false
		}
		if d.key == key {
			s.found = append(s.found, settingOccurrence{file: file, line: n, value: d.value,
				lineStart: start, valStart: start + d.valStart, valEnd: start + d.valEnd, global: true})
		}
		return nil
	})
}

func (s *settingScan) readSshd(env Env, file, key string, depth int, inMatch bool) error {
	data, err := env.readContents(file)
	if err != nil {
		return &settingFileError{file, err}
	}
	s.files[file] = data
	return lines(data, func(n, start int, line string) error {
		d, ok := parseSshdLine(line)
		if !ok {
			return nil
		}
		if depth == 0 && s.insertAt < 0 && (strings.EqualFold(d.key, "Match") || strings.EqualFold(d.key, "Include")) {
			s.insertAt = start
		}
		switch {
		case strings.EqualFold(d.key, "Match"):
			// Until the end of this file: sshd restores the including file's state when an
			// included one ends.
			inMatch = true
		case strings.EqualFold(d.key, "Include"):
			if depth+1 > maxIncludeDepth {
				return &includeTooDeepError{file, n}
			}
			for _, arg := range d.args {
				pattern := arg
				if !path.IsAbs(pattern) {
					pattern = path.Join(sshdConfigDir, pattern)
				}
				for _, inc := range env.glob(pattern) {
					s.includes++
					if err := s.readSshd(env, inc, key, depth+1, inMatch); err != nil {
						return err
					}
				}
			}
		case strings.EqualFold(d.key, key):
			s.found = append(s.found, settingOccurrence{file: file, line: n, value: strings.Join(d.args, " "),
				lineStart: start, valStart: start + d.valStart, valEnd: start + d.valEnd, global: !inMatch})
		}
		return nil
	})
}

// directive is a configuration line split into its key and value. valStart and valEnd
// are the value's byte offsets in the line, as written (quotes included); an empty value
// has valStart = valEnd where it would start.
type directive struct {
	key              string
	args             []string // sshd: the arguments, unquoted
	value            string   // keyValue: the rest of the line, trimmed
	valStart, valEnd int
	equals           bool // the key and value are separated by "="
}

// cutKey splits a line into its key, up to a space or "=", and where the value starts:
// after spaces, at most one "=", and spaces again. ok is false for blank lines.
func cutKey(line string) (d directive, rest int, ok bool) {
	i := 0
	for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	start := i
	for i < len(line) && line[i] != ' ' && line[i] != '\t' && line[i] != '=' {
		i++
	}
	if i == start {
		return d, 0, false
	}
	d.key = line[start:i]
	for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	if i < len(line) && line[i] == '=' {
		d.equals = true
		i++
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
	}
	return d, i, true
}

// parseKeyValueLine reads "key = value" or "key value"; "#" and ";" start comment lines.
func parseKeyValueLine(line string) (directive, bool) {
	d, i, ok := cutKey(line)
	if !ok || d.key[0] == '#' || d.key[0] == ';' {
		return directive{}, false
	}
	end := len(strings.TrimRight(line, " \t"))
	if end < i {
		end = i
	}
	d.value, d.valStart, d.valEnd = line[i:end], i, end
	return d, true
}

// parseSshdLine reads an sshd_config line as sshd does: the keyword ends at a space or an
// "=", the arguments are split at spaces with "..." or '...' quoting and backslash
// escapes, and an argument starting with "#" begins a comment.
func parseSshdLine(line string) (directive, bool) {
	d, i, ok := cutKey(line)
	if !ok || d.key[0] == '#' {
		return directive{}, false
	}
	d.valStart, d.valEnd = i, i
	for i < len(line) {
		if line[i] == ' ' || line[i] == '\t' {
			i++
			continue
		}
		if line[i] == '#' {
			break
		}
		var arg strings.Builder
		var quote byte
		for ; i < len(line); i++ {
			ch := line[i]
			switch {
			case ch == '\\' && i+1 < len(line) && (line[i+1] == '\'' || line[i+1] == '"' || line[i+1] == '\\' || (quote == 0 && line[i+1] == ' ')):
				i++
				arg.WriteByte(line[i])
				continue
			case quote == 0 && (ch == ' ' || ch == '\t'):
			case quote == 0 && (ch == '"' || ch == '\''):
				quote = ch
				continue
			case quote != 0 && ch == quote:
				quote = 0
				continue
			default:
				arg.WriteByte(ch)
				continue
			}
			break
		}
		d.args = append(d.args, arg.String())
		d.valEnd = i
	}
	return d, true
}

// glob expands a shell pattern over the root's files as glob(3) does for sshd's Include:
// "*", "?" and "[...]" in any element, names starting with "." matched only by a pattern
// starting with ".", the matches in lexical order. A pattern without wildcards names its
// file when it exists; a malformed one matches nothing.
func (e Env) glob(pattern string) []string {
	cur := []string{"/"}
	for _, elem := range splitPath(pattern) {
		var next []string
		for _, dir := range cur {
			if !strings.ContainsAny(elem, "*?[\\") {
				next = append(next, path.Join(dir, elem))
				continue
			}
			entries, err := e.readDir(dir)
			if err != nil {
				continue
			}
			for _, ent := range entries {
				name := ent.Name()
				if name[0] == '.' && elem[0] != '.' {
					continue
				}
				if ok, err := path.Match(elem, name); err == nil && ok {
					next = append(next, path.Join(dir, name))
				}
			}
		}
		cur = next
	}
	var out []string
	for _, p := range cur {
		if _, err := e.lstat(p); err == nil {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// settingValue is a value as written in a check, for Expected and phrases: its words
// joined by single spaces.
func settingValue(v string) string { return strings.Join(strings.Fields(v), " ") }

// normalizeSetting prepares a value for comparison: words joined by single spaces, no
// spaces around commas ("aes128-ctr, aes256-ctr" is the list "aes128-ctr,aes256-ctr").
func normalizeSetting(v string) string {
	parts := strings.Split(settingValue(v), ",")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
	}
	return strings.Join(parts, ",")
}

// settingEqual compares an expected and an actual value as the program reading key
// would: see normalizeSetting, caselessWords and sshdTimeKeywords.
func settingEqual(syntax, key, want, got string) bool {
	w, g := normalizeSetting(want), normalizeSetting(got)
	if w == g {
		return true
	}
	if caselessWords[strings.ToLower(w)] && strings.EqualFold(w, g) {
		return true
	}
	if syntax == SyntaxSshd && sshdTimeKeywords[strings.ToLower(key)] {
		ws, ok1 := sshdSeconds(w)
		gs, ok2 := sshdSeconds(g)
		return ok1 && ok2 && ws == gs
	}
	return false
}

// sshdSeconds reads sshd's time format: a number of seconds, or numbers each followed by
// a unit (s, m, h, d, w in either case), summed: "1h30m" is 5400.
func sshdSeconds(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var total int64
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i > 9 {
			return 0, false
		}
		n, _ := strconv.ParseInt(s[:i], 10, 64)
		s = s[i:]
		unit := int64(1)
		if s != "" {
			switch s[0] {
			case 's', 'S':
			case 'm', 'M':
				unit = 60
			case 'h', 'H':
				unit = 3600
			case 'd', 'D':
				unit = 86400
			case 'w', 'W':
				unit = 604800
			default:
				return 0, false
			}
			s = s[1:]
		}
		total += n * unit
	}
	return total, true
}

// where names the lines of occurrences: "/etc/ssh/sshd_config line 3", "/etc/ssh/sshd_config
// lines 3 and 7", "/etc/ssh/sshd_config line 3, /etc/ssh/sshd_config.d/a.conf line 1".
func where(occs []settingOccurrence) string {
	var parts []string
	for i := 0; i < len(occs); {
		j := i
		var nums []string
		for j < len(occs) && occs[j].file == occs[i].file {
			nums = append(nums, strconv.Itoa(occs[j].line))
			j++
		}
		switch len(nums) {
		case 1:
			parts = append(parts, occs[i].file+" line "+nums[0])
		default:
			parts = append(parts, occs[i].file+" lines "+strings.Join(nums[:len(nums)-1], ", ")+" and "+nums[len(nums)-1])
		}
		i = j
	}
	return strings.Join(parts, ", ")
}

func (c *Check) evalSetting(env Env, o *outcome) {
	present := orDefault(c.Present, true)
	want := settingValue(string(c.Value))
	expected := c.Key + " " + want
	if !present {
		expected = c.Key + " not set"
	}
	s, err := c.scanSetting(env)
	if err != nil {
		var fe *settingFileError
		var deep *includeTooDeepError
		switch {
		case errors.As(err, &fe) && fe.path == c.Path && isNotExist(fe.err):
			o.property(expected, "file "+c.Path+" missing")
			if present {
				o.mismatch(CodeFileMissing, "File %s does not exist, so %s is not set there; expected %s.", c.Path, c.Key, quote(want))
			}
		case errors.As(err, &fe):
			o.property(expected, "unknown")
			o.readError(fe.path, fe.err)
		case errors.As(err, &deep):
			o.property(expected, "unknown")
			o.error(CodeIncludeTooDeep, "Line %d of %s includes files nested deeper than the %d levels sshd accepts, so sshd would not start with this configuration.", deep.line, deep.path, maxIncludeDepth)
		default:
			o.property(expected, "unknown")
			o.error(CodeReadError, "Cannot read the configuration: %v.", err)
		}
		return
	}
	eff := s.effective(c.Key)
	if len(eff) > 0 {
		got := valueOf(eff)
		o.property(expected, c.Key+" "+got)
		switch {
		case !present:
			o.mismatch(CodeSettingPresent, "%s is set to %s (%s); expected it not set.", c.Key, quote(got), where(eff))
		case !settingEqual(s.syntax, c.Key, want, got):
			o.mismatch(CodeSettingMismatch, "%s is %s (%s); expected %s.", c.Key, quote(got), where(eff), quote(want))
		}
		return
	}
	in := c.Path
	if s.includes > 0 {
		in += " or the files it includes"
	}
	var note string
	if len(s.found) > 0 {
		note = fmt.Sprintf(" (only inside a Match block, at %s, which does not apply to every connection)", where(s.found))
	}
	switch {
	case !present:
		o.property(expected, c.Key+" not set")
	case c.Default != "":
		def := settingValue(string(c.Default))
		o.property(expected, c.Key+" "+def+" (not set; the default)")
		if !settingEqual(s.syntax, c.Key, want, def) {
			o.mismatch(CodeSettingMismatch, "%s is not set in %s%s, so it is %s (the default); expected %s.", c.Key, in, note, quote(def), quote(want))
		}
	default:
		o.property(expected, c.Key+" not set")
		o.mismatch(CodeSettingMissing, "%s is not set in %s%s; expected %s.", c.Key, in, note, quote(want))
	}
}

// settingEdit replaces data[start:end] of a file with text.
type settingEdit struct {
	start, end int
	text       string
	change     Change
}

// applySetting sets the effective occurrence's value in place (every one, for sshd's
// cumulative keywords, the first set and the others commented out), adds the setting where
// it wins when it is not set, or comments out every occurrence for present: false. The
// rest of each file is kept byte for byte, its mode and owner too.
func (c *Check) applySetting(env Env) ([]Change, error) {
	present := orDefault(c.Present, true)
	want := settingValue(string(c.Value))
	s, err := c.scanSetting(env)
	var fe *settingFileError
	switch {
	case err == nil:
	case errors.As(err, &fe) && fe.path == c.Path && isNotExist(fe.err):
		if !present {
			return nil, nil
		}
		s = &settingScan{syntax: c.settingSyntax(), main: c.Path, files: map[string][]byte{c.Path: nil}}
	default:
		return nil, err
	}
	edits := map[string][]settingEdit{}
	target := func(file string) string { return file + " " + c.Key }
	// A file that sshd includes twice gives the same line twice; it is edited once.
	edited := map[string]bool{}
	once := func(o settingOccurrence) bool {
		k := o.file + "\x00" + strconv.Itoa(o.lineStart)
		first := !edited[k]
		edited[k] = true
		return first
	}
	commentOut := func(o settingOccurrence) {
		if once(o) {
			edits[o.file] = append(edits[o.file], settingEdit{start: o.lineStart, end: o.lineStart, text: "#",
				change: c.change(target(o.file), orEmpty(o.value), "(commented out)")})
		}
	}
	eff := s.effective(c.Key)
	switch {
	case !present:
		// Every occurrence that counts: with the first one gone, sshd would read the next.
		for _, o := range s.found {
			if o.global {
				commentOut(o)
			}
		}
	case len(eff) == 0:
		data := s.files[c.Path]
		line := c.Key + " " + want
		// sshd: no global line before the first Include or Match sets the key (it would
		// be the effective one), so a line there is the first and wins.
		at := s.insertAt
		if s.syntax == SyntaxKeyValue {
			// The last value wins, so the new line goes last.
			at = len(data)
			if s.usesEquals {
				line = c.Key + " = " + want
			}
		}
		if at < 0 || at > len(data) {
			at = 0
		}
		if at == len(data) && len(data) > 0 && data[len(data)-1] != '\n' {
			line = "\n" + line
		}
		edits[c.Path] = append(edits[c.Path], settingEdit{start: at, end: at, text: line + "\n",
			change: c.change(target(c.Path), "(not set)", want)})
	default:
		if !settingEqual(s.syntax, c.Key, want, valueOf(eff)) || len(eff) > 1 {
			first := eff[0]
			once(first)
			if !settingEqual(s.syntax, c.Key, want, first.value) {
				text := valueText(s.files[first.file], first.valStart, first.valEnd, want)
				edits[first.file] = append(edits[first.file], settingEdit{start: first.valStart, end: first.valEnd, text: text,
					change: c.change(target(first.file), orEmpty(first.value), want)})
			}
			for _, o := range eff[1:] {
				commentOut(o)
			}
		}
	}
	var changes []Change
	for _, file := range s.order(edits) {
		done, err := writeSettingEdits(env, file, s.files[file], edits[file])
		if err != nil {
			return changes, err
		}
		changes = append(changes, done...)
	}
	return changes, nil
}

// orEmpty names an empty value in a Change.
func orEmpty(v string) string {
	if v == "" {
		return "(empty)"
	}
	return v
}

// valueText is what replaces data[start:end], a value as written, with v: v itself, or,
// where the line had no value, v with the spaces that keep it apart from the key before
// it and a comment after it.
func valueText(data []byte, start, end int, v string) string {
	if start != end {
		return v
	}
	if start > 0 && !strings.ContainsRune(" \t=", rune(data[start-1])) {
		v = " " + v
	}
	if end < len(data) && !strings.ContainsRune(" \t\r\n", rune(data[end])) {
		v += " "
	}
	return v
}

// order lists the files with edits: the main file first, then the others by name.
func (s *settingScan) order(edits map[string][]settingEdit) []string {
	var files []string
	for f := range edits {
		if f != s.main {
			files = append(files, f)
		}
	}
	sort.Strings(files)
	if _, ok := edits[s.main]; ok {
		files = append([]string{s.main}, files...)
	}
	return files
}

// writeSettingEdits applies edits to a file's contents as read and replaces the file
// atomically, keeping its mode and owner (a new file gets 0644), and returns the changes
// made. A file included twice has its lines edited once.
func writeSettingEdits(env Env, file string, data []byte, edits []settingEdit) ([]Change, error) {
	sort.SliceStable(edits, func(i, j int) bool { return edits[i].start < edits[j].start })
	var out []byte
	var changes []Change
	last := 0
	for i, e := range edits {
		if i > 0 && e.start == edits[i-1].start && e.end == edits[i-1].end {
			continue
		}
		out = append(out, data[last:e.start]...)
		out = append(out, e.text...)
		last = e.end
		changes = append(changes, e.change)
	}
	out = append(out, data[last:]...)
	hp, err := env.hostPath(file, true)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(hp)
	perm := uint32(0o644)
	switch {
	case err == nil:
		perm = unixPerm(fi.Mode())
	case isNotExist(err):
		fi = nil
	default:
		return nil, fmt.Errorf("stat %s: %w", file, err)
	}
	if err := writeFileAtomic(hp, out, perm, fi); err != nil {
		return nil, err
	}
	return changes, nil
}
