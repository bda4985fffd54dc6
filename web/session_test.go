package web_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
)

func TestSignInAndSessions(t *testing.T) {
	e := newEnv(t)
	// Without a session every page sends the browser to sign in, and back afterwards.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(e.url + "/ui/policies?x=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/sign-in?next=%2Fui%2Fpolicies%3Fx%3D1" {
		t.Fatalf("anonymous page: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// A browser opening the server's address lands on the dashboard; the API still answers.
	req, _ := http.NewRequest("GET", e.url+"/", nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	if resp, err = noRedirect.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("GET / from a browser: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// Scripts read pages and exports with a bearer token, without a session.
	req, _ = http.NewRequest("GET", e.url+"/ui/?export=teams&format=csv", nil)
	req.Header.Set("Authorization", "Bearer "+e.admin)
	if resp, err = noRedirect.Do(req); err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(raw), "Subscription,Compliance") || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Errorf("export with a bearer token: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	req.Header.Set("Authorization", "Bearer gild_wrong")
	if resp, err = noRedirect.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a wrong bearer token: %d", resp.StatusCode)
	}

	// A form posted without the sign-in page's anti-forgery value is refused.
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err = c.PostForm(e.url+"/ui/sign-in", url.Values{"token": {e.admin}, "csrf": {"forged"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || strings.Contains(resp.Header.Get("Set-Cookie"), "gild_session=") {
		t.Errorf("forged sign-in: %d, cookies %q", resp.StatusCode, resp.Header.Values("Set-Cookie"))
	}

	// A wrong token is refused with the field named.
	resp, _ = c.Get(e.url + "/ui/sign-in")
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfField.FindStringSubmatch(string(body))
	resp, err = c.PostForm(e.url+"/ui/sign-in", url.Values{"token": {"gild_nope"}, "csrf": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "Token: that token is not valid") {
		t.Errorf("wrong token: %d\n%s", resp.StatusCode, body)
	}

	// The right one signs in; the cookie is HttpOnly and SameSite, and holds no readable token.
	b := e.signIn(e.admin)
	u, _ := url.Parse(e.url + "/ui/")
	var session *http.Cookie
	for _, ck := range b.client.Jar.Cookies(u) {
		if ck.Name == "gild_session" {
			session = ck
		}
	}
	if session == nil || strings.Contains(session.Value, e.admin) || strings.Contains(session.Value, "gild_") {
		t.Fatalf("session cookie = %+v", session)
	}
	page := b.mustGet("/ui/")
	if !strings.Contains(page, "Compliance across the organisation") {
		t.Errorf("overview:\n%s", page)
	}
	// The attributes are on the Set-Cookie header itself.
	resp, _ = c.Get(e.url + "/ui/sign-in")
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	sc := strings.Join(resp.Header.Values("Set-Cookie"), "\n")
	if !strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "SameSite=Lax") {
		t.Errorf("sign-in cookie attributes: %s", sc)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}

	// Signing out needs the session's anti-forgery token.
	resp, err = b.client.PostForm(e.url+"/ui/sign-out", url.Values{"csrf": {"forged"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("forged sign-out: %d", resp.StatusCode)
	}
	if status, _ := b.get("/ui/"); status != http.StatusOK {
		t.Errorf("after a forged sign-out the session is gone: %d", status)
	}
	m = csrfField.FindStringSubmatch(page)
	resp, err = b.client.PostForm(e.url+"/ui/sign-out", url.Values{"csrf": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/ui/sign-in" {
		t.Errorf("sign-out ended at %s", resp.Request.URL)
	}

	// Revoking the token ends sessions made with it.
	tok := e.token("Reader", "/")
	rb := e.signIn(tok)
	rb.mustGet("/ui/")
	list := e.call(e.admin, "GET", "/providers/Gild.Identity/tokens", nil)
	for _, v := range list["value"].([]any) {
		ti := v.(map[string]any)
		if strings.HasPrefix(ti["description"].(string), "Reader at /") {
			e.call(e.admin, "DELETE", "/providers/Gild.Identity/tokens/"+ti["id"].(string), nil)
		}
	}
	resp, err = noRedirectJar(rb.client).Get(e.url + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("a revoked token's session still reads the overview: %d", resp.StatusCode)
	}
}

func noRedirectJar(c *http.Client) *http.Client {
	return &http.Client{Jar: c.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
