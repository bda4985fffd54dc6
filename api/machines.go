package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gildhq/gild/agentproto"
	"github.com/gildhq/gild/controlplane"
	"github.com/gildhq/gild/fleet"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// The actions RBAC checks for machines.
const (
	actionWriteHybrid = "Microsoft.HybridCompute/machines/write"
	actionWriteVM     = "Microsoft.Compute/virtualMachines/write"
)

// agentRoutes serves the agents' protocol (agentproto): enrollment, reports and
// assignments. Agents authenticate with their own credential, never an API token.
func (s *Server) agentRoutes() {
	s.mux.HandleFunc("POST "+agentproto.PathEnroll, s.agentEnroll)
	s.mux.HandleFunc("POST "+agentproto.PathReports, s.agentReport)
	s.mux.HandleFunc("GET "+agentproto.PathAssignments, s.agentAssignments)
}

func (s *Server) decodeAgent(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return resource.Errorf(resource.CodeInvalidRequestContent, "", "the body is not a valid agentproto message: %v", err)
	}
	return nil
}

func (s *Server) agentEnroll(w http.ResponseWriter, r *http.Request) {
	var req agentproto.EnrollRequest
	if err := s.decodeAgent(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	resp, err := s.fleet.Enroll(r.Context(), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, resp)
}

// agentMachine authenticates an agent by its credential.
func (s *Server) agentMachine(r *http.Request) (resource.ID, error) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return resource.ID{}, resource.Errorf(resource.CodeAuthenticationFailed, "Authorization", "an agent sends 'Authorization: Bearer CREDENTIAL'")
	}
	return s.fleet.Authenticate(r.Context(), strings.TrimSpace(tok))
}

func (s *Server) agentReport(w http.ResponseWriter, r *http.Request) {
	id, err := s.agentMachine(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var rep agentproto.Report
	if err := s.decodeAgent(w, r, &rep); err != nil {
		s.writeError(w, r, err)
		return
	}
	resp, err := s.fleet.Report(r.Context(), id, rep)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, resp)
}

func (s *Server) agentAssignments(w http.ResponseWriter, r *http.Request) {
	id, err := s.agentMachine(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.writeError(w, r, resource.Errorf(resource.CodeInvalidParameter, "wait", "wait is a number of seconds, not %q", v))
			return
		}
		wait = time.Duration(n) * time.Second
		// The server's write timeout must not cut a held request short.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(wait + time.Minute))
	}
	etag := strings.Trim(strings.TrimPrefix(strings.TrimSpace(r.Header.Get("If-None-Match")), "W/"), `"`)
	a, changed, err := s.fleet.Assignments(r.Context(), id, etag, wait)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("ETag", `"`+a.ETag+`"`)
	if !changed && etag != "" {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	s.writeJSON(w, http.StatusOK, a)
}

// machineRoute serves what people ask of machines: enrollment tokens, events and agent
// status. It returns false for paths that are not its own.
func (s *Server) machineRoute(w http.ResponseWriter, r *http.Request, c controlplane.Caller, p resource.Path) bool {
	if s.fleet == nil || p.Collection == "" {
		return false
	}
	action := strings.ToLower(p.Collection[strings.LastIndex(p.Collection, "/")+1:])
	switch {
	case p.ID.Kind() == resource.KindResourceGroup && strings.EqualFold(p.Collection, "Microsoft.HybridCompute/enrollmentTokens"):
		s.enrollmentToken(w, r, c, p.ID, actionWriteHybrid)
	case fleet.IsMachineType(p.ID.Type()) && action == "enrollmenttoken":
		verb := actionWriteVM
		if strings.EqualFold(p.ID.Type(), fleet.TypeHybrid) {
			verb = actionWriteHybrid
		}
		s.enrollmentToken(w, r, c, p.ID, verb)
	case fleet.IsMachineType(p.ID.Type()) && action == "events":
		s.machineEvents(w, r, c, p.ID)
	case fleet.IsMachineType(p.ID.Type()) && action == "agentstatus":
		s.agentStatus(w, r, c, p.ID)
	default:
		return false
	}
	return true
}

