// Package server wires gild together and runs it: it opens the store named by a URL (SQLite
// in the data directory by default), builds the control plane, makes the first Owner token
// on first start, serves the API, and shuts down cleanly when its context ends.
package server

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/gildhq/gild/api"
	"github.com/gildhq/gild/atomicfile"
	"github.com/gildhq/gild/compliance"
	"github.com/gildhq/gild/controlplane"
	"github.com/gildhq/gild/fleet"
	"github.com/gildhq/gild/gallery"
	"github.com/gildhq/gild/jobs"
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
	// NoBuilds keeps this server off the builds queue; other servers on the same database
	// build. A server without qemu-system-x86_64 never builds.
	NoBuilds bool
	// BuildSteps replaces the image builder's steps; tests give builds of their own.
	BuildSteps func(b *pipeline.Build) []pipeline.Step
	// Jobs tunes the job system (schedule tick, rescue time, delivery retries); the
	// services it runs are filled in by Run.
	Jobs jobs.Options
}

// ShareKeyFile is the name, in the data directory, of the key that signs share links.
const ShareKeyFile = "share.key"

// ServerIDFile is the name, in the data directory, of the file naming this server among
// those that share a database.
const ServerIDFile = "server.id"

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
	// Verification is a job (once for all servers), not the gallery's own timer.
	images, err := gallery.New(st, gallery.Options{Regions: regions, ShareKey: shareKey, Logger: log, VerifyInterval: -1})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	images.SetWriter(controlplane.SystemWriter{Service: cp})
	if err := images.Load(ctx); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	// The job system is made after the pipeline, which dispatches builds to it.
	var js *jobs.Service
	imageBuilder := &pipeline.Builder{}
	builds, err := pipeline.New(st, controlplane.SystemWriter{Service: cp}, pipeline.Options{Dir: filepath.Join(dataDir, "runs"), Logger: log,
		Dispatch: func(ctx context.Context, run resource.ID) error { return js.Dispatch(ctx, run) },
		Inputs: func(ctx context.Context, p *pipeline.TemplateProperties) (pipeline.Inputs, error) {
			return imageBuilder.Inputs(ctx, p)
		},
		OnRunEnd: func(ctx context.Context, e pipeline.RunEnd) { js.RunEnded(ctx, e) }})
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
	*imageBuilder = pipeline.Builder{CacheDir: filepath.Join(cacheDir, "rootfs"), AgentBinary: agentBinary, SourcesRoot: "/",
		Accel: cfg.Accel, Gallery: images, Store: st, Writer: controlplane.SystemWriter{Service: cp}}
	builds.SetSteps(imageBuilder.Steps)
	if cfg.BuildSteps != nil {
		builds.SetSteps(cfg.BuildSteps)
	}
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
	// Full scans are a job, started once for all servers; each server still scans what
	// changes through it.
	policies.Interval = -1
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

	jo := cfg.Jobs
	jo.Store, jo.Pipeline, jo.Logger = st, builds, log
	if jo.ServerID, err = serverID(filepath.Join(dataDir, ServerIDFile)); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	jo.Inputs, jo.BaseVersion = imageBuilder.Inputs, imageBuilder.BaseVersion
	jo.Builds = !cfg.NoBuilds && (cfg.BuildSteps != nil || canBuild())
	jo.Scan, jo.ScanInterval = func(context.Context) error { policies.ScanAll(); return nil }, cfg.ScanInterval
	jo.Verify, jo.VerifyInterval = func(ctx context.Context) error { _, err := images.VerifyAll(ctx); return err }, cfg.VerifyInterval
	jo.Within = func(id, scope resource.ID) bool { return cp.Tree().Contains(scope, id) }
	if refresher != nil {
		jo.Refresh, jo.RefreshInterval = func(ctx context.Context) error { return refreshAll(ctx, log, refresher) }, cfg.RefreshInterval
		jo.CattleDue = func(ctx context.Context) ([]jobs.DueVM, error) { return cattleDue(ctx, refresher) }
	}
	jo.Replicate = images.ReplicateJob
	js, err = jobs.New(ctx, jo)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	images.SetDispatch(js.DispatchReplication)
	if !jo.Builds {
		log.Info("this server does not build images; servers that can build take the builds", "no-builds", cfg.NoBuilds)
	}

	apiHandler := api.New(cp, api.Options{Logger: log, Compliance: policies, Gallery: images, Pipeline: builds, Fleet: machines, VMs: vms, Refresher: refresher, Jobs: js})
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
	if err := js.Start(runCtx); err != nil {
		return fmt.Errorf("serve: %w", err)
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
	// A build still going is handed back to the queue (its job is retried here or on
	// another server); its cleanups unmount and kill QEMU.
	jobsCtx, cancelJobs := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelJobs()
	if err := js.Stop(jobsCtx); err != nil {
		log.Warn("stop the job system", "err", err)
	}
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

// refreshAll replaces the due cattle everywhere, and says what it did in the log.
func refreshAll(ctx context.Context, log *slog.Logger, f *vm.Refresher) error {
	rep, err := f.Refresh(ctx, resource.Root, vm.RefreshOptions{})
	if err != nil {
		return fmt.Errorf("scheduled refresh: %w", err)
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
	return nil
}

// cattleDue is what a refresh would replace now.
func cattleDue(ctx context.Context, f *vm.Refresher) ([]jobs.DueVM, error) {
	rep, err := f.Refresh(ctx, resource.Root, vm.RefreshOptions{DryRun: true})
	if err != nil {
		return nil, err
	}
	out := make([]jobs.DueVM, 0, len(rep.Due))
	for _, x := range rep.Due {
		reasons := x.Reasons
		if len(reasons) == 0 && x.Reason != "" {
			reasons = []string{x.Reason}
		}
		out = append(out, jobs.DueVM{ID: x.ID, Reasons: reasons, FromVersion: x.FromVersion, ToVersion: x.ToVersion})
	}
	return out, nil
}

// serverID reads this server's name, making one on first start: the host name and a
// random part, so that two servers on one host differ.
func serverID(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	id := fmt.Sprintf("%s-%x", host, b)
	if err := atomicfile.Write(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write the server ID: %w", err)
	}
	return id, nil
}

// canBuild reports whether this machine has the emulator image validation boots.
func canBuild() bool {
	_, err := exec.LookPath("qemu-system-x86_64")
	return err == nil
}
