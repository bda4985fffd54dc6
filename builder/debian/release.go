package debian

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Release is the date a mirror published a suite's Release file.
type Release struct {
	Suite string
	URL   string // the Release or InRelease file read
	Date  time.Time
}

var dateLayouts = []string{time.RFC1123, time.RFC1123Z, "Mon, 2 Jan 2006 15:04:05 MST", "Mon, 2 Jan 2006 15:04:05 -0700"}

// ParseReleaseDate reads the Date field of a Release file, or of an InRelease file (the
// same, clearsigned). It stops at the end of the first paragraph of fields, so a caller
// may hand it the start of a stream.
func ParseReleaseDate(r io.Reader) (time.Time, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	inFields := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "-----BEGIN PGP SIGNED MESSAGE-----") {
			// The armor header ("Hash: SHA512") and a blank line come before the fields.
			for sc.Scan() && strings.TrimSpace(sc.Text()) != "" {
			}
			continue
		}
		if strings.TrimSpace(line) == "" {
			if inFields {
				break
			}
			continue
		}
		inFields = true
		k, v, ok := strings.Cut(line, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "Date") || line[0] == ' ' {
			continue
		}
		v = strings.TrimSpace(v)
		for _, layout := range dateLayouts {
			if t, err := time.Parse(layout, v); err == nil {
				return t.UTC(), nil
			}
		}
		return time.Time{}, fmt.Errorf("release date %q is not an RFC 1123 date", v)
	}
	if err := sc.Err(); err != nil {
		return time.Time{}, err
	}
	return time.Time{}, errors.New("no Date field in the release file")
}

// FetchRelease reads the Date of suite on mirror (an http or https URI from the apt
// sources): dists/SUITE/InRelease, or dists/SUITE/Release where a mirror has no InRelease.
func FetchRelease(ctx context.Context, client *http.Client, mirror, suite string) (Release, error) {
	if client == nil {
		client = http.DefaultClient
	}
	u, err := url.Parse(mirror)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return Release{}, fmt.Errorf("release date of %s: mirror %q is not an http or https URI", suite, mirror)
	}
	var errs []error
	for _, file := range []string{"InRelease", "Release"} {
		rel := Release{Suite: suite, URL: strings.TrimRight(mirror, "/") + "/dists/" + suite + "/" + file}
		rel.Date, err = fetchDate(ctx, client, rel.URL)
		if err == nil {
			return rel, nil
		}
		errs = append(errs, err)
		if !errors.Is(err, errNotFound) {
			break
		}
	}
	return Release{}, fmt.Errorf("release date of %s: %w", suite, errors.Join(errs...))
}

var errNotFound = errors.New("not found")

func fetchDate(ctx context.Context, client *http.Client, u string) (time.Time, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return time.Time{}, fmt.Errorf("GET %s: %w", u, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return time.Time{}, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return time.Time{}, fmt.Errorf("GET %s: %s: %w", u, resp.Status, errNotFound)
	case resp.StatusCode != http.StatusOK:
		return time.Time{}, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	// The Date is in the first lines; the rest (checksums of every index) is not needed.
	t, err := ParseReleaseDate(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return time.Time{}, fmt.Errorf("GET %s: %w", u, err)
	}
	return t, nil
}

// FetchReleases reads the dates of all of s's suites at once.
func FetchReleases(ctx context.Context, client *http.Client, s Spec) ([]Release, error) {
	suites := s.Suites()
	out := make([]Release, len(suites))
	errs := make([]error, len(suites))
	var wg sync.WaitGroup
	for i, suite := range suites {
		wg.Go(func() { out[i], errs[i] = FetchRelease(ctx, client, s.MirrorOf(suite), suite) })
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// Newest is the latest of the releases' dates: the base image's date.
func Newest(rs []Release) time.Time {
	var t time.Time
	for _, r := range rs {
		if r.Date.After(t) {
			t = r.Date
		}
	}
	return t
}

// VersionOf names an image version after a date, in UTC: 2026.11.20. The numbers carry no
// leading zeros (2026.1.5), as gallery versions print, so the name round-trips.
func VersionOf(t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("%d.%d.%d", t.Year(), int(t.Month()), t.Day())
}
