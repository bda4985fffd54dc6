package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gildhq/gild/resource"
)

// The assignment types of machine configuration, in their canonical spelling.
var assignmentTypes = []string{"Audit", "ApplyAndMonitor", "ApplyAndAutoCorrect"}

const gcCollection = "/providers/" + typeGCAssignment

// configurationParameter is one parameter of a machine configuration.
type configurationParameter struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// gcAssignBody is the JSON guest-config assign PUTs.
type gcAssignBody struct {
	Properties struct {
		GuestConfiguration struct {
			Name                   string                   `json:"name"`
			Version                string                   `json:"version,omitempty"`
			AssignmentType         string                   `json:"assignmentType"`
			ConfigurationParameter []configurationParameter `json:"configurationParameter,omitempty"`
		} `json:"guestConfiguration"`
	} `json:"properties"`
}

// parseParams parses --param NAME=VALUE flags; a value may hold '=' (the first one splits).
func parseParams(flags []string) ([]configurationParameter, []string) {
	var out []configurationParameter
	var problems []string
	seen := map[string]bool{}
	for _, f := range flags {
		name, value, ok := strings.Cut(f, "=")
		name = strings.TrimSpace(name)
		switch {
		case !ok || name == "":
			problems = append(problems, fmt.Sprintf("--param %q: give NAME=VALUE", f))
		case seen[strings.ToLower(name)]:
			problems = append(problems, fmt.Sprintf("--param %s is given twice", name))
		default:
			seen[strings.ToLower(name)] = true
			out = append(out, configurationParameter{Name: name, Value: value})
		}
	}
	return out, problems
}

// canonicalAssignmentType is t spelt as machine configuration spells it, or "".
func canonicalAssignmentType(t string) string {
	for _, c := range assignmentTypes {
		if strings.EqualFold(strings.TrimSpace(t), c) {
			return c
		}
	}
	return ""
}

// gcAssignmentRef is the assignment a command names: its full ID, or a VM or machine
// (its ID, or NAME with -g) with --name.
func gcAssignmentRef(arg, rg, name string) (resource.ID, error) {
	if strings.HasPrefix(arg, "/") {
		if id, err := resource.Parse(arg); err == nil && strings.EqualFold(id.Type(), typeGCAssignment) {
			if name != "" && !strings.EqualFold(name, id.Name()) {
				return resource.ID{}, usageErrorf("--name %s and the assignment ID %s name different assignments; give one", name, arg)
			}
			return id, nil
		}
	}
	m, err := machineRef("VM or machine", arg, rg, typeVM, typeHybrid)
	if err != nil {
		return resource.ID{}, usageErrorf("%s (or give an assignment's full ID)", err)
	}
	if name == "" {
		return resource.ID{}, usageErrorf("--name is required with a VM: the assignment's name (gild guest-config list %s shows them)", arg)
	}
	return assignmentID(m, name)
}

// assignmentID is the ID of the assignment name on machine m.
func assignmentID(m resource.ID, name string) (resource.ID, error) {
	if name == "" || strings.ContainsAny(name, "/?#") {
		return resource.ID{}, usageErrorf("assignment name %q: use letters, digits, '-', '_' and '.'", name)
	}
	id, err := resource.Parse(m.String() + gcCollection + "/" + name)
	if err != nil {
		return resource.ID{}, usageErrorf("assignment name %q: %s", name, messageOf(err))
	}
	return id, nil
}

