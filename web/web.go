// Package web is gild's dashboard: server-rendered HTML pages under /ui/ for DevOps teams,
// risk managers and security officers. It signs people in with an API token kept in an
// encrypted session cookie, and reads everything through the control plane as that caller,
// so each page shows only what the caller's role assignments allow. Charts are inline SVG
// drawn on the server; the pages load nothing from elsewhere and need no JavaScript.
package web

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gildhq/gild/compliance"
	"github.com/gildhq/gild/controlplane"
	"github.com/gildhq/gild/fleet"
	"github.com/gildhq/gild/gallery"
	"github.com/gildhq/gild/pipeline"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/vm"
)

// Prefix is where the dashboard is served.
const Prefix = "/ui/"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure the dashboard. Services left nil leave their pages out.
type Options struct {
	Control    *controlplane.Service
	Compliance *compliance.Service
	// Rollup answers the overview; nil makes one over the control plane's store.
	Rollup    *compliance.Rollup
	Gallery   *gallery.Service
	Pipeline  *pipeline.Service
	Fleet     *fleet.Service
	VMs       *vm.Service
	Refresher *vm.Refresher
	Logger    *slog.Logger
	// Key encrypts and signs session cookies (at least 32 bytes); servers that share it
	// share sessions.
	Key []byte
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// SessionTTL is how long a sign-in lasts; 0 means 12 hours.
	SessionTTL time.Duration
}

// Handler serves the dashboard.
type Handler struct {
	opts   Options
	cp     *controlplane.Service
	rollup *compliance.Rollup
	log    *slog.Logger
	mux    *http.ServeMux
	pages  map[string]*template.Template
	keys   sessionKeys
}

// New returns the dashboard's handler.
func New(opts Options) (*Handler, error) {
	if opts.Control == nil {
		return nil, errors.New("web: a control plane is required")
	}
	if len(opts.Key) < 32 {
		return nil, errors.New("web: the session key must be at least 32 bytes")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	h := &Handler{opts: opts, cp: opts.Control, rollup: opts.Rollup, log: opts.Logger, keys: newSessionKeys(opts.Key)}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.rollup == nil {
		h.rollup = compliance.NewRollup(opts.Control.Store())
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	h.pages = pages
	h.routes()
	return h, nil
}

// Rollup is the roll-up the overview reads; the server runs it.
func (h *Handler) Rollup() *compliance.Rollup { return h.rollup }

func (h *Handler) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", cacheForever(http.FileServerFS(static))))
	m.HandleFunc("GET /ui/sign-in", h.signInPage)
	m.HandleFunc("POST /ui/sign-in", h.signIn)
	m.HandleFunc("POST /ui/sign-out", h.signOut)
	m.Handle("GET /ui/{$}", h.page(h.overview))
	m.Handle("GET /ui/resources", h.page(h.resourceList))
	m.Handle("GET /ui/policies", h.page(h.policies))
	m.Handle("GET /ui/assignment/{id...}", h.page(h.assignment))
	m.Handle("GET /ui/definition/{id...}", h.page(h.definition))
	m.Handle("GET /ui/resource/{id...}", h.page(h.resourcePage))
	m.Handle("GET /ui/images", h.page(h.images))
	m.Handle("GET /ui/image/{id...}", h.page(h.imagePage))
	m.Handle("GET /ui/run/{id...}", h.page(h.runPage))
	m.Handle("GET /ui/fleet", h.page(h.fleetPage))
	m.Handle("/ui/", h.page(func(*request) (*view, error) {
		return nil, resource.Errorf(resource.CodeNotFound, "", "there is no such page")
	}))
	h.mux = m
}

// ServeHTTP serves the dashboard with headers that keep the pages to themselves: nothing
// runs, loads or frames them from elsewhere.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("X-Frame-Options", "DENY")
	h.mux.ServeHTTP(w, r)
}

func cacheForever(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		next.ServeHTTP(w, r)
	})
}

// request is one signed-in page request.
type request struct {
	*http.Request
	ctx     context.Context
	caller  controlplane.Caller
	session *session
	now     time.Time
}

// view is what a page handler returns: a template and its data, or tables to export.
type view struct {
	Template string
	Title    string
	Nav      string // the navigation entry to mark current
	Crumbs   []crumb
	Data     any
	// Tables are the page's lists; ?export=NAME&format=csv|json returns one of them whole.
	Tables []*table
}

type crumb struct{ Text, Href string }

// page wraps a page handler: the caller from the session (or a redirect to sign in),
// exports, rendering, and errors as pages.
func (h *Handler) page(fn func(*request) (*view, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, caller, err := h.sessionOf(r)
		if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			// Scripts read pages and exports with an API token instead of a session; a
			// header no other site can make a browser send needs no anti-forgery token.
			sess = nil
			if caller, err = h.cp.Authenticate(r.Context(), strings.TrimSpace(bearer)); err != nil {
				http.Error(w, "the bearer token is not valid, has expired or was revoked", http.StatusUnauthorized)
				return
			}
		} else if err != nil {
			http.Redirect(w, r, "/ui/sign-in?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		req := &request{Request: r, ctx: r.Context(), caller: caller, session: sess, now: h.opts.Now()}
		v, err := fn(req)
		if err != nil {
			h.renderError(w, req, err)
			return
		}
		if name := r.URL.Query().Get("export"); name != "" {
			h.export(w, req, v, name)
			return
		}
		h.render(w, req, http.StatusOK, v)
	})
}

// errorStatus maps an error to the page's status, as the API does for its codes.
func errorStatus(err error) int {
	var re *resource.Error
	if !errors.As(err, &re) {
		return http.StatusInternalServerError
	}
	switch re.Code {
	case resource.CodeNotFound, resource.CodeParentNotFound:
		return http.StatusNotFound
	case resource.CodeAuthorizationFailed:
		return http.StatusForbidden
	case resource.CodeInvalidParameter, resource.CodeInvalidResourceID, resource.CodeInvalidRequestContent, resource.CodeInvalidResourceType:
		return http.StatusBadRequest
	case resource.CodeStoreUnavailable:
		return http.StatusServiceUnavailable
	}
	if strings.HasSuffix(re.Code, "NotFound") {
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

func (h *Handler) renderError(w http.ResponseWriter, r *request, err error) {
	status := errorStatus(err)
	msg := err.Error()
	if status == http.StatusInternalServerError {
		h.log.Error("dashboard page", "path", r.URL.Path, "err", err)
	}
	h.render(w, r, status, &view{Template: "error", Title: http.StatusText(status), Data: map[string]any{"Status": status, "Message": msg}})
}
