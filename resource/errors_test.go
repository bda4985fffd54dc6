package resource_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"testing"

	"github.com/gildhq/gild/resource"
)

// TestErrorIs checks that errors.Is matches a bare &Error{Code: c} by code anywhere in a
// chain, and nothing else.
func TestErrorIs(t *testing.T) {
	notFound := resource.Errorf(resource.CodeNotFound, "/subscriptions/s", "subscription %q is not found", "s")
	wrapped := fmt.Errorf("get: %w", notFound)
	sentinel := &resource.Error{Code: resource.CodeNotFound, Message: "a specific one"}
	tests := []struct {
		name   string
		err    error
		target error
		want   bool
	}{
		{"same code", notFound, &resource.Error{Code: resource.CodeNotFound}, true},
		{"through fmt wrapping", wrapped, &resource.Error{Code: resource.CodeNotFound}, true},
		{"other code", notFound, &resource.Error{Code: resource.CodeConflict}, false},
		// A target with a message or target is a particular error, matched by identity.
		{"target with message", notFound, sentinel, false},
		{"identity", sentinel, sentinel, true},
		{"target with target", notFound, &resource.Error{Code: resource.CodeNotFound, Target: "/subscriptions/s"}, false},
		{"not an Error", notFound, fs.ErrNotExist, false},
		// A nil *Error target must not panic.
		{"nil target", notFound, (*resource.Error)(nil), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errors.Is(tt.err, tt.target); got != tt.want {
				t.Errorf("errors.Is = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestErrorfWrap checks that %w keeps the cause reachable, for one and for several.
func TestErrorfWrap(t *testing.T) {
	_, statErr := os.Stat("/nonexistent/gild-test")
	one := resource.Errorf(resource.CodeInternal, "", "reading: %w", statErr)
	two := resource.Errorf(resource.CodeInternal, "", "reading: %w; then: %w", fs.ErrPermission, statErr)
	plain := resource.Errorf(resource.CodeInternal, "", "reading: %v", statErr)
	tests := []struct {
		name   string
		err    error
		target error
		want   bool
	}{
		{"one %w", one, fs.ErrNotExist, true},
		{"two %w, first", two, fs.ErrPermission, true},
		{"two %w, second", two, fs.ErrNotExist, true},
		{"%v does not wrap", plain, fs.ErrNotExist, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errors.Is(tt.err, tt.target); got != tt.want {
				t.Errorf("errors.Is(%v, %v) = %v, want %v", tt.err, tt.target, got, tt.want)
			}
			if resource.CodeOf(tt.err) != resource.CodeInternal {
				t.Errorf("CodeOf = %q", resource.CodeOf(tt.err))
			}
		})
	}
	var pe *fs.PathError
	if !errors.As(one, &pe) || pe.Path != "/nonexistent/gild-test" {
		t.Errorf("errors.As did not reach the *fs.PathError in %v", one)
	}
	if one.Message != "reading: "+statErr.Error() {
		t.Errorf("Message = %q", one.Message)
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  *resource.Error
		want string
	}{
		{resource.Errorf(resource.CodeInvalidParameter, "name", "too %s", "long"), "InvalidParameter: name: too long"},
		{resource.Errorf(resource.CodeInternal, "", "boom"), "InternalServerError: boom"},
		// A message with a literal percent sign and no arguments is kept as written.
		{resource.Errorf(resource.CodeInternal, "", "100%% sure"), "InternalServerError: 100% sure"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestCodeOf(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errors.New("plain"), ""},
		{resource.Errorf(resource.CodeConflict, "", "x"), resource.CodeConflict},
		{fmt.Errorf("a: %w", fmt.Errorf("b: %w", resource.Errorf(resource.CodeNotFound, "", "x"))), resource.CodeNotFound},
		// The first *Error in the chain wins.
		{resource.Errorf(resource.CodeInternal, "", "outer: %w", resource.Errorf(resource.CodeNotFound, "", "inner")), resource.CodeInternal},
	}
	for _, tt := range tests {
		if got := resource.CodeOf(tt.err); got != tt.want {
			t.Errorf("CodeOf(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// TestJoin checks that Join returns nil, the single error, or one error listing all.
func TestJoin(t *testing.T) {
	a := resource.Errorf(resource.CodeInvalidRequestContent, "tags", "a")
	b := resource.Errorf(resource.CodeInvalidRequestContent, "name", "b")
	if err := resource.Join(resource.CodeInvalidRequestContent, "bad", nil); err != nil {
		t.Errorf("Join(nil) = %v (%T), want a nil error", err, err)
	}
	if err := resource.Join(resource.CodeInvalidRequestContent, "bad", []*resource.Error{a}); err != a {
		t.Errorf("Join(one) = %v, want that one", err)
	}
	err := resource.Join(resource.CodeInvalidRequestContent, "bad", []*resource.Error{a, b})
	var e *resource.Error
	if !errors.As(err, &e) {
		t.Fatalf("Join(two) = %T", err)
	}
	if e.Code != resource.CodeInvalidRequestContent || e.Message != "bad (2 problems; see details)" || len(e.Details) != 2 || e.Details[0] != a || e.Details[1] != b {
		t.Errorf("Join(two) = %+v", e)
	}
	// Its JSON is ARM's error body, details included.
	got, _ := json.Marshal(e)
	want := `{"code":"InvalidRequestContent","message":"bad (2 problems; see details)","details":[{"code":"InvalidRequestContent","message":"a","target":"tags"},{"code":"InvalidRequestContent","message":"b","target":"name"}]}`
	if string(got) != want {
		t.Errorf("JSON = %s\nwant   %s", got, want)
	}
}
