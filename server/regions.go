package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/gildhq/gild/atomicfile"
	"github.com/gildhq/gild/blob"
)

// openRegions opens the configured regions, or the one default region in the data
// directory when none is configured.
func openRegions(ctx context.Context, dataDir string, specs []string) ([]*blob.Region, error) {
	if len(specs) == 0 {
		specs = []string{blob.DefaultRegion + "=" + blob.FileURL(filepath.Join(dataDir, "regions", blob.DefaultRegion))}
	}
	var out []*blob.Region
	var errs []error
	seen := map[string]bool{}
	for _, spec := range specs {
		name, url, err := blob.ParseSpec(spec)
		if err != nil {
			errs = append(errs, fmt.Errorf("--region: %w", err))
			continue
		}
		if seen[name] {
			errs = append(errs, fmt.Errorf("--region: region %s is given twice", name))
			continue
		}
		seen[name] = true
		r, err := blob.Open(ctx, name, url)
		if err != nil {
			errs = append(errs, fmt.Errorf("--region: %w", err))
			continue
		}
		out = append(out, r)
	}
	if err := errors.Join(errs...); err != nil {
		for _, r := range out {
			r.Close()
		}
		return nil, err
	}
	return out, nil
}

// loadShareKey reads the key that signs share links, creating it on first start.
func loadShareKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if err == nil {
		if len(key) < 32 {
			return nil, fmt.Errorf("share key %s is shorter than 32 bytes", path)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read share key: %w", err)
	}
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("make share key: %w", err)
	}
	if err := atomicfile.Write(path, key, 0o600); err != nil {
		return nil, fmt.Errorf("write share key: %w", err)
	}
	return key, nil
}

// findAgent returns the gild-agent to install into images: the one given, else one beside
// the running program, else one in PATH; "" when there is none.
func findAgent(given string) string {
	if given != "" {
		return given
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "gild-agent")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	if p, err := exec.LookPath("gild-agent"); err == nil {
		return p
	}
	return ""
}
