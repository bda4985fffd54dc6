package cli

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gildhq/gild/server"
)

// defaultDataDir is $GILD_DATA, or ~/.local/share/gild as the XDG base directory
// specification places user data.
func (a *app) defaultDataDir() (string, error) {
	if d := a.env.Getenv("GILD_DATA"); d != "" {
		return d, nil
	}
	home, err := a.homeDir()
	if err != nil {
		return "", fmt.Errorf("find the data directory: %w (use --data DIR or $GILD_DATA)", err)
	}
	return filepath.Join(home, ".local", "share", "gild"), nil
}

func parseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, usageErrorf("invalid --log-level %q: use debug, info, warn or error", s)
}

func (a *app) serveCommand() *cobra.Command {
	var dataDir, addr, storeURL, logLevel, aliasFile, configFile string
	var scanInterval, verifyInterval, agentInterval, refreshInterval time.Duration
	var noVMs, noBuilds bool
	var regions []string
	var agentBinary, accel string
	cmd := &cobra.Command{
		Use:   "serve [--data DIR] [--addr 127.0.0.1:8080] [--store URL]",
		Short: "Run the gild server",
		Long: `serve runs the API until it receives SIGINT or SIGTERM.

Its data directory (--data, else $GILD_DATA, else ~/.local/share/gild) holds the SQLite
store by default and admin.token: on first start, serve creates an Owner token for the
whole tree and writes it there, readable by you only. --store postgres://... keeps the
resources in PostgreSQL instead.`,
		Example: `  gild serve
  gild serve --data /var/lib/gild --addr 0.0.0.0:8080
  gild serve --store 'postgres://gild@db.internal/gild?sslmode=require'`,
		Args: a.exactArgs(0, "no arguments"),
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "a YAML file of these settings (data, addr, store, logLevel, aliases, scanInterval, verifyInterval, regions: [{name, url}]); flags win over it")
	f.StringVar(&dataDir, "data", "", "data directory (default $GILD_DATA or ~/.local/share/gild)")
	f.StringVar(&addr, "addr", "127.0.0.1:8080", "address to listen on")
	f.StringVar(&storeURL, "store", "", "store URL such as postgres://USER@HOST/DB (default SQLite in the data directory)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&aliasFile, "aliases", "", "an Azure Policy alias catalogue (csv or csv.gz of alias,path) laid over gild's own aliases")
	f.DurationVar(&scanInterval, "scan-interval", time.Hour, "how often every policy assignment's scope is evaluated again")
	f.StringArrayVar(&regions, "region", nil, "an image region as NAME=URL (file://, s3://, azblob://, gs://); repeat for more, the first is the home region (default: local, in the data directory)")
	f.StringVar(&agentBinary, "agent", "", "the gild-agent binary image builds install (default: beside gild, then in PATH)")
	f.StringVar(&accel, "accel", "", "force image validation VMs onto kvm or tcg (default: probe the host)")
	f.DurationVar(&refreshInterval, "refresh-interval", 0, "refresh every scope on this interval: replace due cattle, report stale pets (0: only when asked, with gild vm refresh)")
	f.BoolVar(&noVMs, "no-vms", false, "run no VMs: VM resources are records only (a compliance-only server, or one without QEMU)")
	f.BoolVar(&noBuilds, "no-builds", false, "take no image builds: other servers on the same database build them (a server without qemu-system-x86_64 never builds)")
	f.DurationVar(&agentInterval, "agent-interval", 15*time.Minute, "how often agents report when nothing changes (they report at once when their assignments do)")
	f.DurationVar(&verifyInterval, "verify-interval", 24*time.Hour, "how often every image replica is read back and checked against its SHA-256 (0 disables)")
	cmd.RunE = a.run(func(cmd *cobra.Command, _ []string) error {
		if configFile != "" {
			c, err := loadServeConfig(configFile)
			if err != nil {
				return usageErrorf("%v", err)
			}
			set := func(flag string, dst *string, v string) {
				if v != "" && !cmd.Flags().Changed(flag) {
					*dst = v
				}
			}
			set("data", &dataDir, c.Data)
			set("addr", &addr, c.Addr)
			set("store", &storeURL, c.Store)
			set("log-level", &logLevel, c.LogLevel)
			set("aliases", &aliasFile, c.Aliases)
			if c.ScanInterval != "" && !cmd.Flags().Changed("scan-interval") {
				scanInterval, _ = time.ParseDuration(c.ScanInterval)
			}
			if c.VerifyInterval != "" && !cmd.Flags().Changed("verify-interval") {
				verifyInterval, _ = time.ParseDuration(c.VerifyInterval)
			}
			if len(c.Regions) > 0 && !cmd.Flags().Changed("region") {
				for _, r := range c.Regions {
					regions = append(regions, r.Name+"="+r.URL)
				}
			}
		}
		if agentInterval < 5*time.Second {
			return usageErrorf("invalid --agent-interval %s: at least 5s", agentInterval)
		}
		if accel != "" && accel != "kvm" && accel != "tcg" {
			return usageErrorf("invalid --accel %q: use kvm or tcg", accel)
		}
		level, err := parseLogLevel(logLevel)
		if err != nil {
			return err
		}
		if dataDir == "" {
			if dataDir, err = a.defaultDataDir(); err != nil {
				return fmt.Errorf("serve: %w", err)
			}
		}
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return fmt.Errorf("serve: create data directory: %w", err)
		}
		log := slog.New(slog.NewTextHandler(a.env.Stderr, &slog.HandlerOptions{Level: level}))
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return server.Run(ctx, server.Config{DataDir: dataDir, Addr: addr, StoreURL: storeURL, Logger: log,
			AliasFile: aliasFile, ScanInterval: scanInterval, Regions: regions, VerifyInterval: verifyEvery(verifyInterval),
			AgentBinary: agentBinary, Accel: accel, AgentInterval: agentInterval, NoVMs: noVMs, NoBuilds: noBuilds, RefreshInterval: refreshInterval})
	})
	return cmd
}

// verifyEvery turns the flag's 0 ("never") into the server's negative.
func verifyEvery(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
