package check

import (
	"fmt"
	"sort"
	"strings"
)

func (c *Check) evalUser(env Env, o *outcome) {
	users, err := env.passwd()
	if err != nil {
		o.property("user "+c.User, "unknown")
		o.readError("/etc/passwd", err)
		return
	}
	if c.User == "*" {
		c.evalEveryUserPassword(env, users, o)
		return
	}
	exists := orDefault(c.Exists, true)
	u, found := findUser(users, c.User)
	o.property(yesNo(exists, "user "+c.User+" exists", "no user "+c.User), yesNo(found, "user "+c.User+" exists", "no user "+c.User))
	switch {
	case !found && exists:
		o.mismatch(CodeUserMissing, "User %s does not exist; expected it to exist.", c.User)
		return
	case found && !exists:
		o.mismatch(CodeUserPresent, "User %s exists (uid %d); expected it absent.", c.User, u.uid)
		return
	case !found:
		return
	}
	if c.UID != nil {
		o.property(fmt.Sprintf("uid %d", *c.UID), fmt.Sprintf("uid %d", u.uid))
		if u.uid != *c.UID {
			o.mismatch(CodeUserUidMismatch, "User %s has uid %d; expected %d.", c.User, u.uid, *c.UID)
		}
	}
	if c.Shell != "" {
		o.property("shell "+c.Shell, "shell "+u.shell)
		if u.shell != c.Shell {
			o.mismatch(CodeUserShellMismatch, "User %s has shell %s; expected %s.", c.User, quote(u.shell), c.Shell)
		}
	}
	if c.Home != "" {
		o.property("home "+c.Home, "home "+u.home)
		if u.home != c.Home {
			o.mismatch(CodeUserHomeMismatch, "User %s has home %s; expected %s.", c.User, quote(u.home), c.Home)
		}
	}
	if c.PasswordLocked == nil && c.PasswordEmpty == nil {
		return
	}
	hash, ok := passwordHash(env, u, o)
	if !ok {
		if c.PasswordLocked != nil {
			o.property(yesNo(*c.PasswordLocked, "password locked", "password not locked"), "unknown")
		}
		if c.PasswordEmpty != nil {
			o.property(yesNo(*c.PasswordEmpty, "password empty", "password not empty"), "unknown")
		}
		return
	}
	if c.PasswordLocked != nil {
		locked := strings.HasPrefix(hash, "!") || strings.HasPrefix(hash, "*")
		o.property(yesNo(*c.PasswordLocked, "password locked", "password not locked"), yesNo(locked, "password locked", "password not locked"))
		switch {
		case *c.PasswordLocked && !locked:
			o.mismatch(CodePasswordNotLocked, "User %s can log in with a password (its /etc/shadow entry does not start with ! or *); expected it locked.", c.User)
		case !*c.PasswordLocked && locked:
			o.mismatch(CodePasswordLocked, "User %s has a locked password (its /etc/shadow entry starts with %s); expected it not locked.", c.User, quote(hash[:1]))
		}
	}
	if c.PasswordEmpty != nil {
		empty := hash == ""
		o.property(yesNo(*c.PasswordEmpty, "password empty", "password not empty"), yesNo(empty, "password empty", "password not empty"))
		switch {
		case !*c.PasswordEmpty && empty:
			o.mismatch(CodePasswordEmpty, "User %s has an empty password: anyone can log in as %s without one.", c.User, c.User)
		case *c.PasswordEmpty && !empty:
			o.mismatch(CodePasswordNotEmpty, "User %s has a password or a locked one; expected an empty password.", c.User)
		}
	}
}

// passwordHash finds a user's password field: in /etc/shadow when /etc/passwd says "x",
// or in /etc/passwd itself (an empty field there is an account without a password).
func passwordHash(env Env, u passwdEntry, o *outcome) (string, bool) {
	if u.password != "x" {
		return u.password, true
	}
	entries, err := env.shadow()
	if err != nil {
		o.readError("/etc/shadow", err)
		return "", false
	}
	for _, s := range entries {
		if s.name == u.name {
			return s.hash, true
		}
	}
	o.error(CodeShadowEntryMissing, "User %s has no line in /etc/shadow, though /etc/passwd says its password is there.", u.name)
	return "", false
}

