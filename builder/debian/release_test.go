package debian

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseReleaseDate(t *testing.T) {
	inRelease, err := os.ReadFile("testdata/InRelease")
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2025, 5, 17, 9, 4, 52, 0, time.UTC)
	tests := []struct {
		name, in string
		want     time.Time
		wantErr  string
	}{
		{name: "clearsigned InRelease", in: string(inRelease), want: want},
		{name: "plain Release", in: "Origin: Debian\nDate: Sat, 17 May 2025 09:04:52 UTC\nValid-Until: x\n", want: want},
		{name: "numeric zone", in: "Date: Sat, 17 May 2025 11:04:52 +0200\n", want: want},
		{name: "one-digit day", in: "Date: Sat, 3 May 2025 09:04:52 UTC\n", want: time.Date(2025, 5, 3, 9, 4, 52, 0, time.UTC)},
		{name: "a Date after the fields does not count", in: "Origin: Debian\n\nDate: Sat, 17 May 2025 09:04:52 UTC\n", wantErr: "no Date field"},
		{name: "bad date", in: "Date: yesterday\n", wantErr: `"yesterday" is not an RFC 1123 date`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseReleaseDate(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !got.Equal(tt.want) {
				t.Errorf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestVersionOf(t *testing.T) {
	for in, want := range map[time.Time]string{
		time.Date(2026, 11, 20, 23, 0, 0, 0, time.UTC):                    "2026.11.20",
		time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC):                       "2026.1.5",
		time.Date(2026, 1, 5, 1, 0, 0, 0, time.FixedZone("east", 3*3600)): "2026.1.4",
	} {
		if got := VersionOf(in); got != want {
			t.Errorf("VersionOf(%v) = %s, want %s", in, got, want)
		}
	}
}

// mirror serves Release files: the archive only as Release (no InRelease), the others as
// InRelease, on dates one day apart.
func mirror(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/debian/dists/bookworm/Release":
			w.Write([]byte("Suite: stable\nDate: Sat, 17 May 2025 09:04:52 UTC\n"))
		case "/debian/dists/bookworm-updates/InRelease":
			w.Write([]byte("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nDate: Mon, 19 May 2025 20:12:00 UTC\n"))
		case "/security/dists/bookworm-security/InRelease":
			w.Write([]byte("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nDate: Sun, 18 May 2025 08:00:00 UTC\n"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestFetchReleases(t *testing.T) {
	srv := mirror(t)
	spec := Spec{Suite: "bookworm", Mirrors: Mirrors{Archive: srv.URL + "/debian/", Updates: srv.URL + "/debian", Security: srv.URL + "/security"}}
	rels, err := FetchReleases(context.Background(), srv.Client(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(rels) != 3 || !strings.HasSuffix(rels[0].URL, "/debian/dists/bookworm/Release") || rels[2].Suite != "bookworm-security" {
		t.Fatalf("got %+v", rels)
	}
	if v := VersionOf(Newest(rels)); v != "2025.5.19" {
		t.Errorf("version %s, want the newest suite's date 2025.5.19", v)
	}

	spec.Mirrors.Security = srv.URL + "/nowhere"
	spec.Mirrors.Updates = "ftp://old.example.org/debian"
	_, err = FetchReleases(context.Background(), srv.Client(), spec)
	for _, want := range []string{"release date of bookworm-security", "/nowhere/dists/bookworm-security/Release: 404", "bookworm-updates: mirror \"ftp://old.example.org/debian\" is not an http"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}
