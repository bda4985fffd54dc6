package check

import (
	"context"
	"testing"
)

// benchChecks are the checks of a typical hardening baseline that read files, which is
// what an agent runs every 15 minutes on every VM.
const benchChecks = `[
	{"name":"passwd","kind":"file","path":"/etc/passwd","mode":"0644","owner":"root","group":"root"},
	{"name":"shadow","kind":"file","path":"/etc/shadow","maxMode":"0640"},
	{"name":"root login","kind":"lineInFile","path":"/etc/ssh/sshd_config","line":"PermitRootLogin no","matches":"^\\s*PermitRootLogin\\b"},
	{"name":"openssh","kind":"package","package":"openssh-server","minVersion":"1:9.2p1-2"},
	{"name":"no telnet","kind":"package","package":"telnet","installed":false},
	{"name":"ssh enabled","kind":"service","unit":"ssh","enabled":true},
	{"name":"no empty passwords","kind":"user","user":"*","passwordEmpty":false},
	{"name":"sudo","kind":"group","group":"sudo","membersToExclude":["guest"]},
	{"name":"cramfs","kind":"kernelModule","module":"cramfs","blacklisted":true}
]`

// BenchmarkEvaluate measures one evaluation of a parsed set: the regular expressions and
// modes were compiled once by Parse, and only the reading and comparing remain.
func BenchmarkEvaluate(b *testing.B) {
	r := newRoot(b).standard()
	r.file("/etc/ssh/sshd_config", "Port 22\nPermitRootLogin no\n")
	set, err := Parse([]byte(benchChecks))
	if err != nil {
		b.Fatal(err)
	}
	env := r.offline()
	ctx := context.Background()
	for b.Loop() {
		for _, res := range set.Evaluate(ctx, env) {
			if res.Status == StatusError {
				b.Fatalf("%+v", res)
			}
		}
	}
}

func BenchmarkParse(b *testing.B) {
	data := []byte(everyKind)
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}