// evalEveryUserPassword is user "*" with passwordEmpty false: no account may log in
// without a password.
func (c *Check) evalEveryUserPassword(env Env, users []passwdEntry, o *outcome) {
	var empty []string
	shadowed := map[string]bool{}
	for _, u := range users {
		switch u.password {
		case "":
			empty = append(empty, u.name)
		case "x":
			shadowed[u.name] = true
		}
	}
	if len(shadowed) > 0 {
		entries, err := env.shadow()
		if err != nil {
			o.property("no account with an empty password", "unknown")
			o.readError("/etc/shadow", err)
			return
		}
		for _, s := range entries {
			if shadowed[s.name] && s.hash == "" {
				empty = append(empty, s.name)
			}
		}
	}
	sort.Strings(empty)
	if len(empty) == 0 {
		o.property("no account with an empty password", "none")
		return
	}
	o.property("no account with an empty password", "empty: "+strings.Join(empty, ", "))
	for _, name := range empty {
		o.mismatch(CodePasswordEmpty, "User %s has an empty password: anyone can log in as %s without one.", name, name)
	}
}

func (c *Check) evalGroup(env Env, o *outcome) {
	groups, err := env.groups()
	if err != nil {
		o.property("group "+c.Group, "unknown")
		o.readError("/etc/group", err)
		return
	}
	exists := orDefault(c.Exists, true)
	g, found := findGroup(groups, c.Group)
	o.property(yesNo(exists, "group "+c.Group+" exists", "no group "+c.Group), yesNo(found, "group "+c.Group+" exists", "no group "+c.Group))
	switch {
	case !found && exists:
		o.mismatch(CodeGroupMissing, "Group %s does not exist; expected it to exist.", c.Group)
		return
	case found && !exists:
		o.mismatch(CodeGroupPresent, "Group %s exists (gid %d); expected it absent.", c.Group, g.gid)
		return
	case !found:
		return
	}
	if c.GID != nil {
		o.property(fmt.Sprintf("gid %d", *c.GID), fmt.Sprintf("gid %d", g.gid))
		if g.gid != *c.GID {
			o.mismatch(CodeGroupGidMismatch, "Group %s has gid %d; expected %d.", c.Group, g.gid, *c.GID)
		}
	}
	actual := "members " + describeMembers(g.members)
	if c.Members != nil {
		o.property("members exactly "+describeMembers(c.Members), actual)
		if !sameMembers(g.members, c.Members) {
			o.mismatch(CodeGroupMembersMismatch, "Group %s has members %s; expected exactly %s.", c.Group, describeMembers(g.members), describeMembers(c.Members))
		}
	}
	if c.MembersToInclude != nil {
		o.property("members include "+describeMembers(c.MembersToInclude), actual)
		for _, m := range c.MembersToInclude {
			if !contains(g.members, m) {
				o.mismatch(CodeGroupMemberMissing, "User %s is not a member of group %s; expected it to be.", m, c.Group)
			}
		}
	}
	if c.MembersToExclude != nil {
		o.property("members exclude "+describeMembers(c.MembersToExclude), actual)
		for _, m := range c.MembersToExclude {
			if contains(g.members, m) {
				o.mismatch(CodeGroupMemberUnexpected, "User %s is a member of group %s; expected it not to be.", m, c.Group)
			}
		}
	}
}

func describeMembers(m []string) string {
	if len(m) == 0 {
		return "(none)"
	}
	s := append([]string(nil), m...)
	sort.Strings(s)
	return strings.Join(s, ", ")
}

func sameMembers(a, b []string) bool {
	set := func(l []string) map[string]bool {
		m := map[string]bool{}
		for _, x := range l {
			m[x] = true
		}
		return m
	}
	sa, sb := set(a), set(b)
	if len(sa) != len(sb) {
		return false
	}
	for x := range sa {
		if !sb[x] {
			return false
		}
	}
	return true
}
