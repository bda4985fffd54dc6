package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/gildhq/gild/compliance"
	"github.com/gildhq/gild/gallery"
	"github.com/gildhq/gild/jobs"
	"github.com/gildhq/gild/pipeline"
	"github.com/gildhq/gild/resource"
)

// statusOf is the one place where error codes become HTTP statuses.
var statusOf = map[string]int{
	resource.CodeInvalidResourceID:      http.StatusBadRequest,
	resource.CodeInvalidResourceType:    http.StatusBadRequest,
	resource.CodeInvalidRequestContent:  http.StatusBadRequest,
	resource.CodeInvalidParameter:       http.StatusBadRequest,
	resource.CodeMissingAPIVersion:      http.StatusBadRequest,
	codeInvalidAPIVersion:               http.StatusBadRequest,
	resource.CodeAuthenticationFailed:   http.StatusUnauthorized,
	resource.CodeAuthorizationFailed:    http.StatusForbidden,
	resource.CodeNotFound:               http.StatusNotFound,
	resource.CodeParentNotFound:         http.StatusNotFound,
	resource.CodeMethodNotAllowed:       http.StatusMethodNotAllowed,
	resource.CodePreconditionFailed:     http.StatusConflict,
	resource.CodeConflict:               http.StatusConflict,
	resource.CodeResourceHasDescendants: http.StatusConflict,
	resource.CodeRequestTooLarge:        http.StatusRequestEntityTooLarge,
	resource.CodeUnsupportedMediaType:   http.StatusUnsupportedMediaType,
	resource.CodeStoreUnavailable:       http.StatusServiceUnavailable,
	resource.CodeInternal:               http.StatusInternalServerError,
	compliance.CodeDisallowedByPolicy:   http.StatusForbidden,
	compliance.CodeInvalidPolicy:        http.StatusBadRequest,
	compliance.CodeInvalidAssignment:    http.StatusBadRequest,
	compliance.CodePolicyNotFound:       http.StatusNotFound,
	gallery.CodeArtifactNotFound:        http.StatusBadRequest,
	gallery.CodeChecksumMismatch:        http.StatusBadRequest,
	gallery.CodeVersionNotFound:         http.StatusNotFound,
	gallery.CodeVersionEndOfLife:        http.StatusConflict,
	gallery.CodeVersionInUse:            http.StatusConflict,
	gallery.CodeRegionNotFound:          http.StatusBadRequest,
	gallery.CodeIdentifierConflict:      http.StatusConflict,
	gallery.CodeImmutableProperty:       http.StatusConflict,
	gallery.CodeShareLinkInvalid:        http.StatusForbidden,
	pipeline.CodeRunInProgress:          http.StatusConflict,
	pipeline.CodeRunNotFound:            http.StatusNotFound,
	pipeline.CodeRunFinished:            http.StatusConflict,
	jobs.CodeWebhookNotFound:            http.StatusNotFound,
	jobs.CodeWebhookExists:              http.StatusConflict,
	jobs.CodeInvalidWebhook:             http.StatusBadRequest,
	jobs.CodeBadState:                   http.StatusBadRequest,
}

const codeInvalidAPIVersion = "InvalidApiVersionParameter"

type errorBody struct {
	Error *resource.Error `json:"error"`
}

// writeError answers with err in ARM's error shape. Errors without a code are internal:
// they are logged in full and the client gets a generic message, since they may carry
// details of the store or the machine.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var re *resource.Error
	if !errors.As(err, &re) {
		status := http.StatusInternalServerError
		code, msg := resource.CodeInternal, "the server failed to handle the request; the error is in its log"
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			status, code, msg = http.StatusServiceUnavailable, resource.CodeStoreUnavailable, "the request was cancelled or timed out"
		}
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		re = &resource.Error{Code: code, Message: msg}
		w.Header().Set("X-Ms-Error-Code", code)
		s.writeJSON(w, status, errorBody{re})
		return
	}
	status, ok := statusOf[re.Code]
	if !ok {
		status = http.StatusBadRequest
	}
	// As in ARM, the code is in a header too: a HEAD's answer has no body to carry it.
	w.Header().Set("X-Ms-Error-Code", re.Code)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="gild"`)
	}
	if status >= 500 {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		s.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "code", re.Code, "msg", re.Message)
	}
	s.writeJSON(w, status, errorBody{re})
}
