package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gildhq/gild/resource"
)

// The machine resource types the vm, machine and guest-config commands work with.
const (
	typeVM           = "Microsoft.Compute/virtualMachines"
	typeHybrid       = "Microsoft.HybridCompute/machines"
	typeGCAssignment = "Microsoft.GuestConfiguration/guestConfigurationAssignments"
)

const (
	vmExample = "/subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/NAME"
	rgExample = "/subscriptions/S/resourceGroups/RG"
)

// Power states and agent states, as the server reports them.
const (
	powerRunning   = "running"
	agentConnected = "Connected"
	provFailed     = "Failed"
)

// vmPollInterval is how often vm create --wait looks at the VM.
var vmPollInterval = 2 * time.Second

// stdinIsTerminal reports whether r is a terminal a person can answer a question on: a
// character device other than the null device (which scripts, cron and services give as
// standard input). Tests replace it.
var stdinIsTerminal = func(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(fi, null)
}

// ---- naming VMs and scopes ----

// parseResourceGroup checks that s, the value of flag, is a resource group's ID.
func parseResourceGroup(flag, s string) (resource.ID, error) {
	id, err := resource.Parse(s)
	if err != nil {
		return resource.ID{}, usageErrorf("%s %q: %s", flag, s, messageOf(err))
	}
	if id.Kind() != resource.KindResourceGroup {
		return resource.ID{}, usageErrorf("%s %q is a %s, not a resource group ID such as %s", flag, s, id.Type(), rgExample)
	}
	return id, nil
}

// machineRef turns a command's argument into a machine's ID: a full resource ID of one of
// types, or a VM's NAME with --resource-group. what names the argument in errors.
func machineRef(what, arg, rg string, types ...string) (resource.ID, error) {
	if arg == "" {
		return resource.ID{}, usageErrorf("the %s is empty", what)
	}
	if strings.HasPrefix(arg, "/") {
		id, err := resource.Parse(arg)
		if err != nil {
			return resource.ID{}, usageErrorf("%s %q: %s", what, arg, messageOf(err))
		}
		ok := false
		for _, t := range types {
			ok = ok || strings.EqualFold(id.Type(), t)
		}
		if !ok {
			return resource.ID{}, usageErrorf("%s %q is a %s, not a %s such as %s", what, arg, id.Type(), strings.Join(types, " or "), vmExample)
		}
		if rg != "" {
			g, err := parseResourceGroup("--resource-group", rg)
			if err != nil {
				return resource.ID{}, err
			}
			if !id.Scope().Equal(g) {
				return resource.ID{}, usageErrorf("%s %s is not in --resource-group %s; give the full ID alone, or the NAME with --resource-group", what, arg, rg)
			}
		}
		return id, nil
	}
	if strings.Contains(arg, "/") {
		return resource.ID{}, usageErrorf("%s %q is neither a name nor a resource ID (an ID starts with '/', such as %s)", what, arg, vmExample)
	}
	if rg == "" {
		return resource.ID{}, usageErrorf("%s %q is a name: give its resource group with --resource-group RG-ID (-g), or the full ID such as %s", what, arg, vmExample)
	}
	g, err := parseResourceGroup("--resource-group", rg)
	if err != nil {
		return resource.ID{}, err
	}
	id := g.Child(typeVM, arg)
	if _, err := resource.Parse(id.String()); err != nil {
		return resource.ID{}, usageErrorf("%s name %q: %s", what, arg, messageOf(err))
	}
	return id, nil
}

// vmRef is machineRef for virtual machines.
func vmRef(arg, rg string) (resource.ID, error) {
	return machineRef("VM", arg, rg, typeVM)
}

// listScope is the scope a list command covers: --resource-group, --scope, or / by default.
func listScope(rg, scope string) (string, error) {
	switch {
	case rg != "" && scope != "":
		return "", usageErrorf("--resource-group and --scope both name the scope to list: give one")
	case rg != "":
		id, err := parseResourceGroup("--resource-group", rg)
		if err != nil {
			return "", err
		}
		return id.String(), nil
	case scope != "":
		id, err := resource.Parse(scope)
		if err != nil {
			return "", usageErrorf("--scope %q: %s", scope, messageOf(err))
		}
		if !id.IsScope() {
			return "", usageErrorf("--scope %q is a %s, not a scope (/, a management group, a subscription or a resource group)", scope, id.Type())
		}
		return scope, nil
	}
	return "/", nil
}

// withoutTimeout is c for requests that may take longer than clientTimeout (a VM that
// stops, a refresh that rebuilds VMs, a console that streams): their context bounds them.
func (c *Client) withoutTimeout() *Client {
	cc := *c
	cc.http = &http.Client{Transport: c.http.Transport}
	return &cc
}

// ---- parsing create's flags ----

// The key types an OpenSSH public key line may have.
var sshKeyTypes = map[string]bool{
	"ssh-ed25519":                        true,
	"ssh-rsa":                            true,
	"ecdsa-sha2-nistp256":                true,
	"ecdsa-sha2-nistp384":                true,
	"ecdsa-sha2-nistp521":                true,
	"sk-ssh-ed25519@openssh.com":         true,
	"sk-ecdsa-sha2-nistp256@openssh.com": true,
}

// parseSSHPublicKey checks that line is an OpenSSH public key line, "TYPE BASE64 [COMMENT]",
// whose key blob is of TYPE, and returns it with single spaces.
func parseSSHPublicKey(line string) (string, error) {
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return "", errors.New("it is empty")
	}
	if !sshKeyTypes[fields[0]] {
		if strings.Contains(line, "PRIVATE KEY") {
			return "", errors.New("it is a private key; give the public key (the .pub file)")
		}
		return "", fmt.Errorf("%q is not an OpenSSH public key type (ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, ...)", shorten(fields[0], 40))
	}
	if len(fields) < 2 {
		return "", fmt.Errorf("the %s key has no key data after its type", fields[0])
	}
	blob, err := base64.StdEncoding.DecodeString(fields[1])
	if err != nil {
		return "", fmt.Errorf("the key data of the %s key is not base64", fields[0])
	}
	// The blob starts with the key type again, as an SSH string: a uint32 length, then bytes.
	if len(blob) < 4 {
		return "", fmt.Errorf("the key data of the %s key is too short", fields[0])
	}
	n := binary.BigEndian.Uint32(blob)
	if uint64(n) > uint64(len(blob)-4) || string(blob[4:4+n]) != fields[0] {
		return "", fmt.Errorf("the key data is not a %s key (copied wrong, or another key type)", fields[0])
	}
	return strings.Join(fields, " "), nil
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// maxKeyFile caps what --ssh-key reads from a file: authorized_keys files are small.
const maxKeyFile = 1 << 20

