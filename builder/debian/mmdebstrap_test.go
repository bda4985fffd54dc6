package debian

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

var testMirrors = Mirrors{Archive: "http://mirror.example.org/debian", Updates: "http://mirror.example.org/debian", Security: "http://security.example.org/debian-security"}

func TestMmdebstrapArgs(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want []string
	}{
		{
			name: "defaults",
			spec: Spec{Suite: "bookworm", Mirrors: testMirrors},
			want: []string{
				"--mode=root", "--variant=minbase", "--architectures=amd64",
				"--include=ca-certificates,dbus,dosfstools,initramfs-tools,iproute2,linux-image-cloud-amd64,netbase,systemd-sysv,udev",
				`--customize-hook=echo localhost > "$1/etc/hostname"`, `--customize-hook=rm -f "$1/etc/resolv.conf"`,
				"bookworm", "/build/rootfs",
				"deb http://mirror.example.org/debian bookworm main",
				"deb http://mirror.example.org/debian bookworm-updates main",
				"deb http://security.example.org/debian-security bookworm-security main",
			},
		},
		{
			name: "extra packages deduplicated, components, hooks",
			spec: Spec{Suite: "bookworm", Mirrors: testMirrors, Components: []string{"main", "contrib"},
				Packages: []string{"openssh-server", "dbus", "curl"}, Hooks: []string{`touch "$1/gild"`}},
			want: []string{
				"--mode=root", "--variant=minbase", "--architectures=amd64",
				"--include=ca-certificates,curl,dbus,dosfstools,initramfs-tools,iproute2,linux-image-cloud-amd64,netbase,openssh-server,systemd-sysv,udev",
				`--customize-hook=echo localhost > "$1/etc/hostname"`, `--customize-hook=rm -f "$1/etc/resolv.conf"`,
				`--customize-hook=touch "$1/gild"`,
				"bookworm", "/build/rootfs",
				"deb http://mirror.example.org/debian bookworm main contrib",
				"deb http://mirror.example.org/debian bookworm-updates main contrib",
				"deb http://security.example.org/debian-security bookworm-security main contrib",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.spec.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := MmdebstrapArgs(tt.spec, "/build/rootfs"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	err := Spec{Suite: "Bookworm!", Mirrors: Mirrors{Archive: "mirror.example.org/debian", Updates: "http://m"},
		Components: []string{"main contrib"}, Variant: "tiny", Packages: []string{"ok-pkg", "bad pkg", "Caps"}, Hooks: []string{" "}}.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{
		`suite "Bookworm!"`, `archive mirror "mirror.example.org/debian" is not a URI`, "no security mirror",
		`component "main contrib"`, `variant "tiny"`, `package "bad pkg"`, `package "Caps"`, "hook 1 is empty",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "ok-pkg") {
		t.Errorf("a good package named in %v", err)
	}
}

func TestInputDigest(t *testing.T) {
	spec := Spec{Suite: "bookworm", Mirrors: testMirrors}
	rels := []Release{{Suite: "bookworm", Date: time.Date(2025, 5, 17, 9, 4, 52, 0, time.UTC)}}
	base := InputDigest(spec, "mmdebstrap 1.3.5", rels)
	if len(base) != 64 || base != InputDigest(spec, "mmdebstrap 1.3.5", rels) {
		t.Fatalf("digest %q not stable", base)
	}
	moreSpec := spec
	moreSpec.Packages = []string{"curl"}
	later := []Release{{Suite: "bookworm", Date: rels[0].Date.Add(time.Hour)}}
	for name, d := range map[string]string{
		"a package":        InputDigest(moreSpec, "mmdebstrap 1.3.5", rels),
		"a release date":   InputDigest(spec, "mmdebstrap 1.3.5", later),
		"the tool version": InputDigest(spec, "mmdebstrap 1.4.0", rels),
	} {
		if d == base {
			t.Errorf("changing %s keeps the digest", name)
		}
	}
}
