package debian

import (
	"reflect"
	"testing"
)

func TestParsePackages(t *testing.T) {
	got, err := ParsePackages("ii \tbase-files\t12.4+deb12u11\tamd64\nrc \told-thing\t1.0\tamd64\nii \tlibc6\t2.36-9+deb12u10\tamd64\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{{"base-files", "12.4+deb12u11", "amd64"}, {"libc6", "2.36-9+deb12u10", "amd64"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, err := ParsePackages("ii  broken line\n"); err == nil {
		t.Error("a malformed line should be an error")
	}
	if args := DpkgQueryArgs("/build/rootfs"); args[0] != "--admindir=/build/rootfs/var/lib/dpkg" {
		t.Errorf("args %q", args)
	}
}
