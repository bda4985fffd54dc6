package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gildhq/gild/api"
)

// clientTimeout bounds one HTTP exchange: long enough for a large list on a busy server,
// short enough that a hung server does not hang a script.
const clientTimeout = 60 * time.Second

// maxResponse caps what the client reads of one response, so that a wrong URL pointing at
// something that streams forever cannot exhaust memory.
const maxResponse = 64 << 20

// Client talks to a gild server's API with a bearer token.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// NewClient returns a client for the server at serverURL ("http://127.0.0.1:8080").
func NewClient(serverURL, token string) (*Client, error) {
	u, err := parseServerURL(serverURL)
	if err != nil {
		return nil, err
	}
	return &Client{base: u, token: token, http: &http.Client{Timeout: clientTimeout}}, nil
}

func parseServerURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("server URL %q: %w", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q must look like http://HOST:PORT", s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("server URL %q must not have a query or fragment", s)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// APIError is an error answered by the server in ARM's shape.
type APIError struct {
	// Status is the HTTP status; zero for the nested details.
	Status  int         `json:"-"`
	Code    string      `json:"code"`
	Message string      `json:"message"`
	Target  string      `json:"target,omitempty"`
	Details []*APIError `json:"details,omitempty"`
}

func (e *APIError) Error() string { return e.summary() }

// summary is "Code: message (target: target)".
func (e *APIError) summary() string {
	s := e.Code + ": " + e.Message
	if e.Target != "" {
		s += " (target: " + e.Target + ")"
	}
	return s
}

// response is a successful answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// request is one call to the API.
type request struct {
	Method string
	// Path is the URL path, such as a resource ID; its query may be given in Query.
	Path   string
	Query  url.Values
	Body   []byte
	Header http.Header
}

// do sends req with the token and api-version and returns the answer, or an *APIError
// when the server refused it.
func (c *Client) do(ctx context.Context, req request) (*response, error) {
	u := *c.base
	u.Path = c.base.Path + req.Path
	q := url.Values{}
	for k, v := range req.Query {
		q[k] = v
	}
	q.Set("api-version", api.Version)
	u.RawQuery = q.Encode()

	var body io.Reader
	if req.Body != nil {
		body = bytes.NewReader(req.Body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.Path, err)
	}
	for k, v := range req.Header {
		hr.Header[k] = v
	}
	hr.Header.Set("Authorization", "Bearer "+c.token)
	hr.Header.Set("Accept", "application/json")
	hr.Header.Set("User-Agent", "gild-cli/"+api.Version)
	if req.Body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(hr)
	if err != nil {
		// A *url.Error repeats the method and the whole URL; the server is what a person
		// needs to see.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s %s: cannot reach gild at %s: %w", req.Method, req.Path, c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read response: %w", req.Method, req.Path, err)
	}
	if resp.StatusCode >= 400 {
		return nil, decodeError(resp.StatusCode, data)
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: data}, nil
}

// decodeError reads an ARM error body; anything else (a proxy's HTML page, say) becomes an
// APIError named after the status, with the start of the body as its message.
func decodeError(status int, body []byte) error {
	var eb struct {
		Error *APIError `json:"error"`
	}
	if err := json.Unmarshal(body, &eb); err == nil && eb.Error != nil && eb.Error.Code != "" {
		eb.Error.Status = status
		return eb.Error
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	if msg == "" {
		msg = "the server answered " + http.StatusText(status) + " with no body"
	}
	code := strings.ReplaceAll(http.StatusText(status), " ", "")
	if code == "" {
		code = fmt.Sprintf("HTTP%d", status)
	}
	return &APIError{Status: status, Code: code, Message: msg}
}

// getJSON GETs path and decodes the answer into v.
func (c *Client) getJSON(ctx context.Context, path string, query url.Values, v any) ([]byte, error) {
	resp, err := c.do(ctx, request{Method: http.MethodGet, Path: path, Query: query})
	if err != nil {
		return nil, err
	}
	if v != nil {
		if err := json.Unmarshal(resp.Body, v); err != nil {
			return nil, fmt.Errorf("GET %s: decode response: %w", path, err)
		}
	}
	return resp.Body, nil
}

// listPage is one page of a list.
type listPage struct {
	Value    []json.RawMessage `json:"value"`
	NextLink string            `json:"nextLink,omitempty"`
}

// list GETs a collection. With all set it follows nextLink to the end; otherwise it returns
// the first page, whose NextLink says whether there is more.
func (c *Client) list(ctx context.Context, path string, query url.Values, all bool) (listPage, error) {
	var out listPage
	out.Value = []json.RawMessage{}
	for pages := 0; ; pages++ {
		var p listPage
		if _, err := c.getJSON(ctx, path, query, &p); err != nil {
			return listPage{}, err
		}
		out.Value = append(out.Value, p.Value...)
		out.NextLink = p.NextLink
		if !all || p.NextLink == "" {
			return out, nil
		}
		if pages > 100000 {
			return listPage{}, fmt.Errorf("list %s: the server keeps answering with a nextLink; stopped after %d pages", path, pages)
		}
		// Follow only the link's path and query, on the server this client was given: the
		// token must not go to whatever host a nextLink names.
		next, err := url.Parse(p.NextLink)
		if err != nil {
			return listPage{}, fmt.Errorf("list %s: nextLink %q: %w", path, p.NextLink, err)
		}
		path = strings.TrimPrefix(next.Path, c.base.Path)
		query = next.Query()
		query.Del("api-version")
	}
}

// skipToken is the $skipToken of a nextLink, for a person to continue from.
func skipToken(nextLink string) string {
	u, err := url.Parse(nextLink)
	if err != nil {
		return ""
	}
	return u.Query().Get("$skipToken")
}
