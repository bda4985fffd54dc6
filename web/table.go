package web

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// DefaultPageSize is how many rows a list shows at once.
const DefaultPageSize = 50

// table is one list on a page. Every list gets the same search, filters, paging and export:
// its query parameters are prefixed with its name ("vms.q", "vms.state", "vms.page"), so
// that several lists on one page page and filter on their own.
type table struct {
	Name    string
	Title   string
	Columns []column
	Rows    []row
	// Empty is said when there are no rows at all.
	Empty string

	// Set by apply.
	Query    string
	Filters  []filter
	Page     int
	Pages    int
	Total    int // rows after filtering
	All      int // rows before filtering
	Visible  []row
	filtered []row
	hidden   []hiddenField
	pageURLs [2]string
	base     url.Values
	path     string
}

type column struct {
	Key   string
	Title string
	// Filter offers a choice of this column's values.
	Filter bool
	// Numeric columns align right and export as numbers.
	Numeric bool
}

type row []cell

// cell is one value; Href makes it a link, State a compliance badge, Bar a percentage bar.
type cell struct {
	Text  string
	Href  string
	State string
	Bar   *float64
	// Title is a longer text shown on hover and read by screen readers.
	Title string
	// Links makes each web address in Text a link (a non-compliance message's wiki page).
	Links bool
}

type filter struct {
	Column   column
	Param    string
	Selected string
	Options  []string
}

type hiddenField struct{ Name, Value string }

func text(s string) cell               { return cell{Text: s} }
func link(s, href string) cell         { return cell{Text: s, Href: href} }
func stateCell(state string) cell      { return cell{Text: orDash(state), State: state} }
func number(n int64) cell              { return cell{Text: strconv.FormatInt(n, 10)} }
func percent(p float64) cell           { return cell{Text: formatPct(p), Bar: &p} }
func formatPct(p float64) string       { return strconv.FormatFloat(p, 'f', -1, 64) + " %" }
func (t *table) param(k string) string { return t.Name + "." + k }

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// apply filters, searches and pages the table as the request asks.
func (t *table) apply(r *http.Request) {
	q := r.URL.Query()
	t.base = q
	t.path = r.URL.Path
	t.Query = strings.TrimSpace(q.Get(t.param("q")))
	t.All = len(t.Rows)
	rows := t.Rows
	t.Filters = nil
	for i, c := range t.Columns {
		if !c.Filter {
			continue
		}
		f := filter{Column: c, Param: t.param(c.Key), Selected: q.Get(t.param(c.Key))}
		seen := map[string]bool{}
		for _, rw := range t.Rows {
			if v := rw[i].Text; !seen[v] {
				seen[v] = true
				f.Options = append(f.Options, v)
			}
		}
		sort.Strings(f.Options)
		t.Filters = append(t.Filters, f)
		if f.Selected != "" {
			rows = keep(rows, func(rw row) bool { return rw[i].Text == f.Selected })
		}
	}
	if t.Query != "" {
		needle := strings.ToLower(t.Query)
		rows = keep(rows, func(rw row) bool {
			for _, c := range rw {
				if strings.Contains(strings.ToLower(c.Text), needle) {
					return true
				}
			}
			return false
		})
	}
	t.filtered = rows
	t.Total = len(rows)
	t.Pages = (len(rows) + DefaultPageSize - 1) / DefaultPageSize
	if t.Pages == 0 {
		t.Pages = 1
	}
	t.Page, _ = strconv.Atoi(q.Get(t.param("page")))
	if t.Page < 1 {
		t.Page = 1
	}
	if t.Page > t.Pages {
		t.Page = t.Pages
	}
	lo := (t.Page - 1) * DefaultPageSize
	hi := min(lo+DefaultPageSize, len(rows))
	t.Visible = rows[lo:hi]
	// The search form resubmits every other parameter, so that the page's other lists
	// keep their state.
	t.hidden = nil
	keys := slices.Sorted(maps.Keys(q))
	for _, k := range keys {
		if strings.HasPrefix(k, t.Name+".") || k == "export" || k == "format" {
			continue
		}
		for _, v := range q[k] {
			t.hidden = append(t.hidden, hiddenField{k, v})
		}
	}
}

