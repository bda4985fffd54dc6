package qemu

import (
	"fmt"
	"os"
	"strings"
)

// Firmware is a UEFI firmware for QEMU's two flash chips: the code, mapped read-only and
// shared by every VM, and the variable store each VM gets a copy of.
type Firmware struct {
	Code, Vars string
}

// FirmwareCandidates are OVMF builds without Secure Boot enforcement (GRUB here is
// unsigned), where distributions install them: Debian's 4 MiB and 2 MiB builds, then
// Fedora's and Arch's.
var FirmwareCandidates = []Firmware{
	{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
	{"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"},
	{"/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"},
	{"/usr/share/edk2/x64/OVMF_CODE.4m.fd", "/usr/share/edk2/x64/OVMF_VARS.4m.fd"},
}

// FindFirmware returns the first candidate whose two files exist.
func FindFirmware(candidates []Firmware) (Firmware, error) {
	var tried []string
	for _, f := range candidates {
		_, errC := os.Stat(f.Code)
		_, errV := os.Stat(f.Vars)
		if errC == nil && errV == nil {
			return f, nil
		}
		tried = append(tried, f.Code)
	}
	return Firmware{}, fmt.Errorf("no OVMF firmware found (install the ovmf package); tried %s", strings.Join(tried, ", "))
}