// gcAssignment is the part of an assignment the commands read.
type gcAssignment struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Properties struct {
		GuestConfiguration struct {
			Name                   string                   `json:"name"`
			Version                string                   `json:"version"`
			AssignmentType         string                   `json:"assignmentType"`
			ConfigurationParameter []configurationParameter `json:"configurationParameter"`
		} `json:"guestConfiguration"`
		ComplianceStatus            string `json:"complianceStatus"`
		LastComplianceStatusChecked string `json:"lastComplianceStatusChecked"`
		ProvisioningState           string `json:"provisioningState"`
		LatestAssignmentReport      *struct {
			ComplianceStatus string `json:"complianceStatus"`
			StartTime        string `json:"startTime"`
			EndTime          string `json:"endTime"`
			OperationType    string `json:"operationType"`
			Resources        []struct {
				ResourceID       string `json:"resourceId"`
				ComplianceStatus string `json:"complianceStatus"`
				Reasons          []struct {
					Code   string `json:"code"`
					Phrase string `json:"phrase"`
				} `json:"reasons"`
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"resources"`
		} `json:"latestAssignmentReport"`
	} `json:"properties"`
}

func decodeAssignment(raw []byte) (*gcAssignment, error) {
	var g gcAssignment
	if err := json.Unmarshal(raw, &g); err != nil {
		return nil, fmt.Errorf("the server's answer is not a guest configuration assignment: %w", err)
	}
	return &g, nil
}

// configuration is "name@version", or the name alone.
func (g *gcAssignment) configuration() string {
	gc := g.Properties.GuestConfiguration
	if gc.Version != "" {
		return orDash(gc.Name) + "@" + gc.Version
	}
	return orDash(gc.Name)
}

func (g *gcAssignment) parameters() string {
	parts := make([]string, len(g.Properties.GuestConfiguration.ConfigurationParameter))
	for i, p := range g.Properties.GuestConfiguration.ConfigurationParameter {
		parts[i] = p.Name + "=" + p.Value
	}
	return strings.Join(parts, "; ")
}

// writeAssignmentTable shows an assignment as key/value rows, then (with report) every
// resource of its latest report that is not compliant.
func writeAssignmentTable(w io.Writer, g *gcAssignment, report bool) error {
	t := newTable(w)
	t.row("id", g.ID)
	t.row("name", g.Name)
	t.row("configuration", g.configuration())
	t.row("type", orDash(g.Properties.GuestConfiguration.AssignmentType))
	t.row("status", orDash(g.Properties.ComplianceStatus))
	t.row("lastChecked", orDash(g.Properties.LastComplianceStatusChecked))
	t.row("parameters", orDash(g.parameters()))
	if err := t.flush(); err != nil {
		return err
	}
	if !report {
		return nil
	}
	r := g.Properties.LatestAssignmentReport
	if r == nil {
		fmt.Fprintln(w, "\nNo report yet: the agent has not run this assignment.")
		return nil
	}
	var bad int
	for _, res := range r.Resources {
		if !strings.EqualFold(res.ComplianceStatus, "Compliant") {
			bad++
		}
	}
	fmt.Fprintf(w, "\nLatest report: %s, %s run from %s to %s.\n", orDash(r.ComplianceStatus), orDash(r.OperationType), orDash(r.StartTime), orDash(r.EndTime))
	if bad == 0 {
		fmt.Fprintf(w, "All %d %s compliant.\n", len(r.Resources), plural(len(r.Resources), "resource is", "resources are"))
		return nil
	}
	fmt.Fprintf(w, "%d of %d %s not compliant:\n", bad, len(r.Resources), plural(len(r.Resources), "resource is", "resources are"))
	for _, res := range r.Resources {
		if strings.EqualFold(res.ComplianceStatus, "Compliant") {
			continue
		}
		fmt.Fprintf(w, "\n  %s: %s\n", orDash(res.ResourceID), orDash(res.ComplianceStatus))
		for _, k := range []string{"expected", "actual"} {
			if v, ok := res.Properties[k]; ok {
				fmt.Fprintf(w, "    %-9s %s\n", k+":", scalar(v))
			}
		}
		for _, why := range res.Reasons {
			fmt.Fprintf(w, "    - %s: %s\n", orDash(why.Code), why.Phrase)
		}
	}
	return nil
}

func (a *app) guestConfigCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "guest-config",
		Aliases: []string{"guestconfig", "gc"},
		Short:   "Assign machine configurations to VMs and see what they find",
		Long: `guest-config works with machine configuration assignments
(Microsoft.GuestConfiguration/guestConfigurationAssignments): a configuration (a set of
in-guest checks, such as LinuxSshServerSecurityBaseline) assigned to a VM or hybrid
machine, which its agent audits (Audit), applies once then audits (ApplyAndMonitor) or
keeps applied (ApplyAndAutoCorrect).

The VM or machine is its full ID, or a VM's NAME with --resource-group RG-ID (-g).`,
	}
	cmd.AddCommand(a.gcAssignCommand(), a.gcListCommand(), a.gcShowCommand(), a.gcDeleteCommand())
	return cmd
}

func (a *app) gcAssignCommand() *cobra.Command {
	var rg, configuration, name, typ, version string
	var params []string
	cmd := &cobra.Command{
		Use:   "assign VM --configuration NAME [--name ASSIGNMENT] [--type Audit|ApplyAndMonitor|ApplyAndAutoCorrect]",
		Short: "Assign a machine configuration to a VM or machine",
		Long: `assign creates (or replaces) the assignment of a configuration to a VM or hybrid
machine. The assignment is named after the configuration unless --name says otherwise.
--param NAME=VALUE sets a configuration parameter (the value may hold '='); the
parameters not given keep their defaults. The server checks the configuration and its
parameters.`,
		Example: `  gild guest-config assign api-1 -g $RG --configuration LinuxSshServerSecurityBaseline --type ApplyAndAutoCorrect
  gild guest-config assign $VM --configuration LinuxSshServerSecurityBaseline --name ssh \
      --param "Ensure that the SSH MaxAuthTries is configured;DesiredObjectValue=4"`,
		Args: a.exactArgs(1, "one VM or machine"),
	}
	cmd.Flags().StringVarP(&rg, "resource-group", "g", "", "the resource group's ID, when the VM is given by NAME")
	cmd.Flags().StringVarP(&configuration, "configuration", "c", "", "the machine configuration's name (required)")
	cmd.Flags().StringVar(&name, "name", "", "the assignment's name (default: the configuration's)")
	cmd.Flags().StringVar(&typ, "type", "Audit", "the assignment type: Audit, ApplyAndMonitor or ApplyAndAutoCorrect")
	cmd.Flags().StringVar(&version, "version", "", "the configuration's version (default: the server's)")
	cmd.Flags().StringArrayVar(&params, "param", nil, "NAME=VALUE: a configuration parameter (repeatable)")
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		var problems []string
		add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
		var body gcAssignBody
		gc := &body.Properties.GuestConfiguration
		m, err := machineRef("VM or machine", args[0], rg, typeVM, typeHybrid)
		if err != nil {
			add("%s", err)
		}
		gc.Name = strings.TrimSpace(configuration)
		switch {
		case gc.Name == "":
			add("--configuration is required: the machine configuration to assign, such as LinuxSshServerSecurityBaseline")
		case strings.ContainsAny(gc.Name, "/ \t"):
			add("--configuration %q is not a configuration name such as LinuxSshServerSecurityBaseline", configuration)
		}
		if name == "" {
			name = gc.Name
		}
		var id resource.ID
		if err == nil && name != "" {
			if id, err = assignmentID(m, name); err != nil {
				add("--name: %s", err)
			}
		}
		if gc.AssignmentType = canonicalAssignmentType(typ); gc.AssignmentType == "" {
			add("--type %q: use Audit, ApplyAndMonitor or ApplyAndAutoCorrect", typ)
		}
		if v := strings.TrimSpace(version); v != "" {
			if strings.ContainsAny(v, " \t/") {
				add("--version %q is not a version such as 1.0.0", version)
			}
			gc.Version = v
		}
		ps, paramProblems := parseParams(params)
		problems = append(problems, paramProblems...)
		gc.ConfigurationParameter = ps
		switch len(problems) {
		case 0:
		case 1:
			return usageErrorf("%s", problems[0])
		default:
			return usageErrorf("%d problems with the arguments:\n  - %s", len(problems), strings.Join(problems, "\n  - "))
		}
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		resp, err := c.do(cmd.Context(), request{Method: http.MethodPut, Path: id.String(), Body: data})
		if err != nil {
			return fmt.Errorf("assign %s to %s: %w", gc.Name, m.Name(), err)
		}
		if a.output == outputJSON {
			return writeRawJSON(a.env.Stdout, resp.Body)
		}
		g, err := decodeAssignment(resp.Body)
		if err != nil {
			return err
		}
		verb := "Updated"
		if resp.Status == http.StatusCreated {
			verb = "Assigned"
		}
		fmt.Fprintf(a.env.Stdout, "%s %s to %s as %s (%s)\n\n", verb, g.configuration(), m.Name(), g.Name, gc.AssignmentType)
		return writeAssignmentTable(a.env.Stdout, g, false)
	})
	return cmd
}

