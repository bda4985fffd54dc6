// Package server wires gild together and runs it: it opens the store named by a URL (SQLite
// in the data directory by default), builds the control plane, makes the first Owner token
// on first start, serves the API, and shuts down cleanly when its context ends.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gildhq/gild/api"
	"github.com/gildhq/gild/atomicfile"
	"github.com/gildhq/gild/compliance"
	"github.com/gildhq/gild/controlplane"
	"github.com/gildhq/gild/fleet"
	"github.com/gildhq/gild/gallery"
	"github.com/gildhq/gild/pipeline"
	"github.com/gildhq/gild/policy"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
	"github.com/gildhq/gild/store/sqlite"
	"github.com/gildhq/gild/vm"
	"github.com/gildhq/gild/web"

	// The PostgreSQL backend registers itself for postgres:// URLs.
	_ "github.com/gildhq/gild/store/postgres"
)

// Config is what `gild serve` is told.
type Config struct {
	// DataDir holds the SQLite database (by default) and admin.token.
	DataDir string
	// Addr is the address to listen on, such as 127.0.0.1:8080; port 0 picks a free one.
	Addr string
	// StoreURL names the store; empty means SQLite at DataDir/gild.db.
	StoreURL string
	Logger   *slog.Logger
	// Ready, if set, is called with the address being served once the listener is open.
	Ready func(addr string)
	// AliasFile is an alias catalogue (csv or csv.gz) laid over gild's built-in aliases.
	AliasFile string
	// ScanInterval is how often every policy assignment's scope is scanned; 0 means hourly.
	ScanInterval time.Duration
	// Regions are the image regions as NAME=URL; none means one region, local, in
	// DataDir/regions/local. The first is the home region.
	Regions []string
	// VerifyInterval is how often every image replica is read back and checked; 0 means
	// daily, negative never.
	VerifyInterval time.Duration
	// AgentBinary is the gild-agent that image builds install; empty looks beside the
	// running program, then in PATH.
	AgentBinary string
	// Accel forces image validation VMs onto "kvm" or "tcg"; empty probes the host.
	Accel string
	// CacheDir keeps base root filesystems between builds; empty means DataDir/cache.
	CacheDir string
	// AgentInterval is how often agents report when nothing changes; 0 means 15 minutes.
	AgentInterval time.Duration
	// RefreshInterval, when positive, refreshes every scope on that interval: due cattle
	// are replaced (each scope's cycle from its refreshCycleDays tag), pets reported in
	// the log. Zero: refreshes run only when asked for (gild vm refresh).
	RefreshInterval time.Duration
	// NoVMs keeps VMs as records only: the server runs none (a compliance-only server, or
	// one on a machine without QEMU). Their agents may still enroll and report.
	NoVMs bool
}

// ShareKeyFile is the name, in the data directory, of the key that signs share links.
const ShareKeyFile = "share.key"

// AdminTokenFile is the name, in the data directory, of the file holding the first Owner token.
const AdminTokenFile = "admin.token"

// DefaultStoreURL is the SQLite store in dataDir.
func DefaultStoreURL(dataDir string) string {
	return sqlite.URL(filepath.Join(dataDir, "gild.db"))
}

