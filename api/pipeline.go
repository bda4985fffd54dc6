package api

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gildhq/gild/controlplane"
	"github.com/gildhq/gild/pipeline"
	"github.com/gildhq/gild/resource"
)

const (
	actionRunTemplate    = "Microsoft.VirtualMachineImages/imageTemplates/run/action"
	actionCancelTemplate = "Microsoft.VirtualMachineImages/imageTemplates/cancel/action"
)

// pipelineRoute serves the image builder's actions: run and cancel a template, cancel a
// run, and read a run's logs.
func (s *Server) pipelineRoute(w http.ResponseWriter, r *http.Request, c controlplane.Caller, p resource.Path) bool {
	if s.pipeline == nil || p.Collection == "" {
		return false
	}
	action := strings.ToLower(p.Collection[strings.LastIndex(p.Collection, "/")+1:])
	typ := p.ID.Type()
	switch {
	case strings.EqualFold(typ, pipeline.TypeTemplate) && action == "run":
		s.startRun(w, r, c, p.ID)
	case (strings.EqualFold(typ, pipeline.TypeTemplate) || strings.EqualFold(typ, pipeline.TypeRun)) && action == "cancel":
		s.cancelRun(w, r, c, p.ID)
	case strings.EqualFold(typ, pipeline.TypeRun) && action == "log":
		s.runLog(w, r, c, p.ID)
	default:
		return false
	}
	return true
}

func (s *Server) startRun(w http.ResponseWriter, r *http.Request, c controlplane.Caller, tmpl resource.ID) {
	if r.Method != http.MethodPost {
		s.writeError(w, r, methodNotAllowed(r, "POST"))
		return
	}
	if _, err := s.cp.Get(r.Context(), c, tmpl); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.cp.Authorize(c, actionRunTemplate, tmpl); err != nil {
		s.writeError(w, r, err)
		return
	}
	run, err := s.pipeline.Start(r.Context(), tmpl)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// As Azure answers a long-running action: 202, and where to follow it.
	w.Header().Set("Location", run.ID+"?api-version="+Version)
	s.writeResource(w, http.StatusAccepted, run)
}

func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request, c controlplane.Caller, id resource.ID) {
	if r.Method != http.MethodPost {
		s.writeError(w, r, methodNotAllowed(r, "POST"))
		return
	}
	tmpl := id
	if strings.EqualFold(id.Type(), pipeline.TypeRun) {
		tmpl = id.Parent()
	}
	if _, err := s.cp.Get(r.Context(), c, id); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.cp.Authorize(c, actionCancelTemplate, tmpl); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.pipeline.Cancel(r.Context(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// logFiles are the files of a run that may be read through the API.
var logFiles = []string{"run.log", "console.log", "results.json", "junit.xml"}

// runLog serves a run's log (or, with ?name=, its console log, results or JUnit report);
// with ?follow=true it keeps the answer open and sends lines as they come, until the run
// ends.
func (s *Server) runLog(w http.ResponseWriter, r *http.Request, c controlplane.Caller, run resource.ID) {
	if r.Method != http.MethodGet {
		s.writeError(w, r, methodNotAllowed(r, "GET"))
		return
	}
	if _, err := s.cp.Get(r.Context(), c, run); err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	name := q.Get("name")
	if name == "" {
		name = "run.log"
	}
	if !slices.Contains(logFiles, name) {
		s.writeError(w, r, resource.Errorf(resource.CodeInvalidParameter, "name", "%q is not one of a run's files: %s", name, strings.Join(logFiles, ", ")))
		return
	}
	f, err := os.Open(filepath.Join(s.pipeline.RunDir(run), name))
	if err != nil {
		s.writeError(w, r, resource.Errorf(resource.CodeNotFound, "name", "the run has no %s (yet)", name))
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if name == "results.json" {
		w.Header().Set("Content-Type", "application/json")
	} else if name == "junit.xml" {
		w.Header().Set("Content-Type", "application/xml")
	}
	follow := q.Get("follow") == "true"
	if !follow {
		_, _ = io.Copy(w, f)
		return
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	rc := http.NewResponseController(w)
	// Answer at once, so a client following an empty log sees the run has started.
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	rd := bufio.NewReader(f)
	// A run is going while it builds here or, queued or built by a job, until its end is
	// recorded.
	going := func() bool {
		if s.pipeline.Running(run) {
			return true
		}
		res, err := s.cp.Store().Get(r.Context(), run)
		if err != nil {
			return false
		}
		var p pipeline.RunProperties
		return json.Unmarshal(res.Properties, &p) == nil && p.EndTime == nil
	}
	for {
		line, err := rd.ReadString('\n')
		if line != "" && (err == nil || !going()) {
			if _, werr := io.WriteString(w, line); werr != nil {
				return
			}
			_ = rc.Flush()
			continue
		}
		if line != "" { // a half-written line: wait for the rest
			_, _ = f.Seek(-int64(len(line)), io.SeekCurrent)
			rd.Reset(f)
		}
		if !going() {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}
