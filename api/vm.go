package api

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gildhq/gild/controlplane"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/vm"
)

// refreshCollection is the scope action that replaces due cattle.
const refreshCollection = "Gild.Compute/refresh"

// vmRoute serves VM actions and the refresh of a scope. It returns false for paths that
// are not its own.
func (s *Server) vmRoute(w http.ResponseWriter, r *http.Request, c controlplane.Caller, p resource.Path) bool {
	switch {
	case s.refresher != nil && p.ID.IsScope() && strings.EqualFold(p.Collection, refreshCollection):
		s.refresh(w, r, c, p.ID)
	case s.vms != nil && p.Collection != "" && strings.EqualFold(p.ID.Type(), vm.TypeVM):
		action := strings.ToLower(p.Collection[strings.LastIndex(p.Collection, "/")+1:])
		switch action {
		case "start", "poweroff", "restart":
			s.vmPower(w, r, c, p.ID, action)
		case "instanceview":
			s.vmInstanceView(w, r, c, p.ID)
		case "console":
			s.vmConsole(w, r, c, p.ID)
		default:
			return false
		}
	default:
		return false
	}
	return true
}

// The RBAC actions of VM power operations, as Azure names them.
var vmPowerActions = map[string]string{
	"start":    "Microsoft.Compute/virtualMachines/start/action",
	"poweroff": "Microsoft.Compute/virtualMachines/powerOff/action",
	"restart":  "Microsoft.Compute/virtualMachines/restart/action",
}

// vmPower serves "POST {vm}/start|powerOff|restart". It answers when the operation is
// done, with the VM's instance view.
func (s *Server) vmPower(w http.ResponseWriter, r *http.Request, c controlplane.Caller, id resource.ID, action string) {
	if !s.admit(w, r, c, id, http.MethodPost, vmPowerActions[action]) {
		return
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(10 * time.Minute))
	var err error
	switch action {
	case "start":
		err = s.vms.Start(r.Context(), id)
	case "poweroff":
		err = s.vms.Stop(r.Context(), id)
	case "restart":
		err = s.vms.Restart(r.Context(), id)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.vmInstanceView(w, r, c, id)
}

// vmInstanceView serves "GET {vm}/instanceView".
func (s *Server) vmInstanceView(w http.ResponseWriter, r *http.Request, c controlplane.Caller, id resource.ID) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		s.writeError(w, r, methodNotAllowed(r, "GET"))
		return
	}
	if _, err := s.cp.Get(r.Context(), c, id); err != nil {
		s.writeError(w, r, err)
		return
	}
	iv, err := s.vms.InstanceView(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, iv)
}

// vmConsole serves "GET {vm}/console?tail=N&follow=true": the serial console's log as
// text, the last N lines (all when 0), and with follow what the guest writes next, until
// the client goes.
func (s *Server) vmConsole(w http.ResponseWriter, r *http.Request, c controlplane.Caller, id resource.ID) {
	// Reading the console shows what the guest prints, passwords typed at it included:
	// as Azure's serial console, it needs more than read access.
	if !s.admit(w, r, c, id, http.MethodGet, "Microsoft.Compute/virtualMachines/write") {
		return
	}
	tail := 0
	if v := r.URL.Query().Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.writeError(w, r, resource.Errorf(resource.CodeInvalidParameter, "tail", "tail must be a number of lines, not %q", v))
			return
		}
		tail = n
	}
	follow := r.URL.Query().Get("follow") == "true"
	f, err := os.Open(s.vms.ConsolePath(id))
	if err != nil {
		if os.IsNotExist(err) {
			s.writeError(w, r, resource.Errorf(resource.CodeNotFound, id.String(), "%s has no console output yet (it has not been started on this server)", id.Name()))
			return
		}
		s.writeError(w, r, err)
		return
	}
	defer f.Close()
	if tail > 0 {
		if err := seekToTail(f, tail); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rc := http.NewResponseController(w)
	if follow {
		_ = rc.SetWriteDeadline(time.Time{})
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			continue
		}
		if err != nil && err != io.EOF {
			return
		}
		if !follow {
			return
		}
		_ = rc.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// seekToTail positions f at the start of its last n lines.
func seekToTail(f *os.File, n int) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	const chunk = 64 << 10
	lines := 0
	buf := make([]byte, chunk)
	for end := size; end > 0; {
		start := max(end-chunk, 0)
		part := buf[:end-start]
		if _, err := f.ReadAt(part, start); err != nil && err != io.EOF {
			return err
		}
		for i := len(part) - 1; i >= 0; i-- {
			if part[i] == '\n' && start+int64(i) != size-1 {
				lines++
				if lines == n {
					_, err := f.Seek(start+int64(i)+1, io.SeekStart)
					return err
				}
			}
		}
		end = start
	}
	_, err = f.Seek(0, io.SeekStart)
	return err
}

// refresh serves "POST {scope}/providers/Gild.Compute/refresh" with an optional body
// {"cycleDays", "maxUnavailable", "dryRun"}. It answers when the refresh is done (or, for
// a dry run, at once) with what was due, replaced, reported and failed.
func (s *Server) refresh(w http.ResponseWriter, r *http.Request, c controlplane.Caller, scope resource.ID) {
	if r.Method != http.MethodPost {
		s.writeError(w, r, methodNotAllowed(r, "POST"))
		return
	}
	if !scope.IsRoot() {
		if _, err := s.cp.Get(r.Context(), c, scope); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	body, err := s.readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var opts vm.RefreshOptions
	if len(strings.TrimSpace(string(body))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&opts); err != nil {
			s.writeError(w, r, resource.Errorf(resource.CodeInvalidRequestContent, "", "the body must be {\"cycleDays\", \"maxUnavailable\", \"dryRun\"}: %v", err))
			return
		}
	}
	if !opts.DryRun {
		if err := s.cp.Authorize(c, actionWriteVM, scope); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	// Replacing VMs one after another takes minutes: the server's write timeout must not
	// cut the answer off.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	rep, err := s.refresher.Refresh(r.Context(), scope, opts)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if opts.DryRun {
		// A dry run needs only read access: it reports only what the caller may read.
		rep.Due = s.readable(r, c, rep.Due)
		rep.Pets = s.readable(r, c, rep.Pets)
	}
	s.writeJSON(w, http.StatusOK, rep)
}

// readable keeps the items whose VM the caller may read.
func (s *Server) readable(r *http.Request, c controlplane.Caller, items []vm.RefreshItem) []vm.RefreshItem {
	out := items[:0]
	for _, it := range items {
		id, err := resource.Parse(it.ID)
		if err != nil {
			continue
		}
		if _, err := s.cp.Get(r.Context(), c, id); err == nil {
			out = append(out, it)
		}
	}
	return out
}