// Run serves until ctx ends, then shuts down gracefully.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if cfg.DataDir == "" {
		return errors.New("serve: a data directory is required")
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("serve: data directory: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("serve: create data directory: %w", err)
	}
	// Take the address first: a port in use should fail before anything is created.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("serve: listen: %w", err)
	}
	defer ln.Close()
	storeURL := cfg.StoreURL
	if storeURL == "" {
		storeURL = DefaultStoreURL(dataDir)
	}
	st, err := store.Open(ctx, storeURL)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer st.Close()

	cp, err := controlplane.New(ctx, st, controlplane.Options{Logger: log})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	aliases := policy.DefaultAliases()
	if cfg.AliasFile != "" {
		catalogue, err := policy.LoadAliasFile(cfg.AliasFile)
		if err != nil {
			return fmt.Errorf("serve: --aliases: %w", err)
		}
		aliases = aliases.Merge(catalogue)
	}
	regions, err := openRegions(ctx, dataDir, cfg.Regions)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer func() {
		for _, r := range regions {
			r.Close()
		}
	}()
	shareKey, err := loadShareKey(filepath.Join(dataDir, ShareKeyFile))
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	images, err := gallery.New(st, gallery.Options{Regions: regions, ShareKey: shareKey, Logger: log, VerifyInterval: cfg.VerifyInterval})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	images.SetWriter(controlplane.SystemWriter{Service: cp})
	if err := images.Load(ctx); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	builds, err := pipeline.New(st, controlplane.SystemWriter{Service: cp}, pipeline.Options{Dir: filepath.Join(dataDir, "runs"), Logger: log})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	agentBinary := findAgent(cfg.AgentBinary)
	if agentBinary == "" {
		log.Warn("gild-agent was not found beside gild or in PATH; image builds cannot install it or validate images (see --agent)")
	}
	cacheDir := cfg.CacheDir
	if cacheDir == "" {
		cacheDir = filepath.Join(dataDir, "cache")
	}
	imageBuilder := &pipeline.Builder{CacheDir: filepath.Join(cacheDir, "rootfs"), AgentBinary: agentBinary, SourcesRoot: "/",
		Accel: cfg.Accel, Gallery: images, Store: st, Writer: controlplane.SystemWriter{Service: cp}}
	builds.SetSteps(imageBuilder.Steps)
	machines, err := fleet.New(st, fleet.Options{Logger: log, ReportInterval: cfg.AgentInterval, Configurations: fleet.BuiltinConfigurations{}})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	machines.SetWriter(controlplane.SystemWriter{Service: cp})
	if err := machines.Load(ctx); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	// The gallery's enricher first: the fleet's compares the agent's tattoo with the image
	// the gallery says a VM runs.
	engine := compliance.New(compliance.Options{Aliases: aliases, Logger: log, Enrichers: []compliance.Enricher{images.Enrich, machines.Enrich}})
	policies, err := compliance.NewService(ctx, engine, st, cp.Tree)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	policies.Interval = cfg.ScanInterval
	images.SetReevaluate(policies.Enqueue)
	machines.SetReevaluate(policies.Enqueue)
	policies.SetWriter(controlplane.SystemWriter{Service: cp})
	hooks := []controlplane.Hooks{images, builds}
	var vms *vm.Service
	var refresher *vm.Refresher
	if !cfg.NoVMs {
		vms, err = vm.New(st, images, vm.Options{Dir: dataDir, Logger: log, Accel: cfg.Accel, Enroll: machines,
			ServerURL: func() string { return vm.GuestURL(ln.Addr().String()) }})
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		defer vms.Close()
		vms.SetWriter(controlplane.SystemWriter{Service: cp})
		refresher = &vm.Refresher{Store: st, Gallery: images, Writer: controlplane.SystemWriter{Service: cp},
			Ready: func(ctx context.Context, id resource.ID) error { return vmReady(ctx, st, machines, id) }}
		hooks = append(hooks, vms)
	}
	// The gallery goes first: it fills in a VM's exact image version for the VM service
	// and for policies to see; the VM service completes a VM's properties before the policy
	// engine judges them.
	cp.SetHooks(controlplane.Chain(append(hooks, machines, policies)...))
	if err := builds.Recover(ctx); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if vms != nil {
		// VMs whose QEMU survived the last server are taken over; the others start again.
		if err := vms.Recover(ctx); err != nil {
			return fmt.Errorf("serve: %w", err)
		}
	}
	tokenPath := filepath.Join(dataDir, AdminTokenFile)
	made, err := cp.Bootstrap(ctx, func(secret string) error { return atomicfile.Write(tokenPath, []byte(secret+"\n"), 0o600) })
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if made {
		log.Info("created the first Owner token for /", "file", tokenPath)
	}

	apiHandler := api.New(cp, api.Options{Logger: log, Compliance: policies, Gallery: images, Pipeline: builds, Fleet: machines, VMs: vms, Refresher: refresher})
	rollup := compliance.NewRollup(st)
	dashboard, err := web.New(web.Options{Control: cp, Compliance: policies, Rollup: rollup, Gallery: images, Pipeline: builds,
		Fleet: machines, VMs: vms, Refresher: refresher, Logger: log, Key: shareKey})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	srv := &http.Server{
		Handler:           routes(apiHandler, dashboard),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go cp.Run(runCtx)
	go policies.Run(runCtx)
	go images.Run(runCtx)
	go machines.Run(runCtx)
	go rollup.Run(runCtx, 5*time.Second, log)
	if refresher != nil && cfg.RefreshInterval > 0 {
		go scheduledRefresh(runCtx, log, refresher, cfg.RefreshInterval)
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	addr := ln.Addr().String()
	log.Info("gild is serving", "url", "http://"+addr, "store", redacted(storeURL))
	if cfg.Ready != nil {
		cfg.Ready(addr)
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// Agents hold long polls open: answer them now rather than wait them out.
	machines.Shutdown()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("serve: shut down: %w", err)
	}
	// Runs still going are cancelled with runCtx; their cleanups unmount and kill QEMU.
	builds.CancelAll()
	builds.Wait()
	log.Info("gild stopped")
	return nil
}

// routes serves the dashboard under /ui/ and the API everywhere else; a browser that
// opens the server's address is sent to the dashboard.
func routes(apiHandler, dashboard http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(web.Prefix, dashboard)
	mux.Handle("/", apiHandler)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" && r.Method == http.MethodGet && r.URL.RawQuery == "" && strings.Contains(r.Header.Get("Accept"), "text/html") {
			http.Redirect(w, r, web.Prefix, http.StatusFound)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// redacted hides a store URL's password for the log.
func redacted(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparseable)"
	}
	return p.Redacted()
}

