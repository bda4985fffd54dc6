package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/gildhq/gild/controlplane"
)

// whoami asks the server who the client's token belongs to.
func (c *Client) whoami(ctx context.Context) (controlplane.Identity, []byte, error) {
	var me controlplane.Identity
	raw, err := c.getJSON(ctx, "/providers/Gild.Identity/self", nil, &me)
	return me, raw, err
}

func (a *app) whoamiCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "whoami",
		Short: "Show the principal of your token and the roles it holds",
		Args:  a.rangeArgs(0, 0, "no arguments"),
	}
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		c, err := a.client()
		if err != nil {
			return err
		}
		me, raw, err := c.whoami(cmd.Context())
		if err != nil {
			return err
		}
		if a.output == outputJSON {
			return writeRawJSON(a.env.Stdout, raw)
		}
		t := newTable(a.env.Stdout, "PRINCIPAL", "TOKEN", "ROLE", "SCOPE")
		if len(me.RoleAssignments) == 0 {
			t.row(me.PrincipalID, orDash(me.TokenID), "-", "-")
		}
		for _, ra := range me.RoleAssignments {
			t.row(me.PrincipalID, orDash(me.TokenID), ra.Role, ra.Scope)
		}
		return t.flush()
	})
	return cmd
}
