package check

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// debianVersion is a Debian version split as deb-version(7) says:
// [epoch:]upstream_version[-debian_revision].
type debianVersion struct {
	epoch    int
	upstream string
	revision string
}

// parseDebianVersion splits s the way dpkg does: the epoch is before the first colon, the
// revision after the last hyphen.
func parseDebianVersion(s string) (debianVersion, error) {
	var v debianVersion
	s = strings.TrimSpace(s)
	if s == "" {
		return v, errors.New("empty version")
	}
	if e, rest, ok := strings.Cut(s, ":"); ok {
		n, err := strconv.Atoi(e)
		if err != nil || n < 0 || e == "" {
			return v, fmt.Errorf("epoch %q of version %q is not a number", e, s)
		}
		v.epoch, s = n, rest
	}
	if i := strings.LastIndexByte(s, '-'); i >= 0 {
		v.upstream, v.revision = s[:i], s[i+1:]
	} else {
		v.upstream = s
	}
	return v, nil
}

// validDebianVersion applies dpkg's rules for a version a person writes: an epoch that is a
// number, a non-empty upstream version that starts with a digit, and only the characters
// Debian allows in each part.
func validDebianVersion(s string) error {
	if strings.TrimSpace(s) != s || s == "" {
		return fmt.Errorf("%q is not a Debian version such as \"1:2.3.4-1\"", s)
	}
	v, err := parseDebianVersion(s)
	if err != nil {
		return err
	}
	if v.upstream == "" {
		return fmt.Errorf("version %q has an empty upstream version", s)
	}
	if v.upstream[0] < '0' || v.upstream[0] > '9' {
		return fmt.Errorf("version %q: the upstream version must start with a digit", s)
	}
	for _, r := range v.upstream {
		if !isVersionChar(r) && r != '-' && r != ':' {
			return fmt.Errorf("version %q: %q is not allowed in an upstream version", s, r)
		}
	}
	if strings.Contains(s, "-") && v.revision == "" {
		return fmt.Errorf("version %q has an empty revision after its hyphen", s)
	}
	for _, r := range v.revision {
		if !isVersionChar(r) {
			return fmt.Errorf("version %q: %q is not allowed in a Debian revision", s, r)
		}
	}
	return nil
}

func isVersionChar(r rune) bool {
	return r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '.' || r == '+' || r == '~'
}

// CompareDebianVersions orders two Debian versions as dpkg --compare-versions does,
// returning -1, 0 or +1. A version that does not parse orders as its raw text would
// in the upstream part, which is what dpkg does with the versions it tolerates.
func CompareDebianVersions(a, b string) int {
	va, _ := parseDebianVersion(a)
	vb, _ := parseDebianVersion(b)
	if va.epoch != vb.epoch {
		return sign(va.epoch - vb.epoch)
	}
	if r := verrevcmp(va.upstream, vb.upstream); r != 0 {
		return sign(r)
	}
	return sign(verrevcmp(va.revision, vb.revision))
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

// order is dpkg's weight of a character in a non-digit run: "~" sorts before everything,
// even the end of the string; letters sort before other characters.
func order(s string, i int) int {
	if i >= len(s) {
		return 0
	}
	c := s[i]
	switch {
	case c >= '0' && c <= '9':
		return 0
	case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		return int(c)
	case c == '~':
		return -1
	default:
		return int(c) + 256
	}
}

func isDigitAt(s string, i int) bool { return i < len(s) && s[i] >= '0' && s[i] <= '9' }

// verrevcmp is dpkg's lib/dpkg/version.c verrevcmp: alternate runs of non-digits, compared
// character by character with order, and runs of digits, compared as numbers.
func verrevcmp(a, b string) int {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		firstDiff := 0
		for i < len(a) && !isDigitAt(a, i) || j < len(b) && !isDigitAt(b, j) {
			ac, bc := order(a, i), order(b, j)
			if ac != bc {
				return ac - bc
			}
			i++
			j++
		}
		for i < len(a) && a[i] == '0' {
			i++
		}
		for j < len(b) && b[j] == '0' {
			j++
		}
		for isDigitAt(a, i) && isDigitAt(b, j) {
			if firstDiff == 0 {
				firstDiff = int(a[i]) - int(b[j])
			}
			i++
			j++
		}
		if isDigitAt(a, i) {
			return 1
		}
		if isDigitAt(b, j) {
			return -1
		}
		if firstDiff != 0 {
			return firstDiff
		}
	}
	return 0
}
