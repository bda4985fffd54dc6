// Package api is gild's HTTP JSON API in Azure Resource Manager's shape: PUT, GET, PATCH and
// DELETE on resource IDs with an api-version, lists on "{scope}/providers/{namespace}/{type}",
// ARM error bodies, bearer-token authentication, and the operational endpoints /healthz and
// /metrics. Access decisions are the control plane's; this package speaks HTTP.
package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gildhq/gild/access"
	"github.com/gildhq/gild/compliance"
	"github.com/gildhq/gild/controlplane"
	"github.com/gildhq/gild/fleet"
	"github.com/gildhq/gild/gallery"
	"github.com/gildhq/gild/jobs"
	"github.com/gildhq/gild/pipeline"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
	"github.com/gildhq/gild/vm"
)

// DefaultMaxBody is the largest request body accepted, as in ARM (4 MiB).
const DefaultMaxBody = 4 << 20

// Options configure the API.
type Options struct {
	Logger *slog.Logger
	// MaxBody caps request bodies; 0 means DefaultMaxBody.
	MaxBody int64
	// Metrics are the Prometheus metrics to update and serve; nil makes a fresh set.
	Metrics *Metrics
	// Compliance serves the PolicyInsights endpoints; nil leaves them out.
	Compliance *compliance.Service
	// Gallery serves artifact uploads, pulls, resolution and share links; nil leaves them out.
	Gallery *gallery.Service
	// Pipeline serves template runs and their logs; nil leaves them out.
	Pipeline *pipeline.Service
	// VMs runs VMs: power actions, instance views and consoles; nil leaves them out.
	VMs *vm.Service
	// Refresher replaces due cattle; nil leaves the refresh action out.
	Refresher *vm.Refresher
	// Jobs lists background jobs and keeps webhooks; nil leaves those endpoints out.
	Jobs *jobs.Service
	// Fleet serves the agents' protocol, enrollment tokens and machine events; nil leaves
	// them out.
	Fleet *fleet.Service
}

// Server is the API's http.Handler.
type Server struct {
	cp         *controlplane.Service
	compliance *compliance.Service
	gallery    *gallery.Service
	pipeline   *pipeline.Service
	fleet      *fleet.Service
	refresher  *vm.Refresher
	jobs       *jobs.Service
	vms        *vm.Service
	log        *slog.Logger
	maxBody    int64
	metrics    *Metrics
	mux        *http.ServeMux
}

// New returns the API over the control plane cp.
func New(cp *controlplane.Service, opts Options) *Server {
	s := &Server{cp: cp, compliance: opts.Compliance, gallery: opts.Gallery, pipeline: opts.Pipeline, fleet: opts.Fleet, refresher: opts.Refresher, jobs: opts.Jobs, vms: opts.VMs, log: opts.Logger, maxBody: opts.MaxBody, metrics: opts.Metrics}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBody
	}
	if s.metrics == nil {
		s.metrics = NewMetrics()
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.Handle("GET /metrics", s.metrics.Handler())
	s.mux.HandleFunc("GET /share/{token}", s.shared)
	if s.fleet != nil {
		s.agentRoutes()
	}
	s.mux.HandleFunc("/", s.arm)
	return s
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	rec.Header().Set("x-ms-request-id", requestID())
	s.mux.ServeHTTP(rec, r)
	s.metrics.observe(r.Method, rec.status, time.Since(start))
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

// Unwrap lets http.ResponseController reach the connection, for the handlers that flush
// as they go (a followed log) or lift the deadlines (a disk image's upload or pull).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func requestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.cp.Store().Ping(ctx); err != nil {
		s.log.Warn("health check: store unreachable", "err", err)
		s.writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "store": "unreachable"})
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

