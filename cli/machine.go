package cli

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// maxEnrollmentTTL caps --expires-in as the server does: an enrollment token is for
// enrolling soon.
const maxEnrollmentTTL = 90 * 24 * time.Hour

// parseTTL accepts a Go duration (24h, 90m) or whole days (7d) for flag.
func parseTTL(flag, s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, usageErrorf("%s %q: give a duration such as 24h, 90m or 7d", flag, s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, usageErrorf("%s %q: give a duration such as 24h, 90m or 7d", flag, s)
		}
	}
	if d <= 0 {
		return 0, usageErrorf("%s %q: the token must expire in the future", flag, s)
	}
	if d > maxEnrollmentTTL {
		return 0, usageErrorf("%s %q: at most %dd", flag, s, int(maxEnrollmentTTL/(24*time.Hour)))
	}
	return d, nil
}

// enrollmentToken is the server's answer to an enrollment token request.
type enrollmentToken struct {
	Token     string `json:"token"`
	Target    string `json:"target"`
	ExpiresOn string `json:"expiresOn"`
}

// isLoopbackURL reports whether the server URL names this machine only.
func isLoopbackURL(c *Client) bool {
	host := c.base.Hostname()
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (a *app) machineCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "machine",
		Aliases: []string{"machines"},
		Short:   "Enroll machines with gild's agent and list the enrolled ones",
		Long: `machine works with the agent: token makes a one-time enrollment token, for a host gild
did not create (it becomes a Microsoft.HybridCompute/machines in the resource group) or
to enroll an existing VM or machine again; list shows the hybrid machines.`,
	}
	cmd.AddCommand(a.machineTokenCommand(), a.machineListCommand())
	return cmd
}

func (a *app) machineTokenCommand() *cobra.Command {
	var rg, expiresIn string
	cmd := &cobra.Command{
		Use:   "token (-g RG-ID | VM-OR-MACHINE-ID) [--expires-in 24h]",
		Short: "Make a one-time enrollment token for gild-agent",
		Long: `token makes a one-time token that gild-agent trades for a credential of its own, and
prints the command to run on the host.

With -g RG-ID the host becomes a new Microsoft.HybridCompute/machines in that resource
group, named after its host name. With the ID of an existing VM or hybrid machine, the
agent on it enrolls as that machine again (after a reinstall, or when its credential
was lost); its old credential stops working when the new one is issued.

The command uses the server URL this CLI uses: the host must reach the server there.`,
		Example: `  gild machine token -g /subscriptions/payments/resourceGroups/onprem --expires-in 2h
  gild machine token /subscriptions/payments/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/api-1`,
		Args: a.rangeArgs(0, 1, "a VM or machine ID, or no argument with -g RG-ID"),
	}
	cmd.Flags().StringVarP(&rg, "resource-group", "g", "", "enroll a new hybrid machine in this resource group (its ID)")
	cmd.Flags().StringVar(&expiresIn, "expires-in", "24h", "how long the token may be used: a duration such as 24h, 90m or 7d")
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		var path string
		switch {
		case len(args) == 1 && rg != "":
			return usageErrorf("give either -g RG-ID (a new machine) or a VM or machine ID (enroll it again), not both")
		case len(args) == 1:
			id, err := machineRef("machine", args[0], "", typeVM, typeHybrid)
			if err != nil {
				return err
			}
			path = id.String() + "/enrollmentToken"
		case rg != "":
			g, err := parseResourceGroup("--resource-group", rg)
			if err != nil {
				return err
			}
			path = g.String() + "/providers/Microsoft.HybridCompute/enrollmentTokens"
		default:
			return usageErrorf("name what the token enrolls: -g RG-ID for a new machine, or a VM or machine ID")
		}
		ttl, err := parseTTL("--expires-in", expiresIn)
		if err != nil {
			return err
		}
		body, err := json.Marshal(map[string]float64{"expiresInHours": ttl.Hours()})
		if err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		resp, err := c.do(cmd.Context(), request{Method: http.MethodPost, Path: path, Body: body})
		if err != nil {
			return fmt.Errorf("enrollment token: %w", err)
		}
		var tok enrollmentToken
		if err := json.Unmarshal(resp.Body, &tok); err != nil || tok.Token == "" {
			return fmt.Errorf("enrollment token: the server's answer is not an enrollment token")
		}
		if a.output == outputJSON {
			return writeRawJSON(a.env.Stdout, resp.Body)
		}
		t := newTable(a.env.Stdout)
		t.row("token", tok.Token)
		t.row("target", orDash(tok.Target))
		t.row("expires", orDash(tok.ExpiresOn))
		if err := t.flush(); err != nil {
			return err
		}
		server := c.base.String()
		fmt.Fprintf(a.env.Stdout, "\nOn the host, as root, run (the token works once):\n  gild-agent enroll --server %s --token %s\n", shellQuote(server), shellQuote(tok.Token))
		if isLoopbackURL(c) {
			fmt.Fprintf(a.env.Stderr, "note: %s is a loopback address: a host other than this one must be given an address of the server it can reach\n", server)
		}
		return nil
	})
	return cmd
}

// hybridView is the part of a hybrid machine the list shows.
type hybridView struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Properties struct {
		OSSku        string `json:"osSku"`
		OSName       string `json:"osName"`
		OSVersion    string `json:"osVersion"`
		AgentVersion string `json:"agentVersion"`
		Status       string `json:"status"`
	} `json:"properties"`
}

func (a *app) machineListCommand() *cobra.Command {
	var rg, scope, skip string
	var top int
	cmd := &cobra.Command{
		Use:   "list [-g RG-ID | --scope SCOPE]",
		Short: "List hybrid machines (hosts enrolled with gild-agent)",
		Long: `list shows the Microsoft.HybridCompute/machines in a resource group (-g), under a scope
(--scope), or everywhere you may read (the default), with the OS and agent version their
agents report and whether the agent is connected.`,
		Example: "  gild machine list -g /subscriptions/payments/resourceGroups/onprem",
		Args:    a.exactArgs(0, "no arguments (use -g or --scope)"),
	}
	addListFlags(cmd, &rg, &scope, &skip, &top)
	cmd.RunE = a.run(func(cmd *cobra.Command, _ []string) error {
		page, more, err := a.listOf(cmd.Context(), typeHybrid, rg, scope, skip, top, "gild machine list")
		if err != nil {
			return err
		}
		if a.output == outputJSON {
			return writeJSON(a.env.Stdout, page)
		}
		t := newTable(a.env.Stdout, "NAME", "OS", "AGENT", "STATUS")
		for _, raw := range page.Value {
			var m hybridView
			if err := json.Unmarshal(raw, &m); err != nil {
				return fmt.Errorf("the server's answer is not a machine: %w", err)
			}
			osName := m.Properties.OSSku
			if osName == "" {
				osName = strings.TrimSpace(m.Properties.OSName + " " + m.Properties.OSVersion)
			}
			t.row(m.Name, orDash(osName), orDash(m.Properties.AgentVersion), orDash(m.Properties.Status))
		}
		if err := t.flush(); err != nil {
			return err
		}
		if more != "" {
			fmt.Fprintf(a.env.Stderr, "There is more; the next page: %s\n", more)
		}
		return nil
	})
	return cmd
}
