package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"
)

// serveConfig is the file `gild serve --config FILE` reads; a flag given on the command
// line wins over the file.
type serveConfig struct {
	Data           string         `yaml:"data"`
	Addr           string         `yaml:"addr"`
	Store          string         `yaml:"store"`
	LogLevel       string         `yaml:"logLevel"`
	Aliases        string         `yaml:"aliases"`
	ScanInterval   string         `yaml:"scanInterval"`
	VerifyInterval string         `yaml:"verifyInterval"`
	Regions        []regionConfig `yaml:"regions"`
}

type regionConfig struct {
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
}

// loadServeConfig reads path, refusing unknown keys and reporting every bad value at once.
func loadServeConfig(path string) (*serveConfig, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	var c serveConfig
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) { // an empty file configures nothing
		return nil, fmt.Errorf("--config %s: %w", path, err)
	}
	var errs []error
	for _, d := range []struct{ key, v string }{{"scanInterval", c.ScanInterval}, {"verifyInterval", c.VerifyInterval}} {
		if d.v == "" {
			continue
		}
		if _, err := time.ParseDuration(d.v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a duration such as 1h or 30m", d.key, d.v))
		}
	}
	for i, r := range c.Regions {
		if r.Name == "" || r.URL == "" {
			errs = append(errs, fmt.Errorf("regions[%d]: both name and url are required", i))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("--config %s: %w", path, err)
	}
	return &c, nil
}