// admit lets a request on a resource through: the method is the one allowed, the caller
// may read the resource (else it answers 404, as for a resource that is not there) and,
// when action is set, may carry it out. It answers the request itself when not.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, c controlplane.Caller, id resource.ID, method, action string) bool {
	if r.Method != method {
		s.writeError(w, r, methodNotAllowed(r, method))
		return false
	}
	if _, err := s.cp.Get(r.Context(), c, id); err != nil {
		s.writeError(w, r, err)
		return false
	}
	if action != "" {
		if err := s.cp.Authorize(c, action, id); err != nil {
			s.writeError(w, r, err)
			return false
		}
	}
	return true
}

// enrollmentToken makes a one-time token. Body (optional): {"expiresInHours": N}, default 24.
func (s *Server) enrollmentToken(w http.ResponseWriter, r *http.Request, c controlplane.Caller, target resource.ID, verb string) {
	if !s.admit(w, r, c, target, http.MethodPost, verb) {
		return
	}
	body, err := s.readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	req := struct {
		ExpiresInHours float64 `json:"expiresInHours"`
	}{24}
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			s.writeError(w, r, resource.Errorf(resource.CodeInvalidRequestContent, "expiresInHours", "the body must be {\"expiresInHours\": N}: %v", err))
			return
		}
	}
	ttl := time.Duration(req.ExpiresInHours * float64(time.Hour))
	tok, err := s.fleet.CreateEnrollmentToken(r.Context(), target, c.PrincipalID, ttl)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"token": tok, "target": target.String(), "expiresOn": time.Now().Add(ttl).UTC().Format(time.RFC3339)})
}

// machineEvent is an event as the API shows it.
type machineEvent struct {
	Seq        int64     `json:"seq"`
	MachineID  string    `json:"machineId"`
	ID         string    `json:"id"`
	Time       time.Time `json:"time"`
	Kind       string    `json:"kind"`
	Assignment string    `json:"assignment"`
	Check      string    `json:"check"`
	Target     string    `json:"target,omitempty"`
	Before     string    `json:"before,omitempty"`
	After      string    `json:"after,omitempty"`
	Message    string    `json:"message,omitempty"`
}

// machineEvents serves "{machine}/events?top=N&before=SEQ", newest first.
func (s *Server) machineEvents(w http.ResponseWriter, r *http.Request, c controlplane.Caller, id resource.ID) {
	if !s.admit(w, r, c, id, http.MethodGet, "") {
		return
	}
	q := store.MachineEventQuery{Machine: id.String(), Limit: 100}
	for _, p := range []struct {
		name string
		into *int64
	}{{"before", &q.Before}} {
		if v := r.URL.Query().Get(p.name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				s.writeError(w, r, resource.Errorf(resource.CodeInvalidParameter, p.name, "%s must be a non-negative number, not %q", p.name, v))
				return
			}
			*p.into = n
		}
	}
	if v := r.URL.Query().Get("top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			s.writeError(w, r, resource.Errorf(resource.CodeInvalidParameter, "top", "top must be 1 to 1000, not %q", v))
			return
		}
		q.Limit = n
	}
	events, err := s.fleet.Events(r.Context(), q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]machineEvent, len(events))
	for i, e := range events {
		out[i] = machineEvent{Seq: e.Seq, MachineID: e.MachineID, ID: e.EventID, Time: e.At, Kind: e.Kind, Assignment: e.Assignment,
			Check: e.Check, Target: e.Target, Before: e.Before, After: e.After, Message: e.Message}
	}
	body := map[string]any{"value": out}
	if len(events) == q.Limit && len(events) > 0 {
		body["nextLink"] = id.String() + "/events?api-version=" + Version + "&top=" + strconv.Itoa(q.Limit) + "&before=" + strconv.FormatInt(events[len(events)-1].Seq, 10)
	}
	s.writeJSON(w, http.StatusOK, body)
}

// agentStatus serves "{machine}/agentStatus": the agent's last heartbeat, facts and tattoo.
func (s *Server) agentStatus(w http.ResponseWriter, r *http.Request, c controlplane.Caller, id resource.ID) {
	if !s.admit(w, r, c, id, http.MethodGet, "") {
		return
	}
	st, err := s.fleet.Status(id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, st)
}
