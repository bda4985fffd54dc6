package debian

import (
	"bufio"
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/gildhq/gild/builder"
)

// Package is one installed package, for an image's manifest.
type Package struct {
	Name, Version, Architecture string
}

// DpkgQueryArgs list the packages installed in the root filesystem at root, read from
// its dpkg database without entering it.
func DpkgQueryArgs(root string) []string {
	return []string{"--admindir=" + filepath.Join(root, "var/lib/dpkg"), "--show", "--showformat=${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n"}
}

// ParsePackages reads DpkgQueryArgs' output, keeping the packages that are installed
// ("ii"), not those removed with their configuration left.
func ParsePackages(out string) ([]Package, error) {
	var pkgs []Package
	sc := bufio.NewScanner(strings.NewReader(out))
	for n := 1; sc.Scan(); n++ {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 4 {
			return nil, fmt.Errorf("dpkg-query line %d: %q is not status, name, version, architecture", n, sc.Text())
		}
		if strings.TrimSpace(f[0]) == "ii" {
			pkgs = append(pkgs, Package{Name: f[1], Version: f[2], Architecture: f[3]})
		}
	}
	return pkgs, sc.Err()
}

// Packages lists the packages installed in the root filesystem at root.
func Packages(ctx context.Context, r *builder.Runner, root string) ([]Package, error) {
	out, err := r.Output(ctx, builder.Command{Path: "dpkg-query", Args: DpkgQueryArgs(root)})
	if err != nil {
		return nil, fmt.Errorf("list packages in %s: %w", root, err)
	}
	return ParsePackages(string(out))
}
