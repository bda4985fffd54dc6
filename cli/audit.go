package cli

import (
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/gildhq/gild/resource"
)

func (a *app) auditCommand() *cobra.Command {
	var since string
	var top int
	var oldest bool
	cmd := &cobra.Command{
		Use:   "audit [SCOPE] [--since TIME] [--top N]",
		Short: "Show the audit log of a scope (owners only)",
		Long: `audit shows the writes recorded inside SCOPE (default /): who did what to which
resource, when, and its ETag before and after, newest first (--oldest to start from the
beginning). Reading it needs the Owner role there.`,
		Example: `  gild audit
  gild audit /subscriptions/payments --since 2026-01-01T00:00:00Z
  gild audit --top 20 -o json`,
		Args: a.rangeArgs(0, 1, "at most one scope"),
	}
	cmd.Flags().StringVar(&since, "since", "", "only entries at or after this RFC 3339 time, such as 2026-01-02T15:04:05Z")
	cmd.Flags().IntVar(&top, "top", 0, "at most N entries (the server's default is 1000)")
	cmd.Flags().BoolVar(&oldest, "oldest", false, "list from the oldest entry on instead of the newest back")
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		scope := "/"
		if len(args) == 1 {
			scope = args[0]
		}
		sid, err := resource.Parse(scope)
		if err != nil {
			return usageErrorf("scope: %s", messageOf(err))
		}
		q := url.Values{}
		q.Set("order", "newest")
		if oldest {
			q.Set("order", "oldest")
		}
		if since != "" {
			if _, err := time.Parse(time.RFC3339, since); err != nil {
				return usageErrorf("--since %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", since)
			}
			q.Set("since", since)
		}
		if top < 0 {
			return usageErrorf("--top must be a positive number, not %d", top)
		}
		if top > 0 {
			q.Set("$top", strconv.Itoa(top))
		}
		path := sid.String() + "/providers/Gild.Audit/events"
		if sid.IsRoot() {
			path = "/providers/Gild.Audit/events"
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		var log struct {
			Value []struct {
				Seq        int64     `json:"seq"`
				At         time.Time `json:"at"`
				Principal  string    `json:"principal"`
				Action     string    `json:"action"`
				ResourceID string    `json:"resourceId"`
				BeforeETag string    `json:"beforeETag"`
				AfterETag  string    `json:"afterETag"`
				Detail     string    `json:"detail"`
			} `json:"value"`
		}
		raw, err := c.getJSON(cmd.Context(), path, q, &log)
		if err != nil {
			return err
		}
		if a.output == outputJSON {
			return writeRawJSON(a.env.Stdout, raw)
		}
		t := newTable(a.env.Stdout, "SEQ", "AT", "PRINCIPAL", "ACTION", "RESOURCE", "ETAG BEFORE", "ETAG AFTER")
		for _, e := range log.Value {
			t.row(strconv.FormatInt(e.Seq, 10), formatTime(e.At), e.Principal, e.Action, e.ResourceID, orDash(e.BeforeETag), orDash(e.AfterETag))
		}
		return t.flush()
	})
	return cmd
}
