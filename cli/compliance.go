package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gildhq/gild/compliance"
	"github.com/gildhq/gild/resource"
)

// insightsPath is the PolicyInsights path of an operation at scope.
func insightsPath(scope, set, op string) (string, error) {
	id, err := resource.Parse(scope)
	if err != nil {
		return "", usageErrorf("scope: %s", messageOf(err))
	}
	prefix := id.String()
	if id.IsRoot() {
		prefix = ""
	}
	return prefix + "/providers/Microsoft.PolicyInsights/policyStates/" + set + "/" + op, nil
}

// postInsights POSTs a PolicyInsights operation at the command's scope. It returns the
// body for table output, or nil once it has printed the server's JSON for -o json.
func (a *app) postInsights(cmd *cobra.Command, args []string, set, op string, q url.Values) ([]byte, error) {
	path, err := insightsPath(scopeArg(args), set, op)
	if err != nil {
		return nil, err
	}
	c, err := a.client()
	if err != nil {
		return nil, err
	}
	resp, err := c.do(cmd.Context(), request{Method: http.MethodPost, Path: path, Query: q})
	if err != nil {
		return nil, err
	}
	if a.output == outputJSON {
		return nil, writeRawJSON(a.env.Stdout, resp.Body)
	}
	return resp.Body, nil
}

func scopeArg(args []string) string {
	if len(args) == 1 {
		return args[0]
	}
	return "/"
}

func (a *app) policyScanCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "scan [SCOPE]",
		Short: "Evaluate every resource in a scope against its policy assignments now",
		Long: `scan evaluates every resource under SCOPE (default /) against every policy assignment
that reaches it, records the compliance states, and returns when it is done.`,
		Example: "  gild policy scan /subscriptions/payments",
		Args:    a.rangeArgs(0, 1, "at most one scope"),
	}
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		body, err := a.postInsights(cmd, args, "latest", "triggerEvaluation", nil)
		if err != nil || body == nil {
			return err
		}
		var out struct {
			Result compliance.ScanResult `json:"result"`
		}
		if err := json.Unmarshal(body, &out); err != nil {
			return fmt.Errorf("scan: the server's answer: %w", err)
		}
		fmt.Fprintf(a.env.Stdout, "Scanned %s: %d resources, %d states, %d changed, in %s.\n",
			out.Result.Scope, out.Result.Resources, out.Result.States, out.Result.Transitions, out.Result.Duration)
		return nil
	})
	return cmd
}

func (a *app) complianceCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "compliance",
		Short: "See which resources comply with which policies",
	}
	cmd.AddCommand(a.complianceSummaryCommand(), a.complianceListCommand(), a.complianceHistoryCommand())
	return cmd
}

func (a *app) complianceSummaryCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "summary [SCOPE]",
		Short: "Compliance of a scope: overall and per assignment and policy",
		Example: `  gild compliance summary /subscriptions/payments
  gild compliance summary / -o json`,
		Args: a.rangeArgs(0, 1, "at most one scope"),
	}
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		body, err := a.postInsights(cmd, args, "latest", "summarize", nil)
		if err != nil || body == nil {
			return err
		}
		var out struct {
			Value []compliance.Summary `json:"value"`
		}
		if err := json.Unmarshal(body, &out); err != nil || len(out.Value) == 0 {
			return fmt.Errorf("summary: the server's answer is not a summary")
		}
		sum := out.Value[0]
		fmt.Fprintf(a.env.Stdout, "Compliance of %s: %.1f%% (%d non-compliant resources, %d non-compliant policies)\n\n",
			scopeArg(args), sum.Results.CompliancePercentage, sum.Results.NonCompliantResources, sum.Results.NonCompliantPolicies)
		t := newTable(a.env.Stdout, "ASSIGNMENT", "POLICY", "COMPLIANCE", "NON-COMPLIANT", "STATES")
		for _, as := range sum.PolicyAssignments {
			t.row(lastName(as.PolicyAssignmentID), "(all)", fmt.Sprintf("%.1f%%", as.Results.CompliancePercentage),
				strconv.FormatInt(as.Results.NonCompliantResources, 10), stateCounts(as.Results.ResourceDetails))
			for _, d := range as.PolicyDefinitions {
				name := d.PolicyDefinitionReferenceID
				if name == "" {
					name = lastName(d.PolicyDefinitionID)
				}
				t.row("", name, fmt.Sprintf("%.1f%%", d.Results.CompliancePercentage),
					strconv.FormatInt(d.Results.NonCompliantResources, 10), stateCounts(d.Results.ResourceDetails))
			}
		}
		return t.flush()
	})
	return cmd
}

func stateCounts(ds []compliance.StateDetail) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, fmt.Sprintf("%s %d", d.ComplianceState, d.Count))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func lastName(id string) string {
	if i := strings.LastIndex(id, "/"); i >= 0 {
		return id[i+1:]
	}
	return id
}

// filterFlags are the filters compliance list and history share.
type filterFlags struct {
	state, assignment, resource string
	top                         int
}

