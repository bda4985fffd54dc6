package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gildhq/gild/atomicfile"
)

// config is what `gild login` saves. It keeps the path of the token file, not the token,
// so that the secret stays in the one file its owner already protects.
type config struct {
	Server    string `json:"server"`
	TokenFile string `json:"tokenFile"`
}

// configPath is $XDG_CONFIG_HOME/gild/config.json, or ~/.config/gild/config.json.
func (a *app) configPath() (string, error) {
	if dir := a.env.Getenv("XDG_CONFIG_HOME"); dir != "" && filepath.IsAbs(dir) {
		return filepath.Join(dir, "gild", "config.json"), nil
	}
	home, err := a.homeDir()
	if err != nil {
		return "", fmt.Errorf("find the config file: %w", err)
	}
	return filepath.Join(home, ".config", "gild", "config.json"), nil
}

func (a *app) homeDir() (string, error) {
	if h := a.env.Getenv("HOME"); h != "" {
		return h, nil
	}
	return os.UserHomeDir()
}

// loadConfig reads the saved login; a missing file gives a zero config and found=false.
func (a *app) loadConfig() (cfg config, path string, found bool, err error) {
	path, err = a.configPath()
	if err != nil {
		return config{}, "", false, err
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return config{}, path, false, nil
	}
	if err != nil {
		return config{}, path, false, fmt.Errorf("read config: %w", err)
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return config{}, path, false, fmt.Errorf("read config %s: %w (run gild login again to rewrite it)", path, err)
	}
	return cfg, path, true, nil
}

// saveConfig writes the login atomically, readable by its owner only.
func saveConfig(path string, cfg config) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save config: %w", err)
	}
	// MkdirAll leaves an existing directory's mode alone; a config directory others can
	// read would show where the token lives.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("save config: %w", err)
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("save config: %w", err)
	}
	return atomicfile.Write(path, append(data, '\n'), 0o600)
}

// readTokenFile reads a token from a file holding it alone (whitespace around it is ignored).
func readTokenFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fmt.Errorf("read token file %s: it is empty", path)
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("read token file %s: it must hold one token and nothing else", path)
	}
	return tok, nil
}

// client builds the API client from, in order of precedence, the --server and --token-file
// flags, $GILD_SERVER and $GILD_TOKEN, and the saved login.
func (a *app) client() (*Client, error) {
	server := a.server
	if server == "" {
		server = a.env.Getenv("GILD_SERVER")
	}
	var token string
	if a.tokenFile != "" {
		t, err := readTokenFile(a.tokenFile)
		if err != nil {
			return nil, err
		}
		token = t
	} else if t := strings.TrimSpace(a.env.Getenv("GILD_TOKEN")); t != "" {
		token = t
	}
	if server == "" || token == "" {
		cfg, path, found, err := a.loadConfig()
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("not logged in (no %s): run gild login --server URL --token-file FILE, or set GILD_SERVER and GILD_TOKEN", path)
		}
		if server == "" {
			server = cfg.Server
		}
		if token == "" {
			if cfg.TokenFile == "" {
				return nil, fmt.Errorf("the config %s names no token file: run gild login again", path)
			}
			t, err := readTokenFile(cfg.TokenFile)
			if err != nil {
				return nil, fmt.Errorf("%w (saved by gild login in %s)", err, path)
			}
			token = t
		}
		if server == "" {
			return nil, fmt.Errorf("the config %s names no server: run gild login again", path)
		}
	}
	return NewClient(server, token)
}

func (a *app) loginCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "login --server URL --token-file FILE",
		Short: "Check a server and token, and save them for the other commands",
		Long: `login calls the server with the token to check both, then saves the server URL and
the token file's absolute path (not the token) in $XDG_CONFIG_HOME/gild/config.json
(~/.config/gild/config.json by default), readable only by you.

Other commands use the saved login unless --server, --token-file, $GILD_SERVER or
$GILD_TOKEN (the token itself) say otherwise.`,
		Example: "  gild login --server http://127.0.0.1:8080 --token-file ~/.local/share/gild/admin.token",
		Args:    a.exactArgs(0, "no arguments"),
	}
	cmd.RunE = a.run(func(cmd *cobra.Command, _ []string) error {
		if a.server == "" || a.tokenFile == "" {
			return usageErrorf("gild login needs both --server URL and --token-file FILE")
		}
		tokenFile, err := filepath.Abs(a.tokenFile)
		if err != nil {
			return fmt.Errorf("login: %w", err)
		}
		c, err := a.client()
		if err != nil {
			return fmt.Errorf("login: %w", err)
		}
		// Asking who the token belongs to proves it works and tells the user who they are.
		me, _, err := c.whoami(cmd.Context())
		if err != nil {
			var ae *APIError
			if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
				return fmt.Errorf("login: the server refused the token in %s: %w", tokenFile, err)
			}
			return fmt.Errorf("login: %w", err)
		}
		cfg := config{Server: c.base.String(), TokenFile: tokenFile}
		path, err := a.configPath()
		if err != nil {
			return fmt.Errorf("login: %w", err)
		}
		if err := saveConfig(path, cfg); err != nil {
			return fmt.Errorf("login: %w", err)
		}
		if a.output == outputJSON {
			return writeJSON(a.env.Stdout, map[string]string{"server": cfg.Server, "tokenFile": cfg.TokenFile, "config": path, "principalId": me.PrincipalID})
		}
		fmt.Fprintf(a.env.Stdout, "Logged in to %s as %s.\nSaved the server and the token file's path in %s.\n", cfg.Server, me.PrincipalID, path)
		return nil
	})
	return cmd
}
