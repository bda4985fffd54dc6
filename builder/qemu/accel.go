package qemu

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Accel is the accelerator a VM runs with, and why it was chosen.
type Accel struct {
	Name   string // "kvm" or "tcg"
	Reason string
}

func (a Accel) String() string { return a.Name + " (" + a.Reason + ")" }

// HostFacts are what the accelerator choice looks at.
type HostFacts struct {
	DevKVM  error  // nil when /dev/kvm opens read-write
	KVMPVM  bool   // /sys/module/kvm_pvm exists
	CPUInfo string // /proc/cpuinfo
}

// ChooseAccel picks KVM only where it can run a stock Debian kernel. On a host that is
// itself a VM whose KVM is kvm_pvm (nested PVM), /dev/kvm opens but runs only kernels
// built for PVM: a Debian kernel fails with MSR errors, hangs in the decompressor or
// stops on an emulation failure (vm-lab.md). Without a vmx or svm CPU flag there is no
// hardware virtualization to use either.
func ChooseAccel(h HostFacts) Accel {
	switch {
	case h.KVMPVM:
		return Accel{"tcg", "kvm_pvm is loaded: this host's KVM is nested PVM, which cannot run Debian's kernels"}
	case h.DevKVM != nil:
		return Accel{"tcg", fmt.Sprintf("/dev/kvm is not usable: %v", h.DevKVM)}
	case !hasCPUFlag(h.CPUInfo, "vmx") && !hasCPUFlag(h.CPUInfo, "svm"):
		return Accel{"tcg", "the CPU has no vmx or svm flag: no hardware virtualization"}
	}
	return Accel{"kvm", "/dev/kvm is usable and the CPU has hardware virtualization"}
}

func hasCPUFlag(cpuinfo, flag string) bool {
	for _, line := range strings.Split(cpuinfo, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == "flags" {
			for _, f := range strings.Fields(v) {
				if f == flag {
					return true
				}
			}
		}
	}
	return false
}

// ProbeHost reads this host's facts.
func ProbeHost() HostFacts {
	var h HostFacts
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err != nil {
		h.DevKVM = err
	} else {
		f.Close()
	}
	if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil {
		h.KVMPVM = true
	}
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		h.DevKVM = errors.Join(h.DevKVM, err)
	}
	h.CPUInfo = string(b)
	return h
}
