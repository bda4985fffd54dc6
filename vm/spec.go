package vm

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/gildhq/gild/gallery"
	"github.com/gildhq/gild/resource"
)

// Error codes of the VM service, mapped to HTTP statuses by the API.
const (
	// CodePropertyChangeNotAllowed is ARM's code for a property that cannot change on an
	// existing resource (the gallery uses it too).
	CodePropertyChangeNotAllowed = "PropertyChangeNotAllowed"
	// CodeOperationNotAllowed is ARM's code for an action the VM's state does not allow.
	CodeOperationNotAllowed = "OperationNotAllowed"
)

// The provisioning states a VM goes through.
const (
	ProvisioningCreating  = "Creating"
	ProvisioningSucceeded = "Succeeded"
	ProvisioningFailed    = "Failed"
)

// Codes of properties.provisioningError, which says why a VM failed to start.
const (
	ErrImageUnavailable = "ImageUnavailable" // the image version's disk could not be fetched or verified
	ErrEnrollment       = "EnrollmentFailed" // no enrollment token for the VM's agent
	ErrStart            = "VMStartFailed"    // QEMU did not start
	ErrDiskMissing      = "VMDiskMissing"    // the VM's directory is gone from this server
	ErrInternal         = "InternalError"
)

// ProvisioningError is properties.provisioningError.
type ProvisioningError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// spec is what the service reads from a VM's properties.
type spec struct {
	VMID              string
	ProvisioningState string
	Size              Size
	OSType            string
	ComputerName      string
	AdminUsername     string
	SSHKeys           []string // keyData, trimmed
	ImageID           string
	ExactVersion      string
}

// imageVersion is the ID of the gallery image version the VM runs: imageReference.id when
// it names a version, else the definition's exactVersion (filled in by the gallery).
func (s spec) imageVersion() (resource.ID, error) {
	id, err := resource.Parse(s.ImageID)
	if err != nil {
		return resource.ID{}, fmt.Errorf("imageReference.id: %w", err)
	}
	switch {
	case strings.EqualFold(id.Type(), gallery.TypeVersion):
		return id, nil
	case strings.EqualFold(id.Type(), gallery.TypeDefinition) && s.ExactVersion != "":
		return id.Child("versions", s.ExactVersion), nil
	}
	return resource.ID{}, fmt.Errorf("imageReference %s has no exactVersion", s.ImageID)
}

// Properties targets, as clients see them.
const (
	fVMSize        = "properties.hardwareProfile.vmSize"
	fOSProfile     = "properties.osProfile"
	fComputerName  = "properties.osProfile.computerName"
	fAdminUsername = "properties.osProfile.adminUsername"
	fLinux         = "properties.osProfile.linuxConfiguration"
	fDisablePwd    = "properties.osProfile.linuxConfiguration.disablePasswordAuthentication"
	fPublicKeys    = "properties.osProfile.linuxConfiguration.ssh.publicKeys"
	fImageRef      = "properties.storageProfile.imageReference"
	fImageID       = "properties.storageProfile.imageReference.id"
	fOSType        = "properties.storageProfile.osDisk.osType"
)

func invalid(target, format string, args ...any) *resource.Error {
	return resource.Errorf(resource.CodeInvalidParameter, target, format, args...)
}

// object returns m[key] as an object, adding an empty one when it is absent (or null).
func object(m map[string]any, key, target string, errs *[]*resource.Error) map[string]any {
	switch v := m[key].(type) {
	case map[string]any:
		return v
	case nil:
		o := map[string]any{}
		m[key] = o
		return o
	default:
		*errs = append(*errs, invalid(target, "must be an object, not %s", kind(v)))
		return map[string]any{}
	}
}

// str returns m[key] as a string; absent and null are "".
func str(m map[string]any, key, target string, errs *[]*resource.Error) string {
	switch v := m[key].(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		*errs = append(*errs, invalid(target, "must be a string, not %s", kind(v)))
		return ""
	}
}

func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case bool:
		return "a boolean"
	case float64, json.Number:
		return "a number"
	case string:
		return "a string"
	}
	return fmt.Sprintf("%T", v)
}

