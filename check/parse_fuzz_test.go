package check

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzParse: Parse never panics; what it refuses it explains with at least one problem;
// what it accepts writes back as JSON that parses to the same set, and evaluates on an
// offline root without panicking. Run with: go test -fuzz=FuzzParse ./check
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		everyKind,
		`[]`,
		`{"checks":[]}`,
		`[{"name":"a","kind":"file","path":"/etc/passwd","mode":"0644"}]`,
		`[{"name":"a","kind":"lineInFile","path":"/x","line":"a","matches":"^a"}]`,
		`[{"name":"a","kind":"sysctl","key":"net/ipv4/conf/eth0.1/forwarding","value":1.5e3}]`,
		`[{"name":"a","kind":"user","user":"*","passwordEmpty":false}]`,
		`[{"name":"a","kind":"setting","syntax":"sshd","path":"/etc/ssh/sshd_config","key":"Port","value":22,"default":"22"}]`,
		`[{"name":"a","kind":"setting","path":"/etc/login.defs","key":"UMASK","present":false}]`,
		`[{"name":"a","kind":"fiel","Path":"/y","path":"/z"}]`,
		`{"checks":{"name":"a"}}`,
		`[1, null, "x", {"name":"a","kind":"command","inline":[],"timeout":"48h"}]`,
		"[\n {\"name\": }",
	} {
		f.Add([]byte(seed))
	}
	root := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Parse(data)
		if err != nil {
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("refused without problems: %v", err)
			}
			for _, p := range ps {
				if p.Message == "" {
					t.Fatalf("a problem without a message: %+v", ps)
				}
			}
			return
		}
		written, err := json.Marshal(set)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		again, err := Parse(written)
		if err != nil {
			t.Fatalf("accepted %q but not its own JSON %s: %v", data, written, err)
		}
		rewritten, _ := json.Marshal(again)
		if !bytes.Equal(written, rewritten) {
			t.Fatalf("round trip changed the set:\n%s\n%s", written, rewritten)
		}
		for _, r := range set.Evaluate(context.Background(), OfflineEnv(root)) {
			if r.Status == "" || r.Reasons == nil {
				t.Fatalf("incomplete result %+v", r)
			}
		}
	})
}