// vmReady waits until a VM has started and its agent has enrolled and reported: what a
// refresh waits for before it replaces the next VM.
func vmReady(ctx context.Context, st store.Store, machines *fleet.Service, id resource.ID) error {
	for {
		r, err := st.Get(ctx, id)
		if err == nil {
			var p struct {
				ProvisioningState string `json:"provisioningState"`
				ProvisioningError *struct {
					Message string `json:"message"`
				} `json:"provisioningError"`
			}
			_ = json.Unmarshal(r.Properties, &p)
			if p.ProvisioningState == "Failed" {
				msg := "no reason given"
				if p.ProvisioningError != nil {
					msg = p.ProvisioningError.Message
				}
				return fmt.Errorf("the VM failed to start: %s", msg)
			}
			if status, err := machines.Status(id); p.ProvisioningState == "Succeeded" && err == nil && status.State == "Connected" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the VM's agent did not report: %w", ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// scheduledRefresh refreshes every scope on an interval.
func scheduledRefresh(ctx context.Context, log *slog.Logger, f *vm.Refresher, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rep, err := f.Refresh(ctx, resource.Root, vm.RefreshOptions{})
		if err != nil {
			log.Error("scheduled refresh", "err", err)
			continue
		}
		for _, x := range rep.Replaced {
			log.Info("scheduled refresh: replaced a VM", "vm", x.ID, "from", x.FromVersion, "to", x.ToVersion, "why", x.Reason)
		}
		for _, x := range rep.Failed {
			log.Error("scheduled refresh: a VM could not be replaced", "vm", x.ID, "err", x.Error)
		}
		for _, x := range rep.Pets {
			log.Warn("scheduled refresh: a pet is stale (pets are never replaced)", "vm", x.ID, "why", strings.Join(x.Reasons, "; "))
		}
	}
}
