package pipeline

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// agentUnit runs gild-agent's daemon in every machine made from the image: it provisions
// a VM from its first-boot data, enrolls, and reports. In a validation boot there is no
// first-boot data: it waits, and writes nothing to the results port, which is
// gild-validate's alone. Restart=always because the daemon exits only on a broken state
// directory, which a later start may find repaired.
const agentUnit = `[Unit]
Description=gild agent: enrolls this machine with gild and reports its compliance
After=network-online.target systemd-networkd.service
Wants=network-online.target

[Service]
Type=simple
ExecStart=/usr/local/bin/gild-agent run
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
`

// dhcpNetwork is the network an image without one gets, so that the agent can reach its
// server: DHCP on the first Ethernet-like interfaces, as QEMU's user-mode network and most
// hypervisors offer.
const dhcpNetwork = `# Written by gild: the image configured no network, and gild-agent must reach its server.
[Match]
Name=en* eth*

[Network]
DHCP=yes
`

// modulesLoad has the kernel load qemu_fw_cfg at boot, so that /sys/firmware/qemu_fw_cfg
// shows the VM's first-boot data by the time the agent looks.
const modulesLoad = "# Written by gild: gild-agent reads the VM's first-boot data from QEMU fw_cfg.\nqemu_fw_cfg\n"

// networkdUnits are systemd-networkd's units and the target each is enabled into, as
// "systemctl enable systemd-networkd" does through its Also= lines.
var networkdUnits = []struct{ wants, unit string }{
	{"multi-user.target.wants", "systemd-networkd.service"},
	{"sockets.target.wants", "systemd-networkd.socket"},
	{"network-online.target.wants", "systemd-networkd-wait-online.service"},
}

// installAgentService installs gild-agent.service into the root filesystem at root and
// enables it, loads qemu_fw_cfg at boot, and when the image configures no network, gives
// it DHCP through systemd-networkd. It works on files only, as "systemctl enable" would,
// and returns what it did for the build log.
func installAgentService(root string) ([]string, error) {
	var notes []string
	for _, f := range []struct {
		path string
		data string
	}{
		{"etc/systemd/system/gild-agent.service", agentUnit},
		{"etc/modules-load.d/gild.conf", modulesLoad},
	} {
		if err := writeRootFile(root, f.path, f.data); err != nil {
			return nil, fmt.Errorf("install gild-agent.service: %w", err)
		}
	}
	if err := enableUnit(root, "multi-user.target.wants", "gild-agent.service", "/etc/systemd/system/gild-agent.service"); err != nil {
		return nil, fmt.Errorf("install gild-agent.service: %w", err)
	}
	notes = append(notes, "installed and enabled gild-agent.service")
	configured, err := configuresNetwork(root)
	if err != nil {
		return notes, fmt.Errorf("install gild-agent.service: %w", err)
	}
	if configured {
		return notes, nil
	}
	// Where the image has each networkd unit: /lib on Debian, /usr/lib on merged-/usr
	// systems without the /lib link.
	targets := map[string]string{}
	var missing []string
	for _, u := range networkdUnits {
		for _, dir := range []string{"/lib/systemd/system", "/usr/lib/systemd/system"} {
			if _, err := os.Stat(filepath.Join(root, dir, u.unit)); err == nil {
				targets[u.unit] = path.Join(dir, u.unit)
				break
			}
		}
		if targets[u.unit] == "" {
			missing = append(missing, u.unit)
		}
	}
	if targets["systemd-networkd.service"] == "" {
		return append(notes, "the image configures no network and has no systemd-networkd: gild-agent will reach its server only if something else brings the network up"), nil
	}
	if err := writeRootFile(root, "etc/systemd/network/80-gild-dhcp.network", dhcpNetwork); err != nil {
		return notes, fmt.Errorf("configure the network: %w", err)
	}
	for _, u := range networkdUnits {
		if targets[u.unit] == "" {
			continue
		}
		if err := enableUnit(root, u.wants, u.unit, targets[u.unit]); err != nil {
			return notes, fmt.Errorf("configure the network: %w", err)
		}
	}
	note := "the image configured no network: enabled systemd-networkd with DHCP on en* and eth* (80-gild-dhcp.network)"
	if len(missing) > 0 {
		note += "; the image lacks " + strings.Join(missing, ", ")
	}
	return append(notes, note), nil
}

func writeRootFile(root, p, data string) error {
	hp := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(hp), 0o755); err != nil {
		return err
	}
	return os.WriteFile(hp, []byte(data), 0o644)
}

// enableUnit links unit into /etc/systemd/system/WANTS, pointing at target (a path in the
// image), replacing a link that was there.
func enableUnit(root, wants, unit, target string) error {
	dir := filepath.Join(root, "etc/systemd/system", wants)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	link := filepath.Join(dir, unit)
	if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.Symlink(target, link)
}

// configuresNetwork reports whether the image at root brings a network up by itself: a
// systemd-networkd .network file in /etc/systemd/network, or an interface other than the
// loopback declared in ifupdown's /etc/network/interfaces (with the files it sources).
func configuresNetwork(root string) (bool, error) {
	entries, err := os.ReadDir(filepath.Join(root, "etc/systemd/network"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("read /etc/systemd/network: %w", err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".network") {
			return true, nil
		}
	}
	return interfacesDeclare(root, "/etc/network/interfaces", 0)
}

// ifupdownPartName is the names source-directory includes, as ifupdown's run-parts does.
var ifupdownPartName = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// interfacesDeclare reports whether the interfaces(5) file p (a path in the image), or a
// file it sources, has an "iface" stanza for an interface other than lo.
func interfacesDeclare(root, p string, depth int) (bool, error) {
	if depth > 8 {
		return false, fmt.Errorf("read %s: sources nest more than 8 deep", p)
	}
	data, err := os.ReadFile(filepath.Join(root, p))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", p, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		arg := f[1]
		if !path.IsAbs(arg) {
			arg = path.Join("/etc/network", arg) // where ifupdown resolves relative paths
		}
		var included []string
		switch f[0] {
		case "iface":
			if f[1] != "lo" {
				return true, nil
			}
		case "source":
			matches, err := filepath.Glob(filepath.Join(root, arg))
			if err != nil {
				return false, fmt.Errorf("read %s: source %s: %w", p, f[1], err)
			}
			for _, m := range matches {
				rel, err := filepath.Rel(root, m)
				if err != nil {
					return false, err
				}
				included = append(included, "/"+filepath.ToSlash(rel))
			}
		case "source-directory":
			entries, err := os.ReadDir(filepath.Join(root, arg))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return false, fmt.Errorf("read %s: source-directory %s: %w", p, f[1], err)
			}
			for _, e := range entries {
				if ifupdownPartName.MatchString(e.Name()) {
					included = append(included, path.Join(arg, e.Name()))
				}
			}
		}
		for _, inc := range included {
			if fi, err := os.Stat(filepath.Join(root, inc)); err != nil || fi.IsDir() {
				continue
			}
			if found, err := interfacesDeclare(root, inc, depth+1); err != nil || found {
				return found, err
			}
		}
	}
	return false, nil
}