var apiVersionPattern = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(-preview)?$`)

// Namespaces of gild's own endpoints that look like ARM collections.
const (
	typeTokens          = "Gild.Identity/tokens"
	typeSelf            = "Gild.Identity/self"
	typeAuditEvents     = "Gild.Audit/events"
	typeRoleDefinitions = "Microsoft.Authorization/roleDefinitions"
)

// arm serves every resource path.
func (s *Server) arm(w http.ResponseWriter, r *http.Request) {
	caller, err := s.authenticate(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := checkAPIVersion(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	path, err := resource.ParsePath(r.URL.Path)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.galleryRoute(w, r, caller, path) || s.pipelineRoute(w, r, caller, path) || s.machineRoute(w, r, caller, path) || s.vmRoute(w, r, caller, path) || s.jobsRoute(w, r, caller, path) {
		return
	}
	if scope, set, op, ok := insightsPath(path); ok {
		s.insights(w, r, caller, scope, set, op)
		return
	}
	switch {
	case strings.EqualFold(path.Collection, typeSelf) && path.ID.IsRoot():
		if r.Method != http.MethodGet {
			s.writeError(w, r, methodNotAllowed(r, "GET"))
			return
		}
		s.writeJSON(w, http.StatusOK, s.cp.Whoami(caller))
	case strings.EqualFold(path.Collection, typeAuditEvents):
		s.auditLog(w, r, caller, path.ID)
	case strings.EqualFold(path.Collection, typeTokens) || strings.EqualFold(path.ID.Type(), typeTokens):
		s.tokens(w, r, caller, path)
	case strings.EqualFold(path.Collection, typeRoleDefinitions) || strings.EqualFold(path.ID.Type(), typeRoleDefinitions):
		s.roleDefinitions(w, r, path)
	case path.Collection != "":
		if r.Method != http.MethodGet {
			s.writeError(w, r, methodNotAllowed(r, "GET"))
			return
		}
		s.list(w, r, caller, path)
	default:
		s.resource(w, r, caller, path.ID)
	}
}

func methodNotAllowed(r *http.Request, allowed string) error {
	return resource.Errorf(resource.CodeMethodNotAllowed, r.URL.Path, "method %s is not allowed here; use %s", r.Method, allowed)
}

func checkAPIVersion(r *http.Request) error {
	v := r.URL.Query().Get("api-version")
	if v == "" {
		return resource.Errorf(resource.CodeMissingAPIVersion, "api-version", "the api-version query parameter is required, for example ?api-version=2024-01-01")
	}
	if !apiVersionPattern.MatchString(v) {
		return resource.Errorf(codeInvalidAPIVersion, "api-version", "api-version %q is not a date such as 2024-01-01 (optionally with -preview)", v)
	}
	return nil
}

// authenticate finds the caller from the bearer token.
func (s *Server) authenticate(r *http.Request) (controlplane.Caller, error) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if h == "" {
		return controlplane.Caller{}, resource.Errorf(resource.CodeAuthenticationFailed, "Authorization", "authentication is required: send 'Authorization: Bearer TOKEN'")
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return controlplane.Caller{}, resource.Errorf(resource.CodeAuthenticationFailed, "Authorization", "the Authorization header must be 'Bearer TOKEN'")
	}
	c, err := s.cp.Authenticate(r.Context(), strings.TrimSpace(tok))
	if err != nil {
		return controlplane.Caller{}, err
	}
	c.Detail = "from " + r.RemoteAddr
	return c, nil
}

// resource serves one resource ID.
func (s *Server) resource(w http.ResponseWriter, r *http.Request, c controlplane.Caller, id resource.ID) {
	ctx := r.Context()
	switch r.Method {
	case http.MethodGet:
		res, err := s.cp.Get(ctx, c, id)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeResource(w, http.StatusOK, res)
	case http.MethodPut:
		body, err := s.readBody(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		res, err := resource.DecodeBody(id, body)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		stored, created, err := s.cp.Put(ctx, c, res, precondition(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		s.writeResource(w, status, stored)
	case http.MethodPatch:
		body, err := s.readBody(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		stored, err := s.cp.Patch(ctx, c, id, body, precondition(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeResource(w, http.StatusOK, stored)
	case http.MethodDelete:
		if force, _ := strconv.ParseBool(r.URL.Query().Get("forceDeletion")); force {
			ctx = gallery.WithForceDelete(ctx)
		}
		deleted, err := s.cp.Delete(ctx, c, id, precondition(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if !deleted {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusOK)
	default:
		s.writeError(w, r, methodNotAllowed(r, "GET, PUT, PATCH or DELETE"))
	}
}

func precondition(r *http.Request) store.Precondition {
	return store.Precondition{IfMatch: strings.TrimSpace(r.Header.Get("If-Match")), IfNoneMatch: strings.TrimSpace(r.Header.Get("If-None-Match"))}
}

// readBody reads a JSON request body, refusing other media types and bodies over the limit
// before any of it reaches the control plane.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, resource.Errorf(resource.CodeUnsupportedMediaType, "Content-Type", "the body must be application/json, not %q", ct)
		}
	}
	if r.ContentLength > s.maxBody {
		return nil, tooLarge(s.maxBody)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(s.maxBody)
		}
		return nil, resource.Errorf(resource.CodeInvalidRequestContent, "", "reading the request body failed: %v", err)
	}
	return body, nil
}

func tooLarge(limit int64) error {
	return resource.Errorf(resource.CodeRequestTooLarge, "", "the request body is larger than the limit of %d bytes", limit)
}

// list serves a collection path.
func (s *Server) list(w http.ResponseWriter, r *http.Request, c controlplane.Caller, p resource.Path) {
	q := r.URL.Query()
	limit := 0
	if t := q.Get("$top"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 1 || n > store.MaxPageSize {
			s.writeError(w, r, resource.Errorf(resource.CodeInvalidParameter, "$top", "$top must be a whole number from 1 to %d, not %q", store.MaxPageSize, t))
			return
		}
		limit = n
	}
	page, err := s.cp.List(r.Context(), c, controlplane.ListRequest{Scope: p.ID, Type: p.Collection, Limit: limit, After: q.Get("$skipToken")})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := listBody{Value: page.Items}
	if out.Value == nil {
		out.Value = []*resource.Resource{}
	}
	if page.Next != "" {
		out.NextLink = nextLink(r, "$skipToken", page.Next)
	}
	s.writeJSON(w, http.StatusOK, out)
}

type listBody struct {
	Value    []*resource.Resource `json:"value"`
	NextLink string               `json:"nextLink,omitempty"`
}

// nextLink is the absolute URL of the next page, as ARM clients expect.
// The request's other query parameters are kept; param is set to cursor.
func nextLink(r *http.Request, param, cursor string) string {
	u := url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path}
	if r.TLS != nil {
		u.Scheme = "https"
	}
	q := r.URL.Query()
	q.Set(param, cursor)
	u.RawQuery = q.Encode()
	return u.String()
}

func (s *Server) writeResource(w http.ResponseWriter, status int, res *resource.Resource) {
	if res.ETag != "" {
		w.Header().Set("ETag", `"`+res.ETag+`"`)
	}
	s.writeJSON(w, status, res)
}

func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		s.log.Error("encode response", "err", err)
		http.Error(w, `{"error":{"code":"InternalServerError","message":"encoding the response failed"}}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// auditLog serves "{scope}/providers/Gild.Audit/events".
