package debian

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Source is one apt source: a deb822 stanza, or one line of a sources.list.
type Source struct {
	Types      []string // "deb", "deb-src"
	URIs       []string
	Suites     []string
	Components []string
	// Options holds the other fields (deb822) or bracketed options (one-line form), keys in
	// lower case: "signed-by", "architectures" or "arch", "trusted".
	Options map[string]string
	Enabled bool
	// Where is "file:line", for messages.
	Where string
}

func (s Source) hasType(t string) bool { return slices.Contains(s.Types, t) }

// ParseDeb822 parses apt sources in the deb822 format (*.sources). name is used in
// messages only.
func ParseDeb822(r io.Reader, name string) ([]Source, error) {
	var (
		out    []Source
		errs   []error
		fields map[string]string
		last   string
		start  int
	)
	flush := func() {
		if fields == nil {
			return
		}
		s := Source{Options: map[string]string{}, Enabled: true, Where: fmt.Sprintf("%s:%d", name, start)}
		for k, v := range fields {
			switch k {
			case "types":
				s.Types = strings.Fields(v)
			case "uris":
				s.URIs = strings.Fields(v)
			case "suites":
				s.Suites = strings.Fields(v)
			case "components":
				s.Components = strings.Fields(v)
			case "enabled":
				s.Enabled = !strings.EqualFold(strings.TrimSpace(v), "no")
			default:
				s.Options[k] = strings.TrimSpace(v)
			}
		}
		if len(s.Types) == 0 || len(s.URIs) == 0 || len(s.Suites) == 0 {
			errs = append(errs, fmt.Errorf("%s: a stanza needs Types, URIs and Suites", s.Where))
		} else {
			out = append(out, s)
		}
		fields, last = nil, ""
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#"):
			// A comment; it does not end the stanza.
		case strings.TrimSpace(line) == "":
			flush()
		case line[0] == ' ' || line[0] == '\t':
			// A continuation line, as in an inline Signed-By key block.
			if last == "" {
				errs = append(errs, fmt.Errorf("%s:%d: a continuation line outside a field", name, n))
				continue
			}
			fields[last] += "\n" + strings.TrimSpace(line)
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				errs = append(errs, fmt.Errorf("%s:%d: %q is not a \"Field: value\" line", name, n, line))
				continue
			}
			if fields == nil {
				fields, start = map[string]string{}, n
			}
			last = strings.ToLower(strings.TrimSpace(k))
			fields[last] = strings.TrimSpace(v)
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("read %s: %w", name, err))
	}
	return out, errors.Join(errs...)
}

// ParseOneLine parses apt sources in the one-line format (sources.list, *.list):
//
//	deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] URI SUITE [COMPONENT...]
func ParseOneLine(r io.Reader, name string) ([]Source, error) {
	var (
		out  []Source
		errs []error
	)
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		where := fmt.Sprintf("%s:%d", name, n)
		s := Source{Options: map[string]string{}, Enabled: true, Where: where}
		rest := strings.TrimSpace(line)
		typ, rest, _ := strings.Cut(rest, " ")
		s.Types = []string{typ}
		rest = strings.TrimSpace(rest)
		if strings.HasPrefix(rest, "[") {
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				errs = append(errs, fmt.Errorf("%s: options open with [ but never close", where))
				continue
			}
			for _, opt := range strings.Fields(rest[1:end]) {
				k, v, ok := strings.Cut(opt, "=")
				if !ok {
					errs = append(errs, fmt.Errorf("%s: option %q is not key=value", where, opt))
					continue
				}
				s.Options[strings.ToLower(k)] = v
			}
			rest = rest[end+1:]
		}
		f := strings.Fields(rest)
		if typ != "deb" && typ != "deb-src" {
			errs = append(errs, fmt.Errorf("%s: type %q is neither deb nor deb-src", where, typ))
			continue
		}
		if len(f) < 2 {
			errs = append(errs, fmt.Errorf("%s: want a URI and a suite after %q", where, typ))
			continue
		}
		s.URIs, s.Suites, s.Components = f[:1], f[1:2], f[2:]
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("read %s: %w", name, err))
	}
	return out, errors.Join(errs...)
}

// LoadSources reads the apt sources under root ("/" for this machine) in the order apt
// reads them: etc/apt/sources.list, then etc/apt/sources.list.d/*.list and *.sources by
// name. It reports every file's problems at once, and an error when it finds no source.
func LoadSources(root string) ([]Source, error) {
	files := []string{filepath.Join(root, "etc/apt/sources.list")}
	d := filepath.Join(root, "etc/apt/sources.list.d")
	entries, err := os.ReadDir(d)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read apt sources: %w", err)
	}
	var more []string
	for _, e := range entries {
		if n := e.Name(); !e.IsDir() && (strings.HasSuffix(n, ".list") || strings.HasSuffix(n, ".sources")) {
			more = append(more, filepath.Join(d, n))
		}
	}
	sort.Strings(more)
	files = append(files, more...)
	var (
		all  []Source
		errs []error
	)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("read apt sources: %w", err))
			continue
		}
		parse := ParseOneLine
		if strings.HasSuffix(f, ".sources") {
			parse = ParseDeb822
		}
		s, err := parse(strings.NewReader(string(b)), f)
		all = append(all, s...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(all) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("no apt sources in %s", strings.Join(files, ", ")))
	}
	return all, errors.Join(errs...)
}

// Mirrors are the URIs a suite's three parts come from.
type Mirrors struct {
	Archive  string // SUITE
	Updates  string // SUITE-updates
	Security string // SUITE-security
}

// FindMirrors picks, for suite, the first enabled deb source of the suite itself, of
// SUITE-updates and of SUITE-security. Without an updates source the archive serves
// SUITE-updates, as it does on Debian's mirrors; without a security source it fails,
// because an image without security updates is not one to publish.
func FindMirrors(sources []Source, suite string) (Mirrors, error) {
	find := func(s string) string {
		for _, src := range sources {
			if src.Enabled && src.hasType("deb") && slices.Contains(src.Suites, s) {
				return strings.TrimRight(src.URIs[0], "/")
			}
		}
		return ""
	}
	m := Mirrors{Archive: find(suite), Updates: find(suite + "-updates"), Security: find(suite + "-security")}
	var errs []error
	if m.Archive == "" {
		errs = append(errs, fmt.Errorf("no enabled deb source for suite %s (sources list: %s)", suite, suitesOf(sources)))
	}
	if m.Security == "" {
		errs = append(errs, fmt.Errorf("no enabled deb source for suite %s-security (sources list: %s)", suite, suitesOf(sources)))
	}
	if m.Updates == "" {
		m.Updates = m.Archive
	}
	return m, errors.Join(errs...)
}

func suitesOf(sources []Source) string {
	var s []string
	for _, src := range sources {
		if src.Enabled && src.hasType("deb") {
			s = append(s, src.Suites...)
		}
	}
	if len(s) == 0 {
		return "none"
	}
	slices.Sort(s)
	return strings.Join(slices.Compact(s), " ")
}
