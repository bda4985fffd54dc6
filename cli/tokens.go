package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/gildhq/gild/atomicfile"
	"github.com/gildhq/gild/controlplane"
)

// tokensPath is where the API keeps tokens.
const tokensPath = "/providers/Gild.Identity/tokens"

func (a *app) tokenCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke API tokens",
	}
	cmd.AddCommand(a.tokenCreateCommand(), a.tokenListCommand(), a.tokenRevokeCommand())
	return cmd
}

func (a *app) tokenCreateCommand() *cobra.Command {
	var req controlplane.TokenRequest
	var secretFile string
	cmd := &cobra.Command{
		Use:   "create [--role ROLE --scope SCOPE]",
		Short: "Create a token (its secret is shown once)",
		Long: `create makes a new API token, for a new principal unless --principal names one (only
owners of / may do that). With --role and --scope it also assigns that role to the
token's principal at that scope, which needs the Owner role there.

The secret is printed once and cannot be retrieved later: the server keeps only its hash.
--secret-file FILE writes it to FILE (mode 0600) instead of printing it.`,
		Example: `  gild token create --role Reader --scope /subscriptions/payments --description "payments dashboard"
  gild token create --role Contributor --scope /subscriptions/search --expires-in-days 90 --secret-file search.token`,
		Args: a.exactArgs(0, "no arguments (use --role and --scope)"),
	}
	f := cmd.Flags()
	f.StringVar(&req.Role, "role", "", "role to assign: Owner, Contributor, Reader, Image Publisher, Policy Contributor")
	f.StringVar(&req.Scope, "scope", "", "scope of the role assignment, such as /subscriptions/payments")
	f.StringVar(&req.Description, "description", "", "what the token is for")
	f.IntVar(&req.ExpiresInDays, "expires-in-days", 0, "lifetime in days (default: does not expire)")
	f.StringVar(&req.PrincipalID, "principal", "", "existing principal the token acts for (default: a new one)")
	f.StringVar(&secretFile, "secret-file", "", "write the secret to this file (mode 0600) instead of printing it")
	cmd.RunE = a.run(func(cmd *cobra.Command, _ []string) error {
		if (req.Role == "") != (req.Scope == "") {
			return usageErrorf("--role and --scope go together: give both or neither")
		}
		if req.ExpiresInDays < 0 {
			return usageErrorf("--expires-in-days must not be negative")
		}
		body, err := json.Marshal(req)
		if err != nil {
			return fmt.Errorf("token create: %w", err)
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		resp, err := c.do(cmd.Context(), request{Method: http.MethodPost, Path: tokensPath, Body: body})
		if err != nil {
			return err
		}
		var nt controlplane.NewToken
		if err := json.Unmarshal(resp.Body, &nt); err != nil {
			return fmt.Errorf("token create: decode response: %w", err)
		}
		if secretFile != "" {
			if err := atomicfile.Write(secretFile, []byte(nt.Secret+"\n"), 0o600); err != nil {
				return fmt.Errorf("token create: token %s was created, but saving its secret failed (revoke it with gild token revoke %s): %w", nt.ID, nt.ID, err)
			}
		}
		if a.output == outputJSON {
			if secretFile != "" {
				// The secret went to the file; keep it out of logs that capture stdout.
				return writeJSON(a.env.Stdout, nt.TokenInfo)
			}
			return writeRawJSON(a.env.Stdout, resp.Body)
		}
		out := a.env.Stdout
		if secretFile != "" {
			fmt.Fprintf(out, "Token %s created; its secret is in %s (it is shown nowhere else).\n\n", nt.ID, secretFile)
		} else {
			fmt.Fprintf(out, "Token %s created. This is the only time its secret is shown; store it now:\n\n  %s\n\n", nt.ID, nt.Secret)
		}
		t := newTable(out)
		t.row("id", nt.ID)
		t.row("principal", nt.PrincipalID)
		if req.Role != "" {
			t.row("role", req.Role+" at "+req.Scope)
		}
		if nt.RoleAssignment != "" {
			t.row("roleAssignment", nt.RoleAssignment)
		}
		if nt.Description != "" {
			t.row("description", nt.Description)
		}
		t.row("expires", expiry(nt.ExpiresAt))
		return t.flush()
	})
	return cmd
}

func expiry(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return formatTime(*t)
}

func tokenStatus(t controlplane.TokenInfo, now time.Time) string {
	switch {
	case t.RevokedAt != nil:
		return "revoked"
	case t.ExpiresAt != nil && !now.Before(*t.ExpiresAt):
		return "expired"
	}
	return "active"
}

func (a *app) tokenListCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tokens (all for owners of /, else the ones you made or hold)",
		Args:  a.exactArgs(0, "no arguments"),
	}
	cmd.RunE = a.run(func(cmd *cobra.Command, _ []string) error {
		c, err := a.client()
		if err != nil {
			return err
		}
		var list struct {
			Value []controlplane.TokenInfo `json:"value"`
		}
		raw, err := c.getJSON(cmd.Context(), tokensPath, url.Values{}, &list)
		if err != nil {
			return err
		}
		if a.output == outputJSON {
			return writeRawJSON(a.env.Stdout, raw)
		}
		now := time.Now()
		t := newTable(a.env.Stdout, "ID", "PRINCIPAL", "STATUS", "CREATED", "EXPIRES", "CREATED BY", "DESCRIPTION")
		for _, tok := range list.Value {
			t.row(tok.ID, tok.PrincipalID, tokenStatus(tok, now), formatTime(tok.CreatedAt), expiry(tok.ExpiresAt), orDash(tok.CreatedBy), orDash(tok.Description))
		}
		return t.flush()
	})
	return cmd
}

func (a *app) tokenRevokeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "revoke ID",
		Short:   "Revoke a token at once",
		Example: "  gild token revoke tok-0123456789abcdef",
		Args:    a.exactArgs(1, "one token ID (tok-...)"),
	}
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		id := args[0]
		if id == "" || url.PathEscape(id) != id {
			return usageErrorf("%q is not a token ID such as tok-0123456789abcdef", id)
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		if _, err := c.do(cmd.Context(), request{Method: http.MethodDelete, Path: tokensPath + "/" + id}); err != nil {
			return err
		}
		if a.output == outputJSON {
			return writeJSON(a.env.Stdout, map[string]any{"id": id, "revoked": true})
		}
		fmt.Fprintf(a.env.Stdout, "Revoked token %s\n", id)
		return nil
	})
	return cmd
}