func (s *Server) auditLog(w http.ResponseWriter, r *http.Request, c controlplane.Caller, scope resource.ID) {
	if r.Method != http.MethodGet {
		s.writeError(w, r, methodNotAllowed(r, "GET"))
		return
	}
	q := r.URL.Query()
	aq := store.AuditQuery{Limit: 1000}
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			s.writeError(w, r, resource.Errorf(resource.CodeInvalidParameter, "$top", "$top must be a whole number from 1 to 10000, not %q", v))
			return
		}
		aq.Limit = n
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			s.writeError(w, r, resource.Errorf(resource.CodeInvalidParameter, "since", "since must be an RFC 3339 time such as 2026-01-02T15:04:05Z, not %q", v))
			return
		}
		aq.Since = t
	}
	for _, bound := range []struct {
		name string
		dst  *int64
	}{{"after", &aq.After}, {"before", &aq.Before}} {
		if v := q.Get(bound.name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				s.writeError(w, r, resource.Errorf(resource.CodeInvalidParameter, bound.name, "%s must be an audit sequence number, not %q", bound.name, v))
				return
			}
			*bound.dst = n
		}
	}
	switch q.Get("order") {
	case "", "oldest":
	case "newest":
		aq.Newest = true
	default:
		s.writeError(w, r, resource.Errorf(resource.CodeInvalidParameter, "order", "order must be oldest (the default, for following the log) or newest, not %q", q.Get("order")))
		return
	}
	entries, err := s.cp.AuditLog(r.Context(), c, scope, aq)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]auditEvent, len(entries))
	for i, e := range entries {
		out[i] = auditEvent{Seq: e.Seq, At: e.At, Principal: e.Principal, Action: e.Action, ResourceID: e.ResourceID,
			Type: e.Type, BeforeETag: e.BeforeETag, AfterETag: e.AfterETag, Detail: e.Detail}
	}
	body := map[string]any{"value": out}
	if len(entries) == aq.Limit {
		// A full page may have more behind it: continue from its last entry.
		cursor, last := "after", entries[len(entries)-1].Seq
		if aq.Newest {
			cursor = "before"
		}
		body["nextLink"] = nextLink(r, cursor, strconv.FormatInt(last, 10))
	}
	s.writeJSON(w, http.StatusOK, body)
}

