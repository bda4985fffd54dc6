package check

import (
	"os/exec"
	"testing"
)

// Cases from dpkg's own test suite (t-version.c) and deb-version(7).
var debianVersionCases = []struct {
	a, b string
	want int
}{
	{"1.0", "1.0", 0},
	{"1.0", "1.0-0", 0},
	{"0:1.0", "1.0", 0},
	{"1:1.0", "1.0", 1},
	{"1.0", "1:0.1", -1},
	{"1.0", "1.1", -1},
	{"1.2", "1.10", -1},
	{"1.0", "1.0.1", -1},
	{"1.0~rc1", "1.0", -1},
	{"1.0~rc1", "1.0~rc2", -1},
	{"1.0~~", "1.0~", -1},
	{"1.0~", "1.0", -1},
	{"1.0", "1.0+b1", -1},
	{"1.0a", "1.0", 1},
	{"1.0a", "1.0+", -1}, // letters sort before other characters
	{"1.0-1", "1.0-2", -1},
	{"1.0-10", "1.0-9", 1},
	{"1.0-1", "1.0-1.1", -1},
	{"2.36-9+deb12u4", "2.36-9+deb12u10", -1},
	{"9.2p1-2+deb12u3", "9.2p1-2", 1},
	{"1:9.2p1-2+deb12u3", "9.9", 1},
	{"007", "7", 0}, // leading zeros do not count
	{"1.001", "1.1", 0},
	{"a", "b", -1},
	{"2:0", "10:0", -1},
	{"1.0-", "1.0", 0},
	{"1-2-3", "1-2-4", -1}, // the revision is after the last hyphen
	{"1.2.3-1~bpo12+1", "1.2.3-1", -1},
}

func TestCompareDebianVersions(t *testing.T) {
	for _, tc := range debianVersionCases {
		if got := CompareDebianVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareDebianVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := CompareDebianVersions(tc.b, tc.a); got != -tc.want {
			t.Errorf("CompareDebianVersions(%q, %q) = %d, want %d (reversed)", tc.b, tc.a, got, -tc.want)
		}
	}
}

// TestCompareDebianVersionsAgainstDpkg asks dpkg itself, where it is installed, so that the
// table above cannot drift from the real algorithm.
func TestCompareDebianVersionsAgainstDpkg(t *testing.T) {
	dpkg, err := exec.LookPath("dpkg")
	if err != nil {
		t.Skip("dpkg is not installed; the table test still covers the algorithm")
	}
	for _, tc := range debianVersionCases {
		if tc.a == "1.0-" || tc.b == "1.0-" {
			continue // dpkg refuses an empty revision
		}
		ops := map[int]string{-1: "lt", 0: "eq", 1: "gt"}
		op := ops[CompareDebianVersions(tc.a, tc.b)]
		if err := exec.Command(dpkg, "--compare-versions", tc.a, op, tc.b).Run(); err != nil {
			t.Errorf("dpkg --compare-versions %s %s %s: %v, but CompareDebianVersions says so", tc.a, op, tc.b, err)
		}
	}
}

func TestValidDebianVersion(t *testing.T) {
	for _, tc := range []struct {
		v  string
		ok bool
	}{
		{"1.0", true},
		{"1:9.2p1-2+deb12u3", true},
		{"2.36-9+deb12u4", true},
		{"1.0~rc1-1~bpo12+1", true},
		{"1-2-3", true},
		{"", false},
		{" 1.0", false},
		{"a1.0", false},
		{"x:1.0", false},
		{"1.0-", false},
		{"1.0_1", false},
		{"1.0-1_2", false},
		{":1.0", false},
	} {
		err := validDebianVersion(tc.v)
		if (err == nil) != tc.ok {
			t.Errorf("validDebianVersion(%q) = %v, want ok=%v", tc.v, err, tc.ok)
		}
	}
}
