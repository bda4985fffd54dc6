package check

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// WriteJSON writes results as an indented JSON array, one object per check.
func WriteJSON(w io.Writer, results []Result) error {
	if results == nil {
		results = []Result{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // the report is read by people and programs, not embedded in HTML
	if err := enc.Encode(results); err != nil {
		return fmt.Errorf("write JSON report: %w", err)
	}
	return nil
}

// junitSuite is JUnit XML's testsuite, the shape CI systems (GitLab, Jenkins, Azure
// Pipelines) read test reports in.
type junitSuite struct {
	XMLName  xml.Name    `xml:"testsuite"`
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes results as a JUnit XML testsuite named suite: one testcase per check
// (classname "check.<kind>"), a failure for a NonCompliant check and an error for a check
// that could not be evaluated, each with its reasons and the expected and actual values.
func WriteJUnit(w io.Writer, suite string, results []Result) error {
	s := junitSuite{Name: suite, Tests: len(results)}
	var total int64
	for _, r := range results {
		total += r.DurationMs
		tc := junitCase{Name: r.Name, ClassName: "check." + string(r.Kind), Time: seconds(r.DurationMs)}
		switch r.Status {
		case StatusCompliant:
		case StatusNonCompliant:
			s.Failures++
			tc.Failure = junitDetail(r)
		default:
			s.Errors++
			tc.Error = junitDetail(r)
		}
		s.Cases = append(s.Cases, tc)
	}
	s.Time = seconds(total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("write JUnit report: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("write JUnit report: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("write JUnit report: %w", err)
	}
	return nil
}

func junitDetail(r Result) *junitProblem {
	p := &junitProblem{}
	var codes, lines []string
	for _, reason := range r.Reasons {
		codes = append(codes, reason.Code)
		lines = append(lines, reason.Code+": "+reason.Phrase)
	}
	p.Type = strings.Join(codes, ",")
	if len(r.Reasons) > 0 {
		p.Message = r.Reasons[0].Phrase
	}
	if r.Expected != "" || r.Actual != "" {
		lines = append(lines, "expected: "+r.Expected, "actual:   "+r.Actual)
	}
	p.Text = strings.Join(lines, "\n")
	return p
}

func seconds(ms int64) string { return fmt.Sprintf("%.3f", float64(ms)/1000) }
