// Package check is gild's in-guest check language, shared by image validation (boot a
// test VM from a new image and run its template's checks inside) and machine
// configuration (audit every VM against its image's checks, and correct drift), so that a
// VM's drift is measured against exactly what its image was tested for. It uses only the
// standard library, because the agent links it and it parses untrusted input.
//
// # Checks
//
// A check set is JSON: an array of checks, or {"checks": [...]}. A check is an object with
// a "name" (required, unique in its set), a "kind", an optional "description", and its
// kind's fields below; a field of another kind is refused. Booleans marked "default true"
// may be left out. Parse reports every problem at once with its path ("checks[3].path").
// The same structs carry YAML tags with the same names for a YAML front-end, which then
// calls NewSet.
//
// file: "path" (absolute); "exists" (default true; false means the path must not exist and
// allows no other field); "contents" (the whole file, exactly), "contains" (a substring),
// "matches" (an RE2 regular expression searched in the contents; use (?m) for ^ and $ per
// line); "mode" (octal such as "0644", compared exactly, special bits included) or
// "maxMode" (no bit beyond these: "0644" accepts 0600 and 0444, refuses 0664); "owner",
// "group" (names, resolved in the root's own /etc/passwd and /etc/group). Symbolic links
// are followed.
//
// lineInFile: "path"; "line" (a whole line, exactly) and/or "matches" (a regular
// expression tried on each line); "present" (default true). With line only, some line
// equals it; with matches only, some line matches; with both, at least one line matches
// and every matching line equals line ("PermitRootLogin no", matches
// "^\s*PermitRootLogin\b"). With present false, no line equals line (or matches matches).
// A missing file has no lines.
//
// setting: a setting of a configuration file as the program reading it sees it. "path";
// "key"; "value" (a string or a number; required unless present is false); "syntax":
// "sshd" or "keyValue" (the default); "default" (the value the program uses when the key
// is not set); "present" (default true; false means the key must not be set). keyValue
// reads "key = value" or "key value" lines, "#" and ";" starting comments, keys compared
// exactly, the last occurrence winning (login.defs, sysctl.conf). sshd reads sshd_config
// as sshd does: keywords in any case, "Key value" or "Key=value", "#" comments, quoted
// arguments; the first occurrence wins, except for the keywords sshd accumulates
// (AllowUsers, DenyUsers, AllowGroups, DenyGroups, Port, ListenAddress, AcceptEnv,
// HostKey), whose every occurrence counts; Include is followed where it stands (globs in
// lexical order, relative paths under /etc/ssh, at most 16 levels deep); and a Match block
// ends the global section until the end of its file, so settings inside one do not count.
// Values compare after their words are joined by single spaces and spaces around commas
// dropped (lists such as Ciphers compare as written, order included); yes/no and other
// option words ("prohibit-password", "INFO") compare in any case; sshd's LoginGraceTime
// and ClientAliveInterval compare as durations ("1m" is "60"). An unset key has its
// default when the check gives one; otherwise it is missing. A missing file sets nothing.
//
// package: "package" (a Debian package name); "installed" (default true); "version"
// (exact) or "minVersion" (at least), compared with dpkg's version ordering. Read from
// /var/lib/dpkg/status under the root; a package counts as installed when its status is
// "installed" (not "config-files" or "half-installed").
//
// service: "unit" (a systemd unit; ".service" is added when the name has no unit
// suffix); at least one of "enabled", "active", "masked". Enablement is judged from
// files, so it works offline: masked when the unit's first file in systemd's search path
// (/etc, /run, /usr/local/lib, /lib, /usr/lib) links to /dev/null; enabled when a .wants or .requires directory under /etc/systemd/system links
// the unit; static (counts as enabled, and cannot be disabled) when the unit file has no
// [Install] section; a unit without a unit file is not enabled. "active" asks
// "systemctl is-active" and needs a live root with systemd running; otherwise the result
// is an Error saying so.
//
// sysctl: "key" ("net.ipv4.ip_forward", or with slashes when a name has dots:
// "net/ipv4/conf/eth0.100/forwarding"); "value" (a string or a number). Read from
// /proc/sys on a live root and compared after whitespace normalisation ("4096 87380"
// equals "4096\t87380"). A key the kernel does not have is NonCompliant (SysctlNotFound).
//
// user: "user" (a name); "exists" (default true); "uid"; "shell"; "home";
// "passwordLocked" (the /etc/shadow hash starts with "!" or "*"); "passwordEmpty" (the
// password field is empty, so anyone can log in without one). "user": "*" with
// "passwordEmpty": false checks every account.
//
// group: "group" (a name); "exists" (default true); "gid"; "members" (exactly these,
// in any order) or "membersToInclude" and/or "membersToExclude", as Azure's group
// membership policies say it. Members are the fourth field of /etc/group; users whose
// primary group it is are not listed there and do not count.
//
// port: "port" (1 to 65535); "protocol" ("tcp", the default, or "udp"); "address" (an IP
// the socket is bound to, exactly: "0.0.0.0" and "::" are the wildcards); "listening"
// (default true). Read from /proc/net/tcp, tcp6, udp and udp6 on a live root; a UDP
// socket listens when it is bound and not connected.
//
// kernelModule: "module" (its name; "-" and "_" are the same, as for the kernel); at least
// one of "loaded" (in /proc/modules, live only; a kernel without /proc/modules has no
// loadable modules, so nothing is loaded) and "blacklisted" (a "blacklist <module>" or an
// "install <module> /bin/false" or "/bin/true" line in modprobe.d: /etc, /run,
// /usr/local/lib, /usr/lib and /lib, a file name in an earlier directory hiding the same
// name in a later one).
//
// command: "command" (run with /bin/sh -c) or "inline" (lines run as one script with
// /bin/sh -e -c, so the first failing line fails it: Azure Image Builder's Shell
// validator, as Packer runs inline shell); "timeout" (a duration, default "60s", at most
// "24h"; running out is an Error); "exitStatus" (default 0); "stdoutContains";
// "stdoutMatches" (a regular expression, tried on the output without its final line
// break, so that "^active$" matches what "echo active" prints). Commands run on a live root only.
//
// # Results
//
// Evaluating a check gives a Result: {name, kind, status, reasons, expected, actual,
// durationMs}, status Compliant, NonCompliant or Error (could not be evaluated), and
// reasons [{code, phrase}] as Azure guest configuration reports them: a stable code (the
// Code constants) and a sentence with the expected and actual values.
//
// # Env
//
// Checks read the system through an Env: a root directory ("/" on the running system, or
// a mounted image) whose absolute symbolic links are resolved inside it, whether that root
// is live, and a Runner for programs. Tests build a root in a temporary directory.
//
// # Remediation
//
// Apply corrects a non-compliant check and returns each Change with the value before and
// after: file (contents, mode, owner and group; creating a missing file needs contents;
// removing one that must not exist), lineInFile (adds, replaces or removes lines), setting
// (sets the value where it is read from, in the file that has it, every other byte kept;
// adds an unset key where it wins: in the main file before its first Include or Match
// line for sshd, at its end for keyValue; comments out a key that must not be set), sysctl
// (writes /proc/sys and persists the value in /etc/sysctl.d/99-gild.conf) and service
// (systemctl mask, unmask, enable, disable, start, stop; with --root on an offline root).
// Package, user, group, port, kernelModule and command checks are not remediable. Applying
// a compliant check changes nothing.
package check