func (a *app) gcListCommand() *cobra.Command {
	var rg string
	cmd := &cobra.Command{
		Use:     "list VM",
		Short:   "List the machine configurations assigned to a VM or machine, with their status",
		Example: "  gild guest-config list api-1 -g /subscriptions/payments/resourceGroups/prod",
		Args:    a.exactArgs(1, "one VM or machine"),
	}
	cmd.Flags().StringVarP(&rg, "resource-group", "g", "", "the resource group's ID, when the VM is given by NAME")
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		m, err := machineRef("VM or machine", args[0], rg, typeVM, typeHybrid)
		if err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		page, err := c.list(cmd.Context(), m.String()+gcCollection, nil, true)
		if err != nil {
			return err
		}
		if a.output == outputJSON {
			return writeJSON(a.env.Stdout, page)
		}
		t := newTable(a.env.Stdout, "NAME", "CONFIGURATION", "TYPE", "STATUS", "LAST CHECKED")
		for _, raw := range page.Value {
			g, err := decodeAssignment(raw)
			if err != nil {
				return err
			}
			t.row(g.Name, g.configuration(), orDash(g.Properties.GuestConfiguration.AssignmentType), orDash(g.Properties.ComplianceStatus), orDash(g.Properties.LastComplianceStatusChecked))
		}
		return t.flush()
	})
	return cmd
}