func (f *filterFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.state, "state", "", "only this compliance state (Compliant, NonCompliant, Exempt, Conflicting, Unknown)")
	cmd.Flags().StringVar(&f.assignment, "assignment", "", "only this policy assignment ID")
	cmd.Flags().StringVar(&f.resource, "resource", "", "only this resource ID")
	cmd.Flags().IntVar(&f.top, "top", 0, "at most N results")
}

func (f *filterFlags) query() (url.Values, error) {
	var clauses []string
	quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	if f.state != "" {
		clauses = append(clauses, "complianceState eq "+quote(f.state))
	}
	if f.assignment != "" {
		clauses = append(clauses, "policyAssignmentId eq "+quote(f.assignment))
	}
	if f.resource != "" {
		clauses = append(clauses, "resourceId eq "+quote(f.resource))
	}
	q := url.Values{}
	if len(clauses) > 0 {
		q.Set("$filter", strings.Join(clauses, " and "))
	}
	if f.top < 0 {
		return nil, usageErrorf("--top must be a positive number")
	}
	if f.top > 0 {
		q.Set("$top", strconv.Itoa(f.top))
	}
	return q, nil
}

func (a *app) complianceListCommand() *cobra.Command {
	var f filterFlags
	cmd := &cobra.Command{
		Use:   "list [SCOPE] [--state S] [--assignment ID] [--resource ID]",
		Short: "List compliance states with their reasons",
		Example: `  gild compliance list /subscriptions/payments --state NonCompliant
  gild compliance list / --resource /subscriptions/payments/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/api-1 -o json`,
		Args: a.rangeArgs(0, 1, "at most one scope"),
	}
	f.add(cmd)
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		q, err := f.query()
		if err != nil {
			return err
		}
		body, err := a.postInsights(cmd, args, "latest", "queryResults", q)
		if err != nil || body == nil {
			return err
		}
		var out struct {
			Value []struct {
				ResourceID   string `json:"resourceId"`
				AssignmentID string `json:"policyAssignmentId"`
				DefinitionID string `json:"policyDefinitionId"`
				ReferenceID  string `json:"policyDefinitionReferenceId"`
				State        string `json:"complianceState"`
				Effect       string `json:"policyDefinitionAction"`
				Reasons      []struct {
					Subject string `json:"subject"`
					Phrase  string `json:"phrase"`
					Actual  any    `json:"actual"`
				} `json:"complianceReasons"`
			} `json:"value"`
		}
		if err := json.Unmarshal(body, &out); err != nil {
			return fmt.Errorf("list: the server's answer: %w", err)
		}
		t := newTable(a.env.Stdout, "RESOURCE", "ASSIGNMENT", "POLICY", "STATE", "EFFECT", "REASON")
		for _, v := range out.Value {
			policyName := v.ReferenceID
			if policyName == "" {
				policyName = lastName(v.DefinitionID)
			}
			reason := "-"
			if len(v.Reasons) > 0 {
				r := v.Reasons[len(v.Reasons)-1]
				actual, _ := json.Marshal(r.Actual)
				reason = fmt.Sprintf("%s: %s (current value %s)", r.Subject, r.Phrase, actual)
			}
			t.row(v.ResourceID, lastName(v.AssignmentID), policyName, v.State, v.Effect, reason)
		}
		return t.flush()
	})
	return cmd
}

func (a *app) complianceHistoryCommand() *cobra.Command {
	var f filterFlags
	var since string
	cmd := &cobra.Command{
		Use:   "history [SCOPE] [--resource ID] [--since TIME]",
		Short: "When resources became non-compliant, and when they recovered",
		Args:  a.rangeArgs(0, 1, "at most one scope"),
	}
	f.add(cmd)
	cmd.Flags().StringVar(&since, "since", "", "only changes at or after this RFC 3339 time")
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		q, err := f.query()
		if err != nil {
			return err
		}
		if since != "" {
			if _, err := time.Parse(time.RFC3339, since); err != nil {
				return usageErrorf("--since %q is not an RFC 3339 time", since)
			}
			q.Set("$from", since)
		}
		body, err := a.postInsights(cmd, args, "default", "queryResults", q)
		if err != nil || body == nil {
			return err
		}
		var out struct {
			Value []struct {
				Timestamp    time.Time `json:"timestamp"`
				ResourceID   string    `json:"resourceId"`
				AssignmentID string    `json:"policyAssignmentId"`
				ReferenceID  string    `json:"policyDefinitionReferenceId"`
				From         string    `json:"previousComplianceState"`
				To           string    `json:"complianceState"`
			} `json:"value"`
		}
		if err := json.Unmarshal(body, &out); err != nil {
			return fmt.Errorf("history: the server's answer: %w", err)
		}
		t := newTable(a.env.Stdout, "AT", "RESOURCE", "ASSIGNMENT", "FROM", "TO")
		for _, v := range out.Value {
			t.row(formatTime(v.Timestamp), v.ResourceID, lastName(v.AssignmentID), orDash(v.From), orDash(v.To))
		}
		return t.flush()
	})
	return cmd
}
