package web

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gildhq/gild/controlplane"
)

// Cookie names. The session holds the API token itself, encrypted, so that revoking the
// token ends every session made with it and servers that share the key share sessions.
const (
	sessionCookie = "gild_session"
	signInCookie  = "gild_signin" // the sign-in form's anti-forgery value, before a session exists
)

// session is what the session cookie carries.
type session struct {
	Secret  string    `json:"s"`
	Expires time.Time `json:"e"`
	// Nonce makes each sign-in's anti-forgery token its own.
	Nonce string `json:"n"`
}

type sessionKeys struct {
	aead cipher.AEAD
	mac  []byte
}

// newSessionKeys derives the cookie cipher and the anti-forgery MAC key from key, each with
// its own label, so one secret serves both without the two uses meeting.
func newSessionKeys(key []byte) sessionKeys {
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte("gild dashboard " + label))
		return m.Sum(nil)
	}
	block, err := aes.NewCipher(derive("session cookie"))
	if err != nil {
		panic(err) // a 32-byte key always makes a cipher
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return sessionKeys{aead: aead, mac: derive("anti-forgery")}
}

func (k sessionKeys) seal(s *session) (string, error) {
	plain, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(k.aead.Seal(nonce, nonce, plain, []byte(sessionCookie))), nil
}

func (k sessionKeys) open(v string) (*session, error) {
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(raw) < k.aead.NonceSize() {
		return nil, errors.New("web: the session cookie is malformed")
	}
	plain, err := k.aead.Open(nil, raw[:k.aead.NonceSize()], raw[k.aead.NonceSize():], []byte(sessionCookie))
	if err != nil {
		return nil, errors.New("web: the session cookie was not made here")
	}
	var s session
	if err := json.Unmarshal(plain, &s); err != nil {
		return nil, errors.New("web: the session cookie is malformed")
	}
	return &s, nil
}

// csrf is the anti-forgery token of a session: forms that change something carry it.
func (k sessionKeys) csrf(s *session) string {
	m := hmac.New(sha256.New, k.mac)
	m.Write([]byte("csrf:" + s.Nonce))
	return hex.EncodeToString(m.Sum(nil))
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// sessionOf returns the request's session and caller; an error means "sign in".
func (h *Handler) sessionOf(r *http.Request) (*session, controlplane.Caller, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, controlplane.Caller{}, err
	}
	s, err := h.keys.open(c.Value)
	if err != nil {
		return nil, controlplane.Caller{}, err
	}
	if !h.opts.Now().Before(s.Expires) {
		return nil, controlplane.Caller{}, errors.New("web: the session has expired")
	}
	caller, err := h.cp.Authenticate(r.Context(), s.Secret)
	if err != nil {
		return nil, controlplane.Caller{}, err
	}
	caller.Detail = "dashboard " + clientAddr(r)
	return s, caller, nil
}

func clientAddr(r *http.Request) string {
	addr := r.RemoteAddr
	if i := strings.LastIndexByte(addr, ':'); i > 0 {
		addr = addr[:i]
	}
	return addr
}

func (h *Handler) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/ui/", MaxAge: maxAge, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
}

type signInData struct {
	Next    string
	Token   string
	Problem string
}

func (h *Handler) signInPage(w http.ResponseWriter, r *http.Request) {
	h.showSignIn(w, r, http.StatusOK, "")
}

func (h *Handler) showSignIn(w http.ResponseWriter, r *http.Request, status int, problem string) {
	token := randomToken()
	h.setCookie(w, r, signInCookie, token, 600)
	next := safeNext(r.FormValue("next"))
	h.render(w, &request{Request: r, ctx: r.Context(), now: h.opts.Now()}, status, &view{Template: "signin", Title: "Sign in",
		Data: signInData{Next: next, Token: token, Problem: problem}})
}

// safeNext keeps a post-sign-in redirect on the dashboard.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Prefix
	}
	return next
}

func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		h.showSignIn(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	c, err := r.Cookie(signInCookie)
	if err != nil || !sameToken(c.Value, r.PostFormValue("csrf")) || !sameOrigin(r) {
		h.showSignIn(w, r, http.StatusForbidden, "The sign-in form had expired or came from another site; try again.")
		return
	}
	secret := strings.TrimSpace(r.PostFormValue("token"))
	if secret == "" {
		h.showSignIn(w, r, http.StatusBadRequest, "Token: enter your API token (it starts with "+controlplane.TokenPrefix+").")
		return
	}
	if _, err := h.cp.Authenticate(r.Context(), secret); err != nil {
		h.log.Info("dashboard sign-in refused", "from", clientAddr(r))
		h.showSignIn(w, r, http.StatusUnauthorized, "Token: that token is not valid, has expired or was revoked.")
		return
	}
	s := &session{Secret: secret, Expires: h.opts.Now().Add(h.opts.SessionTTL), Nonce: randomToken()}
	v, err := h.keys.seal(s)
	if err != nil {
		h.showSignIn(w, r, http.StatusInternalServerError, "The session could not be made.")
		return
	}
	h.setCookie(w, r, sessionCookie, v, int(h.opts.SessionTTL.Seconds()))
	h.setCookie(w, r, signInCookie, "", -1)
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (h *Handler) signOut(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	sess, _, err := h.sessionOf(r)
	if err == nil && (!sameToken(h.keys.csrf(sess), r.PostFormValue("csrf")) || !sameOrigin(r)) {
		http.Error(w, "the sign-out form came from another site", http.StatusForbidden)
		return
	}
	h.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/ui/sign-in", http.StatusSeeOther)
}

func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// sameOrigin refuses a form posted from another origin when the browser says where it
// came from; the anti-forgery token is the main defence, this a second one.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "null" {
		return false
	}
	if origin == "" {
		ref := r.Header.Get("Referer")
		if ref == "" {
			return true
		}
		origin = ref
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