func (a *app) gcShowCommand() *cobra.Command {
	var rg, name string
	cmd := &cobra.Command{
		Use:   "show (ASSIGNMENT-ID | VM --name ASSIGNMENT)",
		Short: "Show an assignment and every resource its latest report finds not compliant",
		Long: `show prints an assignment, its compliance status, and for every resource of the latest
report that is not compliant: its status, the expected and actual values when the check
gives them, and each reason's code and phrase. -o json prints the assignment resource.`,
		Example: `  gild guest-config show api-1 -g $RG --name LinuxSshServerSecurityBaseline
  gild guest-config show $VM/providers/Microsoft.GuestConfiguration/guestConfigurationAssignments/ssh -o json`,
		Args: a.exactArgs(1, "an assignment ID, or a VM with --name"),
	}
	cmd.Flags().StringVarP(&rg, "resource-group", "g", "", "the resource group's ID, when the VM is given by NAME")
	cmd.Flags().StringVar(&name, "name", "", "the assignment's name, when a VM is given")
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		id, err := gcAssignmentRef(args[0], rg, name)
		if err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		raw, err := c.getJSON(cmd.Context(), id.String(), nil, nil)
		if err != nil {
			return err
		}
		if a.output == outputJSON {
			return writeRawJSON(a.env.Stdout, raw)
		}
		g, err := decodeAssignment(raw)
		if err != nil {
			return err
		}
		return writeAssignmentTable(a.env.Stdout, g, true)
	})
	return cmd
}

func (a *app) gcDeleteCommand() *cobra.Command {
	var rg, name string
	cmd := &cobra.Command{
		Use:   "delete (ASSIGNMENT-ID | VM --name ASSIGNMENT)",
		Short: "Remove a machine configuration assignment",
		Long: `delete removes an assignment: the agent stops running its checks. What
ApplyAndAutoCorrect changed on the machine stays as it is.`,
		Example: "  gild guest-config delete api-1 -g $RG --name LinuxSshServerSecurityBaseline",
		Args:    a.exactArgs(1, "an assignment ID, or a VM with --name"),
	}
	cmd.Flags().StringVarP(&rg, "resource-group", "g", "", "the resource group's ID, when the VM is given by NAME")
	cmd.Flags().StringVar(&name, "name", "", "the assignment's name, when a VM is given")
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		id, err := gcAssignmentRef(args[0], rg, name)
		if err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		resp, err := c.do(cmd.Context(), request{Method: http.MethodDelete, Path: id.String()})
		if err != nil {
			return err
		}
		deleted := resp.Status != http.StatusNoContent
		if a.output == outputJSON {
			return writeJSON(a.env.Stdout, deleteResult{ID: id.String(), Deleted: deleted})
		}
		if deleted {
			fmt.Fprintf(a.env.Stdout, "Deleted %s\n", id)
		} else {
			fmt.Fprintf(a.env.Stdout, "%s does not exist; nothing was deleted\n", id)
		}
		return nil
	})
	return cmd
}