// checkProperties checks a VM's properties, as a client gives them, and fills in the
// defaults, in props itself. It reports every problem, each naming its field.
func checkProperties(name string, props map[string]any) (spec, []*resource.Error) {
	var errs []*resource.Error
	var s spec
	s.VMID, _ = props["vmId"].(string)
	s.ProvisioningState, _ = props["provisioningState"].(string)

	hw := object(props, "hardwareProfile", "properties.hardwareProfile", &errs)
	size := str(hw, "vmSize", fVMSize, &errs)
	if size == "" {
		size = DefaultSize
	}
	if sz, err := LookupSize(size); err != nil {
		errs = append(errs, invalid(fVMSize, "%v", err))
	} else {
		s.Size = sz
		hw["vmSize"] = sz.Name
	}

	errs = append(errs, checkOSProfile(name, object(props, "osProfile", fOSProfile, &errs), &s)...)

	st := object(props, "storageProfile", "properties.storageProfile", &errs)
	ir := object(st, "imageReference", fImageRef, &errs)
	s.ImageID = strings.TrimSpace(str(ir, "id", fImageID, &errs))
	s.ExactVersion = str(ir, "exactVersion", fImageRef+".exactVersion", &errs)
	switch id, err := resource.Parse(s.ImageID); {
	case s.ImageID == "" && (ir["publisher"] != nil || ir["offer"] != nil || ir["sku"] != nil):
		errs = append(errs, invalid(fImageID, "gild runs VMs from its own gallery only: set imageReference.id to an image definition or version "+
			"(a marketplace image has to be captured by an image template first); a machine that runs elsewhere is a Microsoft.HybridCompute/machines its agent enrolls"))
	case s.ImageID == "":
		errs = append(errs, invalid(fImageID, "is required: the ID of a gallery image definition (its latest version) or image version"))
	case err != nil:
		errs = append(errs, invalid(fImageID, "%q is not a resource ID: %v", s.ImageID, err))
	case !strings.EqualFold(id.Type(), gallery.TypeDefinition) && !strings.EqualFold(id.Type(), gallery.TypeVersion):
		errs = append(errs, invalid(fImageID, "%s is a %s, not a gallery image definition or version", s.ImageID, id.Type()))
	}
	disk := object(st, "osDisk", "properties.storageProfile.osDisk", &errs)
	switch ost := str(disk, "osType", fOSType, &errs); {
	case ost == "" || strings.EqualFold(ost, "Linux"):
		disk["osType"] = "Linux"
		s.OSType = "Linux"
	default:
		errs = append(errs, invalid(fOSType, "%q: gild runs Linux VMs only", ost))
	}
	return s, errs
}

func checkOSProfile(name string, osp map[string]any, s *spec) []*resource.Error {
	var errs []*resource.Error
	for _, f := range []struct{ key, why string }{
		{"adminPassword", "gild sets no passwords: give SSH public keys"},
		{"customData", "gild images are customized when they are built (an image template), not at first boot"},
		{"windowsConfiguration", "gild runs Linux VMs only"},
	} {
		if v, ok := osp[f.key]; ok && v != nil && v != "" {
			errs = append(errs, invalid(fOSProfile+"."+f.key, "is not supported: %s", f.why))
		}
	}

	s.ComputerName = str(osp, "computerName", fComputerName, &errs)
	switch {
	case s.ComputerName == "" && validHostname(name) == nil:
		s.ComputerName = name
		osp["computerName"] = name
	case s.ComputerName == "":
		errs = append(errs, invalid(fComputerName, "the VM's name %q is not a valid hostname (%v); set a computerName", name, validHostname(name)))
	default:
		if err := validHostname(s.ComputerName); err != nil {
			errs = append(errs, invalid(fComputerName, "%q is not a valid hostname: %v", s.ComputerName, err))
		}
	}

	s.AdminUsername = str(osp, "adminUsername", fAdminUsername, &errs)
	if s.AdminUsername != "" {
		if err := validUsername(s.AdminUsername); err != nil {
			errs = append(errs, invalid(fAdminUsername, "%q: %v", s.AdminUsername, err))
		}
	}

	lc := object(osp, "linuxConfiguration", fLinux, &errs)
	switch v := lc["disablePasswordAuthentication"].(type) {
	case nil:
		lc["disablePasswordAuthentication"] = true
	case bool:
		if !v {
			errs = append(errs, invalid(fDisablePwd, "false is not supported: gild sets no passwords, so SSH keys are the only way in"))
		}
	default:
		errs = append(errs, invalid(fDisablePwd, "must be a boolean, not %s", kind(v)))
	}
	ssh := object(lc, "ssh", fLinux+".ssh", &errs)
	var keys []any
	switch v := ssh["publicKeys"].(type) {
	case nil:
	case []any:
		keys = v
	default:
		errs = append(errs, invalid(fPublicKeys, "must be an array, not %s", kind(v)))
	}
	if len(keys) > 0 && s.AdminUsername == "" {
		errs = append(errs, invalid(fPublicKeys, "SSH keys need an adminUsername to be installed for"))
	}
	wantPath := "/home/" + s.AdminUsername + "/.ssh/authorized_keys"
	for i, k := range keys {
		target := fmt.Sprintf("%s[%d]", fPublicKeys, i)
		km, ok := k.(map[string]any)
		if !ok {
			errs = append(errs, invalid(target, "must be an object with keyData, not %s", kind(k)))
			continue
		}
		data := strings.TrimSpace(str(km, "keyData", target+".keyData", &errs))
		if err := validPublicKey(data); err != nil {
			errs = append(errs, invalid(target+".keyData", "%v", err))
		} else {
			s.SSHKeys = append(s.SSHKeys, data)
		}
		switch p := str(km, "path", target+".path", &errs); {
		case p == "" && s.AdminUsername != "":
			km["path"] = wantPath
		case p != "" && p != wantPath && s.AdminUsername != "":
			errs = append(errs, invalid(target+".path", "%q: keys go to the admin user's %s", p, wantPath))
		}
	}
	return errs
}

var hostLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// validHostname checks a Linux computer name as Azure does: at most 64 characters of
// dot-separated labels of letters, digits and inner hyphens, not only digits.
func validHostname(h string) error {
	if h == "" || len(h) > 64 {
		return fmt.Errorf("it must be 1 to 64 characters, not %d", len(h))
	}
	for _, l := range strings.Split(h, ".") {
		if !hostLabel.MatchString(l) {
			return fmt.Errorf("label %q must be letters, digits and hyphens, neither starting nor ending with a hyphen", l)
		}
	}
	if strings.Trim(h, "0123456789.") == "" {
		return fmt.Errorf("it cannot be only digits")
	}
	return nil
}

var userName = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// systemUsers are the accounts a Debian image has already: an admin user of that name would
// take over a system account, or fail to be created.
var systemUsers = []string{"root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
	"www-data", "backup", "list", "irc", "gnats", "nobody", "_apt", "messagebus", "sshd", "polkitd"}

func validUsername(u string) error {
	if !userName.MatchString(u) {
		return fmt.Errorf("a Linux user name is 1 to 32 lower-case letters, digits, '_' and '-', starting with a letter or '_'")
	}
	if slices.Contains(systemUsers, u) || strings.HasPrefix(u, "systemd-") {
		return fmt.Errorf("is a system account of the image; choose another name")
	}
	return nil
}

// keyTypes are the OpenSSH public key types the images' sshd accepts (ssh-dss is disabled
// since OpenSSH 7.0).
var keyTypes = []string{"ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
	"sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"}

// validPublicKey checks an OpenSSH public key line, "TYPE BASE64 [COMMENT]": the type is
// known and the base64 decodes to a key blob of that type. It goes to authorized_keys
// as one line, so it must be one line and carry no options.
func validPublicKey(line string) error {
	if strings.ContainsAny(line, "\r\n") {
		return fmt.Errorf("an SSH public key is one line")
	}
	f := strings.Fields(line)
	switch {
	case len(f) == 0:
		return fmt.Errorf("is empty: give an OpenSSH public key line (ssh-ed25519 AAAA... comment)")
	case !slices.Contains(keyTypes, f[0]):
		return fmt.Errorf("key type %q is not one of %s (an OpenSSH public key line starts with its type, without options)", f[0], strings.Join(keyTypes, ", "))
	case len(f) < 2:
		return fmt.Errorf("the %s key has no base64 data", f[0])
	}
	blob, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil {
		return fmt.Errorf("the key's data is not base64: %v", err)
	}
	// The blob starts with its type as an SSH string: a big-endian uint32 length, then bytes.
	if len(blob) < 4 {
		return fmt.Errorf("the key's data is too short")
	}
	n := binary.BigEndian.Uint32(blob)
	if uint64(n) > uint64(len(blob)-4) || !bytes.Equal(blob[4:4+n], []byte(f[0])) {
		return fmt.Errorf("the key's data is not a %s key", f[0])
	}
	return nil
}

// checkUnchanged refuses changes to what a running VM was made from. Its disk came from
// the image and was provisioned with the OS profile once; its size is its QEMU's.
func checkUnchanged(was, is spec) []*resource.Error {
	var errs []*resource.Error
	const recreate = "delete the VM and create it again (cattle are replaced by a refresh)"
	if !strings.EqualFold(was.ImageID, is.ImageID) || (is.ExactVersion != "" && is.ExactVersion != was.ExactVersion) {
		errs = append(errs, resource.Errorf(CodePropertyChangeNotAllowed, fImageRef, "a VM's image cannot change (it is %s, version %s): %s", was.ImageID, was.ExactVersion, recreate))
	}
	if was.Size.Name != "" && is.Size.Name != "" && was.Size.Name != is.Size.Name {
		errs = append(errs, resource.Errorf(CodePropertyChangeNotAllowed, fVMSize, "a VM's size cannot change (it is %s): %s", was.Size.Name, recreate))
	}
	for _, f := range []struct {
		target     string
		before, is any
	}{
		{fComputerName, was.ComputerName, is.ComputerName},
		{fAdminUsername, was.AdminUsername, is.AdminUsername},
		{fPublicKeys, was.SSHKeys, is.SSHKeys},
	} {
		if !equalValues(f.before, f.is) {
			errs = append(errs, resource.Errorf(CodePropertyChangeNotAllowed, f.target, "a VM's OS profile is applied once, at its first boot, and cannot change: %s", recreate))
		}
	}
	return errs
}

func equalValues(a, b any) bool {
	if as, ok := a.([]string); ok {
		bs, _ := b.([]string)
		return slices.Equal(as, bs)
	}
	return a == b
}
