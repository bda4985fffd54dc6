package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gildhq/gild/agentproto"
)

// Response size limits: the server's answers are small, but an agent must not buffer
// whatever a broken or hostile endpoint sends. Assignments carry check sets, so they get more.
const (
	maxResponseBytes    = 1 << 20
	maxAssignmentsBytes = 8 << 20
	requestTimeout      = 30 * time.Second
)

// ServerError is an answer of the server that is not a success, with gild's API error
// when the body carries one.
type ServerError struct {
	Op         string // "enroll", "report", "get assignments"
	StatusCode int
	Code       string
	Message    string
}

func (e *ServerError) Error() string {
	s := fmt.Sprintf("%s: the server answered %d %s", e.Op, e.StatusCode, http.StatusText(e.StatusCode))
	switch {
	case e.Code != "" && e.Message != "":
		s += ": " + e.Code + ": " + e.Message
	case e.Message != "":
		s += ": " + e.Message
	}
	return s
}

// retryable reports whether the same request may succeed later: the server is busy or
// broken, not refusing it.
func (e *ServerError) retryable() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// isRefusal reports whether err is the server refusing a request for good: a 4xx other
// than 429.
func isRefusal(err error) bool {
	var se *ServerError
	return errors.As(err, &se) && !se.retryable() && se.StatusCode >= 400 && se.StatusCode < 500
}

// isBadReport reports whether err is the server refusing a request's body itself: 400
// (invalid), 413 (too large) or 422.
func isBadReport(err error) bool {
	var se *ServerError
	return errors.As(err, &se) && (se.StatusCode == http.StatusBadRequest || se.StatusCode == http.StatusRequestEntityTooLarge || se.StatusCode == http.StatusUnprocessableEntity)
}

// isUnauthorized reports whether err is a 401: the credential is unknown or revoked.
func isUnauthorized(err error) bool {
	var se *ServerError
	return errors.As(err, &se) && se.StatusCode == http.StatusUnauthorized
}

// client talks to one gild server as one machine.
type client struct {
	http       *http.Client
	server     string // without a trailing slash
	credential string // empty for enrollment
}

// checkServerURL validates a server URL as enrollment takes it.
func checkServerURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("server URL %q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("server URL %q: want http://HOST[:PORT] or https://HOST[:PORT]", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("server URL %q: has a query or fragment", raw)
	}
	return nil
}

// do sends a JSON request and decodes a JSON answer into out; a non-2xx answer (other than
// the statuses in accept) is a *ServerError. It returns the status.
func (c *client) do(ctx context.Context, op, method, path string, header http.Header, in, out any, limit int64, accept ...int) (int, http.Header, error) {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return 0, nil, fmt.Errorf("%s: %w", op, err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.server, "/")+path, body)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", op, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", strings.ReplaceAll(agentVersion(), " ", "/"))
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.credential != "" {
		req.Header.Set("Authorization", "Bearer "+c.credential)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return resp.StatusCode, resp.Header, fmt.Errorf("%s: read the answer: %w", op, err)
	}
	if int64(len(data)) > limit {
		return resp.StatusCode, resp.Header, fmt.Errorf("%s: the answer is larger than %d bytes", op, limit)
	}
	for _, s := range accept {
		if resp.StatusCode == s {
			return resp.StatusCode, resp.Header, nil
		}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		se := &ServerError{Op: op, StatusCode: resp.StatusCode}
		var apiErr struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(data, &apiErr) == nil && (apiErr.Error.Code != "" || apiErr.Error.Message != "") {
			se.Code, se.Message = apiErr.Error.Code, apiErr.Error.Message
		} else if text := strings.TrimSpace(string(data)); text != "" {
			se.Message = truncateText(text, 300)
		}
		return resp.StatusCode, resp.Header, se
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, resp.Header, fmt.Errorf("%s: the answer is not the expected JSON: %w", op, err)
		}
	}
	return resp.StatusCode, resp.Header, nil
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// enroll trades an enrollment token for the machine's identity and credential.
func (c *client) enroll(ctx context.Context, req agentproto.EnrollRequest) (agentproto.EnrollResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req.Version = agentproto.Version
	var resp agentproto.EnrollResponse
	if _, _, err := c.do(ctx, "enroll", http.MethodPost, agentproto.PathEnroll, nil, req, &resp, maxResponseBytes); err != nil {
		return resp, err
	}
	var missing []string
	if resp.MachineID == "" {
		missing = append(missing, "machineId")
	}
	if resp.Credential == "" {
		missing = append(missing, "credential")
	}
	if len(missing) > 0 {
		return resp, fmt.Errorf("enroll: the server's answer has no %s", strings.Join(missing, " and no "))
	}
	return resp, nil
}

// report sends one report.
func (c *client) report(ctx context.Context, r agentproto.Report) (agentproto.ReportResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var resp agentproto.ReportResponse
	_, _, err := c.do(ctx, "report", http.MethodPost, agentproto.PathReports, nil, r, &resp, maxResponseBytes)
	return resp, err
}

// assignments gets the machine's assignments. With etag, the server may answer 304 (not
// modified: changed is false); with wait, it holds the request up to wait until they change.
func (c *client) assignments(ctx context.Context, etag string, wait time.Duration) (a agentproto.Assignments, changed bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, wait+requestTimeout)
	defer cancel()
	path := agentproto.PathAssignments
	if secs := int(wait / time.Second); secs > 0 {
		path += "?wait=" + strconv.Itoa(secs)
	}
	header := http.Header{}
	if etag != "" {
		// An HTTP entity tag is quoted; the body's ETag is the bare value, as gild's API has it.
		header.Set("If-None-Match", `"`+etag+`"`)
	}
	var raw json.RawMessage
	status, respHeader, err := c.do(ctx, "get assignments", http.MethodGet, path, header, nil, &raw, maxAssignmentsBytes, http.StatusNotModified)
	if err != nil {
		return a, false, err
	}
	if status == http.StatusNotModified {
		return a, false, nil
	}
	if a, err = decodeAssignments(raw); err != nil {
		return a, false, fmt.Errorf("get assignments: %w", err)
	}
	if a.ETag == "" {
		a.ETag = strings.Trim(strings.TrimPrefix(respHeader.Get("ETag"), "W/"), `"`)
	}
	return a, a.ETag != etag || etag == "", nil
}
