package check

import (
	"fmt"
	"strings"
)

// splitLines splits file contents into lines; a final line break ends the last line
// rather than starting an empty one.
func splitLines(text string) []string {
	if text == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(text, "\n"), "\n")
}

// lineScan is where a lineInFile check's line and pattern occur in a file (0-based).
type lineScan struct {
	exact   []int // lines equal to Line
	matched []int // lines the regular expression matches
}

func (c *Check) scanLines(lines []string) lineScan {
	var s lineScan
	for i, l := range lines {
		if c.Line != "" && l == c.Line {
			s.exact = append(s.exact, i)
		}
		if re := c.compiled.re; re != nil && re.MatchString(l) {
			s.matched = append(s.matched, i)
		}
	}
	return s
}

// wantedLine says what a lineInFile check looks for.
func (c *Check) wantedLine() string {
	switch {
	case c.Line != "" && c.compiled.re != nil:
		return fmt.Sprintf("line %s (every line matching %s equal to it)", quote(c.Line), describeRegexp(c.compiled.re))
	case c.Line != "":
		return "line " + quote(c.Line)
	default:
		return "a line matching " + describeRegexp(c.compiled.re)
	}
}

// lineNumbers writes 0-based indexes as line numbers, at most five of them.
func lineNumbers(idx []int) string {
	var parts []string
	for i, n := range idx {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(idx)-5))
			break
		}
		parts = append(parts, fmt.Sprint(n+1))
	}
	return strings.Join(parts, ", ")
}

func (c *Check) evalLineInFile(env Env, o *outcome) {
	present := orDefault(c.Present, true)
	want := c.wantedLine()
	if !present {
		want = "no " + want
	}
	data, err := env.readContents(c.Path)
	switch {
	case isNotExist(err):
		o.property(want, "file "+c.Path+" missing")
		if present {
			o.mismatch(CodeFileMissing, "File %s does not exist, so it has no %s.", c.Path, c.wantedLine())
		}
		return
	case err != nil:
		o.property(want, "unknown")
		o.readError(c.Path, err)
		return
	}
	lines := splitLines(string(data))
	s := c.scanLines(lines)
	re := c.compiled.re
	switch {
	case present && re == nil:
		if len(s.exact) > 0 {
			o.property(want, "at line "+lineNumbers(s.exact))
		} else {
			o.property(want, "missing")
			o.mismatch(CodeLineMissing, "File %s has no line %s.", c.Path, quote(c.Line))
		}
	case present && c.Line == "":
		if len(s.matched) > 0 {
			o.property(want, fmt.Sprintf("line %d: %s", s.matched[0]+1, quote(lines[s.matched[0]])))
		} else {
			o.property(want, "missing")
			o.mismatch(CodeLineMissing, "File %s has no line matching %s.", c.Path, describeRegexp(re))
		}
	case present:
		if len(s.matched) == 0 {
			o.property(want, "missing")
			o.mismatch(CodeLineMissing, "File %s has no line matching %s; expected %s.", c.Path, describeRegexp(re), quote(c.Line))
			return
		}
		var found []string
		for _, i := range s.matched {
			found = append(found, fmt.Sprintf("line %d: %s", i+1, quote(lines[i])))
			if lines[i] != c.Line {
				o.mismatch(CodeLineMismatch, "Line %d of %s is %s; expected %s.", i+1, c.Path, quote(lines[i]), quote(c.Line))
			}
		}
		o.property(want, strings.Join(found, ", "))
	case c.Line != "":
		if len(s.exact) == 0 {
			o.property(want, "absent")
		} else {
			o.property(want, "at line "+lineNumbers(s.exact))
			o.mismatch(CodeLinePresent, "File %s has the line %s at line %s; expected it absent.", c.Path, quote(c.Line), lineNumbers(s.exact))
		}
	default:
		if len(s.matched) == 0 {
			o.property(want, "absent")
		} else {
			o.property(want, fmt.Sprintf("line %d: %s", s.matched[0]+1, quote(lines[s.matched[0]])))
			o.mismatch(CodeLinePresent, "File %s has lines matching %s at line %s; expected none.", c.Path, describeRegexp(re), lineNumbers(s.matched))
		}
	}
}