func keep(rows []row, ok func(row) bool) []row {
	var out []row
	for _, r := range rows {
		if ok(r) {
			out = append(out, r)
		}
	}
	return out
}

// Hidden are the fields the search form carries over.
func (t *table) Hidden() []hiddenField { return t.hidden }

func (t *table) url(set map[string]string) string {
	q := url.Values{}
	for k, vs := range t.base {
		q[k] = append([]string(nil), vs...)
	}
	for k, v := range set {
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
	}
	if len(q) == 0 {
		return t.path
	}
	return t.path + "?" + q.Encode()
}

// PageURL is the URL of page n of this list.
func (t *table) PageURL(n int) string {
	p := ""
	if n > 1 {
		p = strconv.Itoa(n)
	}
	return t.url(map[string]string{t.param("page"): p})
}

// ExportURL is the URL of this list, filtered as shown, in format (csv or json).
func (t *table) ExportURL(format string) string {
	return t.url(map[string]string{"export": t.Name, "format": format, t.param("page"): ""})
}

// ClearURL drops this list's search and filters.
func (t *table) ClearURL() string {
	set := map[string]string{t.param("q"): "", t.param("page"): ""}
	for _, f := range t.Filters {
		set[f.Param] = ""
	}
	return t.url(set)
}

// Filtered says whether a search or filter is in force.
func (t *table) Filtered() bool {
	if t.Query != "" {
		return true
	}
	for _, f := range t.Filters {
		if f.Selected != "" {
			return true
		}
	}
	return false
}

// First and Last number the rows shown.
func (t *table) First() int {
	if t.Total == 0 {
		return 0
	}
	return (t.Page-1)*DefaultPageSize + 1
}

func (t *table) Last() int { return t.First() + len(t.Visible) - 1 }

// export writes the whole filtered list named name.
func (h *Handler) export(w http.ResponseWriter, r *request, v *view, name string) {
	var t *table
	for _, x := range v.Tables {
		if x.Name == name {
			t = x
		}
	}
	if t == nil {
		h.renderError(w, r, badParam("export", "this page has no list %q", name))
		return
	}
	t.apply(r.Request)
	rows := t.filtered
	format := r.URL.Query().Get("format")
	filename := fmt.Sprintf("gild-%s.%s", t.Name, format)
	switch format {
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+filename+`"`)
		cw := csv.NewWriter(w)
		head := make([]string, len(t.Columns))
		for i, c := range t.Columns {
			head[i] = c.Title
		}
		_ = cw.Write(head)
		for _, rw := range rows {
			rec := make([]string, len(rw))
			for i, c := range rw {
				rec[i] = csvSafe(c.Text)
			}
			_ = cw.Write(rec)
		}
		cw.Flush()
	case "json":
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Disposition", `attachment; filename="`+filename+`"`)
		out := make([]map[string]any, 0, len(rows))
		for _, rw := range rows {
			m := make(map[string]any, len(rw))
			for i, c := range rw {
				if t.Columns[i].Numeric {
					if n, err := strconv.ParseFloat(strings.TrimSuffix(c.Text, " %"), 64); err == nil {
						m[t.Columns[i].Key] = n
						continue
					}
				}
				if c.Text == "—" {
					m[t.Columns[i].Key] = nil
					continue
				}
				m[t.Columns[i].Key] = c.Text
			}
			out = append(out, m)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	default:
		h.renderError(w, r, badParam("format", "format %q is not csv or json", format))
	}
}

// csvSafe keeps a spreadsheet from reading a cell as a formula.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return "'" + s
		}
	}
	return s
}
