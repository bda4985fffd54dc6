package check

import (
	"strconv"
	"strings"
)

// passwdEntry is a line of /etc/passwd.
type passwdEntry struct {
	name     string
	password string // "x" when the hash is in /etc/shadow
	uid, gid int
	home     string
	shell    string
}

// groupEntry is a line of /etc/group.
type groupEntry struct {
	name    string
	gid     int
	members []string
}

// shadowEntry is the part of a line of /etc/shadow that checks look at.
type shadowEntry struct {
	name string
	hash string
}

// accountLines splits an account database into its colon-separated records, skipping
// blank lines, comments and NIS compat entries ("+", "-"), which name no local account.
func accountLines(data []byte, minFields int) [][]string {
	var out [][]string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) < minFields {
			continue
		}
		out = append(out, f)
	}
	return out
}

func parsePasswd(data []byte) []passwdEntry {
	var out []passwdEntry
	for _, f := range accountLines(data, 7) {
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, passwdEntry{name: f[0], password: f[1], uid: uid, gid: gid, home: f[5], shell: f[6]})
	}
	return out
}

func parseGroup(data []byte) []groupEntry {
	var out []groupEntry
	for _, f := range accountLines(data, 4) {
		gid, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		var members []string
		for _, m := range strings.Split(f[3], ",") {
			if m = strings.TrimSpace(m); m != "" {
				members = append(members, m)
			}
		}
		out = append(out, groupEntry{name: f[0], gid: gid, members: members})
	}
	return out
}

func parseShadow(data []byte) []shadowEntry {
	var out []shadowEntry
	for _, f := range accountLines(data, 2) {
		out = append(out, shadowEntry{name: f[0], hash: f[1]})
	}
	return out
}

func (e Env) passwd() ([]passwdEntry, error) {
	data, err := e.ReadFile("/etc/passwd")
	if err != nil {
		return nil, err
	}
	return parsePasswd(data), nil
}

func (e Env) groups() ([]groupEntry, error) {
	data, err := e.ReadFile("/etc/group")
	if err != nil {
		return nil, err
	}
	return parseGroup(data), nil
}

func (e Env) shadow() ([]shadowEntry, error) {
	data, err := e.ReadFile("/etc/shadow")
	if err != nil {
		return nil, err
	}
	return parseShadow(data), nil
}

func findUser(users []passwdEntry, name string) (passwdEntry, bool) {
	for _, u := range users {
		if u.name == name {
			return u, true
		}
	}
	return passwdEntry{}, false
}

func findGroup(groups []groupEntry, name string) (groupEntry, bool) {
	for _, g := range groups {
		if g.name == name {
			return g, true
		}
	}
	return groupEntry{}, false
}

// userName names uid as the root's /etc/passwd does, or writes the number.
func userName(users []passwdEntry, uid int) string {
	for _, u := range users {
		if u.uid == uid {
			return u.name
		}
	}
	return strconv.Itoa(uid)
}

// groupName names gid as the root's /etc/group does, or writes the number.
func groupName(groups []groupEntry, gid int) string {
	for _, g := range groups {
		if g.gid == gid {
			return g.name
		}
	}
	return strconv.Itoa(gid)
}
