package vm

import (
	"fmt"
	"strings"

	"github.com/gildhq/gild/spelling"
)

// Size is a VM size: Azure's name for a number of vCPUs and an amount of memory.
type Size struct {
	Name      string `json:"name"`
	CPUs      int    `json:"numberOfCores"`
	MemoryMiB int    `json:"memoryInMB"`
}

// Sizes are the sizes gild runs, named as on Azure so that templates and policies written
// for Azure (an allowed-sizes policy, say) work unchanged.
var Sizes = []Size{
	{"Standard_B1s", 1, 1024},
	{"Standard_B1ms", 1, 2048},
	{"Standard_B2ats_v2", 2, 1024},
	{"Standard_B2s", 2, 4096},
	{"Standard_B2ms", 2, 8192},
	{"Standard_D2s_v5", 2, 8192},
	{"Standard_D4s_v5", 4, 16384},
}

// DefaultSize is the size of a VM that names none: the smallest with two vCPUs, because
// under TCG (software emulation, all this project's machines have) two boot Debian in
// about 19 s against 31 s for one (vm-lab.md).
const DefaultSize = "Standard_B2ats_v2"

// LookupSize finds a size by name, ignoring letter case. The error lists the sizes there
// are, and the nearest one when the name looks misspelt.
func LookupSize(name string) (Size, error) {
	names := make([]string, len(Sizes))
	for i, s := range Sizes {
		if strings.EqualFold(s.Name, name) {
			return s, nil
		}
		names[i] = s.Name
	}
	hint := ""
	if near := spelling.Nearest(name, names, 4); near != "" {
		hint = fmt.Sprintf("did you mean %q? ", near)
	}
	return Size{}, fmt.Errorf("size %q is not one gild runs; %sthe sizes are %s", name, hint, strings.Join(names, ", "))
}
