package debian

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func parseFile(t *testing.T, name string) []Source {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parse := ParseOneLine
	if strings.HasSuffix(name, ".sources") {
		parse = ParseDeb822
	}
	s, err := parse(f, name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseDeb822(t *testing.T) {
	s := parseFile(t, "debian.sources")
	if len(s) != 3 {
		t.Fatalf("got %d stanzas, want 3: %+v", len(s), s)
	}
	first := s[0]
	if !reflect.DeepEqual(first.Types, []string{"deb", "deb-src"}) ||
		!reflect.DeepEqual(first.Suites, []string{"bookworm", "bookworm-updates"}) ||
		!reflect.DeepEqual(first.Components, []string{"main", "contrib"}) ||
		first.Options["signed-by"] != "/usr/share/keyrings/debian-archive-keyring.gpg" || !first.Enabled ||
		first.Where != "debian.sources:2" {
		t.Errorf("first stanza %+v", first)
	}
	if s[1].Enabled {
		t.Errorf("second stanza says Enabled: no: %+v", s[1])
	}
	if len(s[2].URIs) != 2 || !strings.Contains(s[2].Options["signed-by"], "BEGIN PGP PUBLIC KEY BLOCK") {
		t.Errorf("third stanza with two URIs and an inline key: %+v", s[2])
	}
}

func TestParseOneLine(t *testing.T) {
	s := parseFile(t, "sources.list")
	if len(s) != 3 {
		t.Fatalf("got %d lines, want 3 (comments skipped): %+v", len(s), s)
	}
	want := Source{
		Types: []string{"deb"}, URIs: []string{"http://mirror.example.org/debian"}, Suites: []string{"bookworm"},
		Components: []string{"main", "non-free-firmware"}, Enabled: true, Where: "sources.list:2",
		Options: map[string]string{"arch": "amd64", "signed-by": "/usr/share/keyrings/debian-archive-keyring.gpg"},
	}
	if !reflect.DeepEqual(s[0], want) {
		t.Errorf("got  %+v\nwant %+v", s[0], want)
	}
	if s[2].Options["signed-by"] == "" || s[2].Suites[0] != "bookworm-security" {
		t.Errorf("options with spaces inside the brackets: %+v", s[2])
	}
}

func TestParseErrorsAreAllReported(t *testing.T) {
	_, err := ParseOneLine(strings.NewReader("deb [arch=amd64 http://m bookworm\nrpm http://m x\ndeb http://m\ndeb http://m bookworm main\n"), "bad.list")
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"bad.list:1: options open", "bad.list:2: type \"rpm\"", "bad.list:3: want a URI and a suite"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	_, err = ParseDeb822(strings.NewReader("Types: deb\nURIs: http://m\n\n not a field\nnonsense\n"), "bad.sources")
	for _, want := range []string{"bad.sources:1: a stanza needs Types, URIs and Suites", "bad.sources:4: a continuation line", "bad.sources:5: \"nonsense\""} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestFindMirrors(t *testing.T) {
	tests := []struct {
		name    string
		sources []Source
		want    Mirrors
		wantErr string
	}{
		{
			name:    "deb822 with a disabled stanza and two URIs",
			sources: parseFile(t, "debian.sources"),
			want: Mirrors{Archive: "http://mirror.example.org/debian", Updates: "http://mirror.example.org/debian",
				Security: "https://security.example.org/debian-security"},
		},
		{
			name:    "sources.list without an updates line",
			sources: parseFile(t, "sources.list"),
			want: Mirrors{Archive: "http://mirror.example.org/debian", Updates: "http://mirror.example.org/debian",
				Security: "http://security.example.org/debian-security"},
		},
		{
			name:    "no security source",
			sources: []Source{{Types: []string{"deb"}, URIs: []string{"http://m/debian"}, Suites: []string{"bookworm"}, Enabled: true}},
			wantErr: "no enabled deb source for suite bookworm-security (sources list: bookworm)",
		},
		{
			name:    "only deb-src",
			sources: []Source{{Types: []string{"deb-src"}, URIs: []string{"http://m/debian"}, Suites: []string{"bookworm", "bookworm-security"}, Enabled: true}},
			wantErr: "no enabled deb source for suite bookworm (sources list: none)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FindMirrors(tt.sources, "bookworm")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestLoadSourcesReadsBothFormatsInAptOrder(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "etc/apt/sources.list.d"), 0o755))
	b, _ := os.ReadFile("testdata/debian.sources")
	must(os.WriteFile(filepath.Join(root, "etc/apt/sources.list.d/debian.sources"), b, 0o644))
	must(os.WriteFile(filepath.Join(root, "etc/apt/sources.list"), []byte("deb http://first.example.org/debian bookworm main\n"), 0o644))
	must(os.WriteFile(filepath.Join(root, "etc/apt/sources.list.d/ignored.save"), []byte("garbage"), 0o644))
	s, err := LoadSources(root)
	must(err)
	if len(s) != 4 || s[0].URIs[0] != "http://first.example.org/debian" {
		t.Fatalf("got %+v", s)
	}
	m, err := FindMirrors(s, "bookworm")
	must(err)
	if m.Archive != "http://first.example.org/debian" || m.Updates != "http://mirror.example.org/debian" {
		t.Errorf("sources.list comes first: %+v", m)
	}
	if _, err := LoadSources(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no apt sources") {
		t.Errorf("empty root: %v", err)
	}
}

// TestThisMachinesSources checks that the machine's own sources give mirrors, which every
// build here depends on; it does not print them.
func TestThisMachinesSources(t *testing.T) {
	s, err := LoadSources("/")
	if err != nil {
		t.Skipf("this machine has no readable apt sources: %v", err)
	}
	if _, err := FindMirrors(s, "bookworm"); err != nil {
		t.Logf("this machine's sources do not serve bookworm: %v", err)
	}
}
