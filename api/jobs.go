package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/gildhq/gild/controlplane"
	"github.com/gildhq/gild/jobs"
	"github.com/gildhq/gild/resource"
)

// Namespaces of the job system's endpoints.
const (
	typeJobs            = "Gild.Jobs/jobs"
	typeWebhooks        = "Gild.Notifications/webhooks"
	typeWebhookDelivery = "Gild.Notifications/webhooks/deliveries"
	actionReadJobs      = "Gild.Jobs/jobs/read"
	actionReadWebhooks  = "Gild.Notifications/webhooks/read"
	actionWriteWebhooks = "Gild.Notifications/webhooks/write"
	actionDelWebhooks   = "Gild.Notifications/webhooks/delete"
)

// jobsRoute serves the job list and webhooks; it returns false for other paths.
func (s *Server) jobsRoute(w http.ResponseWriter, r *http.Request, c controlplane.Caller, p resource.Path) bool {
	if s.jobs == nil {
		return false
	}
	switch {
	case p.ID.IsRoot() && strings.EqualFold(p.Collection, typeJobs):
		s.jobList(w, r, c)
	case p.ID.IsRoot() && strings.EqualFold(p.Collection, typeWebhooks):
		s.webhookList(w, r, c)
	case strings.EqualFold(p.ID.Type(), typeWebhooks) && p.ID.Scope().IsRoot() && p.Collection == "":
		s.webhook(w, r, c, p.ID.Name())
	case strings.EqualFold(p.ID.Type(), typeWebhooks) && p.ID.Scope().IsRoot() && strings.EqualFold(p.Collection, typeWebhookDelivery):
		s.webhookDeliveries(w, r, c, p.ID.Name())
	default:
		return false
	}
	return true
}

// jobList serves "GET /providers/Gild.Jobs/jobs?state=running|failed|...&top=N" to
// readers of the root: jobs carry the IDs of every team's resources.
func (s *Server) jobList(w http.ResponseWriter, r *http.Request, c controlplane.Caller) {
	if r.Method != http.MethodGet {
		s.writeError(w, r, methodNotAllowed(r, "GET"))
		return
	}
	if err := s.cp.Authorize(c, actionReadJobs, resource.Root); err != nil {
		s.writeError(w, r, err)
		return
	}
	var states []string
	if st := r.URL.Query().Get("state"); st != "" {
		states = strings.Split(st, ",")
	}
	top := 100
	if t := r.URL.Query().Get("$top"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 1 {
			s.writeError(w, r, resource.Errorf(resource.CodeInvalidParameter, "$top", "%q is not a positive number", t))
			return
		}
		top = n
	}
	list, err := s.jobs.List(r.Context(), states, top)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"value": list})
}

// webhookList lists the webhooks whose scope the caller may read.
func (s *Server) webhookList(w http.ResponseWriter, r *http.Request, c controlplane.Caller) {
	if r.Method != http.MethodGet {
		s.writeError(w, r, methodNotAllowed(r, "GET (create a webhook with PUT on /providers/"+typeWebhooks+"/NAME)"))
		return
	}
	hooks, err := s.jobs.Webhooks(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := []jobs.Webhook{}
	for _, h := range hooks {
		if s.mayWebhook(c, actionReadWebhooks, h.Scope) == nil {
			out = append(out, h)
		}
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (s *Server) mayWebhook(c controlplane.Caller, action, scope string) error {
	id, err := resource.Parse(scope)
	if err != nil {
		return resource.Errorf(jobs.CodeInvalidWebhook, "scope", "%q is not a scope", scope)
	}
	return s.cp.Authorize(c, action, id)
}

// webhookRequest is the body of a webhook's PUT.
type webhookRequest struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
	Scope  string   `json:"scope"`
}

// webhook serves one webhook: PUT creates it and answers with its secret, once; GET
// shows it without; DELETE removes it.
func (s *Server) webhook(w http.ResponseWriter, r *http.Request, c controlplane.Caller, name string) {
	ctx := r.Context()
	switch r.Method {
	case http.MethodPut:
		body, err := s.readBody(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		var req webhookRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			s.writeError(w, r, resource.Errorf(resource.CodeInvalidRequestContent, "", "the webhook is invalid: %s (known fields: url, events, scope)", strings.TrimPrefix(err.Error(), "json: ")))
			return
		}
		hook := jobs.Webhook{Name: name, URL: req.URL, Events: req.Events, Scope: req.Scope, CreatedBy: c.PrincipalID}
		if err := jobs.CheckWebhook(&hook); err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := s.mayWebhook(c, actionWriteWebhooks, hook.Scope); err != nil {
			s.writeError(w, r, err)
			return
		}
		made, err := s.jobs.CreateWebhook(ctx, hook)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		s.writeJSON(w, http.StatusCreated, made)
	case http.MethodGet, http.MethodDelete:
		hook, err := s.jobs.Webhook(ctx, name)
		if err == nil {
			action := actionReadWebhooks
			if r.Method == http.MethodDelete {
				action = actionDelWebhooks
			}
			err = s.mayWebhook(c, action, hook.Scope)
		}
		if err == nil && r.Method == http.MethodDelete {
			err = s.jobs.DeleteWebhook(ctx, name)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if r.Method == http.MethodDelete {
			w.WriteHeader(http.StatusOK)
			return
		}
		s.writeJSON(w, http.StatusOK, hook)
	default:
		s.writeError(w, r, methodNotAllowed(r, "PUT, GET or DELETE"))
	}
}

// webhookDeliveries serves "GET .../webhooks/NAME/deliveries?$top=N": the delivery log,
// newest first, each delivery with its attempts.
func (s *Server) webhookDeliveries(w http.ResponseWriter, r *http.Request, c controlplane.Caller, name string) {
	if r.Method != http.MethodGet {
		s.writeError(w, r, methodNotAllowed(r, "GET"))
		return
	}
	hook, err := s.jobs.Webhook(r.Context(), name)
	if err == nil {
		err = s.mayWebhook(c, actionReadWebhooks, hook.Scope)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	top := 50
	if t := r.URL.Query().Get("$top"); t != "" {
		if n, err := strconv.Atoi(t); err == nil && n > 0 {
			top = n
		}
	}
	list, err := s.jobs.Deliveries(r.Context(), name, top)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if list == nil {
		list = []jobs.Delivery{}
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"value": list})
}
