package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gildhq/gild/api"
	"github.com/gildhq/gild/server"
)

// env is a real gild server (server.Run, SQLite in a temporary directory, VMs as records)
// with its dashboard, as `gild serve` runs it.
type env struct {
	t       testing.TB
	url     string
	dataDir string
	admin   string
}

func newEnv(t testing.TB, configure ...func(*server.Config)) *env {
	t.Helper()
	dataDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	cfg := server.Config{DataDir: dataDir, Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler),
		Ready: func(addr string) { ready <- addr }, NoVMs: true}
	for _, c := range configure {
		c(&cfg)
	}
	go func() { done <- server.Run(ctx, cfg) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("server stopped before it was ready: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("server was not ready after 60s")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server.Run: %v", err)
		}
	})
	tok, err := os.ReadFile(filepath.Join(dataDir, server.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, url: "http://" + addr, dataDir: dataDir, admin: strings.TrimSpace(string(tok))}
}

// call sends an API request with token and decodes the JSON answer; it fails the test on
// a status of 300 or more unless the caller asks for the status with want.
func (e *env) call(token, method, path string, body any, want ...int) map[string]any {
	e.t.Helper()
	var raw []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		raw = b
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	status, answer := e.raw(token, method, path+sep+"api-version="+api.Version, "application/json", raw)
	ok := status < 300
	if len(want) > 0 {
		ok = false
		for _, w := range want {
			ok = ok || status == w
		}
	}
	if !ok {
		e.t.Fatalf("%s %s: %d %s", method, path, status, answer)
	}
	out := map[string]any{}
	_ = json.Unmarshal(answer, &out)
	return out
}

// raw sends a request with a raw body (and a bearer token unless token is empty) to path
// as given, and returns the status and the answer.
func (e *env) raw(token, method, path, contentType string, body []byte) (int, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, answer
}

// put creates or replaces a resource as token.
func (e *env) put(token, id string, body map[string]any) map[string]any {
	e.t.Helper()
	return e.call(token, "PUT", id, body)
}

// token makes a token for a new principal with role at scope and returns its secret.
func (e *env) token(role, scope string) string {
	e.t.Helper()
	out := e.call(e.admin, "POST", "/providers/Gild.Identity/tokens", map[string]any{"role": role, "scope": scope, "description": role + " at " + scope})
	s, _ := out["token"].(string)
	if s == "" {
		e.t.Fatalf("no token in %v", out)
	}
	return s
}

// browser is a signed-in dashboard session: a client with a cookie jar.
type browser struct {
	e      *env
	client *http.Client
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs in to the dashboard with token through the sign-in form.
func (e *env) signIn(token string) *browser {
	e.t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &browser{e: e, client: &http.Client{Jar: jar}}
	status, body := b.get("/ui/sign-in")
	if status != http.StatusOK {
		e.t.Fatalf("sign-in page: %d", status)
	}
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		e.t.Fatalf("no anti-forgery field on the sign-in page:\n%s", body)
	}
	resp, err := b.client.PostForm(e.url+"/ui/sign-in", url.Values{"csrf": {m[1]}, "token": {token}, "next": {"/ui/"}})
	if err != nil {
		e.t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/ui/" {
		e.t.Fatalf("sign-in ended at %s with %d:\n%s", resp.Request.URL, resp.StatusCode, page)
	}
	return b
}

// get fetches a dashboard path and returns the status and body.
func (b *browser) get(path string) (int, string) {
	b.e.t.Helper()
	resp, err := b.client.Get(b.e.url + path)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// mustGet fetches a page that must answer 200.
func (b *browser) mustGet(path string) string {
	b.e.t.Helper()
	status, body := b.get(path)
	if status != http.StatusOK {
		b.e.t.Fatalf("GET %s: %d\n%s", path, status, body)
	}
	return body
}
