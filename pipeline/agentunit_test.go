package pipeline

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// imageRoot writes files (path in the image → contents) under a temporary root.
func imageRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, data := range files {
		hp := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(hp), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(hp, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestConfiguresNetwork(t *testing.T) {
	const loOnly = "auto lo\niface lo inet loopback\n"
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  bool
	}{
		{"nothing", nil, false},
		{"networkd .network", map[string]string{"/etc/systemd/network/10-ens.network": "[Match]\nName=ens*\n"}, true},
		{"networkd .link only", map[string]string{"/etc/systemd/network/10-ens.link": "[Match]\n"}, false},
		{"loopback only", map[string]string{"/etc/network/interfaces": loOnly}, false},
		{"loopback, IPv6 too", map[string]string{"/etc/network/interfaces": loOnly + "iface lo inet6 loopback\n"}, false},
		{"eth0", map[string]string{"/etc/network/interfaces": loOnly + "allow-hotplug eth0\niface eth0 inet dhcp\n"}, true},
		{"commented out", map[string]string{"/etc/network/interfaces": loOnly + "#iface eth0 inet dhcp\n# iface ens3 inet dhcp\n"}, false},
		{"auto without iface", map[string]string{"/etc/network/interfaces": loOnly + "auto eth0\n"}, false},
		{"sourced glob", map[string]string{
			"/etc/network/interfaces":              loOnly + "source /etc/network/interfaces.d/*\n",
			"/etc/network/interfaces.d/50-cloud":   "auto ens3\niface ens3 inet dhcp\n",
			"/etc/network/interfaces.d/README.txt": "",
		}, true},
		{"sourced, relative", map[string]string{
			"/etc/network/interfaces":        "source interfaces.d/*\n",
			"/etc/network/interfaces.d/ens3": "iface ens3 inet dhcp\n",
		}, true},
		{"sourced glob, nothing there", map[string]string{"/etc/network/interfaces": loOnly + "source /etc/network/interfaces.d/*\n"}, false},
		{"source-directory skips names run-parts skips", map[string]string{
			"/etc/network/interfaces":              loOnly + "source-directory /etc/network/interfaces.d\n",
			"/etc/network/interfaces.d/eth0.cfg":   "iface eth0 inet dhcp\n",
			"/etc/network/interfaces.d/eth1.dpkg~": "iface eth1 inet dhcp\n",
		}, false},
		{"source-directory", map[string]string{
			"/etc/network/interfaces":          "source-directory interfaces.d\n",
			"/etc/network/interfaces.d/ens3-1": "iface ens3 inet dhcp\n",
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := configuresNetwork(imageRoot(t, tc.files))
			if err != nil || got != tc.want {
				t.Errorf("configuresNetwork = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestConfiguresNetworkSourceLoop(t *testing.T) {
	root := imageRoot(t, map[string]string{"/etc/network/interfaces": "source /etc/network/interfaces\n"})
	if _, err := configuresNetwork(root); err == nil || !strings.Contains(err.Error(), "nest more than 8 deep") {
		t.Errorf("err = %v", err)
	}
}

// parseUnit reads a systemd unit file into section → key → values.
func parseUnit(text string) map[string]map[string][]string {
	out := map[string]map[string][]string{}
	section := ""
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
			out[section] = map[string][]string{}
		default:
			k, v, _ := strings.Cut(line, "=")
			out[section][k] = append(out[section][k], strings.Fields(v)...)
		}
	}
	return out
}

func TestAgentUnitText(t *testing.T) {
	u := parseUnit(agentUnit)
	for _, tc := range []struct {
		section, key string
		want         []string
	}{
		{"Unit", "After", []string{"network-online.target", "systemd-networkd.service"}},
		{"Unit", "Wants", []string{"network-online.target"}},
		{"Service", "Type", []string{"simple"}},
		{"Service", "ExecStart", []string{"/usr/local/bin/gild-agent", "run"}},
		{"Service", "Restart", []string{"always"}},
		{"Service", "RestartSec", []string{"5"}},
		{"Install", "WantedBy", []string{"multi-user.target"}},
	} {
		if got := u[tc.section][tc.key]; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("[%s] %s = %q, want %q", tc.section, tc.key, got, tc.want)
		}
	}
	n := parseUnit(dhcpNetwork)
	if !reflect.DeepEqual(n["Match"]["Name"], []string{"en*", "eth*"}) || !reflect.DeepEqual(n["Network"]["DHCP"], []string{"yes"}) {
		t.Errorf("80-gild-dhcp.network: %v", n)
	}
}

func readLink(t *testing.T, root, p string) string {
	t.Helper()
	target, err := os.Readlink(filepath.Join(root, p))
	if err != nil {
		return ""
	}
	return target
}

// TestInstallAgentService installs into images with and without a network of their own,
// and with systemd-networkd in /lib, in /usr/lib, or not at all.
func TestInstallAgentService(t *testing.T) {
	networkd := func(dir string) map[string]string {
		return map[string]string{
			dir + "/systemd-networkd.service":             "[Unit]\n",
			dir + "/systemd-networkd.socket":              "[Unit]\n",
			dir + "/systemd-networkd-wait-online.service": "[Unit]\n",
		}
	}
	with := func(a, b map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range a {
			out[k] = v
		}
		for k, v := range b {
			out[k] = v
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		files   map[string]string
		links   map[string]string // link in the image → target; "" means no link
		dhcp    bool
		noteHas string
	}{
		{"no network, networkd in /lib", networkd("/lib/systemd/system"), map[string]string{
			"multi-user.target.wants/systemd-networkd.service":                 "/lib/systemd/system/systemd-networkd.service",
			"sockets.target.wants/systemd-networkd.socket":                     "/lib/systemd/system/systemd-networkd.socket",
			"network-online.target.wants/systemd-networkd-wait-online.service": "/lib/systemd/system/systemd-networkd-wait-online.service",
		}, true, "enabled systemd-networkd with DHCP"},
		{"no network, networkd in /usr/lib", networkd("/usr/lib/systemd/system"), map[string]string{
			"multi-user.target.wants/systemd-networkd.service": "/usr/lib/systemd/system/systemd-networkd.service",
		}, true, "enabled systemd-networkd with DHCP"},
		{"no network, no wait-online", map[string]string{"/lib/systemd/system/systemd-networkd.service": ""}, map[string]string{
			"multi-user.target.wants/systemd-networkd.service":                 "/lib/systemd/system/systemd-networkd.service",
			"network-online.target.wants/systemd-networkd-wait-online.service": "",
		}, true, "the image lacks systemd-networkd.socket, systemd-networkd-wait-online.service"},
		{"no network, no networkd", nil, map[string]string{"multi-user.target.wants/systemd-networkd.service": ""}, false, "has no systemd-networkd"},
		{"ifupdown network", with(networkd("/lib/systemd/system"), map[string]string{"/etc/network/interfaces": "iface eth0 inet dhcp\n"}),
			map[string]string{"multi-user.target.wants/systemd-networkd.service": ""}, false, ""},
		{"networkd network", with(networkd("/lib/systemd/system"), map[string]string{"/etc/systemd/network/20-wired.network": "[Match]\nName=*\n"}),
			map[string]string{"multi-user.target.wants/systemd-networkd.service": ""}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := imageRoot(t, tc.files)
			notes, err := installAgentService(root)
			if err != nil {
				t.Fatal(err)
			}
			if got := readLink(t, root, "etc/systemd/system/multi-user.target.wants/gild-agent.service"); got != "/etc/systemd/system/gild-agent.service" {
				t.Errorf("gild-agent.service enabled as %q", got)
			}
			if data, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/gild-agent.service")); err != nil || string(data) != agentUnit {
				t.Errorf("unit: %v", err)
			}
			if data, err := os.ReadFile(filepath.Join(root, "etc/modules-load.d/gild.conf")); err != nil || !slices.Contains(strings.Split(string(data), "\n"), "qemu_fw_cfg") {
				t.Errorf("modules-load.d/gild.conf: %q, %v", data, err)
			}
			for link, want := range tc.links {
				if got := readLink(t, root, "etc/systemd/system/"+link); got != want {
					t.Errorf("%s -> %q, want %q", link, got, want)
				}
			}
			_, err = os.Stat(filepath.Join(root, "etc/systemd/network/80-gild-dhcp.network"))
			if (err == nil) != tc.dhcp {
				t.Errorf("80-gild-dhcp.network written: %v, want %v", err == nil, tc.dhcp)
			}
			joined := strings.Join(notes, "\n")
			if tc.noteHas != "" && !strings.Contains(joined, tc.noteHas) || tc.noteHas == "" && len(notes) != 1 {
				t.Errorf("notes:\n%s", joined)
			}
			// Installing twice (a layered image, whose parent has it) changes nothing.
			if _, err := installAgentService(root); err != nil {
				t.Errorf("second install: %v", err)
			}
		})
	}
}
