package check

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseForms(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		n    int
	}{
		{"array", `[{"name":"a","kind":"file","path":"/etc/passwd"}]`, 1},
		{"object", `{"checks":[{"name":"a","kind":"file","path":"/etc/passwd"},{"name":"b","kind":"sysctl","key":"kernel.randomize_va_space","value":2}]}`, 2},
		{"empty array", ` [] `, 0},
		{"empty object", `{"checks":[]}`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if set.Len() != tc.n {
				t.Fatalf("got %d checks, want %d", set.Len(), tc.n)
			}
		})
	}
}

// TestParseProblems: every problem of a document is reported at once, in path order, each
// at its path.
func TestParseProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []string
	}{
		{"not JSON", "[\n  {\"name\": }\n]", []string{`not valid JSON: line 2, column 12: invalid character '}' looking for beginning of value`}},
		{"trailing data", `[] []`, []string{`not valid JSON: line 1, column 4: invalid character '[' after top-level value`}},
		{"neither array nor object", `"checks"`, []string{`a check set is a JSON array of checks or an object {"checks": [...]}, not string "checks"`}},
		{"null", `null`, []string{`a check set is a JSON array of checks or an object {"checks": [...]}, not null`}},
		{"object without checks", `{"chekcs":[]}`, []string{
			`chekcs: unknown field; a check set is {"checks": [...]}; did you mean "checks"?`,
			`checks: required`,
		}},
		{"checks not an array", `{"checks":{"name":"a"}}`, []string{`checks: want an array of checks, got an object`}},
		{"repeated checks", `{"checks":[],"checks":[]}`, []string{`checks: repeated field`}},
		{"element not an object", `[1, {"name":"a"}, null]`, []string{
			`checks[0]: want a check object, got number 1`,
			`checks[1].kind: required; one of file, lineInFile, setting, package, service, sysctl, user, group, port, kernelModule, command`,
			`checks[2]: want a check object, got null`,
		}},
		{"unknown kind and field, repeated field", `[{"name":"a","kind":"fiel","path":"/x","Path":"/y","path":"/z","colour":"red"}]`, []string{
			`checks[0].Path: unknown field; did you mean "path"?`,
			`checks[0].colour: unknown field`,
			`checks[0].kind: unknown kind "fiel"; did you mean "file"?; one of file, lineInFile, setting, package, service, sysctl, user, group, port, kernelModule, command`,
			`checks[0].path: repeated field`,
		}},
		{"wrong types", `[{"name":"a","kind":"user","user":"x","uid":"0","exists":"yes","passwordLocked":1},{"name":"b","kind":"group","group":"g","members":["a",2]},{"name":"c","kind":"command","command":"true","timeout":30}]`, []string{
			`checks[0].exists: want true or false, got string "yes"`,
			`checks[0].passwordLocked: want true or false, got number 1`,
			`checks[0].uid: want an integer, got string "0"`,
			`checks[1].members: want an array of strings, got number in it`,
			`checks[2].timeout: want a duration string such as "30s", got number 30`,
		}},
		{"names", `[{"kind":"file","path":"/a"},{"name":"x\ty","kind":"file","path":"/b"},{"name":"d","kind":"file","path":"/c"},{"name":"d","kind":"file","path":"/d"}]`, []string{
			`checks[0].name: required`,
			`checks[1].name: contains a control character`,
			`checks[3].name: "d" is already the name of checks[2]; names must be unique`,
		}},
		{"fields of another kind", `[{"name":"a","kind":"sysctl","key":"kernel.panic","value":1,"unit":"x","mode":"0644"}]`, []string{
			`checks[0].mode: not a field of a sysctl check (its fields: key, value)`,
			`checks[0].unit: not a field of a sysctl check (its fields: key, value)`,
		}},
		{"file", `[
			{"name":"a","kind":"file","path":"etc/x","mode":"999","owner":"a b","maxMode":"0644"},
			{"name":"b","kind":"file","path":"/etc/../etc/x","exists":false,"mode":"0644","contains":"x"},
			{"name":"c","kind":"file","path":"/x","contents":"abc","matches":"^z","contains":"q"},
			{"name":"d","kind":"file","path":"/x","matches":"(","mode":"0o644"}]`, []string{
			`checks[0].maxMode: give mode (exact) or maxMode (at most), not both`,
			`checks[0].mode: "999" is not an octal mode such as "0644"`,
			`checks[0].owner: "a b" is not a valid account name`,
			`checks[0].path: "etc/x" is not an absolute path`,
			`checks[1].contains: a file that must not exist has no contains`,
			`checks[1].mode: a file that must not exist has no mode`,
			`checks[1].path: write it as "/etc/x"`,
			`checks[2].contains: contents do not contain it, so no file could pass`,
			`checks[2].matches: does not match contents, so no file could pass`,
			`checks[3].matches: not a valid regular expression: missing closing ): ` + "`(`",
			`checks[3].mode: "0o644" is not an octal mode such as "0644"`,
		}},
		{"lineInFile", `[
			{"name":"a","kind":"lineInFile","path":"/x"},
			{"name":"b","kind":"lineInFile","path":"/x","line":"a\nb"},
			{"name":"c","kind":"lineInFile","path":"/x","line":"a","matches":"^a","present":false},
			{"name":"d","kind":"lineInFile","path":"/x","line":"PermitRootLogin no","matches":"^Port"}]`, []string{
			`checks[0].line: required: give line (exact), matches (a regular expression) or both`,
			`checks[1].line: a line has no line break`,
			`checks[2].matches: with present: false give line or matches, not both`,
			`checks[3].line: does not match checks[3].matches, so a file fixed with it would still fail`,
		}},
		{"package", `[
			{"name":"a","kind":"package","package":"Nginx","version":"x1","minVersion":"1.0"},
			{"name":"b","kind":"package","installed":false,"version":"1.0"}]`, []string{
			`checks[0].minVersion: give version (exact) or minVersion (at least), not both`,
			`checks[0].package: "Nginx" is not a Debian package name (lower-case letters, digits, + - . and at least 2 characters)`,
			`checks[0].version: version "x1": the upstream version must start with a digit`,
			`checks[1].package: required`,
			`checks[1].version: a package that must not be installed has no version`,
		}},
		{"service", `[
			{"name":"a","kind":"service"},
			{"name":"b","kind":"service","unit":"../x","masked":true,"enabled":true,"active":true}]`, []string{
			`checks[0].enabled: required: give enabled, active, masked or several`,
			`checks[0].unit: required`,
			`checks[1].active: a masked unit cannot be active`,
			`checks[1].enabled: a masked unit cannot be enabled`,
			`checks[1].unit: "../x" is not a unit name such as "ssh.service"`,
		}},
		{"sysctl", `[
			{"name":"a","kind":"sysctl","key":"net/../../etc/shadow","value":" "},
			{"name":"b","kind":"sysctl","key":"kernel..panic","value":"1\n2"}]`, []string{
			`checks[0].key: "net/../../etc/shadow" is not a sysctl key such as "net.ipv4.ip_forward"`,
			`checks[0].value: required`,
			`checks[1].key: "kernel..panic" is not a sysctl key such as "net.ipv4.ip_forward"`,
			`checks[1].value: a sysctl value has no line break`,
		}},
		{"user", `[
			{"name":"a","kind":"user","user":"*","uid":0},
			{"name":"b","kind":"user","user":"x","uid":-1,"shell":"bash","passwordLocked":true,"passwordEmpty":true},
			{"name":"c","kind":"user","user":"x","exists":false,"shell":"/bin/sh"}]`, []string{
			`checks[0].passwordEmpty: user "*" (every account) needs passwordEmpty: false`,
			`checks[0].uid: not used with user "*" (every account)`,
			`checks[1].passwordEmpty: a locked password is not empty`,
			`checks[1].shell: "bash" is not an absolute path`,
			`checks[1].uid: must be 0 or more`,
			`checks[2].shell: a user that must not exist has no shell`,
		}},
		{"group", `[
			{"name":"a","kind":"group","group":"g","members":["a"],"membersToInclude":["b"]},
			{"name":"b","kind":"group","group":"g","membersToInclude":["a","b:c"],"membersToExclude":["a"]}]`, []string{
			`checks[0].members: members (exactly these) cannot be combined with membersToInclude or membersToExclude`,
			`checks[1].membersToExclude[0]: "a" is also in membersToInclude`,
			`checks[1].membersToInclude[1]: "b:c" is not a valid account name`,
		}},
		{"port", `[{"name":"a","kind":"port","port":70000,"protocol":"sctp","address":"localhost"}]`, []string{
			`checks[0].address: "localhost" is not an IP address such as "0.0.0.0", "::" or "127.0.0.1"`,
			`checks[0].port: required: a port number from 1 to 65535`,
			`checks[0].protocol: "sctp" is not tcp or udp`,
		}},
		{"kernelModule", `[
			{"name":"a","kind":"kernelModule","module":"a/b"},
			{"name":"b","kind":"kernelModule","module":"x","loaded":true,"blacklisted":true}]`, []string{
			`checks[0].loaded: required: give loaded, blacklisted or both`,
			`checks[0].module: "a/b" is not a kernel module name`,
			`checks[1].blacklisted: a module that must be loaded is not blacklisted (a blacklisted module can still be loaded by hand, but say what you mean)`,
		}},
		{"command", `[
			{"name":"a","kind":"command"},
			{"name":"b","kind":"command","command":"true","inline":["true"]},
			{"name":"c","kind":"command","inline":[],"timeout":"48h","exitStatus":256,"stdoutMatches":"[z-a]"}]`, []string{
			`checks[0].command: required: give command (a shell command) or inline (lines of a script)`,
			`checks[1].inline: give command or inline, not both`,
			`checks[2].exitStatus: must be from 0 to 255`,
			`checks[2].inline: needs at least one line`,
			`checks[2].stdoutMatches: not a valid regular expression: invalid character class range: ` + "`z-a`",
			`checks[2].timeout: must be more than 0 and at most 24h0m0s`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("got %v, want Problems", err)
			}
			got := strings.Split(ps.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// everyKind is a valid set with every kind and most fields.
const everyKind = `{"checks":[
	{"name":"sshd config","kind":"file","description":"CIS 5.2.1","path":"/etc/ssh/sshd_config","mode":"0600","owner":"root","group":"root","contains":"Protocol 2","matches":"(?m)^Port 22$"},
	{"name":"issue","kind":"file","path":"/etc/issue","contents":"","maxMode":"0644"},
	{"name":"no hosts.equiv","kind":"file","path":"/etc/hosts.equiv","exists":false},
	{"name":"sshd root login","kind":"setting","syntax":"sshd","path":"/etc/ssh/sshd_config","key":"PermitRootLogin","value":"no","default":"prohibit-password","present":true},
	{"name":"umask","kind":"setting","path":"/etc/login.defs","key":"UMASK","value":"027"},
	{"name":"root login","kind":"lineInFile","path":"/etc/ssh/sshd_config","line":"PermitRootLogin no","matches":"^\\s*PermitRootLogin\\b","present":true},
	{"name":"openssh","kind":"package","package":"openssh-server","minVersion":"1:9.2p1-2"},
	{"name":"no telnet","kind":"package","package":"telnetd","installed":false},
	{"name":"ssh unit","kind":"service","unit":"ssh","enabled":true,"active":true,"masked":false},
	{"name":"forwarding","kind":"sysctl","key":"net.ipv4.ip_forward","value":0},
	{"name":"root","kind":"user","user":"root","uid":0,"shell":"/bin/bash","home":"/root","passwordLocked":true},
	{"name":"no empty passwords","kind":"user","user":"*","passwordEmpty":false},
	{"name":"sudo","kind":"group","group":"sudo","gid":27,"membersToInclude":["alice"],"membersToExclude":["guest"]},
	{"name":"adm","kind":"group","group":"adm","members":[]},
	{"name":"ssh port","kind":"port","port":22,"protocol":"tcp","address":"0.0.0.0","listening":true},
	{"name":"cramfs","kind":"kernelModule","module":"cramfs","loaded":false,"blacklisted":true},
	{"name":"hello","kind":"command","command":"echo hello","timeout":"5s","exitStatus":0,"stdoutContains":"hello","stdoutMatches":"^h"},
	{"name":"validator","kind":"command","inline":["test -d /etc","test -f /etc/passwd"]}
]}`

// TestParseRoundTrip: a set written back as JSON parses to the same set, so that sets can be
// stored and sent as JSON.
func TestParseRoundTrip(t *testing.T) {
	set, err := Parse([]byte(everyKind))
	if err != nil {
		t.Fatal(err)
	}
	first, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(first)
	if err != nil {
		t.Fatalf("re-parse %s: %v", first, err)
	}
	second, err := json.Marshal(again)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Fatalf("round trip changed the set:\n%s\n%s", first, second)
	}
	for _, want := range []string{`"contents":""`, `"members":[]`, `"value":"0"`, `"timeout":"5s"`, `"exitStatus":0`, `"masked":false`} {
		if !bytes.Contains(first, []byte(want)) {
			t.Errorf("written set lacks %s: %s", want, first)
		}
	}
}

// TestNewSet: checks decoded some other way (a YAML front-end) are validated the same way.
func TestNewSet(t *testing.T) {
	no := false
	good := []Check{{Name: "a", Kind: KindFile, Path: "/etc/passwd"}, {Name: "b", Kind: KindUser, User: "games", Exists: &no}}
	set, err := NewSet(good)
	if err != nil || set.Len() != 2 {
		t.Fatalf("NewSet(good) = %d checks, %v", set.Len(), err)
	}
	good[0].Path = "changed"
	if set.Checks()[0].Path != "/etc/passwd" {
		t.Error("the set shares its checks with the caller's slice")
	}
	_, err = NewSet([]Check{{Name: "a", Kind: KindFile, Path: "/x", Unit: "ssh"}, {Name: "a", Kind: KindPort}})
	want := "checks[0].unit: not a field of a file check (its fields: path, exists, contents, contains, matches, mode, maxMode, owner, group)\n" +
		"checks[1].name: \"a\" is already the name of checks[0]; names must be unique\n" +
		"checks[1].port: required: a port number from 1 to 65535"
	if err == nil || err.Error() != want {
		t.Errorf("NewSet(bad) = %v, want\n%s", err, want)
	}
}

// TestSetInsideJSON: a Set field of another document is parsed as strictly as Parse does.
func TestSetInsideJSON(t *testing.T) {
	var doc struct {
		Checks Set `json:"validation"`
	}
	if err := json.Unmarshal([]byte(`{"validation":{"checks":[{"name":"a","kind":"file","path":"/etc/passwd"}]}}`), &doc); err != nil || doc.Checks.Len() != 1 {
		t.Fatalf("got %d checks, %v", doc.Checks.Len(), err)
	}
	err := json.Unmarshal([]byte(`{"validation":[{"name":"a","kind":"file","path":"rel"}]}`), &doc)
	if err == nil || !strings.Contains(err.Error(), `checks[0].path: "rel" is not an absolute path`) {
		t.Fatalf("got %v", err)
	}
}
