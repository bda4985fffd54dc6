package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gildhq/gild/agentproto"
)

func TestParseFirstBoot(t *testing.T) {
	valid := `{"version":1,"instanceId":"i-1","machineId":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-1",
		"computerName":"web-1","adminUsername":"ops","sshPublicKeys":["ssh-ed25519 AAAA ops"],"server":"http://10.0.2.2:8080","enrollmentToken":"t"}`
	for _, tc := range []struct {
		name string
		in   string
		errs []string
	}{
		{"valid", valid, nil},
		{"no admin", `{"version":1,"instanceId":"i","machineId":"m","computerName":"h","server":"https://gild.example.com","enrollmentToken":"t"}`, nil},
		{"not JSON", `{`, []string{"not JSON first-boot data"}},
		{"every problem at once", `{"version":2,"computerName":"-bad-","adminUsername":"Root Admin","sshPublicKeys":["ssh-rsa A\nssh-rsa B",""],"server":"10.0.2.2:8080"}`, []string{
			"version 2, this side speaks 1", "instanceId is empty", "machineId is empty", "enrollmentToken is empty",
			`computerName: "-bad-" is not a hostname`, `adminUsername: "Root Admin" is not a user name`,
			"sshPublicKeys[0]: must be one non-empty authorized_keys line", "sshPublicKeys[1]: must be one non-empty authorized_keys line",
			`server: server URL "10.0.2.2:8080"`}},
		{"keys without an account", `{"version":1,"instanceId":"i","machineId":"m","computerName":"h","sshPublicKeys":["ssh-rsa A"],"server":"http://s","enrollmentToken":"t"}`,
			[]string{"sshPublicKeys: given without adminUsername"}},
		{"hostname too long", `{"version":1,"instanceId":"i","machineId":"m","computerName":"` + strings.Repeat("a", 64) + `","server":"http://s","enrollmentToken":"t"}`,
			[]string{"is not a hostname"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFirstBoot([]byte(tc.in))
			if (err != nil) != (len(tc.errs) > 0) {
				t.Fatalf("err = %v", err)
			}
			for _, want := range tc.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
		})
	}
}

func TestHostsWithName(t *testing.T) {
	for _, tc := range []struct{ name, in, host, want string }{
		{"appended", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n", "web-1", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n127.0.1.1\tweb-1\n"},
		{"replaced, repeats dropped", "127.0.0.1 localhost\n127.0.1.1 debian\n# comment\n127.0.1.1 old\n", "web-1", "127.0.0.1 localhost\n127.0.1.1\tweb-1\n# comment\n"},
		{"no file", "", "web-1.corp.example", "127.0.0.1\tlocalhost\n127.0.1.1\tweb-1.corp.example web-1\n"},
	} {
		if got := string(hostsWithName([]byte(tc.in), tc.host)); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestProvisionExistingUser: an account that exists is not created again, and gets its
// keys; a system without /etc/sudoers.d gets no sudo rule; a failing useradd is an error
// naming the user.
func TestProvisionExistingUser(t *testing.T) {
	root := writeRoot(t, map[string]string{"/etc/passwd": "root:x:0:0:root:/root:/bin/bash\nops:x:" + strconv.Itoa(os.Getuid()) + ":" + strconv.Itoa(os.Getgid()) + "::/srv/ops:/bin/sh\n"})
	runner := &fakeRunner{}
	sys := System{Root: root, Runner: runner}
	fb := agentproto.FirstBoot{ComputerName: "db-1", AdminUsername: "ops", SSHPublicKeys: []string{"ssh-ed25519 AAAA k"}}
	did, err := sys.provision(context.Background(), fb)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(did, "; ") != "hostname db-1; 1 SSH keys for ops" || len(runner.Calls()) != 0 {
		t.Errorf("did %q, ran %q", did, runner.Calls())
	}
	if data, err := os.ReadFile(filepath.Join(root, "srv/ops/.ssh/authorized_keys")); err != nil || string(data) != "ssh-ed25519 AAAA k\n" {
		t.Errorf("authorized_keys: %q, %v", data, err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/sudoers.d")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("sudoers.d created: %v", err)
	}

	fb.AdminUsername = "nobody-yet"
	_, err = System{Root: writeRoot(t, map[string]string{"/etc/hostname": "x\n"}), Runner: runner}.provision(context.Background(), fb)
	if err == nil || !strings.Contains(err.Error(), "provision nobody-yet: useradd --root") {
		t.Errorf("err = %v", err)
	}
}