// sshKeys reads one --ssh-key value: a public key line, or a file of them (a .pub file, or
// an authorized_keys file without options), "~/" meaning home.
func sshKeys(arg, home string) ([]string, error) {
	arg = strings.TrimSpace(arg)
	if f := strings.Fields(arg); len(f) > 0 && sshKeyTypes[f[0]] {
		k, err := parseSSHPublicKey(arg)
		if err != nil {
			return nil, fmt.Errorf("--ssh-key: %s", err)
		}
		return []string{k}, nil
	}
	path := arg
	if rest, ok := strings.CutPrefix(path, "~/"); ok && home != "" {
		path = filepath.Join(home, rest)
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("--ssh-key %q is neither a file nor an OpenSSH public key line (such as \"ssh-ed25519 AAAA... you@host\")", shorten(arg, 60))
		}
		return nil, fmt.Errorf("--ssh-key: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("--ssh-key: read %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("--ssh-key %s is larger than %d bytes; it is not a public key file", path, maxKeyFile)
	}
	if bytes.Contains(data, []byte("PRIVATE KEY-----")) {
		return nil, fmt.Errorf("--ssh-key %s is a private key; give the public key (%s.pub)", path, path)
	}
	var keys []string
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := parseSSHPublicKey(line)
		if err != nil {
			return nil, fmt.Errorf("--ssh-key %s, line %d: %s", path, i+1, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("--ssh-key %s holds no public key", path)
	}
	return keys, nil
}

// parseTags parses --tag KEY=VALUE flags. The serviceModel tag must be pet or cattle.
func parseTags(flags []string) (map[string]string, []string) {
	var problems []string
	tags := map[string]string{}
	seen := map[string]string{}
	for _, f := range flags {
		k, v, ok := strings.Cut(f, "=")
		k = strings.TrimSpace(k)
		switch {
		case !ok || k == "":
			problems = append(problems, fmt.Sprintf("--tag %q: give KEY=VALUE, such as serviceModel=cattle", f))
			continue
		case seen[strings.ToLower(k)] != "":
			problems = append(problems, fmt.Sprintf("--tag %s is given twice", k))
			continue
		case len(k) > 512 || strings.ContainsAny(k, "<>%&\\?/"):
			problems = append(problems, fmt.Sprintf("--tag %q: a tag name has at most 512 characters and none of < > %% & \\ ? /", k))
			continue
		}
		if strings.EqualFold(k, "serviceModel") {
			switch strings.ToLower(strings.TrimSpace(v)) {
			case "pet", "cattle":
				v = strings.ToLower(strings.TrimSpace(v))
			default:
				problems = append(problems, fmt.Sprintf("--tag serviceModel=%s: the service model is pet (kept, audited) or cattle (rebuilt from the newest image)", v))
				continue
			}
		}
		seen[strings.ToLower(k)] = k
		tags[k] = v
	}
	return tags, problems
}

// validHostname reports whether h can be a Linux host name, as Azure checks a computer
// name: at most 64 characters of dot-separated labels of letters, digits and inner
// hyphens, not only digits. The VM's name becomes its computer name.
func validHostname(h string) bool {
	if h == "" || len(h) > 64 || strings.Trim(h, "0123456789.") == "" {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if !hostLabel.MatchString(l) {
			return false
		}
	}
	return true
}

var (
	// hostLabel is one label of a host name.
	hostLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	// linuxUser is a portable Linux user name.
	linuxUser = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
)

// vmCreateBody is the JSON vm create PUTs.
type vmCreateBody struct {
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags,omitempty"`
	Properties struct {
		HardwareProfile *vmHardwareProfile `json:"hardwareProfile,omitempty"`
		StorageProfile  struct {
			ImageReference struct {
				ID string `json:"id"`
			} `json:"imageReference"`
		} `json:"storageProfile"`
		OSProfile struct {
			ComputerName       string `json:"computerName"`
			AdminUsername      string `json:"adminUsername,omitempty"`
			LinuxConfiguration struct {
				DisablePasswordAuthentication bool `json:"disablePasswordAuthentication"`
				SSH                           *struct {
					PublicKeys []sshPublicKey `json:"publicKeys"`
				} `json:"ssh,omitempty"`
			} `json:"linuxConfiguration"`
		} `json:"osProfile"`
	} `json:"properties"`
}

type vmHardwareProfile struct {
	VMSize string `json:"vmSize"`
}

type sshPublicKey struct {
	Path    string `json:"path"`
	KeyData string `json:"keyData"`
}

// vmCreateFlags are vm create's flags.
type vmCreateFlags struct {
	rg, image, size, location, adminUser string
	tags, sshKeys                        []string
	wait                                 bool
	timeout                              time.Duration
	timeoutSet                           bool
}

// plan checks every flag without the network, reports every problem at once, and returns
// the VM's ID and body (without its location when none was given).
func (f *vmCreateFlags) plan(name, home string) (resource.ID, *vmCreateBody, error) {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	body := &vmCreateBody{Location: strings.TrimSpace(f.location)}

	id, err := vmRef(name, f.rg)
	if err != nil {
		add("%s", err)
	} else if !validHostname(id.Name()) {
		add("VM name %q is also its host name (osProfile.computerName): use at most 64 letters, digits, '-' and '.', not only digits, with no label starting or ending with '-'", id.Name())
	}

	switch ref, err := parseImageRef(strings.TrimSpace(f.image), false); {
	case f.image == "":
		add("--image is required: an image definition's ID, with @latest (the default) or @X.Y.Z, such as %s@latest", definitionExample)
	case err != nil:
		add("--image: %s", err)
	case ref.Version == "latest":
		body.Properties.StorageProfile.ImageReference.ID = strings.TrimSuffix(ref.Definition, "/")
	default:
		body.Properties.StorageProfile.ImageReference.ID = strings.TrimSuffix(ref.Definition, "/") + "/versions/" + ref.Version
	}

	if s := strings.TrimSpace(f.size); s != "" {
		if strings.ContainsAny(s, " \t/") {
			add("--size %q is not a VM size such as Standard_B2s", f.size)
		}
		body.Properties.HardwareProfile = &vmHardwareProfile{VMSize: s}
	}

	tags, tagProblems := parseTags(f.tags)
	problems = append(problems, tagProblems...)
	if len(tags) > 0 {
		body.Tags = tags
	}

	osp := &body.Properties.OSProfile
	if id.Kind() == resource.KindResource {
		osp.ComputerName = id.Name()
	}
	osp.LinuxConfiguration.DisablePasswordAuthentication = true
	if f.adminUser != "" {
		if !linuxUser.MatchString(f.adminUser) || f.adminUser == "root" {
			add("--admin-username %q: use a Linux user name (lower-case letters, digits, '_' and '-', at most 32, not root)", f.adminUser)
		}
		osp.AdminUsername = f.adminUser
	}
	var keys []sshPublicKey
	seen := map[string]bool{}
	for _, k := range f.sshKeys {
		lines, err := sshKeys(k, home)
		if err != nil {
			add("%s", err)
			continue
		}
		for _, l := range lines {
			if seen[l] {
				continue
			}
			seen[l] = true
			keys = append(keys, sshPublicKey{Path: "/home/" + f.adminUser + "/.ssh/authorized_keys", KeyData: l})
		}
	}
	if len(f.sshKeys) > 0 && f.adminUser == "" {
		add("--ssh-key needs --admin-username: the keys let that user log in")
	}
	if len(keys) > 0 {
		osp.LinuxConfiguration.SSH = &struct {
			PublicKeys []sshPublicKey `json:"publicKeys"`
		}{keys}
	}
	if f.timeoutSet && !f.wait {
		add("--timeout is how long --wait waits; give --wait too")
	}
	if f.timeout <= 0 {
		add("--timeout must be positive, not %s", f.timeout)
	}
	switch len(problems) {
	case 0:
		return id, body, nil
	case 1:
		return resource.ID{}, nil, usageErrorf("%s", problems[0])
	}
	return resource.ID{}, nil, usageErrorf("%d problems with the arguments:\n  - %s", len(problems), strings.Join(problems, "\n  - "))
}

// ---- the server's objects ----

// vmView is the part of a VM resource the commands read.
type vmView struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	Properties struct {
		ProvisioningState string `json:"provisioningState"`
		ProvisioningError *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"provisioningError"`
		HardwareProfile struct {
			VMSize string `json:"vmSize"`
		} `json:"hardwareProfile"`
		StorageProfile struct {
			ImageReference struct {
				ID           string `json:"id"`
				ExactVersion string `json:"exactVersion"`
				Publisher    string `json:"publisher"`
				Offer        string `json:"offer"`
				SKU          string `json:"sku"`
				Version      string `json:"version"`
			} `json:"imageReference"`
		} `json:"storageProfile"`
		OSProfile struct {
			ComputerName  string `json:"computerName"`
			AdminUsername string `json:"adminUsername"`
		} `json:"osProfile"`
	} `json:"properties"`
}

func decodeVM(raw []byte) (*vmView, error) {
	var v vmView
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("the server's answer is not a VM: %w", err)
	}
	return &v, nil
}

// tag is the value of tag k, whatever its case.
func tag(tags map[string]string, k string) string {
	for n, v := range tags {
		if strings.EqualFold(n, k) {
			return v
		}
	}
	return ""
}

func (v *vmView) serviceModel() string { return tag(v.Tags, "serviceModel") }

// image is "definition@exactVersion" for a gallery image, "publisher:offer:sku:version"
// for a marketplace one.
func (v *vmView) image() string {
	ir := v.Properties.StorageProfile.ImageReference
	if ir.ID == "" {
		if ir.Publisher == "" && ir.Offer == "" && ir.SKU == "" {
			return "-"
		}
		return strings.Join([]string{ir.Publisher, ir.Offer, ir.SKU, orDash(ir.Version)}, ":")
	}
	name, asked := lastName(ir.ID), "latest"
	if id, err := resource.Parse(ir.ID); err == nil && strings.EqualFold(id.Type(), typeImageVersion) {
		name, asked = id.Parent().Name(), id.Name()
	}
	if ir.ExactVersion != "" {
		return name + "@" + ir.ExactVersion
	}
	return name + "@" + asked
}

func (v *vmView) resourceGroup() string {
	if id, err := resource.Parse(v.ID); err == nil {
		return id.ResourceGroup
	}
	return "-"
}

// provisioning is the provisioning state, with the error of a failed one.
func (v *vmView) provisioning() string {
	s := orDash(v.Properties.ProvisioningState)
	if e := v.Properties.ProvisioningError; e != nil && e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// instanceView is what {vm}/instanceView answers; unknown fields are ignored.
type instanceView struct {
	PowerState string `json:"powerState"`
	Statuses   []struct {
		Code          string `json:"code"`
		DisplayStatus string `json:"displayStatus"`
		Message       string `json:"message"`
	} `json:"statuses"`
	Accel        string `json:"accel"`
	AccelReason  string `json:"accelReason"`
	SSHAddress   string `json:"sshAddress"`
	StartedAt    string `json:"startedAt"`
	ImageVersion string `json:"imageVersion"`
}

// power is the power state without Azure's "PowerState/" prefix.
func (iv *instanceView) power() string {
	if iv == nil {
		return ""
	}
	return strings.TrimPrefix(iv.PowerState, "PowerState/")
}

// agentStatus is what {machine}/agentStatus answers.
type agentStatus struct {
	MachineID     string         `json:"machineId"`
	EnrolledAt    string         `json:"enrolledAt"`
	LastHeartbeat string         `json:"lastHeartbeat"`
	Status        string         `json:"status"`
	Facts         agentFacts     `json:"facts"`
	Tattoo        map[string]any `json:"tattoo"`
}

type agentFacts struct {
	Hostname      string            `json:"hostname"`
	Kernel        string            `json:"kernel"`
	OSRelease     map[string]string `json:"osRelease"`
	Architecture  string            `json:"architecture"`
	UptimeSeconds float64           `json:"uptimeSeconds"`
	AgentVersion  string            `json:"agentVersion"`
}

// tattooLabel is the image a tattoo names: "definition@version".
func tattooLabel(t map[string]any) string {
	if len(t) == 0 {
		return "-"
	}
	def, _ := t["imageDefinition"].(string)
	ver, _ := t["imageVersion"].(string)
	if def == "" && ver == "" {
		return "present (no image definition in it)"
	}
	s := lastName(def) + "@" + orDash(ver)
	if b, _ := t["buildDate"].(string); b != "" {
		s += ", built " + b
	}
	return s
}

// getOptional GETs path; a 404 gives nil and no error. A server that does not serve path
// at all (it answers InvalidResourceType, MethodNotAllowed) gives nil and unsupported.
func getOptional(ctx context.Context, c *Client, path string) (raw []byte, unsupported bool, err error) {
	raw, err = c.getJSON(ctx, path, nil, nil)
	var ae *APIError
	switch {
	case err == nil:
		return raw, false, nil
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound && ae.Code != "InvalidResourceType":
		return nil, false, nil
	case errors.As(err, &ae) && (ae.Code == "InvalidResourceType" || ae.Status == http.StatusMethodNotAllowed):
		return nil, true, nil
	}
	return nil, false, err
}

// ---- the commands ----

func (a *app) vmCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "vm",
		Aliases: []string{"vms"},
		Short:   "Create, run and inspect virtual machines made from gallery images",
		Long: `vm works with Microsoft.Compute/virtualMachines: create one from a gallery image, list
them, show one with its instance view and agent, start, stop, restart or delete it, read
its serial console and the events its agent reports, and refresh cattle to the newest
image.

A VM is named by its full ID, such as
` + vmExample + `,
or by its NAME with --resource-group RG-ID (-g).`,
	}
	cmd.AddCommand(
		a.vmCreateCommand(),
		a.vmListCommand(),
		a.vmShowCommand(),
		a.vmPowerCommand("start", "start", "Start a VM", "Starting"),
		a.vmPowerCommand("stop", "powerOff", "Stop a VM (power it off)", "Stopping"),
		a.vmPowerCommand("restart", "restart", "Restart a VM", "Restarting"),
		a.vmDeleteCommand(),
		a.vmConsoleCommand(),
		a.vmEventsCommand(),
		a.vmRefreshCommand(),
	)
	return cmd
}

// addGroupFlag adds --resource-group (-g) to cmd.
func addGroupFlag(cmd *cobra.Command, rg *string) {
	cmd.Flags().StringVarP(rg, "resource-group", "g", "", "the resource group's ID, when the VM is given by NAME")
}

func (a *app) vmCreateCommand() *cobra.Command {
	var f vmCreateFlags
	cmd := &cobra.Command{
		Use:   "create NAME -g RG-ID --image DEF-ID[@latest|@X.Y.Z]",
		Short: "Create a VM from a gallery image",
		Long: `create makes a VM from a gallery image definition: @latest (the default) is resolved by
the server when the VM is created, @X.Y.Z names a version. The location defaults to the
resource group's. --tag serviceModel=pet|cattle says whether the VM is kept (pet) or
rebuilt from the newest image on a refresh cycle (cattle).

--ssh-key takes a public key file (such as ~/.ssh/id_ed25519.pub) or the key line itself,
and may be given several times; the keys let --admin-username log in, with password
logins disabled.

A VM that a deny policy refuses is not created: the policy assignment's message is shown
and the exit status is 1. With --wait, create follows the VM until it runs and its agent
is Connected, showing its progress, and fails when provisioning fails or --timeout
passes.`,
		Example: `  gild vm create api-1 -g /subscriptions/payments/resourceGroups/prod \
      --image /subscriptions/platform/resourceGroups/images/providers/Microsoft.Compute/galleries/golden/images/debian-12@latest \
      --size Standard_B2s --tag serviceModel=cattle --admin-username ops --ssh-key ~/.ssh/id_ed25519.pub --wait
  gild vm create db-1 -g $RG --image $DEF@1.4.0 --tag serviceModel=pet --tag team=payments -o json`,
		Args: a.exactArgs(1, "one VM name (or full ID)"),
	}
	fl := cmd.Flags()
	addGroupFlag(cmd, &f.rg)
	fl.StringVar(&f.image, "image", "", "the image: DEF-ID[@latest|@X.Y.Z] (required)")
	fl.StringVar(&f.size, "size", "", "the VM size, such as Standard_B2s (default: the server's)")
	fl.StringArrayVar(&f.tags, "tag", nil, "KEY=VALUE: a tag (repeatable); serviceModel=pet|cattle")
	fl.StringVar(&f.location, "location", "", "the location (default: the resource group's)")
	fl.StringVar(&f.adminUser, "admin-username", "", "the user the SSH keys log in as")
	fl.StringArrayVar(&f.sshKeys, "ssh-key", nil, "a public key file or key line (repeatable)")
	fl.BoolVar(&f.wait, "wait", false, "wait until the VM runs and its agent is Connected")
	fl.DurationVar(&f.timeout, "timeout", 10*time.Minute, "how long --wait waits")
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		f.timeoutSet = cmd.Flags().Changed("timeout")
		home, _ := a.homeDir()
		id, body, err := f.plan(args[0], home)
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		c, err := a.client()
		if err != nil {
			return err
		}
		// A VM of that name already there is refused, not replaced: asked first, because the
		// server judges a PUT's body before its If-None-Match, and would name every
		// property that cannot change instead.
		switch _, err := c.getJSON(ctx, id.String(), nil, nil); {
		case err == nil:
			return fmt.Errorf("VM %s already exists; nothing was changed (delete it first, or pick another name)", id)
		case !isStatus(err, http.StatusNotFound):
			return fmt.Errorf("create VM %s: %w", id.Name(), err)
		}
		if body.Location == "" {
			var rg resourceView
			if _, err := c.getJSON(ctx, id.Scope().String(), nil, &rg); err != nil {
				return fmt.Errorf("resource group: %w", err)
			}
			if rg.Location == "" {
				return fmt.Errorf("the resource group %s has no location; give --location", id.Scope())
			}
			body.Location = rg.Location
		}
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		// Only create, should one appear meanwhile.
		h := http.Header{"If-None-Match": {"*"}}
		resp, err := c.do(ctx, request{Method: http.MethodPut, Path: id.String(), Body: data, Header: h})
		if err != nil {
			var ae *APIError
			if errors.As(err, &ae) && (ae.Status == http.StatusPreconditionFailed || ae.Code == "PreconditionFailed") {
				return fmt.Errorf("VM %s already exists; nothing was changed (delete it first, or pick another name)", id)
			}
			return fmt.Errorf("create VM %s: %w", id.Name(), err)
		}
		raw := resp.Body
		var waitErr error
		if f.wait {
			fmt.Fprintf(a.env.Stderr, "Created %s; waiting for it to run and its agent to connect (up to %s).\n", id, f.timeout)
			raw, waitErr = a.followVM(ctx, c, id.String(), f.timeout)
			if raw == nil {
				raw = resp.Body
			}
		}
		if err := a.showVM(raw, "Created"); err != nil {
			return err
		}
		return waitErr
	})
	return cmd
}

// showVM prints a VM: the server's JSON, or one row under a heading.
func (a *app) showVM(raw []byte, verb string) error {
	if a.output == outputJSON {
		return writeRawJSON(a.env.Stdout, raw)
	}
	v, err := decodeVM(raw)
	if err != nil {
		return err
	}
	if verb != "" {
		fmt.Fprintf(a.env.Stdout, "%s %s\n\n", verb, v.ID)
	}
	t := newTable(a.env.Stdout, "NAME", "SIZE", "IMAGE", "PROVISIONING", "SERVICE MODEL")
	t.row(v.Name, orDash(v.Properties.HardwareProfile.VMSize), v.image(), v.provisioning(), orDash(v.serviceModel()))
	return t.flush()
}

// vmProgress is where a VM stands while create --wait follows it.
type vmProgress struct {
	provisioning string
	power        string // "" before there is an instance view
	agent        string // "" before the agent enrolled
}

func (p vmProgress) String() string {
	power := p.power
	if power == "" {
		power = "no instance yet"
	}
	agent := p.agent
	if agent == "" {
		agent = "not enrolled"
	}
	return fmt.Sprintf("provisioning %s, power %s, agent %s", orDash(p.provisioning), power, agent)
}

// followVM polls the VM every vmPollInterval, showing its provisioning, power state and
// agent status on stderr, until it is running and its agent Connected. It returns the
// last VM document it read, and an error when provisioning failed or the time ran out.
func (a *app) followVM(ctx context.Context, c *Client, id string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tty := isTerminal(a.env.Stderr)
	last := ""
	endLine := func() {
		if tty && last != "" {
			fmt.Fprintln(a.env.Stderr)
		}
	}
	var raw []byte
	var p vmProgress
	timedOut := func() error {
		endLine()
		waiting := "the VM to run"
		if strings.EqualFold(p.power, powerRunning) {
			waiting = "its agent to be Connected"
		}
		return fmt.Errorf("VM %s: gave up after %s waiting for %s (%s); gild vm show tells how it goes on", id, timeout, waiting, p)
	}
	for {
		body, err := c.getJSON(ctx, id, nil, nil)
		if err != nil {
			if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return raw, timedOut()
			}
			endLine()
			return raw, fmt.Errorf("follow VM %s: %w", id, err)
		}
		raw = body
		v, err := decodeVM(raw)
		if err != nil {
			endLine()
			return raw, err
		}
		p.provisioning = v.Properties.ProvisioningState
		if strings.EqualFold(p.provisioning, provFailed) {
			endLine()
			msg := "no reason given"
			if e := v.Properties.ProvisioningError; e != nil && e.Message != "" {
				msg = e.Message
			}
			return raw, fmt.Errorf("VM %s failed to provision: %s", id, msg)
		}
		ivRaw, _, err := getOptional(ctx, c, id+"/instanceView")
		if err == nil && ivRaw != nil {
			var iv instanceView
			if json.Unmarshal(ivRaw, &iv) == nil {
				p.power = iv.power()
			}
		}
		if err == nil && strings.EqualFold(p.power, powerRunning) {
			var agRaw []byte
			agRaw, _, err = getOptional(ctx, c, id+"/agentStatus")
			if err == nil && agRaw != nil {
				var ag agentStatus
				if json.Unmarshal(agRaw, &ag) == nil {
					p.agent = ag.Status
				}
			}
		}
		if err != nil {
			if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return raw, timedOut()
			}
			endLine()
			return raw, fmt.Errorf("follow VM %s: %w", id, err)
		}
		line := p.String()
		if line != last {
			if tty {
				fmt.Fprintf(a.env.Stderr, "\r%s\x1b[K", line)
			} else {
				fmt.Fprintln(a.env.Stderr, line)
			}
			last = line
		}
		if strings.EqualFold(p.power, powerRunning) && strings.EqualFold(p.agent, agentConnected) {
			endLine()
			return raw, nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return raw, timedOut()
			}
			endLine()
			return raw, ctx.Err()
		case <-time.After(vmPollInterval):
		}
	}
}

// addListFlags adds the scope and paging flags of a list command.
func addListFlags(cmd *cobra.Command, rg, scope, skip *string, top *int) {
	cmd.Flags().StringVarP(rg, "resource-group", "g", "", "list in this resource group (its ID)")
	cmd.Flags().StringVar(scope, "scope", "", "list under this scope: /, a management group, a subscription (default /)")
	cmd.Flags().IntVar(top, "top", 0, "fetch one page of at most N")
	cmd.Flags().StringVar(skip, "skip-token", "", "continue a --top listing where the previous page ended")
}

// listOf lists resources of typ in the scope the flags name, every page unless top asks
// for one. more is the command that gets the next page, or "".
func (a *app) listOf(ctx context.Context, typ, rg, scope, skip string, top int, command string) (page listPage, more string, err error) {
	s, err := listScope(rg, scope)
	if err != nil {
		return listPage{}, "", err
	}
	path, err := collectionPath(s, typ)
	if err != nil {
		return listPage{}, "", err
	}
	if top < 0 {
		return listPage{}, "", usageErrorf("--top must be a positive number, not %d", top)
	}
	q := url.Values{}
	if top > 0 {
		q.Set("$top", strconv.Itoa(top))
	}
	if skip != "" {
		q.Set("$skipToken", skip)
	}
	c, err := a.client()
	if err != nil {
		return listPage{}, "", err
	}
	page, err = c.list(ctx, path, q, top == 0)
	if err != nil {
		return listPage{}, "", err
	}
	if page.NextLink != "" {
		more = fmt.Sprintf("%s --top %d --skip-token %s", command, top, shellQuote(skipToken(page.NextLink)))
		if rg != "" {
			more += " -g " + shellQuote(rg)
		} else if scope != "" {
			more += " --scope " + shellQuote(scope)
		}
	}
	return page, more, nil
}

func (a *app) vmListCommand() *cobra.Command {
	var rg, scope, skip string
	var top int
	cmd := &cobra.Command{
		Use:   "list [-g RG-ID | --scope SCOPE]",
		Short: "List VMs",
		Long: `list shows the VMs in a resource group (-g), under a scope (--scope: a management group
or a subscription), or everywhere you may read (the default). Every page is fetched
unless --top N asks for one page.`,
		Example: `  gild vm list -g /subscriptions/payments/resourceGroups/prod
  gild vm list --scope /subscriptions/payments -o json`,
		Args: a.exactArgs(0, "no arguments (use -g or --scope)"),
	}
	addListFlags(cmd, &rg, &scope, &skip, &top)
	cmd.RunE = a.run(func(cmd *cobra.Command, _ []string) error {
		page, more, err := a.listOf(cmd.Context(), typeVM, rg, scope, skip, top, "gild vm list")
		if err != nil {
			return err
		}
		if a.output == outputJSON {
			return writeJSON(a.env.Stdout, page)
		}
		t := newTable(a.env.Stdout, "NAME", "RESOURCE GROUP", "SIZE", "IMAGE", "SERVICE MODEL", "PROVISIONING")
		for _, raw := range page.Value {
			v, err := decodeVM(raw)
			if err != nil {
				return err
			}
			t.row(v.Name, v.resourceGroup(), orDash(v.Properties.HardwareProfile.VMSize), v.image(), orDash(v.serviceModel()), orDash(v.Properties.ProvisioningState))
		}
		if err := t.flush(); err != nil {
			return err
		}
		if more != "" {
			fmt.Fprintf(a.env.Stderr, "There is more; the next page: %s\n", more)
		}
		return nil
	})
	return cmd
}

// vmDetails is vm show's JSON output.
type vmDetails struct {
	VM           json.RawMessage `json:"vm"`
	InstanceView json.RawMessage `json:"instanceView"`
	Agent        json.RawMessage `json:"agent"`
}

func (a *app) vmShowCommand() *cobra.Command {
	var rg string
	cmd := &cobra.Command{
		Use:   "show VM",
		Short: "Show a VM, its instance view and its agent",
		Long: `show prints a VM's resource with what its host says of it (the instance view: power
state, acceleration, SSH address) and what its agent reports (status, last heartbeat,
facts, the image tattoo). -o json prints {"vm": ..., "instanceView": ..., "agent": ...},
with null for what there is not yet.`,
		Example: `  gild vm show /subscriptions/payments/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/api-1
  gild vm show api-1 -g /subscriptions/payments/resourceGroups/prod -o json`,
		Args: a.exactArgs(1, "one VM"),
	}
	addGroupFlag(cmd, &rg)
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		id, err := vmRef(args[0], rg)
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		c, err := a.client()
		if err != nil {
			return err
		}
		raw, err := c.getJSON(ctx, id.String(), nil, nil)
		if err != nil {
			return err
		}
		ivRaw, ivUnsupported, err := getOptional(ctx, c, id.String()+"/instanceView")
		if err != nil {
			return fmt.Errorf("instance view: %w", err)
		}
		agRaw, agUnsupported, err := getOptional(ctx, c, id.String()+"/agentStatus")
		if err != nil {
			return fmt.Errorf("agent status: %w", err)
		}
		if a.output == outputJSON {
			return writeJSON(a.env.Stdout, vmDetails{VM: raw, InstanceView: orNull(ivRaw), Agent: orNull(agRaw)})
		}
		v, err := decodeVM(raw)
		if err != nil {
			return err
		}
		t := newTable(a.env.Stdout)
		t.row("id", v.ID)
		t.row("name", v.Name)
		t.row("resourceGroup", v.resourceGroup())
		t.row("location", orDash(v.Location))
		t.row("size", orDash(v.Properties.HardwareProfile.VMSize))
		t.row("image", v.image())
		if ir := v.Properties.StorageProfile.ImageReference; ir.ID != "" {
			t.row("imageId", ir.ID)
		}
		t.row("provisioning", v.provisioning())
		t.row("serviceModel", orDash(v.serviceModel()))
		t.row("tags", orDash(formatTags(v.Tags)))
		t.row("computerName", orDash(v.Properties.OSProfile.ComputerName))
		t.row("adminUsername", orDash(v.Properties.OSProfile.AdminUsername))
		switch {
		case ivUnsupported:
			t.row("power", "- (this server has no instance views)")
		case ivRaw == nil:
			t.row("power", "- (no instance yet)")
		default:
			var iv instanceView
			if err := json.Unmarshal(ivRaw, &iv); err != nil {
				return fmt.Errorf("instance view: the server's answer: %w", err)
			}
			t.row("power", orDash(iv.power()))
			for _, s := range iv.Statuses {
				line := orDash(s.DisplayStatus)
				if s.Message != "" {
					line += ": " + s.Message
				}
				t.row("  "+orDash(s.Code), line)
			}
			accel := orDash(iv.Accel)
			if iv.AccelReason != "" {
				accel += " (" + iv.AccelReason + ")"
			}
			t.row("accel", accel)
			t.row("sshAddress", orDash(iv.SSHAddress))
			t.row("startedAt", orDash(iv.StartedAt))
		}
		switch {
		case agUnsupported:
			t.row("agent", "- (this server has no agent status)")
		case agRaw == nil:
			t.row("agent", "not enrolled yet")
		default:
			var ag agentStatus
			if err := json.Unmarshal(agRaw, &ag); err != nil {
				return fmt.Errorf("agent status: the server's answer: %w", err)
			}
			t.row("agent", orDash(ag.Status))
			t.row("  enrolledAt", orDash(ag.EnrolledAt))
			t.row("  lastHeartbeat", orDash(ag.LastHeartbeat))
			t.row("  agentVersion", orDash(ag.Facts.AgentVersion))
			t.row("  hostname", orDash(ag.Facts.Hostname))
			osName := ag.Facts.OSRelease["PRETTY_NAME"]
			if osName == "" {
				osName = strings.TrimSpace(ag.Facts.OSRelease["ID"] + " " + ag.Facts.OSRelease["VERSION_ID"])
			}
			t.row("  os", orDash(osName))
			t.row("  kernel", orDash(ag.Facts.Kernel))
			t.row("  tattoo", tattooLabel(ag.Tattoo))
		}
		return t.flush()
	})
	return cmd
}

func orNull(raw []byte) json.RawMessage {
	if raw == nil {
		return json.RawMessage("null")
	}
	return raw
}

// vmOpTimeout bounds a start, stop, restart or delete, as the server bounds them:
// stopping waits for the guest to shut down, starting may fetch the image first.
const vmOpTimeout = 10 * time.Minute

func (a *app) vmPowerCommand(name, action, short, doing string) *cobra.Command {
	var rg string
	cmd := &cobra.Command{
		Use:     name + " VM",
		Short:   short,
		Long:    short + ", and print its power state afterwards. It returns when the server has done it.",
		Example: "  gild vm " + name + " api-1 -g /subscriptions/payments/resourceGroups/prod",
		Args:    a.exactArgs(1, "one VM"),
	}
	addGroupFlag(cmd, &rg)
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		id, err := vmRef(args[0], rg)
		if err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), vmOpTimeout)
		defer cancel()
		fmt.Fprintf(a.env.Stderr, "%s %s...\n", doing, id.Name())
		resp, err := c.withoutTimeout().do(ctx, request{Method: http.MethodPost, Path: id.String() + "/" + action})
		if err != nil {
			return fmt.Errorf("%s %s: %w", name, id.Name(), err)
		}
		if a.output == outputJSON {
			return writeRawJSON(a.env.Stdout, resp.Body)
		}
		var iv instanceView
		if err := json.Unmarshal(resp.Body, &iv); err != nil {
			return fmt.Errorf("%s %s: the server's answer is not an instance view: %w", name, id.Name(), err)
		}
		fmt.Fprintf(a.env.Stdout, "%s: %s\n", id.Name(), orDash(iv.power()))
		return nil
	})
	return cmd
}

// confirm asks question on the terminal and reports whether the answer is yes.
func (a *app) confirm(question string) (bool, error) {
	fmt.Fprintf(a.env.Stderr, "%s [y/N] ", question)
	line, err := bufio.NewReader(a.env.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

func (a *app) vmDeleteCommand() *cobra.Command {
	var rg string
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete VM [--yes]",
		Short: "Delete a VM and its disk",
		Long: `delete stops the VM if it runs and removes it, its disk and its agent's enrollment.
On a terminal it asks first, unless --yes; when standard input is not a terminal (a
script), it does not ask.`,
		Example: "  gild vm delete api-1 -g /subscriptions/payments/resourceGroups/prod --yes",
		Args:    a.exactArgs(1, "one VM"),
	}
	addGroupFlag(cmd, &rg)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		id, err := vmRef(args[0], rg)
		if err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		if !yes && stdinIsTerminal(a.env.Stdin) {
			ok, err := a.confirm(fmt.Sprintf("Delete VM %s and its disk?", id))
			if err != nil {
				return err
			}
			if !ok {
				return errors.New("not confirmed; nothing was deleted")
			}
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), vmOpTimeout)
		defer cancel()
		resp, err := c.withoutTimeout().do(ctx, request{Method: http.MethodDelete, Path: id.String()})
		if err != nil {
			return err
		}
		deleted := resp.Status != http.StatusNoContent
		if a.output == outputJSON {
			return writeJSON(a.env.Stdout, deleteResult{ID: id.String(), Deleted: deleted})
		}
		if deleted {
			fmt.Fprintf(a.env.Stdout, "Deleted %s\n", id)
		} else {
			fmt.Fprintf(a.env.Stdout, "%s does not exist; nothing was deleted\n", id)
		}
		return nil
	})
	return cmd
}

func (a *app) vmConsoleCommand() *cobra.Command {
	var rg string
	var follow bool
	var tail int
	cmd := &cobra.Command{
		Use:   "console VM [--follow] [--tail N]",
		Short: "Print a VM's serial console output",
		Long: `console prints what the VM wrote to its serial console (boot messages, the login
prompt). --tail N prints only the last N lines (0, the default: all); --follow keeps
printing as the VM writes until Ctrl-C. -o json, without --follow, prints
{"id": ..., "text": ...}.`,
		Example: `  gild vm console api-1 -g $RG --tail 50
  gild vm console $VM --follow`,
		Args: a.exactArgs(1, "one VM"),
	}
	addGroupFlag(cmd, &rg)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing as the VM writes, until Ctrl-C")
	cmd.Flags().IntVar(&tail, "tail", 0, "print only the last N lines (0: all)")
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		id, err := vmRef(args[0], rg)
		if err != nil {
			return err
		}
		if tail < 0 {
			return usageErrorf("--tail must be 0 or more lines, not %d", tail)
		}
		if follow && a.output == outputJSON {
			return usageErrorf("--follow streams text; -o json works without --follow")
		}
		q := url.Values{}
		if follow {
			q.Set("follow", "true")
		}
		if tail > 0 {
			q.Set("tail", strconv.Itoa(tail))
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		if follow {
			// Ctrl-C ends a follow, which is how a follow ends: not a failure.
			var stop context.CancelFunc
			ctx, stop = signal.NotifyContext(ctx, os.Interrupt)
			defer stop()
		} else {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, clientTimeout)
			defer cancel()
		}
		resp, err := c.stream(ctx, http.MethodGet, id.String()+"/console", q, nil, nil, 0)
		if err != nil {
			return fmt.Errorf("console of %s: %w", id.Name(), err)
		}
		defer resp.Body.Close()
		if a.output == outputJSON {
			data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
			if err != nil {
				return fmt.Errorf("console: %w", err)
			}
			return writeJSON(a.env.Stdout, map[string]string{"id": id.String(), "text": string(data)})
		}
		_, err = io.Copy(a.env.Stdout, resp.Body)
		if err != nil && follow && ctx.Err() != nil && cmd.Context().Err() == nil {
			return nil // interrupted
		}
		if err != nil {
			return fmt.Errorf("console: the stream stopped: %w", err)
		}
		return nil
	})
	return cmd
}

// machineEvent is one event of {machine}/events.
type machineEvent struct {
	Seq        int64  `json:"seq"`
	MachineID  string `json:"machineId"`
	ID         string `json:"id"`
	Time       string `json:"time"`
	Kind       string `json:"kind"`
	Assignment string `json:"assignment"`
	Check      string `json:"check"`
	Target     string `json:"target"`
	Before     string `json:"before"`
	After      string `json:"after"`
	Message    string `json:"message"`
}

func (a *app) vmEventsCommand() *cobra.Command {
	var rg string
	var top int
	var before int64
	cmd := &cobra.Command{
		Use:   "events VM [--top N]",
		Short: "List what a VM's agent did and saw, newest first",
		Long: `events lists the events a VM's agent reported, newest first: the corrections machine
configuration made (with the value before and after) and the ones that failed. --top N
gives N events (1 to 1000); --before SEQ continues an earlier listing.`,
		Example: "  gild vm events api-1 -g $RG --top 20",
		Args:    a.exactArgs(1, "one VM"),
	}
	addGroupFlag(cmd, &rg)
	cmd.Flags().IntVar(&top, "top", 50, "how many events, 1 to 1000")
	cmd.Flags().Int64Var(&before, "before", 0, "only events older than this sequence number (to continue a listing)")
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		id, err := vmRef(args[0], rg)
		if err != nil {
			return err
		}
		if top < 1 || top > 1000 {
			return usageErrorf("--top must be 1 to 1000, not %d", top)
		}
		if before < 0 {
			return usageErrorf("--before must be a sequence number, not %d", before)
		}
		q := url.Values{"top": {strconv.Itoa(top)}}
		if before > 0 {
			q.Set("before", strconv.FormatInt(before, 10))
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		var page struct {
			Value    []machineEvent `json:"value"`
			NextLink string         `json:"nextLink"`
		}
		raw, err := c.getJSON(cmd.Context(), id.String()+"/events", q, &page)
		if err != nil {
			return err
		}
		if a.output == outputJSON {
			return writeRawJSON(a.env.Stdout, raw)
		}
		t := newTable(a.env.Stdout, "TIME", "KIND", "ASSIGNMENT", "CHECK", "TARGET", "BEFORE → AFTER")
		for _, e := range page.Value {
			change := "-"
			if e.Before != "" || e.After != "" {
				change = orDash(e.Before) + " → " + orDash(e.After)
			}
			if e.Message != "" {
				if change == "-" {
					change = e.Message
				} else {
					change += " (" + e.Message + ")"
				}
			}
			t.row(orDash(e.Time), orDash(e.Kind), orDash(e.Assignment), orDash(e.Check), orDash(e.Target), change)
		}
		if err := t.flush(); err != nil {
			return err
		}
		if page.NextLink != "" {
			if u, err := url.Parse(page.NextLink); err == nil && u.Query().Get("before") != "" {
				fmt.Fprintf(a.env.Stderr, "There is more; the next page: gild vm events %s --top %d --before %s\n", id, top, u.Query().Get("before"))
			}
		}
		return nil
	})
	return cmd
}

// refreshResult is the answer of {scope}/providers/Gild.Compute/refresh.
type refreshResult struct {
	Scope     string `json:"scope"`
	CycleDays int    `json:"cycleDays"`
	Due       []struct {
		ID           string `json:"id"`
		Reason       string `json:"reason"`
		ServiceModel string `json:"serviceModel"`
		FromVersion  string `json:"fromVersion"`
	} `json:"due"`
	Replaced []struct {
		ID          string `json:"id"`
		FromVersion string `json:"fromVersion"`
		ToVersion   string `json:"toVersion"`
	} `json:"replaced"`
	Pets []struct {
		ID      string   `json:"id"`
		Reasons []string `json:"reasons"`
	} `json:"pets"`
	Failed []struct {
		ID    string `json:"id"`
		Error string `json:"error"`
	} `json:"failed"`
}

// refreshRequest is the body of a refresh; unset numbers leave the server's defaults.
type refreshRequest struct {
	CycleDays      *int `json:"cycleDays,omitempty"`
	MaxUnavailable *int `json:"maxUnavailable,omitempty"`
	DryRun         bool `json:"dryRun"`
}

func (a *app) vmRefreshCommand() *cobra.Command {
	var cycleDays, maxUnavailable int
	var dryRun bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "refresh SCOPE [--cycle-days N] [--max-unavailable N] [--dry-run]",
		Short: "Rebuild the cattle under a scope from the newest image; list the pets that need care",
		Long: `refresh finds the VMs under SCOPE that are due: cattle (serviceModel=cattle) older than
the refresh cycle or on an image version older than latest are rebuilt from the newest
version, at most --max-unavailable at a time; pets (serviceModel=pet) are never rebuilt,
and are listed with the reasons they need attention. --dry-run only says what would be
done. The exit status is 1 when a VM could not be rebuilt.`,
		Example: `  gild vm refresh /subscriptions/payments --dry-run
  gild vm refresh /subscriptions/payments/resourceGroups/prod --cycle-days 30 --max-unavailable 2`,
		Args: a.exactArgs(1, "one scope, such as /subscriptions/payments"),
	}
	cmd.Flags().IntVar(&cycleDays, "cycle-days", 0, "rebuild cattle older than N days (default: the server's)")
	cmd.Flags().IntVar(&maxUnavailable, "max-unavailable", 0, "rebuild at most N VMs at a time (default: the server's)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "say what would be done, and do nothing")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "give up waiting for the server after this long")
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		scope, err := resource.Parse(args[0])
		if err != nil {
			return usageErrorf("scope %q: %s", args[0], messageOf(err))
		}
		if !scope.IsScope() {
			return usageErrorf("%q is a %s, not a scope (/, a management group, a subscription or a resource group)", args[0], scope.Type())
		}
		var req refreshRequest
		req.DryRun = dryRun
		if cmd.Flags().Changed("cycle-days") {
			if cycleDays < 1 {
				return usageErrorf("--cycle-days must be 1 or more, not %d", cycleDays)
			}
			req.CycleDays = &cycleDays
		}
		if cmd.Flags().Changed("max-unavailable") {
			if maxUnavailable < 1 {
				return usageErrorf("--max-unavailable must be 1 or more, not %d", maxUnavailable)
			}
			req.MaxUnavailable = &maxUnavailable
		}
		if timeout <= 0 {
			return usageErrorf("--timeout must be positive, not %s", timeout)
		}
		body, err := json.Marshal(req)
		if err != nil {
			return err
		}
		prefix := scope.String()
		if scope.IsRoot() {
			prefix = ""
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
		defer cancel()
		what := "Refreshing"
		if dryRun {
			what = "Looking for what to refresh"
		}
		fmt.Fprintf(a.env.Stderr, "%s under %s...\n", what, scope)
		resp, err := c.withoutTimeout().do(ctx, request{Method: http.MethodPost, Path: prefix + "/providers/Gild.Compute/refresh", Body: body})
		if err != nil {
			if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("refresh %s: no answer after --timeout %s; the server may still be at work (gild vm list shows the VMs)", scope, timeout)
			}
			return fmt.Errorf("refresh %s: %w", scope, err)
		}
		var res refreshResult
		if err := json.Unmarshal(resp.Body, &res); err != nil {
			return fmt.Errorf("refresh %s: the server's answer is not a refresh result: %w", scope, err)
		}
		if a.output == outputJSON {
			if err := writeRawJSON(a.env.Stdout, resp.Body); err != nil {
				return err
			}
		} else if err := writeRefreshTables(a.env.Stdout, &res, dryRun); err != nil {
			return err
		}
		if n := len(res.Failed); n > 0 {
			return fmt.Errorf("refresh %s: %d %s could not be rebuilt", scope, n, plural(n, "VM", "VMs"))
		}
		return nil
	})
	return cmd
}

// writeRefreshTables prints a refresh result, one section per list, with a blank line
// between sections.
func writeRefreshTables(w io.Writer, res *refreshResult, dryRun bool) error {
	first := true
	// section starts a section: its title, and whether it has rows.
	section := func(title string, n int) bool {
		if !first {
			fmt.Fprintln(w)
		}
		first = false
		if n == 0 {
			fmt.Fprintf(w, "%s: none\n", title)
			return false
		}
		fmt.Fprintf(w, "%s (%d):\n", title, n)
		return true
	}
	if res.CycleDays > 0 {
		fmt.Fprintf(w, "Refresh cycle: %d %s.\n", res.CycleDays, plural(res.CycleDays, "day", "days"))
		first = false
	}
	due := "Due for a rebuild"
	if dryRun {
		due += " (dry run: nothing was done)"
	}
	if section(due, len(res.Due)) {
		t := newTable(w, "  VM", "SERVICE MODEL", "VERSION", "REASON")
		for _, d := range res.Due {
			t.row("  "+d.ID, orDash(d.ServiceModel), orDash(d.FromVersion), orDash(d.Reason))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if section("Rebuilt", len(res.Replaced)) {
		t := newTable(w, "  VM", "FROM", "TO")
		for _, r := range res.Replaced {
			t.row("  "+r.ID, orDash(r.FromVersion), orDash(r.ToVersion))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if section("Pets that need attention", len(res.Pets)) {
		t := newTable(w, "  VM", "REASONS")
		for _, p := range res.Pets {
			t.row("  "+p.ID, orDash(strings.Join(p.Reasons, "; ")))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if section("Failed", len(res.Failed)) {
		t := newTable(w, "  VM", "ERROR")
		for _, f := range res.Failed {
			t.row("  "+f.ID, orDash(f.Error))
		}
		return t.flush()
	}
	return nil
}
