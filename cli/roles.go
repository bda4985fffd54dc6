package cli

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gildhq/gild/access"
	"github.com/gildhq/gild/resource"
)

func (a *app) roleCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "role",
		Short: "Assign roles, list and remove role assignments, show the built-in roles",
		Long: `A role assignment gives a principal a role at a scope (/, a management group, a
subscription, a resource group or a resource) and everything under it.`,
	}
	cmd.AddCommand(a.roleAssignCommand(), a.roleListCommand(), a.roleRemoveCommand(), a.roleDefinitionsCommand())
	return cmd
}

// newUUID is a random (version 4) UUID, the usual name of a role assignment in ARM.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// roleDefinitionID turns a role name into its definition ID; IDs pass through.
func roleDefinitionID(role string) string {
	if strings.HasPrefix(role, "/") {
		return role
	}
	return access.RoleDefinitionPrefix + role
}

// assignmentView is a role assignment as the tables show it.
type assignmentView struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Properties struct {
		RoleDefinitionID string `json:"roleDefinitionId"`
		PrincipalID      string `json:"principalId"`
		PrincipalType    string `json:"principalType"`
		Description      string `json:"description"`
	} `json:"properties"`
}

func (v assignmentView) role() string {
	r := v.Properties.RoleDefinitionID
	return r[strings.LastIndex(r, "/")+1:]
}

func (v assignmentView) scope() string {
	id, err := resource.Parse(v.ID)
	if err != nil {
		return "?"
	}
	return id.Parent().String()
}

func (a *app) roleAssignCommand() *cobra.Command {
	var role, principal, scope, name string
	cmd := &cobra.Command{
		Use:   "assign --role ROLE --principal P --scope SCOPE",
		Short: "Give a principal a role at a scope",
		Example: `  gild role assign --role Contributor --principal p-0123456789ab --scope /subscriptions/payments
  gild role assign --role "Image Publisher" --principal build-bot --scope /subscriptions/platform --name image-publisher`,
		Args: a.exactArgs(0, "no arguments (use the flags)"),
	}
	f := cmd.Flags()
	f.StringVar(&role, "role", "", "role: Owner, Contributor, Reader, Image Publisher, Policy Contributor (required)")
	f.StringVar(&principal, "principal", "", "principal ID, as shown by gild token list (required)")
	f.StringVar(&scope, "scope", "", "scope, such as / or /subscriptions/payments (required)")
	f.StringVar(&name, "name", "", "name of the assignment (default: a random UUID)")
	cmd.RunE = a.run(func(cmd *cobra.Command, _ []string) error {
		var missing []string
		for _, f := range []struct{ name, val string }{{"--role", role}, {"--principal", principal}, {"--scope", scope}} {
			if f.val == "" {
				missing = append(missing, f.name)
			}
		}
		if len(missing) > 0 {
			return usageErrorf("gild role assign needs %s", strings.Join(missing, ", "))
		}
		sid, err := resource.Parse(scope)
		if err != nil {
			return usageErrorf("--scope: %s", messageOf(err))
		}
		if name == "" {
			name = newUUID()
		}
		id := sid.Child(resource.TypeRoleAssignment, name)
		body, err := json.Marshal(map[string]any{"properties": access.AssignmentProperties{
			RoleDefinitionID: roleDefinitionID(role), PrincipalID: principal}})
		if err != nil {
			return fmt.Errorf("role assign: %w", err)
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		resp, err := c.do(cmd.Context(), request{Method: http.MethodPut, Path: id.String(), Body: body})
		if err != nil {
			return err
		}
		if a.output == outputJSON {
			return writeRawJSON(a.env.Stdout, resp.Body)
		}
		var v assignmentView
		if err := json.Unmarshal(resp.Body, &v); err != nil {
			return fmt.Errorf("role assign: decode response: %w", err)
		}
		fmt.Fprintf(a.env.Stdout, "Assigned %s to %s at %s\n\n", v.role(), v.Properties.PrincipalID, v.scope())
		t := newTable(a.env.Stdout)
		t.row("id", v.ID)
		t.row("role", v.role())
		t.row("principal", v.Properties.PrincipalID)
		t.row("scope", v.scope())
		return t.flush()
	})
	return cmd
}

func (a *app) roleListCommand() *cobra.Command {
	var scope string
	cmd := &cobra.Command{
		Use:   "list [--scope SCOPE]",
		Short: "List the role assignments in a scope",
		Example: `  gild role list
  gild role list --scope /subscriptions/payments`,
		Args: a.exactArgs(0, "no arguments (use --scope)"),
	}
	cmd.Flags().StringVar(&scope, "scope", "/", "scope to list in")
	cmd.RunE = a.run(func(cmd *cobra.Command, _ []string) error {
		path, err := collectionPath(scope, resource.TypeRoleAssignment)
		if err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		page, err := c.list(cmd.Context(), path, nil, true)
		if err != nil {
			return err
		}
		if a.output == outputJSON {
			return writeJSON(a.env.Stdout, page)
		}
		t := newTable(a.env.Stdout, "NAME", "ROLE", "PRINCIPAL", "SCOPE", "ID")
		for _, raw := range page.Value {
			var v assignmentView
			if err := json.Unmarshal(raw, &v); err != nil {
				return fmt.Errorf("role list: decode assignment: %w", err)
			}
			t.row(v.Name, v.role(), v.Properties.PrincipalID, v.scope(), v.ID)
		}
		return t.flush()
	})
	return cmd
}

func (a *app) roleRemoveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "remove ID",
		Short:   "Remove a role assignment",
		Example: "  gild role remove /subscriptions/payments/providers/Microsoft.Authorization/roleAssignments/0b7a...",
		Args:    a.exactArgs(1, "one role assignment ID"),
	}
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		id, err := resource.Parse(args[0])
		if err != nil {
			return usageErrorf("%s", messageOf(err))
		}
		if !strings.EqualFold(id.Type(), resource.TypeRoleAssignment) {
			return usageErrorf("%s is a %s, not a role assignment (%s)", id, id.Type(), resource.TypeRoleAssignment)
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
			fmt.Fprintf(a.env.Stdout, "Removed %s\n", id)
		} else {
			fmt.Fprintf(a.env.Stdout, "%s does not exist; nothing was removed\n", id)
		}
		return nil
	})
	return cmd
}

func (a *app) roleDefinitionsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "definitions",
		Short: "Show the built-in roles (-o json shows their actions)",
		Args:  a.exactArgs(0, "no arguments"),
	}
	cmd.RunE = a.run(func(cmd *cobra.Command, _ []string) error {
		c, err := a.client()
		if err != nil {
			return err
		}
		page, err := c.list(cmd.Context(), "/providers/Microsoft.Authorization/roleDefinitions", nil, true)
		if err != nil {
			return err
		}
		if a.output == outputJSON {
			return writeJSON(a.env.Stdout, page)
		}
		// The actions make the table too wide to read; -o json shows them.
		t := newTable(a.env.Stdout, "NAME", "DESCRIPTION")
		for _, raw := range page.Value {
			var v struct {
				Name       string `json:"name"`
				Properties struct {
					Description string `json:"description"`
				} `json:"properties"`
			}
			if err := json.Unmarshal(raw, &v); err != nil {
				return fmt.Errorf("role definitions: decode role: %w", err)
			}
			t.row(v.Name, v.Properties.Description)
		}
		return t.flush()
	})
	return cmd
}