type auditEvent struct {
	Seq        int64     `json:"seq"`
	At         time.Time `json:"at"`
	Principal  string    `json:"principal"`
	Action     string    `json:"action"`
	ResourceID string    `json:"resourceId"`
	Type       string    `json:"type,omitempty"`
	BeforeETag string    `json:"beforeETag,omitempty"`
	AfterETag  string    `json:"afterETag,omitempty"`
	Detail     string    `json:"detail,omitempty"`
}

// tokens serves "/providers/Gild.Identity/tokens[/{id}]".
func (s *Server) tokens(w http.ResponseWriter, r *http.Request, c controlplane.Caller, p resource.Path) {
	if !p.ID.Scope().IsRoot() || (p.Collection == "" && len(p.ID.Providers) != 1) {
		s.writeError(w, r, resource.Errorf(resource.CodeInvalidResourceID, r.URL.Path, "tokens live at /providers/%s", typeTokens))
		return
	}
	switch {
	case p.Collection != "" && r.Method == http.MethodGet:
		list, err := s.cp.Tokens(r.Context(), c)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, http.StatusOK, map[string]any{"value": list})
	case p.Collection != "" && r.Method == http.MethodPost:
		body, err := s.readBody(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		var req controlplane.TokenRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if len(bytes.TrimSpace(body)) > 0 {
			if err := dec.Decode(&req); err != nil {
				s.writeError(w, r, resource.Errorf(resource.CodeInvalidRequestContent, "", "the token request is invalid: %s (known fields: principalId, description, expiresInDays, role, scope)", strings.TrimPrefix(err.Error(), "json: ")))
				return
			}
		}
		nt, err := s.cp.CreateToken(r.Context(), c, req)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		s.writeJSON(w, http.StatusCreated, nt)
	case p.Collection == "" && r.Method == http.MethodDelete:
		if err := s.cp.RevokeToken(r.Context(), c, p.ID.Name()); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusOK)
	case p.Collection == "" && r.Method == http.MethodGet:
		list, err := s.cp.Tokens(r.Context(), c)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		for _, t := range list {
			if t.ID == p.ID.Name() {
				s.writeJSON(w, http.StatusOK, t)
				return
			}
		}
		s.writeError(w, r, resource.Errorf(resource.CodeNotFound, p.ID.Name(), "token %q was not found", p.ID.Name()))
	default:
		s.writeError(w, r, methodNotAllowed(r, "GET and POST on the collection, GET and DELETE on a token"))
	}
}

// roleDefinitions serves the built-in roles, read-only.
func (s *Server) roleDefinitions(w http.ResponseWriter, r *http.Request, p resource.Path) {
	if r.Method != http.MethodGet {
		s.writeError(w, r, methodNotAllowed(r, "GET (built-in roles cannot be changed)"))
		return
	}
	toResource := func(role *access.Role) map[string]any {
		return map[string]any{"id": role.ID, "name": role.Name, "type": typeRoleDefinitions, "properties": map[string]any{
			"roleName": role.Name, "description": role.Description, "type": "BuiltInRole",
			"permissions": []map[string]any{{"actions": role.Actions, "notActions": role.NotActions}}, "assignableScopes": []string{"/"}}}
	}
	if p.Collection != "" {
		var out []map[string]any
		for _, role := range access.Roles() {
			out = append(out, toResource(role))
		}
		s.writeJSON(w, http.StatusOK, map[string]any{"value": out})
		return
	}
	role, err := access.LookupRole(p.ID.Name())
	if err != nil {
		s.writeError(w, r, resource.Errorf(resource.CodeNotFound, p.ID.String(), "%s", err.(*resource.Error).Message))
		return
	}
	s.writeJSON(w, http.StatusOK, toResource(role))
}

// Version is the api-version gild's own clients send. The API accepts any date-shaped
// version, as the resource shapes are the same in all of them so far.
const Version = "2026-11-01"
