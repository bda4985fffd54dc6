package check

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
)

func (c *Check) evalFile(env Env, o *outcome) {
	cc := c.compiled
	exists := orDefault(c.Exists, true)
	want := yesNo(exists, "exists", "absent")
	fi, err := env.stat(c.Path)
	switch {
	case isNotExist(err):
		o.property(want, "absent")
		if exists {
			o.mismatch(CodeFileMissing, "File %s does not exist; expected it to exist.", c.Path)
		}
		return
	case err != nil:
		o.property(want, "unknown")
		o.readError(c.Path, err)
		return
	case !exists:
		o.property(want, "exists")
		o.mismatch(CodeFilePresent, "File %s exists; expected it to be absent.", c.Path)
		return
	}
	o.property(want, "exists")
	perm := unixPerm(fi.Mode())
	if cc.hasMode {
		o.property("mode "+octal(cc.mode), "mode "+octal(perm))
		if perm != cc.mode {
			o.mismatch(CodeFileModeMismatch, "File %s has mode %s; expected %s.", c.Path, octal(perm), octal(cc.mode))
		}
	}
	if cc.hasMaxMode {
		o.property("mode at most "+octal(cc.maxMode), "mode "+octal(perm))
		if extra := perm &^ cc.maxMode; extra != 0 {
			o.mismatch(CodeFileModeTooPermissive, "File %s has mode %s, more permissive than %s (extra bits %s).", c.Path, octal(perm), octal(cc.maxMode), octal(extra))
		}
	}
	if c.Owner != "" || c.Group != "" {
		c.evalOwnership(env, fi, o)
	}
	if c.Contents != nil || c.Contains != "" || cc.re != nil {
		c.evalContents(env, fi, o)
	}
}

// unixPerm is a file's permission bits as chmod writes them, special bits included.
func unixPerm(m fs.FileMode) uint32 {
	p := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}

// fileMode is the fs.FileMode for chmod-style permission bits.
func fileMode(p uint32) fs.FileMode {
	m := fs.FileMode(p & 0o777)
	if p&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if p&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if p&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// evalOwnership compares a file's owner and group by name, resolved in the root's own
// account files: uid 1000 is whoever the image says it is, not whoever the host says.
func (c *Check) evalOwnership(env Env, fi fs.FileInfo, o *outcome) {
	uid, gid, ok := ownerOf(fi)
	if !ok {
		o.error(CodeReadError, "Cannot read the owner of %s on this platform.", c.Path)
		return
	}
	if c.Owner != "" {
		users, err := env.passwd()
		if err != nil {
			o.readError("/etc/passwd", err)
		} else if want, found := findUser(users, c.Owner); !found {
			o.error(CodeUnknownUser, "Owner %q of %s is not a user in /etc/passwd of %s.", c.Owner, c.Path, env.describe())
		} else {
			actual := userName(users, uid)
			o.property("owner "+c.Owner, "owner "+actual)
			if want.uid != uid {
				o.mismatch(CodeFileOwnerMismatch, "File %s is owned by %s; expected %s.", c.Path, actual, c.Owner)
			}
		}
	}
	if c.Group != "" {
		groups, err := env.groups()
		if err != nil {
			o.readError("/etc/group", err)
		} else if want, found := findGroup(groups, c.Group); !found {
			o.error(CodeUnknownGroup, "Group %q of %s is not a group in /etc/group of %s.", c.Group, c.Path, env.describe())
		} else {
			actual := groupName(groups, gid)
			o.property("group "+c.Group, "group "+actual)
			if want.gid != gid {
				o.mismatch(CodeFileGroupMismatch, "File %s belongs to group %s; expected %s.", c.Path, actual, c.Group)
			}
		}
	}
}

func (c *Check) evalContents(env Env, fi fs.FileInfo, o *outcome) {
	if !fi.Mode().IsRegular() {
		o.property("a regular file", describeFileType(fi))
		o.mismatch(CodeFileNotRegular, "%s is %s, not a regular file whose contents can be checked.", c.Path, describeFileType(fi))
		return
	}
	data, err := env.readContents(c.Path)
	if err != nil {
		o.readError(c.Path, err)
		return
	}
	text := string(data)
	if c.Contents != nil {
		o.property("contents "+describeContents(*c.Contents), "contents "+describeContents(text))
		if text != *c.Contents {
			o.mismatch(CodeFileContentsMismatch, "File %s differs from the expected contents: %s.", c.Path, firstDifference(*c.Contents, text))
		}
	}
	if c.Contains != "" {
		found := strings.Contains(text, c.Contains)
		o.property("contains "+quote(c.Contains), yesNo(found, "contains it", "does not contain it"))
		if !found {
			o.mismatch(CodeFileContentsMissingText, "File %s does not contain %s.", c.Path, quote(c.Contains))
		}
	}
	if re := c.compiled.re; re != nil {
		loc := re.FindStringIndex(text)
		if loc != nil {
			o.property("matches "+describeRegexp(re), "matches "+quote(text[loc[0]:loc[1]]))
		} else {
			o.property("matches "+describeRegexp(re), "no match")
			o.mismatch(CodeFileContentsNoMatch, "File %s has nothing that matches the regular expression %s.", c.Path, describeRegexp(re))
		}
	}
}

func describeRegexp(re *regexp.Regexp) string { return "/" + re.String() + "/" }

func describeFileType(fi fs.FileInfo) string {
	switch m := fi.Mode(); {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m.IsRegular():
		return "a regular file"
	default:
		return "a special file"
	}
}

// describeContents writes contents short enough to read in quotes, and longer ones by
// size and digest, which is what a reader compares them by.
func describeContents(s string) string {
	if len(s) <= 60 {
		return quote(s)
	}
	return fmt.Sprintf("%d bytes, sha256 %s", len(s), digest(s))
}

// digest is the first 12 hex digits of s's SHA-256.
func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:6])
}

// firstDifference says where actual first departs from expected, by line.
func firstDifference(expected, actual string) string {
	el := strings.SplitAfter(expected, "\n")
	al := strings.SplitAfter(actual, "\n")
	for i := 0; i < max(len(el), len(al)); i++ {
		var e, a string
		if i < len(el) {
			e = el[i]
		}
		if i < len(al) {
			a = al[i]
		}
		if e != a {
			switch {
			case i >= len(al) || a == "":
				return fmt.Sprintf("it ends before line %d, which should be %s", i+1, quote(e))
			case i >= len(el) || e == "":
				return fmt.Sprintf("it has more after the expected end, from line %d: %s", i+1, quote(a))
			default:
				return fmt.Sprintf("line %d is %s, expected %s", i+1, quote(a), quote(e))
			}
		}
	}
	return "they are equal"
}
