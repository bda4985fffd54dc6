package resource

import (
	"errors"
	"fmt"
)

// Stable error codes. They are ARM's codes where ARM has one, so that clients written for
// Azure recognise them; the API maps each to an HTTP status in one place.
const (
	CodeInvalidResourceID      = "InvalidResourceId"
	CodeInvalidResourceType    = "InvalidResourceType"
	CodeInvalidRequestContent  = "InvalidRequestContent"
	CodeInvalidParameter       = "InvalidParameter"
	CodeMissingAPIVersion      = "MissingApiVersionParameter"
	CodeNotFound               = "ResourceNotFound"
	CodeParentNotFound         = "ParentResourceNotFound"
	CodePreconditionFailed     = "PreconditionFailed"
	CodeConflict               = "Conflict"
	CodeRequestTooLarge        = "RequestEntityTooLarge"
	CodeAuthenticationFailed   = "AuthenticationFailed"
	CodeAuthorizationFailed    = "AuthorizationFailed"
	CodeMethodNotAllowed       = "MethodNotAllowed"
	CodeUnsupportedMediaType   = "UnsupportedMediaType"
	CodeInternal               = "InternalServerError"
	CodeStoreUnavailable       = "ServiceUnavailable"
	CodeResourceHasDescendants = "ResourceHasDescendants"
)

// Error is an error with a stable code, the field or ID it concerns, and a message for people.
// Its JSON form is ARM's error body.
type Error struct {
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Target  string   `json:"target,omitempty"`
	Details []*Error `json:"details,omitempty"`
	cause   error
}

// Errorf returns an Error with code, target and a formatted message. A %w verb in format
// keeps the wrapped error reachable through errors.Is and errors.As.
func Errorf(code, target, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	cause := errors.Unwrap(err)
	if _, multi := err.(interface{ Unwrap() []error }); multi {
		// Several %w verbs: errors.Unwrap gives nil, so keep the whole error, through
		// which errors.Is and errors.As reach every wrapped one.
		cause = err
	}
	return &Error{Code: code, Target: target, Message: err.Error(), cause: cause}
}

func (e *Error) Error() string {
	s := e.Code + ": " + e.Message
	if e.Target != "" {
		s = e.Code + ": " + e.Target + ": " + e.Message
	}
	// Details carry the individual problems of a joined error; a log line should show them.
	for _, d := range e.Details {
		s += "; " + d.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.cause }

// Is makes errors.Is(err, &Error{Code: c}) match any Error with code c.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t != nil && t.Code == e.Code && t.Message == "" && t.Target == ""
}

// CodeOf returns the code of the first *Error in err's chain, or "" when there is none.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Join folds several field errors into one that lists them all, so a client fixes every
// problem in one round; a single error is returned as it is.
func Join(code, message string, errs []*Error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return &Error{Code: code, Message: fmt.Sprintf("%s (%d problems; see details)", message, len(errs)), Details: errs}
}
