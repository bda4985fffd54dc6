package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/gildhq/gild/resource"
)

// pageData is what every page's template gets.
type pageData struct {
	Title     string
	Nav       string
	Crumbs    []crumb
	Principal string
	CSRF      string
	SignedIn  bool
	Now       time.Time
	Data      any
}

// parsePages parses each page template with the shared partials (files starting "_").
func parsePages() (map[string]*template.Template, error) {
	base := template.New("").Funcs(funcs)
	partials, err := fs.Glob(templateFS, "templates/_*.html")
	if err != nil {
		return nil, err
	}
	if base, err = base.ParseFS(templateFS, partials...); err != nil {
		return nil, fmt.Errorf("web: templates: %w", err)
	}
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if strings.HasPrefix(name, "_") {
			continue
		}
		t, err := base.Clone()
		if err == nil {
			t, err = t.ParseFS(templateFS, f)
		}
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

func (h *Handler) render(w http.ResponseWriter, r *request, status int, v *view) {
	for _, t := range v.Tables {
		t.apply(r.Request)
	}
	t, ok := h.pages[v.Template]
	if !ok {
		h.log.Error("dashboard: no such template", "template", v.Template)
		http.Error(w, "no such page template", http.StatusInternalServerError)
		return
	}
	d := pageData{Title: v.Title, Nav: v.Nav, Crumbs: v.Crumbs, Now: r.now, Data: v.Data}
	if r.caller.PrincipalID != "" {
		d.SignedIn = true
		d.Principal = r.caller.PrincipalID
	}
	if r.session != nil {
		d.CSRF = h.keys.csrf(r.session)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", d); err != nil {
		h.log.Error("dashboard: render", "template", v.Template, "err", err)
		http.Error(w, "the page could not be drawn", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func badParam(name, format string, args ...any) error {
	return resource.Errorf(resource.CodeInvalidParameter, name, format, args...)
}

// Paths of the dashboard's pages for a thing.
func resourceURL(id string) string   { return "/ui/resource" + escapePath(id) }
func assignmentURL(id string) string { return "/ui/assignment" + escapePath(id) }
func definitionURL(id string) string { return "/ui/definition" + escapePath(id) }
func imageURL(id string) string      { return "/ui/image" + escapePath(id) }
func runURL(id string) string        { return "/ui/run" + escapePath(id) }
func scopeURL(id string) string {
	if id == "" || id == "/" {
		return Prefix
	}
	return Prefix + "?scope=" + url.QueryEscape(id)
}

// escapePath escapes each segment of an ARM ID for a URL path.
func escapePath(id string) string {
	parts := strings.Split(id, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// idFromPath is the ARM ID a page's {id...} wildcard names.
func idFromPath(r *request) (resource.ID, error) {
	return resource.Parse("/" + r.PathValue("id"))
}

var urlPattern = regexp.MustCompile(`https?://[^\s<>"']+[^\s<>"'.,;:!?)\]]`)

// linkify escapes s and makes each http(s) URL in it a link; the company wiki named in a
// non-compliance message is one click away.
func linkify(s string) template.HTML {
	var b strings.Builder
	last := 0
	for _, m := range urlPattern.FindAllStringIndex(s, -1) {
		b.WriteString(template.HTMLEscapeString(s[last:m[0]]))
		u := s[m[0]:m[1]]
		fmt.Fprintf(&b, `<a href="%s" rel="noopener noreferrer">%s</a>`, template.HTMLEscapeString(u), template.HTMLEscapeString(u))
		last = m[1]
	}
	b.WriteString(template.HTMLEscapeString(s[last:]))
	return template.HTML(b.String())
}

func stateClass(state string) string {
	switch strings.ToLower(state) {
	case "noncompliant", "failed", "disconnected", "expired", "end-of-life", "endoflife":
		return "bad"
	case "compliant", "succeeded", "connected", "current", "latest":
		return "good"
	case "exempt", "aged", "deprecated", "pending", "running", "building", "customizing", "validating", "distributing", "queued", "conflicting":
		return "warn"
	}
	return "neutral"
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// ago says how long before now t was, roughly.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "in " + roughDuration(-d)
	case d < time.Minute:
		return "just now"
	}
	return roughDuration(d) + " ago"
}

func roughDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

func prettyJSON(v any) string {
	var raw []byte
	switch x := v.(type) {
	case json.RawMessage:
		raw = x
	case []byte:
		raw = x
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprint(v)
		}
		raw = b
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}

var funcs = template.FuncMap{
	"resourceURL":   resourceURL,
	"assignmentURL": assignmentURL,
	"definitionURL": definitionURL,
	"imageURL":      imageURL,
	"runURL":        runURL,
	"scopeURL":      scopeURL,
	"linkify":       linkify,
	"stateClass":    stateClass,
	"pct":           formatPct,
	"pctBar":        pctBar,
	"trendChart":    trendChart,
	"stateBar":      stateBar,
	"time":          formatTime,
	"ago":           ago,
	"json":          prettyJSON,
	"last":          lastSegment,
	"dash":          orDash,
	"deref":         func(p *float64) float64 { return *p },
	"inc":           func(n int) int { return n + 1 },
	"dec":           func(n int) int { return n - 1 },
}

func lastSegment(id string) string {
	id = strings.TrimRight(id, "/")
	return id[strings.LastIndex(id, "/")+1:]
}
