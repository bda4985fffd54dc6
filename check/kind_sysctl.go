package check

import "strings"

// normalizeSysctl compares values the way sysctl(8) prints them: fields separated by one
// space, so that "4096\t87380\t6291456" equals "4096 87380 6291456".
func normalizeSysctl(s string) string { return strings.Join(strings.Fields(s), " ") }

func (c *Check) evalSysctl(env Env, o *outcome) {
	cc := c.compiled
	want := normalizeSysctl(string(c.Value))
	if !env.Live {
		o.property(cc.sysctlKey+" = "+want, "unknown")
		o.notLive(env, "Reading sysctl "+cc.sysctlKey)
		return
	}
	data, err := env.ReadFile(cc.sysctlPath)
	switch {
	case isNotExist(err):
		o.property(cc.sysctlKey+" = "+want, "no such setting")
		o.mismatch(CodeSysctlNotFound, "The kernel has no setting %s (no %s); expected it to be %s.", cc.sysctlKey, cc.sysctlPath, quote(want))
		return
	case err != nil:
		o.property(cc.sysctlKey+" = "+want, "unknown")
		o.readError(cc.sysctlPath, err)
		return
	}
	got := normalizeSysctl(string(data))
	o.property(cc.sysctlKey+" = "+want, cc.sysctlKey+" = "+got)
	if got != want {
		o.mismatch(CodeSysctlValueMismatch, "Sysctl %s is %s; expected %s.", cc.sysctlKey, quote(got), quote(want))
	}
}
