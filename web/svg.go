package web

import (
	"fmt"
	"html/template"
	"math"
	"strings"

	"github.com/gildhq/gild/compliance"
	"github.com/gildhq/gild/store"
)

// Charts are SVG written into the page: no script draws them, nothing is fetched, and each
// has a text alternative, so they read without JavaScript and with a screen reader.

// Colours chosen to keep 4.5:1 contrast against white for the text drawn in them.
const (
	colourGood    = "#1a7f37"
	colourBad     = "#c62828"
	colourWarn    = "#9a6700"
	colourNeutral = "#6e7781"
	colourGrid    = "#d0d7de"
	colourLine    = "#0b57d0"
)

// pctBar is a small bar: the compliant share green, the rest red.
func pctBar(p float64) template.HTML {
	p = math.Max(0, math.Min(100, p))
	w := p
	return template.HTML(fmt.Sprintf(`<svg class="bar" viewBox="0 0 100 8" preserveAspectRatio="none" role="img" aria-label="%s compliant">`+
		`<rect width="100" height="8" fill="%s"/><rect width="%.2f" height="8" fill="%s"/></svg>`,
		template.HTMLEscapeString(formatPct(p)), colourBad, w, colourGood))
}

var stateColours = []struct{ state, colour string }{
	{store.StateNonCompliant, colourBad},
	{store.StateConflicting, colourWarn},
	{store.StateExempt, colourNeutral},
	{store.StateUnknown, "#8c959f"},
	{store.StateNotStarted, "#afb8c1"},
	{store.StateCompliant, colourGood},
}

// stateBar is a bar of resources by state, with a legend in its label.
func stateBar(counts map[string]int64) template.HTML {
	var total int64
	for _, n := range counts {
		total += n
	}
	if total == 0 {
		return template.HTML(`<svg class="states" viewBox="0 0 100 10" preserveAspectRatio="none" role="img" aria-label="nothing evaluated"><rect width="100" height="10" fill="` + colourGrid + `"/></svg>`)
	}
	var b, label strings.Builder
	x := 0.0
	for _, sc := range stateColours {
		n := counts[sc.state]
		if n == 0 {
			continue
		}
		w := float64(n) / float64(total) * 100
		fmt.Fprintf(&b, `<rect x="%.3f" width="%.3f" height="10" fill="%s"><title>%s: %d</title></rect>`, x, w, sc.colour, sc.state, n)
		x += w
		if label.Len() > 0 {
			label.WriteString(", ")
		}
		fmt.Fprintf(&label, "%s %d", sc.state, n)
	}
	return template.HTML(fmt.Sprintf(`<svg class="states" viewBox="0 0 100 10" preserveAspectRatio="none" role="img" aria-label="%s">%s</svg>`,
		template.HTMLEscapeString(label.String()), b.String()))
}

// trendChart draws the compliance percentage per day as a line over a 0–100 % grid, with
// the first and last days and the last value written out.
func trendChart(points []compliance.TrendPoint) template.HTML {
	const (
		w, h                 = 720.0, 220.0
		left, right, top, bt = 44.0, 12.0, 12.0, 28.0
	)
	if len(points) == 0 {
		return ""
	}
	pw, ph := w-left-right, h-top-bt
	xOf := func(i int) float64 {
		if len(points) == 1 {
			return left + pw/2
		}
		return left + pw*float64(i)/float64(len(points)-1)
	}
	yOf := func(p float64) float64 { return top + ph*(1-p/100) }
	var b strings.Builder
	first, last := points[0], points[len(points)-1]
	desc := fmt.Sprintf("Compliance from %s to %s: ", first.Day.Format("2 Jan 2006"), last.Day.Format("2 Jan 2006"))
	var known []compliance.TrendPoint
	for _, p := range points {
		if p.Total > 0 {
			known = append(known, p)
		}
	}
	if len(known) == 0 {
		desc += "nothing was evaluated in this period."
	} else {
		lo, hi := 100.0, 0.0
		for _, p := range known {
			lo, hi = math.Min(lo, p.CompliancePercentage), math.Max(hi, p.CompliancePercentage)
		}
		desc += fmt.Sprintf("lowest %s, highest %s, last %s with %d of %d resources non-compliant.", formatPct(lo), formatPct(hi),
			formatPct(known[len(known)-1].CompliancePercentage), known[len(known)-1].NonCompliantResources, known[len(known)-1].Total)
	}
	fmt.Fprintf(&b, `<svg class="trend" viewBox="0 0 %.0f %.0f" role="img" aria-labelledby="trend-title trend-desc">`, w, h)
	fmt.Fprintf(&b, `<title id="trend-title">Compliance trend</title><desc id="trend-desc">%s</desc>`, template.HTMLEscapeString(desc))
	for _, g := range []float64{0, 25, 50, 75, 100} {
		y := yOf(g)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="1"/>`, left, w-right, y, y, colourGrid)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" font-size="11" fill="#57606a">%.0f%%</text>`, left-6, y+4, g)
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" fill="#57606a">%s</text>`, left, h-8, first.Day.Format("2 Jan"))
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" font-size="11" fill="#57606a">%s</text>`, w-right, h-8, last.Day.Format("2 Jan"))
	// The line breaks over days with nothing evaluated rather than drawing them as 100 %.
	var path strings.Builder
	pen := false
	for i, p := range points {
		if p.Total == 0 {
			pen = false
			continue
		}
		cmd := "L"
		if !pen {
			cmd = "M"
		}
		fmt.Fprintf(&path, "%s%.1f %.1f ", cmd, xOf(i), yOf(p.CompliancePercentage))
		pen = true
	}
	if path.Len() > 0 {
		fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="2.5" stroke-linejoin="round"/>`, strings.TrimSpace(path.String()), colourLine)
	}
	for i, p := range points {
		if p.Total == 0 {
			continue
		}
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="%s" fill="%s"><title>%s: %s (%d of %d non-compliant)</title></circle>`,
			xOf(i), yOf(p.CompliancePercentage), dotRadius(len(points)), colourLine, p.Day.Format("2 Jan 2006"),
			formatPct(p.CompliancePercentage), p.NonCompliantResources, p.Total)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func dotRadius(n int) string {
	if n > 120 {
		return "1.2"
	}
	return "2.5"
}
